/* A program that does not use oxmalloc as its malloc dlopen()s the library, allocates through
 * the dlsym'd functions from a thread (which gives that thread a cache and registers the
 * cache's thread-exit destructor), dlclose()s the library while the thread lives, then lets
 * the thread exit. The library is linked with -z nodelete, so dlclose leaves it mapped and
 * the destructor still exists when the thread exits; without that, the exiting thread jumps
 * into unmapped memory (SIGSEGV).
 *
 * Run by tests/ctests.rs in "plain" mode: neither linked nor preloaded; the library's path
 * comes in CTESTS_EXPECT_LIB. */
#include "../common.h"
#include <pthread.h>

static void *(*ox_malloc)(size_t);
static void (*ox_free)(void *);
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage; /* 1: the thread allocated; 2: the library was dlclose()d */

static void *worker(void *arg) {
    (void)arg;
    /* Small and large blocks, some kept in the thread's cache at exit. */
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = ox_malloc(i % 2 ? 100 : 70000);
        if (keep[i] == NULL) return (void *)1;
        memset(keep[i], i, 100);
    }
    for (int i = 0; i < 64; i++) ox_free(keep[i]);
    pthread_mutex_lock(&mu);
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL; /* thread exit: the library's cache destructor runs now */
}

int main(void) {
    const char *lib = getenv("CTESTS_EXPECT_LIB");
    CHECK(lib != NULL && lib[0] != '\0', "CTESTS_EXPECT_LIB is not set");
    CHECK(strstr(malloc_provider(), "oxmalloc") == NULL,
          "malloc already comes from %s: this program must run without the library", malloc_provider());
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen(%s): %s", lib, dlerror());
    ox_malloc = (void *(*)(size_t))dlsym(h, "malloc");
    ox_free = (void (*)(void *))dlsym(h, "free");
    CHECK(ox_malloc != NULL && ox_free != NULL, "dlsym: %s", dlerror());
    Dl_info info;
    CHECK(dladdr((void *)ox_malloc, &info) != 0 && strstr(info.dli_fname, "oxmalloc") != NULL,
          "dlsym(malloc) does not come from the library");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
    pthread_mutex_lock(&mu);
    while (stage != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    void *ret = NULL;
    CHECK(pthread_join(t, &ret) == 0 && ret == NULL, "the worker failed to allocate");
    printf("dlopen/unload: the thread exited after dlclose\n");
    return 0;
}
