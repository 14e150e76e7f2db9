/* The background purge thread starts lazily on a malloc slow path once enough memory is
 * dirty. Here that malloc comes from each awkward place a first allocation can come from:
 * a signal handler, a fork prepare handler, a dlopen constructor (the loader's lock held), a
 * thread-specific-data destructor at thread exit, an atexit handler, many threads being
 * created at once, a thread started while another sits in a dlopen constructor. Each case
 * runs in its own child with an alarm: a deadlock is a SIGALRM, and the thread must be
 * running afterwards where the place allows it. */
#include "../common.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* The thread count, read from /proc/self/status without allocating. */
static int tasks_raw(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *t = strstr(buf, "\nThreads:");
    return t ? atoi(t + 9) : -1;
}

static size_t num_purge_threads(void) {
    size_t v = 0, len = sizeof v;
    CHECK(mallctl("stats.background_thread.num_threads", &v, &len, NULL, 0) == 0, "num_threads");
    return v;
}

/* 32 MiB of large blocks allocated and freed: enough dirty memory to want the thread, which
 * no malloc has started yet (frees never start it). */
static void make_dirty(void) {
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = malloc(4 << 20);
        CHECK(p[i], "malloc");
        memset(p[i], 1, 4 << 20);
    }
    for (int i = 0; i < 8; i++) free(p[i]);
    CHECK(num_purge_threads() == 0, "a free started the thread");
}

/* The malloc slow path that starts it (a large block misses every cache the first time). */
static void trigger(void) {
    void *volatile p = malloc(3 << 20);
    CHECK(p, "malloc");
    free(p);
}

static void on_signal(int sig) {
    (void)sig;
    trigger();
}

static void prepare(void) { trigger(); }

static const char *ctor_lib;

static void *tsd_value(void) { return (void *)1; }
static void tsd_destructor(void *v) {
    (void)v;
    trigger();
}

static void *thread_with_tsd(void *key) {
    pthread_setspecific(*(pthread_key_t *)key, tsd_value());
    free(malloc(100));
    return NULL;
}

static void *many(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) trigger();
    return NULL;
}

static void *open_slow_lib(void *path) {
    void *h = dlopen((const char *)path, RTLD_NOW);
    return h;
}

static void after_exit(void) { trigger(); }

/* Builds the helper libraries: one whose constructor allocates a large block, one whose
 * constructor sleeps 300 ms (holding the loader's lock meanwhile). */
static void build_libs(char *ctor, char *slow, size_t n) {
    snprintf(ctor, n, "/tmp/oxbg_ctor_%d.so", (int)getpid());
    snprintf(slow, n, "/tmp/oxbg_slow_%d.so", (int)getpid());
    const char *srcs[2] = {
        "#include <stdlib.h>\n__attribute__((constructor)) static void c(void) { void *volatile p = malloc(3 << 20); free(p); }\n",
        "#include <time.h>\n__attribute__((constructor)) static void c(void) {\n"
        "  struct timespec t = {0, 300000000}; nanosleep(&t, 0); }\n"};
    const char *outs[2] = {ctor, slow};
    for (int k = 0; k < 2; k++) {
        char src[128];
        snprintf(src, sizeof src, "%s.c", outs[k]);
        FILE *f = fopen(src, "w");
        CHECK(f, "write %s", src);
        fputs(srcs[k], f);
        fclose(f);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            execlp("cc", "cc", "-shared", "-fPIC", "-O1", "-o", outs[k], src, (char *)NULL);
            _exit(127);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "cc %s", src);
        unlink(src);
    }
}

/* Runs one case in a child that must exit 0 within the alarm; returns nothing. */
static void run(const char *name, void (*body)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        alarm(15);
        body();
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    CHECK(!(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM), "%s: deadlock (killed by the alarm)", name);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x", name, st);
    printf("background_start: %s ok\n", name);
}

static void case_plain(void) {
    make_dirty();
    trigger();
    CHECK(num_purge_threads() == 1 && tasks_raw() == 2, "a plain malloc did not start it");
}

static void case_signal_handler(void) {
    signal(SIGUSR1, on_signal);
    make_dirty();
    raise(SIGUSR1);
    CHECK(num_purge_threads() == 1, "not started from the handler");
}

static void case_fork_prepare(void) {
    pthread_atfork(prepare, NULL, NULL);
    make_dirty();
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) _exit(tasks_raw() == 1 ? 0 : 3);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child of the fork: %#x", st);
    CHECK(num_purge_threads() == 1, "not started from the prepare handler");
}

static void case_dlopen_constructor(void) {
    make_dirty();
    void *h = dlopen(ctor_lib, RTLD_NOW);
    CHECK(h, "dlopen %s: %s", ctor_lib, dlerror());
    CHECK(num_purge_threads() == 1, "not started from the constructor");
}

static void case_tsd_destructor(void) {
    pthread_key_t key;
    CHECK(pthread_key_create(&key, tsd_destructor) == 0, "key");
    make_dirty();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_with_tsd, &key) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    trigger(); /* started by the destructor, or here at the latest */
    CHECK(num_purge_threads() == 1, "not started");
}

static void case_atexit(void) {
    atexit(after_exit);
    make_dirty();
    exit(0);
}

static void case_many_threads(void) {
    make_dirty();
    pthread_t t[32];
    for (int i = 0; i < 32; i++) CHECK(pthread_create(&t[i], NULL, many, NULL) == 0, "pthread_create");
    for (int i = 0; i < 32; i++) CHECK(pthread_join(t[i], NULL) == 0, "join");
    CHECK(num_purge_threads() == 1, "started %zu times", num_purge_threads());
}

static char slow_lib_path[128];

static void case_while_loader_busy(void) {
    make_dirty();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, open_slow_lib, slow_lib_path) == 0, "pthread_create");
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL); /* the other thread is inside the sleeping constructor now */
    trigger();
    CHECK(num_purge_threads() == 1, "not started beside a running constructor");
    void *h = NULL;
    CHECK(pthread_join(t, &h) == 0 && h, "dlopen of the slow library");
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallctl != NULL, "mallctl missing");
    static char ctor[128];
    build_libs(ctor, slow_lib_path, sizeof ctor);
    ctor_lib = ctor;
    (void)tsd_value;
    run("plain malloc", case_plain);
    run("signal handler", case_signal_handler);
    run("fork prepare handler", case_fork_prepare);
    run("dlopen constructor", case_dlopen_constructor);
    run("thread-specific-data destructor", case_tsd_destructor);
    run("atexit handler", case_atexit);
    run("32 threads at once", case_many_threads);
    run("beside a dlopen constructor of another thread", case_while_loader_busy);
    unlink(ctor);
    unlink(slow_lib_path);
    return 0;
}
