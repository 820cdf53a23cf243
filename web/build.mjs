// Bundle web/src into web/dist with esbuild (run by scripts/setup; dist is not committed).
import * as esbuild from 'esbuild'
import { copyFile, mkdir } from 'node:fs/promises'

const here = new URL('.', import.meta.url)
const out = new URL('dist/', here)
await mkdir(out, { recursive: true })
await esbuild.build({
  entryPoints: [new URL('src/main.js', here).pathname],
  outfile: new URL('app.js', out).pathname,
  bundle: true,
  format: 'esm',
  target: ['es2020'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning'
})
await copyFile(new URL('src/style.css', here), new URL('app.css', out))
console.log('web bundle written to web/dist/')
