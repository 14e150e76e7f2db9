/* mallctl, mallctlnametomib, mallctlbymib: jemalloc 5.3's documented conventions (the *oldlenp
 * rules, EPERM/ENOENT/EINVAL, MIBs with indices, 4096 = all arenas, arena.<narenas>.purge),
 * the names Redis and Valkey read, and stats that follow allocation. Written from jemalloc's
 * documentation only, so it also passes linked against Debian's libjemalloc.so.2
 * (tests/ctests.rs runs it that way too). */
#include "../common.h"
#include <stdbool.h>

#define WEAK __attribute__((weak))
WEAK int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
WEAK int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
WEAK int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                      size_t newlen);
WEAK void *mallocx(size_t size, int flags);
WEAK void dallocx(void *ptr, int flags);
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))

static size_t get_size(const char *name) {
    size_t v = 0, len = sizeof v;
    int r = mallctl(name, &v, &len, NULL, 0);
    CHECK(r == 0 && len == sizeof v, "mallctl(%s) = %d", name, r);
    return v;
}

static unsigned get_unsigned(const char *name) {
    unsigned v = 0;
    size_t len = sizeof v;
    int r = mallctl(name, &v, &len, NULL, 0);
    CHECK(r == 0, "mallctl(%s) = %d", name, r);
    return v;
}

static uint64_t refresh(void) {
    uint64_t e = 1;
    size_t len = sizeof e;
    int r = mallctl("epoch", &e, &len, &e, sizeof e);
    CHECK(r == 0, "epoch write = %d", r);
    return e;
}

static void test_protocol(void) {
    const char *version = NULL;
    size_t len = sizeof version;
    CHECK(mallctl("version", &version, &len, NULL, 0) == 0 && version && *version, "version");
    CHECK(get_size("arenas.page") == (size_t)sysconf(_SC_PAGESIZE), "arenas.page");
    /* wrong-size read buffer: value copied, length rewritten, EINVAL */
    unsigned char buf[16];
    memset(buf, 0xff, sizeof buf);
    len = sizeof buf;
    CHECK(mallctl("arenas.page", buf, &len, NULL, 0) == EINVAL, "16-byte read must be EINVAL");
    CHECK(len == sizeof(size_t), "*oldlenp not rewritten to 8: %zu", len);
    size_t page;
    memcpy(&page, buf, sizeof page);
    CHECK(page == (size_t)sysconf(_SC_PAGESIZE), "value not copied on EINVAL");
    /* short buffer: 4 bytes copied */
    uint32_t small = 0;
    len = sizeof small;
    CHECK(mallctl("arenas.page", &small, &len, NULL, 0) == EINVAL && len == 4, "4-byte read");
    /* read-only name written: EPERM; wrong write size: EINVAL or EPERM */
    size_t v = 1;
    CHECK(mallctl("arenas.page", NULL, NULL, &v, sizeof v) == EPERM, "writing arenas.page");
    uint64_t e = 1;
    CHECK(mallctl("epoch", NULL, NULL, &e, 4) == EINVAL, "epoch written with 4 bytes");
    /* unknown and inner names */
    CHECK(mallctl("no.such.name", &v, &len, NULL, 0) == ENOENT, "unknown name");
    CHECK(mallctl("arenas", &v, &len, NULL, 0) == ENOENT, "inner node");
    CHECK(mallctl("stats.cactive", &v, &len, NULL, 0) == ENOENT, "stats.cactive is gone in 5.x");
    /* epoch counts writes */
    uint64_t e1 = refresh(), e2 = refresh();
    CHECK(e2 > e1, "epoch did not advance: %llu then %llu", (unsigned long long)e1,
          (unsigned long long)e2);
    /* void actions: no buffers, else EPERM */
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0, "thread.tcache.flush");
    len = sizeof v;
    CHECK(mallctl("thread.tcache.flush", &v, &len, NULL, 0) == EPERM, "reading a void name");
    bool bg = true;
    len = sizeof bg;
    /* oxmalloc enables its purge thread by default (started lazily); jemalloc does not. */
    CHECK(mallctl("background_thread", &bg, &len, NULL, 0) == 0 && bg == running_on_oxmalloc(), "background_thread default");
    CHECK(get_unsigned("opt.narenas") >= 1, "opt.narenas");
}

