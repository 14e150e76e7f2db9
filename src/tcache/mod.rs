//! Thread caches: per thread, per size class, a bounded stack of free blocks, so that most
//! mallocs and frees take no lock and make no system call (seed §6).
//!
//! Contract:
//! - Classes: every small class, and large sizes up to 64 pages (256 KiB) by exact page
//!   count. Bounds: a small class holds at most `SMALL_BIN_BYTES` worth, at least 20 blocks
//!   (jemalloc's minimum) and at most 1024 — its base capacity, which `gc` grows for batches;
//!   large blocks at most `LARGE_BIN_CAP` per page count and `LARGE_BYTES` in all (`large`).
//!   With more than `FULL_CACHES` live caches all of these (and growth) shrink with the count
//!   (`scale_for`, `base_cap`, `rescale`), so that many threads together hold a bounded amount.
//! - Sparse-slab bypass (in `alloc::free`): a block whose slab is not current and has more
//!   than 1/16 of its regions free never enters the cache's stacks (`bin::is_sparse`), so
//!   caching never keeps sparse slabs alive (reference/performance.md §5: drifting-size
//!   RSS/live 1.17 with the bypass against 1.46 without, in simulation; measured here 1.19
//!   with thread caches, against 1.18 without them). It waits in its class's sparse buffer
//!   (`SPARSE_BUF` blocks, never handed out) and goes back to its slab with the buffer, one
//!   bin lock per batch: when the buffer is full, before a refill of its class, at the end
//!   of each GC round robin, and in every flush of the whole cache (`small::free_sparse`). A random-order teardown, whose
//!   frees go to sparse slabs almost only, took a bin lock and a lock-free pre-check of the
//!   bitmap and the block per free without it: 4 M blocks of 64 B, 224-253 ns per free
//!   against 112-142 with it (alternating runs, `bench/workloads/teardown.c`).
//! - Lifetime: created on a thread's first call (`current`), torn down by a pthread key
//!   destructor at thread exit (flushed, returned to `POOL` for the next thread); afterwards
//!   the thread's slot says `OFF` and calls go straight to the arenas.
//!
//! Layout: this file holds the cache itself, its capacities and its lifetime; `small` the
//! small classes' paths and the double-free cookie, `large` the large blocks' paths, `flush`
//! how blocks go back to their arenas, `gc` the garbage collection and capacity growth.
//!
//! Sync: a `Tcache` is used only by its thread (and by the destructor, in that thread); the
//! pool of free caches is under `POOL` (rank 1).

pub mod cache_bin;
mod flush;
mod gc;
mod large;
mod small;
pub mod tsd;

pub use large::{large_fit_max, large_index, max, set_max, LargeFree, LARGE_REFILL_MAX, MEDIUM_MAX};
pub use small::COOKIE;

use crate::objects::arena::{self, Arena};
use crate::metadata::base::BASE;
use cache_bin::CacheBin;
use crate::metadata::extent::{Extent, State};
use crate::metadata::rtree;
use crate::metadata::size_class::{bin_size, NBINS};
use crate::foundation::sync::{Mutex, Rank};
use crate::foundation::util::{LG_PAGE, PAGE};
use gc::GC_EVENT_BYTES;
use large::{LARGE_BIN_CAP, LARGE_BYTES};

/// Smallest and largest cached large sizes, in pages (the smallest large size is 32 KiB + 1).
pub const LARGE_MIN_PAGES: usize = crate::metadata::size_class::SMALL_MAX / crate::foundation::util::PAGE + 1;
pub const LARGE_MAX_PAGES: usize = 64;
const NLARGE: usize = LARGE_MAX_PAGES - LARGE_MIN_PAGES + 1;
/// Cache bins: small classes, then one per cached large page count.
pub const NCB: usize = NBINS + NLARGE;

