#!/usr/bin/env bash
# Builds (once; cached under .cache/platforms/) a Debian 12 root for a foreign architecture with
# Debian's own Node.js and npm — what Raspberry Pi OS bookworm ships — plus a C toolchain (hidden
# for the "no compiler" install). The caller registers binfmt_misc first (binfmt.sh).
#   debian-root.sh arm64|armhf      prints the root's path last
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
arch=$1
dest="$root/.cache/platforms/debian-$arch"
pkgs=nodejs,npm,libnode-dev,ca-certificates,python3,make,gcc,g++,libc6-dev
if [ -f "$dest/.pxe-root-complete" ] && [ "$(cat "$dest/.pxe-root-complete")" = "$pkgs" ]; then
  echo "$dest"; exit 0
fi
# A half-built root (interrupted run) is removed, never reused. Nothing may be mounted in it.
if [ -d "$dest" ]; then
  if grep -q " $dest/" /proc/mounts; then echo "$dest has mounts; not removing" >&2; exit 1; fi
  rm -rf "$dest"
fi
mkdir -p "$dest"
start=$(date +%s)
debootstrap --foreign --arch="$arch" --variant=minbase --include="$pkgs" bookworm "$dest" http://deb.debian.org/debian >&2
chroot "$dest" /debootstrap/debootstrap --second-stage >&2
rm -rf "$dest"/var/cache/apt/archives/*.deb
echo "$pkgs" > "$dest/.pxe-root-complete"
echo "debian-root: $arch built in $(( $(date +%s) - start )) s" >&2
echo "$dest"
