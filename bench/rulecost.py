#!/usr/bin/env python3
"""What a rule set costs each new connection, counted instead of timed: HAProxy and Sluice run under
valgrind's callgrind with a cache simulation, with and without bulk.py's RULE_SET (10 ACLs, a stick
table tracking the source, two reject rules, two use_backend rules), and the same client opens the
same connections through each. Instructions and simulated cache misses per connection are
deterministic: what CPU time (±20 % between rounds on two shared cores) cannot resolve, they can.

  python3 bench/rulecost.py --sluice .build/release/sluice [--connections 1000]

For each proxy: instructions (Ir), first-level data-cache misses (D1mr+D1mw) and last-level misses
(DLmr+DLmw, what costs a trip to memory) per connection, in user space only (callgrind sees no
kernel work), counted from the first measured connection to the last (warm-up excluded); then what
the rules add (rules minus plain) and Sluice's functions that add the most. Sluice runs on epoll
(valgrind does not run io_uring; the rules do not depend on the engine).
"""
import argparse, glob, os, re, shutil, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from bulk import free_port, wait_listening, config, write_results, machine_info  # noqa: E402
from small import nginx_site  # noqa: E402

REQUEST = b"GET /1k HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
EVENTS = ["Ir", "D1mr", "D1mw", "DLmr", "DLmw"]


def connections(port, count):
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(REQUEST)
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"port {port} answered {data[:60]!r}")


def totals(path):
    """The event totals of a callgrind dump."""
    with open(path) as f:
        text = f.read()
    names = re.search(r"^events: (.*)$", text, re.M).group(1).split()
    values = [int(v) for v in re.search(r"^totals: (.*)$", text, re.M).group(1).split()]
    return dict(zip(names, values))


def measure(kind, sluice, work, backend, count, warmup):
    """Runs one proxy under callgrind; returns its totals over `count` connections and the dump."""
    port = free_port()
    cfg = os.path.join(work, f"{kind}.cfg")
    with open(cfg, "w") as f:
        f.write(config(kind, port, backend, 1 << 20, 1))
    out = os.path.join(work, f"{kind}.callgrind")
    command = ["haproxy", "-db", "-f", cfg] if kind.startswith("haproxy") else [sluice, "-q", "-f", cfg]
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes", "--vgdb=yes",
                             f"--callgrind-out-file={out}"] + command, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, f"{kind}.valgrind.log"), "w"))
    try:
        wait_listening(port, proc, timeout=120)
        connections(port, warmup)
        control = lambda *a: subprocess.run(["callgrind_control", *a, str(proc.pid)], check=True, capture_output=True)
        control("--instr=on")
        connections(port, count)
        control("--instr=off")
        control("--dump=measured")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    dumps = sorted(p for p in glob.glob(out + "*") if p != out)
    dump = dumps[0] if dumps else out
    return totals(dump), dump


def own_instructions(dump):
    """{function: instructions in its own code} of a dump, names demangled."""
    text = subprocess.run(["callgrind_annotate", "--show=Ir", "--inclusive=no", "--threshold=100", dump], capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+) \([^)]*\)\s+(.*?)(?: \[[^]]*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            rows.append((m.group(2), int(m.group(1).replace(",", ""))))
    demangler = shutil.which("swift-demangle")
    names = [r[0] for r in rows]
    if demangler:
        names = subprocess.run([demangler, "--simplified"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    totals = {}
    for name, (_, n) in zip(names, rows):
        totals[name] = totals.get(name, 0) + n
    return totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--proxies", default="haproxy,sluice", help="which of haproxy and sluice to count (both for the comparison)")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "haproxy", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"rulecost needs {tool} (apt-get install valgrind haproxy nginx-light)")

    work, backend = nginx_site("sluice-rulecost-")
    # Valgrind 3.19 cannot read the toolchain's DWARF 5: a copy without debug information keeps the
    # symbols, which is all the per-function figures need.
    sluice = os.path.join(work, "sluice")
    subprocess.run(["objcopy", "--strip-debug", args.sluice, sluice], check=True)
    nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf"], stderr=subprocess.DEVNULL)
    results, dumps = {}, {}
    try:
        wait_listening(backend, nginx)
        proxies = args.proxies.split(",")
        for kind in [k for p in proxies for k in (p, f"{p}-rules")]:
            t, dumps[kind] = measure(kind, sluice, work, backend, args.connections, args.warmup)
            results[kind] = {e: t.get(e, 0) / args.connections for e in EVENTS}
            print(f"{kind}: {results[kind]['Ir']:.0f} instructions per connection", flush=True)
    finally:
        nginx.terminate()
        nginx.wait()

    def row(name, r):
        return f"| {name} | {r['Ir']:,.0f} | {r['D1mr'] + r['D1mw']:,.1f} | {r['DLmr'] + r['DLmw']:,.2f} |"
    lines = [f"# What the rule set costs per new connection, counted by callgrind ({args.connections} connections after {args.warmup} of warm-up)", "",
             "Machine: {cores} cores, kernel {kernel}, {haproxy}".format(**machine_info()), "",
             "User-space work of the proxy process only (the kernel's is the same with or without rules); Sluice on epoll.", "",
             "| proxy | instructions / connection | L1 data misses / connection | last-level misses / connection |", "|---|---|---|---|"]
    for kind in results:
        lines.append(row(kind, results[kind]))
    lines += ["", "**What the rules add** (rules minus plain):", "",
              "| proxy | instructions | L1 data misses | last-level misses |", "|---|---|---|---|"]
    added = {}
    for proxy in proxies:
        added[proxy] = {e: results[f"{proxy}-rules"][e] - results[proxy][e] for e in EVENTS}
        lines.append(row(proxy, added[proxy]))
    if len(added) == 2 and added["haproxy"]["Ir"] > 0:
        lines += ["", f"Sluice / HAProxy, added instructions: {added['sluice']['Ir'] / added['haproxy']['Ir']:.2f}x; "
                  f"whole connection with rules: {results['sluice-rules']['Ir'] / results['haproxy-rules']['Ir']:.2f}x"]
    if "sluice" not in proxies:
        return write_results(args.out, "rulecost", "\n".join(lines), {"per_connection": results, "added": added})
    plain, rules = own_instructions(dumps["sluice"]), own_instructions(dumps["sluice-rules"])
    grown = sorted(((rules.get(f, 0) - plain.get(f, 0)) / args.connections, f) for f in set(plain) | set(rules))[::-1][:15]
    lines += ["", "Sluice's functions whose own instructions grow most with the rules (per connection):", ""]
    lines += [f"- {d:,.0f}  `{f[:140]}`" for d, f in grown if d > 0]
    write_results(args.out, "rulecost", "\n".join(lines), {"per_connection": results, "added": added})


if __name__ == "__main__":
    main()
