#!/usr/bin/env bash
# The package on ARM as Raspberry Pi OS bookworm runs it, emulated with qemu-user-static: a Debian 12
# root per architecture (debian-root.sh) with Debian's own Node.js 18 and npm; inside it, the
# palette manager's install of the packed package without and with a C compiler, Node-RED loading
# it and serving over TFTP and HTTP, and the test files listed below (in-root.sh).
#   scripts/platforms/arm.sh [arm64] [armhf]      (default: both)
#   PXE_ARM_TESTS='test/nodes/pxe-http.test.js ...' replaces the list of test files.
# Needs root. Registers binfmt_misc handlers and mounts /proc, /dev, /tmp in the root only for the
# run, and removes them on every exit path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
arches=("$@"); [ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)

# Chosen to fit ~10 minutes per architecture emulated (a whole test/unit run takes hours under
# qemu-user): byte order (the DHCP, TFTP, NBD, NFS XDR codecs, ISO 9660 both-endian fields),
# alignment and the native addon (native-udp, TFTP transfers through it), file I/O (ISO and folder
# stores, offsets past 4 GiB), and loopback servers (TFTP, HTTP, NBD) in and out of Node-RED.
# (test/unit/iso-store builds its images with xorriso, which the root does not have.)
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
cleanup() {
  local rc=$?
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

command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] || { echo "needs debootstrap and qemu-user-static: apt-get install debootstrap qemu-user-static"; exit 1; }
timeout 20 apt-get -q --print-uris download base-files >/dev/null 2>&1 || curl -sfI http://deb.debian.org/debian/dists/bookworm/Release >/dev/null || { echo "deb.debian.org is not reachable"; exit 1; }

stage=$(mktemp -d /tmp/pxe-arm-stage-XXXX)
node "$here/stage-tests.mjs" "$stage/src" >/dev/null
cp "$here/probe.cjs" "$stage/src/probe.js"
tgz=$(cd "$repo" && npm pack --silent --pack-destination "$stage" | tail -1)
mv "$stage/$tgz" "$stage/pkg.tgz"
cp "$here/in-root.sh" "$stage/"

status=0
for a in "${arches[@]}"; do
  start=$(date +%s)
  echo "== $a: Debian 12 root"
  "$here/binfmt.sh" register "$a"; arch=$a
  rootdir=$("$here/debian-root.sh" "$a" | tail -1)
  echo "root ready after $(( $(date +%s) - start )) s"
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
  cp /etc/resolv.conf "$rootdir/etc/resolv.conf" 2>/dev/null || true
  if chroot "$rootdir" /bin/bash /opt/pxe/in-root.sh /opt/pxe/tests.txt; then r=ok; else r=FAILED; status=1; fi
  for m in dev/shm proc tmp; do if mountpoint -q "$rootdir/$m"; then umount -l "$rootdir/$m"; fi; done
  rm -rf "$rootdir/opt/pxe"; rootdir=""
  "$here/binfmt.sh" remove "$a"; arch=""
  echo "== $a: $r in $(( $(date +%s) - start )) s"
done
rm -rf "$stage"
exit $status
