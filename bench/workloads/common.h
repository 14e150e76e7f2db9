/* Shared helpers for the oxmalloc workload programs (bench/workloads/NAME.c).
 *
 * Every program prints exactly one line on stdout:
 *   RESULT workload=W param=P allocator=A ops_per_sec=X ns_per_op=Y peak_rss_kib=N [extra k=v...]
 * "allocator" is the basename of the malloc library found in /proc/self/maps (or "glibc"),
 * so the runner can check that the LD_PRELOAD really took effect.
 *
 * Environment: BENCH_QUICK=1 shortens the timed phase (QUICK mode of scripts/bench.sh).
 */
#ifndef OXBENCH_COMMON_H
#define OXBENCH_COMMON_H
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../allocator_name.h"

/* Calls go through volatile pointers: the compiler cannot elide or fuse the pairs. */
static void *(*volatile b_malloc)(size_t) = malloc;
static void (*volatile b_free)(void *) = free;
static void *(*volatile b_realloc)(void *, size_t) = realloc;
static void *(*volatile b_calloc)(size_t, size_t) = calloc;

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_quick(void) {
    const char *q = getenv("BENCH_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* Seconds of timed work per run: full 0.5-1.0 s depending on the caller, quick ~1/4. */
static inline double bench_budget(double full) { return bench_quick() ? full / 4.0 : full; }

/* xorshift64* */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t rng_below(uint64_t *s, uint64_t n) { return (rng_next(s) >> 11) % n; }

/* Value (KiB) of a "Key:" line of /proc/self/status, or -1. */
static inline long status_kib(const char *key) {
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Resident set size in KiB from /proc/self/statm, read into a stack buffer with open/read: no
 * allocator call (the idle workloads measure a program that makes none). -1 on error. */
static inline long rss_kib_noalloc(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    long size, resident;
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2) return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Prints the RESULT line; `extra` is appended verbatim (may be ""). */
static inline void report(const char *workload, const char *param, double ops, double secs, const char *extra) {
    double ops_per_sec = secs > 0 ? ops / secs : 0;
    double ns_per_op = ops > 0 ? secs * 1e9 / ops : 0;
    printf("RESULT workload=%s param=%s allocator=%s ops_per_sec=%.1f ns_per_op=%.3f peak_rss_kib=%ld%s%s\n",
           workload, param, allocator_name(), ops_per_sec, ns_per_op, status_kib("VmHWM"),
           (extra && *extra) ? " " : "", extra ? extra : "");
    fflush(stdout);
}

#endif
