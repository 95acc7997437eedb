#!/usr/bin/env bash
# Runs inside the emulated Debian root (scripts/platforms/arm.sh copies it to /opt/pxe): the
# palette manager's install of the packed package without and with a C compiler, Node-RED loading
# it and serving a file over TFTP and HTTP on loopback, then the chosen unit/runtime test files.
#   in-root.sh <tests-file>    (/opt/pxe/pkg.tgz, /opt/pxe/src: staged tests; see arm.sh)
set -euo pipefail
tests_file=$1
export HOME=/root npm_config_cache=/tmp/npm-cache npm_config_update_notifier=false
# npm is the registry's release under /usr/local (debian-root.sh), as `npm install -g npm` leaves it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /opt/pxe
echo "root: $(uname -m), Debian $(cat /etc/debian_version), Node $(node --version), npm $(npm --version)"
# "No compiler" = the toolchain's compiler drivers moved aside (the root is cached between runs,
# so they wait in /var/lib, not in /opt/pxe, and a run that was killed gets them back here).
hidden=/var/lib/pxe-hidden-compilers
for c in "$hidden"/*; do if [ -e "$c" ]; then mv "$c" /usr/bin/; fi; done
triplet=$(gcc -dumpmachine)
compilers=$(ls /usr/bin/"$triplet"-gcc-1? /usr/bin/"$triplet"-g++-1? /usr/bin/"$triplet"-cpp-1?)
hide() { mkdir -p "$hidden"; for c in $compilers; do mv "$c" "$hidden/"; done; }
unhide() { for c in $compilers; do [ -e "$c" ] || mv "$hidden/$(basename "$c")" "$c"; done; }
trap unhide EXIT
user=/root/.node-red
pkgdir=$user/node_modules/@pxe-flow/node-red-pxe
# The roots share the host's loopback: each architecture its own ports, so both can run at once.
off=0; [ "$(uname -m)" = aarch64 ] || off=100
tftp_port=$(( 16969 + off )) http_port=$(( 18080 + off )) red_port=$(( 11880 + off ))
mkdir -p /opt/pxe/www
head -c 300000 /dev/urandom > /opt/pxe/www/kernel.bin
cat > /opt/pxe/flows.json <<JSON
[{"id":"t1","type":"tab","label":"arm","disabled":false},
 {"id":"s1","type":"pxe-iso-store","name":"www","path":"/opt/pxe/www"},
 {"id":"f1","type":"pxe-tftp","z":"t1","store":"s1","address":"127.0.0.1","port":$tftp_port,"maxBlksize":1468,"maxWindowsize":8,"maxTransfers":10,"maxPerClient":4,"wires":[[]]},
 {"id":"h1","type":"pxe-http","z":"t1","store":"s1","mode":"listen","address":"127.0.0.1","port":$http_port,"path":"/pxe","listing":false,"ipxePath":"","progressStep":50,"wires":[[]]}]
JSON

# The palette manager's command (Node-RED 4: @node-red/registry/lib/installer.js), plus
# --foreground-scripts so that the install script's line reaches this log.
palette_install() {
  rm -rf "$user"; mkdir -p "$user"
  echo '{"name":"node-red-project","description":"A Node-RED Project","version":"0.0.1","private":true}' > "$user/package.json"
  (cd "$user" && npm install --no-audit --no-update-notifier --no-fund --save --save-prefix=~ --omit=dev --engine-strict --foreground-scripts /opt/pxe/pkg.tgz) 2>&1 | tee /tmp/npm-install.log
}

red_pid=""
stop_red() { if [ -n "$red_pid" ]; then kill "$red_pid" 2>/dev/null || true; wait "$red_pid" 2>/dev/null || true; fi; red_pid=""; }
# Node-RED loads the package, runs the flow; a TFTP and an HTTP client fetch the file on loopback.
load_and_serve() {
  cp /opt/pxe/flows.json "$user/flows.json"
  echo "module.exports = { uiHost: '127.0.0.1', credentialSecret: false, flowFile: 'flows.json' };" > "$user/settings.js"
  node /opt/pxe/src/node_modules/node-red/red.js --userDir "$user" --port "$red_port" > /tmp/red.log 2>&1 &
  red_pid=$!
  node /opt/pxe/src/probe.js "$red_port" "$tftp_port" "$http_port" /opt/pxe/www/kernel.bin || { cat /tmp/red.log; stop_red; return 1; }
  stop_red
  grep -E "Node-RED version|Node.js  version|pxe-tftp|pxe-http" /tmp/red.log || true
  if grep -E "\[error\]" /tmp/red.log; then echo "Node-RED logged errors"; return 1; fi
}

# First the install a Pi with build-essential does: it builds the addon, which the tests load.
echo; echo "== palette install with a C compiler"
t=$(date +%s)
palette_install
grep -q "native UDP I/O built" /tmp/npm-install.log || { echo "expected the install to build the addon"; exit 1; }
ls -l "$pkgdir/build/Release/pxe_udp.node"
echo "install with compiler: $(( $(date +%s) - t )) s"
mkdir -p /opt/pxe/src/build/Release
cp "$pkgdir/build/Release/pxe_udp.node" /opt/pxe/src/build/Release/

# Then two lanes at once, one per CPU: Node-RED with that install, the install without a
# compiler and the README's rebuild (this lane), and the test files (the other).
installs() {
  set -e
  load_and_serve
  grep -q "use the native UDP addon" /tmp/red.log || { echo "expected the native addon in Node-RED's log"; return 1; }

  echo; echo "== palette install without a C compiler"
  hide
  t=$(date +%s)
  palette_install
  grep -q "native UDP I/O not built" /tmp/npm-install.log || { echo "expected the install to say the addon was not built"; return 1; }
  [ ! -e "$pkgdir/build/Release/pxe_udp.node" ] || { echo "addon present without a compiler?"; return 1; }
  echo "install without compiler: $(( $(date +%s) - t )) s"
  load_and_serve
  grep -q "use Node's dgram" /tmp/red.log || { echo "expected the dgram fallback in Node-RED's log"; return 1; }

  # The README's next step for that user: install a compiler, then `npm rebuild <package>` in ~/.node-red.
  echo; echo "== README: compiler installed afterwards, npm rebuild"
  unhide
  t=$(date +%s)
  name=$(node -p "require('/opt/pxe/src/package.json').name")
  (cd "$user" && npm rebuild "$name" --foreground-scripts) 2>&1 | tee /tmp/npm-rebuild.log
  grep -q "native UDP I/O built" /tmp/npm-rebuild.log || { echo "expected npm rebuild to build the addon"; return 1; }
  [ -e "$pkgdir/build/Release/pxe_udp.node" ] || { echo "npm rebuild left no addon"; return 1; }
  echo "npm rebuild: $(( $(date +%s) - t )) s"
}
( installs ) > /tmp/installs.log 2>&1 &
installs_pid=$!

echo; echo "== tests (Node $(node --version), addon built here; Node-RED and the other installs run beside them)"
cd /opt/pxe/src
fail=0
while read -r f; do
  [ -n "$f" ] || continue
  t=$(date +%s)
  if node --test "$f" > /tmp/test.log 2>&1; then
    echo "ok   $f ($(( $(date +%s) - t )) s)"
  else
    echo "FAIL $f ($(( $(date +%s) - t )) s)"; cat /tmp/test.log; fail=1
  fi
done < "$tests_file"

t=$(date +%s)
if wait "$installs_pid"; then r=0; else r=1; fi
echo; echo "== Node-RED, the install without a compiler, npm rebuild (waited $(( $(date +%s) - t )) s for them after the tests)"
cat /tmp/installs.log
[ "$r" = 0 ] || { echo "FAIL the installs lane"; fail=1; }
exit $fail
