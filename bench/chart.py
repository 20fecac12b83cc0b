#!/usr/bin/env python3
"""Draws bench/results/summary.png from the newest bulk, small-request and idle results: for each
metric, Sluice's median as a ratio to HAProxy's best configuration in the same run (the dashed
line at 1.0). Each bar's label says which way is better.
"""
import glob, json, os, sys


def newest(pattern, key):
    """The newest result with a summary entry `key` (an nbthread 1 contender: the chart compares those)."""
    for path in sorted(glob.glob(os.path.join("bench/results", pattern)), reverse=True):
        data = json.load(open(path))
        if key in data.get("summary", {}):
            return data
    return None


def main():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: matplotlib is not installed (pip install matplotlib); skipping the PNG", file=sys.stderr)
        return
    metrics = []  # (label, {engine: ratio})

    bulk = newest("bulk-*.json", "haproxy/upload")
    if bulk:
        t = bulk["summary"]
        for direction in ("upload", "download"):
            for field, label in (("gbit_per_s", f"bulk {direction}\nGbit/s (higher better)"), ("proxy_cpu_s_per_gb", f"bulk {direction}\nCPU/GB (lower better)")):
                h = t[f"haproxy/{direction}"][field]["median"]
                metrics.append((label, {e: t[f"{e}/{direction}"][field]["median"] / h for e in ("sluice", "sluice-uring") if f"{e}/{direction}" in t}))
    small = newest("http-*.json", "keepalive/haproxy")
    if small:
        t = small["summary"]
        for workload in ("keepalive", "churn"):
            for field, label in (("rps", f"{workload}\nreq/s (higher better)"), ("cpu_us", f"{workload}\nCPU/req (lower better)"), ("p99", f"{workload}\np99 (lower better)")):
                h = t[f"{workload}/haproxy"][field]["median"]
                metrics.append((label, {e: t[f"{workload}/{e}"][field]["median"] / h for e in ("sluice", "sluice-uring") if f"{workload}/{e}" in t}))
    idle = newest("idle-*.json", "haproxy")
    if idle:
        t = idle["summary"]
        metrics.append(("idle connection\nRSS (lower better)", {e: t[e]["median"] / t["haproxy"]["median"] for e in ("sluice", "sluice-uring") if e in t}))
    if not metrics:
        print("chart: no results in bench/results", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(metrics)), 4.8))
    width = 0.38
    for k, (engine, color) in enumerate((("sluice", "#2a7ab9"), ("sluice-uring", "#8cc0e8"))):
        xs = [i + (k - 0.5) * width for i, (_, r) in enumerate(metrics) if engine in r]
        ys = [r[engine] for _, r in metrics if engine in r]
        ax.bar(xs, ys, width, label="sluice (epoll)" if engine == "sluice" else "sluice (io_uring)", color=color)
        for x, y in zip(xs, ys):
            ax.text(x, y + 0.02, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="#444", linestyle="--", linewidth=1, label="HAProxy 2.6, best splice config = 1.0")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([m[0] for m in metrics], fontsize=7)
    ax.set_ylabel("Sluice / HAProxy (median)")
    machine = (bulk or small or idle)["machine"]
    ax.set_title(f"Sluice vs HAProxy, nbthread 1, same run each, {machine['cores']} cores, kernel {machine['kernel']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = "bench/results/summary.png"
    fig.savefig(out, dpi=110)
    print(f"chart: {out}")


if __name__ == "__main__":
    main()
