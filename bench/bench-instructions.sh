#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/bench-instructions.sh: instructions (callgrind) and system calls
# (strace) per operation, for the floor, the engine in-process and hotplugd,
# against bench/qmp-sim (no QEMU, no timing): numbers that repeat on a noisy
# machine, for before/after comparisons of a change (issue 7).
#
# Each figure is a difference of two runs of the same program, one with N
# operations and one with none, divided by N: start-up and connection costs
# cancel out.  hotplugd's figures are the daemon's alone (its client is
# bench-hotplugd, not counted); the daemon's state directory is on the
# disk, as in production.
#
#   bench/bench-instructions.sh [--builddir DIR] [-n N] [--no-callgrind] [--no-strace]
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=""
N=200
DO_CG=1
DO_ST=1
while [ $# -gt 0 ]; do
    case "$1" in
    --builddir) BUILDDIR=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    --no-callgrind) DO_CG=0; shift ;;
    --no-strace) DO_ST=0; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "usage: bench/bench-instructions.sh [--builddir DIR] [-n N] [--no-callgrind] [--no-strace]" >&2; exit 2 ;;
    esac
done
case "$N" in '' | *[!0-9]*) echo "bench-instructions: -n wants a number" >&2; exit 2 ;; esac
if [ -z "$BUILDDIR" ]; then
    if [ -x ./bench/qmp-sim ]; then BUILDDIR=$PWD; else BUILDDIR=$SRCDIR/build; fi
fi
real() { # the real binary behind a libtool wrapper
    if [ -x "$BUILDDIR/$1" ] && [ -x "$(dirname "$BUILDDIR/$1")/.libs/$(basename "$1")" ] &&
        head -c 200 "$BUILDDIR/$1" | grep -q libtool; then
        echo "$(dirname "$BUILDDIR/$1")/.libs/$(basename "$1")"
    else
        echo "$BUILDDIR/$1"
    fi
}
export LD_LIBRARY_PATH=$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
SIM=$(real bench/qmp-sim)
FLOOR=$(real bench/qmp-floor)
ENGINE=$(real bench/bench-engine)
HDC=$(real bench/bench-hotplugd)
HOTPLUGD=$(real hotplugd)
for p in "$SIM" "$FLOOR" "$ENGINE" "$HDC" "$HOTPLUGD"; do
    [ -x "$p" ] || { echo "bench-instructions: $p is missing: run make first" >&2; exit 1; }
