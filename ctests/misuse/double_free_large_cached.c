/* free(a); free(b); free(a) with 64 KiB blocks, a size the thread cache keeps: the second free
 * of `a` is not the last block cached. Whatever happens, `a` must never be handed out twice:
 * the program mallocs until it would get `a` a second time. Expected: SIGABRT with
 * "oxmalloc: free(): double free 0x..." (a cached large block's descriptor says so, and the
 * free path reads the descriptor). */
#include "../common.h"

int main(void) { return interleaved_double_free(64 << 10, 16, "interleaved double free of a large block"); }
