/* posix_memalign, aligned_alloc, memalign, valloc, pvalloc: good alignments are honoured and
 * the block is usable; bad alignments give EINVAL (posix_memalign: by return value, *memptr
 * untouched; the others: NULL + errno). */
#include "../common.h"

extern void *pvalloc(size_t);
extern void *valloc(size_t);

static void use_block(void *p, size_t n, uint64_t tag) {
    CHECK(malloc_usable_size(p) >= n, "usable size %zu < %zu", malloc_usable_size(p), n);
    fill_pattern(p, n, tag);
}

static void test_posix_memalign(void) {
    static const size_t sizes[] = {0, 1, 8, 24, 100, 4096, 5000, 65536, 200000, (1u << 20) + 3};
    enum { NSZ = sizeof sizes / sizeof sizes[0] };
    for (size_t a = sizeof(void *); a <= (1u << 21); a <<= 1) {
        void *keep[NSZ];
        for (int k = 0; k < NSZ; k++) {
            void *p = (void *)0x1;
            errno = 0;
            int rc = posix_memalign(&p, a, sizes[k]);
            CHECK(rc == 0, "posix_memalign(align %zu, size %zu) returned %d", a, sizes[k], rc);
            CHECK(p != NULL && p != (void *)0x1, "posix_memalign gave %p", p);
            CHECK(is_aligned(p, a), "posix_memalign(align %zu, size %zu) = %p misaligned", a,
                  sizes[k], p);
            use_block(p, sizes[k], a + k);
            keep[k] = p;
        }
        for (int k = 0; k < NSZ; k++) {
            CHECK_PATTERN(keep[k], sizes[k], a + k);
            free(keep[k]);
        }
    }
    /* bad alignments: not a power of two, or not a multiple of sizeof(void *) */
    static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 48, 100, 4095, 4097, 3u << 20,
                                 SIZE_MAX, ((size_t)1 << 63) + 8, sizeof(void *) + 1};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        void *sentinel = (void *)(uintptr_t)0xabcdef00ULL;
        void *p = sentinel;
        int rc = posix_memalign(&p, opaque_size(bad[k]), 64);
        CHECK(rc == EINVAL, "posix_memalign(align %#zx) returned %d, expected EINVAL", bad[k],
              rc);
        CHECK(p == sentinel, "posix_memalign(align %#zx) failure wrote %p to *memptr", bad[k],
              p);
    }
    /* a huge (power-of-two) alignment that cannot be satisfied */
    void *sentinel = (void *)(uintptr_t)0xabcdef00ULL;
    void *p = sentinel;
    int rc = posix_memalign(&p, (size_t)1 << 63, 64);
    CHECK(rc == ENOMEM || rc == EINVAL, "posix_memalign(align 2^63) returned %d", rc);
    CHECK(p == sentinel, "posix_memalign(align 2^63) failure wrote %p to *memptr", p);
}

static void test_aligned_alloc_memalign(void) {
    for (size_t a = 1; a <= (1u << 21); a <<= 1) {
        /* sizes that are multiples of the alignment, and ones that are not (accepted) */
        size_t szs[] = {a, 3 * a, a + 1, 1, 100, 4096 + 17};
        void *keep[2 * sizeof szs / sizeof szs[0]];
        int nk = 0;
        for (size_t k = 0; k < sizeof szs / sizeof szs[0]; k++) {
            size_t n = szs[k];
            errno = 0;
            void *p = aligned_alloc(a, n);
            CHECK(p != NULL, "aligned_alloc(%zu, %zu) failed, errno %d", a, n, errno);
            CHECK(is_aligned(p, a), "aligned_alloc(%zu, %zu) = %p misaligned", a, n, p);
            use_block(p, n, a * 3 + k);
            keep[nk++] = p;
            void *q = memalign(a, n);
            CHECK(q != NULL, "memalign(%zu, %zu) failed, errno %d", a, n, errno);
            CHECK(is_aligned(q, a), "memalign(%zu, %zu) = %p misaligned", a, n, q);
            use_block(q, n, a * 5 + k);
            keep[nk++] = q;
        }
        for (int k = 0; k < nk; k++) {
            size_t n = szs[k / 2];
            CHECK_PATTERN(keep[k], n, (k & 1) ? a * 5 + k / 2 : a * 3 + k / 2);
            free(keep[k]);
        }
    }
    /* aligned_alloc(a, 0) returns a unique freeable pointer or NULL (C leaves it open), never
     * crashes */
    void *z = aligned_alloc(64, 0);
    free(z);

    /* Bad alignments. The contract (oxmalloc) is NULL + EINVAL for both. glibc < 2.38 rounds a
     * non-power-of-two alignment up, and jemalloc's memalign returns NULL without errno, so
     * under another allocator only "no crash, and a non-NULL result is usable" is checked. */
    int strict = running_on_oxmalloc();
    static const size_t bad[] = {3, 12, 24, 100, 4095, 4097, 3u << 20, SIZE_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t a = opaque_size(bad[k]);
        errno = 0;
        void *p = aligned_alloc(a, 64);
        int e = errno;
        if (strict) {
            CHECK(p == NULL, "aligned_alloc(bad align %#zx) = %p", a, p);
            CHECK(e == EINVAL, "aligned_alloc(bad align %#zx): errno %d, expected EINVAL", a, e);
        } else if (p != NULL) {
            memset(p, 1, 64);
            free(p);
        }
        errno = 0;
        p = memalign(a, 64);
        e = errno;
        if (strict) {
            CHECK(p == NULL, "memalign(bad align %#zx) = %p", a, p);
            CHECK(e == EINVAL, "memalign(bad align %#zx): errno %d, expected EINVAL", a, e);
        } else if (p != NULL) {
            memset(p, 1, 64);
            free(p);
        }
    }
}

