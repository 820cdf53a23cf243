// The six stage panels and the ballots. Each panel is built once when its stage is
// shown (text areas bound to their Y.Text then) and refreshed on every render from
// the derived state, updating keyed lists in place.

import { actions as act, STAGES, STAGE_TITLES, bindTextarea, resolveCaret, colorFor } from '@vmv-sync/client'
import { h, setText, syncList } from './dom.js'
import { caretOverlay } from './carets.js'
import { holdLimit } from './limits.js'

const people = (n) => `${n} ${n === 1 ? 'person' : 'people'} selected`
const pct = (p) => `${p.toFixed(1)}%`
const num = (x) => (Number.isInteger(x) ? String(x) : String(x))

const STAGE_HELP = {
  'values-select': 'Pick the values that matter most to your team, from the list or your own.',
  'values-collective': "The group's ranking: how many people picked each value.",
  'values-matrix': 'Rate each value: how important it is, and how well the team practises it today (1 to 5).',
  'mission-draft': 'Write your own draft of the mission statement. Others can read it.',
  'mission-final': 'Write the final mission together: everyone edits this one text.',
  vision: 'Write the vision together: where the team wants to be.'
}

/** Build the panel of `stage` into `root`; returns {update(ctx), destroy()}. */
export function buildPanel (root, stage, ctx) {
  root.replaceChildren()
  const n = STAGES.indexOf(stage) + 1
  root.append(
    h('h2', { id: 'stage-h' }, `${n}. ${STAGE_TITLES[stage]}`),
    h('p.help', {}, STAGE_HELP[stage])
  )
  root.setAttribute('aria-labelledby', 'stage-h')
  root.dataset.stage = stage
  const builder = { 'values-select': valuesSelect, 'values-collective': valuesCollective, 'values-matrix': valuesMatrix, 'mission-draft': missionDraft, 'mission-final': sharedText('mission'), vision: sharedText('vision') }[stage]
  return builder(root, ctx)
}

function valuesSelect (root, ctx) {
  const mine = h('p.mine', { id: 'my-picks' })
  const list = h('ul.chips', { id: 'value-chips', 'aria-label': 'Values' })
  const input = h('input', { id: 'new-value', maxlength: 80, autocomplete: 'off', placeholder: 'e.g. Generosity' })
  const form = h('form.add-value', {},
    h('label', { for: 'new-value' }, 'Add your own value '), input, h('button', { type: 'submit' }, 'Add and select'))
  form.onsubmit = (e) => {
    e.preventDefault()
    const value = input.value.trim()
    if (!value || ctx.readOnly()) return
    if (!ctx.client.isSelected(value)) {
      if (ctx.client.myValues.length >= ctx.maxValues()) return ctx.flash(`You can pick at most ${ctx.maxValues()} values.`)
      ctx.client.toggleValue(value)
    }
    input.value = ''
  }
  const held = h('p.held', { id: 'held-picks', hidden: true })
  root.append(mine, list, held, form)
  return {
    update (c) {
      const count = c.client.myValues.length
      const max = c.maxValues()
      setText(mine, `You picked ${count} of at most ${max} values.`)
      const waiting = c.client.heldValues
      held.hidden = !waiting.length
      setText(held, waiting.length ? `Kept on this device until the workshop reaches it: ${waiting.join(', ')}` : '')
      syncList(list, c.derived.values, (v) => v.key, (v) => {
        const button = h('button.chip', { type: 'button' }, h('span.name'), h('span.stat'))
        button.onclick = () => {
          if (c.readOnly()) return
          const name = button.dataset.name
          if (!c.client.isSelected(name) && c.client.myValues.length >= c.maxValues()) {
            return c.flash(`You can pick at most ${c.maxValues()} values.`)
          }
          c.client.toggleValue(name)
        }
        return h('li', {}, button)
      }, (li, v) => {
        const button = li.firstChild
        const selected = c.client.isSelected(v.name)
        button.dataset.name = v.name
        button.setAttribute('aria-pressed', String(selected))
        button.disabled = c.readOnly()
        setText(button.querySelector('.name'), v.name)
        setText(button.querySelector('.stat'), `${people(v.count)} · ${pct(v.percent)}`)
        button.style.setProperty('--p', `${v.percent}%`)
      })
    },
    destroy () {}
  }
}

