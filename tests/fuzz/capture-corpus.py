#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Capture real QEMU QMP transcripts for the fuzz corpus.

Each file in tests/fuzz/corpus/ named qemu-*.txt is exactly the bytes one
QEMU (qemu-system-x86_64, 7.2 on Debian 12) sent on its QMP socket during
one scenario: greeting, replies, events.  Run from the source tree:

    python3 tests/fuzz/capture-corpus.py [OUTDIR]

The guest scenario needs the test guest (tests/guest/build-guest.sh, in
$HOTPLUG_GUEST_DIR or ~/.cache/qmp-hotplug/guest); it is skipped without.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
GUEST = os.environ.get("HOTPLUG_GUEST_DIR",
                       os.path.expanduser("~/.cache/qmp-hotplug/guest"))


class Qemu:
    def __init__(self, args, guest=False, append=""):
        self.dir = tempfile.mkdtemp(prefix="qmp-corpus-")
        self.path = os.path.join(self.dir, "qmp.sock")
        self.console = os.path.join(self.dir, "console.log")
        cmd = [QEMU, "-accel", "tcg", "-nodefaults", "-display", "none",
               "-qmp", "unix:%s,server=on,wait=off" % self.path,
               "-serial", "file:%s" % self.console] + args
        if guest:
            cmd += ["-kernel", os.path.join(GUEST, "vmlinuz"),
                    "-initrd", os.path.join(GUEST, "initrd.img"),
                    "-append", ("console=ttyS0 quiet " + append).strip()]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(self.path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline or self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError("QEMU did not come up: %s" % cmd)
                time.sleep(0.05)
        self.raw = bytearray()
        self.buf = b""
        self.next_id = 1
        self.read_line()  # the greeting

    def read_line(self, timeout=20):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("QEMU hung up")
            self.raw += data
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, text):
        self.sock.sendall(text.encode())

    def cmd(self, name, args=None):
        """Execute and return the reply; events on the way are recorded."""
        msg = {"execute": name, "id": self.next_id}
        if args is not None:
            msg["arguments"] = args
        self.next_id += 1
        self.send_raw(json.dumps(msg))
        while True:
            m = self.read_line()
            if "return" in m or "error" in m:
                return m

    def wait_event(self, name, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                m = self.read_line(timeout=deadline - time.time())
            except socket.timeout:
                break
            if m.get("event") == name:
                return m
        return None

    def wait_console(self, needle, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(self.console, "rb") as f:
                    if needle.encode() in f.read():
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def save(self, name):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes(self.raw))
        print("%-32s %7d bytes" % (name, len(self.raw)))


def paused():
    q = Qemu(["-machine", "pc", "-S", "-smp", "1,maxcpus=4"])
    try:
        q.cmd("qmp_capabilities", {"enable": ["oob"]})
        q.cmd("query-status")
        q.cmd("query-version")
        q.cmd("qom-get", {"path": "/machine", "property": "type"})
        q.cmd("query-hotpluggable-cpus")
        q.cmd("query-cpus-fast")
        q.cmd("device_del", {"id": "nope"})
        q.cmd("no-such-command")
        q.cmd("device_add", {"driver": "no-such-driver"})
        q.cmd("device_add", {"driver": "virtio-net-pci", "id": "nic1", "bootindex": "x"})
        q.send_raw("garbage}")          # an id-less error
        q.read_line()
        q.send_raw('{"execute": 5, "id": "str"}')
        q.read_line()
        q.cmd("cont")                   # RESUME
        q.cmd("stop")                   # STOP
        q.wait_event("STOP", timeout=2)
        q.save("qemu-paused.txt")
    finally:
        q.kill()


def capabilities_error():
    q = Qemu(["-machine", "pc", "-S"])
    try:
        q.cmd("query-status")           # before negotiation: CommandNotFound
        q.cmd("qmp_capabilities", {"enable": ["nonsense"]})
        q.cmd("qmp_capabilities")
        q.cmd("qmp_capabilities")       # twice: an error
        q.save("qemu-negotiation.txt")
    finally:
        q.kill()


def memory():
    q = Qemu(["-machine", "pc", "-S", "-m", "256M,slots=2,maxmem=1G", "-smp", "1,maxcpus=2"])
    try:
        q.cmd("qmp_capabilities")
        q.cmd("object-add", {"qom-type": "memory-backend-ram", "id": "mem1", "size": 134217728})
        q.cmd("device_add", {"driver": "pc-dimm", "id": "dimm1", "memdev": "mem1"})
        q.cmd("query-memory-devices")
        q.cmd("query-memory-size-summary")
        q.cmd("query-hotpluggable-cpus")
        q.cmd("device_add", {"driver": "qemu64-x86_64-cpu", "id": "cpu1", "socket-id": 0,
                             "core-id": 1, "thread-id": 0})
        q.cmd("query-hotpluggable-cpus")
        q.save("qemu-memory.txt")
    finally:
        q.kill()


def usb():
    q = Qemu(["-machine", "q35", "-S", "-device", "qemu-xhci,id=xhci"])
    try:
        q.cmd("qmp_capabilities", {"enable": ["oob"]})
        q.cmd("device_add", {"driver": "usb-kbd", "id": "kbd1", "bus": "xhci.0"})
        q.cmd("device_del", {"id": "kbd1"})
        q.wait_event("DEVICE_DELETED", timeout=5)
        q.cmd("qom-list", {"path": "/machine/peripheral"})
        q.save("qemu-usb-unplug.txt")
    finally:
        q.kill()


def schema():
    q = Qemu(["-machine", "pc", "-S"])
    try:
        q.cmd("qmp_capabilities")
        q.cmd("query-qmp-schema")
        q.save("qemu-schema.txt")
    finally:
        q.kill()


def guest():
    if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
        print("no test guest in %s: guest scenario skipped" % GUEST)
        return
    q = Qemu(["-machine", "pc", "-m", "256M,slots=2,maxmem=1G", "-smp", "1,maxcpus=2"],
             guest=True)
    try:
        q.cmd("qmp_capabilities", {"enable": ["oob"]})
        if not q.wait_console("HOTPLUG-GUEST-READY", timeout=90):
            print("guest did not come up: guest scenario skipped")
            return
        q.cmd("device_add", {"driver": "virtio-net-pci", "id": "nic1"})
        time.sleep(2)
        q.cmd("device_del", {"id": "nic1"})
        q.wait_event("DEVICE_DELETED", timeout=30)
        q.cmd("object-add", {"qom-type": "memory-backend-ram", "id": "mem1", "size": 134217728})
        q.cmd("device_add", {"driver": "pc-dimm", "id": "dimm1", "memdev": "mem1"})
        time.sleep(3)
        q.cmd("query-memory-devices")
        q.cmd("device_del", {"id": "dimm1"})
        q.wait_event("DEVICE_DELETED", timeout=30)
        q.cmd("device_del", {"id": "dimm1"})
        # CPU last: QEMU 7.2.22 (TCG) was seen to abort ("corrupted
        # double-linked list") on a pc-dimm device_add after a CPU unplug
        q.cmd("device_add", {"driver": "qemu64-x86_64-cpu", "id": "cpu1", "socket-id": 0,
                             "core-id": 1, "thread-id": 0})
        time.sleep(3)
        q.cmd("query-hotpluggable-cpus")
        q.cmd("device_del", {"id": "cpu1"})
        q.wait_event("DEVICE_DELETED", timeout=10)
        q.cmd("system_powerdown")
        q.wait_event("POWERDOWN", timeout=5)
        q.save("qemu-guest-hotplug.txt")
    finally:
        q.kill()


def guest_refuses():
    if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
        print("no test guest in %s: guest-refuses scenario skipped" % GUEST)
        return
    q = Qemu(["-machine", "pc", "-m", "256M,slots=2,maxmem=1G"], guest=True,
             append="hp.refuse=memory")
    try:
        q.cmd("qmp_capabilities", {"enable": ["oob"]})
        if not q.wait_console("HOTPLUG-GUEST-READY", timeout=90):
            print("guest did not come up: guest-refuses scenario skipped")
            return
        q.cmd("object-add", {"qom-type": "memory-backend-ram", "id": "mem1", "size": 134217728})
        q.cmd("device_add", {"driver": "pc-dimm", "id": "dimm1", "memdev": "mem1"})
        time.sleep(3)
        q.cmd("device_del", {"id": "dimm1"})
        q.wait_event("DEVICE_UNPLUG_GUEST_ERROR", timeout=30)
        q.cmd("query-memory-devices")
        q.save("qemu-guest-refuses.txt")
    finally:
        q.kill()


def main():
    os.makedirs(OUT, exist_ok=True)
    for scenario in (paused, capabilities_error, memory, usb, schema, guest, guest_refuses):
        scenario()


if __name__ == "__main__":
    main()
