/* Out of memory under an address-space limit (RLIMIT_AS), with recovery. Each case runs in a
 * forked child that sets its own soft limit, relative to the address space it already uses:
 * - small limit: 64 KiB blocks until NULL (errno ENOMEM, never an abort) must fill most of the
 *   headroom (reservations fall back to smaller sizes when a big one fails); after freeing
 *   them, the same volume fits again, in blocks of other sizes and alignments too;
 * - a reservation above 4 GiB, freed, then the limit brought close: allocations that split it
 *   must get memory or NULL + ENOMEM, never "out of memory for the page map";
 * - a reservation the OS grants but whose page-map leaves or descriptor cannot be had is
 *   given back: after malloc(6 GiB) fails under 6 GiB of headroom, malloc(3 GiB) succeeds;
 * - calloc, realloc, posix_memalign and aligned_alloc at the limit: NULL + ENOMEM (or
 *   the posix_memalign error code), old blocks intact. */
#include "../common.h"
#include <sys/mman.h>

static size_t vm_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL, "statm");
    unsigned long pages = 0;
    CHECK(fscanf(f, "%lu", &pages) == 1, "statm");
    fclose(f);
    return pages * page_size();
}

static void limit_as(size_t bytes) {
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_AS, &r) == 0, "getrlimit");
    r.rlim_cur = bytes;
    CHECK(setrlimit(RLIMIT_AS, &r) == 0, "setrlimit(RLIMIT_AS, %zu)", bytes);
}

static void unlimit_as(void) {
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_AS, &r) == 0, "getrlimit");
    r.rlim_cur = r.rlim_max;
    CHECK(setrlimit(RLIMIT_AS, &r) == 0, "setrlimit");
}

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define HEADROOM (250 * MiB) /* not a multiple of 64 MiB */
#define NBLK (HEADROOM / (64 << 10))

/* Room for the headroom and what earlier reservations hold free. */
static void *blk[NBLK * 2];

/* 64 KiB blocks until NULL; returns how many. */
static size_t fill(size_t size) {
    size_t n = 0;
    for (;;) {
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            CHECK(errno == ENOMEM, "malloc(%zu) returned NULL with errno %d", size, errno);
            return n;
        }
        CHECK(n < sizeof blk / sizeof blk[0], "more blocks than the limit allows");
        *(volatile char *)p = 1;
        blk[n++] = p;
    }
}

static void case_small_limit(void) {
    size_t limit = vm_bytes() + HEADROOM;
    limit_as(limit);
    size_t n = fill(64 << 10);
    size_t mb = n * (64 << 10) / MiB, unused = (limit - vm_bytes()) / MiB;
    printf("  64 KiB blocks under %zu MiB of headroom: %zu MiB (with what earlier reservations held free), "
           "%zu MiB of the headroom left unused\n", HEADROOM / MiB, mb, unused);
    /* Reservations only in whole 64 MiB chunks would leave up to 64 MiB of it unused. */
    CHECK(unused <= 8, "%zu MiB of the headroom stayed unused when 64 KiB blocks ran out", unused);
    /* Recovery: the memory freed serves again, at other sizes and alignments. */
    for (size_t i = 0; i < n; i++) free(blk[i]);
    size_t n2 = fill(64 << 10);
    CHECK(n2 + 2 >= n, "after freeing, only %zu of %zu blocks fit again", n2, n);
    for (size_t i = 0; i < n2; i++) free(blk[i]);
    size_t n3 = fill(200 << 10);
    CHECK(n3 * (200 << 10) >= (n * (64 << 10)) * 9 / 10, "200 KiB blocks: %zu", n3);
    for (size_t i = 0; i < n3; i++) free(blk[i]);
    size_t k = 0;
    for (; k < NBLK; k++) {
        blk[k] = aligned_alloc(65536, 300000);
        if (blk[k] == NULL) break;
    }
    CHECK(k * 300000 >= (n * (64 << 10)) * 8 / 10, "aligned 300000-byte blocks: only %zu fit", k);
    for (size_t i = 0; i < k; i++) free(blk[i]);
    /* Everything at the limit fails cleanly and leaves old blocks alone. */
    n = fill(64 << 10);
    char *old = n ? blk[n - 1] : NULL;
    if (old) memset(old, 0x5c, 64 << 10);
    errno = 0;
    CHECK(calloc(1, 100 * MiB) == NULL && errno == ENOMEM, "calloc at the limit");
    errno = 0;
    CHECK(old == NULL || (realloc(old, 100 * MiB) == NULL && errno == ENOMEM), "realloc at the limit");
    void *q = (void *)1;
    CHECK(posix_memalign(&q, 1 << 20, 100 * MiB) == ENOMEM && q == (void *)1, "posix_memalign at the limit");
    errno = 0;
    CHECK(aligned_alloc(1 << 20, 100 * MiB) == NULL && errno == ENOMEM, "aligned_alloc at the limit");
    if (old) CHECK(all_bytes(old, 64 << 10, 0x5c), "a failed realloc changed the old block");
    for (size_t i = 0; i < n; i++) free(blk[i]);
    unlimit_as();
    void *big = malloc(512 * MiB);
    CHECK(big != NULL, "no recovery once the limit is lifted");
    free(big);
}

static void case_split_big_reservation(void) {
    /* 12 GiB span at least three 4 GiB page-map leaves: splitting them needs entries in
     * leaves other than the first and the last. */
    char *big = malloc(12 * GiB);
    CHECK(big != NULL, "malloc(12 GiB) without a limit");
    big[0] = 1;
    free(big);
    limit_as(vm_bytes() + 2 * MiB);
    static const size_t sizes[] = {5 * GiB, 1 * GiB, 6 * GiB + 12345, 4 * GiB + 4096, 300 * MiB};
    void *got[5];
    for (int i = 0; i < 5; i++) {
        errno = 0;
        got[i] = malloc(sizes[i]);
        CHECK(got[i] != NULL || errno == ENOMEM, "malloc(%zu) near the limit: NULL with errno %d", sizes[i], errno);
        if (got[i]) ((char *)got[i])[sizes[i] - 1] = 1;
    }
    for (int i = 0; i < 5; i++) free(got[i]);
    void *a = aligned_alloc(1 << 30, 2 * GiB);
    CHECK(a != NULL || errno == ENOMEM, "aligned_alloc(1 GiB, 2 GiB) near the limit");
    free(a);
    unlimit_as();
}

static void case_failed_reservation_released(void) {
    limit_as(vm_bytes() + 6 * GiB + MiB);
    errno = 0;
    void *six = malloc(6 * GiB);
    CHECK(six != NULL || errno == ENOMEM, "malloc(6 GiB): NULL with errno %d", errno);
    free(six);
    void *three = malloc(3 * GiB);
    CHECK(three != NULL, "malloc(3 GiB) failed after malloc(6 GiB) %s under 6 GiB of headroom",
          six ? "succeeded" : "failed");
    ((char *)three)[3 * GiB - 1] = 1;
    free(three);
    unlimit_as();
}

/* With an argument, only the cases whose name contains it run. */
static const char *only;

static void run_case(const char *name, void (*f)(void)) { run_forked_case("oom_rlimit", only, name, f); }

int main(int argc, char **argv) {
    assert_oxmalloc();
    only = argc > 1 ? argv[1] : NULL;
    run_case("small limit", case_small_limit);
    run_case("split a big reservation near the limit", case_split_big_reservation);
    run_case("failed reservation released", case_failed_reservation_released);
    return 0;
}
