// Awareness (contract section 5): our own state, typing debounced to 300 ms and
// stale after 3 s, cursors throttled to 10 per second, and join/leave events.
// An addition to the contract's schema (docs/web.md): `caret`, the text caret
// and selection in a shared text, {field, anchor, head} where field is
// 'mission', 'vision' or 'draft:<participant id>' and anchor/head are Yjs
// relative positions (Y.encodeRelativePosition, base64), so they stay on the same
// characters while others type. Sent at most 10 times per second, like cursors.

import * as Y from 'yjs'

export const TYPING_INTERVAL_MS = 300
export const TYPING_STALE_MS = 3000
export const CURSOR_INTERVAL_MS = 100
export const CARET_INTERVAL_MS = 100

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#b8860b', '#ff7f0e', '#3b5bdb']

/** A stable colour per participant id. */
export function colorFor (id) {
  let h = 0
  for (const ch of id) h = (h * 31 + ch.codePointAt(0)) >>> 0
  return COLORS[h % COLORS.length]
}

/** Run `fn` at most once per `ms`, with a trailing call carrying the latest arguments. */
export function throttle (fn, ms) {
  let last = 0
  let timer = null
  let pending = null
  const fire = () => { timer = null; last = Date.now(); const args = pending; pending = null; fn(...args) }
  const wrapped = (...args) => {
    pending = args
    const wait = last + ms - Date.now()
    if (wait <= 0 && timer === null) fire()
    else if (timer === null) timer = setTimeout(fire, Math.max(wait, 0))
  }
  wrapped.cancel = () => { if (timer !== null) clearTimeout(timer); timer = null; pending = null }
  return wrapped
}

/**
 * Our awareness state and the people we see.
 * `user` is {id, name, role}; with authentication it must match the token.
 */
export class Presence {
  constructor (awareness, user, stage) {
    this.awareness = awareness
    this.user = { id: user.id, name: user.name, color: colorFor(user.id), role: user.role }
    this.awareness.setLocalState({
      user: this.user,
      stage,
      online_at: Date.now() / 1000,
      typing: false,
      typing_at: null,
      cursor: null,
      caret: null
    })
    this._typingClear = null
    this._sendTyping = throttle(() => {
      this.awareness.setLocalStateField('typing', true)
      this.awareness.setLocalStateField('typing_at', Date.now() / 1000)
    }, TYPING_INTERVAL_MS)
    this._sendCursor = throttle((cursor) => {
      this.cursorSends++
      this.awareness.setLocalStateField('cursor', cursor)
    }, CURSOR_INTERVAL_MS)
    this.cursorSends = 0
    this._sendCaret = throttle((caret) => {
      this.caretSends++
      this.awareness.setLocalStateField('caret', caret)
    }, CARET_INTERVAL_MS)
    this.caretSends = 0
    this._online = new Map() // participant id -> name, as last seen
    this._seenTyping = new Map() // client id -> [typing_at, local ms when it changed]
  }

  setStage (stage) { this.awareness.setLocalStateField('stage', stage) }

  /** Our current awareness state. */
  state () { return this.awareness.getLocalState() || {} }

  /** Call on every caret or selection change in a shared text: at most 10 sends per second. */
  moveCaret (field, ytext, anchor, head = anchor) {
    this._sendCaret(encodeCaret(field, ytext, anchor, head))
  }

  hideCaret () {
    this._sendCaret.cancel()
    if (this.state().caret) this.awareness.setLocalStateField('caret', null)
  }

  destroy () {
    this._sendTyping.cancel()
    this._sendCursor.cancel()
    this._sendCaret.cancel()
    clearTimeout(this._typingClear)
  }

  /** Call on every keystroke in the chat box: typing is sent at most every 300 ms. */
  typing () {
    this._sendTyping()
    clearTimeout(this._typingClear)
    this._typingClear = setTimeout(() => this.stopTyping(), TYPING_STALE_MS)
  }

  stopTyping () {
    this._sendTyping.cancel()
    clearTimeout(this._typingClear)
    const state = this.awareness.getLocalState()
    if (state && state.typing) {
      this.awareness.setLocalStateField('typing', false)
      this.awareness.setLocalStateField('typing_at', null)
    }
  }

  /** Call on every mouse move: at most 10 cursor updates per second go out. */
  moveCursor (cursor) {
    this._sendCursor(cursor)
  }

  hideCursor () {
    this._sendCursor.cancel()
    this.awareness.setLocalStateField('cursor', null)
  }