function valuesCollective (root) {
  const list = h('ol.ranking', { id: 'ranking' })
  const empty = h('p.empty', {}, 'Nobody has picked a value yet.')
  root.append(list, empty)
  return {
    update (c) {
      const picked = c.derived.values.filter((v) => v.count > 0)
      empty.hidden = picked.length > 0
      syncList(list, picked, (v) => v.key, () => h('li', {}, h('span.name'), h('span.bar', {}, h('span.fill')), h('span.stat')), (li, v) => {
        setText(li.querySelector('.name'), v.name)
        li.querySelector('.fill').style.width = `${v.percent}%`
        setText(li.querySelector('.stat'), `${people(v.count)} · ${pct(v.percent)}`)
      })
    },
    destroy () {}
  }
}

function valuesMatrix (root) {
  const rateBody = h('tbody', { id: 'rate-rows' })
  const sumBody = h('tbody', { id: 'matrix-summary' })
  root.append(
    h('table.rate', {}, h('caption', {}, 'Your ratings'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Importance'), h('th', { scope: 'col' }, 'Practice'))), rateBody),
    h('table.summary', {}, h('caption', {}, 'Group summary (largest gap first)'),
      h('thead', {}, h('tr', {}, ...['Value', 'Importance', 'Practice', 'Gap', 'Ratings'].map((t) => h('th', { scope: 'col' }, t)))), sumBody)
  )
  const scoreSelect = (label) => h('select', { 'aria-label': label }, h('option', { value: '' }, '–'), [1, 2, 3, 4, 5].map((s) => h('option', { value: String(s) }, String(s))))
  return {
    update (c) {
      const picked = c.derived.values.filter((v) => v.count > 0)
      const rows = picked.length ? picked : c.derived.values
      syncList(rateBody, rows, (v) => v.key, (v) => {
        const tr = h('tr', {}, h('th', { scope: 'row' }), h('td', {}, scoreSelect('Importance')), h('td', {}, scoreSelect('Practice')))
        const [imp, prac] = tr.querySelectorAll('select')
        const onChange = () => {
          if (c.readOnly() || !imp.value || !prac.value) return
          c.client.rateValue(tr.dataset.name, Number(imp.value), Number(prac.value))
        }
        imp.onchange = onChange
        prac.onchange = onChange
        return tr
      }, (tr, v) => {
        tr.dataset.name = v.name
        setText(tr.firstChild, v.name)
        const [imp, prac] = tr.querySelectorAll('select')
        imp.setAttribute('aria-label', `Importance of ${v.name}`)
        prac.setAttribute('aria-label', `Practice of ${v.name}`)
        imp.disabled = prac.disabled = c.readOnly()
        const rating = act.ratingOf(c.doc, c.me.id, v.name)
        if (rating && document.activeElement !== imp) imp.value = String(rating.importance)
        if (rating && document.activeElement !== prac) prac.value = String(rating.practice)
      })
      syncList(sumBody, c.derived.matrix, (r) => r.key, () => h('tr', {}, h('th', { scope: 'row' }), h('td'), h('td'), h('td'), h('td')), (tr, r) => {
        const cells = tr.children
        setText(cells[0], r.name)
        setText(cells[1], num(r.importance))
        setText(cells[2], num(r.practice))
        setText(cells[3], num(r.gap))
        setText(cells[4], String(r.ratings))
      })
    },
    destroy () {}
  }
}

/** Undo and redo buttons for a bound text (the binding's UndoManager: own edits only). */
function historyButtons (field) {
  const undo = h('button.secondary', { type: 'button', id: `${field}-undo`, title: 'Undo your last edit (Ctrl+Z)' }, 'Undo')
  const redo = h('button.secondary', { type: 'button', id: `${field}-redo`, title: 'Redo (Ctrl+Shift+Z)' }, 'Redo')
  return { el: h('p.text-tools', {}, undo, redo), undo, redo }
}

/**
 * A textarea bound to a Y.Text with others' carets drawn on it, our caret sent in
 * awareness, and undo/redo of our own edits. `getText()` may return null while
 * the text (a participant's draft) has not arrived: typing is then kept as an
 * intent by the client, and the binding starts when the text is there.
 */
function boundEditor (root, ctx, { id, label, field, rows, getText, setHeld, what }) {
  const base = id.replace(/-editor$/, '')
  const area = h('textarea.editor', { id, rows, 'aria-label': label, 'aria-describedby': `${base}-limit` })
  const tools = historyButtons(base)
  const note = h('p.limit-note', { id: `${base}-limit`, 'aria-live': 'polite', hidden: true })
  root.append(area, note, tools.el)
  const checkLimit = holdLimit(area, note, what) // maxlength + the sentence once the box is full
  const overlay = caretOverlay(area)
  let unbind = null
  let ytext = null
  const bind = () => {
    ytext = getText()
    if (!ytext || unbind) return
    unbind = bindTextarea(area, ytext, {
      onCaret: (a, hd) => ctx.client.presence.moveCaret(field, ytext, a, hd),
      onBlur: () => ctx.client.presence.hideCaret()
    })
    tools.undo.onclick = () => { unbind.undo(); area.focus() }
    tools.redo.onclick = () => { unbind.redo(); area.focus() }
  }
  const onHeldInput = () => { if (!unbind && setHeld) setHeld(area.value) }
  area.addEventListener('input', onHeldInput)
  bind()
  if (!unbind && setHeld) {
    const held = ctx.client.intents.held('setDraft').filter((a) => a[0] === ctx.me.id).pop()
    if (held) area.value = held[1]
  }
  return {
    area,
    update (c) {
      if (!unbind) bind()
      checkLimit() // remote edits fill the box too
      area.readOnly = c.readOnly()
      tools.undo.disabled = !unbind || !unbind.undoManager.canUndo()
      tools.redo.disabled = !unbind || !unbind.undoManager.canRedo()
      const carets = []
      if (ytext) {
        for (const [, s] of c.client.presence.others()) {
          if (!s.caret || s.caret.field !== field || s.user.id === c.me.id) continue
          const pos = resolveCaret(c.doc, ytext, s.caret)
          if (pos) carets.push({ id: s.user.id, name: String(s.user.name || s.user.id), color: s.user.color || colorFor(s.user.id), ...pos })
        }
      }
      overlay.render(area.value, carets)
    },
    destroy () {
      area.removeEventListener('input', onHeldInput)
      overlay.destroy()
      if (unbind) unbind()
      ctx.client.presence.hideCaret()
    }
  }
}

function missionDraft (root, ctx) {
  const editor = boundEditor(root, ctx, {
    id: 'draft-editor', label: 'Your mission draft', field: `draft:${ctx.me.id}`, rows: 6, what: 'draft',
    getText: () => act.draftOf(ctx.doc, ctx.me.id),
    setHeld: (text) => ctx.client.setDraft(text)
  })
  const others = h('div.others', { id: 'other-drafts' })
  root.append(h('h3', {}, "Others' drafts"), others)
  return {
    update (c) {
      editor.update(c)
      const drafts = [...act.roots(c.doc).drafts.entries()]
        .filter(([pid, t]) => pid !== c.me.id && typeof t?.toString === 'function' && t.toString().trim())
        .sort(([a], [b]) => (a < b ? -1 : 1))
      syncList(others, drafts, ([pid]) => pid, () => h('figure.draft', {}, h('figcaption'), h('blockquote')), (fig, [pid, t]) => {
        setText(fig.firstChild, c.nameOf(pid))
        setText(fig.lastChild, t.toString())
      })
    },
    destroy: () => editor.destroy()
  }
}

function sharedText (rootName) {
  return (root, ctx) => {
    const label = rootName === 'mission' ? 'The shared mission statement' : 'The shared vision statement'
    const editor = boundEditor(root, ctx, {
      id: `${rootName}-editor`, label, field: rootName, rows: 8, what: rootName, getText: () => act.roots(ctx.doc)[rootName]
    })
    editor.area.classList.add('shared')
    let drafts = null
    if (rootName === 'mission') {
      drafts = h('div.others', { id: 'all-drafts' })
      root.append(h('h3', {}, 'Drafts to draw from'), drafts)
    }
    return {
      update (c) {
        editor.update(c)
        if (drafts) {
          const all = [...act.roots(c.doc).drafts.entries()].filter(([, t]) => typeof t?.toString === 'function' && t.toString().trim()).sort(([a], [b]) => (a < b ? -1 : 1))
          syncList(drafts, all, ([pid]) => pid, () => h('figure.draft', {}, h('figcaption'), h('blockquote')), (fig, [pid, t]) => {
            setText(fig.firstChild, c.nameOf(pid))
            setText(fig.lastChild, t.toString())
          })
        }
      },
      destroy: () => editor.destroy()
    }
  }
}

/** Ballots of the shown stage, with live tallies; the facilitator opens and closes them. */
export function renderBallots (container, stage, c) {
  const ballots = Object.entries(c.derived.ballots).filter(([, b]) => b.stage === stage).sort(([a], [b]) => (a < b ? -1 : 1))
  syncList(container, ballots, ([bid]) => bid, ([bid]) => {
    const fs = h('fieldset.ballot', { dataset: { ballot: bid } }, h('legend'), h('ul.options'), h('p.turnout'), h('p.winners'))
    if (c.isFacilitator()) {
      const close = h('button.close-ballot', { type: 'button' }, 'Close ballot')
      close.onclick = () => act.closeBallot(c.doc, bid)
      fs.append(close)
    }
    return fs
  }, (fs, [bid, t]) => {
    setText(fs.querySelector('legend'), `${t.question}${t.open ? '' : ' (closed)'}`)
    const mine = act.voteOf(c.doc, bid, c.me.id)
    const picks = t.kind === 'single' ? (typeof mine === 'string' ? [mine] : []) : (Array.isArray(mine) ? mine : [])
    syncList(fs.querySelector('.options'), t.counts, (o) => o.option, (o) => {
      const input = h('input', { type: t.kind === 'single' ? 'radio' : 'checkbox', name: `ballot-${bid}`, value: o.option })
      input.onchange = () => {
        if (t.kind === 'single') return c.client.castVote(bid, o.option)
        const chosen = [...fs.querySelectorAll('input:checked')].map((i) => i.value)
        if (chosen.length > t.max_choices) { input.checked = false; return c.flash(`At most ${t.max_choices} choices.`) }
        c.client.castVote(bid, chosen)
      }
      return h('li', {}, h('label', {}, input, h('span.option'), h('span.bar', {}, h('span.fill')), h('span.votes')))
    }, (li, o) => {
      const input = li.querySelector('input')
      input.checked = picks.includes(o.option)
      input.disabled = !t.open || c.readOnly()
      setText(li.querySelector('.option'), o.option)
      setText(li.querySelector('.votes'), `${o.count} ${o.count === 1 ? 'vote' : 'votes'}`)
      li.querySelector('.fill').style.width = t.voters ? `${(100 * o.count) / t.voters}%` : '0'
    })
    setText(fs.querySelector('.turnout'), `${t.voters} of ${t.eligible} voted (turnout ${pct(100 * t.turnout)})`)
    setText(fs.querySelector('.winners'), t.winners.length ? `Leading: ${t.winners.join(', ')}` : 'No votes yet')
    const close = fs.querySelector('.close-ballot')
    if (close) close.hidden = !t.open
  })
  return ballots.length
}
