//! jemalloc's non-standard API: `mallocx rallocx xallocx sallocx dallocx sdallocx nallocx`.
//!
//! Contract (reference/jemalloc-compat.md §1.3-1.4): `flags` is jemalloc's bit layout —
//! bits 0-5 lg(alignment) (0: none), bit 6 ZERO, bits 8-19 tcache (0 automatic, 1 none,
//! n ≥ 2 an explicit tcache, which oxmalloc serves as automatic), bits 20-31 arena + 1
//! (0 automatic). An explicit arena or TCACHE_NONE bypasses the thread cache. `nallocx` is the
//! usable size `mallocx` would return, 0 when the request cannot be met; a failed `mallocx` or
//! `rallocx` returns null and leaves any old block untouched; a block `rallocx` moves holds the
//! old block's bytes up to the smaller usable size and, with `MALLOCX_ZERO`, zeros from the old
//! usable size up (no byte keeps what the memory held before); `xallocx` never moves and returns
//! the usable size after the attempt (`mallocx` takes large blocks from the thread cache
//! only at their exact size, so its blocks are exactly `nallocx`); `sdallocx` checks that its
//! size belongs to the block (`nallocx(size, flags) == sallocx(p)`, or for a large block that
//! `malloc` or `new` got from the cache up to 1/8 bigger, `nallocx ≤ sallocx ≤
//! tcache::large_fit_max`, or for one `xallocx` left bigger than its `size` asked for,
//! `nallocx ≤ sallocx`) and reports `size does not match the block`.
//! In-place resizing: a small block stays while the new size keeps its class; a large block
//! grows into a free following extent and shrinks by splitting off its tail (`pac`).

use crate::front::alloc::{self, usable_of};
use crate::objects::arena::{self, Arena};
use crate::metadata::extent::Extent;
use crate::front::init;
use crate::foundation::report::{self, Misuse};
use crate::metadata::size_class::{size2bin, SMALL_MAX};
use crate::tcache;
use crate::foundation::util::{align_up, align_up_checked, LG_PAGE, MAX_REQUEST, PAGE};

/// Decoded `flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// Requested alignment, 0 when none.
    pub align: usize,
    pub zero: bool,
    pub tcache_none: bool,
    pub arena: Option<usize>,
}

pub const ZERO: i32 = 0x40;
pub const TCACHE_NONE: i32 = 0x100;

pub fn decode(flags: i32) -> Flags {
    let f = flags as u32;
    let lg = f & 0x3f;
    Flags {
        // lg ≥ 63 cannot be honoured; usize::MAX makes every size check fail.
        align: if lg == 0 { 0 } else if lg < 63 { 1usize << lg } else { usize::MAX },
        zero: f & 0x40 != 0,
        tcache_none: (f >> 8) & 0xfff == 1,
        arena: match f >> 20 {
            0 => None,
            a => Some(a as usize - 1),
        },
    }
}

/// Usable size of a block of `size` bytes (≥ 1) aligned to `align` (0 or a power of two), as
/// `alloc::malloc`/`alloc::aligned` place it; 0 when impossible (also when rounding to whole
/// pages passes `MAX_REQUEST`).
pub fn usable_for(size: usize, align: usize) -> usize {
    if size > MAX_REQUEST || align > MAX_REQUEST / 2 {
        return 0;
    }
    let s = if align > 8 && align <= PAGE {
        match align_up_checked(size, align) {
            Some(s) => s,
            None => return 0,
        }
    } else {
        size
    };
    let u = if align <= PAGE {
        crate::metadata::size_class::usable_size(s)
    } else {
        align_up(s, PAGE)
    };
    if u > MAX_REQUEST {
        0
    } else {
        u
    }
}

/// nallocx(size, flags).
pub fn nallocx(size: usize, flags: i32) -> usize {
    usable_for(size.max(1), decode(flags).align)
}

/// The arena a flag set asks for (None: the thread's own), or Err when it cannot exist.
fn arena_of(f: &Flags) -> Result<Option<&'static Arena>, ()> {
    match f.arena {
        None => Ok(None),
        Some(i) => arena::get_or_create(i).map(Some).ok_or(()),
    }
}

