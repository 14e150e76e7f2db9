/* sdallocx of a large block with a size that does not belong to it, after an xallocx that
 * resized the block to exactly the size it asked for (no extra): a 1 MiB block grown to
 * 1 MiB + 1 page (or left as it is) and freed as 100000 bytes. A sized free may name any size
 * up to the usable one only after xallocx left the block bigger than its size asked for
 * (ctests/api/xallocx_sized_free.c); here it must still abort with
 * "oxmalloc: sdallocx(): size does not match the block 0x...". */
#include "../common.h"

#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
WEAK void sdallocx(void *ptr, size_t size, int flags);

int main(void) {
    misuse_begin();
    CHECK(mallocx && xallocx && sdallocx, "jemalloc API not provided");
    char *p = mallocx(1 << 20, 0);
    CHECK(p != NULL, "mallocx");
    p[0] = 1;
    size_t u = xallocx(p, (1 << 20) + 4096, 0, 0);
    CHECK(u == (1 << 20) || u == (1 << 20) + 4096, "xallocx gave %zu", u);
    announce_pointer(p);
    sdallocx(opaque_ptr(p), 100000, 0);
    return misuse_not_detected("sdallocx of a large block with a wrong size");
}
