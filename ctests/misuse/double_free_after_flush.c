/* free(a), thread.tcache.flush (a is back in its slab), free(a) again: the second free goes
 * into the thread cache, which does not read the slab's bitmap. Whatever happens, `a` must
 * never be handed out twice: the program mallocs until it would get `a` a second time (from
 * the cache, then from the slab that counts `a` free). Other blocks of the class stay live,
 * so the slab is neither sparse nor released.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x..." (a
 * region leaving its slab must carry the slab's free mark; the cache's cookie or the first
 * owner's data replaced it). */
#include "../common.h"

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

#define SIZE 64
#define N 256

int main(void) {
    misuse_begin();
    static char *live[N];
    for (int i = 0; i < N; i++) {
        live[i] = malloc(SIZE);
        CHECK(live[i] != NULL, "malloc(%d)", SIZE);
        memset(live[i], 1, SIZE);
    }
    char *a = live[N / 2];
    announce_pointer(a);
    free(a);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    free(opaque_ptr(a));
    int seen = 0;
    for (int i = 0; i < 4 * N; i++) {
        char *p = malloc(SIZE);
        CHECK(p != NULL, "malloc(%d)", SIZE);
        if (p == a && ++seen == 2) return misuse_not_detected("a block freed twice was handed out twice");
        memset(p, 0x5a, SIZE); /* a live owner writes its block */
    }
    return misuse_not_detected("double free after a flush");
}
