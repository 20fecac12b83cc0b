#!/usr/bin/env python3
"""Resident memory per idle connection: hold N client connections open through each proxy (each
one also holds a connection to nginx) and compare the proxy's VmRSS before and after.

Contenders alternate each round; reported: bytes of RSS per held connection, median and min-max.
N defaults to 3,000: with the client, the proxy (two descriptors per session) and nginx each in
their own process, that fits the 20,000-descriptor limit with room to spare.
"""
import argparse, os, resource, shutil, signal, socket, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from bulk import free_port, wait_listening, stop_all, machine_info, write_results, launcher, engine_line  # noqa: E402
from small import nginx_site  # noqa: E402

CONFIG = """global
{engine}  maxconn {maxconn}
  nbthread 1
  maxpipes 256
  tune.pipesize 1048576
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  option splice-request
  option splice-response
listen idle
  bind 127.0.0.1:{listen}
  backlog 8192
  server s1 127.0.0.1:{server}
"""


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def established_to(port):
    """Established TCP connections whose remote port is `port` (the proxy's side towards nginx)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    # As many as the descriptor limit lets a proxy hold: two descriptors per connection, with room
    # for the process's own (listeners, reactors, pipes, the runtime).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this script holds the client ends
    ap.add_argument("--connections", type=int, default=min(9000, (hard - 1000) // 2))
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()

    work, nginx_port = nginx_site("sluice-idle-", extra_connections=args.connections)
    procs = []
    runs = []
    try:
        launcher(work, procs)(["nginx", "-c", f"{work}/nginx.conf"], nginx_port)
        commands = {"haproxy": ["haproxy", "-db", "-f"], "sluice": [args.sluice, "-q", "-f"], "sluice-uring": [args.sluice, "-q", "-f"]}
        names = list(commands)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                # A fresh process each time: pools and slabs only grow, so a second measurement on
                # the same process would see the memory the first one left.
                port = free_port()
                path = f"{work}/{name}.cfg"
                with open(path, "w") as f:
                    f.write(CONFIG.format(listen=port, server=nginx_port, engine=engine_line(name), maxconn=args.connections + 100))
                proc = subprocess.Popen(commands[name] + [path], stdout=subprocess.DEVNULL, stderr=open(f"{work}/{name}.log", "w"))
                wait_listening(port, proc)
                time.sleep(0.3)
                before = rss_bytes(proc.pid)
                baseline = established_to(nginx_port)
                clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.connections)]
                deadline = time.time() + 30
                while established_to(nginx_port) - baseline < args.connections and time.time() < deadline:
                    time.sleep(0.1)  # waiting for the proxy to open every server connection
                held = established_to(nginx_port) - baseline
                time.sleep(0.5)
                after = rss_bytes(proc.pid)
                for c in clients:
                    c.close()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                per = (after - before) / max(held, 1)
                runs.append({"round": r + 1, "contender": name, "connections": args.connections, "held": held,
                             "rss_before": before, "rss_after": after, "bytes_per_connection": per})
                print(f"round {r+1} {name:12s} {held} held  RSS {before/1e6:.1f} -> {after/1e6:.1f} MB  {per:.0f} B/connection", flush=True)
                time.sleep(0.5)  # let nginx close the previous round's connections
    finally:
        stop_all(procs)

    machine = machine_info()
    lines = [f"# Idle connections: {args.connections} held through each proxy, {args.rounds} rounds", "",
             f"Machine: {machine['cores']} cores, kernel {machine['kernel']}; {machine['haproxy']}", "",
             "| contender | RSS bytes per idle connection, median (min-max) |", "|---|---|"]
    table = {}
    for name in names:
        vals = [x["bytes_per_connection"] for x in runs if x["contender"] == name]
        table[name] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        lines.append(f"| {name} | {table[name]['median']:.0f} ({table[name]['min']:.0f}-{table[name]['max']:.0f}) |")
    lines += [""] + [f"- {name}/HAProxy resident memory per idle connection: {table[name]['median'] / table['haproxy']['median']:.2f}x"
                     for name in names if name != "haproxy"] + [
              "- RSS only: kernel socket buffers are not counted for either. Each measurement uses a fresh process."]
    write_results(args.out, "idle", "\n".join(lines), {"machine": machine, "args": vars(args), "runs": runs, "summary": table})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
