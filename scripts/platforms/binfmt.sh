#!/usr/bin/env bash
# Registers (or removes) a qemu-user-static binfmt_misc handler for one foreign architecture, under
# a name of our own (pxe-qemu-<arch>) so that removing it never touches a handler someone else made.
# The F flag makes the kernel open the interpreter now, so it works inside a chroot without a copy.
#   binfmt.sh register arm64|armhf [dir]    binfmt.sh remove arm64|armhf
# dir holds qemu-aarch64-static / qemu-arm-static (default /usr/bin; arm.sh passes the copy it
# unpacked from Debian's qemu-user-static without installing the package).
# Mounts binfmt_misc when it is not mounted and records that in .cache/platforms/binfmt-mounted so
# that `remove` unmounts only what `register` mounted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
action=$1 arch=$2 qdir=${3:-/usr/bin}
dir=/proc/sys/fs/binfmt_misc
mark="$root/.cache/platforms/binfmt-mounted"
case "$arch" in
  arm64) qemu=$qdir/qemu-aarch64-static
    magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
  armhf) qemu=$qdir/qemu-arm-static
    magic='\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
  *) echo "unknown arch $arch" >&2; exit 2 ;;
esac
name="pxe-qemu-$arch"
case "$action" in
  register)
    [ -x "$qemu" ] || { echo "$qemu missing (apt-get install qemu-user-static)" >&2; exit 1; }
    mkdir -p "$(dirname "$mark")"
    if [ ! -e "$dir/register" ]; then
      mount -t binfmt_misc binfmt_misc "$dir"
      echo "$dir" > "$mark"
    fi
    [ -e "$dir/$name" ] && echo -1 > "$dir/$name"
    echo ":$name:M::$magic:$mask:$qemu:F" > "$dir/register"
    echo "binfmt: registered $name -> $qemu"
    ;;
  remove)
    [ -e "$dir/$name" ] && echo -1 > "$dir/$name" && echo "binfmt: removed $name"
    # Unmount only if we mounted it and no handler of ours is left (the other arch may still run).
    if [ -f "$mark" ] && ! ls "$dir" | grep -q '^pxe-qemu-'; then
      others=$(ls "$dir" | grep -vxE 'register|status' || true)
      if [ -z "$others" ]; then umount "$dir" && echo "binfmt: unmounted $dir"; fi
      rm -f "$mark"
    fi
    ;;
  *) echo "usage: $0 register|remove arm64|armhf" >&2; exit 2 ;;
esac
