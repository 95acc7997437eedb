#!/usr/bin/env bash
# Builds (once; cached under .cache/platforms/) a Debian 12 root for a foreign architecture with
# Debian's own Node.js and npm — what Raspberry Pi OS bookworm ships — plus a C toolchain (hidden
# for the "no compiler" install). The caller registers binfmt_misc first (binfmt.sh).
# debootstrap makes the base system; apt inside the root adds the packages (debootstrap's own
# resolver leaves npm's ~300 node-* dependencies half-configured).
#   debian-root.sh arm64|armhf      prints the root's path last
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
arch=$1
dest="$root/.cache/platforms/debian-$arch"
pkgs="nodejs npm libnode-dev python3 make gcc g++ libc6-dev"
if [ -f "$dest/.pxe-root-complete" ] && [ "$(cat "$dest/.pxe-root-complete")" = "$pkgs" ]; then
  echo "$dest"; exit 0
fi
start=$(date +%s)
if [ ! -f "$dest/.pxe-base-complete" ]; then
  # A half-built root (interrupted run) is removed, never reused. Nothing may be mounted in it.
  if [ -d "$dest" ]; then
    if grep -q " $dest/" /proc/mounts; then echo "$dest has mounts; not removing" >&2; exit 1; fi
    rm -rf "$dest"
  fi
  mkdir -p "$dest"
  debootstrap --foreign --arch="$arch" --variant=minbase --include=ca-certificates bookworm "$dest" http://deb.debian.org/debian >&2
  chroot "$dest" /debootstrap/debootstrap --second-stage >&2
  touch "$dest/.pxe-base-complete"
  echo "debian-root: $arch base system in $(( $(date +%s) - start )) s" >&2
fi
cat > "$dest/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
cp /etc/resolv.conf "$dest/etc/resolv.conf"
# shellcheck disable=SC2086
chroot "$dest" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -q -o Acquire::Languages=none && apt-get -f install -y -q --no-install-recommends && apt-get install -y -q --no-install-recommends $pkgs && apt-get clean" >&2
rm -rf "$dest/debootstrap"
echo "$pkgs" > "$dest/.pxe-root-complete"
echo "debian-root: $arch ready in $(( $(date +%s) - start )) s" >&2
echo "$dest"
