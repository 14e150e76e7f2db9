/* Aligned churn with bounded RSS and address space: freed memory serves aligned requests again,
 * whatever alignment, size and entry point. Each case runs in a forked child and stops as
 * soon as a bound is passed:
 * - the probe: aligned_alloc(65536, 300000) twice, written, both freed, in a loop (and the same
 *   with posix_memalign, memalign, mallocx(MALLOCX_ALIGN)); RSS and address space must not
 *   grow past a few blocks;
 * - alignment 8192 with 3 000 000-byte blocks; alignment 2^36 with 300 000-byte blocks (each
 *   fresh block reserves 64 GiB of address space: reuse is the only way to last);
 * - random sizes and alignments (4 KiB .. 4 MiB) with up to 48 live blocks: RSS and address
 *   space stay within a multiple of the live peak;
 * - the probe under RLIMIT_AS with 256 MiB of headroom: every request succeeds (freed memory
 *   serves it without malloc_trim). */
#include "../common.h"

#define MALLOCX_ALIGN(a) ((int)(__builtin_ffsll((long long)(a)) - 1))
#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void dallocx(void *ptr, int flags);

#define MiB ((size_t)1 << 20)

static void statm(size_t *vm, size_t *rss) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL, "statm");
    unsigned long a = 0, b = 0;
    CHECK(fscanf(f, "%lu %lu", &a, &b) == 2, "statm");
    fclose(f);
    *vm = a * page_size();
    *rss = b * page_size();
}

enum api { ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN, MALLOCX };
static const char *const API[] = {"aligned_alloc", "posix_memalign", "memalign", "mallocx(MALLOCX_ALIGN)"};

static void *get(enum api k, size_t align, size_t size) {
    void *p = NULL;
    switch (k) {
    case ALIGNED_ALLOC: p = aligned_alloc(align, size); break;
    case POSIX_MEMALIGN: if (posix_memalign(&p, align, size) != 0) p = NULL; break;
    case MEMALIGN: p = memalign(align, size); break;
    case MALLOCX: p = mallocx(size, MALLOCX_ALIGN(align)); break;
    }
    CHECK(p != NULL, "%s(%zu, %zu) failed", API[k], align, size);
    CHECK(is_aligned(p, align), "%s(%zu, %zu) = %p: not aligned", API[k], align, size, p);
    return p;
}

static void put(enum api k, void *p) {
    if (k == MALLOCX) dallocx(p, 0); else free(p);
}

/* Pairs of blocks, written (all of it, or the first and last page for `touch_ends`), freed;
 * RSS may grow by at most `rss_max`, address space by `vm_max`. */
static void pairs(enum api k, size_t align, size_t size, long n, int touch_ends, size_t rss_max, size_t vm_max) {
    size_t vm0, rss0, vm, rss;
    statm(&vm0, &rss0);
    for (long i = 0; i < n; i++) {
        char *a = get(k, align, size), *b = get(k, align, size);
        if (touch_ends) {
            a[0] = b[0] = 1;
            a[size - 1] = b[size - 1] = 2;
        } else {
            memset(a, 1, size);
            memset(b, 2, size);
        }
        put(k, a);
        put(k, b);
        if (i % 16 == 15 || i == n - 1) {
            statm(&vm, &rss);
            CHECK(rss <= rss0 + rss_max && vm <= vm0 + vm_max,
                  "%s(%zu, %zu) pairs, after %ld: RSS +%zu MiB (bound %zu), address space +%zu MiB (bound %zu)",
                  API[k], align, size, i + 1, (rss - rss0) / MiB, rss_max / MiB, (vm - vm0) / MiB, vm_max / MiB);
        }
    }
    statm(&vm, &rss);
    printf("  %s(%zu, %zu) x %ld pairs: RSS +%zu KiB, address space +%zu MiB\n", API[k], align, size, n,
           (rss > rss0 ? rss - rss0 : 0) >> 10, (vm > vm0 ? vm - vm0 : 0) / MiB);
}

