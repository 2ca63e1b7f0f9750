#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The host device pool on real vfio-pci devices, run inside the nested VFIO
# rig's L1 (tests/vfio/run-tests.sh boots it and runs this):
#
#   tests/vfio/test-vfio.sh BUILDDIR
#
# L1's devices (tests/vfio/run-l1.sh): 0000:01:00.0 e1000e and 0000:02:00.0
# edu, each its own IOMMU group; 0000:03:00.0 e1000e + 0000:03:00.1 virtio-net,
# one group of two; all bound to vfio-pci.  The VMs are L2 QEMUs (TCG q35,
# -S, three pcie-root-ports), each with a second QMP monitor for the test.
# Prints "ok - NAME" / "not ok - NAME: WHY" per test and a last line
# "vfio tests: N passed, M failed"; exits 1 when any failed.
set -uo pipefail

[ "${HOTPLUG_IN_VFIO_L1:-}" = 1 ] || { echo "test-vfio: run me in L1 (tests/vfio/run-tests.sh)" >&2; exit 125; }
B=$(cd "${1:?usage: test-vfio.sh BUILDDIR}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CTL=$B/hotplugctl
HPD=$B/hotplugd
QEMU=${HOTPLUG_QEMU_BINDIR:+$HOTPLUG_QEMU_BINDIR/}qemu-system-x86_64
D1=0000:01:00.0
D2=0000:02:00.0
D3A=0000:03:00.0
D3B=0000:03:00.1
T=$(mktemp -d /tmp/vfio-test.XXXXXX)
export HOTPLUGD_SOCKET=$T/hotplugd.sock
export HOTPLUG_LOCK_ROOT=$T/locks
declare -A L2PID=()
HPDPID=
passed=0
failed=0

cleanup() {
  for n in "${!L2PID[@]}"; do kill -9 "${L2PID[$n]}" 2>/dev/null; done
  [ -n "$HPDPID" ] && kill -9 "$HPDPID" 2>/dev/null
  wait 2>/dev/null
}
trap cleanup EXIT

ok() { echo "ok - $1"; passed=$((passed + 1)); }
notok() { echo "not ok - $1: $2"; failed=$((failed + 1)); }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | sed 's/^\./0./'; }
qmp() { /usr/bin/python3 "$here/qmp.py" "$T/$1.ctl" "${@:2}"; }

start_l2() {
  local n=$1
  "$QEMU" -accel tcg -machine q35 -nodefaults -display none -S -m 128 \
    -qmp "unix:$T/$n.qmp,server=on,wait=off" -qmp "unix:$T/$n.ctl,server=on,wait=off" \
    -device pcie-root-port,id=rp1,chassis=1 -device pcie-root-port,id=rp2,chassis=2 \
    -device pcie-root-port,id=rp3,chassis=3 >"$T/$n.log" 2>&1 &
  L2PID[$n]=$!
  for _ in $(seq 100); do [ -S "$T/$n.ctl" ] && return 0; sleep 0.1; done
  echo "L2 $n did not start: $(cat "$T/$n.log")" >&2
  return 1
}
start_hotplugd() {
  "$HPD" --foreground --socket "$HOTPLUGD_SOCKET" --state-dir "$T/state" >>"$T/hotplugd.log" 2>&1 &
  HPDPID=$!
  for _ in $(seq 100); do "$CTL" vm list >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "hotplugd did not start: $(tail "$T/hotplugd.log")" >&2
  return 1
}
# state of ADDR in the daemon's list (or --local): "state vm device"
hd_state() {
  "$CTL" --json hostdev list "$@" | jq -r --arg a "$ADDR" \
    '.hostdevs[] | select(.address == $a) | "\(.state) \(.vm // "-") \(.device // "-")"'
}
# wait up to SECS for hd_state ADDR to be WANT; prints the seconds taken
wait_state() {
  local want=$1 secs=$2 t0
  t0=$(now)
  shift 2
  while :; do
    [ "$(hd_state "$@")" = "$want" ] && { since "$t0"; return 0; }
    [ "$(echo "$(now) - $t0 > $secs" | bc)" = 1 ] && return 1
    sleep 0.05
  done
}
# hostdev records of the event log: "event address why"
hd_events() {
  "$CTL" --json events --kind hostdev | jq -r '"\(.event) \(.address) \(.vm // "-") \(.why // "-")"'
}
wait_event() {
  local want=$1 secs=$2 t0
  t0=$(now)
  while :; do
    hd_events | grep -qx -- "$want" && { since "$t0"; return 0; }
    [ "$(echo "$(now) - $t0 > $secs" | bc)" = 1 ] && return 1
    sleep 0.05
  done
}

echo "# L2: $("$QEMU" --version | head -n1); L1 kernel $(uname -r)"
for n in a b c d; do start_l2 "$n" || exit 1; done
start_hotplugd || exit 1
for n in a b c; do "$CTL" vm add "$n" "$T/$n.qmp" >/dev/null || exit 1; done
sleep 1