const SMALL_BIN_BYTES: usize = 64 << 10;
/// What a small class's capacity may grow to (in bytes; at most 1024 blocks, at least the
/// base capacity), and the most a thread's caches may grow in all beyond their base. With 1
/// and 2 MiB, batches of 1000 blocks of 4 KiB run at 37 ns per malloc+free, with 4 MiB
/// (tcmalloc's per-thread maximum) at 15 (tcmalloc 15); with 16 MiB (and the GC period of
/// grown bins, see `gc`) batches of 8 and 16 KiB fit too: 11.2 / 14.4 ns against 37.5 /
/// 42.6; with 32 MiB so do batches of 1000 blocks of 32 KiB, which with 16 overflow a stack
/// of 512 and give a block back to its slab per free: 10.5 ns against 23.9 (mimalloc 24.8;
/// medians of 7). Growth needs a class that overflows while being refilled (batches that
/// come back), and an idle class drains within a few GC periods, so the memory held is what
/// the thread's next round uses; drifting-cache RSS/live (1.19), larson, thread churn and
/// prodcons peak RSS are the same as without growth.
const GROWN_BIN_BYTES: usize = 32 << 20;
const GROWN_BYTES: usize = 32 << 20;

/// First refill size of a class; each refill doubles it (up to half the capacity), GC halves
/// it for a class that left blocks unused. A short-lived thread that touches 16 classes thus
/// takes 8 blocks of each instead of 128 (thread churn: every filled block is flushed again
/// at exit).
const INITIAL_FILL: u16 = 8;

/// Capacity of each cache bin.
const CAP: [u16; NCB] = {
    let mut t = [0u16; NCB];
    let mut i = 0;
    while i < NCB {
        t[i] = if i < NBINS {
            let c = SMALL_BIN_BYTES / crate::metadata::size_class::bin_size_compute(i);
            if c < 20 {
                20
            } else if c > 1024 {
                1024
            } else {
                c as u16
            }
        } else {
            LARGE_BIN_CAP as u16
        };
        i += 1;
    }
    t
};

/// Largest capacity of each cache bin (its reserved slots).
const CAP_MAX: [u16; NCB] = {
    let mut t = CAP;
    let mut i = 0;
    while i < NBINS {
        let c = GROWN_BIN_BYTES / crate::metadata::size_class::bin_size_compute(i);
        if c > t[i] as usize {
            t[i] = if c > 1024 { 1024 } else { c as u16 };
        }
        i += 1;
    }
    t
};

/// Live caches up to which every cache has the full capacities. Beyond it each doubling of
/// the live caches halves the capacities and byte budgets of new caches and, at their next
/// refill or GC round, of the others, down to `MAX_SCALE` halvings: the memory all caches
/// hold together stays bounded where a fixed per-thread size would grow with the thread
/// count (1000 threads that each cycled 64 blocks of 15 sizes: 605 MiB with fixed caches).
const FULL_CACHES: usize = 8;
const MAX_SCALE: u32 = 5;
/// The fewest blocks a bin keeps room for at any scale.
const MIN_CAP: u16 = 2;

/// Caches in use by threads (created and not yet released). Sync: relaxed atomic; the
/// capacities follow it loosely (`rescale`).
static LIVE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Halvings of the capacities for `live` caches: the fewest `s` with `live ≤ FULL_CACHES << s`,
/// at most `MAX_SCALE`.
fn scale_for(live: usize) -> u32 {
    let mut s = 0;
    while s < MAX_SCALE && live > FULL_CACHES << s {
        s += 1;
    }
    s
}

/// The scale a cache at scale `cur` moves to with `live` live caches (`Tcache::rescale`),
/// None to stay: up at once, down only when even twice as many caches would be a smaller
/// scale, so that a count going up and down across a power of two does not flush the cache
/// every time.
fn new_scale(live: usize, cur: u32) -> Option<u32> {
    let s = scale_for(live);
    (s > cur || scale_for(live.saturating_mul(2)) < cur).then_some(s)
}

