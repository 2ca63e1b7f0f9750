#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-deb.sh: the Debian packages, built and used as a user would.
#
#   tests/deb/test-deb.sh [--keep]
#
# Builds the .debs from the checked-out tree (dpkg-buildpackage -us -uc -b in
# a copy, so the tree stays clean), runs lintian (errors fail), installs them
# on this machine with `apt-get install ./*.deb`, checks the installed
# layout, builds examples/qmp-hotplug-info.c against libqmp-hotplug-dev with
# pkg-config alone, starts hotplugd (under systemd when systemd is PID 1,
# else /usr/sbin/hotplugd --foreground as the unit would) and drives one real
# VM (the x86 test guest, $HOTPLUG_GUEST_DIR) through the installed
# hotplugctl: vm add, device add, device del with the outcome deleted, the
# event log.  At the end it purges the packages and kills what it started.
# Needs root (or sudo -n); --keep keeps the work directory.
set -euo pipefail

keep=0
case "${1:-}" in
  "") ;;
  --keep) keep=1 ;;
  -h | --help)
    sed -n '3,17s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *)
    echo "usage: tests/deb/test-deb.sh [--keep]" >&2
    exit 2
    ;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd)
guest=${HOTPLUG_GUEST_DIR:-$HOME/.cache/qmp-hotplug/guest}
packages=(qmp-hotplug libqmp-hotplug0 libqmp-hotplug-dev)
ctl=/usr/bin/hotplugctl

