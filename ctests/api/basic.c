/* free(NULL), malloc(0), errno preservation, malloc_usable_size, alignment. */
#include "../common.h"

static void test_free_null(void) {
    errno = 1234;
    free(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);
}

static void test_malloc_zero(void) {
    void *a = malloc(opaque_size(0));
    void *b = malloc(opaque_size(0));
    CHECK(a != NULL, "malloc(0) returned NULL");
    CHECK(b != NULL, "malloc(0) returned NULL");
    CHECK(a != b, "two live malloc(0) blocks share the address %p", a);
    /* Many live zero-size blocks are all distinct. */
    enum { N = 1000 };
    void **v = malloc(N * sizeof *v);
    CHECK(v != NULL, "malloc");
    for (int i = 0; i < N; i++) {
        v[i] = malloc(opaque_size(0));
        CHECK(v[i] != NULL, "malloc(0) #%d returned NULL", i);
        CHECK(v[i] != a && v[i] != b, "malloc(0) #%d reused a live block", i);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N && j < i + 8; j++)
            CHECK(v[i] != v[j], "malloc(0) #%d and #%d both %p", i, j, v[i]);
    for (int i = 0; i < N; i++)
        free(v[i]);
    free(v);
    free(a);
    free(b);
}

static void test_usable_size(void) {
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu",
          malloc_usable_size(NULL));

    /* Every size 0..4096, then a sparser walk up to 64 KiB, then a few MiB. */
    for (size_t n = 0; n <= 65536; n += (n < 4096 ? 1 : (n < 16384 ? 8 : 61))) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
        CHECK(u <= n + n / 2 + 4096 || n == 0,
              "malloc_usable_size(malloc(%zu)) = %zu is absurdly large", n, u);
        memset(p, 0x5a, u); /* the whole usable size may be written */
        CHECK(p[0] == 0x5a || u == 0, "write lost");
        free(p);
    }
    static const size_t big[] = {
        (1u << 20) - 1, 1u << 20, (1u << 20) + 1, (3u << 20) + 12345, 4u << 20, (8u << 20) - 100,
    };
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        size_t n = big[k];
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
        memset(p, 0xa5, u);
        CHECK(p[u - 1] == 0xa5 && p[0] == 0xa5, "write lost");
        free(p);
    }
}

static void test_alignment(void) {
    enum { LIVE = 64 };
    void *live[LIVE];
    int k = 0;
    for (size_t n = 1; n <= 300000; n = n < 1024 ? n + 1 : n + n / 7) {
        void *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
        if (n >= 16)
            CHECK(is_aligned(p, 16), "malloc(%zu) = %p is not 16-byte aligned", n, p);
        else
            CHECK(is_aligned(p, 8), "malloc(%zu) = %p is not 8-byte aligned", n, p);
        /* keep some blocks live so the allocator does not just hand back the same slot */
        if (k < LIVE)
            live[k++] = p;
        else
            free(p);
    }
    for (int i = 0; i < k; i++)
        free(live[i]);
}

static void test_free_preserves_errno(void) {
    static const size_t sizes[] = {0, 1, 8, 16, 48, 100, 512, 4000, 4096, 16384, 65536,
                                   100000, 1u << 20, (4u << 20) + 1, 32u << 20};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    for (int round = 0; round < 20; round++) {
        void *p[NS];
        for (int i = 0; i < NS; i++) {
            p[i] = malloc(sizes[i]);
            CHECK(p[i] != NULL, "malloc(%zu) returned NULL", sizes[i]);
            memset(p[i], 1, sizes[i]);
        }
        for (int i = 0; i < NS; i++) {
            int idx = (round & 1) ? NS - 1 - i : i;
            errno = 1234;
            free(p[idx]);
            CHECK(errno == 1234, "free() of a %zu-byte block changed errno to %d", sizes[idx],
                  errno);
        }
    }
    /* Many blocks of one size: freeing them empties slabs / extents, which may unmap or purge. */
    enum { M = 4096 };
    void **v = malloc(M * sizeof *v);
    CHECK(v != NULL, "malloc");
    for (int sz = 16; sz <= 8192; sz *= 8) {
        for (int i = 0; i < M; i++) {
            v[i] = malloc(sz);
            CHECK(v[i] != NULL, "malloc(%d)", sz);
        }
        for (int i = 0; i < M; i++) {
            errno = 1234;
            free(v[i]);
            CHECK(errno == 1234, "free() of %d-byte block #%d changed errno to %d", sz, i, errno);
        }
    }
    free(v);
    /* free() after a failed call that set errno: errno stays what the failure set. */
    errno = 0;
    void *q = malloc(opaque_size(SIZE_MAX));
    CHECK(q == NULL && errno == ENOMEM, "malloc(SIZE_MAX) = %p errno %d", q, errno);
    void *r = malloc(100);
    CHECK(r != NULL, "malloc(100)");
    errno = ENOMEM;
    free(r);
    CHECK(errno == ENOMEM, "free() changed errno from ENOMEM to %d", errno);
}

static void test_many_live(void) {
    /* A simple sanity walk: many live blocks of mixed sizes keep their contents. */
    enum { N = 20000 };
    void **v = malloc(N * sizeof *v);
    size_t *sz = malloc(N * sizeof *sz);
    CHECK(v && sz, "malloc");
    uint64_t s = 88172645463325252ULL;
    for (int i = 0; i < N; i++) {
        sz[i] = 1 + rng_next(&s) % ((i % 100 == 0) ? 70000 : 600);
        v[i] = malloc(sz[i]);
        CHECK(v[i] != NULL, "malloc(%zu)", sz[i]);
        fill_pattern(v[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i += 2)
        free(v[i]);
    for (int i = 0; i < N; i += 2) {
        v[i] = malloc(sz[i]);
        CHECK(v[i] != NULL, "malloc(%zu)", sz[i]);
        fill_pattern(v[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        CHECK_PATTERN(v[i], sz[i], (uint64_t)i);
        free(v[i]);
    }
    free(v);
    free(sz);
}

int main(void) {
    assert_oxmalloc();
    test_free_null();
    test_malloc_zero();
    test_usable_size();
    test_alignment();
    test_free_preserves_errno();
    test_many_live();
    printf("basic: ok\n");
    return 0;
}
