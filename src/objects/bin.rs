//! A bin: the slabs of one size class in one arena.
//!
//! Placement (seed §1): allocate from the current slab; when it is full, switch to the
//! *fullest* non-full slab, so free regions gather in few slabs and sparse ones drain. Non-full
//! slabs sit in 64 buckets by fill level (bucket = (nfree-1)·64 / nregs; exact for slabs of ≤
//! 64 regions, within nregs/64 regions otherwise) with a bitmap of non-empty buckets. Full
//! slabs are in no list. A free leaves its slab in the bucket it is in (moving it would touch
//! its list neighbours' descriptors, cold lines when frees come in random order), so a slab's
//! bucket is at most its true one: frees only empty a slab that is not current. The
//! refill takes the head of the lowest non-empty bucket; if that slab's true bucket is higher
//! it moves it there and looks again, so it takes a slab whose true bucket is the lowest of
//! all (each such move is paid for by the frees that made the slab stale, and a teardown, which
//! never refills, makes none). A slab that becomes empty returns to the arena's page pool at
//! the end of the locked batch of frees that emptied it (`settle`), where any class or a large
//! block can reuse its pages (the current slab is kept even when empty, so a malloc/free pair
//! never churns the page pool).
//!
//! Sync: everything in `BinInner` is under `Bin::lock` (rank 3); slab creation and release
//! take the arena's Pac lock inside it (rank 4).

use crate::metadata::extent::{Extent, List, NO_BUCKET};
use crate::pages::pac::Pac;
use crate::foundation::report::{self, Found, Misuse};
use crate::metadata::size_class::{nregs, SLAB_PAGES};
use crate::objects::slab::{self, RegionCheck};
use crate::foundation::sync::{Mutex, Rank};
use crate::foundation::util::{LG_PAGE, PAGE};

const NBUCKETS: usize = 64;
/// Buckets from this one up hold slabs with more than 1/16 of their regions free (at most
/// ~94 % full). Measured on the drifting cache (`make bench`, 4M replacements): RSS/live 1.199
/// with a 75 % threshold (bucket 16), 1.188 with this one, 1.179 with no thread cache at all.
const SPARSE_BUCKET: u8 = 4;

/// Whether a slab with bucket index `bucket` is a sparse, non-current slab whose frees should
/// bypass thread caches (see `tcache`). Current and full slabs carry NO_BUCKET and are never
/// sparse. Applied to a slab's true bucket (its fill level, not the bucket it is filed in).
/// The free fast path reads this from the slab's page-map entries (`rtree::is_sparse`,
/// brought in line with this predicate under the bin lock by `take_fullest` and, for frees,
/// by `settle` at the end of each locked batch), not from the descriptor.
#[inline(always)]
pub fn is_sparse(bucket: u8) -> bool {
    bucket.wrapping_sub(SPARSE_BUCKET) < NBUCKETS as u8 - SPARSE_BUCKET
}

/// Whether slab `e` of class `bin` is sparse by its fill level now, read without the bin lock:
/// a hint for where a free goes (a racing free or refill may change it a moment later).
pub fn slab_is_sparse(e: &Extent, bin: usize) -> bool {
    e.bucket() != NO_BUCKET && is_sparse(bucket_of(e.nfree().max(1), bin) as u8)
}

