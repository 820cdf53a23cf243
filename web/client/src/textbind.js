// Bind a <textarea> to a Y.Text with minimal edits, both ways.
//
// Local typing becomes one delete + one insert at the changed span (common prefix
// and suffix kept), so concurrent edits elsewhere in the text survive. Remote
// changes are applied to the textarea while moving the caret and selection through
// the change, so a co-author's typing does not make yours jump. Positions are
// UTF-16 code units on both sides (Y.Text in JS and textarea agree).

import * as Y from 'yjs'

/** Origin of the transactions made by typing in a bound textarea (undo tracks only these). */
export const TEXT_ORIGIN = Symbol('vmv-textarea')
const LOCAL = TEXT_ORIGIN

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
 * Keep `textarea` and `ytext` equal. Returns a function that unbinds, with
 * `.undoManager`: a Y.UndoManager over `ytext` tracking this textarea's own edits
 * only (so undo never takes back someone else's words). Ctrl/Cmd+Z, Ctrl+Y,
 * Ctrl/Cmd+Shift+Z and the browser's history input events go to it.
 * Options: onLocalEdit() after each local edit; onCaret(anchor, head) when the
 * caret or selection moves while focused, onBlur() when focus leaves.
 */
export function bindTextarea (textarea, ytext, opts = {}) {
  const { onLocalEdit = () => {}, onCaret = null, onBlur = null } = typeof opts === 'function' ? { onLocalEdit: opts } : opts
  const undoManager = new Y.UndoManager(ytext, { trackedOrigins: new Set([LOCAL]), captureTimeout: 600 })
  textarea.value = ytext.toString()
  const caret = () => {
    if (!onCaret || document.activeElement !== textarea) return
    const backwards = textarea.selectionDirection === 'backward'
    const [a, h] = backwards ? [textarea.selectionEnd, textarea.selectionStart] : [textarea.selectionStart, textarea.selectionEnd]
    onCaret(a, h)
  }
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
    caret()
  }
  const onChange = (event, tr) => {
    if (tr.origin === LOCAL) return
    const focused = document.activeElement === textarea
    const start = textarea.selectionStart
    const end = textarea.selectionEnd
    textarea.value = ytext.toString()
    if (focused) textarea.setSelectionRange(transform(start, event.delta), transform(end, event.delta))
  }
  const history = (redo) => {
    const um = undoManager
    if (redo ? um.canRedo() : um.canUndo()) {
      if (redo) um.redo(); else um.undo()
      onLocalEdit()
    }
    caret()
  }
  const onKey = (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return
    const k = e.key.toLowerCase()
    if (k === 'z' || k === 'y') { e.preventDefault(); history(k === 'y' || e.shiftKey) }
  }
  const onBeforeInput = (e) => {
    if (e.inputType === 'historyUndo' || e.inputType === 'historyRedo') { e.preventDefault(); history(e.inputType === 'historyRedo') }
  }
  const onSelect = () => caret()
  const onFocusOut = () => { if (onBlur) onBlur() }
  textarea.addEventListener('input', onInput)
  textarea.addEventListener('keydown', onKey)
  textarea.addEventListener('beforeinput', onBeforeInput)
  textarea.addEventListener('focusout', onFocusOut)
  textarea.addEventListener('focus', onSelect)
  document.addEventListener('selectionchange', onSelect)
  textarea.addEventListener('select', onSelect)
  textarea.addEventListener('keyup', onSelect)
  textarea.addEventListener('mouseup', onSelect)
  ytext.observe(onChange)
  const unbind = () => {
    textarea.removeEventListener('input', onInput)
    textarea.removeEventListener('keydown', onKey)
    textarea.removeEventListener('beforeinput', onBeforeInput)
    textarea.removeEventListener('focusout', onFocusOut)
    textarea.removeEventListener('focus', onSelect)
    document.removeEventListener('selectionchange', onSelect)
    textarea.removeEventListener('select', onSelect)
    textarea.removeEventListener('keyup', onSelect)
    textarea.removeEventListener('mouseup', onSelect)
    ytext.unobserve(onChange)
    undoManager.destroy()
  }
  unbind.undoManager = undoManager
  unbind.undo = () => history(false)
  unbind.redo = () => history(true)
  return unbind
}
