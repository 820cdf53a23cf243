// Type-checked (tsc --noEmit) against web/client/index.d.ts by test_client_package.py: the
// package's documented usage compiles, and misuse does not.
import { WorkshopClient, STAGES, type StatusEvent, type DerivedState, type Stage, type Message, type TokenRefreshError, memoryStorage, orderedMessages, isTokenRefreshRefusal } from '@vmv-sync/client'

declare const token: string
declare const WS: any

const client = new WorkshopClient({ url: 'ws://127.0.0.1:8000', workshopId: 'w1', token, WebSocket: WS, storage: memoryStorage() })
client.on('status', (e: StatusEvent) => { if (e.status === 'refused') console.log(e.code, e.reason, e.kind) })
client.on('pending', (n: number) => console.log(`${n} changes kept`))
const picked: boolean = client.toggleValue('Honesty')
client.rateValue('Honesty', 5, 2)
client.castVote('b1', ['Trust'])
client.editMission(0, { insert: 'We ' })
const id: string = client.postMessage('hello', { stage: 'values-select' })
const state: DerivedState = client.derived
const first: Stage = STAGES[0]
const n: number = client.pendingCount + client.pendingEdits + state.values.length + client.valueStats.length
const chat: Message[] = orderedMessages(client.messages)
const clock: number | null = chat.length ? chat[0].hlc : null
client.presence.moveCaret('mission', client.doc.getText('mission'), 0, 3)
void client.refreshToken(token, { timeout: 5000 }).then((exp: number | null) => console.log(exp), (e: TokenRefreshError) => console.log(e.refused, e.code, e.reason))
const refusedRefresh: boolean = isTokenRefreshRefusal(4403, 'token refresh: another participant')
void client.waitSaved(5000).then(() => client.destroy())
// @ts-expect-error the token is a string
void client.refreshToken(42)
// @ts-expect-error the timeout is in an options object
void client.refreshToken(token, 5000)
// @ts-expect-error scores are numbers
client.rateValue('Honesty', '5', 2)
// @ts-expect-error not a stage
client.setStage('lunch')
console.log(picked, id, first, n, clock, refusedRefresh)
