/* teardown: a big structure freed in random order (a hash table, a tree, an interpreter's
 * heap being torn down). Usage: teardown SIZE (bytes, default 64).
 * N = min(4M, 256 MiB / SIZE) blocks of SIZE bytes (quick: a quarter) are allocated and their
 * first word written, the pointer array is shuffled, then every block is freed in that order;
 * only the frees are timed. ops = frees (ns_per_op = ns per free). Also reports the time of
 * the allocation phase (alloc_ns) and the RSS left after the teardown (rss_after_kib, no
 * purge asked for). */
#include "common.h"

int main(int argc, char **argv) {
    size_t size = argc > 1 ? (size_t)atol(argv[1]) : 64;
    if (size < 8) size = 8;
    size_t n = (256u << 20) / size;
    if (n > (4u << 20)) n = 4u << 20;
    if (bench_quick()) n /= 4;
    void **p = malloc(n * sizeof *p);
    if (!p) return 1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        p[i] = b_malloc(size);
        *(size_t *)p[i] = i;
    }
    double t_alloc = now_s() - t0;
    uint64_t s = 0x7ea4d0;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&s, i + 1);
        void *x = p[i];
        p[i] = p[j];
        p[j] = x;
    }
    long peak = status_kib("VmHWM");
    t0 = now_s();
    for (size_t i = 0; i < n; i++) b_free(p[i]);
    double t = now_s() - t0;
    char param[32], extra[160];
    snprintf(param, sizeof param, "%zu", size);
    snprintf(extra, sizeof extra, "alloc_ns=%.2f rss_after_kib=%ld peak_before_kib=%ld", t_alloc * 1e9 / (double)n,
             status_kib("VmRSS"), peak);
    report("teardown", param, (double)n, t, extra);
    free(p);
    return 0;
}
