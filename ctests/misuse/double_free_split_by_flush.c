/* free(a), 300 frees, free(a) again, 300 more frees, then mallocs: the thread cache holds `a`
 * twice, and a partial flush (a GC visit gives back the oldest blocks) sends the first copy
 * back to its slab while the second stays cached. Whatever happens, `a` must never be handed
 * out twice: the program mallocs until it would get `a` a second time (from the cache, then
 * from the slab that counts `a` free). Blocks are freed one per 256, so that no slab turns
 * sparse and every free is cached. A flush that left the mark on the blocks it gives back
 * would let this program get `a` twice.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x..." (the
 * flush takes the mark off `a`, so the cached copy is caught when it leaves the cache). */
#include "../common.h"

#define SIZE 64
#define STRIDE 256
#define FREES 600

int main(void) {
    misuse_begin();
    static char *o[FREES * STRIDE];
    char *a = malloc(SIZE);
    CHECK(a != NULL, "malloc(%d)", SIZE);
    for (int i = 0; i < FREES * STRIDE; i++) {
        o[i] = malloc(SIZE);
        CHECK(o[i] != NULL, "malloc(%d)", SIZE);
    }
    char *again = opaque_ptr(a); /* the same pointer, for the second free */
    announce_pointer(a);
    free(a);
    for (int j = 0; j < FREES / 2; j++) free(o[j * STRIDE]);
    free(again);
    for (int j = FREES / 2; j < FREES; j++) free(o[j * STRIDE]);
    return malloc_until_twice(a, SIZE, 4 * FREES, "double free split by a flush");
}
