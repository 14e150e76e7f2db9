//! Page allocator of one arena: hands out page-aligned extents (for slabs and large blocks),
//! takes them back, splits, coalesces, grows from the OS; `purge` gives free pages back.
//!
//! Policy: allocation takes the best fit from the dirty set, then muzzy, then retained (for
//! an aligned request, the smallest extent that holds the block at an aligned address), then
//! a run of adjacent free extents of different states that holds it, then reserves a new
//! chunk of address space (64 MiB, untouched so it costs no RSS; smaller ones down to the
//! request's size when an address-space limit refuses that). A freed
//! extent becomes dirty and is coalesced with free neighbours of the same state and arena.
//! Nothing is purged on the free path: dirty pages decay to muzzy or retained over
//! `dirty_decay_ms` (`decay`, run by `purge` from the background thread or from slow paths
//! that call `objects::arena::Arena::tick`), and `purge` in `All` mode (malloc_trim,
//! `arena.<i>.purge`) turns every dirty and muzzy extent into retained at once. Address space
//! is never unmapped once in use (a reservation `grow` cannot register is given back at once).
//!
//! Sync: one lock per arena (rank 4, after bin locks); every method of `PacInner` runs under
//! it (through a `PacGuard`, which publishes the figures lock-free readers use when it is
//! dropped), and so does every rtree write for this arena's extents. `purge` calls madvise
//! with the lock released.

use crate::metadata::extent::{Extent, ExtentPool, List, State};
use crate::pages::decay::Decay;
use crate::pages::eset::Eset;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::metadata::rtree;
use crate::foundation::sync::{Mutex, MutexGuard, Rank};
use crate::foundation::sys;
use crate::foundation::util::{align_up, LG_PAGE, PAGE};

/// Smallest reservation from the OS.
const CHUNK: usize = 64 << 20;

/// Address ranges ever reserved, to tell "not ours" from "ours but not live" on misuse.
/// Append-only; read only on the error path. Sync: slot index by atomic fetch_add, then the
/// range is stored with Release before `RES_LEN` covers it.
mod reservations {
    use core::sync::atomic::{AtomicUsize, Ordering};
    const CAP: usize = 4096;
    #[allow(clippy::declare_interior_mutable_const)]
    const Z: AtomicUsize = AtomicUsize::new(0);
    static START: [AtomicUsize; CAP] = [Z; CAP];
    static END: [AtomicUsize; CAP] = [Z; CAP];
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static LEN: AtomicUsize = AtomicUsize::new(0);

    pub fn record(start: usize, end: usize) {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        if i < CAP {
            START[i].store(start, Ordering::Relaxed);
            END[i].store(end, Ordering::Relaxed);
            LEN.fetch_max(i + 1, Ordering::Release);
        }
    }

    /// Whether `addr` lies in a range we reserved (true when the table overflowed).
    pub fn contains(addr: usize) -> bool {
        let n = LEN.load(Ordering::Acquire);
        if NEXT.load(Ordering::Relaxed) > CAP {
            return true;
        }
        (0..n).any(|i| {
            START[i].load(Ordering::Relaxed) <= addr && addr < END[i].load(Ordering::Relaxed)
        })
    }
}
pub use reservations::contains as is_reserved;

pub struct PacInner {
    arena: u8,
    pub(super) dirty: Eset,
    pub(super) muzzy: Eset,
    retained: Eset,
    pool: ExtentPool,
    /// Pages in active extents (stats.active).
    pub active_pages: usize,
    /// Bytes reserved from the OS (stats.mapped).
    pub mapped: usize,
    /// Decay of the dirty and the muzzy set.
    pub(super) decay_dirty: Decay,
    pub(super) decay_muzzy: Decay,
    /// Extents a purge took out of their set (state `Purging`) while it madvises them,
    /// linked through `prev`/`next`: a fork child, whose purging thread is gone, puts them
    /// back (`postfork_child`).
    pub(super) stash: List,
    /// A decay pass is running (one at a time, so that two do not purge what one owes).
    pub(super) decaying: bool,
    /// Purge counts of the dirty and the muzzy set (`stats.arenas.<i>.{dirty,muzzy}_*`).
    pub purged: [PurgeStats; 2],
    /// Pages that became dirty since the guard last published (`Pac::added`).
    added: usize,
}

/// What purging one free set did: passes that purged something, madvise calls, pages.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PurgeStats {
    pub npurge: u64,
    pub nmadvise: u64,
    pub purged: u64,
}

// SAFETY: the raw descriptor pointers inside are owned by this arena and only touched under
// the `Pac` lock.
unsafe impl Send for PacInner {}

