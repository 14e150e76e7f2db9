//! Radix tree: page address → extent descriptor, for every address in the 47-bit user space.
//!
//! Two levels: the root (in .bss, 2^15 slots = 256 KiB virtual, touched lazily) is indexed by
//! address bits 46..32; each leaf (2^20 slots = 8 MiB, mapped on first use, resident only
//! where written) by bits 31..12, so that the leaf index is the low 32 bits of the address
//! shifted (no mask: `free` is one instruction shorter than with 1 GiB leaves). Any address
//! gets an answer: null means "no extent registered for this page", which covers "not ours".
//!
//! Slab pages carry a tagged entry (`slab_entry`): descriptors are 128-byte aligned
//! (`EXTENT_ALIGN`), so the low 7 bits hold a tag: 0 for plain entries (large or free
//! extents, a slab's boundary pages while it is being released), 64 + class for the pages of
//! a slab that is not sparse, class + 1 (1..=63) for a sparse slab (`bin::is_sparse`). `free`
//! decides cache-or-slab with one bit test and finds the class with one mask
//! (`cacheable_bin`, `cacheable_bin_scaled`; against class + 1 for the cacheable tags, one
//! instruction fewer). `lookup` (`entry_extent`) strips the tag with one `and` of a
//! sign-extended 8-bit immediate. (Entries do not carry the page's index in its slab, which
//! would give `free` the block's offset in its slab without the descriptor's start address:
//! on this project's Zen 4 host pairs of malloc and free are bound by instructions per
//! cycle, not by that load, and subtracting the descriptor's `addr` is 5 instructions
//! shorter. With the index in bits 57..62, pairs of 16 B take 3.80 ns against 3.56 and
//! larson 17.5 ns per replacement against 17.0; alternating A/B medians of 7,
//! `scripts/ab-fastest.sh`.)
//!
//! Sync: slots are atomics. Writers hold the owning arena's `Pac` lock (rank 4), or for the
//! entries of an active slab its bin's lock (rank 3, sparse mark), and publish
//! with Release; readers (free, usable_size) load with Acquire and need no lock: a block's
//! registration happens before the malloc that returned it, which happens before its free.
//! Leaf installation takes `LEAF_LOCK` (rank 5).

use crate::metadata::base::BASE;
use crate::metadata::extent::{Extent, EXTENT_ALIGN};
use crate::foundation::sync::{Mutex, Rank};
use crate::foundation::util::LG_PAGE;
use core::sync::atomic::{AtomicPtr, Ordering};

const LEAF_BITS: u32 = 32 - LG_PAGE; // 20
const ROOT_BITS: u32 = 47 - LEAF_BITS - LG_PAGE; // 15
const LEAF_LEN: usize = 1 << LEAF_BITS;

type Leaf = [AtomicPtr<Extent>; LEAF_LEN];

#[allow(clippy::declare_interior_mutable_const)]
const NULL_LEAF: AtomicPtr<Leaf> = AtomicPtr::new(core::ptr::null_mut());
/// One slot more than user space needs: slot 2^ROOT_BITS (addresses from 2^47) stays null,
/// so `lookup_entry` may test its root index against 2^ROOT_BITS with one compare.
static ROOT: [AtomicPtr<Leaf>; (1 << ROOT_BITS) + 1] = [NULL_LEAF; (1 << ROOT_BITS) + 1];
static LEAF_LOCK: Mutex<()> = Mutex::ranked(Rank::RtreeLeaf, ());

/// End of the user address space the tree covers.
pub const USER_END: usize = 1 << USER_BITS;
pub const USER_BITS: u32 = 47;
/// Bits of an entry that hold its tag.
const TAG_MASK: usize = EXTENT_ALIGN - 1;
/// The tag bit of a slab that is not sparse (tag = CACHEABLE_TAG + class); sparse slabs have
/// tags 1..CACHEABLE_TAG (class + 1).
const CACHEABLE_TAG: usize = 64;
const _: () = assert!(crate::metadata::size_class::NBINS < CACHEABLE_TAG && TAG_MASK == 2 * CACHEABLE_TAG - 1);

/// The descriptor bits of an entry: all but the tag (descriptors are user-space addresses).
const DESCRIPTOR_MASK: usize = !TAG_MASK;

/// The tagged entry of the pages of slab `e` of class `bin`.
#[inline]
pub fn slab_entry(e: *mut Extent, bin: usize, sparse: bool) -> *mut Extent {
    debug_assert!(e as usize & TAG_MASK == 0 && (e as usize) < USER_END && bin < crate::metadata::size_class::NBINS);
    let tag = if sparse { bin + 1 } else { CACHEABLE_TAG + bin };
    (e as usize | tag) as *mut Extent
}

/// The class of a slab entry that is not sparse (its blocks may be cached), else None.
#[inline(always)]
pub fn cacheable_bin(entry: usize) -> Option<usize> {
    (entry & CACHEABLE_TAG != 0).then_some(entry & (CACHEABLE_TAG - 1))
}

