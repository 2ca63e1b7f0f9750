#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the nested VFIO rig's L1 guest: OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
#   tests/vfio/build-l1.sh [OUTDIR]
#
# OUTDIR defaults to ${HOTPLUG_VFIO_L1_DIR:-$HOME/.cache/qmp-hotplug/vfio-l1}.
# The kernel is Debian's generic amd64 kernel (linux-image-amd64 -> the
# versioned package it depends on; the cloud kernel lacks 9p and e1000e), fetched
# with `apt-get download` and unpacked, never installed. The initramfs holds
# busybox (the host's static /usr/bin/busybox, or the busybox-static .deb), the
# modules the rig loads with their dependencies (read from each module's
# depends= field, since the .deb ships no modules.dep), and tests/vfio/init.
# The result is cached: nothing is done when OUTDIR/stamp matches this script,
# the init and the kernel package version.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-${HOTPLUG_VFIO_L1_DIR:-$HOME/.cache/qmp-hotplug/vfio-l1}}
meta_pkg=linux-image-amd64
modules=(virtio_pci 9pnet_virtio 9p vfio vfio_iommu_type1 vfio-pci e1000e virtio_net)

say() { printf 'build-l1: %s\n' "$*" >&2; }
die() {
  printf 'build-l1: error: %s\n' "$*" >&2
  exit 1
}
for tool in apt-get apt-cache dpkg-deb sha256sum gzip cpio find strings; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done

kpkg=${HOTPLUG_VFIO_KERNEL_PKG:-$(apt-cache depends "$meta_pkg" 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)}
[ -n "$kpkg" ] || die "cannot resolve $meta_pkg (run apt-get update?)"
stamp_key="kernel=$kpkg init=$(sha256sum <"$here/init" | cut -d' ' -f1)"
stamp_key+=" builder=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
up_to_date() {
  [ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.img" ] &&
    [ -r "$outdir/stamp" ] && [ "$(head -n1 "$outdir/stamp")" = "$stamp_key" ]
}
if up_to_date; then
  say "up to date: $outdir"
  exit 0
fi
exec 9>"$outdir/.lock"
flock 9
if up_to_date; then
  say "up to date: $outdir"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qhp-vfio-l1.XXXXXX")
trap 'rm -rf "$work"' EXIT
apt_opts=()
[ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)

say "fetching $kpkg"
(cd "$work" && apt-get download "${apt_opts[@]}" "$kpkg" >&2) || die "apt-get download $kpkg failed"
mkdir "$work/k"
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/k"
kver=${kpkg#linux-image-}
moddir=$work/k/lib/modules/$kver
[ -d "$moddir" ] || die "no $moddir in $kpkg"

# Module name -> file, then a depth-first order honouring depends=.
declare -A modfile=()
while IFS= read -r f; do
  n=$(basename "$f" .ko)
  modfile[$n]=$f
  modfile[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko')
declare -A seen=()
order=()
visit() {
  local m=$1 f d
  f=${modfile[$m]:-${modfile[${m//-/_}]:-}}
  [ -n "$f" ] || die "module $m not in $kpkg"
  [ -z "${seen[$f]:-}" ] || return 0
  seen[$f]=1
  for d in $(strings "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
    visit "$d"
  done
  order+=("$f")
}
for m in "${modules[@]}"; do visit "$m"; done

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,newroot,modules}
cp /usr/bin/busybox "$root/bin/busybox"
file -L "$root/bin/busybox" 2>/dev/null | grep -q 'statically linked' ||
  ldd "$root/bin/busybox" 2>&1 | grep -q 'not a dynamic' || die "/usr/bin/busybox is not static"
for a in sh mount mkdir cat echo insmod chroot poweroff sleep ls ln grep sed cut; do
  ln -s busybox "$root/bin/$a"
done
: >"$root/modules/order"
for f in "${order[@]}"; do
  cp "$f" "$root/modules/"
  basename "$f" >>"$root/modules/order"
done
install -m 0755 "$here/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"
cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/vmlinuz" "$outdir/vmlinuz"
mv "$work/initrd.img" "$outdir/initrd.img"
printf '%s\n%s: modules %s\n' "$stamp_key" "$kpkg" "$(tr '\n' ' ' <"$root/modules/order")" >"$outdir/stamp"
say "built $outdir ($kpkg)"
