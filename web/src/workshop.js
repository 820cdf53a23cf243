// The workshop view (/w/{workshop_id}): one Y.Doc synced with the server by the
// stock y-websocket provider and kept in IndexedDB (y-indexeddb) so that edits made
// offline survive a closed tab and are sent on reconnect.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import { h, setText, syncList } from './dom.js'
import { STAGES, STAGE_TITLES, deriveState, isStage } from './derived.js'
import * as act from './actions.js'
import { Presence, colorFor } from './presence.js'
import { buildPanel, renderBallots } from './panels.js'
import {
  apiJoin, rememberConfig, resolveIdentity, saveName, saveToken, savedInvite, savedName, serverConfig
} from './identity.js'

const $ = (id) => document.getElementById(id)
const CLOSE_REASONS = { 4401: 'Your access token is missing, invalid or expired. Join the workshop again.', 4403: 'The server refused this connection (wrong workshop or not allowed).' }

export async function startWorkshop () {
  const wid = decodeURIComponent(location.pathname.split('/')[2] || '')
  setText($('workshop-id'), wid)
  const config = await serverConfig()
  rememberConfig(config)
  const me = resolveIdentity(wid, config)
  if (!me) return askToJoin(wid, config)
  new WorkshopView(wid, me, config).start()
}

/** No identity yet: a small join form inside the workshop page. */
function askToJoin (wid, config) {
  const name = h('input', { id: 'join-name', required: true, maxlength: 60, value: savedName() })
  const code = h('input', { id: 'join-code', required: config.auth })
  const error = h('p.form-error', { role: 'alert', hidden: true })
  const form = h('form.card.join', {},
    h('h2', {}, `Join workshop ${wid}`),
    h('label', { for: 'join-name' }, 'Your name '), name,
    config.auth ? [h('label', { for: 'join-code' }, ' Invite code '), code] : null,
    h('button', { type: 'submit' }, 'Join'), error)
  form.onsubmit = async (e) => {
    e.preventDefault()
    saveName(name.value.trim())
    try {
      if (config.auth) {
        const r = await apiJoin(wid, code.value.trim(), name.value.trim())
        saveToken(wid, r.token)
        location.assign(`/w/${encodeURIComponent(wid)}?token=${encodeURIComponent(r.token)}`)
      } else {
        location.reload()
      }
    } catch (err) { error.textContent = String(err.message || err); error.hidden = false }
  }
  $('stage-panel').replaceChildren(form)
  name.focus()
}

class WorkshopView {
  constructor (wid, me, config) {
    this.wid = wid
    this.me = me
    this.config = config
    this.doc = new Y.Doc()
    this.view = STAGES[0]
    this.panel = null
    this.pending = 0
    this.everSynced = false
    this.closeProblem = null
    this.activity = []
    this.scheduled = false
    this.derived = null
  }

  start () {
    const { doc, wid } = this
    this.idb = new IndexeddbPersistence(`vmv-${wid}`, doc)
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    this.provider = new WebsocketProvider(`${proto}://${location.host}/workshops`, wid, doc, {
      params: this.me.token ? { token: this.me.token } : {},
      connect: navigator.onLine,
      maxBackoffTime: 2500
    })
    this.presence = new Presence(this.provider.awareness, this.me, this.view)
    this.ctx = {
      doc,
      me: this.me,
      readOnly: () => this.role() === 'observer',
      isFacilitator: () => this.role() === 'facilitator',
      maxValues: () => { const m = act.roots(doc).meta.get('max_values'); return Number.isInteger(m) && m > 0 ? m : 10 },
      nameOf: (pid) => this.nameOf(pid),
      flash: (text) => this.flash(text),
      derived: null
    }
    doc.on('update', (update, origin) => {
      if (origin !== this.provider && !this.provider.synced) this.pending++
      this.schedule()
    })
    this.provider.awareness.on('change', () => this.schedule())
    this.provider.on('status', () => this.schedule())
    this.provider.on('sync', (synced) => {
      if (synced) { this.pending = 0; this.onSynced() }
      this.schedule()
    })
    this.provider.on('connection-close', (event) => {
      if (event && CLOSE_REASONS[event.code]) {
        this.closeProblem = CLOSE_REASONS[event.code]
        if (event.code === 4401) this.provider.disconnect()
      }
      this.schedule()
    })
    addEventListener('offline', () => { this.provider.disconnect(); this.schedule() })
    addEventListener('online', () => { this.provider.connect(); this.schedule() })
    this.bindChat()
    this.bindCursor()
    this.bindBallotForm()
    setInterval(() => this.renderTyping(), 250)
    this.showStage(STAGES[0])
    window.vmv = {
      doc,
      Y,
      provider: this.provider,
      presence: this.presence,
      me: this.me,
      derived: () => deriveState(doc, Y),
      connection: () => this.connectionState(),
      view: () => this.view
    }
    this.schedule()
  }

