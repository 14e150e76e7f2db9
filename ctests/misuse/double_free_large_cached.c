/* free(a); free(b); free(a) with 64 KiB blocks, a size the thread cache keeps: the second free
 * of `a` is not the last block cached, so the free path lets it in without reading the block.
 * Whatever happens, `a` must never be handed out twice: the program mallocs until it would get
 * `a` a second time. Expected: SIGABRT with "oxmalloc: free(): double free 0x..." or
 * "oxmalloc: malloc(): double free or write after free 0x...". */
#include "../common.h"

int main(void) {
    misuse_begin();
    enum { SZ = 64 << 10 };
    char *a = malloc(SZ), *b = malloc(SZ);
    CHECK(a != NULL && b != NULL, "malloc");
    memset(a, 1, SZ);
    memset(b, 2, SZ);
    announce_pointer(a);
    free(a);
    free(b);
    free(opaque_ptr(a));
    int seen = 0;
    for (int i = 0; i < 16; i++) {
        char *p = malloc(SZ);
        CHECK(p != NULL, "malloc");
        if (p == a && ++seen == 2)
            return misuse_not_detected("a large block freed twice was handed out twice");
        memset(p, 0x5a, 64); /* a live owner writes its block */
    }
    return misuse_not_detected("interleaved double free of a large block");
}
