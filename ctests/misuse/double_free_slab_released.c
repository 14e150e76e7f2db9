/* Block `a` freed twice with its slab's every other block and a block `c` of another slab
 * freed between the two copies: the thread cache holds, oldest first, a, c, a's slab-mates,
 * a. `thread.tcache.flush` gives the first copy of `a` and the mates back, which empties
 * the slab; freeing `c` then moves that empty slab to the page pool, so the second copy of
 * `a` meets pages that are no slab of its class any more (the flush checks that through the
 * page map before it touches the block or a slab's bitmap).
 * Expected: SIGABRT with "oxmalloc: malloc(): double free 0x...". */
#include "../common.h"

#define SIZE 64
#define N 512

static uintptr_t page_of(const void *p) { return (uintptr_t)p & ~(uintptr_t)(page_size() - 1); }

int main(void) {
    misuse_begin();
    static char *o[N];
    malloc_live(o, N, SIZE);
    uintptr_t s = page_of(o[0]), last = page_of(o[N - 1]);
    char *a = o[0], *c = NULL;
    for (int i = N - 1; i >= 0 && !c; i--)
        if (page_of(o[i]) != s && page_of(o[i]) != last) c = o[i];
    CHECK(c != NULL, "a block on another page");
    announce_pointer(a);
    free(a);
    free(c);
    for (int i = 1; i < N; i++)
        if (page_of(o[i]) == s) free(o[i]);
    free(opaque_ptr(a));
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return malloc_until_twice(a, SIZE, 4 * N, "a double free whose slab was released in between");
}
