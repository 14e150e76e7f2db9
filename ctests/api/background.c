/* Decay and the background purge thread, through mallctl and the options: freed memory goes
 * back to the OS with nobody asking; a small program never gets a thread; the thread starts
 * lazily once enough is dirty, stops and joins on `background_thread` false, starts again on
 * true; `max_background_threads`; the decay times per arena, for all arenas, for new arenas;
 * the purge statistics; fork while the thread runs; exit while it runs or purges; which
 * option values are accepted. Each case runs in a fresh child process (re-exec with its own
 * OXMALLOC_CONF). */
#include "../common.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <time.h>

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static int tasks(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d, "opendir /proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* The thread count from /proc/self/status, read without allocating. */
static int tasks_raw(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    CHECK(fd >= 0, "open status");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n > 0, "read status");
    buf[n] = 0;
    char *t = strstr(buf, "\nThreads:");
    CHECK(t, "Threads: line");
    return atoi(t + 9);
}

/* Whether a thread of this process is called oxmalloc_bg. */
static bool has_purge_thread(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d, "opendir");
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[256], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f) && !strncmp(comm, "oxmalloc_bg", 11)) found = true;
            fclose(f);
        }
    }
    closedir(d);
    return found;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    CHECK(f && fscanf(f, "%ld %ld", &size, &res) == 2, "statm");
    fclose(f);
    return res * (long)(page_size() / 1024);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

static size_t get_size(const char *name) {
    size_t v = 0, len = sizeof v;
    int rc = mallctl(name, &v, &len, NULL, 0);
    CHECK(rc == 0, "mallctl(%s) = %d", name, rc);
    return v;
}

static uint64_t get_u64(const char *name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    int rc = mallctl(name, &v, &len, NULL, 0);
    CHECK(rc == 0, "mallctl(%s) = %d", name, rc);
    return v;
}

static ssize_t get_ssize(const char *name) {
    ssize_t v = 0;
    size_t len = sizeof v;
    int rc = mallctl(name, &v, &len, NULL, 0);
    CHECK(rc == 0, "mallctl(%s) = %d", name, rc);
    return v;
}

static bool get_bool(const char *name) {
    bool v = false;
    size_t len = sizeof v;
    int rc = mallctl(name, &v, &len, NULL, 0);
    CHECK(rc == 0, "mallctl(%s) = %d", name, rc);
    return v;
}

static int set_bool(const char *name, bool v) { return mallctl(name, NULL, NULL, &v, sizeof v); }
static int set_ssize(const char *name, ssize_t v) { return mallctl(name, NULL, NULL, &v, sizeof v); }

static void refresh(void) {
    uint64_t e = 1;
    CHECK(mallctl("epoch", NULL, NULL, &e, sizeof e) == 0, "epoch");
}

/* Allocates `mib` MiB in 1 MiB blocks (every page written) and frees them. */
static void churn(int mib) {
    char *p[1024];
    CHECK(mib <= 1024, "churn size");
    for (int i = 0; i < mib; i++) {
        p[i] = malloc(1 << 20);
        CHECK(p[i], "malloc");
        memset(p[i], i, 1 << 20);
    }
    for (int i = 0; i < mib; i++) free(p[i]);
}

/* Waits up to `ms` for `cond` (polled every 20 ms). */
/* How long a case waits for the purge thread to bring RSS down (decay times here are 300–500
 * ms): generous, so that a loaded machine that schedules the thread late does not fail the
 * test; a wait ends as soon as its condition holds. */
#define RSS_WAIT_MS 15000

#define WAIT_FOR(cond, ms)                                             \
    do {                                                               \
        for (long waited_ = 0; !(cond) && waited_ < (ms); waited_ += 20) \
            sleep_ms(20);                                              \
    } while (0)

/* The thread count once threads that were just joined are gone from /proc: pthread_join
 * returns when the kernel clears the thread's tid, which it does before it removes the task
 * from /proc/self/task, so on a loaded machine the joined thread can still be listed for a
 * moment. Waits at most 2 s for the count to fall to `want`. */
static int tasks_after_join(int want) {
    WAIT_FOR(tasks() <= want, 2000);
    return tasks();
}

