/* growth: buffers grown by appends through realloc (string builders, vectors, Redis strings).
 * Usage: growth [NBUF] (default 64). NBUF buffers are grown interleaved (the buffer appended to
 * is picked at random among those not yet full) by appends of 64-4000 bytes each, through
 * realloc to the new length, the appended bytes written, until every buffer holds 8 MiB
 * (quick: 2 MiB); then all are freed. ops = reallocs. Reports secs (the whole loop) and
 * moved_pct, the share of reallocs that returned another address, and maps, the process's
 * mappings at the end of the loop (an allocator that moves pages with mremap splits them). */
#include "common.h"

int main(int argc, char **argv) {
    long nbuf = argc > 1 ? atol(argv[1]) : 64;
    if (nbuf < 1) nbuf = 64;
    size_t cap = bench_quick() ? (2u << 20) : (8u << 20);
    char **buf = calloc((size_t)nbuf, sizeof *buf);
    size_t *len = calloc((size_t)nbuf, sizeof *len);
    long *open = malloc((size_t)nbuf * sizeof *open);
    long nopen = nbuf;
    for (long i = 0; i < nbuf; i++) open[i] = i;
    uint64_t s = 0x9e0;
    long reallocs = 0, moved = 0;
    double t0 = now_s();
    while (nopen > 0) {
        long k = (long)rng_below(&s, (uint64_t)nopen);
        long i = open[k];
        size_t add = 64 + (size_t)rng_below(&s, 4000 - 64 + 1);
        if (len[i] + add > cap) add = cap - len[i];
        char *q = b_realloc(buf[i], len[i] + add);
        if (!q) { fprintf(stderr, "growth: realloc failed\n"); return 1; }
        reallocs++;
        if (buf[i] && q != buf[i]) moved++;
        memset(q + len[i], (int)(i + len[i]), add);
        buf[i] = q;
        len[i] += add;
        if (len[i] == cap) open[k] = open[--nopen];
    }
    double t = now_s() - t0;
    long maps = maps_count();
    for (long i = 0; i < nbuf; i++) {
        if (buf[i][0] != (char)i || buf[i][cap - 1] == 0x7f) { /* touch both ends */ }
        b_free(buf[i]);
    }
    char param[32], extra[128];
    snprintf(param, sizeof param, "%ld", nbuf);
    snprintf(extra, sizeof extra, "secs=%.3f moved_pct=%.2f maps=%ld", t, 100.0 * (double)moved / (double)reallocs, maps);
    report("growth", param, (double)reallocs, t, extra);
    return 0;
}