pub struct Pac {
    inner: Mutex<PacInner>,
    /// When decay next needs a look (ns of `decay::now_ns`; 0: now; u64::MAX: nothing to
    /// decay). Sync: written by the lock's holder as it unlocks (`PacGuard`), read without it.
    deadline: AtomicU64,
    /// Dirty pages (stats, the background thread's start), and pages that became dirty since
    /// the last decay pass (early wake-up). Sync: as `deadline`; `added` is reset by `purge`.
    dirty_pages: AtomicUsize,
    added: AtomicUsize,
    /// Active pages (the background thread's start). Sync: as `deadline`.
    active_pages: AtomicUsize,
}

/// The Pac lock held: derefs to `PacInner`; on drop, publishes the decay deadline and the
/// dirty page counts for lock-free readers, then unlocks.
pub struct PacGuard<'a> {
    pac: &'a Pac,
    g: MutexGuard<'a, PacInner>,
}

impl core::ops::Deref for PacGuard<'_> {
    type Target = PacInner;
    fn deref(&self) -> &PacInner {
        &self.g
    }
}

impl core::ops::DerefMut for PacGuard<'_> {
    fn deref_mut(&mut self) -> &mut PacInner {
        &mut self.g
    }
}

impl Drop for PacGuard<'_> {
    fn drop(&mut self) {
        let g = &mut *self.g;
        let deadline = g.decay_dirty.deadline(g.dirty.npages).min(g.decay_muzzy.deadline(g.muzzy.npages));
        // SeqCst: see `decay::purgers::Slot`.
        self.pac.deadline.store(deadline, core::sync::atomic::Ordering::SeqCst);
        self.pac.dirty_pages.store(g.dirty.npages, Relaxed);
        self.pac.active_pages.store(g.active_pages, Relaxed);
        if g.added != 0 {
            self.pac.added.fetch_add(core::mem::take(&mut g.added), Relaxed);
        }
    }
}

impl Pac {
    pub const fn new(arena: u8) -> Self {
        Pac {
            inner: Mutex::ranked(Rank::Pac, PacInner {
                arena,
                dirty: Eset::new(State::Dirty),
                muzzy: Eset::new(State::Muzzy),
                retained: Eset::new(State::Retained),
                pool: ExtentPool::new(),
                active_pages: 0,
                mapped: 0,
                decay_dirty: Decay::new(crate::pages::decay::DEFAULT_DIRTY_MS),
                decay_muzzy: Decay::new(crate::pages::decay::DEFAULT_MUZZY_MS),
                stash: List::new(),
                decaying: false,
                purged: [PurgeStats { npurge: 0, nmadvise: 0, purged: 0 }; 2],
                added: 0,
            }),
            deadline: AtomicU64::new(u64::MAX),
            dirty_pages: AtomicUsize::new(0),
            added: AtomicUsize::new(0),
            active_pages: AtomicUsize::new(0),
        }
    }

    /// Takes the lock.
    #[inline]
    pub fn lock(&self) -> PacGuard<'_> {
        PacGuard { pac: self, g: self.inner.lock() }
    }

    /// When decay next needs a look (ns; u64::MAX: never), read without the lock.
    #[inline]
    pub fn deadline(&self) -> u64 {
        self.deadline.load(core::sync::atomic::Ordering::SeqCst)
    }

    /// Dirty pages, read without the lock.
    #[inline]
    pub fn dirty_pages(&self) -> usize {
        self.dirty_pages.load(Relaxed)
    }

    /// Active pages, read without the lock.
    #[inline]
    pub fn active_pages(&self) -> usize {
        self.active_pages.load(Relaxed)
    }

    /// Pages that became dirty since the last decay pass, read without the lock.
    #[inline]
    pub fn added_pages(&self) -> usize {
        self.added.load(Relaxed)
    }

    /// Starts counting `added_pages` again (a background thread's pass over the arena).
    pub fn reset_added(&self) {
        self.added.store(0, Relaxed);
    }
}

impl Pac {
    /// Initializes a zeroed `Pac` in place for arena `arena` (arenas made at run time live in
    /// `base` memory, which is zeroed; building the 15 KiB value on the stack first could
    /// overflow a small thread stack).
    ///
    /// # Safety
    /// `this` points to zeroed memory nobody else sees yet.
    pub unsafe fn init_zeroed(this: *mut Pac, arena: u8) {
        let inner = Mutex::init_zeroed(core::ptr::addr_of_mut!((*this).inner), Rank::Pac);
        core::ptr::addr_of_mut!((*inner).arena).write(arena);
        Eset::init_zeroed(core::ptr::addr_of_mut!((*inner).dirty), State::Dirty);
        Eset::init_zeroed(core::ptr::addr_of_mut!((*inner).muzzy), State::Muzzy);
        Eset::init_zeroed(core::ptr::addr_of_mut!((*inner).retained), State::Retained);
        let (dirty_ms, muzzy_ms) = crate::pages::decay::arena_defaults();
        core::ptr::addr_of_mut!((*inner).decay_dirty).write(Decay::new(dirty_ms));
        core::ptr::addr_of_mut!((*inner).decay_muzzy).write(Decay::new(muzzy_ms));
        core::ptr::addr_of_mut!((*this).deadline).write(AtomicU64::new(u64::MAX));
    }
}

