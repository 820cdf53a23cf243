// Intents: actions held until their container arrives from the server.
//
// A never-synced replica has no `selections[pid]`, `matrix[pid]`, `drafts[pid]` or
// `votes[ballot]` yet, and must not create them (actions.js says why). Such an
// action is recorded here as plain data, kept durably in a Storage (localStorage
// in a browser, per workshop and participant) so that a closed tab keeps it, and
// applied, in order, as soon as the container is in the replica.

import * as act from './actions.js'

/** A Storage-like object kept in memory (Node, or no localStorage). */
export function memoryStorage () {
  const m = new Map()
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)) },
    removeItem: (k) => { m.delete(k) }
  }
}

/** localStorage when usable, else memory. */
export function defaultStorage () {
  try {
    const s = globalThis.localStorage
    if (s) { s.setItem('vmv.probe', '1'); s.removeItem('vmv.probe'); return s }
  } catch { /* private mode, Node */ }
  return memoryStorage()
}

// kind -> [container root, key of the container from args, apply(doc, ...args)]
const KINDS = {
  toggle: ['selections', (a) => a[0], (doc, pid, value) => act.toggleValue(doc, pid, value)],
  select: ['selections', (a) => a[0], (doc, pid, value) => act.selectValue(doc, pid, value)],
  deselect: ['selections', (a) => a[0], (doc, pid, value) => act.deselectValue(doc, pid, value)],
  rate: ['matrix', (a) => a[0], (doc, pid, value, imp, prac) => act.rateValue(doc, pid, value, imp, prac)],
  vote: ['votes', (a) => a[0], (doc, bid, pid, choice) => act.castVote(doc, bid, pid, choice)],
  retract: ['votes', (a) => a[0], (doc, bid, pid) => act.retractVote(doc, bid, pid)],
  setDraft: ['drafts', (a) => a[0], (doc, pid, text) => act.setDraft(doc, pid, text)],
  editDraft: ['drafts', (a) => a[0], (doc, pid, i, d, s) => act.editDraft(doc, pid, i, d, s)]
}

export class IntentQueue {
  /**
   * @param {Storage} storage where to keep the queue
   * @param {string} key e.g. `vmv.intents.{workshop}.{participant}`
   */
  constructor (storage, key) {
    this.storage = storage
    this.key = key
    this.items = []
    try {
      const raw = storage.getItem(key)
      const parsed = raw ? JSON.parse(raw) : []
      if (Array.isArray(parsed)) this.items = parsed.filter((i) => i && KINDS[i.kind] && Array.isArray(i.args))
    } catch { this.items = [] }
  }

  get length () { return this.items.length }

  _save () {
    try {
      if (this.items.length) this.storage.setItem(this.key, JSON.stringify(this.items))
      else this.storage.removeItem(this.key)
    } catch { /* quota: kept in memory */ }
  }

  /** Hold an action; a full-text draft replaces an earlier held one. */
  push (kind, args) {
    if (!KINDS[kind]) throw new Error(`unknown intent ${kind}`)
    const last = this.items[this.items.length - 1]
    if (kind === 'setDraft' && last && last.kind === 'setDraft' && last.args[0] === args[0]) last.args = args
    else this.items.push({ kind, args })
    this._save()
  }

  /** Held actions of one kind, for views (e.g. values picked but not yet in the replica). */
  held (kind) { return this.items.filter((i) => i.kind === kind).map((i) => i.args) }

  /**
   * Apply, in order, every held action whose container is now in `doc`.
   * Returns the number applied; an action the document no longer allows is dropped
   * and reported to `onError`.
   */
  flush (doc, onError = () => {}, origin = null) {
    if (!this.items.length) return 0
    const keep = []
    let applied = 0
    doc.transact(() => {
      for (const item of this.items) {
        const [root, keyOf, apply] = KINDS[item.kind]
        if (!act.hasContainer(doc, root, keyOf(item.args))) { keep.push(item); continue }
        try { apply(doc, ...item.args); applied++ } catch (err) { onError(err, item) }
      }
    }, origin)
    if (keep.length !== this.items.length) { this.items = keep; this._save() }
    return applied
  }

  clear () { this.items = []; this._save() }
}

export const INTENT_KINDS = Object.keys(KINDS)
