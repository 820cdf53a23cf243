// Value-name comparison, exactly as vmv_sync.schema.names does it in Python.
//
// Why tables: JavaScript has no casefold() ("ß".toLowerCase() stays "ß", and
// toLowerCase applies a contextual final-sigma rule) and String.trim() strips a
// different set of characters than Python's str.strip(). unicode-tables.js is
// generated from Python itself (web/tools/gen_casefold.py), so both sides agree.

import { CASEFOLD, SPACES } from './unicode-tables.js'

const SPACE_SET = new Set(SPACES)
const FOLD_MAP = new Map(Object.entries(CASEFOLD).map(([hex, folded]) => [parseInt(hex, 16), folded]))

/** Python's str.strip() with no argument: strip every char where str.isspace(). */
export function pyStrip (s) {
  const cps = Array.from(s)
  let start = 0
  let end = cps.length
  while (start < end && SPACE_SET.has(cps[start].codePointAt(0))) start++
  while (end > start && SPACE_SET.has(cps[end - 1].codePointAt(0))) end--
  return cps.slice(start, end).join('')
}

/** Python's str.casefold(): full Unicode case folding, one code point at a time. */
export function casefold (s) {
  let out = ''
  for (const ch of s) {
    const folded = FOLD_MAP.get(ch.codePointAt(0))
    out += folded === undefined ? ch : folded
  }
  return out
}

/** The display spelling: stripped and NFC, case kept (tidy_value_name). */
export function tidyValueName (name) {
  return pyStrip(name).normalize('NFC')
}

/** The comparison key: strip, NFC, casefold, NFC (normalize_value_name). */
export function normalizeValueName (name) {
  return casefold(tidyValueName(name)).normalize('NFC')
}

/**
 * Compare two strings by Unicode code point, as Python compares str.
 * (JavaScript's default < compares UTF-16 code units, which puts U+E000..U+FFFF
 * after astral characters; Python puts them before.)
 */
export function cmpCodePoints (a, b) {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return fixup(x) - fixup(y)
  }
  return a.length - b.length
}

function fixup (unit) {
  if (unit >= 0xD800 && unit <= 0xDFFF) return unit + 0x2000
  if (unit >= 0xE000) return unit - 0x800
  return unit
}

/** Sort strings in code-point order (a new array). */
export function sortedKeys (keys) {
  return Array.from(keys).sort(cmpCodePoints)
}

/** choose_display_name: the first catalogue spelling, else most used, ties to the smallest. */
export function chooseDisplayName (spellings, catalogue = []) {
  if (catalogue.length) return tidyValueName(catalogue[0])
  let best = null
  for (const [spelling, count] of spellings) {
    if (best === null || count > best[1] || (count === best[1] && cmpCodePoints(spelling, best[0]) < 0)) {
      best = [spelling, count]
    }
  }
  if (best === null) throw new Error('chooseDisplayName needs a spelling or a catalogue entry')
  return best[0]
}