pub struct BinInner {
    /// Size class.
    bin: u8,
    /// The slab allocations come from (null before the first one).
    slabcur: *mut Extent,
    buckets: [List; NBUCKETS],
    nonempty: u64,
    /// Stats: slabs owned, live regions, operation counts.
    pub nslabs: usize,
    pub curregs: usize,
    pub nmalloc: u64,
    pub ndalloc: u64,
    /// Slabs whose sparse state changed since their page-map entries were last tagged
    /// (`tagged_sparse`): retagged by `settle` at the end of the locked operation, so a slab
    /// that a cache flush empties in one go is released without ever being retagged.
    pending: [*mut Extent; NPENDING],
    npending: usize,
    /// The slab the last frees went to, not yet refiled: consecutive frees into one slab (a
    /// cache flush of blocks allocated together) refile it once (`refile`: filed if it was
    /// full, released if emptied, retagged if its sparse state changed), in `settle` or when
    /// a free goes to another slab. Null between locked operations.
    unfiled: *mut Extent,
    /// Slabs emptied by the frees of this locked operation, out of every list and no longer
    /// counted, waiting for `settle` to check their free marks (`check_all_marked`, whose
    /// lines were prefetched when the slab emptied: reading them then was a quarter of the
    /// time of a random-order teardown of 1 KiB blocks) and give them to the page pool under
    /// one page-allocator lock. Empty between locked operations.
    emptied: [*mut Extent; NEMPTIED],
    nemptied: usize,
    /// A region found without its free mark under the lock (0: none), and whether by a
    /// slab release (a free) rather than an allocation: reported by the lock's holder once
    /// it has released the lock (`Bin::locked`, or `take_lost` where the lock is held some
    /// other way). Zero between locked operations.
    lost: usize,
    lost_in_free: bool,
}

const NPENDING: usize = 8;
const NEMPTIED: usize = 8;

// SAFETY: the raw pointers refer to descriptors owned by this bin; all access is under the lock.
unsafe impl Send for BinInner {}

pub struct Bin {
    pub lock: Mutex<BinInner>,
}

/// ceil(2^32 / nregs) per class: `bucket_of` divides by one multiply (the quotient is exact:
/// the dividend is < 2^15 and the rounding error of the reciprocal < nregs ≤ 2^9, so their
/// product stays below 2^32; checked for every class in a test). A `div` there would cost
/// 10 % of the time of a batch of 32 KiB blocks, whose 8-region slabs change bucket on every
/// free.
static BUCKET_MAGIC: [u64; crate::metadata::size_class::NBINS] = {
    let mut t = [0u64; crate::metadata::size_class::NBINS];
    let mut i = 0;
    while i < t.len() {
        let n = crate::metadata::size_class::NREGS[i] as u64;
        t[i] = (1u64 << 32).div_ceil(n);
        i += 1;
    }
    t
};

/// Fill-level bucket of a slab of class `bin` with `nfree` (≥ 1) free regions:
/// ⌊(nfree − 1) · NBUCKETS / nregs⌋.
#[inline]
fn bucket_of(nfree: usize, bin: usize) -> usize {
    ((((nfree - 1) * NBUCKETS) as u64 * BUCKET_MAGIC[bin]) >> 32) as usize
}

impl Bin {
    /// Runs `f` under the bin lock; a region it found without its free mark is reported once
    /// the lock is released (`BinInner::take_lost`).
    #[inline]
    pub fn locked<R>(&self, f: impl FnOnce(&mut BinInner) -> R) -> R {
        let (r, lost) = {
            let mut g = self.lock.lock();
            let r = f(&mut g);
            (r, g.take_lost())
        };
        if let Some(found) = lost {
            found.report();
        }
        r
    }

    pub const fn new(bin: u8) -> Self {
        Bin {
            lock: Mutex::ranked(Rank::Bin, BinInner {
                bin,
                slabcur: core::ptr::null_mut(),
                buckets: [List::new(); NBUCKETS],
                nonempty: 0,
                nslabs: 0,
                curregs: 0,
                nmalloc: 0,
                ndalloc: 0,
                pending: [core::ptr::null_mut(); NPENDING],
                npending: 0,
                unfiled: core::ptr::null_mut(),
                emptied: [core::ptr::null_mut(); NEMPTIED],
                nemptied: 0,
                lost: 0,
                lost_in_free: false,
            }),
        }
    }
}

