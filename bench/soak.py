#!/usr/bin/env python3
"""Soak: Sluice under mixed load while its servers fail and its configuration is reloaded.

  python3 bench/soak.py --sluice .build/release/sluice --seconds 1800

Load, all at once for the whole run:
  keepalive  wrk -c20 over kept-alive connections, in 10 s chunks;
  churn      two clients opening a new connection per request (Connection: close);
  idle       --idle connections held open through a second frontend, replaced when their server dies;
  bulk       an iperf3 stream at 1 Gbit/s through a third frontend (spliced), 10 s at a time, both ways;
  proxied    a client sending a PROXY header (v1 and v2 in turn, a new source address each time) to a
             frontend with `accept-proxy`, whose servers get `send-proxy-v2` and answer with the address
             they were told: it must be the client's; now and then a malformed header, which must be
             refused without reaching a server;
  sni        a TLS client (Python's ssl) naming a.soak or x.b.soak to a frontend that routes by
             `req.ssl_sni` to two backends with a server in common, TLS passed through to nginx;
             the answer's X-Server must belong to the backend of the name.
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
  server {{ listen 127.0.0.1:{port} backlog=4096; root {dir}/www; add_header X-Server {name}; }}
  server {{ listen 127.0.0.1:{pp_port} proxy_protocol; location / {{ return 200 "$proxy_protocol_addr\n"; }} }}
  server {{
    listen 127.0.0.1:{tls_port} ssl; root {dir}/www; add_header X-Server {name};
    ssl_certificate {dir}/cert.pem; ssl_certificate_key {dir}/key.pem;
  }}
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
frontend proxied
  bind 127.0.0.1:{proxied} accept-proxy
  default_backend told
frontend sni
  bind 127.0.0.1:{sni}
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  use_backend tls_b if {{ req.ssl_sni -m end .b.soak }}
  use_backend tls_a if {{ req.ssl_sni -i a.soak }}
  default_backend tls_a
backend app
  option httpchk GET /1k
  timeout check 500ms
  default-server check inter 200ms fall 2 rise 2
{servers}
backend hold
  timeout server 1h
{held}
backend told
  option httpchk GET /1k
  timeout check 500ms
  default-server check inter 200ms fall 2 rise 2 send-proxy-v2
{told}
backend tls_a
  timeout check 500ms
  default-server check inter 200ms fall 2 rise 2
{tls_a}
backend tls_b
  timeout check 500ms
  default-server check inter 200ms fall 2 rise 2
{tls_b}
backend bulk
  timeout server 1h
  server iperf 127.0.0.1:{iperf}
"""

SERVER_TIMEOUT = 2


class Backends:
    """The nginx servers: started, killed, frozen, restarted by name."""

    def __init__(self, work, names):
        self.work, self.procs, self.ports, self.pp_ports, self.tls_ports = work, {}, {}, {}, {}
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{work}/key.pem", "-out", f"{work}/cert.pem",
                        "-days", "1", "-subj", "/CN=soak"], check=True, stderr=subprocess.DEVNULL)
        os.makedirs(f"{work}/www", exist_ok=True)
        os.makedirs(f"{work}/tmp", exist_ok=True)
        os.chmod(work, 0o755)
        with open(f"{work}/www/1k", "w") as f:
            f.write("x" * 1023 + "\n")
        for name in names:
            self.ports[name], self.pp_ports[name], self.tls_ports[name] = free_port(), free_port(), free_port()
            with open(f"{work}/{name}.conf", "w") as f:
                f.write(NGINX.format(dir=work, name=name, port=self.ports[name], pp_port=self.pp_ports[name], tls_port=self.tls_ports[name]))
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


# The servers of each SNI backend: one in common, so that a name's backend has a server left when
# one is killed or drained.
TLS_A, TLS_B = ["s1", "s2"], ["s2", "s3"]


def sluice_config(work, ports, backends, with_fourth):
    names = ["s1", "s2", "s3"] + (["s4"] if with_fourth else [])
    servers = "\n".join(f"  server {n} 127.0.0.1:{backends.ports[n]}" for n in names)
    held = "\n".join(f"  server {n} 127.0.0.1:{backends.ports[n]}" for n in ["s1", "s2", "s3"])
    # Checks go to the plain port: the PROXY and TLS listeners want a header or a handshake first.
    told = "\n".join(f"  server {n} 127.0.0.1:{backends.pp_ports[n]} port {backends.ports[n]}" for n in ["s1", "s2", "s3"])
    tls = {name: "\n".join(f"  server {n} 127.0.0.1:{backends.tls_ports[n]} port {backends.ports[n]}" for n in group)
           for name, group in (("a", TLS_A), ("b", TLS_B))}
    with open(f"{work}/sluice.cfg", "w") as f:
        f.write(SLUICE.format(dir=work, servers=servers, held=held, told=told, tls_a=tls["a"], tls_b=tls["b"],
                              server_timeout=SERVER_TIMEOUT, **ports))