impl PacInner {
    pub(super) fn set_of(&mut self, s: State) -> &mut Eset {
        match s {
            State::Dirty => &mut self.dirty,
            State::Muzzy => &mut self.muzzy,
            _ => &mut self.retained,
        }
    }

    /// The (dirty, muzzy) decay times.
    pub fn decay_ms(&self) -> (isize, isize) {
        (self.decay_dirty.ms(), self.decay_muzzy.ms())
    }

    /// Pages in the dirty / muzzy / retained sets.
    pub fn free_pages(&self) -> (usize, usize, usize) {
        (self.dirty.npages, self.muzzy.npages, self.retained.npages)
    }

    /// Allocates `pages` pages aligned to `align` bytes (power of two ≥ PAGE). For a slab
    /// (`slab_bin = Some(bin)`) every page is registered, for a large block the first and last.
    /// Returns an active extent, or null when the OS refuses memory.
    pub fn alloc(&mut self, pages: usize, align: usize, slab_bin: Option<u8>) -> *mut Extent {
        self.alloc_in(pages, align, slab_bin, true)
    }

    /// `alloc` if `any`; else from the dirty set alone (resident pages; null when no dirty
    /// extent fits).
    ///
    /// The first extent that holds the block at an aligned address, by set (dirty, muzzy,
    /// retained) and by size within a set (`Eset::find_fit_aligned`): an aligned request
    /// reuses a freed block of its size whatever state decay has moved it to. Only then,
    /// before the OS is asked for more, a run of adjacent free extents of different states
    /// (`take_run`: an aligned block carved from retained address space leaves retained lead
    /// and trail pieces beside the block, which become dirty when freed), then `grow`.
    fn alloc_in(&mut self, pages: usize, align: usize, slab_bin: Option<u8>, any: bool) -> *mut Extent {
        debug_assert!(pages > 0 && align >= PAGE && align.is_power_of_two());
        let mut e = self.dirty.take_fit_aligned(pages, align);
        if !e.is_null() {
            self.decay_dirty.note_reused(pages);
        } else if any {
            e = self.muzzy.take_fit_aligned(pages, align);
            if !e.is_null() {
                self.decay_muzzy.note_reused(pages);
            } else {
                e = self.retained.take_fit_aligned(pages, align);
            }
        }
        if e.is_null() && any {
            e = self.take_run(pages, align);
        }
        if e.is_null() {
            if !any || !self.grow(pages + (align >> LG_PAGE) - 1) {
                return e;
            }
            e = self.retained.take_fit_aligned(pages, align);
            if e.is_null() {
                return e;
            }
        }
        // SAFETY: `e` was just removed from a set; we own it and the lock.
        unsafe {
            let lead = (align_up((*e).addr, align) - (*e).addr) >> LG_PAGE;
            if lead > 0 {
                let t = self.split(e, lead);
                if t.is_null() {
                    let st = (*e).state();
                    self.set_of(st).insert(e);
                    return t;
                }
                let st = (*e).state();
                self.set_of(st).insert(e);
                e = t;
            }
            if (*e).pages() > pages {
                let t = self.split(e, pages);
                if !t.is_null() {
                    let st = (*t).state();
                    self.set_of(st).insert(t);
                }
                // On descriptor exhaustion the block is simply larger than asked; fine.
            }
            (*e).set_state(State::Active);
            (*e).loose_size.store(false, core::sync::atomic::Ordering::Relaxed);
            self.active_pages += (*e).pages();
            match slab_bin {
                Some(bin) => {
                    (*e).is_slab = true;
                    (*e).bin = bin;
                    crate::pages::slab_map::register(e, bin as usize);
                }
                None => (*e).is_slab = false,
            }
        }
        e
    }