impl BinInner {
    unsafe fn bucket_insert(&mut self, e: *mut Extent) {
        let b = bucket_of((*e).nfree(), self.bin as usize);
        (*e).set_bucket(b as u8);
        self.buckets[b].push(e);
        self.nonempty |= 1 << b;
    }

    unsafe fn bucket_remove(&mut self, e: *mut Extent) {
        let b = (*e).bucket() as usize % NBUCKETS;
        self.buckets[b].remove(e);
        if self.buckets[b].is_empty() {
            self.nonempty &= !(1 << b);
        }
        (*e).set_bucket(NO_BUCKET);
    }

    /// The bucket slab `s` belongs in by its fill level now (NO_BUCKET for the current slab
    /// and full ones); its recorded bucket (`Extent::bucket`) may be lower (see the module
    /// header).
    unsafe fn true_bucket(&self, s: *mut Extent) -> u8 {
        if (*s).bucket() == NO_BUCKET {
            NO_BUCKET
        } else {
            bucket_of((*s).nfree(), self.bin as usize) as u8
        }
    }

    /// Removes and returns the fullest non-full slab, or null. Slabs found in a bucket below
    /// their true one on the way are moved to it first.
    unsafe fn take_fullest(&mut self) -> *mut Extent {
        let e = loop {
            if self.nonempty == 0 {
                return core::ptr::null_mut();
            }
            let b = self.nonempty.trailing_zeros() as usize;
            let e = self.buckets[b].head;
            if bucket_of((*e).nfree(), self.bin as usize) == b {
                break e;
            }
            self.bucket_remove(e);
            self.bucket_insert(e);
        };
        self.bucket_remove(e);
        if (*e).tagged_sparse {
            crate::pages::slab_map::tag_pages(e, self.bin as usize, false);
            (*e).tagged_sparse = false;
        }
        e
    }

    /// Notes that slab `s`'s sparse state may differ from its tags (see `pending`).
    unsafe fn defer_retag(&mut self, s: *mut Extent) {
        if self.pending[..self.npending].contains(&s) {
            return;
        }
        if self.npending == NPENDING {
            self.retag_pending();
        }
        self.pending[self.npending] = s;
        self.npending += 1;
    }

    /// Refiles the slab the last frees went to, brings the page-map sparse marks of the
    /// pending slabs in line with their fill levels, and gives the emptied slabs to the page
    /// pool. Every operation that frees regions calls it before releasing the lock.
    pub fn settle(&mut self, pac: &Pac) {
        let s = core::mem::replace(&mut self.unfiled, core::ptr::null_mut());
        if !s.is_null() {
            // SAFETY: `unfiled` is a live slab of this bin (frees just went to it).
            unsafe { self.refile(pac, s) };
        }
        self.retag_pending();
        self.release_emptied(pac);
    }

    /// Gives the slabs in `emptied` whose regions all carry the free mark to the page pool,
    /// under one page-allocator lock; one that does not stays out of the pool (see
    /// `check_marks`).
    fn release_emptied(&mut self, pac: &Pac) {
        let mut g = None;
        for k in 0..core::mem::replace(&mut self.nemptied, 0) {
            let s = self.emptied[k];
            // SAFETY: emptied slabs of this bin, in no list, not current; the bin lock is
            // held, and the arena's Pac lock once `g` is set.
            unsafe {
                if self.check_marks(s) && !g.get_or_insert_with(|| pac.lock()).dalloc(s) {
                    report::fatal("corrupt slab state on release");
                }
            }
        }
    }

    fn retag_pending(&mut self) {
        for k in 0..self.npending {
            let s = self.pending[k];
            // SAFETY: pending slabs are live slabs of this bin (`release` drops them from the
            // list); we hold the bin lock.
            unsafe {
                let want = is_sparse(self.true_bucket(s));
                if want != (*s).tagged_sparse {
                    crate::pages::slab_map::tag_pages(s, self.bin as usize, want);
                    (*s).tagged_sparse = want;
                }
            }
        }
        self.npending = 0;
    }

