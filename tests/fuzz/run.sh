#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the libFuzzer harnesses and run each of them.
#
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]     (default: 60 s each, all)
#
# Harnesses:
#   qmp      tests/fuzz/fuzz-qmp.c      QMP framing, classifier, QmpConn;
#                                       corpus tests/fuzz/corpus
#   control  tests/fuzz/fuzz-control.c  hotplugd's control protocol (the
#                                       ControlServer line handling);
#                                       corpus tests/fuzz/corpus-control
#
# Needs clang with libFuzzer, and a configured build directory (config.h):
# $BUILDDIR, default ./build under the source tree.  Each corpus is copied
# first, so the run never changes it; new inputs and any crash-* / leak-*
# files land in $BUILDDIR/fuzz-NAME-work.  The exit status is non-zero when
# any harness failed.
#
# The build commands are:
#   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
#       -I$BUILDDIR -I$SRCDIR/src/qmp $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
#       $SRCDIR/tests/fuzz/fuzz-qmp.c $SRCDIR/src/qmp/qmp-*.c \
#       $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o $BUILDDIR/fuzz-qmp
#   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
#       -I$BUILDDIR -I$SRCDIR/src/qmp -I$SRCDIR/src/hotplug -I$SRCDIR/src/daemon \
#       $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
#       $SRCDIR/tests/fuzz/fuzz-control.c $SRCDIR/src/daemon/control.c \
#       $SRCDIR/src/hotplug/hotplug-outcome.c $SRCDIR/src/qmp/qmp-*.c \
#       $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o $BUILDDIR/fuzz-control
set -eu

SECONDS_TO_RUN=${1:-60}
[ $# -gt 0 ] && shift
HARNESSES=${*:-qmp control}
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILDDIR=${BUILDDIR:-$SRCDIR/build}
CC=${FUZZ_CC:-clang}

if [ ! -f "$BUILDDIR/config.h" ]; then
    echo "run.sh: no $BUILDDIR/config.h: configure first (or set BUILDDIR)" >&2
    exit 1
fi

# build NAME: compile $BUILDDIR/fuzz-NAME
build() {
    case "$1" in
    qmp)
        # shellcheck disable=SC2046
        "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -I"$BUILDDIR" -I"$SRCDIR/src/qmp" $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
            "$SRCDIR/tests/fuzz/fuzz-qmp.c" "$SRCDIR"/src/qmp/qmp-*.c \
            $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o "$BUILDDIR/fuzz-qmp"
        ;;
    control)
        # shellcheck disable=SC2046
        "$CC" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -I"$BUILDDIR" -I"$SRCDIR/src/qmp" -I"$SRCDIR/src/hotplug" -I"$SRCDIR/src/daemon" \
            $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
            "$SRCDIR/tests/fuzz/fuzz-control.c" "$SRCDIR/src/daemon/control.c" \
            "$SRCDIR/src/hotplug/hotplug-outcome.c" "$SRCDIR"/src/qmp/qmp-*.c \
            $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o "$BUILDDIR/fuzz-control"
        ;;
    *)
        echo "run.sh: no harness named '$1' (qmp, control)" >&2
        return 2
        ;;
    esac
}

# corpus NAME: its seed directory
corpus() {
    case "$1" in
    qmp) echo "$SRCDIR/tests/fuzz/corpus" ;;
    control) echo "$SRCDIR/tests/fuzz/corpus-control" ;;
    esac
}

# fuzz NAME: build, then run for SECONDS_TO_RUN; prints a summary
fuzz() {
    name=$1
    work=$BUILDDIR/fuzz-$name-work
    st=0

    echo "== fuzz-$name: $SECONDS_TO_RUN s"
    build "$name" || return $?
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$(corpus "$name")"/* "$work/corpus/"

    # G_SLICE=always-malloc keeps GLib's allocator visible to ASan/LSan
    G_SLICE=always-malloc ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$BUILDDIR/fuzz-$name" -max_len=65536 -max_total_time="$SECONDS_TO_RUN" \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" \
        >"$work/fuzz.log" 2>&1 || st=$?

    # the summary: the last status line (execs, coverage, corpus) and the final stats
    grep -E '^#[0-9]+' "$work/fuzz.log" | tail -n 1
    grep -E '^stat::' "$work/fuzz.log" || true
    echo "corpus: $(ls "$work/corpus" | wc -l) inputs in $work/corpus"
    if [ "$st" -ne 0 ]; then
        echo "run.sh: fuzz-$name failed (exit $st); see $work/fuzz.log" >&2
        ls "$work/artifacts" >&2
        tail -n 60 "$work/fuzz.log" >&2
    fi
    return "$st"
}

status=0
for h in $HARNESSES; do
    fuzz "$h" || status=$?
done
exit "$status"
