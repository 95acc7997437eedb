#!/usr/bin/env bash
# The package on ARM as Raspberry Pi OS bookworm runs it, emulated with qemu-user-static: a Debian 12
# root per architecture (debian-root.sh) with Debian's own Node.js 18 and npm 9.2; inside it, the
# palette manager's install of the packed package without and with a C compiler, Node-RED loading
# it and serving over TFTP and HTTP, and the test files listed below (in-root.sh).
#   scripts/platforms/arm.sh [arm64] [armhf]      (default: both)
#   PXE_ARM_TESTS='test/nodes/pxe-http.test.js ...' replaces the list of test files.
# Needs root and debootstrap. qemu-user-static's two binaries are unpacked from Debian's package
# into .cache/platforms (the package itself installs binfmt.d files that register every handler
# machine-wide at boot). Registers a binfmt_misc handler of our own and mounts /proc, /dev/shm and
# /tmp in the root only for the run, and removes them on every exit path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
arches=("$@"); [ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)
job_start=$(date +%s)

# Chosen to fit the job's 20 minutes emulated (a whole test/unit run takes hours under qemu-user):
# byte order (the DHCP, TFTP, NBD, NFS XDR codecs, ISO 9660 both-endian fields), alignment and the
# native addon (native-udp, TFTP transfers through it), file I/O (ISO and folder stores, offsets
# past 4 GiB), and the loopback servers (TFTP, HTTP, NBD) in Node-RED. The root has xorriso, which
# the HTTP node's tests use to make an image, and the host's fixture ISOs (stage-tests.mjs).
TESTS_arm64="test/unit/dhcp-codec.test.js test/unit/tftp-codec.test.js test/unit/tftp-options.test.js
test/unit/nbd-protocol.test.js test/unit/nfs-xdr.test.js test/unit/iso9660.test.js test/unit/native-udp.test.js
test/unit/folder-store.test.js test/platforms/iso-large-offsets.test.js
test/unit/http-range.test.js test/nodes/pxe-tftp.test.js test/nodes/pxe-http.test.js test/nodes/pxe-nbd.test.js"
# armhf (32-bit): the same byte-order and addon checks, and the 64-bit offsets of the ISO reader.
TESTS_armhf="test/unit/dhcp-codec.test.js test/unit/tftp-codec.test.js test/unit/nbd-protocol.test.js
test/unit/nfs-xdr.test.js test/unit/iso9660.test.js test/unit/native-udp.test.js test/platforms/iso-large-offsets.test.js
test/unit/folder-store.test.js test/nodes/pxe-tftp.test.js"

