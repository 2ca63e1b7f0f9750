#!/bin/sh
# Build the libFuzzer harness tests/fuzz/fuzz-qmp.c and run it.
#
#   tests/fuzz/run.sh [SECONDS]        (default 60)
#
# Needs clang with libFuzzer, and a configured build directory (config.h):
# $BUILDDIR, default ./build under the source tree.  The corpus in
# tests/fuzz/corpus is copied first, so the run never changes it; new
# inputs and any crash-* / leak-* files land in $BUILDDIR/fuzz-qmp-work.
#
# The build command is:
#   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
#       -I$BUILDDIR -I$SRCDIR/src/qmp $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
#       $SRCDIR/tests/fuzz/fuzz-qmp.c $SRCDIR/src/qmp/qmp-*.c \
#       $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o $BUILDDIR/fuzz-qmp
set -eu

SECONDS_TO_RUN=${1:-60}
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
CC=${FUZZ_CC:-clang}
WORK=$BUILDDIR/fuzz-qmp-work

if [ ! -f "$BUILDDIR/config.h" ]; then
    echo "run.sh: no $BUILDDIR/config.h: configure first (or set BUILDDIR)" >&2
    exit 1
fi

# shellcheck disable=SC2046
"$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$BUILDDIR" -I"$SRCDIR/src/qmp" $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
    "$SRCDIR/tests/fuzz/fuzz-qmp.c" "$SRCDIR"/src/qmp/qmp-*.c \
    $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o "$BUILDDIR/fuzz-qmp"

rm -rf "$WORK"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp "$SRCDIR"/tests/fuzz/corpus/* "$WORK/corpus/"

# G_SLICE=always-malloc keeps GLib's allocator visible to ASan/LSan
status=0
G_SLICE=always-malloc ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILDDIR/fuzz-qmp" -max_len=65536 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/" "$WORK/corpus" >"$WORK/fuzz.log" 2>&1 || status=$?

# the summary: the last status line (execs, coverage, corpus) and the final stats
grep -E '^#[0-9]+' "$WORK/fuzz.log" | tail -n 1
grep -E '^stat::' "$WORK/fuzz.log" || true
echo "corpus: $(ls "$WORK/corpus" | wc -l) inputs in $WORK/corpus"
if [ "$status" -ne 0 ]; then
    echo "run.sh: the fuzzer failed (exit $status); see $WORK/fuzz.log" >&2
    ls "$WORK/artifacts" >&2
    tail -n 60 "$WORK/fuzz.log" >&2
fi
exit "$status"
