#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Capture the QMP answers a VM's PCI topology is built from, from real QEMU
(started with -S, killed at once), into tests/topology-captures.h for
tests/test-topology.c.  Usage: tests/capture-topology.py > tests/topology-captures.h
(HOTPLUG_QEMU_BINDIR chooses the QEMU, as for the rig)."""
import json, os, socket, subprocess, sys, tempfile, time

BINDIR = os.environ.get("HOTPLUG_QEMU_BINDIR")
# CAPTURE_SUFFIX names a second set (e.g. "_10" for QEMU 10 captures)
SUFFIX = os.environ.get("CAPTURE_SUFFIX", "")
RP = lambda n, a, extra="": ["-device", "pcie-root-port,id=rp%d,chassis=%d,bus=pcie.0,addr=0x%x%s" % (n, n, a, extra)]
CONFIGS = {
    "pc": ["qemu-system-x86_64", "-machine", "pc",
           "-device", "virtio-net-pci,id=nic0",
           "-device", "pci-bridge,id=br1,chassis_nr=1",
           "-device", "virtio-net-pci,id=nic1,bus=br1,addr=0x3"],
    "q35_acpi": ["qemu-system-x86_64", "-machine", "q35"] + RP(1, 0x10) + RP(2, 0x11) + RP(3, 0x12) +
                ["-device", "pcie-root-port,chassis=9,bus=pcie.0,addr=0x13",
                 "-device", "virtio-net-pci,id=nic0,bus=rp1"],
    "q35_native": ["qemu-system-x86_64", "-machine", "q35",
                   "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"] +
                  RP(1, 0x10) + RP(2, 0x11) + RP(3, 0x12, ",hotplug=off") +
                  ["-device", "virtio-net-pci,id=nic0,bus=rp2"],
    "virt": ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57"] + RP(1, 0x1) + RP(2, 0x2) +
            ["-device", "virtio-net-pci,id=nic0,bus=rp2"],
    "virt_acpi": ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57",
                  "-bios", "@FIRMWARE@"] + RP(1, 0x1),
    "pseries": ["qemu-system-ppc64", "-machine", "pseries", "-device", "virtio-net-pci,id=nic0"],
}

class Qmp:
    def __init__(self, argv):
        self.dir = tempfile.mkdtemp()
        sock = os.path.join(self.dir, "qmp")
        if BINDIR:
            argv = [os.path.join(BINDIR, argv[0])] + argv[1:]
        # any firmware file makes virt build its ACPI tables (and GED);
        # the VM never runs (-S)
        fw = os.path.join(self.dir, "firmware.fd")
        with open(fw, "wb") as f:
            f.write(b"\0" * 4096)
        argv = [fw if a == "@FIRMWARE@" else a for a in argv]
        self.p = subprocess.Popen(argv + ["-accel", "tcg", "-S", "-display", "none", "-nodefaults",
                                          "-qmp", "unix:%s,server=on,wait=off" % sock],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(sock)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities", None)
        self.log = []

    def cmd(self, name, args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\r\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" not in r:
                break
        if hasattr(self, "log"):
            self.log.append((name, json.dumps(args, separators=(",", ":")) if args else None,
                             json.dumps(r, separators=(",", ":"))))
        return r

    def close(self):
        self.p.kill()
        self.p.wait()

def qget(q, path, prop):
    return q.cmd("qom-get", {"path": path, "property": prop}).get("return")

def capture(argv):
    q = Qmp(argv)
    mtype = qget(q, "/machine", "type")
    q.cmd("query-pci", None)
    devices = []
    for base in ("/machine/peripheral", "/machine/peripheral-anon"):
        for e in q.cmd("qom-list", {"path": base}).get("return", []):
            if e["type"].startswith("child<"):
                devices.append(base + "/" + e["name"])
    acpi = qget(q, "/machine", "acpi-device")
    if mtype.startswith("virt"):
        q.cmd("qom-list", {"path": "/machine/unattached"})
    if acpi:
        qget(q, acpi, "acpi-pci-hotplug-with-bridge-support")
        qget(q, acpi, "acpi-root-pci-hotplug")
    for d in devices:
        qget(q, d, "parent_bus")
        qget(q, d, "addr")
        for e in q.cmd("qom-list", {"path": d}).get("return", []):
            if e["name"] in ("x-native-hotplug", "x-do-not-expose-native-hotplug-cap", "hotplug"):
                qget(q, d, e["name"])
    q.close()
    return mtype, q.log

def c_str(s):
    return "NULL" if s is None else json.dumps(s)

print("/* SPDX-License-Identifier: LGPL-2.1-or-later */")
print("/* QMP answers of real QEMU for the topology tests; made by")
print(" * tests/capture-topology.py: do not edit. */")
print("#pragma once\n")
print("#ifndef TOPOLOGY_CAPTURE_TYPE")
print("#define TOPOLOGY_CAPTURE_TYPE")
print("typedef struct { const char *cmd, *args, *reply; } TopologyCapture;")
print("#endif\n")
for name, argv in CONFIGS.items():
    mtype, log = capture(argv)
    print("/* %s */" % " ".join(argv))
    print("static const TopologyCapture topology_capture_%s%s[] = {" % (name, SUFFIX))
    for cmd, args, reply in log:
        print("    {%s, %s,\n     %s}," % (c_str(cmd), c_str(args), c_str(reply)))
    print("    {NULL, NULL, NULL},\n};\n")
