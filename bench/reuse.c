/* Memory reuse across size classes.
 *
 * Phase 1 allocates 512 MiB worth of 64-byte objects and touches them, then frees them all and
 * calls malloc_trim(0). Phase 2 allocates 512 MiB worth of 4096-byte objects and touches them.
 * An allocator that hands the memory freed in phase 1 to phase 2 peaks near 512 MiB; one that
 * keeps per-size-class memory peaks near 1 GiB.
 *
 * Prints RSS at each phase and the peak (VmHWM) over 512 MiB. The pointer arrays come from mmap,
 * are touched before the first malloc, and their RSS is subtracted ("net"), so the bookkeeping
 * does not go through or count against the allocator.
 *
 *   gcc -O2 -o reuse bench/reuse.c && LD_PRELOAD=target/release/liboxmalloc.so ./reuse
 *
 * Last line, for scripts: "reuse allocator=NAME peak_ratio=X net_peak_ratio=Y".
 */
#define _GNU_SOURCE
#include "allocator_name.h"
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TOTAL ((size_t)512 << 20)
#define MIB (1024.0 * 1024.0)

/* VmRSS or VmHWM from /proc/self/status, in bytes; read with open/read so that no stdio buffer
 * is allocated between measurements. */
#include <fcntl.h>
#include <unistd.h>

static size_t status_kb(const char *key) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strstr(buf, key);
    if (!p) return 0;
    return strtoull(p + strlen(key) + 1, NULL, 10);
}
static size_t rss(void) { return status_kb("VmRSS") * 1024; }
static size_t hwm(void) { return status_kb("VmHWM") * 1024; }

static void **map_array(size_t count) {
    void **a = mmap(NULL, count * sizeof(void *), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(a, 0, count * sizeof(void *)); /* fault it in now: it is part of the baseline */
    return a;
}

static void report(const char *phase, size_t base) {
    size_t r = rss();
    printf("%-28s rss %8.1f MiB  net %8.1f MiB  hwm %8.1f MiB\n", phase, r / MIB,
           (r > base ? r - base : 0) / MIB, hwm() / MIB);
}

int main(void) {
    const size_t small = 64, big = 4096;
    const size_t n1 = TOTAL / small, n2 = TOTAL / big;
    void **a1 = map_array(n1);
    void **a2 = map_array(n2);
    const char *name = allocator_name();

    size_t base = rss();
    printf("allocator: %s\n", name);
    report("start (arrays mapped)", base);

    for (size_t i = 0; i < n1; i++) {
        char *p = malloc(small);
        if (!p) { fprintf(stderr, "malloc(%zu) failed at %zu\n", small, i); return 1; }
        memset(p, (int)(i & 0xff), small);
        a1[i] = p;
    }
    report("after 512 MiB of 64 B", base);

    for (size_t i = 0; i < n1; i++) free(a1[i]);
    report("after free", base);
    malloc_trim(0);
    report("after malloc_trim(0)", base);

    for (size_t i = 0; i < n2; i++) {
        char *p = malloc(big);
        if (!p) { fprintf(stderr, "malloc(%zu) failed at %zu\n", big, i); return 1; }
        memset(p, (int)(i & 0xff), big);
        a2[i] = p;
    }
    report("after 512 MiB of 4096 B", base);

    size_t peak = hwm();
    double ratio = (double)peak / (double)TOTAL;
    double net = (double)(peak > base ? peak - base : 0) / (double)TOTAL;
    printf("peak RSS %.1f MiB (net of %.1f MiB baseline: %.1f MiB)\n", peak / MIB, base / MIB,
           (peak - base) / MIB);
    printf("reuse allocator=%s peak_ratio=%.3f net_peak_ratio=%.3f\n", name, ratio, net);

    for (size_t i = 0; i < n2; i++) free(a2[i]);
    return 0;
}