static void test_valloc_pvalloc(void) {
    size_t pg = page_size();
    /* jemalloc has no pvalloc: under LD_PRELOAD=jemalloc it is glibc's, on glibc's heap */
    int has_pvalloc = same_provider_as_malloc("pvalloc");
    if (!has_pvalloc)
        fprintf(stderr, "aligned: pvalloc is not provided by the malloc in use; skipped\n");
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 1u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *p = valloc(n);
        CHECK(p != NULL, "valloc(%zu) returned NULL", n);
        CHECK(is_aligned(p, pg), "valloc(%zu) = %p is not page aligned", n, p);
        use_block(p, n, 1000 + k);
        if (!has_pvalloc) {
            free(p);
            continue;
        }
        void *q = pvalloc(n);
        CHECK(q != NULL, "pvalloc(%zu) returned NULL", n);
        CHECK(is_aligned(q, pg), "pvalloc(%zu) = %p is not page aligned", n, q);
        size_t want = (n + pg - 1) & ~(pg - 1);
        if (n == 0) /* glibc gives pvalloc(0) a minimal chunk; the contract says a page */
            want = running_on_jemalloc_like() ? pg : 0;
        CHECK(malloc_usable_size(q) >= want, "pvalloc(%zu): usable size %zu < %zu", n,
              malloc_usable_size(q), want);
        memset(q, 0x3c, want); /* pvalloc rounds up to whole pages: all of them usable */
        CHECK_PATTERN(p, n, 1000 + k);
        free(p);
        free(q);
    }
    if (!has_pvalloc || !running_on_jemalloc_like())
        return;
    void *a = pvalloc(0), *b = pvalloc(1);
    CHECK(a && b && a != b, "pvalloc(0) = %p, pvalloc(1) = %p", a, b);
    CHECK(is_aligned(a, pg) && is_aligned(b, pg), "pvalloc not page aligned");
    CHECK(malloc_usable_size(a) >= 4096 && malloc_usable_size(b) >= 4096,
          "pvalloc(0)/pvalloc(1) usable sizes %zu/%zu < 4096", malloc_usable_size(a),
          malloc_usable_size(b));
    free(a);
    free(b);
}

static void test_realloc_of_aligned(void) {
    /* realloc of an over-aligned block keeps its contents */
    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, 3000) == 0, "posix_memalign");
    fill_pattern(p, 3000, 42);
    p = realloc(p, 100000);
    CHECK(p != NULL, "realloc of an aligned block");
    CHECK_PATTERN(p, 3000, 42);
    p = realloc(p, 10);
    CHECK(p != NULL, "realloc of an aligned block (shrink)");
    CHECK_PATTERN(p, 10, 42);
    free(p);
}

int main(void) {
    assert_oxmalloc();
    test_posix_memalign();
    test_aligned_alloc_memalign();
    test_valloc_pvalloc();
    test_realloc_of_aligned();
    printf("aligned: ok\n");
    return 0;
}
