#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The control tests that need root (they mount a small tmpfs to fill the
# state directory's disk): test-control --needs-root.  `make check` runs
# them; `make check-unit` (package builds, no root) leaves them out.
exec ./tests/test-control --needs-root
