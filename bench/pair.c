/* Single-thread malloc+free pair cost.
 *
 * For each size in 16, 256, 4096, 65536: time N pairs of malloc(size) + touch one byte +
 * free, REPS times, and print the median ns per pair. The calls go through volatile function
 * pointers so the compiler can neither elide the pair nor inline anything.
 *
 *   gcc -O2 -o pair bench/pair.c && LD_PRELOAD=target/release/liboxmalloc.so ./pair [N_SCALE] [REPS]
 *
 * N is 4M pairs for 16 and 256 bytes, 2M for 4096, 1M for 65536, times N_SCALE (default 1).
 * One line per size, for scripts: "pair allocator=NAME size=S ns=X min=Y max=Z".
 */
#define _GNU_SOURCE
#include "allocator_name.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *(*volatile malloc_p)(size_t) = malloc;
static void (*volatile free_p)(void *) = free;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run(size_t size, long n) {
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        char *p = malloc_p(size);
        *(volatile char *)p = (char)i;
        free_p(p);
    }
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    if (scale <= 0) scale = 1.0;
    if (reps < 1 || reps > 101) reps = 7;
    static const size_t sizes[] = {16, 256, 4096, 65536};
    static const long base_n[] = {4000000, 4000000, 2000000, 1000000};
    double t[101];
    const char *name = allocator_name();

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long n = (long)(base_n[s] * scale);
        if (n < 1000) n = 1000;
        run(sizes[s], n / 10 + 1000); /* warm up: thread cache, first slab/page */
        for (int r = 0; r < reps; r++) t[r] = run(sizes[s], n);
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        printf("pair allocator=%s size=%zu ns=%.2f min=%.2f max=%.2f n=%ld reps=%d\n", name,
               sizes[s], t[reps / 2], t[0], t[reps - 1], n, reps);
    }
    return 0;
}
