// Type declarations of @vmv-sync/client (web/client/src/*.js).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Awareness } from 'y-protocols/awareness'
import { ObservableV2 } from 'lib0/observable'

export { Y }

export type Stage = 'values-select' | 'values-collective' | 'values-matrix' | 'mission-draft' | 'mission-final' | 'vision'
export type Role = 'facilitator' | 'participant' | 'observer'
export const STAGES: Stage[]
export const STAGE_TITLES: Record<Stage, string>
export const ROLES: Role[]
export function isStage (value: unknown): value is Stage

/** connecting -> connected; offline (no network, server unreachable, disconnected); refused (permanent). */
export type ConnectionStatus = 'connecting' | 'connected' | 'offline' | 'refused'
/**
 * unauthorized: 4401 bad or expired token; revoked: 4401 for a removed participant;
 * forbidden: 4403; client-id-taken: 4403 "client id taken:" (recover with freshReplica());
 * too-large: 4413.
 */
export type RefusalKind = 'unauthorized' | 'revoked' | 'forbidden' | 'client-id-taken' | 'too-large'
/** `edit`: the refusal is about this replica's edits (4413, or 4403 about a write): recover with discardUnsaved(). */
export interface Refusal { kind: RefusalKind, code: number, reason: string, clientId: number | null, edit: boolean }
export interface StatusEvent { status: ConnectionStatus, kind?: RefusalKind, code?: number, reason?: string, clientId?: number | null, edit?: boolean }

/** Storage-like (localStorage, sessionStorage, or memoryStorage()). */
export interface KeyValueStorage {
  getItem (key: string): string | null
  setItem (key: string, value: string): void
  removeItem (key: string): void
}

/** What y-indexeddb's IndexeddbPersistence offers (any object with these works). */
export interface Persistence {
  whenSynced: Promise<unknown>
  destroy (): unknown
  clearData? (): Promise<unknown>
}

export interface WorkshopClientOptions {
  /** The server's WebSocket base, e.g. "ws://127.0.0.1:8000" (the client adds /workshops/{id}). */
  url: string
  workshopId: string
  /** The participant's token (authentication on); its claims give id, name and role. */
  token?: string | null
  /** Without a token (--no-auth): who this client is. */
  participantId?: string | null
  name?: string | null
  role?: Role | null
  doc?: Y.Doc
  /** e.g. `(name, doc) => new IndexeddbPersistence(name, doc)`; name is replicaName(workshop, participant). */
  persistence?: ((name: string, doc: Y.Doc) => Persistence) | null
  /** Where held intents and the unsaved count are kept (default: localStorage, else memory). */
  storage?: KeyValueStorage
  /** The WebSocket class (Node: the `ws` package); default globalThis.WebSocket. */
  WebSocket?: any
  /** Connect once the local replica is loaded (default true). */
  connect?: boolean
  isOnline?: () => boolean
  /** The stage announced in presence at start. */
  stage?: Stage | null
  maxBackoffTime?: number
}

export type Choice = string | string[]

/** A chat message; `hlc` is the writer's hybrid logical clock (ms), null for contract v1 writers. */
export interface Message { id: string, author: string, text: string, sent_at: number, stage: Stage, hlc: number | null }

/** The chat's display order (vmv_sync.derived.chat): (hlc or floor(sent_at * 1000), author, id). */
export function orderedMessages (messages: Iterable<Message>): Message[]
export function readMessages (array: Y.Array<unknown>): Message[]
export function parseMessage (item: unknown): Message | null
export function compareMessages (a: Message, b: Message): number
export function messageClock (m: Message): number
export function nextClock (array: Y.Array<unknown>, nowMs: number): number
export const HLC_FIELD: 'hlc'
export const MAX_CLOCK: number
export interface Participant { name: string, role: Role, joined_at: number }
export interface Progress { stage: Stage, completed: Stage[], updated_at: number | null }
export interface ValueStat { key: string, name: string, count: number, percent: number, participants: string[] }
export interface OptionCount { option: string, count: number }
export interface BallotTally {
  question: string, stage: Stage, kind: 'single' | 'multi', max_choices: number, open: boolean,
  counts: OptionCount[], voters: number, eligible: number, turnout: number, winners: string[]
}
export interface MatrixRow { key: string, name: string, importance: number, practice: number, gap: number, ratings: number }
/** GET /workshops/{id}/state (docs/derived-state.md). */
export interface DerivedState {
  values: ValueStat[]
  ballots: Record<string, BallotTally>
  stages: Record<Stage, number>
  matrix: MatrixRow[]
  skipped: number
  [key: string]: unknown
}