done
[ "$DO_CG" = 0 ] || command -v valgrind >/dev/null || { echo "bench-instructions: valgrind missing" >&2; exit 1; }
[ "$DO_ST" = 0 ] || command -v strace >/dev/null || { echo "bench-instructions: strace missing" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qhp-instr-XXXXXX")
SIM_PID=""
HD_PID=""
cleanup() {
    local rc=$?
    if [ -n "$HD_PID" ]; then
        kill -KILL $(pgrep -P "$HD_PID") "$HD_PID" 2>/dev/null || true
        wait "$HD_PID" 2>/dev/null || true
    fi
    [ -z "$SIM_PID" ] || { kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$T/sim"
"$SIM" --dir "$T/sim" --vms 3 >"$T/sim.out" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do grep -q ready "$T/sim.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$T/sim.out" || { echo "bench-instructions: qmp-sim did not start" >&2; cat "$T/sim.out" >&2; exit 1; }

RUN=0
# measure MODE OUT CMD...: MODE cg -> total instructions; st -> "name count" lines
measure() {
    local mode=$1 out=$2
    shift 2
    RUN=$((RUN + 1))
    if [ "$mode" = cg ]; then
        valgrind --tool=callgrind --callgrind-out-file="$T/cg.$RUN" "$@" >/dev/null 2>"$T/vg.$RUN" ||
            { cat "$T/vg.$RUN" >&2; exit 1; }
        awk '/^(summary|totals):/ { print $2; exit }' "$T/cg.$RUN" >"$out"
    else
        strace -f -qq -c -U calls,name -o "$T/st.$RUN" "$@" >/dev/null 2>"$T/ste.$RUN" ||
            { cat "$T/ste.$RUN" >&2; exit 1; }
        awk 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 != "total" { print $2, $1 }' "$T/st.$RUN" >"$out"
    fi
}

# hotplugd_measure MODE OUT CLIENT_ARGS...: the daemon under MODE while
# bench-hotplugd runs once with CLIENT_ARGS
hotplugd_measure() {
    local mode=$1 out=$2 state
    shift 2
    RUN=$((RUN + 1))
    state=$T/hd$RUN
    mkdir -p "$state"
    cat >"$state/conf" <<EOF
[hotplugd]
state-dir = $state/state
socket = $state/ctl.sock

[vm bench]
qmp = $T/sim/vm3.sock
EOF
    if [ "$mode" = cg ]; then
        valgrind --tool=callgrind --callgrind-out-file="$state/cg" "$HOTPLUGD" --config "$state/conf" \
            --foreground 2>"$state/log" &
    else
        strace -f -qq -c -U calls,name -o "$state/st" "$HOTPLUGD" --config "$state/conf" \
            --foreground 2>"$state/log" &
    fi
    HD_PID=$!
    for _ in $(seq 300); do [ -S "$state/ctl.sock" ] && break; sleep 0.05; done
    "$HDC" "$state/ctl.sock" bench --warmup 0 --timeout 60000 "$@" >/dev/null ||
        { cat "$state/log" >&2; exit 1; }
    if [ "$mode" = cg ]; then
        kill -TERM "$HD_PID" # valgrind runs the daemon in its own process
    else
        # strace's child is the daemon: stop it, strace then exits
        kill -TERM "$(pgrep -P "$HD_PID")"
    fi
    wait "$HD_PID" || true
    HD_PID=""
    if [ "$mode" = cg ]; then
        awk '/^(summary|totals):/ { print $2; exit }' "$state/cg" >"$out"
    else
        awk 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 != "total" { print $2, $1 }' "$state/st" >"$out"
    fi
}

# per_op BASE_FILE RUN_FILE -> instructions per op
cg_per_op() { awk -v n="$N" 'NR == FNR { b = $1; next } { printf "%.0f", ($1 - b) / n }' "$1" "$2"; }
# syscalls per op: "total name:count name:count ..." (counts per op, 2 decimals)
st_per_op() {
    awk -v n="$N" 'NR == FNR { b[$1] = $2; next } { d[$1] = $2 - b[$1] }
        END {
            for (k in b) if (!(k in d)) d[k] = -b[k]
            tot = 0; s = ""
            for (k in d) if (d[k] / n >= 0.05 || d[k] / n <= -0.05) { tot += d[k]; s = s sprintf(" %s:%.2f", k, d[k] / n) }
            printf "%.2f%s", tot / n, s
        }' "$1" "$2"
}

echo "qmp-hotplug instructions and system calls per operation, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "against bench/qmp-sim (answers at once), N=$N operations per run, difference against a run with none"
for mode in cg st; do
    [ "$mode" = cg ] && [ "$DO_CG" = 0 ] && continue
    [ "$mode" = st ] && [ "$DO_ST" = 0 ] && continue
    measure "$mode" "$T/floor.0" "$FLOOR" "$T/sim/vm1.sock" --cycles 0 --queries 0 --warmup 0
    measure "$mode" "$T/floor.q" "$FLOOR" "$T/sim/vm1.sock" --cycles 0 --queries "$N" --warmup 0
    measure "$mode" "$T/floor.c" "$FLOOR" "$T/sim/vm1.sock" --cycles "$N" --queries 0 --warmup 0
    measure "$mode" "$T/engine.0" "$ENGINE" "$T/sim/vm2.sock" --cycles 0 --queries 0 --warmup 0 --prefix e0x
    measure "$mode" "$T/engine.q" "$ENGINE" "$T/sim/vm2.sock" --cycles 0 --queries "$N" --warmup 0 --prefix e1x
    measure "$mode" "$T/engine.c" "$ENGINE" "$T/sim/vm2.sock" --cycles "$N" --queries 0 --warmup 0 --prefix e2x
    hotplugd_measure "$mode" "$T/hd.0" --cycles 0 --queries 0 --lists 0 --prefix h0x
    hotplugd_measure "$mode" "$T/hd.q" --cycles 0 --queries "$N" --lists 0 --prefix h1x
    hotplugd_measure "$mode" "$T/hd.l" --cycles 0 --queries 0 --lists "$N" --prefix h2x
    hotplugd_measure "$mode" "$T/hd.c" --cycles "$N" --queries 0 --lists 0 --prefix h3x
    if [ "$mode" = cg ]; then
        echo
        echo "instructions per operation (callgrind Ir):"
        printf '  %-34s %12s\n' "floor query-status" "$(cg_per_op "$T/floor.0" "$T/floor.q")"
        printf '  %-34s %12s\n' "floor cycle (add, del, DELETED)" "$(cg_per_op "$T/floor.0" "$T/floor.c")"
        printf '  %-34s %12s\n' "engine query-status" "$(cg_per_op "$T/engine.0" "$T/engine.q")"
        printf '  %-34s %12s\n' "engine cycle" "$(cg_per_op "$T/engine.0" "$T/engine.c")"
        printf '  %-34s %12s\n' "hotplugd query-hotplugd" "$(cg_per_op "$T/hd.0" "$T/hd.q")"
        printf '  %-34s %12s\n' "hotplugd device-list" "$(cg_per_op "$T/hd.0" "$T/hd.l")"
        printf '  %-34s %12s\n' "hotplugd cycle (device-add, -del)" "$(cg_per_op "$T/hd.0" "$T/hd.c")"
    else
        echo
        echo "system calls per operation (strace -c; total, then by name):"
        printf '  %-34s %s\n' "floor query-status" "$(st_per_op "$T/floor.0" "$T/floor.q")"
        printf '  %-34s %s\n' "floor cycle (add, del, DELETED)" "$(st_per_op "$T/floor.0" "$T/floor.c")"
        printf '  %-34s %s\n' "engine query-status" "$(st_per_op "$T/engine.0" "$T/engine.q")"
        printf '  %-34s %s\n' "engine cycle" "$(st_per_op "$T/engine.0" "$T/engine.c")"
        printf '  %-34s %s\n' "hotplugd query-hotplugd" "$(st_per_op "$T/hd.0" "$T/hd.q")"
        printf '  %-34s %s\n' "hotplugd device-list" "$(st_per_op "$T/hd.0" "$T/hd.l")"
        printf '  %-34s %s\n' "hotplugd cycle (device-add, -del)" "$(st_per_op "$T/hd.0" "$T/hd.c")"
    fi
done
