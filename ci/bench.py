#!/usr/bin/env python3
"""Benchmark portico against nginx, lighttpd, busybox httpd and Puma (issue 7).

Run through ci/bench.sh, which installs the servers and builds portico. Every server is
started fresh for every measurement, pinned to CPU 0 and put in a cgroup of its own (so
forked children, e.g. busybox's, are counted too); wrk runs pinned to CPU 1. Rounds
alternate between servers (the order rotates each round) so a slow patch of the shared
machine hits them all alike, and medians are reported. Figures never fail the run.
"""

import argparse
import hashlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SERVER_CPU, WRK_CPU = 0, 1
GLIBC = re.compile(r"/(ld-linux[^/]*|lib(c|m|pthread|dl|rt|util|resolv|anl|nss_[a-z]+)\.so[.\d]*)$")


def die(msg):
    sys.exit(f"bench: {msg}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- cgroup: CPU time and process list of everything a server runs -----------------------

def cgroup2_root():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2" and os.access(mnt, os.W_OK):
                return mnt
    return None


class Group:
    """A cgroup v2 directory, or (if none is writable) the process tree under one pid."""

    def __init__(self, root, name):
        self.path = os.path.join(root, name) if root else None
        self.pid = None
        if self.path:
            os.makedirs(self.path, exist_ok=True)

    def enter(self):  # runs in the child between fork and exec
        os.sched_setaffinity(0, {SERVER_CPU})
        os.setsid()
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    def pids(self):
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(p) for p in f.read().split()]
        tree, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            tree.append(p)
            try:
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return tree

    def cpu_seconds(self):
        if self.path:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                return int(f.readline().split()[1]) / 1e6  # usage_usec
        # Fallback: live processes plus the children they have reaped (auto-reaped ones are lost).
        tick, total = os.sysconf("SC_CLK_TCK"), 0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            except OSError:
                pass
        return total / tick

    def rss_kib(self, field="VmRSS:"):
        """Summed over the processes; field RssAnon: is the private part (file pages such
        as libc's are shared with every other process using them)."""
        total = 0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/status") as f:
                    total += next((int(l.split()[1]) for l in f if l.startswith(field)), 0)
            except OSError:
                pass
        return total

    def mapped_bytes(self):
        """Sizes of the distinct executable files (program + shared objects) the server has
        mapped, glibc's own libraries left out: what it costs on a device's flash."""
        files = set()
        for p in self.pids():
            try:
                with open(f"/proc/{p}/maps") as f:
                    for line in f:
                        parts = line.split(None, 5)
                        if len(parts) == 6 and parts[5].startswith("/") and "x" in parts[1]:
                            files.add(parts[5].strip())
            except OSError:
                pass
        return sum(os.path.getsize(f) for f in files if os.path.isfile(f) and not GLIBC.search(f))

    def kill(self):
        if self.path:
            with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                f.write("1")
            for _ in range(200):
                if not self.pids():
                    break
                time.sleep(0.01)
        elif self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self):
        if self.path:
            self.kill()
            os.rmdir(self.path)


# --- HTTP ---------------------------------------------------------------------------------

