// Node unit tests of @vmv-sync/client against a real server (started by
// tests/webclient/test_client_package.py, which passes its address and tokens).
// The package is imported the way an npm user gets it: resolved through
// web/node_modules/@vmv-sync/client, the workspace link npm installed.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { env, http, opener, STEP, until, vmv } from './harness.mjs'
const { Y } = vmv

async function join (name) { // the code may have been rotated (a revoke does that): ask for the current one
  const { invite_code: code } = await http('GET', `/api/workshops/${env.wid}/invite`, null, env.facToken)
  return http('POST', `/api/workshops/${env.wid}/join`, { invite_code: code, name })
}
const state = () => http('GET', `/workshops/${env.wid}/state`, null, env.facToken)
const open = opener()

test('status events, saved acknowledgement and pending count', async () => {
  const fac = open(env.facToken)
  const seen = []
  fac.on('status', (e) => seen.push(e.status))
  const pendings = []
  fac.on('pending', (n) => pendings.push(n))
  await fac.whenSynced(STEP)
  assert.equal(fac.status, 'connected')
  assert.deepEqual(seen, ['connected'])
  assert.equal(fac.title, 'Node team')
  fac.postMessage('one')
  fac.postMessage('two')
  fac.postMessage('three')
  assert.ok(fac.pendingCount >= 1 && fac.pendingCount <= 3)
  await fac.waitSaved(STEP)
  assert.equal(fac.pendingCount, 0)
  assert.equal(pendings[pendings.length - 1], 0)
  const texts = (await http('GET', `/workshops/${env.wid}/export?format=json`, null, env.facToken))
  assert.ok(JSON.stringify(texts).includes('three'))
  // offline edits are pending until the next connection's acknowledgement
  fac.disconnect()
  await until(() => fac.status === 'offline', 'offline')
  fac.postMessage('while away')
  fac.setMission('Our mission')
  assert.equal(fac.pendingCount, 2)
  fac.connect()
  await fac.waitSaved(STEP)
  assert.equal(fac.status, 'connected')
  assert.ok(seen.includes('offline'))
  fac.destroy()
})

test('a never-synced participant holds its picks as intents; all reach the server', async () => {
  const j = await join('Nina')
  const nina = open(j.token, { connect: false })
  assert.equal(nina.participantId, j.participant_id)
  for (const v of ['Honesty', 'Trust', 'Kindness', 'Zeal']) nina.toggleValue(v)
  nina.rateValue('Honesty', 5, 2)
  nina.setDraft('my draft')
  assert.equal(nina.intents.length, 6)
  assert.equal(nina.pendingCount, 6)
  assert.deepEqual(nina.myValues, ['Honesty', 'Kindness', 'Trust', 'Zeal'])
  assert.equal(nina.doc.getMap('selections').get(j.participant_id), undefined) // never created here
  nina.connect()
  await nina.waitSaved(STEP)
  assert.equal(nina.intents.length, 0)
  const sel = nina.doc.getMap('selections').get(j.participant_id)
  assert.ok(sel instanceof Y.Map)
  assert.notEqual(sel._item.id.client, nina.doc.clientID) // the server's container
  const served = await state()
  const mine = served.values.filter((v) => v.participants.includes(j.participant_id)).map((v) => v.name).sort()
  assert.deepEqual(mine, ['Honesty', 'Kindness', 'Trust', 'Zeal'])
  assert.equal(nina.drafts[j.participant_id], 'my draft')
  nina.destroy()
})

test('presence schema with a caret is relayed; cursors and typing views', async () => {
  const [a, b] = await Promise.all([join('Ann'), join('Ben')])
  const ann = open(a.token, { stage: 'mission-final' })
  const ben = open(b.token, { stage: 'mission-final' })
  await Promise.all([ann.whenSynced(STEP), ben.whenSynced(STEP)])
  ann.setMission('We build trust.')
  await until(() => ben.mission === 'We build trust.', 'mission at Ben')
  ann.presence.moveCaret('mission', ann.doc.getText('mission'), 3, 8)
  ann.moveCursor(0.5, 0.25)
  ann.setTyping(true)
  await until(() => [...ben.presenceStates.values()].some((s) => s.user.id === a.participant_id && s.caret), 'caret at Ben')
  const st = [...ben.presenceStates.values()].find((s) => s.user.id === a.participant_id)
  ben.editMission(0, { insert: 'Now ' }) // the caret follows its characters
  const pos = vmv.resolveCaret(ben.doc, ben.doc.getText('mission'), st.caret)
  assert.deepEqual(pos, { anchor: 7, head: 12 })
  await until(() => ben.typingUsers.includes('Ann'), 'typing')
  await until(() => [...ben.cursors.values()].some((c) => c.x === 0.5), 'cursor')
  assert.ok(ben.onlineParticipants.has(a.participant_id))
  assert.equal(ann.status, 'connected') // the server accepted the caret field
  assert.equal(ben.status, 'connected')
  ann.destroy()
  ben.destroy()
})

