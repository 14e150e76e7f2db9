#!/usr/bin/env python3
"""Reads scripts/bench.sh's summary.csv and prints the targets against it, one line per
target and row, so that the README's reading of a table can be rerun. Standard library only.

usage: bench_targets.py summary.csv [TRACE_DIR]

Targets (speed = median ops/s; ratios from the medians of one run):
  - every row: oxmalloc >= jemalloc, and >= 0.9 x the faster of mimalloc and tcmalloc;
  - pairs of 16 and 256 B: at most 1.15 x slower than the faster of jemalloc and tcmalloc;
  - batches of 32 KiB: <= 60 ns per malloc+free;
  - drift: RSS/live <= 1.25 and <= jemalloc's;
  - larson: 2-thread over 1-thread throughput (reported, no bound);
  - idle: the lowest RSS left of the five, reached within dirty_decay_ms + 2 s = 12 s (from
    the traces in TRACE_DIR: oxmalloc's RSS 12 s after the frees against every other
    allocator's at the end);
  - refault: a shorter loop than glibc's and tcmalloc's (and which allocator is fastest),
    and the RSS left after the loop and its idle phase under a quarter of the peak;
  - teardown: ns per free at or below the best of the four peers at every size;
  - growth: seconds at or below the best peer's, and moved reallocs at most jemalloc's share;
  - threads: RSS with the threads parked at or below jemalloc's, and after they exited and
    the process idled, at most a quarter of it.
Each speed ratio is followed by the same ratio from every allocator's best run (highest
ops/s), in brackets: on a host whose other tenants slow whole runs down now and then (runs
of one program and allocator then spread over 1.5-2x), the best runs show what the code
does and the medians what a run may meet; the verdicts are the medians'. Rows an allocator
did not run in are skipped. The targets are for full runs: QUICK=1 runs
the drifting cache a quarter as long, so its sizes drift four times as fast per object
replaced, and it ends at a higher RSS/live (1.26 where a full run gives 1.19).
"""
import csv
import os
import sys


def load(path):
    speed, top, rss = {}, {}, {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["param"], r["allocator"])
            for x in ("end_mib", "t25_s", "loop_s", "peak_rss_kib", "secs", "moved_pct", "parked_mib"):
                if r.get("median_" + x):
                    FIG[(x,) + key] = float(r["median_" + x])
            if r["median_ops_per_sec"]:
                speed[key] = float(r["median_ops_per_sec"])
            if r.get("best_ops_per_sec"):
                top[key] = float(r["best_ops_per_sec"])
            if r.get("median_rss_over_live"):
                rss[key] = float(r["median_rss_over_live"])
    return speed, top, rss


# (figure, workload, param, allocator) -> median, for the memory workloads.
FIG = {}


def rss_at(trace_dir, param, alloc, t):
    """RSS (MiB) of the idle trace of (param, alloc) at the first sample at or after t s."""
    try:
        with open(os.path.join(trace_dir, "idle-%s-%s.txt" % (param, alloc))) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and float(parts[1]) >= t:
                    return float(parts[2])
    except (OSError, ValueError):
        return None
    return None


def memory_targets(trace_dir):
    allocs = ("oxmalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc")
    params = sorted({k[2] for k in FIG if k[0] == "end_mib" and k[1] == "idle"})
    if params:
        print("== issue 20 targets (memory given back; medians of this run) ==")
    for p in params:
        ends = {a: FIG[("end_mib", "idle", p, a)] for a in allocs if ("end_mib", "idle", p, a) in FIG}
        if "oxmalloc" not in ends:
            continue
        others = {a: v for a, v in ends.items() if a != "oxmalloc"}
        low = min(others.values()) if others else None
        line = "idle %s: oxmalloc %.1f MiB left (t25 %.1f s); others " % (p, ends["oxmalloc"], FIG.get(("t25_s", "idle", p, "oxmalloc"), -1))
        line += ", ".join("%s %.1f" % (a, v) for a, v in others.items())
        if low is not None:
            line += "; lowest: %s" % verdict(ends["oxmalloc"] <= low)
            at12 = rss_at(trace_dir, p, "oxmalloc", 12.0) if trace_dir else None
            if at12 is not None:
                line += "; at 12 s %.1f MiB, within dirty_decay_ms + 2 s: %s" % (at12, verdict(at12 <= low))
        print(line)
    loops = {a: FIG[("loop_s", "refault", p, a)] for (x, w, p, a) in FIG if x == "loop_s" and w == "refault"}
    if "oxmalloc" in loops:
        ox = loops["oxmalloc"]
        parts = ["refault: oxmalloc %.2f s" % ox]
        for a in ("glibc", "tcmalloc"):
            if a in loops:
                parts.append("vs %s %.2f s: %s" % (a, loops[a], verdict(ox < loops[a])))
        fastest = min(loops, key=loops.get)
        parts.append("fastest of the five: %s (%.2f s)" % (fastest, loops[fastest]))
        end = [v for (x, w, p, a), v in FIG.items() if x == "end_mib" and w == "refault" and a == "oxmalloc"]
        peak = [v for (x, w, p, a), v in FIG.items() if x == "peak_rss_kib" and w == "refault" and a == "oxmalloc"]
        if end and peak:
            parts.append("RSS after the loop and idling %.1f MiB of a %.0f MiB peak: %s"
                         % (end[0], peak[0] / 1024, verdict(end[0] * 4 <= peak[0] / 1024)))
        print("; ".join(parts))


