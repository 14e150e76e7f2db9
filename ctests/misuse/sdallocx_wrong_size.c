/* sdallocx with a size that does not belong to the block (100-byte block freed as 4096
 * bytes): jemalloc would silently corrupt its size-class bookkeeping; expected
 * "oxmalloc: sdallocx(): size does not match the block 0x..." and SIGABRT. */
#include "../common.h"

/* Weak: in LD_PRELOAD mode the program links against nothing that defines them; the
 * preloaded library provides them at run time. */
#define WEAK __attribute__((weak))
WEAK void *mallocx(size_t size, int flags);
WEAK void sdallocx(void *ptr, size_t size, int flags);

int main(void) {
    misuse_begin();
    CHECK(mallocx && sdallocx, "mallocx/sdallocx not provided");
    char *p = mallocx(100, 0);
    CHECK(p != NULL, "mallocx");
    p[0] = 1;
    announce_pointer(p);
    sdallocx(opaque_ptr(p), 4096, 0);
    return misuse_not_detected("sdallocx with a wrong size");
}
