// Node tests of WorkshopClient.refreshToken (extension message 101, docs/auth.md)
// against a real server, started with a known secret by test_package_token_refresh.py.
// Tokens are signed here (HS256, TokenIssuer's claims) right before they are used,
// so a token of a few seconds lives that long from this side. Every wait is for an
// event or a condition, bounded; none is a fixed sleep.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, randomUUID } from 'node:crypto'
import { env, opener, STEP, until, vmv } from './harness.mjs'
const { decodeToken } = vmv

const b64url = (data) => Buffer.from(data).toString('base64url')
/** A token as vmv_sync.server.tokens.TokenIssuer.issue signs it, living `ttl` seconds from now. */
function issue (member, ttl) {
  const now = Math.floor(Date.now() / 1000)
  const claims = { sub: member.pid, name: member.name, role: member.role, wid: env.wid, iat: now, exp: now + ttl, jti: randomUUID().replace(/-/g, '') }
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims))
  return head + '.' + createHmac('sha256', env.secret).update(head).digest('base64url')
}
const expOf = (token) => decodeToken(token).exp

async function exported () {
  const res = await fetch(`${env.url}/workshops/${env.wid}/export?format=json`, { headers: { authorization: `Bearer ${env.facToken}` }, signal: AbortSignal.timeout(STEP) })
  return JSON.stringify(await res.json())
}

const open = opener({ maxBackoffTime: 500 })

const nextEvent = (client, name, ms = STEP) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`no '${name}' within ${ms} ms`)), ms)
  client.once(name, (...args) => { clearTimeout(timer); resolve(args) })
})

test('a refresh keeps the same socket open past the old expiry and resolves with the new exp', async () => {
  const short = issue(env.ann, 4)
  const ann = open(short)
  const control = open(issue(env.ann, 4)) // the same participant and expiry, never refreshed
  const controlRefused = nextEvent(control, 'refused', 20000)
  await Promise.all([ann.whenSynced(STEP), control.whenSynced(STEP)])
  const socket = ann.provider.ws
  const fresh = issue(env.ann, 600)
  const exp = await ann.refreshToken(fresh, { timeout: STEP })
  assert.equal(exp, expOf(fresh))
  assert.equal(ann.token, fresh)
  assert.equal(ann.provider.params.token, fresh) // every later reconnect carries it

  // the unrefreshed peer is closed at the old exp with 4401, and behaves as before: refused, stopped
  const [refusal] = await controlRefused
  assert.ok(Date.now() / 1000 >= expOf(short), 'closed before the old exp')
  assert.equal(refusal.code, 4401)
  assert.equal(refusal.kind, 'unauthorized')
  assert.match(refusal.reason, /expired/)
  assert.equal(control.status, 'refused')
  assert.equal(control.canSave, false)
  assert.equal(control.provider.shouldConnect, false)

  // past the old exp, the refreshed client is on the same socket and saves
  assert.equal(ann.provider.ws, socket)
  assert.equal(ann.status, 'connected')
  assert.equal(ann.refusal, null)
  ann.postMessage('after the old expiry')
  await ann.waitSaved(STEP)
  assert.equal(ann.provider.ws, socket)
  assert.ok((await exported()).includes('after the old expiry'))
  ann.destroy()
  control.destroy()
})

test('a refused refresh rejects; the client reconnects with its old token and saves', async () => {
  const mine = issue(env.ann, 600)
  const ann = open(mine)
  const refusals = []
  ann.on('refused', (r) => refusals.push(r))
  await ann.whenSynced(STEP)

  const [h, p, s] = issue(env.ann, 600).split('.')
  const badSignature = [h, p, (s[0] === 'A' ? 'B' : 'A') + s.slice(1)].join('.')
  for (const [token, code] of [[env.bob.token, 4403], [badSignature, 4401]]) {
    const socket = ann.provider.ws
    const err = await ann.refreshToken(token, { timeout: STEP }).then(() => null, (e) => e)
    assert.ok(err instanceof Error, 'the refresh was not rejected')
    assert.equal(err.refused, true)
    assert.equal(err.code, code)
    assert.ok(err.reason.startsWith('token refresh:'), err.reason)
    assert.equal(ann.token, mine) // the old token is kept, for the reconnect too
    assert.equal(ann.provider.params.token, mine)
    assert.equal(ann.refusal, null)
    await until(() => ann.provider.ws !== socket && ann.status === 'connected', 'a new connection')
    assert.equal(new URL(ann.provider.ws.url).searchParams.get('token'), mine)
    ann.postMessage(`saved after a ${code} refusal`)
    await ann.waitSaved(STEP)
    assert.ok((await exported()).includes(`saved after a ${code} refusal`))
  }
  assert.deepEqual(refusals, []) // no 'refused' event: nothing for a page to show
  assert.equal(ann.canSave, true)
  ann.destroy()
})

test('a refresh asked for while the socket opens is sent once it is open', async () => {
  const ann = open(issue(env.ann, 600), { connect: false })
  const fresh = issue(env.ann, 900)
  let pending = null
  ann.provider.on('status', (e) => {
    if (e.status === 'connecting' && pending === null) {
      assert.equal(ann.provider.ws.readyState, 0)
      pending = ann.refreshToken(fresh, { timeout: STEP })
    }
  })
  ann.connect()
  await until(() => pending !== null, 'the socket opening')
  assert.equal(await pending, expOf(fresh))
  assert.equal(ann.provider.params.token, fresh)
  await ann.whenSynced(STEP)
  ann.destroy()
})

test('offline, a refresh only keeps the token, and the next connection carries it', async () => {
  const expired = issue(env.ann, -120) // the server would refuse this one at connect
  const ann = open(expired, { connect: false })
  await assert.rejects(ann.refreshToken(env.bob.token), /another participant/) // checked here: no server to ask
  await assert.rejects(ann.refreshToken(''), /empty/)
  assert.equal(ann.token, expired)
  const fresh = issue(env.ann, 600)
  assert.equal(await ann.refreshToken(fresh), null)
  assert.equal(ann.token, fresh)
  assert.equal(ann.provider.params.token, fresh)
  ann.connect()
  await ann.whenSynced(STEP) // rejects on a refusal: the expired token would be one
  assert.equal(ann.status, 'connected')

  // after disconnect(), the same
  ann.disconnect()
  await until(() => ann.status === 'offline', 'offline')
  const later = issue(env.ann, 700)
  assert.equal(await ann.refreshToken(later), null)
  assert.equal(ann.provider.params.token, later)
  ann.connect()
  await ann.whenSynced(STEP)
  const again = issue(env.ann, 800)
  assert.equal(await ann.refreshToken(again), expOf(again)) // connected again: sent, answered
  ann.destroy()
})