    /// `out.len() + 1` large blocks of `pages` pages each, in the order block-by-block
    /// `alloc` would place them, with one best-fit search per free extent used instead of
    /// one per block: while the dirty set has room, its best fit for one block gives as many
    /// blocks as it holds at once (each remainder would be the best fit for the next block:
    /// nothing smaller holds one), the rest come one by one from `alloc`. `out` gets the
    /// first blocks (active extents of exactly `pages` pages); the returned extent is the
    /// last (highest address of its run, so that it borders what is left of the free extent
    /// and realloc can grow it in place), null when the OS refuses memory; the count is how
    /// many of `out` were filled (all of them but on failure; a block may be larger than
    /// asked when descriptors run out, as in `alloc`). Carving runs from any extent that
    /// holds them all instead gives larson 26.2 MiB peak RSS against 24.3 (holes left
    /// unfilled).
    pub fn alloc_blocks(&mut self, pages: usize, out: &mut [*mut Extent]) -> (*mut Extent, usize) {
        let n = out.len();
        let mut got = 0;
        loop {
            let fit = self.dirty.find_fit(pages);
            if fit.is_null() {
                break;
            }
            // SAFETY: a descriptor in the dirty set; we hold the lock.
            let k = (unsafe { (*fit).pages() } / pages).min(n + 1 - got);
            // Takes `fit` (or one of its size: nothing smaller holds `pages`).
            let mut rest = self.alloc_in(k * pages, PAGE, None, false);
            if rest.is_null() {
                break;
            }
            loop {
                if got == n {
                    return (rest, got);
                }
                // SAFETY: `rest` is an active extent of at least `pages` pages that we own;
                // we hold the lock.
                unsafe {
                    if (*rest).pages() <= pages {
                        out[got] = rest;
                        got += 1;
                        break;
                    }
                    let t = self.split(rest, pages);
                    if t.is_null() {
                        return (rest, got);
                    }
                    (*t).is_slab = false;
                    out[got] = rest;
                    got += 1;
                    rest = t;
                }
            }
        }
        while got < n {
            let x = self.alloc(pages, PAGE, None);
            if x.is_null() {
                return (x, got);
            }
            out[got] = x;
            got += 1;
        }
        (self.alloc(pages, PAGE, None), got)
    }

    /// Joins the active large extents `a` and `b` into one if they are adjacent (either
    /// order): returns the joined extent (the lower one's descriptor; the other goes back to
    /// the pool), or null (nothing changed). A thread cache's flush joins blocks it refilled
    /// together, so that they go back with one coalescing insert (`dalloc`) instead of one
    /// each: batches of 64 KiB take 30.5 ns against 43.1 without joining.
    ///
    /// # Safety
    /// `a` and `b` are live descriptors of this arena owned by the caller (not in any set).
    pub unsafe fn join(&mut self, a: *mut Extent, b: *mut Extent) -> *mut Extent {
        // SAFETY: as the caller promises; we hold the lock.
        unsafe {
            let large_active = |e: *mut Extent| (*e).state() == State::Active && !(*e).is_slab;
            if !large_active(a) || !large_active(b) {
                return core::ptr::null_mut();
            }
            let (lo, hi) = if (*a).end() == (*b).addr {
                (a, b)
            } else if (*b).end() == (*a).addr {
                (b, a)
            } else {
                return core::ptr::null_mut();
            };
            self.merge(lo, hi);
            lo
        }
    }

    /// The free extent of this arena that starts at `addr` (in a set: dirty, muzzy or
    /// retained), or null.
    fn free_at(&self, addr: usize) -> *mut Extent {
        let n = rtree::lookup(addr);
        // SAFETY: registered descriptors are live; we hold the lock that guards their fields.
        let free = !n.is_null()
            && unsafe {
                (*n).addr == addr
                    && (*n).arena == self.arena
                    && matches!((*n).state(), State::Dirty | State::Muzzy | State::Retained)
            };
        if free {
            n
        } else {
            core::ptr::null_mut()
        }
    }