static void test_arenas_and_purge(void) {
    unsigned n = get_unsigned("arenas.narenas");
    CHECK(n >= 1, "arenas.narenas = %u", n);
    char name[64];
    snprintf(name, sizeof name, "arena.%u.purge", n); /* Redis's "all arenas" alias */
    CHECK(mallctl(name, NULL, NULL, NULL, 0) == 0, "%s", name);
    snprintf(name, sizeof name, "arena.%u.purge", n + 1);
    CHECK(mallctl(name, NULL, NULL, NULL, 0) == ENOENT, "%s must be ENOENT", name);
    CHECK(mallctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0, "arena.4096.purge");
    CHECK(mallctl("arena.0.decay", NULL, NULL, NULL, 0) == 0, "arena.0.decay");
    size_t len = sizeof n;
    CHECK(mallctl("arena.0.purge", &n, &len, NULL, 0) == EPERM, "purge with a read buffer");
    unsigned me = get_unsigned("thread.arena");
    CHECK(mallctl("thread.arena", NULL, NULL, &me, sizeof me) == 0, "thread.arena write");
    /* a new arena serves MALLOCX_ARENA */
    unsigned a = 0;
    len = sizeof a;
    CHECK(mallctl("arenas.create", &a, &len, NULL, 0) == 0, "arenas.create");
    void *p = mallocx(1000, MALLOCX_ARENA(a));
    CHECK(p != NULL, "mallocx in arena %u", a);
    dallocx(p, 0);
}

static void test_bins_and_mibs(void) {
    unsigned nbins = get_unsigned("arenas.nbins");
    CHECK(nbins > 0, "arenas.nbins");
    size_t mib[8], miblen = 8;
    CHECK(mallctlnametomib("arenas.bin.0.size", mib, &miblen) == 0 && miblen == 4, "nametomib");
    size_t nmib[8], nmiblen = 8;
    CHECK(mallctlnametomib("arenas.bin.0.nregs", nmib, &nmiblen) == 0 && nmiblen == 4, "nametomib nregs");
    size_t prev = 0, page = get_size("arenas.page");
    for (unsigned j = 0; j < nbins; j++) {
        char name[64];
        snprintf(name, sizeof name, "arenas.bin.%u.size", j);
        size_t size = get_size(name);
        mib[2] = j;
        size_t s2 = 0, len = sizeof s2;
        CHECK(mallctlbymib(mib, miblen, &s2, &len, NULL, 0) == 0 && s2 == size, "bymib size of bin %u", j);
        CHECK(size > prev, "bin sizes not increasing at %u", j);
        prev = size;
        nmib[2] = j;
        uint32_t nregs = 0;
        len = sizeof nregs;
        CHECK(mallctlbymib(nmib, nmiblen, &nregs, &len, NULL, 0) == 0 && nregs >= 1, "nregs of bin %u", j);
        snprintf(name, sizeof name, "arenas.bin.%u.slab_size", j);
        size_t slab = get_size(name);
        CHECK(slab % page == 0 && slab >= size * nregs, "slab_size of bin %u", j);
    }
    char name[64];
    /* (jemalloc 5.3 accepts index nbins itself, an off-by-one in its ctl.c; nbins + 1 is out) */
    snprintf(name, sizeof name, "arenas.bin.%u.size", nbins + 1);
    size_t v, len = sizeof v;
    CHECK(mallctl(name, &v, &len, NULL, 0) == ENOENT, "bin index out of range");
    /* large size classes: above the largest bin, increasing */
    unsigned nl = get_unsigned("arenas.nlextents");
    CHECK(nl >= 1, "arenas.nlextents");
    snprintf(name, sizeof name, "arenas.bin.%u.size", nbins - 1);
    size_t last = get_size(name);
    for (unsigned i = 0; i < nl; i++) {
        snprintf(name, sizeof name, "arenas.lextent.%u.size", i);
        size_t ls = get_size(name);
        CHECK(ls > last, "lextent %u size %zu not above %zu", i, ls, last);
        last = ls;
    }
    /* a partial MIB: capacity 2 gives the first two components */
    size_t part[2], partlen = 2;
    CHECK(mallctlnametomib("arenas.bin.0.size", part, &partlen) == 0 && partlen == 2 &&
              part[0] == mib[0] && part[1] == mib[1], "partial MIB");
    CHECK(mallctlbymib(mib, 2, &v, &len, NULL, 0) == ENOENT, "bymib on an inner node");
}

/* Stats follow allocation: 1000 live blocks of one class show in curregs; 16 MiB of large
 * blocks raise stats.allocated; allocated <= active <= resident, active <= mapped. */