/// mallocx(size, flags).
pub fn mallocx(size: usize, flags: i32) -> *mut u8 {
    init::ensure();
    let f = decode(flags);
    let size = size.max(1);
    let usable = usable_for(size, f.align);
    if usable == 0 {
        return core::ptr::null_mut();
    }
    let arena = match arena_of(&f) {
        Ok(a) => a,
        Err(()) => return core::ptr::null_mut(),
    };
    // Large blocks come zeroed from the large paths (which skip pages known to be zero);
    // small ones are zeroed here.
    let small = usable <= SMALL_MAX && f.align <= PAGE;
    let p = if f.tcache_none || arena.is_some() {
        let a = arena.unwrap_or_else(|| tcache::current().map_or(arena::fallback(), |t| t.arena));
        if small {
            alloc::small_direct(a, size2bin(usable))
        } else {
            alloc::large_from(a, usable, f.align.max(PAGE), f.zero)
        }
    } else if !small && f.align <= PAGE {
        // Large: exact size only, so that the block's usable size is what nallocx said.
        alloc::alloc_large(usable, f.zero, false)
    } else if !small {
        // `alloc::aligned` for alignments above a page.
        alloc::large_from(tcache::current().map_or(arena::fallback(), |t| t.arena), usable, f.align, f.zero)
    } else if f.align > 8 {
        alloc::aligned(f.align, size)
    } else {
        alloc::malloc(size)
    };
    if f.zero && small && !p.is_null() {
        // SAFETY: `p` is a fresh block of `usable` bytes.
        unsafe { core::ptr::write_bytes(p, 0, usable) };
    }
    p
}

/// Resizes the live block `p` (extent `e`, not moving it) to a usable size between what
/// `min` and `max` bytes need, as close to `max` as possible; returns the usable size after.
///
/// # Safety
/// `p` is a live block owned by the caller.
unsafe fn resize_in_place(e: &Extent, p: *mut u8, min: usize, max: usize, align: usize) -> usize {
    let old = usable_of(e);
    if e.is_slab {
        return old; // a small block keeps its class
    }
    if align > PAGE && !(p as usize).is_multiple_of(align) {
        return old;
    }
    let pages = |n: usize| align_up(n, PAGE) >> LG_PAGE;
    let (lo, hi, cur) = (pages(min), pages(max), e.pages());
    let ep = e as *const Extent as *mut Extent;
    if cur < lo {
        alloc::release_cached_neighbour(e);
    }
    let a = arena::get(e.arena);
    let mut g = a.pac.lock();
    if cur > hi {
        g.shrink(ep, hi);
    } else if cur < lo && !g.expand(ep, hi) {
        g.expand(ep, lo);
    }
    drop(g);
    a.tick();
    (*ep).size
}

/// xallocx(p, size, extra, flags).
///
/// # Safety
/// `p` is a live block owned by the caller (jemalloc: null is undefined; we report it).
pub unsafe fn xallocx(p: *mut u8, size: usize, extra: usize, flags: i32) -> usize {
    init::ensure();
    let e = live(p, "xallocx");
    let old = usable_of(e);
    let f = decode(flags);
    if size == 0 || size > MAX_REQUEST {
        return old;
    }
    let max = size.saturating_add(extra).min(MAX_REQUEST);
    if old >= size && old <= usable_for(max, 0).max(size) {
        return old;
    }
    let new = resize_in_place(e, p, size, max, f.align);
    if f.zero && new > old {
        core::ptr::write_bytes(p.add(old), 0, new - old);
    }
    if !e.is_slab && new > usable_for(size, f.align) {
        // A sized free may now name `size`, or any size up to `new`.
        e.loose_size.store(true, core::sync::atomic::Ordering::Relaxed);
    }
    new
}

/// rallocx(p, size, flags).
///
/// # Safety
/// As `xallocx`.
pub unsafe fn rallocx(p: *mut u8, size: usize, flags: i32) -> *mut u8 {
    init::ensure();
    let e = live(p, "rallocx");
    let f = decode(flags);
    let size = size.max(1);
    let want = usable_for(size, f.align);
    if want == 0 {
        return core::ptr::null_mut();
    }
    let old = usable_of(e);
    let aligned_ok = f.align <= 1 || (p as usize).is_multiple_of(f.align);
    if aligned_ok && f.arena.is_none() {
        if e.is_slab {
            if want <= SMALL_MAX && size2bin(want) == e.bin as usize {
                return p;
            }
        } else if want > SMALL_MAX {
            let new = resize_in_place(e, p, want, want, f.align);
            if new == want {
                if f.zero && new > old {
                    core::ptr::write_bytes(p.add(old), 0, new - old);
                }
                return p;
            }
        }
    }
    let q = mallocx(size, flags & !ZERO);
    if q.is_null() {
        return q;
    }
    // Every usable byte of the new block is the old block's (up to the smaller usable size,
    // as jemalloc copies) or, with ZERO, zero: none keeps what the memory held before.
    let nu = alloc::usable_size(q, "rallocx");
    core::ptr::copy_nonoverlapping(p, q, old.min(nu));
    if f.zero && nu > old {
        core::ptr::write_bytes(q.add(old), 0, nu - old);
    }
    dallocx(p, flags);
    q
}

/// The live extent of `p`, for a call that has no null case.
fn live(p: *mut u8, func: &str) -> &'static Extent {
    alloc::check_live(tcache::current().as_deref(), p as usize, func)
}