def best_ratio(top, w, p, other):
    """` [best runs: 0.87x]` for oxmalloc over `other` in row (w, p), or "" without data."""
    ox, ot = top.get((w, p, "oxmalloc")), top.get((w, p, other))
    return f" [best runs {ox / ot:.2f}x]" if ox and ot else ""


def verdict(ok):
    return "met" if ok else "NOT met"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    speed, top, rss = load(sys.argv[1])
    trace_dir = sys.argv[2] if len(sys.argv) == 3 else None
    rows = []
    for (w, p, a) in speed:
        if a == "oxmalloc" and (w, p) not in rows:
            rows.append((w, p))
    print("== issue 3 targets (oxmalloc; medians of this run) ==")
    for w, p in rows:
        if w in ("idle", "refault", "threads"):
            continue
        ox = speed[(w, p, "oxmalloc")]
        je = speed.get((w, p, "jemalloc"))
        peers = [(speed[(w, p, a)], a) for a in ("mimalloc", "tcmalloc") if (w, p, a) in speed]
        parts = []
        if je:
            parts.append(f"vs jemalloc {ox / je:.2f}x {verdict(ox >= je)}{best_ratio(top, w, p, 'jemalloc')}")
        if peers:
            best, who = max(peers)
            parts.append(f"vs best of mimalloc/tcmalloc ({who}) {ox / best:.3f}x {verdict(ox >= 0.9 * best)}"
                         f"{best_ratio(top, w, p, who)}")
        print(f"{w:12s} {p:8s} " + "; ".join(parts))
    for p in ("16", "256"):
        ox = speed.get(("pairs", p, "oxmalloc"))
        ref = [speed[("pairs", p, a)] for a in ("jemalloc", "tcmalloc") if ("pairs", p, a) in speed]
        if ox and ref:
            slower = max(ref) / ox
            line = (f"pairs of {p} B: {slower:.3f}x the time of the faster of jemalloc/tcmalloc "
                    f"(<= 1.15: {verdict(slower <= 1.15)})")
            ox_top = top.get(("pairs", p, "oxmalloc"))
            ref_top = [top[("pairs", p, a)] for a in ("jemalloc", "tcmalloc") if ("pairs", p, a) in top]
            if ox_top and ref_top:
                line += f" [best runs {max(ref_top) / ox_top:.2f}x]"
            print(line)
    ox = speed.get(("batch", "32768", "oxmalloc"))
    if ox:
        ns = 1e9 / ox
        print(f"batches of 32 KiB: {ns:.1f} ns per malloc+free (<= 60: {verdict(ns <= 60)})")
    r_ox, r_je = rss.get(("drift", "40000", "oxmalloc")), rss.get(("drift", "40000", "jemalloc"))
    if r_ox:
        line = f"drift RSS/live: {r_ox:.3f} (<= 1.25: {verdict(r_ox <= 1.25)}"
        if r_je:
            line += f"; jemalloc {r_je:.3f}: {verdict(r_ox <= r_je)}"
        print(line + ")")
    one, two = speed.get(("larson", "1", "oxmalloc")), speed.get(("larson", "2", "oxmalloc"))
    if one and two:
        print(f"larson scaling, 2 threads over 1: {two / one:.2f}x")
    memory_targets(trace_dir)
    issue22_targets(speed)


PEERS = ("glibc", "jemalloc", "mimalloc", "tcmalloc")


def issue22_targets(speed):
    """Teardown, growth and threads against the peers (issue 22)."""
    for p in sorted({k[1] for k in speed if k[0] == "teardown"}, key=int):
        ox = speed.get(("teardown", p, "oxmalloc"))
        peers = [(speed[("teardown", p, a)], a) for a in PEERS if ("teardown", p, a) in speed]
        if ox and peers:
            best, who = max(peers)
            print(f"teardown {p} B: {1e9 / ox:.1f} ns per free, best peer {who} {1e9 / best:.1f}: {verdict(ox >= best)}")
    for p in sorted({k[2] for k in FIG if k[0] == "secs" and k[1] == "growth"}):
        ox = FIG.get(("secs", "growth", p, "oxmalloc"))
        peers = [(FIG[("secs", "growth", p, a)], a) for a in PEERS if ("secs", "growth", p, a) in FIG]
        mv, mv_je = FIG.get(("moved_pct", "growth", p, "oxmalloc")), FIG.get(("moved_pct", "growth", p, "jemalloc"))
        if ox is None or not peers:
            continue
        best, who = min(peers)
        line = f"growth {p}: {ox:.2f} s, best peer {who} {best:.2f} s: {verdict(ox <= best)}"
        if mv is not None and mv_je is not None:
            line += f"; moved {mv:.2f} % (jemalloc {mv_je:.2f} %): {verdict(mv <= mv_je)}"
        print(line)
    for p in sorted({k[2] for k in FIG if k[0] == "parked_mib"}, key=int):
        ox, je = FIG.get(("parked_mib", "threads", p, "oxmalloc")), FIG.get(("parked_mib", "threads", p, "jemalloc"))
        end = FIG.get(("end_mib", "threads", p, "oxmalloc"))
        if ox is None:
            continue
        line = f"threads {p}: {ox:.0f} MiB parked"
        if je is not None:
            line += f" (jemalloc {je:.0f}): {verdict(ox <= je)}"
        if end is not None:
            line += f"; {end:.0f} MiB after exit and idling: {verdict(end * 4 <= ox)}"
        print(line)


if __name__ == "__main__":
    main()
