#!/usr/bin/env python3
"""Health checks at scale, side by side with HAProxy: does a storm of checks slow forwarding, and
are the check durations the proxy reports honest?

Each contender (HAProxy, Sluice) runs in two modes, alternating within each round:
  quiet: a frontend in front of nginx (wrk -c50 keep-alive, 1 KiB), nothing else;
  storm: the same plus a backend of N servers (1,000 by default) that refuse connections
         (127.0.0.1, ports nothing listens on), each `check inter 2s`.
Reported: requests/s and p99 per contender and mode (median, min-max), the storm/quiet p99 ratio,
and the durations each proxy reports for its refused checks (`show stat` check_duration, ms):
a refused connect on loopback takes well under a millisecond, so anything larger is time the
check spent waiting for the check runner.

  bench/run checks [--servers 1000] [--rounds 3] [--seconds 5]
"""
import argparse, os, socket, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from bulk import free_port, stop_all, machine_info, write_results, Measurement, launcher  # noqa: E402
from small import nginx_site, parse_wrk  # noqa: E402


def refused_ports(count):
    """`count` loopback ports nothing listens on (bound, then closed)."""
    ports = []
    while len(ports) < count:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    return ports


def config(kind, port, nginx_port, socket_path, storm_ports):
    text = f"""global
  maxconn 4000
  stats socket {socket_path} level admin
""" + ("  io-engine io_uring\n" if kind == "sluice" else "") + f"""
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s

frontend web
  bind 127.0.0.1:{port}
  default_backend web

backend web
  server n1 127.0.0.1:{nginx_port}
"""
    if storm_ports:
        text += "\nbackend storm\n  default-server check inter 2s\n"
        text += "".join(f"  server s{i} 127.0.0.1:{p}\n" for i, p in enumerate(storm_ports))
    return text


def ask(path, command):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(command.encode() + b"\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode(errors="replace")


def check_durations(path):
    """check_duration (ms) of every storm server that has been checked."""
    lines = ask(path, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    px, sv, dur, status = header.index("pxname"), header.index("svname"), header.index("check_duration"), header.index("check_status")
    out = []
    for line in lines[1:]:
        f = line.split(",")
        if len(f) > dur and f[px] == "storm" and f[sv] not in ("BACKEND", "FRONTEND") and f[dur] != "" and f[status] not in ("", "INI"):
            out.append(int(f[dur]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SECONDS_PER_RUN", 5)))
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()

    work, nginx_port = nginx_site("sluice-checks-")
    procs = []
    start = launcher(work, procs)
    storm = refused_ports(args.servers)
    runs, durations = [], {"haproxy": [], "sluice": []}
    try:
        start(["nginx", "-c", f"{work}/nginx.conf"], nginx_port)
        for r in range(args.rounds):
            order = [("haproxy", "quiet"), ("sluice", "quiet"), ("haproxy", "storm"), ("sluice", "storm")]
            order = order[r % 4:] + order[:r % 4]
            for kind, mode in order:
                port = free_port()
                sock = os.path.join(work, f"{kind}-{mode}-{r}.sock")
                path = os.path.join(work, f"{kind}-{mode}-{r}.cfg")
                with open(path, "w") as f:
                    f.write(config(kind, port, nginx_port, sock, storm if mode == "storm" else []))
                command = ["haproxy", "-db", "-f", path] if kind == "haproxy" else [args.sluice, "-q", "-f", path]
                proc = start(command, port)
                if mode == "storm":
                    # Every server checked at least once before measuring (checks are spread over `inter`).
                    deadline = time.time() + 10
                    while time.time() < deadline and len(check_durations(sock)) < args.servers:
                        time.sleep(0.2)
                measurement = Measurement(proc, procs)
                out = subprocess.run(["wrk", "-t1", "-c50", f"-d{args.seconds}s", "--latency", f"http://127.0.0.1:{port}/1k"],
                                     capture_output=True, text=True, timeout=args.seconds + 60).stdout
                result = parse_wrk(out)
                result.update({"round": r + 1, "contender": kind, "mode": mode, **measurement.finish()})
                if mode == "storm":
                    found = check_durations(sock)
                    durations[kind] += found
                    result["checks_seen"] = len(found)
                runs.append(result)
                print(f"round {r+1} {mode:5s} {kind:7s} {result['rps']:9.0f} req/s  p50 {result['p50_ms']}ms p99 {result['p99_ms']}ms"
                      + (f"  checks reported {result['checks_seen']}" if mode == "storm" else ""), flush=True)
                procs.remove(proc)
                stop_all([proc])
    finally:
        stop_all(procs)

    def summary(kind, mode, key):
        vals = [x[key] for x in runs if x["contender"] == kind and x["mode"] == mode and x[key] is not None]
        return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None

    def q(vals, p):
        vals = sorted(vals)
        return vals[min(len(vals) - 1, int(len(vals) * p))] if vals else None

    machine = machine_info()
    lines = [f"# Health-check storm: {args.servers} refused servers checked every 2 s, wrk -t1 -c50 keep-alive, "
             f"{args.rounds} rounds x {args.seconds} s", "",
             f"Machine: {machine['cores']} cores, kernel {machine['kernel']}; {machine['haproxy']}", "",
             "| contender | mode | req/s median (min-max) | p99 ms median (min-max) | noisy |", "|---|---|---|---|---|"]
    for kind in ("haproxy", "sluice"):
        for mode in ("quiet", "storm"):
            rps, p99 = summary(kind, mode, "rps"), summary(kind, mode, "p99_ms")
            noisy = sum(1 for x in runs if x["contender"] == kind and x["mode"] == mode and x["noisy"])
            lines.append(f"| {kind} | {mode} | {rps['median']:.0f} ({rps['min']:.0f}-{rps['max']:.0f}) | "
                         f"{p99['median']:.2f} ({p99['min']:.2f}-{p99['max']:.2f}) | {noisy}/{args.rounds} |")
    lines += ["", "| contender | check durations reported (ms): median | p99 | max | checks |", "|---|---|---|---|---|"]
    for kind in ("haproxy", "sluice"):
        d = durations[kind]
        lines.append(f"| {kind} | {q(d, 0.5)} | {q(d, 0.99)} | {max(d) if d else None} | {len(d)} |")
    lines.append("")
    for kind in ("haproxy", "sluice"):
        quiet, loud = summary(kind, "quiet", "p99_ms"), summary(kind, "storm", "p99_ms")
        lines.append(f"- {kind}: p99 with the storm / without: {loud['median'] / quiet['median']:.2f}x; "
                     f"req/s {summary(kind, 'storm', 'rps')['median'] / summary(kind, 'quiet', 'rps')['median']:.2f}x")
    s_storm, h_storm = summary("sluice", "storm", "p99_ms"), summary("haproxy", "storm", "p99_ms")
    lines.append(f"- during the storm, sluice / haproxy: p99 {s_storm['median'] / h_storm['median']:.2f}x, "
                 f"req/s {summary('sluice', 'storm', 'rps')['median'] / summary('haproxy', 'storm', 'rps')['median']:.2f}x")
    write_results(args.out, "checks", "\n".join(lines), {"machine": machine, "runs": runs, "durations": durations})


if __name__ == "__main__":
    main()
