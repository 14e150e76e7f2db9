//! Thread-cache garbage collection and capacity growth: what a thread caches but does not
//! use goes back, and a class that cycles batches bigger than its stack may hold them.
//!
//! Contract:
//! - Growth: a small class whose stack overflows, is refilled, then overflows again (the
//!   thread frees and reallocates batches bigger than the stack) doubles its capacity, up to `GROWN_BIN_BYTES` worth (≤ 1024 blocks), all classes of a thread
//!   together at most `GROWN_BYTES` (32 MiB) beyond their base. GC halves a grown capacity
//!   again when the class sat idle or left a quarter of it unused for a whole GC period, and
//!   so does an overflow with no refill since the last one (a teardown: `push_full`).
//!   With growth, batches of 1000 blocks of 256 B / 1 KiB / 4 KiB take 12-16 / 18 / 47 ns
//!   per malloc+free against 37 / 50 / 52 without; RSS/live of the drifting cache is 1.186
//!   against 1.181, other peak RSS the same.
//! - A grown class's GC period is at least what it holds: GC skips a grown bin until the
//!   thread allocated `cap × size` bytes since its last visit. A round robin over all bins
//!   comes every ~6 MiB allocated; without the period, a 1000-block batch of 8 or 16 KiB
//!   blocks (8-16 MiB per round) meets several visits per round, each of which gives back
//!   3/4 of what the draining stack has left (its low-water mark) just before the round uses
//!   it. With the period and 16 MiB of growth, batches of 8 / 16 KiB take 11.2 / 14.4 ns
//!   against 37.5 / 42.6 without the period and with 4 MiB (tcmalloc 11 / 15), their peak
//!   RSS and the drifting cache's RSS/live the same (1.189 / 1.188); letting grown bins skip
//!   the low-water give-back without a period instead raises RSS/live to 1.201
//!   (drifting-size bins grow too).
//! - GC: one class (round robin) is visited per `GC_BYTES` allocated (a large block counting
//!   at most `GC_LARGE_WEIGHT`), `GC_VISITS` classes in a row per event: blocks that stayed
//!   below the low-water mark since the previous visit (3/4 of them) go back, and the refill
//!   size halves; every refill doubles it (8 blocks first). Idle classes drain.
//!
//! Sync: as for the `Tcache`: its thread only.

use super::{Tcache, NCB};
use crate::metadata::size_class::NBINS;

/// Allocated bytes per GC visit of one class.
const GC_BYTES: u64 = 64 << 10;
/// Classes visited per GC event, one after the other. The event's own cost (the call from
/// malloc, the clock, the cursor) is paid once for all of them, and most visits find an
/// empty class at its base capacity and only start its next period. A class is still
/// visited once per `NCB × GC_BYTES` allocated. Pairs of 16 / 32 / 64 / 256 KiB, ns per
/// malloc+free in the fastest chunk of 16384 pairs over 7 alternating runs
/// (`scripts/ab-fastest.sh`), with 1 / 2 / 3 / 4 classes per event: 16 KiB 3.88 / 3.81 /
/// 3.51 / 3.45-3.70, 32 KiB 4.43 / 4.20-4.27 / 4.14 / 3.93-4.04, 64 KiB 5.39 / 5.33-5.39 /
/// 5.08 / 5.77-5.90, 256 KiB: 3 at 5.42, 4 at 5.85 against 5.52 with 1 (why 4 makes the
/// large sizes slower while running fewer instructions, 132.6 against 136.0 per pair of 64
/// KiB, is not known; function alignment is not the cause).
const GC_VISITS: usize = 3;
/// Allocated bytes between two GC events.
pub(super) const GC_EVENT_BYTES: u64 = GC_BYTES * GC_VISITS as u64;
/// The most one large allocation counts on the GC clock (`GC_BYTES` per visit).
pub(super) const GC_LARGE_WEIGHT: usize = 16 << 10;