    /// The block of `pages` pages aligned to `align` at the lowest aligned address of the
    /// shortest run of adjacent free extents (any states) that holds one, out of every set:
    /// the run's extents that the block overlaps are joined into it (its `zeroed` only if
    /// all of theirs are), the parts of them outside it go back to their sets in their own
    /// states. Null when no run holds the block or no descriptor is left for the two splits.
    /// Looks at every free extent once (each run is walked from its first extent): the
    /// fallback before growing, not the common path.
    fn take_run(&mut self, pages: usize, align: usize) -> *mut Extent {
        let size = pages << LG_PAGE;
        // (run length, first extent, block address) of the best run so far.
        let mut best: (usize, *mut Extent, usize) = (usize::MAX, core::ptr::null_mut(), 0);
        for set in [&self.dirty, &self.muzzy, &self.retained] {
            set.for_each(|e| {
                if e.addr >= PAGE && !self.free_at_end(e.addr).is_null() {
                    return; // not the first extent of its run
                }
                let at = align_up(e.addr, align);
                let mut end = e.end();
                loop {
                    if at <= end && end - at >= size {
                        if end - e.addr < best.0 {
                            best = (end - e.addr, e as *const Extent as *mut Extent, at);
                        }
                        return;
                    }
                    let n = self.free_at(end);
                    if n.is_null() {
                        return;
                    }
                    // SAFETY: a free extent of this arena; we hold the lock.
                    end = unsafe { (*n).end() };
                }
            });
        }
        let (_, mut x, at) = best;
        if x.is_null() {
            return x;
        }
        // Two descriptors for the splits, taken and given back, so that neither can fail.
        let (d1, d2) = (self.pool.get(), self.pool.get());
        // SAFETY: descriptors just taken from the pool, referenced by nothing.
        unsafe {
            if !d1.is_null() {
                self.pool.put(d1);
            }
            if !d2.is_null() {
                self.pool.put(d2);
            }
        }
        if d1.is_null() || d2.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: `x` and the extents after it are free extents of this arena in their sets;
        // we hold the lock, and the two splits below find their descriptors in the pool.
        unsafe {
            while (*x).end() <= at {
                x = self.free_at((*x).end());
            }
            let st = (*x).state();
            self.set_of(st).remove(x);
            if (*x).addr < at {
                let t = self.split(x, (at - (*x).addr) >> LG_PAGE);
                self.set_of(st).insert(x);
                x = t;
            }
            while (*x).end() < at + size {
                let n = self.free_at((*x).end());
                let nst = (*n).state();
                self.set_of(nst).remove(n);
                if (*n).end() > at + size {
                    let t = self.split(n, (at + size - (*n).addr) >> LG_PAGE);
                    self.set_of(nst).insert(t);
                }
                self.merge(x, n);
            }
            if (*x).end() > at + size {
                let t = self.split(x, pages);
                let st = (*t).state();
                self.set_of(st).insert(t);
            }
        }
        x
    }

    /// The free extent of this arena that ends at `addr` (the one before `addr`), or null.
    fn free_at_end(&self, addr: usize) -> *mut Extent {
        let p = rtree::lookup(addr - PAGE);
        // SAFETY: registered descriptors are live; we hold the lock.
        if !p.is_null() && unsafe { (*p).end() } == addr {
            // SAFETY: as above.
            self.free_at(unsafe { (*p).addr })
        } else {
            core::ptr::null_mut()
        }
    }

    /// Reserves address space for at least `pages` pages and adds it to the retained set: a
    /// chunk of `CHUNK` bytes (the request rounded up to 2 MiB if larger) or, when the OS
    /// refuses that (an address-space limit), halved sizes down to the request itself. False
    /// when no size could be reserved, or when the range's page-map leaves or its descriptor
    /// cannot be had; the range is then unmapped again.
    fn grow(&mut self, pages: usize) -> bool {
        let want = match pages.checked_mul(PAGE) {
            Some(b) if b <= crate::foundation::util::MAX_REQUEST => b,
            _ => return false,
        };
        let e = self.pool.get();
        if e.is_null() {
            return false;
        }
        let mut size = if want <= CHUNK { CHUNK } else { align_up(want, 2 << 20) };
        let p = loop {
            let p = sys::reserve(size) as usize;
            if p != 0 {
                break p;
            }
            if size == want {
                // SAFETY: `e` came from the pool just now and nothing refers to it.
                unsafe { self.pool.put(e) };
                return false;
            }
            size = align_up(size / 2, PAGE).max(want);
        };
        if !rtree::ensure(p, size) {
            sys::release(p, size);
            // SAFETY: as above.
            unsafe { self.pool.put(e) };
            return false;
        }
        reservations::record(p, p + size);
        self.mapped += size;
        // SAFETY: fresh descriptor, exclusively ours.
        unsafe {
            (*e).addr = p;
            (*e).size = size;
            (*e).arena = self.arena;
            (*e).zeroed = true;
            (*e).set_state(State::Retained);
            rtree::set(p, e);
            rtree::set((*e).last_page(), e);
            self.insert_coalesced(e);
        }
        true
    }

    /// Splits `e` after `lead` pages; `e` keeps the head, the returned descriptor the tail
    /// (same state, arena, zeroed). Boundaries of both are registered. Null when out of
    /// descriptors (then `e` is unchanged).
    pub(super) unsafe fn split(&mut self, e: *mut Extent, lead: usize) -> *mut Extent {
        debug_assert!(lead > 0 && lead < (*e).pages());
        let t = self.pool.get();
        if t.is_null() {
            return t;
        }
        (*t).addr = (*e).addr + (lead << LG_PAGE);
        (*t).size = (*e).size - (lead << LG_PAGE);
        (*t).arena = (*e).arena;
        (*t).zeroed = (*e).zeroed;
        (*t).set_state((*e).state());
        (*e).size = lead << LG_PAGE;
        rtree::set((*e).last_page(), e);
        rtree::set((*t).addr, t);
        rtree::set((*t).last_page(), t);
        t
    }

