/* Block `a` freed twice, by two threads: the main thread's cache holds one copy; another
 * thread frees the other copy and every other block of a's slab, then flushes its cache, which
 * empties the slab and gives its pages back to the page pool. When the main thread's cache is
 * flushed, its copy of `a` meets pages that are no slab of its class any more (the flush checks
 * that through the page map before it touches the block or a slab's bitmap).
 * Expected: SIGABRT with "oxmalloc: malloc(): double free 0x...". */
#include "../common.h"
#include <pthread.h>

#define SIZE 64
#define N 512

static char *o[N];

static uintptr_t page_of(const void *p) { return (uintptr_t)p & ~(uintptr_t)(page_size() - 1); }

static void *free_slab(void *arg) {
    (void)arg;
    uintptr_t s = page_of(o[0]);
    for (int i = 0; i < N; i++)
        if (page_of(o[i]) == s) free(opaque_ptr(o[i]));
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush (other thread)");
    return NULL;
}

int main(void) {
    misuse_begin();
    malloc_live(o, N, SIZE);
    CHECK(page_of(o[0]) != page_of(o[N - 1]), "a's slab is not the current one");
    char *a = o[0];
    announce_pointer(a);
    free(a);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_slab, NULL) == 0 && pthread_join(t, NULL) == 0, "thread");
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return malloc_until_twice(a, SIZE, 4 * N, "a double free whose slab was released in between");
}