impl Tcache {
    /// A free found the stack of bin `i` full. If the bin overflowed before and was refilled
    /// since, or grew at its last overflow (the thread frees and reallocates batches larger
    /// than its stack), its capacity doubles (within `cap_max` and the thread's `GROWN_BYTES`), so the batch stays here
    /// instead of going half back to the slabs and being refilled. Otherwise the older half
    /// goes back, and a grown capacity that overflows again with no refill since its last
    /// overflow (frees alone: a teardown) halves toward the base: a thread that frees
    /// everything and then sleeps, where nothing reaches its cache, keeps about the base
    /// capacity of each class.
    #[cold]
    #[inline(never)]
    pub(super) fn push_full(&mut self, i: usize, p: usize) {
        if i >= NBINS {
            self.large_gave_back = i;
        }
        let cb = &mut self.bins[i];
        let (cycled, teardown) = (cb.overflowed && cb.refilled, !cb.refilled);
        cb.overflowed = true;
        // A growth keeps the refill mark, so the overflows of one batch double the capacity
        // until the batch fits; any other overflow needs a refill before the next growth.
        if !(cycled && self.grow(i)) {
            self.bins[i].refilled = false;
            let cap = self.bins[i].cap();
            // The capacity after this overflow: halved toward the base in a teardown.
            let keep_cap = if teardown && i < NBINS && cap > self.base[i] { (cap / 2).max(self.base[i]) } else { cap };
            let n = self.bins[i].ncached() as usize - keep_cap as usize / 2;
            self.flush(i, n);
            if keep_cap < cap {
                self.shrink_cap(i);
            }
        }
        let ok = self.bins[i].push(p);
        debug_assert!(ok);
    }

    /// Doubles the capacity of full bin `i` if the budgets allow.
    pub(super) fn grow(&mut self, i: usize) -> bool {
        let cb = &mut self.bins[i];
        let size = cb.size as usize;
        let room = (self.grown_budget - self.grown_bytes) / size;
        let cap = cb.cap() as usize;
        let new_cap = (cap * 2).min(cb.cap_max as usize).min(cap + room);
        if new_cap <= cap {
            return false;
        }
        self.grown_bytes += (new_cap - cap) * size;
        cb.set_cap(new_cap as u16);
        true
    }

    /// Halves the grown capacity of small bin `i` toward its base (never below what it holds).
    fn shrink_cap(&mut self, i: usize) {
        let base = self.base[i];
        let cb = &mut self.bins[i];
        let cap = cb.cap();
        let new_cap = (cap / 2).max(base).max(cb.ncached());
        self.grown_bytes -= (cap - new_cap) as usize * cb.size as usize;
        cb.set_cap(new_cap);
        cb.nfill = cb.nfill.min((new_cap / 2).max(1));
    }

    /// One GC event: `GC_VISITS` visits (jemalloc's policy), to the next classes in round-robin
    /// order: each gives back 3/4 of what it did not use since its previous visit, and halves
    /// its refill size (refills double it). A few classes per event keep the event cheap;
    /// most of a thread's 97 bins are empty at their base capacity, and their visit is inline
    /// here (the rest, `gc_visit`, saves registers for its calls; with one visit per event,
    /// pairs of 16 / 64 KiB, an event every 4 pairs, take 110 / 139 instructions per pair
    /// against 119 / 148 with the whole visit in `gc_visit` and 100 / 128 with no GC at all,
    /// callgrind; `GC_VISITS` has the figures for several).
    #[inline(always)]
    pub(super) fn gc_event(&mut self) {
        self.gc_at = self.allocated + GC_EVENT_BYTES;
        let mut i = self.gc_cursor;
        for _ in 0..GC_VISITS {
            // SAFETY: the cursor stays below NCB (it wraps to 0 below).
            let cb = unsafe { self.bins.get_unchecked(i) };
            // SAFETY: as above.
            if cb.ncached() == 0 && cb.cap() == unsafe { *self.base.get_unchecked(i) } {
                self.end_visit(i);
            } else {
                self.gc_visit(i);
            }
            i = if i + 1 == NCB { self.round_end() } else { i + 1 };
        }
        self.gc_cursor = i;
    }

    /// The end of a GC round robin (every bin visited once since the last): blocks left in
    /// the sparse buffers go back to their slabs, and the capacities follow the live caches
    /// (`rescale`), also down when threads exited. Returns the first bin of the next round.
    #[cold]
    #[inline(never)]
    fn round_end(&mut self) -> usize {
        if self.sparse_pending != 0 {
            self.flush_sparse_all();
        }
        self.rescale();
        0
    }

