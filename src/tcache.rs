//! Thread caches: per thread, per size class, a bounded stack of free blocks, so that most
//! mallocs and frees take no lock and make no system call (seed §6).
//!
//! Contract:
//! - Classes: every small class, and large sizes up to 64 pages (256 KiB) by exact page
//!   count. Bounds: a small class holds at most `SMALL_BIN_BYTES` worth, at least 20 blocks
//!   (jemalloc's minimum) and at most 1024 — its base capacity; large blocks at most
//!   `LARGE_BIN_CAP` per page count and `LARGE_BYTES` in all. malloc finds the bin of a
//!   size up to 4 KiB in `size_class::LOOKUP`, of a bigger one up to 256 KiB in `MEDIUM_BIN`
//!   (pairs of 16 / 64 / 256 KiB 11.57 / 14.30 / 14.53 → 10.94 / 12.95 / 11.66 ns against a
//!   class lookup or a page count and range check). A large request that misses its exact
//!   bin takes a cached block up to 1/8 bigger; a large free over the budget first sheds the
//!   older half of every large bin in one batch.
//! - Growth: a small class whose stack overflows twice between two GC visits while it is also
//!   being refilled (the thread frees and reallocates batches bigger than the stack) doubles
//!   its capacity, up to `GROWN_BIN_BYTES` worth (≤ 1024 blocks), all classes of a thread
//!   together at most `GROWN_BYTES` (16 MiB) beyond their base. GC halves a grown capacity again when
//!   the class sat idle or left a quarter of it unused for a whole GC period. Batches of 1000
//!   blocks of 256 B / 1 KiB / 4 KiB: 37 / 50 / 52 → 12-16 / 18 / 47 ns per malloc+free;
//!   RSS/live of the drifting cache 1.181 → 1.186, other peak RSS unchanged.
//! - A grown class's GC period is at least what it holds: GC skips a grown bin until the
//!   thread allocated `cap × size` bytes since its last visit. A round robin over all bins
//!   comes every ~6 MiB allocated; a 1000-block batch of 8 or 16 KiB blocks (8-16 MiB per
//!   round) met several visits per round, each of which gave back 3/4 of what the draining
//!   stack had left (its low-water mark) just before the round used it. With that and 16
//!   MiB of growth (was 4): batches of 8 / 16 KiB 37.5 / 42.6 → 11.2 / 14.4 ns (tcmalloc 11 /
//!   15), their peak RSS and the drifting cache's RSS/live unchanged (1.189 / 1.188); letting
//!   grown bins skip the low-water give-back without a period instead raised RSS/live to
//!   1.201 (drifting-size bins grow too).
//! - Refill: a small miss takes `nfill` blocks from the arena bin under one lock (fullest
//!   slabs first). A large miss takes one block, or up to 4 under one page-allocator lock
//!   when the thread's last three large misses and its last large free that had to give
//!   blocks back were all of this size (`large_miss`): batches of 64 / 256 KiB 83.1 / 107.9
//!   → 72.9 / 96.9 ns; larson, realloc and their peak RSS unchanged. A full stack gives
//!   back its older half; blocks go home grouped by arena,
//!   one bin lock (or page-allocator lock) per group, which is also how frees of blocks from
//!   other threads' arenas travel back (batched, never one lock per block).
//! - Sparse-slab bypass (in `alloc::free`): a block whose slab is not current and has more
//!   than 1/16 of its regions free goes straight back to its slab (`bin::is_sparse`), so
//!   caching never keeps sparse slabs alive (reference/performance.md §5: drifting-size RSS
//!   1.46 → 1.17 in simulation; measured here 1.19 with, versus 1.18 without thread caches).
//! - GC: every `GC_BYTES` allocated (a large block counting at most `GC_LARGE_WEIGHT`), one
//!   class (round robin) is visited: blocks that stayed below the low-water mark since the
//!   previous visit (3/4 of them) go back, and the refill size halves; every refill doubles
//!   it (8 blocks first). Idle classes drain.
//! - Double free, without reading the block on the free path (in a large working set that
//!   read is a cache miss per free): a free checks the slab bitmap (metadata) and the top of
//!   the class's stack (the immediate `free(p); free(p)`), then writes `COOKIE` into the
//!   block's first word and pushes it; a refill writes it into every block it caches. A block
//!   leaving the cache, to a malloc or in a flush back to its arena, must carry the cookie
//!   and loses it (`take_cookies`): a block freed twice is cached twice, and the second copy
//!   to leave finds its cookie gone and is reported (`malloc(): double free or write after
//!   free`) before it is ever handed out twice; two copies flushed together are caught by the
//!   slab bitmap. (Until a flush took the cookie off, a copy flushed while the other stayed
//!   cached left the block both handed out and free in its slab: `ctests/misuse/
//!   double_free_split_by_flush.c`. The check costs flushes a read of each block: batches of
//!   16 KiB, which flush nearly every block, 32.9 → 40.1 ns; the drifting cache's misses
//!   +1 %, cachegrind.) Slow paths (realloc, frees) also scan the stack when they see a
//!   cookie. One constant for every block (not one per address) and no mark in the stack
//!   entries keep the check to one compare with an immediate: pairs of 16 B 121 → 110
//!   instructions (callgrind).
//! - Large blocks carry no cookie: a large bin holds the blocks' extent descriptors, marked
//!   `State::Cached` while cached, so a second free of a cached large block is reported at
//!   once by the free path, which reads the descriptor anyway, and no large free, pop or
//!   flush touches the block itself (batches of 64 / 256 KiB 91.8 / 139.9 → 84.1 / 128.8
//!   ns, pairs of 64 KiB 13.1 → 11.6, A/B medians of 9).
//! - Lifetime: created on a thread's first call (`current`), torn down by a pthread key
//!   destructor at thread exit (flushed, returned to `POOL` for the next thread); afterwards
//!   the thread's slot says `OFF` and calls go straight to the arenas.
//!
//! Sync: a `Tcache` is used only by its thread (and by the destructor, in that thread); the
//! pool of free caches is under `POOL` (rank 1).

