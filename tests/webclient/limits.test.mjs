// Limits and edit refusals of @vmv-sync/client in Node, against a real server started
// with a 2 KiB message limit (tests/webclient/test_limits.py passes its address,
// tokens and the Python schema's limits). Issue 19, finding 6.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { env, http, opener, STEP, until, vmv, WebSocket } from './harness.mjs'
const { Y, actions: act, TooLong, InvalidAction, MAX_MESSAGE_CHARS, MAX_TEXT_CHARS, charCount, memoryStorage } = vmv

const BACKOFF = 100 // ms: the provider's longest backoff here, so a loop would show at once

const join = (name) => http('POST', `/api/workshops/${env.wid}/join`, { invite_code: env.invite, name })
const exported = () => http('GET', `/workshops/${env.wid}/export`, null, env.facToken)

/** A WebSocket that counts the sockets a client opens (every reconnect is one). */
function countingSocket () {
  const counter = { opened: 0 }
  counter.WebSocket = class extends WebSocket {
    constructor (...args) { super(...args); counter.opened++ }
  }
  return counter
}

const open = opener({ maxBackoffTime: BACKOFF })

/** A persistence stand-in: what discardUnsaved() must do to it. */
function fakePersistence () {
  const p = { cleared: 0, destroyed: 0, whenSynced: Promise.resolve() }
  p.destroy = async () => { p.destroyed++ }
  p.clearData = async () => { p.cleared++ }
  return p
}

/** Watch `client` until its provider's longest backoff has passed five times over: no new socket. */
async function noReconnect (client, counter) {
  const sockets = counter.opened
  const t0 = Date.now()
  await until(() => {
    assert.equal(counter.opened, sockets, 'reconnected after a refusal')
    return Date.now() - t0 > 5 * BACKOFF + 200
  }, 'the backoff window')
  assert.equal(client.provider.shouldConnect, false)
  assert.equal(client.provider.ws, null)
}

test('the limits are the Python schema\'s', () => {
  assert.equal(MAX_MESSAGE_CHARS, env.maxMessageChars)
  assert.equal(MAX_TEXT_CHARS, env.maxTextChars)
  assert.equal(act.MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS)
  assert.equal(act.MAX_TEXT_CHARS, MAX_TEXT_CHARS)
})

test('actions refuse past the limits, counting characters as Python does', () => {
  const doc = new Y.Doc()
  act.postMessage(doc, 'p1', 'a'.repeat(MAX_MESSAGE_CHARS))
  act.postMessage(doc, 'p1', '😀'.repeat(MAX_MESSAGE_CHARS)) // 4,000 characters, 8,000 UTF-16 units
  assert.equal(charCount('😀'.repeat(3)), 3)
  const err = assert.throws(() => act.postMessage(doc, 'p1', 'a'.repeat(MAX_MESSAGE_CHARS + 1)), (e) => {
    assert.ok(e instanceof TooLong && e instanceof InvalidAction)
    assert.equal(e.message, `a chat message may hold ${MAX_MESSAGE_CHARS} characters, not ${MAX_MESSAGE_CHARS + 1}; split it or shorten it`)
    assert.deepEqual([e.what, e.limit, e.length], ['message', MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS + 1])
    return true
  })
  assert.equal(err, undefined)
  assert.equal(doc.getArray('messages').length, 2) // the refused one wrote nothing

  act.setMission(doc, 'm'.repeat(MAX_TEXT_CHARS))
  assert.throws(() => act.editMission(doc, 0, 0, 'x'), (e) => e instanceof TooLong && e.length === MAX_TEXT_CHARS + 1 &&
    e.message === `the text would be ${MAX_TEXT_CHARS + 1} characters long, over the limit of ${MAX_TEXT_CHARS}; shorten it`)
  act.editMission(doc, 0, 1, 'y') // replacing keeps the length: allowed
  assert.throws(() => act.setVision(doc, 'v'.repeat(MAX_TEXT_CHARS + 1)), TooLong)
  assert.equal(doc.getText('vision').length, 0)
  act.setVision(doc, '😀'.repeat(MAX_TEXT_CHARS)) // characters, not UTF-16 units
  // a text already over the limit (another writer) may still shrink, like Python's edit_text
  doc.getText('vision').insert(0, 'over')
  act.editVision(doc, 0, 4, 'ov')
  assert.equal(charCount(doc.getText('vision').toString()), MAX_TEXT_CHARS + 2)
})

