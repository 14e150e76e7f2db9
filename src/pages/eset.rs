//! Extent set: the free extents of one arena in one page state, indexed by size.
//!
//! Bins: an exact bin for every page count below 512 (2 MiB), then 4 bins per doubling; a
//! bitmap of non-empty bins makes "smallest bin that can hold n pages" a few word scans
//! (O(1) in the number of extents). Exact bins give true best fit; in a quantized bin the
//! first 16 extents are compared and the smallest fitting one wins. Within a bin: LIFO, so
//! the most recently freed (cache-warm) range is reused first. The address index is the
//! rtree (first/last page of every free extent), used by `Pac` to coalesce. Every extent is
//! also on the set's age list (`lru_prev`/`lru_next`), oldest first: decay purges from its
//! head, so the pages freed longest ago go first.
//!
//! Sync: not thread-safe; the owning `Pac` lock protects everything here.

use crate::metadata::extent::{Extent, List, State};
use crate::foundation::util::lg_floor;

const EXACT: usize = 511;
const NSETBINS: usize = EXACT + 4 * (36 - 9) + 4;
const WORDS: usize = NSETBINS.div_ceil(64);
/// Extents compared when a quantized bin is searched.
const SCAN: usize = 16;

pub struct Eset {
    bins: [List; NSETBINS],
    nonempty: [u64; WORDS],
    /// The age list: oldest and newest extent (null when empty).
    lru_head: *mut Extent,
    lru_tail: *mut Extent,
    /// Pages in this set (stats: pdirty / pmuzzy / retained).
    pub npages: usize,
    /// Number of extents in this set.
    pub nextents: usize,
    pub state: State,
}

/// The bin holding extents of `pages` pages (quantized down).
#[inline]
fn bin_of(pages: usize) -> usize {
    debug_assert!(pages > 0);
    if pages <= EXACT {
        pages - 1
    } else {
        let lg = lg_floor(pages) as usize; // ≥ 9
        EXACT + (lg - 9) * 4 + ((pages >> (lg - 2)) & 3)
    }
}

/// Whether `pages` pages at an `align`-aligned address (a power of two) fit in
/// `[start, end)` (user-space addresses; `pages` pages are at most `isize::MAX` bytes).
#[inline]
pub fn fits_aligned(start: usize, end: usize, pages: usize, align: usize) -> bool {
    let at = crate::foundation::util::align_up(start, align);
    at <= end && end - at >= pages << crate::foundation::util::LG_PAGE
}

impl Eset {
    pub const fn new(state: State) -> Self {
        Eset {
            bins: [List::new(); NSETBINS],
            nonempty: [0; WORDS],
            lru_head: core::ptr::null_mut(),
            lru_tail: core::ptr::null_mut(),
            npages: 0,
            nextents: 0,
            state,
        }
    }

    /// Initializes a zeroed set in place (empty lists, zero counts): only the state is written.
    ///
    /// # Safety
    /// `this` points to zeroed memory nobody else sees yet.
    pub unsafe fn init_zeroed(this: *mut Self, state: State) {
        core::ptr::addr_of_mut!((*this).state).write(state);
    }

    /// Adds a free extent (already in this set's state, boundaries registered by the caller)
    /// as the newest of the set.
    ///
    /// # Safety
    /// `e` is a live descriptor in no list.
    pub unsafe fn insert(&mut self, e: *mut Extent) {
        self.insert_bin(e);
        (*e).lru_next = core::ptr::null_mut();
        (*e).lru_prev = self.lru_tail;
        if self.lru_tail.is_null() {
            self.lru_head = e;
        } else {
            (*self.lru_tail).lru_next = e;
        }
        self.lru_tail = e;
    }

    /// Adds a free extent as the oldest of the set (what is left of an extent a purge took
    /// part of keeps its age).
    ///
    /// # Safety
    /// As for `insert`.
    pub unsafe fn insert_oldest(&mut self, e: *mut Extent) {
        self.insert_bin(e);
        (*e).lru_prev = core::ptr::null_mut();
        (*e).lru_next = self.lru_head;
        if self.lru_head.is_null() {
            self.lru_tail = e;
        } else {
            (*self.lru_head).lru_prev = e;
        }
        self.lru_head = e;
    }

    unsafe fn insert_bin(&mut self, e: *mut Extent) {
        debug_assert!((*e).state() == self.state);
        let b = bin_of((*e).pages());
        self.bins[b].push(e);
        self.nonempty[b / 64] |= 1 << (b % 64);
        self.npages += (*e).pages();
        self.nextents += 1;
    }

