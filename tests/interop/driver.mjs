// A Node Yjs peer for the interop tests: the stock y-websocket WebsocketProvider
// (serverUrl ws://HOST:PORT/workshops, roomname = workshop id, ws as the polyfill),
// driven line by line over stdin/stdout by tests/interop/test_node_interop.py.
//
// Usage: node driver.mjs WS_BASE WORKSHOP_ID PARTICIPANT_ID [TOKEN]
// With TOKEN the provider sends it as y-websocket's `params: {token}` (authentication
// on, tests/interop/test_node_interop_auth.py); nothing else about the provider changes
// (the `refresh_token` command adds docs/auth.md's handler for message 101 when called).
// Each stdin line is a JSON command {id, cmd, ...}; each answer is one stdout line
// {id, ok, result | error}. Waiting commands are woken by doc / awareness events,
// never by polling, and fail after their `timeout` (ms).

import * as readline from 'node:readline'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { deriveState } from '../../web/src/derived.js'

const [wsBase, workshopId, pid, token] = process.argv.slice(2)
const doc = new Y.Doc()
const provider = new WebsocketProvider(wsBase, workshopId, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  maxBackoffTime: 500,
  params: token ? { token } : {}
})
const awareness = provider.awareness

/** The `exp` of every token refresh the server answered (message 101, `refresh_token`). */
const refreshed = []
const refreshWaiters = []
/** Every `connection-close` the provider reported: the server's close code and reason. */
const closes = []
provider.on('connection-close', (event) => {
  closes.push({ code: event ? event.code : null, reason: event ? String(event.reason || '') : null })
})
/**
 * The stock provider sends an awareness frame for every awareness 'update' event, the
 * ones caused by states it received from the server (origin: the provider) included:
 * count those echoes, and the other clients' states they carried, so tests can show the
 * server saw them.
 */
const echoes = { frames: 0, foreignStates: 0 }
awareness.on('update', ({ added, updated, removed }, origin) => {
  if (origin !== provider) return
  echoes.frames++
  echoes.foreignStates += added.concat(updated, removed).filter((cid) => cid !== doc.clientID).length
})

/** Every root of contract section 3, as canonical JSON (Y types converted, keys sorted). */
const ROOTS = {
  meta: 'map', participants: 'map', messages: 'array', selections: 'map', values: 'array', ballots: 'map',
  votes: 'map', matrix: 'map', progress: 'map', drafts: 'map', mission: 'text', vision: 'text'
}
const root = (name) => (ROOTS[name] === 'map' ? doc.getMap(name) : ROOTS[name] === 'array' ? doc.getArray(name) : doc.getText(name))

function plain (v) {
  if (v instanceof Y.Text) return v.toString()
  if (v instanceof Y.Map) return Object.fromEntries([...v.keys()].sort().map((k) => [k, plain(v.get(k))]))
  if (v instanceof Y.Array) return v.toArray().map(plain)
  if (Array.isArray(v)) return v.map(plain)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, plain(v[k])]))
  return v
}
const snapshot = () => Object.fromEntries(Object.keys(ROOTS).map((n) => [n, plain(root(n))]))

function canonical (v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
  return JSON.stringify(v)
}

