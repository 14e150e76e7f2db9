/* threadchurn: many short-lived threads. Usage: threadchurn [THREADS] (default 2000, quick 500).
 * Threads are started in waves of 4 (at most 4 alive at once); each does 500 malloc/free of
 * 8-256 B (keeping up to 16 blocks live, so frees are not all immediately after the malloc),
 * frees everything and exits. ops = threads, so ops_per_sec = threads/s. */
#include "common.h"
#include <pthread.h>

#define WAVE 4

static void *worker(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    char *live[16] = {0};
    for (int i = 0; i < 500; i++) {
        int k = (int)rng_below(&s, 16);
        if (live[k]) b_free(live[k]);
        size_t n = 8 + rng_below(&s, 249);
        live[k] = b_malloc(n);
        live[k][0] = (char)i;
    }
    for (int k = 0; k < 16; k++) b_free(live[k]);
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) n = bench_quick() ? 500 : 2000;
    double t0 = now_s();
    long done = 0;
    while (done < n) {
        pthread_t th[WAVE];
        int k = 0;
        for (; k < WAVE && done + k < n; k++)
            if (pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)(done + k)) != 0) {
                perror("pthread_create");
                return 1;
            }
        for (int j = 0; j < k; j++) pthread_join(th[j], NULL);
        done += k;
    }
    double t = now_s() - t0;
    char param[32];
    snprintf(param, sizeof param, "%ld", n);
    report("threadchurn", param, (double)n, t, "");
    return 0;
}
