/* fastest_chunk: times malloc/free in many short chunks and prints the fastest ones, for A/B
 * comparisons of two builds on a noisy host. Other tenants slow whole runs of this VM by
 * 1.5-2x for seconds at a time; the fastest chunks of a run are the ones nothing disturbed,
 * so comparing them (over several alternating runs, scripts/ab-fastest.sh) separates
 * differences of a few percent that medians of whole runs cannot.
 *
 * Usage: fastest_chunk SIZE [BATCH [CHUNKS]]
 *   BATCH 1 (default): pairs, malloc(SIZE) + touch + free, 16384 per chunk;
 *   BATCH n > 1: n mallocs (each touched) then n frees, repeated to ~16384 pairs per chunk.
 *   CHUNKS (default 3000) are timed after 100 untimed ones.
 * Prints: min=NS p10=NS p50=NS (ns per malloc+free over the chunks). */
#include "../workloads/common.h" /* b_malloc, b_free, now_s */

#define PAIRS_PER_CHUNK 16384
#define MAX_BATCH 4096
#define MAX_CHUNKS 100000

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SIZE [BATCH [CHUNKS]]\n", argv[0]);
        return 2;
    }
    size_t size = strtoul(argv[1], NULL, 0);
    int batch = argc > 2 ? atoi(argv[2]) : 1;
    int chunks = argc > 3 ? atoi(argv[3]) : 3000;
    if (batch < 1 || batch > MAX_BATCH || chunks < 10 || chunks > MAX_CHUNKS) {
        fprintf(stderr, "BATCH must be 1..%d, CHUNKS 10..%d\n", MAX_BATCH, MAX_CHUNKS);
        return 2;
    }
    static void *v[MAX_BATCH];
    static double t[MAX_CHUNKS];
    long rounds = PAIRS_PER_CHUNK / batch > 0 ? PAIRS_PER_CHUNK / batch : 1;
    for (int c = -100; c < chunks; c++) {
        double t0 = now_s();
        for (long r = 0; r < rounds; r++) {
            for (int i = 0; i < batch; i++) {
                v[i] = b_malloc(size);
                *(volatile char *)v[i] = 1;
                if (batch == 1) b_free(v[i]);
            }
            if (batch > 1)
                for (int i = 0; i < batch; i++) b_free(v[i]);
        }
        if (c >= 0) t[c] = (now_s() - t0) * 1e9 / ((double)rounds * batch);
    }
    qsort(t, chunks, sizeof t[0], by_value);
    printf("min=%.3f p10=%.3f p50=%.3f\n", t[0], t[chunks / 10], t[chunks / 2]);
    return 0;
}
