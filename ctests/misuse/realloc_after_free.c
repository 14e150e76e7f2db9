/* realloc() of a freed small block: expected a line "oxmalloc: realloc(): <what> 0x..." and
 * SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    char *p = malloc(48);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 48);
    announce_pointer(p);
    free(p);
    void *q = realloc(opaque_ptr(p), 200);
    (void)q;
    return misuse_not_detected("realloc of a freed small block");
}
