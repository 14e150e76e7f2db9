/* A cached block written after it was freed, found by `thread.tcache.flush` under the bin
 * lock: the report must come with no allocator lock held (`fork_on_abort`: a SIGABRT
 * handler that allocates, then forks and allocates in the child).
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x...". */
#include "../common.h"

int main(void) {
    misuse_begin();
    static char *o[256];
    fork_on_abort(64, 1);
    char *a = live_then_free(o, 256, 64, 10);
    memset(opaque_ptr(a), 0, 8); /* write after free: the cache's cookie is gone */
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return misuse_not_detected("a cached block written after free");
}
