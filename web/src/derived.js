// Moved to the client package (web/client); kept for tests/interop/driver.mjs.
export * from '../client/src/derived.js'