/** The awareness state (contract section 5, plus `caret`, docs/web.md). */
export interface PresenceUser { id: string, name: string, color: string, role: Role }
export interface Cursor { x: number, y: number, stage: string }
/** A caret or selection in a shared text: field 'mission' | 'vision' | 'draft:<pid>'; base64 Yjs relative positions. */
export interface Caret { field: string, anchor: string, head: string }
export interface PresenceState {
  user: PresenceUser
  stage: Stage | null
  online_at: number
  typing: boolean
  typing_at: number | null
  cursor: Cursor | null
  caret?: Caret | null
}

export interface WorkshopClientEvents {
  status: (event: StatusEvent) => void
  pending: (count: number) => void
  saved: (client: WorkshopClient) => void
  synced: (client: WorkshopClient) => void
  refused: (refusal: Refusal) => void
  ack: (committed: number) => void
  'intent-dropped': (error: Error, intent: Intent) => void
}

export class WorkshopClient extends ObservableV2<WorkshopClientEvents> {
  constructor (options: WorkshopClientOptions)
  readonly workshopId: string
  readonly participantId: string
  readonly name: string
  readonly role: Role
  readonly token: string | null
  readonly doc: Y.Doc
  /** The stock y-websocket provider underneath. */
  readonly provider: WebsocketProvider
  readonly awareness: Awareness
  readonly presence: Presence
  readonly intents: IntentQueue
  readonly persistence: Persistence | null
  /** Resolves when the local replica is loaded (and the connection started). */
  readonly whenLoaded: Promise<void>
  status: ConnectionStatus
  refusal: Refusal | null
  everSynced: boolean

  connect (): void
  disconnect (): void
  readonly connected: boolean
  readonly synced: boolean
  /** False after a refusal that reconnecting cannot fix: edits made now cannot be saved. */
  readonly canSave: boolean
  /** Local changes the server has not acknowledged as committed, plus held intents. */
  readonly pendingCount: number
  /** Unsaved changes counted as a person would (typing into one text in a row is one edit). */
  readonly pendingEdits: number
  readonly saved: boolean
  /** Resolves when every change is committed; rejects on a refusal or timeout. */
  waitSaved (timeoutMs?: number): Promise<void>
  /**
   * Hand the open connection a fresh token (extension message 101) and keep it for
   * every later reconnect. Resolves with the server's `exp` (unix s; 0 with auth off),
   * or null offline (only kept: the next connection carries it). Rejects, keeping
   * the old token, on a refusal (a TokenRefreshError with `refused`: the client
   * reconnects with the old token, no 'refused' event), when the connection ends
   * first, or after `timeout` ms (default 10000).
   */
  refreshToken (token: string, options?: { timeout?: number }): Promise<number | null>
  whenSynced (timeoutMs?: number): Promise<void>

  createWorkshop (title: string, opts?: { values?: string[], maxValues?: number }): void
  join (): void
  addParticipant (pid: string, name: string, role?: Role): void
  setStage (stage: Stage): void
  setCatalogue (values: string[]): void
  openBallot (ballotId: string, question: string, options: string[], opts: { stage: Stage, kind?: 'single' | 'multi', maxChoices?: number }): void
  closeBallot (ballotId: string): void
  postMessage (text: string, opts?: { stage?: Stage | null, messageId?: string | null }): string
  toggleValue (value: string): boolean
  selectValue (value: string): void
  deselectValue (value: string): void
  castVote (ballotId: string, choice: Choice): void
  retractVote (ballotId: string): void
  rateValue (value: string, importance: number, practice: number): void
  setProgress (stage: Stage, completed?: Stage[] | null): void
  setDraft (text: string): void
  editDraft (index: number, edit?: { delete?: number, insert?: string }): void
  setMission (text: string): void
  editMission (index: number, edit?: { delete?: number, insert?: string }): void
  setVision (text: string): void
  editVision (index: number, edit?: { delete?: number, insert?: string }): void

  readonly data: WorkshopData
  readonly derived: DerivedState
  readonly title: string | null
  readonly stage: Stage | null
  readonly exists: boolean
  readonly messages: Message[]
  readonly participants: Record<string, Participant>
  readonly participantsByStage: Record<Stage, number>
  readonly valueStats: ValueStat[]
  readonly votingStats: Record<string, BallotTally>
  readonly stageProgress: Record<string, Progress>
  readonly selections: Record<string, Record<string, number>>
  readonly myValues: string[]
  readonly heldValues: string[]
  isSelected (value: string): boolean
  readonly mission: string
  readonly vision: string
  readonly drafts: Record<string, string>