  /** The other clients' states with a user, as [clientId, state]. */
  others () {
    const out = []
    for (const [cid, state] of this.awareness.getStates()) {
      if (cid === this.awareness.clientID || !state || !state.user || typeof state.user.id !== 'string') continue
      out.push([cid, state])
    }
    return out
  }

  /** Participant ids online now (us included), id -> {name, stage}. */
  online () {
    const result = new Map([[this.user.id, { name: this.user.name, stage: this.awareness.getLocalState()?.stage }]])
    for (const [, s] of this.others()) result.set(s.user.id, { name: String(s.user.name || s.user.id), stage: s.stage })
    return result
  }

  /** Join/leave events since the last call: [{kind: 'joined'|'left', id, name}]. */
  diffOnline () {
    const now = this.online()
    now.delete(this.user.id)
    const events = []
    for (const [id, p] of now) if (!this._online.has(id)) events.push({ kind: 'joined', id, name: p.name })
    for (const [id, name] of this._online) if (!now.has(id)) events.push({ kind: 'left', id, name })
    this._online = new Map([...now].map(([id, p]) => [id, p.name]))
    return events
  }

  /**
   * Names of others typing now. A flag counts for 3 s after it was last renewed,
   * measured on our clock (when we saw typing_at change), so a client that vanished
   * without clearing it, or whose clock is off, stops showing.
   */
  typingNames () {
    const nowMs = Date.now()
    const names = new Set()
    const live = new Set()
    for (const [cid, s] of this.others()) {
      live.add(cid)
      if (!s.typing) { this._seenTyping.delete(cid); continue }
      const seen = this._seenTyping.get(cid)
      if (!seen || seen[0] !== s.typing_at) this._seenTyping.set(cid, [s.typing_at, nowMs])
      const since = this._seenTyping.get(cid)[1]
      if (nowMs - since < TYPING_STALE_MS) names.add(String(s.user.name || s.user.id))
    }
    for (const cid of this._seenTyping.keys()) if (!live.has(cid)) this._seenTyping.delete(cid)
    return [...names].sort()
  }
}

const toB64 = (bytes) => btoa(String.fromCharCode(...bytes))
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0))

/** The awareness `caret` for a selection [anchor, head] (UTF-16 indexes) in `ytext`. */
export function encodeCaret (field, ytext, anchor, head = anchor) {
  const rel = (i) => toB64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(ytext, i)))
  return { field, anchor: rel(anchor), head: rel(head) }
}

/** A peer's `caret` as indexes in `ytext` now: {anchor, head}, or null if it is not in it. */
export function resolveCaret (doc, ytext, caret) {
  if (!caret || typeof caret.anchor !== 'string' || typeof caret.head !== 'string') return null
  try {
    const abs = (s) => Y.createAbsolutePositionFromRelativePosition(Y.decodeRelativePosition(fromB64(s)), doc)
    const a = abs(caret.anchor)
    const h = abs(caret.head)
    if (!a || !h || a.type !== ytext || h.type !== ytext) return null
    return { anchor: a.index, head: h.index }
  } catch { return null }
}

const withUser = (awareness) => [...awareness.getStates()].filter(([, s]) => s && s.user && typeof s.user.id === 'string' && s.user.id)

/** Participant id -> latest state, one entry per participant however many clients. */
export function onlineOf (awareness) {
  const out = new Map()
  for (const [, s] of withUser(awareness)) {
    const prev = out.get(s.user.id)
    if (!prev || (Number(s.online_at) || 0) >= (Number(prev.online_at) || 0)) out.set(s.user.id, s)
  }
  return out
}

/** Names of other participants with a typing flag renewed in the last 3 s (their clock). */
export function typingOf (awareness, exclude = null, now = Date.now() / 1000) {
  const names = new Set()
  for (const [, s] of withUser(awareness)) {
    if (s.user.id === exclude || !s.typing) continue
    if (typeof s.typing_at === 'number' && now - s.typing_at < TYPING_STALE_MS / 1000) names.add(String(s.user.name || s.user.id))
  }
  return [...names].sort()
}

/** Awareness client id -> cursor {x, y, stage}, for every other client showing one. */
export function cursorsOf (awareness) {
  const out = new Map()
  for (const [cid, s] of withUser(awareness)) {
    if (cid === awareness.clientID) continue
    const c = s.cursor
    if (c && Number.isFinite(c.x) && Number.isFinite(c.y)) out.set(cid, { x: c.x, y: c.y, stage: typeof c.stage === 'string' ? c.stage : '' })
  }
  return out
}
