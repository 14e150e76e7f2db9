/* allocator_name(): which malloc this bench program runs on, for the bench/ programs (the
 * foundation benchmarks and bench/workloads). */
#ifndef OXMALLOC_BENCH_ALLOCATOR_NAME_H
#define OXMALLOC_BENCH_ALLOCATOR_NAME_H
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Basename of the malloc library mapped into this process, or "glibc". Uses raw
 * open/read into a static buffer so the check itself does not allocate. */
static const char *allocator_name(void) {
    static char buf[1 << 17];
    static char name[256];
    int fd = open("/proc/self/maps", O_RDONLY);
    snprintf(name, sizeof name, "glibc");
    if (fd < 0) return name;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
    close(fd);
    buf[len] = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *base = strrchr(line, '/');
        if (base && strstr(base, "malloc") && strstr(base, ".so")) {
            snprintf(name, sizeof name, "%s", base + 1);
            return name;
        }
        line = nl ? nl + 1 : NULL;
    }
    return name;
}
#endif
