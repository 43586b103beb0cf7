#!/usr/bin/env python3
"""Steady request stream for the QEMU tests: GET PATH on 127.0.0.1:PORT, one new connection
per request (so every request goes through the listening socket that systemd holds), about
50 a second at most, until STOPFILE exists or MAXSECONDS pass. Prints one JSON line of results.

A request fails on a connection error, a timeout, or any status other than 200.
"longest_stall_ms" is the longest time between two consecutive successful responses (or
from the start to the first one): what a client of the device would have seen as a pause.

usage: load.py PORT STOPFILE [MAXSECONDS] [PATH]
"""
import json
import os
import socket
import sys
import time

port, stopfile = int(sys.argv[1]), sys.argv[2]
maxsec = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
path = sys.argv[4] if len(sys.argv) > 4 else "/healthz"
req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()


def one():
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(req)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = data.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"status line {status[:60]!r}")


start = last_ok = time.monotonic()
ok = failed = 0
stall = max_latency = 0.0
errors = []
while not os.path.exists(stopfile) and time.monotonic() - start < maxsec:
    t = time.monotonic()
    try:
        one()
    except Exception as e:  # every failure counts; keep the first few to explain them
        failed += 1
        if len(errors) < 5:
            errors.append(f"{t - start:.2f}s: {type(e).__name__}: {e}")
        time.sleep(0.05)
        continue
    now = time.monotonic()
    ok += 1
    max_latency = max(max_latency, now - t)
    stall = max(stall, now - last_ok)
    last_ok = now
    time.sleep(0.02)  # steady, not flooding: the guest is emulated on 2 shared cores

print(json.dumps({
    "requests": ok + failed, "ok": ok, "failed": failed,
    "seconds": round(time.monotonic() - start, 2),
    "longest_stall_ms": round(stall * 1000, 1), "max_latency_ms": round(max_latency * 1000, 1),
    "errors": errors,
}))
