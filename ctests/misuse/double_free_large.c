/* A 1 MiB block freed twice: expected a line "oxmalloc: free(): double free 0x..." or
 * "oxmalloc: free(): pointer not a live block 0x..." (the extent may already be gone), and
 * SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    char *p = malloc(1u << 20);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 1u << 20);
    announce_pointer(p);
    free(p);
    free(opaque_ptr(p));
    return misuse_not_detected("double free of a large block");
}
