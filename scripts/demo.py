"""The main job of `make run`: a threaded Python workload on oxmalloc.

Run with PYTHONMALLOC=malloc semantics forced below, so every object allocation goes through
the C allocator; prints whether liboxmalloc.so is mapped, the work done, and peak RSS.
"""
import json, os, sys, threading

if os.environ.get("PYTHONMALLOC") != "malloc":
    os.environ["PYTHONMALLOC"] = "malloc"
    os.execv(sys.executable, [sys.executable] + sys.argv)

def mapped_allocator():
    with open("/proc/self/maps") as f:
        return any("liboxmalloc" in line for line in f)

results = []
def work(seed):
    d = {f"k{seed}-{i}": [i] * (i % 17) for i in range(60000)}
    s = json.dumps(d)
    back = json.loads(s)
    results.append(len(back) == len(d) and sum(len(v) for v in back.values()))

threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(f"liboxmalloc mapped: {mapped_allocator()}")
print(f"threads ok: {all(results)} ({len(results)} x {results[0]} list items)")
print(f"peak RSS: {int(peak)//1024} MiB")
sys.exit(0 if mapped_allocator() and all(results) else 1)
