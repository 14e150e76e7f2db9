/* free() of a stack address: expected
 * "oxmalloc: free(): pointer not allocated by oxmalloc 0x..." and SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    void *warm = malloc(32); /* the allocator is initialized */
    CHECK(warm != NULL, "malloc");
    char buf[256] __attribute__((aligned(64)));
    memset(buf, 0, sizeof buf);
    char *bad = buf + 64;
    announce_pointer(bad);
    free(opaque_ptr(bad));
    free(warm);
    return misuse_not_detected("free of a stack address");
}
