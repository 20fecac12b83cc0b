#!/usr/bin/env python3
"""Soak: Sluice under mixed load while its servers fail and its configuration is reloaded.

  python3 bench/soak.py --sluice .build/release/sluice --seconds 1800

Load, all at once for the whole run:
  keepalive  wrk -c20 over kept-alive connections, in 10 s chunks;
  churn      two clients opening a new connection per request (Connection: close);
  idle       --idle connections held open through a second frontend, replaced when their server dies;
  bulk       an iperf3 stream at 1 Gbit/s through a third frontend (spliced), 10 s at a time, both ways.
Faults, one every --fault-interval seconds, in turn, on a server picked at random:
  kill       SIGKILL, restarted 3 s later;      freeze   SIGSTOP, SIGCONT 3 s later;
  drain      'set server … state drain', ready 3 s later (runtime API);
  reload     SIGHUP with the configuration rewritten, a fourth server added or removed.
Three nginx servers (one process each, so that a signal reaches the whole server) and a fourth one
that reloads add and remove; HTTP checks every 200 ms, fall 2.

Pass (exit 0) when:
  - no request failed outside the window of a kill or freeze (from the fault to the server's
    detection by its checks, plus `timeout server`): drains and reloads must lose nothing, and a
    dead server must not be chosen once it is known dead;
  - Sluice's open descriptors and resident memory are flat after warm-up: the least-squares slope
    over the last 80 % of the run, per hour, is reported, and their growth over that part is under
    10 % (or 50 descriptors / 4 MiB, whichever is larger);
  - once the clients have gone, Sluice holds no session within 5 s (nothing stuck past its timeouts).
Failures inside kill/freeze windows are reported: those are sessions on a server that died or froze
under them, which no balancer can keep.
"""
import argparse, json, os, random, re, select, signal, socket, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(__file__))
from bulk import free_port, wait_listening, machine_info, write_results  # noqa: E402
from small import parse_wrk  # noqa: E402
from checks import ask  # noqa: E402

NGINX = """worker_processes 1;
master_process off;
daemon off;
pid {dir}/{name}.pid;
error_log {dir}/{name}.err warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {dir}/www; }}
}}
"""

SLUICE = """global
  stats socket {dir}/admin.sock level admin
  maxconn 20000
defaults
  mode tcp
  timeout connect 500ms
  timeout client 1h
  timeout server {server_timeout}s
  timeout queue 2s
  retries 3
  option redispatch
frontend web
  bind 127.0.0.1:{web}
  default_backend app
frontend idle
  bind 127.0.0.1:{idle}
  default_backend hold
frontend bulk
  bind 127.0.0.1:{bulk}
  default_backend bulk
backend app
  option httpchk GET /1k
  timeout check 500ms
  default-server check inter 200ms fall 2 rise 2
{servers}
backend hold
  timeout server 1h
{held}
backend bulk
  timeout server 1h
  server iperf 127.0.0.1:{iperf}
"""

SERVER_TIMEOUT = 2


class Backends:
    """The nginx servers: started, killed, frozen, restarted by name."""

    def __init__(self, work, names):
        self.work, self.procs, self.ports = work, {}, {}
        os.makedirs(f"{work}/www", exist_ok=True)
        os.makedirs(f"{work}/tmp", exist_ok=True)
        os.chmod(work, 0o755)
        with open(f"{work}/www/1k", "w") as f:
            f.write("x" * 1023 + "\n")
        for name in names:
            self.ports[name] = free_port()
            with open(f"{work}/{name}.conf", "w") as f:
                f.write(NGINX.format(dir=work, name=name, port=self.ports[name]))
            self.start(name)

    def start(self, name):
        self.procs[name] = subprocess.Popen(["nginx", "-c", f"{self.work}/{name}.conf"], stderr=subprocess.DEVNULL)
        wait_listening(self.ports[name], self.procs[name])

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait()

    def stop(self):
        for p in self.procs.values():
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


def sluice_config(work, web, idle, bulk, iperf, ports, with_fourth):
    names = ["s1", "s2", "s3"] + (["s4"] if with_fourth else [])
    servers = "\n".join(f"  server {n} 127.0.0.1:{ports[n]}" for n in names)
    held = "\n".join(f"  server {n} 127.0.0.1:{ports[n]}" for n in ["s1", "s2", "s3"])
    with open(f"{work}/sluice.cfg", "w") as f:
        f.write(SLUICE.format(dir=work, web=web, idle=idle, bulk=bulk, iperf=iperf, servers=servers, held=held, server_timeout=SERVER_TIMEOUT))


