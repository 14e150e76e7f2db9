/* A cached block written after it was freed, found by `thread.tcache.flush` under the bin
 * lock. The report must come with no allocator lock held: a SIGABRT handler that forks, as
 * crash reporters do, runs fork's handlers, which take every allocator lock (a lock still
 * held by the aborting thread deadlocks there), and the child then allocates blocks of the
 * same class straight from their bin (MALLOCX_TCACHE_NONE: the thread's cache still holds
 * the changed block). A deadlock ends in SIGALRM, not SIGABRT.
 * Expected: SIGABRT with "oxmalloc: malloc(): double free or write after free 0x...". */
#include "../common.h"
#include <signal.h>
#include <sys/wait.h>

#define SIZE 64
#define N 256
#define MALLOCX_TCACHE_NONE (1 << 8)

__attribute__((weak)) void *mallocx(size_t size, int flags);
__attribute__((weak)) void dallocx(void *ptr, int flags);

static void say(const char *m) {
    ssize_t r = write(2, m, strlen(m));
    (void)r;
}

/* Returns, so that abort() goes on to kill the process with SIGABRT. */
static void on_abort(int sig) {
    (void)sig;
    pid_t pid = fork();
    if (pid == 0) {
        static void *v[2 * N];
        for (int i = 0; i < 2 * N; i++) {
            v[i] = mallocx(SIZE, MALLOCX_TCACHE_NONE);
            if (v[i] == NULL) _exit(5);
        }
        for (int i = 0; i < 2 * N; i++) dallocx(v[i], MALLOCX_TCACHE_NONE);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        say("CTEST FAIL: the child forked by the SIGABRT handler could not allocate\n");
        _exit(4);
    }
}

int main(void) {
    misuse_begin();
    static char *o[N];
    malloc_live(o, N, SIZE);
    char *a = o[10];
    announce_pointer(a);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_abort;
    sigaction(SIGABRT, &sa, NULL);
    alarm(10);
    free(a);
    memset(opaque_ptr(a), 0, 8); /* write after free: the cache's cookie is gone */
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    return misuse_not_detected("a cached block written after free");
}
