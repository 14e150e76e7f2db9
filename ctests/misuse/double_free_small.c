/* malloc(64), free, free: expected "oxmalloc: free(): double free 0x..." and SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    char *p = malloc(64);
    CHECK(p != NULL, "malloc");
    p[0] = 1;
    announce_pointer(p);
    free(p);
    free(opaque_ptr(p));
    return misuse_not_detected("double free of a small block");
}