    /// Takes the region found without its free mark in this locked operation, if any, to
    /// report once the lock is released. Every holder of the lock that allocates, frees or
    /// trims calls it before releasing the lock (`Bin::locked` does).
    #[inline]
    pub fn take_lost(&mut self) -> Option<Found> {
        if self.lost == 0 {
            return None;
        }
        let p = core::mem::replace(&mut self.lost, 0);
        let in_free = core::mem::replace(&mut self.lost_in_free, false);
        Some(Found { func: if in_free { "free" } else { "malloc" }, kind: Misuse::FreedBlockChanged, p })
    }

    /// Allocates one region; null when the OS refuses memory. A region found without its free
    /// mark is handed out all the same and kept for `take_lost`.
    #[inline(always)]
    pub fn alloc(&mut self, pac: &Pac) -> *mut u8 {
        debug_assert!(self.unfiled.is_null() && self.npending == 0 && self.nemptied == 0, "frees not settled");
        debug_assert!(self.lost == 0, "a lost free mark was not reported");
        let bin = self.bin as usize;
        // SAFETY: slabs referenced by this bin are live; we hold the bin lock.
        unsafe {
            let mut s = self.slabcur;
            if s.is_null() || (*s).nfree() == 0 {
                s = self.refill(pac);
                if s.is_null() {
                    return core::ptr::null_mut();
                }
            }
            self.nmalloc += 1;
            self.curregs += 1;
            slab::alloc_region(s, bin, &mut self.lost)
        }
    }

    /// Takes up to `n` regions (fullest slabs first, lowest addresses first within a slab)
    /// into `out[0..]`, writing `word` (a thread cache's cookie) into the first word of each
    /// as the slab checks its free mark; returns how many (fewer only when the OS refuses
    /// memory). A region found without its free mark is taken all the same and kept for
    /// `take_lost`.
    ///
    /// # Safety
    /// `out` has room for `n` pointers.
    pub unsafe fn alloc_batch(&mut self, pac: &Pac, out: *mut *mut u8, n: usize, word: usize) -> usize {
        debug_assert!(self.unfiled.is_null() && self.npending == 0 && self.nemptied == 0, "frees not settled");
        debug_assert!(self.lost == 0, "a lost free mark was not reported");
        let bin = self.bin as usize;
        let mut got = 0;
        while got < n {
            let mut s = self.slabcur;
            if s.is_null() || (*s).nfree() == 0 {
                s = self.refill(pac);
                if s.is_null() {
                    break;
                }
            }
            got += slab::alloc_regions(s, bin, out.add(got), n - got, word, &mut self.lost);
        }
        self.nmalloc += got as u64;
        self.curregs += got;
        got
    }

    /// Makes a slab with free regions current: the fullest non-full one, else a new one.
    #[cold]
    unsafe fn refill(&mut self, pac: &Pac) -> *mut Extent {
        let mut s = self.take_fullest();
        if s.is_null() {
            let bin = self.bin as usize;
            s = pac.lock().alloc(SLAB_PAGES[bin] as usize, PAGE, Some(self.bin));
            if s.is_null() {
                return s;
            }
            slab::init(s, bin);
            self.nslabs += 1;
        }
        self.slabcur = s;
        s
    }

    /// Frees region `p` of slab `s`; `Err` (nothing changed) when `p` is not a live region
    /// start, for the caller to report once it has called `settle` and released the lock (a
    /// report aborts: a lock left held would deadlock a SIGABRT handler that forks or
    /// allocates). The caller calls `settle` before it releases the lock.
    ///
    /// # Safety
    /// `s` is the active slab of this class that the rtree returned for `p`.
    #[inline(always)]
    pub unsafe fn free(&mut self, pac: &Pac, s: *mut Extent, p: usize) -> Result<(), Misuse> {
        self.free_in::<false>(pac, s, p)
    }

