/* malloc_trim(0) returns 0 or 1 and the heap still works afterwards; mallopt(M_ARENA_MAX, 2)
 * returns 1 (accepted). */
#include "../common.h"
#include <pthread.h>

static void churn(uint64_t seed) {
    enum { N = 3000 };
    void **v = malloc(N * sizeof *v);
    size_t *sz = malloc(N * sizeof *sz);
    CHECK(v != NULL && sz != NULL, "malloc");
    uint64_t s = seed;
    for (int i = 0; i < N; i++) {
        sz[i] = 1 + rng_next(&s) % (i % 50 == 0 ? 300000 : 2000);
        v[i] = malloc(sz[i]);
        CHECK(v[i] != NULL, "malloc(%zu)", sz[i]);
        fill_pattern(v[i], sz[i], seed + i);
    }
    for (int i = 0; i < N; i++) {
        CHECK_PATTERN(v[i], sz[i], seed + i);
        free(v[i]);
    }
    free(v);
    free(sz);
}

static void *thread_churn(void *arg) {
    churn((uint64_t)(uintptr_t)arg);
    return NULL;
}

int main(void) {
    assert_oxmalloc();
    int r = mallopt(M_ARENA_MAX, 2);
    CHECK(r == 1, "mallopt(M_ARENA_MAX, 2) returned %d, expected 1", r);

    r = malloc_trim(0);
    CHECK(r == 0 || r == 1, "malloc_trim(0) on a fresh heap returned %d", r);

    /* trim with live blocks around: they must survive */
    enum { L = 200 };
    void *live[L];
    for (int i = 0; i < L; i++) {
        live[i] = malloc((size_t)(i * 997 % 70000) + 1);
        CHECK(live[i] != NULL, "malloc");
        fill_pattern(live[i], (size_t)(i * 997 % 70000) + 1, i);
    }
    for (int round = 0; round < 5; round++) {
        churn(1000 * round + 1);
        r = malloc_trim(0);
        CHECK(r == 0 || r == 1, "malloc_trim(0) returned %d", r);
        r = malloc_trim(1u << 20);
        CHECK(r == 0 || r == 1, "malloc_trim(1 MiB pad) returned %d", r);
    }
    /* threads allocating while trimming */
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, thread_churn, (void *)(uintptr_t)(77 + i)) == 0,
              "pthread_create");
    for (int i = 0; i < 20; i++) {
        r = malloc_trim(0);
        CHECK(r == 0 || r == 1, "malloc_trim(0) returned %d", r);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < L; i++) {
        CHECK_PATTERN(live[i], (size_t)(i * 997 % 70000) + 1, i);
        free(live[i]);
    }
    r = malloc_trim(0);
    CHECK(r == 0 || r == 1, "malloc_trim(0) returned %d", r);
    churn(4242); /* still works */
    printf("trim_mallopt: ok\n");
    return 0;
}
