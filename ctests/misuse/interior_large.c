/* free(p + 16) of a 1 MiB block: expected "oxmalloc: free(): interior pointer 0x..." with the
 * address p + 16, and SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    char *p = malloc(1u << 20);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 4096);
    char *bad = p + 16;
    announce_pointer(bad);
    free(opaque_ptr(bad));
    return misuse_not_detected("free of an interior pointer of a large block");
}
