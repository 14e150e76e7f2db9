/* free(a); free(b); free(a), then thread.tcache.flush: both copies of `a` leave the thread
 * cache in one flush. Whatever happens, `a` must never be handed out twice: the program then
 * mallocs until it would get `a` a second time (its slab must not count it free twice).
 * Other blocks of the class stay live, so the slab is neither sparse nor released.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x..." (the
 * first copy's flush replaced the cache's cookie with the slab's free mark, so the second
 * copy is caught as it leaves the cache). */
#include "../common.h"

#define SIZE 64
#define N 256

int main(void) {
    misuse_begin();
    static char *o[N];
    malloc_live(o, N, SIZE);
    char *a = o[10], *b = o[20];
    announce_pointer(a);
    free(a);
    free(b);
    free(opaque_ptr(a));
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return malloc_until_twice(a, SIZE, 4 * N, "double free flushed together");
}
