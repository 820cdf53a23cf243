// Entry point of the bundle: the landing page or the workshop view.
import { startHome } from './home.js'
import { startWorkshop } from './workshop.js'

document.documentElement.classList.add('js')
// The app shell for a cold start without the server (web/src/sw.js).
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err) => console.warn('no service worker:', err))
}
const page = document.body.dataset.page
const start = page === 'workshop' ? startWorkshop : startHome
start().catch((err) => {
  console.error(err)
  const p = document.createElement('p')
  p.className = 'fatal'
  p.setAttribute('role', 'alert')
  p.textContent = `Something went wrong: ${err.message || err}`
  document.body.prepend(p)
})
