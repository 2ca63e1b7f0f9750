#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/run-overhead.sh: what qmp-hotplug's clients cost over raw QMP, on a
# real QEMU 7.2 (issue 7, "Overhead against the floor").
#
# Boots one QEMU (no guest: usb-kbd on qemu-xhci unplugs without one) with
# two QMP sockets:
#   qmp1.sock  the direct clients, one at a time: qmp-floor, bench-engine,
#              hotplugctl (direct mode, a process per command)
#   qmp2.sock  hotplugd's persistent connection (VM "bench" in its config);
#              bench-hotplugd drives the daemon over one control connection
#              per round
# Runs the clients alternately in rounds (the order flips every round, so
# drift on a shared machine hits all of them alike).  With --paired, the
# floor and hotplugd run in one client instead (bench-hotplugd --floor),
# each floor sample back to back with a daemon sample, the order turned
# every pair, and a second table compares the pairs by order (QEMU sends
# every event to both monitors: the daemon also logs the floor's
# DEVICE_DELETED, as it does in the blocks of the other clients).  Collects
# every sample
# as "METRIC MICROSECONDS" in $T/<client>.samples, and prints median and
# p99 per metric and client, with ratios against the floor of the same run.
#
# ADDING A CLIENT: write run_<name> ROUND that appends "METRIC
# MICROSECONDS" lines (metrics: cycle add del query ctlquery qomlist
# unplug1 unplugK) to "$T/<name>.samples" (run it under
# "${CLIENT_PIN[@]}"), start what it needs in start_clients, stop it in
# stop_clients, and add <name> to CLIENTS.  The table picks it up.
#
# QEMU and hotplugd are always stopped (trap), also on failure or Ctrl-C.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run-overhead.sh [options]
  --builddir DIR   where bench/qmp-floor etc. were built (default: . if it
                   has them, else the source tree's build/)
  --cycles N       cycles and query-status round trips per client (default 500)
  --target-cycles N  the same for floor and hotplugd, the two the targets compare
                   (default: --cycles)
  --rounds R       split them into R alternating rounds (default 10)
  --ctl-cycles N   hotplugctl cycles, a process per command (default 50)
  --burst K        time K unplugs at once against one (default 10)
  --bursts N       rounds of that per client (default 50)
  --short          a quick run: 100 cycles (300 for floor and hotplugd: a p99 of 100
                   samples is their second worst), 2 rounds, 10 hotplugctl cycles,
                   10 bursts
  --paired         run the floor and hotplugd sample by sample (bench-hotplugd --floor)
                   instead of in blocks of their own, and compare the pairs by order:
                   a daemon sample after a floor sample finds the daemon idle since
                   its last request (cold), after its own it does not
  --no-disk-load   skip the rounds of floor and hotplugd beside a disk writer (a loop of
                   dd oflag=dsync on the state directory's filesystem)
  --keep           keep the samples directory and print its path
  --pin MODE       split: QEMU on CPU 0, the clients on CPU 1 (default with 2+ CPUs);
                   same: all on CPU 0; none: let the scheduler place them.  Whether
                   client and QEMU share a CPU moves a round trip by ~50 us here, so
                   every client gets the same placement
  --qemu PATH      QEMU binary (default $QEMU or qemu-system-x86_64)
EOF
}

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=""
CYCLES=500
TARGET_CYCLES=""
ROUNDS=10
CTL_CYCLES=50
BURST=10
BURSTS=50
KEEP=0
PAIRED=0
DISK_LOAD=1
PIN=""
QEMU=${QEMU:-qemu-system-x86_64}

while [ $# -gt 0 ]; do
    case "$1" in
    --builddir) BUILDDIR=$2; shift 2 ;;
    --cycles) CYCLES=$2; shift 2 ;;
    --target-cycles) TARGET_CYCLES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --ctl-cycles) CTL_CYCLES=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --bursts) BURSTS=$2; shift 2 ;;
    --short) CYCLES=100; TARGET_CYCLES=300; ROUNDS=2; CTL_CYCLES=10; BURSTS=10; shift ;;
    --keep) KEEP=1; shift ;;
    --no-disk-load) DISK_LOAD=0; shift ;;
    --paired) PAIRED=1; shift ;;
    --qemu) QEMU=$2; shift 2 ;;
    --pin) PIN=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
