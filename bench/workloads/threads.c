/* threads: many live threads, each of which used the allocator a little. Usage: threads N
 * (default 1000). N threads each cycle 64 blocks of each of 15 sizes from 16 B to 200 KB
 * (malloc 64, write the first TOUCH = 4096 bytes of each, free the 64), then park on a
 * barrier. With all of them parked the RSS is read (parked_mib); then they exit and are
 * joined, and the RSS is read at once (exit_mib) and again after THREADS_IDLE_S seconds
 * (default 12: the default dirty decay time and 2 s; quick 3) of idling (end_mib), with
 * nothing asked of the allocator. ops = threads; peak_rss_kib is the whole run's. */
#include "common.h"
#include <pthread.h>

#ifndef TOUCH
#define TOUCH 4096
#endif

static const size_t SIZES[15] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                                 16384, 32768, 65536, 131072, 204800};
static pthread_barrier_t parked, go;

static void *worker(void *arg) {
    (void)arg;
    void *p[64];
    for (int s = 0; s < 15; s++) {
        for (int i = 0; i < 64; i++) {
            p[i] = b_malloc(SIZES[s]);
            memset(p[i], i + 1, SIZES[s] < TOUCH ? SIZES[s] : TOUCH);
        }
        for (int i = 0; i < 64; i++) b_free(p[i]);
    }
    pthread_barrier_wait(&parked);
    pthread_barrier_wait(&go);
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    if (n < 1) n = 1000;
    const char *e = getenv("THREADS_IDLE_S");
    double idle = e ? atof(e) : (bench_quick() ? 3 : 12);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_barrier_init(&parked, NULL, (unsigned)n + 1);
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, worker, NULL)) { fprintf(stderr, "threads: pthread_create failed\n"); return 1; }
    pthread_barrier_wait(&parked);
    double t_up = now_s() - t0;
    usleep(100000);
    long parked_kib = status_kib("VmRSS");
    pthread_barrier_wait(&go);
    for (long i = 0; i < n; i++) pthread_join(t[i], NULL);
    long exit_kib = status_kib("VmRSS");
    double waited = 0;
    while (waited < idle) { usleep(250000); waited += 0.25; }
    long end_kib = status_kib("VmRSS");
    char param[32], extra[128];
    snprintf(param, sizeof param, "%ld", n);
    snprintf(extra, sizeof extra, "parked_mib=%.1f exit_mib=%.1f end_mib=%.1f", parked_kib / 1024.0, exit_kib / 1024.0,
             end_kib / 1024.0);
    report("threads", param, (double)n, t_up, extra);
    return 0;
}
