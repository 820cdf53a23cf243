// Counting unsaved changes as a person would (WorkshopClient.pendingEdits).
//
// The saved acknowledgement counts transactions: typing a sentence into the mission
// is one per keystroke, and looking at another stage writes `progress`. The state
// line should say what a person did: one change per pick, vote, rating or message,
// one per text for typing in a row, none for moving between stages. Each unsaved
// local transaction gets a kind: 'text:<root>' for one that changed only one text
// root (mission, vision or the drafts), 'progress' for one that changed only
// progress, else a unique id; consecutive equal text kinds are one edit.

let kindCounter = 0
export const uniqueKind = () => `e${Date.now().toString(36)}.${++kindCounter}`
const TEXT_ROOTS = new Set(['mission', 'vision', 'drafts'])

/** 'text:<root>' for a change to one text root (or drafts), 'progress' for one to progress only, else a unique kind. */
export function kindOf (doc, tr) {
  const roots = new Set()
  for (const type of tr.changed.keys()) {
    let t = type
    while (t._item) t = t._item.parent
    for (const [name, root] of doc.share) if (root === t) roots.add(name)
  }
  const [only] = roots
  if (roots.size === 1 && only === 'progress') return 'progress'
  return roots.size === 1 && TEXT_ROOTS.has(only) ? `text:${only}` : uniqueKind()
}

/** How many edits a list of kinds (oldest first) is: text runs count once, progress not at all. */
export function countEdits (kinds) {
  const counted = kinds.filter((k) => k !== 'progress') // where one looks is not an edit
  let runs = 0
  counted.forEach((k, i) => { if (i === 0 || k !== counted[i - 1] || !k.startsWith('text:')) runs++ })
  return runs
}
