/* jemalloc's non-standard API (mallocx rallocx xallocx sallocx dallocx sdallocx nallocx),
 * tested from jemalloc 5.3's documented behaviour only: no class sizes are hard-coded, so the
 * same program passes linked against Debian's libjemalloc.so.2 (tests/ctests.rs runs it that
 * way too). The prototypes and MALLOCX_* values are jemalloc's, declared here so the program
 * needs neither header. One oxmalloc guarantee is checked only under oxmalloc: a 1 MiB block
 * whose neighbour is free grows to 2 MiB in place. */
#include "../common.h"
#include <pthread.h>

#ifndef MALLOCX_ZERO
#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ALIGN(a) ((int)(__builtin_ffsll((long long)(a)) - 1))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define MALLOCX_TCACHE_NONE (MALLOCX_TCACHE(-1))
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))
#endif

/* Weak: in LD_PRELOAD mode the program links against nothing that defines them; the
 * preloaded library provides them at run time. */
#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void *rallocx(void *ptr, size_t size, int flags);
WEAK size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
WEAK size_t sallocx(const void *ptr, int flags);
WEAK void dallocx(void *ptr, int flags);
WEAK void sdallocx(void *ptr, size_t size, int flags);
WEAK size_t nallocx(size_t size, int flags);

static const size_t SIZES[] = {1,     7,     8,     16,     17,     100,     512,        1000,
                               4095,  4096,  4097,  10000,  16384,  16385,   32768,      40000,
                               65536, 70000, 262144, 300000, 1u << 20, (1u << 20) + 1, 5u << 20};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return 0;
    return 1;
}

/* mallocx without flags: usable size = nallocx = sallocx = malloc_usable_size. */
static void test_mallocx_basic(void) {
    for (size_t k = 0; k < NSIZES; k++) {
        size_t n = SIZES[k];
        void *p = mallocx(n, 0);
        CHECK(p != NULL, "mallocx(%zu, 0)", n);
        size_t u = sallocx(p, 0);
        CHECK(u >= n, "sallocx %zu < %zu", u, n);
        CHECK(u == nallocx(n, 0), "sallocx(mallocx(%zu)) = %zu, nallocx = %zu", n, u, nallocx(n, 0));
        CHECK(u == malloc_usable_size(p), "sallocx %zu != malloc_usable_size %zu", u,
              malloc_usable_size(p));
        fill_pattern(p, u, k);
        CHECK_PATTERN(p, u, k);
        dallocx(p, 0);
    }
}

/* Alignment flags: MALLOCX_LG_ALIGN and MALLOCX_ALIGN give aligned blocks whose usable size is
 * what nallocx predicts with the same flags. */
static void test_alignment(void) {
    for (int lg = 0; lg <= 21; lg++) {
        for (size_t k = 0; k < NSIZES; k++) {
            size_t n = SIZES[k], a = (size_t)1 << lg;
            int flags = (k & 1) ? MALLOCX_LG_ALIGN(lg) : MALLOCX_ALIGN(a);
            void *p = mallocx(n, flags);
            CHECK(p != NULL, "mallocx(%zu, align %zu)", n, a);
            CHECK(((uintptr_t)p & (a - 1)) == 0, "mallocx(%zu, align %zu) = %p", n, a, p);
            CHECK(sallocx(p, flags) == nallocx(n, flags), "align %zu size %zu: sallocx %zu nallocx %zu",
                  a, n, sallocx(p, flags), nallocx(n, flags));
            memset(p, 0x5a, n);
            if (k % 3 == 0)
                sdallocx(p, n, flags); /* the requested size with the same flags is legal */
            else if (k % 3 == 1)
                sdallocx(p, sallocx(p, 0), flags); /* so is the usable size */
            else
                dallocx(p, flags);
        }
    }
}

/* MALLOCX_ZERO: every usable byte reads zero, even when recycled memory is handed out. */
static void test_zero(void) {
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < NSIZES; k++) {
            size_t n = SIZES[k];
            unsigned char *p = mallocx(n, 0);
            CHECK(p != NULL, "mallocx");
            memset(p, 0xa5, sallocx(p, 0));
            dallocx(p, 0);
            unsigned char *q = mallocx(n, MALLOCX_ZERO);
            CHECK(q != NULL, "mallocx(%zu, ZERO)", n);
            CHECK(all_zero(q, sallocx(q, 0)), "mallocx(%zu, MALLOCX_ZERO) not zeroed", n);
            dallocx(q, 0);
        }
    }
}

/* nallocx: at least the request, monotonic, 0 when impossible; impossible requests make
 * mallocx and rallocx return NULL (and rallocx leaves the block alone). */
