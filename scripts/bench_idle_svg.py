#!/usr/bin/env python3
"""Draws the idle workload's RSS over time, one curve per allocator, one panel per param, from
scripts/bench.sh's trace files (trace/idle-<param>-<allocator>.txt: `TRACE seconds MiB` lines,
second 0 being the moment the last block was freed). Standard library only.

usage: bench_idle_svg.py TRACE_DIR OUT.svg
"""
import os
import sys

ORDER = ["oxmalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc"]
COLORS = {"oxmalloc": "#d62728", "glibc": "#7f7f7f", "jemalloc": "#1f77b4",
          "mimalloc": "#2ca02c", "tcmalloc": "#ff7f0e"}


def load(d):
    curves = {}  # param -> allocator -> [(t, mib)]
    for name in sorted(os.listdir(d)):
        if not (name.startswith("idle-") and name.endswith(".txt")):
            continue
        param, alloc = name[len("idle-"):-len(".txt")].split("-", 1)
        pts = []
        with open(os.path.join(d, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "TRACE":
                    pts.append((float(parts[1]), float(parts[2])))
        if pts:
            curves.setdefault(param, {})[alloc] = pts
    return curves


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    curves = load(sys.argv[1]) if os.path.isdir(sys.argv[1]) else {}
    if not curves:
        print("bench_idle_svg: no idle traces in %s" % sys.argv[1])
        return
    pw, ph, left, top, gap = 520, 300, 60, 60, 70
    width = left + len(curves) * (pw + gap) + 20
    height = top + ph + 70
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
         % (width, height), '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">idle: RSS (MiB) after freeing 512 MiB, while the program makes no'
         ' allocator call</text>' % left]
    allocs = [a for a in ORDER if any(a in c for c in curves.values())]
    for ai, a in enumerate(allocs):
        o.append('<rect x="%d" y="30" width="10" height="10" fill="%s"/><text x="%d" y="39">%s</text>'
                 % (left + ai * 100, COLORS.get(a, "#999"), left + 14 + ai * 100, a))
    for pi, param in enumerate(sorted(curves)):
        x0 = left + pi * (pw + gap)
        cs = curves[param]
        tmax = max(t for pts in cs.values() for t, _ in pts) or 1
        ymax = max(m for pts in cs.values() for _, m in pts) or 1
        X = lambda t: x0 + pw * t / tmax
        Y = lambda m: top + ph - ph * m / ymax
        o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (x0, top, pw, ph))
        o.append('<text x="%d" y="%d">%s blocks</text>' % (x0 + 5, top - 6, param))
        for k in range(0, 6):
            m = ymax * k / 5
            o.append('<text x="%d" y="%.1f" text-anchor="end">%.0f</text>' % (x0 - 4, Y(m) + 4, m))
            o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (x0, x0 + pw, Y(m), Y(m)))
        for s in range(0, int(tmax) + 1, 2):
            o.append('<text x="%.1f" y="%d" text-anchor="middle">%d s</text>' % (X(s), top + ph + 15, s))
        for a in allocs:
            pts = cs.get(a)
            if not pts:
                continue
            path = " ".join("%.1f,%.1f" % (X(t), Y(m)) for t, m in pts)
            o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>'
                     % (COLORS.get(a, "#999"), path, a))
    o.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(o) + "\n")
    print("bench_idle_svg: wrote %s" % sys.argv[2])


if __name__ == "__main__":
    main()
