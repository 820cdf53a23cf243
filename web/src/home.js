// The landing page: create a workshop or join one.
//
// With authentication the server creates the workshop (POST /api/workshops) or adds
// the participant (POST /api/workshops/{id}/join) and returns the token, which the
// page keeps in session and local storage (never in the address). With --no-auth the browser makes up the workshop id and
// its own participant id; the workshop page writes the document itself.

import {
  apiCreate, apiJoin, randomId, rememberConfig, saveInvite, saveName, saveRole, saveToken, savedName, serverConfig
} from './identity.js'

const showError = (form, err) => {
  const p = form.querySelector('.form-error')
  p.textContent = String(err.message || err)
  p.hidden = false
}

export async function startHome () {
  const config = await serverConfig()
  rememberConfig(config)
  const create = document.getElementById('create-form')
  const join = document.getElementById('join-form')
  for (const form of [create, join]) form.elements.name.value = savedName()
  const params = new URLSearchParams(location.search)
  if (params.get('join')) join.elements.workshop.value = params.get('join')
  if (params.get('code')) join.elements.invite.value = params.get('code')
  join.querySelector('.invite-field').hidden = !config.auth
  join.elements.invite.required = config.auth
  document.getElementById('mode-note').textContent = config.auth
    ? 'Ask your facilitator for the workshop id and invite code (or their invite link).'
    : 'This server runs without authentication (local development): anyone with the workshop id can join.'

  create.addEventListener('submit', async (e) => {
    e.preventDefault()
    const f = create.elements
    const title = f.title.value.trim()
    const name = f.name.value.trim()
    const values = f.values.value.split('\n').map((v) => v.trim()).filter(Boolean)
    saveName(name)
    try {
      if (config.auth) {
        const r = await apiCreate(title, name, values)
        saveToken(r.workshop_id, r.token)
        if (r.invite_code) saveInvite(r.workshop_id, r.invite_code)
        location.assign(`/w/${encodeURIComponent(r.workshop_id)}`)
      } else {
        const wid = randomId('w-')
        saveRole(wid, 'facilitator')
        sessionStorage.setItem(`vmv.create.${wid}`, JSON.stringify({ title, values }))
        location.assign(`/w/${wid}`)
      }
    } catch (err) { showError(create, err) }
  })

  join.addEventListener('submit', async (e) => {
    e.preventDefault()
    const f = join.elements
    const wid = f.workshop.value.trim()
    const name = f.name.value.trim()
    saveName(name)
    try {
      if (config.auth) {
        const r = await apiJoin(wid, f.invite.value.trim(), name)
        saveToken(r.workshop_id, r.token)
        location.assign(`/w/${encodeURIComponent(r.workshop_id)}`)
      } else {
        location.assign(`/w/${encodeURIComponent(wid)}`)
      }
    } catch (err) { showError(join, err) }
  })
}