static void test_limits(void) {
    size_t prev = 0;
    for (size_t n = 1; n <= 300000; n += (n < 5000 ? 1 : 97)) {
        size_t u = nallocx(n, 0);
        CHECK(u >= n, "nallocx(%zu) = %zu", n, u);
        CHECK(u >= prev, "nallocx not monotonic at %zu: %zu after %zu", n, u, prev);
        prev = u;
    }
    CHECK(nallocx(SIZE_MAX, 0) == 0, "nallocx(SIZE_MAX) = %zu", nallocx(SIZE_MAX, 0));
    CHECK(nallocx(SIZE_MAX - 8192, 0) == 0, "nallocx(SIZE_MAX - 8192)");
    CHECK(nallocx(1, MALLOCX_LG_ALIGN(63)) == 0, "nallocx with 2^63 alignment");
    CHECK(mallocx(SIZE_MAX, 0) == NULL, "mallocx(SIZE_MAX)");
    CHECK(mallocx(SIZE_MAX / 2 + 1, 0) == NULL, "mallocx(SIZE_MAX / 2 + 1)");
    unsigned char *p = mallocx(1000, 0);
    CHECK(p != NULL, "mallocx");
    fill_pattern(p, 1000, 7);
    CHECK(rallocx(p, SIZE_MAX, 0) == NULL, "rallocx(p, SIZE_MAX)");
    CHECK(rallocx(p, SIZE_MAX / 2 + 1, 0) == NULL, "rallocx(p, SIZE_MAX / 2 + 1)");
    CHECK_PATTERN(p, 1000, 7); /* the failed rallocx left the block valid */
    dallocx(p, 0);
}

/* rallocx keeps the common prefix, honours alignment, and MALLOCX_ZERO zeroes exactly the
 * bytes past the old usable size. */
static void test_rallocx(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        for (size_t j = 0; j < NSIZES; j += 3) {
            size_t a = SIZES[i], b = SIZES[j];
            unsigned char *p = mallocx(a, 0);
            CHECK(p != NULL, "mallocx");
            size_t ua = sallocx(p, 0);
            fill_pattern(p, ua, i * 31 + j);
            unsigned char *q = rallocx(p, b, MALLOCX_ZERO);
            CHECK(q != NULL, "rallocx(%zu -> %zu)", a, b);
            size_t ub = sallocx(q, 0);
            CHECK(ub >= b, "rallocx usable %zu < %zu", ub, b);
            size_t keep = ua < ub ? ua : ub;
            CHECK_PATTERN(q, keep < b ? keep : b, i * 31 + j);
            if (ub > ua)
                CHECK(all_zero(q + ua, ub - ua), "rallocx(%zu -> %zu, ZERO): tail not zero", a, b);
            int flags = MALLOCX_LG_ALIGN(12);
            unsigned char *r = rallocx(q, b + 1, flags);
            CHECK(r != NULL && ((uintptr_t)r & 4095) == 0, "rallocx with 4 KiB alignment: %p", r);
            CHECK_PATTERN(r, keep < b ? keep : b, i * 31 + j);
            dallocx(r, 0);
        }
    }
}

/* xallocx never moves and returns the usable size after the attempt: 0 < result, result ==
 * sallocx(p) afterwards, and the contents stay. Debian's jemalloc 5.3 does not keep the
 * equality (a 16 KiB block asked for 1 MiB grows to 1 MiB and returns 16384; a 1 MiB block
 * asked for 10 KB returns 16384 and stays 1 MiB), so it is checked under oxmalloc only. */
static void test_xallocx(void) {
    int strict = running_on_oxmalloc();
    for (size_t i = 0; i < NSIZES; i++) {
        for (size_t j = 0; j < NSIZES; j += 2) {
            unsigned char *p = mallocx(SIZES[i], 0);
            CHECK(p != NULL, "mallocx");
            size_t u0 = sallocx(p, 0);
            fill_pattern(p, SIZES[i], i);
            size_t r = xallocx(p, SIZES[j], SIZES[j] / 2, 0);
            if (strict)
                CHECK(r == sallocx(p, 0), "xallocx(%zu-byte block, %zu, %zu) returned %zu, sallocx says %zu",
                      SIZES[i], SIZES[j], SIZES[j] / 2, r, sallocx(p, 0));
            r = sallocx(p, 0);
            CHECK(r > 0, "xallocx returned 0");
            size_t keep = SIZES[i] < r ? SIZES[i] : r;
            CHECK_PATTERN(p, keep, i);
            /* asking for the current usable size changes nothing */
            CHECK(xallocx(p, r, 0, 0) == r, "xallocx(p, usable) moved the size");
            /* an impossible size leaves the block as it is */
            CHECK(xallocx(p, SIZE_MAX, 0, 0) == r, "xallocx(p, SIZE_MAX)");
            CHECK(r >= (SIZES[j] < u0 ? SIZES[j] : u0) || r == u0, "xallocx shrank below the request");
            dallocx(p, 0);
        }
    }
}

