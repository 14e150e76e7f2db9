/*
 * Shared helpers for the oxmalloc C test programs (ctests/api, ctests/misuse, ctests/stress).
 *
 * Only standard/system headers are used: the programs test the exported C ABI, never a project
 * header. Build: cc -O2 -fno-builtin prog.c -ldl -lpthread [-loxmalloc] (tests/ctests.rs does it).
 *
 * -fno-builtin matters: without it the compiler may fold malloc/free pairs, "know" that
 * malloc(SIZE_MAX) fails, or drop a memset before free, and the tests would not reach the library.
 *
 * Environment:
 *   CTESTS_ALLOW_OTHER_MALLOC=1  skip the "malloc really is oxmalloc" check, so the api/stress
 *                                programs can be sanity-checked under glibc or jemalloc.
 *   CTESTS_EXPECT_LIB=<path>     (set by tests/ctests.rs) malloc must come from this very file,
 *                                not just from some file named *oxmalloc* (cargo's test build of
 *                                the crate, target/debug/deps/liboxmalloc.so, has no exports).
 *   CTESTS_SCALE=<n>             multiply the work of the stress programs (default 1).
 */
#ifndef OXMALLOC_CTESTS_COMMON_H
#define OXMALLOC_CTESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Failure: one line with file:line, then exit(1). Never abort(): SIGABRT is what the misuse
 * tests expect from the library, so a test bug must look different from a library report. */
#define FAIL(...)                                                                    \
    do {                                                                             \
        fprintf(stderr, "CTEST FAIL %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                         \
        fflush(NULL);                                                                \
        _exit(1);                                                                    \
    } while (0)

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "CTEST FAIL %s:%d: check `%s` failed: ", __FILE__,      \
                    __LINE__, #cond);                                                \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            fflush(NULL);                                                            \
            _exit(1);                                                                \
        }                                                                            \
    } while (0)

static inline int ctests_allow_other_malloc(void) {
    const char *e = getenv("CTESTS_ALLOW_OTHER_MALLOC");
    return e != NULL && strcmp(e, "1") == 0;
}

/* File name of the object that provides the process-wide `malloc`, "" if unknown. */
static inline const char *malloc_provider(void) {
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info i;
    memset(&i, 0, sizeof i);
    if (f == NULL || dladdr(f, &i) == 0 || i.dli_fname == NULL)
        return "";
    return i.dli_fname;
}

/* File name of the object that provides `sym` in the global scope, "" if none. */
static inline const char *symbol_provider(const char *sym) {
    void *f = dlsym(RTLD_DEFAULT, sym);
    Dl_info i;
    memset(&i, 0, sizeof i);
    if (f == NULL || dladdr(f, &i) == 0 || i.dli_fname == NULL)
        return "";
    return i.dli_fname;
}

/* Whether `sym` comes from the same object as malloc. Under oxmalloc it must (api/symbols.c);
 * under jemalloc some (pvalloc) do not, and mixing them crashes, so other-allocator runs skip
 * those parts. */
static inline int same_provider_as_malloc(const char *sym) {
    return strcmp(symbol_provider(sym), malloc_provider()) == 0;
}

static inline int running_on(const char *name) {
    return strstr(malloc_provider(), name) != NULL;
}

/* Stricter semantics (realloc(p, 0) returns a block, ...) are checked only where the allocator
 * promises them: oxmalloc and jemalloc. glibc frees and returns NULL. */
static inline int running_on_oxmalloc(void) { return running_on("oxmalloc"); }
static inline int running_on_jemalloc_like(void) {
    return running_on("oxmalloc") || running_on("jemalloc");
}

/* Every program calls this first: the test means nothing if malloc is not ours. */
static inline void assert_oxmalloc(void) {
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info i;
    memset(&i, 0, sizeof i);
    int found = f != NULL && dladdr(f, &i) != 0 && i.dli_fname != NULL;
    if (found && strstr(i.dli_fname, "oxmalloc") != NULL) {
        const char *want = getenv("CTESTS_EXPECT_LIB");
        if (want != NULL && want[0] != '\0' && !ctests_allow_other_malloc()) {
            char a[4096], b[4096];
            if (realpath(i.dli_fname, a) == NULL || realpath(want, b) == NULL ||
                strcmp(a, b) != 0)
                FAIL("malloc comes from %s, but the library under test is %s", i.dli_fname,
                     want);
        }
        return;
    }
    if (ctests_allow_other_malloc()) {
        fprintf(stderr, "ctests: note: malloc comes from %s (CTESTS_ALLOW_OTHER_MALLOC=1)\n",
                found ? i.dli_fname : "<unknown>");
        return;
    }
    FAIL("malloc is provided by %s, not oxmalloc (link with -loxmalloc or LD_PRELOAD it; "
         "set CTESTS_ALLOW_OTHER_MALLOC=1 to run under another allocator)",
         found ? i.dli_fname : "<unknown>");
}