TARGET_CYCLES=${TARGET_CYCLES:-$CYCLES}
for v in CYCLES TARGET_CYCLES ROUNDS CTL_CYCLES BURST BURSTS; do
    case "${!v}" in '' | *[!0-9]*) echo "run-overhead: bad number for $v: ${!v}" >&2; exit 2 ;; esac
done
[ "$ROUNDS" -ge 1 ] || { echo "run-overhead: --rounds must be at least 1" >&2; exit 2; }
[ "$BURST" -ge 2 ] || { echo "run-overhead: --burst must be at least 2" >&2; exit 2; }

if [ -z "$BUILDDIR" ]; then
    if [ -x ./bench/qmp-floor ]; then BUILDDIR=$PWD; else BUILDDIR=$SRCDIR/build; fi
fi
FLOOR=$BUILDDIR/bench/qmp-floor
ENGINE=$BUILDDIR/bench/bench-engine
HDCLIENT=$BUILDDIR/bench/bench-hotplugd
for p in "$FLOOR" "$ENGINE" "$HDCLIENT" "$BUILDDIR/hotplugctl" "$BUILDDIR/hotplugd"; do
    [ -x "$p" ] || { echo "run-overhead: $p is missing: run make first" >&2; exit 1; }
done
# hotplugctl as a user runs it: the real binary, not libtool's shell wrapper
# (which would add a bash start to every command)
if [ -x "$BUILDDIR/.libs/hotplugctl" ] && head -c 200 "$BUILDDIR/hotplugctl" | grep -q libtool; then
    CTL=$BUILDDIR/.libs/hotplugctl
    export LD_LIBRARY_PATH=$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
    CTL=$BUILDDIR/hotplugctl
fi
if [ -x "$BUILDDIR/.libs/hotplugd" ] && head -c 200 "$BUILDDIR/hotplugd" | grep -q libtool; then
    HOTPLUGD=$BUILDDIR/.libs/hotplugd
    export LD_LIBRARY_PATH=$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
    HOTPLUGD=$BUILDDIR/hotplugd
fi
command -v "$QEMU" >/dev/null || { echo "run-overhead: QEMU not found: $QEMU" >&2; exit 1; }

if [ -z "$PIN" ]; then
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then PIN=split; else PIN=none; fi
fi
case "$PIN" in
split) QEMU_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 1) ;;
same) QEMU_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 0) ;;
none) QEMU_PIN=(); CLIENT_PIN=() ;;
*) echo "run-overhead: --pin wants split, same or none" >&2; exit 2 ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/qhp-bench-XXXXXX")
SOCK_DIRECT=$T/qmp1.sock
SOCK_DAEMON=$T/qmp2.sock
SOCK_CONTROL=$T/hotplugd.sock
QEMU_PID=""
CHILD_PID=""
HOTPLUGD_PID=""

# Run a client in the background and wait for it: a signal to the script
# then interrupts the wait at once (bash runs traps only between commands).
run_child() {
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID"
    CHILD_PID=""
}

stop_qemu() {
    if [ -n "$QEMU_PID" ]; then
        kill -KILL "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
        QEMU_PID=""
    fi
}

