//! Large blocks (32 KiB + 1 up to 256 KiB) in a thread cache: one bin per page count, holding
//! the blocks' extent descriptors.
//!
//! Contract:
//! - malloc finds the bin of a size up to 4 KiB in `size_class::LOOKUP`, of a bigger one up
//!   to 256 KiB in `MEDIUM_BIN`, small classes above 4 KiB included (pairs of 16 / 64 / 256
//!   KiB take 10.94 / 12.95 / 11.66 ns against 11.57 / 14.30 / 14.53 with a class lookup or
//!   a page count and range check). A large request that misses its exact bin takes a cached
//!   block up to 1/8 bigger; a large free over the budget first sheds the older half of
//!   every large bin in one batch.
//! - Refill: a large miss takes one block, or up to 8 under one page-allocator lock when the
//!   thread's last three large misses and its last large free that had to give blocks back
//!   were all of this size (`large_miss`): with up to 4, batches of 64 / 256 KiB take 72.9 /
//!   96.9 ns against 83.1 / 107.9 with one block per miss, and larson, realloc and their peak
//!   RSS are the same (8: see `LARGE_BIN_CAP`). The blocks of a refill are carved as many at
//!   a time as each best-fitting free extent holds (`Pac::alloc_blocks`: the placement of
//!   block-by-block allocation), and a flush joins adjacent blocks before it gives them back
//!   (`Pac::join`), so that a run costs one best-fit search and one coalescing insert
//!   instead of one per block: batches of 64 / 256 KiB take 32.2 / 51.7 ns against 43.3 /
//!   63.0 block by block (A/B medians of 5; larson's speed and peak RSS the same).
//! - Large blocks carry no cookie: a large bin holds the blocks' extent descriptors, marked
//!   `State::Cached` while cached, so a second free of a cached large block is reported at
//!   once by the free path, which reads the descriptor anyway, and no large free, pop or
//!   flush touches the block itself (batches of 64 / 256 KiB take 84.1 / 128.8 ns against
//!   91.8 / 139.9 with a cookie in the block, pairs of 64 KiB 11.6 against 13.1; A/B medians
//!   of 9, `scripts/ab-fastest.sh`).
//!
//! Sync: as for the `Tcache`: its thread only; a cached block's descriptor state (`Cached`)
//! is written by the owning thread, and read by the page allocator under its lock.

use super::flush::{flush_large, uncache};
use super::gc::GC_LARGE_WEIGHT;
use super::{Tcache, LARGE_MAX_PAGES, LARGE_MIN_PAGES, NCB, NLARGE};
use crate::tcache::cache_bin::CacheBin;
use crate::metadata::extent::{Extent, State};
use crate::metadata::size_class::NBINS;
use crate::foundation::util::LG_PAGE;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Blocks a large bin holds (the byte budget below binds first for most sizes). With 8, a
/// thread cycling batches of one large size refills 4 and flushes 4 blocks per
/// page-allocator lock; with 16, 8: batches of 1000 blocks of 64 KiB take 29.9 ns per
/// malloc+free against 35.9 with 8 (mimalloc 33.2), of 256 KiB 55.0 against 57.3; larson's
/// speed and peak RSS and realloc are the same (medians of 3-7 alternating runs). 32 gains
/// nothing more at 64 KiB (29.4).
pub(super) const LARGE_BIN_CAP: usize = 16;
/// Most blocks one large refill takes for the cache besides the one it returns (`large_miss`:
/// a large bin refills at most half its capacity).
pub const LARGE_REFILL_MAX: usize = LARGE_BIN_CAP / 2;
/// A large request may take a cached block up to 1/LARGE_FIT_SLACK bigger (`alloc_large`).
const LARGE_FIT_SLACK: usize = 8;
/// Bytes of large blocks a thread may cache. With exact-size hits only, 2 MiB holds 2.5 MiB
/// more RSS on larson than 512 KiB for no measured speed (its random large sizes rarely hit);
/// with hits up to 1/8 bigger and over-budget frees shedding half of every large bin in one
/// batch (`shed_large`), 2 MiB makes larson 14 % faster (1 and 2 threads: 27.9 / 14.1
/// against 32.6 / 16.8 ns per replacement) at +0.1 / +0.5 MiB peak RSS; 4 MiB or a 1/4
/// slack gain less than they cost (+1 to +2 MiB).
pub(super) const LARGE_BYTES: usize = 2 << 20;