/// sallocx(p, flags): the usable size.
pub fn sallocx(p: *const u8, _flags: i32) -> usize {
    init::ensure();
    alloc::usable_size(p, "sallocx")
}

/// dallocx(p, flags).
pub fn dallocx(p: *mut u8, flags: i32) {
    if p.is_null() {
        return;
    }
    if decode(flags).tcache_none {
        alloc::free_direct(p, "dallocx");
    } else {
        alloc::free(p, "dallocx");
    }
}

/// sdallocx(p, size, flags) and the sized `operator delete`s (`func` names the call).
pub fn sdallocx(p: *mut u8, size: usize, flags: i32, func: &str) {
    if p.is_null() {
        return;
    }
    init::ensure();
    let have = alloc::usable_size(p, func);
    let want = usable_for(size.max(1), decode(flags).align);
    // A large request may have been served a cached block up to 1/8 bigger, and `xallocx`
    // may have left a large block bigger than the size it was asked for.
    if want != have && !(want < have && (have <= tcache::large_fit_max(want) || loose_size(p))) {
        report::misuse(func, Misuse::SizeMismatch, p as usize);
    }
    if decode(flags).tcache_none {
        alloc::free_direct(p, func);
    } else {
        alloc::free(p, func);
    }
}

/// Whether the live block `p` (resolved by `usable_size` already) is a large block whose sized
/// free may name any size up to its usable one (`Extent::loose_size`).
#[cold]
fn loose_size(p: *mut u8) -> bool {
    let e = crate::metadata::rtree::lookup(p as usize);
    // SAFETY: registered descriptors are never freed; `p` is live (checked by the caller).
    !e.is_null() && unsafe { !(*e).is_slab && (*e).loose_size.load(core::sync::atomic::Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_layout() {
        assert_eq!(decode(0), Flags { align: 0, zero: false, tcache_none: false, arena: None });
        assert_eq!(decode(4).align, 16); // MALLOCX_ALIGN(16)
        assert!(decode(ZERO).zero);
        assert!(decode(TCACHE_NONE).tcache_none);
        assert!(!decode(0x200).tcache_none); // MALLOCX_TCACHE(0): an explicit cache
        assert_eq!(decode(0x100000).arena, Some(0)); // MALLOCX_ARENA(0)
        assert_eq!(decode(0x200000 | 0x40 | 12).arena, Some(1));
    }

    #[test]
    fn nallocx_matches_placement() {
        assert_eq!(nallocx(0, 0), 8);
        assert_eq!(nallocx(17, 0), 32);
        assert_eq!(nallocx(1, 6), 64); // ALIGN(64)
        assert_eq!(nallocx(usize::MAX, 0), 0);
        assert_eq!(nallocx(MAX_REQUEST, 0), 0, "rounds past MAX_REQUEST");
        assert_eq!(nallocx(MAX_REQUEST - 4094, 0), 0);
        assert_eq!(nallocx(MAX_REQUEST - 4095, 0), MAX_REQUEST - 4095);
        assert_eq!(nallocx(MAX_REQUEST - 4094, 13), 0);
        assert_eq!(nallocx(1, 62), 0);
        for (size, flags) in [(1usize, 0), (100, 4), (5000, 13), (40000, 0), (3, 20), (70000, 0)] {
            let p = mallocx(size, flags);
            assert!(!p.is_null());
            assert_eq!(sallocx(p, 0), nallocx(size, flags), "{size} {flags}");
            let a = decode(flags).align.max(1);
            assert_eq!(p as usize % a, 0);
            sdallocx(p, size, flags, "sdallocx");
        }
    }

    #[test]
    fn resize_in_place_large() {
        // Two neighbours from a fresh arena: the first can grow into the second once it is freed.
        let _x = crate::front::alloc::tests::ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let f = 0x100 | ((200 + 1) << 20); // TCACHE_NONE | ARENA(200): no cache, no other user
        let a = mallocx(1 << 20, f);
        let b = mallocx(1 << 20, f);
        assert_eq!(b as usize, a as usize + (1 << 20), "fresh arena places blocks in order");
        dallocx(b, f);
        // SAFETY: `a` is live and ours.
        unsafe {
            assert_eq!(xallocx(a, 2 << 20, 0, 0), 2 << 20);
            assert_eq!(xallocx(a, 1 << 20, 0, 0), 1 << 20);
            let q = rallocx(a, 2 << 20, ZERO);
            assert_eq!(q, a, "grows in place");
            assert_eq!(*q.add((2 << 20) - 1), 0);
            assert_eq!(xallocx(q, usize::MAX, 0, 0), 2 << 20);
            dallocx(q, f);
        }
    }
}
