#!/usr/bin/env bash
# Prepare a fresh machine for `python -m bench.fanout`: the bench extra (matplotlib)
# into .venv and the Node reference peer (@y/websocket-server, pinned by
# bench/node/package-lock.json) into bench/node/node_modules (never committed).
# Needs node >= 18 and npm on PATH (Debian: apt-get install nodejs npm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
"$py" -m pip install --quiet -c "$root/constraints.txt" -e "$root[bench]"
if command -v npm >/dev/null 2>&1; then
  (cd "$here/node" && npm ci --no-audit --no-fund)
else
  echo "npm not found: the Node peer will be skipped (install nodejs and npm, then rerun)" >&2
fi
echo "bench ready: $py -m bench.fanout --quick"
