#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Make QEMU 10.0 (Debian bookworm-backports) runnable next to the system's
# QEMU, without replacing it: a cached Debian chroot plus thin wrappers.
#
#   scripts/qemu10.sh [--check] [DIR]
#
# DIR defaults to ${HOTPLUG_QEMU10_DIR:-$HOME/.cache/qmp-hotplug/qemu10}:
#   DIR/root   a bookworm minbase chroot (debootstrap, from the host's Debian
#              mirror) with bookworm-backports' qemu-system-x86, -ppc, -arm
#              and qemu-utils installed (apt-get -t bookworm-backports)
#   DIR/bin    qemu-system-x86_64, qemu-system-ppc64, qemu-system-aarch64 and
#              qemu-img: point HOTPLUG_QEMU_BINDIR at it
#   DIR/stamp  what was built (first line: the cache key; second: versions)
# Nothing is done when DIR/stamp matches (the wrappers are rewritten only
# when they differ). --check also runs every wrapper with --version.
#
# A wrapper keeps the caller's pid all the way down (exec only): `unshare
# --mount` (no --fork) gives it a private mount namespace, it bind-mounts the
# host's /dev, /proc, /sys, /tmp, /run and every top-level directory that is
# not part of the OS (/root, /home, /work, /opt, /srv, /mnt, ...) into the
# chroot, then execs QEMU there with the caller's working directory. So
# paths from the host work unchanged, QMP sockets under /tmp are the host's,
# and signals, PR_SET_PDEATHSIG and kill-by-pid reach QEMU itself. The mounts
# vanish with the process; the host's mount table is never touched. With
# HOTPLUG_QEMU10_LOG set, a wrapper appends one line per start to that file
# ("BINARY pid=PID by=COMM", COMM being its parent's: scripts/test uses it to
# see that each test program really ran QEMU 10).
#
# Needs root (debootstrap, chroot; a wrapper needs CAP_SYS_ADMIN for its
# mount namespace), debootstrap and network access to the mirror for the
# first build (a few minutes; ~500 MB).
#
# Environment: HOTPLUG_QEMU10_MIRROR overrides the Debian mirror (default:
# the host's apt source for bookworm, else http://deb.debian.org/debian).
set -euo pipefail

prog=qemu10
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}

check=0
dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    -h | --help)
      sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"
      exit 0
      ;;
    -*)
      echo "usage: scripts/qemu10.sh [--check] [DIR]" >&2
      exit 2
      ;;
    *) dir=$1 ;;
  esac
  shift
done
dir=${dir:-${HOTPLUG_QEMU10_DIR:-$HOME/.cache/qmp-hotplug/qemu10}}

suite=bookworm
backports=bookworm-backports
packages=(qemu-system-x86 qemu-system-ppc qemu-system-arm qemu-utils
  qemu-system-data seabios ipxe-qemu qemu-efi-aarch64)
binaries=(qemu-system-x86_64 qemu-system-ppc64 qemu-system-aarch64 qemu-img)
# Bump when the chroot's contents would change for the same package list.
root_format=1
stamp_key="root-format=$root_format suite=$suite/$backports packages=${packages[*]}"

mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
case "$dir" in *"'"* | *[[:space:]]*) die "$dir: a path with quotes or spaces is not supported" ;; esac
root=$dir/root
bindir=$dir/bin