  readonly presenceStates: Map<number, PresenceState>
  readonly onlineParticipants: Map<string, PresenceState>
  readonly typingUsers: string[]
  readonly cursors: Map<number, Cursor>
  setStagePresence (stage: Stage): void
  setTyping (typing?: boolean): void
  moveCursor (x: number, y: number, stage?: Stage | null): void
  hideCursor (): void
  colorOf (pid: string): string

  /**
   * After a client-id-taken refusal: the replica minus that id's writes (local replica rewritten;
   * emptied first by `clearReplica(name)` if given, else by the persistence's clearData()).
   */
  freshReplica (opts?: { clearReplica?: ((name: string) => Promise<void>) | null }): Promise<Uint8Array>
  /**
   * After a refusal of this replica's edits (refusal.edit): close (no reconnect), empty the
   * local replica (`clearReplica(name)` if given, else the persistence's clearData()) and
   * forget the unsaved count and held intents; then open a new WorkshopClient.
   */
  discardUnsaved (opts?: { clearReplica?: ((name: string) => Promise<void>) | null }): Promise<void>
  destroy (): void
}

export interface WorkshopData {
  participants: Map<string, Participant>
  selections: Map<string, Map<string, number>>
  ballots: Map<string, unknown>
  votes: Map<string, Map<string, Choice>>
  matrix: Map<string, Map<string, { importance: number, practice: number }>>
  progress: Map<string, Progress>
  values: string[]
  skipped: number
}

export function decodeToken (token: string): { sub: string, name: string, role: Role, wid?: string, exp?: number, [k: string]: unknown }
export function replicaName (workshopId: string, participantId: string): string
export function classifyClose (code: number, reason?: string): RefusalKind | null
/** Whether a refusal of `kind` with `reason` is about this replica's edits (Refusal.edit). */
export function refusesEdit (kind: RefusalKind, reason?: string): boolean
export const MESSAGE_SAVED: 100
export const INTENT_ORIGIN: unique symbol
export const CLIENT_ID_TAKEN_PREFIX: 'client id taken:'
export const MESSAGE_TOKEN: 101
export const TOKEN_REFRESH_PREFIX: 'token refresh:'
/** Whether a close is a refused token refresh (4401/4403, reason "token refresh: ..."): classifyClose gives null. */
export function isTokenRefreshRefusal (code: number, reason?: string): boolean
/** How refreshToken() rejects: `refused` (with the close's code and reason) when the server refused the token. */
export interface TokenRefreshError extends Error { refused?: boolean, code?: number, reason?: string }

export type IntentKind = 'toggle' | 'select' | 'deselect' | 'rate' | 'vote' | 'retract' | 'setDraft' | 'editDraft'
export interface Intent { kind: IntentKind, args: unknown[] }
export class IntentQueue {
  constructor (storage: KeyValueStorage, key: string)
  readonly items: Intent[]
  readonly length: number
  push (kind: IntentKind, args: unknown[]): void
  held (kind: IntentKind): unknown[][]
  flush (doc: Y.Doc, onError?: (err: Error, intent: Intent) => void, origin?: unknown): number
  clear (): void
}
export const INTENT_KINDS: IntentKind[]
export function memoryStorage (): KeyValueStorage
export function defaultStorage (): KeyValueStorage