/// Base capacity of bin `i` at scale `s`: `CAP[i]` for `s` = 0; the small classes' byte
/// size and minimum, and the large bins' count, halved `s` times, at least `MIN_CAP`.
fn base_cap(i: usize, s: u32) -> u16 {
    if s == 0 {
        return CAP[i];
    }
    let c = if i < NBINS {
        let by_bytes = (SMALL_BIN_BYTES >> s) / crate::metadata::size_class::bin_size_compute(i);
        by_bytes.max(20 >> s).min(1024)
    } else {
        LARGE_BIN_CAP >> s
    };
    (c as u16).max(MIN_CAP).min(CAP[i])
}

const TOTAL_SLOTS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < NCB {
        n += crate::tcache::cache_bin::slots_for(CAP_MAX[i]);
        i += 1;
    }
    n
};

const _: () = assert!(size_of::<CacheBin>() == crate::metadata::size_class::BIN_STRIDE);

#[repr(C)]
pub struct Tcache {
    /// Hot: the stacks.
    pub bins: [CacheBin; NCB],
    /// Bytes allocated by this thread (thread.allocated; `thread.allocatedp` points here).
    pub allocated: u64,
    /// `allocated` at which the next GC visit runs.
    gc_at: u64,
    /// Bytes taken back by this thread (thread.deallocated).
    pub deallocated: u64,
    gc_cursor: usize,
    /// Bytes held in large cache bins.
    large_bytes: usize,
    /// The most `large_bytes` may reach: `LARGE_BYTES` scaled to the live caches (`scale`).
    large_budget: usize,
    /// Cache bins of the last and the one-before-last large miss (`large_miss`; NCB: none).
    last_large_miss: usize,
    prev_large_miss: usize,
    /// Large cache bin whose free last made the cache give blocks back (bin full or budget
    /// spent; NCB: none yet), for `large_miss`.
    large_gave_back: usize,
    /// Σ (cap − base capacity) · size over the small bins (≤ grown_budget).
    grown_bytes: usize,
    /// The most `grown_bytes` may reach: `GROWN_BYTES` scaled to the live caches.
    grown_budget: usize,
    /// Base capacity of each bin at this cache's scale (`base_cap`).
    base: [u16; NCB],
    /// The scale of the capacities (`scale_for`), and the live-cache count above which it
    /// is out of date (`rescale`).
    scale: u32,
    live_limit: usize,
    /// Blocks each bin held after its last GC visit (idle detection).
    visit_ncached: [u16; NCB],
    /// `allocated` at each bin's last GC visit (the period of grown small bins).
    visit_at: [u64; NCB],
    /// The arena this thread allocates from.
    pub arena: &'static Arena,
    /// Link in `POOL` while unused.
    next: *mut Tcache,
    /// While pooled: when it was released (`decay::now_ns`), and whether its slot pages may
    /// still be resident (`purge_pool` gives them back). Sync: the pool's lock.
    pooled_at: u64,
    slots_dirty: bool,
    /// Bit `i` set while class `i`'s sparse buffer holds blocks (`small::free_sparse`).
    sparse_pending: u64,
    /// Blocks in all sparse buffers together (< `SPARSE_BUF`: a thread that tears a structure
    /// down and then sleeps keeps at most that many blocks, and the sparse slabs they pin).
    /// A u32, so that the compiler loads it with the width it stores it with: it widened a u16's
    /// load to 32 bits, which covered `sparse_n`'s first bytes too, and a load that no single
    /// earlier store covers waits until those stores reach the cache, behind every older
    /// store, among them the cookie stores to cold blocks of the frees before it: one miss's
    /// latency per free (a random-order teardown of 16 B blocks: 88 % of `free_sparse`'s samples
    /// on that load, 74 ns per free).
    sparse_total: u32,
    /// Blocks in each small class's sparse buffer.
    sparse_n: [u8; NBINS],
    /// Per small class, blocks freed into sparse slabs, waiting to go back to their slabs in
    /// one locked batch (`small::free_sparse`); never handed out by malloc.
    sparse: [[usize; SPARSE_BUF]; NBINS],
    slots: [usize; TOTAL_SLOTS],
}

