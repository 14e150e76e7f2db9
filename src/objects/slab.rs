//! A slab: an active extent cut into equal regions of one size class, with a free bitmap.
//!
//! Contract: region bookkeeping on one descriptor; the bin's lock protects it. Region i
//! lives at `addr + i·size`; `nfree == bitmap.count()`, and the first word of every free
//! region holds `FREE_MARK` (both checked by `validate`).
//!
//! The free mark is how a double free of a block that already went back to its slab is
//! caught without the free path reading the slab's bitmap (that read would be 8 of the 37
//! instructions of `free`'s fast path; see `tcache::small`). `init` marks every region, a
//! region coming back is marked again (by `free_region`, or by a thread cache's flush as it
//! checks the block's cookie: `free_marked_region`), and a region leaving the slab must
//! still carry the mark (`take_marked`): a block freed into a thread cache while free in its
//! slab gets the cache's cookie written over the mark, and if a malloc hands it out, its
//! owner's data does the same. Either way the slab finds the mark gone before it hands the
//! block out a second time (`malloc(): double free or write after free`), or when it would
//! give its pages back to the page pool (`check_all_marked`, on release). Written and checked
//! only on the slow paths (refill, flush, slab creation and release), on lines those paths
//! touch anyway, except that creation and release touch the first line of every region.

use crate::metadata::extent::{Extent, NO_BUCKET};
use crate::foundation::report;
use crate::metadata::size_class::{bin_size, div_magic, nregs};

/// First word of every region that is free in its slab (see the module header). Differs
/// from the thread caches' cookie; fits a sign-extended 32-bit immediate.
pub const FREE_MARK: usize = 0x6f78_6672;

/// Result of checking a pointer against a slab.
pub enum RegionCheck {
    /// A live region with this index.
    Live(usize),
    /// Not at a region start.
    Interior,
    /// The region is already free.
    AlreadyFree,
}

/// Prepares a freshly allocated slab extent: every region free.
///
/// # Safety
/// `e` is an active slab extent of class `bin`, not yet visible to other threads.
pub unsafe fn init(e: *mut Extent, bin: usize) {
    let n = nregs(bin);
    let (base, size) = ((*e).addr, bin_size(bin));
    for i in 0..n {
        // SAFETY: region i of the fresh slab's pages, at least 8 bytes, ours to write.
        *((base + i * size) as *mut usize) = FREE_MARK;
    }
    (*e).bitmap.init(n);
    (*e).set_nfree(n);
    (*e).set_bucket(NO_BUCKET);
    (*e).tagged_sparse = false;
}

/// Takes the lowest free region (checked for the free mark, which it loses); the slab must
/// have one. A region without the mark is still taken, and its address left in `*lost` (if
/// that is 0) for the bin to report once its lock is released (`BinInner::take_lost`).
///
/// # Safety
/// The bin lock is held and `(*e).nfree > 0`.
#[inline(always)]
pub unsafe fn alloc_region(e: *mut Extent, bin: usize, lost: &mut usize) -> *mut u8 {
    debug_assert!((*e).nfree() > 0);
    let i = match (*e).bitmap.first_set() {
        Some(i) => i,
        None => report::fatal("corrupt slab: nfree > 0 but no free region"),
    };
    let p = (*e).addr + i * bin_size(bin);
    take_marked(p, lost);
    *(p as *mut usize) = 0;
    (*e).bitmap.clear(i);
    (*e).set_nfree((*e).nfree() - 1);
    p as *mut u8
}

/// Checks that free region `p` still carries the free mark as it leaves its slab; if not
/// (it was freed again into a thread cache, and maybe handed out from there, or written
/// after its free), records `p` in `*lost` unless an earlier one is there.
///
/// # Safety
/// `p` is a region of an active slab, free in it, and the bin lock is held.
#[inline(always)]
unsafe fn take_marked(p: usize, lost: &mut usize) {
    if *(p as *const usize) != FREE_MARK && *lost == 0 {
        *lost = p;
    }
}

/// Prefetches the first word of every region of slab `e` of class `bin` (one prefetch per
/// cache line), ahead of `check_all_marked`: emptied slabs wait for the end of their locked
/// batch of frees (`bin::BinInner::settle`), and by then their regions' lines have come in.
///
/// # Safety
/// `e` is an active slab of class `bin` (its pages are mapped).
pub unsafe fn prefetch_marks(e: *const Extent, bin: usize) {
    let (base, size) = ((*e).addr, bin_size(bin));
    let step = size.max(64);
    let end = base + nregs(bin) * size;
    let mut p = base;
    while p < end {
        crate::foundation::util::prefetch(p);
        p += step;
    }
}

/// The first region of slab `e` of class `bin`, all free, that does not carry the free mark
/// (0: none), checked before the slab's pages go back to the page pool (reported as misuse
/// by a `free`: the free that emptied the slab, or a cache flush).
///
/// # Safety
/// The bin lock is held; every region of `e` is free.
pub unsafe fn check_all_marked(e: *const Extent, bin: usize) -> usize {
    let (base, size) = ((*e).addr, bin_size(bin));
    for i in 0..nregs(bin) {
        let p = base + i * size;
        if *(p as *const usize) != FREE_MARK {
            return p;
        }
    }
    0
}

