// Derived state in the browser, following docs/derived-state.md exactly so that the
// page shows the same numbers as GET /workshops/{id}/state and the Python client:
// the same tolerant reader (what is skipped), the same value-name keys, exact
// integer arithmetic with half-up rounding, and code-point ordering of keys.
//
// The Yjs module is passed in (not imported) so that the Node interop tests can run
// this file against their own copy of yjs: `instanceof` only works within one copy.

import { chooseDisplayName, cmpCodePoints, normalizeValueName, sortedKeys, tidyValueName } from './names.js'

export const STAGES = ['values-select', 'values-collective', 'values-matrix', 'mission-draft', 'mission-final', 'vision']
export const STAGE_TITLES = {
  'values-select': 'Select values',
  'values-collective': 'Collective values',
  'values-matrix': 'Values matrix',
  'mission-draft': 'Mission draft',
  'mission-final': 'Final mission',
  vision: 'Vision'
}
export const ROLES = ['facilitator', 'participant', 'observer']
const ELIGIBLE = new Set(['participant', 'facilitator'])
const KINDS = ['single', 'multi']

export const isStage = (v) => typeof v === 'string' && STAGES.includes(v)

/** as_int: an integer-valued finite number (booleans never count). */
export function asInt (v) {
  if (typeof v === 'bigint') return Number(v)
  return typeof v === 'number' && Number.isInteger(v) ? v : null
}

