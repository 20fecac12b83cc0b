#!/usr/bin/env python3
"""Draws bench/results/summary.png from the newest bulk, small-request and idle results: for each
metric, Sluice's median as a ratio to HAProxy's better configuration for that metric in the same
run (its defaults or forced splice, whichever did better: the dashed line at 1.0). Each bar's
label says which way is better.
"""
import glob, json, os, sys


ENGINES = ("sluice", "sluice-uring")


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

    def ratios(table, key, field, lower_is_better):
        """Each Sluice engine's median over HAProxy's better one of its two configurations;
        `key(name)` is the contender's summary key."""
        def median(name):
            return ((table.get(key(name)) or {}).get(field) or {}).get("median")
        haproxy = [v for v in (median("haproxy"), median("haproxy-default")) if v]
        reference = min(haproxy) if lower_is_better else max(haproxy)
        return {e: median(e) / reference for e in ENGINES if median(e)}

    bulk = newest("bulk-*.json", "haproxy/upload")
    if bulk:
        for direction in ("upload", "download"):
            for field, label, lower in (("gbit_per_s", f"bulk {direction}\nGbit/s (higher better)", False),
                                        ("proxy_cpu_s_per_gb", f"bulk {direction}\nCPU/GB (lower better)", True)):
                metrics.append((label, ratios(bulk["summary"], lambda name: f"{name}/{direction}", field, lower)))
    small = newest("http-*.json", "keepalive/haproxy")
    if small:
        for workload in ("keepalive", "churn"):
            for field, label, lower in (("rps", f"{workload}\nreq/s (higher better)", False), ("cpu_us", f"{workload}\nCPU/req (lower better)", True),
                                        ("p99", f"{workload}\np99 (lower better)", True)):
                metrics.append((label, ratios(small["summary"], lambda name: f"{workload}/{name}", field, lower)))
    idle = newest("idle-*.json", "haproxy")
    if idle:
        t = idle["summary"]
        metrics.append(("idle connection\nRSS (lower better)", {e: t[e]["median"] / t["haproxy"]["median"] for e in ENGINES if e in t}))
    if not metrics:
        print("chart: no results in bench/results", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(metrics)), 4.8))
    width = 0.38
    for k, (engine, color) in enumerate(zip(ENGINES, ("#2a7ab9", "#8cc0e8"))):
        xs = [i + (k - 0.5) * width for i, (_, r) in enumerate(metrics) if engine in r]
        ys = [r[engine] for _, r in metrics if engine in r]
        ax.bar(xs, ys, width, label="sluice (epoll)" if engine == "sluice" else "sluice (io_uring, the default)", color=color)
        for x, y in zip(xs, ys):
            ax.text(x, y + 0.02, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="#444", linestyle="--", linewidth=1, label="HAProxy 2.6, its better config per metric (default or forced splice) = 1.0")
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