static void case_probe(void) {
    long n = 1500 * ctests_scale();
    for (int k = 0; k < 4; k++) pairs((enum api)k, 65536, 300000, n / 4, 0, 8 * MiB, 200 * MiB);
    pairs(ALIGNED_ALLOC, 65536, 300000, n, 0, 8 * MiB, 200 * MiB);
}

static void case_big(void) {
    pairs(MALLOCX, 8192, 3000000, 400, 1, 16 * MiB, 200 * MiB);
    /* A fresh 2^36-aligned block reserves 64 GiB of address space: 8 pairs' worth at most. */
    pairs(ALIGNED_ALLOC, (size_t)1 << 36, 300000, 300, 0, 8 * MiB, (size_t)8 << 36 >> 20 << 20);
    pairs(POSIX_MEMALIGN, (size_t)1 << 30, 5 * MiB + 1, 200, 1, 16 * MiB, 8192 * MiB);
}

static void case_random(void) {
    enum { LIVE = 48 };
    static char *live[LIVE];
    static size_t sz[LIVE];
    uint64_t seed = 0xa11c0de;
    size_t vm0, rss0, vm, rss, cur = 0, peak = 0;
    statm(&vm0, &rss0);
    long ops = 6000 * ctests_scale();
    for (long i = 0; i < ops; i++) {
        int j = (int)(rng_next(&seed) % LIVE);
        if (live[j]) {
            CHECK(live[j][0] == (char)j && live[j][sz[j] - 1] == (char)j, "block %d corrupted", j);
            put((enum api)(j % 4), live[j]);
            cur -= sz[j];
            live[j] = NULL;
        } else {
            size_t align = (size_t)1 << (12 + rng_next(&seed) % 11);
            size_t size = 1 + rng_next(&seed) % (4 * MiB);
            live[j] = get((enum api)(j % 4), align, size);
            sz[j] = size;
            live[j][0] = live[j][size - 1] = (char)j;
            memset(live[j], j, size < 65536 ? size : 65536);
            cur += size;
            if (cur > peak) peak = cur;
        }
        if (i % 64 == 63) {
            statm(&vm, &rss);
            /* Blocks are touched in their first 64 KiB and last page, so RSS counts at most
             * about 68 KiB per block plus what partly reused pages keep. */
            CHECK(rss <= rss0 + 2 * peak + 32 * MiB && vm <= vm0 + 3 * peak + 512 * MiB,
                  "random aligned churn, op %ld: RSS +%zu MiB, address space +%zu MiB, live peak %zu MiB", i,
                  (rss - rss0) / MiB, (vm - vm0) / MiB, peak / MiB);
        }
    }
    for (int j = 0; j < LIVE; j++)
        if (live[j]) put((enum api)(j % 4), live[j]);
    statm(&vm, &rss);
    printf("  random aligned churn: %ld ops, live peak %zu MiB, RSS +%zu MiB, address space +%zu MiB\n", ops,
           peak / MiB, (rss > rss0 ? rss - rss0 : 0) / MiB, (vm > vm0 ? vm - vm0 : 0) / MiB);
}

static void case_rlimit(void) {
    size_t vm, rss;
    statm(&vm, &rss);
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_AS, &r) == 0, "getrlimit");
    r.rlim_cur = vm + 256 * MiB;
    CHECK(setrlimit(RLIMIT_AS, &r) == 0, "setrlimit");
    /* get() fails the case on the first NULL. */
    for (int k = 0; k < 4; k++) pairs((enum api)k, 65536, 300000, 500, 1, 256 * MiB, 256 * MiB);
    pairs(ALIGNED_ALLOC, (size_t)1 << 21, 3 * MiB + 5, 500, 1, 256 * MiB, 256 * MiB);
}

static const char *only;

static void run_case(const char *name, void (*f)(void)) { run_forked_case("aligned_churn", only, name, f); }

int main(int argc, char **argv) {
    assert_oxmalloc();
    CHECK(mallocx && dallocx, "mallocx/dallocx missing");
    only = argc > 1 ? argv[1] : NULL;
    run_case("probe", case_probe);
    run_case("big", case_big);
    run_case("random", case_random);
    run_case("rlimit", case_rlimit);
    return 0;
}
