/* drift: a long-running cache of SLOTS objects with random replacement whose size window drifts
 * from [16, 256] B at the start to [512, 2048] B at the end of the run (linear in the number of
 * replacements: 4M, quick 1M). Usage: drift [SLOTS] (default 40000).
 * At the end: live = sum of requested sizes of the cached objects; then the allocator is asked
 * to give memory back with whatever it offers (all optional, resolved with dlsym):
 * malloc_trim(0), jemalloc mallctl("thread.tcache.flush") + mallctl("arena.4096.purge"),
 * mimalloc mi_collect(true), gperftools MallocExtension_ReleaseFreeMemory(); then VmRSS is read.
 * Reports rss_kib, live_kib, rss_over_live = VmRSS / live, purge=<which calls were found>.
 * ops = replacements (one free + one malloc each). */
#include "common.h"

static size_t pick(uint64_t *s, double f) {
    size_t lo = 16 + (size_t)(f * (512 - 16));
    size_t hi = 256 + (size_t)(f * (2048 - 256));
    return lo + rng_below(s, hi - lo + 1);
}

int main(int argc, char **argv) {
    long slots = argc > 1 ? atol(argv[1]) : 40000;
    if (slots < 16) slots = 40000;
    long total = bench_quick() ? 1000000 : 4000000;
    char **obj = calloc((size_t)slots, sizeof *obj);
    size_t *sz = calloc((size_t)slots, sizeof *sz);
    uint64_t s = 4242;
    size_t live = 0;
    double t0 = now_s();
    for (long i = 0; i < slots; i++) {
        sz[i] = pick(&s, 0.0);
        obj[i] = b_malloc(sz[i]);
        memset(obj[i], (int)i, sz[i] < 64 ? sz[i] : 64);
        live += sz[i];
    }
    for (long n = 0; n < total; n++) {
        double f = (double)n / (double)total;
        long i = (long)rng_below(&s, (uint64_t)slots);
        b_free(obj[i]);
        live -= sz[i];
        sz[i] = pick(&s, f);
        obj[i] = b_malloc(sz[i]);
        memset(obj[i], (int)n, sz[i] < 64 ? sz[i] : 64);
        live += sz[i];
    }
    double t = now_s() - t0;

    char purge[128] = "";
    int (*trim)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    void (*mi_collect)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "mi_collect");
    void (*tc_release)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory");
    if (mallctl) {
        mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
        mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
        strcat(purge, "mallctl,");
    }
    if (mi_collect) { mi_collect(1); strcat(purge, "mi_collect,"); }
    if (tc_release) { tc_release(); strcat(purge, "ReleaseFreeMemory,"); }
    if (trim) { trim(0); strcat(purge, "malloc_trim,"); }
    if (!*purge) strcpy(purge, "none,");
    purge[strlen(purge) - 1] = 0;

    long rss = status_kib("VmRSS");
    double ratio = (double)rss * 1024.0 / (double)live;
    char param[32], extra[160];
    snprintf(param, sizeof param, "%ld", slots);
    snprintf(extra, sizeof extra, "rss_kib=%ld live_kib=%zu rss_over_live=%.3f purge=%s", rss, live / 1024, ratio, purge);
    report("drift", param, (double)total, t, extra);
    for (long i = 0; i < slots; i++) b_free(obj[i]);
    return 0;
}