static inline long ctests_scale(void) {
    const char *e = getenv("CTESTS_SCALE");
    long s = e ? strtol(e, NULL, 10) : 1;
    return s < 1 ? 1 : s;
}

static inline size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Small, fast, per-thread PRNG (xorshift64*). */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Byte pattern that depends on the block's tag and the offset, so a block that got another
 * block's memory, a shifted copy or a partly copied realloc all show up. */
static inline unsigned char pat_byte(uint64_t tag, size_t i) {
    return (unsigned char)((tag * 131u) ^ (i * 7u) ^ (i >> 8) ^ (i >> 16));
}

static inline void fill_pattern(void *p, size_t n, uint64_t tag) {
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = pat_byte(tag, i);
}

/* Returns the first bad offset, or (size_t)-1 when the whole range matches. */
static inline size_t check_pattern(const void *p, size_t n, uint64_t tag) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat_byte(tag, i))
            return i;
    return (size_t)-1;
}

#define CHECK_PATTERN(p, n, tag)                                                          \
    do {                                                                                  \
        size_t bad_ = check_pattern((p), (n), (tag));                                     \
        CHECK(bad_ == (size_t)-1, "block %p size %zu tag %llu: wrong byte at offset %zu " \
              "(0x%02x, expected 0x%02x)", (void *)(p), (size_t)(n),                      \
              (unsigned long long)(tag), bad_, ((const unsigned char *)(p))[bad_],        \
              pat_byte((tag), bad_));                                                     \
    } while (0)

static inline int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

static inline int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* For the misuse programs, first thing in main: check the allocator, and switch core dumps
 * off (the expected SIGABRT would otherwise leave a core file per run on some systems). */
static inline void misuse_begin(void) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    assert_oxmalloc();
}

/* For the misuse programs: print the pointer exactly as the library will, then make sure the
 * harness gets it even though the process is about to die of SIGABRT. */
static inline void announce_pointer(const void *p) {
    printf("%p\n", p);
    fflush(stdout);
}

/* For the misuse programs: reached only when the library did not abort. */
static inline int misuse_not_detected(const char *what) {
    fprintf(stderr, "CTEST FAIL: %s was not detected (the process is still alive)\n", what);
    fflush(NULL);
    return 3;
}

/* Keep the compiler from reasoning about a pointer (it may know what malloc returns even with
 * -fno-builtin in some versions; cheap insurance). */
