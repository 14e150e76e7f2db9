/* batch: allocate 1000 blocks of SIZE, touch the first byte of each, free all (in allocation
 * order); repeat until the time budget (0.5 s, quick 0.125 s) is spent. ops = malloc+free pairs.
 * Usage: batch SIZE. Also reports minor page faults per round. */
#include "common.h"
#include <sys/resource.h>

#define N 1000

static void round_once(void **v, size_t size) {
    for (int i = 0; i < N; i++) {
        char *p = b_malloc(size);
        *(volatile char *)p = (char)i;
        v[i] = p;
    }
    for (int i = 0; i < N; i++) b_free(v[i]);
}

int main(int argc, char **argv) {
    size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : 64;
    double budget = bench_budget(0.5);
    static void *v[N];
    round_once(v, size); /* warm-up */
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s(), t;
    long rounds = 0;
    do {
        round_once(v, size);
        rounds++;
        t = now_s() - t0;
    } while (t < budget);
    getrusage(RUSAGE_SELF, &r1);
    char param[32], extra[64];
    snprintf(param, sizeof param, "%zu", size);
    snprintf(extra, sizeof extra, "faults_per_round=%.1f", (double)(r1.ru_minflt - r0.ru_minflt) / rounds);
    report("batch", param, (double)rounds * N, t, extra);
    return 0;
}
