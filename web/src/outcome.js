// The outcome view: the workshop's result as a picture, drawn from this replica.
//
// The same charts as the printable report (vmv_sync/server/report.py, same layout
// constants): the group's values as ranked bars, the importance x practice matrix as a
// labelled scatter with its four quadrants, each ballot as bars, the mission, the
// vision and who took part. Drawn from the local derived state, so it works offline;
// *Print* prints only this view (style.css, @media print), which also saves a PDF.

import { Y, deriveState, readWorkshop } from '@vmv-sync/client'
import { h } from './dom.js'

const SVG = 'http://www.w3.org/2000/svg'
const MIDDLE = 3
export const QUADRANTS = [
  [true, false, 'Matters, not yet lived'],
  [true, true, 'Lived strengths'],
  [false, false, 'Less central'],
  [false, true, 'Lived, less central']
]

function s (tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  if (text !== null) el.textContent = text
  return el
}

const short = (text, limit = 26) => text.length <= limit ? text : text.slice(0, limit - 1) + '…'

/**
 * Horizontal bars, one SVG: rows of {name, fraction, caption, win}. `width` is the
 * drawing's width in px (the report's is 640; a phone gets its own, so that the
 * labels keep a readable size instead of being scaled down with the whole picture).
 */
export function bars (rows, label, width = 640) {
  const [left, right, step] = [Math.round(width * 0.3), Math.max(Math.round(width * 0.23), 110), 30]
  const span = width - left - right
  const svg = s('svg', { viewBox: `0 0 ${width} ${step * rows.length + 10}`, role: 'img', 'aria-label': label, 'data-chart': 'bars' })
  rows.forEach((r, i) => {
    const y = 5 + i * step
    const g = s('g', { 'data-name': r.name })
    g.append(s('title', {}, `${r.name}: ${r.caption}`),
      s('text', { x: left - 8, y: y + 18, 'text-anchor': 'end' }, short(r.name, Math.floor((left - 10) / 7.5))),
      s('rect', { class: 'track', x: left, y: y + 5, width: span, height: 16, rx: 4 }),
      s('rect', { class: r.win ? 'win' : 'bar', x: left, y: y + 5, width: (Math.max(0, Math.min(1, r.fraction)) * span).toFixed(1), height: 16, rx: 4 }),
      s('text', { class: 'muted', x: left + span + 8, y: y + 18 }, r.caption))
    svg.append(g)
  })
  return svg
}

