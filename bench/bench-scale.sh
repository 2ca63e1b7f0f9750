#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/bench-scale.sh: one hotplugd for many VMs (issue 7, "Scale").
#
# bench/qmp-sim serves N simulated QEMU monitors; hotplugd manages all of
# them (N [vm] sections in its config); bench/bench-scale drives the daemon
# over one control connection with K requests in flight per VM: first
# device-add of a pool of P devices per VM, then device-del of all of them
# (K * N unplugs pending at once, each with its deadline).  Device ids
# encode the right outcome (qmp-sim: "never*" never completes, "refuse*" is
# refused by the guest, the rest are deleted after --delay-ms), so every
# reply is checked, and then every operation's outcome in the event log
# (`hotplugctl --json events`).  RSS per idle VM is the daemon's RSS with N
# connected idle VMs less its RSS with none (another daemon, same config
# without VMs), divided by N.
#
# Everything runs on this machine over UNIX sockets under a temporary
# directory, and is stopped on every exit path.  HOTPLUGD_WRAPPER runs the
# daemon under a tool, e.g. HOTPLUGD_WRAPPER="valgrind --tool=callgrind".
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/bench-scale.sh [options]
  --builddir DIR       where hotplugd and bench/ were built (default: . or build/)
  --vms N              simulated VMs driven with requests (default 1000)
  --idle-vms N         VMs connected for the idle RSS figure (default 10000)
  --inflight K         requests in flight per VM (default 10)
  --pool P             devices per VM, plugged then unplugged (default 20)
  --delay-ms D         qmp-sim's unplug delay (default 50; subtracted from latencies)
  --never-timeout S    deadline of the never-completing unplugs (default 0.5 s)
  --short              a quick run: pool 10 (the 10 unplugs of each VM all at once, no second round)
  --keep               keep the work directory (logs, ops, event log) and print its path
EOF
}

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=""
VMS=1000
IDLE_VMS=10000
INFLIGHT=10
POOL=20
DELAY=50
NEVER_TIMEOUT=0.5
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --builddir) BUILDDIR=$2; shift 2 ;;
    --vms) VMS=$2; shift 2 ;;
    --idle-vms) IDLE_VMS=$2; shift 2 ;;
    --inflight) INFLIGHT=$2; shift 2 ;;
    --pool) POOL=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    --never-timeout) NEVER_TIMEOUT=$2; shift 2 ;;
    --short) POOL=10; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
for v in VMS IDLE_VMS INFLIGHT POOL DELAY; do
    case "${!v}" in '' | *[!0-9]*) echo "bench-scale: bad number for $v: ${!v}" >&2; exit 2 ;; esac
done
if [ -z "$BUILDDIR" ]; then
    if [ -x ./bench/bench-scale ]; then BUILDDIR=$PWD; else BUILDDIR=$SRCDIR/build; fi
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
SCALE=$(real bench/bench-scale)
HOTPLUGD=$(real hotplugd)
CTL=$(real hotplugctl)
for p in "$SIM" "$SCALE" "$HOTPLUGD" "$CTL"; do
    [ -x "$p" ] || { echo "bench-scale: $p is missing: run make first" >&2; exit 1; }
done

# every VM costs the simulator two descriptors and the daemon one; the VMs
# are served by two simulators: vm1..vmVMS (driven) by the first, the rest
# of the idle ones by the second (root may raise the hard limit)
EXTRA_VMS=$((IDLE_VMS > VMS ? IDLE_VMS - VMS : 0))
SIM_VMS=$((VMS > EXTRA_VMS ? VMS : EXTRA_VMS))
NEED=$((2 * SIM_VMS + 64))
[ "$NEED" -ge "$((IDLE_VMS + 64))" ] || NEED=$((IDLE_VMS + 64))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NEED" ]; then
    ulimit -Hn "$NEED" 2>/dev/null || true
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
    echo "bench-scale: $SIM_VMS VMs need $NEED file descriptors, but the hard limit is $(ulimit -n):" >&2
    SIM_VMS=$((($(ulimit -n) - 64) / 2))
    VMS=$((VMS < SIM_VMS ? VMS : SIM_VMS))
    EXTRA_VMS=$((EXTRA_VMS < SIM_VMS ? EXTRA_VMS : SIM_VMS))
    IDLE_VMS=$((VMS + EXTRA_VMS))
    echo "bench-scale: RUNNING WITH $SIM_VMS VMS ONLY (raise the hard limit of open files for $NEED)" >&2
    [ "$VMS" -ge 1 ] || exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/qhp-scale-XXXXXX")
SIM_PID=""
SIM2_PID=""
HD_PID=""

stop_hotplugd() {
    if [ -n "$HD_PID" ]; then
        kill -TERM "$HD_PID" 2>/dev/null || true
        wait "$HD_PID" 2>/dev/null || true
        HD_PID=""
    fi
}