/// Classifies `p`, a pointer inside slab `e` of class `bin`.
///
/// # Safety
/// The bin lock is held; `p` lies in `e`'s pages.
#[inline(always)]
pub unsafe fn check(e: *const Extent, bin: usize, p: usize) -> RegionCheck {
    let i = match region_index(&*e, bin, p) {
        Some(i) => i,
        None => return RegionCheck::Interior,
    };
    if (*e).bitmap.get(i) {
        return RegionCheck::AlreadyFree;
    }
    RegionCheck::Live(i)
}

/// Index of the region starting at `p` in slab `e` of class `bin`, or None for a pointer that
/// is not at a region start. Needs no lock: `addr` and the class are immutable while the slab
/// is active. `p` lies in `e`'s pages.
#[inline(always)]
pub fn region_index(e: &Extent, bin: usize, p: usize) -> Option<usize> {
    region_index_magic(p - e.addr, div_magic(bin))
}

/// Region index of byte offset `off` (< the slab's size) in a slab whose class has division
/// magic `magic` = ceil(2^64 / size), or None when `off` is not a multiple of the class size —
/// one 64 × 64 → 128-bit multiply. With size · magic = 2^64 + err (err < size) and
/// off = i · size + r, the product is i · 2^64 + i · err + r · magic. For r = 0 its low half
/// is i · err < off < slab size ≤ 2^18 (`REGION_START_LIMIT`); otherwise it is at least
/// magic ≥ 2^64 / 2^15 = 2^49, and it does not carry into the high half
/// ((i + 1) · err < slab size < magic). So the low half is below the limit exactly for
/// region starts and the high half is i: one compare with an immediate, no shifts
/// (checked for every class and offset in a unit test). Against a 2^48 fixed point (index in
/// bits 48.., bits 32..47 zero for starts) the free path loses 4 instructions.
#[inline(always)]
pub fn region_index_magic(off: usize, magic: u64) -> Option<usize> {
    let prod = off as u128 * magic as u128;
    ((prod as u64) < REGION_START_LIMIT).then_some((prod >> 64) as usize)
}

/// Bound on the low half of `off · magic` for region starts: the largest slab's size.
const REGION_START_LIMIT: u64 = (crate::metadata::size_class::MAX_SLAB_PAGES * crate::foundation::util::PAGE) as u64;
const _: () = assert!(REGION_START_LIMIT <= 1 << 18 && crate::metadata::size_class::SMALL_MAX <= 1 << 15);

/// Takes up to `n` free regions, lowest first, writing their addresses to `out[0..]`;
/// returns how many (≤ nfree). Each is checked for the free mark, which is replaced by
/// `word` (a thread cache's cookie) in the same touch of the region's first line: a
/// second pass by the cache over blocks of 16-32 KiB, each on its own page, would take a
/// quarter of the time of batches of 32 KiB. A region without the mark goes into `*lost` as
/// in `alloc_region`.
///
/// # Safety
/// The bin lock is held; `out` has room for `n` pointers.
#[inline]
pub unsafe fn alloc_regions(e: *mut Extent, bin: usize, out: *mut *mut u8, n: usize, word: usize, lost: &mut usize) -> usize {
    let (base, size) = ((*e).addr, bin_size(bin));
    let mut k = 0;
    let got = (*e).bitmap.take_lowest(n, |i| {
        let p = base + i * size;
        take_marked(p, lost);
        *(p as *mut usize) = word;
        *out.add(k) = p as *mut u8;
        k += 1;
    });
    (*e).set_nfree((*e).nfree() - got);
    got
}

/// Returns region `i`, at `p`, to the slab, marking it free.
///
/// # Safety
/// The bin lock is held and region `i` is live (`check` said so); `p` is its address.
#[inline(always)]
pub unsafe fn free_region(e: *mut Extent, i: usize, p: usize) {
    *(p as *mut usize) = FREE_MARK;
    free_marked_region(e, i, p);
}

/// `free_region` of a region whose first word the caller already set to `FREE_MARK` (a
/// thread cache's flush, which replaces the cookie in the same touch as it checks it).
///
/// # Safety
/// As for `free_region`.
#[inline(always)]
pub unsafe fn free_marked_region(e: *mut Extent, i: usize, p: usize) {
    debug_assert_eq!(p, (*e).addr + i * bin_size((*e).bin as usize));
    debug_assert_eq!(*(p as *const usize), FREE_MARK);
    (*e).bitmap.set(i);
    (*e).set_nfree((*e).nfree() + 1);
}

/// Checks `nfree` against the bitmap, and the free mark of every free region.
///
/// # Safety
/// The bin lock is held.
pub unsafe fn validate(e: *const Extent, bin: usize) {
    assert!((*e).is_slab && (*e).bin as usize == bin);
    assert_eq!((*e).bitmap.count(), (*e).nfree());
    assert!((*e).nfree() <= nregs(bin));
    for i in 0..nregs(bin) {
        if (*e).bitmap.get(i) {
            let p = (*e).addr + i * bin_size(bin);
            assert_eq!(*(p as *const usize), FREE_MARK, "free region {p:#x} without the free mark");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::size_class::{NBINS, SLAB_PAGES};

    #[test]
    fn region_index_is_exact_for_every_class_and_offset() {
        for (bin, &pages) in SLAB_PAGES.iter().enumerate().take(NBINS) {
            let size = bin_size(bin);
            let slab = pages as usize * crate::foundation::util::PAGE;
            assert!(slab <= 1 << 18 && div_magic(bin) >= 1 << 49);
            for off in 0..slab {
                let want = (off % size == 0).then_some(off / size);
                assert_eq!(region_index_magic(off, div_magic(bin)), want, "bin {bin} off {off}");
            }
        }
    }
}