def http_get(port, path, timeout=5.0):
    """One HTTP/1.1 request; returns (seconds to first byte, status, header bytes, body)."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        first = s.recv(65536)
        ttfb = time.perf_counter() - t0
        data = first
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    if b"chunked" in head.lower():
        body = dechunk(body)
    return ttfb, status, len(head) + 4, body


def dechunk(b):
    out = b""
    while True:
        size_line, _, rest = b.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            return out
        out, b = out + rest[:n], rest[n + 2:]


def wait_ready(port, path, proc, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            return http_get(port, path)
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"no answer on port {port} within {deadline:.0f} s")


# --- servers ------------------------------------------------------------------------------

class Server:
    """One row of the table: how to start a server on a port, socket-activated or not."""

    def __init__(self, name, path, fairness, argv, activated=True, env=None, cold_argv=None,
                 expect=None):
        self.name, self.path, self.fairness = name, path, fairness
        self.argv, self.activated, self.env = argv, activated, env or {}
        self.cold_argv = cold_argv  # how it starts on demand, if not like argv
        self.expect = expect  # body bytes it must serve (None: any 200 will do)

    def command(self, port, cold=False):
        if cold and self.cold_argv:
            return self.cold_argv(port)
        argv = self.argv(port)
        if not self.activated:
            return argv
        envs = [a for k, v in self.env.items() for a in ("-E", f"{k}={v}")]
        return ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *envs, *argv]


def start(server, group, port, log, cold=False):
    proc = subprocess.Popen(server.command(port, cold), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=group.enter)
    group.pid = proc.pid
    return proc


def stop(proc, group):
    group.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_peer_configs(d, www):
    """Every peer tuned the way its docs advise for a small static file, access logs off."""
    os.makedirs(f"{d}/nginx", exist_ok=True)
    ext_types = "application/javascript js; text/css css; text/html html; image/svg+xml svg;"
    with open(f"{d}/nginx.conf.in", "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx/nginx.pid;
error_log {d}/nginx/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ {ext_types} }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    client_body_temp_path {d}/nginx/body;
    proxy_temp_path {d}/nginx/proxy;
    fastcgi_temp_path {d}/nginx/fastcgi;
    uwsgi_temp_path {d}/nginx/uwsgi;
    scgi_temp_path {d}/nginx/scgi;
    server {{ listen 127.0.0.1:@PORT@; root {www}; }}
}}
""")
    with open(f"{d}/lighttpd.conf.in", "w") as f:
        f.write(f"""server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = @PORT@
server.systemd-socket-activation = "enable"
server.errorlog = "{d}/lighttpd-error.log"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 65
server.modules = ()
mimetype.assign = (".js" => "application/javascript", ".css" => "text/css",
                   ".html" => "text/html", ".svg" => "image/svg+xml")
""")
    with open(f"{d}/config.ru", "w") as f:
        f.write("""# The tiny Rack app: the page's bytes read once at boot, served from memory like portico's.
body = File.binread(ENV.fetch("BENCH_FILE")).freeze
type = ENV.fetch("BENCH_TYPE")
run lambda { |_env| [200, { "content-type" => type, "content-length" => body.bytesize.to_s }, [body]] }
""")


def from_template(d, name, port):
    with open(f"{d}/{name}.conf.in") as f:
        text = f.read().replace("@PORT@", str(port))
    path = f"{d}/{name}-{port}.conf"
    with open(path, "w") as f:
        f.write(text)
    return path


def is_static(program):
    with open(shutil.which(program), "rb") as f:
        return b"ld-linux" not in f.read(4096)  # no ELF interpreter named up front


def servers(args, d, www, asset, asset_bytes, asset_type):
    portico = [args.portico, "--require-activation", *args.portico_args.split()]
    rows = [
        Server("portico", asset, "compiled-in asset; " + args.portico_note, lambda p: portico,
               expect=asset_bytes),
        Server("portico", "/api/status", "dynamic JSON", lambda p: portico),
        Server("portico", "/", "dynamic status page", lambda p: portico),
        Server("nginx", asset,
               "1 worker (+ idle master); open_file_cache on; sendfile on; access_log off; "
               "keepalive_requests 1e6; socket via NGINX=3",
               lambda p: ["nginx", "-e", f"{d}/nginx/error.log", "-c", from_template(d, "nginx", p)],
               env={"NGINX": "3;"}, expect=asset_bytes),
        Server("lighttpd", asset,
               "1 process (default); no modules, so no access log; sendfile (default backend); "
               "max-keep-alive-requests 1e6; systemd-socket-activation",
               lambda p: ["lighttpd", "-D", "-f", from_template(d, "lighttpd", p)],
               expect=asset_bytes),
        Server("busybox", asset,
               "httpd -f: a fork per connection, no keep-alive (busybox has none); "
               "cold start in inetd mode (-i, one process per connection)"
               + ("; a static build (busybox-static), so its size includes libc" if is_static("busybox") else ""),
               lambda p: ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{p}", "-h", www],
               activated=False,
               cold_argv=lambda p: ["systemd-socket-activate", "--inetd", "-a", "-l",
                                    f"127.0.0.1:{p}", "busybox", "httpd", "-i", "-h", www],
               expect=asset_bytes),
        Server("puma", asset,
               "single mode (-w 0), 1 thread (-t 1:1), production env (no request log); "
               "body from memory; socket via LISTEN_FDS + matching -b",
               lambda p: ["puma", "-q", "-e", "production", "-w", "0", "-t", "1:1",
                          "-b", f"tcp://127.0.0.1:{p}", f"{d}/config.ru"],
               env={"BENCH_FILE": f"{www}{asset}", "BENCH_TYPE": asset_type},
               expect=asset_bytes),
    ]
    # --only portico/assets lighttpd: rows whose name+path starts with one of the words.
    return [r for r in rows if not args.only or any((r.name + r.path).startswith(o) for o in args.only)]


