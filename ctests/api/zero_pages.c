/* Zeroed allocations do not touch pages that are zero already, and a big zeroed block reused
 * from freed, sparsely touched memory does not become resident:
 * - mallocx(4 MiB, MALLOCX_ZERO) (plain, aligned, without the thread cache) right after a
 *   purge takes almost no page faults, as calloc does;
 * - calloc(512 MiB) that reuses a freed block touched once per MiB raises RSS by little;
 * - every byte of every zeroed block is zero, whichever way it was zeroed: blocks reused from
 *   fully written memory, half written memory, and purged memory. */
#include "../common.h"
#include <sys/resource.h>

#define MALLOCX_ALIGN(a) ((int)(__builtin_ffsll((long long)(a)) - 1))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE_NONE ((int)0x100)
#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void dallocx(void *ptr, int flags);

#define MiB ((size_t)1 << 20)

static long minflt(void) {
    struct rusage u;
    CHECK(getrusage(RUSAGE_SELF, &u) == 0, "getrusage");
    return u.ru_minflt;
}

static size_t rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL, "statm");
    unsigned long a = 0, b = 0;
    CHECK(fscanf(f, "%lu %lu", &a, &b) == 2, "statm");
    fclose(f);
    return b * page_size();
}

static void purge(void) {
    CHECK(mallctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0, "arena.4096.purge");
}

static void check_zero(const char *p, size_t n, size_t step, const char *what) {
    for (size_t i = 0; i < n; i += step)
        CHECK(p[i] == 0, "%s: byte %zu of %zu is %#x", what, i, n, (unsigned char)p[i]);
    CHECK(p[n - 1] == 0, "%s: last byte", what);
}

/* 20 blocks of 4 MiB with `flags`, written, freed, purged; then 20 zeroed ones. */
static void zero_after_purge(int flags, const char *what) {
    enum { N = 20 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = mallocx(4 * MiB, flags);
        CHECK(p[i] != NULL, "mallocx");
        memset(p[i], 0x7a, 4 * MiB);
    }
    for (int i = 0; i < N; i++) dallocx(p[i], flags & MALLOCX_TCACHE_NONE);
    purge();
    long f0 = minflt();
    for (int i = 0; i < N; i++) {
        p[i] = mallocx(4 * MiB, flags | MALLOCX_ZERO);
        CHECK(p[i] != NULL, "mallocx");
    }
    long faults = minflt() - f0;
    for (int i = 0; i < N; i++) {
        check_zero(p[i], 4 * MiB, 4096, what);
        dallocx(p[i], flags & MALLOCX_TCACHE_NONE);
    }
    printf("  %s: %ld page faults for %d zeroed 4 MiB blocks after a purge\n", what, faults, N);
    CHECK(faults < 200, "%s: %ld page faults for %d zeroed 4 MiB blocks after a purge (%d pages)", what, faults, N,
          N * 1024);
}

static void calloc_sparse(void) {
    const size_t n = 512 * MiB;
    char *b = malloc(n);
    CHECK(b != NULL, "malloc(512 MiB)");
    for (size_t i = 0; i < n; i += MiB) b[i] = 0x33;
    b[n - 1] = 0x44;
    free(b);
    size_t r0 = rss();
    char *c = calloc(1, n);
    CHECK(c != NULL, "calloc(512 MiB)");
    size_t grew = rss() > r0 ? rss() - r0 : 0;
    check_zero(c, n, 64 << 10, "calloc(512 MiB) over sparsely touched memory");
    printf("  calloc(512 MiB) over a freed block touched once per MiB (%s): RSS +%zu KiB\n",
           c == b ? "the same block" : "another block", grew >> 10);
    CHECK(grew < 32 * MiB, "calloc(512 MiB) over a freed block touched once per MiB: RSS +%zu MiB", grew / MiB);
    free(c);
}

/* Blocks reused from fully and half written memory are zero throughout. */
static void dense(void) {
    static const size_t sizes[] = {40000, 300000, 3 * MiB, 9 * MiB + 123, 33 * MiB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        for (int half = 0; half < 2; half++) {
            char *a = malloc(n);
            CHECK(a != NULL, "malloc");
            memset(a, 0x5e, half ? n / 2 : n);
            free(a);
            char *z = calloc(n, 1);
            CHECK(z != NULL, "calloc");
            check_zero(z, n, 1, half ? "calloc over half written memory" : "calloc over written memory");
            free(z);
            a = mallocx(n, 0);
            CHECK(a != NULL, "mallocx");
            memset(a, 0x5f, half ? n / 2 : n);
            dallocx(a, 0);
            z = mallocx(n, MALLOCX_ZERO);
            CHECK(z != NULL, "mallocx");
            check_zero(z, n, 1, "mallocx(MALLOCX_ZERO) over written memory");
            dallocx(z, 0);
        }
    }
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallocx && dallocx && mallctl, "jemalloc API missing");
    dense();
    zero_after_purge(0, "mallocx(4 MiB, ZERO)");
    zero_after_purge(MALLOCX_ALIGN(1 << 16), "mallocx(4 MiB, ALIGN(64 KiB) | ZERO)");
    zero_after_purge(MALLOCX_TCACHE_NONE, "mallocx(4 MiB, TCACHE_NONE | ZERO)");
    calloc_sparse();
    printf("zero_pages: ok\n");
    return 0;
}
