#!/usr/bin/env bash
# Installs every Debian package the tests, fixtures and benchmarks use (and a C compiler: npm
# install builds the native UDP addon, which the tests require on CI). `npm test` runs it when
# something is missing; `--check` only reports.
# Services are never started by the install (policy-rc.d answers 101): tests start their own
# servers inside network namespaces, so nothing may listen on the machine's own interfaces.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  iproute2 nftables iptables procps kmod
  build-essential python3
  busybox-static isc-dhcp-client dhcpcd-base isc-dhcp-relay
  tftp-hpa tftpd-hpa atftp curl wget
  dnsmasq-base nginx-light wrk kea-admin
  xorriso genisoimage squashfs-tools cpio gnupg openssl
  syslinux-common pxelinux isolinux ipxe ipxe-qemu ovmf
  qemu-system-x86 qemu-utils
  libnbd-bin nbd-server nbd-client
  libnfs-utils nfs-ganesha nfs-ganesha-vfs rpcbind klibc-utils
  chromium
  debootstrap
)
# (The arm64 job, scripts/platforms/arm.sh, also needs qemu-user-static's binaries: it unpacks them
# from the package itself, since installing it puts binfmt.d files on the machine that register
# every foreign architecture at each boot.)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# --check: only say what is missing (exit 1 if anything is), install nothing.
if [ "${1:-}" = "--check" ]; then
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "missing Debian packages: ${missing[*]}"
  exit 1
fi
# nfs-common (rpc.statd) comes in as a dependency of nfs-ganesha: note whether it was here before.
had_nfs_common=0
dpkg-query -W -f='${Status}' nfs-common 2>/dev/null | grep -q 'install ok installed' && had_nfs_common=1
if [ ${#missing[@]} -gt 0 ]; then
  restore=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    restore=1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$restore" ] && rm -f /usr/sbin/policy-rc.d
fi
# The fixtures fetch Debian's kernel package with `apt-get download`: the package lists must exist.
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q
# Packages whose postinst starts a daemon anyway (no systemd here): stop what they started, by
# pidfile only, so no TFTP/NBD server listens on the machine's own interfaces.
for pidf in /run/tftpd-hpa.pid /run/atftpd.pid /run/nbd-server.pid /run/nginx.pid; do
  [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null || true
done
# The NFS packages (rpcbind; nfs-common, which nfs-ganesha depends on, with rpc.statd; nfs-ganesha)
# start daemons only through invoke-rc.d / deb-systemd-invoke, which policy-rc.d refuses. Should one
# have started anyway (a policy-rc.d of the machine's own that allows it), stop it by pidfile — but
# only for a package this run installed: an rpcbind the machine already had may serve its NFS mounts.
# On systemd, a fresh install also enables rpcbind.socket (port 111 on every interface at the next
# boot); disable the units of what this run installed. One rpcbind at a time per machine: the NFS
# tests start their own inside a namespace and skip that part while another one runs.
installed_now() { printf '%s\n' "${missing[@]}" | grep -qx "$1"; }
if [ ${#missing[@]} -gt 0 ]; then
  installed_now rpcbind && { [ -f /run/rpcbind.pid ] && kill "$(cat /run/rpcbind.pid)" 2>/dev/null || true; }
  installed_now nfs-ganesha && { [ -f /run/ganesha/ganesha.pid ] && kill "$(cat /run/ganesha/ganesha.pid)" 2>/dev/null || true; }
  [ "$had_nfs_common" = 0 ] && { [ -f /run/rpc.statd.pid ] && kill "$(cat /run/rpc.statd.pid)" 2>/dev/null || true; }
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    units=()
    installed_now rpcbind && units+=(rpcbind.socket rpcbind.service)
    installed_now nfs-ganesha && units+=(nfs-ganesha.service nfs-ganesha-lock.service)
    [ "$had_nfs_common" = 0 ] && units+=(rpc-statd.service)
    [ ${#units[@]} -gt 0 ] && systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
  fi
fi
exit 0
