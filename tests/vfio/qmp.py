#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# One QMP command on a QEMU monitor socket (the nested VFIO rig's tests use a
# second monitor of each L2 QEMU, beside the one hotplugd holds).
#   qmp.py SOCKET COMMAND [ARGUMENTS-JSON]   prints the return value as JSON
import json
import socket
import sys

s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rwb")


def recv():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m


recv()  # greeting
f.write(b'{"execute": "qmp_capabilities"}\r\n')
f.flush()
recv()
cmd = {"execute": sys.argv[2]}
if len(sys.argv) > 3:
    cmd["arguments"] = json.loads(sys.argv[3])
f.write(json.dumps(cmd).encode() + b"\r\n")
f.flush()
r = recv()
if "error" in r:
    print(json.dumps(r["error"]), file=sys.stderr)
    sys.exit(1)
print(json.dumps(r["return"]))