  role () {
    if (this.me.token) return this.me.role
    const entry = act.roots(this.doc).participants.get(this.me.id)
    const role = entry instanceof Y.Map ? entry.get('role') : null
    return typeof role === 'string' ? role : this.me.role
  }

  nameOf (pid) {
    const entry = act.roots(this.doc).participants.get(pid)
    const name = entry instanceof Y.Map ? entry.get('name') : null
    return typeof name === 'string' && name ? name : pid
  }

  /** After the first sync: create the workshop (no-auth creator) or add ourselves. */
  onSynced () {
    const { doc, me } = this
    const r = act.roots(doc)
    const key = `vmv.create.${this.wid}`
    const creating = sessionStorage.getItem(key)
    if (creating && !r.meta.has('title')) {
      const { title, values } = JSON.parse(creating)
      act.createWorkshop(doc, { title, pid: me.id, name: me.name, values })
    }
    sessionStorage.removeItem(key)
    if (!me.token) {
      const entry = r.participants.get(me.id)
      if (!(entry instanceof Y.Map) || entry.get('name') !== me.name) {
        const role = entry instanceof Y.Map && entry.get('role') ? entry.get('role') : me.role
        act.addParticipant(doc, me.id, me.name, role)
      } else {
        act.ensureEntries(doc, me.id)
      }
    } else if (r.participants.get(me.id) instanceof Y.Map) {
      act.ensureEntries(doc, me.id)
    }
    if (!this.everSynced) {
      this.everSynced = true
      const stage = r.meta.get('stage')
      this.showStage(isStage(stage) ? stage : STAGES[0])
      this.lastWorkshopStage = stage
    }
  }

  connectionState () {
    if (!navigator.onLine) return 'offline'
    if (this.provider.wsconnected && this.provider.synced) return 'online'
    if (this.closeProblem && !this.provider.shouldConnect) return 'offline'
    return this.everSynced ? 'reconnecting' : 'connecting'
  }

  schedule () {
    if (this.scheduled) return
    this.scheduled = true
    requestAnimationFrame(() => { this.scheduled = false; this.render() })
    // rAF does not run in background tabs; make sure we still render
    setTimeout(() => { if (this.scheduled) { this.scheduled = false; this.render() } }, 200)
  }

  showStage (stage) {
    if (this.panel) this.panel.destroy()
    this.view = stage
    this.panel = buildPanel($('stage-panel'), stage, this.ctx)
    this.presence.setStage(stage)
    if (this.everSynced && this.role() !== 'observer') {
      const p = act.roots(this.doc).progress.get(this.me.id)
      if (!(p instanceof Y.Map) || p.get('stage') !== stage) act.setProgress(this.doc, this.me.id, stage)
    }
    this.schedule()
  }

  flash (text) {
    this.log(text)
  }

  log (text) {
    this.activity.unshift({ id: `${Date.now()}-${Math.random()}`, text })
    this.activity.length = Math.min(this.activity.length, 30)
  }

  render () {
    const { doc } = this
    const r = act.roots(doc)
    this.derived = deriveState(doc, Y)
    this.ctx.derived = this.derived
    // follow the facilitator: when the workshop stage changes, everyone goes there
    const wstage = r.meta.get('stage')
    if (isStage(wstage) && wstage !== this.lastWorkshopStage && this.everSynced) {
      this.lastWorkshopStage = wstage
      if (wstage !== this.view) { this.showStage(wstage); return this.render() }
    }
    const title = r.meta.get('title')
    setText($('title'), typeof title === 'string' ? title : 'Workshop')
    document.title = `${typeof title === 'string' ? title : this.wid} · VMV workshop`
    setText($('me'), `${this.me.name} (${this.role()})`)
    const conn = this.connectionState()
    const connEl = $('conn')
    connEl.dataset.state = conn
    const pendingNote = conn !== 'online' && this.pending ? ` · ${this.pending} change${this.pending === 1 ? '' : 's'} kept in this browser` : ''
    setText(connEl, (this.closeProblem && conn !== 'online' ? `${conn}: ${this.closeProblem}` : conn) + pendingNote)
    // while we are cut off, the others only look gone: keep the last roster until we are back
    if (conn === 'online') for (const ev of this.presence.diffOnline()) this.log(`${ev.name} ${ev.kind}`)
    this.renderPeople()
    this.renderStages()
    this.panel.update(this.ctx)
    const count = renderBallots($('ballot-list'), this.view, this.ctx)
    $('ballots').hidden = count === 0 && !this.ctx.isFacilitator()
    $('new-ballot').hidden = !this.ctx.isFacilitator()
    this.renderMessages()
    this.renderTyping()
    this.renderCursors()
    this.renderInvite()
  }

