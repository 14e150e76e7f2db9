/* calloc: zeroed memory, also when the memory is reused (malloc + fill 0xAA + free, then
 * calloc the same size), for small, page-sized and large (>= 1 MiB) sizes; overflow checks
 * for calloc and reallocarray; reallocarray basics. */
#include "../common.h"

extern void *reallocarray(void *, size_t, size_t);

static const size_t sizes[] = {
    1, 7, 8, 15, 16, 17, 24, 32, 48, 63, 64, 80, 96, 100, 128, 160, 192, 255, 256, 320, 448,
    512, 640, 1000, 1024, 1500, 2048, 3000, 4095, 4096, 4097, 6000, 8192, 10000, 14336, 16384,
    20000, 32768, 40000, 65536, 100000, 131072, 200000, 262144, 500000, (1u << 20) - 1, 1u << 20,
    (1u << 20) + 4096, 3u << 20, (4u << 20) + 7, 8u << 20, 16u << 20,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void check_zero(const unsigned char *p, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == 0, "%s(%zu) = %p: byte %zu is 0x%02x, not zero", what, n, (void *)p, i,
              p[i]);
}

static void test_reuse(void) {
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < NSIZES; k++) {
            size_t n = sizes[k];
            /* dirty several blocks of that size so whichever one calloc reuses is dirty */
            enum { DMAX = 8 };
            const int D = n >= (1u << 20) ? 3 : DMAX;
            unsigned char *d[DMAX];
            for (int i = 0; i < D; i++) {
                d[i] = malloc(n);
                CHECK(d[i] != NULL, "malloc(%zu)", n);
                memset(d[i], 0xAA, malloc_usable_size(d[i]));
            }
            for (int i = D - 1; i >= 0; i--)
                free(d[i]);
            unsigned char *c[DMAX];
            for (int i = 0; i < D; i++) {
                c[i] = calloc(1, n);
                CHECK(c[i] != NULL, "calloc(1, %zu)", n);
                check_zero(c[i], n, "calloc");
                memset(c[i], 0xAA, n); /* dirty again for the next round */
            }
            for (int i = 0; i < D; i++)
                free(c[i]);
            /* n elements of size 1 vs 1 element of size n vs an odd split */
            unsigned char *e = calloc(n, 1);
            CHECK(e != NULL, "calloc(%zu, 1)", n);
            check_zero(e, n, "calloc");
            free(e);
            if (n % 8 == 0) {
                e = calloc(n / 8, 8);
                CHECK(e != NULL, "calloc(%zu, 8)", n / 8);
                check_zero(e, n, "calloc");
                memset(e, 0xAA, n);
                free(e);
            }
        }
    }
    /* Fill a realloc-grown block, free, calloc a bigger one. */
    unsigned char *p = malloc(1000);
    CHECK(p != NULL, "malloc");
    memset(p, 0xAA, 1000);
    p = realloc(p, 2u << 20);
    CHECK(p != NULL, "realloc");
    memset(p, 0xAA, 2u << 20);
    free(p);
    p = calloc(2u << 20, 1);
    CHECK(p != NULL, "calloc");
    check_zero(p, 2u << 20, "calloc");
    free(p);
}

static void test_zero_and_edge(void) {
    void *a = calloc(0, 0), *b = calloc(0, 16), *c = calloc(16, 0);
    CHECK(a != NULL && b != NULL && c != NULL, "calloc with a zero count/size returned NULL");
    CHECK(a != b && b != c && a != c, "calloc zero-size blocks are not unique");
    free(a);
    free(b);
    free(c);
    /* usable size of a calloc block is zeroed only up to n; but n bytes are */
    unsigned char *p = calloc(3, 33);
    CHECK(p != NULL, "calloc(3, 33)");
    CHECK(malloc_usable_size(p) >= 99, "usable size %zu < 99", malloc_usable_size(p));
    check_zero(p, 99, "calloc");
    free(p);
}

static void test_overflow(void) {
    static const size_t f[][2] = {
        {SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX / 2 + 1, 2}, {SIZE_MAX / 16 + 1, 16}, {SIZE_MAX / 1000, 1001},
        {(size_t)1 << 63, 2}, {3, SIZE_MAX / 3 + 1}, {SIZE_MAX, SIZE_MAX},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        size_t a = opaque_size(f[k][0]), b = opaque_size(f[k][1]);
        errno = 0;
        void *p = calloc(a, b);
        CHECK(p == NULL, "calloc(%#zx, %#zx) = %p, expected overflow", a, b, p);
        CHECK(errno == ENOMEM, "calloc(%#zx, %#zx): errno %d, expected ENOMEM", a, b, errno);
        errno = 0;
        p = reallocarray(NULL, a, b);
        CHECK(p == NULL, "reallocarray(NULL, %#zx, %#zx) = %p", a, b, p);
        CHECK(errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx): errno %d", a, b, errno);
        /* overflow on a live block: NULL + ENOMEM, block untouched and still live */
        void *q = malloc(40);
        CHECK(q != NULL, "malloc");
        fill_pattern(q, 40, 9);
        errno = 0;
        p = reallocarray(q, a, b);
        CHECK(p == NULL, "reallocarray(%p, %#zx, %#zx) = %p", q, a, b, p);
        CHECK(errno == ENOMEM, "reallocarray(p, %#zx, %#zx): errno %d", a, b, errno);
        CHECK_PATTERN(q, 40, 9);
        free(q);
    }
    /* products that are exactly representable are not rejected */
    void *p = calloc((size_t)1 << 16, 16);
    CHECK(p != NULL, "calloc(65536, 16)");
    check_zero(p, (size_t)1 << 20, "calloc");
    free(p);
}

static void test_reallocarray(void) {
    unsigned int *v = reallocarray(NULL, 10, sizeof *v);
    CHECK(v != NULL, "reallocarray(NULL, 10, 4)");
    for (unsigned i = 0; i < 10; i++)
        v[i] = i * 2654435761u;
    v = reallocarray(v, 100000, sizeof *v);
    CHECK(v != NULL, "reallocarray grow");
    for (unsigned i = 0; i < 10; i++)
        CHECK(v[i] == i * 2654435761u, "reallocarray lost element %u", i);
    for (unsigned i = 0; i < 100000; i++)
        v[i] = i;
    v = reallocarray(v, 5, sizeof *v);
    CHECK(v != NULL, "reallocarray shrink");
    for (unsigned i = 0; i < 5; i++)
        CHECK(v[i] == i, "reallocarray shrink lost element %u", i);
    free(v);
}

int main(void) {
    assert_oxmalloc();
    test_zero_and_edge();
    test_reuse();
    test_overflow();
    test_reallocarray();
    printf("calloc: ok\n");
    return 0;
}
