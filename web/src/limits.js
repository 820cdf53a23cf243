// Limits and refusals on the page (issue 19, finding 6).
//
// Limits: the text boxes hold the package's numbers (MAX_MESSAGE_CHARS for the chat,
// MAX_TEXT_CHARS for the mission, the vision and a draft; web/client/src/limits.js,
// the Python schema's constants) as `maxlength`, and say so under the box once it is
// full. A browser cuts a paste at `maxlength` (UTF-16 units, so never more characters
// than the limit), which is why the sentence matters: the cut is otherwise silent.
//
// Refusals: when the server refuses this device's edits (4413: too large, too costly
// to place, past a storage share; 4403: a write the rules forbid; `refusal.edit` in
// the package), the client has stopped reconnecting (no edit is re-sent in a loop).
// The state line says what happened in one sentence, and one button drops the
// changes the server has not saved (`client.discardUnsaved()`: the IndexedDB replica
// emptied, intents and counts forgotten) and reloads: a fresh Y.Doc syncs the
// workshop as the server has it, and later edits save again.

import { MAX_MESSAGE_CHARS, MAX_TEXT_CHARS } from '@vmv-sync/client'
import * as idb from 'lib0/indexeddb'

const number = (n) => n.toLocaleString('en-GB')

/** The sentence under a full box; `what` is 'message', 'mission', 'vision' or 'draft'. */
export function limitSentence (what) {
  if (what === 'message') return `A message can hold at most ${number(MAX_MESSAGE_CHARS)} characters.`
  const name = { mission: 'The mission', vision: 'The vision', draft: 'Your draft' }[what] || 'This text'
  return `${name} can hold at most ${number(MAX_TEXT_CHARS)} characters.`
}

/**
 * Give `box` (an input or textarea) its limit and keep `note` (a .limit-note) showing
 * the sentence while the box is full. Returns `check()`, to call after programmatic
 * changes (a remote edit can fill the box too).
 */
export function holdLimit (box, note, what) {
  const max = what === 'message' ? MAX_MESSAGE_CHARS : MAX_TEXT_CHARS
  box.maxLength = max
  note.textContent = limitSentence(what)
  const check = () => { note.hidden = box.value.length < max }
  box.addEventListener('input', check)
  check()
  return check
}

/**
 * One sentence the user can act on, for a refusal of this device's edits. The
 * server's reason decides which (vmv_sync/server: transport.py, admission.py, guard.py).
 */
export function refusalSentence (refusal) {
  const reason = String(refusal.reason || '')
  const byteLimit = /over the (\d+) byte limit/.exec(reason)
  if (refusal.code === 4413 && byteLimit) {
    return `The server refused a change made here because it is too large to send (over ${number(Number(byteLimit[1]))} bytes): discard the unsaved changes, then make it in smaller parts.`
  }
  if (/smaller parts/.test(reason)) {
    return 'The server refused a change made here as too much work at once: discard the unsaved changes, then make it in smaller parts.'
  }
  if (/your share/.test(reason)) {
    return 'You have written your share of this workshop\'s storage, so the server refused your latest changes: discard them, and ask the facilitator before writing more.'
  }
  if (/nearly full/.test(reason)) {
    return 'This workshop is nearly full, so only the facilitator can still write: discard the unsaved changes and ask the facilitator.'
  }
  if (/storage quota/.test(reason)) {
    return 'This workshop has reached its storage limit, so the server refused your latest changes: discard them; the server\'s operator can raise the limit.'
  }
  const why = reason ? ` (${reason.replace(/[.;:\s]+$/, '')})` : ''
  return `The server refused a change made here${why}: discard the unsaved changes to keep working.`
}

/** The one action's label: what it drops. */
export function discardLabel (edits) {
  return edits > 0
    ? `Discard ${edits === 1 ? 'the unsaved change' : `${edits} unsaved changes`} and reconnect`
    : 'Discard unsaved changes and reconnect'
}

/**
 * Empty the IndexedDB replica `name` (y-indexeddb's `updates` store) in place. Not
 * y-indexeddb's `clearData()`, which deletes the database: another open tab of the
 * same participant would lose its connection to it (lib0 closes it on the
 * deletion's versionchange) and with it every later update, its own included.
 */
export async function clearReplica (name) {
  const db = await idb.openDB(name, (d) => idb.createStores(d, [['updates', { autoIncrement: true }], ['custom']]))
  try {
    const [updates] = idb.transact(db, ['updates'])
    await idb.rtop(updates.clear())
  } finally {
    db.close()
  }
}

/** What Activity says after the reload. */
export function droppedNote (edits) {
  const what = edits === 1 ? 'The unsaved change made here was dropped'
    : edits > 1 ? `${edits} unsaved changes made here were dropped` : 'The unsaved changes made here were dropped'
  return `${what}; this page shows the workshop as the server has it.`
}
