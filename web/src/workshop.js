// The workshop view (/w/{workshop_id}), built on the client package
// (@vmv-sync/client, web/client): one Y.Doc synced by the stock y-websocket
// provider, kept in IndexedDB per workshop AND participant (two people on one
// browser never replay each other's edits), with the server's `saved`
// acknowledgement behind the state line, actions held as intents until the
// server's containers arrive, remote carets and undo in the shared texts.

import { Y, WorkshopClient, STAGES, STAGE_TITLES, deriveState, isStage, actions as act, colorFor, TooLong } from '@vmv-sync/client'
import { IndexeddbPersistence } from 'y-indexeddb'
import { h, setText, syncList } from './dom.js'
import { buildPanel, renderBallots } from './panels.js'
import { lockRemoved, removeCell, updateRemove, watchInvite } from './people.js'
import { bindInvite, loadInvite, renderInvite, setInvite } from './invite.js'
import { renderMessages } from './chatview.js'
import { bindOutcome } from './outcome.js'
import { clearReplica, discardLabel, droppedNote, holdLimit, limitSentence, refusalSentence } from './limits.js'
import {
  apiJoin, forgetToken, rememberConfig, resolveIdentity, saveName, saveToken, savedInvite, savedName, serverConfig
} from './identity.js'

const $ = (id) => document.getElementById(id)
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

export async function startWorkshop () {
  const wid = decodeURIComponent(location.pathname.split('/')[2] || '')
  setText($('workshop-id'), wid)
  bindPanes()
  const config = await serverConfig()
  rememberConfig(config)
  const { me, problem } = await resolveIdentity(wid, config)
  if (!me) return askToJoin(wid, config, problem)
  document.body.dataset.joined = 'true'
  new WorkshopView(wid, me, config).start()
}

/** Phones show one section at a time: the task, people or chat (buttons under the header). */
function bindPanes () {
  for (const b of document.querySelectorAll('.panes button')) {
    b.addEventListener('click', () => {
      document.body.dataset.pane = b.dataset.pane
      for (const o of document.querySelectorAll('.panes button')) o.setAttribute('aria-pressed', String(o === b))
      if (b.dataset.pane === 'chat') { $('chat-badge').textContent = ''; $('chat-input').focus({ preventScroll: true }) }
    })
  }
}

/** No identity yet: a small join form inside the workshop page (nothing else shown). */
function askToJoin (wid, config, problem = '') {
  document.body.dataset.joined = 'false'
  const conn = $('conn')
  conn.dataset.state = problem ? 'refused' : 'joining'
  setText(conn, problem || 'Join to take part.')
  const name = h('input', { id: 'join-name', required: true, maxlength: 60, value: savedName() })
  const code = h('input', { id: 'join-code', required: config.auth, autocomplete: 'off' })
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
        location.assign(`/w/${encodeURIComponent(wid)}`)
      } else {
        location.reload()
      }
    } catch (err) {
      error.textContent = /unknown workshop/i.test(String(err.message))
        ? 'No workshop with this id and invite code on this server. Check both with your facilitator.'
        : String(err.message || err)
      error.hidden = false
    }
  }
  $('stage-panel').replaceChildren(form)
  name.focus()
}

class WorkshopView {
  constructor (wid, me, config) {
    this.wid = wid
    this.me = me
    this.config = config
    this.view = STAGES[0]
    this.panel = null
    this.activity = []
    this.scheduled = false
    this.derived = null
    this.inviteState = { code: savedInvite(wid), joinPath: null, note: '' }
    this.seenMessages = null
    this.removed = false // this participant was removed (4401 "removed"): page locked
    this.removedIds = new Set() // participants this page removed
  }

