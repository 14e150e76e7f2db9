/* realloc: grow a buffer from 16 B to 4 MiB, then free it; repeat until the time budget
 * (0.8 s, quick 0.2 s) is spent. Usage: realloc step|double.
 *   step:   each realloc adds 1..64 bytes (random);
 *   double: each realloc doubles the size (16 B -> 4 MiB is 18 reallocs per round).
 * After every realloc the new last byte is written and the first byte checked (data must move
 * with the block). ops = realloc calls. Also reports rounds completed. */
#include "common.h"

#define MAXSZ (4u << 20)

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "step";
    int dbl = strcmp(mode, "double") == 0;
    double budget = bench_budget(0.8);
    uint64_t s = 777;
    long ops = 0, rounds = 0;
    double t0 = now_s(), t = 0;
    int done = 0;
    while (!done) {
        size_t sz = 16;
        char *p = b_malloc(sz);
        p[0] = 0x5a;
        while (sz < MAXSZ) {
            size_t nsz = dbl ? sz * 2 : sz + 1 + rng_below(&s, 64);
            if (nsz > MAXSZ) nsz = MAXSZ;
            p = b_realloc(p, nsz);
            if (!p || p[0] != 0x5a) {
                fprintf(stderr, "realloc lost data\n");
                return 1;
            }
            p[nsz - 1] = 1;
            sz = nsz;
            ops++;
            if ((ops & 1023) == 0 && now_s() - t0 >= budget) { done = 1; break; }
        }
        b_free(p);
        if (!done) rounds++;
        t = now_s() - t0;
        if (t >= budget) done = 1;
    }
    t = now_s() - t0;
    char extra[64];
    snprintf(extra, sizeof extra, "rounds=%ld", rounds);
    report("realloc", dbl ? "double" : "step", (double)ops, t, extra);
    return 0;
}