  renderPeople () {
    const r = act.roots(this.doc)
    const online = this.presence.online()
    const ids = new Set([...r.participants.keys(), ...online.keys()])
    const rows = [...ids].map((id) => {
      const entry = r.participants.get(id)
      const role = entry instanceof Y.Map ? entry.get('role') : null
      const progress = r.progress.get(id)
      const stage = online.get(id)?.stage || (progress instanceof Y.Map ? progress.get('stage') : null)
      return { id, name: online.get(id)?.name || this.nameOf(id), role, online: online.has(id), stage }
    }).sort((a, b) => (b.online - a.online) || a.name.localeCompare(b.name))
    setText($('online-count'), `(${rows.filter((p) => p.online).length} online)`)
    syncList($('participants'), rows, (p) => p.id, () => h('li', {}, h('span.dot'), h('span.pname'), h('span.role'), h('span.pstage')), (li, p) => {
      const dot = li.querySelector('.dot')
      dot.className = `dot ${p.online ? 'on' : 'off'}`
      dot.setAttribute('title', p.online ? 'online' : 'offline')
      dot.style.setProperty('--c', colorFor(p.id))
      li.dataset.online = String(p.online)
      setText(li.querySelector('.pname'), p.name + (p.id === this.me.id ? ' (you)' : ''))
      setText(li.querySelector('.role'), p.role && p.role !== 'participant' ? p.role : '')
      setText(li.querySelector('.pstage'), isStage(p.stage) ? `${STAGES.indexOf(p.stage) + 1}` : '')
      li.querySelector('.pstage').setAttribute('title', isStage(p.stage) ? STAGE_TITLES[p.stage] : '')
      li.setAttribute('aria-label', `${p.name}, ${p.online ? 'online' : 'offline'}${isStage(p.stage) ? `, at ${STAGE_TITLES[p.stage]}` : ''}`)
    })
    syncList($('by-stage'), STAGES, (s) => s, () => h('li', {}, h('span.sname'), h('span.scount')), (li, s) => {
      setText(li.querySelector('.sname'), STAGE_TITLES[s])
      setText(li.querySelector('.scount'), String(this.derived.stages[s]))
    })
    syncList($('activity'), this.activity.slice(0, 12), (a) => a.id, (a) => h('li', {}, a.text), () => {})
  }

  renderStages () {
    const wstage = act.roots(this.doc).meta.get('stage')
    syncList($('stages'), STAGES, (s) => s, (s) => {
      const b = h('button.stage', { type: 'button' }, h('span.num', {}, String(STAGES.indexOf(s) + 1)), h('span.sn', {}, STAGE_TITLES[s]), h('span.badge'))
      b.onclick = () => this.showStage(s)
      return h('li', {}, b)
    }, (li, s) => {
      const b = li.firstChild
      if (s === this.view) b.setAttribute('aria-current', 'step')
      else b.removeAttribute('aria-current')
      b.classList.toggle('workshop-stage', s === wstage)
      setText(b.querySelector('.badge'), s === wstage ? 'now' : '')
    })
    const bar = $('facilitator-bar')
    bar.hidden = !this.ctx.isFacilitator()
    if (!bar.hidden) {
      if (!bar.firstChild) {
        const here = h('button', { type: 'button', id: 'make-current' })
        const next = h('button', { type: 'button', id: 'advance-stage' }, 'Advance to next stage →')
        here.onclick = () => act.setStage(this.doc, this.view)
        next.onclick = () => {
          const cur = act.roots(this.doc).meta.get('stage')
          const i = isStage(cur) ? STAGES.indexOf(cur) : 0
          if (i < STAGES.length - 1) act.setStage(this.doc, STAGES[i + 1])
        }
        bar.append(h('span.wstage'), here, next)
      }
      setText(bar.querySelector('.wstage'), `Workshop stage: ${isStage(wstage) ? STAGE_TITLES[wstage] : '–'}. `)
      const here = $('make-current')
      setText(here, `Move everyone to “${STAGE_TITLES[this.view]}”`)
      here.hidden = wstage === this.view
      $('advance-stage').disabled = wstage === STAGES[STAGES.length - 1]
    }
  }