test('a held draft over the limit is refused before it is held', async () => {
  const j = await join('Hal')
  const hal = open(j.token, { connect: false, storage: memoryStorage() })
  assert.throws(() => hal.setDraft('d'.repeat(MAX_TEXT_CHARS + 1)), TooLong)
  assert.equal(hal.intents.length, 0)
  hal.setDraft('a short draft')
  assert.equal(hal.intents.length, 1)
  hal.destroy()
})

test('an edit over the message limit (4413): refused once, no reconnect; discardUnsaved() and later edits save', async () => {
  const j = await join('Pia')
  const counter = countingSocket()
  const storage = memoryStorage()
  const persistence = fakePersistence()
  const pia = open(j.token, { WebSocket: counter.WebSocket, storage, persistence: () => persistence })
  await pia.whenSynced(STEP)
  pia.postMessage('before')
  await pia.waitSaved(STEP)
  const refused = new Promise((resolve) => pia.on('refused', resolve))
  pia.setMission('x'.repeat(env.frameLimit + 500)) // under the text limit, over the frame limit
  const refusal = await refused
  assert.equal(refusal.code, 4413)
  assert.equal(refusal.kind, 'too-large')
  assert.equal(refusal.edit, true)
  assert.match(refusal.reason, /byte limit/)
  assert.equal(pia.status, 'refused')
  assert.equal(pia.canSave, false)
  assert.equal(counter.opened, 1)
  await noReconnect(pia, counter)
  assert.ok(pia.pendingCount > 0)

  await pia.discardUnsaved()
  assert.equal(persistence.cleared, 1)
  assert.equal(storage.getItem(`vmv.unsaved.${env.wid}.${j.participant_id}`), null)
  assert.equal(counter.opened, 1) // closed for good: nothing re-sent
  const again = open(j.token, { storage }) // a fresh Y.Doc: the workshop as the server has it
  await again.whenSynced(STEP)
  assert.equal(again.mission, '')
  assert.equal(again.pendingCount, 0)
  again.postMessage('after')
  again.setMission('Short and saved.')
  await again.waitSaved(STEP)
  const data = await exported()
  assert.deepEqual(data.messages.filter((m) => m.author === j.participant_id).map((m) => m.text), ['before', 'after'])
  assert.equal(data.mission, 'Short and saved.')
})

test('a write the rules forbid (4403) is an edit refusal too; a token for another workshop is not', async () => {
  const j = await join('Flo')
  const counter = countingSocket()
  const persistence = fakePersistence()
  const flo = open(j.token, { WebSocket: counter.WebSocket, storage: memoryStorage(), persistence: () => persistence })
  await flo.whenSynced(STEP)
  const refused = new Promise((resolve) => flo.on('refused', resolve))
  act.setStage(flo.doc, 'vision') // only the facilitator may write meta
  const refusal = await refused
  assert.equal(refusal.code, 4403)
  assert.equal(refusal.kind, 'forbidden')
  assert.equal(refusal.edit, true)
  await noReconnect(flo, counter)
  const cleared = []
  await flo.discardUnsaved({ clearReplica: async (name) => { cleared.push(name) } }) // emptied in place, not deleted
  assert.deepEqual(cleared, [`vmv-${env.wid}-${j.participant_id}`])
  assert.equal(persistence.cleared, 0)
  assert.ok(persistence.destroyed >= 1)
  const again = open(j.token)
  await again.whenSynced(STEP)
  again.postMessage('allowed')
  await again.waitSaved(STEP)
  assert.notEqual(again.stage, 'vision')

  assert.equal(vmv.refusesEdit('forbidden', 'this token opens another workshop'), false)
  assert.equal(vmv.refusesEdit('forbidden', "awareness 'user.id' must be the token's participant id"), false)
  assert.equal(vmv.refusesEdit('too-large', 'an awareness state may hold at most 16384 bytes'), false)
  assert.equal(vmv.refusesEdit('too-large', 'the workshop is nearly full: only its facilitator can still write; ask the facilitator'), true)
  assert.equal(vmv.refusesEdit('unauthorized', 'bad token'), false)
  assert.equal(vmv.refusesEdit('client-id-taken', 'client id taken: 5'), false)
})
