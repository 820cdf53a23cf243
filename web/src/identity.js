// Who this browser is in a workshop.
//
// With authentication (the default) the identity is the token the server issued on
// create/join. The page keeps it in sessionStorage (this tab) and localStorage
// (`vmv.token.{id}`, the next visit), never in an address it shows: a token that
// arrives in ?token= (a link printed by the CLI or the API) is stored and removed
// from the address bar at once, so copying the page's URL never hands over rights.
// It is sent to the WebSocket as the `token` query parameter and decoded here (not
// verified: the server does that) for the awareness `user` {id: sub, name, role}.
// With --no-auth there is no token: a random participant id kept in localStorage
// and a name the user typed.

import { decodeToken } from '@vmv-sync/client'

export { decodeToken }

const store = {
  get: (k) => { try { return sessionStorage.getItem(k) || localStorage.getItem(k) } catch { return null } },
  set: (k, v) => { try { sessionStorage.setItem(k, v); localStorage.setItem(k, v) } catch { /* private mode */ } },
  del: (k) => { try { sessionStorage.removeItem(k); localStorage.removeItem(k) } catch { /* private mode */ } }
}

export function randomId (prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Whether the server requires tokens (GET /web/config). */
export async function serverConfig () {
  try {
    const res = await fetch('/web/config', { cache: 'no-store' })
    if (res.ok) return await res.json()
  } catch { /* offline: assume what we saw last time */ }
  return { auth: store.get('vmv.auth') !== 'off' }
}

export function rememberConfig (config) { store.set('vmv.auth', config.auth ? 'on' : 'off') }

export const tokenKey = (wid) => `vmv.token.${wid}`

export function saveToken (wid, token) { store.set(tokenKey(wid), token) }
export function forgetToken (wid) { store.del(tokenKey(wid)) }
export function savedToken (wid) { return store.get(tokenKey(wid)) }

export function savedName () { return store.get('vmv.name') || '' }
export function saveName (name) { store.set('vmv.name', name) }

export function localParticipantId () {
  let pid = store.get('vmv.pid')
  if (!pid) { pid = randomId('p-'); store.set('vmv.pid', pid) }
  return pid
}

export function saveRole (wid, role) { store.set(`vmv.role.${wid}`, role) }
export function savedRole (wid) { return store.get(`vmv.role.${wid}`) }
export function saveInvite (wid, code) { store.set(`vmv.invite.${wid}`, code) }
export function savedInvite (wid) { return store.get(`vmv.invite.${wid}`) }

/** The one sentence a bad link gets on the join form (issue 21). */
export const LINK_PROBLEMS = {
  garbage: 'This link is not a valid workshop link: join with the invite code from your facilitator.',
  expired: 'This link has expired: join again with the invite code from your facilitator.',
  other: 'This link is for another workshop: join this one with its invite code.',
  foreign: 'This link was not issued for this workshop by this server: join with the invite code from your facilitator.',
  removed: 'You were removed from this workshop: join again with a new invite code from your facilitator.'
}

/** Why `token` cannot open workshop `wid` as far as the page can tell (no signature check), or null. */
export function tokenProblem (wid, token) {
  let claims
  try { claims = decodeToken(token) } catch { return 'garbage' }
  if (!claims || typeof claims.sub !== 'string' || !claims.sub) return 'garbage'
  if (claims.wid && claims.wid !== wid) return 'other'
  if (Number.isFinite(claims.exp) && claims.exp < Date.now() / 1000) return 'expired'
  return null
}

/**
 * Ask the server whether a token that just arrived in a link opens `wid`
 * (GET /workshops/{id}/state): 'foreign' (401 or 403, a signature from elsewhere),
 * 'removed', or null when it does or when the server cannot be reached (offline
 * first: the WebSocket will tell).
 */
export async function checkLinkToken (wid, token) {
  let res
  try {
    res = await fetch(`/workshops/${encodeURIComponent(wid)}/state`, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' })
  } catch { return null }
  if (res.status !== 401 && res.status !== 403) return null
  let reason = ''
  try { reason = (await res.json()).error || '' } catch { /* not JSON */ }
  return /removed/i.test(reason) ? 'removed' : 'foreign'
}

/**
 * The identity for workshop `wid`: `{me, problem}`, `me` = {id, name, role, token |
 * null} or null when the user still has to join; `problem` is the sentence for a
 * bad link. A token in the URL wins and is remembered once the server accepts it.
 */
export async function resolveIdentity (wid, config) {
  const params = new URLSearchParams(location.search)
  const urlToken = params.get('token')
  if (urlToken) {
    // take it out of the address bar (and so out of any copied link) at once
    params.delete('token')
    const rest = params.toString()
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash)
    const problem = tokenProblem(wid, urlToken) || await checkLinkToken(wid, urlToken)
    if (problem) return { me: null, problem: LINK_PROBLEMS[problem] }
  }
  const stored = urlToken ? null : store.get(tokenKey(wid))
  const storedProblem = stored ? tokenProblem(wid, stored) : null
  const me = resolveStored(wid, config, urlToken, params)
  if (storedProblem) return { me, problem: LINK_PROBLEMS[storedProblem] }
  if (!me && !urlToken) {
    const key = `vmv.joinproblem.${wid}`
    const problem = sessionStorage.getItem(key)
    if (problem) { sessionStorage.removeItem(key); return { me: null, problem } }
  }
  return { me, problem: '' }
}

function resolveStored (wid, config, urlToken, params) {
  const token = urlToken || store.get(tokenKey(wid))
  if (token) {
    if (!tokenProblem(wid, token)) {
      const claims = decodeToken(token)
      saveToken(wid, token)
      return { id: claims.sub, name: claims.name, role: claims.role, token }
    }
    forgetToken(wid)
  }
  if (config.auth) return null
  const name = params.get('name') || savedName()
  if (!name) return null
  saveName(name)
  return { id: localParticipantId(), name, role: savedRole(wid) || 'participant', token: null }
}

async function postJson (url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  let data = null
  try { data = await res.json() } catch { /* not JSON */ }
  if (!res.ok) throw new Error((data && (data.error || data.detail)) || `${res.status} ${res.statusText}`)
  return data
}

/** POST /api/workshops -> {workshop_id, participant_id, name, role, token, invite_code}. */
export const apiCreate = (title, name, values) => postJson('/api/workshops', { title, name, values })
/** POST /api/workshops/{id}/join -> {workshop_id, participant_id, name, role, token}. */
export const apiJoin = (wid, inviteCode, name) => postJson(`/api/workshops/${encodeURIComponent(wid)}/join`, { invite_code: inviteCode, name })

async function authedJson (method, url, token) {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined, cache: 'no-store' })
  let data = null
  try { data = await res.json() } catch { /* not JSON */ }
  if (!res.ok) throw new Error((data && (data.error || data.detail)) || `${res.status} ${res.statusText}`)
  return data
}

/** POST /api/workshops/{id}/participants/{pid}/revoke (facilitator) -> {closed, invite_code, join_link}. */
export const apiRemove = (wid, pid, token) =>
  authedJson('POST', `/api/workshops/${encodeURIComponent(wid)}/participants/${encodeURIComponent(pid)}/revoke`, token)
/** GET /api/workshops/{id}/invite (facilitator) -> {invite_code, join_link?}. */
export const apiInvite = (wid, token) => authedJson('GET', `/api/workshops/${encodeURIComponent(wid)}/invite`, token)
/** POST /api/workshops/{id}/invite/rotate (facilitator) -> {invite_code, join_link}. */
export const apiRotateInvite = (wid, token) => authedJson('POST', `/api/workshops/${encodeURIComponent(wid)}/invite/rotate`, token)

/** The join link of an invite: workshop and code, never a token. */
export function joinLink (wid, code, joinPath = null) {
  return location.origin + (joinPath || `/?join=${encodeURIComponent(wid)}&code=${encodeURIComponent(code)}`)
}