/** as_float: a finite number. */
export function asFloat (v) {
  if (typeof v === 'bigint') return Number(v)
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

const isPlainObject = (Y, v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Y.AbstractType) && !(v instanceof Uint8Array)

function parseParticipant (Y, v) {
  if (!(v instanceof Y.Map)) return null
  const name = v.get('name')
  const role = v.get('role')
  const joinedAt = asFloat(v.get('joined_at'))
  if (typeof name !== 'string' || !ROLES.includes(role) || joinedAt === null) return null
  return { name, role, joined_at: joinedAt }
}

function parseSelection (Y, v) {
  if (!(v instanceof Y.Map)) return [null, 1]
  let skipped = 0
  const result = new Map()
  for (const name of sortedKeys(v.keys())) {
    const ts = asFloat(v.get(name))
    if (ts === null || !normalizeValueName(name)) { skipped++; continue }
    result.set(name, ts)
  }
  return [result, skipped]
}

function parseBallot (Y, v) {
  if (!(v instanceof Y.Map)) return null
  const question = v.get('question')
  const options = v.get('options')
  const stage = v.get('stage')
  const kind = v.get('kind')
  const maxChoices = asInt(v.get('max_choices'))
  const open = v.get('open')
  if (
    typeof question !== 'string' ||
    !Array.isArray(options) || !options.length ||
    !options.every((o) => typeof o === 'string' && o) ||
    new Set(options).size !== options.length ||
    !isStage(stage) || !KINDS.includes(kind) ||
    maxChoices === null || maxChoices < 1 || maxChoices > options.length ||
    (kind === 'single' && maxChoices !== 1) ||
    typeof open !== 'boolean'
  ) return null
  return { question, options: [...options], stage, kind, max_choices: maxChoices, open }
}

function parseBallotVotes (Y, v) {
  if (!(v instanceof Y.Map)) return [null, 1]
  let skipped = 0
  const result = new Map()
  for (const pid of sortedKeys(v.keys())) {
    const choice = v.get(pid)
    if (typeof choice === 'string') result.set(pid, choice)
    else if (Array.isArray(choice) && choice.every((c) => typeof c === 'string')) result.set(pid, [...choice])
    else skipped++
  }
  return [result, skipped]
}

function parseRating (Y, v) {
  if (!isPlainObject(Y, v)) return null
  const importance = asInt(v.importance)
  const practice = asInt(v.practice)
  if (importance === null || practice === null) return null
  if (importance < 1 || importance > 5 || practice < 1 || practice > 5) return null
  return { importance, practice }
}

function parseRatings (Y, v) {
  if (!(v instanceof Y.Map)) return [null, 1]
  let skipped = 0
  const result = new Map()
  for (const name of sortedKeys(v.keys())) {
    const rating = parseRating(Y, v.get(name))
    if (rating === null || !normalizeValueName(name)) { skipped++; continue }
    result.set(name, rating)
  }
  return [result, skipped]
}

function parseProgress (Y, v) {
  if (!(v instanceof Y.Map)) return null
  const stage = v.get('stage')
  const completed = v.get('completed')
  const updatedAt = asFloat(v.get('updated_at'))
  if (!isStage(stage) || !Array.isArray(completed) || !completed.every(isStage) || updatedAt === null) return null
  return { stage, completed: STAGES.filter((s) => completed.includes(s)), updated_at: updatedAt }
}

/** Parse a keyed root with a parser returning an entry or null (null counts 1 skipped). */
function keyed (Y, root, parse) {
  const result = new Map()
  let skipped = 0
  for (const key of sortedKeys(root.keys())) {
    const parsed = parse(Y, root.get(key))
    if (Array.isArray(parsed)) {
      skipped += parsed[1]
      if (parsed[0] !== null) result.set(key, parsed[0])
    } else if (parsed === null) {
      skipped++
    } else {
      result.set(key, parsed)
    }
  }
  return [result, skipped]
}

/**
 * Read the roots derived state needs, skipping and counting malformed entries
 * (docs/derived-state.md "Tolerance"). Maps are in code-point key order.
 */
export function readWorkshop (doc, Y) {
  const [participants, sP] = keyed(Y, doc.getMap('participants'), parseParticipant)
  const [selections, sS] = keyed(Y, doc.getMap('selections'), parseSelection)
  const [ballots, sB] = keyed(Y, doc.getMap('ballots'), parseBallot)
  const [votes, sV] = keyed(Y, doc.getMap('votes'), parseBallotVotes)
  const [matrix, sM] = keyed(Y, doc.getMap('matrix'), parseRatings)
  const [progress, sPr] = keyed(Y, doc.getMap('progress'), parseProgress)
  const values = []
  let sVal = 0
  for (const item of doc.getArray('values').toArray()) {
    if (typeof item === 'string' && normalizeValueName(item)) values.push(item)
    else sVal++
  }
  return { participants, selections, ballots, votes, matrix, progress, values, skipped: sP + sS + sB + sV + sM + sPr + sVal }
}

/** |num/den| rounded half up to `places` decimals, with the sign of num (den > 0). */
export function roundFraction (num, den, places) {
  const scale = 10 ** places
  const a = Math.abs(num)
  const r = Math.floor((2 * a * scale + den) / (2 * den))
  const signed = num < 0 ? -r : r
  return signed === 0 ? 0 : signed / scale
}

export const roundRatio = (num, den, places) => (den === 0 ? 0 : roundFraction(num, den, places))

function catalogueByKey (catalogue) {
  const groups = new Map()
  for (const entry of catalogue) {
    const key = normalizeValueName(entry)
    if (!groups.has(key)) groups.set(key, [])
    groups.get(key).push(entry)
  }
  return groups
}

const byCountThenKey = (a, b) => (b.count - a.count) || cmpCodePoints(a.key, b.key)

/** Value stats: count, percent of selectors (1 decimal, half up), sorted by count then key. */
export function valueStats (data) {
  const pidsByKey = new Map()
  const spellings = new Map()
  let selectors = 0
  for (const [pid, names] of data.selections) {
    if (!names.size) continue
    selectors++
    const used = new Map()
    for (const raw of names.keys()) {
      const key = normalizeValueName(raw)
      if (!used.has(key)) used.set(key, new Set())
      used.get(key).add(tidyValueName(raw))
    }
    for (const [key, tidied] of used) {
      if (!pidsByKey.has(key)) pidsByKey.set(key, new Set())
      pidsByKey.get(key).add(pid)
      if (!spellings.has(key)) spellings.set(key, new Map())
      const counts = spellings.get(key)
      for (const s of tidied) counts.set(s, (counts.get(s) || 0) + 1)
    }
  }
  const fromCatalogue = catalogueByKey(data.values)
  const keys = new Set([...pidsByKey.keys(), ...fromCatalogue.keys()])
  const stats = []
  for (const key of keys) {
    const pids = sortedKeys(pidsByKey.get(key) || [])
    stats.push({
      name: chooseDisplayName(spellings.get(key) || new Map(), fromCatalogue.get(key) || []),
      key,
      count: pids.length,
      percent: roundRatio(100 * pids.length, selectors, 1),
      participants: pids
    })
  }
  return stats.sort(byCountThenKey)
}

function validPicks (ballot, choice) {
  if (ballot.kind === 'single') return typeof choice === 'string' && ballot.options.includes(choice) ? [choice] : null
  if (typeof choice === 'string') return null
  const picks = new Set(choice)
  if (!choice.length || picks.size !== choice.length || picks.size > ballot.max_choices) return null
  if (![...picks].every((p) => ballot.options.includes(p))) return null
  return choice
}

/** Tallies per ballot id (code-point order) and the number of ignored votes. */
export function tallies (data) {
  const eligible = new Set([...data.participants].filter(([, p]) => ELIGIBLE.has(p.role)).map(([pid]) => pid))
  const result = {}
  let ignoredTotal = 0
  for (const [bid, ballot] of data.ballots) {
    const counts = new Map(ballot.options.map((o) => [o, 0]))
    let voters = 0
    let ignored = 0
    for (const [pid, choice] of data.votes.get(bid) || new Map()) {
      const picks = eligible.has(pid) ? validPicks(ballot, choice) : null
      if (picks === null) { ignored++; continue }
      voters++
      for (const p of picks) counts.set(p, counts.get(p) + 1)
    }
    const top = Math.max(...counts.values())
    result[bid] = {
      question: ballot.question,
      kind: ballot.kind,
      stage: ballot.stage,
      open: ballot.open,
      max_choices: ballot.max_choices,
      counts: ballot.options.map((o) => ({ option: o, count: counts.get(o) })),
      voters,
      eligible: eligible.size,
      turnout: roundRatio(voters, eligible.size, 3),
      winners: ballot.options.filter((o) => top > 0 && counts.get(o) === top),
      ignored
    }
    ignoredTotal += ignored
  }
  for (const [bid, votes] of data.votes) if (!data.ballots.has(bid)) ignoredTotal += votes.size
  return [result, ignoredTotal]
}

/** Participants per stage, every stage present, in stage order. */
export function participantsByStage (data) {
  const counts = Object.fromEntries(STAGES.map((s) => [s, 0]))
  for (const entry of data.progress.values()) counts[entry.stage]++
  return counts
}

/** Matrix summary: exact means and gap rounded half up to 3 decimals, by gap desc then key. */
export function matrixSummary (data) {
  const perKey = new Map()
  const spellings = new Map()
  for (const [, ratings] of data.matrix) {
    const chosen = new Map()
    for (const raw of ratings.keys()) { // already in code-point order
      const key = normalizeValueName(raw)
      if (!chosen.has(key)) chosen.set(key, [raw, ratings.get(raw)])
    }
    for (const [key, [raw, rating]] of chosen) {
      if (!perKey.has(key)) perKey.set(key, [])
      perKey.get(key).push(rating)
      if (!spellings.has(key)) spellings.set(key, new Map())
      const counts = spellings.get(key)
      const tidied = tidyValueName(raw)
      counts.set(tidied, (counts.get(tidied) || 0) + 1)
    }
  }
  const fromCatalogue = catalogueByKey(data.values)
  const rows = []
  for (const [key, ratings] of perKey) {
    const n = ratings.length
    const si = ratings.reduce((t, r) => t + r.importance, 0)
    const sp = ratings.reduce((t, r) => t + r.practice, 0)
    rows.push({
      gapNum: si - sp,
      n,
      row: {
        name: chooseDisplayName(spellings.get(key), fromCatalogue.get(key) || []),
        key,
        importance: roundFraction(si, n, 3),
        practice: roundFraction(sp, n, 3),
        gap: roundFraction(si - sp, n, 3),
        ratings: n
      }
    })
  }
  // exact gap descending: a/n > b/m  <=>  a*m > b*n
  rows.sort((x, y) => (y.gapNum * x.n - x.gapNum * y.n) || cmpCodePoints(x.row.key, y.row.key))
  return rows.map((r) => r.row)
}

/** The whole derived state, in the JSON shape of DerivedState.to_json(). */
export function deriveState (doc, Y) {
  const data = readWorkshop(doc, Y)
  const [ballots, ignored] = tallies(data)
  return {
    values: valueStats(data),
    ballots,
    stages: participantsByStage(data),
    matrix: matrixSummary(data),
    skipped: data.skipped + ignored
  }
}
