#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The real VFIO tests: boot the nested rig's L1 (tests/vfio/run-l1.sh) and run
# tests/vfio/test-vfio.sh on BUILDDIR's hotplugd and hotplugctl inside it.
#
#   tests/vfio/run-tests.sh [BUILDDIR]      (default: ./build)
#
# Exit status: test-vfio.sh's (0 all passed), 124/125 when L1 failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
builddir=$(cd "${1:-build}" && pwd)
[ -x "$builddir/hotplugctl" ] && [ -x "$builddir/hotplugd" ] || {
  echo "run-tests: no hotplugctl/hotplugd in $builddir (build first)" >&2
  exit 125
}
start=$SECONDS
cd "$builddir"
rc=0
"$here/run-l1.sh" --timeout "${HOTPLUG_VFIO_TIMEOUT:-420}" -- "$here/test-vfio.sh" "$builddir" || rc=$?
echo "run-tests: ${SECONDS}s in all (rc $rc)" >&2
exit $rc