test('refusals: a bad token (4401), a removed participant (4401 with reason)', async () => {
  const [h, p, s] = env.facToken.split('.')
  const bad = open([h, p, s.slice(0, -4) + (s.endsWith('AAAA') ? 'BBBB' : 'AAAA')].join('.'))
  const refused = new Promise((resolve) => bad.on('refused', resolve))
  await refused
  assert.equal(bad.status, 'refused')
  assert.equal(bad.refusal.code, 4401)
  assert.equal(bad.refusal.kind, 'unauthorized')
  assert.equal(bad.canSave, false)
  await assert.rejects(bad.waitSaved(STEP), /refused/)
  bad.destroy()

  const r = await join('Rex')
  const rex = open(r.token)
  await rex.whenSynced(STEP)
  const gone = new Promise((resolve) => rex.on('refused', resolve))
  await http('POST', `/api/workshops/${env.wid}/participants/${r.participant_id}/revoke`, {}, env.facToken)
  const refusal = await gone
  assert.equal(refusal.code, 4401)
  assert.equal(refusal.kind, 'revoked')
  assert.equal(rex.canSave, false)
  assert.equal(rex.status, 'refused')
  rex.destroy()
})

test('votes wait for the ballot; views match the Python client', async () => {
  const fac = open(env.facToken)
  const j = await join('Vic')
  const vic = open(j.token)
  await Promise.all([fac.whenSynced(STEP), vic.whenSynced(STEP)])
  fac.openBallot('b1', 'Which first?', ['Honesty', 'Trust'], { stage: 'values-select' })
  await until(() => vic.votingStats.b1, 'ballot at Vic')
  vic.castVote('b1', 'Trust')
  await vic.waitSaved(STEP)
  const served = await state()
  assert.deepEqual(vic.derived, served)
  assert.equal(served.ballots.b1.counts.find((c) => c.option === 'Trust').count, 1)
  assert.equal(vic.stage, 'values-select')
  assert.ok(Object.keys(vic.participants).includes(j.participant_id))
  assert.throws(() => vic.castVote('nope', 'Trust'), vmv.InvalidAction)
  fac.destroy()
  vic.destroy()
})

test('a refused client id: a fresh replica without those writes saves again', async () => {
  const [a, b] = await Promise.all([join('Ada'), join('Bo')])
  const ada = open(a.token)
  await ada.whenSynced(STEP)
  ada.postMessage('from Ada')
  await ada.waitSaved(STEP)
  // Bo's replica (never synced) happens to use Ada's client id and writes more under it
  const doc = new Y.Doc()
  doc.clientID = ada.doc.clientID
  const bo = open(b.token, { doc, connect: false })
  for (const t of ['b1', 'b2', 'b3']) bo.postMessage(t)
  const refused = new Promise((resolve) => bo.on('refused', resolve))
  bo.connect()
  const refusal = await refused
  assert.equal(refusal.code, 4403)
  assert.equal(refusal.kind, 'client-id-taken')
  assert.equal(refusal.clientId, ada.doc.clientID)
  assert.equal(bo.canSave, true) // recoverable
  const update = await bo.freshReplica()
  const fresh = new Y.Doc()
  Y.applyUpdate(fresh, update)
  assert.notEqual(fresh.clientID, ada.doc.clientID)
  assert.equal(Y.decodeStateVector(Y.encodeStateVector(fresh)).get(ada.doc.clientID), undefined)
  const bo2 = open(b.token, { doc: fresh })
  bo2.postMessage('from Bo, again')
  await bo2.waitSaved(STEP)
  await until(() => ada.messages.some((m) => m.text === 'from Bo, again'), 'Bo at Ada')
  assert.ok(!ada.messages.some((m) => m.text === 'b1'))
  assert.equal(ada.status, 'connected')
})
