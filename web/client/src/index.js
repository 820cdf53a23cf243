// @vmv-sync/client: the browser (and Node) client of vmv-sync over the stock Yjs stack.
export * as Y from 'yjs'
export {
  WorkshopClient, decodeToken, replicaName, classifyClose, refusesEdit, MESSAGE_SAVED, INTENT_ORIGIN, CLIENT_ID_TAKEN_PREFIX,
  MESSAGE_TOKEN, TOKEN_REFRESH_PREFIX, isTokenRefreshRefusal
} from './client.js'
export * as actions from './actions.js'
export { MissingContainer, InvalidAction, TooLong, roots, SCHEMA_VERSION } from './actions.js'
export { MAX_MESSAGE_CHARS, MAX_TEXT_CHARS, charCount } from './limits.js'
export { deriveState, readWorkshop, STAGES, STAGE_TITLES, ROLES, isStage } from './derived.js'
export { IntentQueue, memoryStorage, defaultStorage, INTENT_KINDS } from './intents.js'
export {
  Presence, colorFor, throttle, encodeCaret, resolveCaret, onlineOf, typingOf, cursorsOf,
  TYPING_INTERVAL_MS, TYPING_STALE_MS, CURSOR_INTERVAL_MS, CARET_INTERVAL_MS
} from './presence.js'
export { normalizeValueName, tidyValueName, sortedKeys, cmpCodePoints } from './names.js'
export { bindTextarea, diff, TEXT_ORIGIN } from './textbind.js'
export { orderedMessages, readMessages, parseMessage, compareMessages, messageClock, nextClock, HLC_FIELD, MAX_CLOCK } from './chat.js'
