// The facilitator's invite panel: the join link (workshop and code, never a token),
// Copy link, New code; kept current as the code changes (people.js watches for that).

import { setText } from './dom.js'
import { apiInvite, apiRotateInvite, joinLink, saveInvite } from './identity.js'
import { announceInvite } from './people.js'

const $ = (id) => document.getElementById(id)

export async function loadInvite (view) {
  if (!view.config.auth || !view.me.token || view.inviteLoading) return
  view.inviteLoading = true
  try {
    const r = await apiInvite(view.wid, view.me.token)
    const changed = view.inviteState.code && view.inviteState.code !== r.invite_code
    setInvite(view, r.invite_code, r.join_link, changed ? 'The invite code changed: the old link no longer lets anyone join.' : view.inviteState.note)
  } catch (err) {
    if (!view.inviteState.code) view.inviteState.note = `The invite code could not be loaded: ${err.message || err}`
  } finally {
    view.inviteLoading = false
    view.schedule()
  }
}

export function bindInvite (view) {
  $('invite-copy').addEventListener('click', async () => {
    const input = $('invite-link')
    let ok = false
    try { await navigator.clipboard.writeText(input.value); ok = true } catch {
      input.select()
      try { ok = document.execCommand('copy') } catch { ok = false }
    }
    view.inviteState.note = ok ? 'Link copied.' : 'Select the link and copy it.'
    view.schedule()
  })
  $('invite-rotate').addEventListener('click', async () => {
    try {
      const r = await apiRotateInvite(view.wid, view.me.token)
      setInvite(view, r.invite_code, r.join_link, 'New code: the old link no longer lets anyone join.')
      announceInvite(view)
    } catch (err) {
      view.inviteState.note = `Could not make a new code: ${err.message || err}`
    }
    view.schedule()
  })
}

export function setInvite (view, code, joinPath, note) {
  view.inviteState.code = code
  view.inviteState.joinPath = joinPath || null
  view.inviteState.note = note
  saveInvite(view.wid, code)
}

export function renderInvite (view) {
  const box = $('invite')
  if (!view.ctx.isFacilitator()) { box.hidden = true; return }
  const { code, joinPath, note } = view.inviteState
  const link = view.config.auth
    ? (code ? joinLink(view.wid, code, joinPath) : '')
    : `${location.origin}/w/${encodeURIComponent(view.wid)}`
  box.hidden = false
  const input = $('invite-link')
  if (input.value !== link) input.value = link
  input.placeholder = link ? '' : 'loading the invite code…'
  $('invite-copy').disabled = !link
  $('invite-rotate').hidden = !view.config.auth
  $('invite-rotate').disabled = !view.client.connected
  setText($('invite-note'), note)
}
