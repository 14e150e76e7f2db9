#!/usr/bin/env python3
"""Summarise scripts/bench.sh results: medians per (workload, param, allocator), ratio to jemalloc,
printed tables, summary CSV (with each one's best run, `best_ops_per_sec`, for
bench_targets.py) and an SVG bar chart. Standard library only.

usage: bench_chart.py results.csv summary.csv chart.svg

Ratio to jemalloc is a speed ratio: median ops/s of the allocator / median ops/s of jemalloc
(> 1 = faster than jemalloc). For drift, a second entry compares rss_over_live the same way
(jemalloc's / the allocator's, so > 1 = less memory than jemalloc). The memory workloads report
other figures: idle the RSS left after idling (end_mib, and t25_s, the seconds until RSS fell
under a quarter of its peak; ratio = jemalloc's end RSS / the allocator's, > 1 = less left),
refault the seconds of its replacement loop (loop_s; ratio = jemalloc's / the allocator's,
> 1 = faster) and the RSS left after it idles (end_mib). growth reports its seconds (secs; ratio =
jemalloc's / the allocator's) and the share of reallocs that moved the block (moved_pct);
threads the RSS with every thread parked (parked_mib; ratio = jemalloc's / the allocator's),
at once after they exited (exit_mib) and after idling (end_mib).
"""
import csv
import math
import statistics
import sys

ORDER = ["oxmalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc"]
COLORS = {"oxmalloc": "#d62728", "glibc": "#7f7f7f", "jemalloc": "#1f77b4",
          "mimalloc": "#2ca02c", "tcmalloc": "#ff7f0e"}
WORKLOADS = ["pairs", "batch", "larson", "prodcons", "realloc", "threadchurn", "drift", "idle", "refault",
             "teardown", "growth", "threads", "rust"]
UNITS = {
    "pairs": ("ns/pair", "ns"), "batch": ("ns per malloc+free", "ns"),
    "larson": ("Mops/s", "mops"), "prodcons": ("Mops/s", "mops"),
    "realloc": ("Mreallocs/s", "mops"), "threadchurn": ("threads/s", "ops"),
    "drift": ("Mops/s", "mops"),
    "idle": ("MiB left after idling (s to fall under 25 %)", "idle"),
    "refault": ("s per loop, MiB left after idling", "refault"),
    "teardown": ("ns per free, shuffled", "ns"),
    "growth": ("s, % of reallocs moved", "growth"),
    "threads": ("MiB parked / at exit / after idling", "threads"),
    # The Rust row: seconds per run, wall / CPU (user + system) time of the pipeline; the
    # ratio is from documents per wall second.
    "rust": ("s per run (wall/cpu)", "secs"),
}
# Figures of the memory workloads (RESULT extras), medians like the rest.
EXTRAS = ["end_mib", "t25_s", "loop_s", "faults_k", "secs", "cpu_secs", "moved_pct", "parked_mib", "exit_mib"]


def fnum(x):
    try:
        v = float(x)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def sort_key(p):
    v = fnum(p)
    return (0, v, "") if v is not None else (1, 0, p)


