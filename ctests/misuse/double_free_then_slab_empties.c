/* free(a), thread.tcache.flush (a is back in its slab), free(a) again (into the thread cache,
 * which does not read the slab's bitmap), then every other block is freed straight to its
 * slab (dallocx with MALLOCX_TCACHE_NONE), so `a`'s slab empties while a copy of `a` is still
 * cached. The slab must not give its pages back to the page pool while the cache can still
 * hand `a` out.
 * Expected: SIGABRT with "oxmalloc: free(): double free or write after free 0x..." (a slab's
 * regions must all carry its free mark when it is released; the cache's cookie replaced
 * `a`'s), or the same from malloc if the cache gave `a` out first; the report comes from
 * under the bin lock, after it is released (`fork_on_abort`). */
#include "../common.h"

#define MALLOCX_TCACHE_NONE ((int)((-1 + 2) << 8))

#define SIZE 64
#define N 2048

int main(void) {
    misuse_begin();
    static char *o[N];
    fork_on_abort(SIZE, 0);
    /* o[N / 8] sits in an early slab: not the current one, which is never released. */
    char *a = double_free_across_flush(o, N, SIZE, N / 8);
    for (int i = 0; i < N; i++)
        if (i != N / 8) dallocx(o[i], MALLOCX_TCACHE_NONE);
    char *p = malloc(SIZE);
    CHECK(p != NULL, "malloc(%d)", SIZE);
    char *q = malloc(SIZE);
    CHECK(q != NULL, "malloc(%d)", SIZE);
    return misuse_not_detected("double free, then the slab emptied");
}
