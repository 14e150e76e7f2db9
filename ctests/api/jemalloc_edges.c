/* Edges of jemalloc's API where a hostile probe found oxmalloc answering differently from
 * jemalloc 5.3 (issue 21, item 6), tested from jemalloc's documented behaviour only, so the
 * program also passes linked against Debian's libjemalloc.so.2 (tests/ctests.rs runs it that
 * way too):
 * - `thread.tcache.enabled` written false by a thread that has no cache yet: reads back
 *   false, and stays false after the thread allocates;
 * - `rallocx(p, n, MALLOCX_ZERO)`: every byte of the result is the old block's or zero, also
 *   when the block moves into memory that held other data, and every byte from the old usable
 *   size up is zero;
 * - `arena.<i>.dss`: writing "disabled" succeeds, an unknown name is EINVAL;
 * - `nallocx` is 0 (and `mallocx` NULL) for sizes whose page rounding exceeds PTRDIFF_MAX. */
#include "../common.h"
#include <pthread.h>
#include <stdbool.h>

#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ZERO ((int)0x40)

#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void *rallocx(void *ptr, size_t size, int flags);
WEAK size_t sallocx(const void *ptr, int flags);
WEAK void dallocx(void *ptr, int flags);
WEAK size_t nallocx(size_t size, int flags);

static bool tcache_enabled(void) {
    bool v = true;
    size_t len = sizeof v;
    CHECK(mallctl("thread.tcache.enabled", &v, &len, NULL, 0) == 0, "read thread.tcache.enabled");
    return v;
}

/* A fresh thread: its first allocator call is the write. */
static void *tcache_off_first(void *arg) {
    (void)arg;
    bool off = false, old = true;
    size_t len = sizeof old;
    CHECK(mallctl("thread.tcache.enabled", &old, &len, &off, sizeof off) == 0, "write false");
    CHECK(old, "a new thread's cache reads as enabled before the write");
    CHECK(!tcache_enabled(), "thread.tcache.enabled written false by a thread without a cache reads back true");
    void *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = malloc(64 + i);
        CHECK(p[i] != NULL, "malloc");
    }
    for (int i = 0; i < 100; i++) free(p[i]);
    CHECK(!tcache_enabled(), "the thread's allocations turned its cache back on");
    bool on = true;
    CHECK(mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof on) == 0, "write true");
    free(malloc(64));
    CHECK(tcache_enabled(), "thread.tcache.enabled written true reads back false");
    return NULL;
}

static void test_tcache_enabled(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, tcache_off_first, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

/* `q` (`nu` usable) came from rallocx(old block of `old_u` usable bytes all `old`, `size`,
 * MALLOCX_ZERO): every byte is the old block's or zero (none keeps data of the memory's previous
 * use); the first min(size, old_u) are the old block's (jemalloc copies that many when it
 * realigns, min(nu, old_u) otherwise), and every byte from old_u up is zero. */
static void check_zero_realloc(const unsigned char *q, size_t size, size_t old_u, size_t nu,
                               unsigned char old, const char *what, int k) {
    for (size_t i = 0; i < nu; i++) {
        int ok = i < size && i < old_u ? q[i] == old : i < old_u ? q[i] == old || q[i] == 0 : q[i] == 0;
        CHECK(ok, "%s (k=%d, size %zu): byte %zu of %zu is %#x (old usable %zu, old bytes %#x)", what, k,
              size, i, nu, q[i], old_u, old);
    }
}

/* rallocx(q, 1, MALLOCX_LG_ALIGN(k) | MALLOCX_ZERO) over k, each time into memory that another
 * block of the target size filled with 0xee just before. */
static void test_rallocx_zero(void) {
    unsigned char *q = mallocx(1, 0);
    CHECK(q != NULL, "mallocx");
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k <= 14; k++) {
            int flags = MALLOCX_LG_ALIGN(k);
            size_t tu = nallocx(1, flags);
            unsigned char *junk = mallocx(tu, flags);
            CHECK(junk != NULL, "mallocx(%zu)", tu);
            memset(junk, 0xee, tu);
            dallocx(junk, 0);
            size_t old_u = sallocx(q, 0);
            memset(q, 0x5a, old_u);
            q = rallocx(q, 1, flags | MALLOCX_ZERO);
            CHECK(q != NULL, "rallocx(q, 1, LG_ALIGN(%d) | ZERO)", k);
            CHECK(is_aligned(q, (size_t)1 << k), "rallocx alignment %d", k);
            check_zero_realloc(q, 1, old_u, sallocx(q, 0), 0x5a, "rallocx to 1 byte", k);
        }
    }
    /* Growing and shrinking moves between sizes, into dirtied memory. */
    static const size_t S[] = {10, 100, 1000, 5000, 40000, 70000, 300000, 24, 3000, 200000, 16};
    for (size_t i = 0; i + 1 < sizeof S / sizeof S[0]; i++) {
        unsigned char *junk = mallocx(S[i + 1], 0);
        CHECK(junk != NULL, "mallocx");
        memset(junk, 0xee, sallocx(junk, 0));
        dallocx(junk, 0);
        size_t old_u = sallocx(q, 0);
        memset(q, 0x33, old_u);
        q = rallocx(q, S[i + 1], MALLOCX_ZERO);
        CHECK(q != NULL, "rallocx(%zu)", S[i + 1]);
        check_zero_realloc(q, S[i + 1], old_u, sallocx(q, 0), 0x33, "rallocx between sizes", (int)i);
    }
    dallocx(q, 0);
}

