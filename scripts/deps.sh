#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what building and testing qmp-hotplug needs (Debian/Ubuntu, apt).
#
#   scripts/deps.sh
#
# The system's QEMU (7.2 on Debian 12: x86, ppc, arm, with the AAVMF UEFI
# firmware that aarch64 virt needs for ACPI and memory hotplug) is the first QEMU
# generation tested; debootstrap builds the QEMU 10 chroot of the second
# (scripts/qemu10.sh). Quick when everything is there: it only asks dpkg. As root it installs what
# is missing (apt-get update first); otherwise it names the packages and
# exits 1.
set -euo pipefail

packages=(
  build-essential autoconf automake libtool pkg-config
  libglib2.0-dev libjson-glib-dev libevent-dev libcmocka-dev
  qemu-system-x86 qemu-system-ppc qemu-system-arm qemu-utils qemu-efi-aarch64 busybox-static cpio socat
  debootstrap debian-archive-keyring
  clang valgrind libclang-rt-14-dev
)

installed() { # PKG
  local status
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
  [ "${status:0:2}" = ii ]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: no dpkg-query: this script knows Debian/Ubuntu only; install by hand:" >&2
  echo "  ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if [ "$p" = busybox-static ] && installed busybox; then
    # tests/guest/build-guest.sh downloads its own busybox-static .deb;
    # do not replace the host's dynamic busybox for it.
    continue
  fi
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" = 0 ]; then
  echo "deps: all ${#packages[@]} packages installed"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ "${#still[@]}" != 0 ]; then
  echo "deps: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "deps: done"