    /// The free neighbour of `e` at `addr` that may be merged with it, or null.
    unsafe fn mergeable(&self, addr: usize, state: State) -> *mut Extent {
        let n = rtree::lookup(addr);
        if !n.is_null() && (*n).state() == state && (*n).arena == self.arena {
            n
        } else {
            core::ptr::null_mut()
        }
    }

    /// Appends `b` (which starts where `a` ends) to `a`, fixing the rtree and recycling `b`.
    unsafe fn merge(&mut self, a: *mut Extent, b: *mut Extent) {
        debug_assert!((*a).end() == (*b).addr);
        if (*a).size > PAGE {
            rtree::set((*a).last_page(), core::ptr::null_mut());
        }
        if (*b).size > PAGE {
            rtree::set((*b).addr, core::ptr::null_mut());
        }
        (*a).size += (*b).size;
        (*a).zeroed = (*a).zeroed && (*b).zeroed;
        rtree::set((*a).last_page(), a);
        self.pool.put(b);
    }

    /// Inserts the free extent `e` into the set of its state after merging it with free
    /// neighbours of the same state. `e`'s boundaries are registered; its interior is not.
    pub(super) unsafe fn insert_coalesced(&mut self, mut e: *mut Extent) {
        let st = (*e).state();
        if (*e).addr >= PAGE {
            let p = self.mergeable((*e).addr - PAGE, st);
            if !p.is_null() && (*p).end() == (*e).addr {
                self.set_of(st).remove(p);
                self.merge(p, e);
                e = p;
            }
        }
        let n = self.mergeable((*e).end(), st);
        if !n.is_null() && (*n).addr == (*e).end() {
            self.set_of(st).remove(n);
            self.merge(e, n);
        }
        self.set_of(st).insert(e);
    }

    /// Takes back an active extent (a large block or an emptied slab): it becomes dirty.
    /// Returns false if `e` was not active (a double free; the caller reports it).
    ///
    /// # Safety
    /// `e` is a live descriptor of this arena, owned by the caller (not in any set).
    pub unsafe fn dalloc(&mut self, e: *mut Extent) -> bool {
        // SAFETY: `e` is a descriptor of this arena; we hold the lock.
        unsafe {
            if (*e).state() != State::Active {
                return false;
            }
            if (*e).is_slab {
                crate::pages::slab_map::unregister(e, (*e).bin as usize);
            }
            (*e).is_slab = false;
            (*e).zeroed = false;
            (*e).set_state(State::Dirty);
            self.active_pages -= (*e).pages();
            self.added += (*e).pages();
            self.insert_coalesced(e);
        }
        true
    }

    /// Grows the active large extent `e` in place to `pages` pages by taking the free extent
    /// that follows it. Returns false (nothing changed) if that is not possible.
    ///
    /// # Safety
    /// `e` is a live descriptor of this arena, owned by the caller (not in any set).
    pub unsafe fn expand(&mut self, e: *mut Extent, pages: usize) -> bool {
        // SAFETY: `e` is an active large extent owned by the caller; we hold the lock.
        unsafe {
            let extra = pages - (*e).pages();
            let n = rtree::lookup((*e).end());
            if n.is_null()
                || !(*n).state().is_free()
                || (*n).arena != self.arena
                || (*n).addr != (*e).end()
                || (*n).pages() < extra
            {
                return false;
            }
            let st = (*n).state();
            self.set_of(st).remove(n);
            match st {
                State::Dirty => self.decay_dirty.note_reused(extra),
                State::Muzzy => self.decay_muzzy.note_reused(extra),
                _ => {}
            }
            if (*n).pages() > extra {
                let t = self.split(n, extra);
                if t.is_null() {
                    self.set_of(st).insert(n);
                    return false;
                }
                self.set_of(st).insert(t);
            }
            self.merge(e, n);
            self.active_pages += extra;
        }
        true
    }

    /// Shrinks the active large extent `e` in place to `pages` pages; the tail becomes dirty.
    /// Returns false if no descriptor was available (nothing changed).
    ///
    /// # Safety
    /// `e` is a live descriptor of this arena, owned by the caller (not in any set).
    pub unsafe fn shrink(&mut self, e: *mut Extent, pages: usize) -> bool {
        // SAFETY: as in `expand`.
        unsafe {
            debug_assert!(pages > 0 && pages < (*e).pages());
            let t = self.split(e, pages);
            if t.is_null() {
                return false;
            }
            (*t).is_slab = false;
            self.dalloc(t)
        }
    }

