/* Multi-threaded random malloc/realloc/free/calloc/posix_memalign of mixed sizes (8 B to
 * 256 KiB, log-uniform, rare 4 MiB) with content checks: every block carries a per-block
 * pattern that is verified before each realloc and free. Blocks also migrate between threads
 * through a shared exchange array, so a good fraction of frees and reallocs are remote.
 * Threads: CTESTS_THREADS (default 4). Work: CTESTS_SCALE. */
#include "../common.h"
#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 1024
#define XCHG 256

struct blk {
    unsigned char *p;
    size_t n;
    uint64_t tag;
};

static _Atomic(struct blk *) exchange[XCHG];
static long iters_per_thread;

/* Pattern on a subset of offsets (all of them for small blocks, head, tail and one byte in
 * 509 for big ones), so multi-MiB blocks stay cheap. check(n_written, limit) verifies the
 * offsets written for size n_written that lie below limit (after a realloc, limit is the
 * smaller of the two sizes). */
static void stamp(struct blk *b) {
    size_t n = b->n;
    if (n <= 2048) {
        fill_pattern(b->p, n, b->tag);
        return;
    }
    for (size_t i = 0; i < 512; i++)
        b->p[i] = pat_byte(b->tag, i);
    for (size_t i = n - 512; i < n; i++)
        b->p[i] = pat_byte(b->tag, i);
    for (size_t i = 0; i < n; i += 509)
        b->p[i] = pat_byte(b->tag, i);
}

static void verify(const struct blk *b, size_t written, size_t limit) {
    size_t end = written < limit ? written : limit;
    if (written <= 2048) {
        CHECK_PATTERN(b->p, end, b->tag);
        return;
    }
    for (size_t i = 0; i < end && i < 512; i++)
        CHECK(b->p[i] == pat_byte(b->tag, i), "block %p (n %zu tag %llu) corrupt at %zu",
              (void *)b->p, written, (unsigned long long)b->tag, i);
    for (size_t i = written - 512; i < end; i++)
        CHECK(b->p[i] == pat_byte(b->tag, i), "block %p (n %zu tag %llu) corrupt at %zu",
              (void *)b->p, written, (unsigned long long)b->tag, i);
    for (size_t i = 0; i < end; i += 509)
        CHECK(b->p[i] == pat_byte(b->tag, i), "block %p (n %zu tag %llu) corrupt at %zu",
              (void *)b->p, written, (unsigned long long)b->tag, i);
}

static size_t rand_size(uint64_t *s) {
    uint64_t r = rng_next(s);
    if (r % 4096 == 0)
        return (4u << 20) + (size_t)(r >> 40) % 65536; /* rare 4 MiB */
    unsigned lg = 3 + (unsigned)((r >> 12) % 16);      /* 2^3 .. 2^18 */
    size_t lo = (size_t)1 << lg;
    return lo + (size_t)((r >> 20) % lo);
}

static void alloc_blk(struct blk *b, uint64_t *s, uint64_t tag) {
    size_t n = rand_size(s);
    unsigned kind = (unsigned)(rng_next(s) % 16);
    b->n = n;
    b->tag = tag;
    if (kind == 0) {
        b->p = calloc(1, n);
        CHECK(b->p != NULL, "calloc(1, %zu)", n);
        CHECK(b->p[0] == 0 && b->p[n - 1] == 0 && b->p[n / 2] == 0,
              "calloc(1, %zu) = %p not zeroed", n, (void *)b->p);
    } else if (kind == 1) {
        size_t a = (size_t)16 << (rng_next(s) % 9); /* 16 .. 4096 */
        void *p = NULL;
        int rc = posix_memalign(&p, a, n);
        CHECK(rc == 0 && p != NULL, "posix_memalign(%zu, %zu) = %d", a, n, rc);
        CHECK(is_aligned(p, a), "posix_memalign(%zu, %zu) = %p misaligned", a, n, p);
        b->p = p;
    } else {
        b->p = malloc(n);
        CHECK(b->p != NULL, "malloc(%zu)", n);
        CHECK(is_aligned(b->p, n >= 16 ? 16 : 8), "malloc(%zu) = %p misaligned", n,
              (void *)b->p);
    }
    CHECK(malloc_usable_size(b->p) >= n, "usable size %zu < %zu", malloc_usable_size(b->p), n);
    stamp(b);
}

static void *worker(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t s = 0x9E3779B97F4A7C15ULL * (id + 1);
    struct blk *slots = calloc(SLOTS, sizeof *slots);
    CHECK(slots != NULL, "calloc slots");
    uint64_t tag = id << 40;
    for (long it = 0; it < iters_per_thread; it++) {
        uint64_t r = rng_next(&s);
        struct blk *b = &slots[r % SLOTS];
        unsigned op = (unsigned)((r >> 32) % 100);
        if (b->p == NULL) {
            alloc_blk(b, &s, ++tag);
        } else if (op < 45) {
            verify(b, b->n, b->n);
            free(b->p);
            b->p = NULL;
        } else if (op < 80) {
            size_t m = (rng_next(&s) % 3 == 0) ? b->n / 2 + 1 : rand_size(&s);
            verify(b, b->n, b->n);
            unsigned char *q = realloc(b->p, m);
            CHECK(q != NULL, "realloc(%p, %zu -> %zu)", (void *)b->p, b->n, m);
            struct blk nb = {q, m, b->tag};
            verify(&nb, b->n, m); /* prefix survived */
            *b = nb;
            stamp(b);
        } else if (op < 95) {
            /* hand the block to whichever thread picks it up next */
            struct blk *h = malloc(sizeof *h);
            CHECK(h != NULL, "malloc");
            *h = *b;
            b->p = NULL;
            struct blk *old = atomic_exchange(&exchange[(r >> 8) % XCHG], h);
            if (old != NULL) {
                verify(old, old->n, old->n);
                if (slots[(r >> 16) % SLOTS].p == NULL) {
                    slots[(r >> 16) % SLOTS] = *old;
                } else {
                    free(old->p);
                }
                free(old);
            }
        } else {
            /* a burst of short-lived small blocks */
            void *tmp[32];
            for (int i = 0; i < 32; i++) {
                tmp[i] = malloc(8 + (rng_next(&s) % 200));
                CHECK(tmp[i] != NULL, "malloc");
                *(volatile char *)tmp[i] = (char)i;
            }
            for (int i = 31; i >= 0; i--)
                free(tmp[i]);
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p != NULL) {
            verify(&slots[i], slots[i].n, slots[i].n);
            free(slots[i].p);
        }
    free(slots);
    return NULL;
}

int main(void) {
    assert_oxmalloc();
    const char *t = getenv("CTESTS_THREADS");
    int nthreads = t ? atoi(t) : 4;
    if (nthreads < 1 || nthreads > 256)
        nthreads = 4;
    iters_per_thread = 50000 * ctests_scale();
    for (int round = 0; round < 2; round++) {
        pthread_t th[256];
        for (int i = 0; i < nthreads; i++)
            CHECK(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(round * 1000 + i)) ==
                      0,
                  "pthread_create");
        for (int i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
    }
    for (int i = 0; i < XCHG; i++) {
        struct blk *h = atomic_exchange(&exchange[i], NULL);
        if (h) {
            verify(h, h->n, h->n);
            free(h->p);
            free(h);
        }
    }
    printf("random_mt: ok (%d threads x %ld ops x 2 rounds)\n", nthreads, iters_per_thread);
    return 0;
}