/* A 1 MiB block whose following neighbour is free grows to 2 MiB in place (xallocx and
 * rallocx). Under oxmalloc that is guaranteed for two consecutive blocks of a fresh arena;
 * under jemalloc only consistency is checked. */
static void test_grow_in_place(void) {
    int strict = running_on_oxmalloc();
    int f = MALLOCX_ARENA(100) | MALLOCX_TCACHE_NONE;
    unsigned char *a = mallocx(1u << 20, f), *b = mallocx(1u << 20, f);
    CHECK(a != NULL && b != NULL, "mallocx(1 MiB, ARENA(100))");
    fill_pattern(a, 1u << 20, 99);
    if (strict)
        CHECK(b == a + (1u << 20), "fresh arena: blocks not consecutive (%p, %p)", a, b);
    dallocx(b, MALLOCX_TCACHE_NONE);
    size_t r = xallocx(a, 2u << 20, 0, 0);
    CHECK(r == sallocx(a, 0), "xallocx result");
    if (strict)
        CHECK(r == 2u << 20, "1 MiB block with a free neighbour did not grow in place: %zu", r);
    CHECK_PATTERN(a, 1u << 20, 99);
    unsigned char *c = rallocx(a, 2u << 20, 0);
    CHECK(c != NULL, "rallocx");
    if (strict)
        CHECK(c == a, "rallocx to the size xallocx reached moved the block");
    CHECK_PATTERN(c, 1u << 20, 99);
    dallocx(c, MALLOCX_TCACHE_NONE);
}

/* Explicit arenas and the tcache-bypass flag are accepted by every call. */
static void test_arena_and_tcache_flags(void) {
    int flags[] = {MALLOCX_ARENA(0), MALLOCX_TCACHE_NONE, MALLOCX_ARENA(0) | MALLOCX_TCACHE_NONE,
                   MALLOCX_ARENA(0) | MALLOCX_ZERO | MALLOCX_LG_ALIGN(6)};
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        for (size_t k = 0; k < NSIZES; k++) {
            unsigned char *p = mallocx(SIZES[k], flags[f]);
            CHECK(p != NULL, "mallocx(%zu, %#x)", SIZES[k], flags[f]);
            CHECK(sallocx(p, 0) == nallocx(SIZES[k], flags[f]), "usable size with flags %#x",
                  flags[f]);
            if (flags[f] & MALLOCX_ZERO)
                CHECK(all_zero(p, sallocx(p, 0)), "ZERO with an explicit arena");
            memset(p, 1, SIZES[k]);
            p = rallocx(p, SIZES[k] * 2, flags[f]);
            CHECK(p != NULL, "rallocx with flags %#x", flags[f]);
            sdallocx(p, SIZES[k] * 2, flags[f]);
        }
    }
}

/* A large block freed and a slightly smaller one requested next (a thread cache may hand the
 * freed block out again): mallocx still gives exactly nallocx (and MALLOCX_ZERO zeroes all of
 * it), and a sized free with the size malloc was asked for is accepted. Runs in a new thread,
 * whose cache holds nothing from the other tests. */
static void *reused_large_blocks(void *arg) {
    (void)arg;
    const size_t big = 80u << 10, small = 72u << 10;
    for (int round = 0; round < 2; round++) {
        unsigned char *p = malloc(big);
        CHECK(p != NULL, "malloc(%zu)", big);
        memset(p, 0xab, big);
        free(p);
        unsigned char *q = mallocx(small, round ? MALLOCX_ZERO : 0);
        CHECK(q != NULL, "mallocx(%zu)", small);
        CHECK(sallocx(q, 0) == nallocx(small, 0), "sallocx %zu != nallocx %zu after reuse",
              sallocx(q, 0), nallocx(small, 0));
        if (round) CHECK(all_zero(q, sallocx(q, 0)), "MALLOCX_ZERO block not zeroed after reuse");
        dallocx(q, 0);
    }
    unsigned char *p = malloc(big);
    CHECK(p != NULL, "malloc(%zu)", big);
    free(p);
    unsigned char *r = malloc(small);
    CHECK(r != NULL && malloc_usable_size(r) >= small, "malloc(%zu) after reuse", small);
    sdallocx(r, small, 0);
    return NULL;
}

static void test_reused_large_blocks(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reused_large_blocks, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallocx && rallocx && xallocx && sallocx && dallocx && sdallocx && nallocx,
          "the *allocx functions are not provided by the allocator");
    test_mallocx_basic();
    test_alignment();
    test_zero();
    test_limits();
    test_rallocx();
    test_xallocx();
    test_grow_in_place();
    test_arena_and_tcache_flags();
    test_reused_large_blocks();
    printf("jemalloc_api: ok\n");
    return 0;
}
