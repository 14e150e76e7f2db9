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
    // SAFETY: `bin` comes from size2bin, < NBINS.
    let p = unsafe { a.bins.get_unchecked(bin) }.lock.lock().alloc(&a.pac);
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
        match align_up_checked(size.max(1), align) {
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
        // SAFETY: the rtree maps `p` to this active slab of class `e.bin` (< NBINS, set by
        // `Pac::alloc` from a class index).
        unsafe { a.bins.get_unchecked(e.bin as usize).lock.lock().free(&a.pac, ep, p, func) }
    } else {
        // SAFETY: `ep` is the large extent registered for `p`; `dalloc` re-checks under the lock
        // that it is still active, which catches two racing frees of one block.
        if !unsafe { a.pac.inner.lock().dalloc(ep) } {
            report::misuse(func, Misuse::DoubleFree, p);
        }
    }
}

/// Usable size of the live block `p` (0 for null), for `malloc_usable_size`, which some
/// programs (Redis) call on every allocation: it takes no lock. It reports pointers that are
/// not ours, interior pointers and freed large blocks; whether a small block is already free
/// needs the bin lock and is left to `free` and `realloc`.
pub fn usable_size(p: *const u8, func: &str) -> usize {
    if p.is_null() {
        return 0;
    }
    let p = p as usize;
    let e = lookup_live(p, func);
    if e.is_slab {
        if crate::slab::region_index(e, e.bin as usize, p).is_none() {
            report::misuse(func, Misuse::InteriorPointer, p);
        }
        bin_size(e.bin as usize)
    } else {
        e.size
    }
}

/// As `usable_size`, and a small block must not be free already (checked under the bin lock).
fn checked_usable_size(p: *const u8, func: &str) -> usize {
    let size = usable_size(p, func);
    let e = lookup_live(p as usize, func);
    if e.is_slab {
        let a = arena::get(e.arena);
        let _g = a.bins[e.bin as usize].lock.lock();
        // SAFETY: we hold the bin lock; `e` is the slab holding `p`.
        if let crate::slab::RegionCheck::AlreadyFree =
            unsafe { crate::slab::check(e, e.bin as usize, p as usize) }
        {
            report::misuse(func, Misuse::DoubleFree, p as usize);
        }
    }
    size
}

