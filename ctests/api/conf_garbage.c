/* Garbage option strings: each runs this program again with MALLOC_CONF (or OXMALLOC_CONF) set
 * to it. Whatever the string, the child starts, allocates and exits 0, and the library says
 * exactly one `oxmalloc: conf: invalid option "<item>"` line per bad item and nothing else.
 * Some strings are crafted (empty items, bare colons, numbers out of range or overflowing,
 * signs, spaces, 5000-byte items, bytes above 127), the rest come from a PRNG over an alphabet
 * that can spell no key. Also: `tcache_max` beyond jemalloc's limit (8 MiB) is invalid, not
 * silently capped; `stats_print_opts` is jemalloc's option (valid letters kept once, in
 * order, across sources; others ignored) and shapes the statistics printed at exit. */
#include "../common.h"
#include <stdbool.h>

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static const char *opt_str(const char *name) {
    const char *v = NULL;
    size_t len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == 0 && v != NULL, "mallctl(%s)", name);
    return v;
}

static size_t opt_size(const char *name) {
    size_t v = 0, len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == 0, "mallctl(%s)", name);
    return v;
}

/* The child: allocate a little of everything; case-specific checks. */
static int child(const char *c) {
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = malloc((size_t)1 << (i % 20));
        CHECK(p[i] != NULL, "malloc");
        memset(p[i], i, 1);
    }
    for (int i = 0; i < 64; i++) free(p[i]);
    if (!strcmp(c, "tcache_max_default")) {
        CHECK(opt_size("opt.tcache_max") == 262144, "opt.tcache_max = %zu", opt_size("opt.tcache_max"));
    } else if (!strncmp(c, "opts=", 5)) {
        CHECK(!strcmp(opt_str("opt.stats_print_opts"), c + 5), "opt.stats_print_opts = \"%s\", expected \"%s\"",
              opt_str("opt.stats_print_opts"), c + 5);
    }
    return 0;
}

/* Runs case `c` with MALLOC_CONF=`mc` and OXMALLOC_CONF=`ox` (NULL: unset). */
static int run(const char *c, const char *mc, const char *ox, char *err, size_t errlen) {
    return run_child_conf("conf_garbage", c, ox, mc, err, errlen);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s++) n++;
    return n;
}

/* Non-empty comma-separated items of `s`. */
static int items(const char *s) {
    int n = 0, len = 0;
    for (;; s++) {
        if (*s == ',' || *s == 0) {
            n += len > 0;
            len = 0;
            if (*s == 0) return n;
        } else {
            len++;
        }
    }
}

#define PREFIX "oxmalloc: conf: invalid option \""

static char err[1 << 17];

/* MALLOC_CONF=`mc` must give exactly `bad` warning lines (-1: one per non-empty item). */
static void expect(const char *c, const char *mc, int bad) {
    if (bad < 0) bad = items(mc);
    int st = run(c, mc, NULL, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "MALLOC_CONF=\"%.300s\": the child did not exit 0 (status %#x):\n%.2000s",
          mc, st, err);
    int lines = count(err, PREFIX);
    CHECK(lines == bad, "MALLOC_CONF=\"%.300s\": %d invalid-option lines, expected %d:\n%.2000s", mc, lines, bad, err);
    CHECK(count(err, "oxmalloc:") == lines, "MALLOC_CONF=\"%.300s\": other library output:\n%.2000s", mc, err);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "child")) return child(argv[2]);
    assert_oxmalloc();
    CHECK(mallctl != NULL, "mallctl missing");

    static const struct { const char *s; int bad; } crafted[] = {
        {"", 0}, {",", 0}, {",,,,", 0}, {":", 1}, {"::", 1}, {"a", 1}, {"a:", 1}, {":a", 1},
        {"narenas:", 1}, {"narenas:-1", 1}, {"narenas:+1", 1}, {"narenas: 1", 1}, {" narenas:1", 1},
        {"narenas:1 ", 1}, {"narenas:0x", 1}, {"narenas:08", 1}, {"narenas:257", 1},
        {"narenas:99999999999999999999999999", 1}, {"narenas:0xffffffffffffffffff", 1},
        {"narenas:2,narenas:3,narenas:x", 1}, {"tcache:TRUE", 1}, {"tcache:1", 1}, {"tcache:", 1},
        {"junk:yes", 1}, {"zero_realloc:", 1}, {"zero_realloc:FREE", 1}, {"abort_conf:0", 1},
        {"retain:false", 1}, {"dirty_decay_ms:-2", 1}, {"NARENAS:2", 1}, {"narenas=2", 1},
        {"narenas:2;tcache:false", 1}, {"narenas:2,,tcache:false,", 0}, {"\xff\xfe:\x01", 1},
        {"tcache_max:-1", 1}, {"tcache_max:4294967296", 1}, {"tcache_max:18446744073709551616", 1},
        {"tcache_max:8388609", 1}, {"tcache_max:8388608", 0}, {"tcache_max:0", 0},
        {"stats_print_opts:", 0}, {"stats_print_opts:\xff\x01 ,", 0},
    };
    for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) expect("plain", crafted[i].s, crafted[i].bad);

    /* Long items: the warning shows at most 200 bytes of one. */
    static char longs[3][6000];
    memset(longs[0], 'a', 5000);
    memcpy(longs[1], "narenas:", 8);
    memset(longs[1] + 8, '7', 5000);
    for (int i = 0; i < 5000; i++) longs[2][i] = (i % 50 == 49) ? ',' : (char)('k' + i % 7);
    for (int i = 0; i < 3; i++) expect("plain", longs[i], -1);

    /* PRNG strings over an alphabet that spells no key. */
    static const char alphabet[] = ",,,::abcxyz0123456789-+ _.\x7f\x80\xff\t";
    uint64_t seed = 0x5eed1234;
    static char buf[512];
    for (int t = 0; t < 30; t++) {
        size_t n = 1 + rng_next(&seed) % (t < 20 ? 40 : sizeof buf - 1);
        for (size_t i = 0; i < n; i++) buf[i] = alphabet[rng_next(&seed) % (sizeof alphabet - 1)];
        buf[n] = 0;
        expect("plain", buf, -1);
    }

    /* Out-of-range tcache_max keeps the default. */
    expect("tcache_max_default", "tcache_max:4294967296", 1);
    expect("tcache_max_default", "tcache_max:1048576", 0);

    /* stats_print_opts: valid letters once each, in order, across sources. */
    expect("opts=J", "stats_print_opts:J", 0);
    expect("opts=gJa", "stats_print_opts:gzJJa", 0);
    expect("opts=", "stats_print_opts:qqq", 0);
    int st = run("opts=gJ", "stats_print_opts:g", "stats_print_opts:J", err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(err, "oxmalloc:"),
          "stats_print_opts from MALLOC_CONF and OXMALLOC_CONF:\n%.2000s", err);
    st = run("plain", "stats_print:true,stats_print_opts:J", NULL, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "stats_print:true,stats_print_opts:J failed:\n%.2000s", err);
    CHECK(strstr(err, "{\"jemalloc\":") && !strstr(err, "___ Begin jemalloc statistics ___"),
          "stats_print_opts:J did not print JSON at exit:\n%.2000s", err);

    /* abort_conf:true turns garbage into one clear fatal line. */
    st = run("plain", "\x01\x02:zz,abort_conf:true", NULL, err, sizeof err);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "abort_conf:true with garbage did not abort:\n%s", err);
    CHECK(count(err, "oxmalloc: conf: invalid option and abort_conf:true") == 1, "abort line:\n%s", err);
    printf("conf_garbage: ok\n");
    return 0;
}