use crate::arena::{self, Arena};
use crate::base::BASE;
use crate::cache_bin::CacheBin;
use crate::extent::{Extent, State};
use crate::rtree;
use crate::size_class::{bin_size, NBINS};
use crate::sync::{Mutex, Rank};
use crate::tsd;
use crate::util::LG_PAGE;

/// Smallest and largest cached large sizes, in pages (the smallest large size is 32 KiB + 1).
pub const LARGE_MIN_PAGES: usize = crate::size_class::SMALL_MAX / crate::util::PAGE + 1;
pub const LARGE_MAX_PAGES: usize = 64;
const NLARGE: usize = LARGE_MAX_PAGES - LARGE_MIN_PAGES + 1;
/// Cache bins: small classes, then one per cached large page count.
pub const NCB: usize = NBINS + NLARGE;

const SMALL_BIN_BYTES: usize = 64 << 10;
/// What a small class's capacity may grow to (in bytes; at most 1024 blocks, at least the
/// base capacity), and the most a thread's caches may grow in all beyond their base. With 1
/// and 2 MiB, batches of 1000 blocks of 4 KiB ran at 37 ns per malloc+free, with 4 MiB
/// (tcmalloc's per-thread maximum) at 15 (tcmalloc 15); with 16 MiB (and the GC period of
/// grown bins, module header) batches of 8 and 16 KiB fit too: 37.5 / 42.6 → 11.2 / 14.4 ns.
/// Growth needs a class that overflows while being refilled (batches that come back), and an
/// idle class drains within a few GC periods, so the memory held is what the thread's next
/// round uses; drifting-cache and larson RSS unchanged.
const GROWN_BIN_BYTES: usize = 16 << 20;
const GROWN_BYTES: usize = 16 << 20;
const LARGE_BIN_CAP: usize = 8;
/// Most blocks one large refill takes for the cache besides the one it returns (`large_miss`:
/// a large bin refills at most half its capacity).
pub const LARGE_REFILL_MAX: usize = LARGE_BIN_CAP / 2;
/// A large request may take a cached block up to 1/LARGE_FIT_SLACK bigger (`alloc_large`).
const LARGE_FIT_SLACK: usize = 8;
/// Bytes of large blocks a thread may cache. With exact-size hits only, 2 MiB held 2.5 MiB
/// more RSS on larson than 512 KiB for no measured speed (its random large sizes rarely hit);
/// with hits up to 1/8 bigger and over-budget frees shedding half of every large bin in one
/// batch (`shed_large`), 2 MiB makes larson 14 % faster (1 and 2 threads: 32.6 / 16.8 →
/// 27.9 / 14.1 ns per replacement) at +0.1 / +0.5 MiB peak RSS; 4 MiB or a 1/4 slack gained
/// less than they cost (+1 to +2 MiB).
const LARGE_BYTES: usize = 2 << 20;
/// First refill size of a class; each refill doubles it (up to half the capacity), GC halves
/// it for a class that left blocks unused. A short-lived thread that touches 16 classes thus
/// takes 8 blocks of each instead of 128 (thread churn: every filled block is flushed again
/// at exit).
const INITIAL_FILL: u16 = 8;
/// Allocated bytes between two GC visits.
const GC_BYTES: u64 = 64 << 10;
/// The most one large allocation counts toward `GC_BYTES`.
const GC_LARGE_WEIGHT: usize = 16 << 10;

/// Capacity of each cache bin.
const CAP: [u16; NCB] = {
    let mut t = [0u16; NCB];
    let mut i = 0;
    while i < NCB {
        t[i] = if i < NBINS {
            let c = SMALL_BIN_BYTES / crate::size_class::bin_size_compute(i);
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
        let c = GROWN_BIN_BYTES / crate::size_class::bin_size_compute(i);
        if c > t[i] as usize {
            t[i] = if c > 1024 { 1024 } else { c as u16 };
        }
        i += 1;
    }
    t
};

const TOTAL_SLOTS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < NCB {
        n += crate::cache_bin::slots_for(CAP_MAX[i]);
        i += 1;
    }
    n
};

/// Marks a cached block: the first word of every block in a cache holds it (see the module
/// header). A constant that fits a sign-extended 32-bit immediate, so writing and checking it
/// are one instruction each.
const _: () = assert!(size_of::<CacheBin>() == crate::size_class::BIN_STRIDE);

pub const COOKIE: usize = 0x6f78_6d61;

/// The largest block a large request of `bytes` (a page multiple) may get from the cache
/// (`Tcache::alloc_large`); `bytes` itself for sizes the cache does not serve.
pub fn large_fit_max(bytes: usize) -> usize {
    let pages = bytes >> LG_PAGE;
    match large_index(pages) {
        Some(_) if bytes & crate::util::PAGE_MASK == 0 => {
            (pages + pages / LARGE_FIT_SLACK).min(LARGE_MAX_PAGES) << LG_PAGE
        }
        _ => bytes,
    }
}

/// Largest size `Tcache::pop_medium` serves.
pub const MEDIUM_MAX: usize = LARGE_MAX_PAGES << LG_PAGE;
const LG_MEDIUM_STEP: u32 = 10;

/// Byte offset in `bins` of the cache bin for sizes above `LOOKUP_MAX`, indexed by
/// ⌈size / 1 KiB⌉ up to `MEDIUM_MAX`: the class's bin for small sizes (classes above 4 KiB
/// are multiples of 1 KiB), the bin of the page count for large ones (1 KiB granules never
/// straddle a page). Bins of page counts above `opt.tcache_max` stay empty, so their pops
/// miss. One table load instead of a class lookup or a page count and range check.
static MEDIUM_BIN: [u16; (MEDIUM_MAX >> LG_MEDIUM_STEP) + 1] = {
    let mut t = [0u16; (MEDIUM_MAX >> LG_MEDIUM_STEP) + 1];
    let mut i = (crate::size_class::LOOKUP_MAX >> LG_MEDIUM_STEP) + 1;
    while i < t.len() {
        let size = i << LG_MEDIUM_STEP;
        let bin = if size <= crate::size_class::SMALL_MAX {
            crate::size_class::size2bin_compute(size)
        } else {
            NBINS + size.div_ceil(crate::util::PAGE) - LARGE_MIN_PAGES
        };
        t[i] = (bin * crate::size_class::BIN_STRIDE) as u16;
        i += 1;
    }
    t
};