/// Blocks the sparse buffers hold, all classes together, before they go back to the slabs
/// under one bin lock per class (`small::free_sparse`). The lock's atomic waits for the cookie
/// stores into the buffered (in a teardown, cold) blocks: a teardown of 4 M blocks of 64 B
/// takes 59.4 ns per free with 64, 62.9 with 32, 58.7 with 128 (medians of 5 alternating runs;
/// 128 would pin twice the slabs).
pub const SPARSE_BUF: usize = 64;
const _: () = assert!(NBINS <= 64 && SPARSE_BUF < 256);

struct Pool {
    head: *mut Tcache,
}
// SAFETY: the pointers refer to caches no thread uses; access is under the mutex.
unsafe impl Send for Pool {}

/// Caches of exited threads, reused by new threads (thread churn maps nothing new).
static POOL: Mutex<Pool> = Mutex::ranked(Rank::Tcaches, Pool { head: core::ptr::null_mut() });

/// Whether threads get caches (option `tcache`). Sync: set once by init.
static ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

pub fn set_enabled(on: bool) {
    ENABLED.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Option `tcache`.
pub fn enabled() -> bool {
    ENABLED.load(core::sync::atomic::Ordering::Relaxed)
}

/// `thread.tcache.enabled` writes: off flushes and recycles this thread's cache (later calls
/// go straight to the arenas; a thread that has no cache yet gets none); on lets the next
/// call create one again.
pub fn set_thread_enabled(on: bool) {
    let t = tsd::get();
    if !on && t == tsd::NONE {
        tsd::set(tsd::OFF);
    } else if !on && t > tsd::LAST_SENTINEL {
        let tc = t as *mut Tcache;
        tsd::set(tsd::OFF);
        tsd::register_exit(core::ptr::null_mut());
        // SAFETY: this thread's live cache, now unreachable from its slot.
        unsafe {
            (*tc).flush_all();
            arena::unbind((*tc).arena);
            release(tc);
        }
    } else if on && t == tsd::OFF {
        tsd::set(tsd::NONE);
    }
}

/// The calling thread's cache, creating it on the first call; None while it is being set up,
/// after the thread's teardown, or when caching is off. The allocator must be initialized.
#[inline]
pub fn current() -> Option<&'static mut Tcache> {
    match tsd::get() {
        t if t > tsd::LAST_SENTINEL => {
            // SAFETY: a non-sentinel slot value is this thread's live cache.
            Some(unsafe { &mut *(t as *mut Tcache) })
        }
        tsd::NONE => create(),
        _ => None,
    }
}

#[cold]
#[inline(never)]
fn create() -> Option<&'static mut Tcache> {
    if !ENABLED.load(core::sync::atomic::Ordering::Relaxed) {
        tsd::set(tsd::OFF);
        return None;
    }
    tsd::set(tsd::BUSY);
    let tc = {
        let mut pool = POOL.lock();
        let t = pool.head;
        if !t.is_null() {
            // SAFETY: pooled caches are owned by the pool; we hold its lock.
            pool.head = unsafe { (*t).next };
        }
        t
    };
    let tc = if tc.is_null() {
        BASE.alloc(core::mem::size_of::<Tcache>(), 64) as *mut Tcache
    } else {
        tc
    };
    if tc.is_null() {
        tsd::set(tsd::NONE); // try again on a later call
        return None;
    }
    // SAFETY: `tc` is ours alone (fresh zeroed metadata, or unlinked from the pool with every
    // bin empty); raw writes because `arena` may not hold a valid reference yet.
    unsafe {
        let live = LIVE.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1;
        init_in_place(tc, arena::bind(), scale_for(live));
        if !tsd::register_exit(tc as *mut libc::c_void) {
            // No destructor: the cache would leak at exit; serve this thread without one.
            arena::unbind((*tc).arena);
            release(tc);
            tsd::set(tsd::OFF);
            return None;
        }
        tsd::set(tc as usize);
        Some(&mut *tc)
    }
}

