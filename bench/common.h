/* Helpers shared by the bench/ programs. */
#ifndef OXMALLOC_BENCH_COMMON_H
#define OXMALLOC_BENCH_COMMON_H
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Name of the malloc library mapped into this process, or "glibc". */
static void allocator_name(char *out, size_t cap) {
    static char buf[65536];
    int fd = open("/proc/self/maps", O_RDONLY);
    snprintf(out, cap, "glibc");
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *path = strrchr(line, '/');
        if (path && strstr(path, "malloc") && strstr(path, ".so")) {
            snprintf(out, cap, "%s", path + 1);
            return;
        }
        line = nl ? nl + 1 : NULL;
    }
}
#endif
