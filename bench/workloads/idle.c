/* idle: does memory go back to the OS once a program stops allocating? Allocates 512 MiB in
 * blocks of log-uniform sizes, every page written (`mixed`: half the bytes in small blocks of
 * 16 B-32 KiB, half in large ones of 64 KiB-4 MiB; `large`: all 64 KiB-4 MiB), frees them all
 * in shuffled order, then makes no allocator call for IDLE_SECS (20; quick 5) seconds while it
 * samples its RSS every 100 ms. Usage: idle [mixed|large]. ops = blocks; the figures are in
 * the extra fields:
 *   peak_mib     RSS just before the frees
 *   t25_s        seconds after the last free until RSS < 25 % of the peak (-1: never)
 *   end_mib      RSS at the end of the idle phase
 * and one line `TRACE t_s rss_mib` per sample on stderr (scripts/bench.sh draws them). */
#include "common.h"
#include <math.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "mixed";
    int all_large = strcmp(mode, "large") == 0;
    size_t total = (size_t)512 << 20;
    double idle = bench_quick() ? 5 : 20;
    const char *e = getenv("IDLE_SECS");
    if (e) idle = atof(e);
    size_t cap = 1 << 22, n = 0, bytes = 0, small = 0;
    void **v = b_malloc(cap * sizeof *v);
    uint64_t s = 42;
    double t0 = now_s();
    while (bytes < total && n < cap) {
        int want_small = !all_large && small * 2 < bytes + 1;
        double lo = want_small ? log(16) : log(64 << 10), hi = want_small ? log(32 << 10) : log(4 << 20);
        size_t size = (size_t)exp(lo + (hi - lo) * (double)(rng_next(&s) >> 11) / 9007199254740992.0);
        char *p = b_malloc(size);
        if (!p) break;
        memset(p, (int)n, size);
        v[n++] = p;
        bytes += size;
        if (want_small) small += size;
    }
    for (size_t i = n - 1; i > 0; i--) { /* shuffle */
        size_t j = rng_next(&s) % (i + 1);
        void *t = v[i]; v[i] = v[j]; v[j] = t;
    }
    long peak = rss_kib_noalloc();
    for (size_t i = 0; i < n; i++) b_free(v[i]);
    double t_free = now_s();
    double t25 = -1;
    long last = peak;
    fprintf(stderr, "TRACE %.1f %.1f\n", 0.0, peak / 1024.0);
    for (int k = 1; k <= (int)(idle * 10 + 0.5); k++) {
        struct timespec ts = {0, 0};
        double target = t_free + k * 0.1, now = now_s();
        if (target > now) {
            ts.tv_sec = (time_t)(target - now);
            ts.tv_nsec = (long)((target - now - (double)ts.tv_sec) * 1e9);
            nanosleep(&ts, NULL);
        }
        last = rss_kib_noalloc();
        double t = now_s() - t_free;
        fprintf(stderr, "TRACE %.1f %.1f\n", t, last / 1024.0);
        if (t25 < 0 && last * 4 < peak) t25 = t;
    }
    double t = now_s() - t0;
    char extra[160];
    snprintf(extra, sizeof extra, "peak_mib=%.1f t25_s=%.1f end_mib=%.1f", peak / 1024.0, t25, last / 1024.0);
    report("idle", mode, (double)n, t, extra);
    b_free(v);
    return 0;
}