# ---- the pool ---------------------------------------------------------------
t=pool-listed
out=$("$CTL" --json hostdev list)
n=$(jq '[.hostdevs[] | select(.state == "free")] | length' <<<"$out")
w=$(jq -r .watch <<<"$out")
g=$(jq -r --arg a "$D3B" '.hostdevs[] | select(.address == $a) | "\(.group) \(.members | join(","))"' <<<"$out")
if [ "$n" = 4 ] && [ "$w" = uevent ] && [ "${g#* }" = "$D3A,$D3B" ]; then
  ok "$t (4 free, watched by $w)"
else
  notok "$t" "$out"
fi
"$CTL" hostdev list

# ---- the incident: two VMs, one device ----------------------------------------
t=incident-second-vm-refused
t0=$(now)
out1=$("$CTL" --json hostdev add a "$D1" --id h1 2>&1)
rc1=$?
dt=$(since "$t0")
out2=$("$CTL" hostdev add b "$D1" --id h1 2>&1)
rc2=$?
attempts_b=$("$CTL" --json events --vm b | jq -s '[.[] | select(.kind == "request" or .kind == "attempt")] | length')
if [ $rc1 = 0 ] && [ $rc2 = 1 ] && grep -q "VM a" <<<"$out2" && [ "$attempts_b" = 0 ]; then
  ok "$t (VM a got it in ${dt}s; b: $out2)"
else
  notok "$t" "rc1=$rc1 '$out1' rc2=$rc2 '$out2' requests to b: $attempts_b"
fi
t=q35-placement
bus=$(jq -r '.bus // empty' <<<"$out1")
qbus=$(qmp a qom-get '{"path": "/machine/peripheral/h1", "property": "parent_bus"}' 2>/dev/null)
if [ $rc1 = 0 ] && [ -n "$bus" ] && qmp a qom-list '{"path": "/machine/peripheral"}' | grep -q '"h1"'; then
  ok "$t (placed on $bus by hotplugd; QEMU has h1)"
else
  notok "$t" "'$out1' $qbus"
fi

# ---- a group split across VMs -----------------------------------------------------
t=group-split-refused
out1=$("$CTL" hostdev add a "$D3A" --id g0 2>&1)
rc1=$?
out2=$("$CTL" hostdev add b "$D3B" --id g1 2>&1)
rc2=$?
if [ $rc1 = 0 ] && [ $rc2 = 1 ] && grep -q "IOMMU group" <<<"$out2" && grep -q "VM a" <<<"$out2"; then
  ok "$t ($out2)"
else
  notok "$t" "rc1=$rc1 '$out1' rc2=$rc2 '$out2'"
fi

# ---- a late binding -----------------------------------------------------------------
# seen within a second: the hostdev record's time against the moment of the
# (un)binding (listing takes longer than that under TCG, so the log's clock is
# the measure); then listed
# seconds from T0 to the time of the first record "EVENT ADDR" from seq SEQ on
record_delay() {
  local ev=$1 addr=$2 seq=$3 t0=$4 tm
  tm=$("$CTL" --json events --kind hostdev |
    jq -r --arg e "$ev" --arg a "$addr" --argjson s "$seq" \
      'select(.seq >= $s and .event == $e and .address == $a) | .time' | head -n1)
  [ -n "$tm" ] || return 1
  echo "$(date -d "$tm" +%s.%N) - $t0" | bc | sed 's/^\./0./'
}
last_seq() { "$CTL" --json events | jq -s 'map(.seq) | max // 0'; }
t=late-unbinding-seen
ADDR=$D2
seq=$(($(last_seq) + 1))
t0=$(now)
echo "$D2" >/sys/bus/pci/drivers/vfio-pci/unbind
if wait_state "" 5 >/dev/null && wait_event "gone $D2 - -" 5 >/dev/null &&
  d=$(record_delay gone "$D2" "$seq" "$t0") && [ "$(echo "$d < 1" | bc)" = 1 ]; then
  ok "$t (logged ${d}s after the unbinding, gone from the list)"
else
  notok "$t" "delay '${d:-}'; list: '$(hd_state)'; events: $(hd_events | tr '\n' ';')"
fi
t=late-binding-seen
seq=$(($(last_seq) + 1))
t0=$(now)
echo "$D2" >/sys/bus/pci/drivers_probe
if wait_state "free - -" 5 >/dev/null && wait_event "available $D2 - -" 5 >/dev/null &&
  d=$(record_delay available "$D2" "$seq" "$t0") && [ "$(echo "$d < 1" | bc)" = 1 ]; then
  ok "$t (logged ${d}s after the binding, listed free)"
else
  notok "$t" "delay '${d:-}'; list: '$(hd_state)'; events: $(hd_events | tr '\n' ';')"
fi

