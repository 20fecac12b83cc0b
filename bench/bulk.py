#!/usr/bin/env python3
"""Bulk throughput through Sluice and HAProxy, side by side, with iperf3 (one stream, both ways).

Contenders run in alternating order each round so that drift on a shared machine spreads evenly.
Reported per contender and direction: median Gbit/s with min-max, and the proxy's own CPU seconds
per GB (utime+stime from /proc/PID/stat). A run where other processes used noticeable CPU is
flagged, and a result whose rounds were mostly noisy is not claimed.
"""
import argparse, json, os, platform, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime


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
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / HZ


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


def config(kind, listen_port, server_port, pipesize, threads):
    # One file for both: Sluice reads HAProxy's syntax, and treats the splice options as already on.
    # The io_uring contender adds Sluice's one extension, `io-engine`.
    engine = "  io-engine io_uring\n" if kind == "sluice-uring" else ""
    return f"""global
{engine}  maxconn 1000
  nbthread {threads}
  maxpipes 256
  tune.pipesize {pipesize}

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option splice-request
  option splice-response

listen bench
  bind 127.0.0.1:{listen_port}
  server s1 127.0.0.1:{server_port}
"""


def run_iperf(port, seconds, reverse):
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J", "-O", "1"]
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
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sluice-bench-")
    iperf_port = free_port()
    procs = []

    def start(cmd, port, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{port}.log"), "w"), **kw)
        procs.append(p)
        wait_listening(port, p)
        return p

    try:
        start(["iperf3", "-s", "-p", str(iperf_port)], iperf_port)
        contenders = {"direct": (None, iperf_port)}
        hp = free_port()
        with open(os.path.join(work, "haproxy.cfg"), "w") as f:
            f.write(config("haproxy", hp, iperf_port, args.pipesize, args.threads))
        contenders["haproxy"] = (start(["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")], hp), hp)
        sp = free_port()
        with open(os.path.join(work, "sluice.cfg"), "w") as f:
            f.write(config("sluice", sp, iperf_port, args.pipesize, args.threads))
        contenders["sluice"] = (start([args.sluice, "-q", "-f", os.path.join(work, "sluice.cfg")], sp), sp)
        up = free_port()
        with open(os.path.join(work, "sluice-uring.cfg"), "w") as f:
            f.write(config("sluice-uring", up, iperf_port, args.pipesize, args.threads))
        contenders["sluice-uring"] = (start([args.sluice, "-q", "-f", os.path.join(work, "sluice-uring.cfg")], up), up)

        names = list(contenders)
        runs = []
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                proc, port = contenders[name]
                for reverse in (False, True):
                    cpu0 = cpu_seconds(proc.pid) if proc else 0.0
                    busy0 = system_busy()
                    own0 = sum(cpu_seconds(p.pid) for p in procs)
                    t0 = time.time()
                    gbps, nbytes = run_iperf(port, args.seconds, reverse)
                    wall = time.time() - t0
                    cpu = (cpu_seconds(proc.pid) - cpu0) if proc else 0.0
                    # CPU used by anything but our servers and proxies, minus the iperf3 client (which
                    # ran as a child: estimated as what is left after the busy time of the two cores
                    # attributable to known processes is removed).
                    busy = system_busy() - busy0
                    own = sum(cpu_seconds(p.pid) for p in procs) - own0
                    run = {
                        "round": r + 1, "contender": name, "direction": "download" if reverse else "upload",
                        "gbit_per_s": gbps, "bytes": nbytes, "wall_s": wall,
                        "proxy_cpu_s": cpu, "proxy_cpu_s_per_gb": (cpu / (nbytes / 1e9)) if proc else None,
                        "system_busy_s": busy, "known_processes_cpu_s": own,
                    }
                    runs.append(run)
                    print(f"round {r+1} {name:8s} {run['direction']:8s} {gbps:6.2f} Gbit/s"
                          + (f"  {run['proxy_cpu_s_per_gb']:.3f} CPU-s/GB" if proc else ""), flush=True)
    finally:
        stop_all(procs)

    # Noise: the two cores' busy time beyond the known processes and the iperf3 client (at most one
    # core for the run) means something else was running.
    for run in runs:
        other = run["system_busy_s"] - run["known_processes_cpu_s"] - run["wall_s"]
        run["noisy"] = other > 0.15 * run["wall_s"]

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
                "noisy_rounds": sum(1 for x in runs if x["contender"] == name and x["direction"] == direction and x["noisy"]),
            }

    machine = machine_info()
    lines = [f"# Bulk throughput, iperf3 one stream, {args.rounds} rounds x {args.seconds} s, nbthread {args.threads}, pipes {args.pipesize} B",
             "", f"Machine: {machine['cores']} cores, kernel {machine['kernel']}; {machine['haproxy']}", "",
             "| contender | direction | Gbit/s median (min-max) | proxy CPU-s/GB median (min-max) | noisy rounds |",
             "|---|---|---|---|---|"]
    for key, row in table.items():
        g, c = row["gbit_per_s"], row["proxy_cpu_s_per_gb"]
        cpu = f"{c['median']:.3f} ({c['min']:.3f}-{c['max']:.3f})" if c else "-"
        name, direction = key.split("/")
        lines.append(f"| {name} | {direction} | {g['median']:.2f} ({g['min']:.2f}-{g['max']:.2f}) | {cpu} | {row['noisy_rounds']}/{g['n']} |")
    lines.append("")
    for engine in ("sluice", "sluice-uring"):
        for direction in ("upload", "download"):
            s, h = table[f"{engine}/{direction}"], table[f"haproxy/{direction}"]
            ratio = s["gbit_per_s"]["median"] / h["gbit_per_s"]["median"]
            cpu_ratio = s["proxy_cpu_s_per_gb"]["median"] / h["proxy_cpu_s_per_gb"]["median"]
            noisy = s["noisy_rounds"] + h["noisy_rounds"] > args.rounds
            lines.append(f"- {direction}: {engine}/HAProxy throughput {ratio:.2f}x, CPU per GB {cpu_ratio:.2f}x"
                         + ("  (NOISY: most rounds had other CPU load; not a result)" if noisy else ""))
    write_results(args.out, "bulk", "\n".join(lines), {"machine": machine, "args": vars(args), "runs": runs, "summary": table})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
