// WorkshopClient: one workshop's Y.Doc synced by the stock y-websocket
// WebsocketProvider, plus what the Python client (vmv_sync.client) offers:
// the server's `saved` acknowledgement and a pending count, connection status
// events, typed actions that never create the server's containers (held as
// intents until they arrive), views, and the presence schema.
//
// The provider is used as shipped. Two documented extension points only: a
// WebSocket subclass (`WebSocketPolyfill`) that looks at what the provider sends,
// to count updates the way the server does, and handlers for message types 100
// and 101 in the provider's `messageHandlers` (docs/protocol.md: "saved", and the
// answer to an in-band token refresh, refreshToken()).

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { ObservableV2 } from 'lib0/observable'
import * as act from './actions.js'
import { deriveState, readWorkshop } from './derived.js'
import { orderedMessages, readMessages } from './chat.js'
import { countEdits, kindOf, uniqueKind } from './edits.js'
import { IntentQueue, defaultStorage } from './intents.js'
import { Presence, colorFor, cursorsOf, onlineOf, typingOf } from './presence.js'
import { normalizeValueName, sortedKeys, tidyValueName } from './names.js'
import { MAX_TEXT_CHARS, charCount } from './limits.js'

export const MESSAGE_SAVED = 100
/** Origin of the transactions that apply held intents. */
export const INTENT_ORIGIN = Symbol('vmv-intent')
export const CLIENT_ID_TAKEN_PREFIX = 'client id taken:'
/** Extension message 101: client -> server a fresh token, server -> client its exp. */
export const MESSAGE_TOKEN = 101
/** The close reason of a refused token refresh starts with this (4401 or 4403). */
export const TOKEN_REFRESH_PREFIX = 'token refresh:'

/**
 * Whether a close is the server refusing a token refresh (4401/4403, reason
 * `token refresh: ...`): the connection's own token was fine, so reconnect with it.
 */
export function isTokenRefreshRefusal (code, reason = '') {
  return (code === 4401 || code === 4403) && String(reason).startsWith(TOKEN_REFRESH_PREFIX)
}

/** The claims of a JWT, without verifying it (the server does). */
export function decodeToken (token) {
  const part = String(token).split('.')[1]
  if (!part) throw new Error('not a JWT')
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4)
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
  return JSON.parse(new TextDecoder().decode(bytes))
}

/** The local replica's name: one per workshop AND participant, never shared. */
export const replicaName = (workshopId, participantId) => `vmv-${workshopId}-${participantId}`

/**
 * What a close means: null (transient: reconnect) or a refusal kind.
 * 4401 is a bad/expired token, or a removed participant when the reason says so;
 * 4403 "client id taken: N ..." is recoverable with a fresh client id. A refused
 * token refresh (reason "token refresh: ...") is null: the token the connection
 * opened with still holds, and the client reconnects with it.
 */
export function classifyClose (code, reason = '') {
  if (isTokenRefreshRefusal(code, reason)) return null
  if (code === 4401) return /removed/i.test(reason) ? 'revoked' : 'unauthorized'
  if (code === 4403) return reason.startsWith(CLIENT_ID_TAKEN_PREFIX) ? 'client-id-taken' : 'forbidden'
  if (code === 4413) return 'too-large'
  return null
}

/**
 * Whether a refusal is about this replica's edits (an update the server would not
 * take), so that dropping the unsaved edits lets later ones save: 4413 for an update
 * over the message limit, too costly to place, or past a storage quota, and 4403 for
 * a write the rules forbid. Not about an edit: the token (4403 another workshop), the
 * awareness state (4403 'user', 4413 its size), a client id taken (its own recovery).
 */
export function refusesEdit (kind, reason = '') {
  if (kind !== 'too-large' && kind !== 'forbidden') return false
  return !/awareness|token/i.test(reason)
}

function isEmptyUpdate (u) { return u.length === 2 && u[0] === 0 && u[1] === 0 }

