#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the qmp-hotplug test guest: OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
#   tests/guest/build-guest.sh [OUTDIR]
#
# OUTDIR defaults to ${HOTPLUG_GUEST_DIR:-$HOME/.cache/qmp-hotplug/guest}.
# The kernel is Debian's cloud kernel (linux-image-cloud-amd64 -> the versioned
# package it depends on); the initramfs is busybox (from the busybox-static
# .deb) plus tests/guest/init. Both packages are fetched with `apt-get
# download`, never installed. The result is cached: nothing is done when both
# files exist and OUTDIR/stamp matches the checksums of init and this script.
#
# Environment: HOTPLUG_GUEST_KERNEL_PKG overrides the kernel package
# (default: what linux-image-cloud-amd64 depends on).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-${HOTPLUG_GUEST_DIR:-$HOME/.cache/qmp-hotplug/guest}}
init_src=$here/init
meta_pkg=linux-image-cloud-amd64

say() { printf 'build-guest: %s\n' "$*" >&2; }
trap 'printf "build-guest: error: line %s failed: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
die() {
  printf 'build-guest: error: %s\n' "$*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg-deb sha256sum gzip find; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' not found; this script needs a Debian/Ubuntu host (run scripts/deps.sh)"
done
[ -r "$init_src" ] || die "missing $init_src"

stamp_key="init=$(sha256sum <"$init_src" | cut -d' ' -f1)"
stamp_key+=" builder=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"

mkdir -p "$outdir" || die "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)

up_to_date() {
  [ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.img" ] &&
    [ -r "$outdir/stamp" ] && [ "$(head -n1 "$outdir/stamp")" = "$stamp_key" ]
}

if up_to_date; then
  say "up to date: $outdir ($(sed -n 2p "$outdir/stamp"))"
  exit 0
fi

# One builder at a time per OUTDIR; whoever waited re-checks the cache.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$outdir/.lock"
  flock 9
  if up_to_date; then
    say "up to date: $outdir ($(sed -n 2p "$outdir/stamp"))"
    exit 0
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qhp-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT

apt_opts=()
if [ "$(id -u)" = 0 ]; then
  # The download dir is ours (0700); do not drop privileges to _apt for it.
  apt_opts+=(-o APT::Sandbox::User=root)
fi
updated=0
apt_update() {
  [ "$updated" = 0 ] || return 1
  updated=1
  if [ "$(id -u)" != 0 ]; then
    say "cannot run apt-get update (not root)"
    return 1
  fi
  say "running apt-get update"
  apt-get update -qq >&2 || die "apt-get update failed"
}

# Which versioned kernel package the cloud meta package depends on.
kernel_pkg() {
  local deps
  deps=$(apt-cache depends "$meta_pkg" 2>/dev/null) || return 0
  awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' <<<"$deps"
}

download() { # PKG... into $work/debs
  mkdir -p "$work/debs"
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -q "$@" >&2)
}

kpkg=${HOTPLUG_GUEST_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
  kpkg=$(kernel_pkg)
  if [ -z "$kpkg" ]; then
    apt_update || true
    kpkg=$(kernel_pkg)
  fi
  [ -n "$kpkg" ] ||
    die "apt does not know $meta_pkg (no Debian package lists? run 'apt-get update' as root)"
fi
say "kernel package: $kpkg"

if ! download "$kpkg" busybox-static; then
  apt_update || die "apt-get download $kpkg busybox-static failed"
  download "$kpkg" busybox-static ||
    die "apt-get download $kpkg busybox-static failed (even after apt-get update)"
fi

kdeb=$(find "$work/debs" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
bdeb=$(find "$work/debs" -maxdepth 1 -name 'busybox-static_*.deb' | head -n1)
[ -n "$kdeb" ] || die "no ${kpkg}_*.deb was downloaded"
[ -n "$bdeb" ] || die "no busybox-static_*.deb was downloaded"
kver=$(dpkg-deb -f "$kdeb" Version)
bver=$(dpkg-deb -f "$bdeb" Version)

say "extracting $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$work/kernel" || die "dpkg-deb -x $kdeb failed"
dpkg-deb -x "$bdeb" "$work/busybox" || die "dpkg-deb -x $bdeb failed"

vmlinuz=$(find "$work/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
config=$(find "$work/kernel/boot" -maxdepth 1 -name 'config-*' | head -n1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $(basename "$kdeb")"
[ -n "$config" ] || die "no boot/config-* in $(basename "$kdeb")"
krel=${vmlinuz##*/vmlinuz-}

# Everything the guest relies on must be built in: there are no modules in
# the initramfs. Refuse a kernel that would need them.
missing=()
for opt in BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS SERIAL_8250 SERIAL_8250_CONSOLE \
  ACPI ACPI_PROCESSOR HOTPLUG_CPU ACPI_HOTPLUG_CPU ACPI_CONTAINER \
  MEMORY_HOTPLUG MEMORY_HOTREMOVE ACPI_HOTPLUG_MEMORY \
  PCI HOTPLUG_PCI HOTPLUG_PCI_ACPI PCIEPORTBUS HOTPLUG_PCI_PCIE; do
  grep -qx "CONFIG_$opt=y" "$config" || missing+=("CONFIG_$opt")
done
[ "${#missing[@]}" = 0 ] ||
  die "kernel $krel lacks built-in ${missing[*]} (the initramfs carries no modules)"

busybox=$work/busybox/bin/busybox
[ -x "$busybox" ] || die "no bin/busybox in $(basename "$bdeb")"

say "building initramfs (busybox $bver)"
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,etc}
cp "$busybox" "$root/bin/busybox"
applets=$("$busybox" --list) || die "cannot run $busybox --list"
for a in $applets; do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
install -m 0755 "$init_src" "$root/init"

if command -v cpio >/dev/null 2>&1; then
  cpio_cmd=(cpio --quiet -o -H newc -R 0:0)
else
  say "cpio not found, using busybox cpio"
  cpio_cmd=("$busybox" cpio -o -H newc)
fi
(cd "$root" && find . -print | LC_ALL=C sort | "${cpio_cmd[@]}") |
  gzip -9 >"$work/initrd.img" || die "packing the initramfs failed"

# Install atomically: a reader sees the old pair or the new one.
cp "$vmlinuz" "$outdir/.vmlinuz.new"
cp "$work/initrd.img" "$outdir/.initrd.img.new"
rm -f "$outdir/stamp"
mv -f "$outdir/.vmlinuz.new" "$outdir/vmlinuz"
mv -f "$outdir/.initrd.img.new" "$outdir/initrd.img"
cp "$config" "$outdir/config"
printf '%s\nkernel %s (%s %s), busybox %s\n' \
  "$stamp_key" "$krel" "$kpkg" "$kver" "$bver" >"$outdir/stamp.new"
mv -f "$outdir/stamp.new" "$outdir/stamp"
say "built $outdir: kernel $krel, busybox $bver," \
  "initrd $(($(stat -c %s "$outdir/initrd.img") / 1024)) KiB"