static void test_stats(void) {
    unsigned nbins = get_unsigned("arenas.nbins");
    unsigned j = nbins / 3;
    char name[96];
    snprintf(name, sizeof name, "arenas.bin.%u.size", j);
    size_t size = get_size(name);
    refresh();
    size_t a0 = get_size("stats.allocated");
    enum { N = 1000 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(size);
        CHECK(p[i] != NULL, "malloc");
        memset(p[i], 1, size);
    }
    void *big[16];
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(1u << 20);
        memset(big[i], 2, 1u << 20);
    }
    refresh();
    size_t al = get_size("stats.allocated"), ac = get_size("stats.active");
    size_t re = get_size("stats.resident"), ma = get_size("stats.mapped");
    CHECK(al >= a0 + 16 * (1u << 20), "stats.allocated %zu did not grow by 16 MiB from %zu", al, a0);
    CHECK(al <= ac && ac <= re && ac <= ma, "allocated %zu active %zu resident %zu mapped %zu", al,
          ac, re, ma);
    (void)get_size("stats.metadata");
    (void)get_size("stats.retained");
    snprintf(name, sizeof name, "stats.arenas.4096.bins.%u.curregs", j);
    size_t cur = get_size(name);
    CHECK(cur >= N, "curregs of bin %u (%zu B) is %zu with %d live blocks", j, size, cur, N);
    snprintf(name, sizeof name, "stats.arenas.4096.bins.%u.curslabs", j);
    size_t slabs = get_size(name);
    snprintf(name, sizeof name, "stats.arenas.4096.bins.%u.nonfull_slabs", j);
    size_t nonfull = get_size(name);
    CHECK(slabs >= 1 && nonfull <= slabs, "curslabs %zu nonfull %zu", slabs, nonfull);
    CHECK(get_size("stats.arenas.4096.pactive") * get_size("arenas.page") >= al / 2, "pactive");
    (void)get_size("stats.arenas.4096.pdirty");
    (void)get_size("stats.arenas.4096.pmuzzy");
    /* batch_query: per pointer {nfree, nregs, size}; wrong lengths are EINVAL */
    size_t out[6];
    void *q[2] = {p[0], big[0]};
    size_t olen = sizeof out;
    CHECK(mallctl("experimental.utilization.batch_query", out, &olen, q, sizeof q) == 0, "batch_query");
    CHECK(out[1] >= 1 && out[0] < out[1] && out[2] >= size, "small: nfree %zu nregs %zu size %zu",
          out[0], out[1], out[2]);
    CHECK(out[3] == 0 && out[4] == 1 && out[5] >= (1u << 20), "large: %zu %zu %zu", out[3], out[4], out[5]);
    olen = sizeof out - 1;
    CHECK(mallctl("experimental.utilization.batch_query", out, &olen, q, sizeof q) == EINVAL,
          "batch_query with a wrong length");
    uint64_t t0 = 0;
    size_t tl = sizeof t0;
    CHECK(mallctl("thread.deallocated", &t0, &tl, NULL, 0) == 0, "thread.deallocated");
    for (int i = 0; i < N; i++) free(p[i]);
    for (int i = 0; i < 16; i++) free(big[i]);
    uint64_t t1 = 0;
    CHECK(mallctl("thread.deallocated", &t1, &tl, NULL, 0) == 0 && t1 >= t0 + 16 * (1u << 20),
          "thread.deallocated grew %llu -> %llu", (unsigned long long)t0, (unsigned long long)t1);
}

static void test_thread_tcache(void) {
    bool on = false, off = false;
    size_t len = sizeof on;
    CHECK(mallctl("thread.tcache.enabled", &on, &len, NULL, 0) == 0 && on, "tcache enabled by default");
    CHECK(mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof off) == 0, "disable");
    free(malloc(100));
    CHECK(mallctl("thread.tcache.enabled", &on, &len, NULL, 0) == 0 && !on, "still enabled");
    on = true;
    CHECK(mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof on) == 0, "enable");
    free(malloc(100));
    on = false;
    CHECK(mallctl("thread.tcache.enabled", &on, &len, NULL, 0) == 0 && on, "not re-enabled");
    /* folly's check: the live counter behind thread.allocatedp moves with malloc */
    uint64_t *ap = NULL;
    len = sizeof ap;
    CHECK(mallctl("thread.allocatedp", &ap, &len, NULL, 0) == 0 && ap != NULL, "thread.allocatedp");
    uint64_t before = *ap;
    void *probe = malloc(100000);
    CHECK(*ap >= before + 100000, "*thread.allocatedp did not move: %llu -> %llu",
          (unsigned long long)before, (unsigned long long)*ap);
    free(probe);
    uint64_t a0 = 0, a1 = 0;
    len = sizeof a0;
    CHECK(mallctl("thread.allocated", &a0, &len, NULL, 0) == 0, "thread.allocated");
    void *p = malloc(3u << 20);
    CHECK(mallctl("thread.allocated", &a1, &len, NULL, 0) == 0 && a1 >= a0 + (3u << 20),
          "thread.allocated grew %llu -> %llu", (unsigned long long)a0, (unsigned long long)a1);
    free(p);
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallctl && mallctlnametomib && mallctlbymib && mallocx && dallocx,
          "mallctl and friends are not provided by the allocator");
    test_protocol();
    test_arenas_and_purge();
    test_bins_and_mibs();
    test_stats();
    test_thread_tcache();
    printf("mallctl: ok\n");
    return 0;
}
