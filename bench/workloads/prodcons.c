/* prodcons: one producer thread mallocs blocks (16-512 B, first byte written) and hands them to
 * one consumer thread through a lock-free SPSC ring of RING slots (default 8192); the consumer
 * reads the byte and frees the block, so every free is a cross-thread free. Runs for the time
 * budget (1.0 s, quick 0.25 s). Usage: prodcons [RING]. ops = blocks transferred and freed. */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

static char **ring;
static size_t ring_mask;
static _Alignas(64) _Atomic size_t head; /* written by producer */
static _Alignas(64) _Atomic size_t tail; /* written by consumer */
static _Alignas(64) long consumed;

static void *consumer(void *arg) {
    (void)arg;
    size_t t = 0;
    long n = 0;
    unsigned sum = 0;
    for (;;) {
        size_t h = atomic_load_explicit(&head, memory_order_acquire);
        if (h == t) {
            sched_yield();
            continue;
        }
        while (t != h) {
            char *p = ring[t & ring_mask];
            t++;
            if (!p) goto done;
            sum += (unsigned char)p[0];
            b_free(p);
            n++;
        }
        atomic_store_explicit(&tail, t, memory_order_release);
    }
done:
    atomic_store_explicit(&tail, t, memory_order_release);
    consumed = n + (sum == 0xFFFFFFFFu);
    return NULL;
}

int main(int argc, char **argv) {
    size_t rsize = argc > 1 ? strtoull(argv[1], NULL, 0) : 8192;
    if (rsize < 2 || (rsize & (rsize - 1))) rsize = 8192;
    ring = calloc(rsize, sizeof *ring);
    ring_mask = rsize - 1;
    double budget = bench_budget(1.0);
    uint64_t s = 12345;
    pthread_t th;
    double t0 = now_s();
    pthread_create(&th, NULL, consumer, NULL);
    size_t h = 0;
    for (;;) {
        for (int k = 0; k < 4096; k++) {
            size_t n = 16 + rng_below(&s, 497);
            char *p = b_malloc(n);
            p[0] = (char)(k | 1);
            while (h - atomic_load_explicit(&tail, memory_order_acquire) >= rsize) sched_yield();
            ring[h & ring_mask] = p;
            h++;
            if ((k & 31) == 31) atomic_store_explicit(&head, h, memory_order_release);
        }
        atomic_store_explicit(&head, h, memory_order_release);
        if (now_s() - t0 >= budget) break;
    }
    while (h - atomic_load_explicit(&tail, memory_order_acquire) >= rsize) sched_yield();
    ring[h & ring_mask] = NULL;
    h++;
    atomic_store_explicit(&head, h, memory_order_release);
    pthread_join(th, NULL);
    double t = now_s() - t0;
    char param[32];
    snprintf(param, sizeof param, "%zu", rsize);
    report("prodcons", param, (double)consumed, t, "");
    return 0;
}