/** Resolve when `predicate()` holds, re-checked on every doc update, awareness change or status change. */
function waitFor (predicate, timeout = 10000, what = 'condition') {
  return new Promise((resolve, reject) => {
    const check = () => {
      let value
      try { value = predicate() } catch (err) { return finish(err) }
      if (value) finish(null, value)
    }
    const finish = (err, value) => {
      clearTimeout(timer)
      doc.off('update', check)
      awareness.off('change', check)
      provider.off('status', check)
      provider.off('sync', check)
      provider.off('connection-close', check)
      err ? reject(err) : resolve(value)
    }
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}: ${canonical(snapshot())}`)), timeout)
    doc.on('update', check)
    awareness.on('change', check)
    provider.on('status', check)
    provider.on('sync', check)
    provider.on('connection-close', check)
    check()
  })
}

/** Write to every root of the contract the way a browser would (one transaction). */
function writeAll (tag) {
  const now = Date.now() / 1000
  doc.transact(() => {
    doc.getMap('meta').set(`note_${tag}`, `from node ${tag}`)
    const participants = doc.getMap('participants')
    if (!(participants.get(pid) instanceof Y.Map)) {
      const me = new Y.Map()
      me.set('name', `Node ${pid}`)
      me.set('role', 'participant')
      me.set('joined_at', now)
      participants.set(pid, me)
    }
    for (const name of ['selections', 'matrix']) {
      if (!(doc.getMap(name).get(pid) instanceof Y.Map)) doc.getMap(name).set(pid, new Y.Map())
    }
    if (!(doc.getMap('drafts').get(pid) instanceof Y.Text)) doc.getMap('drafts').set(pid, new Y.Text())
    const msg = new Y.Map()
    for (const [k, v] of Object.entries({ id: `node-${tag}`, author: pid, text: `hello from node ${tag}`, sent_at: now, stage: 'values-select' })) msg.set(k, v)
    doc.getArray('messages').push([msg])
    doc.getMap('selections').get(pid).set(`Courage ${tag}`, now)
    doc.getMap('selections').get(pid).set('Honesty', now)
    doc.getArray('values').push([`Courage ${tag}`])
    const ballot = new Y.Map()
    for (const [k, v] of Object.entries({ question: `Node ballot ${tag}?`, options: ['yes', 'no'], stage: 'values-collective', kind: 'single', max_choices: 1, open: true })) ballot.set(k, v)
    doc.getMap('ballots').set(`nb-${tag}`, ballot)
    doc.getMap('votes').set(`nb-${tag}`, new Y.Map())
    doc.getMap('votes').get(`nb-${tag}`).set(pid, 'yes')
    const pyVotes = doc.getMap('votes').get('b1')
    if (pyVotes instanceof Y.Map) pyVotes.set(pid, 'Trust')
    doc.getMap('matrix').get(pid).set('Honesty', { importance: 5, practice: 2 })
    const progress = new Y.Map()
    for (const [k, v] of Object.entries({ stage: 'values-matrix', completed: ['values-select', 'values-collective'], updated_at: now })) progress.set(k, v)
    doc.getMap('progress').set(pid, progress)
    doc.getMap('drafts').get(pid).insert(0, `Node draft ${tag}. `)
    const mission = doc.getText('mission')
    mission.insert(Math.floor(mission.length / 2), ` [node ${tag}] `)
    const vision = doc.getText('vision')
    vision.insert(vision.length, ` Node vision ${tag}.`)
  })
}

/** Run `fn` inside its own transaction per call, as a page does one action per transaction. */
const act = (fn) => doc.transact(fn)

/**
 * What a participant may write under authentication (docs/security.md): a message with
 * itself as author, its own selections, matrix, progress and draft, its own vote on an
 * open ballot, and the shared mission / vision texts. One transaction per action, in
 * the containers the server created at join (created here only if absent).
 */
function writeOwn (tag, ballot) {
  const now = Date.now() / 1000
  const own = (name, Type) => {
    const m = doc.getMap(name)
    if (!(m.get(pid) instanceof Type)) m.set(pid, new Type())
    return m.get(pid)
  }
  act(() => {
    const msg = new Y.Map()
    for (const [k, v] of Object.entries({ id: `${pid}-${tag}`, author: pid, text: `hello from ${pid} ${tag}`, sent_at: now, stage: 'values-select' })) msg.set(k, v)
    doc.getArray('messages').push([msg])
  })
  act(() => own('selections', Y.Map).set(`Courage ${tag}`, now))
  act(() => own('selections', Y.Map).set('Honesty', now))
  act(() => own('matrix', Y.Map).set('Honesty', { importance: 4, practice: 2 }))
  act(() => {
    const progress = new Y.Map()
    for (const [k, v] of Object.entries({ stage: 'values-matrix', completed: ['values-select'], updated_at: now })) progress.set(k, v)
    doc.getMap('progress').set(pid, progress)
  })
  act(() => own('drafts', Y.Text).insert(0, `Draft of ${pid} ${tag}. `))
  if (ballot) {
    act(() => {
      const votes = doc.getMap('votes').get(ballot)
      if (!(votes instanceof Y.Map)) throw new Error(`no votes Map for ballot ${ballot}`)
      votes.set(pid, 'Honesty')
    })
  }
  act(() => { const m = doc.getText('mission'); m.insert(m.length, ` [${pid} ${tag}]`) })
  act(() => { const v = doc.getText('vision'); v.insert(0, `(${pid} ${tag}) `) })
}

const remoteStates = () => [...awareness.getStates()].filter(([cid]) => cid !== doc.clientID)

const commands = {
  async synced ({ timeout }) {
    await waitFor(() => provider.synced, timeout, 'sync')
    return { synced: true, clientID: doc.clientID }
  },
  snapshot () { return snapshot() },
  derived () { return deriveState(doc, Y) },
  /** Wait until this replica's snapshot equals `expected` (canonical JSON). */
  async wait_equal ({ expected, timeout }) {
    const want = canonical(expected)
    await waitFor(() => canonical(snapshot()) === want, timeout, 'equal snapshot')
    return snapshot()
  },
  write_all ({ tag }) { writeAll(tag); return snapshot() },
  edit_mission ({ index, insert }) { doc.getText('mission').insert(index, insert); return doc.getText('mission').toString() },
  set_awareness ({ state }) { awareness.setLocalState(state); return { clientID: doc.clientID } },
  /** Wait until some remote awareness state has user.id === user_id (present) or none has (absent). */
  async wait_awareness ({ user_id: userId, present, timeout }) {
    const find = () => [...awareness.getStates()].find(([cid, s]) => cid !== doc.clientID && s && s.user && s.user.id === userId)
    const found = await waitFor(() => (present ? find() : !find()), timeout, `awareness ${userId} present=${present}`)
    return present ? { clientID: found[0], state: found[1] } : { absent: true }
  },
  write_own ({ tag, ballot }) { writeOwn(tag, ballot); return snapshot() },
  /** A write the token does not allow: another participant's selection. */
  forbidden_write ({ target, value }) {
    act(() => {
      const m = doc.getMap('selections')
      if (!(m.get(target) instanceof Y.Map)) m.set(target, new Y.Map())
      m.get(target).set(value, Date.now() / 1000)
    })
    return snapshot()
  },
  /**
   * `duration` ms of awareness traffic every `interval` ms: cursor moves alternating with
   * renewals (the same call the Awareness check interval makes every 15 s).
   */
  async awareness_traffic ({ duration, interval, stage }) {
    const start = Date.now()
    const before = { ...echoes }
    let moves = 0
    let renewals = 0
    let tick = 0
    while (Date.now() - start < duration) {
      if (tick++ % 2 === 0) {
        awareness.setLocalStateField('cursor', { x: (moves % 100) / 100, y: 0.5, stage })
        moves++
      } else {
        awareness.setLocalState(awareness.getLocalState())
        renewals++
      }
      await new Promise((resolve) => setTimeout(resolve, interval))
    }
    awareness.setLocalStateField('cursor', { x: 0.99, y: 0.99, stage })
    moves++
    return {
      moves,
      renewals,
      elapsed: Date.now() - start,
      echo_frames: echoes.frames - before.frames,
      echoed_foreign_states: echoes.foreignStates - before.foreignStates
    }
  },
  /** Wait until a remote state of `user_id` has `field` equal to `value` (canonical JSON). */
  async wait_remote_field ({ user_id: userId, field, value, timeout }) {
    const want = canonical(value)
    const found = await waitFor(() => remoteStates().find(([, s]) => s && s.user && s.user.id === userId && canonical(s[field]) === want), timeout, `awareness ${userId}.${field}`)
    return { clientID: found[0], state: found[1] }
  },
  remote_states () { return remoteStates() },
  status () {
    return {
      clientID: doc.clientID,
      wsconnected: provider.wsconnected,
      synced: provider.synced,
      shouldConnect: provider.shouldConnect,
      closes,
      echo_frames: echoes.frames,
      echoed_foreign_states: echoes.foreignStates,
      clock: awareness.meta.get(doc.clientID).clock
    }
  },
  /** Wait until the provider reported a `connection-close` with `code`. */
  async wait_close ({ code, timeout }) {
    await waitFor(() => closes.some((c) => c.code === code), timeout, `close ${code}`)
    return { closes, wsconnected: provider.wsconnected, shouldConnect: provider.shouldConnect }
  },
  /**
   * docs/auth.md's snippet, as written there: hand the open socket a fresh token (message
   * 101) and keep it in `params`; wait for the server's answer (101, exp). The handler is
   * registered on the first call only, so the provider stays stock until a test asks.
   */
  async refresh_token ({ token, timeout = 10000 }) {
    if (!provider.messageHandlers[101]) {
      provider.messageHandlers[101] = (encoder, decoder) => {
        const exp = decoding.readVarUint(decoder)
        refreshed.push(exp)
        const waiter = refreshWaiters.shift()
        if (waiter) waiter(exp)
      }
    }
    const answered = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for the answer to a token refresh')), timeout)
      refreshWaiters.push((exp) => { clearTimeout(timer); resolve(exp) })
    })
    provider.params.token = token
    const ws = provider.ws
    if (ws !== null && ws.readyState === WebSocket.OPEN) {
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, 101)
      encoding.writeVarString(encoder, token)
      ws.send(encoding.toUint8Array(encoder))
    }
    return { exp: await answered }
  },
  disconnect () { provider.disconnect(); return { wsconnected: provider.wsconnected } },
  async connect ({ timeout }) {
    provider.connect()
    await waitFor(() => provider.wsconnected && provider.synced, timeout, 'reconnect and sync')
    return { wsconnected: true }
  },
  quit () { provider.destroy(); setTimeout(() => process.exit(0), 50); return { bye: true } }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  let msg
  try { msg = JSON.parse(line) } catch { return }
  try {
    const result = await commands[msg.cmd](msg)
    process.stdout.write(JSON.stringify({ id: msg.id, ok: true, result }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ id: msg.id, ok: false, error: String(err && err.stack ? err.stack : err) }) + '\n')
  }
})
rl.on('close', () => { provider.destroy(); process.exit(0) })
