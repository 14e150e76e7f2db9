/* larson: larson-like multi-threaded churn. Usage: larson THREADS.
 * Each thread owns SLOTS slots filled with blocks of mixed sizes (98 %: 8-128 B, skewed small;
 * 2 %: 16-256 KiB) and repeatedly replaces a random slot (free old, malloc new, write first and
 * last byte) until the shared time budget (1.0 s, quick 0.25 s) is spent. No cross-thread frees.
 * ops = replacements (one malloc + one free each), summed over threads. */
#include "common.h"
#include <pthread.h>

#define SLOTS 4096

static double g_budget;
static volatile int g_stop;

static size_t pick_size(uint64_t *s) {
    uint64_t r = rng_below(s, 1000);
    if (r < 20) return 16384 + rng_below(s, 262144 - 16384 + 1);  /* 2 % tail */
    if (r < 600) return 8 + rng_below(s, 41);                     /* 8-48 B */
    return 8 + rng_below(s, 121);                                 /* 8-128 B */
}

static void *worker(void *arg) {
    long id = (long)arg;
    uint64_t s = 0x9E3779B97F4A7C15ULL * (uint64_t)(id + 1);
    char **slot = calloc(SLOTS, sizeof *slot);
    for (int i = 0; i < SLOTS; i++) {
        size_t n = pick_size(&s);
        slot[i] = b_malloc(n);
        slot[i][0] = 1;
    }
    long ops = 0;
    while (!g_stop) {
        for (int k = 0; k < 1024; k++) {
            uint64_t i = rng_below(&s, SLOTS);
            size_t n = pick_size(&s);
            b_free(slot[i]);
            char *p = b_malloc(n);
            p[0] = (char)k;
            p[n - 1] = (char)k;
            slot[i] = p;
        }
        ops += 1024;
    }
    for (int i = 0; i < SLOTS; i++) b_free(slot[i]);
    free(slot);
    return (void *)ops;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    if (nt < 1) nt = 1;
    g_budget = bench_budget(1.0);
    pthread_t th[256];
    if (nt > 256) nt = 256;
    double t0 = now_s();
    for (long i = 0; i < nt; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    struct timespec ts = {(time_t)g_budget, (long)((g_budget - (time_t)g_budget) * 1e9)};
    nanosleep(&ts, NULL);
    g_stop = 1;
    long total = 0;
    for (int i = 0; i < nt; i++) {
        void *r;
        pthread_join(th[i], &r);
        total += (long)r;
    }
    double t = now_s() - t0;
    char param[32];
    snprintf(param, sizeof param, "%d", nt);
    report("larson", param, (double)total, t, "");
    return 0;
}
