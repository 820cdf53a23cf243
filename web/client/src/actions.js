// Workshop actions on the Yjs document, mirroring vmv_sync.schema.actions.
//
// Each action is one transaction (one Yjs update) and validates before writing.
// Containers are created exactly once, by the server: a participant's
// `selections[pid]` and `matrix[pid]` Maps and `drafts[pid]` Text (at join, or
// when a participant entry appears with --no-auth), and a ballot's `votes` Map
// together with the ballot. These functions never create them: when the container
// is not (yet) in this replica they throw `MissingContainer`, and the client
// (client.js) keeps the action as an intent until the container arrives. Two
// replicas creating the same nested type concurrently keep only one of them, with
// everything written into the other lost; that is why nobody else creates them.
//
// Shared types created here cannot race that way: a message Map is a new array
// element, a ballot (with its votes Map) has a fresh id and one author, the
// facilitator's meta fields are plain values, and `progress[pid]` is a Map of
// plain values that only pid's replicas write (two new devices of one participant
// creating it concurrently lose one device's current stage, which the next stage
// change rewrites; see docs/web.md).

import * as Y from 'yjs'
import { normalizeValueName, sortedKeys, tidyValueName } from './names.js'
import { STAGES, isStage } from './derived.js'
import { nextClock } from './chat.js'
import { MAX_MESSAGE_CHARS, MAX_TEXT_CHARS, charCount } from './limits.js'

export { MAX_MESSAGE_CHARS, MAX_TEXT_CHARS }

export const SCHEMA_VERSION = 1
const now = () => Date.now() / 1000

export const roots = (doc) => ({
  meta: doc.getMap('meta'),
  participants: doc.getMap('participants'),
  messages: doc.getArray('messages'),
  selections: doc.getMap('selections'),
  values: doc.getArray('values'),
  ballots: doc.getMap('ballots'),
  votes: doc.getMap('votes'),
  matrix: doc.getMap('matrix'),
  progress: doc.getMap('progress'),
  drafts: doc.getMap('drafts'),
  mission: doc.getText('mission'),
  vision: doc.getText('vision')
})

/** An action's container is not in this replica yet (the server creates it). */
export class MissingContainer extends Error {
  constructor (root, key) {
    super(`${root}[${key}] is not in this replica yet`)
    this.name = 'MissingContainer'
    this.root = root
    this.key = key
  }
}

/** An action the arguments or the document do not allow (InvalidAction in Python). */
export class InvalidAction extends Error {
  constructor (message) { super(message); this.name = 'InvalidAction' }
}

/**
 * A message or text over its limit (limits.js, the Python schema's numbers): nothing
 * is written. `limit` and `length` are in characters; `what` is 'message' or 'text'.
 */
export class TooLong extends InvalidAction {
  constructor (what, limit, length, message) {
    super(message)
    this.name = 'TooLong'
    this.what = what
    this.limit = limit
    this.length = length
  }
}

const mapOf = (fields) => {
  const m = new Y.Map()
  for (const [k, v] of Object.entries(fields)) m.set(k, v)
  return m
}

function container (doc, root, key, type) {
  const inner = doc.getMap(root).get(key)
  if (!(inner instanceof type)) throw new MissingContainer(root, key)
  return inner
}

/** Whether the container an action needs is present: ['selections', pid] etc. */
export function hasContainer (doc, root, key) {
  const inner = doc.getMap(root).get(key)
  return root === 'drafts' ? inner instanceof Y.Text : inner instanceof Y.Map
}

/** new_workshop: meta, the facilitator's participant entry and the catalogue (--no-auth pages). */
export function createWorkshop (doc, { title, pid, name, values = [], maxValues = 10 }) {
  if (typeof title !== 'string' || !title.trim()) throw new InvalidAction('a workshop needs a title')
  const catalogue = values.filter((v) => typeof v === 'string' && normalizeValueName(v))
  const r = roots(doc)
  const stamp = now()
  doc.transact(() => {
    for (const [k, v] of Object.entries({ title, created_at: stamp, schema: SCHEMA_VERSION, stage: STAGES[0], facilitator: pid, max_values: maxValues })) r.meta.set(k, v)
    if (!(r.participants.get(pid) instanceof Y.Map)) {
      r.participants.set(pid, mapOf({ name, role: 'facilitator', joined_at: stamp }))
    }
    if (catalogue.length) r.values.push(catalogue)
  })
}

/** add_participant: add, or update name and role keeping joined_at. Never its containers. */
export function addParticipant (doc, pid, name, role = 'participant') {
  const r = roots(doc)
  doc.transact(() => {
    const existing = r.participants.get(pid)
    if (existing instanceof Y.Map && existing.has('joined_at')) {
      if (existing.get('name') !== name) existing.set('name', name)
      if (existing.get('role') !== role) existing.set('role', role)
    } else {
      r.participants.set(pid, mapOf({ name, role, joined_at: now() }))
    }
  })
}

