/* A block written after it went back to its slab (freed, then `thread.tcache.flush`), found
 * when a refill of the thread cache takes it out of the slab again, under the bin lock: the
 * report must come with no allocator lock held (`fork_on_abort`: a SIGABRT handler that
 * allocates, then forks and allocates in the child).
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x...". */
#include "../common.h"

int main(void) {
    misuse_begin();
    static char *o[256];
    fork_on_abort(64, 1);
    char *a = live_then_free(o, 256, 64, 10);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    memset(opaque_ptr(a), 0, 8); /* write after free: the slab's free mark is gone */
    for (int i = 0; i < 1024; i++) {
        char *p = malloc(64);
        CHECK(p != NULL, "malloc(64)");
        if (p == a) return misuse_not_detected("a block written after it went back to its slab was handed out");
    }
    return misuse_not_detected("a block written after it went back to its slab");
}