    /// Checks the invariants of every free extent (tests and debug tools).
    pub fn validate(&self) {
        for set in [&self.dirty, &self.muzzy, &self.retained] {
            set.validate_lru();
            let mut pages = 0;
            set.for_each(|e| {
                pages += e.pages();
                assert_eq!(e.state(), set.state);
                assert!(e.addr % PAGE == 0 && e.size % PAGE == 0 && e.size >= PAGE);
                let me = e as *const Extent as *mut Extent;
                assert_eq!(rtree::lookup(e.addr), me, "first page not registered");
                assert_eq!(rtree::lookup(e.last_page()), me, "last page not registered");
                // Every interior page unregistered (bounded, so huge reservations stay cheap).
                for i in 1..e.pages().saturating_sub(1).min(1 << 14) {
                    assert!(rtree::lookup(e.addr + i * PAGE).is_null(), "interior page {i} registered");
                }
                let n = rtree::lookup(e.end());
                // SAFETY: registered descriptors are live.
                if !n.is_null() && unsafe { (*n).addr } == e.end() {
                    assert!(
                        unsafe { (*n).state() } != set.state || unsafe { (*n).arena } != self.arena,
                        "adjacent free extents of one state not coalesced"
                    );
                }
            });
            assert_eq!(pages, set.npages);
        }
    }
}