class Record:
    """What the load saw: (time, kind, ok) per churn request, wrk chunks, faults, samples."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []      # (t, kind, ok, reason): churn, proxied and sni requests
        self.chunks = []        # (t0, t1, requests, errors)
        self.bulk = []          # (t0, t1, gigabytes, ok)
        self.faults = []        # (t0, t1, kind, server)
        self.samples = []       # (t, fds, rss_kib, pipes, sessions)
        self.idle_replaced = 0
        self.malformed = []     # (t, refused): PROXY headers that must not reach a server


REQUEST = b"GET /1k HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"


def read_all(c):
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            return data
        data += d


def requests(kind, stop, record, attempt):
    """Runs `attempt()` (True or a reason for failing) until stopped, recording each as `kind`."""
    while not stop.is_set():
        t = time.time()
        try:
            outcome = attempt()
        except OSError as e:
            outcome = type(e).__name__
        with record.lock:
            record.requests.append((t, kind, outcome is True, "" if outcome is True else outcome))


def churn(port, stop, record):
    def attempt():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.settimeout(10)
            c.sendall(REQUEST)
            data = read_all(c)
        return data.startswith(b"HTTP/1.1 200") and data.endswith(b"x\n") or f"answer of {len(data)} bytes"
    requests("churn", stop, record, attempt)


def proxy_header(version, source, sport):
    """A PROXY header from `source`:`sport` to 127.0.0.1:80, v1 or v2."""
    if version == 1:
        return f"PROXY TCP4 {source} 127.0.0.1 {sport} 80\r\n".encode()
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + sport.to_bytes(2, "big") + (80).to_bytes(2, "big")
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(addresses).to_bytes(2, "big") + addresses


MALFORMED = [b"PROXY TCP4 10.0.0.1 127.0.0.1 99999 80\r\n", b"PROXY TCP9 a b c d\r\n",
             b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12), b"GET / HTTP/1.0\r\n\r\n"]


def proxied(port, stop, record):
    """PROXY v1 and v2 in turn from a new address each time; the server must have been told it.
    Every 50th connection sends a malformed header instead, which must be refused (closed with no
    answer: it never reached a server)."""
    n = 0

    def attempt():
        nonlocal n
        n += 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.settimeout(10)
            if n % 50 == 0:
                c.sendall(MALFORMED[n // 50 % len(MALFORMED)])
                try:
                    answer = read_all(c)
                except ConnectionResetError:
                    answer = b""
                with record.lock:
                    record.malformed.append((time.time(), answer == b""))
                return True
            source = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
            c.sendall(proxy_header(1 + n % 2, source, 1024 + n % 60000) + REQUEST)
            data = read_all(c)
        return data.startswith(b"HTTP/1.1 200") and data.endswith(f"\r\n\r\n{source}\n".encode()) or f"answer {data[-40:]!r} for {source}"
    requests("proxied", stop, record, attempt)


def sni(port, stop, record):
    """TLS through the SNI router: a.soak goes to TLS_A's servers, x.b.soak to TLS_B's."""
    import ssl
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    n = 0

    def attempt():
        nonlocal n
        n += 1
        name, group = ("a.soak", TLS_A) if n % 2 else (f"x{n}.b.soak", TLS_B)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.settimeout(10)
            with context.wrap_socket(raw, server_hostname=name) as c:
                c.sendall(REQUEST)
                data = read_all(c)
        server = re.search(rb"\r\nX-Server: (\w+)\r\n", data)
        if not (data.startswith(b"HTTP/1.1 200") and data.endswith(b"x\n") and server):
            return f"{name}: answer of {len(data)} bytes"
        return server.group(1).decode() in group or f"{name} answered by {server.group(1).decode()}"
    requests("sni", stop, record, attempt)


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
    ap.add_argument("--sanitized", action="store_true",
                    help="Sluice is built with AddressSanitizer (CI): LeakSanitizer checks its heap when it exits and any report "
                         "fails the soak; resident memory is then reported but not judged (ASan's allocator keeps freed memory)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sluice-soak-")
    backends = Backends(work, ["s1", "s2", "s3", "s4"])
    ports = {name: free_port() for name in ["web", "idle", "bulk", "iperf", "proxied", "sni"]}
    web = ports["web"]
    iperf = subprocess.Popen(["iperf3", "-s", "-p", str(ports["iperf"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(ports["iperf"], iperf)
    with_fourth = False
    sluice_config(work, ports, backends, with_fourth)
    environment = dict(os.environ)
    if args.sanitized:
        # Leaks are looked for when Sluice exits (after SIGTERM, below); a memory error aborts it at once.
        # (Later options win: the caller's own detect_leaks=0, as for the test suite, is overridden.)
        environment["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=1:abort_on_error=1"
    sluice = subprocess.Popen([args.sluice, "-q", "-f", f"{work}/sluice.cfg"], stderr=open(f"{work}/sluice.err", "w"), env=environment)
    wait_listening(web, sluice)
    sock = f"{work}/admin.sock"
    record, stop = Record(), threading.Event()
    threads = [threading.Thread(target=keepalive, args=(web, stop, record)),
               threading.Thread(target=churn, args=(web, stop, record)),
               threading.Thread(target=churn, args=(web, stop, record)),
               threading.Thread(target=holders, args=(ports["idle"], args.idle, stop, record)),
               threading.Thread(target=bulk, args=(ports["bulk"], stop, record)),
               threading.Thread(target=proxied, args=(ports["proxied"], stop, record)),
               threading.Thread(target=sni, args=(ports["sni"], stop, record)),
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
                sluice_config(work, ports, backends, with_fourth)
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
    try:
        exit_status = sluice.wait(timeout=60)
    except subprocess.TimeoutExpired:
        # A hung exit fails the soak with its report, not a traceback (once: a sanitizer's report
        # at exit, then the crash handler hanging under AddressSanitizer).
        sluice.kill()
        sluice.wait()
        exit_status = "none: still running 60 s after SIGTERM, killed"
    with open(f"{work}/sluice.err", errors="replace") as f:
        sanitizer_reports = [line.strip() for line in f if re.search(r"ERROR: (Address|Leak)Sanitizer|SUMMARY: AddressSanitizer", line)]
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
    request_kinds = ["churn", "proxied", "sni"]
    totals = {k: sum(1 for r in record.requests if r[1] == k) for k in request_kinds}
    failed = {k: [(t, r) for t, kind, ok, r in record.requests if kind == k and not ok] for k in request_kinds}
    real = {k: [(t, r) for t, r in failed[k] if not at_fault(t)] for k in request_kinds}
    churn_real = [f for k in request_kinds for f in real[k]]
    malformed_forwarded = sum(1 for _, refused in record.malformed if not refused)
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
    rss_flat = args.sanitized or rss_growth < max(4096, 0.1 * rss_mean)
    faults = {k: sum(1 for f in record.faults if f[2] == k) for k in kinds}
    bulk_failed = sum(1 for b in record.bulk if not b[3])
    bulk_gb = sum(b[2] for b in record.bulk)
    passed = (not churn_real and malformed_forwarded == 0 and ka_real == 0 and bulk_failed == 0 and fds_flat and rss_flat
              and drained_after is not None and not sanitizer_reports and exit_status == 0)

    lines = [f"# Soak, {args.seconds} s, a fault every {args.fault_interval:g} s", "",
             f"Machine: {os.cpu_count()} cores; Sluice {args.sluice}", "",
             f"**{'PASS' if passed else 'FAIL'}**", "",
             "| | |", "|---|---|",
             f"| load | wrk keep-alive: {ka_requests} requests; churn: {totals['churn']} new connections; PROXY v1/v2: {totals['proxied']} connections ({len(record.malformed)} with a malformed header); TLS by SNI: {totals['sni']} connections; {args.idle} idle connections held ({record.idle_replaced} replaced after their server died); iperf3: {len(record.bulk)} streams, {bulk_gb:.1f} GB |",
             f"| faults | {faults['kill']} kills, {faults['freeze']} freezes, {faults['drain']} drains, {faults['reload']} reloads (a server added or removed) |",
             f"| failed outside kill/freeze windows (must be 0) | churn {len(real['churn'])}, PROXY {len(real['proxied'])}, SNI {len(real['sni'])}, keep-alive {ka_real}, bulk streams {bulk_failed} |",
             f"| malformed PROXY headers answered (must be 0) | {malformed_forwarded} of {len(record.malformed)} |",
             f"| failed inside kill/freeze windows | churn {len(failed['churn']) - len(real['churn'])}, PROXY {len(failed['proxied']) - len(real['proxied'])}, SNI {len(failed['sni']) - len(real['sni'])}, keep-alive {ka_errors - ka_real} |",
             f"| descriptors (after warm-up) | mean {fd_mean:.0f}, slope {fd_slope:+.1f}/h, growth {fd_growth:+.1f} |",
             f"| resident memory (after warm-up) | mean {rss_mean / 1024:.1f} MiB, slope {rss_slope / 1024:+.2f} MiB/h, growth {rss_growth / 1024:+.2f} MiB"
             + (" (not judged: AddressSanitizer build; LeakSanitizer below)" if args.sanitized else "") + " |",
             f"| pipes in use (max) | {max((s[3] for s in record.samples), default=0)} |",
             f"| sessions after the clients left | {'0 within %.1f s' % drained_after if drained_after is not None else 'still open after 5 s'}; descriptors then {fds_at_end} |",
             f"| exit after SIGTERM | status {exit_status}" + (f"; AddressSanitizer/LeakSanitizer reports: {len(sanitizer_reports)} (must be 0)" if args.sanitized else "") + " |"]
    if sanitizer_reports:
        lines += ["", f"Sanitizer reports (whole: {work}/sluice.err): " + "; ".join(sanitizer_reports[:5])]
    if churn_real:
        lines += ["", "Failures outside fault windows (first 10): " + ", ".join(f"{t - start:.1f}s {r}" for t, r in churn_real[:10])]
    payload = {"seconds": args.seconds, "faults": record.faults, "requests_failed": failed, "chunks": record.chunks,
               "samples": record.samples, "passed": passed}
    write_results(args.out, "soak", "\n".join(lines), payload)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
