/* free(a); free(b); free(a): the second free of `a` is not the last block freed, so a thread
 * cache cannot see it on the free path without reading the block. Whatever the allocator does,
 * `a` must never be handed out twice: the program then mallocs until it would get `a` a second
 * time. Expected: SIGABRT with "oxmalloc: free(): double free 0x..." or
 * "oxmalloc: malloc(): double free or write after free 0x..." (the copy of `a` leaving the
 * cache lost the mark the first free wrote). */
#include "../common.h"

int main(void) { return interleaved_double_free(64, 64, "interleaved double free"); }