export class MissingContainer extends Error { root: string; key: string }
export class InvalidAction extends Error {}
/** A message or text over its limit; nothing is written. `limit` and `length` in characters. */
export class TooLong extends InvalidAction { what: 'message' | 'text'; limit: number; length: number }
/** The longest chat message in characters (= vmv_sync.schema.MAX_MESSAGE_CHARS). */
export const MAX_MESSAGE_CHARS: 4000
/** The longest mission, vision or draft in characters (= vmv_sync.schema.MAX_TEXT_CHARS). */
export const MAX_TEXT_CHARS: 100000
/** Characters as Python's len() counts them (code points). */
export function charCount (s: string): number
export const SCHEMA_VERSION: number
export function roots (doc: Y.Doc): {
  meta: Y.Map<unknown>, participants: Y.Map<unknown>, messages: Y.Array<unknown>, selections: Y.Map<unknown>,
  values: Y.Array<unknown>, ballots: Y.Map<unknown>, votes: Y.Map<unknown>, matrix: Y.Map<unknown>,
  progress: Y.Map<unknown>, drafts: Y.Map<unknown>, mission: Y.Text, vision: Y.Text
}
/** The document-level actions (vmv_sync.schema.actions); they throw MissingContainer instead of creating one. */
export const actions: {
  roots: typeof roots
  hasContainer (doc: Y.Doc, root: string, key: string): boolean
  createWorkshop (doc: Y.Doc, w: { title: string, pid: string, name: string, values?: string[], maxValues?: number }): void
  addParticipant (doc: Y.Doc, pid: string, name: string, role?: Role): void
  postMessage (doc: Y.Doc, pid: string, text: string, stage?: Stage | null, messageId?: string | null): string
  toggleValue (doc: Y.Doc, pid: string, value: string): boolean
  selectValue (doc: Y.Doc, pid: string, value: string): void
  deselectValue (doc: Y.Doc, pid: string, value: string): void
  isSelected (doc: Y.Doc, pid: string, value: string): boolean
  selectedValues (doc: Y.Doc, pid: string): string[]
  selectionCount (doc: Y.Doc, pid: string): number
  setCatalogue (doc: Y.Doc, values: string[]): void
  rateValue (doc: Y.Doc, pid: string, value: string, importance: number, practice: number): void
  ratingOf (doc: Y.Doc, pid: string, value: string): { importance: number, practice: number } | null
  openBallot (doc: Y.Doc, b: { id: string, question: string, options: string[], stage: Stage, kind?: 'single' | 'multi', maxChoices?: number }): void
  closeBallot (doc: Y.Doc, id: string): void
  castVote (doc: Y.Doc, ballotId: string, pid: string, choice: Choice): void
  retractVote (doc: Y.Doc, ballotId: string, pid: string): void
  voteOf (doc: Y.Doc, ballotId: string, pid: string): Choice | undefined
  setProgress (doc: Y.Doc, pid: string, stage: Stage, completed?: Stage[] | null): void
  setStage (doc: Y.Doc, stage: Stage): void
  draftOf (doc: Y.Doc, pid: string): Y.Text | null
  setDraft (doc: Y.Doc, pid: string, text: string): void
  editDraft (doc: Y.Doc, pid: string, index: number, del?: number, ins?: string): void
  setMission (doc: Y.Doc, text: string): void
  editMission (doc: Y.Doc, index: number, del?: number, ins?: string): void
  setVision (doc: Y.Doc, text: string): void
  editVision (doc: Y.Doc, index: number, del?: number, ins?: string): void
  MissingContainer: typeof MissingContainer
  InvalidAction: typeof InvalidAction
  TooLong: typeof TooLong
  MAX_MESSAGE_CHARS: 4000
  MAX_TEXT_CHARS: 100000
  SCHEMA_VERSION: number
}

export function deriveState (doc: Y.Doc, y: typeof Y): DerivedState
export function readWorkshop (doc: Y.Doc, y: typeof Y): WorkshopData

export const TYPING_INTERVAL_MS: number
export const TYPING_STALE_MS: number
export const CURSOR_INTERVAL_MS: number
export const CARET_INTERVAL_MS: number
export class Presence {
  constructor (awareness: Awareness, user: { id: string, name: string, role: Role }, stage?: Stage | null)
  readonly user: PresenceUser
  cursorSends: number
  caretSends: number
  state (): Partial<PresenceState>
  setStage (stage: Stage): void
  typing (): void
  stopTyping (): void
  moveCursor (cursor: Cursor): void
  hideCursor (): void
  moveCaret (field: string, ytext: Y.Text, anchor: number, head?: number): void
  hideCaret (): void
  others (): Array<[number, PresenceState]>
  online (): Map<string, { name: string, stage: Stage | null }>
  diffOnline (): Array<{ kind: 'joined' | 'left', id: string, name: string }>
  typingNames (): string[]
  destroy (): void
}
export function colorFor (id: string): string
export function throttle<A extends unknown[]> (fn: (...args: A) => void, ms: number): ((...args: A) => void) & { cancel (): void }
export function encodeCaret (field: string, ytext: Y.Text, anchor: number, head?: number): Caret
export function resolveCaret (doc: Y.Doc, ytext: Y.Text, caret: Caret | null | undefined): { anchor: number, head: number } | null
export function onlineOf (awareness: Awareness): Map<string, PresenceState>
export function typingOf (awareness: Awareness, exclude?: string | null, now?: number): string[]
export function cursorsOf (awareness: Awareness): Map<number, Cursor>

export function normalizeValueName (name: string): string
export function tidyValueName (name: string): string
export function sortedKeys (keys: Iterable<string>): string[]
export function cmpCodePoints (a: string, b: string): number

export const TEXT_ORIGIN: unique symbol
export type Unbind = (() => void) & { undoManager: Y.UndoManager, undo (): void, redo (): void }
export function bindTextarea (
  textarea: HTMLTextAreaElement, ytext: Y.Text,
  opts?: (() => void) | { onLocalEdit?: () => void, onCaret?: (anchor: number, head: number) => void, onBlur?: () => void }
): Unbind
export function diff (before: string, after: string): [number, number, string]
