/* realloc: realloc(NULL, n) allocates; realloc(p, 0) frees p and returns NULL with errno
 * untouched (jemalloc 5.3's default zero_realloc:free, and glibc's behaviour); growth and
 * shrink across small, page, large and huge sizes keep the contents. */
#include "../common.h"

static void test_realloc_null(void) {
    static const size_t sizes[] = {0, 1, 16, 100, 5000, 100000, 2u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *p = realloc(NULL, n);
        CHECK(p != NULL, "realloc(NULL, %zu) returned NULL", n);
        CHECK(malloc_usable_size(p) >= n, "realloc(NULL, %zu): usable size %zu", n,
              malloc_usable_size(p));
        fill_pattern(p, n, k);
        CHECK_PATTERN(p, n, k);
        free(p);
    }
}

static void test_realloc_zero(void) {
    int strict = running_on_oxmalloc();
    static const size_t sizes[] = {1, 64, 4096, 100000, 3u << 20};
    for (int round = 0; round < 200; round++) {
        size_t n = sizes[round % (sizeof sizes / sizeof sizes[0])];
        void *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        memset(p, 0x11, n);
        errno = 4321;
        void *q = realloc(p, 0);
        CHECK(q == NULL, "realloc(%p (%zu bytes), 0) returned %p, not NULL", p, n, q);
        if (strict)
            CHECK(errno == 4321, "realloc(p, 0) changed errno to %d", errno);
    }
    /* The freed block really went back: the same small block comes back on the next malloc
     * of its class once the class has no other free region (checked loosely: no crash and
     * the heap keeps working). */
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(48);
        CHECK(p != NULL, "malloc");
        CHECK(realloc(p, 0) == NULL, "realloc(p, 0)");
    }
    /* realloc(NULL, 0) behaves like malloc(0) */
    void *z = realloc(NULL, 0);
    CHECK(z != NULL, "realloc(NULL, 0) returned NULL");
    free(z);
}

static void *grow_check(void *p, size_t old, size_t new, uint64_t tag) {
    void *q = realloc(p, new);
    CHECK(q != NULL, "realloc(%zu -> %zu) returned NULL", old, new);
    size_t keep = old < new ? old : new;
    CHECK_PATTERN(q, keep, tag);
    CHECK(malloc_usable_size(q) >= new, "realloc(%zu -> %zu): usable size %zu", old, new,
          malloc_usable_size(q));
    fill_pattern(q, new, tag); /* whole new size writable */
    return q;
}

static void test_chain(const size_t *chain, size_t len, uint64_t tag) {
    void *p = malloc(chain[0]);
    CHECK(p != NULL, "malloc(%zu)", chain[0]);
    fill_pattern(p, chain[0], tag);
    for (size_t i = 1; i < len; i++)
        p = grow_check(p, chain[i - 1], chain[i], tag);
    CHECK_PATTERN(p, chain[len - 1], tag);
    free(p);
}

static void test_realloc_contents(void) {
    static const size_t c1[] = {1u << 20, 2u << 20, 64u << 10, 100};
    test_chain(c1, 4, 1);
    static const size_t c2[] = {1, 2, 3, 8, 9, 16, 17, 31, 32, 33, 48, 64, 65, 100, 128, 129,
                                255, 256, 257, 512, 1000, 1024, 2048, 4095, 4096, 4097, 8192,
                                16384, 16385, 32768, 65536, 100000, 262144, 1u << 20,
                                (1u << 20) + 1, 4u << 20, 9u << 20, 32u << 20};
    enum { N2 = sizeof c2 / sizeof c2[0] };
    test_chain(c2, N2, 2);
    size_t rev[N2];
    for (int i = 0; i < N2; i++)
        rev[i] = c2[N2 - 1 - i];
    test_chain(rev, N2, 3);
    /* zig-zag between classes */
    static const size_t c3[] = {100, 10000, 50, 3u << 20, 20, 70000, 4096, 1u << 20, 8, 16385,
                                16384, 16383, 1};
    test_chain(c3, sizeof c3 / sizeof c3[0], 4);
    /* in-place growth opportunities: grow by one byte many times; shrink by one byte */
    void *p = malloc(1);
    CHECK(p != NULL, "malloc");
    fill_pattern(p, 1, 5);
    size_t n = 1;
    while (n < 20000) {
        p = grow_check(p, n, n + 1 + n / 64, 5);
        n = n + 1 + n / 64;
    }
    while (n > 1) {
        size_t m = n - 1 - n / 64;
        if (m < 1)
            m = 1;
        p = grow_check(p, n, m, 5);
        n = m;
    }
    free(p);
    /* same size realloc keeps the block valid */
    p = malloc(500);
    CHECK(p != NULL, "malloc");
    fill_pattern(p, 500, 6);
    p = grow_check(p, 500, 500, 6);
    p = grow_check(p, 500, malloc_usable_size(p), 6);
    free(p);
}

static void test_realloc_interleaved(void) {
    /* several blocks grown in turn, so neighbours are live and in-place growth is blocked */
    enum { K = 16 };
    void *v[K];
    size_t sz[K];
    for (int i = 0; i < K; i++) {
        sz[i] = 24;
        v[i] = malloc(sz[i]);
        CHECK(v[i] != NULL, "malloc");
        fill_pattern(v[i], sz[i], 100 + i);
    }
    for (int step = 0; step < 14; step++)
        for (int i = 0; i < K; i++) {
            size_t nn = sz[i] * 2 + (size_t)i;
            v[i] = grow_check(v[i], sz[i], nn, 100 + i);
            sz[i] = nn;
        }
    for (int i = 0; i < K; i++) {
        CHECK_PATTERN(v[i], sz[i], 100 + i);
        free(v[i]);
    }
}

int main(void) {
    assert_oxmalloc();
    test_realloc_null();
    test_realloc_zero();
    test_realloc_contents();
    test_realloc_interleaved();
    printf("realloc: ok\n");
    return 0;
}