/// Size of the blocks of cache bin `i` (< NCB).
fn bin_bytes(i: usize) -> usize {
    if i < NBINS {
        bin_size(i)
    } else {
        (i - NBINS + LARGE_MIN_PAGES) << LG_PAGE
    }
}

/// # Safety
/// `tc` points to memory for a `Tcache` that nobody else uses.
unsafe fn init_in_place(tc: *mut Tcache, arena: &'static Arena, scale: u32) {
    let slots = core::ptr::addr_of_mut!((*tc).slots) as *mut usize;
    let mut at = 0;
    let mut base = [0u16; NCB];
    for (i, b) in base.iter_mut().enumerate() {
        *b = base_cap(i, scale);
    }
    for (i, &cap) in base.iter().enumerate() {
        let size = bin_bytes(i);
        let magic = if i < NBINS { crate::metadata::size_class::div_magic(i) } else { 0 };
        let nfill = if i < NBINS { INITIAL_FILL.min((cap / 2).max(1)) } else { 1 };
        // SAFETY: slots[at .. at + slots_for(cap_max)] belong to bin i alone (TOTAL_SLOTS
        // counts them), inside this cache.
        let cb = CacheBin::new(slots.add(at), cap, CAP_MAX[i], nfill, size as u32, magic);
        core::ptr::addr_of_mut!((*tc).bins[i]).write(cb);
        at += crate::tcache::cache_bin::slots_for(CAP_MAX[i]);
    }
    core::ptr::addr_of_mut!((*tc).grown_bytes).write(0);
    core::ptr::addr_of_mut!((*tc).base).write(base);
    core::ptr::addr_of_mut!((*tc).scale).write(scale);
    core::ptr::addr_of_mut!((*tc).live_limit).write(if scale == MAX_SCALE { usize::MAX } else { FULL_CACHES << scale });
    core::ptr::addr_of_mut!((*tc).large_budget).write(LARGE_BYTES >> scale);
    core::ptr::addr_of_mut!((*tc).grown_budget).write(GROWN_BYTES >> scale);
    core::ptr::addr_of_mut!((*tc).visit_ncached).write([0; NCB]);
    core::ptr::addr_of_mut!((*tc).visit_at).write([0; NCB]);
    core::ptr::addr_of_mut!((*tc).allocated).write(0);
    core::ptr::addr_of_mut!((*tc).gc_at).write(GC_EVENT_BYTES);
    core::ptr::addr_of_mut!((*tc).deallocated).write(0);
    core::ptr::addr_of_mut!((*tc).gc_cursor).write(0);
    core::ptr::addr_of_mut!((*tc).large_bytes).write(0);
    core::ptr::addr_of_mut!((*tc).last_large_miss).write(NCB);
    core::ptr::addr_of_mut!((*tc).large_gave_back).write(NCB);
    core::ptr::addr_of_mut!((*tc).prev_large_miss).write(NCB);
    core::ptr::addr_of_mut!((*tc).arena).write(arena);
    core::ptr::addr_of_mut!((*tc).next).write(core::ptr::null_mut());
    core::ptr::addr_of_mut!((*tc).sparse_pending).write(0);
    core::ptr::addr_of_mut!((*tc).sparse_total).write(0);
    core::ptr::addr_of_mut!((*tc).sparse_n).write([0; NBINS]);
}

/// Returns an emptied cache to the pool.
///
/// # Safety
/// `tc` is empty and no thread uses it any more.
unsafe fn release(tc: *mut Tcache) {
    LIVE.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    let now = crate::pages::decay::now_ns();
    let mut pool = POOL.lock();
    (*tc).next = pool.head;
    (*tc).pooled_at = now;
    (*tc).slots_dirty = true;
    pool.head = tc;
}

