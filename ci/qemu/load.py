#!/usr/bin/env python3
"""Client load for the QEMU tests: GET PATH on 127.0.0.1:PORT until STOPFILE exists or
--max-seconds pass, then one JSON line of results, one object per stream:

  close      one new connection per request, one request at a time, about 50 a second at
             most: every request goes through the listening socket that systemd holds.
  keepalive  --keepalive N connections, each reused for request after request (HTTP/1.1
             keep-alive), as a browser or a monitoring agent does.
  tls        with --tls-port P: like close, over HTTPS to 127.0.0.1:P (a new TLS connection
             per request, the certificate not verified: the device's own is self-signed).
  burst      with --burst N: every --burst-every seconds, N clients at once, one request each
             on a new connection (what trips systemd's socket trigger limit).

Every request gets one of these outcomes:
  ok         HTTP 200; "waited" counts those that took 1 s or more (queued in the backlog).
  refused    the connection closed or was reset before any byte of a response: a client
             sees the port closed (through QEMU's user networking a closed guest port looks
             like this), or a process that had accepted it died.
  timeout    no answer within --timeout seconds: the client waited and gave up.
             "timeout_host" counts those that never got past QEMU's user networking on
             the host: not connected, or the request never acknowledged. Its forwarded
             port listens with a backlog of 1 (`ss -ltn`); a burst overflows it, the host
             kernel answers with SYN cookies, and a connection the listener then drops
             stays open on the client's side only. Not the guest's doing.
  status     an answer other than 200.
  error      anything else (a torn response).
failed = refused + timeout + status + error. On a keep-alive connection that was already
used, an orderly close before any response byte (EOF: the server closed it while idle) is
the one case an HTTP client retries an idempotent GET on a fresh connection (RFC 9112
9.3.1): that counts as a retry, and the retried request gets its own outcome. A response
with "Connection: close" makes the next request open a new connection (a reconnect).
"longest_stall_ms" is the longest time between two successes in a stream (or from the
start to the first one): the pause a client saw. A request in flight when STOPFILE appears
still finishes (or times out).
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import struct
import threading
import time

p = argparse.ArgumentParser(description="client load for ci/qemu-test.sh")
p.add_argument("port", type=int)
p.add_argument("stopfile")
p.add_argument("--max-seconds", type=float, default=600)
p.add_argument("--path", default="/healthz")
p.add_argument("--timeout", type=float, default=20, help="seconds a client waits for an answer")
p.add_argument("--keepalive", type=int, default=0, help="keep-alive connections")
p.add_argument("--tls-port", type=int, default=0, help="also a TLS stream to this port")
p.add_argument("--burst", type=int, default=0, help="clients per burst")
p.add_argument("--burst-every", type=float, default=5)
args = p.parse_args()

START = time.monotonic()
lock = threading.Lock()


class Stream:
    def __init__(self):
        self.n = {"ok": 0, "waited": 0, "refused": 0, "timeout": 0, "timeout_host": 0,
                  "status": 0, "error": 0, "retries": 0, "reconnects": 0}
        self.stall = self.max_latency = 0.0
        self.last_ok = START
        self.errors = []

    def tally(self, key):
        with lock:
            self.n[key] += 1

    def count(self, outcome, t0, detail=""):
        now = time.monotonic()
        with lock:
            self.n[outcome] += 1
            if outcome == "ok":
                self.max_latency = max(self.max_latency, now - t0)
                self.n["waited"] += now - t0 >= 1.0
                self.stall = max(self.stall, now - self.last_ok)
                self.last_ok = now
            elif len(self.errors) < 5:  # keep the first few to explain them
                self.errors.append(f"{t0 - START:.2f}s: {outcome}: {detail}")

    def result(self):
        n = self.n
        failed = n["refused"] + n["timeout"] + n["status"] + n["error"]
        return dict(n, requests=n["ok"] + failed, failed=failed,
                    longest_stall_ms=round(self.stall * 1000, 1),
                    max_latency_ms=round(self.max_latency * 1000, 1), errors=self.errors)


def stopped():
    return os.path.exists(args.stopfile) or time.monotonic() - START >= args.max_seconds


def get(conn, headers):
    """One GET on conn -> (status, keep_open)."""
    conn.request("GET", args.path, headers=headers)
    r = conn.getresponse()
    r.read()
    return r.status, not r.will_close


def request(stream, conn, headers):
    """One request with its outcome counted; returns whether conn stays open for the next."""
    t0 = time.monotonic()
    reused = conn.sock is not None
    try:
        try:
            status, keep = get(conn, headers)
        except http.client.RemoteDisconnected:
            if not reused:
                raise
            conn.close()  # closed while idle: retry once, on a fresh connection
            stream.tally("retries")
            status, keep = get(conn, headers)
    except (http.client.RemoteDisconnected, ConnectionResetError, ConnectionRefusedError,
            BrokenPipeError) as e:
        stream.count("refused", t0, f"{type(e).__name__}: {e}")
        conn.close()
        return False
    except TimeoutError:
        if conn.sock is None:
            stage = "connecting"
        elif unacked(conn.sock):
            stage = "with its request unacknowledged on the host"
        else:
            stage = "waiting for an answer"
        if stage != "waiting for an answer":
            stream.tally("timeout_host")
        stream.count("timeout", t0, f"{args.timeout:g} s {stage}")
        conn.close()
        return False
    except Exception as e:  # every failure counts
        stream.count("error", t0, f"{type(e).__name__}: {e}")
        conn.close()
        return False
    if status != 200:
        stream.count("status", t0, f"HTTP {status}")
    else:
        stream.count("ok", t0)
    if not keep:
        conn.close()
        if "Connection" not in headers:
            stream.tally("reconnects")  # the server ended a keep-alive connection
    return keep


def unacked(sock):
    """Segments sent on sock that the peer has not acknowledged (tcp_info.tcpi_unacked)."""
    try:
        return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 24)[0]
    except OSError:
        return 0


TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def new_conn():
    return http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)


def new_tls_conn():
    return http.client.HTTPSConnection("127.0.0.1", args.tls_port, timeout=args.timeout, context=TLS)


def close_stream(stream, connect=new_conn):
    while not stopped():
        ok = request(stream, connect(), {"Connection": "close"})
        time.sleep(0.02 if ok else 0.05)  # steady, not flooding: the guest is emulated


def keepalive_stream(stream):
    conn = new_conn()
    while not stopped():
        request(stream, conn, {})
        time.sleep(0.02)
    conn.close()


def bursts(stream):
    clients = []
    while not stopped():
        for _ in range(args.burst):
            t = threading.Thread(target=request, args=(stream, new_conn(), {"Connection": "close"}))
            t.start()
            clients.append(t)
        deadline = time.monotonic() + args.burst_every
        while not stopped() and time.monotonic() < deadline:
            time.sleep(0.05)
    for t in clients:
        t.join()


streams = {"close": Stream()}
threads = [threading.Thread(target=close_stream, args=(streams["close"],))]
for i in range(args.keepalive):
    streams.setdefault("keepalive", Stream())
    threads.append(threading.Thread(target=keepalive_stream, args=(streams["keepalive"],)))
if args.tls_port:
    streams["tls"] = Stream()
    threads.append(threading.Thread(target=close_stream, args=(streams["tls"], new_tls_conn)))
if args.burst:
    streams["burst"] = Stream()
    threads.append(threading.Thread(target=bursts, args=(streams["burst"],)))
for t in threads:
    t.start()
for t in threads:
    t.join()
out = {name: s.result() for name, s in streams.items()}
out["seconds"] = round(time.monotonic() - START, 2)
print(json.dumps(out))
