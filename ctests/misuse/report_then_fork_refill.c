/* A block written after it went back to its slab (freed, then `thread.tcache.flush`), found
 * when a refill of the thread cache takes it out of the slab again, under the bin lock: the
 * report must come with no allocator lock held (`fork_on_abort`: a SIGABRT handler that
 * forks and allocates in the child).
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x...". */
#include "../common.h"

#define SIZE 64
#define N 256

int main(void) {
    misuse_begin();
    static char *o[N];
    malloc_live(o, N, SIZE);
    char *a = o[10];
    announce_pointer(a);
    fork_on_abort(SIZE);
    free(a);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    memset(opaque_ptr(a), 0, 8); /* write after free: the slab's free mark is gone */
    for (int i = 0; i < 4 * N; i++) {
        char *p = malloc(SIZE);
        CHECK(p != NULL, "malloc(%d)", SIZE);
        if (p == a) return misuse_not_detected("a block written after it went back to its slab was handed out");
    }
    return misuse_not_detected("a block written after it went back to its slab");
}
