/* Every entry point of the contract comes from the same object as malloc (a missing export
 * would silently fall through to glibc and mix two heaps), and the C++ operators new/delete
 * work when called through their mangled names (looked up with dlsym, so this stays a C
 * program without libstdc++). */
#include "../common.h"

static const char *const c_api[] = {
    "malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "pvalloc", "reallocarray", "malloc_usable_size", "malloc_trim", "mallopt",
};

/* Itanium-ABI names of the replaceable global operators (x86_64: size_t is `m`). */
static const char *const cxx_required[] = {"_Znwm", "_Znam", "_ZdlPv", "_ZdaPv"};

typedef void *(*new_fn)(size_t);
typedef void *(*new_nothrow_fn)(size_t, const void *);
typedef void *(*new_align_fn)(size_t, size_t);
typedef void *(*new_align_nothrow_fn)(size_t, size_t, const void *);
typedef void (*del_fn)(void *);
typedef void (*del_sized_fn)(void *, size_t);
typedef void (*del_align_fn)(void *, size_t);
typedef void (*del_sized_align_fn)(void *, size_t, size_t);

static void *sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }

static void test_exports(void) {
    const char *m = malloc_provider();
    int strict = running_on_oxmalloc();
    for (size_t k = 0; k < sizeof c_api / sizeof c_api[0]; k++) {
        const char *p = symbol_provider(c_api[k]);
        CHECK(p[0] != '\0', "%s cannot be found with dlsym", c_api[k]);
        if (strict)
            CHECK(strcmp(p, m) == 0, "%s comes from %s, but malloc from %s", c_api[k], p, m);
        else if (strcmp(p, m) != 0)
            fprintf(stderr, "symbols: note: %s comes from %s (not %s)\n", c_api[k], p, m);
    }
    for (size_t k = 0; k < sizeof cxx_required / sizeof cxx_required[0]; k++) {
        const char *p = symbol_provider(cxx_required[k]);
        if (strict)
            CHECK(strcmp(p, m) == 0, "operator %s comes from '%s', not from %s",
                  cxx_required[k], p, m);
    }
}

static void test_operators(void) {
    new_fn op_new = (new_fn)sym("_Znwm"), op_new_arr = (new_fn)sym("_Znam");
    del_fn op_del = (del_fn)sym("_ZdlPv"), op_del_arr = (del_fn)sym("_ZdaPv");
    if (!op_new || !op_new_arr || !op_del || !op_del_arr) {
        CHECK(!running_on_oxmalloc(), "oxmalloc does not export operator new/delete");
        fprintf(stderr, "symbols: operator new/delete not in the process; skipped\n");
        return;
    }
    static const size_t sizes[] = {0, 1, 16, 100, 4096, 70000, 3u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *p = op_new(n), *q = op_new_arr(n);
        CHECK(p != NULL && q != NULL && p != q, "operator new(%zu) = %p, new[] = %p", n, p, q);
        CHECK(is_aligned(p, n >= 16 ? 16 : 8), "operator new(%zu) = %p misaligned", n, p);
        if (running_on_oxmalloc())
            CHECK(malloc_usable_size(p) >= n, "operator new(%zu): usable size %zu", n,
                  malloc_usable_size(p));
        fill_pattern(p, n, k);
        fill_pattern(q, n, k + 1);
        CHECK_PATTERN(p, n, k);
        CHECK_PATTERN(q, n, k + 1);
        op_del(p);
        op_del_arr(q);
    }
    op_del(NULL);
    op_del_arr(NULL);

    /* operator new memory is malloc memory in a malloc replacement: free() accepts it */
    void *p = op_new(48);
    CHECK(p != NULL, "operator new(48)");
    free(p);

    /* optional variants: checked when exported */
    char nothrow_tag = 0;
    new_nothrow_fn nt = (new_nothrow_fn)sym("_ZnwmRKSt9nothrow_t");
    if (nt) {
        p = nt(64, &nothrow_tag);
        CHECK(p != NULL, "operator new(64, nothrow)");
        op_del(p);
        p = nt(opaque_size(SIZE_MAX), &nothrow_tag);
        CHECK(p == NULL, "operator new(SIZE_MAX, nothrow) = %p", p);
        p = nt(opaque_size((size_t)PTRDIFF_MAX + 1), &nothrow_tag);
        CHECK(p == NULL, "operator new(PTRDIFF_MAX + 1, nothrow) = %p", p);
    }
    del_sized_fn ds = (del_sized_fn)sym("_ZdlPvm");
    if (ds) {
        for (size_t n = 1; n < 200000; n = n * 3 + 1) {
            p = op_new(n);
            CHECK(p != NULL, "operator new(%zu)", n);
            memset(p, 7, n);
            ds(p, n);
        }
    }
    new_align_fn na = (new_align_fn)sym("_ZnwmSt11align_val_t");
    del_align_fn da = (del_align_fn)sym("_ZdlPvSt11align_val_t");
    del_sized_align_fn dsa = (del_sized_align_fn)sym("_ZdlPvmSt11align_val_t");
    if (na && da) {
        for (size_t a = 32; a <= (1u << 16); a <<= 1) {
            p = na(100, a);
            CHECK(p != NULL && is_aligned(p, a), "operator new(100, align %zu) = %p", a, p);
            memset(p, 1, 100);
            if (dsa && (a & 1024))
                dsa(p, 100, a);
            else
                da(p, a);
        }
    }
    new_align_nothrow_fn nan = (new_align_nothrow_fn)sym("_ZnwmSt11align_val_tRKSt9nothrow_t");
    if (nan && da) {
        p = nan(opaque_size(SIZE_MAX), 64, &nothrow_tag);
        CHECK(p == NULL, "operator new(SIZE_MAX, align 64, nothrow) = %p", p);
        p = nan(64, 64, &nothrow_tag);
        CHECK(p != NULL && is_aligned(p, 64), "operator new(64, align 64, nothrow) = %p", p);
        da(p, 64);
    }
}

int main(void) {
    assert_oxmalloc();
    test_exports();
    test_operators();
    printf("symbols: ok\n");
    return 0;
}