export class WorkshopClient extends ObservableV2 {
  /**
   * @param {object} opts see index.d.ts (WorkshopClientOptions)
   */
  constructor ({
    url, workshopId, token = null, participantId = null, name = null, role = null,
    doc = new Y.Doc(), persistence = null, storage = defaultStorage(), WebSocket: WS = globalThis.WebSocket,
    connect = true, isOnline = () => (typeof navigator === 'undefined' ? true : navigator.onLine !== false),
    stage = null, maxBackoffTime = 2500
  }) {
    super()
    if (!workshopId) throw new Error('workshopId is required')
    if (!WS) throw new Error('no WebSocket: pass one (e.g. the `ws` package in Node)')
    const claims = token ? decodeToken(token) : {}
    this.workshopId = workshopId
    this.token = token
    this.participantId = claims.sub || participantId
    if (!this.participantId) throw new Error('participantId is required without a token')
    this.name = claims.name || name || this.participantId
    this.role = claims.role || role || 'participant'
    this.doc = doc
    this.storage = storage
    this.isOnline = isOnline
    this.refusal = null
    this.status = 'connecting'
    this.everSynced = false
    this._key = `${workshopId}.${this.participantId}`
    this.intents = new IntentQueue(storage, `vmv.intents.${this._key}`)
    this._unsaved = 0
    this._kinds = [] // per unsaved local change: 'text:<root>' or a unique id (pendingEdits)
    this._lastKind = null
    this._nextWeight = 1
    this._flushWeight = 0
    this._flushScheduled = false
    this._data = null
    this._destroyed = false
    this._refreshes = [] // token refreshes in flight, in the order sent (the server answers in order)

    // Before the provider: its update handler must find our weight for the update it sends.
    this._onUpdate = (update, origin) => {
      this._data = null
      if (origin === this.provider || (this.persistence && origin === this.persistence)) {
        this._nextWeight = 1
        this._scheduleFlush()
        return
      }
      const weight = origin === INTENT_ORIGIN ? Math.max(this._flushWeight, 1) : 1
      this._nextWeight = weight
      for (let i = 0; i < weight; i++) this._kinds.push(weight === 1 && this._lastKind ? this._lastKind : uniqueKind())
      this._setUnsaved(this._unsaved + weight)
    }
    // which text a local change typed into (runs before 'update'), so that typing a
    // sentence counts as one edit in pendingEdits, not one per keystroke
    doc.on('afterTransaction', (tr) => { this._lastKind = tr.local ? kindOf(doc, tr) : null })
    doc.on('update', this._onUpdate)

    const client = this
    class CountingSocket extends WS {
      constructor (...args) { super(...args); this._vmvSent = []; this._vmvAcked = 0 }
      send (data) { client._onSend(this, data); return super.send(data) }
    }
    const params = { saved: '1' }
    if (token) params.token = token
    this.provider = new WebsocketProvider(`${String(url).replace(/\/+$/, '')}/workshops`, workshopId, doc, {
      connect: false,
      params,
      WebSocketPolyfill: CountingSocket,
      disableBc: true, // another tab may be another participant: never share updates outside the server
      maxBackoffTime,
      shouldReconnect: (event) => classifyClose(event.code, event.reason) === null
    })
    this.awareness = this.provider.awareness
    this.provider.messageHandlers[MESSAGE_SAVED] = (encoder, decoder) => this._onSaved(decoding.readVarUint(decoder))
    this.provider.messageHandlers[MESSAGE_TOKEN] = (encoder, decoder) => this._onTokenAccepted(decoding.readVarUint(decoder))
    this.presence = new Presence(this.awareness, { id: this.participantId, name: this.name, role: this.role }, stage)
    this.provider.on('status', (e) => {
      // a refresh asked for while the socket was opening goes out once it is open
      // (after the provider's own sync step 1, sent synchronously after this event)
      if (e.status === 'connected' && this._refreshes.some((r) => !r.sent)) queueMicrotask(() => this._sendQueuedRefreshes())
      this._updateStatus()
    })
    this.provider.on('sync', (synced) => {
      if (synced) { this.everSynced = true; this._scheduleFlush(); this.emit('synced', [this]) }
      this._updateStatus()
    })
    this.provider.on('connection-close', (event) => {
      this._endRefreshes(event)
      const kind = event ? classifyClose(event.code, event.reason) : null
      if (kind) {
        const m = kind === 'client-id-taken' ? /(\d+)/.exec(event.reason.slice(CLIENT_ID_TAKEN_PREFIX.length)) : null
        this.refusal = { kind, code: event.code, reason: event.reason, clientId: m ? Number(m[1]) : null, edit: refusesEdit(kind, event.reason) }
        this.emit('refused', [this.refusal])
      }
      this._updateStatus()
    })
    if (typeof addEventListener === 'function' && typeof window !== 'undefined') {
      this._offline = () => { this.provider.disconnect(); this._updateStatus() }
      this._online = () => { if (!this.refusal && this._wantConnect) this.provider.connect(); this._updateStatus() }
      addEventListener('offline', this._offline)
      addEventListener('online', this._online)
    }

    this._wantConnect = connect
    this._persistenceFactory = persistence
    this.persistence = persistence ? persistence(replicaName(workshopId, this.participantId), doc) : null
    if (this.persistence) {
      const n = Number(storage.getItem(`vmv.unsaved.${this._key}`))
      this._unsaved = Number.isInteger(n) && n > 0 ? n : 0
      let kinds = []
      try { kinds = JSON.parse(storage.getItem(`vmv.unsavedKinds.${this._key}`) || '[]') } catch { kinds = [] }
      this._kinds = Array.isArray(kinds) && kinds.length === this._unsaved ? kinds : Array.from({ length: this._unsaved }, uniqueKind)
    }
    this.whenLoaded = (this.persistence ? this.persistence.whenSynced : Promise.resolve()).then(() => {
      if (this._destroyed) return
      this._scheduleFlush()
      if (this._wantConnect && this.isOnline()) this.provider.connect()
      this._updateStatus()
    })
  }

