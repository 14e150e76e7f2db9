//! An arena: the bins of every small class plus a page allocator, i.e. a self-contained heap.
//!
//! Contract: every extent belongs to exactly one arena (`Extent::arena`), and frees go back to
//! that arena whichever thread makes them. This issue ships one arena; the table is sized for
//! more (thread-to-arena assignment comes with thread caches).
//!
//! Sync: each bin has its lock, the page allocator has its lock (see `sync` for the order).

use crate::bin::Bin;
use crate::pac::Pac;
use crate::size_class::NBINS;

pub struct Arena {
    pub id: u8,
    pub bins: [Bin; NBINS],
    pub pac: Pac,
}

impl Arena {
    pub const fn new(id: u8) -> Self {
        let mut bins = [const { Bin::new(0) }; NBINS];
        let mut i = 0;
        while i < NBINS {
            bins[i] = Bin::new(i as u8);
            i += 1;
        }
        Arena { id, bins, pac: Pac::new(id) }
    }

    /// Checks every bin and the page allocator (tests, debugging).
    pub fn validate(&self) {
        for b in self.bins.iter() {
            b.lock.lock().validate();
        }
        self.pac.inner.lock().validate();
    }

    /// Takes every lock of the arena in rank order (fork prepare).
    pub fn prefork(&self) {
        for b in self.bins.iter() {
            b.lock.raw_lock();
        }
        self.pac.prefork();
    }

    pub fn postfork_parent(&self) {
        self.pac.postfork_parent();
        for b in self.bins.iter().rev() {
            // SAFETY: taken in `prefork` by this thread.
            unsafe { b.lock.force_unlock() };
        }
    }

    pub fn postfork_child(&self) {
        self.pac.postfork_child();
        for b in self.bins.iter() {
            // SAFETY: fork child, single thread, after `prefork`.
            unsafe { b.lock.reset_after_fork() };
        }
    }
}

/// The arenas. Sync: immutable statics (interior locks).
pub static ARENAS: [Arena; 1] = [Arena::new(0)];

/// The arena with index `i` (as stored in an extent).
#[inline(always)]
pub fn get(i: u8) -> &'static Arena {
    &ARENAS[i as usize % ARENAS.len()]
}

/// The arena the calling thread allocates from.
#[inline(always)]
pub fn choose() -> &'static Arena {
    &ARENAS[0]
}