  start () {
    const { wid, me } = this
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    this.client = new WorkshopClient({
      url: `${proto}://${location.host}`,
      workshopId: wid,
      token: me.token,
      participantId: me.id,
      name: me.name,
      role: me.role,
      stage: this.view,
      persistence: (name, doc) => new IndexeddbPersistence(name, doc)
    })
    const { client } = this
    const doc = this.doc = client.doc
    this.presence = client.presence
    this.ctx = {
      doc,
      client,
      me,
      readOnly: () => this.role() === 'observer' || !client.canSave,
      isFacilitator: () => this.role() === 'facilitator',
      maxValues: () => { const m = act.roots(doc).meta.get('max_values'); return Number.isInteger(m) && m > 0 ? m : 10 },
      nameOf: (pid) => this.nameOf(pid),
      flash: (text) => this.log(text),
      derived: null
    }
    doc.on('update', () => this.schedule())
    client.awareness.on('change', () => this.schedule())
    for (const e of ['status', 'pending', 'saved']) client.on(e, () => this.schedule())
    client.on('synced', () => { this.onSynced(); this.schedule() })
    client.on('refused', (r) => this.onRefused(r))
    client.whenLoaded.then(() => this.schedule())
    this.bindChat()
    this.bindRefusal()
    this.bindCursor()
    this.bindBallotForm()
    this.bindInvite()
    watchInvite(this)
    this.outcome = bindOutcome(this)
    setInterval(() => this.renderTyping(), 250)
    this.showStage(STAGES[0])
    const note = sessionStorage.getItem(`vmv.note.${wid}`)
    if (note) { sessionStorage.removeItem(`vmv.note.${wid}`); this.log(note); this.notice = note }
    window.vmv = {
      doc,
      Y,
      client,
      provider: client.provider,
      presence: this.presence,
      me,
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

  /**
   * After each sync: with --no-auth, create the workshop (its creator) or add
   * ourselves as a participant. Never our containers: the server creates them.
   */
  onSynced () {
    const { doc, me } = this
    const r = act.roots(doc)
    const key = `vmv.create.${this.wid}`
    const creating = sessionStorage.getItem(key)
    if (creating && !r.meta.has('title')) {
      const { title, values } = JSON.parse(creating)
      this.client.createWorkshop(title, { values })
    }
    sessionStorage.removeItem(key)
    if (!me.token) {
      const entry = r.participants.get(me.id)
      if (!(entry instanceof Y.Map) || entry.get('name') !== me.name) {
        const role = entry instanceof Y.Map && entry.get('role') ? entry.get('role') : me.role
        act.addParticipant(doc, me.id, me.name, role)
      }
    }
    if (!this.followed) {
      this.followed = true
      const stage = r.meta.get('stage')
      this.showStage(isStage(stage) ? stage : STAGES[0])
      this.lastWorkshopStage = stage
    }
    if (this.ctx.isFacilitator()) this.loadInvite()
  }

  async onRefused (refusal) {
    if (refusal.kind === 'revoked') this.removed = true
    if (refusal.kind === 'unauthorized') {
      // a wrong or expired token: straight to the join form, with one sentence
      forgetToken(this.wid)
      this.stopped = true
      this.client.destroy()
      return askToJoin(this.wid, this.config, 'Your access to this workshop is not valid (a wrong or expired link): join again with the invite code from your facilitator.')
    }
    if (refusal.kind === 'client-id-taken') {
      // Our replica wrote under a client id another participant owns: keep
      // everything else, drop what was written under that id, start again with a
      // fresh Y.Doc (new client id) from the rewritten local replica.
      const lost = this.client.pendingCount
      this.recovering = true
      this.schedule()
      try { await this.client.freshReplica({ clearReplica }) } catch (err) { console.error(err) } // in place: other tabs keep theirs
      sessionStorage.setItem(`vmv.note.${this.wid}`,
        `The server refused this device's copy: it used an id that belongs to someone else. It was reset${lost ? `; up to ${plural(lost, 'recent change')} made here could not be saved` : ''}.`)
      location.reload()
    }
    this.schedule()
  }

  /** online | connecting | offline | refused (+ kind) | recovering. */
  connectionState () {
    if (this.recovering) return 'recovering'
    const s = this.client.status
    if (s === 'connected') return 'online'
    return s
  }

  stateLine () {
    const c = this.client
    const n = c.pendingCount
    const kept = plural(c.pendingEdits, 'change') // edits a person would count, not transactions
    if (this.recovering) return 'Resetting this device\'s copy of the workshop…'
    if (this.discardProblem) return this.discardProblem
    if (this.discarding) return 'Dropping the changes the server did not save…'
    if (c.refusal && c.refusal.edit) return refusalSentence(c.refusal)
    if (c.refusal) {
      const lostNote = n ? ` ${kept} made here cannot be saved.` : ''
      switch (c.refusal.kind) {
        case 'revoked': return `You were removed from this workshop: changes made here can no longer be saved.${lostNote}`
        case 'unauthorized': return `Your access to this workshop is not valid (a wrong or expired link): join again with the invite code.${lostNote}`
        default: return `The server refused this connection (${c.refusal.code}: ${c.refusal.reason}).${lostNote}`
      }
    }
    switch (this.connectionState()) {
      case 'online':
        if (this.config.auth && c.everSynced && !c.exists) return 'This workshop does not exist on this server.'
        return n ? `online: saving ${kept}…` : 'online · all changes saved'
      case 'offline':
        return n ? `offline: ${kept} kept on this device, they will be sent when the server is back` : 'offline: changes you make are kept on this device'
      default:
        return n ? `connecting… ${kept} kept on this device` : 'connecting…'
    }
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
    if (this.client.everSynced && this.role() !== 'observer' && this.client.canSave) {
      const p = act.roots(this.doc).progress.get(this.me.id)
      if (!(p instanceof Y.Map) || p.get('stage') !== stage) act.setProgress(this.doc, this.me.id, stage)
    }
    this.schedule()
  }

  log (text) {
    this.activity.unshift({ id: `${Date.now()}-${Math.random()}`, text })
    this.activity.length = Math.min(this.activity.length, 30)
    this.schedule()
  }

  render () {
    if (this.stopped) return
    const { doc } = this
    const r = act.roots(doc)
    this.derived = deriveState(doc, Y)
    this.ctx.derived = this.derived
    // follow the facilitator: when the workshop stage changes, everyone goes there
    const wstage = r.meta.get('stage')
    if (isStage(wstage) && wstage !== this.lastWorkshopStage && this.client.everSynced) {
      this.lastWorkshopStage = wstage
      if (wstage !== this.view) { this.showStage(wstage); return this.render() }
    }
    const title = r.meta.get('title')
    setText($('title'), typeof title === 'string' ? title : 'Workshop')
    document.title = `${typeof title === 'string' ? title : this.wid} · VMV workshop`
    setText($('me'), `${this.me.name} (${this.role()})`)
    const conn = this.connectionState()
    const connEl = $('conn')
    connEl.dataset.state = conn === 'online' && this.config.auth && this.client.everSynced && !this.client.exists ? 'unknown' : conn
    if (this.client.refusal) connEl.dataset.kind = this.client.refusal.kind
    else delete connEl.dataset.kind
    setText(connEl, this.stateLine())
    document.body.classList.toggle('read-only', this.ctx.readOnly())
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
    this.outcome.update()
    if (this.removed) lockRemoved(this)
    this.renderRefusal()
  }

  // -- a refusal of this device's edits (4413, 4403 about a write): limits.js ----------

  bindRefusal () {
    $('refusal-discard').addEventListener('click', () => this.discardUnsaved())
  }

  /** The one way out of an edit refusal: shown while it lasts (the sentence is in the state line). */
  renderRefusal () {
    const r = this.client.refusal
    const box = $('refusal')
    box.hidden = !(r && r.edit) || Boolean(this.discardProblem)
    if (box.hidden) return
    setText($('refusal-text'), 'Everything the server has already saved stays; only what this device could not save is dropped.')
    const button = $('refusal-discard')
    setText(button, discardLabel(this.client.pendingEdits))
    button.disabled = Boolean(this.discarding)
  }

  /**
   * Drop what the server refused, and every other change it has not saved: the
   * client empties the IndexedDB replica and forgets counts and intents; the reload
   * then syncs a fresh Y.Doc from the server. Nothing refused is ever sent again.
   */
  async discardUnsaved () {
    if (this.discarding) return
    const edits = this.client.pendingEdits
    this.discarding = true
    this.schedule()
    try {
      // closed for good, the IndexedDB replica emptied, counts and intents forgotten
      await this.client.discardUnsaved({ clearReplica })
    } catch (err) {
      console.error(err)
      this.discardProblem = 'The changes kept on this device could not be dropped: clear this site\'s data in the browser, then reload this page.'
      this.schedule()
      return
    }
    sessionStorage.setItem(`vmv.note.${this.wid}`, droppedNote(edits))
    location.reload()
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
    const onlineCount = rows.filter((p) => p.online).length
    setText($('online-count'), `(${onlineCount} online)`)
    setText($('people-badge'), String(onlineCount))
    syncList($('participants'), rows, (p) => p.id, () => h('li', {}, h('span.dot'), h('span.pname'), h('span.role'), h('span.pstage'), removeCell()), (li, p) => {
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
      updateRemove(this, li, p)
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
    const note = $('chat-limit')
    const checkLimit = holdLimit(input, note, 'message')
    input.addEventListener('input', () => {
      if (input.value) this.presence.typing()
      else this.presence.stopTyping()
    })
    $('chat-form').addEventListener('submit', (e) => {
      e.preventDefault()
      const text = input.value.trim()
      if (!text || this.ctx.readOnly()) return
      try {
        this.client.postMessage(text, { stage: this.view })
      } catch (err) {
        if (!(err instanceof TooLong)) throw err
        note.textContent = limitSentence('message') // kept in the box: nothing was sent
        note.hidden = false
        return
      }
      input.value = ''
      checkLimit()
      this.presence.stopTyping()
    })
  }

  renderMessages () { renderMessages(this) } // chatview.js

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
    const layer = $('cursors')
    layer.style.height = '0'
    const [w, hgt] = [document.documentElement.clientWidth, document.documentElement.scrollHeight]
    layer.style.height = `${hgt}px` // the layer clips: a cursor from a wider screen never widens ours
    const shown = this.presence.others().filter(([, s]) => s.cursor && s.cursor.stage === this.view &&
      Number.isFinite(s.cursor.x) && Number.isFinite(s.cursor.y))
    syncList($('cursors'), shown, ([cid]) => cid, () => h('div.cursor', {}, h('span.arrow'), h('span.label')), (el, [, s]) => {
      const x = Math.max(0, Math.min(w - 12, Math.round(s.cursor.x * w)))
      el.style.transform = `translate(${x}px, ${Math.round(s.cursor.y * hgt)}px)`
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
      } catch (err) { this.log(String(err.message || err)) }
    })
  }

  // -- invite panel (facilitator): invite.js ----------------------------------------

  loadInvite () { return loadInvite(this) }
  bindInvite () { bindInvite(this) }
  setInvite (code, joinPath, note) { setInvite(this, code, joinPath, note) }
  renderInvite () { renderInvite(this) }
}
