#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/bench-eventlog.sh: the event log under load (issue 7, "Event log").
#
# First the baseline, in the same run and on the same disk: the library's
# event log alone (bench-eventlog raw: append + fdatasync, a flush per
# record and per 64 records).  Then hotplugd with N VMs on qmp-sim and S
# followers (`events --follow`, over the control socket), under a load of
# device-add/device-del cycles: phase A with every follower reading, phase
# B with one of them stalled until the daemon has to cut it off
# (LOG_OVERFLOW), after which it reads what is left and resumes with
# `since`.  bench-eventlog prints the rates, the lag of the followers that
# read in both phases, and the checks (no gap, no repeat, the cut one's
# last seq, the resumed one's records).
#
# All on this machine over UNIX sockets, under a temporary directory,
# stopped on every exit path.  HOTPLUGD_WRAPPER runs the daemon under a
# tool, e.g. HOTPLUGD_WRAPPER="valgrind --error-exitcode=1".
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/bench-eventlog.sh [options]
  --builddir DIR      where hotplugd and bench/ were built (default: . or build/)
  --vms N             simulated VMs (default 50)
  --inflight K        load cycles in flight per VM (default 4)
  --subscribers S     followers (default 16; one of them stalls in phase B)
  --seconds T         load per phase (default 10)
  --buffer SIZE       hotplugd's subscriber-buffer (default 1M)
  --stall-bytes N     the stalled follower reads again once another got N bytes more
                      (default 8388608: well past the buffer and the socket's own)
  --short             a quick run: 5 s per phase, 2 s of raw baseline
  --keep              keep the work directory and print its path
EOF
}

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=""
VMS=50
INFLIGHT=4
SUBS=16
SECONDS_PER_PHASE=10
RAW_SECONDS=3
BUFFER=1M
STALL_BYTES=8388608
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --builddir) BUILDDIR=$2; shift 2 ;;
    --vms) VMS=$2; shift 2 ;;
    --inflight) INFLIGHT=$2; shift 2 ;;
    --subscribers) SUBS=$2; shift 2 ;;
    --seconds) SECONDS_PER_PHASE=$2; shift 2 ;;
    --buffer) BUFFER=$2; shift 2 ;;
    --stall-bytes) STALL_BYTES=$2; shift 2 ;;
    --short) SECONDS_PER_PHASE=5; RAW_SECONDS=2; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in VMS INFLIGHT SUBS SECONDS_PER_PHASE STALL_BYTES; do
    case "${!v}" in '' | *[!0-9]*) echo "bench-eventlog: bad number for $v: ${!v}" >&2; exit 2 ;; esac
done
if [ -z "$BUILDDIR" ]; then
    if [ -x ./bench/bench-eventlog ]; then BUILDDIR=$PWD; else BUILDDIR=$SRCDIR/build; fi