  bindChat () {
    const input = $('chat-input')
    input.addEventListener('input', () => {
      if (input.value) this.presence.typing()
      else this.presence.stopTyping()
    })
    $('chat-form').addEventListener('submit', (e) => {
      e.preventDefault()
      const text = input.value.trim()
      if (!text || this.role() === 'observer') return
      act.postMessage(this.doc, this.me.id, text, this.view)
      input.value = ''
      this.presence.stopTyping()
    })
  }

  renderMessages () {
    const list = $('messages')
    const items = []
    const seen = new Set()
    for (const m of act.roots(this.doc).messages.toArray()) {
      if (!(m instanceof Y.Map)) continue
      const id = m.get('id')
      if (typeof id !== 'string' || seen.has(id) || typeof m.get('text') !== 'string') continue
      seen.add(id)
      items.push({ id, author: m.get('author'), text: m.get('text'), at: m.get('sent_at'), stage: m.get('stage') })
    }
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
    const before = list.children.length
    syncList(list, items.slice(-200), (m) => m.id, (m) => {
      const when = typeof m.at === 'number' ? new Date(m.at * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : ''
      return h('li.msg', { dataset: { author: String(m.author) } },
        h('span.author', { style: `color:${colorFor(String(m.author))}` }), h('time', {}, when), h('p.text', {}, m.text))
    }, (li, m) => setText(li.querySelector('.author'), this.nameOf(m.author) + (m.author === this.me.id ? ' (you)' : '')))
    if (atBottom || list.children.length !== before) list.scrollTop = list.scrollHeight
  }

  renderTyping () {
    if (!this.presence) return
    const names = this.presence.typingNames()
    let text = ''
    if (names.length === 1) text = `${names[0]} is typing...`
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing...`
    else if (names.length > 2) text = `${names.length} people are typing...`
    setText($('typing'), text)
  }

  bindCursor () {
    const size = () => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]
    document.addEventListener('mousemove', (e) => {
      const [w, hgt] = size()
      this.presence.moveCursor({ x: e.pageX / w, y: e.pageY / hgt, stage: this.view })
    })
    document.documentElement.addEventListener('mouseleave', () => this.presence.hideCursor())
  }

  renderCursors () {
    const [w, hgt] = [document.documentElement.scrollWidth, document.documentElement.scrollHeight]
    const shown = this.presence.others().filter(([, s]) => s.cursor && s.cursor.stage === this.view &&
      Number.isFinite(s.cursor.x) && Number.isFinite(s.cursor.y))
    syncList($('cursors'), shown, ([cid]) => cid, () => h('div.cursor', {}, h('span.arrow'), h('span.label')), (el, [, s]) => {
      el.style.transform = `translate(${Math.round(s.cursor.x * w)}px, ${Math.round(s.cursor.y * hgt)}px)`
      el.style.setProperty('--c', s.user.color || colorFor(s.user.id))
      el.dataset.user = s.user.id
      setText(el.querySelector('.label'), String(s.user.name || s.user.id))
    })
  }

  bindBallotForm () {
    const form = $('ballot-form')
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      const f = form.elements
      try {
        act.openBallot(this.doc, {
          id: `b-${Date.now().toString(36)}`,
          question: f.question.value,
          options: f.options.value.split(','),
          stage: this.view,
          kind: f.kind.value,
          maxChoices: Number(f.max.value) || 1
        })
        form.reset()
        $('new-ballot').open = false
      } catch (err) { this.flash(String(err.message || err)) }
    })
  }

  renderInvite () {
    const box = $('invite')
    if (!this.ctx.isFacilitator()) { box.hidden = true; return }
    const code = savedInvite(this.wid)
    const link = this.config.auth
      ? (code ? `${location.origin}/?join=${encodeURIComponent(this.wid)}&code=${encodeURIComponent(code)}` : null)
      : `${location.origin}/w/${encodeURIComponent(this.wid)}`
    box.hidden = !link
    if (link && box.dataset.link !== link) {
      box.dataset.link = link
      box.replaceChildren(h('h2', {}, 'Invite'), h('p', {}, 'Share this link:'), h('input', { readonly: true, value: link, 'aria-label': 'Invite link', onclick: (e) => e.target.select() }))
    }
  }
}
