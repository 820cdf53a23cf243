// The chat list: messages in display order (the client package's chat.js, the same
// rule as every replica and export), keeping the reader's place, and the unread badge.

import { colorFor } from '@vmv-sync/client'
import { h, setText, syncList } from './dom.js'

const $ = (id) => document.getElementById(id)

export function renderMessages (view) {
  const list = $('messages')
  const items = view.client.messages
  // messages are in display order (written order, chat.js): a late one slots in
  // above; the reader stays at the bottom, or on the message they were reading
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
  const top = () => list.getBoundingClientRect().top
  const anchor = atBottom ? null : [...list.children].find((li) => li.getBoundingClientRect().bottom > top())
  const anchorOffset = anchor ? anchor.getBoundingClientRect().top - top() : 0
  syncList(list, items.slice(-200), (m) => m.id, (m) => {
    const when = typeof m.sent_at === 'number' ? new Date(m.sent_at * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : ''
    const author = h('span.author')
    author.style.color = colorFor(String(m.author))
    return h('li.msg', { dataset: { author: String(m.author) } }, author, h('time', {}, when), h('p.text', {}, m.text))
  }, (li, m) => setText(li.querySelector('.author'), view.nameOf(m.author) + (m.author === view.me.id ? ' (you)' : '')))
  if (atBottom) list.scrollTop = list.scrollHeight
  else if (anchor && anchor.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - top() - anchorOffset
  // unread badge on the Chat button (phones)
  if (view.seenMessages === null) view.seenMessages = items.length
  if (document.body.dataset.pane === 'chat' || getComputedStyle($('chat-pane')).display !== 'none' && matchMedia('(min-width: 60.01rem)').matches) view.seenMessages = items.length
  const unread = items.length - view.seenMessages
  setText($('chat-badge'), unread > 0 ? String(unread) : '')
}