    /// Removes `e` from the set.
    ///
    /// # Safety
    /// `e` is in this set.
    pub unsafe fn remove(&mut self, e: *mut Extent) {
        let b = bin_of((*e).pages());
        self.bins[b].remove(e);
        if self.bins[b].is_empty() {
            self.nonempty[b / 64] &= !(1 << (b % 64));
        }
        self.npages -= (*e).pages();
        self.nextents -= 1;
        let (p, n) = ((*e).lru_prev, (*e).lru_next);
        if p.is_null() {
            self.lru_head = n;
        } else {
            (*p).lru_next = n;
        }
        if n.is_null() {
            self.lru_tail = p;
        } else {
            (*n).lru_prev = p;
        }
        (*e).lru_prev = core::ptr::null_mut();
        (*e).lru_next = core::ptr::null_mut();
    }

    /// The extent that has been in the set longest (null when empty).
    pub fn oldest(&self) -> *mut Extent {
        self.lru_head
    }

    /// First non-empty bin ≥ `from`.
    fn next_nonempty(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        if w >= WORDS {
            return None;
        }
        let mut bits = self.nonempty[w] & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w >= WORDS {
                return None;
            }
            bits = self.nonempty[w];
        }
    }

    /// Removes and returns the best-fitting extent of at least `pages` pages, or null.
    pub fn take_fit(&mut self, pages: usize) -> *mut Extent {
        let found = self.find_fit(pages);
        if !found.is_null() {
            // SAFETY: `found` is in this set.
            unsafe { self.remove(found) };
        }
        found
    }

    /// The extent `take_fit(pages)` would take, left in the set; null if none fits.
    pub fn find_fit(&self, pages: usize) -> *mut Extent {
        let mut from = bin_of(pages);
        while let Some(b) = self.next_nonempty(from) {
            let found = if b < EXACT {
                self.bins[b].head
            } else {
                // SAFETY: walking a list we own under the Pac lock.
                unsafe { self.best_in_bin(b, pages) }
            };
            if !found.is_null() {
                return found;
            }
            from = b + 1;
        }
        core::ptr::null_mut()
    }

    /// The smallest extent found that holds `pages` pages at an `align`-aligned address
    /// (`align` a power of two ≥ PAGE), left in the set; null if none. Bins are searched from
    /// `pages` up, the first `SCAN` extents of each (an extent of `pages + align/PAGE - 1`
    /// pages always holds one, so the search ends at the first bin of such extents), and the
    /// first bin with a fitting extent gives its smallest. `Pac` looks at every extent before
    /// growing, so extents this search skips are not lost.
    pub fn find_fit_aligned(&self, pages: usize, align: usize) -> *mut Extent {
        if align <= crate::foundation::util::PAGE {
            return self.find_fit(pages);
        }
        let mut from = bin_of(pages);
        while let Some(b) = self.next_nonempty(from) {
            let mut best: *mut Extent = core::ptr::null_mut();
            let mut e = self.bins[b].head;
            let mut n = 0;
            // SAFETY: walking a list we own under the Pac lock.
            unsafe {
                while !e.is_null() && n < SCAN {
                    if fits_aligned((*e).addr, (*e).end(), pages, align) && (best.is_null() || (*e).pages() < (*best).pages()) {
                        best = e;
                    }
                    e = (*e).next;
                    n += 1;
                }
            }
            if !best.is_null() {
                return best;
            }
            from = b + 1;
        }
        core::ptr::null_mut()
    }

    /// Removes and returns `find_fit_aligned(pages, align)`, or null.
    pub fn take_fit_aligned(&mut self, pages: usize, align: usize) -> *mut Extent {
        let found = self.find_fit_aligned(pages, align);
        if !found.is_null() {
            // SAFETY: `found` is in this set.
            unsafe { self.remove(found) };
        }
        found
    }

    unsafe fn best_in_bin(&self, b: usize, pages: usize) -> *mut Extent {
        let mut best: *mut Extent = core::ptr::null_mut();
        let mut e = self.bins[b].head;
        let mut n = 0;
        while !e.is_null() && n < SCAN {
            if (*e).pages() >= pages && (best.is_null() || (*e).pages() < (*best).pages()) {
                best = e;
            }
            e = (*e).next;
            n += 1;
        }
        best
    }

    /// Removes and returns any extent (for purging), or null.
    pub fn pop_any(&mut self) -> *mut Extent {
        match self.next_nonempty(0) {
            Some(b) => {
                let e = self.bins[b].head;
                // SAFETY: `e` heads a non-empty bin of this set.
                unsafe { self.remove(e) };
                e
            }
            None => core::ptr::null_mut(),
        }
    }

    /// Checks the age list against the bins: every extent once, links consistent (tests).
    pub fn validate_lru(&self) {
        let mut n = 0;
        let mut prev: *mut Extent = core::ptr::null_mut();
        let mut e = self.lru_head;
        while !e.is_null() {
            // SAFETY: list members are live descriptors; the Pac lock is held.
            unsafe {
                assert_eq!((*e).lru_prev, prev, "age list links");
                assert_eq!((*e).state(), self.state);
                prev = e;
                e = (*e).lru_next;
            }
            n += 1;
            assert!(n <= self.nextents, "age list longer than the set");
        }
        assert_eq!(prev, self.lru_tail);
        assert_eq!(n, self.nextents, "age list misses extents");
    }

    /// Calls `f` on every extent (validators, stats).
    pub fn for_each(&self, mut f: impl FnMut(&Extent)) {
        for l in self.bins.iter() {
            let mut e = l.head;
            while !e.is_null() {
                // SAFETY: list members are live descriptors; the Pac lock is held.
                unsafe {
                    f(&*e);
                    e = (*e).next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::extent::ExtentPool;
    use crate::foundation::util::PAGE;

    fn mk(pool: &mut ExtentPool, addr: usize, pages: usize) -> *mut Extent {
        let e = pool.get();
        // SAFETY: fresh descriptor from the pool.
        unsafe {
            (*e).addr = addr;
            (*e).size = pages * PAGE;
            (*e).set_state(State::Dirty);
        }
        e
    }

    #[test]
    fn bins_are_monotonic() {
        let mut last = 0;
        for p in 1..(1usize << 22) {
            let b = bin_of(p);
            assert!(b >= last && b < NSETBINS);
            last = b;
        }
        assert!(bin_of(1 << 35) < NSETBINS);
        assert!(bin_of((1 << 36) - 1) < NSETBINS);
    }

    #[test]
    fn best_fit() {
        let mut pool = ExtentPool::new();
        let mut s = Eset::new(State::Dirty);
        for (i, p) in [1usize, 3, 8, 700, 900, 5000].iter().enumerate() {
            // SAFETY: fresh descriptors.
            unsafe { s.insert(mk(&mut pool, (i + 1) << 30, *p)) };
        }
        assert_eq!(s.npages, 1 + 3 + 8 + 700 + 900 + 5000);
        // SAFETY: returned descriptors are live.
        unsafe {
            assert_eq!((*s.take_fit(2)).pages(), 3);
            assert_eq!((*s.take_fit(2)).pages(), 8);
            assert_eq!((*s.take_fit(650)).pages(), 700);
            assert_eq!((*s.take_fit(800)).pages(), 900);
            assert!(s.take_fit(6000).is_null());
            assert_eq!((*s.take_fit(1)).pages(), 1);
            assert_eq!((*s.take_fit(1)).pages(), 5000);
        }
        assert!(s.take_fit(1).is_null());
        assert_eq!(s.npages, 0);
    }

    #[test]
    fn aligned_fit() {
        let mut pool = ExtentPool::new();
        let mut s = Eset::new(State::Dirty);
        let base = 1usize << 40;
        // 4 pages just past a 64 KiB boundary (no aligned block of 2 pages), 18 pages at a
        // 64 KiB boundary, 20 pages just past one (holds 2 aligned pages only from page 15 on).
        let (a, b, c) = (mk(&mut pool, base + PAGE, 4), mk(&mut pool, base + (1 << 20), 18), mk(&mut pool, base + (2 << 20) + PAGE, 20));
        // SAFETY: fresh descriptors; returned ones are live.
        unsafe {
            s.insert(a);
            s.insert(b);
            s.insert(c);
            assert_eq!(s.find_fit_aligned(2, 1 << 16), b, "the smallest extent holding an aligned block");
            assert_eq!(s.find_fit_aligned(3, PAGE), a, "page alignment: plain best fit");
            assert_eq!(s.take_fit_aligned(18, 1 << 16), b);
            assert_eq!(s.find_fit_aligned(5, 1 << 16), c, "20 pages from page 1 hold 5 aligned pages at page 16");
            assert!(s.find_fit_aligned(6, 1 << 16).is_null());
            assert!(s.find_fit_aligned(1, 1 << 30).is_null());
        }
    }
}