    /// `free` of a region whose first word already holds the free mark (a thread cache's
    /// flush writes it as it checks the cookie: one touch of the block, not two).
    ///
    /// # Safety
    /// As for `free`, and the first word of `p` is `slab::FREE_MARK` (a free region must
    /// carry it: a refill reports one that does not).
    #[inline(always)]
    pub unsafe fn free_marked(&mut self, pac: &Pac, s: *mut Extent, p: usize) -> Result<(), Misuse> {
        self.free_in::<true>(pac, s, p)
    }

    #[inline(always)]
    unsafe fn free_in<const MARKED: bool>(&mut self, pac: &Pac, s: *mut Extent, p: usize) -> Result<(), Misuse> {
        let bin = self.bin as usize;
        let i = match slab::check(s, bin, p) {
            RegionCheck::Live(i) => i,
            RegionCheck::Interior => return Err(Misuse::InteriorPointer),
            RegionCheck::AlreadyFree => return Err(Misuse::DoubleFree),
        };
        if MARKED {
            slab::free_marked_region(s, i, p);
        } else {
            slab::free_region(s, i, p);
        }
        self.ndalloc += 1;
        self.curregs -= 1;
        if s != self.slabcur && s != self.unfiled {
            let last = core::mem::replace(&mut self.unfiled, s);
            if !last.is_null() {
                self.refile(pac, last);
            }
        }
        Ok(())
    }

    /// Files slab `s` (not current) after some of its regions were freed: into a bucket if it
    /// was full (in none), to the page pool if empty; a slab already in a bucket stays there
    /// (see the module header). Notes a change of its sparse state for `settle`.
    #[inline(never)]
    unsafe fn refile(&mut self, pac: &Pac, s: *mut Extent) {
        let nregs = nregs(self.bin as usize);
        let nfree = (*s).nfree();
        let filed = (*s).bucket() != NO_BUCKET;
        if nfree == nregs {
            if filed {
                self.bucket_remove(s);
            }
            self.take_out(s);
            slab::prefetch_marks(s, self.bin as usize);
            if self.nemptied == NEMPTIED {
                self.release_emptied(pac);
            }
            self.emptied[self.nemptied] = s;
            self.nemptied += 1;
            return;
        }
        if !filed {
            self.bucket_insert(s); // was full
        }
        if is_sparse(bucket_of(nfree, self.bin as usize) as u8) != (*s).tagged_sparse {
            self.defer_retag(s);
        }
    }

    /// Takes emptied slab `s` (in no bucket, not current) out of this bin's books.
    unsafe fn take_out(&mut self, s: *mut Extent) {
        if let Some(k) = self.pending[..self.npending].iter().position(|&x| x == s) {
            self.npending -= 1;
            self.pending[k] = self.pending[self.npending];
        }
        self.nslabs -= 1;
    }

    /// Whether emptied slab `s`, taken out, may go back to the page pool: false when a region
    /// of it lost its free mark (the slab is kept out of the pool, the region left for
    /// `take_lost`).
    unsafe fn check_marks(&mut self, s: *mut Extent) -> bool {
        // SAFETY: `s` is an emptied slab of this bin, no longer in any bucket.
        let lost = slab::check_all_marked(s, self.bin as usize);
        if lost != 0 {
            // A copy of a block of `s` is still around (freed twice, or written after free):
            // its pages stay out of the page pool, and the caller reports once unlocked.
            if self.lost == 0 {
                self.lost = lost;
                self.lost_in_free = true;
            }
            return false;
        }
        true
    }

    /// Gives emptied slab `s` (in no bucket, not current) back to the page pool now; false
    /// as `check_marks`.
    #[cold]
    unsafe fn release(&mut self, pac: &Pac, s: *mut Extent) -> bool {
        self.take_out(s);
        if !self.check_marks(s) {
            return false;
        }
        if !pac.lock().dalloc(s) {
            report::fatal("corrupt slab state on release");
        }
        true
    }

