/* free(a), thread.tcache.flush (a is back in its slab), free(a) again: the second free goes
 * into the thread cache, which does not read the slab's bitmap. Whatever happens, `a` must
 * never be handed out twice: the program mallocs until it would get `a` a second time (from
 * the cache, then from the slab that counts `a` free). Other blocks of the class stay live,
 * so the slab is neither sparse nor released.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x..." (a
 * region leaving its slab must carry the slab's free mark; the cache's cookie or the first
 * owner's data replaced it). */
#include "../common.h"

#define SIZE 64
#define N 256

int main(void) {
    misuse_begin();
    static char *live[N];
    char *a = double_free_across_flush(live, N, SIZE, N / 2);
    return malloc_until_twice(a, SIZE, 4 * N, "double free after a flush");
}