impl Pac {
    pub fn prefork(&self) {
        self.inner.raw_lock();
    }
    pub fn postfork_parent(&self) {
        // SAFETY: taken in `prefork` by this thread.
        unsafe { self.inner.force_unlock() }
    }
    pub fn postfork_child(&self) {
        // SAFETY: fork child after `prefork`.
        unsafe { self.inner.reset_after_fork() }
        // A purge the parent was running (no thread runs it here) left extents out of their
        // sets: they go back as dirty, which is what they may still be.
        let mut g = self.lock();
        g.decaying = false;
        loop {
            let e = g.stash.head;
            if e.is_null() {
                break;
            }
            // SAFETY: stashed extents are free extents of this arena taken out by a purge;
            // this is the child's only thread, and the lock is held.
            unsafe {
                g.stash.remove(e);
                (*e).zeroed = false;
                (*e).set_state(State::Dirty);
                g.insert_coalesced(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_blocks_carves_best_fits_and_join_merges_them_back() {
        static PAC: Pac = Pac::new(8);
        let mut p = PAC.lock();
        let big = p.alloc(64, PAGE, None);
        let _wall = p.alloc(1, PAGE, None);
        let hole = p.alloc(4, PAGE, None);
        let _wall2 = p.alloc(1, PAGE, None);
        let mut out = [core::ptr::null_mut(); 3];
        // SAFETY: live descriptors returned by alloc / alloc_blocks / join.
        unsafe {
            let (base, hole_at) = ((*big).addr, (*hole).addr);
            assert_eq!(hole_at, base + 65 * PAGE);
            assert!(p.dalloc(big) && p.dalloc(hole));
            // Dirty: 64 pages at `base`, and 4 at `hole_at` (walls keep them apart).
            assert_eq!(p.free_pages().0, 68);
            let (main, got) = p.alloc_blocks(4, &mut out);
            assert_eq!(got, 3);
            assert_eq!((*out[0]).addr, hole_at, "the smallest hole first, as block by block");
            for (k, &x) in out[1..].iter().enumerate() {
                assert_eq!(((*x).addr, (*x).pages(), (*x).state()), (base + k * 4 * PAGE, 4, State::Active));
                assert!(rtree::lookup((*x).addr) == x && rtree::lookup((*x).last_page()) == x);
            }
            assert_eq!(((*main).addr, (*main).pages()), (base + 8 * PAGE, 4), "the returned block comes last");
            p.validate();
            let far = p.alloc(1, PAGE, None);
            assert_eq!((*far).addr, base + 12 * PAGE);
            let run = p.join(main, out[2]);
            assert_eq!(run, out[2], "joined from either side, the lower descriptor stays");
            let run = p.join(out[1], run);
            assert_eq!(((*run).addr, (*run).pages()), (base, 12));
            assert_eq!(rtree::lookup(base + 11 * PAGE), run);
            assert!(p.join(run, out[0]).is_null(), "not adjacent");
            let run = p.join(far, run);
            assert_eq!(((*run).addr, (*run).pages()), (base, 13));
            p.validate();
            assert!(p.dalloc(run) && p.dalloc(out[0]));
            p.validate();
            assert_eq!(p.free_pages().0, 68, "everything coalesced back");
        }
    }

    /// Puts a free extent of `pages` pages at `addr` in state `st` straight into `p`'s sets.
    fn free_extent(p: &mut PacInner, addr: usize, pages: usize, st: State, zeroed: bool) {
        let e = p.pool.get();
        // SAFETY: a fresh descriptor; its pages' leaves exist (the caller's `ensure`).
        unsafe {
            (*e).addr = addr;
            (*e).size = pages * PAGE;
            (*e).arena = p.arena;
            (*e).zeroed = zeroed;
            (*e).set_state(st);
            rtree::set(addr, e);
            rtree::set((*e).last_page(), e);
            p.set_of(st).insert(e);
        }
    }

    #[test]
    fn runs_of_free_extents_in_different_states_serve_before_growing() {
        static PAC: Pac = Pac::new(6);
        let mut p = PAC.inner.lock();
        // Address space nobody maps (as in rtree's tests); only descriptors point into it.
        let b = 0x5560_0000_0000usize;
        assert!(rtree::ensure(b, 1 << 30));
        // dirty 4 | retained 2 | dirty 4: no single extent holds 8 pages.
        free_extent(&mut p, b, 4, State::Dirty, false);
        free_extent(&mut p, b + 4 * PAGE, 2, State::Retained, true);
        free_extent(&mut p, b + 6 * PAGE, 4, State::Dirty, false);
        p.validate();
        let x = p.alloc(8, PAGE, None);
        // SAFETY: live descriptors returned by alloc.
        unsafe {
            assert_eq!(((*x).addr, (*x).pages(), (*x).zeroed), (b, 8, false));
            assert_eq!(p.free_pages(), (2, 0, 0), "the last dirty extent's tail stays dirty");
            assert_eq!(p.mapped, 0, "nothing reserved from the OS");
            p.validate();
            // [b+8, b+10) dirty, then retained 6 | dirty 4 (at a 64 KiB boundary) | retained 10:
            // a 64 KiB-aligned block of 6 pages needs the dirty extent and 2 retained pages.
            free_extent(&mut p, b + 10 * PAGE, 6, State::Retained, true);
            free_extent(&mut p, b + 16 * PAGE, 4, State::Dirty, false);
            free_extent(&mut p, b + 20 * PAGE, 10, State::Retained, true);
            p.validate();
            let y = p.alloc(6, 1 << 16, None);
            assert_eq!(((*y).addr, (*y).pages()), (b + 16 * PAGE, 6));
            assert_eq!(p.free_pages(), (2, 0, 14), "the pieces outside the block keep their states");
            assert_eq!(rtree::lookup(b + 21 * PAGE), y);
            assert_eq!(p.mapped, 0);
            p.validate();
            assert!(p.dalloc(y) && p.dalloc(x));
            p.validate();
            // A freed aligned block serves the same request again, whatever its neighbours.
            let z = p.alloc(6, 1 << 16, None);
            assert_eq!((*z).addr, b + 16 * PAGE);
            assert_eq!(p.mapped, 0);
        }
    }

    #[test]
    fn alloc_split_coalesce_purge() {
        static PAC: Pac = Pac::new(7);
        let mut p = PAC.lock();
        // A class whose slabs are 5 pages of sub-page regions: every page is registered.
        let bin = (0..crate::metadata::size_class::NBINS)
            .find(|&b| crate::metadata::size_class::SLAB_PAGES[b] == 5 && crate::metadata::size_class::bin_size(b) < PAGE)
            .unwrap();
        let a = p.alloc(3, PAGE, None);
        let b = p.alloc(5, PAGE, Some(bin as u8));
        let c = p.alloc(1, 1 << 21, None);
        assert!(!a.is_null() && !b.is_null() && !c.is_null());
        // SAFETY: live descriptors returned by alloc.
        unsafe {
            assert_eq!((*c).addr % (1 << 21), 0);
            assert_eq!(rtree::lookup((*b).addr + 2 * PAGE + 17), b);
            let entry = rtree::lookup_entry((*b).addr + 2 * PAGE + 17);
            assert_eq!(rtree::entry_bin(entry), bin);
            assert_eq!(entry, rtree::lookup_entry((*b).addr), "slab pages tagged differently");
            assert_eq!(rtree::lookup((*a).addr), a);
            assert!((*a).zeroed);
            let a_addr = (*a).addr;
            p.validate();
            assert!(p.dalloc(a));
            assert!(!p.dalloc(a), "double dalloc must be refused");
            let b_addr = (*b).addr;
            assert!(p.dalloc(b));
            assert!(!rtree::is_slab(rtree::lookup_entry(b_addr)), "released slab still tagged");
            p.validate();
            let (d, _, _) = p.free_pages();
            assert_eq!(d, 8, "a and b coalesce into one dirty extent");
            // Reuse: best fit from dirty, lowest pages first.
            let x = p.alloc(8, PAGE, None);
            assert_eq!((*x).addr, a_addr);
            assert!(p.expand(x, 20));
            assert_eq!((*x).pages(), 20);
            assert!(p.shrink(x, 2));
            p.validate();
            assert!(p.dalloc(x));
            assert!(p.dalloc(c));
            drop(p);
            assert!(PAC.purge(crate::pages::decay::now_ns(), crate::pages::purge::Mode::All) >= 8);
            let p = PAC.lock();
            let (d, m, _) = p.free_pages();
            assert_eq!(d + m, 0);
            p.validate();
        }
    }
}