# ---- a killed tenant -----------------------------------------------------------------
t=killed-tenant-republished
seq=$(($(last_seq) + 1))
t0=$(now)
kill -9 "${L2PID[a]}"
wait "${L2PID[a]}" 2>/dev/null
unset 'L2PID[a]'
ADDR=$D1
if wait_state "free - -" 5 >/dev/null && wait_event "released $D1 a tenant gone" 1 >/dev/null &&
  wait_event "released $D3A a tenant gone" 1 >/dev/null; then
  d=$(record_delay released "$D1" "$seq" "$t0")
  out=$("$CTL" hostdev add b "$D1" --id h1 2>&1) && ok "$t (released ${d}s after kill -9, listed free; VM b got it)" ||
    notok "$t" "re-add to b: $out"
else
  notok "$t" "list: '$(hd_state)'; events: $(hd_events | tr '\n' ';')"
fi

# ---- a pending unplug keeps the claim ------------------------------------------------------
t=pending-unplug-keeps-claim
out=$("$CTL" hostdev del b h1 --timeout 1 2>&1)
rc=$?
st=$(hd_state)
out2=$("$CTL" hostdev add c "$D1" --id h9 2>&1)
rc2=$?
if [ $rc = 5 ] && [ "$st" = "claimed b h1" ] && [ $rc2 = 1 ]; then
  qmp b system_reset >/dev/null
  if dt=$(wait_state "free - -" 10) && wait_event "released $D1 b deleted-late" 1 >/dev/null; then
    ok "$t (not-deleted kept it; released ${dt}s after system_reset, deleted-late)"
  else
    notok "$t" "after system_reset: '$(hd_state)'; events: $(hd_events | tr '\n' ';')"
  fi
else
  notok "$t" "del rc=$rc '$out'; state '$st'; add to c rc=$rc2 '$out2'"
fi

# ---- kill -9 of hotplugd mid-claim ----------------------------------------------------------
t=hotplugd-killed-mid-claim
ADDR=$D2
"$CTL" hostdev add c "$D2" --id e0 >"$T/mid.out" 2>&1 &
bg=$!
# the claim is made before device_add, which takes seconds here
for _ in $(seq 100); do [ -n "$(hd_state --local | grep claimed)" ] && break; sleep 0.02; done
kill -9 "$HPDPID"
wait "$HPDPID" 2>/dev/null
HPDPID=
wait "$bg"
local_st=$("$CTL" --json hostdev list --local | jq -c --arg a "$D2" '.hostdevs[] | select(.address == $a) | {state, vm, pid, "claimer-running"}')
out2=$("$CTL" hostdev add "$T/d.qmp" "$D2" --id x 2>&1)
rc2=$?
start_hotplugd
sleep 2
in_qemu=0
qmp c qom-list '{"path": "/machine/peripheral"}' | grep -q '"e0"' && in_qemu=1
st=$(hd_state)
if [ $rc2 = 1 ] && { { [ $in_qemu = 1 ] && [ "$st" = "claimed c e0" ]; } || { [ $in_qemu = 0 ] && [ "$st" = "free - -" ]; }; }; then
  ok "$t (while down: $local_st, direct mode refused: $out2; after restart: '$st', QEMU has it: $in_qemu)"
else
  notok "$t" "while down: $local_st; direct add rc=$rc2 '$out2'; after restart '$st' (QEMU has it: $in_qemu)"
fi

# ---- direct mode and hotplugd share claims ------------------------------------------------
t=direct-and-hotplugd-share
# hotplugd holds D2 for c (above, when QEMU has it): direct mode is refused naming it
ADDR=$D2
[ "$(hd_state)" = "free - -" ] && "$CTL" hostdev add c "$D2" --id e0 >/dev/null 2>&1
out1=$("$CTL" hostdev add "$T/d.qmp" "$D2" --id x 2>&1)
rc1=$?
# direct mode takes the free group of D3A; hotplugd is refused its sibling, naming QEMU d
out2=$("$CTL" hostdev add "$T/d.qmp" "$D3A" --id z 2>&1)
rc2=$?
out3=$("$CTL" hostdev add b "$D3B" --id z 2>&1)
rc3=$?
# the group QEMU d got without hotplugd is listed in use by it
inuse=$("$CTL" --json hostdev list | jq -r --arg a "$D3B" '.hostdevs[] | select(.address == $a) | "\(.state) \(.pid)"')
if [ $rc1 = 1 ] && grep -q "VM c" <<<"$out1" && [ $rc2 = 0 ] && [ $rc3 = 1 ] &&
  grep -q "process ${L2PID[d]}" <<<"$out3" && [ "$inuse" = "in-use ${L2PID[d]}" ]; then
  ok "$t (direct refused: $out1 | hotplugd refused: $out3 | listed: $inuse)"
else
  notok "$t" "direct D2 rc=$rc1 '$out1'; direct D3A rc=$rc2 '$out2'; hotplugd D3B rc=$rc3 '$out3'; listed '$inuse'"
fi
"$CTL" hostdev list
echo "--- hostdev records"
"$CTL" events --kind hostdev

echo "vfio tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
