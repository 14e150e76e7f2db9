#!/usr/bin/env python3
"""Prints scripts/bench.sh's summary.csv as the README's Markdown table: one row per workload and
param, one column per allocator, each cell the median and the peak RSS in MiB. Standard
library only.

usage: bench_readme_table.py summary.csv
"""
import csv
import sys

ORDER = ["oxmalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc"]
# workload -> (row label, unit, how to show a row's figure)
ROWS = {
    "pairs": ("pairs {p}", "ns ↓", "ns"),
    "batch": ("batch {p}", "ns ↓", "ns"),
    "larson": ("larson, {p} threads", "Mops/s ↑", "mops"),
    "prodcons": ("producer/consumer", "Mops/s ↑", "mops"),
    "realloc": ("realloc, {p}", "Mreallocs/s ↑", "mops"),
    "threadchurn": ("thread churn", "threads/s ↑", "ops"),
    "drift": ("drifting cache", "Mops/s ↑", "mops"),
    "teardown": ("teardown {p}, shuffled", "ns per free ↓", "ns"),
    "growth": ("growing buffers", "s ↓ (% moved)", "growth"),
    "threads": ("{p} parked threads", "RSS MiB ↓ parked / exited / +12 s", "threads"),
    "idle": ("idle, {p} blocks", "MiB left ↓ (s to 25 %)", "idle"),
    "refault": ("refault", "s ↓ (MiB left)", "refault"),
    "rust": ("Rust JSON pipeline", "s ↓", "secs"),
}
SIZES = {"16": "16 B", "64": "64 B", "256": "256 B", "1024": "1 KiB", "4096": "4 KiB", "16384": "16 KiB",
         "32768": "32 KiB", "65536": "64 KiB", "262144": "256 KiB"}


def f(r, k):
    try:
        return float(r[k]) if r.get(k) not in (None, "") else None
    except ValueError:
        return None


def cell(kind, r):
    mib = f(r, "median_peak_rss_kib")
    rss = " · %.1f" % (mib / 1024) if mib else ""
    ops, ns = f(r, "median_ops_per_sec"), f(r, "median_ns_per_op")
    if kind == "ns":
        return "%.1f%s" % (ns, rss) if ns is not None else "-"
    if kind == "mops":
        return "%.2f%s" % (ops / 1e6, rss) if ops is not None else "-"
    if kind == "ops":
        return "%.0f%s" % (ops, rss) if ops is not None else "-"
    if kind == "idle":
        end, t25 = f(r, "median_end_mib"), f(r, "median_t25_s")
        return "%.1f (%s)" % (end, "%.1f s" % t25 if t25 is not None and t25 >= 0 else "never") if end is not None else "-"
    if kind == "refault":
        loop, end = f(r, "median_loop_s"), f(r, "median_end_mib")
        return "%.2f (%.0f)" % (loop, end) if loop is not None and end is not None else "-"
    if kind == "secs":
        s = f(r, "median_secs")
        return "%.2f%s" % (s, rss) if s is not None else "-"
    if kind == "growth":
        s, moved = f(r, "median_secs"), f(r, "median_moved_pct")
        return "%.2f (%.1f %%)" % (s, moved) if s is not None and moved is not None else "-"
    if kind == "threads":
        parked, exited, end = f(r, "median_parked_mib"), f(r, "median_exit_mib"), f(r, "median_end_mib")
        return "%.0f / %.0f / %.0f" % (parked, exited, end) if None not in (parked, exited, end) else "-"
    return "-"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = {}
    order = []
    with open(sys.argv[1], newline="") as fh:
        for r in csv.DictReader(fh):
            key = (r["workload"], r["param"])
            if key not in rows:
                rows[key] = {}
                order.append(key)
            rows[key][r["allocator"]] = r
    allocs = [a for a in ORDER if any(a in v for v in rows.values())]
    print("| workload | unit | " + " | ".join(allocs) + " |")
    print("|---|---|" + "---|" * len(allocs))
    for w, p in order:
        label, unit, kind = ROWS.get(w, (w + " {p}", "", "ops"))
        name = label.format(p=SIZES.get(p, p))
        print("| %s | %s | %s |" % (name, unit, " | ".join(cell(kind, rows[(w, p)][a]) if a in rows[(w, p)] else "—"
                                                        for a in allocs)))
        if w == "drift":
            print("| drifting cache, RSS / live after purge | ratio ↓ | %s |" % " | ".join(
                "%.2f" % f(rows[(w, p)][a], "median_rss_over_live") if a in rows[(w, p)] and f(rows[(w, p)][a], "median_rss_over_live") else "—"
                for a in allocs))


if __name__ == "__main__":
    main()
