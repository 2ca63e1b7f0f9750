#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the qmp-hotplug pseries (ppc64le) test guest: OUTDIR/vmlinux and
# OUTDIR/initrd.img, for qemu-system-ppc64 -machine pseries (console hvc0).
#
#   tests/guest/build-guest-ppc64.sh [OUTDIR]
#
# OUTDIR defaults to ${HOTPLUG_GUEST_PPC64_DIR:-$HOME/.cache/qmp-hotplug/guest-ppc64}.
# The kernel is Debian's linux-image-powerpc64le (the versioned package it
# depends on; its boot/vmlinux), the initramfs is busybox-static:ppc64el plus
# tests/guest/init, the same /init as the x86 guest. Both packages are fetched
# with `apt-get download`, never installed; that needs the ppc64el
# architecture in dpkg, which this script adds (as root) when it is missing:
# `dpkg --add-architecture ppc64el && apt-get update`.
#
# busybox is a ppc64el binary the host cannot run, so the initramfs /init is
# a two-line wrapper that installs the applet links at boot and execs
# /init.hp (tests/guest/init). Cached like build-guest.sh: nothing is done when
# both files exist and OUTDIR/stamp matches init and this script.
#
# Environment: HOTPLUG_GUEST_PPC64_KERNEL_PKG overrides the kernel package.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-${HOTPLUG_GUEST_PPC64_DIR:-$HOME/.cache/qmp-hotplug/guest-ppc64}}
init_src=$here/init
arch=ppc64el
meta_pkg=linux-image-powerpc64le

say() { printf 'build-guest-ppc64: %s\n' "$*" >&2; }
die() {
  printf 'build-guest-ppc64: error: %s\n' "$*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg dpkg-deb sha256sum gzip find; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' not found; this script needs a Debian/Ubuntu host"
done
[ -r "$init_src" ] || die "missing $init_src"

stamp_key="init=$(sha256sum <"$init_src" | cut -d' ' -f1)"
stamp_key+=" builder=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"

mkdir -p "$outdir" || die "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)

up_to_date() {
  [ -s "$outdir/vmlinux" ] && [ -s "$outdir/initrd.img" ] &&
    [ -r "$outdir/stamp" ] && [ "$(head -n1 "$outdir/stamp")" = "$stamp_key" ]
}

if up_to_date; then
  say "up to date: $outdir ($(sed -n 2p "$outdir/stamp"))"
  exit 0
fi

if command -v flock >/dev/null 2>&1; then
  exec 9>"$outdir/.lock"
  flock 9
  if up_to_date; then
    say "up to date: $outdir ($(sed -n 2p "$outdir/stamp"))"
    exit 0
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qhp-guest-ppc64.XXXXXX")
trap 'rm -rf "$work"' EXIT

apt_opts=()
if [ "$(id -u)" = 0 ]; then
  apt_opts+=(-o APT::Sandbox::User=root)
fi

updated=0
apt_update() {
  [ "$updated" = 0 ] || return 1
  updated=1
  [ "$(id -u)" = 0 ] || { say "cannot run apt-get update (not root)"; return 1; }
  say "running apt-get update"
  # a mirror in mid-sync can fail one index (e.g. security): the main
  # archive is enough here, so only a failure to find the packages counts
  apt-get update -qq >&2 || say "apt-get update reported errors; going on"
}

if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  [ "$(id -u)" = 0 ] ||
    die "dpkg lacks the $arch architecture; as root run: dpkg --add-architecture $arch && apt-get update"
  say "adding the $arch architecture to dpkg"
  dpkg --add-architecture "$arch"
  apt_update || true
fi

kernel_pkg() {
  apt-cache depends "$meta_pkg:$arch" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:.*/, "", $2); print $2; exit }'
}

download() { # PKG... into $work/debs
  mkdir -p "$work/debs"
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -q "$@" >&2)
}

