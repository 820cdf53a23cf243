// Workshop actions on the Yjs document, mirroring vmv_sync.schema.actions.
//
// Each action is one transaction (one Yjs update), validates before writing, and
// follows the document model's conventions: a participant's inner Maps and draft
// Text are created when the participant is added, and an existing inner Map is
// never re-created (two replicas creating the same nested Map concurrently lose
// one of them, with everything written into it).

import * as Y from 'yjs'
import { normalizeValueName, sortedKeys, tidyValueName } from './names.js'
import { STAGES, isStage } from './derived.js'

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

const mapOf = (fields) => {
  const m = new Y.Map()
  for (const [k, v] of Object.entries(fields)) m.set(k, v)
  return m
}

/** The Map at parent[key], created only when absent (or not a Map). */
function innerMap (parent, key) {
  let inner = parent.get(key)
  if (!(inner instanceof Y.Map)) {
    inner = new Y.Map()
    parent.set(key, inner)
  }
  return inner
}

/** ensure_participant_entries: pid's selections/matrix Maps and draft Text, only if absent. */
export function ensureParticipantEntries (r, pid) {
  if (!(r.selections.get(pid) instanceof Y.Map)) r.selections.set(pid, new Y.Map())
  if (!(r.matrix.get(pid) instanceof Y.Map)) r.matrix.set(pid, new Y.Map())
  if (!(r.drafts.get(pid) instanceof Y.Text)) r.drafts.set(pid, new Y.Text())
}

/** new_workshop: meta, the facilitator and the catalogue, in one update. */
export function createWorkshop (doc, { title, pid, name, values = [], maxValues = 10 }) {
  if (!title || !title.trim()) throw new Error('a workshop needs a title')
  const catalogue = values.filter((v) => typeof v === 'string' && normalizeValueName(v))
  const r = roots(doc)
  const stamp = now()
  doc.transact(() => {
    for (const [k, v] of Object.entries({ title, created_at: stamp, schema: SCHEMA_VERSION, stage: STAGES[0], facilitator: pid, max_values: maxValues })) r.meta.set(k, v)
    if (!(r.participants.get(pid) instanceof Y.Map)) {
      r.participants.set(pid, mapOf({ name, role: 'facilitator', joined_at: stamp }))
    }
    ensureParticipantEntries(r, pid)
    if (catalogue.length) r.values.push(catalogue)
  })
}

/** add_participant: add, or update name and role keeping joined_at; inner entries if absent. */
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
    ensureParticipantEntries(r, pid)
  })
}

/** Create pid's missing inner entries only (when the server wrote the participant). */
export function ensureEntries (doc, pid) {
  const r = roots(doc)
  const missing = !(r.selections.get(pid) instanceof Y.Map) || !(r.matrix.get(pid) instanceof Y.Map) || !(r.drafts.get(pid) instanceof Y.Text)
  if (missing) doc.transact(() => ensureParticipantEntries(r, pid))
}

export function postMessage (doc, pid, text, stage) {
  const r = roots(doc)
  const id = crypto.randomUUID().replace(/-/g, '')
  const msgStage = isStage(stage) ? stage : (isStage(r.meta.get('stage')) ? r.meta.get('stage') : STAGES[0])
  r.messages.push([mapOf({ id, author: pid, text, sent_at: now(), stage: msgStage })])
  return id
}

const matchingKeys = (inner, value) => {
  const key = normalizeValueName(value)
  return sortedKeys(inner.keys()).filter((k) => normalizeValueName(k) === key)
}

/** toggle_value: deselect every spelling if selected, else select; returns whether selected. */
export function toggleValue (doc, pid, value) {
  const name = tidyValueName(value)
  if (!normalizeValueName(name)) throw new Error('a value name must not be blank')
  const r = roots(doc)
  let selected = false
  doc.transact(() => {
    const inner = innerMap(r.selections, pid)
    const matches = matchingKeys(inner, name)
    for (const k of matches) inner.delete(k)
    if (!matches.length) { inner.set(name, now()); selected = true }
  })
  return selected
}

export function isSelected (doc, pid, value) {
  const inner = roots(doc).selections.get(pid)
  return inner instanceof Y.Map && matchingKeys(inner, value).length > 0
}

export function selectionCount (doc, pid) {
  const inner = roots(doc).selections.get(pid)
  if (!(inner instanceof Y.Map)) return 0
  return new Set([...inner.keys()].map(normalizeValueName)).size
}

/** rate_value: both scores 1..5; an existing rating of any spelling keeps its key. */
export function rateValue (doc, pid, value, importance, practice) {
  const name = tidyValueName(value)
  if (![importance, practice].every((s) => Number.isInteger(s) && s >= 1 && s <= 5)) throw new Error('scores are 1..5')
  const r = roots(doc)
  doc.transact(() => {
    const inner = innerMap(r.matrix, pid)
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

/** open_ballot: the ballot and its votes Map together, so first votes share one Map. */
export function openBallot (doc, { id, question, options, stage, kind = 'single', maxChoices = 1 }) {
  const opts = [...new Set(options.map((o) => o.trim()).filter(Boolean))]
  if (!question.trim() || !opts.length) throw new Error('a ballot needs a question and options')
  const mc = kind === 'single' ? 1 : Math.max(1, Math.min(maxChoices, opts.length))
  const r = roots(doc)
  doc.transact(() => {
    r.ballots.set(id, mapOf({ question: question.trim(), options: opts, stage, kind, max_choices: mc, open: true }))
    if (!(r.votes.get(id) instanceof Y.Map)) r.votes.set(id, new Y.Map())
  })
}

export function closeBallot (doc, id) {
  const ballot = roots(doc).ballots.get(id)
  if (ballot instanceof Y.Map) ballot.set('open', false)
}

/** cast_vote: an option (single) or a list of options (multi); an empty list retracts. */
export function castVote (doc, ballotId, pid, choice) {
  const r = roots(doc)
  doc.transact(() => {
    const inner = innerMap(r.votes, ballotId)
    if (Array.isArray(choice) && !choice.length) inner.delete(pid)
    else inner.set(pid, choice)
  })
}

export function voteOf (doc, ballotId, pid) {
  const inner = roots(doc).votes.get(ballotId)
  return inner instanceof Y.Map ? inner.get(pid) : undefined
}

/** set_progress: pid's current stage; the stages before it count as completed. */
export function setProgress (doc, pid, stage) {
  const r = roots(doc)
  const existing = r.progress.get(pid)
  const previous = existing instanceof Y.Map && Array.isArray(existing.get('completed')) ? existing.get('completed') : []
  const done = STAGES.filter((s) => previous.includes(s) || STAGES.indexOf(s) < STAGES.indexOf(stage))
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
  if (!isStage(stage)) throw new Error(`unknown stage ${stage}`)
  roots(doc).meta.set('stage', stage)
}

/** The participant's own draft Text (created only if absent). */
export function draftOf (doc, pid) {
  const r = roots(doc)
  let draft = r.drafts.get(pid)
  if (!(draft instanceof Y.Text)) {
    doc.transact(() => ensureParticipantEntries(r, pid))
    draft = r.drafts.get(pid)
  }
  return draft
}
