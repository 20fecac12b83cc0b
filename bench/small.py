#!/usr/bin/env python3
"""Small-request workloads through Sluice and HAProxy, side by side, with wrk against nginx.

  keepalive: wrk -c50 on a 1 KiB response over kept-alive connections: requests/s, p50/p99 latency,
             proxy CPU microseconds per request.
  churn:     the same with 'Connection: close': every request is a new connection through the
             proxy, so requests/s = new connections/s; proxy CPU microseconds per connection.

Contenders alternate within each round (direct, HAProxy with its best splice configuration,
Sluice); medians and min-max are reported, and rounds where other processes used CPU are flagged (see bulk.Measurement).

Every process here runs in this script's session. With the kernel's autogroup scheduling
(/proc/sys/kernel/sched_autogroup_enabled, on by default), each session shares the CPU as one group,
so where processes are started decides what a proxy gets: in a probe with nginx and the proxies in
one session, wrk in a second and one proxy in a third of its own, that proxy served 1.2x the
requests/s of the same binary in nginx's session. Compare contenders only when started alike.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(__file__))
import bulk  # noqa: E402
from bulk import (free_port, stop_all, machine_info, write_results, start_contenders,  # noqa: E402
                  thread_counts, comparisons, Measurement, launcher)

NGINX = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{ listen 127.0.0.1:{port} backlog=4096; {unix_listen}root {dir}/www; }}
}}
"""


def nginx_site(prefix, extra_connections=0):
    """A work folder with nginx's configuration and the 1 KiB page; returns (folder, nginx's port).
    `extra_connections` raises nginx's limits for that many held connections."""
    work = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(f"{work}/www")
    os.makedirs(f"{work}/tmp")
    os.chmod(work, 0o755)  # nginx's worker runs unprivileged and must read the page
    with open(f"{work}/www/1k", "w") as f:
        f.write("x" * 1023 + "\n")
    port = free_port()
    # UNIX=1: nginx also listens on a UNIX socket, the `-unix` contenders' server.
    conf = NGINX.format(dir=work, port=port, unix_listen=f"listen unix:{work}/nginx.sock backlog=4096; " if bulk.UNIX else "")
    if bulk.UNIX:
        bulk.UNIX_SERVER = f"{work}/nginx.sock"
    if extra_connections:
        # nginx starts closing idle connections once fewer than 1/16 of worker_connections are free.
        slots = extra_connections + extra_connections // 8 + 500
        conf = f"worker_rlimit_nofile {slots + 100};\n" + conf.replace("worker_connections 4096", f"worker_connections {slots}")
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(conf)
    return work, port


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))

    def lat(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, text)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return {"rps": rps, "requests": total, "errors": errors, "p50_ms": lat(50), "p99_ms": lat(99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 5)))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SECONDS_PER_RUN", 5)))
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=thread_counts, default=thread_counts(os.environ.get("THREADS", "1")),
                    help="nbthread for every proxy; a list (1,2) runs each proxy at each count")
    ap.add_argument("--wrk-threads", type=int, default=None, help="wrk -t (default: the largest nbthread)")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    if os.environ.get("PIN") == "1":
        ap.error("PIN=1 is for bench/run bulk (wrk and nginx are not pinned here)")
    wrk_threads = args.wrk_threads or max(args.threads)

    work, nginx_port = nginx_site("sluice-http-")
    procs = []
    start = launcher(work, procs)

    runs = []
    try:
        start(["nginx", "-c", f"{work}/nginx.conf"], nginx_port)
        contenders = start_contenders(start, work, args.sluice, nginx_port, 1 << 20, args.threads)
        names = list(contenders)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for workload in ("keepalive", "churn"):
                for name in order:
                    proc, port = contenders[name]
                    cmd = ["wrk", f"-t{wrk_threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
                    if workload == "churn":
                        cmd += ["-H", "Connection: close"]
                    cmd.append(f"http://127.0.0.1:{port}/1k")
                    measurement = Measurement(proc, procs)
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60).stdout
                    result = parse_wrk(out)
                    result.update({"round": r + 1, "contender": name, "workload": workload, **measurement.finish()})
                    cpu = result["proxy_cpu_s"]
                    result["proxy_cpu_us_per_request"] = cpu * 1e6 / result["requests"] if proc and result["requests"] else None
                    result["proxy_user_us_per_request"] = result["proxy_user_cpu_s"] * 1e6 / result["requests"] if proc and result["requests"] else None
                    runs.append(result)
                    print(f"round {r+1} {workload:9s} {name:17s} {result['rps']:9.0f} req/s  p50 {result['p50_ms']}ms p99 {result['p99_ms']}ms"
                          + (f"  {result['proxy_cpu_us_per_request']:.1f} us/req ({result['proxy_user_us_per_request']:.1f} user)" if proc else "")
                          + (f"  errors {result['errors']}" if result["errors"] else ""), flush=True)
    finally:
        stop_all(procs)

    def summary(name, workload, key):
        vals = [x[key] for x in runs if x["contender"] == name and x["workload"] == workload and x[key] is not None]
        return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None

    machine = machine_info()
    lines = [f"# Small requests, wrk -t{wrk_threads} -c{args.connections}, 1 KiB from nginx, {args.rounds} rounds x {args.seconds} s, "
             f"nbthread {','.join(map(str, args.threads))}",
             "", f"Machine: {machine['cores']} cores, kernel {machine['kernel']}; {machine['haproxy']}", "",
             "| workload | contender | req/s median (min-max) | p50 ms | p99 ms | proxy CPU us/req median (min-max) | of which user | errors | noisy |",
             "|---|---|---|---|---|---|---|---|---|"]
    table = {}
    for workload in ("keepalive", "churn"):
        for name in names:
            rps = summary(name, workload, "rps")
            cpu = summary(name, workload, "proxy_cpu_us_per_request")
            user = summary(name, workload, "proxy_user_us_per_request")
            p50 = summary(name, workload, "p50_ms")
            p99 = summary(name, workload, "p99_ms")
            errors = sum(x["errors"] for x in runs if x["contender"] == name and x["workload"] == workload)
            noisy = sum(1 for x in runs if x["contender"] == name and x["workload"] == workload and x["noisy"])
            table[f"{workload}/{name}"] = {"rps": rps, "cpu_us": cpu, "p50": p50, "p99": p99, "errors": errors, "noisy": noisy}
            lines.append(f"| {workload} | {name} | {rps['median']:.0f} ({rps['min']:.0f}-{rps['max']:.0f}) | "
                         f"{p50['median']:.2f} | {p99['median']:.2f} | "
                         + (f"{cpu['median']:.1f} ({cpu['min']:.1f}-{cpu['max']:.1f})" if cpu else "-")
                         + (f" | {user['median']:.1f} ({user['min']:.1f}-{user['max']:.1f})" if user else " | -")
                         + f" | {errors} | {noisy}/{args.rounds} |")
    lines.append("")
    for workload in ("keepalive", "churn"):
        def value(name, metric):
            cell = table.get(f"{workload}/{name}", {}).get(metric)
            return cell["median"] if cell else None

        def noisy(a, b):
            return table[f"{workload}/{a}"]["noisy"] + table[f"{workload}/{b}"]["noisy"] > args.rounds
        def per_round(name, metric):
            key = {"cpu_us": "proxy_cpu_us_per_request", "p99": "p99_ms"}.get(metric, metric)
            return {x["round"]: x[key] for x in runs
                    if x["contender"] == name and x["workload"] == workload and x[key] is not None}
        lines += [line.replace("- ", f"- {workload}: ", 1)
                  for line in comparisons(args.threads, value, noisy, [("rps", "req/s"), ("cpu_us", "CPU per request"), ("p99", "p99")],
                                          per_round)]
    lines += rule_costs(runs, names)
    if bulk.LOGS:
        lines.append(f"- syslog lines the sink received over the whole run: {bulk._log_sink.get('lines', 0)}")
    if bulk.METRICS:
        lines.append(f"- exporter scrapes over the whole run: {bulk._scraped['scrapes']} answered, {bulk._scraped['failures']} failed")
    write_results(args.out, "http", "\n".join(lines), {"machine": machine, "args": vars(args), "runs": runs, "summary": table})
    shutil.rmtree(work, ignore_errors=True)