rootdir=""
arch=""
stage=""
stage_pid=""
cleanup() {
  local rc=$?
  if [ -n "$stage_pid" ]; then kill "$stage_pid" 2>/dev/null || true; wait "$stage_pid" 2>/dev/null || true; fi
  if [ -n "$stage" ]; then rm -rf "$stage"; fi
  if [ -n "$rootdir" ]; then
    for m in dev/shm proc tmp; do
      if mountpoint -q "$rootdir/$m"; then umount -l "$rootdir/$m"; fi
    done
    rm -rf "$rootdir/opt/pxe"
  fi
  if [ -n "$arch" ]; then
    # Interrupted while debootstrap's second stage ran: it leaves its own /proc and /sys mounted.
    for m in proc sys; do
      d="$repo/.cache/platforms/debian-$arch/$m"
      if mountpoint -q "$d"; then umount -l "$d"; fi
    done
    "$here/binfmt.sh" remove "$arch"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install debootstrap"; exit 1; }
timeout 20 apt-get -q --print-uris download base-files >/dev/null 2>&1 || curl -sfI http://deb.debian.org/debian/dists/bookworm/Release >/dev/null || { echo "deb.debian.org is not reachable"; exit 1; }

# qemu-user-static's binaries, from the package of this machine's Debian, not installed.
qver=$(apt-cache policy qemu-user-static 2>/dev/null | sed -n 's/^ *Candidate: //p')
[ -n "$qver" ] && [ "$qver" != "(none)" ] || { apt-get update -q >/dev/null; qver=$(apt-cache policy qemu-user-static | sed -n 's/^ *Candidate: //p'); }
qemu_dir="$repo/.cache/platforms/qemu-user-static-${qver//[:+~]/_}"
if [ ! -x "$qemu_dir/qemu-aarch64-static" ] || [ ! -x "$qemu_dir/qemu-arm-static" ]; then
  qtmp=$(mktemp -d)
  (cd "$qtmp" && apt-get download -q -o APT::Sandbox::User=root "qemu-user-static=$qver" >/dev/null)
  mkdir -p "$qemu_dir.tmp"
  dpkg-deb --fsys-tarfile "$qtmp"/qemu-user-static_*.deb | tar -x -C "$qemu_dir.tmp" --strip-components=3 ./usr/bin/qemu-aarch64-static ./usr/bin/qemu-arm-static
  rm -rf "$qtmp" "$qemu_dir"; mv "$qemu_dir.tmp" "$qemu_dir"
fi
echo "qemu-user-static $qver (unpacked in $qemu_dir)"

stage=$(mktemp -d /tmp/pxe-arm-stage-XXXX)
# Staged on the host while the first root builds (the test modules' npm install, esbuild).
node "$here/stage-tests.mjs" "$stage/src" > "$stage/stage.log" 2>&1 &
stage_pid=$!
cp "$here/probe.cjs" "$stage/probe.js"
node "$repo/scripts/build.mjs" >/dev/null # the package as npm publishes it: dist/ built now
tgz=$(cd "$repo" && npm pack --silent --pack-destination "$stage" | tail -1)
mv "$stage/$tgz" "$stage/pkg.tgz"
cp "$here/in-root.sh" "$stage/"

status=0
for a in "${arches[@]}"; do
  start=$(date +%s)
  echo "== $a: Debian 12 root"
  "$here/binfmt.sh" register "$a" "$qemu_dir"; arch=$a
  rootdir=$("$here/debian-root.sh" "$a" | tail -1)
  echo "root ready after $(( $(date +%s) - start )) s"
  if [ -n "$stage_pid" ]; then
    wait "$stage_pid" || { cat "$stage/stage.log"; echo "staging the tests failed"; exit 1; }
    stage_pid=""
    mv "$stage/probe.js" "$stage/src/probe.js"
  fi
  mount -t proc proc "$rootdir/proc"
  # debootstrap made the root's /dev nodes; the host's /dev is not bound in (a mount under a
  # shared bind would propagate back to the host).
  mkdir -p "$rootdir/dev/shm"
  mount -t tmpfs -o size=512m tmpfs "$rootdir/dev/shm"
  mount -t tmpfs -o size=2g tmpfs "$rootdir/tmp"
  rm -rf "$rootdir/opt/pxe"; mkdir -p "$rootdir/opt"
  cp -a "$stage" "$rootdir/opt/pxe"
  var=TESTS_$a
  tr ' ' '\n' <<< "${PXE_ARM_TESTS:-${!var}}" > "$rootdir/opt/pxe/tests.txt"
  if chroot "$rootdir" /bin/bash /opt/pxe/in-root.sh /opt/pxe/tests.txt; then r=ok; else r=FAILED; status=1; fi
  for m in dev/shm proc tmp; do if mountpoint -q "$rootdir/$m"; then umount -l "$rootdir/$m"; fi; done
  rm -rf "$rootdir/opt/pxe"; rootdir=""
  "$here/binfmt.sh" remove "$a"; arch=""
  echo "== $a: $r in $(( $(date +%s) - start )) s"
done
# Wall time, and CPU time of everything the job ran (emulated processes included).
echo "== ARM job (${arches[*]}): $(( $(date +%s) - job_start )) s wall; CPU user and system of this script, then of all it ran:"
times
exit $status