say() { printf '==> test-deb: %s\n' "$*"; }
fail() {
  printf 'FAIL: test-deb: %s\n' "$*" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then
  root=()
elif sudo -n true 2>/dev/null; then
  root=(sudo -n)
else
  fail "installs packages: run as root (or with passwordless sudo)"
fi

[ -f "$guest/vmlinuz" ] && [ -f "$guest/initrd.img" ] ||
  fail "no test guest in $guest (tests/guest/build-guest.sh $guest)"
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not found"

work=$(mktemp -d /tmp/test-deb.XXXXXX)
chmod 755 "$work"
qemu_pid=
daemon_pid=
under_systemd=0
installed=0

cleanup() {
  local rc=$?
  set +e
  if [ "$under_systemd" = 1 ]; then
    "${root[@]}" systemctl stop hotplugd.service
  fi
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    "${root[@]}" kill -TERM "$daemon_pid"
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    "${root[@]}" kill -KILL "$daemon_pid" 2>/dev/null
  fi
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid"
  fi
  [ -n "$qemu_pid" ] && wait "$qemu_pid" 2>/dev/null
  if [ "$installed" = 1 ]; then
    say "purging ${packages[*]}"
    "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${packages[@]}" >"$work/purge.log" 2>&1 ||
      { cat "$work/purge.log"; rc=1; }
    for p in "${packages[@]}"; do
      if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
        echo "FAIL: test-deb: $p is still installed" >&2
        rc=1
      fi
    done
    if [ -e /var/lib/hotplugd ] || [ -e /lib/systemd/system/hotplugd.service ]; then
      echo "FAIL: test-deb: purge left /var/lib/hotplugd or the unit behind" >&2
      rc=1
    fi
  fi
  if [ "$rc" != 0 ] && [ -f "$work/hotplugd.log" ]; then
    echo "---- hotplugd's log" >&2
    tail -n 40 "$work/hotplugd.log" >&2
  fi
  if [ "$rc" != 0 ] && [ -f "$work/console.log" ]; then
    echo "---- guest console" >&2
    tail -n 20 "$work/console.log" >&2
  fi
  if [ "$keep" = 1 ] || [ "$rc" != 0 ]; then
    echo "test-deb: work directory kept: $work" >&2
  else
    "${root[@]}" rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    fail "$p is already installed on this machine; remove it first (apt-get purge ${packages[*]})"
  fi
done

# ---- build -----------------------------------------------------------------
missing=()
for p in debhelper lintian dpkg-dev fakeroot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  for i in 1 2 3 4 5 6; do
    "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >"$work/apt-build-deps.log" 2>&1 && break
    [ "$i" = 6 ] && { cat "$work/apt-build-deps.log"; fail "cannot install ${missing[*]}"; }
    sleep 10 # the apt lock may be held by someone else
  done
fi

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
upstream=${version%-*}
src="$work/qmp-hotplug-$upstream"
mkdir -p "$src"
say "copying the tree ($(git -C "$top" rev-parse --short HEAD)) to $src"
(cd "$top" && git ls-files -co --exclude-standard -z | tar --null -cf - -T -) | tar -xf - -C "$src"
(cd "$src" && dpkg-checkbuilddeps) || fail "build dependencies missing (above)"

say "dpkg-buildpackage -us -uc -b (log: $work/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log" >&2
  fail "dpkg-buildpackage failed"
fi
grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP):' "$work/build.log" | tr '\n' ' '
echo
debs=()
for p in "${packages[@]}"; do
  f=$(ls "$work/${p}_${version}_"*.deb 2>/dev/null | head -n 1)
  [ -n "$f" ] || fail "no ${p}_${version}_*.deb built"
  debs+=("$f")
done

say "lintian"
lintian --allow-root "$work"/qmp-hotplug_"${version}"_*.changes >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
if grep -q '^E:' "$work/lintian.log"; then
  fail "lintian reports errors"
fi

# ---- install ---------------------------------------------------------------
say "apt-get install ${debs[*]##*/}"
installed=1
for i in 1 2 3 4 5 6; do
  "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debs[@]}" \
    >"$work/install.log" 2>&1 && break
  [ "$i" = 6 ] && { cat "$work/install.log"; fail "apt-get install failed"; }
  sleep 10
done

say "installed layout"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in /usr/sbin/hotplugd /usr/bin/hotplugctl /lib/systemd/system/hotplugd.service \
  /usr/lib/tmpfiles.d/hotplugd.conf /etc/hotplugd.conf \
  /usr/share/man/man8/hotplugd.8.gz /usr/share/man/man5/hotplugd.conf.5.gz \
  /usr/share/man/man1/hotplugctl.1.gz /usr/share/bash-completion/completions/hotplugctl.bash \
  "/usr/lib/$multiarch/libqmp-hotplug.so.0" "/usr/lib/$multiarch/libqmp-hotplug.so" \
  /usr/include/qmp-hotplug/qmp-hotplug.h /usr/include/qmp-hotplug/qmp-hotplug-version.h \
  "/usr/lib/$multiarch/pkgconfig/qmp-hotplug.pc"; do
  [ -e "$f" ] || fail "$f not installed"
done
[ ! -e /usr/bin/hotplugd ] || fail "hotplugd installed in /usr/bin"
grep -qx 'ExecStart=/usr/sbin/hotplugd --foreground --config /etc/hotplugd.conf' \
  /lib/systemd/system/hotplugd.service || fail "the unit does not start /usr/sbin/hotplugd"
grep -qx 'Type=notify' /lib/systemd/system/hotplugd.service || fail "the unit is not Type=notify"
[ -L /etc/systemd/system/multi-user.target.wants/hotplugd.service ] ||
  fail "hotplugd.service is not enabled"
systemd-analyze verify /lib/systemd/system/hotplugd.service >"$work/verify.log" 2>&1 ||
  fail "systemd-analyze verify hotplugd.service: $(cat "$work/verify.log")"
grep -qx 'WatchdogSec=30s' /lib/systemd/system/hotplugd.service || fail "the unit asks for no watchdog"
# the tmpfiles.d entry ran in postinst
[ -d /run/hotplugd ] && [ -d /var/lib/hotplugd ] ||
  fail "/run/hotplugd or /var/lib/hotplugd missing after install (tmpfiles.d)"
[ "$(stat -c %a /var/lib/hotplugd)" = 700 ] || fail "/var/lib/hotplugd is not mode 0700"
grep -q '^/etc/hotplugd.conf$' /var/lib/dpkg/info/qmp-hotplug.conffiles ||
  fail "/etc/hotplugd.conf is not a conffile"
[ "$(/usr/bin/hotplugctl --version | awk '{print $NF}')" = "$upstream" ] ||
  fail "hotplugctl --version: $(/usr/bin/hotplugctl --version), want $upstream"

say "the library exports only QMP_HOTPLUG_0 symbols"
syms=$(nm -D --defined-only "/usr/lib/$multiarch/libqmp-hotplug.so.0" | awk '$2 ~ /^[TDBRV]$/ {print $3}')
[ -n "$syms" ] || fail "libqmp-hotplug.so.0 exports nothing"
bad=$(printf '%s\n' "$syms" | grep -vE '^(qmp|timeout|hotplug|service)_[a-z0-9_]+@@QMP_HOTPLUG_0$' || true)
[ -z "$bad" ] || fail "libqmp-hotplug.so.0 exports non-public symbols: $bad"

say "examples/qmp-hotplug-info.c against libqmp-hotplug-dev, pkg-config alone"
# shellcheck disable=SC2046
cc -Wall -Werror -o "$work/qmp-hotplug-info" "$top/examples/qmp-hotplug-info.c" \
  $(pkg-config --cflags --libs qmp-hotplug) || fail "the example does not build"
cat >"$work/version.c" <<'EOF'
#include <qmp-hotplug/qmp-hotplug.h>
#if !QMP_HOTPLUG_CHECK_VERSION(QMP_HOTPLUG_VERSION_MAJOR, QMP_HOTPLUG_VERSION_MINOR, 0)
#error QMP_HOTPLUG_CHECK_VERSION
#endif
#include <stdio.h>
int main(void) { printf("%s\n", QMP_HOTPLUG_VERSION_STRING); return 0; }
EOF
# shellcheck disable=SC2046
cc -Wall -Werror -o "$work/version" "$work/version.c" $(pkg-config --cflags --libs qmp-hotplug) ||
  fail "the version macros do not build"
[ "$("$work/version")" = "$upstream" ] || fail "QMP_HOTPLUG_VERSION_STRING is not $upstream"

# ---- one VM, driven through the installed hotplugctl -----------------------
qmp=$work/vm1.qmp
spare=$work/vm1-spare.qmp
say "booting the x86 test guest (TCG)"
qemu-system-x86_64 -accel tcg -machine pc -nodefaults -no-user-config -display none \
  -m 256M -smp 1 -qmp "unix:$qmp,server=on,wait=off" -qmp "unix:$spare,server=on,wait=off" \
  -serial "file:$work/console.log" -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
  -append "console=ttyS0 quiet" >"$work/qemu.log" 2>&1 &
qemu_pid=$!

wait_for() { # SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ -z "$qemu_pid" ] || kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited: $(cat "$work/qemu.log")"
    [ "$SECONDS" -lt "$end" ] || fail "$what: not within $secs s"
    sleep 0.2
  done
}
console_has() { grep -qF "$1" "$work/console.log" 2>/dev/null; }
console_count() { grep -cF "$1" "$work/console.log" 2>/dev/null || true; }

wait_for 30 "QMP sockets" test -S "$spare"
wait_for 300 "the guest's HOTPLUG-GUEST-READY" console_has HOTPLUG-GUEST-READY

say "QMP capabilities through the example, on the spare socket"
"$work/qmp-hotplug-info" "$spare" >"$work/info.out" 2>&1 || fail "qmp-hotplug-info: $(cat "$work/info.out")"
grep -q '^hotplug capabilities:' "$work/info.out" || fail "qmp-hotplug-info printed: $(cat "$work/info.out")"

if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ] && [ -d /run/systemd/system ]; then
  say "systemd is PID 1: systemctl start hotplugd"
  under_systemd=1
  "${root[@]}" systemctl daemon-reload
  "${root[@]}" systemctl restart hotplugd.service
  systemctl is-active --quiet hotplugd.service || fail "hotplugd.service is not active"
  daemon_pid=