/// Gives back the slot pages of pooled caches that have sat unused for `age` ns or more at
/// `now` (the background thread, on the decay clock): a cache's stacks span up to a few
/// hundred KiB, and the pages its thread touched stay resident until then. madvise runs with
/// the pool's lock released, on a cache taken out of the pool meanwhile.
pub fn purge_pool(now: u64, age: u64) {
    loop {
        let tc = {
            let mut pool = POOL.lock();
            let mut link: *mut *mut Tcache = &mut pool.head;
            let mut found = core::ptr::null_mut();
            // SAFETY: pooled caches are owned by the pool and linked through `next`; we hold
            // its lock.
            unsafe {
                while !(*link).is_null() {
                    let t = *link;
                    if (*t).slots_dirty && now.saturating_sub((*t).pooled_at) >= age {
                        *link = (*t).next;
                        found = t;
                        break;
                    }
                    link = &mut (*t).next;
                }
            }
            found
        };
        if tc.is_null() {
            return;
        }
        // SAFETY: `tc` is out of the pool and used by no thread: its slots are ours. Every
        // stack is empty, and an untouched (or purged) slot reads 0, which is what a bin's
        // sentinel must hold (`CacheBin::new`).
        unsafe {
            let start = core::ptr::addr_of!((*tc).slots) as usize;
            let end = start + core::mem::size_of::<[usize; TOTAL_SLOTS]>();
            let (a, b) = (crate::foundation::util::align_up(start, PAGE), crate::foundation::util::align_down(end, PAGE));
            if b > a {
                crate::foundation::sys::purge_forced(a, b - a);
            }
            (*tc).slots_dirty = false;
            let mut pool = POOL.lock();
            (*tc).next = pool.head;
            pool.head = tc;
        }
    }
}

/// When `purge_pool` next has a cache to purge (u64::MAX: none).
pub fn pool_deadline(age: u64) -> u64 {
    let pool = POOL.lock();
    let mut t = pool.head;
    let mut at = u64::MAX;
    // SAFETY: as in `purge_pool`.
    unsafe {
        while !t.is_null() {
            if (*t).slots_dirty {
                at = at.min((*t).pooled_at.saturating_add(age));
            }
            t = (*t).next;
        }
    }
    at
}

/// The pthread key destructor: flush, unbind, recycle; later calls of this thread go
/// straight to the arenas.
///
/// # Safety
/// Called by pthreads at thread exit with the value registered for this thread (its cache,
/// or anything else, which is ignored unless it is the thread's cache).
pub unsafe extern "C" fn thread_exit(v: *mut libc::c_void) {
    let tc = v as *mut Tcache;
    if tc.is_null() || tsd::get() != tc as usize {
        return;
    }
    tsd::set(tsd::OFF);
    (*tc).flush_all();
    arena::unbind((*tc).arena);
    release(tc);
    // A purge thread asleep with nothing to decay would not come back for the cache's slots.
    let slot = &crate::pages::decay::purgers::SLOTS[0];
    if crate::pages::decay::purgers::running() > 0 && slot.sleep_until.load(core::sync::atomic::Ordering::SeqCst) == u64::MAX {
        crate::pages::decay::purgers::wake(slot);
    }
}

impl Tcache {
    /// Moves this thread to arena `to` (`thread.arena`): cached blocks go home first.
    pub fn rebind(&mut self, to: &'static Arena) {
        if to.id != self.arena.id {
            self.flush_all();
            arena::rebind(self.arena, to);
            self.arena = to;
        }
    }

    /// Whether the live caches outgrew this cache's scale (a refill asks: one compare).
    #[inline(always)]
    pub(super) fn outgrown(&self) -> bool {
        LIVE.load(core::sync::atomic::Ordering::Relaxed) > self.live_limit
    }

