//! The Rust-level entry points behind every exported C function.
//!
//! Contract: all argument validation lives here (size limits, overflow, alignment); results
//! follow C: null plus errno ENOMEM when memory cannot be had. Misuse of a pointer (not ours,
//! interior, already free) ends in `report::misuse` naming the C call. Nothing here allocates
//! through anything but the arenas, and `free` preserves errno (no path of it sets errno).

use crate::arena::{self, Arena};
use crate::extent::{Extent, State};
use crate::init;
use crate::pac;
use crate::report::{self, Misuse};
use crate::rtree;
use crate::size_class::{bin_size, size2bin, SMALL_MAX};
use crate::sys;
use crate::util::{align_up, align_up_checked, LG_PAGE, MAX_REQUEST, PAGE};

#[cold]
fn enomem() -> *mut u8 {
    sys::set_errno(libc::ENOMEM);
    core::ptr::null_mut()
}

#[inline(always)]
fn small_alloc(a: &Arena, bin: usize) -> *mut u8 {
    let p = a.bins[bin].lock.lock().alloc(&a.pac);
    if p.is_null() {
        return enomem();
    }
    p
}

/// A large block of `size` bytes (> 0) aligned to `align` (power of two ≥ PAGE).
#[cold]
fn large_alloc(a: &Arena, size: usize, align: usize, zero: bool) -> *mut u8 {
    if size > MAX_REQUEST || align > MAX_REQUEST / 2 {
        return enomem();
    }
    let pages = align_up(size, PAGE) >> LG_PAGE;
    let e = a.pac.inner.lock().alloc(pages, align, None);
    if e.is_null() {
        return enomem();
    }
    // SAFETY: `e` is an active extent we just obtained; its pages are ours to write.
    unsafe {
        if zero && !(*e).zeroed {
            core::ptr::write_bytes((*e).addr as *mut u8, 0, (*e).size);
        }
        (*e).addr as *mut u8
    }
}

/// malloc(size).
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    init::ensure();
    let a = arena::choose();
    if size <= SMALL_MAX {
        small_alloc(a, size2bin(size))
    } else {
        large_alloc(a, size, PAGE, false)
    }
}

/// calloc(n, size).
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    init::ensure();
    let total = match n.checked_mul(size) {
        Some(t) if t <= MAX_REQUEST => t,
        _ => return enomem(),
    };
    let a = arena::choose();
    if total <= SMALL_MAX {
        let p = small_alloc(a, size2bin(total));
        if !p.is_null() {
            // SAFETY: `p` is a fresh region of at least `total` bytes.
            unsafe { core::ptr::write_bytes(p, 0, total) };
        }
        p
    } else {
        large_alloc(a, total, PAGE, true)
    }
}

/// An allocation of `size` bytes aligned to `align` (a power of two; callers check that).
pub fn aligned(align: usize, size: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    init::ensure();
    if align <= 8 {
        return malloc(size);
    }
    let a = arena::choose();
    if align <= PAGE {
        // A class whose size is a multiple of `align` has every region aligned to it, and the
        // class of round_up(size, align) always is such a multiple (size_class.rs).
        match align_up_checked(size, align) {
            Some(s) if s <= SMALL_MAX => return small_alloc(a, size2bin(s)),
            Some(_) => {}
            None => return enomem(),
        }
    }
    large_alloc(a, size.max(1), align.max(PAGE), false)
}

/// Resolves `p` (non-null) to its live extent, or reports misuse by `func`.
#[inline(always)]
fn lookup_live(p: usize, func: &str) -> &'static Extent {
    let e = rtree::lookup(p);
    if e.is_null() {
        bad_pointer(p, func);
    }
    // SAFETY: registered descriptors are never freed (only recycled), so the reference is
    // valid; for a live block its fields are stable (see `Extent`'s Sync notes).
    let e = unsafe { &*e };
    if !e.is_slab && (e.state() != State::Active || e.addr != p) {
        large_misuse(e, p, func);
    }
    e
}

