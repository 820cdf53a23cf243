// Others' carets and selections drawn over a <textarea>. A textarea cannot style
// parts of its text, so a mirror layer with the same box, font and wrapping lies
// on top of it (transparent text, no pointer events): others' selections are
// tinted marks, their carets thin bars with their name. Positions come from the
// awareness `caret` (Yjs relative positions), resolved against the current text.

import { h } from './dom.js'

const COPY = ['fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'letterSpacing', 'lineHeight', 'textTransform',
  'wordSpacing', 'textIndent', 'paddingTop', 'paddingRight', 'paddingBottom', 'paddingLeft', 'borderTopWidth',
  'borderRightWidth', 'borderBottomWidth', 'borderLeftWidth', 'borderStyle', 'boxSizing', 'tabSize', 'whiteSpace', 'overflowWrap']

/** Wrap `textarea` and return {render(text, carets), destroy()}; carets: [{id, name, color, anchor, head}]. */
export function caretOverlay (textarea) {
  const wrap = h('div.editor-wrap')
  textarea.replaceWith(wrap)
  const layer = h('div.caret-layer', { 'aria-hidden': 'true' })
  wrap.append(textarea, layer)
  const onScroll = () => { layer.scrollTop = textarea.scrollTop }
  textarea.addEventListener('scroll', onScroll)
  let lastKey = ''
  return {
    render (text, carets) {
      const key = JSON.stringify([text, carets, textarea.offsetWidth, textarea.offsetHeight])
      if (key === lastKey) return
      lastKey = key
      const cs = getComputedStyle(textarea)
      for (const k of COPY) layer.style[k] = cs[k]
      layer.style.borderColor = 'transparent'
      layer.style.width = `${textarea.offsetWidth}px`
      layer.style.height = `${textarea.offsetHeight}px`
      const clamp = (i) => Math.max(0, Math.min(text.length, i))
      const points = new Set([0, text.length])
      for (const c of carets) { points.add(clamp(c.anchor)); points.add(clamp(c.head)) }
      const sorted = [...points].sort((a, b) => a - b)
      const nodes = []
      const bars = (at) => carets.filter((c) => clamp(c.head) === at).map((c) =>
        h('span.rcaret', { dataset: { user: c.id }, style: `--c:${c.color}` }, h('span.rcaret-name', {}, c.name)))
      for (let i = 0; i < sorted.length - 1; i++) {
        const [p, q] = [sorted[i], sorted[i + 1]]
        nodes.push(...bars(p))
        const over = carets.find((c) => Math.min(clamp(c.anchor), clamp(c.head)) <= p && Math.max(clamp(c.anchor), clamp(c.head)) >= q && c.anchor !== c.head)
        const seg = text.slice(p, q)
        nodes.push(over ? h('mark.rsel', { dataset: { user: over.id }, style: `--c:${over.color}` }, seg) : document.createTextNode(seg))
      }
      nodes.push(...bars(text.length), document.createTextNode('\u200b'))
      layer.replaceChildren(...nodes)
      layer.scrollTop = textarea.scrollTop
      keepTagsInside(layer)
    },
    destroy () { textarea.removeEventListener('scroll', onScroll) }
  }
}

/**
 * A caret's name tag sits above its line; on the first line that is outside the text
 * box (the layer clips it), so it goes below instead, and a tag that would run past
 * the right edge is aligned to the caret's left.
 */
function keepTagsInside (layer) {
  const box = layer.getBoundingClientRect()
  for (const tag of layer.querySelectorAll('.rcaret-name')) {
    const caret = tag.parentElement
    caret.classList.remove('below', 'flip')
    if (tag.getBoundingClientRect().top < box.top) caret.classList.add('below')
    if (tag.getBoundingClientRect().right > box.right) caret.classList.add('flip')
  }
}