def rule_costs(runs, names):
    """With RULES=1 or LOGS=1: what the rule set (or logging every session) adds to each proxy's
    CPU per request, from the rounds' pairs (a contender with the variant and the same one without,
    measured minutes apart at most), so that the proxies' costs of the same work compare in
    microseconds."""
    lines = []
    for variant, what in (("rules", "the rules add"), ("logs", "logging adds"), ("metrics", "being scraped every second adds")):
        for workload in ("keepalive", "churn"):
            for base in ("haproxy", "sluice", "sluice-uring"):
                if f"{base}-{variant}" not in names:
                    continue

                def per_round(name, key):
                    return {x["round"]: x[key] for x in runs if x["contender"] == name and x["workload"] == workload and x[key] is not None}
                cells = []
                for key, label in (("proxy_cpu_us_per_request", "CPU"), ("proxy_user_us_per_request", "user CPU")):
                    plain, varied = per_round(base, key), per_round(f"{base}-{variant}", key)
                    deltas = [varied[r] - plain[r] for r in plain if r in varied]
                    if deltas:
                        cells.append(f"{label} {statistics.median(deltas):+.1f} us ({min(deltas):+.1f} to {max(deltas):+.1f})")
                if cells:
                    lines.append(f"- {workload}: {what} to {base}, per request, median of the rounds' differences: " + ", ".join(cells))
    return ([""] + lines) if lines else []


if __name__ == "__main__":
    main()
