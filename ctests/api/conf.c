/* Options: OXMALLOC_CONF, MALLOC_CONF and the program's malloc_conf symbol (later sources
 * win), an invalid entry gives one warning line and keeps the default, abort_conf:true
 * aborts, and the options that change behaviour do (zero_realloc, junk, stats_print,
 * narenas, tcache, tcache_max). Each case re-runs this program with a fresh environment. */
#include "../common.h"
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* Seen by oxmalloc when this executable exports it (linked mode: the library references it). */
const char *malloc_conf = "narenas:7";

static unsigned opt_unsigned(const char *name) {
    unsigned v = 0;
    size_t len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == 0, "mallctl(%s)", name);
    return v;
}

static bool opt_bool(const char *name) {
    bool v = false;
    size_t len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == 0, "mallctl(%s)", name);
    return v;
}

static const char *opt_str(const char *name) {
    const char *v = NULL;
    size_t len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == 0, "mallctl(%s)", name);
    return v;
}

/* stats.active after a refresh. */
static size_t active_now(void) {
    uint64_t e = 1;
    size_t a = 0, len = sizeof a;
    CHECK(mallctl("epoch", NULL, NULL, &e, sizeof e) == 0, "epoch");
    CHECK(mallctl("stats.active", &a, &len, NULL, 0) == 0, "stats.active");
    return a;
}

/* Whether a block of `size` bytes, allocated and freed, stays active (in the thread cache). */
static bool kept_by_cache(size_t size) {
    free(malloc(size)); /* fills the cache's bin once, so the next miss behaves the same */
    void *p = malloc(size);
    CHECK(p, "malloc(%zu)", size);
    size_t before = active_now();
    free(p);
    return active_now() == before;
}

static int symbol_exported(void) { return dlsym(RTLD_DEFAULT, "malloc_conf") == (void *)&malloc_conf; }

/* The child side: check what case `c` promises. */
static int child(const char *c) {
    unsigned base = symbol_exported() ? 7 : 0;
    if (!strcmp(c, "default")) {
        if (base) CHECK(opt_unsigned("opt.narenas") == 7, "malloc_conf symbol not applied");
        CHECK(opt_bool("opt.tcache"), "tcache default");
        CHECK(!strcmp(opt_str("opt.zero_realloc"), "free"), "zero_realloc default");
    } else if (!strcmp(c, "narenas_tcache")) {
        CHECK(opt_unsigned("opt.narenas") == 3, "narenas:3");
        CHECK(!opt_bool("opt.tcache"), "tcache:false");
        bool on = true;
        size_t len = sizeof on;
        CHECK(mallctl("thread.tcache.enabled", &on, &len, NULL, 0) == 0 && !on, "thread cache on");
    } else if (!strcmp(c, "order")) {
        CHECK(opt_unsigned("opt.narenas") == 5, "OXMALLOC_CONF must win over MALLOC_CONF");
        CHECK(opt_bool("opt.stats_print") == false, "stats_print from MALLOC_CONF overridden");
    } else if (!strcmp(c, "invalid")) {
        CHECK(opt_unsigned("opt.narenas") == 2, "valid entries around a bad one still apply");
    } else if (!strcmp(c, "zero_realloc")) {
        void *p = malloc(100);
        void *q = realloc(opaque_ptr(p), 0);
        CHECK(q != NULL, "zero_realloc:alloc: realloc(p, 0) returned NULL");
        free(q);
    } else if (!strcmp(c, "junk")) {
        unsigned char *p = malloc(100);
        for (int i = 0; i < 100; i++) CHECK(p[i] == 0xa5, "junk:true: byte %d is %#x", i, p[i]);
        unsigned char *z = calloc(1, 100);
        for (int i = 0; i < 100; i++) CHECK(z[i] == 0, "calloc under junk not zero");
        free(p);
        free(z);
        CHECK(!strcmp(opt_str("opt.junk"), "true"), "opt.junk");
    } else if (!strcmp(c, "tcache_max")) {
        size_t v = 0, len = sizeof v;
        CHECK(mallctl("opt.tcache_max", &v, &len, NULL, 0) == 0 && v == 65536, "tcache_max:65536 -> %zu", v);
        /* A freed block up to 64 KiB stays in the thread cache (active pages: the arena still
         * counts it in use), a bigger one goes back to the page allocator at once. */
        CHECK(kept_by_cache(64 << 10), "a 64 KiB block must stay cached under tcache_max:65536");
        CHECK(!kept_by_cache(68 << 10), "a 68 KiB block must not be cached under tcache_max:65536");
    } else if (!strcmp(c, "tcache_max_default")) {
        CHECK(kept_by_cache(68 << 10) && kept_by_cache(256 << 10), "blocks up to 256 KiB are cached by default");
        CHECK(!kept_by_cache(260 << 10), "a 260 KiB block is not cached by default");
    } else if (!strcmp(c, "stats_print")) {
        free(malloc(1000));
    }
    return 0;
}

static int run(const char *c, const char *ox, const char *mc, char *err, size_t errlen) {
    return run_child_conf("conf", c, ox, mc, err, errlen);
}

static void expect_ok(const char *c, const char *ox, const char *mc) {
    char err[65536];
    int st = run(c, ox, mc, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %s (OXMALLOC_CONF=%s MALLOC_CONF=%s) failed:\n%s",
          c, ox ? ox : "-", mc ? mc : "-", err);
    if (strcmp(c, "stats_print") && strcmp(c, "invalid"))
        CHECK(strstr(err, "oxmalloc:") == NULL, "case %s printed: %s", c, err);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "child")) return child(argv[2]);
    assert_oxmalloc();
    CHECK(mallctl != NULL, "mallctl missing");
    char err[65536];
    expect_ok("default", NULL, NULL);
    expect_ok("narenas_tcache", "narenas:3,tcache:false", NULL);
    expect_ok("order", "narenas:5", "narenas:2,stats_print:false");
    expect_ok("zero_realloc", "zero_realloc:alloc", NULL);
    expect_ok("junk", "junk:true", NULL);
    expect_ok("tcache_max", "tcache_max:65536", NULL);
    expect_ok("tcache_max_default", NULL, NULL);
    /* one warning line per bad entry, defaults kept, good entries applied */
    int st = run("invalid", "narenas:2,bogus:1,tcache:maybe", NULL, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "invalid entries must not stop the program:\n%s", err);
    CHECK(strstr(err, "oxmalloc: conf: invalid option \"bogus:1\"\n") &&
              strstr(err, "oxmalloc: conf: invalid option \"tcache:maybe\"\n"),
          "missing warning lines:\n%s", err);
    int lines = 0;
    for (char *s = err; (s = strstr(s, "oxmalloc: conf:")); s++) lines++;
    CHECK(lines == 2, "expected 2 warning lines, got %d:\n%s", lines, err);
    /* abort_conf:true turns a bad entry into an abort */
    st = run("default", "bogus:1,abort_conf:true", NULL, err, sizeof err);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "abort_conf:true did not abort:\n%s", err);
    CHECK(strstr(err, "oxmalloc: conf: invalid option and abort_conf:true"), "abort line:\n%s", err);
    /* stats_print:true prints the statistics at exit */
    st = run("stats_print", "stats_print:true", NULL, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "stats_print case failed");
    CHECK(strstr(err, "___ Begin jemalloc statistics ___") && strstr(err, "--- End jemalloc statistics ---"),
          "stats_print:true printed no statistics:\n%.2000s", err);
    printf("conf: ok (malloc_conf symbol %s)\n", symbol_exported() ? "exported and applied" : "not exported in this mode");
    return 0;
}