export function postMessage (doc, pid, text, stage, messageId) {
  if (typeof text !== 'string' || !text.trim()) throw new InvalidAction('a message must not be blank')
  if (text.length > MAX_MESSAGE_CHARS && charCount(text) > MAX_MESSAGE_CHARS) {
    const n = charCount(text)
    throw new TooLong('message', MAX_MESSAGE_CHARS, n, `a chat message may hold ${MAX_MESSAGE_CHARS} characters, not ${n}; split it or shorten it`)
  }
  const r = roots(doc)
  const id = messageId || crypto.randomUUID().replace(/-/g, '')
  const msgStage = isStage(stage) ? stage : (isStage(r.meta.get('stage')) ? r.meta.get('stage') : STAGES[0])
  const sentAt = now()
  // hlc: a hybrid logical clock, so the message sorts after all it follows (chat.js)
  const hlc = nextClock(r.messages, sentAt * 1000)
  r.messages.push([mapOf({ id, author: pid, text, sent_at: sentAt, stage: msgStage, hlc })])
  return id
}

const matchingKeys = (inner, value) => {
  const key = normalizeValueName(value)
  return sortedKeys(inner.keys()).filter((k) => normalizeValueName(k) === key)
}

function valueName (value) {
  const name = tidyValueName(String(value ?? ''))
  if (!normalizeValueName(name)) throw new InvalidAction('a value name must not be blank')
  return name
}

/** toggle_value: deselect every spelling if selected, else select; returns whether selected. */
export function toggleValue (doc, pid, value) {
  const name = valueName(value)
  const inner = container(doc, 'selections', pid, Y.Map)
  let selected = false
  doc.transact(() => {
    const matches = matchingKeys(inner, name)
    for (const k of matches) inner.delete(k)
    if (!matches.length) { inner.set(name, now()); selected = true }
  })
  return selected
}

export function selectValue (doc, pid, value) {
  const name = valueName(value)
  const inner = container(doc, 'selections', pid, Y.Map)
  if (!matchingKeys(inner, name).length) inner.set(name, now())
}

export function deselectValue (doc, pid, value) {
  const name = valueName(value)
  const inner = container(doc, 'selections', pid, Y.Map)
  const matches = matchingKeys(inner, name)
  if (matches.length) doc.transact(() => { for (const k of matches) inner.delete(k) })
}

export function isSelected (doc, pid, value) {
  const inner = roots(doc).selections.get(pid)
  return inner instanceof Y.Map && matchingKeys(inner, value).length > 0
}

export function selectedValues (doc, pid) {
  const inner = roots(doc).selections.get(pid)
  return inner instanceof Y.Map ? sortedKeys(inner.keys()) : []
}

export function selectionCount (doc, pid) {
  const inner = roots(doc).selections.get(pid)
  if (!(inner instanceof Y.Map)) return 0
  return new Set([...inner.keys()].map(normalizeValueName)).size
}

export function setCatalogue (doc, values) {
  const r = roots(doc)
  const clean = values.filter((v) => typeof v === 'string' && normalizeValueName(v))
  doc.transact(() => {
    if (r.values.length) r.values.delete(0, r.values.length)
    if (clean.length) r.values.push(clean)
  })
}

/** rate_value: both scores 1..5; an existing rating of any spelling keeps its key. */
export function rateValue (doc, pid, value, importance, practice) {
  const name = valueName(value)
  if (![importance, practice].every((s) => Number.isInteger(s) && s >= 1 && s <= 5)) throw new InvalidAction('scores are 1..5')
  const inner = container(doc, 'matrix', pid, Y.Map)
  doc.transact(() => {
    const matches = matchingKeys(inner, name)
    const key = matches.length ? matches[0] : name
    for (const extra of matches.slice(1)) inner.delete(extra)
    inner.set(key, { importance, practice })
  })
}

export function ratingOf (doc, pid, value) {
  const inner = roots(doc).matrix.get(pid)
  if (!(inner instanceof Y.Map)) return null
  const matches = matchingKeys(inner, value)
  return matches.length ? inner.get(matches[0]) : null
}

/** open_ballot: the ballot and its votes Map in one update, so first votes share one Map. */
export function openBallot (doc, { id, question, options, stage, kind = 'single', maxChoices = 1 }) {
  const opts = [...new Set(options.map((o) => String(o).trim()).filter(Boolean))]
  if (!String(question || '').trim() || !opts.length) throw new InvalidAction('a ballot needs a question and options')
  if (!isStage(stage)) throw new InvalidAction(`unknown stage ${stage}`)
  if (kind !== 'single' && kind !== 'multi') throw new InvalidAction(`unknown ballot kind ${kind}`)
  const r = roots(doc)
  if (r.ballots.has(id)) throw new InvalidAction(`ballot ${id} exists`)
  const mc = kind === 'single' ? 1 : Math.max(1, Math.min(maxChoices, opts.length))
  doc.transact(() => {
    r.ballots.set(id, mapOf({ question: question.trim(), options: opts, stage, kind, max_choices: mc, open: true }))
    r.votes.set(id, new Y.Map())
  })
}

