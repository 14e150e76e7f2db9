/* Thread churn: thousands of short-lived threads, a few at a time. Kinds:
 *   0  allocate and free a random mix (thread cache filled, then torn down)
 *   1  only free blocks that main allocated (a free-only thread)
 *   2  allocate blocks and leave them for main to free after the join
 *   3  allocate a few blocks and exit without freeing them (leaked on purpose; small)
 *   4  detached thread: allocates, frees, exits while main goes on
 * Resident memory must stay bounded: the thread caches of dead threads must be returned. */
#include "../common.h"
#include <pthread.h>
#include <stdatomic.h>

#define WAVE 8
#define PER_THREAD 48

struct job {
    int kind;
    uint64_t seed;
    void *blocks[PER_THREAD];
    size_t sizes[PER_THREAD];
};

static atomic_int detached_running;

static size_t sz_of(uint64_t *s) {
    uint64_t r = rng_next(s);
    if (r % 64 == 0)
        return 20000 + (size_t)(r >> 32) % 300000;
    return 8 + (size_t)(r >> 32) % 1000;
}

static void *run(void *arg) {
    struct job *j = arg;
    uint64_t s = j->seed;
    switch (j->kind) {
    case 0: {
        void *v[PER_THREAD];
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < PER_THREAD; i++) {
                size_t n = sz_of(&s);
                v[i] = malloc(n);
                CHECK(v[i] != NULL, "malloc(%zu)", n);
                fill_pattern(v[i], n < 64 ? n : 64, j->seed + i);
            }
            for (int i = 0; i < PER_THREAD; i++)
                free(v[i]);
        }
        break;
    }
    case 1:
        for (int i = 0; i < PER_THREAD; i++) {
            CHECK_PATTERN(j->blocks[i], j->sizes[i], j->seed + i);
            free(j->blocks[i]);
            j->blocks[i] = NULL;
        }
        break;
    case 2:
        for (int i = 0; i < PER_THREAD; i++) {
            j->sizes[i] = sz_of(&s);
            j->blocks[i] = malloc(j->sizes[i]);
            CHECK(j->blocks[i] != NULL, "malloc");
            fill_pattern(j->blocks[i], j->sizes[i], j->seed + i);
        }
        break;
    case 3:
        for (int i = 0; i < 3; i++) {
            char *p = malloc(24 + i * 40);
            CHECK(p != NULL, "malloc");
            p[0] = 1; /* leaked on purpose */
        }
        break;
    case 4: {
        for (int i = 0; i < PER_THREAD; i++) {
            void *p = malloc(sz_of(&s));
            CHECK(p != NULL, "malloc");
            free(p);
        }
        free(j);
        atomic_fetch_sub(&detached_running, 1);
        break;
    }
    }
    return NULL;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size = 0, res = 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (long)(page_size() / 1024);
}

int main(void) {
    assert_oxmalloc();
    long total = 4000 * ctests_scale();
    uint64_t s = 42;
    long rss_early = -1;
    pthread_attr_t det;
    pthread_attr_init(&det);
    pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED);
    for (long started = 0; started < total; started += WAVE) {
        pthread_t th[WAVE];
        struct job *jobs[WAVE];
        int joinable[WAVE];
        for (int w = 0; w < WAVE; w++) {
            struct job *j = calloc(1, sizeof *j);
            CHECK(j != NULL, "calloc job");
            j->kind = (int)((started + w) % 5);
            j->seed = rng_next(&s);
            if (j->kind == 1)
                for (int i = 0; i < PER_THREAD; i++) {
                    j->sizes[i] = sz_of(&s);
                    j->blocks[i] = malloc(j->sizes[i]);
                    CHECK(j->blocks[i] != NULL, "malloc");
                    fill_pattern(j->blocks[i], j->sizes[i], j->seed + i);
                }
            jobs[w] = j;
            joinable[w] = j->kind != 4;
            if (j->kind == 4) {
                /* do not let detached threads pile up without bound */
                while (atomic_load(&detached_running) > 64)
                    sched_yield();
                atomic_fetch_add(&detached_running, 1);
                CHECK(pthread_create(&th[w], &det, run, j) == 0, "pthread_create (detached)");
                jobs[w] = NULL; /* the thread frees its job */
            } else {
                CHECK(pthread_create(&th[w], NULL, run, j) == 0, "pthread_create");
            }
        }
        for (int w = 0; w < WAVE; w++) {
            if (!joinable[w])
                continue;
            pthread_join(th[w], NULL);
            struct job *j = jobs[w];
            if (j->kind == 2)
                for (int i = 0; i < PER_THREAD; i++) {
                    CHECK_PATTERN(j->blocks[i], j->sizes[i], j->seed + i);
                    free(j->blocks[i]);
                }
            free(j);
        }
        if (started == 400)
            rss_early = rss_kib();
    }
    while (atomic_load(&detached_running) > 0)
        usleep(1000);
    long rss_end = rss_kib();
    /* Leaked on purpose: total/5 threads x ~200 bytes. Anything far above the early RSS means
     * dead threads' caches are not being reclaimed. */
    if (rss_early > 0 && rss_end > 0)
        CHECK(rss_end < rss_early * 3 + 64 * 1024,
              "RSS grew from %ld KiB (after 400 threads) to %ld KiB (after %ld threads)",
              rss_early, rss_end, total);
    printf("thread_churn: ok (%ld threads, RSS %ld KiB -> %ld KiB)\n", total, rss_early,
           rss_end);
    return 0;
}
