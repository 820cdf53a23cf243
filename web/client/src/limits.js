// The workshop's size limits, in one place for the page and the package.
//
// These mirror the Python schema's constants and must stay equal to them
// (tests/webclient/test_limits.py reads both and compares):
//   MAX_MESSAGE_CHARS = vmv_sync.schema.MAX_MESSAGE_CHARS (a chat message)
//   MAX_TEXT_CHARS    = vmv_sync.schema.MAX_TEXT_CHARS    (the mission, the vision, a draft)
// Like Python's len(), they count characters (Unicode code points), not UTF-16 units.
// At most 4 UTF-8 bytes each, a whole text in one update stays well under the
// server's 1 MiB message limit, so an honest paste is stopped here with a sentence
// instead of being refused by the server (4413).

/** The longest chat message, in characters (vmv_sync.schema.MAX_MESSAGE_CHARS). */
export const MAX_MESSAGE_CHARS = 4_000
/** The longest mission, vision or draft, in characters (vmv_sync.schema.MAX_TEXT_CHARS). */
export const MAX_TEXT_CHARS = 100_000

/** Characters as Python counts them (code points; a surrogate pair is one). */
export function charCount (s) {
  let n = s.length
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xD800 && c <= 0xDBFF) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xDC00 && d <= 0xDFFF) { n--; i++ }
    }
  }
  return n
}
