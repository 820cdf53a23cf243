// Bind a <textarea> to a Y.Text with minimal edits, both ways.
//
// Local typing becomes one delete + one insert at the changed span (common prefix
// and suffix kept), so concurrent edits elsewhere in the text survive. Remote
// changes are applied to the textarea while moving the caret and selection through
// the change, so a co-author's typing does not make yours jump. Positions are
// UTF-16 code units on both sides (Y.Text in JS and textarea agree).

const LOCAL = Symbol('textarea')

/** The smallest edit turning `before` into `after`: [index, deleteCount, insertText]. */
export function diff (before, after) {
  let prefix = 0
  const limit = Math.min(before.length, after.length)
  while (prefix < limit && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++
  // never split a surrogate pair
  if (prefix > 0 && prefix < limit && isHigh(before.charCodeAt(prefix - 1))) prefix--
  let suffix = 0
  while (suffix < limit - prefix && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) suffix++
  if (suffix > 0 && suffix < limit - prefix && isLow(before.charCodeAt(before.length - suffix))) suffix--
  return [prefix, before.length - prefix - suffix, after.slice(prefix, after.length - suffix)]
}

const isHigh = (c) => c >= 0xD800 && c <= 0xDBFF
const isLow = (c) => c >= 0xDC00 && c <= 0xDFFF

/** Move a position through a Yjs delta. */
function transform (pos, delta) {
  let index = 0
  let result = pos
  for (const op of delta) {
    if (op.retain) {
      index += op.retain
    } else if (op.insert) {
      const n = typeof op.insert === 'string' ? op.insert.length : 1
      if (index <= pos) result += n
      index += n
    } else if (op.delete) {
      if (index < pos) result -= Math.min(op.delete, pos - index)
    }
    if (index > pos) break
  }
  return result
}

/**
 * Keep `textarea` and `ytext` equal. Returns a function that unbinds.
 * `onLocalEdit` is called after each local edit (e.g. to update presence).
 */
export function bindTextarea (textarea, ytext, onLocalEdit = () => {}) {
  textarea.value = ytext.toString()
  const onInput = () => {
    const before = ytext.toString()
    const after = textarea.value
    if (before === after) return
    const [index, del, ins] = diff(before, after)
    ytext.doc.transact(() => {
      if (del) ytext.delete(index, del)
      if (ins) ytext.insert(index, ins)
    }, LOCAL)
    onLocalEdit()
  }
  const onChange = (event, tr) => {
    if (tr.origin === LOCAL) return
    const focused = document.activeElement === textarea
    const start = textarea.selectionStart
    const end = textarea.selectionEnd
    textarea.value = ytext.toString()
    if (focused) textarea.setSelectionRange(transform(start, event.delta), transform(end, event.delta))
  }
  textarea.addEventListener('input', onInput)
  ytext.observe(onChange)
  return () => {
    textarea.removeEventListener('input', onInput)
    ytext.unobserve(onChange)
  }
}