else
  say "systemd is not PID 1: /usr/sbin/hotplugd --foreground, as the unit starts it"
  "${root[@]}" /usr/sbin/hotplugd --foreground --config /etc/hotplugd.conf >"$work/hotplugd.log" 2>&1 &
  daemon_pid=$!
fi
wait_for 30 "the control socket /run/hotplugd/control.sock" test -S /run/hotplugd/control.sock

vm_ready() { "${root[@]}" "$ctl" vm info vm1 >"$work/vm-info.out" 2>&1; }
say "hotplugctl vm add vm1 $qmp"
"${root[@]}" "$ctl" vm add vm1 "$qmp" || fail "hotplugctl vm add"
wait_for 60 "vm1 connected (hotplugctl vm info vm1)" vm_ready
cat "$work/vm-info.out"

say "hotplugctl device add vm1 e1000 nic1"
added=$(console_count "HOTPLUG-GUEST: added pci")
out=$("${root[@]}" "$ctl" --json device add vm1 e1000 nic1) || fail "device add: exit $?: $out"
echo "$out"
echo "$out" | grep -q '"outcome" *: *"added"' || fail "device add: outcome is not added"
guest_added() { [ "$(console_count "HOTPLUG-GUEST: added pci")" -gt "$added" ]; }
wait_for 60 "the guest sees nic1" guest_added

say "hotplugctl device del vm1 nic1"
removed=$(console_count "HOTPLUG-GUEST: removed pci")
out=$("${root[@]}" "$ctl" --json device del vm1 nic1 --timeout 30) || fail "device del: exit $?: $out"
echo "$out"
echo "$out" | grep -q '"outcome" *: *"deleted"' || fail "device del: outcome is not deleted"
guest_removed() { [ "$(console_count "HOTPLUG-GUEST: removed pci")" -gt "$removed" ]; }
wait_for 60 "the guest reports nic1 removed" guest_removed
"${root[@]}" "$ctl" device list vm1 >"$work/devices.out" || fail "device list"
! grep -qw nic1 "$work/devices.out" || fail "nic1 still listed: $(cat "$work/devices.out")"

say "the event log under /var/lib/hotplugd has both operations"
"${root[@]}" "$ctl" --json events --vm vm1 --device nic1 >"$work/events.out" || fail "hotplugctl events"
grep -q '"deleted"' "$work/events.out" || fail "no deleted record in the event log: $(cat "$work/events.out")"
[ -n "$("${root[@]}" ls -A /var/lib/hotplugd)" ] || fail "/var/lib/hotplugd is empty"

if [ "$under_systemd" = 1 ]; then
  "${root[@]}" systemctl stop hotplugd.service
  under_systemd=0
else
  "${root[@]}" kill -TERM "$daemon_pid"
  wait "$daemon_pid" || fail "hotplugd exited with status $? after SIGTERM"
  daemon_pid=
fi

say "PASS: packages built, installed, lintian clean of errors, one VM driven through the installed hotplugctl"