/// The largest block a large request of `bytes` (a page multiple) may get from the cache
/// (`Tcache::alloc_large`); `bytes` itself for sizes the cache does not serve.
pub fn large_fit_max(bytes: usize) -> usize {
    let pages = bytes >> LG_PAGE;
    match large_index(pages) {
        Some(_) if bytes & crate::foundation::util::PAGE_MASK == 0 => {
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
    let mut i = (crate::metadata::size_class::LOOKUP_MAX >> LG_MEDIUM_STEP) + 1;
    while i < t.len() {
        let size = i << LG_MEDIUM_STEP;
        let bin = if size <= crate::metadata::size_class::SMALL_MAX {
            crate::metadata::size_class::size2bin_compute(size)
        } else {
            NBINS + size.div_ceil(crate::foundation::util::PAGE) - LARGE_MIN_PAGES
        };
        t[i] = (bin * crate::metadata::size_class::BIN_STRIDE) as u16;
        i += 1;
    }
    t
};

/// `MEDIUM_BIN`'s entry for `LOOKUP_MAX < size ≤ MEDIUM_MAX`.
#[inline(always)]
fn medium_bin_scaled(size: usize) -> usize {
    debug_assert!(size > crate::metadata::size_class::LOOKUP_MAX && size <= MEDIUM_MAX);
    let table = crate::static_addr!(MEDIUM_BIN, u16);
    // SAFETY: size ≤ MEDIUM_MAX, so the index is < MEDIUM_BIN.len().
    unsafe { *table.add((size + (1 << LG_MEDIUM_STEP) - 1) >> LG_MEDIUM_STEP) as usize }
}

/// Option `tcache_max`: the largest size a thread cache keeps, in bytes. Sync: written once by
/// `set_max` during init (before READY is published), read-only afterwards.
static MAX: AtomicUsize = AtomicUsize::new(MEDIUM_MAX);
/// How many large page counts thread caches keep, from `LARGE_MIN_PAGES` up: derived from
/// `MAX` (set together), so that a large free checks its size with one compare. Sync: as `MAX`.
static LARGE_SPAN: AtomicUsize = AtomicUsize::new(large_span(MEDIUM_MAX));

/// Large page counts cached when the largest cached size is `max` bytes.
const fn large_span(max: usize) -> usize {
    (max >> LG_PAGE).saturating_sub(LARGE_MIN_PAGES - 1)
}

/// Sets option `tcache_max` (init only): clamped to the largest cached size, `MEDIUM_MAX`.
pub fn set_max(bytes: usize) {
    let m = bytes.min(MEDIUM_MAX);
    MAX.store(m, Relaxed);
    LARGE_SPAN.store(large_span(m), Relaxed);
}

/// Option `tcache_max`: the largest size a thread cache keeps (bytes).
pub fn max() -> usize {
    MAX.load(Relaxed)
}

/// How many large page counts, from `LARGE_MIN_PAGES` up, thread caches keep (`max` in
/// pages, minus the small ones; 0 when no large size is cached).
#[inline(always)]
fn cached_large_span() -> usize {
    // RIP-relative (`static_addr`): a large free reads it, and a GOT load would come first.
    let span = crate::static_addr!(LARGE_SPAN, AtomicUsize);
    // SAFETY: the address of a static of this module.
    unsafe { &*span }.load(Relaxed)
}

/// Cache bin of a large block of `pages` pages, if such blocks are cached.
#[inline(always)]
pub fn large_index(pages: usize) -> Option<usize> {
    // One compare: below LARGE_MIN_PAGES the difference wraps to a huge value, and the span
    // ends at the smaller of LARGE_MAX_PAGES and `opt.tcache_max` (free of 64 KiB: 5
    // instructions fewer than a range check and a compare with `tcache_max`).
    let i = pages.wrapping_sub(LARGE_MIN_PAGES);
    if i < cached_large_span() {
        // The span never exceeds NLARGE (`opt.tcache_max` is clamped to LARGE_MAX_PAGES), so
        // the bin exists; telling the compiler spares every user a bounds check.
        if i >= NLARGE {
            // SAFETY: see above.
            unsafe { core::hint::unreachable_unchecked() }
        }
        Some(NBINS + i)
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

impl Tcache {
    /// A cached large block of `pages` to `pages + pages / LARGE_FIT_SLACK` pages (the
    /// smallest there is; exactly `pages` unless `fit`) and its size in bytes, if any.
    /// Cached large blocks keep their exact page counts; a request takes one up to 1/8
    /// bigger rather than going to the page allocator (jemalloc and tcmalloc round every
    /// large size up to classes 1/4 and 1/8 apart instead).
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
        uncache(e);
        debug_assert!(e.size == bytes);
        self.large_bytes -= bytes;
        self.large_gc_credit(bytes);
        self.counted(e.addr as *mut u8, bytes)
    }

    /// The fast pop for `LOOKUP_MAX < size ≤ MEDIUM_MAX`: the bin of the size's class, or of
    /// exactly its page count for large sizes, if that bin is above its low-water mark. A
    /// large bin's pop goes out of line (`pop_medium_large`), so that the small classes' path
    /// is as short as the inlined malloc's and needs no stack frame. (Telling the two apart by
    /// the entry's first word instead, `COOKIE` in a cached small block and never in a
    /// descriptor, whose first word is a page-aligned address, saves 3 instructions more per
    /// small pop, but pairs of 16 / 32 KiB run no faster and pairs of 64 KiB 2-4 % slower:
    /// fastest chunks of 7 alternating runs, `scripts/ab-fastest.sh`.)
    #[inline(always)]
    pub fn pop_medium(&mut self, size: usize) -> Option<*mut u8> {
        let off = medium_bin_scaled(size);
        let cb = self.bin_at(off);
        let entry = cb.pop_fast()?;
        let bytes = cb.size as usize;
        if off >= NBINS * size_of::<CacheBin>() {
            return Some(self.pop_medium_large(entry, bytes));
        }
        Some(self.took(entry, bytes))
    }

    /// `pop_medium` from a large bin (`entry` is a descriptor): `took_large`, out of line so
    /// that `malloc_medium` needs no stack frame.
    #[inline(never)]
    fn pop_medium_large(&mut self, entry: usize, bytes: usize) -> *mut u8 {
        self.took_large(entry, bytes)
    }

    /// Counts `size` bytes this thread allocated without the cache (large blocks).
    pub fn count_alloc(&mut self, size: usize) {
        self.large_gc_credit(size);
        self.allocated += size as u64;
        if self.allocated >= self.gc_at {
            self.gc_event();
        }
    }

    /// A large allocation counts at most `GC_LARGE_WEIGHT` bytes toward the next GC visit
    /// (it still counts in full in `allocated`): otherwise every malloc of 64 KiB or more
    /// would run a visit, 16 % of a 64 KiB malloc/free pair. (Small classes count in full:
    /// with every allocation above 4 KiB counting 4 KiB, or 16 KiB, pairs of 16 KiB run 7 %
    /// faster, 108 instead of 115 instructions, but larson's peak RSS is 25.2 MiB against
    /// 24.3, medians of 9.)
    /// `size` is a large size (> SMALL_MAX, itself ≥ GC_LARGE_WEIGHT), so the subtraction
    /// needs no saturation (3 instructions fewer per large malloc).
    #[inline(always)]
    pub(super) fn large_gc_credit(&mut self, size: usize) {
        const _: () = assert!(crate::metadata::size_class::SMALL_MAX >= GC_LARGE_WEIGHT);
        debug_assert!(size > crate::metadata::size_class::SMALL_MAX);
        self.gc_at += (size - GC_LARGE_WEIGHT) as u64;
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
        // A large extent's size is a page multiple (`pages << LG_PAGE` would mask it again).
        let bytes = e.size;
        if self.large_bytes + bytes > self.large_budget {
            return LargeFree::OverBudget(i);
        }
        self.cache_large(i, e);
        LargeFree::Cached
    }

    /// `free_large` of `e`'s block into bin `i` when the budget is full: sheds, then caches
    /// the block if it now fits; false if it does not. Reached through a tail call from
    /// `alloc::free_large`, so that the common path makes no call that needs its registers
    /// saved (with a call, every large free has 6 pushes and pops and pairs of 64 / 256 KiB
    /// take 8.35 / 8.49 ns, against 7.63 / 7.82 without).
    #[cold]
    #[inline(never)]
    pub fn free_large_over_budget(&mut self, i: usize, e: &Extent) -> bool {
        debug_assert!((NBINS..NCB).contains(&i));
        self.large_gave_back = i;
        self.shed_large();
        let bytes = self.bins[i].size as usize;
        if self.large_bytes + bytes > self.large_budget {
            return false;
        }
        self.cache_large(i, e);
        true
    }

    /// Takes the large block of extent `e` out of this cache if it holds it (its descriptor
    /// says `Active` again, the caller owns the block): a cached block that borders a block
    /// the thread wants to grow in place goes back to the page allocator first
    /// (`alloc::release_cached_neighbour`). False if this cache does not hold it.
    pub fn take_cached_large(&mut self, e: &Extent) -> bool {
        let Some(i) = large_index(e.pages()) else {
            return false;
        };
        if !self.bins[i].remove(e as *const Extent as usize) {
            return false;
        }
        self.large_bytes -= self.bins[i].size as usize;
        uncache(e);
        true
    }

    /// `free_large`, then `free_large_over_budget` if the budget is spent: whether `e`'s block
    /// is now cached (the slow paths; `alloc::free` keeps the two apart for its tail call).
    pub fn free_large_or_shed(&mut self, e: &Extent) -> bool {
        match self.free_large(e) {
            LargeFree::Cached => true,
            LargeFree::OverBudget(i) => self.free_large_over_budget(i, e),
            LargeFree::NotCached => false,
        }
    }

    /// A large malloc of `pages` pages missed the cache: how many more blocks of that size to
    /// take from the page allocator under the same lock, for the cache (`cache_filled_large`).
    /// When the thread's last three large misses were all in this bin and the last large
    /// free that made the cache give blocks back (bin full or budget spent) was of this size
    /// too, the bin's refill size doubles (up to half its capacity, within the byte budget);
    /// any other miss resets it to one. A program that frees and then allocates runs of
    /// blocks of one size (batches of 64 KiB: one page-allocator lock per block, each
    /// waiting for the program's pending stores) thus takes up to `LARGE_REFILL_MAX` at a
    /// time. Looser triggers cost memory elsewhere: on the repeated miss alone, larson's
    /// random large sizes hold 25.3 MiB peak RSS against 23.4, and realloc doubling to 4 MiB
    /// (a miss of one size per round, the block then grown in place, never freed at that
    /// size) 4.6 MiB against 2.4; with the give-back condition but one repeat, larson 25.4.
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
        self.large_budget.saturating_sub(self.large_bytes)
    }

    /// Caches the block of active extent `e`, which a refill (`large_miss`) took from the
    /// page allocator for this cache: it is not a free by the program (no `deallocated`).
    pub fn cache_filled_large(&mut self, e: &Extent) {
        let i = large_index(e.pages()).expect("refilled large size is cached");
        e.set_state(State::Cached);
        self.large_bytes += e.size;
        let ok = self.bins[i].push(e as *const Extent as usize);
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
        if !self.bins[i].push(e as *const Extent as usize) {
            self.push_full_large(i, e);
        }
    }

    /// `cache_large` into a full bin: the flush that makes room runs with `e` counted out
    /// (`Active`, not in `large_bytes`), so that one stopped by a misuse reports from a
    /// consistent cache (`flush`); counting the block in only after the push would cost 4
    /// instructions per free of every cached large block.
    #[cold]
    #[inline(never)]
    fn push_full_large(&mut self, i: usize, e: &Extent) {
        e.set_state(State::Active);
        self.large_bytes -= e.size;
        self.push_full(i, e as *const Extent as usize);
        e.set_state(State::Cached);
        self.large_bytes += e.size;
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
        let found = match flush_large(&mut batch[..n]) {
            Ok(bytes) => {
                self.large_bytes -= bytes;
                None
            }
            Err(f) => Some(f),
        };
        for (k, i) in (NBINS..NCB).enumerate() {
            if take[k] != 0 {
                if found.is_some() {
                    // Abandoned or given back, they leave the stack and the budget alike.
                    self.large_bytes -= take[k] as usize * self.bins[i].size as usize;
                }
                self.bins[i].remove_oldest(take[k] as usize);
            }
        }
        if let Some(f) = found {
            f.report();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcache::bin_bytes;

    /// A large free into a full bin makes room with a flush; when that flush stops at a
    /// misuse and reports, the freed block is not yet counted, so a SIGABRT handler finds
    /// the large budget equal to what the stacks hold (not with the block counted in first).
    #[test]
    fn a_flush_stopped_by_misuse_leaves_the_large_budget_consistent() {
        extern "C" fn on_abort(_: libc::c_int) {
            let tc = crate::tcache::current().expect("the thread's cache");
            let held: usize = (NBINS..NCB).map(|i| tc.bins[i].ncached() as usize * tc.bins[i].size as usize).sum();
            // SAFETY: leaving the forked child from its signal handler.
            unsafe { libc::_exit(if held == tc.large_bytes { 0 } else { 3 }) }
        }
        let _x = crate::front::alloc::tests::ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the child only uses the allocator and leaves with `_exit`; the extent whose
        // state it changes is a cached block of its own cache.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                let i = large_index(16).unwrap();
                let tc = crate::tcache::current().expect("the thread's cache");
                tc.flush_all();
                let blocks: [*mut u8; LARGE_BIN_CAP + 1] = core::array::from_fn(|_| crate::front::alloc::malloc(64 << 10));
                for &p in &blocks[..LARGE_BIN_CAP] {
                    crate::front::alloc::free(p, "free");
                }
                let full = tc.bins[i].ncached() as usize == LARGE_BIN_CAP;
                // The oldest cached block stands for one that two racing frees cached twice.
                let d = tc.bins[i].oldest(1)[0];
                (*(d as *const Extent)).set_state(State::Active);
                libc::signal(libc::SIGABRT, on_abort as *const () as libc::sighandler_t);
                if full {
                    crate::front::alloc::free(blocks[LARGE_BIN_CAP], "free");
                }
                libc::_exit(7);
            }
            let mut st = 0;
            assert_eq!(libc::waitpid(pid, &mut st, 0), pid);
            assert!(libc::WIFEXITED(st), "child status {st:#x}");
            assert_eq!(libc::WEXITSTATUS(st), 0, "3: budget and stacks disagree; 7: no report");
        }
    }

    #[test]
    fn medium_bin_is_the_class_or_the_page_count() {
        let stride = crate::metadata::size_class::BIN_STRIDE;
        for size in crate::metadata::size_class::LOOKUP_MAX + 1..=MEDIUM_MAX {
            let want = if size <= crate::metadata::size_class::SMALL_MAX {
                crate::metadata::size_class::size2bin(size)
            } else {
                NBINS + size.div_ceil(crate::foundation::util::PAGE) - LARGE_MIN_PAGES
            };
            assert_eq!(medium_bin_scaled(size), want * stride, "size {size}");
            assert!(bin_bytes(want) >= size && bin_bytes(want - 1) < size, "size {size}");
        }
    }
}
