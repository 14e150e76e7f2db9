//! Statistics snapshots for `mallctl("stats.*")` and `malloc_stats_print`.
//!
//! Contract: every figure is read live (each arena's bins, then its page allocator, under
//! their locks, one at a time), so one snapshot is consistent per arena, and the headline
//! relations hold: allocated ≤ active ≤ resident, active ≤ mapped. Definitions follow
//! jemalloc 5.3 (reference/jemalloc-compat.md §5):
//! - allocated = Σ small regions handed out (thread-cache-held ones included) × class size
//!   + Σ live large extents' bytes;
//! - active = pages of live slabs and live large extents;
//! - metadata = bytes `base` mapped (descriptors, page-map leaves, arenas, thread caches);
//! - resident = metadata + active + dirty pages (an upper bound: metadata pages are counted
//!   as resident whether touched or not);
//! - mapped = metadata + active + dirty + muzzy; retained = purged address space kept.

use crate::objects::arena::{self, Arena};
use crate::metadata::base::BASE;
use crate::pages::pac::PurgeStats;
use crate::metadata::size_class::{bin_size, NBINS, SLAB_PAGES};
use crate::foundation::util::PAGE;

#[derive(Clone, Copy, Default)]
pub struct BinStats {
    pub curregs: usize,
    pub curslabs: usize,
    pub nonfull_slabs: usize,
    pub nmalloc: u64,
    pub ndalloc: u64,
}

#[derive(Clone, Copy)]
pub struct ArenaStats {
    pub nthreads: u32,
    /// Decay times (merged: the defaults for new arenas).
    pub dirty_decay_ms: isize,
    pub muzzy_decay_ms: isize,
    /// Purges of the dirty and the muzzy set.
    pub purged: [PurgeStats; 2],
    pub pactive: usize,
    pub pdirty: usize,
    pub pmuzzy: usize,
    pub pretained: usize,
    pub small_allocated: usize,
    pub large_allocated: usize,
    pub small_nmalloc: u64,
    pub small_ndalloc: u64,
    pub bins: [BinStats; NBINS],
}

impl ArenaStats {
    /// Bytes of pages the arena holds from the OS (active, dirty, muzzy).
    pub fn mapped(&self) -> usize {
        (self.pactive + self.pdirty + self.pmuzzy) * PAGE
    }

    /// Bytes of pages that may be resident (active and dirty).
    pub fn resident(&self) -> usize {
        (self.pactive + self.pdirty) * PAGE
    }

    const fn zero() -> Self {
        ArenaStats {
            nthreads: 0,
            dirty_decay_ms: 0,
            muzzy_decay_ms: 0,
            purged: [PurgeStats { npurge: 0, nmadvise: 0, purged: 0 }; 2],
            pactive: 0,
            pdirty: 0,
            pmuzzy: 0,
            pretained: 0,
            small_allocated: 0,
            large_allocated: 0,
            small_nmalloc: 0,
            small_ndalloc: 0,
            bins: [BinStats { curregs: 0, curslabs: 0, nonfull_slabs: 0, nmalloc: 0, ndalloc: 0 }; NBINS],
        }
    }

    fn add(&mut self, o: &ArenaStats) {
        self.nthreads += o.nthreads;
        for (p, op) in self.purged.iter_mut().zip(o.purged.iter()) {
            p.npurge += op.npurge;
            p.nmadvise += op.nmadvise;
            p.purged += op.purged;
        }
        self.pactive += o.pactive;
        self.pdirty += o.pdirty;
        self.pmuzzy += o.pmuzzy;
        self.pretained += o.pretained;
        self.small_allocated += o.small_allocated;
        self.large_allocated += o.large_allocated;
        self.small_nmalloc += o.small_nmalloc;
        self.small_ndalloc += o.small_ndalloc;
        for (b, ob) in self.bins.iter_mut().zip(o.bins.iter()) {
            b.curregs += ob.curregs;
            b.curslabs += ob.curslabs;
            b.nonfull_slabs += ob.nonfull_slabs;
            b.nmalloc += ob.nmalloc;
            b.ndalloc += ob.ndalloc;
        }
    }
}

/// One arena's figures.
pub fn arena(a: &Arena) -> ArenaStats {
    let mut s = ArenaStats::zero();
    s.nthreads = arena::nthreads(a.id as usize);
    let mut slab_pages = 0;
    for (j, b) in a.bins.iter().enumerate() {
        let g = b.lock.lock();
        s.bins[j] = BinStats {
            curregs: g.curregs,
            curslabs: g.nslabs,
            nonfull_slabs: g.nonfull_slabs(),
            nmalloc: g.nmalloc,
            ndalloc: g.ndalloc,
        };
        slab_pages += g.nslabs * SLAB_PAGES[j] as usize;
        s.small_allocated += g.curregs * bin_size(j);
        s.small_nmalloc += g.nmalloc;
        s.small_ndalloc += g.ndalloc;
    }
    let g = a.pac.lock();
    (s.dirty_decay_ms, s.muzzy_decay_ms) = g.decay_ms();
    s.purged = g.purged;
    s.pactive = g.active_pages;
    (s.pdirty, s.pmuzzy, s.pretained) = g.free_pages();
    // Slabs counted under the bin locks may have changed since; clamp rather than underflow.
    s.large_allocated = g.active_pages.saturating_sub(slab_pages) * PAGE;
    s
}

/// Every arena merged (index 4096).
pub fn merged() -> ArenaStats {
    let mut m = ArenaStats::zero();
    (m.dirty_decay_ms, m.muzzy_decay_ms) = crate::pages::decay::arena_defaults();
    for a in arena::all() {
        m.add(&arena(a));
    }
    m
}

pub struct Global {
    pub allocated: usize,
    pub active: usize,
    pub metadata: usize,
    pub resident: usize,
    pub mapped: usize,
    pub retained: usize,
}

pub fn global() -> Global {
    let m = merged();
    let meta = BASE.mapped();
    let active = m.pactive * PAGE;
    Global {
        allocated: (m.small_allocated + m.large_allocated).min(active),
        active,
        metadata: meta,
        resident: meta + active + m.pdirty * PAGE,
        mapped: meta + (m.pactive + m.pdirty + m.pmuzzy) * PAGE,
        retained: m.pretained * PAGE,
    }
}