/// `MEDIUM_BIN`'s entry for `LOOKUP_MAX < size ≤ MEDIUM_MAX`.
#[inline(always)]
fn medium_bin_scaled(size: usize) -> usize {
    debug_assert!(size > crate::size_class::LOOKUP_MAX && size <= MEDIUM_MAX);
    let table = crate::static_addr!(MEDIUM_BIN, u16);
    // SAFETY: size ≤ MEDIUM_MAX, so the index is < MEDIUM_BIN.len().
    unsafe { *table.add((size + (1 << LG_MEDIUM_STEP) - 1) >> LG_MEDIUM_STEP) as usize }
}

/// Cache bin of a large block of `pages` pages, if such blocks are cached.
#[inline(always)]
pub fn large_index(pages: usize) -> Option<usize> {
    if (LARGE_MIN_PAGES..=LARGE_MAX_PAGES).contains(&pages) && pages << LG_PAGE <= crate::conf::tcache_max() {
        Some(NBINS + pages - LARGE_MIN_PAGES)
    } else {
        None
    }
}

/// What `Tcache::free_large` did with a block.
pub enum LargeFree {
    Cached,
    /// Not a size the cache keeps.
    NotCached,
    /// The large budget is spent; the block's size is cached in bin `.0`.
    OverBudget(usize),
}

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
    /// Cache bins of the last and the one-before-last large miss (`large_miss`; NCB: none).
    last_large_miss: usize,
    prev_large_miss: usize,
    /// Large cache bin whose free last made the cache give blocks back (bin full or budget
    /// spent; NCB: none yet), for `large_miss`.
    large_gave_back: usize,
    /// Σ (cap − base capacity) · size over the small bins (≤ GROWN_BYTES).
    grown_bytes: usize,
    /// Blocks each bin held after its last GC visit (idle detection).
    visit_ncached: [u16; NCB],
    /// `allocated` at each small bin's last GC visit (the period of grown bins).
    visit_at: [u64; NBINS],
    /// The arena this thread allocates from.
    pub arena: &'static Arena,
    /// Link in `POOL` while unused.
    next: *mut Tcache,
    slots: [usize; TOTAL_SLOTS],
}

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
/// go straight to the arenas); on lets the next call create one again.
pub fn set_thread_enabled(on: bool) {
    let t = tsd::get();
    if !on && t > tsd::LAST_SENTINEL {
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
        init_in_place(tc, arena::bind());
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
unsafe fn init_in_place(tc: *mut Tcache, arena: &'static Arena) {
    let slots = core::ptr::addr_of_mut!((*tc).slots) as *mut usize;
    let mut at = 0;
    for (i, &cap) in CAP.iter().enumerate() {
        let size = bin_bytes(i);
        let magic = if i < NBINS { crate::size_class::div_magic(i) } else { 0 };
        let nfill = if i < NBINS { INITIAL_FILL.min((cap / 2).max(1)) } else { 1 };
        // SAFETY: slots[at .. at + slots_for(cap_max)] belong to bin i alone (TOTAL_SLOTS
        // counts them), inside this cache.
        let cb = CacheBin::new(slots.add(at), cap, CAP_MAX[i], nfill, size as u32, magic);
        core::ptr::addr_of_mut!((*tc).bins[i]).write(cb);
        at += crate::cache_bin::slots_for(CAP_MAX[i]);
    }
    core::ptr::addr_of_mut!((*tc).grown_bytes).write(0);
    core::ptr::addr_of_mut!((*tc).visit_ncached).write([0; NCB]);
    core::ptr::addr_of_mut!((*tc).visit_at).write([0; NBINS]);
    core::ptr::addr_of_mut!((*tc).allocated).write(0);
    core::ptr::addr_of_mut!((*tc).gc_at).write(GC_BYTES);
    core::ptr::addr_of_mut!((*tc).deallocated).write(0);
    core::ptr::addr_of_mut!((*tc).gc_cursor).write(0);
    core::ptr::addr_of_mut!((*tc).large_bytes).write(0);
    core::ptr::addr_of_mut!((*tc).last_large_miss).write(NCB);
    core::ptr::addr_of_mut!((*tc).large_gave_back).write(NCB);
    core::ptr::addr_of_mut!((*tc).prev_large_miss).write(NCB);
    core::ptr::addr_of_mut!((*tc).arena).write(arena);
    core::ptr::addr_of_mut!((*tc).next).write(core::ptr::null_mut());
}

/// Returns an emptied cache to the pool.
///
/// # Safety
/// `tc` is empty and no thread uses it any more.
unsafe fn release(tc: *mut Tcache) {
    let mut pool = POOL.lock();
    (*tc).next = pool.head;
    pool.head = tc;
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
}

impl Tcache {
    /// Slow half of a small malloc: pop below the low-water mark, else refill. Null when the
    /// OS refuses memory.
    #[inline(never)]
    pub fn alloc_small_slow(&mut self, bin: usize) -> *mut u8 {
        // SAFETY: bin < NBINS (callers pass a class index).
        let cb = unsafe { self.bins.get_unchecked_mut(bin) };
        let entry = match cb.pop_lowering() {
            Some(x) => x,
            None => {
                self.fill(bin);
                match self.bins[bin].pop_lowering() {
                    Some(x) => x,
                    None => return core::ptr::null_mut(),
                }
            }
        };
        self.took(entry, bin_size(bin))
    }

    /// Cache bin at byte offset `off` of `bins` (a bin index times `BIN_STRIDE`, from
    /// `size_class::size2bin_scaled` or `MEDIUM_BIN`) for a fast pop: addressed through one
    /// register (`util::one_base`), so that the pop's load and store of `head` share one
    /// address form.
    #[inline(always)]
    pub fn bin_at(&mut self, off: usize) -> &mut CacheBin {
        debug_assert!(off.is_multiple_of(size_of::<CacheBin>()) && off / size_of::<CacheBin>() < NCB);
        // SAFETY: `off` is a bin index times the bin size (asserted equal to BIN_STRIDE), so
        // the pointer is that bin; `one_base` returns the same pointer.
        unsafe { &mut *crate::util::one_base(self.bins.as_mut_ptr().byte_add(off)) }
    }

    /// A block leaving the cache with `size` usable bytes: checks and clears its cookie,
    /// counts, returns the block.
    #[inline(always)]
    pub fn took(&mut self, entry: usize, size: usize) -> *mut u8 {
        let p = entry as *mut u8;
        // SAFETY: `p` is a block of ≥ 8 bytes that this cache owned until now.
        unsafe {
            if *(p as *const usize) != COOKIE {
                lost_cookie(p);
            }
            *(p as *mut usize) = 0;
        }
        self.counted(p, size)
    }

    /// Counts `size` bytes handed out from the cache (a GC visit when they are due); `p`.
    #[inline(always)]
    fn counted(&mut self, p: *mut u8, size: usize) -> *mut u8 {
        self.allocated += size as u64;
        if self.allocated >= self.gc_at {
            return self.gc_event_then(p);
        }
        p
    }

    /// Counts `size` bytes this thread allocated without the cache (large blocks).
    pub fn count_alloc(&mut self, size: usize) {
        self.large_gc_credit(size);
        self.allocated += size as u64;
        if self.allocated >= self.gc_at {
            self.gc_event();
        }
    }

    /// Bytes allocated by this thread so far (thread.allocated).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Runs a GC visit, then returns `p` (a tail call from the malloc fast path, so that path
    /// needs no stack frame).
    #[cold]
    #[inline(never)]
    fn gc_event_then(&mut self, p: *mut u8) -> *mut u8 {
        self.gc_event();
        // Opaque, so LLVM does not turn the caller's tail call back into call + saved register.
        core::hint::black_box(p)
    }

    #[inline(never)]
    fn fill(&mut self, bin: usize) {
        let a = self.arena;
        let cb = &mut self.bins[bin];
        cb.refill(|at, n| {
            // SAFETY: the bin gives us room for `n` entries at `at`.
            unsafe { a.bins[bin].lock.lock().alloc_batch(&a.pac, at as *mut *mut u8, n) }
        });
        for &p in cb.cached() {
            // SAFETY: blocks of ≥ 8 bytes the arena just gave this cache.
            unsafe { *(p as *mut usize) = COOKIE };
        }
        cb.refilled = true;
        cb.nfill = (cb.nfill * 2).min((cb.cap() / 2).max(1));
    }

    /// Caches small block `p` of class `bin` (checked live by the caller), giving back the
    /// older half of the stack first if it is full. False (nothing done) if `p` is the block
    /// cached last: an immediate double free, for the caller to report.
    #[inline(always)]
    pub fn free_small(&mut self, bin: usize, p: *mut u8) -> bool {
        self.free_small_at(bin * size_of::<CacheBin>(), p)
    }

    /// `free`'s fast path for small block `p` at byte offset `off` of its slab, whose class's
    /// bin is at byte offset `bin_off` (`rtree::cacheable_bin_scaled`) and whose free-region
    /// bitmap is `bitmap`: caches `p` if it is a region start (`slab::region_index_magic`
    /// with the class constant from the bin), not free in the slab and not the block cached
    /// last; false (nothing done) otherwise, for the caller's slow path to sort out. The bin
    /// is addressed through one register for all of it (magic, head, push).
    #[inline(always)]
    pub fn free_small_checked(&mut self, bin_off: usize, p: *mut u8, off: usize, bitmap: &crate::bitmap::Bitmap) -> bool {
        debug_assert!(bin_off.is_multiple_of(size_of::<CacheBin>()) && bin_off / size_of::<CacheBin>() < NBINS);
        // SAFETY: as in `free_small_at`.
        let cb = unsafe { &*crate::util::one_base(self.bins.as_mut_ptr().byte_add(bin_off)) };
        match crate::slab::region_index_magic(off, cb.magic) {
            Some(i) if !bitmap.get(i) => self.free_small_at(bin_off, p),
            _ => false,
        }
    }

    /// `free_small` for the bin at byte offset `bin_off` (a class times the bin size).
    #[inline(always)]
    pub fn free_small_at(&mut self, bin_off: usize, p: *mut u8) -> bool {
        debug_assert!(bin_off.is_multiple_of(size_of::<CacheBin>()) && bin_off / size_of::<CacheBin>() < NBINS);
        // SAFETY: bin_off is a class times the bin size: that class's bin; `one_base` returns
        // the same pointer (see `bin_at`: the push's store of `head` must have the same
        // one-register address form as the pop's load of it in the next malloc).
        let cb = unsafe { &mut *crate::util::one_base(self.bins.as_mut_ptr().byte_add(bin_off)) };
        if cb.top_is(p) {
            return false;
        }
        let size = cb.size;
        if !cb.push(p as usize) {
            self.free_small_full(bin_off / size_of::<CacheBin>(), p);
            return true;
        }
        // SAFETY: `p` is a live block of ≥ 8 bytes the caller just gave up. Written after
        // the push, which then needs no second load of `head` (the compiler cannot tell `p`
        // from the bin).
        unsafe { *(p as *mut usize) = COOKIE };
        self.deallocated += size as u64;
        true
    }

    /// `free_small_at` whose stack was full: makes room (`push_full`), then caches `p`. A
    /// separate call, so that nothing of the fast path lives across it (no saved registers).
    #[cold]
    #[inline(never)]
    fn free_small_full(&mut self, bin: usize, p: *mut u8) {
        // SAFETY: as in `free_small_at`.
        unsafe { *(p as *mut usize) = COOKIE };
        self.deallocated += self.bins[bin].size as u64;
        self.push_full(bin, p as usize);
    }

    /// A free found the stack of bin `i` full: the second time since the bin's last GC visit,
    /// if the bin was also refilled in that time, its capacity doubles (within `cap_max` and
    /// the thread's `GROWN_BYTES`), so a program that frees and reallocates batches larger
    /// than the base capacity keeps them here instead of flushing half the stack to the slabs
    /// and refilling it; otherwise the older half goes back.
    #[cold]
    #[inline(never)]
    fn push_full(&mut self, i: usize, p: usize) {
        if i >= NBINS {
            self.large_gave_back = i;
        }
        if !self.grow(i) {
            let n = (self.bins[i].cap() as usize).div_ceil(2);
            self.flush(i, n);
        }
        let ok = self.bins[i].push(p);
        debug_assert!(ok);
    }

    /// Doubles the capacity of full bin `i` if it overflowed before and was refilled since its
    /// last GC visit and the budgets allow; marks the overflow otherwise.
    fn grow(&mut self, i: usize) -> bool {
        let cb = &mut self.bins[i];
        if !cb.overflowed || !cb.refilled {
            cb.overflowed = true;
            return false;
        }
        let size = cb.size as usize;
        let room = (GROWN_BYTES - self.grown_bytes) / size;
        let cap = cb.cap() as usize;
        let new_cap = (cap * 2).min(cb.cap_max as usize).min(cap + room);
        if new_cap <= cap {
            return false;
        }
        self.grown_bytes += (new_cap - cap) * size;
        cb.set_cap(new_cap as u16);
        true
    }

    /// A cached large block of `pages` to `pages + pages / LARGE_FIT_SLACK` pages (the
    /// smallest there is; exactly `pages` unless `fit`) and its size in bytes, if any. Cached large blocks keep their exact
    /// page counts; a request takes one up to 1/8 bigger rather than going to the page
    /// allocator (jemalloc and tcmalloc round every large size up to classes 1/4 and 1/8
    /// apart instead).
    #[inline]
    pub fn alloc_large(&mut self, pages: usize, fit: bool) -> Option<(*mut u8, usize)> {
        let first = large_index(pages)?;
        let slack = if fit { pages / LARGE_FIT_SLACK } else { 0 };
        let last = (first + slack).min(NCB - 1);
        for i in first..=last {
            if let Some(entry) = self.bins[i].pop_lowering() {
                let bytes = self.bins[i].size as usize;
                return Some((self.took_large(entry, bytes), bytes));
            }
        }
        None
    }

    /// A large block of `bytes` bytes leaving the cache, from its bin's `entry` (the block's
    /// extent descriptor): the descriptor says `Active` again; the budget and GC credit;
    /// counted. Large blocks carry no cookie: the descriptor, which the free path reads
    /// anyway, holds the mark (`Cached`), so a large free or pop touches no line of the block
    /// (often cold: each is 36-256 KiB), and a second free of a cached block finds it not
    /// active: a large block is cached twice only if two threads free it at the same moment.
    #[inline(always)]
    fn took_large(&mut self, entry: usize, bytes: usize) -> *mut u8 {
        // SAFETY: large bins hold descriptors of Cached extents this cache owns (descriptors
        // are never freed).
        let e = unsafe { &*(entry as *const Extent) };
        // Only two threads freeing the block at the same moment can have cached it twice.
        if e.state() != State::Cached {
            cached_twice(e.addr as *mut u8);
        }
        debug_assert!(e.size == bytes);
        e.set_state(State::Active);
        self.large_bytes -= bytes;
        self.large_gc_credit(bytes);
        self.counted(e.addr as *mut u8, bytes)
    }

    /// The fast pop for `LOOKUP_MAX < size ≤ MEDIUM_MAX`: the bin of the size's class, or of
    /// exactly its page count for large sizes, if that bin is above its low-water mark.
    #[inline(always)]
    pub fn pop_medium(&mut self, size: usize) -> Option<*mut u8> {
        let off = medium_bin_scaled(size);
        let cb = self.bin_at(off);
        let entry = cb.pop_fast()?;
        let bytes = cb.size as usize;
        if off >= NBINS * size_of::<CacheBin>() {
            return Some(self.took_large(entry, bytes));
        }
        Some(self.took(entry, bytes))
    }

    /// A large allocation counts at most `GC_LARGE_WEIGHT` bytes toward the next GC visit
    /// (it still counts in full in `allocated`): otherwise every malloc of 64 KiB or more
    /// would run a visit, 16 % of a 64 KiB malloc/free pair. (Small classes count in full:
    /// with every allocation above 4 KiB counting 4 KiB, or 16 KiB, pairs of 16 KiB ran 7 %
    /// faster, 108 instead of 115 instructions, but larson's peak RSS rose from 24.3 to 25.2
    /// MiB, medians of 9.)
    #[inline(always)]
    fn large_gc_credit(&mut self, size: usize) {
        self.gc_at += size.saturating_sub(GC_LARGE_WEIGHT) as u64;
    }

    /// Caches the large block of active extent `e` (the program freed `e.addr`) if its size
    /// is cached and the byte budget allows. `OverBudget(i)`: the budget is spent; the caller
    /// goes on with `free_large_over_budget(i, e)`.
    #[inline]
    pub fn free_large(&mut self, e: &Extent) -> LargeFree {
        debug_assert!(e.state() == State::Active && !e.is_slab);
        let pages = e.pages();
        let i = match large_index(pages) {
            Some(i) => i,
            None => return LargeFree::NotCached,
        };
        let bytes = pages << LG_PAGE;
        if self.large_bytes + bytes > LARGE_BYTES {
            return LargeFree::OverBudget(i);
        }
        self.cache_large(i, e);
        LargeFree::Cached
    }

    /// `free_large` of `e`'s block into bin `i` when the budget is full: sheds, then caches
    /// the block if it now fits; false if it does not. Reached through a tail call from
    /// `alloc::free_large`, so that the common path makes no call that needs its registers
    /// saved (6 pushes and pops on every large free with a call: pairs of 64 / 256 KiB
    /// 8.35 / 8.49 → 7.63 / 7.82 ns).
    #[cold]
    #[inline(never)]
    pub fn free_large_over_budget(&mut self, i: usize, e: &Extent) -> bool {
        debug_assert!((NBINS..NCB).contains(&i));
        self.large_gave_back = i;
        self.shed_large();
        let bytes = self.bins[i].size as usize;
        if self.large_bytes + bytes > LARGE_BYTES {
            return false;
        }
        self.cache_large(i, e);
        true
    }

    /// A large malloc of `pages` pages missed the cache: how many more blocks of that size to
    /// take from the page allocator under the same lock, for the cache (`cache_filled_large`).
    /// When the thread's last three large misses were all in this bin and the last large
    /// free that made the cache give blocks back (bin full or budget spent) was of this size
    /// too, the bin's refill size doubles (up to half its capacity, within the byte budget);
    /// any other miss resets it to one. A program that frees and then allocates runs of
    /// blocks of one size (batches of 64 KiB: one page-allocator lock per block, each
    /// waiting for the program's pending stores) thus takes them four at a time. Looser
    /// triggers cost memory elsewhere: on the repeated miss alone, larson's random large
    /// sizes held 23.4 → 25.3 MiB peak RSS, and realloc doubling to 4 MiB (a miss of one
    /// size per round, the block then grown in place, never freed at that size) 2.4 → 4.6
    /// MiB; with the give-back condition but one repeat, larson still 25.4.
    pub fn large_miss(&mut self, pages: usize) -> usize {
        let Some(i) = large_index(pages) else { return 0 };
        let repeat = self.last_large_miss == i && self.prev_large_miss == i && self.large_gave_back == i;
        self.prev_large_miss = self.last_large_miss;
        self.last_large_miss = i;
        let room = self.large_bytes_room() / (pages << LG_PAGE);
        let cb = &mut self.bins[i];
        cb.nfill = if repeat { (cb.nfill * 2).min((cb.cap() / 2).max(1)) } else { 1 };
        let slots = (cb.cap() - cb.ncached()) as usize;
        (cb.nfill as usize - 1).min(room).min(slots)
    }

    /// Bytes the large-block budget still has room for.
    fn large_bytes_room(&self) -> usize {
        LARGE_BYTES.saturating_sub(self.large_bytes)
    }

    /// Caches large block `p` of `pages` pages that a refill (`large_miss`) took from the
    /// page allocator for this cache: it is not a free by the program (no `deallocated`).
    pub fn cache_filled_large(&mut self, pages: usize, p: *mut u8) {
        let i = large_index(pages).expect("refilled large size is cached");
        let e = rtree::lookup(p as usize);
        debug_assert!(!e.is_null());
        // SAFETY: the page allocator just registered this active extent for `p` and gave it
        // to this cache.
        unsafe { (*e).set_state(State::Cached) };
        self.large_bytes += pages << LG_PAGE;
        let ok = self.bins[i].push(e as usize);
        debug_assert!(ok, "large_miss counted the free slots");
    }

    /// Pushes the large block of active extent `e` onto bin `i` (the budget has room) and
    /// marks the extent `Cached`: a second free of the block now finds it not active.
    #[inline(always)]
    fn cache_large(&mut self, i: usize, e: &Extent) {
        e.set_state(State::Cached);
        let bytes = e.size;
        self.deallocated += bytes as u64;
        self.large_bytes += bytes;
        let entry = e as *const Extent as usize;
        if !self.bins[i].push(entry) {
            self.push_full(i, entry);
        }
    }

    /// Makes room in the large-block budget: the older half of every large bin goes back in
    /// one batch (one page-allocator lock per arena, not one per block: each lock waits for
    /// the program's pending stores to drain).
    #[cold]
    #[inline(never)]
    fn shed_large(&mut self) {
        // At most every cached large block (each at least LARGE_MIN_PAGES pages).
        let mut batch = [0usize; LARGE_BYTES / (LARGE_MIN_PAGES << LG_PAGE) + 1];
        let mut take = [0u16; NLARGE];
        let mut n = 0;
        // Most large bins are empty (2 MiB spread over 56 sizes): skip them without a copy.
        for (k, i) in (NBINS..NCB).enumerate() {
            let want = (self.bins[i].ncached() as usize).div_ceil(2).min(batch.len() - n);
            if want == 0 {
                continue;
            }
            let old = self.bins[i].oldest(want);
            batch[n..n + old.len()].copy_from_slice(old);
            n += old.len();
            take[k] = old.len() as u16;
        }
        self.large_bytes -= flush_large(&mut batch[..n]);
        for (k, i) in (NBINS..NCB).enumerate() {
            if take[k] != 0 {
                self.bins[i].remove_oldest(take[k] as usize);
            }
        }
    }

    /// Whether `p` is in the small cache bin `i` (double-free check after a cookie hit).
    pub fn holds(&self, i: usize, p: *mut u8) -> bool {
        debug_assert!(i < NBINS);
        self.bins[i].contains(p)
    }

    /// Gives the `n` oldest blocks of cache bin `i` back to their arenas.
    fn flush(&mut self, i: usize, n: usize) {
        let n = n.min(self.bins[i].ncached() as usize);
        if n == 0 {
            return;
        }
        // SAFETY: slots[0..n] are cached entries of this bin; we own them until returned.
        let blocks = self.bins[i].oldest(n);
        if i < NBINS {
            flush_small(i, blocks);
        } else {
            let bytes = flush_large(blocks);
            self.large_bytes -= bytes;
        }
        self.bins[i].remove_oldest(n);
    }

    /// Moves this thread to arena `to` (`thread.arena`): cached blocks go home first.
    pub fn rebind(&mut self, to: &'static Arena) {
        if to.id != self.arena.id {
            self.flush_all();
            arena::rebind(self.arena, to);
            self.arena = to;
        }
    }

    /// Empties every bin (thread exit, `malloc_trim`, `thread.tcache.flush`).
    pub fn flush_all(&mut self) {
        for i in 0..NCB {
            self.flush(i, self.bins[i].ncached() as usize);
            self.bins[i].reset_low_water();
        }
    }

    /// One GC visit (jemalloc's policy): the next class in round-robin order gives back 3/4
    /// of what it did not use since its previous visit, and halves its refill size (refills
    /// double it). One class per event keeps the event cheap. A grown small bin is skipped
    /// until the thread allocated as many bytes as the bin can hold since its last visit
    /// (module header: a batch drains its stack over more than one round robin).
    fn gc_event(&mut self) {
        self.gc_at = self.allocated + GC_BYTES;
        let i = self.gc_cursor;
        self.gc_cursor = if i + 1 == NCB { 0 } else { i + 1 };
        let cb = &mut self.bins[i];
        if i < NBINS && cb.cap() > CAP[i] && self.allocated.saturating_sub(self.visit_at[i]) < cb.cap() as u64 * cb.size as u64 {
            return;
        }
        // Untouched since the last visit: as many blocks as then and none popped below that
        // (a bin in use rarely ends a GC period exactly where it started it).
        let (ncached, low_water) = (cb.ncached(), cb.low_water());
        let idle = ncached == self.visit_ncached[i] && low_water == ncached;
        let mut n = 0;
        if low_water > 0 {
            n = (low_water as usize * 3).div_ceil(4);
            cb.nfill = (cb.nfill / 2).max(1);
            self.flush(i, n);
        }
        // A grown capacity halves back toward the base when the class sat idle or left a
        // quarter or more of it unused for a whole GC period. (The few blocks a batch leaves
        // between rounds are not enough: shrinking on them made batches of 1 KiB flush and
        // regrow.)
        let cb = &mut self.bins[i];
        let cap = cb.cap();
        if cap > CAP[i] && (idle || n * 4 >= cap as usize * 3 / 4) {
            let new_cap = (cap / 2).max(CAP[i]).max(cb.ncached());
            self.grown_bytes -= (cap - new_cap) as usize * cb.size as usize;
            cb.set_cap(new_cap);
            cb.nfill = cb.nfill.min((new_cap / 2).max(1));
        }
        let cb = &mut self.bins[i];
        cb.reset_low_water();
        cb.overflowed = false;
        cb.refilled = false;
        self.visit_ncached[i] = cb.ncached();
        if i < NBINS {
            self.visit_at[i] = self.allocated;
        }
    }

    /// Checks every bin (tests).
    pub fn validate(&self) {
        let (mut large, mut grown) = (0, 0);
        for (i, cb) in self.bins.iter().enumerate() {
            cb.validate();
            assert!(cb.cap() >= CAP[i] && cb.cap_max == CAP_MAX[i]);
            grown += (cb.cap() - CAP[i]) as usize * cb.size as usize;
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
        assert_eq!(large, self.large_bytes);
        assert!(large <= LARGE_BYTES);
        assert!(grown == self.grown_bytes && grown <= GROWN_BYTES);
    }
}

/// Calls `each(guard, arena, extent, entry)` for every cache entry of `entries` (a small
/// bin's block addresses, a large bin's descriptors: `extent_of` resolves either), arena by
/// arena, with `lock(arena)` held around each arena's group and `done(guard, arena)` called
/// at its end: one lock per arena, however the entries mix (frees of other threads' blocks
/// travel home this way). Reorders `entries`.
fn by_arena<G>(
    entries: &mut [usize],
    extent_of: impl Fn(usize) -> *mut Extent,
    mut lock: impl FnMut(&'static Arena) -> G,
    mut each: impl FnMut(&mut G, &'static Arena, *mut Extent, usize),
    mut done: impl FnMut(&mut G, &'static Arena),
) {
    let mut todo = entries.len();
    while todo > 0 {
        // SAFETY: `extent_of` returns live descriptors (never freed).
        let a = arena::get(unsafe { (*extent_of(entries[0])).arena });
        let mut g = lock(a);
        let mut keep = 0;
        for j in 0..todo {
            let e = extent_of(entries[j]);
            // SAFETY: as above.
            if unsafe { (*e).arena } == a.id {
                each(&mut g, a, e, entries[j]);
            } else {
                entries[keep] = entries[j];
                keep += 1;
            }
        }
        done(&mut g, a);
        todo = keep;
    }
}

/// Returns small blocks of class `bin` to their slabs, one bin lock per arena.
fn flush_small(bin: usize, blocks: &mut [usize]) {
    take_cookies(blocks);
    by_arena(
        blocks,
        registered,
        |a| a.bins[bin].lock.lock(),
        |g, a, e, p| {
            // SAFETY: `e` is the active slab of class `bin` holding `p`; we hold its bin's lock.
            unsafe { g.free(&a.pac, e, p, "free") }
        },
        |g, a| g.settle(&a.pac),
    );
}

/// Returns large blocks (their descriptors, as the large bins hold them) to their arenas'
/// page allocators, one lock per arena; returns bytes.
fn flush_large(descs: &mut [usize]) -> usize {
    let mut bytes = 0;
    by_arena(descs, |d| d as *mut Extent, |a| a.pac.inner.lock(), |g, _, e, _| {
        // SAFETY: large bins hold descriptors of extents marked Cached (never freed); we
        // hold their arena's Pac lock.
        unsafe {
            if (*e).state() != State::Cached {
                cached_twice((*e).addr as *mut u8);
            }
            (*e).set_state(State::Active);
            bytes += (*e).size;
            let ok = g.dalloc(e);
            debug_assert!(ok);
        }
    }, |_, _| {});
    bytes
}

/// Blocks leaving the cache for their slab or page allocator: each must still carry the
/// cookie (else a copy of it, freed twice, already left the cache to a malloc, or it was
/// written after free), and loses it here, before its arena owns it again: a second copy
/// still cached (the block freed twice, one copy flushed) is then caught when it leaves, instead
/// of being handed out while its slab also counts the block free. All loads first, then the
/// stores: the blocks are the cache's oldest, often cold, and their misses overlap.
fn take_cookies(blocks: &[usize]) {
    for &p in blocks {
        // SAFETY: cached blocks are blocks of ≥ 8 bytes this cache owns.
        if unsafe { *(p as *const usize) } != COOKIE {
            lost_cookie(p as *mut u8);
        }
    }
    for &p in blocks {
        // SAFETY: as above.
        unsafe { *(p as *mut usize) = 0 };
    }
}

/// A freed-in block lost its cookie before leaving the cache: it was freed twice (the other
/// copy already went out) or written after free.
#[cold]
#[inline(never)]
fn lost_cookie(p: *mut u8) -> ! {
    crate::report::misuse("malloc", crate::report::Misuse::FreedBlockChanged, p as usize)
}

/// The descriptor of cached block `p`. Cached blocks are live, so the rtree maps them, unless
/// the cache held `p` twice (a double free) and the first copy just went back and merged
/// into a free extent.
#[inline]
fn registered(p: usize) -> *mut Extent {
    let e = rtree::lookup(p);
    if e.is_null() {
        cached_twice(p as *mut u8);
    }
    e
}

/// A block leaving the cache was cached twice (freed twice; the other copy already left).
#[cold]
#[inline(never)]
fn cached_twice(p: *mut u8) -> ! {
    crate::report::misuse("malloc", crate::report::Misuse::DoubleFree, p as usize)
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
    fn capacity_grows_for_batches_and_gc_shrinks_it_back() {
        std::thread::spawn(|| {
            let bin = crate::size_class::size2bin(1024);
            for _ in 0..4 {
                let ps: std::vec::Vec<_> = (0..1000).map(|_| crate::alloc::malloc(1024)).collect();
                for &p in &ps {
                    crate::alloc::free(p, "free");
                }
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), 1024, "a 1000-block batch grows the 1 KiB class to its maximum");
            assert!(tc.bins[bin].ncached() >= 1000);
            // The class falls idle while others allocate: GC visits give its blocks back and
            // halve its capacity down to the base.
            for _ in 0..(16 * NCB * GC_BYTES as usize / 64) {
                crate::alloc::free(crate::alloc::malloc(64), "free");
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), CAP[bin]);
            assert_eq!(tc.grown_bytes, 0);
            assert!(tc.bins[bin].ncached() < 64);
        })
        .join()
        .unwrap();
        // A thread that only frees (a consumer) never grows its cache: it would hoard blocks.
        let ps: std::vec::Vec<usize> = (0..3000).map(|_| crate::alloc::malloc(1024) as usize).collect();
        std::thread::spawn(move || {
            for &p in &ps {
                crate::alloc::free(p as *mut u8, "free");
            }
            let tc = current().unwrap();
            let bin = crate::size_class::size2bin(1024);
            assert_eq!(tc.bins[bin].cap(), CAP[bin]);
            tc.validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn batches_of_16k_blocks_stay_cached_and_drain_when_idle() {
        std::thread::spawn(|| {
            let bin = crate::size_class::size2bin(16384);
            let ps: &mut [*mut u8] = &mut [core::ptr::null_mut(); 1000];
            for _ in 0..6 {
                for p in ps.iter_mut() {
                    *p = crate::alloc::malloc(16384);
                }
                for &p in ps.iter() {
                    crate::alloc::free(p, "free");
                }
            }
            let tc = current().unwrap();
            tc.validate();
            // 16 MiB of blocks per round: GC visits come every ~6 MiB allocated, and would
            // give back what the draining stack had left if a grown bin's period were not
            // what it holds.
            assert_eq!(tc.bins[bin].cap(), 1024, "a 1000-block batch grows the 16 KiB class to its maximum");
            assert!(tc.bins[bin].ncached() >= 1000, "the whole batch stays cached: {}", tc.bins[bin].ncached());
            // Idle while the thread allocates other sizes: drained and back to the base
            // capacity (visits 16, 8, 4 ... MiB apart).
            for _ in 0..(3 << 20) {
                crate::alloc::free(crate::alloc::malloc(64), "free");
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), CAP[bin]);
            assert_eq!(tc.grown_bytes, 0);
            assert!(tc.bins[bin].ncached() <= CAP[bin]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn medium_bin_is_the_class_or_the_page_count() {
        let stride = crate::size_class::BIN_STRIDE;
        for size in crate::size_class::LOOKUP_MAX + 1..=MEDIUM_MAX {
            let want = if size <= crate::size_class::SMALL_MAX {
                crate::size_class::size2bin(size)
            } else {
                NBINS + size.div_ceil(crate::util::PAGE) - LARGE_MIN_PAGES
            };
            assert_eq!(medium_bin_scaled(size), want * stride, "size {size}");
            assert!(bin_bytes(want) >= size && bin_bytes(want - 1) < size, "size {size}");
        }
    }

    #[test]
    fn caps_and_layout() {
        assert_eq!(CAP[0], 1024); // 8 B
        assert_eq!(CAP[crate::size_class::size2bin(1024)], 64);
        assert_eq!(CAP[NBINS - 1], 20); // 32 KiB
        assert_eq!(CAP_MAX[crate::size_class::size2bin(1024)], 1024);
        assert_eq!(CAP_MAX[crate::size_class::size2bin(4096)], 1024);
        assert_eq!(CAP_MAX[NBINS - 1], 512);
        assert_eq!(CAP_MAX[NBINS], CAP[NBINS]); // large bins do not grow
        assert_eq!(large_index(9), Some(NBINS));
        assert_eq!(large_index(64), Some(NCB - 1));
        assert_eq!(large_index(65), None);
        assert_eq!(large_index(8), None);
    }
}
