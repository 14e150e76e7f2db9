/* Double free of a small block while other blocks of the same size class stay live, so the
 * slab is not emptied (and not released) between the two frees. Expected
 * "oxmalloc: free(): double free 0x..." and SIGABRT. */
#include "../common.h"

int main(void) {
    misuse_begin();
    enum { N = 32 };
    char *live[N];
    for (int i = 0; i < N; i++) {
        live[i] = malloc(64);
        CHECK(live[i] != NULL, "malloc");
        live[i][0] = (char)i;
    }
    char *p = live[N / 2];
    live[N / 2] = NULL;
    announce_pointer(p);
    free(p);
    free(opaque_ptr(p));
    for (int i = 0; i < N; i++)
        free(live[i]);
    return misuse_not_detected("double free of a small block with live neighbours");
}
