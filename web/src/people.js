// Removing people, and what the removed person sees (issue 21).
//
// The facilitator's People panel has a Remove button beside each participant
// (POST /api/workshops/{id}/participants/{pid}/revoke, after a confirmation). The
// server closes that participant's connections (4401 "removed") and rotates the
// invite code, so every open facilitator page must show the new code at once: the
// page that removed (or rotated) raises an `invite` field in its awareness state
// (an addition to the contract's schema, like `caret`), and every facilitator page
// reloads the code when it sees a newer one; a slow poll catches changes made with
// the CLI or curl. The removed person's page disables every input and offers to
// join again. Their earlier picks, ratings, votes and messages stay in the document
// and keep counting (docs/web.md, "Removing people").

import { h } from './dom.js'
import { apiRemove, forgetToken } from './identity.js'

/** How often a facilitator page re-reads the invite code (changes made outside the page). */
export const INVITE_POLL_MS = 10_000

/** The cell of a participant row that holds its Remove button (created empty). */
export const removeCell = () => h('span.pactions')

/**
 * Show or hide the Remove button of row `li` for participant `p` ({id, name, role}).
 * Only a facilitator with a token sees it, never for oneself or another facilitator.
 */
export function updateRemove (view, li, p) {
  const cell = li.querySelector('.pactions')
  const can = view.config.auth && view.ctx.isFacilitator() && !view.removed && p.id !== view.me.id &&
    p.role !== 'facilitator' && !view.removedIds.has(p.id)
  if (!can) { cell.replaceChildren(); return }
  if (cell.firstChild) { cell.firstChild.dataset.name = p.name; return }
  const button = h('button.remove.secondary', { type: 'button', 'aria-label': `Remove ${p.name}` }, 'Remove')
  button.dataset.name = p.name
  button.onclick = async () => {
    const name = button.dataset.name
    if (!window.confirm(`Remove ${name} from this workshop? Their page stops saving at once and the invite code changes; what they picked, rated and voted so far still counts.`)) return
    button.disabled = true
    try {
      const r = await apiRemove(view.wid, p.id, view.me.token)
      view.removedIds.add(p.id)
      if (r.invite_code) view.setInvite(r.invite_code, r.join_link, `${name} was removed; the invite code changed, so the old link no longer lets anyone join.`)
      view.log(`${name} was removed`)
      announceInvite(view)
    } catch (err) {
      button.disabled = false
      view.log(`Could not remove ${name}: ${err.message || err}`)
    }
    view.schedule()
  }
  cell.append(button)
}

/** Tell the other facilitator pages (awareness) that the invite code changed. */
export function announceInvite (view) {
  view.lastInviteSignal = Date.now()
  view.client.awareness.setLocalStateField('invite', view.lastInviteSignal)
}

/** Reload the invite code when another page says it changed, and every INVITE_POLL_MS. */
export function watchInvite (view) {
  view.lastInviteSignal = 0
  view.client.awareness.on('change', () => {
    if (!view.ctx.isFacilitator()) return
    let newest = 0
    for (const state of view.client.awareness.getStates().values()) {
      if (Number.isFinite(state?.invite)) newest = Math.max(newest, state.invite)
    }
    if (newest > view.lastInviteSignal) { view.lastInviteSignal = newest; view.loadInvite() }
  })
  setInterval(() => {
    if (view.ctx.isFacilitator() && !document.hidden && view.client.connected) view.loadInvite()
  }, INVITE_POLL_MS)
  document.addEventListener('visibilitychange', () => { if (!document.hidden && view.ctx.isFacilitator()) view.loadInvite() })
}

/** The removed person's page: every input disabled, and a way to join again. */
export function lockRemoved (view) {
  for (const el of document.querySelectorAll('.layout input, .layout textarea, .layout select, .layout button')) {
    if (el.id !== 'rejoin-button' && !el.disabled) el.disabled = true
  }
  if (document.getElementById('rejoin')) return
  const button = h('button', { type: 'button', id: 'rejoin-button' }, 'Join again')
  button.onclick = () => {
    forgetToken(view.wid)
    sessionStorage.setItem(`vmv.joinproblem.${view.wid}`, 'You were removed from this workshop: join again with a new invite code from your facilitator.')
    location.reload()
  }
  const box = h('div.rejoin', { id: 'rejoin', role: 'alert' },
    h('p', {}, 'You were removed from this workshop, so nothing you do here can be saved. What you picked, rated and voted before still counts.'),
    button)
  document.getElementById('main').prepend(box)
  document.getElementById('chat-input').value = ''
}