    /// `gc_event`'s visit of bin `i` when it holds blocks or has grown. A grown small bin is
    /// skipped until the thread allocated as many bytes as the bin can hold since its last
    /// visit (module header: a batch drains its stack over more than one round robin).
    #[inline(never)]
    fn gc_visit(&mut self, i: usize) {
        let base = self.base[i];
        let cb = &mut self.bins[i];
        if i < NBINS && cb.cap() > base && self.allocated.saturating_sub(self.visit_at[i]) < cb.cap() as u64 * cb.size as u64 {
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
        // between rounds are not enough: shrinking on them would make batches of 1 KiB flush
        // and regrow.)
        let cap = self.bins[i].cap();
        if cap > self.base[i] && (idle || n * 4 >= cap as usize * 3 / 4) {
            self.shrink_cap(i);
        }
        self.end_visit(i);
    }

    /// What every visit of bin `i` ends with: a new GC period starts for it (low-water mark,
    /// the count and clock idle detection and the grown-bin period compare with).
    #[inline(always)]
    fn end_visit(&mut self, i: usize) {
        let cb = &mut self.bins[i];
        cb.reset_low_water();
        self.visit_ncached[i] = cb.ncached();
        self.visit_at[i] = self.allocated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcache::current;

    #[test]
    fn capacity_grows_for_batches_and_gc_shrinks_it_back() {
        std::thread::spawn(|| {
            let bin = crate::metadata::size_class::size2bin(1024);
            for _ in 0..4 {
                let ps: std::vec::Vec<_> = (0..1000).map(|_| crate::front::alloc::malloc(1024)).collect();
                for &p in &ps {
                    crate::front::alloc::free(p, "free");
                }
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), 1024, "a 1000-block batch grows the 1 KiB class to its maximum");
            assert!(tc.bins[bin].ncached() >= 1000);
            // The class falls idle while others allocate: GC visits give its blocks back and
            // halve its capacity down to the base.
            for _ in 0..(16 * NCB * GC_BYTES as usize / 64) {
                crate::front::alloc::free(crate::front::alloc::malloc(64), "free");
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), tc.base[bin]);
            assert_eq!(tc.grown_bytes, 0);
            assert!(tc.bins[bin].ncached() < 64);
        })
        .join()
        .unwrap();
        // A thread that only frees (a consumer) never grows its cache: it would hoard blocks.
        let ps: std::vec::Vec<usize> = (0..3000).map(|_| crate::front::alloc::malloc(1024) as usize).collect();
        std::thread::spawn(move || {
            for &p in &ps {
                crate::front::alloc::free(p as *mut u8, "free");
            }
            let tc = current().unwrap();
            let bin = crate::metadata::size_class::size2bin(1024);
            assert_eq!(tc.bins[bin].cap(), tc.base[bin]);
            tc.validate();
        })
        .join()
        .unwrap();
    }

    /// A teardown (frees alone) neither grows a class nor keeps it grown: a thread that
    /// frees everything and sleeps holds about the base capacity of each class.
    #[test]
    fn a_teardown_leaves_the_base_capacity() {
        std::thread::spawn(|| {
            let bin = crate::metadata::size_class::size2bin(1024);
            // Batches that come back grow the class...
            for _ in 0..4 {
                let ps: std::vec::Vec<_> = (0..1000).map(|_| crate::front::alloc::malloc(1024)).collect();
                for &p in &ps {
                    crate::front::alloc::free(p, "free");
                }
            }
            assert_eq!(current().unwrap().bins[bin].cap(), 1024);
            // ... then the program builds a big structure and tears it down.
            let ps: std::vec::Vec<_> = (0..20_000).map(|_| crate::front::alloc::malloc(1024)).collect();
            for &p in &ps {
                crate::front::alloc::free(p, "free");
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), tc.base[bin], "a teardown keeps the class grown");
            assert!(tc.bins[bin].ncached() <= tc.base[bin]);
            assert_eq!(tc.grown_bytes, 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn batches_of_16k_blocks_stay_cached_and_drain_when_idle() {
        std::thread::spawn(|| {
            let bin = crate::metadata::size_class::size2bin(16384);
            let ps: &mut [*mut u8] = &mut [core::ptr::null_mut(); 1000];
            for _ in 0..6 {
                for p in ps.iter_mut() {
                    *p = crate::front::alloc::malloc(16384);
                }
                for &p in ps.iter() {
                    crate::front::alloc::free(p, "free");
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
                crate::front::alloc::free(crate::front::alloc::malloc(64), "free");
            }
            let tc = current().unwrap();
            tc.validate();
            assert_eq!(tc.bins[bin].cap(), tc.base[bin]);
            assert_eq!(tc.grown_bytes, 0);
            assert!(tc.bins[bin].ncached() <= tc.base[bin]);
        })
        .join()
        .unwrap();
    }
}
