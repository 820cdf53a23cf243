// The chat's display order, identical to vmv_sync.derived.chat (docs/client.md, "Chat order").
//
// The `messages` array is append-only in Yjs merge order, which puts concurrent
// appends (an outage, offline writers) in client-id order. Every view sorts instead
// by a hybrid logical clock carried in each message (`hlc`, integer ms): the writer
// sets it to max(its wall clock, the largest clock in its replica + 1), so a message
// sorts after everything its writer saw and, where clocks agree, in the order of
// writing. A message without `hlc` (a contract v1 writer) counts with
// floor(sent_at * 1000). Ties: author, then id, by code point. The reader mirrors
// vmv_sync.schema.parse.parse_message, so both sides keep the same messages.

import * as Y from 'yjs'
import { cmpCodePoints } from './names.js'
import { isStage } from './derived.js'

export const HLC_FIELD = 'hlc'
/** Number.MAX_SAFE_INTEGER: clocks stay exact in a JavaScript number (parse.MAX_CLOCK). */
export const MAX_CLOCK = 2 ** 53 - 1

/** as_float: a finite number (not a boolean), a bigint converted, else null. */
const asNumber = (v) => {
  const n = typeof v === 'number' ? v : (typeof v === 'bigint' ? Number(v) : null)
  return n !== null && Number.isFinite(n) ? n : null
}

/** The optional `hlc`: a whole number of ms in 0..2**53-1, else null (ignored). */
const asClock = (v) => {
  const n = asNumber(v)
  return n !== null && Number.isInteger(n) && n >= 0 && n <= MAX_CLOCK ? n : null
}

/** parse_message: a message Map as plain data, or null when malformed. */
export function parseMessage (item) {
  if (!(item instanceof Y.Map)) return null
  const id = item.get('id')
  const author = item.get('author')
  const text = item.get('text')
  const stage = item.get('stage')
  const sentAt = asNumber(item.get('sent_at'))
  if (typeof id !== 'string' || !id || typeof author !== 'string' || typeof text !== 'string' ||
      sentAt === null || !isStage(stage)) return null
  return { id, author, text, sent_at: sentAt, stage, hlc: asClock(item.get(HLC_FIELD)) }
}

/** Message.clock: `hlc`, else `sent_at` in whole ms. */
export const messageClock = (m) => m.hlc !== null && m.hlc !== undefined
  ? m.hlc
  : Math.min(Math.max(Math.floor(m.sent_at * 1000), 0), MAX_CLOCK)

/** The display order's comparison: (clock, author, id). */
export function compareMessages (a, b) {
  const ca = messageClock(a)
  const cb = messageClock(b)
  if (ca !== cb) return ca < cb ? -1 : 1
  return cmpCodePoints(a.author, b.author) || cmpCodePoints(a.id, b.id)
}

/** ordered_messages: the messages in display order (a new array). */
export const orderedMessages = (messages) => [...messages].sort(compareMessages)

/** The valid messages of a `messages` Y.Array in array order, a repeated id keeping its first. */
export function readMessages (array) {
  const out = []
  const seen = new Set()
  for (const item of array.toArray()) {
    const m = parseMessage(item)
    if (m === null || seen.has(m.id)) continue
    seen.add(m.id)
    out.push(m)
  }
  return out
}

/**
 * A clock more than a day ahead of the writer's own is not followed (schema.actions
 * MAX_AHEAD_MS): one wrong or hostile clock would drag every later message's along.
 */
export const MAX_AHEAD_MS = 24 * 3600 * 1000

/** The `hlc` for a message written at `nowMs` after the messages of `array` (schema.actions._next_clock). */
export function nextClock (array, nowMs) {
  const own = Math.floor(nowMs)
  let latest = -1
  for (const item of array.toArray()) {
    if (!(item instanceof Y.Map)) continue
    let clock = asClock(item.get(HLC_FIELD))
    if (clock === null) {
      const seconds = asNumber(item.get('sent_at'))
      clock = seconds === null ? null : Math.min(Math.max(Math.floor(seconds * 1000), 0), MAX_CLOCK)
    }
    if (clock !== null && clock > latest && clock <= own + MAX_AHEAD_MS) latest = clock
  }
  return Math.min(Math.max(own, latest + 1), MAX_CLOCK)
}
