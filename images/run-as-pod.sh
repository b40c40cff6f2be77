#!/usr/bin/env bash
# Run one command in a mounted image root the way the chart's pods run it, without a
# container runtime: a private mount and PID namespace, the image's root read-only, a
# writable /tmp (a host directory, so the caller sees what was written), a fresh /proc, a
# minimal /dev with /dev/shm, the given numeric user and only the given environment.
#   run-as-pod.sh ROOTFS UID:GID HOST_TMP_DIR -- [NAME=VALUE...] COMMAND [ARG...]
# Needs root (unshare, mount, chroot); the command itself runs as UID:GID.
set -euo pipefail
if [[ ${1:-} != --inside ]]; then
  [[ $# -ge 5 && $4 == -- ]] || { sed -n '2,8p' "$0" >&2; exit 2; }
  exec unshare --mount --pid --fork --propagation private -- "$0" --inside "$@"
fi
shift
root=$1 user=$2 tmp=$3
shift 4
mount --bind "$root" "$root"
mount --bind "$tmp" "$root/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755,size=16m tmpfs "$root/dev"
for device in null zero full random urandom tty; do
  touch "$root/dev/$device"
  mount --bind "/dev/$device" "$root/dev/$device"
done
mkdir "$root/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=256m tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
# Last: the root itself read-only (the submounts above stay as they are).
mount -o remount,bind,ro,nosuid,nodev "$root"
exec chroot --userspec="$user" "$root" /usr/bin/env -i "$@"