/// realloc(p, size). `realloc(p, 0)` with a non-null `p` frees it and returns null, errno
/// untouched (jemalloc 5.3's default `zero_realloc:free`, and glibc's behaviour).
///
/// # Safety
/// `p` is null or a block from this allocator that the caller owns (C's realloc contract;
/// pointers that are not live blocks are detected and reported, but a live block owned by
/// someone else cannot be told apart).
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        free(p, "realloc");
        return core::ptr::null_mut();
    }
    if size > MAX_REQUEST {
        // Validate `p` first so misuse is still reported, then fail without touching it.
        let _ = checked_usable_size(p, "realloc");
        return enomem();
    }
    let old = checked_usable_size(p, "realloc");
    let e = rtree::lookup(p as usize);
    // SAFETY: `usable_size` validated that `p` is a live block with descriptor `e`.
    let e = &mut *e;
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
        // SAFETY: `e` is the caller's live large block.
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
    core::ptr::copy_nonoverlapping(p, q, old.min(size));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, seeded per thread.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn size(&mut self) -> usize {
            match self.next() % 100 {
                0..=59 => (self.next() % 256) as usize,
                60..=89 => (self.next() % 4096) as usize,
                90..=97 => (self.next() % 65536) as usize,
                _ => (self.next() % (3 << 20)) as usize,
            }
        }
    }

    fn fill(p: *mut u8, n: usize, tag: u8) {
        // SAFETY: callers pass a live block of at least n bytes.
        unsafe { core::ptr::write_bytes(p, tag, n.min(256)) }
    }

    fn check(p: *mut u8, n: usize, tag: u8) {
        for i in 0..n.min(256) {
            // SAFETY: as in `fill`.
            assert_eq!(unsafe { *p.add(i) }, tag, "block {p:p} size {n} corrupted at {i}");
        }
    }

    fn walk(seed: u64, ops: usize) {
        let mut r = Rng(seed | 1);
        let mut live: std::vec::Vec<(*mut u8, usize, u8)> = std::vec::Vec::new();
        for op in 0..ops {
            let tag = (op % 251) as u8;
            match r.next() % 10 {
                0..=4 => {
                    let n = r.size();
                    let p = malloc(n);
                    assert!(!p.is_null());
                    assert!(usable_size(p, "test") >= n);
                    if n >= 16 {
                        assert_eq!(p as usize % 16, 0);
                    }
                    fill(p, n, tag);
                    live.push((p, n, tag));
                }
                5 => {
                    let n = r.size();
                    let p = calloc(1, n);
                    for i in 0..n.min(4096) {
                        // SAFETY: fresh zeroed block of n bytes.
                        assert_eq!(unsafe { *p.add(i) }, 0);
                    }
                    fill(p, n, tag);
                    live.push((p, n, tag));
                }
                6 => {
                    let align = 1usize << (r.next() % 22);
                    let n = r.size();
                    let p = aligned(align, n);
                    assert_eq!(p as usize % align, 0, "align {align}");
                    fill(p, n, tag);
                    live.push((p, n, tag));
                }
                7 if !live.is_empty() => {
                    let i = (r.next() as usize) % live.len();
                    let (p, n, t) = live[i];
                    check(p, n, t);
                    let m = r.size().max(1);
                    // SAFETY: `p` is a live block of this walk.
                    let q = unsafe { realloc(p, m) };
                    assert!(!q.is_null());
                    check(q, n.min(m), t);
                    fill(q, m, tag);
                    live[i] = (q, m, tag);
                }
                _ if !live.is_empty() => {
                    let i = (r.next() as usize) % live.len();
                    let (p, n, t) = live.swap_remove(i);
                    check(p, n, t);
                    free(p, "free");
                }
                _ => {}
            }
        }
        for (p, n, t) in live {
            check(p, n, t);
            free(p, "free");
        }
    }

    /// Tests that measure arena 0's mapped bytes must not run beside the random walk.
    static ARENA0_EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn random_walk_threads() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let hs: std::vec::Vec<_> = (0..4u64)
            .map(|t| std::thread::spawn(move || walk(0x9E37_79B9_7F4A_7C15 ^ t, 30_000)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        for a in arena::ARENAS.iter() {
            a.validate();
        }
    }

    #[test]
    fn limits_and_errno() {
        sys::set_errno(0);
        assert!(malloc(usize::MAX).is_null());
        assert_eq!(sys::errno(), libc::ENOMEM);
        assert!(malloc(MAX_REQUEST + 1).is_null());
        assert!(calloc(usize::MAX / 2, 3).is_null());
        assert!(aligned(1 << 20, usize::MAX - 100).is_null());
        let p = malloc(100);
        // SAFETY: `p` is live; a failed realloc leaves it live, realloc(p, 0) frees it.
        unsafe {
            assert!(realloc(p, usize::MAX).is_null());
            sys::set_errno(77);
            assert!(realloc(p, 0).is_null());
            assert_eq!(sys::errno(), 77);
        }
        let a = malloc(0);
        let b = malloc(0);
        assert!(!a.is_null() && a != b);
        free(a, "free");
        free(b, "free");
        sys::set_errno(1234);
        let l = malloc(1 << 20);
        free(l, "free");
        free(core::ptr::null_mut(), "free");
        assert_eq!(sys::errno(), 1234);
    }

    #[test]
    fn emptied_slabs_feed_other_classes() {
        // 8 MiB of 64-byte objects, freed, then 8 MiB of 4 KiB objects: the second wave must
        // fit in the pages the first left behind (other tests may run alongside, so allow
        // slack).
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let a = arena::choose();
        let mapped0 = a.pac.inner.lock().mapped;
        let small: std::vec::Vec<_> = (0..(8 << 20) / 64).map(|_| malloc(64)).collect();
        for &p in &small {
            free(p, "free");
        }
        let mapped1 = a.pac.inner.lock().mapped;
        let big: std::vec::Vec<_> = (0..(8 << 20) / 4096).map(|_| malloc(4096)).collect();
        let mapped2 = a.pac.inner.lock().mapped;
        assert!(mapped2 - mapped1 <= 64 << 20, "{mapped0} {mapped1} {mapped2}");
        for &p in &big {
            free(p, "free");
        }
        trim();
        a.validate();
    }
}