kpkg=${HOTPLUG_GUEST_PPC64_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
  kpkg=$(kernel_pkg)
  if [ -z "$kpkg" ]; then
    apt_update || true
    kpkg=$(kernel_pkg)
  fi
  [ -n "$kpkg" ] || die "apt does not know $meta_pkg:$arch (run 'apt-get update' as root)"
fi
say "kernel package: $kpkg:$arch"

if ! download "$kpkg:$arch" "busybox-static:$arch"; then
  apt_update || die "apt-get download $kpkg:$arch busybox-static:$arch failed"
  download "$kpkg:$arch" "busybox-static:$arch" ||
    die "apt-get download $kpkg:$arch busybox-static:$arch failed (even after apt-get update)"
fi

kdeb=$(find "$work/debs" -maxdepth 1 -name "${kpkg}_*_${arch}.deb" | head -n1)
bdeb=$(find "$work/debs" -maxdepth 1 -name "busybox-static_*_${arch}.deb" | head -n1)
[ -n "$kdeb" ] || die "no ${kpkg}_*_${arch}.deb was downloaded"
[ -n "$bdeb" ] || die "no busybox-static_*_${arch}.deb was downloaded"
kver=$(dpkg-deb -f "$kdeb" Version)
bver=$(dpkg-deb -f "$bdeb" Version)

say "extracting $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$work/kernel" || die "dpkg-deb -x $kdeb failed"
dpkg-deb -x "$bdeb" "$work/busybox" || die "dpkg-deb -x $bdeb failed"

vmlinux=$(find "$work/kernel/boot" -maxdepth 1 -name 'vmlinux-*' | head -n1)
config=$(find "$work/kernel/boot" -maxdepth 1 -name 'config-*' | head -n1)
[ -n "$vmlinux" ] || die "no boot/vmlinux-* in $(basename "$kdeb")"
[ -n "$config" ] || die "no boot/config-* in $(basename "$kdeb")"
krel=${vmlinux##*/vmlinux-}

missing=()
for opt in BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PPC_PSERIES HVC_CONSOLE HOTPLUG_CPU \
  MEMORY_HOTPLUG MEMORY_HOTREMOVE; do
  grep -qx "CONFIG_$opt=y" "$config" || missing+=("CONFIG_$opt")
done
[ "${#missing[@]}" = 0 ] ||
  die "kernel $krel lacks built-in ${missing[*]} (the initramfs carries no modules)"

busybox=$work/busybox/bin/busybox
[ -f "$busybox" ] || die "no bin/busybox in $(basename "$bdeb")"

say "building initramfs (busybox $bver)"
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,etc}
install -m 0755 "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$init_src" "$root/init.hp"
cat >"$root/init" <<'EOF'
#!/bin/sh
# qmp-hotplug ppc64 guest: make the busybox applet links, then the common /init.
/bin/busybox --install -s /bin
exec /init.hp
EOF
chmod 0755 "$root/init"

if command -v cpio >/dev/null 2>&1; then
  cpio_cmd=(cpio --quiet -o -H newc -R 0:0)
else
  die "cpio not found (apt-get install cpio): the host cannot run the ppc64el busybox cpio"
fi
(cd "$root" && find . -print | LC_ALL=C sort | "${cpio_cmd[@]}") |
  gzip -9 >"$work/initrd.img" || die "packing the initramfs failed"

cp "$vmlinux" "$outdir/.vmlinux.new"
cp "$work/initrd.img" "$outdir/.initrd.img.new"
rm -f "$outdir/stamp"
mv -f "$outdir/.vmlinux.new" "$outdir/vmlinux"
mv -f "$outdir/.initrd.img.new" "$outdir/initrd.img"
cp "$config" "$outdir/config"
printf '%s\nkernel %s (%s %s), busybox %s\n' \
  "$stamp_key" "$krel" "$kpkg" "$kver" "$bver" >"$outdir/stamp.new"
mv -f "$outdir/stamp.new" "$outdir/stamp"
say "built $outdir: kernel $krel, busybox $bver," \
  "initrd $(($(stat -c %s "$outdir/initrd.img") / 1024)) KiB"