static int child(const char *c) {
    if (!strcmp(c, "small")) {
        /* A small program: a few MB come and go, and no thread ever appears. */
        CHECK(get_bool("background_thread") == get_bool("opt.background_thread"), "background_thread");
        for (int r = 0; r < 20; r++) churn(4);
        char *s[1000];
        for (int i = 0; i < 1000; i++) s[i] = malloc(100 + i);
        for (int i = 0; i < 1000; i++) free(s[i]);
        CHECK(tasks() == 1, "a small program got %d threads", tasks());
        CHECK(get_size("stats.background_thread.num_threads") == 0, "num_threads");
    } else if (!strcmp(c, "idle")) {
        /* 128 MiB freed, then idle: the purge thread starts and RSS falls without a call. */
        long base = rss_kib();
        churn(128);
        long peak = rss_kib();
        CHECK(peak - base > 100 << 10, "the pages were not resident: %ld -> %ld KiB", base, peak);
        WAIT_FOR(rss_kib() - base < (peak - base) / 4, RSS_WAIT_MS);
        long after = rss_kib();
        CHECK(after - base < (peak - base) / 4, "RSS did not fall: base %ld, peak %ld, after %d s %ld KiB", base, peak, RSS_WAIT_MS / 1000, after);
        CHECK(has_purge_thread() && tasks() == 2, "no purge thread (%d threads)", tasks());
        refresh();
        CHECK(get_size("stats.background_thread.num_threads") == 1, "num_threads");
        CHECK(get_u64("stats.background_thread.num_runs") > 0, "num_runs");
        CHECK(get_u64("stats.arenas.4096.dirty_purged") >= (64 << 20) / page_size(), "dirty_purged %llu",
              (unsigned long long)get_u64("stats.arenas.4096.dirty_purged"));
        CHECK(get_u64("stats.arenas.4096.dirty_npurge") > 0 && get_u64("stats.arenas.4096.dirty_nmadvise") > 0, "purge counts");
    } else if (!strcmp(c, "mallctl")) {
        /* Writing true starts it now, false stops and joins it, true again restarts it. */
        CHECK(tasks() == 1, "threads at start");
        bool old = false;
        size_t len = sizeof old;
        bool on = true;
        CHECK(mallctl("background_thread", &old, &len, &on, sizeof on) == 0 && old, "write true");
        /* narenas:4 and max_background_threads:4: one thread per arena. */
        CHECK(tasks() == 5 && has_purge_thread(), "true did not start the threads (%d)", tasks());
        CHECK(set_bool("background_thread", false) == 0, "write false");
        CHECK(tasks_after_join(1) == 1, "false did not join the thread (%d)", tasks());
        CHECK(!get_bool("background_thread"), "reads false");
        churn(64); /* disabled: the slow paths decay by themselves, no thread appears */
        CHECK(tasks() == 1, "disabled, yet a thread started");
        CHECK(set_bool("background_thread", true) == 0 && tasks() == 5, "re-enable");
        CHECK(set_bool("background_thread", true) == 0 && tasks() == 5, "true twice");
        /* A wrong-size write is EINVAL and changes nothing. */
        int one = 0;
        CHECK(mallctl("background_thread", NULL, NULL, &one, sizeof one) == EINVAL && tasks() == 5, "size check");
        /* max_background_threads: at most the option's value (4 here). */
        CHECK(get_size("opt.max_background_threads") == 4 && get_size("max_background_threads") == 4, "opt value");
        size_t n = 5;
        CHECK(mallctl("max_background_threads", NULL, NULL, &n, sizeof n) == EINVAL, "5 > opt");
        n = 0;
        CHECK(mallctl("max_background_threads", NULL, NULL, &n, sizeof n) == EINVAL, "0");
        n = 2;
        CHECK(mallctl("max_background_threads", NULL, NULL, &n, sizeof n) == 0, "2");
        CHECK(tasks_after_join(3) == 3 && get_size("stats.background_thread.num_threads") == 2, "2 threads: %d", tasks());
        long base = rss_kib();
        churn(96);
        WAIT_FOR(rss_kib() - base < 16 << 10, RSS_WAIT_MS);
        CHECK(rss_kib() - base < 16 << 10, "two threads did not purge: %ld KiB over base", rss_kib() - base);
        CHECK(set_bool("background_thread", false) == 0 && tasks_after_join(1) == 1, "stop both");
    } else if (!strcmp(c, "decay_ctl")) {
        /* Decay times: per arena, all arenas, new arenas, and what a write does at once. */
        CHECK(get_ssize("opt.dirty_decay_ms") == 10000 && get_ssize("opt.muzzy_decay_ms") == 0, "opt defaults");
        CHECK(get_ssize("arena.0.dirty_decay_ms") == 10000 && get_ssize("arenas.dirty_decay_ms") == 10000, "arena");
        CHECK(get_ssize("stats.arenas.0.dirty_decay_ms") == 10000, "stats.arenas.0.dirty_decay_ms");
        CHECK(set_bool("background_thread", false) == 0, "no thread in this case");
        unsigned a = 0;
        size_t alen = sizeof a;
        CHECK(mallctl("thread.arena", &a, &alen, NULL, 0) == 0, "thread.arena");
        char name[64];
        snprintf(name, sizeof name, "stats.arenas.%u.pdirty", a);
        /* -1: freed pages stay dirty, even through arena.<i>.decay. */
        CHECK(set_ssize("arena.4096.dirty_decay_ms", -1) == 0, "write -1 to all");
        CHECK(get_ssize("arena.0.dirty_decay_ms") == -1, "all arenas got -1");
        churn(16);
        CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "flush");
        snprintf(name, sizeof name, "arena.%u.decay", a);
        CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "decay");
        refresh();
        snprintf(name, sizeof name, "stats.arenas.%u.pdirty", a);
        size_t dirty = get_size(name);
        CHECK(dirty >= (16 << 20) / page_size(), "decay -1 purged: %zu dirty pages", dirty);
        /* Setting a time purges what the set holds (jemalloc's rule). */
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", a);
        CHECK(set_ssize(name, 10000) == 0, "write 10000");
        snprintf(name, sizeof name, "stats.arenas.%u.pdirty", a);
        refresh();
        CHECK(get_size(name) < dirty / 16, "setting the time did not purge: %zu", get_size(name));
        /* 0: purged at once, on the slow paths. */
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", a);
        CHECK(set_ssize(name, 0) == 0, "write 0");
        churn(16);
        snprintf(name, sizeof name, "stats.arenas.%u.pdirty", a);
        refresh();
        CHECK(get_size(name) < 256, "decay 0 kept %zu dirty pages", get_size(name));
        /* Invalid values. */
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", a);
        CHECK(set_ssize(name, -2) == EINVAL, "-2");
        CHECK(set_ssize("arenas.muzzy_decay_ms", -7) == EINVAL, "-7");
        int small = 5;
        CHECK(mallctl(name, NULL, NULL, &small, sizeof small) == EINVAL, "wrong size");
        /* New arenas start with arenas.*_decay_ms. */
        CHECK(set_ssize("arenas.dirty_decay_ms", 1234) == 0 && set_ssize("arenas.muzzy_decay_ms", 4321) == 0, "arenas.*");
        unsigned na = 0;
        size_t nlen = sizeof na;
        CHECK(mallctl("arenas.create", &na, &nlen, NULL, 0) == 0, "arenas.create");
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", na);
        CHECK(get_ssize(name) == 1234, "new arena dirty");
        snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", na);
        CHECK(get_ssize(name) == 4321, "new arena muzzy");
        /* A muzzy stage: dirty decay 0, muzzy -1: freed pages end muzzy (MADV_FREE). */
        snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", a);
        CHECK(set_ssize(name, -1) == 0, "muzzy -1");
        churn(16);
        snprintf(name, sizeof name, "stats.arenas.%u.pmuzzy", a);
        refresh();
        CHECK(get_size(name) >= (15 << 20) / page_size(), "no muzzy pages: %zu", get_size(name));
        /* arena.<i>.purge empties both. */
        snprintf(name, sizeof name, "arena.%u.purge", a);
        CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "purge");
        refresh();
        snprintf(name, sizeof name, "stats.arenas.%u.pmuzzy", a);
        CHECK(get_size(name) == 0, "purge left muzzy pages");
        snprintf(name, sizeof name, "stats.arenas.%u.muzzy_purged", a);
        CHECK(get_u64(name) >= (15 << 20) / page_size(), "muzzy_purged");
    } else if (!strcmp(c, "fork")) {
        /* Fork while the thread runs: the child has none until it needs one; both purge. */
        CHECK(set_bool("background_thread", true) == 0 && tasks() == 2, "start");
        for (int r = 0; r < 20; r++) {
            churn(32);
            pid_t pid = fork();
            CHECK(pid >= 0, "fork");
            if (pid == 0) {
                alarm(40);
                if (tasks_raw() != 1) _exit(3);
                if (!get_bool("background_thread")) _exit(4);
                churn(8);
                if (mallctl("arena.4096.purge", NULL, NULL, NULL, 0) != 0) _exit(5);
                if (r == 0) {
                    /* Enough memory to want a thread: it starts lazily, and purges. */
                    long base = rss_kib();
                    churn(128);
                    free(malloc(1 << 20));
                    WAIT_FOR(rss_kib() - base < 32 << 10, RSS_WAIT_MS);
                    if (!has_purge_thread()) _exit(6);
                    if (rss_kib() - base >= 32 << 10) _exit(7);
                }
                _exit(0);
            }
            int st;
            CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x", r, st);
        }
        long base = rss_kib();
        churn(64);
        WAIT_FOR(rss_kib() - base < 16 << 10, RSS_WAIT_MS);
        CHECK(rss_kib() - base < 16 << 10, "the parent's thread stopped purging");
    } else if (!strcmp(c, "wakes")) {
        /* Batches of 1000 blocks of 64 KiB for a second, the thread running: each round frees
         * 64 MiB, which decay keeps (it is reused at once). The thread wakes on its epochs
         * (50 ms) and for deadlines, not for every 16 MiB freed. */
        CHECK(set_bool("background_thread", true) == 0, "start");
        static void *v[1000];
        uint64_t runs0 = get_u64("stats.background_thread.num_runs");
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long rounds = 0;
        do {
            for (int i = 0; i < 1000; i++) {
                v[i] = malloc(64 << 10);
                CHECK(v[i], "malloc");
                *(volatile char *)v[i] = 1;
            }
            for (int i = 0; i < 1000; i++) free(v[i]);
            rounds++;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
        uint64_t runs = get_u64("stats.background_thread.num_runs") - runs0;
        CHECK(runs <= 100, "%llu passes of the purge thread in 1 s (%ld rounds of 64 MiB)", (unsigned long long)runs, rounds);
    } else if (!strcmp(c, "exit_purging")) {
        /* Exit while the thread purges (decay 0: every free wakes it) and from an atexit
         * handler that allocates: a clean exit, no crash, no hang. */
        CHECK(set_bool("background_thread", true) == 0, "start");
        churn(64);
        exit(0);
    }
    return 0;
}