/// `cacheable_bin(entry)` times `BIN_STRIDE` (the thread-cache bin's byte offset), from a
/// shift and a mask of the entry.
#[inline(always)]
pub fn cacheable_bin_scaled(entry: usize) -> Option<usize> {
    use crate::metadata::size_class::BIN_STRIDE;
    (entry & CACHEABLE_TAG != 0).then_some(crate::foundation::util::opaque(entry.wrapping_mul(BIN_STRIDE)) & ((CACHEABLE_TAG - 1) * BIN_STRIDE))
}

/// Whether the entry is a slab page's.
#[inline]
pub fn is_slab(entry: usize) -> bool {
    entry & TAG_MASK != 0
}

/// Whether the entry is a sparse slab page's.
#[inline]
pub fn is_sparse(entry: usize) -> bool {
    entry & TAG_MASK != 0 && entry & CACHEABLE_TAG == 0
}

/// Size class of a slab entry.
#[inline]
pub fn entry_bin(entry: usize) -> usize {
    debug_assert!(is_slab(entry));
    let t = entry & TAG_MASK;
    if t >= CACHEABLE_TAG { t - CACHEABLE_TAG } else { t - 1 }
}

/// The descriptor of an entry.
#[inline(always)]
pub fn entry_extent(entry: usize) -> *mut Extent {
    (entry & DESCRIPTOR_MASK) as *mut Extent
}

#[inline(always)]
fn split(addr: usize) -> (usize, usize) {
    ((addr >> (LG_PAGE + LEAF_BITS)) & ((1 << ROOT_BITS) - 1), leaf_index(addr))
}

/// Index of `addr`'s page in its leaf: bits 31..12, from the low 32 bits alone.
#[inline(always)]
fn leaf_index(addr: usize) -> usize {
    (addr as u32 >> LG_PAGE) as usize
}

/// The extent registered for the page holding `addr`, or null.
#[inline(always)]
pub fn lookup(addr: usize) -> *mut Extent {
    entry_extent(lookup_entry(addr))
}

/// The raw (possibly tagged) entry for the page holding `addr`, 0 when none: for null, for
/// addresses beyond user space (their root index is past ROOT) and for pages nothing
/// registered (page 0 never is: the kernel maps nothing there). The range test is one
/// compare of the root index the lookup computes anyway, so `free` needs no separate null
/// test (pairs of 16 B: 4 fewer instructions).
#[inline(always)]
pub fn lookup_entry(addr: usize) -> usize {
    let (r, l) = (crate::foundation::util::opaque(addr >> (LG_PAGE + LEAF_BITS)), leaf_index(addr));
    if r > 1 << ROOT_BITS {
        core::hint::cold_path();
        return 0;
    }
    let root = crate::static_addr!(ROOT, AtomicPtr<Leaf>);
    // SAFETY: `root` is ROOT's first slot and r ≤ 2^ROOT_BITS, inside ROOT (slot 2^ROOT_BITS
    // exists and stays null).
    let leaf = unsafe { (*root.add(r)).load(Ordering::Acquire) };
    if leaf.is_null() {
        core::hint::cold_path();
        return 0;
    }
    // SAFETY: a non-null root slot points to a live, never-freed leaf of LEAF_LEN slots, and
    // `l < LEAF_LEN` by construction.
    unsafe { (*leaf).get_unchecked(l).load(Ordering::Acquire) as usize }
}

/// The slot for `addr`, creating its leaf if needed; None if the OS refused memory.
fn slot(addr: usize) -> Option<&'static AtomicPtr<Extent>> {
    debug_assert!(addr >> 47 == 0);
    let (r, l) = split(addr);
    let mut leaf = ROOT[r].load(Ordering::Acquire);
    if leaf.is_null() {
        let _g = LEAF_LOCK.lock();
        leaf = ROOT[r].load(Ordering::Acquire);
        if leaf.is_null() {
            leaf = BASE.alloc(core::mem::size_of::<Leaf>(), 4096) as *mut Leaf;
            if leaf.is_null() {
                return None;
            }
            ROOT[r].store(leaf, Ordering::Release);
        }
    }
    // SAFETY: as in `lookup`; leaves live forever, so 'static is right.
    Some(unsafe { (*leaf).get_unchecked(l) })
}

/// Makes sure the leaf of every page of `[addr, addr + len)` exists, so that later `set`s in
/// the range cannot fail (`Pac::grow` calls it for each reservation before using it); false
/// when the OS refused memory for one (the leaves made so far stay).
pub fn ensure(addr: usize, len: usize) -> bool {
    /// Bytes of address space one leaf covers.
    const SPAN: usize = 1 << (LEAF_BITS + LG_PAGE);
    debug_assert!(len > 0);
    let last = addr + len - 1;
    let mut a = addr;
    loop {
        if slot(a).is_none() {
            return false;
        }
        let next = (a | (SPAN - 1)) + 1;
        if next > last {
            return true;
        }
        a = next;
    }
}