cleanup() {
    local rc=$?
    stop_hotplugd
    if [ -n "$SIM_PID" ]; then
        kill -TERM "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    if [ -n "$SIM2_PID" ]; then
        kill -TERM "$SIM2_PID" 2>/dev/null || true
        wait "$SIM2_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_hotplugd NAME N_VMS
start_hotplugd() {
    local name=$1 n_vms=$2 i
    {
        echo "[hotplugd]"
        echo "state-dir = $T/$name-state"
        echo "socket = $T/$name.sock"
        echo "log-max-size = 1G"
        for ((i = 1; i <= n_vms && i <= VMS; i++)); do
            printf '[vm vm%d]\nqmp = %s/sim/vm%d.sock\n' "$i" "$T" "$i"
        done
        for ((i = VMS + 1; i <= n_vms; i++)); do
            printf '[vm vm%d]\nqmp = %s/sim2/vm%d.sock\n' "$i" "$T" $((i - VMS))
        done
    } >"$T/$name.conf"
    ${HOTPLUGD_WRAPPER:-} "$HOTPLUGD" --config "$T/$name.conf" --foreground 2>"$T/$name.log" &
    HD_PID=$!
    for _ in $(seq 300); do
        [ -S "$T/$name.sock" ] && return 0
        kill -0 "$HD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-scale: hotplugd did not start:" >&2
    tail -5 "$T/$name.log" >&2
    exit 1
}

result() { # result FILE KEY FIELD -> value of FIELD= on the "RESULT scale KEY" line
    awk -v k="$2" -v f="$3" '$1 == "RESULT" && $3 == k {
        for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }' "$1"
}

echo "qmp-hotplug scale benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); open files limit $(ulimit -n)"
echo "$VMS VMs on qmp-sim (unplug delay ${DELAY} ms), $INFLIGHT requests in flight per VM," \
    "$POOL devices per VM plugged then unplugged (10% never complete, deadline ${NEVER_TIMEOUT} s;" \
    "10% refused by the guest; 80% deleted)"

mkdir "$T/sim" "$T/sim2"
"$SIM" --dir "$T/sim" --vms "$VMS" --delay-ms "$DELAY" --stats >"$T/sim.out" 2>"$T/sim.err" &
SIM_PID=$!
if [ "$EXTRA_VMS" -gt 0 ]; then
    "$SIM" --dir "$T/sim2" --vms "$EXTRA_VMS" >"$T/sim2.out" 2>"$T/sim2.err" &
    SIM2_PID=$!
fi
for _ in $(seq 600); do
    grep -q "ready" "$T/sim.out" 2>/dev/null &&
        { [ -z "$SIM2_PID" ] || grep -q "ready" "$T/sim2.out" 2>/dev/null; } && break
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.1
done
grep -q "ready" "$T/sim.out" || { echo "bench-scale: qmp-sim did not start:" >&2; cat "$T/sim.err" >&2; exit 1; }
[ -z "$SIM2_PID" ] || grep -q "ready" "$T/sim2.out" ||
    { echo "bench-scale: the second qmp-sim did not start:" >&2; cat "$T/sim2.err" >&2; exit 1; }

# the baseline: a daemon with no VM
start_hotplugd empty 0
"$SCALE" idle "$T/empty.sock" --vms 0 --pid "$HD_PID" >"$T/empty.out"
stop_hotplugd

# many idle VMs (the simulator serves one client per VM: a daemon at a time)
start_hotplugd idle "$IDLE_VMS"
"$SCALE" idle "$T/idle.sock" --vms "$IDLE_VMS" --pid "$HD_PID" >"$T/idle.out"
stop_hotplugd
if [ -n "$SIM2_PID" ]; then
    kill -TERM "$SIM2_PID" 2>/dev/null || true
    wait "$SIM2_PID" 2>/dev/null || true
    SIM2_PID=""
fi

start_hotplugd scale "$VMS"
T0=$(date +%s.%N)
rc=0
"$SCALE" run "$T/scale.sock" --vms "$VMS" --pid "$HD_PID" --inflight "$INFLIGHT" --pool "$POOL" \
    --delay-ms "$DELAY" --never-timeout "$NEVER_TIMEOUT" --ops "$T/ops.txt" | tee "$T/run.out" || rc=$?
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$HD_PID/status")
# the event log, read back through the daemon by the CLI
"$CTL" --socket "$T/scale.sock" --json events >"$T/events.jsonl"
"$SCALE" verify --ops "$T/ops.txt" --events "$T/events.jsonl" | tee "$T/verify.out" || rc=$?
stop_hotplugd
kill -TERM "$SIM_PID" 2>/dev/null || true
wait "$SIM_PID" 2>/dev/null || true
SIM_PID=""

