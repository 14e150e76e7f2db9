//! `malloc_stats_print`: the statistics as text a jemalloc user can read, or JSON (`J`).
//!
//! Contract (reference/jemalloc-compat.md §5): output goes through `write_cb(cbopaque,
//! fragment)` in NUL-terminated fragments of at most 4 KiB (`write_cb` NULL: stderr). Opts
//! letters: `J` JSON; `g` skips general information (version, config, opt, class table), `m`
//! the merged arenas, `a` the per-arena sections, `b` the bin rows; other letters are
//! accepted and ignored (`l`, `x`, `e`, `h`, `d`: sections oxmalloc does not have). Text
//! begins `___ Begin jemalloc statistics ___` and ends `--- End jemalloc statistics ---` so
//! tools that scan for them still work. Formatting uses a stack buffer only: nothing here
//! allocates.

use super::stats::{self, ArenaStats};
use crate::objects::arena;
use crate::metadata::size_class::{bin_size, nregs, NBINS, SLAB_PAGES};
use crate::tcache;
use crate::foundation::util::PAGE;
use core::ffi::{c_char, c_void};

pub type WriteCb = Option<unsafe extern "C" fn(*mut c_void, *const c_char)>;

struct Out {
    buf: [u8; 4096],
    len: usize,
    cb: WriteCb,
    opaque: *mut c_void,
}

