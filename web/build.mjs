// Bundle web/src into web/dist with esbuild (run by scripts/setup; dist is not committed).
// The page imports the client package (@vmv-sync/client, the npm workspace in web/client).
import * as esbuild from 'esbuild'
import { createHash } from 'node:crypto'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'

const here = new URL('.', import.meta.url)
const out = new URL('dist/', here)
const src = (name) => new URL(`src/${name}`, here)
await mkdir(out, { recursive: true })
await esbuild.build({
  entryPoints: [src('main.js').pathname],
  outfile: new URL('app.js', out).pathname,
  bundle: true,
  format: 'esm',
  target: ['es2020'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning'
})
await copyFile(src('style.css'), new URL('app.css', out))
await copyFile(src('manifest.webmanifest'), new URL('manifest.webmanifest', out))
await copyFile(src('icon.svg'), new URL('icon.svg', out))
for (const png of ['icon-192.png', 'icon-512.png']) await copyFile(src(png), new URL(png, out))
// the service worker's cache name changes with whatever it keeps
const hash = createHash('sha256')
for (const f of ['app.js', 'app.css']) hash.update(await readFile(new URL(f, out)))
for (const f of ['index.html', 'workshop.html', 'manifest.webmanifest', 'icon.svg']) hash.update(await readFile(src(f)))
const sw = (await readFile(src('sw.js'), 'utf8')).replace('__BUILD__', hash.digest('hex').slice(0, 12))
await writeFile(new URL('sw.js', out), sw)
console.log('web bundle written to web/dist/')