    /// Releases the current slab if it is empty (malloc_trim); returns its pages.
    pub fn trim(&mut self, pac: &Pac) -> usize {
        let s = self.slabcur;
        // SAFETY: the current slab is live; we hold the bin lock.
        unsafe {
            if !s.is_null() && (*s).nfree() == nregs(self.bin as usize) {
                self.slabcur = core::ptr::null_mut();
                let pages = (*s).size >> LG_PAGE;
                if !self.release(pac, s) {
                    return 0;
                }
                return pages;
            }
        }
        0
    }

    /// Start of the slab the next allocation comes from: the current slab if it has room,
    /// else the fullest non-full one; 0 if neither exists.
    pub fn slabcur_addr(&self) -> usize {
        // SAFETY: slabs referenced by this bin are live; the lock is held (&self via guard).
        unsafe {
            if !self.slabcur.is_null() && (*self.slabcur).nfree() > 0 {
                return (*self.slabcur).addr;
            }
            if self.nonempty != 0 {
                let b = self.nonempty.trailing_zeros() as usize;
                return (*self.buckets[b].head).addr;
            }
        }
        0
    }

    /// Number of slabs in buckets (non-full, not current).
    pub fn nonfull_slabs(&self) -> usize {
        let mut n = 0;
        for l in self.buckets.iter() {
            let mut e = l.head;
            while !e.is_null() {
                n += 1;
                // SAFETY: bucket members are live slabs; the lock is held.
                e = unsafe { (*e).next };
            }
        }
        n
    }