    /// Brings the capacities and budgets to the scale of the live caches now (`new_scale`):
    /// everything cached goes back first, then every bin starts at its new base capacity.
    #[cold]
    #[inline(never)]
    pub(super) fn rescale(&mut self) {
        let Some(s) = new_scale(LIVE.load(core::sync::atomic::Ordering::Relaxed), self.scale) else {
            return;
        };
        self.flush_all();
        for i in 0..NCB {
            let cap = base_cap(i, s);
            self.base[i] = cap;
            let cb = &mut self.bins[i];
            cb.set_cap(cap);
            cb.nfill = cb.nfill.min((cap / 2).max(1));
        }
        self.grown_bytes = 0;
        self.scale = s;
        self.live_limit = if s == MAX_SCALE { usize::MAX } else { FULL_CACHES << s };
        self.large_budget = LARGE_BYTES >> s;
        self.grown_budget = GROWN_BYTES >> s;
    }

    /// Checks every bin (tests).
    pub fn validate(&self) {
        let (mut large, mut grown) = (0, 0);
        for (i, cb) in self.bins.iter().enumerate() {
            cb.validate();
            assert!(cb.cap() >= self.base[i] && self.base[i] == base_cap(i, self.scale) && cb.cap_max == CAP_MAX[i]);
            grown += (cb.cap() - self.base[i]) as usize * cb.size as usize;
            if i >= NBINS {
                large += cb.ncached() as usize * cb.size as usize;
                for &d in cb.cached() {
                    // SAFETY: large bins hold descriptors (never freed).
                    let e = unsafe { &*(d as *const Extent) };
                    assert_eq!(rtree::lookup(e.addr), d as *mut Extent, "cached large block {:#x}", e.addr);
                    assert_eq!((e.state(), e.size, e.is_slab), (State::Cached, cb.size as usize, false));
                }
            } else {
                for &p in cb.cached() {
                    // SAFETY: cached small blocks are live blocks of ≥ 8 bytes this cache owns.
                    assert_eq!(unsafe { *(p as *const usize) }, COOKIE, "cached block {p:#x}");
                }
            }
        }
        assert!((self.sparse_total as usize) < SPARSE_BUF);
        assert_eq!(self.sparse_total as usize, self.sparse_n.iter().map(|&n| n as usize).sum::<usize>());
        for (i, &n) in self.sparse_n.iter().enumerate() {
            assert!((n as usize) < SPARSE_BUF && (self.sparse_pending >> i & 1 != 0) == (n != 0));
            for &p in &self.sparse[i][..n as usize] {
                // SAFETY: as for cached small blocks.
                assert_eq!(unsafe { *(p as *const usize) }, COOKIE, "sparse-buffered block {p:#x}");
            }
        }
        assert_eq!(large, self.large_bytes);
        assert!(large <= self.large_budget && self.large_budget == LARGE_BYTES >> self.scale);
        assert!(grown == self.grown_bytes && grown <= self.grown_budget && self.grown_budget == GROWN_BYTES >> self.scale);
    }
}

/// Whether cache `tc` sits in the pool of exited threads' caches, and if so whether every bin
/// is empty (tests: a new thread may take the cache from the pool at any moment; the lock
/// keeps it there while it is checked).
#[cfg(test)]
pub(crate) fn pooled_and_empty(tc: *const Tcache) -> Option<bool> {
    let pool = POOL.lock();
    let mut t = pool.head;
    while !t.is_null() {
        if core::ptr::eq(t, tc) {
            // SAFETY: a pooled cache, which no thread uses while we hold the pool's lock.
            return Some(unsafe { (*t).bins.iter().all(|b| b.ncached() == 0) });
        }
        // SAFETY: pooled caches link through `next` under the lock.
        t = unsafe { (*t).next };
    }
    None
}

pub fn prefork() {
    POOL.raw_lock();
}

pub fn postfork_parent() {
    // SAFETY: taken in `prefork` by this thread.
    unsafe { POOL.force_unlock() };
}