def load(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                continue
            k = (row["workload"], row["param"], row["allocator"])
            runs.setdefault(k, []).append(row)
    return runs


def extra(row, key):
    for kv in (row.get("extra") or "").split():
        k, _, v = kv.partition("=")
        if k == key:
            return v
    return None


def med(rows, col):
    vals = [fnum(r[col]) if col in r else fnum(extra(r, col)) for r in rows]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def best(rows, col):
    vals = [v for v in (fnum(r[col]) for r in rows) if v is not None]
    return max(vals) if vals else None


def summarise(runs):
    s = {}
    for k, rows in runs.items():
        s[k] = {
            "runs": len(rows),
            "ops": med(rows, "ops_per_sec"),
            "best_ops": best(rows, "ops_per_sec"),
            "ns": med(rows, "ns_per_op"),
            "rss": med(rows, "peak_rss_kib"),
            "rol": med(rows, "rss_over_live"),
            "secs": med(rows, "secs"),
            "cpu": med(rows, "cpu_secs"),
        }
        for x in EXTRAS:
            s[k][x] = med(rows, x)
    for (w, p, a), d in s.items():
        je = s.get((w, p, "jemalloc"))
        d["ratio"] = d["ops"] / je["ops"] if je and je["ops"] and d["ops"] else None
        d["rol_ratio"] = (je["rol"] / d["rol"]) if je and je.get("rol") and d["rol"] else None
        # The memory workloads: less left / a shorter loop is better.
        fig = {"idle": "end_mib", "refault": "loop_s", "growth": "secs", "threads": "parked_mib"}.get(w)
        if fig:
            d["ratio"] = je[fig] / d[fig] if je and je.get(fig) and d.get(fig) else None
    return s


def allocators_in(s):
    seen = {a for (_, _, a) in s}
    return [a for a in ORDER if a in seen] + sorted(seen - set(ORDER))


def groups(s):
    ws = [w for w in WORKLOADS if any(k[0] == w for k in s)]
    ws += sorted({k[0] for k in s} - set(WORKLOADS))
    out = []
    for w in ws:
        for p in sorted({k[1] for k in s if k[0] == w}, key=sort_key):
            out.append((w, p))
    return out


def fmt_val(w, d):
    unit = UNITS.get(w, ("ops/s", "ops"))[1]
    g = lambda v, f: (f % v) if v is not None else "-"
    if unit == "idle":
        return "%s (%s s)" % (g(d.get("end_mib"), "%.1f"), g(d.get("t25_s"), "%.1f"))
    if unit == "refault":
        return "%s s, %s" % (g(d.get("loop_s"), "%.2f"), g(d.get("end_mib"), "%.0f"))
    if unit == "growth":
        return "%s s, %s %%" % (g(d.get("secs"), "%.2f"), g(d.get("moved_pct"), "%.2f"))
    if unit == "threads":
        return "%s/%s/%s" % (g(d.get("parked_mib"), "%.0f"), g(d.get("exit_mib"), "%.0f"), g(d.get("end_mib"), "%.0f"))
    if unit == "ns":
        return "%.1f" % d["ns"] if d["ns"] is not None else "-"
    if unit == "secs":
        if d["secs"] is None:
            return "-"
        return "%.2f/%.2f" % (d["secs"], d["cpu"]) if d["cpu"] is not None else "%.2f" % d["secs"]
    if d["ops"] is None:
        return "-"
    return "%.2f" % (d["ops"] / 1e6) if unit == "mops" else "%.0f" % d["ops"]


def print_tables(s):
    allocs = allocators_in(s)
    for w in [g for g in dict.fromkeys(w for w, _ in groups(s))]:
        cell = 32 if w in ("idle", "refault", "growth", "threads") else 26
        label = UNITS.get(w, ("ops/s",))[0]
        extra = ", rss/live" if w == "drift" else ""
        print("\n== %s: median %s (x vs jemalloc, >1 better) | peak RSS MiB%s ==" % (w, label, extra))
        print("%-8s" % "param" + "".join("%*s" % (cell, a) for a in allocs))
        for (ww, p) in groups(s):
            if ww != w:
                continue
            line = "%-8s" % p
            for a in allocs:
                d = s.get((w, p, a))
                if not d:
                    line += "%*s" % (cell, "-")
                    continue
                r = "%.2fx" % d["ratio"] if d["ratio"] else "-"
                txt = "%s (%s) %s" % (fmt_val(w, d), r, "%.1f" % (d["rss"] / 1024) if d["rss"] else "-")
                if w == "drift" and d["rol"] is not None:
                    txt += " %.2f" % d["rol"]
                line += "%*s" % (cell, txt)
            print(line)


def write_summary(s, path):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "param", "allocator", "runs", "median_ops_per_sec", "median_ns_per_op",
                     "ratio_vs_jemalloc", "median_peak_rss_kib", "median_rss_over_live", "best_ops_per_sec"]
                    + ["median_" + x for x in EXTRAS])
        for (w, p) in groups(s):
            for a in allocators_in(s):
                d = s.get((w, p, a))
                if not d:
                    continue
                g = lambda v, f="%.4g": (f % v) if v is not None else ""
                wr.writerow([w, p, a, d["runs"], g(d["ops"], "%.1f"), g(d["ns"], "%.3f"), g(d["ratio"], "%.4f"),
                             g(d["rss"], "%.0f"), g(d["rol"], "%.4f"), g(d["best_ops"], "%.1f")]
                            + [g(d.get(x), "%.3f") for x in EXTRAS])


def esc(t):
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(s, path):
    allocs = allocators_in(s)
    bars = []  # (label, {alloc: ratio})
    for (w, p) in groups(s):
        bars.append(("%s %s" % (w, p), {a: s[(w, p, a)]["ratio"] for a in allocs if (w, p, a) in s}))
        if w == "drift":
            bars.append(("drift mem", {a: s[(w, p, a)]["rol_ratio"] for a in allocs if (w, p, a) in s}))
    lo, hi = -6, 6  # log2 range of the y axis: 1/64 .. 64
    bw, gap = 7, 10
    gw = bw * len(allocs) + gap
    left, top, plot_h, bottom = 60, 50, 360, 110
    width = max(left + gw * len(bars) + 20, left + 520 + 90 * len(allocs))
    height = top + plot_h + bottom
    y = lambda l2: top + plot_h * (hi - l2) / (hi - lo)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
         % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">oxmalloc bench: speed relative to jemalloc (log scale; &gt;1 = faster;'
         ' "drift mem" = jemalloc rss/live / allocator rss/live; idle = jemalloc RSS left / allocator RSS left)</text>'
         % left]
    for l2 in range(lo, hi + 1):
        yy = y(l2)
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"/>'
                 % (left, width - 20, yy, yy, "#000" if l2 == 0 else "#ddd", "1.2" if l2 == 0 else "0.6"))
        lab = ("%g" % 2 ** l2) if l2 >= 0 else "1/%d" % 2 ** -l2
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 5, yy + 4, lab))
    for gi, (label, vals) in enumerate(bars):
        x0 = left + gi * gw + gap / 2
        for ai, a in enumerate(allocs):
            v = vals.get(a)
            if not v:
                continue
            l2 = max(lo, min(hi, math.log2(v)))
            y1, y0 = y(max(l2, 0)), y(min(l2, 0))
            o.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.3gx</title></rect>'
                     % (x0 + ai * bw, y1, bw - 1, max(y0 - y1, 0.5), COLORS.get(a, "#999"), esc(a), esc(label), v))
        xc = x0 + bw * len(allocs) / 2
        o.append('<text transform="translate(%.1f,%d) rotate(-60)" text-anchor="end">%s</text>'
                 % (xc, top + plot_h + 12, esc(label)))
    for ai, a in enumerate(allocs):
        o.append('<rect x="%d" y="30" width="10" height="10" fill="%s"/><text x="%d" y="39">%s</text>'
                 % (left + 500 + ai * 90, COLORS.get(a, "#999"), left + 514 + ai * 90, esc(a)))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    s = summarise(load(sys.argv[1]))
    if not s:
        sys.exit("bench_chart: no successful runs in %s" % sys.argv[1])
    print_tables(s)
    write_summary(s, sys.argv[2])
    write_svg(s, sys.argv[3])


if __name__ == "__main__":
    main()