static int run(const char *c, const char *ox, char *err, size_t errlen) {
    return run_child_conf("background", c, ox, NULL, err, errlen);
}

static void expect_ok(const char *c, const char *ox) {
    char err[16384];
    int st = run(c, ox, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %s (OXMALLOC_CONF=%s): status %#x\n%s", c, ox ? ox : "-", st, err);
    CHECK(strstr(err, "oxmalloc:") == NULL, "case %s printed: %s", c, err);
}

static void atexit_allocates(void) { churn(32); }

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "child")) {
        if (!strcmp(argv[2], "exit_purging")) atexit(atexit_allocates);
        return child(argv[2]);
    }
    assert_oxmalloc();
    CHECK(mallctl != NULL, "mallctl missing");
    expect_ok("small", NULL);
    expect_ok("idle", "dirty_decay_ms:500");
    expect_ok("mallctl", "narenas:4,max_background_threads:4,dirty_decay_ms:300");
    expect_ok("decay_ctl", NULL);
    expect_ok("fork", "dirty_decay_ms:300");
    expect_ok("wakes", NULL);
    for (int i = 0; i < 10; i++) expect_ok("exit_purging", "dirty_decay_ms:0");
    /* Every value jemalloc accepts is accepted; others give one warning line each. */
    expect_ok("small", "background_thread:false,max_background_threads:0,dirty_decay_ms:-1,muzzy_decay_ms:0");
    expect_ok("small", "background_thread:true,max_background_threads:100000,dirty_decay_ms:0,muzzy_decay_ms:18446744073000");
    char err[16384];
    int st = run("small", "dirty_decay_ms:-2,muzzy_decay_ms:18446744073001,background_thread:yes,max_background_threads:x", err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bad values must not stop the program:\n%s", err);
    int lines = 0;
    for (char *s = err; (s = strstr(s, "oxmalloc: conf: invalid option")); s++) lines++;
    CHECK(lines == 4, "expected 4 warning lines, got %d:\n%s", lines, err);
    printf("background: ok\n");
    return 0;
}
