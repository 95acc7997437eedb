#!/usr/bin/env bash
# Installs every Debian package the tests, fixtures and benchmarks use (and a C compiler: npm
# install builds the native UDP addon, which the tests require on CI).
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
  xorriso genisoimage squashfs-tools cpio
  syslinux-common pxelinux isolinux ipxe ipxe-qemu ovmf
  qemu-system-x86 qemu-utils
  libnbd-bin nbd-server nbd-client
  chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
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
exit 0
