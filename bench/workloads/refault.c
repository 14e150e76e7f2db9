/* refault: a program that frees and re-allocates the same volume again and again must not
 * have its working set purged and faulted back in each round. Keeps 20 live buffers of random
 * size 5-25 MiB; ROUNDS (2000; quick 500) times replaces a random one by a new calloc'ed
 * buffer and writes one byte in every page of it (the program uses its zeroed buffer). Then
 * frees everything and idles IDLE_SECS (15; quick 5) seconds making no allocator call, and
 * reports the RSS at the end. Usage: refault [ROUNDS]. ops = rounds; extra fields:
 *   loop_s       seconds of the replacement loop
 *   faults_k     minor page faults of the loop, thousands
 *   end_mib      RSS at the end of the idle phase */
#include "common.h"
#include <sys/resource.h>


static char *fresh(uint64_t *s) {
    size_t size = (5 << 20) + rng_next(s) % (20 << 20);
    char *p = b_calloc(1, size);
    if (!p) { fprintf(stderr, "calloc failed\n"); exit(1); }
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    return p;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : (bench_quick() ? 500 : 2000);
    double idle = bench_quick() ? 5 : 15;
    const char *e = getenv("IDLE_SECS");
    if (e) idle = atof(e);
    uint64_t s = 7;
    char *buf[20];
    for (int i = 0; i < 20; i++) buf[i] = fresh(&s);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        int i = (int)(rng_next(&s) % 20);
        b_free(buf[i]);
        buf[i] = fresh(&s);
    }
    double loop = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    for (int i = 0; i < 20; i++) b_free(buf[i]);
    struct timespec ts = {(time_t)idle, (long)((idle - (double)(time_t)idle) * 1e9)};
    nanosleep(&ts, NULL);
    char extra[160];
    snprintf(extra, sizeof extra, "loop_s=%.3f faults_k=%.1f end_mib=%.1f", loop,
             (double)(r1.ru_minflt - r0.ru_minflt) / 1000.0, rss_kib_noalloc() / 1024.0);
    report("refault", "2000", (double)rounds, loop, extra);
    return 0;
}
