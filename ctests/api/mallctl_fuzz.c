/* Fuzzed mallctl names and buffer lengths with guarded buffers. Names are jemalloc's (the ones
 * oxmalloc serves and some it does not) mutated at random: truncated, components replaced by
 * numbers (huge, 4096, 4097, leading zeros, 25 digits), letters and bytes inserted, dots
 * doubled, names joined, names of up to 3000 bytes. Every buffer sits against a PROT_NONE page
 * (names end right before one, old and new values end right before one, MIB arrays too), so
 * a read or write past the length the caller gave faults; the bytes of the page before a
 * buffer are checked after each call, so a write before it shows. Each call must return 0 or
 * one of jemalloc's codes (ENOENT, EINVAL, EPERM, EFAULT, EAGAIN), never grow *oldlenp, and
 * never write more than *oldlenp bytes. mallctlnametomib and mallctlbymib are fuzzed the same
 * way (capacities, random components, lengths 0..8). Written values of 8, 16... bytes are
 * pointers to a valid string or null (string-valued names read what they are given), others
 * random bytes (a 1-byte bool may be any byte). */
#include "../common.h"
#include <sys/mman.h>

#define WEAK __attribute__((weak))
WEAK int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
WEAK int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static const char *const NAMES[] = {
    "version", "epoch", "background_thread", "max_background_threads", "thread.arena",
    "thread.allocated", "thread.allocatedp", "thread.deallocated", "thread.deallocatedp",
    "thread.tcache.enabled", "thread.tcache.flush", "thread.idle", "thread.peak.read",
    "config.debug", "config.malloc_conf", "config.stats", "opt.abort", "opt.narenas", "opt.dss",
    "opt.tcache", "opt.tcache_max", "opt.junk", "opt.zero_realloc", "opt.stats_print_opts",
    "opt.dirty_decay_ms", "opt.muzzy_decay_ms", "opt.hpa_sec_nshards", "tcache.create",
    "arena.0.initialized", "arena.0.purge", "arena.0.decay", "arena.0.dss", "arena.4096.purge",
    "arena.1.dirty_decay_ms", "arena.0.muzzy_decay_ms", "arena.0.reset", "arena.0.extent_hooks",
    "arenas.narenas", "arenas.dirty_decay_ms", "arenas.quantum", "arenas.page", "arenas.tcache_max",
    "arenas.nbins", "arenas.nhbins", "arenas.bin.0.size", "arenas.bin.35.nregs",
    "arenas.bin.3.slab_size", "arenas.nlextents", "arenas.lextent.0.size", "arenas.lookup",
    "prof.active", "stats.allocated", "stats.active", "stats.metadata", "stats.resident",
    "stats.mapped", "stats.retained", "stats.arenas.0.nthreads", "stats.arenas.4096.pdirty",
    "stats.arenas.0.small.nmalloc", "stats.arenas.4096.bins.2.curregs",
    "stats.arenas.0.bins.35.nonfull_slabs", "stats.arenas.4096.large.allocated",
    "stats.mutexes.ctl.num_ops", "experimental.utilization.query",
    "experimental.utilization.batch_query", "experimental.hooks.install",
};
#define NNAMES (sizeof NAMES / sizeof NAMES[0])
static const char *const NUMBERS[] = {"0", "1", "4096", "4097", "4095", "256", "007", "18446744073709551615",
                                      "18446744073709551616", "4294967296", "9999999999999999999999999", "-1", ""};
static const char ALPHA[] = "..abcdefghijklmnopqrstuvwxyz_0123456789\x01\x7f\x80\xff ";

static uint64_t seed = 0xf0221ed;
static unsigned rnd(unsigned n) { return (unsigned)(rng_next(&seed) % n); }

