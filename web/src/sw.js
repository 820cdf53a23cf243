// The service worker (served at /sw.js, scope /): keeps the app shell (the two
// HTML pages, the bundle, the manifest and icon, /web/config) so that a reload
// while the server is down still opens the workshop, whose content comes from
// IndexedDB. Network first: when the server answers, its response is used and
// kept; when it does not, the kept copy is. The API and the WebSocket are never
// touched. Every /w/{id} shares one kept copy of the workshop page.

const VERSION = '__BUILD__'
const CACHE = `vmv-shell-${VERSION}`
const SHELL = ['/', '/w/_', '/static/app.js', '/static/app.css', '/static/icon.svg', '/manifest.webmanifest', '/web/config']

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith('vmv-shell-') && key !== CACHE) await caches.delete(key)
    await self.clients.claim()
  })())
})

const keyFor = (url) => (url.pathname.startsWith('/w/') ? '/w/_' : url.pathname)

async function networkFirst (request, key) {
  const cache = await caches.open(CACHE)
  try {
    const response = await fetch(request)
    if (response.ok) await cache.put(key, response.clone())
    return response
  } catch (err) {
    const kept = await cache.match(key)
    if (kept) return kept
    throw err
  }
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url)
  if (url.origin !== self.location.origin || event.request.method !== 'GET') return
  const key = keyFor(url)
  if (event.request.mode === 'navigate' ? (url.pathname === '/' || url.pathname.startsWith('/w/')) : SHELL.includes(key)) {
    event.respondWith(networkFirst(event.request, key))
  }
})
