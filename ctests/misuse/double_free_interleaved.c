/* free(a); free(b); free(a): the second free of `a` is not the last block freed, so a thread
 * cache cannot see it on the free path without reading the block. Whatever the allocator does,
 * `a` must never be handed out twice: the program then mallocs until it would get `a` a second
 * time. Expected: SIGABRT with "oxmalloc: free(): double free 0x..." or
 * "oxmalloc: malloc(): double free or write after free 0x..." (the copy of `a` leaving the
 * cache lost the mark the first free wrote). */
#include "../common.h"

int main(void) {
    misuse_begin();
    char *a = malloc(64), *b = malloc(64);
    CHECK(a != NULL && b != NULL, "malloc");
    a[0] = 1;
    b[0] = 2;
    announce_pointer(a);
    free(a);
    free(b);
    free(opaque_ptr(a));
    int seen = 0;
    for (int i = 0; i < 64; i++) {
        char *p = malloc(64);
        CHECK(p != NULL, "malloc");
        if (p == a && ++seen == 2)
            return misuse_not_detected("a block freed twice was handed out twice");
        memset(p, 0x5a, 64); /* a live owner writes its block */
    }
    return misuse_not_detected("interleaved double free");
}