pub fn postfork_child() {
    // SAFETY: fork child, single thread, taken in `prefork`.
    unsafe { POOL.reset_after_fork() };
    // The other threads' caches are gone with them (their blocks stay allocated, as in
    // jemalloc); this thread keeps its cache and its arena binding.
    let mine = (tsd::get() > tsd::LAST_SENTINEL) as usize;
    LIVE.store(mine, core::sync::atomic::Ordering::Relaxed);
    if tsd::get() > tsd::LAST_SENTINEL {
        // SAFETY: this thread's live cache.
        let tc = unsafe { &*(tsd::get() as *const Tcache) };
        arena::rebind_after_fork(tc.arena);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_shrink_with_the_live_caches_and_come_back() {
        use std::sync::{Arc, Barrier};
        let _x = crate::front::alloc::tests::ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let n = 64;
        let (parked, go) = (Arc::new(Barrier::new(n + 1)), Arc::new(Barrier::new(n + 1)));
        let hs: std::vec::Vec<_> = (0..n)
            .map(|_| {
                let (parked, go) = (parked.clone(), go.clone());
                std::thread::spawn(move || {
                    crate::front::alloc::free(crate::front::alloc::malloc(16), "free");
                    parked.wait();
                    go.wait();
                })
            })
            .collect();
        parked.wait();
        // 64 caches and more live: a new cache starts at scale 3 or more (64 > 8 << 2).
        std::thread::spawn(|| {
            crate::front::alloc::free(crate::front::alloc::malloc(16), "free");
            let tc = current().unwrap();
            assert!(tc.scale >= 3, "scale {} with 64 live caches", tc.scale);
            let bin = crate::metadata::size_class::size2bin(256);
            assert_eq!(tc.bins[bin].cap(), base_cap(bin, tc.scale));
            assert!(tc.bins[bin].cap() <= CAP[bin] / 8);
            assert_eq!(tc.large_budget, LARGE_BYTES >> tc.scale);
            tc.validate();
        })
        .join()
        .unwrap();
        go.wait();
        for h in hs {
            h.join().unwrap();
        }
        // They exited: a new cache is back at (or near: the harness's own threads) full size.
        std::thread::spawn(|| {
            crate::front::alloc::free(crate::front::alloc::malloc(16), "free");
            let tc = current().unwrap();
            assert!(tc.scale <= 1, "scale {} after the threads exited", tc.scale);
            tc.validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn caps_and_layout() {
        assert_eq!(CAP[0], 1024); // 8 B
        assert_eq!(CAP[crate::metadata::size_class::size2bin(1024)], 64);
        assert_eq!(CAP[NBINS - 1], 20); // 32 KiB
        assert_eq!(CAP_MAX[crate::metadata::size_class::size2bin(1024)], 1024);
        assert_eq!(CAP_MAX[crate::metadata::size_class::size2bin(4096)], 1024);
        assert_eq!(CAP_MAX[NBINS - 1], 1024);
        assert_eq!(CAP_MAX[NBINS], CAP[NBINS]); // large bins do not grow
        assert_eq!(large_index(9), Some(NBINS));
        assert_eq!(large_index(64), Some(NCB - 1));
        assert_eq!(large_index(65), None);
        assert_eq!(large_index(8), None);
        assert_eq!((scale_for(1), scale_for(8), scale_for(9), scale_for(100), scale_for(1000)), (0, 0, 1, 4, 5));
        assert_eq!((new_scale(9, 0), new_scale(8, 1), new_scale(5, 1), new_scale(4, 1)), (Some(1), None, None, Some(0)));
        assert_eq!((new_scale(1000, 2), new_scale(100, 5), new_scale(60, 5), new_scale(10, 1)), (Some(5), None, Some(3), None));
        for (i, &cap) in CAP.iter().enumerate() {
            assert_eq!(base_cap(i, 0), cap);
            for s in 1..=MAX_SCALE {
                assert!(base_cap(i, s) <= base_cap(i, s - 1) && base_cap(i, s) >= MIN_CAP.min(cap));
            }
        }
    }
}