/* A page-aligned area of `pages` usable pages with PROT_NONE pages on both sides. */
static unsigned char *guarded(size_t pages) {
    size_t pg = page_size();
    unsigned char *m = mmap(NULL, (pages + 2) * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    CHECK(mprotect(m, pg, PROT_NONE) == 0 && mprotect(m + (pages + 1) * pg, pg, PROT_NONE) == 0, "mprotect");
    return m + pg;
}

static char name[4096];

static void mutate(void) {
    const char *base = NAMES[rnd(NNAMES)];
    size_t n = 0;
    switch (rnd(8)) {
    case 0: /* as is */
        n = (size_t)snprintf(name, sizeof name, "%s", base);
        break;
    case 1: /* truncated */
        n = (size_t)snprintf(name, sizeof name, "%s", base);
        n = rnd((unsigned)n + 1);
        name[n] = 0;
        break;
    case 2: { /* one component replaced by a number */
        const char *dot = strchr(base, '.');
        if (dot) n = (size_t)snprintf(name, sizeof name, "%.*s.%s%s", (int)(dot - base), base, NUMBERS[rnd(13)],
                                      strchr(dot + 1, '.') ? strchr(dot + 1, '.') : "");
        else n = (size_t)snprintf(name, sizeof name, "%s", NUMBERS[rnd(13)]);
        break;
    }
    case 3: /* characters inserted */
        n = (size_t)snprintf(name, sizeof name, "%s", base);
        for (int k = rnd(4) + 1; k > 0 && n + 1 < 200; k--) {
            size_t at = rnd((unsigned)n + 1);
            memmove(name + at + 1, name + at, n - at + 1);
            name[at] = ALPHA[rnd(sizeof ALPHA - 1)];
            n++;
        }
        break;
    case 4: /* dots doubled, leading or trailing */
        n = (size_t)snprintf(name, sizeof name, rnd(2) ? ".%s" : rnd(2) ? "%s." : "%s..", base);
        break;
    case 5: /* two names joined */
        n = (size_t)snprintf(name, sizeof name, "%s.%s", base, NAMES[rnd(NNAMES)]);
        break;
    case 6: /* long */
        n = 200 + rnd(2800);
        for (size_t i = 0; i < n; i++) name[i] = rnd(4) ? ALPHA[rnd(sizeof ALPHA - 1)] : '.';
        name[n] = 0;
        break;
    default: /* random bytes */
        n = rnd(40);
        for (size_t i = 0; i < n; i++) name[i] = (char)(1 + rnd(255));
        name[n] = 0;
        break;
    }
    if (n >= sizeof name) n = sizeof name - 1;
    name[n] = 0;
}

static unsigned char *name_area, *old_area, *new_area, *mib_area;
static size_t *len_slot;
static const char valid_string[] = "disabled";

static const size_t LENS[] = {0, 1, 2, 3, 4, 7, 8, 9, 16, 24, 32, 100, 4096};
#define NLENS (sizeof LENS / sizeof LENS[0])

/* The page before an old-value buffer of `len` bytes, filled with 0xcd; checked after. */
static unsigned char *old_buffer(size_t len) {
    size_t pg = page_size();
    memset(old_area, 0xcd, 2 * pg);
    return old_area + 2 * pg - len;
}

static void check_before(unsigned char *oldp, const char *what) {
    for (unsigned char *q = old_area; q < oldp; q++)
        CHECK(*q == 0xcd, "%s(\"%.200s\"): a byte %zu before the old-value buffer was written", what, name,
              (size_t)(oldp - q));
}

/* A new-value buffer of `len` bytes: pointer-sized values are a pointer to a valid string or
 * null (a string-valued name dereferences what it is given, as jemalloc's does), other lengths
 * random bytes. */
static void *new_buffer(size_t len) {
    unsigned char *p = new_area + page_size() - len;
    if (len % sizeof(void *) == 0) {
        for (size_t i = 0; i < len; i += sizeof(void *)) {
            const char *s = rnd(4) ? valid_string : NULL;
            memcpy(p + i, &s, sizeof s);
        }
    } else {
        for (size_t i = 0; i < len; i++) p[i] = (unsigned char)rnd(256);
    }
    return len == 0 && rnd(2) ? NULL : p;
}

static void check_rc(int rc, const char *what) {
    CHECK(rc == 0 || rc == ENOENT || rc == EINVAL || rc == EPERM || rc == EFAULT || rc == EAGAIN,
          "%s(\"%.200s\") returned %d", what, name, rc);
}

/* One call with random buffers; `call` is mallctl or mallctlbymib on `mib`. */
static void one_call(int bymib, const size_t *mib, size_t miblen) {
    size_t olen = LENS[rnd(NLENS)], nlen = LENS[rnd(NLENS - 1)];
    unsigned char *oldp = rnd(5) ? old_buffer(olen) : NULL;
    size_t *lenp = rnd(6) ? len_slot : NULL;
    if (lenp) *lenp = olen;
    void *newp = rnd(3) ? NULL : new_buffer(nlen);
    if (newp == NULL && rnd(2)) nlen = 0;
    int rc = bymib ? mallctlbymib(mib, miblen, oldp, lenp, newp, nlen) : mallctl(name, oldp, lenp, newp, nlen);
    check_rc(rc, bymib ? "mallctlbymib" : "mallctl");
    if (lenp) CHECK(*lenp <= olen, "%s(\"%.200s\"): *oldlenp grew from %zu to %zu", bymib ? "mallctlbymib" : "mallctl",
                    name, olen, *lenp);
    if (oldp) check_before(oldp, bymib ? "mallctlbymib" : "mallctl");
}

int main(void) {
    assert_oxmalloc();
    CHECK(mallctl && mallctlnametomib && mallctlbymib, "mallctl family missing");
    size_t pg = page_size();
    name_area = guarded(2);
    old_area = guarded(2);
    new_area = guarded(1);
    mib_area = guarded(1);
    len_slot = (size_t *)(guarded(1) + pg - sizeof(size_t));
    long n = 30000 * ctests_scale();
    long ok = 0;
    for (long i = 0; i < n; i++) {
        mutate();
        /* The name ends right before a guard page. */
        size_t nl = strlen(name) + 1;
        char *np = (char *)name_area + 2 * pg - nl;
        memcpy(np, name, nl);
        int which = rnd(4);
        if (which < 2) {
            size_t olen = LENS[rnd(NLENS)], nlen = LENS[rnd(NLENS - 1)];
            unsigned char *oldp = rnd(5) ? old_buffer(olen) : NULL;
            size_t *lenp = rnd(6) ? len_slot : NULL;
            if (lenp) *lenp = olen;
            void *newp = rnd(3) ? NULL : new_buffer(nlen);
            int rc = mallctl(np, oldp, lenp, newp, newp ? nlen : rnd(2) ? 0 : nlen);
            check_rc(rc, "mallctl");
            ok += rc == 0;
            if (lenp) CHECK(*lenp <= olen, "mallctl(\"%.200s\"): *oldlenp grew from %zu to %zu", name, olen, *lenp);
            if (oldp) check_before(oldp, "mallctl");
        } else {
            /* nametomib into a guarded MIB array of random capacity, then bymib on it. */
            size_t cap = rnd(9);
            size_t *mib = (size_t *)(mib_area + pg) - cap;
            size_t miblen = cap;
            int rc = mallctlnametomib(np, cap ? mib : (rnd(2) ? NULL : mib), &miblen);
            check_rc(rc, "mallctlnametomib");
            CHECK(miblen <= cap, "mallctlnametomib(\"%.200s\"): *miblenp grew from %zu to %zu", name, cap, miblen);
            if (rc != 0) {
                miblen = rnd((unsigned)cap + 1);
                for (size_t k = 0; k < miblen; k++)
                    mib[k] = rnd(3) ? rnd(40) : rnd(2) ? 4096 + rnd(3) : (size_t)rng_next(&seed);
            } else if (rnd(4) == 0 && miblen > 0) {
                mib[rnd((unsigned)miblen)] = rnd(2) ? 4096 : (size_t)rng_next(&seed);
            }
            /* The MIB ends right before the guard page. */
            size_t *m = (size_t *)(mib_area + pg) - miblen;
            memmove(m, mib, miblen * sizeof *mib);
            one_call(1, m, miblen);
        }
    }
    /* The allocator still works and still answers. */
    void *p = malloc(100);
    CHECK(p != NULL, "malloc after fuzzing");
    free(p);
    size_t page = 0, len = sizeof page;
    CHECK(mallctl("arenas.page", &page, &len, NULL, 0) == 0 && page == pg, "arenas.page after fuzzing");
    printf("mallctl_fuzz: %ld calls (%ld returned 0)\n", n, ok);
    return 0;
}