#[cold]
#[inline(never)]
fn bad_pointer(p: usize, func: &str) -> ! {
    let kind = if pac::is_reserved(p) { Misuse::NotLive } else { Misuse::NotOurs };
    report::misuse(func, kind, p)
}

#[cold]
#[inline(never)]
fn large_misuse(e: &Extent, p: usize, func: &str) -> ! {
    let kind = match (e.state() == State::Active, e.addr == p) {
        (false, true) => Misuse::DoubleFree,
        (false, false) => Misuse::NotLive,
        (true, _) => Misuse::InteriorPointer,
    };
    report::misuse(func, kind, p)
}

/// Frees `p` (null is a no-op) on behalf of the C call `func`.
#[inline(always)]
pub fn free(p: *mut u8, func: &str) {
    if p.is_null() {
        return;
    }
    let p = p as usize;
    let e = lookup_live(p, func);
    let a = arena::get(e.arena);
    let ep = e as *const Extent as *mut Extent;
    if e.is_slab {
        // SAFETY: the rtree maps `p` to this active slab of class `e.bin`.
        unsafe { a.bins[e.bin as usize].lock.lock().free(&a.pac, ep, p, func) }
    } else if !a.pac.inner.lock().dalloc(ep) {
        report::misuse(func, Misuse::DoubleFree, p);
    }
}

/// Usable size of the live block `p` (0 for null).
pub fn usable_size(p: *const u8, func: &str) -> usize {
    if p.is_null() {
        return 0;
    }
    let p = p as usize;
    let e = lookup_live(p, func);
    if e.is_slab {
        let a = arena::get(e.arena);
        let g = a.bins[e.bin as usize].lock.lock();
        // SAFETY: we hold the bin lock; `e` is the slab holding `p`.
        match unsafe { crate::slab::check(e, e.bin as usize, p) } {
            crate::slab::RegionCheck::Live(_) => {}
            crate::slab::RegionCheck::Interior => report::misuse(func, Misuse::InteriorPointer, p),
            crate::slab::RegionCheck::AlreadyFree => report::misuse(func, Misuse::DoubleFree, p),
        }
        drop(g);
        bin_size(e.bin as usize)
    } else {
        e.size
    }
}

/// realloc(p, size). `realloc(p, 0)` frees `p` and returns a minimal block (jemalloc's default
/// `zero_realloc:alloc`).
pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(size);
    }
    if size > MAX_REQUEST {
        // Validate `p` first so misuse is still reported, then fail without touching it.
        let _ = usable_size(p, "realloc");
        return enomem();
    }
    let old = usable_size(p, "realloc");
    let e = rtree::lookup(p as usize);
    // SAFETY: `usable_size` validated that `p` is a live block with descriptor `e`.
    let e = unsafe { &mut *e };
    if e.is_slab {
        if size <= SMALL_MAX && size2bin(size) == e.bin as usize {
            return p;
        }
    } else if size > SMALL_MAX {
        let pages = align_up(size, PAGE) >> LG_PAGE;
        let a = arena::get(e.arena);
        let cur = e.pages();
        if pages == cur {
            return p;
        }
        let mut g = a.pac.inner.lock();
        if pages < cur {
            if g.shrink(e, pages) {
                return p;
            }
        } else if g.expand(e, pages) {
            return p;
        }
    }
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; we copy the smaller usable length.
    unsafe { core::ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free(p, "realloc");
    q
}

/// Returns empty current slabs and purges all dirty pages; true if anything was released.
pub fn trim() -> bool {
    init::ensure();
    let mut pages = 0;
    for a in arena::ARENAS.iter() {
        for b in a.bins.iter() {
            pages += b.lock.lock().trim(&a.pac);
        }
        pages += a.pac.inner.lock().purge_all();
    }
    pages > 0
}