# --- measurements -------------------------------------------------------------------------

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out):
    def lat(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * UNIT[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in", out)
    # "Socket errors: connect 0, read 0, write 0, timeout 11" and the non-2xx count.
    errors = {k: int(n) for k, n in re.findall(r"(connect|read|write|timeout) (\d+)", out)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(m.group(1)) if m else 0,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": lat(50), "p99": lat(99),
            "errors": dict(errors, **{"non-2xx": int(non2xx.group(1)) if non2xx else 0})}


def perf_events():
    """The perf counters that work here: instructions need hardware counters (often absent
    in a VM), the syscall tracepoint needs tracefs."""
    works = []
    for event in ("instructions", "raw_syscalls:sys_enter"):
        try:
            r = subprocess.run(["perf", "stat", "-x,", "-e", event, "true"],
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and re.search(rf"^\d+,,{re.escape(event)},", r.stderr, re.M):
            works.append(event)
    return works


def core_busy():
    """Busy seconds of each CPU so far, steal included (time this VM's core was not ours)."""
    tick, busy = os.sysconf("SC_CLK_TCK"), {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                busy[int(m.group(1))] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
    return busy


def run_wrk(port, path, seconds, group, events):
    """wrk on CPU 1 against a running server: wrk's figures, the server's CPU time and
    peak RSS, each core's busy time, wrk's own CPU time, and perf counts of `events`."""
    url = f"http://127.0.0.1:{port}{path}"
    cmd = ["taskset", "-c", str(WRK_CPU), "wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", url]
    perf = None
    if events:
        pids = ",".join(map(str, group.pids()))
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(events), "-p", pids],
                                stderr=subprocess.PIPE, text=True)
    cpu0, busy0, t = group.cpu_seconds(), core_busy(), os.times()
    wrk_cpu0 = t.children_user + t.children_system
    t0 = time.monotonic()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rss = 0
    while wrk.poll() is None:
        time.sleep(0.25)
        rss = max(rss, group.rss_kib())
    wall = time.monotonic() - t0
    t = os.times()
    wrk_cpu = t.children_user + t.children_system - wrk_cpu0  # wrk is reaped by now
    cpu = group.cpu_seconds() - cpu0
    busy = {c: b - busy0[c] for c, b in core_busy().items()}
    out = wrk.stdout.read()
    counts = {}
    if perf:
        perf.send_signal(signal.SIGINT)
        err = perf.communicate(timeout=10)[1]
        counts = {e: int(n) for n, e in re.findall(r"^(\d+),,([^,]+),", err, re.M)}
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.strip()[-300:]}")
    r = parse_wrk(out)
    r.update(cpu=cpu, wall=wall, rss_load=rss, wrk_cpu=wrk_cpu, counts=counts,
             core0=busy[SERVER_CPU], core1=busy[WRK_CPU])
    return r


def per_request(r, event):
    n = r["counts"].get(event)
    return n / r["requests"] if n is not None and r["requests"] else None


def measure_load(server, seconds, warm, events, cg_root, log):
    port = free_port()
    group = Group(cg_root, f"{server.name}-{port}")
    proc = start(server, group, port, log)
    try:
        _, status, head, body = wait_ready(port, server.path, proc)
        if status != 200 or (server.expect is not None and body != server.expect):
            raise RuntimeError(f"{server.path} gave status {status}, {len(body)} body bytes "
                               f"(sha256 {hashlib.sha256(body).hexdigest()[:12]}), not the page")
        time.sleep(0.3)
        idle, anon = group.rss_kib(), group.rss_kib("RssAnon:")
        exe = group.mapped_bytes()
        # The syscall tracepoint costs a little on every syscall: count it in the warm-up only.
        syscalls = None
        if warm:
            w = run_wrk(port, server.path, warm, group, [e for e in events if e.startswith("raw_")])
            syscalls = per_request(w, "raw_syscalls:sys_enter")
        r = run_wrk(port, server.path, seconds, group, [e for e in events if e == "instructions"])
        r.update(instr_req=per_request(r, "instructions"), syscalls_req=syscalls, idle=idle, anon=anon,
                 exe=exe, head=head, body=len(body))
        return r
    finally:
        stop(proc, group)
        group.remove()


def measure_cold(server, cg_root, log):
    """Time from connect to the first response byte, the server started by that connection."""
    port = free_port()
    group = Group(cg_root, f"{server.name}-cold-{port}")
    proc = start(server, group, port, log, cold=True)
    try:
        time.sleep(0.05)  # let systemd-socket-activate bind; it starts nothing until we connect
        for _ in range(100):
            try:
                ttfb, status, _, _ = http_get(port, server.path, timeout=30)
                break
            except ConnectionRefusedError:
                time.sleep(0.02)
        else:
            raise RuntimeError("systemd-socket-activate never listened")
        if status != 200:
            raise RuntimeError(f"cold start answered status {status}")
        return ttfb
    finally:
        stop(proc, group)
        group.remove()


# --- report -------------------------------------------------------------------------------

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, unit="", digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}{unit}"


