#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the qmp-hotplug aarch64 test guest: OUTDIR/vmlinuz and
# OUTDIR/initrd.img, for qemu-system-aarch64 -machine virt -cpu max with
# direct -kernel (console ttyAMA0).
#
#   tests/guest/build-guest-arm64.sh [OUTDIR]
#
# OUTDIR defaults to ${HOTPLUG_GUEST_ARM64_DIR:-$HOME/.cache/qmp-hotplug/guest-arm64}.
# The kernel is Debian's arm64 cloud kernel (the versioned package that
# linux-image-cloud-arm64 depends on); OUTDIR/vmlinuz is its plain arm64
# Image (the .deb's gzip-compressed boot/vmlinuz-* is decompressed, so any
# QEMU loads it). The initramfs is busybox-static:arm64 plus tests/guest/init,
# the same /init as the x86 guest.
#
# Both packages are fetched as .debs, never installed, and dpkg gets no
# foreign architecture: apt runs on a private state directory (its own
# lists, cache and status, APT::Architecture=arm64) fed with the host's apt
# sources, so it reads the mirror's arm64 Packages index and downloads from
# its pool. That needs no root, only network access to the mirror.
#
# busybox is an arm64 binary the host cannot run, so the initramfs /init is
# a two-line wrapper that installs the applet links at boot and execs
# /init.hp (tests/guest/init). Cached like build-guest.sh: nothing is done
# when both files exist and OUTDIR/stamp matches init and this script.
#
# Environment: HOTPLUG_GUEST_ARM64_KERNEL_PKG overrides the kernel package.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-${HOTPLUG_GUEST_ARM64_DIR:-$HOME/.cache/qmp-hotplug/guest-arm64}}
init_src=$here/init
arch=arm64
meta_pkg=linux-image-cloud-arm64

say() { printf 'build-guest-arm64: %s\n' "$*" >&2; }
die() {
  printf 'build-guest-arm64: error: %s\n' "$*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg-deb sha256sum gzip find cpio; do
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

work=$(mktemp -d "${TMPDIR:-/tmp}/qhp-guest-arm64.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- a private apt for arm64 ------------------------------------------------
# The host's sources (sources.list and sources.list.d/*.list|*.sources) are
# copied as they are; the keyrings they name stay the host's. Nothing in
# /var/lib/apt, /var/cache/apt or dpkg's architecture list is touched.
apt_root=$work/apt
mkdir -p "$apt_root"/{etc/sources.list.d,etc/preferences.d,state/lists/partial} \
  "$apt_root"/cache/archives/partial
: >"$apt_root/state/status"
: >"$apt_root/etc/sources.list"
etc_apt=$(apt-config shell d Dir::Etc/d | sed -n "s/^d='\(.*\)'$/\1/p")
etc_apt=/${etc_apt#/}
[ -d "$etc_apt" ] || etc_apt=/etc/apt
[ -r "$etc_apt/sources.list" ] && cp "$etc_apt/sources.list" "$apt_root/etc/sources.list"
nsrc=0
for f in "$etc_apt"/sources.list.d/*.list "$etc_apt"/sources.list.d/*.sources; do
  [ -r "$f" ] || continue
  cp "$f" "$apt_root/etc/sources.list.d/"
  nsrc=$((nsrc + 1))
done
[ -s "$apt_root/etc/sources.list" ] || [ "$nsrc" -gt 0 ] ||
  die "no apt sources in $etc_apt (sources.list or sources.list.d/)"

apt_opts=(
  -o "APT::Architecture=$arch"
  -o "APT::Architectures::=$arch"
  -o "Dir::State=$apt_root/state"
  -o "Dir::State::status=$apt_root/state/status"
  -o "Dir::Cache=$apt_root/cache"
  -o "Dir::Etc::sourcelist=$apt_root/etc/sources.list"
  -o "Dir::Etc::sourceparts=$apt_root/etc/sources.list.d"
  -o "Dir::Etc::preferences=$apt_root/etc/preferences"
  -o "Dir::Etc::preferencesparts=$apt_root/etc/preferences.d"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -o "APT::Get::List-Cleanup=false"
)
if [ "$(id -u)" = 0 ]; then
  # The private dirs are ours (mktemp, 0700); do not drop privileges to _apt.
  apt_opts+=(-o APT::Sandbox::User=root)
fi

say "reading the mirror's $arch package index (private apt state, no dpkg architecture change)"
# A mirror in mid-sync can fail one index (e.g. security): the main archive
# is enough here, so only a failure to find the packages counts.
apt-get "${apt_opts[@]}" update -qq >&2 ||
  say "apt-get update ($arch) reported errors; going on"

kpkg=${HOTPLUG_GUEST_ARM64_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
  kpkg=$(apt-cache "${apt_opts[@]}" depends "$meta_pkg" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub(/:.*/, "", $2); print $2; exit }')
  [ -n "$kpkg" ] ||
    die "the mirror's $arch index has no $meta_pkg (no network, or sources without $arch?)"
fi
say "kernel package: $kpkg ($arch)"

mkdir -p "$work/debs"
(cd "$work/debs" && apt-get "${apt_opts[@]}" download -q "$kpkg" busybox-static >&2) ||
  die "apt-get download $kpkg busybox-static ($arch) failed"

kdeb=$(find "$work/debs" -maxdepth 1 -name "${kpkg}_*_${arch}.deb" | head -n1)
bdeb=$(find "$work/debs" -maxdepth 1 -name "busybox-static_*_${arch}.deb" | head -n1)
[ -n "$kdeb" ] || die "no ${kpkg}_*_${arch}.deb was downloaded"
[ -n "$bdeb" ] || die "no busybox-static_*_${arch}.deb was downloaded"
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

missing=()
for opt in BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PCI_HOST_GENERIC HOTPLUG_PCI_PCIE \
  SERIAL_AMBA_PL011 SERIAL_AMBA_PL011_CONSOLE; do
  grep -qx "CONFIG_$opt=y" "$config" || missing+=("CONFIG_$opt")
done
[ "${#missing[@]}" = 0 ] ||
  die "kernel $krel lacks built-in ${missing[*]} (the initramfs carries no modules)"

# An arm64 Image has "ARM\x64" at offset 56; Debian ships it gzip-compressed.
is_image() { [ "$(od -An -tx1 -j56 -N4 "$1" | tr -d ' \n')" = 41524d64 ]; }
image=$work/Image
if is_image "$vmlinuz"; then
  cp "$vmlinuz" "$image"
elif gzip -t "$vmlinuz" 2>/dev/null; then
  gzip -dc "$vmlinuz" >"$image" || die "decompressing $(basename "$vmlinuz") failed"
else
  die "$(basename "$vmlinuz") is neither an arm64 Image nor gzip-compressed"
fi
is_image "$image" || die "$(basename "$vmlinuz") does not hold an arm64 Image"

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
# qmp-hotplug arm64 guest: make the busybox applet links, then the common /init.
/bin/busybox --install -s /bin
exec /init.hp
EOF
chmod 0755 "$root/init"

(cd "$root" && find . -print | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
  gzip -9 >"$work/initrd.img" || die "packing the initramfs failed"

cp "$image" "$outdir/.vmlinuz.new"
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