rss0=$(result "$T/empty.out" idle rss_kib)
rssn=$(result "$T/run.out" idle rss_kib)
rssi=$(result "$T/idle.out" idle rss_kib)
echo
echo "summary ($VMS VMs, hotplugd peak RSS ${HWM} KiB):"
awk -v r0="$rss0" -v rn="$rssn" -v n="$VMS" 'BEGIN {
    printf "  RSS per connected idle VM: (%d - %d KiB) / %d = %.2f KiB\n", rn, r0, n, (rn - r0) / n }'
[ "$IDLE_VMS" -eq 0 ] || awk -v r0="$rss0" -v rn="$rssi" -v n="$IDLE_VMS" 'BEGIN {
    printf "  RSS per connected idle VM, %d VMs: (%d - %d KiB) / %d = %.2f KiB\n", n, rn, r0, n, (rn - r0) / n }'
printf '  unplugs: %s/s; plugs: %s/s\n' "$(result "$T/run.out" unplug ops_per_s)" "$(result "$T/run.out" plug ops_per_s)"
printf '  hotplugd CPU per 1,000 operations: unplug %s s, plug %s s\n' \
    "$(result "$T/run.out" unplug cpu_s_per_1000)" "$(result "$T/run.out" plug cpu_s_per_1000)"
printf '  request -> outcome, less the %s ms delay: deleted p50 %s ms, p99 %s ms\n' "$DELAY" \
    "$(result "$T/run.out" latency_deleted_minus_delay p50_ms)" "$(result "$T/run.out" latency_deleted_minus_delay p99_ms)"
printf '  deadline lateness (never-completing unplugs; the timer, measured by the daemon: deadline_late_us):\n'
printf '    p50 %s ms, p99 %s ms, max %s ms   (target p99 <= 10 ms)\n' "$(result "$T/run.out" lateness_deadline p50_ms)" \
    "$(result "$T/run.out" lateness_deadline p99_ms)" "$(result "$T/run.out" lateness_deadline max_ms)" | sed 's/(target p99 <= 10 ms)//' 
printf '  outcome past the deadline (elapsed_ms - timeout_ms: + device_del reply, + confirming qom-list):\n'
printf '    p50 %s ms, p99 %s ms\n' "$(result "$T/run.out" lateness_outcome p50_ms)" "$(result "$T/run.out" lateness_outcome p99_ms)"
printf '  replies: %s operations, %s wrong; event log: %s\n' "$(result "$T/run.out" outcomes total)" \
    "$(result "$T/run.out" outcomes wrong)" "$(sed -n 's/^RESULT scale eventlog //p' "$T/verify.out")"
echo "  qmp-sim: $(grep 'qmp-sim stats' "$T/sim.out" | sed 's/^qmp-sim stats: //')"
# the issue's targets, each beside its figure
target() { # target NAME VALUE OP LIMIT UNIT (VALUE "unmeasured": not asked for)
    awk -v n="$1" -v v="$2" -v op="$3" -v l="$4" -v u="$5" 'BEGIN {
        if (v == "unmeasured") { printf "  %-52s %12s   target %s %s %s   not measured\n", n, "-", op, l, u; exit }
        if (v == "") { printf "  %-52s %12s   target %s %s %s   MISSING\n", n, "-", op, l, u; exit }
        ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
        printf "  %-52s %12s   target %s %s %s   %s\n", n, v " " u, op, l, u, ok ? "met" : "NOT MET" }'
}
VERIFY=$(sed -n 's/^RESULT scale eventlog //p' "$T/verify.out")
# wrong replies, and what the event log check counts as missing, repeated,
# wrong, mismatched, stray or a seq gap
BAD=$(echo "wrong=$(result "$T/run.out" outcomes wrong) $VERIFY" | awk '{
    n = 0; seen = 0
    for (i = 1; i <= NF; i++) { split($i, kv, "=")
        if (kv[1] ~ /^(wrong|missing|repeated|mismatched|stray|seq_gaps)$/) { n += kv[2]; seen++ } }
    print (seen >= 7 ? n : "") }')
echo
echo "targets (scale):"
if [ "$IDLE_VMS" -eq 0 ]; then # --idle-vms 0: no idle figure (not a division by zero)
    target "RSS per idle VM (--idle-vms 0)" unmeasured "<=" 8 KiB
else
    target "RSS per idle VM, $IDLE_VMS VMs connected" \
        "$(awk -v r0="$rss0" -v rn="$rssi" -v n="$IDLE_VMS" 'BEGIN { printf "%.2f", (rn - r0) / n }')" "<=" 8 KiB
fi
target "deadline lateness p99, $((VMS * INFLIGHT)) unplugs pending" \
    "$(result "$T/run.out" lateness_deadline p99_ms)" "<=" 2 ms
target "unplug outcomes per second" "$(result "$T/run.out" unplug ops_per_s)" ">=" 5000 /s
target "wrong or missing outcomes (replies + event log)" "$BAD" "<=" 0 ""
echo "  work took $(awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }') s"
exit $rc