def ratio(v, base):
    return f" ({v / base:.2f}×)" if v is not None and base else ""


def limiting(s):
    """Which core ran out: the server's, wrk's, or one that other work on this shared
    machine took (core busy time not spent by the server or wrk; steal included)."""
    srv, gen = s["cpu"] / s["wall"], s["wrk_cpu"] / s["wall"]
    other0 = max(0.0, s["core0"] / s["wall"] - srv)
    other1 = max(0.0, s["core1"] / s["wall"] - gen)
    if srv >= 0.9:
        return f"server CPU ({srv:.0%} of its core)"
    if gen >= 0.9:
        return f"wrk ({gen:.0%} of its core; server {srv:.0%})"
    if srv + other0 >= 0.9 or gen + other1 >= 0.9:
        return (f"other work on the shared cores (server {srv:.0%} + others {other0:.0%}; "
                f"wrk {gen:.0%} + others {other1:.0%})")
    return f"neither core full (server {srv:.0%}, wrk {gen:.0%}): waits"


def targets(args, portico, lighttpd):
    if lighttpd is None:
        return ["- lighttpd was not run."]
    checks = [
        ("CPU time per request ≤ 0.95× lighttpd's", portico["us_req"], 0.95 * lighttpd["us_req"], "µs", 2, True),
        ("req/s ≥ lighttpd's", portico["rps"], lighttpd["rps"], "", 0, False),
        ("p99 ≤ lighttpd's", portico["p99"], lighttpd["p99"], " ms", 3, True),
        ("idle RSS ≤ lighttpd's", portico["idle"], lighttpd["idle"], " KiB", 0, True),
        ("cold start TTFB ≤ lighttpd's", portico["cold"], lighttpd["cold"], " ms", 2, True),
    ]
    out = []
    for what, got, limit, unit, digits, at_most in checks:
        met = got <= limit if at_most else got >= limit
        out.append(f"- {what}: {fmt(got, unit, digits)} against {fmt(limit, unit, digits)}: "
                   f"{'met' if met else 'MISSED'}")
    arm = args.aarch64_binary
    if arm and os.path.isfile(arm):
        size = os.path.getsize(arm)
        out.append(f"- aarch64 binary ≤ 1 MiB: {size:,} B ({arm}): {'met' if size <= 1 << 20 else 'MISSED'}")
    else:
        out.append("- aarch64 binary ≤ 1 MiB: not built before this run (see the cross-compile section)")
    return out


def machine_facts():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    osr = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME")), "?")
    return f"{cpu}, {os.cpu_count()} CPUs, {mem} MiB, {osr}, Linux {platform.release()}"


def versions(args):
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return "; ".join([out([args.portico, "--version"]), out(["nginx", "-v"]).replace("nginx version: ", ""),
                      out(["lighttpd", "-v"]).split(" (")[0], out(["busybox"]).split(" multi")[0],
                      out(["puma", "--version"]) + " on " + out(["ruby", "-v"]).split(" (")[0],
                      "wrk " + out(["wrk", "-v"]).split()[1]])