# ---- the wrappers -------------------------------------------------------
# DIR/libexec/enter runs inside the new mount namespace (same pid): mounts,
# then exec QEMU in the chroot. The OS directories of the host (bin, etc,
# lib*, sbin, usr, var, boot) are the chroot's own.
enter_text() {
  cat <<'EOF'
#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Made by scripts/qemu10.sh: runs in a private mount namespace (unshare
# --mount, same pid), binds the host's /dev, /proc, /sys, /tmp, /run and
# every non-OS top-level directory into the chroot, execs QEMU in it.
#   enter ROOT PROGRAM [ARG...]
root=$1
prog=$2
shift 2
fail() {
  echo "qemu10 wrapper: $*" >&2
  exit 127
}
for d in /*; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  case "$d" in
    /bin | /boot | /etc | /lib | /lib32 | /lib64 | /libx32 | /sbin | /usr | /var) continue ;;
    /lost+found) continue ;;
  esac
  [ -d "$root$d" ] || mkdir -p "$root$d" 2>/dev/null || fail "cannot create $root$d"
  mount --rbind "$d" "$root$d" || fail "cannot bind $d into $root"
done
wd=$PWD
[ -n "$wd" ] && [ -d "$root$wd" ] || wd=/
exec unshare --root="$root" --wd="$wd" -- "$prog" "$@"
EOF
}

wrapper_text() { # BINARY
  cat <<EOF
#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Made by scripts/qemu10.sh: $1 of QEMU 10 (bookworm-backports) from the
# chroot $root, with this process's pid (exec all the way).
if [ "\$(id -u)" != 0 ]; then
  echo "qemu10 wrapper: $1 needs root (a private mount namespace and chroot)" >&2
  exit 126
fi
if [ -n "\${HOTPLUG_QEMU10_LOG:-}" ]; then
  by=\$(cat /proc/\$PPID/comm 2>/dev/null)
  echo "$1 pid=\$\$ by=\$by" >>"\$HOTPLUG_QEMU10_LOG"
fi
exec unshare --mount --propagation private -- '$dir/libexec/enter' '$root' '/usr/bin/$1' "\$@"
EOF
}

write_if_changed() { # FILE (content on stdin)
  local new
  new=$(cat)
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$new" ]; then
    printf '%s\n' "$new" >"$1.new" && chmod 0755 "$1.new" && mv -f "$1.new" "$1"
  fi
}

install_wrappers() {
  mkdir -p "$bindir" "$dir/libexec"
  enter_text | write_if_changed "$dir/libexec/enter"
  local b
  for b in "${binaries[@]}"; do
    wrapper_text "$b" | write_if_changed "$bindir/$b"
  done
}

versions() {
  local b v out=
  for b in "${binaries[@]}"; do
    v=$("$bindir/$b" --version 2>&1 | head -n1) || die "$bindir/$b --version failed: $v"
    out+="${out:+; }$b: ${v##*version }"
  done
  printf '%s\n' "$out"
}

up_to_date() {
  [ -r "$dir/stamp" ] && [ "$(head -n1 "$dir/stamp")" = "$stamp_key" ] || return 1
  local b
  for b in "${binaries[@]}"; do
    [ -x "$root/usr/bin/$b" ] || return 1
  done
}

finish() {
  install_wrappers
  if [ "$check" = 1 ]; then
    say "check: $(versions)"
  fi
  say "up to date: $bindir ($(sed -n 2p "$dir/stamp"))"
  exit 0
}

if [ "$(id -u)" != 0 ]; then
  up_to_date || die "building the QEMU 10 chroot needs root (debootstrap, chroot); run as root"
  say "note: the wrappers in $bindir need root to run"
  check=0
  finish
fi

up_to_date && finish

# One builder at a time per DIR; whoever waited re-checks the cache.
exec 9>"$dir/.lock"
flock 9
up_to_date && finish

for tool in debootstrap unshare chroot mount flock; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' not found (apt-get install debootstrap util-linux; or run scripts/deps.sh)"
done

# ---- mirror -----------------------------------------------------------------
host_mirror() { # the first deb URI the host uses for $suite
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '
      /^[ \t]*$/ { if (uri != "" && hit && deb) { print uri; exit } uri = ""; hit = 0; deb = 0; next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END { if (uri != "" && hit && deb) print uri }' "$f" | head -n1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done
}
mirror=${HOTPLUG_QEMU10_MIRROR:-$(host_mirror | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
case "$mirror" in
  http://* | https://*) ;;
  *) die "mirror '$mirror' is not an http(s) URL (set HOTPLUG_QEMU10_MIRROR)" ;;
esac
security=${mirror%/debian}/debian-security
say "mirror: $mirror"

fetch_ok() { # URL
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 30 -o /dev/null "$1"
  else
    wget -q -T 30 -O /dev/null "$1"
  fi
}
fetch_ok "$mirror/dists/$backports/InRelease" 2>/dev/null ||
  die "cannot reach $mirror/dists/$backports/ (no network? set HOTPLUG_QEMU10_MIRROR)"

# ---- build ----------------------------------------------------------------
mounted_under() { # PATH: is anything mounted at or below it (host namespace)?
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}
remove_tree() { # PATH
  [ -e "$1" ] || return 0
  mounted_under "$1" && die "something is mounted under $1; unmount it first"
  rm -rf --one-file-system "$1"
}

started=$SECONDS
new=$dir/root.new
remove_tree "$new"
keyring=()
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
  keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)

say "debootstrap --variant=minbase $suite (first build: a few minutes)"
debootstrap --variant=minbase "${keyring[@]}" "$suite" "$new" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
  die "debootstrap failed; see $dir/debootstrap.log (tail: $(tail -n 3 "$dir/debootstrap.log" | tr '\n' ' '))"

cat >"$new/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
deb $mirror $backports main
EOF
cat >"$new/etc/apt/apt.conf.d/90qemu10" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
chmod 0755 "$new/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$new/etc/resolv.conf" 2>/dev/null || true

in_chroot() { # CMD... inside $new, in a private mount namespace
  unshare --mount --propagation private -- sh -c '
    new=$1; shift
    mount -t proc proc "$new/proc" && mount --rbind /sys "$new/sys" &&
      mount --rbind /dev "$new/dev" || exit 1
    exec chroot "$new" "$@"' sh "$new" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

say "apt-get install -t $backports ${packages[*]}"
in_chroot apt-get update -q >"$dir/apt.log" 2>&1 ||
  die "apt-get update in the chroot failed; see $dir/apt.log"
in_chroot apt-get install -y -q -t "$backports" "${packages[@]}" >>"$dir/apt.log" 2>&1 ||
  die "apt-get install in the chroot failed; see $dir/apt.log"
in_chroot apt-get clean >/dev/null 2>&1 || true
for b in "${binaries[@]}"; do
  [ -x "$new/usr/bin/$b" ] || die "the chroot has no /usr/bin/$b after apt-get install"
done

rm -f "$dir/stamp"
remove_tree "$root"
mv "$new" "$root"
install_wrappers
vers=$(versions)
case "$vers" in
  *"qemu-system-x86_64: 10."*) ;;
  *) die "the chroot's QEMU is not 10.x: $vers" ;;
esac
printf '%s\n%s\n' "$stamp_key" "$vers" >"$dir/stamp.new"
mv -f "$dir/stamp.new" "$dir/stamp"
say "built $root in $((SECONDS - started)) s ($(du -sh --one-file-system "$root" | cut -f1)): $vers"
say "use: HOTPLUG_QEMU_BINDIR=$bindir"