cleanup() {
    local rc=$?
    if [ -n "$CHILD_PID" ]; then kill -TERM "$CHILD_PID" 2>/dev/null || true; fi
    if declare -F stop_disk_load >/dev/null; then stop_disk_load; fi
    if declare -F stop_clients >/dev/null; then stop_clients || true; fi
    stop_qemu
    if [ "$KEEP" = 1 ]; then echo "samples kept in $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_qemu [-S]
start_qemu() {
    rm -f "$SOCK_DIRECT" "$SOCK_DAEMON"
    "${QEMU_PIN[@]}" "$QEMU" -accel tcg -machine q35 -nodefaults -display none -device qemu-xhci,id=xhci "$@" \
        -qmp "unix:$SOCK_DIRECT,server=on,wait=off" -qmp "unix:$SOCK_DAEMON,server=on,wait=off" \
        >"$T/qemu.log" 2>&1 &
    QEMU_PID=$!
    for _ in $(seq 200); do
        [ -S "$SOCK_DIRECT" ] && [ -S "$SOCK_DAEMON" ] && return 0
        kill -0 "$QEMU_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-overhead: QEMU did not start:" >&2
    cat "$T/qemu.log" >&2
    exit 1
}

# ---- the clients ------------------------------------------------------------

# the rows of the table; RUN_CLIENTS: what each round runs ("pair" is the
# floor and hotplugd, sample by sample)
CLIENTS="floor engine hotplugctl hotplugd"

# hotplugd: one daemon for the whole run, VM "bench" on qmp2.sock, its state
# (event log, journal: fdatasync'ed as in production) under $T, on the
# clients' CPU like the in-process engine
start_clients() {
    cat >"$T/hotplugd.conf" <<EOF
[hotplugd]
state-dir = $T/hotplugd-state
socket = $SOCK_CONTROL

[vm bench]
qmp = $SOCK_DAEMON
EOF
    "${CLIENT_PIN[@]}" "$HOTPLUGD" --config "$T/hotplugd.conf" --foreground 2>"$T/hotplugd.log" &
    HOTPLUGD_PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCK_CONTROL" ] && return 0
        kill -0 "$HOTPLUGD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-overhead: hotplugd did not start:" >&2
    cat "$T/hotplugd.log" >&2
    exit 1
}

stop_clients() {
    if [ -n "$HOTPLUGD_PID" ]; then
        kill -TERM "$HOTPLUGD_PID" 2>/dev/null || true
        wait "$HOTPLUGD_PID" 2>/dev/null || true
        HOTPLUGD_PID=""
    fi
}

per_round() { # total -> this round's share (the first rounds take the remainder)
    local total=$1 round=$2
    echo $(( total / ROUNDS + (round <= total % ROUNDS ? 1 : 0) ))
}

# SUFFIX: "" for the quiet rounds, "-load" beside the disk writer (samples
# go to their own files, device ids get their own prefix)
SUFFIX=""

# the disk writer: 16 KiB blocks each synced (O_DSYNC), over and over on a
# 4 MiB file next to hotplugd's state directory
DISKLOAD_PID=""
start_disk_load() {
    (while :; do dd if=/dev/zero of="$T/diskload" bs=16k count=256 oflag=dsync conv=notrunc \
        status=none 2>/dev/null || exit 0; done) &
    DISKLOAD_PID=$!
}
stop_disk_load() {
    if [ -n "$DISKLOAD_PID" ]; then
        kill -TERM "$DISKLOAD_PID" 2>/dev/null || true
        pkill -TERM -P "$DISKLOAD_PID" 2>/dev/null || true
        wait "$DISKLOAD_PID" 2>/dev/null || true
        DISKLOAD_PID=""
    fi
}

run_floor() {
    local n b
    n=$(per_round "$TARGET_CYCLES" "$1")
    b=$(per_round "$BURSTS" "$1")
    run_child "${CLIENT_PIN[@]}" "$FLOOR" "$SOCK_DIRECT" --cycles "$n" --queries "$n" --lists "$n" \
        --burst "$BURST" --bursts "$b" --prefix "f${SUFFIX#-}$1x" --samples "$T/floor$SUFFIX.samples" >>"$T/floor.log"
}

run_engine() {
    local n b
    n=$(per_round "$CYCLES" "$1")
    b=$(per_round "$BURSTS" "$1")
    run_child "${CLIENT_PIN[@]}" "$ENGINE" "$SOCK_DIRECT" --cycles "$n" --queries "$n" --lists "$n" \
        --burst "$BURST" --bursts "$b" --prefix "e$1x" --samples "$T/engine.samples" >>"$T/engine.log"
}

# one control connection per round (the daemon's QMP connection stays up
# for the whole run); run_hotplugd ROUND [more bench-hotplugd options]
run_hotplugd() {
    local n b round=$1
    shift
    n=$(per_round "$TARGET_CYCLES" "$round")
    b=$(per_round "$BURSTS" "$round")
    run_child "${CLIENT_PIN[@]}" "$HDCLIENT" "$SOCK_CONTROL" bench --cycles "$n" --queries "$n" \
        --lists "$n" --burst "$BURST" --bursts "$b" --prefix "h${SUFFIX#-}${round}x" \
        --samples "$T/hotplugd$SUFFIX.samples" "$@" >>"$T/hotplugd.out" ||
        { echo "run-overhead: bench-hotplugd $* failed; hotplugd's log:" >&2; tail -5 "$T/hotplugd.log" >&2; exit 1; }
}

# the floor and hotplugd in one client, each floor sample beside a daemon
# sample (bench-hotplugd --floor); their samples go to the same files as
# run_floor's and run_hotplugd's
run_pair() {
    run_hotplugd "$1" --floor "$SOCK_DIRECT" --floor-prefix "f${SUFFIX#-}$1x" \
        --floor-samples "$T/floor$SUFFIX.samples" --pairs "$T/pairs$SUFFIX"
}

# $EPOCHREALTIME ("s.µs", always 6 decimals; "," in some locales) as integer µs
now_us() { local t=$EPOCHREALTIME; echo $(( 10#${t//[.,]/} )); }

run_hotplugctl() {
    local n i t0 t1 t2 dev
    n=$(per_round "$CTL_CYCLES" "$1")
    for ((i = 0; i < n; i++)); do
        dev=c$1x$i
        t0=$(now_us)
        run_child "${CLIENT_PIN[@]}" "$CTL" device add "$SOCK_DIRECT" usb-kbd "$dev" bus=xhci.0 >>"$T/hotplugctl.log" 2>&1 ||
            { echo "run-overhead: hotplugctl device add failed:" >&2; tail -3 "$T/hotplugctl.log" >&2; exit 1; }
        t1=$(now_us)
        run_child "${CLIENT_PIN[@]}" "$CTL" device del "$SOCK_DIRECT" "$dev" >>"$T/hotplugctl.log" 2>&1 ||
            { echo "run-overhead: hotplugctl device del failed:" >&2; tail -3 "$T/hotplugctl.log" >&2; exit 1; }
        t2=$(now_us)
        printf 'cycle %d\nadd %d\ndel %d\n' $((t2 - t0)) $((t1 - t0)) $((t2 - t1)) \
            >>"$T/hotplugctl.samples"
    done
}

# ---- statistics -----------------------------------------------------------------

# stats FILE METRIC -> "N MEDIAN P99" (nearest rank, as bench/bench-stats.c)
stats() {
    awk -v m="$2" '$1 == m { print $2 }' "$1" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "0 0 0"; exit }
            r50 = int(0.50 * NR); if (r50 < 0.50 * NR) r50++; if (r50 < 1) r50 = 1
            r99 = int(0.99 * NR); if (r99 < 0.99 * NR) r99++; if (r99 < 1) r99 = 1
            printf "%d %.1f %.1f\n", NR, v[r50], v[r99]
        }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

print_table() {
    local metric base pair client f n med p99 fn fmed fp99
    printf '\n%-9s %-11s %6s %12s %12s %10s %10s\n' metric client n median_us p99_us 'med/floor' 'p99/floor'
    # METRIC:FLOOR_METRIC (the floor row the ratio is taken against)
    for pair in cycle:cycle add:add del:del query:query ctlquery:query qomlist:qomlist \
        unplug1:unplug1 "unplug$BURST:unplug$BURST"; do
        metric=${pair%%:*}
        base=${pair#*:}
        read -r fn fmed fp99 < <(stats "$T/floor.samples" "$base")
        for client in $CLIENTS; do
            f=$T/$client.samples
            [ -f "$f" ] || continue
            read -r n med p99 < <(stats "$f" "$metric")
            [ "$n" -gt 0 ] || continue
            printf '%-9s %-11s %6d %12.1f %12.1f %10s %10s\n' "$metric" "$client" "$n" "$med" "$p99" \
                "$(ratio "$med" "$fmed")" "$(ratio "$p99" "$fp99")"
        done
    done
    printf '\n%d unplugs at once on one VM against one unplug (same client):\n' "$BURST"
    for client in $CLIENTS; do
        f=$T/$client.samples
        [ -f "$f" ] || continue
        read -r n med p99 < <(stats "$f" "unplug$BURST")
        [ "$n" -gt 0 ] || continue
        read -r fn fmed fp99 < <(stats "$f" unplug1)
        printf '  %-11s median %s x, p99 %s x\n' "$client" "$(ratio "$med" "$fmed")" "$(ratio "$p99" "$fp99")"
    done
    cat <<'EOF'

What each row measures (every client on its own connection; ratios against the floor row
named in [brackets], measured in the same run):
  cycle     floor: device_add -> device_del -> DEVICE_DELETED; engine: plug_device -> added,
            unplug -> deleted (in-process); hotplugctl: `device add` then `device del`, a
            process each (direct mode); hotplugd: device-add -> reply added, device-del ->
            reply deleted, over one control connection   [cycle]
  add, del  the two halves of a cycle   [add], [del]
  query     query-status round trip to QEMU (floor, engine)   [query]
  ctlquery  hotplugd only: query-hotplugd round trip, answered by the daemon (no QEMU)   [query]
  qomlist   qom-list /machine/peripheral: floor raw; engine hotplug_vm_query_devices;
            hotplugd device-list (client -> daemon -> QEMU -> daemon -> client)   [qomlist]
  unplug1   one unplug; unplugK: K unplugs of one VM at once until the last outcome   [same]

EOF
    if [ -f "$T/floor-load.samples" ]; then
        printf '\nbeside a disk writer (dd oflag=dsync, 16 KiB blocks, same filesystem as the state):\n'
        printf '%-9s %-11s %6s %12s %12s %10s %10s\n' metric client n median_us p99_us 'med/floor' 'p99/floor'
        for metric in add qomlist cycle; do
            read -r fn fmed fp99 < <(stats "$T/floor-load.samples" "$metric") || continue
            for client in floor hotplugd; do
                [ -f "$T/$client-load.samples" ] || continue
                read -r n med p99 < <(stats "$T/$client-load.samples" "$metric") || continue
                [ "$n" -gt 0 ] || continue
                printf '%-9s %-11s %6d %12.1f %12.1f %10s %10s\n' "$metric" "$client" "$n" "$med" "$p99" \
                    "$(ratio "$med" "$fmed")" "$(ratio "$p99" "$fp99")"
            done
        done
    fi
    if [ -f "$T/pairs" ]; then
        printf '\npairs by order (--paired; medians, us): the sample that ran second in its pair\n'
        printf 'followed the other client; the first followed its own client\n'
        printf '%-9s %-13s %6s %10s %10s %8s\n' metric order n floor hotplugd ratio
        for metric in add del qomlist; do
            for order in floor-first daemon-first; do
                awk -v m="$metric" -v o="$order" '$1 == m && $2 == o { print $3, $4 }' "$T/pairs" |
                    pair_medians "$metric" "$order"
            done
        done
    fi
    printf '\ntargets (ratios against the floor in this run):\n'
    target_row "add through hotplugd, median" "$T/hotplugd.samples" "$T/floor.samples" add median 1.15
    target_row "add through hotplugd, p99" "$T/hotplugd.samples" "$T/floor.samples" add p99 1.5
    target_row "add through hotplugd beside a disk writer, median" "$T/hotplugd-load.samples" \
        "$T/floor-load.samples" add median 2
    target_row "qomlist passthrough (device-list), median" "$T/hotplugd.samples" "$T/floor.samples" qomlist median 1.10
    target_row "cycle through hotplugd, p99" "$T/hotplugd.samples" "$T/floor.samples" cycle p99 1.05
}

pair_medians() { # METRIC ORDER < "FLOOR_US DAEMON_US" lines
    awk -v m="$1" -v o="$2" '
        { f[NR] = $1; d[NR] = $2 }
        function med(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            r = int(0.5 * n); if (r < 0.5 * n) r++; if (r < 1) r = 1
            return a[r]
        }
        END {
            if (NR == 0) exit
            mf = med(f, NR); md = med(d, NR)
            printf "%-9s %-13s %6d %10.1f %10.1f %8.2f\n", m, o, NR, mf, md, (mf > 0 ? md / mf : 0)
        }'
}

target_row() { # NAME CLIENT_FILE FLOOR_FILE METRIC median|p99 LIMIT
    local fn fmed fp99 n med p99 r f
    if [ ! -f "$2" ] || [ ! -f "$3" ]; then
        printf '  %-50s %8s   target <= %s x   MISSING\n' "$1" - "$6"
        return
    fi
    read -r fn fmed fp99 < <(stats "$3" "$4") || true
    read -r n med p99 < <(stats "$2" "$4") || true
    if [ "$5" = median ]; then r=$(ratio "$med" "$fmed"); else r=$(ratio "$p99" "$fp99"); fi
    f=$(awk -v r="$r" -v l="$6" 'BEGIN { print (r != "-" && r + 0 <= l + 0) ? "met" : "NOT MET" }')
    printf '  %-50s %8s x   target <= %s x   %s\n' "$1" "$r" "$6" "$f"
}

# ---- the run --------------------------------------------------------------------

start_qemu -S
# usb-kbd's DEVICE_DELETED comes even while the VM is paused (-S): check,
# and boot without -S should this QEMU differ
PAUSED=yes
if ! "$FLOOR" "$SOCK_DIRECT" --cycles 1 --queries 0 --warmup 0 --timeout 5000 --prefix probe \
    >/dev/null 2>"$T/probe.log"; then
    echo "run-overhead: no DEVICE_DELETED under -S ($(cat "$T/probe.log")); running the VM" >&2
    stop_qemu
    start_qemu
    PAUSED=no
    "$FLOOR" "$SOCK_DIRECT" --cycles 1 --queries 0 --warmup 0 --timeout 5000 --prefix probe >/dev/null
fi

echo "qmp-hotplug overhead benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "QEMU: $("$QEMU" --version | head -1); q35, TCG, qemu-xhci + usb-kbd, paused (-S): $PAUSED"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); placement (--pin): $PIN"
echo "runs: $TARGET_CYCLES cycles and as many query-status for floor and hotplugd" \
    "($([ "$PAIRED" = 1 ] && echo "paired, sample by sample" || echo "unpaired")), $CYCLES for" \
    "engine, in $ROUNDS alternating rounds," \
    "$BURSTS x (1 vs $BURST unplugs), hotplugctl $CTL_CYCLES cycles"

if [ "$PAIRED" = 1 ]; then RUN_CLIENTS="pair engine hotplugctl"; else RUN_CLIENTS=$CLIENTS; fi
start_clients
for ((round = 1; round <= ROUNDS; round++)); do
    order=$RUN_CLIENTS
    # flip the order every other round
    if ((round % 2 == 0)); then order=$(echo "$RUN_CLIENTS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for client in $order; do
        "run_$client" "$round"
    done
    echo "round $round/$ROUNDS done ($order)" >&2
done
if [ "$DISK_LOAD" = 1 ]; then
    SUFFIX=-load
    start_disk_load
    for ((round = 1; round <= ROUNDS; round++)); do
        order="floor hotplugd"
        if ((round % 2 == 0)); then order="hotplugd floor"; fi
        if [ "$PAIRED" = 1 ]; then order=pair; fi
        for client in $order; do
            "run_$client" "$round"
        done
        echo "disk-load round $round/$ROUNDS done ($order)" >&2
    done
    if declare -F stop_disk_load >/dev/null; then stop_disk_load; fi
    SUFFIX=""
fi
stop_clients

print_table
