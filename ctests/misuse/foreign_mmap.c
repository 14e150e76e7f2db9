/* free() of a page from mmap(): expected
 * "oxmalloc: free(): pointer not allocated by oxmalloc 0x..." and SIGABRT. */
#include "../common.h"
#include <sys/mman.h>

int main(void) {
    misuse_begin();
    void *warm = malloc(32);
    CHECK(warm != NULL, "malloc");
    void *page = mmap(NULL, 1u << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap: errno %d", errno);
    memset(page, 0, 4096);
    announce_pointer(page);
    free(opaque_ptr(page));
    free(warm);
    return misuse_not_detected("free of an mmap()ed page");
}