/** Importance (up) against practice (right), 1..5, with the four quadrants labelled. */
export function scatter (matrix) {
  const [size, pad] = [460, 46]
  const plot = size - 2 * pad
  const x = (v) => pad + (v - 1) / 4 * plot
  const y = (v) => size - pad - (v - 1) / 4 * plot
  const svg = s('svg', { viewBox: `0 0 ${size} ${size}`, role: 'img', 'aria-label': 'Values matrix: importance and practice', 'data-chart': 'matrix' })
  for (const [highImp, highPrac, name] of QUADRANTS) {
    const qx = highPrac ? x(MIDDLE) : pad
    const qy = highImp ? pad : y(MIDDLE)
    svg.append(s('rect', { class: `quad${highImp && !highPrac ? ' hot' : ''}`, x: qx, y: qy, width: plot / 2, height: plot / 2 }))
    svg.append(s('text', {
      class: 'muted', x: qx + (highPrac ? plot / 2 - 6 : 6), y: qy + (highImp ? 14 : plot / 2 - 6), 'text-anchor': highPrac ? 'end' : 'start', 'data-quadrant': name
    }, name))
  }
  svg.append(s('line', { class: 'axis', x1: pad, y1: size - pad, x2: size - pad, y2: size - pad }),
    s('line', { class: 'axis', x1: pad, y1: pad, x2: pad, y2: size - pad }))
  for (let t = 1; t <= 5; t++) {
    svg.append(s('text', { class: 'muted', x: x(t), y: size - pad + 16, 'text-anchor': 'middle' }, String(t)),
      s('text', { class: 'muted', x: pad - 10, y: y(t) + 4, 'text-anchor': 'end' }, String(t)))
  }
  svg.append(s('text', { x: size / 2, y: size - 8, 'text-anchor': 'middle' }, 'practice: how much we live it →'),
    s('text', { x: 14, y: size / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${size / 2})` }, 'importance →'))
  for (const m of matrix) {
    const [px, py] = [x(m.practice), y(m.importance)]
    const end = px > size - pad - 90
    const g = s('g', { 'data-name': m.name })
    g.append(s('title', {}, `${m.name}: importance ${m.importance.toFixed(2)}, practice ${m.practice.toFixed(2)} (${m.ratings} ratings)`),
      s('circle', { class: 'dot', cx: px, cy: py, r: 5 }),
      s('text', { x: px + (end ? -8 : 8), y: py - 6, 'text-anchor': end ? 'end' : 'start' }, short(m.name, 20)))
    svg.append(g)
  }
  return svg
}

const note = (text) => h('p.note', {}, text)

/** Fill `root` with the outcome of `doc` (called on every render while the view is open). */
export function renderOutcome (root, doc) {
  const width = matchMedia('(max-width: 30rem)').matches ? 340 : 640 // a phone draws narrower
  const state = deriveState(doc, Y)
  const data = readWorkshop(doc, Y)
  const selectors = [...data.selections.values()].filter((picks) => picks.size > 0).length
  const chosen = state.values.filter((v) => v.count > 0)
  const parts = []
  const title = doc.getMap('meta').get('title')
  parts.push(h('h2', { id: 'outcome-h' }, `Outcome: ${typeof title === 'string' ? title : 'workshop'}`))
  parts.push(h('h3', {}, 'Our values'))
  if (chosen.length) {
    parts.push(note(`How many of the ${selectors} ${selectors === 1 ? 'person' : 'people'} who chose values picked each one.`))
    const top = chosen[0].count
    parts.push(bars(chosen.map((v) => ({ name: v.name, fraction: v.count / selectors, caption: `${v.count} of ${selectors} · ${v.percent.toFixed(1)}%`, win: v.count === top })), "The group's values, most chosen first", width))
  } else parts.push(note('No values chosen yet.'))
  parts.push(h('h3', {}, 'How we live them'))
  if (state.matrix.length) {
    parts.push(note('Mean importance and practice (1 to 5) of each rated value; values in the shaded corner matter more than they are lived.'))
    parts.push(scatter(state.matrix))
  } else parts.push(note('No ratings yet.'))
  parts.push(h('h3', {}, 'Decisions'))
  const ballots = Object.entries(state.ballots)
  if (!ballots.length) parts.push(note('No ballots.'))
  for (const [id, b] of ballots) {
    const total = Math.max(1, ...b.counts.map((c) => c.count))
    parts.push(h('h4', { dataset: { ballot: id } }, b.question),
      bars(b.counts.map((c) => ({ name: c.option, fraction: c.count / total, caption: `${c.count} vote${c.count === 1 ? '' : 's'}`, win: b.winners.includes(c.option) })), b.question, width),
      note(`${b.open ? 'open' : 'closed'} · winner${b.winners.length > 1 ? 's' : ''}: ${b.winners.join(', ') || 'none yet'} · turnout ${b.voters} of ${b.eligible} (${Math.round(b.turnout * 100)}%)`))
  }
  for (const [label, text] of [['Our mission', doc.getText('mission').toString()], ['Our vision', doc.getText('vision').toString()]]) {
    parts.push(h('h3', {}, label), text.trim() ? h('blockquote.outcome-text', {}, text.trim()) : note('Not written yet.'))
  }
  const people = [...data.participants].sort(([a, p], [b, q]) => (p.joined_at - q.joined_at) || (a < b ? -1 : a > b ? 1 : 0))
  parts.push(h('h3', {}, 'Who took part'),
    h('ul.outcome-people', {}, people.map(([pid, p]) => h('li', {}, (p.name || pid) + (p.role === 'participant' ? '' : ` (${p.role})`)))))
  const tools = h('p.outcome-tools', {}, h('button', { type: 'button', id: 'outcome-print', onclick: () => window.print() }, 'Print or save as PDF'),
    h('button.secondary', { type: 'button', id: 'outcome-close', onclick: () => { document.body.dataset.outcome = 'closed'; root.hidden = true } }, 'Back to the workshop'))
  root.replaceChildren(tools, ...parts)
}

/** The Outcome button (after the stages) that opens the view. */
export function bindOutcome (view) {
  const root = document.getElementById('outcome')
  const button = document.getElementById('outcome-open')
  let stale = true // drawn again only when the document changed
  view.doc.on('update', () => { stale = true })
  button.addEventListener('click', () => {
    document.body.dataset.outcome = 'open'
    root.hidden = false
    renderOutcome(root, view.doc)
    stale = false
    root.focus({ preventScroll: false })
  })
  document.getElementById('stages').addEventListener('click', () => { document.body.dataset.outcome = 'closed'; root.hidden = true })
  return { update () { if (!root.hidden && stale) { renderOutcome(root, view.doc); stale = false } } }
}