static int write_dss(const char *name, const char *value) {
    return mallctl(name, NULL, NULL, &value, sizeof value);
}

static void test_arena_dss(void) {
    const char *v = NULL;
    size_t len = sizeof v;
    CHECK(mallctl("arena.0.dss", &v, &len, NULL, 0) == 0 && v != NULL, "read arena.0.dss");
    CHECK(write_dss("arena.0.dss", "disabled") == 0, "arena.0.dss = \"disabled\" refused");
    CHECK(write_dss("arena.4096.dss", "disabled") == 0, "arena.4096.dss = \"disabled\" refused");
    CHECK(write_dss("arena.0.dss", "bogus") == EINVAL, "arena.0.dss = \"bogus\": expected EINVAL");
    CHECK(write_dss("arena.0.dss", "") == EINVAL, "arena.0.dss = \"\": expected EINVAL");
    v = NULL;
    len = sizeof v;
    CHECK(mallctl("arena.0.dss", &v, &len, NULL, 0) == 0 && v != NULL && !strcmp(v, "disabled"),
          "arena.0.dss after writing disabled: %s", v ? v : "(null)");
    /* A write of the wrong length is EINVAL, like every other name. */
    CHECK(mallctl("arena.0.dss", NULL, NULL, &v, 4) == EINVAL, "arena.0.dss with newlen 4");
}

static void test_nallocx_limits(void) {
    const size_t max = (size_t)PTRDIFF_MAX;
    static const size_t below[] = {4094, 4000, 2048, 100, 1, 0};
    for (size_t i = 0; i < sizeof below / sizeof below[0]; i++) {
        size_t n = max - below[i];
        CHECK(nallocx(n, 0) == 0, "nallocx(PTRDIFF_MAX - %zu, 0) = %zu, expected 0", below[i], nallocx(n, 0));
        CHECK(mallocx(n, 0) == NULL, "mallocx(PTRDIFF_MAX - %zu, 0) succeeded", below[i]);
    }
    CHECK(nallocx(max, MALLOCX_LG_ALIGN(12)) == 0, "nallocx(PTRDIFF_MAX, LG_ALIGN(12))");
    CHECK(nallocx((size_t)1 << 40, 0) == (size_t)1 << 40, "nallocx(2^40)");
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallocx && rallocx && sallocx && dallocx && nallocx && mallctl, "jemalloc API missing");
    test_tcache_enabled();
    test_rallocx_zero();
    test_arena_dss();
    test_nallocx_limits();
    printf("jemalloc_edges: ok\n");
    return 0;
}
