// A Node Yjs peer for the interop tests: the stock y-websocket WebsocketProvider
// (serverUrl ws://HOST:PORT/workshops, roomname = workshop id, ws as the polyfill),
// driven line by line over stdin/stdout by tests/interop/test_node_interop.py.
//
// Usage: node driver.mjs WS_BASE WORKSHOP_ID PARTICIPANT_ID
// Each stdin line is a JSON command {id, cmd, ...}; each answer is one stdout line
// {id, ok, result | error}. Waiting commands are woken by doc / awareness events,
// never by polling, and fail after their `timeout` (ms).

import * as readline from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { deriveState } from '../../web/src/derived.js'

const [wsBase, workshopId, pid] = process.argv.slice(2)
const doc = new Y.Doc()
const provider = new WebsocketProvider(wsBase, workshopId, doc, {
  WebSocketPolyfill: WebSocket,
  disableBc: true,
  maxBackoffTime: 500
})
const awareness = provider.awareness

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
      err ? reject(err) : resolve(value)
    }
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}: ${canonical(snapshot())}`)), timeout)
    doc.on('update', check)
    awareness.on('change', check)
    provider.on('status', check)
    provider.on('sync', check)
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