class Record:
    """What the load saw: (time, kind, ok) per churn request, wrk chunks, faults, samples."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []      # (t, ok, reason)
        self.chunks = []        # (t0, t1, requests, errors)
        self.bulk = []          # (t0, t1, gigabytes, ok)
        self.faults = []        # (t0, t1, kind, server)
        self.samples = []       # (t, fds, rss_kib, pipes, sessions)
        self.idle_replaced = 0


def churn(port, stop, record):
    request = b"GET /1k HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        t = time.time()
        ok, reason = False, ""
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.settimeout(10)
            c.sendall(request)
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            c.close()
            ok = data.startswith(b"HTTP/1.1 200") and data.endswith(b"x\n")
            reason = "" if ok else f"answer of {len(data)} bytes"
        except OSError as e:
            reason = type(e).__name__
        with record.lock:
            record.requests.append((t, ok, reason))


def keepalive(port, stop, record):
    while not stop.is_set():
        t0 = time.time()
        out = subprocess.run(["wrk", "-t1", "-c20", "-d10s", f"http://127.0.0.1:{port}/1k"], capture_output=True, text=True).stdout
        try:
            result = parse_wrk(out)
        except AttributeError:
            continue
        with record.lock:
            record.chunks.append((t0, time.time(), result["requests"], result["errors"]))


def bulk(port, stop, record):
    reverse = False
    while not stop.is_set():
        t0 = time.time()
        done = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "10", "-b", "1G", "-J"] + (["-R"] if reverse else []),
                              capture_output=True, text=True)
        reverse = not reverse
        try:
            gigabytes = json.loads(done.stdout)["end"]["sum_received"]["bytes"] / 1e9
        except (ValueError, KeyError):
            gigabytes = 0.0
        with record.lock:
            record.bulk.append((t0, time.time(), gigabytes, done.returncode == 0))


def holders(port, count, stop, record):
    held = []

    def connect():
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            pass
    for _ in range(count):
        connect()
    while not stop.is_set():
        readable, _, _ = select.select(held, [], [], 1.0) if held else ([], [], [])
        for s in readable:  # EOF: its server went away; hold another one
            held.remove(s)
            s.close()
            with record.lock:
                record.idle_replaced += 1
        while len(held) < count and not stop.is_set():
            connect()
    for s in held:
        s.close()


def sampler(pid, sock, stop, record):
    while not stop.is_set():
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            info = ask(sock, "show info")
            pipes = int(re.search(r"PipesUsed: (\d+)", info).group(1))
            sessions = int(re.search(r"CurrConns: (\d+)", info).group(1))
            with record.lock:
                record.samples.append((time.time(), fds, rss, pipes, sessions))
        except (OSError, AttributeError):
            pass
        stop.wait(1.0)


def slope_per_hour(points):
    """Least-squares slope of (t, v), per hour."""
    if len(points) < 3:
        return 0.0
    ts = [p[0] for p in points]
    vs = [p[1] for p in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / den * 3600


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--fault-interval", type=float, default=4.0)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sluice-soak-")
    backends = Backends(work, ["s1", "s2", "s3", "s4"])
    web, idle, bulk_port, iperf_port = free_port(), free_port(), free_port(), free_port()
    iperf = subprocess.Popen(["iperf3", "-s", "-p", str(iperf_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(iperf_port, iperf)
    with_fourth = False
    sluice_config(work, web, idle, bulk_port, iperf_port, backends.ports, with_fourth)
    sluice = subprocess.Popen([args.sluice, "-q", "-f", f"{work}/sluice.cfg"], stderr=open(f"{work}/sluice.err", "w"))
    wait_listening(web, sluice)
    sock = f"{work}/admin.sock"
    record, stop = Record(), threading.Event()
    threads = [threading.Thread(target=keepalive, args=(web, stop, record)),
               threading.Thread(target=churn, args=(web, stop, record)),
               threading.Thread(target=churn, args=(web, stop, record)),
               threading.Thread(target=holders, args=(idle, args.idle, stop, record)),
               threading.Thread(target=bulk, args=(bulk_port, stop, record)),
               threading.Thread(target=sampler, args=(sluice.pid, sock, stop, record))]
    for t in threads:
        t.start()
    start = time.time()
    kinds = ["kill", "freeze", "drain", "reload"]
    n = 0
    try:
        while time.time() - start < args.seconds:
            time.sleep(args.fault_interval)
            if time.time() - start >= args.seconds - 5:
                break
            kind, server = kinds[n % len(kinds)], random.choice(["s1", "s2", "s3"])
            n += 1
            t0 = time.time()
            if kind == "kill":
                backends.signal(server, signal.SIGKILL)
                time.sleep(3)
                backends.start(server)
            elif kind == "freeze":
                backends.signal(server, signal.SIGSTOP)
                time.sleep(3)
                backends.signal(server, signal.SIGCONT)
            elif kind == "drain":
                ask(sock, f"set server app/{server} state drain")
                time.sleep(3)
                ask(sock, f"set server app/{server} state ready")
            else:
                with_fourth = not with_fourth
                server = "s4"
                sluice_config(work, web, idle, bulk_port, iperf_port, backends.ports, with_fourth)
                sluice.send_signal(signal.SIGHUP)
            with record.lock:
                record.faults.append((t0, time.time(), kind, server))
            assert sluice.poll() is None, "Sluice exited"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    # Every client is gone: Sluice must hold nothing within 5 s.
    drained_after = None
    for i in range(50):
        if "\nCurrConns: 0\n" in ask(sock, "show info"):
            drained_after = i * 0.1
            break
        time.sleep(0.1)
    fds_at_end = len(os.listdir(f"/proc/{sluice.pid}/fd"))
    sluice.send_signal(signal.SIGTERM)
    sluice.wait(timeout=30)
    backends.stop()
    iperf.kill()
    iperf.wait()

    # A request is "at a fault" when it began in a kill/freeze window: from the fault until the
    # checks can have seen it (fall 2 x inter 200 ms + timeout check) and timeout server has passed.
    grace = 0.4 + 0.5 + SERVER_TIMEOUT + 1.0
    windows = [(t0 - 0.2, t1 + grace) for t0, t1, kind, _ in record.faults if kind in ("kill", "freeze")]

    def at_fault(t0, t1=None):
        t1 = t0 if t1 is None else t1
        return any(a <= t1 and t0 <= b for a, b in windows)
    churn_total = len(record.requests)
    churn_failed = [(t, r) for t, ok, r in record.requests if not ok]
    churn_real = [(t, r) for t, r in churn_failed if not at_fault(t)]
    ka_requests = sum(c[2] for c in record.chunks)
    ka_errors = sum(c[3] for c in record.chunks)
    ka_real = sum(c[3] for c in record.chunks if not at_fault(c[0], c[1]))
    # Flatness over the last 80 % of the run.
    warm = start + 0.2 * args.seconds
    tail = [s for s in record.samples if s[0] >= warm]
    fd_slope = slope_per_hour([(s[0], s[1]) for s in tail])
    rss_slope = slope_per_hour([(s[0], s[2]) for s in tail])
    span_h = (tail[-1][0] - tail[0][0]) / 3600 if len(tail) > 1 else 0
    fd_mean = statistics.fmean(s[1] for s in tail) if tail else 0
    rss_mean = statistics.fmean(s[2] for s in tail) if tail else 0
    fd_growth, rss_growth = fd_slope * span_h, rss_slope * span_h
    fds_flat = fd_growth < max(50, 0.1 * fd_mean)
    rss_flat = rss_growth < max(4096, 0.1 * rss_mean)
    faults = {k: sum(1 for f in record.faults if f[2] == k) for k in kinds}
    bulk_failed = sum(1 for b in record.bulk if not b[3])
    bulk_gb = sum(b[2] for b in record.bulk)
    passed = not churn_real and ka_real == 0 and bulk_failed == 0 and fds_flat and rss_flat and drained_after is not None

    lines = [f"# Soak, {args.seconds} s, a fault every {args.fault_interval:g} s", "",
             f"Machine: {os.cpu_count()} cores; Sluice {args.sluice}", "",
             f"**{'PASS' if passed else 'FAIL'}**", "",
             "| | |", "|---|---|",
             f"| load | wrk keep-alive: {ka_requests} requests; churn: {churn_total} new connections; {args.idle} idle connections held ({record.idle_replaced} replaced after their server died); iperf3: {len(record.bulk)} streams, {bulk_gb:.1f} GB |",
             f"| faults | {faults['kill']} kills, {faults['freeze']} freezes, {faults['drain']} drains, {faults['reload']} reloads (a server added or removed) |",
             f"| failed outside kill/freeze windows (must be 0) | churn {len(churn_real)}, keep-alive {ka_real}, bulk streams {bulk_failed} |",
             f"| failed inside kill/freeze windows | churn {len(churn_failed) - len(churn_real)}, keep-alive {ka_errors - ka_real} |",
             f"| descriptors (after warm-up) | mean {fd_mean:.0f}, slope {fd_slope:+.1f}/h, growth {fd_growth:+.1f} |",
             f"| resident memory (after warm-up) | mean {rss_mean / 1024:.1f} MiB, slope {rss_slope / 1024:+.2f} MiB/h, growth {rss_growth / 1024:+.2f} MiB |",
             f"| pipes in use (max) | {max((s[3] for s in record.samples), default=0)} |",
             f"| sessions after the clients left | {'0 within %.1f s' % drained_after if drained_after is not None else 'still open after 5 s'}; descriptors then {fds_at_end} |"]
    if churn_real:
        lines += ["", "Failures outside fault windows (first 10): " + ", ".join(f"{t - start:.1f}s {r}" for t, r in churn_real[:10])]
    payload = {"seconds": args.seconds, "faults": record.faults, "requests_failed": churn_failed, "chunks": record.chunks,
               "samples": record.samples, "passed": passed}
    write_results(args.out, "soak", "\n".join(lines), payload)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