static inline void *opaque_ptr(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* For the misuse programs: `n` live blocks of `size` in o[0..n), each written. */
static inline void malloc_live(char **o, int n, size_t size) {
    for (int i = 0; i < n; i++) {
        o[i] = malloc(size);
        CHECK(o[i] != NULL, "malloc(%zu)", size);
        memset(o[i], 1, size);
    }
}

/* For the misuse programs: `n` live blocks of `size` in o[0..n), then block o[k] announced
 * and freed (into the thread cache); returns o[k]. */
static inline char *live_then_free(char **o, int n, size_t size, int k) {
    malloc_live(o, n, size);
    announce_pointer(o[k]);
    free(o[k]);
    return o[k];
}

/* For the misuse programs, after block `a` of `size` was freed twice: malloc `tries` times,
 * each new owner writing its block; `a` must never come back twice (the library should
 * abort before). Returns misuse_not_detected's status. */
static inline int malloc_until_twice(const char *a, size_t size, int tries, const char *what) {
    int seen = 0;
    for (int i = 0; i < tries; i++) {
        char *p = malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (p == a && ++seen == 2)
            return misuse_not_detected("a block freed twice was handed out twice");
        memset(p, 0x5a, size < 64 ? size : 64); /* a live owner writes its block */
    }
    return misuse_not_detected(what);
}

/* jemalloc's mallctl, weak: in LD_PRELOAD mode the preloaded library provides it. */
__attribute__((weak)) int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* For the misuse programs: announce `a`, free it, give this thread's cache back
 * (`thread.tcache.flush`: `a` is back in its slab), and free `a` again. */
static inline void free_flush_free(char *a) {
    announce_pointer(a);
    free(a);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    free(opaque_ptr(a));
}

/* For the misuse programs: `n` live blocks of `size` in o[0..n), then block o[k] freed,
 * flushed back to its slab and freed again (`free_flush_free`); returns o[k]. */
static inline char *double_free_across_flush(char **o, int n, size_t size, int k) {
    malloc_live(o, n, size);
    free_flush_free(o[k]);
    return o[k];
}

/* For the misuse programs: free(a); free(b); free(a) with blocks of `size`, then malloc
 * `tries` times; `a` must never come back twice (the library should abort before). */
static inline int interleaved_double_free(size_t size, int tries, const char *what) {
    misuse_begin();
    char *a = malloc(size), *b = malloc(size);
    CHECK(a != NULL && b != NULL, "malloc(%zu)", size);
    memset(a, 1, size);
    memset(b, 2, size);
    announce_pointer(a);
    free(a);
    free(b);
    free(opaque_ptr(a));
    return malloc_until_twice(a, size, tries, what);
}

static inline size_t opaque_size(size_t n) {
    __asm__ volatile("" : "+r"(n));
    return n;
}

/* For the misuse programs whose report comes from under an allocator lock: a SIGABRT handler
 * that allocates and forks, as crash reporters do. With `allocate` it first mallocs and frees
 * 512 blocks of `abort_fork_size` itself, through the thread's cache (the cache must be
 * consistent after the report: a second report would be a second `oxmalloc:` line, which the
 * harness rejects; not for a double free whose second copy is still cached, which such a
 * malloc may get and free again); then it forks: fork runs the allocator's
 * pthread_atfork handlers, which take every allocator lock (a lock the aborting thread still
 * holds deadlocks there), and the child allocates and frees 512 blocks of the size straight
 * from their bin (MALLOCX_TCACHE_NONE). The handler returns, so abort() goes on to kill the
 * process with SIGABRT; a deadlock ends in SIGALRM instead (after 10 s). */
__attribute__((weak)) void *mallocx(size_t size, int flags);
__attribute__((weak)) void dallocx(void *ptr, int flags);
static size_t abort_fork_size;
static int abort_fork_allocate;

static void abort_fork_handler(int sig) {
    (void)sig;
    enum { N = 512, TCACHE_NONE = 1 << 8 };
    static void *w[N];
    for (int i = 0; abort_fork_allocate && i < N; i++) {
        w[i] = malloc(abort_fork_size);
        if (w[i] == NULL) _exit(6);
        memset(w[i], 0x3c, abort_fork_size);
    }
    for (int i = 0; abort_fork_allocate && i < N; i++) free(w[i]);
    pid_t pid = fork();
    if (pid == 0) {
        static void *v[N];
        for (int i = 0; i < N; i++) {
            v[i] = mallocx(abort_fork_size, TCACHE_NONE);
            if (v[i] == NULL) _exit(5);
        }
        for (int i = 0; i < N; i++) dallocx(v[i], TCACHE_NONE);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        static const char m[] = "CTEST FAIL: the child forked by the SIGABRT handler could not allocate\n";
        ssize_t r = write(2, m, sizeof m - 1);
        (void)r;
        _exit(4);
    }
}

static inline void fork_on_abort(size_t size, int allocate) {
    abort_fork_size = size;
    abort_fork_allocate = allocate;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = abort_fork_handler;
    sigaction(SIGABRT, &sa, NULL);
    alarm(10);
}

/* Runs this program again as `argv0 child <c>` with OXMALLOC_CONF=`ox` and MALLOC_CONF=`mc`
 * (NULL: unset), its stderr captured into `err` (read to the end, keeping what fits); returns
 * the wait status. The option tests run each case in a fresh process this way. */
static inline int run_child_conf(const char *argv0, const char *c, const char *ox, const char *mc,
                                 char *err, size_t errlen) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        if (ox) setenv("OXMALLOC_CONF", ox, 1); else unsetenv("OXMALLOC_CONF");
        if (mc) setenv("MALLOC_CONF", mc, 1); else unsetenv("MALLOC_CONF");
        execl("/proc/self/exe", argv0, "child", c, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    char sink[4096];
    while ((k = read(fds[0], n + 1 < errlen ? err + n : sink, n + 1 < errlen ? errlen - 1 - n : sizeof sink)) > 0)
        if (n + 1 < errlen) n += (size_t)k;
    err[n] = 0;
    close(fds[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    return st;
}

/* Runs `f` in a forked child that must exit 0 (the case is skipped when `only` is set and
 * `name` does not contain it), then prints `<prog>: <name> ok`. */
static inline void run_forked_case(const char *prog, const char *only, const char *name, void (*f)(void)) {
    if (only && !strstr(name, only)) return;
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        f();
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %s: %s %d", name,
          WIFSIGNALED(st) ? "killed by signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    printf("%s: %s ok\n", prog, name);
}

#endif
