// What every Node test of @vmv-sync/client shares: the test environment the Python
// side passes in VMV_TEST, the package imported the way an npm user gets it
// (resolved through npm's workspace link in web/node_modules), and bounded waits.

import { after } from 'node:test'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

export const env = JSON.parse(process.env.VMV_TEST || '{}')
const require = createRequire(env.webDir + '/package.json')
export const vmv = await import(pathToFileURL(require.resolve('@vmv-sync/client')).href)
export const WebSocket = require('ws')

export const STEP = 10000 // ms: every wait is bounded

/** A JSON request to the test server (bounded by STEP). */
export async function http (method, path, body, token) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(env.url + path, { method, headers, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(STEP) })
  return res.json()
}

/** Resolve once pred() holds (an exception counts as not yet), reject after ms. */
export function until (pred, what, ms = STEP) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const tick = () => {
      let ok = false
      try { ok = pred() } catch { ok = false }
      if (ok) return resolve()
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`))
      setTimeout(tick, 20)
    }
    tick()
  })
}

/**
 * open(token, opts): a WorkshopClient on the test workshop with these defaults,
 * destroyed when the file's tests end. Call at the top level of a test file.
 */
export function opener (defaults = {}) {
  const opened = []
  after(() => { for (const c of opened) c.destroy() })
  return (token, opts = {}) => {
    const c = new vmv.WorkshopClient({ url: env.ws, workshopId: env.wid, token, WebSocket, ...defaults, ...opts })
    opened.push(c)
    return c
  }
}
