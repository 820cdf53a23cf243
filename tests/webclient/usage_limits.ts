// Type-checked (tsc --noEmit) against web/client/index.d.ts by test_limits.py: the limits,
// TooLong, Refusal.edit and discardUnsaved() are declared as the package has them.
import { WorkshopClient, TooLong, InvalidAction, MAX_MESSAGE_CHARS, MAX_TEXT_CHARS, charCount, refusesEdit, actions, type Refusal } from '@vmv-sync/client'

declare const token: string
declare const WS: any

const client = new WorkshopClient({ url: 'ws://127.0.0.1:8000', workshopId: 'w1', token, WebSocket: WS })
const limits: number = MAX_MESSAGE_CHARS + MAX_TEXT_CHARS + actions.MAX_TEXT_CHARS + charCount('x')
client.on('refused', async (r: Refusal) => {
  if (r.edit && refusesEdit(r.kind, r.reason)) await client.discardUnsaved()
})
try {
  client.postMessage('x'.repeat(MAX_MESSAGE_CHARS + 1))
} catch (e) {
  if (e instanceof TooLong) console.log(e.what, e.limit, e.length, limits)
  const invalid: boolean = e instanceof InvalidAction
  console.log(invalid)
}
// @ts-expect-error discardUnsaved returns a promise of nothing
const wrong: string = await client.discardUnsaved()
console.log(wrong)
