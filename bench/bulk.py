#!/usr/bin/env python3
"""Bulk throughput through Sluice and HAProxy, side by side, with iperf3 (one stream, both ways).

Contenders run in alternating order each round so that drift on a shared machine spreads evenly.
Reported per contender and direction: median Gbit/s with min-max, and the proxy's own CPU seconds
per GB (utime+stime from /proc/PID/stat). A run where other processes used noticeable CPU is
flagged, and a result whose rounds were mostly noisy is not claimed.
"""
import argparse, json, os, platform, resource, shutil, signal, socket, statistics, subprocess, tempfile, threading, time

HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def cpu_split(pid):
    """A process's (user, system) CPU seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / HZ, int(fields[12]) / HZ  # utime, stime


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def tree_cpu_seconds(pid):
    """CPU of a process and all its descendants (nginx's workers are children of its master)."""
    total = 0.0
    try:
        total = cpu_seconds(pid)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                total += tree_cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def system_busy():
    """CPU seconds the machine was not idle (steal included: the hypervisor's other guests are noise)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return (sum(parts[:8]) - parts[3] - parts[4]) / HZ


def children_cpu_seconds():
    """CPU of the load generators this script ran to completion (iperf3 client, wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# A run is noisy when processes we did not start used more than this share of one core (quiet runs
# measure -0.1 to +0.1 core here: tick granularity, and kernel threads doing the networking).
NOISE_LIMIT = 0.25


class Measurement:
    """One run's CPU accounting: the proxy's own CPU seconds, and the CPU of everything that is not
    ours (neither the servers and proxies in `procs`, nor the load generator run meanwhile)."""

    def __init__(self, proxy, procs):
        self.proxy, self.procs = proxy, procs
        self.proxy0 = cpu_seconds(proxy.pid) if proxy else 0.0
        self.user0 = cpu_split(proxy.pid)[0] if proxy else 0.0
        self.busy0, self.children0 = system_busy(), children_cpu_seconds()
        self.own0 = sum(tree_cpu_seconds(p.pid) for p in procs)
        self.t0 = time.time()

    def finish(self):
        wall = time.time() - self.t0
        own = sum(tree_cpu_seconds(p.pid) for p in self.procs) - self.own0
        load = children_cpu_seconds() - self.children0
        busy = system_busy() - self.busy0
        other = busy - own - load
        return {"wall_s": wall, "proxy_cpu_s": (cpu_seconds(self.proxy.pid) - self.proxy0) if self.proxy else None,
                "machine_cpu_s": busy,
                "proxy_user_cpu_s": (cpu_split(self.proxy.pid)[0] - self.user0) if self.proxy else None,
                "known_processes_cpu_s": own, "load_generator_cpu_s": load, "other_cpu_s": other,
                "noisy": other > NOISE_LIMIT * wall}


def stop_all(procs):
    """SIGTERM every process started, then wait (killing what does not exit within 10 s)."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def machine_info():
    """What every result records: the machine and the HAProxy it was compared with."""
    return {"cores": os.cpu_count(), "kernel": platform.release(),
            "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0]}


def write_results(out, kind, text, payload):
    """Prints the Markdown summary and writes it, with every raw run as JSON, to `out`."""
    print()
    print(text)
    os.makedirs(out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(out, f"{kind}-{stamp}.json"), "w") as f:
        json.dump(payload, f, indent=1)
    with open(os.path.join(out, f"{kind}-{stamp}.md"), "w") as f:
        f.write(text + "\n")


# The proxies compared, in the order they run within a round (after `direct`, the path without a
# proxy): HAProxy as installed (its defaults: no splice), HAProxy with its best splice settings,
# and Sluice with each I/O engine.
KINDS = ("haproxy-default", "haproxy", "sluice", "sluice-uring")
# SLUICE_BASELINE=<another sluice binary> adds it on both engines (`sluice-base`, `sluice-uring-base`)
# to every round, for an A/B of two builds in one run (a data-path change against the commit before).
BASELINE = os.environ.get("SLUICE_BASELINE")
if BASELINE:
    KINDS += ("sluice-base", "sluice-uring-base")
# RULES=1 adds each proxy again with a rule set in front (10 ACLs, a stick table tracking every
# client, connection rules and use_backend rules that never match): what rules cost a session
# that passes through them, against the same proxy without rules and against HAProxy with them.
RULES = os.environ.get("RULES") == "1"
if RULES:
    KINDS += ("haproxy-rules", "sluice-rules", "sluice-uring-rules")

# LOGS=1 adds each proxy again logging every session with `option tcplog` to a syslog server on
# UDP (a thread of this script that reads and counts the lines): what logging costs, against the
# same proxy without it and against HAProxy logging the same way.
LOGS = os.environ.get("LOGS") == "1"
if LOGS:
    KINDS += ("haproxy-logs", "sluice-logs", "sluice-uring-logs")
# METRICS=1 adds each proxy again with a statistics proxy serving HAProxy's Prometheus exporter,
# scraped once a second by a thread of this script for the whole run: what being scraped costs.
METRICS = os.environ.get("METRICS") == "1"
if METRICS:
    KINDS += ("haproxy-metrics", "sluice-metrics", "sluice-uring-metrics")
# UNIX=1 (small requests only) adds each proxy again with its server on a UNIX socket (nginx
# listens on one too): forwarding between TCP clients and a UNIX-socket server, against HAProxy
# doing the same. `UNIX_SERVER` is that socket's path, set by the workload.
UNIX = os.environ.get("UNIX") == "1"
if UNIX:
    KINDS += ("haproxy-unix", "sluice-unix", "sluice-uring-unix")
UNIX_SERVER = None
VARIANTS = ("rules", "logs", "metrics", "unix")
_log_sink = {}
_scraped = {"ports": [], "scrapes": 0, "failures": 0}


def scrape_port():
    """A port for a contender's exporter; the scraper thread (started on first use) fetches
    /metrics from every such port once a second."""
    port = free_port()
    if not _scraped["ports"]:
        def scrape():
            while True:
                time.sleep(1)
                for p in list(_scraped["ports"]):
                    try:
                        with socket.create_connection(("127.0.0.1", p), timeout=2) as c:
                            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                            while c.recv(65536):
                                pass
                        _scraped["scrapes"] += 1
                    except OSError:
                        _scraped["failures"] += 1
        threading.Thread(target=scrape, daemon=True).start()
    _scraped["ports"].append(port)
    return port


def log_sink_port():
    """The UDP port of the syslog sink, started on first use; `_log_sink["lines"]` counts datagrams."""
    if "port" not in _log_sink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind(("127.0.0.1", 0))
        _log_sink.update(port=sock.getsockname()[1], lines=0)

        def drain():
            while True:
                sock.recv(65536)
                _log_sink["lines"] += 1
        threading.Thread(target=drain, daemon=True).start()
    return _log_sink["port"]


def base_kind(kind):
    """The proxy a contender is: its kind without the variant (`-rules`, `-logs`) or `-base`."""
    for suffix in ("-base",) + tuple("-" + v for v in VARIANTS):
        kind = kind.removesuffix(suffix)
    return kind


RULE_SET = """  stick-table type ip size 100k expire 30s store conn_cur,conn_rate(10s)
  acl internal src 10.0.0.0/8 192.168.0.0/16 172.16.0.0/12
  acl blocked src 203.0.113.0/24 198.51.100.0/24
  acl admin_port dst_port 22 3389
  acl odd_port src_port 1
  acl admin_bind so_name admin
  acl other_fe fe_name nothing
  acl none_left nbsrv(spare) lt 0
  acl never always_false
  acl loopback6 src ::1
  acl doc_net src 192.0.2.0/24
  tcp-request connection track-sc0 src
  tcp-request connection reject if { sc0_conn_rate gt 1000000000 }
  tcp-request connection reject if blocked || admin_port odd_port
  use_backend spare if internal admin_bind || other_fe
  use_backend spare if none_left || never || loopback6 doc_net
"""


# PIN=1 (bulk only): every proxy runs on CPU 0 and both iperf3 ends on CPU 1, the layout of a proxy
# given its own core. Unpinned, three busy processes share two cores and a round's figures depend on
# where the scheduler puts them: one contender's CPU per GB ranged 2x within a run, against +-15 %
# pinned (bench/results/bulk-20261202-003936.md and -003435.md).
PINNED = {"proxy": "0", "load": "1"} if os.environ.get("PIN") == "1" else None


def pinned(command, role):
    """`command` run on the CPU of `role` (`proxy` or `load`) under PIN=1, else unchanged."""
    return ["taskset", "-c", PINNED[role]] + command if PINNED else command


def launcher(work, procs):
    """A `start(command, port)` that runs a server or proxy with its stderr in `work`, records it in
    `procs` (for the CPU accounting and `stop_all`) and returns once it listens on `port`."""
    def start(command, port):
        p = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{port}.log"), "w"))
        procs.append(p)
        wait_listening(port, p)
        return p
    return start


def engine_line(kind):
    """Sluice's one extension in a contender's `global`: `sluice` is epoll, `sluice-uring` io_uring
    (the default where available); HAProxy's kinds get nothing."""
    return {"sluice": "  io-engine epoll\n", "sluice-uring": "  io-engine io_uring\n"}.get(base_kind(kind), "")


def contender(kind, threads):
    """A contender's name in results: the kind, with the thread count when it is not 1."""
    return kind if threads == 1 else f"{kind}@{threads}"


def config(kind, listen_port, server_port, pipesize, threads):
    # One file for HAProxy and Sluice: Sluice reads HAProxy's syntax and treats the splice options as
    # already on.
    engine = engine_line(kind)
    tuned = kind != "haproxy-default"
    logs = kind.endswith("-logs")
    return f"""global
{engine}  maxconn 1000
  nbthread {threads}
""" + (f"""  log 127.0.0.1:{log_sink_port()} local0
""" if logs else "") + (f"""  maxpipes 256
  tune.pipesize {pipesize}
""" if tuned else "") + """
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
""" + ("""  option splice-request
  option splice-response
""" if tuned else "") + f"""
listen bench
  bind 127.0.0.1:{listen_port}
""" + ("""  log global
  option tcplog
""" if logs else "") + (RULE_SET if kind.endswith("-rules") else "") + (f"""  server s1 unix@{UNIX_SERVER}
""" if kind.endswith("-unix") else f"""  server s1 127.0.0.1:{server_port}
""") + (f"""
backend spare
  server s1 127.0.0.1:{server_port}
""" if kind.endswith("-rules") else "") + (f"""
listen stats
  mode http
  bind 127.0.0.1:{scrape_port()}
  http-request use-service prometheus-exporter if {{ path /metrics }}
""" if kind.endswith("-metrics") else "")


def start_contenders(start, work, sluice, backend_port, pipesize, thread_counts):
    """Starts every proxy at every thread count in front of `backend_port`.
    Returns {name: (process or None, port)}, `direct` first."""
    contenders = {"direct": (None, backend_port)}
    for threads in thread_counts:
        for kind in KINDS:
            port = free_port()
            path = os.path.join(work, f"{kind}-{threads}.cfg")
            with open(path, "w") as f:
                f.write(config(kind, port, backend_port, pipesize, threads))
            binary = BASELINE if kind.endswith("-base") else sluice
            command = ["haproxy", "-db", "-f", path] if kind.startswith("haproxy") else [binary, "-q", "-f", path]
            contenders[contender(kind, threads)] = (start(pinned(command, "proxy"), port), port)
    return contenders


def thread_counts(text):
    return [int(x) for x in str(text).split(",")]


def comparisons(thread_counts, value, noisy, metrics, per_round=None):
    """The ratio lines every workload reports: each Sluice engine against HAProxy's best and default
    configurations at the same thread count, and each proxy's scaling from the fewest threads to
    the most. `value(name, metric)` is a median or None; `noisy(a, b)` says whether most rounds of
    the pair were noisy. `metrics` is [(metric, label)].

    `per_round(name, metric)` ({round: value}), when given, adds the paired view of each ratio
    against HAProxy: the ratio within each round (the two ran a minute apart at most, so the slow
    drift of a shared machine cancels), as its median, min-max, and the rounds above 1.0."""
    lines = []

    def paired(s, h, m):
        if per_round is None:
            return ""
        a, b = per_round(s, m), per_round(h, m)
        ratios = sorted(a[r] / b[r] for r in a if b.get(r))
        if len(ratios) < 2:
            return ""
        above = sum(1 for x in ratios if x > 1.0)
        return (f" (per round {statistics.median(ratios):.2f}x, {ratios[0]:.2f}-{ratios[-1]:.2f}, "
                f"above 1.0 in {above}/{len(ratios)})")

    for threads in thread_counts:
        for engine in ("sluice", "sluice-uring"):
            pairs = [(engine, base) for base in ("haproxy", "haproxy-default") + ((engine + "-base",) if BASELINE else ())]
            for variant in VARIANTS:
                if f"haproxy-{variant}" in KINDS:
                    pairs += [(f"{engine}-{variant}", f"haproxy-{variant}"), (f"{engine}-{variant}", engine)]
            for kind, base in pairs:
                s, h = contender(kind, threads), contender(base, threads)
                parts = [f"{label} {value(s, m) / value(h, m):.2f}x" + paired(s, h, m) for m, label in metrics
                         if value(s, m) is not None and value(h, m)]
                if parts:
                    lines.append(f"- {s} / {h}: " + ", ".join(parts)
                                 + ("  (NOISY: most rounds had other CPU load; not a result)" if noisy(s, h) else ""))
    for variant in (v for v in VARIANTS if f"haproxy-{v}" in KINDS):
        for threads in thread_counts:
            s, h = contender(f"haproxy-{variant}", threads), contender("haproxy", threads)
            parts = [f"{label} {value(s, m) / value(h, m):.2f}x" for m, label in metrics if value(s, m) is not None and value(h, m)]
            if parts:
                lines.append(f"- {s} / {h}: " + ", ".join(parts))
    if len(thread_counts) > 1:
        low, high = min(thread_counts), max(thread_counts)
        for kind in KINDS:
            a, b = contender(kind, low), contender(kind, high)
            parts = [f"{label} {value(b, m) / value(a, m):.2f}x" for m, label in metrics
                     if value(a, m) and value(b, m) is not None]
            if parts:
                lines.append(f"- scaling {kind}, nbthread {low} -> {high}: " + ", ".join(parts))
    return lines


def run_iperf(port, seconds, reverse):
    args = pinned(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J", "-O", "1"], "load")
    if reverse:
        args.append("-R")
    # The iperf3 server serves one test at a time and may still be tearing down the readiness
    # probes' connections (each proxy's probe reaches it): retry a refused control connection.
    for attempt in range(5):
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
        data = json.loads(out.stdout)
        if "error" not in data:
            break
        if attempt == 4 or "control" not in data["error"] and "busy" not in data["error"]:
            raise RuntimeError(data["error"])
        time.sleep(0.5)
    end = data["end"]
    received = end["sum_received"]
    return received["bits_per_second"] / 1e9, received["bytes"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 5)))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SECONDS_PER_RUN", 5)))
    ap.add_argument("--pipesize", type=int, default=1 << 20)
    ap.add_argument("--threads", type=thread_counts, default=thread_counts(os.environ.get("THREADS", "1")),
                    help="nbthread for every proxy; a list (1,2) runs each proxy at each count")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    if PINNED and (max(args.threads) > 1 or (os.cpu_count() or 1) < 2):
        ap.error("PIN=1 puts each proxy on one core: it needs nbthread 1 and at least 2 cores")

    work = tempfile.mkdtemp(prefix="sluice-bench-")
    iperf_port = free_port()
    procs = []
    start = launcher(work, procs)
    try:
        start(pinned(["iperf3", "-s", "-p", str(iperf_port)], "load"), iperf_port)
        contenders = start_contenders(start, work, args.sluice, iperf_port, args.pipesize, args.threads)
        names = list(contenders)
        runs = []
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                proc, port = contenders[name]
                for reverse in (False, True):
                    measurement = Measurement(proc, procs)
                    gbps, nbytes = run_iperf(port, args.seconds, reverse)
                    run = {"round": r + 1, "contender": name, "direction": "download" if reverse else "upload",
                           "gbit_per_s": gbps, "bytes": nbytes, **measurement.finish()}
                    run["proxy_cpu_s_per_gb"] = run["proxy_cpu_s"] / (nbytes / 1e9) if proc else None
                    run["machine_cpu_s_per_gb"] = run["machine_cpu_s"] / (nbytes / 1e9)
                    runs.append(run)
                    print(f"round {r+1} {name:17s} {run['direction']:8s} {gbps:6.2f} Gbit/s"
                          + (f"  {run['proxy_cpu_s_per_gb']:.3f} CPU-s/GB" if proc else "")
                          + f"  machine {run['machine_cpu_s_per_gb']:.3f} CPU-s/GB", flush=True)
    finally:
        stop_all(procs)

    def summary(name, direction, key):
        values = [x[key] for x in runs if x["contender"] == name and x["direction"] == direction and x[key] is not None]
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}

    table = {}
    for name in names:
        for direction in ("upload", "download"):
            table[f"{name}/{direction}"] = {
                "gbit_per_s": summary(name, direction, "gbit_per_s"),
                "proxy_cpu_s_per_gb": summary(name, direction, "proxy_cpu_s_per_gb"),
                "machine_cpu_s_per_gb": summary(name, direction, "machine_cpu_s_per_gb"),
                "noisy_rounds": sum(1 for x in runs if x["contender"] == name and x["direction"] == direction and x["noisy"]),
            }

    machine = machine_info()
    threads = ",".join(map(str, args.threads))
    layout = (f"; proxies pinned to CPU {PINNED['proxy']}, both iperf3 ends to CPU {PINNED['load']} (PIN=1)" if PINNED
              else "; nothing pinned")
    lines = [f"# Bulk throughput, iperf3 one stream, {args.rounds} rounds x {args.seconds} s, nbthread {threads}, pipes {args.pipesize} B",
             "", f"Machine: {machine['cores']} cores, kernel {machine['kernel']}; {machine['haproxy']}{layout}", "",
             "Machine CPU is every CPU second the machine spent (both iperf3 ends, the proxy, kernel threads) per GB moved:",
             "on loopback the kernel charges a connection's receive processing to whichever process holds the socket or",
             "raises the softirq, so the proxy's own figure moves with timing while the machine's total does not.", "",
             "| contender | direction | Gbit/s median (min-max) | proxy CPU-s/GB median (min-max) | machine CPU-s/GB median (min-max) | noisy rounds |",
             "|---|---|---|---|---|---|"]

    def cell(c):
        return f"{c['median']:.3f} ({c['min']:.3f}-{c['max']:.3f})" if c else "-"
    for key, row in table.items():
        g = row["gbit_per_s"]
        name, direction = key.split("/")
        lines.append(f"| {name} | {direction} | {g['median']:.2f} ({g['min']:.2f}-{g['max']:.2f}) | {cell(row['proxy_cpu_s_per_gb'])} "
                     f"| {cell(row['machine_cpu_s_per_gb'])} | {row['noisy_rounds']}/{g['n']} |")
    lines.append("")
    for direction in ("upload", "download"):
        def value(name, metric):
            cell = table.get(f"{name}/{direction}", {}).get(metric)
            return cell["median"] if cell else None

        def noisy(a, b):
            return table[f"{a}/{direction}"]["noisy_rounds"] + table[f"{b}/{direction}"]["noisy_rounds"] > args.rounds
        def per_round(name, metric):
            return {x["round"]: x[metric] for x in runs
                    if x["contender"] == name and x["direction"] == direction and x.get(metric) is not None}
        lines += [line.replace("- ", f"- {direction}: ", 1)
                  for line in comparisons(args.threads, value, noisy, [("gbit_per_s", "throughput"), ("proxy_cpu_s_per_gb", "CPU per GB"),
                                                                        ("machine_cpu_s_per_gb", "machine CPU per GB")], per_round)]
    write_results(args.out, "bulk", "\n".join(lines), {"machine": machine, "args": vars(args), "pinned": PINNED, "runs": runs,
                                                         "summary": table})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
