#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boot the nested VFIO rig's L1 guest and run one command inside it.
#
#   tests/vfio/run-l1.sh [--timeout SECONDS] [--keep] -- COMMAND [ARG...]
#
# L1 is TCG q35 with an emulated IOMMU (intel-iommu, caching-mode) running
# Debian's generic kernel (tests/vfio/build-l1.sh; built on first use). Inside,
# the host's / is mounted read-only, the share (HOTPLUG_VFIO_SHARE, default the
# git top level of the current directory) read-write at the same path, and
# COMMAND runs chrooted there, in the current directory, with the current
# environment's HOTPLUG_* and PATH variables. Devices passed to L1 and bound to
# vfio-pci by its /init, each behind its own pcie-root-port:
#   01:00.0 e1000e (own IOMMU group)  02:00.0 edu (own group)
#   03:00.0 e1000e + 03:00.1 virtio-net (one slot, one group of two)
# COMMAND's output is copied to stdout, L1's console to stderr with --verbose
# (always kept in the run directory with --keep); the exit status is
# COMMAND's, 124 when L1 did not finish within SECONDS (default 600), 125 when
# L1 could not run it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
timeout=600
keep=0
verbose=0
while [ $# -gt 0 ]; do
  case $1 in
  --timeout) timeout=$2; shift 2 ;;
  --keep) keep=1; shift ;;
  --verbose) verbose=1; shift ;;
  --) shift; break ;;
  *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: run-l1.sh [--timeout S] [--keep] [--verbose] -- COMMAND..." >&2; exit 125; }
l1dir=${HOTPLUG_VFIO_L1_DIR:-$HOME/.cache/qmp-hotplug/vfio-l1}
"$here/build-l1.sh" "$l1dir" || exit 125
share=${HOTPLUG_VFIO_SHARE:-$(git rev-parse --show-toplevel 2>/dev/null || pwd)}
share=$(cd "$share" && pwd -P)
cwd=$(pwd -P)
case $cwd/ in "$share"/*) ;; *) echo "run-l1: $cwd is not inside the share $share" >&2; exit 125 ;; esac
qemu=${HOTPLUG_QEMU_BINDIR:+$HOTPLUG_QEMU_BINDIR/}qemu-system-x86_64
# L1 itself always runs on the host's QEMU (the bindir's may be a chroot wrapper).
command -v qemu-system-x86_64 >/dev/null && qemu=qemu-system-x86_64

run=$(mktemp -d "$share/.vfio-run.XXXXXX")
qpid=
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
  if [ "$keep" = 0 ]; then rm -rf "$run"; else echo "run-l1: kept $run" >&2; fi
}
trap cleanup EXIT
{
  echo "# SPDX-License-Identifier: LGPL-2.1-or-later"
  echo "export PATH=$(printf %q "$PATH") HOME=$(printf %q "$HOME") HOTPLUG_IN_VFIO_L1=1"
  while IFS='=' read -r k v; do
    case $k in HOTPLUG_*|G_*|CMOCKA_*) echo "export $k=$(printf %q "$v")" ;; esac
  done < <(env)
  echo "cd $(printf %q "$cwd") || exit 125"
  printf 'exec'
  printf ' %q' "$@"
  echo
} >"$run/cmd"

start=$(date +%s.%N)
"$qemu" -accel tcg -machine q35 -cpu max -smp 2 -m 2048 -nodefaults -no-reboot \
  -display none -monitor none -serial "file:$run/console" \
  -device intel-iommu,intremap=on,caching-mode=on \
  -kernel "$l1dir/vmlinuz" -initrd "$l1dir/initrd.img" \
  -append "console=ttyS0 intel_iommu=on iommu=pt quiet panic=-1 qhp.run=$run qhp.share=$share" \
  -fsdev local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=share,path="$share",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=share,mount_tag=share \
  -device pcie-root-port,id=rp1,chassis=1,slot=1 -device e1000e,bus=rp1 \
  -device pcie-root-port,id=rp2,chassis=2,slot=2 -device edu,bus=rp2 \
  -device pcie-root-port,id=rp3,chassis=3,slot=3 \
  -device e1000e,bus=rp3,addr=0.0,multifunction=on -device virtio-net-pci,bus=rp3,addr=0.1 \
  2>"$run/qemu.err" &
qpid=$!
deadline=$(($(date +%s) + timeout))
while kill -0 "$qpid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "run-l1: L1 did not finish within ${timeout}s" >&2
    [ "$verbose" = 1 ] && cat "$run/console" >&2
    [ -r "$run/out" ] && cat "$run/out"
    exit 124
  fi
  sleep 0.5
done
wait "$qpid" || true
qpid=
end=$(date +%s.%N)
[ "$verbose" = 1 ] && cat "$run/console" >&2
grep -h '^l1-init:' "$run/console" >&2 || true
echo "run-l1: L1 ran $(echo "$end - $start" | bc 2>/dev/null || echo "?")s" >&2
[ -r "$run/out" ] && cat "$run/out"
if [ ! -r "$run/rc" ]; then
  echo "run-l1: L1 ended without running the command" >&2
  cat "$run/qemu.err" "$run/console" >&2
  exit 125
fi
exit "$(cat "$run/rc")"