function ballotOf (doc, id) {
  const ballot = roots(doc).ballots.get(id)
  if (!(ballot instanceof Y.Map)) throw new InvalidAction(`unknown ballot ${id}`)
  return ballot
}

export function closeBallot (doc, id) {
  ballotOf(doc, id).set('open', false)
}

/** cast_vote: an option (single) or a list of options (multi); an empty list retracts. */
export function castVote (doc, ballotId, pid, choice) {
  const ballot = ballotOf(doc, ballotId)
  if (ballot.get('open') === false) throw new InvalidAction('this ballot is closed')
  const options = ballot.get('options') || []
  const picks = Array.isArray(choice) ? choice : [choice]
  if (!picks.every((p) => options.includes(p))) throw new InvalidAction('not an option of this ballot')
  if (ballot.get('kind') === 'single' && Array.isArray(choice)) throw new InvalidAction('a single-choice ballot takes one option')
  if (Array.isArray(choice) && choice.length > (ballot.get('max_choices') || 1)) throw new InvalidAction('too many choices')
  const inner = container(doc, 'votes', ballotId, Y.Map)
  if (Array.isArray(choice) && !choice.length) inner.delete(pid)
  else inner.set(pid, choice)
}

export function retractVote (doc, ballotId, pid) {
  ballotOf(doc, ballotId)
  const inner = container(doc, 'votes', ballotId, Y.Map)
  if (inner.has(pid)) inner.delete(pid)
}

export function voteOf (doc, ballotId, pid) {
  const inner = roots(doc).votes.get(ballotId)
  return inner instanceof Y.Map ? inner.get(pid) : undefined
}

/** set_progress: pid's current stage; the stages before it count as completed. */
export function setProgress (doc, pid, stage, completed = null) {
  if (!isStage(stage)) throw new InvalidAction(`unknown stage ${stage}`)
  const r = roots(doc)
  const existing = r.progress.get(pid)
  const previous = existing instanceof Y.Map && Array.isArray(existing.get('completed')) ? existing.get('completed') : []
  const done = completed || STAGES.filter((s) => previous.includes(s) || STAGES.indexOf(s) < STAGES.indexOf(stage))
  const fields = { stage, completed: done, updated_at: now() }
  doc.transact(() => {
    if (existing instanceof Y.Map) {
      for (const [k, v] of Object.entries(fields)) existing.set(k, v)
    } else {
      r.progress.set(pid, mapOf(fields))
    }
  })
}

export function setStage (doc, stage) {
  if (!isStage(stage)) throw new InvalidAction(`unknown stage ${stage}`)
  roots(doc).meta.set('stage', stage)
}

/** The participant's own draft Text, or null while the server's has not arrived. */
export function draftOf (doc, pid) {
  const draft = roots(doc).drafts.get(pid)
  return draft instanceof Y.Text ? draft : null
}

/** Python's edit_text rule: an edit that grows a text past MAX_TEXT_CHARS is refused (shrinking is not). */
function checkTextLength (text, index, del, ins) {
  if (!ins || text.length - del + ins.length <= MAX_TEXT_CHARS) return // UTF-16 units >= characters
  const current = text.toString()
  const removed = charCount(current.slice(index, index + del))
  const added = charCount(ins)
  const length = charCount(current) - removed + added
  if (added > removed && length > MAX_TEXT_CHARS) {
    throw new TooLong('text', MAX_TEXT_CHARS, length, `the text would be ${length} characters long, over the limit of ${MAX_TEXT_CHARS}; shorten it`)
  }
}

function editText (text, index, del, ins) {
  if (!Number.isInteger(index) || index < 0 || index > text.length) throw new InvalidAction('index out of range')
  checkTextLength(text, index, Math.min(del, text.length - index), ins)
  text.doc.transact(() => {
    if (del) text.delete(index, Math.min(del, text.length - index))
    if (ins) text.insert(index, ins)
  })
}

function replaceText (text, value) {
  const before = text.toString()
  if (before === value) return
  let p = 0
  while (p < before.length && p < value.length && before[p] === value[p]) p++
  let s = 0
  while (s < before.length - p && s < value.length - p && before[before.length - 1 - s] === value[value.length - 1 - s]) s++
  editText(text, p, before.length - p - s, value.slice(p, value.length - s))
}

export const setDraft = (doc, pid, text) => replaceText(container(doc, 'drafts', pid, Y.Text), text)
export const editDraft = (doc, pid, index, del = 0, ins = '') => editText(container(doc, 'drafts', pid, Y.Text), index, del, ins)
export const setMission = (doc, text) => replaceText(roots(doc).mission, text)
export const editMission = (doc, index, del = 0, ins = '') => editText(roots(doc).mission, index, del, ins)
export const setVision = (doc, text) => replaceText(roots(doc).vision, text)
export const editVision = (doc, index, del = 0, ins = '') => editText(roots(doc).vision, index, del, ins)
