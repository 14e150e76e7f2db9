/* free(a); free(b); free(a) where the slabs of `a` and `b` are sparse (more than 1/16 of their
 * regions free, so frees bypass the thread cache into its per-class sparse buffer, which goes
 * back to the slabs in batches), then thread.tcache.flush. Whatever happens, `a` must never
 * be handed out twice: the program then mallocs until it would get `a` a second time.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x..." (the
 * first copy's return to its slab replaced the cookie with the slab's free mark, so the
 * second copy is caught as it leaves the buffer). */
#include "../common.h"

#define SIZE 64
#define N 1024

static uintptr_t page_of(const void *p) { return (uintptr_t)p & ~(uintptr_t)(page_size() - 1); }

int main(void) {
    misuse_begin();
    static char *o[N];
    malloc_live(o, N, SIZE);
    /* A quarter of every slab back to it: sparse slabs (the flush settles their state). */
    for (int i = 0; i < N; i++)
        if (i % 4 == 0) free(o[i]);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    char *a = o[N / 2 + 1], *b = NULL;
    for (int i = N / 2 + 2; i < N && !b; i++)
        if (i % 4 != 0 && page_of(o[i]) != page_of(a)) b = o[i];
    CHECK(b != NULL, "a block on another page");
    announce_pointer(a);
    free(a);
    free(b);
    free(opaque_ptr(a));
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return malloc_until_twice(a, SIZE, 4 * N, "a double free through the sparse-slab path");
}
