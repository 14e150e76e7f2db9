//! The entry points behind Rust's `GlobalAlloc` (`rust::OxMalloc`): allocation by layout (size
//! and alignment), and the sized free a layout makes possible.
//!
//! Contract: `size` is non-zero (Rust never hands a zero-size layout to a global allocator)
//! and `align` a power of two (`Layout` guarantees both). Failure returns null, with no panic
//! and no abort: Rust's `handle_alloc_error` then runs in the caller. A layout is *plain* when
//! its alignment is at most 16 and at most its size: `malloc`'s paths serve it, since every
//! class from 16 bytes up is a multiple of 16 and large blocks are page-aligned. Any other
//! layout takes `alloc::aligned`'s paths (a class whose size is a multiple of the alignment,
//! or pages at the alignment), and `dealloc` and `realloc` tell the two kinds apart the same
//! way, so a block is always freed and resized as what it was allocated as.
//!
//! `dealloc` is a sized free, checked as `sdallocx` checks its size: the layout's size must
//! belong to the block (a size that does not ends in `oxmalloc: dealloc(): size does not
//! match the block`). For a small block at an alignment up to 16 the check is one compare
//! on `free`'s fast path: the class of the size against the class in the block's page-map
//! entry. That is `sdallocx`'s check at those alignments, but for a block of the 8-byte class
//! freed with an alignment of 16, which it accepts: no allocation at that alignment returns
//! such a block, so only a layout whose alignment differs from the allocation's tells them
//! apart (and the block may be freed all the same).

use crate::front::{alloc, init, xalloc};
use crate::metadata::extent::State;
use crate::metadata::rtree;
use crate::metadata::size_class::{size2bin, size2bin_scaled, BIN_STRIDE, LOOKUP_MAX, SMALL_MAX};
use crate::objects::arena;
use crate::tcache::{self, tsd, Tcache};
use crate::foundation::util::{align_up, align_up_checked, PAGE};

/// The largest alignment every block of at least that many bytes has from `malloc`.
const MALLOC_ALIGN: usize = 16;

/// Whether `malloc(size)` returns a block aligned to `align` (see the module header).
#[inline(always)]
fn plain(size: usize, align: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

/// `MALLOCX_ALIGN(align)` for a power of two (lg(align) ≤ 63 fits the 6 bits).
#[inline]
fn align_flags(align: usize) -> i32 {
    align.trailing_zeros() as i32
}

/// `GlobalAlloc::alloc`: `size` bytes aligned to `align`; null when out of memory.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if plain(size, align) {
        alloc::malloc(size)
    } else {
        alloc::aligned(align, size)
    }
}

/// `GlobalAlloc::alloc_zeroed`: as `alloc`, with every byte zero. Large blocks carved from
/// pages known to be zero (fresh from the OS, or purged) are not written (`alloc::large_from`);
/// small blocks and blocks from a thread cache are cleared.
#[inline]
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if plain(size, align) {
        return alloc::calloc(1, size);
    }
    if align <= PAGE {
        // The class of `size` rounded up to `align` has every region aligned to it, and a
        // rounded size above SMALL_MAX is large, hence page-aligned (see `alloc::aligned`).
        return match align_up_checked(size, align) {
            Some(s) => alloc::calloc(1, s),
            None => core::ptr::null_mut(),
        };
    }
    init::ensure();
    let a = tcache::current().map_or(arena::fallback(), |t| t.arena);
    alloc::large_from(a, size, align, true)
}

/// `GlobalAlloc::dealloc` of the live block `p` allocated (or last resized) with `size` and
/// `align`. A small block whose class is the class of `size`, at an alignment of at most 16,
/// goes onto this thread's cache as `alloc::free` puts it there (the size check: see the
/// module header); anything else takes `dealloc_slow`.
#[inline(always)]
pub fn dealloc(p: *mut u8, size: usize, align: usize) {
    let entry = rtree::lookup_entry(p as usize);
    if align <= MALLOC_ALIGN && size <= SMALL_MAX {
        if let Some(bin_off) = rtree::cacheable_bin_scaled(entry) {
            let t = tsd::get();
            if bin_off == class_offset(size) && t > tsd::LAST_SENTINEL {
                // SAFETY: a non-sentinel slot value is this thread's live cache, used only by
                // it; a tagged entry's descriptor is never freed (see `alloc::free`).
                let (tc, e) = unsafe { (&mut *(t as *mut Tcache), &*rtree::entry_extent(entry)) };
                if tc.free_small_checked(bin_off, p, (p as usize).wrapping_sub(e.addr)) {
                    return;
                }
            }
        }
    }
    dealloc_slow(p, size, align, entry)
}

/// The thread-cache bin offset of the class of `size` (≤ SMALL_MAX), as
/// `rtree::cacheable_bin_scaled` gives it for a block of that class.
#[inline(always)]
fn class_offset(size: usize) -> usize {
    if size <= LOOKUP_MAX {
        size2bin_scaled(size)
    } else {
        size2bin(size) * BIN_STRIDE
    }
}

/// `dealloc` of what its fast path does not take (`entry`: `p`'s page-map entry): large
/// blocks and small blocks the cache does not take, each after its size check, to `free`'s
/// paths; layouts aligned above 16 and sizes that do not match to `sdallocx`.
#[inline(never)]
fn dealloc_slow(p: *mut u8, size: usize, align: usize, entry: usize) {
    if size > SMALL_MAX && align <= PAGE && entry != 0 && !rtree::is_slab(entry) {
        // SAFETY: registered descriptors are never freed; an untagged entry is a large
        // extent or a free one, told apart by its state.
        let e = unsafe { &*rtree::entry_extent(entry) };
        // `usable_for(size, align)` for a large size and an alignment up to a page; the block
        // may be up to 1/8 bigger when it came from the thread cache (as `sdallocx` allows).
        let want = align_up(size, PAGE);
        if e.addr == p as usize && e.state() == State::Active && (e.size == want || (want < e.size && e.size <= tcache::large_fit_max(want))) {
            return alloc::free_large(entry, p, "dealloc");
        }
    }
    if size <= SMALL_MAX && align <= MALLOC_ALIGN && rtree::is_slab(entry) && rtree::entry_bin(entry) == size2bin(size) {
        // A small block of the size's class that the fast path does not cache (a sparse
        // slab's, whose frees go straight back to it; no thread cache): `free` checks the rest.
        return alloc::free(p, "dealloc");
    }
    let flags = if plain(size, align) { 0 } else { align_flags(align) };
    xalloc::sdallocx(p, size, flags, "dealloc")
}

/// `GlobalAlloc::realloc` of the live block `p` (allocated with alignment `align`) to
/// `new_size` bytes at the same alignment: in place when the class is unchanged (small) or
/// the pages can shrink or grow where they are (large), else a new block, a copy and a free.
/// Null when out of memory, `p` then untouched. A plain new layout takes `realloc`'s paths
/// (a block kept in place keeps its address, a moved one is `malloc`'s, aligned as the module
/// header says); any other takes `rallocx`'s with the alignment as a flag, which keeps it.
///
/// # Safety
/// `p` is a live block of this allocator that the caller owns, allocated with `align`.
#[inline]
pub unsafe fn realloc(p: *mut u8, align: usize, new_size: usize) -> *mut u8 {
    if plain(new_size, align) {
        alloc::realloc(p, new_size)
    } else {
        xalloc::rallocx(p, new_size, align_flags(align))
    }
}
