// Tiny DOM helpers: build elements, and update keyed lists in place so that focus,
// selection and screen-reader position survive a re-render.

/** h('button.chip', {onclick, 'aria-pressed': 'true'}, 'text', child...) */
export function h (tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.')
  const el = document.createElement(name)
  if (classes.length) el.className = classes.join(' ')
  setAttrs(el, attrs)
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c))
  return el
}

export function setAttrs (el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el[k] = v
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (k === 'style') el.style.cssText = v // CSSOM, allowed by a strict style-src (an attribute is not)
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = v
    else if (v === null || v === undefined || v === false) el.removeAttribute(k)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
}

/** Set text only when it changed (avoids needless live-region announcements). */
export function setText (el, text) {
  if (el.textContent !== text) el.textContent = text
}

/**
 * Make `container`'s children match `items`: one element per key, created with
 * `create(item)` once and refreshed with `update(el, item)` on every call.
 */
export function syncList (container, items, key, create, update) {
  const existing = new Map()
  for (const el of container.children) existing.set(el.dataset.key, el)
  let prev = null
  for (const item of items) {
    const k = String(key(item))
    let el = existing.get(k)
    if (el) existing.delete(k)
    else { el = create(item); el.dataset.key = k }
    update(el, item)
    const next = prev ? prev.nextSibling : container.firstChild
    if (next !== el) container.insertBefore(el, next)
    prev = el
  }
  for (const el of existing.values()) el.remove()
}
