#!/usr/bin/env bash
# Builds a Debian 12 root for a foreign architecture as a Raspberry Pi OS bookworm user has it for
# this package: Debian's own Node.js 18 (`nodejs`, with its headers from `libnode-dev`), npm, and
# what node-gyp needs to compile the addon (python3, make, gcc, g++, libc6-dev: build-essential's
# compilers; the caller hides them for the "no compiler" install), and xorriso, which the HTTP
# node's tests use to make an ISO image. The caller registers binfmt_misc first (binfmt.sh).
#   debian-root.sh arm64|armhf      prints the root's path last
# Kept in .cache/platforms/ for local reruns; CI starts without it, so the job's budget is the
# fresh build. What makes the fresh build fit (a whole emulated `apt-get install npm` took over an
# hour): debootstrap resolves and downloads everything on the host in one pass (--include), so
# only the second stage runs emulated, with dpkg's fsyncs off (a throwaway root) and no docs;
# Debian's `npm` package (~420 packages of node-* modules, each configured by an emulated dpkg)
# is replaced by the same npm release from the npm registry, unpacked by the host — npm is pure
# JavaScript; and ca-certificates' postinst (an emulated sed per certificate) by the host's bundle.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
arch=$1
dest="$root/.cache/platforms/debian-$arch"
pkgs="nodejs libnode-dev python3 make gcc g++ libc6-dev xorriso"
npm_version=9.2.0 # bookworm's npm (9.2.0~ds1)
want="$pkgs npm@$npm_version"
if [ -f "$dest/.pxe-root-complete" ] && [ "$(cat "$dest/.pxe-root-complete")" = "$want" ]; then
  echo "debian-root: $arch root from an earlier run (remove $dest for a fresh one)" >&2
  echo "$dest"; exit 0
fi
# A half-built or outdated root is removed, never reused. Nothing may be mounted in it.
if [ -d "$dest" ]; then
  if grep -q " $dest/" /proc/mounts; then echo "$dest has mounts; not removing" >&2; exit 1; fi
  rm -rf "$dest"
fi
mkdir -p "$dest"
t0=$(date +%s)
# First stage, on the host: resolve, download and unpack the base and the packages above.
# debootstrap's few hundred lines go to a log, shown when it fails.
log="$dest.log"
failed() { tail -40 "$log" >&2; echo "debian-root: $1 failed (whole log: $log)" >&2; exit 1; }
debootstrap --foreign --arch="$arch" --variant=minbase --include="${pkgs// /,}" bookworm "$dest" http://deb.debian.org/debian > "$log" 2>&1 || failed "debootstrap (first stage)"
t1=$(date +%s)
echo "debian-root: $arch downloaded and unpacked in $(( t1 - t0 )) s" >&2
mkdir -p "$dest/etc/dpkg/dpkg.cfg.d"
cat > "$dest/etc/dpkg/dpkg.cfg.d/pxe-throwaway-root" <<'CFG'
# A throwaway test root: no fsync per file, and no documentation unpacked.
force-unsafe-io
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
CFG
# Second stage, emulated: dpkg unpacks and configures every package inside the root.
chroot "$dest" /debootstrap/debootstrap --second-stage >> "$log" 2>&1 || failed "debootstrap --second-stage"
t2=$(date +%s)
echo "debian-root: $arch configured (emulated dpkg) in $(( t2 - t1 )) s" >&2
# npm as `sudo npm install -g npm@$npm_version` leaves it on Debian's Node (prefix /usr/local).
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent "npm@$npm_version" >/dev/null)
mkdir -p "$dest/usr/local/lib/node_modules/npm" "$dest/usr/local/bin"
tar -xzf "$tmp/npm-$npm_version.tgz" -C "$dest/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
rm -rf "$tmp"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dest/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dest/usr/local/bin/npx"
# Debian's Node reads the system CA bundle at start (and warns on every run when it is missing).
mkdir -p "$dest/etc/ssl/certs"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"; fi
rm -rf "$dest/debootstrap" "$dest"/var/cache/apt/archives/*.deb
echo "$want" > "$dest/.pxe-root-complete"
echo "debian-root: $arch ready in $(( $(date +%s) - t0 )) s" >&2
echo "$dest"
