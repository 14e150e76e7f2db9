/* pairs: single-thread malloc(size) + touch one byte + free, repeated.
 * Usage: pairs SIZE. Runs chunks of pairs until the time budget (0.4 s, quick 0.1 s) is spent,
 * after a short warm-up. ops = pairs. */
#include "common.h"

int main(int argc, char **argv) {
    size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : 64;
    double budget = bench_budget(0.4);
    const long chunk = 1 << 14;
    for (long i = 0; i < chunk; i++) { /* warm-up */
        char *p = b_malloc(size);
        *(volatile char *)p = (char)i;
        b_free(p);
    }
    double t0 = now_s(), t;
    long ops = 0;
    do {
        for (long i = 0; i < chunk; i++) {
            char *p = b_malloc(size);
            *(volatile char *)p = (char)i;
            b_free(p);
        }
        ops += chunk;
        t = now_s() - t0;
    } while (t < budget);
    char param[32];
    snprintf(param, sizeof param, "%zu", size);
    report("pairs", param, (double)ops, t, "");
    return 0;
}
