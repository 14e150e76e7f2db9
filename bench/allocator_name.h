/* allocator_name(): which malloc this bench program runs on, for the bench/ programs (the
 * foundation benchmarks and bench/workloads). */
#ifndef OXMALLOC_BENCH_ALLOCATOR_NAME_H
#define OXMALLOC_BENCH_ALLOCATOR_NAME_H
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Basename of the malloc library mapped into this process, or "glibc". Uses raw
 * open/read into a static buffer so the check itself does not allocate; reads the whole
 * file a buffer at a time (a process may have thousands of mappings before the library's). */
static const char *allocator_name(void) {
    static char buf[1 << 16];
    static char name[256];
    int fd = open("/proc/self/maps", O_RDONLY);
    snprintf(name, sizeof name, "glibc");
    if (fd < 0) return name;
    size_t len = 0;
    ssize_t n;
    int found = 0;
    while (!found && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)n;
        buf[len] = 0;
        char *line = buf;
        for (char *nl; !found && (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
            *nl = 0;
            char *base = strrchr(line, '/');
            if (base && strstr(base, "malloc") && strstr(base, ".so")) {
                snprintf(name, sizeof name, "%s", base + 1);
                found = 1;
            }
        }
        /* Keep the unfinished last line for the next read. */
        len = (size_t)(buf + len - line);
        memmove(buf, line, len);
        if (len == sizeof buf - 1) len = 0;
    }
    close(fd);
    return name;
}

/* Lines of /proc/self/maps: the process's mappings (no allocation). */
static inline long maps_count(void) {
    static char buf[1 << 16];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) return -1;
    long lines = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    close(fd);
    return lines;
}
#endif
