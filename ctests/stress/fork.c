/* fork() while other threads are allocating: the child (which has only the forking thread)
 * must be able to malloc/free, free blocks inherited from the parent, start a thread that
 * allocates, and exit 0. Repeated ~50 times from main, plus concurrent forks from a second
 * thread, plus a grandchild now and then. A child that hangs (a lock held across fork) is
 * killed after a timeout and reported. */
#include "../common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#define ALLOCATORS 3
#define FORKS 50
#define CHILD_TIMEOUT_MS 10000

static atomic_int stop;
static void *inherited[64];
static size_t inherited_n[64];

static void *allocator_thread(void *arg) {
    uint64_t s = 1 + (uint64_t)(uintptr_t)arg;
    void *v[256] = {0};
    unsigned long ops = 0;
    while (!atomic_load(&stop)) {
        /* leave some CPU to the children on a small machine */
        if (++ops % 512 == 0)
            usleep(200);
        uint64_t r = rng_next(&s);
        int i = (int)(r % 256);
        if (v[i]) {
            free(v[i]);
            v[i] = NULL;
        } else {
            size_t n = (r >> 20) % 499 == 0 ? (size_t)(r >> 32) % (1u << 20) + 1
                                           : (size_t)(r >> 32) % 3000 + 1;
            v[i] = (r >> 8) % 11 == 0 ? calloc(1, n) : malloc(n);
            CHECK(v[i] != NULL, "malloc(%zu)", n);
            memset(v[i], 0x5c, n < 256 ? n : 256);
            if ((r >> 12) % 13 == 0) {
                void *q = realloc(v[i], n * 2);
                CHECK(q != NULL, "realloc");
                v[i] = q;
            }
        }
    }
    for (int i = 0; i < 256; i++)
        free(v[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        void *p = malloc((size_t)(i * 37 % 5000) + 1);
        if (!p)
            return (void *)1;
        free(p);
    }
    return NULL;
}

/* In the child: only async-signal-safe-ish things besides malloc; report by exit code. */
static int child_work(int depth) {
    for (int i = 0; i < 64; i++) {
        if (check_pattern(inherited[i], inherited_n[i], (uint64_t)i) != (size_t)-1)
            return 10;
        free(inherited[i]);
    }
    void *v[300];
    for (int i = 0; i < 300; i++) {
        size_t n = i % 50 == 0 ? (size_t)(1u << 20) + (size_t)i : (size_t)(i * 13 % 4000) + 1;
        v[i] = malloc(n);
        if (!v[i])
            return 11;
        memset(v[i], i, n < 512 ? n : 512);
    }
    for (int i = 0; i < 300; i += 2)
        free(v[i]);
    for (int i = 1; i < 300; i += 2) {
        void *q = realloc(v[i], 777);
        if (!q)
            return 12;
        free(q);
    }
    void *a = NULL;
    if (posix_memalign(&a, 4096, 10000) != 0)
        return 13;
    free(a);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0)
        return 14;
    void *tr = NULL;
    pthread_join(t, &tr);
    if (tr != NULL)
        return 15;
    if (depth == 0) {
        /* grandchild */
        pid_t g = fork();
        if (g < 0)
            return 16;
        if (g == 0) {
            void *p = malloc(100);
            free(p);
            _exit(p ? 0 : 17);
        }
        int st;
        if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 18;
    }
    return 0;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Fork one child and wait for it with a timeout. Returns a description of the failure or
 * NULL. */
static const char *fork_and_check(int depth_for_child, int *status_out) {
    for (int i = 0; i < 64; i++) {
        inherited_n[i] = (size_t)(i * 131 % 3000) + 1;
        if (i == 5)
            inherited_n[i] = 3u << 20;
        inherited[i] = malloc(inherited_n[i]);
        CHECK(inherited[i] != NULL, "malloc");
        fill_pattern(inherited[i], inherited_n[i], (uint64_t)i);
    }
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed: errno %d", errno);
    if (pid == 0)
        _exit(child_work(depth_for_child));
    for (int i = 0; i < 64; i++)
        free(inherited[i]);
    long deadline = now_ms() + CHILD_TIMEOUT_MS;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        CHECK(w >= 0, "waitpid: errno %d", errno);
        if (w == pid)
            break;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return "child did not finish within 10 s (deadlock after fork?)";
        }
        usleep(1000);
    }
    *status_out = st;
    if (WIFSIGNALED(st))
        return "child was killed by a signal";
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return "child exited with a nonzero status (see the code in child_work)";
    return NULL;
}

static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER; /* inherited[] is shared */

static void *forker_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        int st = 0;
        pthread_mutex_lock(&fork_mu);
        const char *err = fork_and_check(1, &st);
        pthread_mutex_unlock(&fork_mu);
        CHECK(err == NULL, "fork from a second thread, #%d: %s (status %#x)", i, err, st);
        usleep(2000);
    }
    return NULL;
}

int main(void) {
    assert_oxmalloc();
    pthread_t th[ALLOCATORS], forker;
    for (int i = 0; i < ALLOCATORS; i++)
        CHECK(pthread_create(&th[i], NULL, allocator_thread, (void *)(uintptr_t)i) == 0,
              "pthread_create");
    CHECK(pthread_create(&forker, NULL, forker_thread, NULL) == 0, "pthread_create");
    usleep(20000); /* let the allocator threads get going */
    for (int i = 0; i < FORKS; i++) {
        int st = 0;
        pthread_mutex_lock(&fork_mu);
        const char *err = fork_and_check(i % 5 == 0 ? 0 : 1, &st);
        pthread_mutex_unlock(&fork_mu);
        if (err != NULL) {
            if (WIFSIGNALED(st))
                FAIL("fork #%d: %s: signal %d", i, err, WTERMSIG(st));
            FAIL("fork #%d: %s (exit status %d)", i, err, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        usleep(1000);
    }
    pthread_join(forker, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < ALLOCATORS; i++)
        pthread_join(th[i], NULL);
    /* the parent's heap is fine too */
    void *p = malloc(12345);
    CHECK(p != NULL, "malloc after forks");
    free(p);
    printf("fork: ok (%d forks from main, 10 from a second thread)\n", FORKS);
    return 0;
}
