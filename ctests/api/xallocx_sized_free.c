/* Sized frees after in-place resizing: a valid program is never killed. After
 * `u = xallocx(p, size, extra, flags)`, `sdallocx(p, s, flags)` may name any s from `size` up to
 * `u` when xallocx resized the block, else (u is the old usable size) any s from the previous
 * request up to `u`;
 * after `rallocx` any s from its size up to the usable size; after `realloc` (which may shrink
 * or grow in place) any s from its size up to the usable size. Every such sequence runs over
 * original sizes, resize targets, extras (0, a little, much) and alignments, small and large,
 * with neighbours free (so blocks grow in place) and with neighbours live (so they cannot),
 * and each legal size is tried: the smallest, the largest, the middle, one past the smallest.
 * (jemalloc's release build does not check sizes at all; oxmalloc checks them and aborts on a
 * size that does not belong to the block: ctests/misuse/sdallocx_wrong_size*.c.) */
#include "../common.h"

#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_TCACHE_NONE ((int)0x100)

#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void *rallocx(void *ptr, size_t size, int flags);
WEAK size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
WEAK size_t sallocx(const void *ptr, int flags);
WEAK void sdallocx(void *ptr, size_t size, int flags);
WEAK void dallocx(void *ptr, int flags);

static const size_t ORIG[] = {100, 3000, 40000, 65536, 100000, 261158, 262144, 300000, 1 << 20};
static const size_t TARGET[] = {1, 100, 5000, 33000, 40000, 70000, 262158, 270000, 500000, 2 << 20};
static const size_t EXTRA[] = {0, 1, 5000, 100000, 1 << 20};
static const int ALIGN[] = {0, 6, 13, 16};

static unsigned long trials;

/* A block of `orig` bytes whose following pages are free (`room`) or held by a live block. */
static void *block(size_t orig, int flags, int room, void **wall) {
    void *p = mallocx(orig, flags);
    CHECK(p != NULL, "mallocx(%zu, %#x)", orig, flags);
    *wall = room ? NULL : mallocx(orig, flags);
    memset(p, 0x11, orig < 64 ? orig : 64);
    return p;
}

/* sdallocx(p, s) for the sizes of [lo, hi] named above; `make` gives a fresh block each time. */
#define EACH_LEGAL_SIZE(lo, hi, s) \
    for (size_t k_ = 0, s; k_ < 4 && ((s = k_ == 0 ? (lo) : k_ == 1 ? (hi) : k_ == 2 ? ((lo) + (hi)) / 2 : (lo) + 1), 1); k_++) \
        if (s >= (lo) && s <= (hi))

/* The sizes a sized free may name after `u = xallocx(p, size, extra, flags)` on a block of
 * `old` usable bytes asked for as `orig`: from `size` if it resized the block, else (u == old)
 * from `orig`, up to `u`. */
static size_t legal_min(size_t orig, size_t old, size_t size, size_t u) { return u == old ? orig : size; }

static void xallocx_then_sized_free(void) {
    for (size_t a = 0; a < sizeof ALIGN / sizeof ALIGN[0]; a++)
        for (size_t o = 0; o < sizeof ORIG / sizeof ORIG[0]; o++)
            for (size_t t = 0; t < sizeof TARGET / sizeof TARGET[0]; t++)
                for (size_t e = 0; e < sizeof EXTRA / sizeof EXTRA[0]; e++)
                    for (int room = 0; room < 2; room++) {
                        int flags = MALLOCX_LG_ALIGN(ALIGN[a]);
                        size_t orig = ORIG[o], size = TARGET[t], extra = EXTRA[e];
                        /* The legal range, found on a probe block resized the same way. */
                        void *wall;
                        void *p = block(orig, flags, room, &wall);
                        size_t old = sallocx(p, 0);
                        size_t u = xallocx(p, size, extra, flags);
                        CHECK(u == sallocx(p, 0), "xallocx returned %zu, sallocx %zu", u, sallocx(p, 0));
                        size_t lo = legal_min(orig, old, size, u);
                        sdallocx(p, u, flags);
                        if (wall) dallocx(wall, 0);
                        EACH_LEGAL_SIZE(lo, u, s) {
                            void *q = block(orig, flags, room, &wall);
                            size_t qold = sallocx(q, 0);
                            size_t v = xallocx(q, size, extra, flags);
                            if (s >= legal_min(orig, qold, size, v) && s <= v) {
                                sdallocx(q, s, flags);
                                trials++;
                            } else {
                                sdallocx(q, v, flags);
                            }
                            if (wall) dallocx(wall, 0);
                        }
                    }
}

static void rallocx_and_realloc_then_sized_free(void) {
    for (size_t a = 0; a < sizeof ALIGN / sizeof ALIGN[0]; a++)
        for (size_t o = 0; o < sizeof ORIG / sizeof ORIG[0]; o++)
            for (size_t t = 0; t < sizeof TARGET / sizeof TARGET[0]; t++)
                for (int room = 0; room < 2; room++) {
                    int flags = MALLOCX_LG_ALIGN(ALIGN[a]);
                    size_t orig = ORIG[o], size = TARGET[t];
                    for (int k = 0; k < 4; k++) {
                        void *wall;
                        void *p = block(orig, flags, room, &wall);
                        void *q = rallocx(p, size, flags);
                        CHECK(q != NULL, "rallocx");
                        size_t u = sallocx(q, 0);
                        size_t s = k == 0 ? size : k == 1 ? u : k == 2 ? (size + u) / 2 : size + 1;
                        if (s > u) s = u;
                        sdallocx(q, s, flags);
                        if (wall) dallocx(wall, 0);
                        trials++;
                    }
                    if (ALIGN[a] != 0) continue;
                    for (int k = 0; k < 4; k++) {
                        void *wall;
                        void *p = block(orig, 0, room, &wall);
                        void *q = realloc(p, size);
                        CHECK(q != NULL, "realloc");
                        size_t u = malloc_usable_size(q);
                        size_t s = k == 0 ? size : k == 1 ? u : k == 2 ? (size + u) / 2 : size + 1;
                        if (s > u) s = u;
                        sdallocx(q, s, 0);
                        if (wall) dallocx(wall, 0);
                        trials++;
                    }
                }
}

/* The probe's sequence: mallocx(261158), xallocx(p, 262158, 5000), sdallocx(p, 262158), with the
 * block's neighbour free (a fresh manual arena places blocks in order). */
static void issue_sequence(void) {
    unsigned arena = 0;
    size_t len = sizeof arena;
    CHECK(mallctl("arenas.create", &arena, &len, NULL, 0) == 0, "arenas.create");
    int f = MALLOCX_TCACHE_NONE | (int)((arena + 1) << 20);
    void *p = mallocx(261158, f);
    CHECK(p != NULL, "mallocx");
    size_t u = xallocx(p, 262158, 5000, 0);
    CHECK(u >= 262158, "xallocx did not grow the block (%zu): the probe needs its neighbour free", u);
    sdallocx(p, 262158, f);
    p = mallocx(261158, f);
    u = xallocx(p, 262158, 5000, 0);
    sdallocx(p, 261158 > u ? u : 262158 + (u - 262158) / 2, f);
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallocx && rallocx && xallocx && sallocx && sdallocx && dallocx && mallctl, "jemalloc API missing");
    issue_sequence();
    xallocx_then_sized_free();
    rallocx_and_realloc_then_sized_free();
    printf("xallocx_sized_free: %lu sized frees after resizing, none refused\n", trials);
    return 0;
}