  // -- connection ------------------------------------------------------------------

  connect () {
    this._wantConnect = true
    this.refusal = null
    this.whenLoaded.then(() => { if (!this._destroyed) this.provider.connect() })
    this._updateStatus()
  }

  disconnect () {
    this._wantConnect = false
    this.provider.disconnect()
    this._updateStatus()
  }

  // -- token refresh (extension message 101, docs/auth.md) ----------------------------

  /**
   * Hand the live connection a fresh token without dropping it, and keep it for every
   * later (re)connect. Connected: sends it (101) and resolves with the `exp` the server
   * answers (unix s; 0 with authentication off) once accepted. Offline: only keeps it
   * (the next connection carries it) and resolves null; while the socket is opening,
   * it is sent once open. Rejects, keeping the token it had, when the server refuses
   * it (4401/4403 "token refresh: ...", `error.refused`: the client reconnects with
   * the old token, no refusal), the connection ends first, or no answer comes within
   * `timeout` ms. Offline, a token naming another participant, role or workshop is
   * rejected here (the server would refuse it at the next connect).
   */
  refreshToken (token, { timeout = 10000 } = {}) {
    if (typeof token !== 'string' || !token) return Promise.reject(new Error('the token is empty'))
    if (this._destroyed) return Promise.reject(new Error('the client is destroyed'))
    const ws = this.provider.ws
    if (!ws || !this.provider.shouldConnect || ws.readyState > 1) { // offline, or closing
      let claims
      try { claims = decodeToken(token) } catch { return Promise.reject(new Error('the token is not a JWT')) }
      const other = (claims.sub && claims.sub !== this.participantId) || (claims.role && claims.role !== this.role) || (claims.wid && claims.wid !== this.workshopId)
      if (other) return Promise.reject(new Error('the token names another participant, role or workshop; connect with it as a new client instead'))
      this._setToken(token)
      return Promise.resolve(null)
    }
    return new Promise((resolve, reject) => {
      const entry = { token, ws, sent: false, settled: false, resolve, reject, timer: null }
      entry.timer = setTimeout(() => {
        if (!entry.sent) this._refreshes.splice(this._refreshes.indexOf(entry), 1) // else its answer still comes, in order
        this._settleRefresh(entry, new Error(`the server did not answer the token refresh within ${timeout} ms`))
      }, timeout)
      this._refreshes.push(entry)
      if (ws.readyState === 1 && this.provider.wsconnected) this._sendRefresh(entry)
    })
  }

  _setToken (token) {
    this.token = token
    this.provider.params.token = token // the provider builds each (re)connect's URL from its params
  }