def report(args, results, load_before, load_after, events, cg_root, elapsed):
    base = results[0]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{args.command}` at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.rounds} rounds of `wrk -t1 -c50 -d{args.seconds}s --latency` per row "
        f"(medians; rounds alternate between servers), {args.cold_reps} cold starts per row, "
        f"{elapsed:.0f} s in all.",
        "",
        f"- Machine: {machine_facts()}.",
        f"- Load average before / after: {load_before} / {load_after}. " + args.machine_note,
        f"- Versions: {versions(args)}.",
        "- Server pinned to CPU 0 (taskset, its children too), wrk to CPU 1; keep-alive except busybox.",
        "",
        "Ratios in brackets are the row's figure ÷ portico's on the static page (first row).",
        "",
        "| server | path | req/s | p50 ms | p99 ms | CPU µs/req | instr/req | syscalls/req | "
        "idle RSS KiB (anon) | RSS under load KiB | executable + non-libc libs | cold start TTFB ms | limited by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in results:
        lines.append(
            f"| {s['name']} | `{s['path']}` | {fmt(s['rps'])}{ratio(s['rps'], base['rps'])} "
            f"| {fmt(s['p50'], '', 3)} | {fmt(s['p99'], '', 3)}{ratio(s['p99'], base['p99'])} "
            f"| {fmt(s['us_req'], '', 2)}{ratio(s['us_req'], base['us_req'])} "
            f"| {fmt(s['instr_req'])}{ratio(s['instr_req'], base['instr_req'])} "
            f"| {fmt(s['syscalls_req'], '', 2)} "
            f"| {fmt(s['idle'])}{ratio(s['idle'], base['idle'])} ({fmt(s['anon'])}) "
            f"| {fmt(s['rss_load'])}{ratio(s['rss_load'], base['rss_load'])} "
            f"| {fmt(s['exe'] / 1024)} KiB{ratio(s['exe'], base['exe'])} "
            f"| {fmt(s['cold'], '', 2)}{ratio(s['cold'], base['cold'])} | {s['limit']} |")
    lines += ["", "Issue 7's targets for portico on the static page, against lighttpd on this run:", ""]
    lines += targets(args, base, next((r for r in results if r["name"] == "lighttpd"), None))
    lines += ["", "How each server was set up (the same bytes served by all, checked before each run):", ""]
    for s in results:
        lines.append(f"- {s['name']} `{s['path']}`: {s['fairness']}; response headers {s['head']} B, "
                     f"body {s['body']} B" + (f"; wrk counted {s['errors']} over its runs" if s['errors'] else "") + ".")
    lines += [
        "",
        "How the figures are taken:",
        "",
        "- CPU µs/req: the server's CPU time over the wrk run (user + system, all its processes, "
        + ("from its own cgroup's cpu.stat, so forked and reaped children count" if cg_root else
           "from /proc utime+stime+cutime+cstime of its process tree")
        + ") ÷ requests served. Lower is better; it ranks servers that all saturate wrk.",
        "- instr/req: " + ("`perf stat -e instructions` on the server's processes ÷ requests."
                           if "instructions" in events else "n/a: `perf stat -e instructions` is "
                           "not supported here (no hardware counters in this VM)."),
        "- syscalls/req: " + ("`perf stat -e raw_syscalls:sys_enter` on the server's processes "
                              "during the warm-up run ÷ its requests (busybox's forked children "
                              "are counted as they exit)." if "raw_syscalls:sys_enter" in events
                              else "n/a: the syscall tracepoint is not available here."),
        "- idle RSS: VmRSS summed over the server's processes, after start and one request "
        "(in brackets its private part, RssAnon: the rest is file pages shared system-wide); "
        "under load: the highest such sum sampled every 0.25 s during the run.",
        "- executable + non-libc libs: distinct executable files the running server has mapped "
        "(program, shared libraries, loaded modules) without glibc's own; Ruby's .rb sources "
        "are not counted for Puma.",
        "- cold start: connect to first response byte, the server started by that connection "
        "under `systemd-socket-activate` (busybox: `--inetd -a`, httpd -i); page cache warm.",
        "- limited by: a core at ≥ 90 % busy over the run: the server's CPU time or wrk's ÷ wall "
        "time; \"others\" is the rest of that core's busy time in /proc/stat (steal included): "
        "other work on a shared machine.",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portico", required=True)
    ap.add_argument("--portico-args", default="", help="extra flags, as in the unit's ExecStart")
    ap.add_argument("--portico-note", default="default runtime settings")
    ap.add_argument("--asset", required=True, help="URL path of portico's asset")
    ap.add_argument("--asset-file", required=True, help="the same bytes, for the peers")
    ap.add_argument("--aarch64-binary", help="a cross-built portico, for the size target")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--cold-reps", type=int, default=10)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--machine-note", default="")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    if os.cpu_count() < 2:
        die("needs 2 CPUs: one for the server, one for wrk")
    d = tempfile.mkdtemp(prefix="portico-bench-", dir=args.workdir)
    os.chmod(d, 0o755)  # nginx's worker runs as nobody and reads www/ under it
    www = f"{d}/www"
    dest = f"{www}{args.asset}"
    os.makedirs(os.path.dirname(dest))
    shutil.copyfile(args.asset_file, dest)
    for root, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
    asset_bytes = open(dest, "rb").read()
    asset_type = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                  ".html": "text/html"}.get(os.path.splitext(dest)[1], "application/octet-stream")
    write_peer_configs(d, www)

    root = cgroup2_root()
    cg_root = None
    if root:
        cg_root = os.path.join(root, f"portico-bench-{os.getpid()}")
        try:
            os.makedirs(cg_root)
        except OSError:
            cg_root = None
    events = perf_events()
    rows = servers(args, d, www, args.asset, asset_bytes, asset_type)
    log = open(f"{d}/servers.log", "w")
    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    t_start = time.monotonic()
    runs = {i: [] for i in range(len(rows))}
    colds = {i: [] for i in range(len(rows))}
    try:
        for rnd in range(args.rounds):
            order = list(range(len(rows)))
            order = order[rnd % len(order):] + order[:rnd % len(order)]
            for i in order:
                s = rows[i]
                r = measure_load(s, args.seconds, args.warm, events, cg_root, log)
                runs[i].append(r)
                print(f"  round {rnd + 1}/{args.rounds} {s.name:8} {s.path:24} {r['rps']:>9,.0f} req/s  "
                      f"p99 {fmt(r['p99'], ' ms', 3):>10}  {r['cpu'] * 1e6 / max(r['requests'], 1):6.2f} µs/req",
                      flush=True)
        for rep in range(args.cold_reps):
            for i, s in enumerate(rows):
                colds[i].append(measure_cold(s, cg_root, log))
    except RuntimeError as e:
        log.flush()
        tail = open(f"{d}/servers.log").read()[-2000:]
        die(f"{s.name} {s.path}: {e}\n--- server output ---\n{tail}")
    finally:
        if cg_root:
            for sub in os.listdir(cg_root) if os.path.isdir(cg_root) else []:
                p = os.path.join(cg_root, sub)
                if os.path.isdir(p):
                    Group(cg_root, sub).remove()
            os.rmdir(cg_root)
    load_after = " ".join(open("/proc/loadavg").read().split()[:3])

    results = []
    for i, s in enumerate(rows):
        rs = runs[i]
        for r in rs:
            r["us_req"] = r["cpu"] * 1e6 / r["requests"] if r["requests"] else None
        summary = {k: med(rs, k) for k in ("rps", "p50", "p99", "us_req", "instr_req", "syscalls_req", "idle", "anon",
                                           "rss_load", "exe", "cpu", "wall", "wrk_cpu", "core0", "core1")}
        summary.update(name=s.name, path=s.path, fairness=s.fairness, head=rs[-1]["head"],
                       body=rs[-1]["body"], cold=statistics.median(colds[i]) * 1e3,
                       errors=", ".join(f"{k} errors {n}" for k in ("connect", "read", "write", "timeout", "non-2xx")
                                        if (n := sum(r["errors"].get(k, 0) for r in rs))))
        summary["limit"] = limiting(summary)
        results.append(summary)
    text = report(args, results, load_before, load_after, events, cg_root,
                  time.monotonic() - t_start)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