    /// Checks bucket placement and counters (tests).
    pub fn validate(&self) {
        assert!(self.unfiled.is_null() && self.nemptied == 0, "a free not settled");
        let bin = self.bin as usize;
        let nregs = nregs(bin);
        let mut free_in_buckets = 0;
        for (b, l) in self.buckets.iter().enumerate() {
            assert_eq!(self.nonempty & (1 << b) != 0, !l.is_empty());
            let mut e = l.head;
            while !e.is_null() {
                // SAFETY: as in `nonfull_slabs`.
                unsafe {
                    slab::validate(e, bin);
                    let nf = (*e).nfree();
                    assert!(nf > 0 && nf < nregs, "full or empty slab in a bucket");
                    assert!(b <= bucket_of(nf, bin), "slab in a bucket above its fill level");
                    assert_eq!((*e).bucket() as usize, b, "slab's bucket index");
                    let entry = crate::metadata::rtree::lookup_entry((*e).addr);
                    assert_eq!(crate::metadata::rtree::entry_bin(entry), bin, "slab page not tagged");
                    let last = (*e).addr + (*e).pages() * crate::foundation::util::PAGE - 1;
                    let at_last = crate::metadata::rtree::lookup_entry(last);
                    if crate::metadata::rtree::is_slab(at_last) {
                        assert_eq!(at_last, entry, "slab pages tagged differently");
                    }
                    assert_eq!(crate::metadata::rtree::entry_extent(entry), e, "slab page maps elsewhere");
                    assert_eq!(crate::metadata::rtree::is_sparse(entry), (*e).tagged_sparse, "tags disagree");
                    if self.npending == 0 {
                        assert_eq!((*e).tagged_sparse, is_sparse(bucket_of(nf, bin) as u8), "sparse mark not settled");
                    }
                    free_in_buckets += nf;
                    e = (*e).next;
                }
            }
        }
        let _ = free_in_buckets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::size_class::bin_size;

    #[test]
    fn bucket_of_divides_exactly() {
        for bin in 0..crate::metadata::size_class::NBINS {
            let n = nregs(bin);
            for nfree in 1..=n {
                assert_eq!(bucket_of(nfree, bin), (nfree - 1) * NBUCKETS / n, "bin {bin} nfree {nfree}");
            }
        }
    }

    #[test]
    fn fullest_first_and_release() {
        static PAC: Pac = Pac::new(9);
        let bin = Bin::new(4); // 64-byte class, 64 regions per one-page slab
        let mut b = bin.lock.lock();
        assert_eq!(bin_size(4), 64);
        let ptrs: Vec<usize> = (0..192).map(|_| b.alloc(&PAC) as usize).collect();
        assert!(ptrs.iter().all(|&p| p != 0));
        assert_eq!(b.nslabs, 3);
        let slab_of = |p: usize| p & !(PAGE - 1);
        let (s0, s1) = (slab_of(ptrs[0]), slab_of(ptrs[64]));
        // SAFETY: every pointer is a live region of a slab of this bin, registered in the rtree.
        unsafe {
            for &p in &ptrs[0..10] {
                b.free(&PAC, rtree_of(p), p).unwrap();
            }
            for &p in &ptrs[64..94] {
                b.free(&PAC, rtree_of(p), p).unwrap();
            }
        }
        b.settle(&PAC);
        b.validate();
        // s1 has 30 of 64 regions free: sparse, and its page-map entries say so.
        assert!(crate::metadata::rtree::is_sparse(crate::metadata::rtree::lookup_entry(s1)));
        assert!(crate::metadata::rtree::is_sparse(crate::metadata::rtree::lookup_entry(s0)));
        assert_eq!(b.nonfull_slabs(), 2);
        // The current slab (third) is full: the next region comes from the fullest, s0, which
        // as the current slab is no longer marked sparse.
        let q = b.alloc(&PAC) as usize;
        assert_eq!(slab_of(q), s0);
        assert!(!crate::metadata::rtree::is_sparse(crate::metadata::rtree::lookup_entry(s0)));
        // Emptying s1 gives its page back to the page pool.
        let dirty_before = PAC.lock().free_pages().0;
        unsafe {
            for &p in &ptrs[94..128] {
                b.free(&PAC, rtree_of(p), p).unwrap();
            }
        }
        b.settle(&PAC);
        assert_eq!(PAC.lock().free_pages().0, dirty_before + 1);
        assert_eq!(b.nslabs, 2);
        assert!(crate::metadata::rtree::lookup(s1).is_null() || unsafe { !(*crate::metadata::rtree::lookup(s1)).is_slab });
        b.validate();
        PAC.lock().validate();
    }

    /// A free leaves its slab in the bucket it is filed in (no list moves, so no neighbour's
    /// descriptor is touched), and the refill still takes the slab that is fullest now.
    #[test]
    fn frees_leave_slabs_filed_and_refill_takes_the_fullest() {
        static PAC: Pac = Pac::new(11);
        let bin = Bin::new(4); // 64-byte class, 64 regions per one-page slab
        let mut b = bin.lock.lock();
        let ptrs: Vec<usize> = (0..256).map(|_| b.alloc(&PAC) as usize).collect();
        assert!(ptrs.iter().all(|&p| p != 0));
        assert_eq!(b.nslabs, 4);
        // SAFETY: every pointer is a live region of a slab of this bin, registered in the rtree.
        unsafe {
            let (s0, s1, s2) = (rtree_of(ptrs[0]), rtree_of(ptrs[64]), rtree_of(ptrs[128]));
            // One region each from s0, s1, s2: each goes into bucket 0.
            for &p in [ptrs[0], ptrs[64], ptrs[128]].iter() {
                b.free(&PAC, rtree_of(p), p).unwrap();
            }
            b.settle(&PAC);
            assert_eq!([(*s0).bucket(), (*s1).bucket(), (*s2).bucket()], [0, 0, 0]);
            // 39 more from s0, 19 more from s1: they stay in bucket 0.
            for &p in ptrs[1..40].iter().chain(&ptrs[65..84]) {
                b.free(&PAC, rtree_of(p), p).unwrap();
            }
            b.settle(&PAC);
            b.validate();
            assert_eq!([(*s0).bucket(), (*s1).bucket(), (*s2).bucket()], [0, 0, 0]);
            // Sparse by their fill level all the same: 40 and 20 of 64 regions free.
            assert!((*s0).tagged_sparse && (*s1).tagged_sparse && !(*s2).tagged_sparse);
            assert!(crate::metadata::rtree::is_sparse(crate::metadata::rtree::lookup_entry((*s0).addr)));
            // The current slab (the fourth) is full: refills take s2 (1 free), then s1 (20),
            // then s0 (40), whatever order bucket 0 lists them in.
            let q = b.alloc(&PAC) as usize;
            assert_eq!(rtree_of(q), s2);
            b.validate();
            let q = b.alloc(&PAC) as usize;
            assert_eq!(rtree_of(q), s1);
            assert!(!(*s1).tagged_sparse, "the current slab is not sparse");
            b.validate();
            for _ in 0..19 {
                assert_eq!(rtree_of(b.alloc(&PAC) as usize), s1);
            }
            assert_eq!(rtree_of(b.alloc(&PAC) as usize), s0);
            b.validate();
        }
    }

    /// Misuse found under the lock is kept for the lock's holder, who reports it once it has
    /// released the lock: a region without its free mark taken by an allocation, or found
    /// when its emptied slab would go back to the page pool (which then keeps the slab).
    #[test]
    fn lost_marks_wait_for_the_lock_holder() {
        static PAC: Pac = Pac::new(10);
        let bin = Bin::new(4); // 64-byte class, 64 regions per one-page slab
        let mut b = bin.lock.lock();
        let ptrs: Vec<usize> = (0..128).map(|_| b.alloc(&PAC) as usize).collect();
        assert!(b.take_lost().is_none());
        // SAFETY: every pointer is a live region of a slab of this bin; after its free, a
        // region's first word is still mapped memory of the slab (written on purpose here).
        unsafe {
            // Written after its free: the region comes back first from its (fullest) slab.
            let p = ptrs[5];
            b.free(&PAC, rtree_of(p), p).unwrap();
            b.settle(&PAC);
            *(p as *mut usize) = 0;
            let q = b.alloc(&PAC) as usize;
            assert_eq!(q, p);
            let lost = b.take_lost().expect("the lost mark is kept");
            assert_eq!((lost.p, lost.func, lost.kind), (p, "malloc", Misuse::FreedBlockChanged));
            assert!(b.take_lost().is_none());
            // The second slab (the first is current now: not released when empty) emptied
            // with one region written after its free: it stays out of the page pool, and the
            // release is reported as the free's.
            let dirty_before = PAC.lock().free_pages().0;
            for &x in &ptrs[64..127] {
                b.free(&PAC, rtree_of(x), x).unwrap();
            }
            *(ptrs[70] as *mut usize) = 0;
            b.free(&PAC, rtree_of(ptrs[127]), ptrs[127]).unwrap();
            b.settle(&PAC);
            let lost = b.take_lost().expect("the release found the lost mark");
            assert_eq!((lost.p, lost.func, lost.kind), (ptrs[70], "free", Misuse::FreedBlockChanged));
            assert_eq!(PAC.lock().free_pages().0, dirty_before);
            // A double free or an interior pointer is returned to the caller, nothing changed.
            assert_eq!(b.free(&PAC, rtree_of(ptrs[10]), ptrs[10]), Ok(()));
            assert_eq!(b.free(&PAC, rtree_of(ptrs[10]), ptrs[10]), Err(Misuse::DoubleFree));
            assert_eq!(b.free(&PAC, rtree_of(ptrs[11]), ptrs[11] + 8), Err(Misuse::InteriorPointer));
            b.settle(&PAC);
            assert!(b.take_lost().is_none());
        }
    }

    fn rtree_of(p: usize) -> *mut Extent {
        crate::metadata::rtree::lookup(p)
    }
}
