#!/usr/bin/env bash
# Installs the packed package into a Node-RED 5 user dir the way the palette manager does
# (`npm install <tarball>`, engines enforced) and checks that Node-RED 5 loads every node set and
# the sidebar plugin without an error. Node-RED 5 needs Node >= 22.9.
# CI runs it from scripts/platforms/node-matrix.mjs, which passes PXE_NODE (a Node 22 binary) and
# PXE_NODE_RED_DIR (a dir whose node_modules holds node-red 5); run alone, it installs both from npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/pxe-nr5-XXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
if [ -z "${PXE_NODE:-}" ] || [ -z "${PXE_NODE_RED_DIR:-}" ]; then
  echo '{"private":true}' > package.json
  npm install --no-audit --no-fund --omit=optional node@22 node-red@5 >/dev/null 2>&1
  PXE_NODE=$(readlink -f "$work/node_modules/.bin/node") PXE_NODE_RED_DIR=$work
fi
# npm and the package's install script run on this Node, as they do under Node-RED 5's palette.
export PATH="$(dirname "$PXE_NODE"):$PATH"
node --version
tgz=$(cd "$root" && npm pack --silent --pack-destination "$work" | tail -1)
mkdir -p user
echo '{"name":"node-red-project","private":true}' > user/package.json
(cd user && npm install --no-audit --no-update-notifier --no-fund --save --save-prefix=~ --omit=dev --engine-strict "$work/$tgz") > npm.log 2>&1 || { cat npm.log; exit 1; }
echo "module.exports = { uiHost: '127.0.0.1', credentialSecret: false };" > user/settings.js
port=$(( 20000 + RANDOM % 20000 ))
node "$PXE_NODE_RED_DIR/node_modules/node-red/red.js" --userDir user --port "$port" > red.log 2>&1 &
pid=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/settings" >/dev/null && break; sleep 0.5; done
grep -E "Node-RED version|Node.js  version" red.log
curl -sf -H 'Accept: application/json' "http://127.0.0.1:$port/nodes" > nodes.json || { cat red.log; exit 1; }
curl -sf -H 'Accept: application/json' "http://127.0.0.1:$port/plugins" > plugins.json || { cat red.log; exit 1; }
node - "$root/package.json" nodes.json plugins.json <<'JS'
const fs = require('node:fs');
const pkg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const read = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const sets = [...read(process.argv[3]), ...read(process.argv[4])].filter((s) => s.module === pkg.name);
const want = [...Object.keys(pkg['node-red'].nodes), ...Object.keys(pkg['node-red'].plugins)];
let bad = 0;
for (const name of want) {
  const s = sets.find((x) => x.name === name);
  const state = !s ? 'MISSING' : s.err ? `ERROR ${s.err}` : s.enabled === false ? 'disabled' : 'loaded';
  if (state !== 'loaded') bad++;
  console.log(`${name}: ${state}${s && s.types && s.types.length ? ` (${s.types.join(',')})` : ''}`);
}
process.exit(bad ? 1 : 0);
JS
if grep -E "\[error\]" red.log; then echo "Node-RED logged errors"; exit 1; fi
echo "Node-RED 5: all node sets and the plugin loaded, no errors in the log"