/// Registers `e` (or null) for the page holding `addr`. The leaf must exist (`ensure`).
#[inline(always)]
pub fn set(addr: usize, e: *mut Extent) {
    debug_assert!(addr >> 47 == 0);
    let (r, l) = split(addr);
    let leaf = ROOT[r].load(Ordering::Acquire);
    if leaf.is_null() {
        return set_slow(addr, e);
    }
    // SAFETY: as in `lookup`.
    unsafe { (*leaf).get_unchecked(l).store(e, Ordering::Release) }
}

/// `set` where the leaf is missing: only for a page outside every `ensure`d range, which no
/// caller registers, so a failure here is a broken invariant, not a lack of memory.
#[cold]
#[inline(never)]
fn set_slow(addr: usize, e: *mut Extent) {
    match slot(addr) {
        Some(s) => s.store(e, Ordering::Release),
        None => crate::foundation::report::fatal("page map leaf missing for a registered page"),
    }
}

/// Sets the entry of page `k` after `addr` to `value(k)` for every `k` of `pages` (each < 64:
/// the pages of one slab). One root lookup serves every page in `addr`'s leaf (slabs are
/// ≤ 256 KiB, leaves cover 4 GiB); the leaves exist.
pub fn set_pages(addr: usize, pages: impl Iterator<Item = usize>, value: impl Fn(usize) -> *mut Extent) {
    let (r, l0) = split(addr);
    let leaf = ROOT[r].load(Ordering::Acquire);
    for k in pages {
        if !leaf.is_null() && l0 + k < LEAF_LEN {
            // SAFETY: as in `lookup`; l0 + k < LEAF_LEN.
            unsafe { (*leaf).get_unchecked(l0 + k).store(value(k), Ordering::Release) }
        } else {
            set(addr + (k << LG_PAGE), value(k));
        }
    }
}

/// Leaf lock for fork.
pub fn prefork() {
    LEAF_LOCK.raw_lock();
}

pub fn postfork_parent() {
    // SAFETY: taken in `prefork` by this thread.
    unsafe { LEAF_LOCK.force_unlock() }
}

pub fn postfork_child() {
    // SAFETY: fork child after `prefork`.
    unsafe { LEAF_LOCK.reset_after_fork() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_everywhere() {
        assert!(lookup(0).is_null());
        assert!(lookup(usize::MAX).is_null());
        assert!(lookup(1 << 47).is_null());
        let fake = 0x1000 as *mut Extent;
        let a = 0x5555_0000_0000usize;
        assert!(ensure(a, 1 << 31));
        set_pages(a, 0..3, |_| fake);
        assert_eq!(lookup(a + 5), fake);
        assert_eq!(lookup(a + 2 * 4096 + 4095), fake);
        assert!(lookup(a + 3 * 4096).is_null());
        set(a + 4096, core::ptr::null_mut());
        assert!(lookup(a + 4096).is_null());
    }

    #[test]
    fn ensure_makes_every_leaf_of_a_range() {
        let span = 1usize << (LEAF_BITS + LG_PAGE);
        let a = 0x5557_0000_0000usize + span - 2 * 4096;
        assert!(ensure(a, 3 * span));
        for k in 0..4 {
            let (r, _) = split(a + k * span);
            assert!(!ROOT[r].load(Ordering::Acquire).is_null(), "leaf {k} of the range missing");
        }
        let (r, _) = split(a + 4 * span);
        assert!(ROOT[r].load(Ordering::Acquire).is_null(), "a leaf past the range was made");
    }

    #[test]
    fn slab_entries_decode() {
        let fake = 0x7fff_ffff_ff80 as *mut Extent;
        for bin in [0, 40, crate::metadata::size_class::NBINS - 1, 7] {
            let v = slab_entry(fake, bin, bin == 7) as usize;
            assert!(is_slab(v));
            assert_eq!(is_sparse(v), bin == 7);
            assert_eq!(entry_extent(v), fake);
            assert_eq!(entry_bin(v), bin);
            assert_eq!(cacheable_bin(v), (bin != 7).then_some(bin));
            let stride = crate::metadata::size_class::BIN_STRIDE;
            assert_eq!(cacheable_bin_scaled(v), (bin != 7).then_some(bin * stride));
        }
        assert!(!is_slab(fake as usize) && cacheable_bin(fake as usize).is_none());
        assert!(cacheable_bin_scaled(fake as usize).is_none() && cacheable_bin_scaled(0).is_none());
        let a = 0x5556_0000_0000usize;
        assert!(ensure(a, 1 << 20));
        set(a, slab_entry(fake, 3, false));
        assert_eq!(lookup(a + 9), fake);
        assert_eq!(entry_bin(lookup_entry(a + 9)), 3);
        assert_eq!(lookup_entry(1 << 47), 0);
    }
}