fi
real() { # the real binary behind a libtool wrapper
    local dir base
    dir=$(dirname "$BUILDDIR/$1")
    base=$(basename "$1")
    if [ -x "$dir/.libs/$base" ] && head -c 200 "$BUILDDIR/$1" | grep -q libtool; then
        echo "$dir/.libs/$base"
    else
        echo "$BUILDDIR/$1"
    fi
}
export LD_LIBRARY_PATH=$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
SIM=$(real bench/qmp-sim)
EL=$(real bench/bench-eventlog)
HOTPLUGD=$(real hotplugd)
for p in "$SIM" "$EL" "$HOTPLUGD"; do
    [ -x "$p" ] || { echo "bench-eventlog: $p is missing: run make first" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

T=$(mktemp -d "${TMPDIR:-/tmp}/qhp-evlog-XXXXXX")
SIM_PID=""
HD_PID=""
cleanup() {
    local rc=$?
    if [ -n "$HD_PID" ]; then kill -TERM "$HD_PID" 2>/dev/null || true; wait "$HD_PID" 2>/dev/null || true; fi
    if [ -n "$SIM_PID" ]; then kill -TERM "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "qmp-hotplug event log benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); state on $(df -T "$T" | awk 'NR == 2 { print $2 }')"
echo "$VMS VMs on qmp-sim, $INFLIGHT device-add/device-del cycles in flight per VM, $SUBS followers," \
    "subscriber-buffer $BUFFER, ${SECONDS_PER_PHASE} s per phase"

# the baseline: the event log alone, same disk
"$EL" raw --dir "$T/raw1" --seconds "$RAW_SECONDS" --batch 1 | tee "$T/raw.out"
"$EL" raw --dir "$T/raw64" --seconds "$RAW_SECONDS" --batch 64 | tee -a "$T/raw.out"

mkdir "$T/sim"
"$SIM" --dir "$T/sim" --vms "$VMS" --stats >"$T/sim.out" 2>"$T/sim.err" &
SIM_PID=$!
for _ in $(seq 300); do
    grep -q "ready" "$T/sim.out" 2>/dev/null && break
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q "ready" "$T/sim.out" || { echo "bench-eventlog: qmp-sim did not start:" >&2; cat "$T/sim.err" >&2; exit 1; }

{
    echo "[hotplugd]"
    echo "state-dir = $T/state"
    echo "socket = $T/ctl.sock"
    echo "log-max-size = 1G"
    echo "subscriber-buffer = $BUFFER"
    for ((i = 1; i <= VMS; i++)); do printf '[vm vm%d]\nqmp = %s/sim/vm%d.sock\n' "$i" "$T" "$i"; done
} >"$T/hotplugd.conf"
${HOTPLUGD_WRAPPER:-} "$HOTPLUGD" --config "$T/hotplugd.conf" --foreground 2>"$T/hotplugd.log" &
HD_PID=$!
for _ in $(seq 300); do
    [ -S "$T/ctl.sock" ] && break
    kill -0 "$HD_PID" 2>/dev/null || break
    sleep 0.1
done
[ -S "$T/ctl.sock" ] || { echo "bench-eventlog: hotplugd did not start:" >&2; tail -5 "$T/hotplugd.log" >&2; exit 1; }

rc=0
"$EL" run "$T/ctl.sock" --vms "$VMS" --pid "$HD_PID" --inflight "$INFLIGHT" --subscribers "$SUBS" \
    --seconds "$SECONDS_PER_PHASE" --stall-bytes "$STALL_BYTES" | tee "$T/run.out" || rc=$?

val() { # val FILE KEY FIELD
    awk -v k="$2" -v f="$3" '$1 == "RESULT" && $3 == k {
        for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }' "$1"
}
raw1=$(awk '$3 == "raw" && $4 == "batch=1" { split($7, kv, "="); print kv[2] }' "$T/raw.out")
raw64=$(awk '$3 == "raw" && $4 == "batch=64" { split($7, kv, "="); print kv[2] }' "$T/raw.out")
echo
echo "summary:"
for ph in phase_a_all_read phase_b_one_stalled; do
    app=$(val "$T/run.out" "$ph" append_per_s)
    printf '  %-20s appended %s records/s (%s x the raw log flushed per record, %s x per 64);\n' "$ph" "$app" \
        "$(awk -v a="$app" -v r="$raw1" 'BEGIN { printf "%.2f", a / r }')" \
        "$(awk -v a="$app" -v r="$raw64" 'BEGIN { printf "%.2f", a / r }')"
    printf '  %-20s delivered %s LOG events/s to %s readers; lag p50 %s ms, p99 %s ms (worst reader p99 %s ms)\n' "" \
        "$(val "$T/run.out" "$ph" fanout_per_s)" "$(val "$T/run.out" "$ph" readers)" \
        "$(val "$T/run.out" "$ph" lag_p50_ms)" "$(val "$T/run.out" "$ph" lag_p99_ms)" \
        "$(val "$T/run.out" "$ph" worst_reader_p99_ms)"
done
printf '  readers lag p99, phase B / phase A: %s\n' "$(awk -v b="$(val "$T/run.out" phase_b_one_stalled lag_p99_ms)" \
    -v a="$(val "$T/run.out" phase_a_all_read lag_p99_ms)" 'BEGIN { printf "%.2f", b / a }')"
printf '  stalled follower: LOG_OVERFLOW %s at last_seq %s, last LOG received %s, gaps %s, repeats %s\n' \
    "$(val "$T/run.out" slow overflow)" "$(val "$T/run.out" slow last_seq)" "$(val "$T/run.out" slow last_received)" \
    "$(val "$T/run.out" slow gaps)" "$(val "$T/run.out" slow repeats)"
printf '  resumed with since=%s: %s records up to seq %s, gaps %s, repeats %s\n' "$(val "$T/run.out" resumed since)" \
    "$(val "$T/run.out" resumed records)" "$(val "$T/run.out" resumed last)" "$(val "$T/run.out" resumed gaps)" \
    "$(val "$T/run.out" resumed repeats)"
grep -q "too slow: disconnected" "$T/hotplugd.log" &&
    echo "  hotplugd: $(grep -m1 'too slow: disconnected' "$T/hotplugd.log" | sed 's/^.*hotplugd: //')"

# the issue's targets, each beside its figure
target() { # target NAME VALUE OP LIMIT UNIT
    awk -v n="$1" -v v="$2" -v op="$3" -v l="$4" -v u="$5" 'BEGIN {
        if (v == "") { printf "  %-52s %12s   target %s %s %s   MISSING\n", n, "-", op, l, u; exit }
        ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
        printf "  %-52s %12s   target %s %s %s   %s\n", n, v " " u, op, l, u, ok ? "met" : "NOT MET" }'
}
echo
echo "targets (event log):"
target "durable records appended/s, $SUBS followers" "$(val "$T/run.out" phase_a_all_read append_per_s)" ">=" 50000 /s
target "follower lag p99 (all read)" "$(val "$T/run.out" phase_a_all_read lag_p99_ms)" "<=" 10 ms
target "stalled follower's cost: others' lag p99 B / A" \
    "$(awk -v b="$(val "$T/run.out" phase_b_one_stalled lag_p99_ms)" \
        -v a="$(val "$T/run.out" phase_a_all_read lag_p99_ms)" 'BEGIN { if (a > 0) printf "%.2f", b / a }')" "<=" 1.1 x
target "stalled follower's cost: appended/s A / B" \
    "$(awk -v b="$(val "$T/run.out" phase_b_one_stalled append_per_s)" \
        -v a="$(val "$T/run.out" phase_a_all_read append_per_s)" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" "<=" 1.1 x
exit $rc