impl Out {
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        self.buf[self.len] = 0;
        match self.cb {
            // SAFETY: the caller's callback, given a NUL-terminated fragment that lives for
            // the duration of the call.
            Some(f) => unsafe { f(self.opaque, self.buf.as_ptr() as *const c_char) },
            None => crate::foundation::sys::write_stderr(&self.buf[..self.len]),
        }
        self.len = 0;
    }

    fn s(&mut self, t: &str) -> &mut Self {
        for &b in t.as_bytes() {
            if self.len == self.buf.len() - 1 {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        self
    }

    fn n(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        let mut x = v;
        loop {
            i -= 1;
            d[i] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        // SAFETY: ASCII digits.
        self.s(unsafe { core::str::from_utf8_unchecked(&d[i..]) })
    }

    /// `v` right-aligned in `w` columns.
    fn col(&mut self, v: u64, w: usize) -> &mut Self {
        let digits = if v == 0 { 1 } else { v.ilog10() as usize + 1 };
        for _ in digits..w {
            self.s(" ");
        }
        self.n(v)
    }

    /// A signed value (decay times: -1 is "never").
    fn i(&mut self, v: isize) -> &mut Self {
        if v < 0 {
            self.s("-");
        }
        self.n(v.unsigned_abs() as u64)
    }

    /// A signed value right-aligned in `w` columns.
    fn icol(&mut self, v: isize, w: usize) -> &mut Self {
        if v < 0 {
            let digits = v.unsigned_abs().checked_ilog10().unwrap_or(0) as usize + 2;
            for _ in digits..w {
                self.s(" ");
            }
            return self.i(v);
        }
        self.col(v as u64, w)
    }

    fn b(&mut self, v: bool) -> &mut Self {
        self.s(if v { "true" } else { "false" })
    }
}

struct Opts {
    json: bool,
    general: bool,
    merged: bool,
    per_arena: bool,
    bins: bool,
}

fn parse_opts(opts: &[u8]) -> Opts {
    let has = |c: u8| opts.contains(&c);
    Opts { json: has(b'J'), general: !has(b'g'), merged: !has(b'm'), per_arena: !has(b'a'), bins: !has(b'b') }
}

const VERSION: &str = "5.3.0-0-oxmalloc-0.1.0";

/// (name, value) of the boolean `config.*` and the `opt.*` entries printed.
fn config() -> [(&'static str, bool); 5] {
    [("cache_oblivious", false), ("debug", cfg!(debug_assertions)), ("fill", false), ("prof", false), ("stats", true)]
}

/// Writes the statistics (the allocator is initialized: `ctl::stats_print`, or init's exit
/// handler).
pub fn print(cb: WriteCb, opaque: *mut c_void, opts: &[u8]) {
    let o = parse_opts(opts);
    let mut w = Out { buf: [0; 4096], len: 0, cb, opaque };
    if o.json {
        json(&mut w, &o);
    } else {
        text(&mut w, &o);
    }
    w.flush();
}

fn text(w: &mut Out, o: &Opts) {
    w.s("___ Begin jemalloc statistics ___\n");
    if o.general {
        w.s("Version: \"").s(VERSION).s("\"\n");
        w.s("Build-time option settings\n");
        for (k, v) in config() {
            w.s("  config.").s(k).s(": ").b(v).s("\n");
        }
        w.s("Run-time option settings\n");
        w.s("  opt.narenas: ").n(arena::narenas() as u64).s("\n");
        w.s("  opt.tcache: ").b(tcache::enabled()).s("\n");
        w.s("  opt.tcache_max: ").n(crate::tcache::max() as u64).s("\n");
        w.s("  opt.junk: \"").s(crate::front::conf::junk_name().to_str().unwrap_or("")).s("\"\n");
        w.s("  opt.stats_print: ").b(crate::front::conf::stats_print()).s("\n");
        w.s("  opt.abort_conf: ").b(crate::front::conf::abort_conf()).s("\n");
        let (od, om) = crate::front::conf::decay_ms();
        let (ad, am) = crate::pages::decay::arena_defaults();
        w.s("  opt.background_thread: ").b(crate::front::background::opt_enabled());
        w.s(" (background_thread: ").b(crate::front::background::enabled()).s(")\n");
        w.s("  opt.max_background_threads: ").n(crate::front::background::opt_max_threads() as u64);
        w.s(" (max_background_threads: ").n(crate::front::background::max_threads() as u64).s(")\n");
        w.s("  opt.dirty_decay_ms: ").i(od).s(" (arenas.dirty_decay_ms: ").i(ad).s(")\n");
        w.s("  opt.muzzy_decay_ms: ").i(om).s(" (arenas.muzzy_decay_ms: ").i(am).s(")\n");
        w.s("Arenas: ").n(arena::narenas().max(arena::all().count()) as u64).s("\n");
        w.s("Quantum size: 16\nPage size: ").n(PAGE as u64).s("\n");
        w.s("Maximum thread-cached size class: ").n(crate::tcache::max() as u64).s("\n");
        w.s("Number of bin size classes: ").n(NBINS as u64).s("\n");
        w.s("Number of thread-cache bin size classes: ").n(tcache::NCB as u64).s("\n");
    }
    let g = stats::global();
    w.s("Allocated: ").n(g.allocated as u64).s(", active: ").n(g.active as u64);
    w.s(", metadata: ").n(g.metadata as u64).s(" (n_thp 0), resident: ").n(g.resident as u64);
    w.s(", mapped: ").n(g.mapped as u64).s(", retained: ").n(g.retained as u64).s("\n");
    let (runs, interval) = crate::front::background::run_stats();
    w.s("Background threads: ").n(crate::front::background::num_threads() as u64);
    w.s(", num_runs: ").n(runs).s(", run_interval: ").n(interval).s(" ns\n");
    if o.merged && arena::all().count() > 1 {
        w.s("Merged arenas stats:\n");
        arena_text(w, o, &stats::merged());
    }
    if o.per_arena {
        for a in arena::all() {
            w.s("arenas[").n(a.id as u64).s("]:\n");
            arena_text(w, o, &stats::arena(a));
        }
    }
    w.s("--- End jemalloc statistics ---\n");
}

fn arena_text(w: &mut Out, o: &Opts, s: &ArenaStats) {
    w.s("assigned threads: ").n(s.nthreads as u64).s("\n");
    w.s("dss allocation precedence: \"disabled\"\n");
    w.s("decaying:  time       npages       sweeps     madvises       purged\n");
    for (name, ms, pages, p) in [("   dirty:", s.dirty_decay_ms, s.pdirty, &s.purged[0]), ("   muzzy:", s.muzzy_decay_ms, s.pmuzzy, &s.purged[1])] {
        w.s(name).icol(ms, 6).col(pages as u64, 13).col(p.npurge, 13).col(p.nmadvise, 13).col(p.purged, 13).s("\n");
    }
    w.s("                            allocated         nmalloc         ndalloc\n");
    w.s("small:                ").col(s.small_allocated as u64, 14).col(s.small_nmalloc, 16).col(s.small_ndalloc, 16).s("\n");
    w.s("large:                ").col(s.large_allocated as u64, 14).s("\n");
    w.s("active:               ").col((s.pactive * PAGE) as u64, 14).s("\n");
    w.s("mapped:               ").col(s.mapped() as u64, 14).s("\n");
    w.s("retained:             ").col((s.pretained * PAGE) as u64, 14).s("\n");
    if !o.bins {
        return;
    }
    w.s("bins:           size ind    allocated      nmalloc      ndalloc  curregs curslabs nonfull_slabs regs pgs   util\n");
    let mut skipped = false;
    for (j, b) in s.bins.iter().enumerate() {
        if b.nmalloc == 0 && b.curslabs == 0 {
            skipped = true;
            continue;
        }
        if skipped {
            w.s("                     ---\n");
            skipped = false;
        }
        let cap = (b.curslabs * nregs(j)) as u64;
        let util = (b.curregs as u64 * 1000).checked_div(cap).unwrap_or(0);
        w.s("              ").col(bin_size(j) as u64, 6).col(j as u64, 4);
        w.col((b.curregs * bin_size(j)) as u64, 13).col(b.nmalloc, 13).col(b.ndalloc, 13);
        w.col(b.curregs as u64, 9).col(b.curslabs as u64, 9).col(b.nonfull_slabs as u64, 14);
        w.col(nregs(j) as u64, 5).col(SLAB_PAGES[j] as u64, 4).s("  ").n(util / 1000).s(".");
        let f = util % 1000;
        w.s(if f < 10 { "00" } else if f < 100 { "0" } else { "" }).n(f);
        w.s("\n");
    }
    if skipped {
        w.s("                     ---\n");
    }
}

fn json(w: &mut Out, o: &Opts) {
    w.s("{\"jemalloc\":{");
    if o.general {
        w.s("\"version\":\"").s(VERSION).s("\",\"config\":{");
        for (i, (k, v)) in config().iter().enumerate() {
            w.s(if i > 0 { ",\"" } else { "\"" }).s(k).s("\":").b(*v);
        }
        w.s("},\"opt\":{\"narenas\":").n(arena::narenas() as u64);
        w.s(",\"tcache\":").b(tcache::enabled());
        w.s(",\"tcache_max\":").n(crate::tcache::max() as u64);
        w.s(",\"abort_conf\":").b(crate::front::conf::abort_conf());
        w.s(",\"background_thread\":").b(crate::front::background::opt_enabled());
        w.s(",\"max_background_threads\":").n(crate::front::background::opt_max_threads() as u64);
        let (od, om) = crate::front::conf::decay_ms();
        w.s(",\"dirty_decay_ms\":").i(od).s(",\"muzzy_decay_ms\":").i(om).s("},");
        w.s("\"arenas\":{\"narenas\":").n(arena::all().count() as u64);
        w.s(",\"quantum\":16,\"page\":").n(PAGE as u64);
        w.s(",\"tcache_max\":").n(crate::tcache::max() as u64);
        w.s(",\"nbins\":").n(NBINS as u64).s(",\"nhbins\":").n(tcache::NCB as u64).s(",\"bin\":[");
        for (j, &pages) in SLAB_PAGES.iter().enumerate().take(NBINS) {
            w.s(if j > 0 { ",{" } else { "{" });
            w.s("\"size\":").n(bin_size(j) as u64).s(",\"nregs\":").n(nregs(j) as u64);
            w.s(",\"slab_size\":").n((pages as usize * PAGE) as u64).s(",\"nshards\":1}");
        }
        w.s("]},");
    }
    let g = stats::global();
    w.s("\"stats\":{\"allocated\":").n(g.allocated as u64).s(",\"active\":").n(g.active as u64);
    w.s(",\"metadata\":").n(g.metadata as u64).s(",\"metadata_thp\":0,\"resident\":").n(g.resident as u64);
    w.s(",\"mapped\":").n(g.mapped as u64).s(",\"retained\":").n(g.retained as u64);
    let (runs, interval) = crate::front::background::run_stats();
    w.s(",\"background_thread\":{\"num_threads\":").n(crate::front::background::num_threads() as u64);
    w.s(",\"num_runs\":").n(runs).s(",\"run_interval\":").n(interval).s("}");
    w.s(",\"arenas\":{");
    let mut first = true;
    if o.merged && arena::all().count() > 1 {
        w.s("\"merged\":");
        arena_json(w, o, &stats::merged());
        first = false;
    }
    if o.per_arena {
        for a in arena::all() {
            w.s(if first { "\"" } else { ",\"" }).n(a.id as u64).s("\":");
            arena_json(w, o, &stats::arena(a));
            first = false;
        }
    }
    w.s("}}}}\n");
}

fn arena_json(w: &mut Out, o: &Opts, s: &ArenaStats) {
    w.s("{\"nthreads\":").n(s.nthreads as u64).s(",\"dss\":\"disabled\"");
    w.s(",\"pactive\":").n(s.pactive as u64).s(",\"pdirty\":").n(s.pdirty as u64);
    w.s(",\"pmuzzy\":").n(s.pmuzzy as u64);
    w.s(",\"dirty_decay_ms\":").i(s.dirty_decay_ms).s(",\"muzzy_decay_ms\":").i(s.muzzy_decay_ms);
    for (name, p) in [("dirty", &s.purged[0]), ("muzzy", &s.purged[1])] {
        w.s(",\"").s(name).s("_npurge\":").n(p.npurge);
        w.s(",\"").s(name).s("_nmadvise\":").n(p.nmadvise);
        w.s(",\"").s(name).s("_purged\":").n(p.purged);
    }
    w.s(",\"mapped\":").n(s.mapped() as u64);
    w.s(",\"retained\":").n((s.pretained * PAGE) as u64);
    w.s(",\"small\":{\"allocated\":").n(s.small_allocated as u64).s(",\"nmalloc\":").n(s.small_nmalloc);
    w.s(",\"ndalloc\":").n(s.small_ndalloc).s("},\"large\":{\"allocated\":").n(s.large_allocated as u64).s("}");
    if o.bins {
        w.s(",\"bins\":[");
        for (j, b) in s.bins.iter().enumerate() {
            w.s(if j > 0 { ",{" } else { "{" });
            w.s("\"nmalloc\":").n(b.nmalloc).s(",\"ndalloc\":").n(b.ndalloc);
            w.s(",\"curregs\":").n(b.curregs as u64).s(",\"curslabs\":").n(b.curslabs as u64);
            w.s(",\"nonfull_slabs\":").n(b.nonfull_slabs as u64).s("}");
        }
        w.s("]");
    }
    w.s("}");
}