  _sendRefresh (entry) {
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_TOKEN)
    encoding.writeVarString(encoder, entry.token)
    entry.sent = true
    entry.ws.send(encoding.toUint8Array(encoder))
  }

  _sendQueuedRefreshes () {
    const ws = this.provider.ws
    if (!ws || ws.readyState !== 1) return // closed meanwhile: _endRefreshes settled them
    for (const entry of this._refreshes) if (!entry.sent) { entry.ws = ws; this._sendRefresh(entry) }
  }

  _settleRefresh (entry, error, exp = null) {
    if (entry.settled) return
    entry.settled = true
    clearTimeout(entry.timer)
    if (error) { entry.reject(error); return }
    this._setToken(entry.token)
    entry.resolve(exp)
  }

  _onTokenAccepted (exp) {
    const i = this._refreshes.findIndex((r) => r.sent)
    if (i < 0) return
    const [entry] = this._refreshes.splice(i, 1)
    this._settleRefresh(entry, null, exp) // a refresh that timed out stays refused: its token is not kept
  }

  /** The socket closed: a refusal (or any end) rejects what was sent; what was not is kept for the next one. */
  _endRefreshes (event) {
    if (!this._refreshes.length) return
    const refused = event ? isTokenRefreshRefusal(event.code, event.reason) : false
    for (const entry of this._refreshes.splice(0)) {
      if (!entry.sent) {
        if (!entry.settled) { this._setToken(entry.token); entry.settled = true; clearTimeout(entry.timer); entry.resolve(null) }
      } else if (refused) {
        this._settleRefresh(entry, Object.assign(
          new Error(`the token refresh was refused (${event.code}): ${event.reason}`),
          { refused: true, code: event.code, reason: event.reason }))
      } else {
        const why = event ? ` (${event.code}${event.reason ? ': ' + event.reason : ''})` : ''
        this._settleRefresh(entry, new Error(`the connection ended before the server answered the token refresh${why}`))
      }
    }
  }

  get connected () { return this.status === 'connected' }
  get synced () { return this.provider.synced }
  /** False after a refusal that reconnecting cannot fix (bad token, removed, forbidden). */
  get canSave () { return !this.refusal || this.refusal.kind === 'client-id-taken' }

  _computeStatus () {
    if (this.refusal) return 'refused'
    const p = this.provider
    if (p.wsconnected && p.synced) return 'connected'
    if (!this.isOnline() || !p.shouldConnect) return 'offline'
    if (!p.wsconnected && p.wsUnsuccessfulReconnects > 0) return 'offline'
    return 'connecting'
  }

  _updateStatus () {
    const status = this._computeStatus()
    if (status === this.status) return
    this.status = status
    const event = { status }
    if (this.refusal) Object.assign(event, this.refusal)
    this.emit('status', [event])
  }

  // -- saved acknowledgement -------------------------------------------------------------

  /** Local changes not yet committed by the server, plus held intents. */
  get pendingCount () { return this._unsaved + this.intents.length }
  /**
   * The same, counted as a person would: one per pick, vote, rating or message, and
   * one per text for typing in a row (23 keystrokes into the mission are one edit).
   */
  get pendingEdits () {
    const edits = countEdits(this._kinds) + this.intents.length
    return edits === 0 && this.pendingCount > 0 ? 1 : edits
  }
  get saved () { return this.pendingCount === 0 }

  _setUnsaved (n) {
    const before = this.pendingCount
    this._unsaved = Math.max(0, n)
    // acknowledged changes leave from the front; changes counted without a kind get one
    if (this._kinds.length > this._unsaved) this._kinds.splice(0, this._kinds.length - this._unsaved)
    while (this._kinds.length < this._unsaved) this._kinds.push(uniqueKind())
    if (this.persistence) {
      try {
        if (this._unsaved) {
          this.storage.setItem(`vmv.unsaved.${this._key}`, String(this._unsaved))
          this.storage.setItem(`vmv.unsavedKinds.${this._key}`, JSON.stringify(this._kinds))
        } else {
          this.storage.removeItem(`vmv.unsaved.${this._key}`)
          this.storage.removeItem(`vmv.unsavedKinds.${this._key}`)
        }
      } catch { /* quota */ }
    }
    this._pendingChanged(before)
  }

  _pendingChanged (before) {
    const after = this.pendingCount
    if (after === before) return
    this.emit('pending', [after])
    if (after === 0) this.emit('saved', [this])
  }

  /** Every sync update and step 2 the provider sends, counted as the server counts them. */
  _onSend (ws, data) {
    try {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data)
      const d = decoding.createDecoder(bytes)
      if (decoding.readVarUint(d) !== 0) return
      const sub = decoding.readVarUint(d)
      if (sub !== 1 && sub !== 2) return
      const update = decoding.readVarUint8Array(d)
      const inflight = ws._vmvSent.slice(ws._vmvAcked).reduce((a, b) => a + b, 0)
      if (sub === 1) {
        // our answer to the server's state vector: everything it lacks of ours
        if (isEmptyUpdate(update)) this._setUnsaved(inflight) // it has all of it
        else ws._vmvSent.push(Math.max(0, this._unsaved - inflight))
      } else if (!isEmptyUpdate(update)) {
        ws._vmvSent.push(this._nextWeight)
        this._nextWeight = 1
      }
    } catch { /* not ours to judge */ }
  }

  _onSaved (n) {
    const ws = this.provider.ws
    if (!ws || !ws._vmvSent) return
    let done = 0
    while (ws._vmvAcked < Math.min(n, ws._vmvSent.length)) done += ws._vmvSent[ws._vmvAcked++]
    if (done) this._setUnsaved(this._unsaved - done)
    this.emit('ack', [n])
  }

  /** Resolves once everything is committed; rejects on a refusal or after `timeoutMs`. */
  waitSaved (timeoutMs = 10000) {
    return this._waitFor(() => this.saved && this.everSynced, timeoutMs, 'saved')
  }

  whenSynced (timeoutMs = 10000) {
    return this._waitFor(() => this.provider.synced, timeoutMs, 'synced')
  }

  _waitFor (ok, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.refusal && this.refusal.kind !== 'client-id-taken') { done(); reject(Object.assign(new Error(`refused (${this.refusal.code}): ${this.refusal.reason}`), { refusal: this.refusal })) } else if (ok()) { done(); resolve() }
      }
      const events = ['pending', 'saved', 'synced', 'status', 'ack', 'refused']
      const timer = setTimeout(() => { done(); reject(new Error(`not ${what} within ${timeoutMs} ms`)) }, timeoutMs)
      const done = () => { clearTimeout(timer); for (const e of events) this.off(e, check) }
      for (const e of events) this.on(e, check)
      check()
    })
  }

  // -- intents -----------------------------------------------------------------------

  _scheduleFlush () {
    if (this._flushScheduled || !this.intents.length) return
    this._flushScheduled = true
    queueMicrotask(() => {
      this._flushScheduled = false
      if (this._destroyed || !this.intents.length) return
      const before = this.pendingCount
      this._flushWeight = this.intents.items.filter((i) => act.hasContainer(this.doc, containerRoot(i.kind), i.args[0])).length
      this.intents.flush(this.doc, (err, item) => this.emit('intent-dropped', [err, item]), INTENT_ORIGIN)
      this._flushWeight = 0
      this._pendingChanged(before)
    })
  }

  /** Run `fn(doc)`; if its container is not here yet, hold `[kind, args]` instead. */
  _act (kind, args, fn) {
    try {
      return fn()
    } catch (err) {
      if (!(err instanceof act.MissingContainer)) throw err
      const before = this.pendingCount
      this.intents.push(kind, args)
      this._pendingChanged(before)
      return undefined
    }
  }

  // -- actions (vmv_sync.client.workshop) --------------------------------------------------

  createWorkshop (title, { values = [], maxValues = 10 } = {}) {
    act.createWorkshop(this.doc, { title, pid: this.participantId, name: this.name, values, maxValues })
  }

  join () { act.addParticipant(this.doc, this.participantId, this.name, this.role) }
  addParticipant (pid, name, role = 'participant') { act.addParticipant(this.doc, pid, name, role) }
  setStage (stage) { act.setStage(this.doc, stage) }
  setCatalogue (values) { act.setCatalogue(this.doc, values) }
  openBallot (ballotId, question, options, { stage, kind = 'single', maxChoices = 1 }) {
    act.openBallot(this.doc, { id: ballotId, question, options, stage, kind, maxChoices })
  }

  closeBallot (ballotId) { act.closeBallot(this.doc, ballotId) }
  postMessage (text, { stage = null, messageId = null } = {}) {
    return act.postMessage(this.doc, this.participantId, text, stage, messageId)
  }

  /** Select or deselect; returns whether it is now selected (held picks included). */
  toggleValue (value) {
    const pid = this.participantId
    const r = this._act('toggle', [pid, value], () => act.toggleValue(this.doc, pid, value))
    return r === undefined ? this.isSelected(value) : r
  }

  selectValue (value) { const pid = this.participantId; this._act('select', [pid, value], () => act.selectValue(this.doc, pid, value)) }
  deselectValue (value) { const pid = this.participantId; this._act('deselect', [pid, value], () => act.deselectValue(this.doc, pid, value)) }
  castVote (ballotId, choice) { const pid = this.participantId; this._act('vote', [ballotId, pid, choice], () => act.castVote(this.doc, ballotId, pid, choice)) }
  retractVote (ballotId) { const pid = this.participantId; this._act('retract', [ballotId, pid], () => act.retractVote(this.doc, ballotId, pid)) }
  rateValue (value, importance, practice) {
    const pid = this.participantId
    this._act('rate', [pid, value, importance, practice], () => act.rateValue(this.doc, pid, value, importance, practice))
  }

  setProgress (stage, completed = null) { act.setProgress(this.doc, this.participantId, stage, completed) }
  setDraft (text) {
    const pid = this.participantId
    if (!act.hasContainer(this.doc, 'drafts', pid) && typeof text === 'string' && charCount(text) > MAX_TEXT_CHARS) {
      // refused before it is held as an intent, as act.setDraft refuses it once the draft is here
      const n = charCount(text)
      throw new act.TooLong('text', MAX_TEXT_CHARS, n, `the text would be ${n} characters long, over the limit of ${MAX_TEXT_CHARS}; shorten it`)
    }
    this._act('setDraft', [pid, text], () => act.setDraft(this.doc, pid, text))
  }

  editDraft (index, { delete: del = 0, insert = '' } = {}) {
    const pid = this.participantId
    this._act('editDraft', [pid, index, del, insert], () => act.editDraft(this.doc, pid, index, del, insert))
  }

  setMission (text) { act.setMission(this.doc, text) }
  editMission (index, { delete: del = 0, insert = '' } = {}) { act.editMission(this.doc, index, del, insert) }
  setVision (text) { act.setVision(this.doc, text) }
  editVision (index, { delete: del = 0, insert = '' } = {}) { act.editVision(this.doc, index, del, insert) }

  // -- views (vmv_sync.client.views) -----------------------------------------------------

  /** The workshop as plain data (the tolerant reader), cached until the next update. */
  get data () { if (!this._data) this._data = readWorkshop(this.doc, Y); return this._data }
  get derived () { return deriveState(this.doc, Y) }
  get title () { const t = this.doc.getMap('meta').get('title'); return typeof t === 'string' ? t : null }
  get stage () { const s = this.doc.getMap('meta').get('stage'); return typeof s === 'string' ? s : null }
  /** Whether the workshop exists in this replica (it has a title). */
  get exists () { return this.title !== null }
  /** The chat in display order (chat.js, identical to vmv_sync.derived.chat). */
  get messages () { return orderedMessages(readMessages(this.doc.getArray('messages'))) }

  get participants () { return Object.fromEntries(this.data.participants) }
  get participantsByStage () { return this.derived.stages }
  get valueStats () { return this.derived.values }
  get votingStats () { return this.derived.ballots }
  get stageProgress () { return Object.fromEntries(this.data.progress) }
  get selections () { return Object.fromEntries([...this.data.selections].map(([k, v]) => [k, Object.fromEntries(v)])) }
  /** This participant's values, sorted; picks still held as intents included. */
  get myValues () {
    const picked = new Map(act.selectedValues(this.doc, this.participantId).map((v) => [normalizeValueName(v), v]))
    for (const { kind, args } of this.intents.items) {
      if (!['toggle', 'select', 'deselect'].includes(kind) || args[0] !== this.participantId) continue
      const key = normalizeValueName(args[1])
      if (kind === 'deselect' || (kind === 'toggle' && picked.has(key))) picked.delete(key)
      else picked.set(key, tidyValueName(args[1]))
    }
    return sortedKeys(picked.values())
  }

  /** Values picked but not yet in the replica (held until the container arrives). */
  get heldValues () {
    const inDoc = new Set(act.selectedValues(this.doc, this.participantId).map(normalizeValueName))
    return this.myValues.filter((v) => !inDoc.has(normalizeValueName(v)))
  }

  isSelected (value) {
    const key = normalizeValueName(value)
    return this.myValues.some((v) => normalizeValueName(v) === key)
  }

  get mission () { return this.doc.getText('mission').toString() }
  get vision () { return this.doc.getText('vision').toString() }
  get drafts () {
    const out = {}
    for (const [pid, t] of this.doc.getMap('drafts').entries()) if (t instanceof Y.Text) out[pid] = t.toString()
    return out
  }

  // -- presence -----------------------------------------------------------------------

  /** Awareness client id -> state, for every live client with a user. */
  get presenceStates () { return new Map([...this.awareness.getStates()].filter(([, s]) => s && s.user && typeof s.user.id === 'string')) }
  get onlineParticipants () { return onlineOf(this.awareness) }
  get typingUsers () { return typingOf(this.awareness, this.participantId) }
  get cursors () { return cursorsOf(this.awareness) }
  setStagePresence (stage) { this.presence.setStage(stage) }
  setTyping (typing = true) { if (typing) this.presence.typing(); else this.presence.stopTyping() }
  moveCursor (x, y, stage = null) { this.presence.moveCursor({ x, y, stage: stage || this.presence.state().stage }) }
  hideCursor () { this.presence.hideCursor() }
  colorOf (pid) { return colorFor(pid) }

  // -- recovery and teardown ----------------------------------------------------------------

  /**
   * After a "client id taken" refusal: this replica's content minus everything
   * written under the refused client id, as one update for a fresh Y.Doc (whose
   * client id is new). With a persistence factory, the local replica is rewritten
   * to it. Returns the update; the caller opens a new WorkshopClient on it.
   */
  async freshReplica ({ clearReplica = null } = {}) {
    const bad = this.refusal?.clientId ?? this.doc.clientID
    const clock = Y.decodeStateVector(Y.encodeStateVector(this.doc)).get(bad) || 0
    const update = Y.encodeStateAsUpdate(this.doc, Y.encodeStateVector(new Map([[bad, clock]])))
    const persistence = this.persistence
    this.destroy()
    if (persistence && (clearReplica || typeof persistence.clearData === 'function')) {
      // emptied in place by clearReplica(name) when given (see discardUnsaved), else deleted
      if (clearReplica) {
        await persistence.destroy()
        await clearReplica(replicaName(this.workshopId, this.participantId))
      } else {
        await persistence.clearData()
      }
      const fresh = new Y.Doc()
      Y.applyUpdate(fresh, update)
      const again = this._persistenceFactory ? this._persistenceFactory(replicaName(this.workshopId, this.participantId), fresh) : null
      if (again) { await again.whenSynced; await again.destroy() }
      fresh.destroy()
    }
    this.intents.clear()
    try { this.storage.removeItem(`vmv.unsaved.${this._key}`) } catch { /* */ }
    return update
  }

  /**
   * After a refusal of this replica's edits (`refusal.edit`: 4413, or 4403 about a
   * write): drop every change the server has not saved, so nothing refused is sent
   * again. Closes this client (no reconnect), empties the local replica and forgets
   * the unsaved count and the held intents. The caller then opens a new
   * WorkshopClient (a fresh Y.Doc, so a fresh client id), which syncs the workshop as
   * the server has it; later edits save.
   *
   * The replica is emptied by `clearReplica(name)` when given (the page clears its
   * IndexedDB store in place, so another open tab of the same participant keeps a
   * working replica), else by the persistence's `clearData()` (y-indexeddb: delete
   * the database).
   */
  async discardUnsaved ({ clearReplica = null } = {}) {
    const persistence = this.persistence
    this.destroy()
    if (persistence) {
      if (clearReplica) {
        await persistence.destroy() // its connection closed before the replica is emptied
        await clearReplica(replicaName(this.workshopId, this.participantId))
      } else if (typeof persistence.clearData === 'function') {
        await persistence.clearData()
      }
    }
    this.intents.clear()
    try {
      this.storage.removeItem(`vmv.unsaved.${this._key}`)
      this.storage.removeItem(`vmv.unsavedKinds.${this._key}`)
    } catch { /* storage unavailable */ }
  }

  destroy () {
    if (this._destroyed) return
    this._destroyed = true
    if (this._offline) { removeEventListener('offline', this._offline); removeEventListener('online', this._online) }
    this.presence.destroy()
    this.provider.destroy()
    this.awareness.destroy() // the provider leaves its awareness (and its timer) alive
    this.doc.off('update', this._onUpdate)
    if (this.persistence) this.persistence.destroy()
  }
}

function containerRoot (kind) {
  return { toggle: 'selections', select: 'selections', deselect: 'selections', rate: 'matrix', setDraft: 'drafts', editDraft: 'drafts', vote: 'votes', retract: 'votes' }[kind]
}
