#!/usr/bin/env bash
# Loads the packed package into Node-RED 5 (which needs Node >= 22.9, taken from npm's `node`
# package) and prints what /nodes reports for it. Not part of CI: Node-RED 4.1 on Node 20 is the
# tested target; this answers "does it load in 5?".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/pxe-nr5-XXXX)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund node@22 node-red@5 >/dev/null 2>&1
node_bin="$work/node_modules/.bin/node"
"$node_bin" --version
tgz=$(cd "$root" && npm pack --silent --pack-destination "$work")
mkdir -p user/node_modules/@pxe-flow/node-red-pxe
tar -xzf "$work/$tgz" -C user/node_modules/@pxe-flow/node-red-pxe --strip-components=1
echo "module.exports = { uiHost: '127.0.0.1', credentialSecret: false };" > user/settings.js
port=$(( 20000 + RANDOM % 20000 ))
"$node_bin" node_modules/node-red/red.js --userDir user --port "$port" > red.log 2>&1 &
pid=$!
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$port/settings" >/dev/null && break; sleep 0.5; done
grep -E "Node-RED version|Node.js  version" red.log
curl -s -H 'Accept: application/json' "http://127.0.0.1:$port/nodes" |
  "$node_bin" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const n of JSON.parse(s))if(n.module.startsWith("@pxe-flow"))console.log(n.name,n.err?"ERROR "+n.err:"loaded",n.types.join(","))})'
grep -i "error" red.log || echo "no errors in the log"
