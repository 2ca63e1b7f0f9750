#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# check-abi.sh: libqmp-hotplug exports exactly what its installed headers
# declare.  Every dynamic symbol of the built library must be declared in
# qmp-hotplug.h or a header it includes, carry the library's version node,
# and no daemon, control, journal or test function may be among them.
set -eu

lib=${abs_top_builddir:?}/.libs/libqmp-hotplug.so
src=${abs_top_srcdir:?}/src
[ -f "$lib" ] || { echo "check-abi: $lib not built" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the installed headers: the umbrella header and the headers it includes
headers="$src/qmp-hotplug.h"
for h in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$src/qmp-hotplug.h"); do
  [ "$h" = qmp-hotplug-version.h ] && continue
  f=$(find "$src" -name "$h" | head -n 1)
  [ -n "$f" ] || { echo "check-abi: $h (included by qmp-hotplug.h) not found" >&2; exit 1; }
  headers="$headers $f"
done

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRV]$/ { print $3 }' | sort -u > "$tmp/exported"
n=$(wc -l < "$tmp/exported")
[ "$n" -gt 0 ] || { echo "check-abi: nothing exported by $lib" >&2; exit 1; }

fail=0
while read -r sym; do
  name=${sym%%@*}
  case "$sym" in
    QMP_HOTPLUG_0) continue ;;  # the version node itself
    *@@QMP_HOTPLUG_0) ;;
    *) echo "check-abi: $sym has no QMP_HOTPLUG_0 version"; fail=1 ;;
  esac
  # shellcheck disable=SC2086
  if ! grep -qw -- "$name" $headers; then
    echo "check-abi: $name is exported but no installed header declares it"
    fail=1
  fi
done < "$tmp/exported"

if grep -E '^(daemon|control|journal|event_log|fake_peer|qemu_helper|test)_' "$tmp/exported"; then
  echo "check-abi: internal modules are exported (above)"
  fail=1
fi

[ "$fail" = 0 ] && echo "check-abi: $n symbols, all declared in the installed headers"
exit "$fail"
