//! The Rust-level entry points behind every exported C function.
//!
//! Contract: all argument validation lives here (size limits, overflow, alignment); results
//! follow C: null plus errno ENOMEM when memory cannot be had. Misuse of a pointer (not ours,
//! interior, already free) ends in `report::misuse` naming the C call. Nothing here allocates
//! through anything but the arenas, and `free` preserves errno (no path of it sets errno).

use crate::objects::arena::{self, Arena};
use crate::objects::bin;
use crate::front::background;
use crate::front::conf;
use crate::metadata::extent::{Extent, State};
use crate::front::init;
use crate::pages::pac;
use crate::foundation::report::{self, Misuse};
use crate::metadata::rtree;
use crate::metadata::size_class::{bin_size, size2bin, size2bin_scaled_and_size, LOOKUP_MAX, SMALL_MAX};
use crate::objects::slab;
use crate::foundation::sys;
use crate::tcache::{self, LargeFree, Tcache};
use crate::tcache::tsd;
use crate::foundation::util::{align_up, align_up_checked, LG_PAGE, MAX_REQUEST, PAGE};

#[cold]
fn enomem() -> *mut u8 {
    sys::set_errno(libc::ENOMEM);
    core::ptr::null_mut()
}

/// The calling thread's cache if it already has one (no set-up: the fast paths).
#[inline(always)]
fn tcache_fast() -> Option<&'static mut Tcache> {
    let t = tsd::get();
    if t > tsd::LAST_SENTINEL {
        // SAFETY: a non-sentinel slot value is this thread's live cache, used only by it.
        Some(unsafe { &mut *(t as *mut Tcache) })
    } else {
        None
    }
}

/// A region of class `bin` straight from arena `a` (no thread cache).
pub fn small_direct(a: &Arena, bin: usize) -> *mut u8 {
    // SAFETY: `bin` comes from size2bin, < NBINS.
    let p = unsafe { a.bins.get_unchecked(bin) }.locked(|g| g.alloc(&a.pac));
    a.tick();
    background::maybe_start();
    if p.is_null() {
        return enomem();
    }
    if conf::junk_alloc() {
        // SAFETY: a fresh region of the class size.
        unsafe { core::ptr::write_bytes(p, JUNK_ALLOC, bin_size(bin)) };
    }
    p
}

/// Fill bytes of option `junk` (jemalloc's values).
const JUNK_ALLOC: u8 = 0xa5;
const JUNK_FREE: u8 = 0x5a;

/// A region of class `bin` (< NBINS) for any thread state; init done.
fn alloc_small(bin: usize) -> *mut u8 {
    match tcache::current() {
        Some(tc) => {
            let p = tc.alloc_small_slow(bin);
            background::maybe_start();
            if p.is_null() {
                return enomem();
            }
            p
        }
        None => small_direct(arena::fallback(), bin),
    }
}

/// A large block of `size` bytes (> 0) aligned to `align` (power of two ≥ PAGE) from `a`.
#[cold]
pub fn large_from(a: &Arena, size: usize, align: usize, zero: bool) -> *mut u8 {
    if size > MAX_REQUEST || align > MAX_REQUEST / 2 {
        return enomem();
    }
    let pages = align_up(size, PAGE) >> LG_PAGE;
    let e = a.pac.lock().alloc(pages, align, None);
    a.tick();
    background::maybe_start();
    if e.is_null() {
        return enomem();
    }
    // SAFETY: `e` is an active extent we just obtained; its pages are ours to write.
    unsafe {
        if zero && !(*e).zeroed {
            zero_pages((*e).addr, (*e).size);
        } else if !zero && conf::junk_alloc() {
            core::ptr::write_bytes((*e).addr as *mut u8, JUNK_ALLOC, (*e).size);
        }
        (*e).addr as *mut u8
    }
}

/// Blocks from this size up are zeroed by `MADV_DONTNEED` when their pages are mostly not
/// resident.
const ZERO_BY_PURGE: usize = 1 << 20;
/// Pages `zero_pages` samples for residency.
const ZERO_SAMPLES: usize = 16;

/// Zeroes the pages of `[addr, addr + size)`, a large block the caller just got from the page
/// allocator (with no lock held: the block is the caller's). Writing zeros faults in every
/// page that is not resident, so a big block reused from freed, sparsely touched memory would
/// become resident in full (calloc(2 GiB) over a block touched once per MiB: 1.9 s, 2 GiB of
/// RSS): from `ZERO_BY_PURGE` bytes, when at most half of `ZERO_SAMPLES` pages spread over
/// the block are resident, the pages are given back instead (`MADV_DONTNEED`; they read as
/// zero and cost nothing until touched). Resident blocks are cheaper to write over: the
/// madvise alone costs about what the memset does, and every page touched afterwards faults.
///
/// # Safety
/// The range is a live block of the caller's, page-aligned, inside memory the page allocator
/// reserved.
unsafe fn zero_pages(addr: usize, size: usize) {
    if size >= ZERO_BY_PURGE {
        // One page in each of ZERO_SAMPLES equal stretches, at a scrambled offset within it
        // (evenly spaced samples would all hit the pages of a program that touches its
        // blocks at a regular stride, or all miss them).
        let step = (size >> LG_PAGE) / ZERO_SAMPLES;
        let page = |i: usize| i * step + (i.wrapping_mul(0x9e37_79b9).wrapping_add(addr >> LG_PAGE) >> 3) % step;
        let resident = (0..ZERO_SAMPLES).filter(|&i| sys::resident(addr + (page(i) << LG_PAGE))).count();
        if resident * 2 <= ZERO_SAMPLES && sys::purge_forced(addr, size) {
            return;
        }
    }
    // SAFETY: the caller's block of `size` bytes.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, size) };
}

/// `large_from(a, size, PAGE, zero)`, and under the same page-allocator lock up to
/// `extra.len()` more blocks of the same page count for the thread cache (their active
/// extents in `extra[..got]`; not zeroed or junked: they are handed out as cached blocks).
/// Returns the block and `got`.
#[cold]
fn large_from_filling(a: &Arena, size: usize, zero: bool, extra: &mut [*mut Extent]) -> (*mut u8, usize) {
    if extra.is_empty() {
        return (large_from(a, size, PAGE, zero), 0);
    }
    let pages = align_up(size, PAGE) >> LG_PAGE;
    // The extra blocks first, the returned one last: carved from the low end of a free
    // extent, the returned block then borders what is left of it, so realloc can still grow
    // it in place (with the extras after it, realloc doubling to 4 MiB takes 733 ns, not 93).
    // Block by block in effect, one best-fit search per free extent (`Pac::alloc_blocks`).
    let (e, got) = a.pac.lock().alloc_blocks(pages, extra);
    a.tick();
    background::maybe_start();
    if e.is_null() {
        return (enomem(), got);
    }
    // SAFETY: `e` is an active extent we just obtained; its pages are ours to write.
    unsafe {
        if zero && !(*e).zeroed {
            zero_pages((*e).addr, (*e).size);
        } else if !zero && conf::junk_alloc() {
            core::ptr::write_bytes((*e).addr as *mut u8, JUNK_ALLOC, (*e).size);
        }
        ((*e).addr as *mut u8, got)
    }
}

/// A page-aligned large block of `size` bytes (> SMALL_MAX): the thread cache first, where
/// `fit` lets a cached block up to 1/8 bigger serve it (malloc, calloc, new; the jemalloc API
/// passes false so that `sallocx(mallocx(n)) == nallocx(n)` holds as jemalloc documents).
#[inline(never)]
pub fn alloc_large(size: usize, zero: bool, fit: bool) -> *mut u8 {
    if size > MAX_REQUEST {
        return enomem();
    }
    let pages = align_up(size, PAGE) >> LG_PAGE;
    match tcache::current() {
        Some(tc) => {
            if let Some((p, bytes)) = tc.alloc_large(pages, fit) {
                if zero {
                    // SAFETY: a cached block of `bytes` bytes (its usable size), now the
                    // caller's; all of it reads as zero, as after `large_from`.
                    unsafe { core::ptr::write_bytes(p, 0, bytes) };
                }
                return p;
            }
            let mut extra = [core::ptr::null_mut(); tcache::LARGE_REFILL_MAX];
            let n = tc.large_miss(pages).min(extra.len());
            let (p, got) = large_from_filling(tc.arena, size, zero, &mut extra[..n]);
            for &x in &extra[..got] {
                // SAFETY: active extents the page allocator just gave this thread (descriptors
                // are never freed).
                tc.cache_filled_large(unsafe { &*x });
            }
            if !p.is_null() {
                tc.count_alloc(pages << LG_PAGE);
            }
            p
        }
        None => large_from(arena::fallback(), size, PAGE, zero),
    }
}

/// malloc(size). The inlined fast path serves sizes up to `LOOKUP_MAX` (class from a table)
/// from the thread cache; larger sizes take `malloc_medium` (a second table, out of line), so
/// the hot code stays short: fewer bytes to fetch per call (see `free`).
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size > LOOKUP_MAX {
        return malloc_medium(size);
    }
    if let Some(tc) = tcache_fast() {
        let (off, csize) = size2bin_scaled_and_size(size);
        let cb = tc.bin_at(off);
        if let Some(entry) = cb.pop_fast() {
            return tc.took(entry, csize);
        }
    }
    malloc_slow(size)
}

/// malloc for sizes above `LOOKUP_MAX`: one table gives the cache bin, the class's for small
/// sizes, exactly the page count's for large ones up to `MEDIUM_MAX` (a cached block up to
/// 1/8 bigger, or one below the low-water mark, takes `malloc_slow`).
#[inline(never)]
fn malloc_medium(size: usize) -> *mut u8 {
    if size <= tcache::MEDIUM_MAX {
        if let Some(tc) = tcache_fast() {
            if let Some(p) = tc.pop_medium(size) {
                return p;
            }
        }
    }
    malloc_slow(size)
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut u8 {
    init::ensure();
    if size <= SMALL_MAX {
        alloc_small(size2bin(size))
    } else {
        alloc_large(size, false, true)
    }
}

/// calloc(n, size).
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    let total = match n.checked_mul(size) {
        Some(t) if t <= MAX_REQUEST => t,
        _ => return enomem(),
    };
    if total <= SMALL_MAX {
        let p = malloc(total);
        if !p.is_null() {
            // SAFETY: `p` is a fresh region of at least `total` bytes.
            unsafe { core::ptr::write_bytes(p, 0, total) };
        }
        p
    } else {
        init::ensure();
        alloc_large(total, true, true)
    }
}

/// An allocation of `size` bytes aligned to `align` (a power of two; callers check that).
pub fn aligned(align: usize, size: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= 8 {
        return malloc(size);
    }
    if align <= PAGE {
        // A class whose size is a multiple of `align` has every region aligned to it, and the
        // class of round_up(size, align) always is such a multiple (`size_class`); a
        // rounded size above SMALL_MAX is large, hence page-aligned (12993 B at 4 KiB
        // alignment rounds to 16 KiB, not into the 14 KiB class).
        return match align_up_checked(size.max(1), align) {
            Some(s) => malloc(s),
            None => enomem(),
        };
    }
    init::ensure();
    let a = tcache::current().map_or(arena::fallback(), |t| t.arena);
    large_from(a, size.max(1), align, false)
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

/// Whether small block `p` (of slab `e`) carries the cached-block cookie and sits in the
/// calling thread's cache; reports a double free if so.
#[inline]
fn check_not_cached(tc: Option<&Tcache>, e: &Extent, p: usize, func: &str) {
    // A cached large block's extent says `Cached`: `lookup_live` reported it already.
    if !e.is_slab {
        return;
    }
    // SAFETY: `p` is a live block of at least 8 bytes (resolved through the rtree).
    if unsafe { *(p as *const usize) } != tcache::COOKIE {
        return;
    }
    if let Some(tc) = tc {
        if tc.holds(e.bin as usize, p as *mut u8) {
            report::misuse(func, Misuse::DoubleFree, p);
        }
    }
}

/// Validates `p` (non-null) as a live block for `func` without taking a lock: not ours,
/// interior, freed large extent, a small region already free in its slab, or a block in this
/// thread's cache are all reported. Returns its extent.
pub fn check_live(tc: Option<&Tcache>, p: usize, func: &str) -> &'static Extent {
    let e = lookup_live(p, func);
    if e.is_slab {
        match slab::region_index(e, e.bin as usize, p) {
            None => report::misuse(func, Misuse::InteriorPointer, p),
            Some(i) if e.bitmap.get(i) => report::misuse(func, Misuse::DoubleFree, p),
            Some(_) => {}
        }
    }
    check_not_cached(tc, e, p, func);
    e
}

/// Frees `p` (null is a no-op) on behalf of the C call `func`.
///
/// Fast path: a small block whose slab is not sparse goes onto this thread's cache. Its
/// page-map entry is tagged (`rtree::slab_entry`: class, sparse mark), so the class comes
/// without reading the descriptor; then lock-free checks: region start (from the
/// descriptor's address) and not the block cached last (see `tcache::small` for the rest of
/// double-free detection, and `slab` for blocks freed again after they went back to their
/// slab). A large block of a cached size goes onto the cache when its extent is active,
/// starts at `p` and the block is not the one cached last. A block of a sparse slab goes to
/// its class's sparse buffer (`free_sparse`). Everything else — large blocks the cache does not
/// take, suspected misuse, no cache yet — takes `free_slow`.
#[inline(always)]
pub fn free(p: *mut u8, func: &str) {
    // Null and addresses beyond the page map have entry 0 (to `free_slow`).
    let entry = rtree::lookup_entry(p as usize);
    let Some(bin_off) = rtree::cacheable_bin_scaled(entry) else {
        // Not cold, but out of line: the small-block path stays straight-line code.
        core::hint::cold_path();
        return free_uncacheable(p, func, entry);
    };
    if let Some(tc) = tcache_fast() {
        // SAFETY: registered descriptors are never freed; see `lookup_live`. A tagged
        // entry belongs to an active slab whose pages hold `p` (only a program racing a
        // free against the slab's release could see another slab here; the offset then
        // wraps to anything and the region check fails or passes at random, as it would
        // for any block freed twice, which the slab's free mark catches).
        let e = unsafe { &*rtree::entry_extent(entry) };
        if tc.free_small_checked(bin_off, p, (p as usize).wrapping_sub(e.addr)) {
            return;
        }
    }
    free_slow(p, func)
}

/// `free` of a block whose page-map entry is not a cacheable slab's: a large block goes to
/// `free_large`, a sparse slab's to `free_sparse`, anything else (null, not ours) to `free_slow`. Out of line, so
/// that the small-block path is `free`'s straight-line code (no taken branch). `p` and `func`
/// come first, in the registers `free_slow` takes them in (3 moves fewer per large free).
#[inline(never)]
fn free_uncacheable(p: *mut u8, func: &str, entry: usize) {
    if rtree::is_slab(entry) {
        return free_sparse(p, func, entry);
    }
    if entry != 0 {
        return free_large(entry, p, func);
    }
    free_slow(p, func)
}

/// `free` of a block whose page-map entry is a sparse slab's: into
/// the thread cache's sparse buffer of its class (`Tcache::free_sparse`: one bin lock per
/// batch of frees, not per free), with the same lock-free checks as `free`'s fast path
/// (region start, not the block buffered last); anything else to `free_slow`. A call of
/// its own, so that `free_uncacheable`'s large-block path saves no more registers.
#[inline(never)]
fn free_sparse(p: *mut u8, func: &str, entry: usize) {
    if !conf::junk_free() {
        if let Some(tc) = tcache_fast() {
            // SAFETY: as in `free`: a tagged entry's descriptor, never freed.
            let e = unsafe { &*rtree::entry_extent(entry) };
            if tc.free_sparse(rtree::entry_bin(entry), p, (p as usize).wrapping_sub(e.addr)) {
                return;
            }
        }
    }
    free_slow(p, func)
}

/// `free` of a block whose page-map entry is untagged (a large extent, or a free one): onto
/// the thread cache if it is an active extent starting at `p` of a cached size, else
/// `free_slow`. Inlined into `free_uncacheable`, which keeps it out of `free` itself, so that
/// the small-block path needs no stack frame (inlined into `free`, this path's register needs
/// would give every free a 7-register prologue: pairs of 16 B 107 instructions, not 92).
/// `global::dealloc` takes it for large blocks whose size it has checked.
#[inline(always)]
pub fn free_large(entry: usize, p: *mut u8, func: &str) {
    if let Some(tc) = tcache_fast() {
        // SAFETY: registered descriptors are never freed; an untagged entry is a large
        // extent or a free one.
        let e = unsafe { &*rtree::entry_extent(entry) };
        debug_assert!(!e.is_slab || e.state() != State::Active, "a live slab reached the large-block free path");
        if e.addr == p as usize && e.state() == State::Active {
            match tc.free_large(e) {
                LargeFree::Cached => return,
                LargeFree::OverBudget(i) => return free_large_over_budget(tc, i, e, p, func),
                LargeFree::NotCached => {}
            }
        }
    }
    free_slow(p, func)
}

/// `free_large` when the thread's large budget is spent: a call in tail position, so that
/// `free_uncacheable` saves no registers.
#[cold]
#[inline(never)]
fn free_large_over_budget(tc: &mut Tcache, i: usize, e: &Extent, p: *mut u8, func: &str) {
    if !tc.free_large_over_budget(i, e) {
        free_slow(p, func)
    }
}

/// Frees `p` (non-null) straight to its slab or page allocator, never into a thread cache
/// (`dallocx` with `MALLOCX_TCACHE_NONE`: the next malloc must not get the region back).
pub fn free_direct(p: *mut u8, func: &str) {
    init::ensure();
    let tc = tcache::current();
    let e = check_live(tc.as_deref(), p as usize, func);
    if let Some(tc) = tc {
        tc.deallocated += usable_of(e) as u64;
    }
    free_to_arena(e, p, func);
}

/// Usable size of the live block whose extent is `e`.
#[inline]
pub fn usable_of(e: &Extent) -> usize {
    if e.is_slab {
        bin_size(e.bin as usize)
    } else {
        e.size
    }
}

/// Returns live block `p` of extent `e` to its arena.
fn free_to_arena(e: &Extent, p: *mut u8, func: &str) {
    if conf::junk_free() {
        // SAFETY: the caller's live block, being freed.
        unsafe { core::ptr::write_bytes(p, JUNK_FREE, usable_of(e)) };
    }
    let a = arena::get(e.arena);
    let ep = e as *const Extent as *mut Extent;
    if e.is_slab {
        // SAFETY: the rtree maps `p` to this active slab of class `e.bin` (< NBINS, set by
        // `Pac::alloc` from a class index); `free` re-checks the region under the lock.
        let freed = unsafe {
            a.bins.get_unchecked(e.bin as usize).locked(|g| {
                let freed = g.free(&a.pac, ep, p as usize);
                g.settle(&a.pac);
                freed
            })
        };
        // Reported with the lock released (see `BinInner::free`).
        if let Err(kind) = freed {
            report::misuse(func, kind, p as usize);
        }
    } else {
        // SAFETY: `ep` is the large extent registered for `p`; `dalloc` re-checks under the lock
        // that it is still active, which catches two racing frees of one block.
        if !unsafe { a.pac.lock().dalloc(ep) } {
            report::misuse(func, Misuse::DoubleFree, p as usize);
        }
    }
    a.tick();
}

#[cold]
#[inline(never)]
fn free_slow(p: *mut u8, func: &str) {
    if p.is_null() {
        return;
    }
    init::ensure();
    let tc = tcache::current();
    let e = check_live(tc.as_deref(), p as usize, func);
    if e.is_slab {
        let bin = e.bin as usize;
        if let Some(tc) = tc {
            let cached = if !bin::slab_is_sparse(e, bin) {
                tc.free_small(bin, p)
            } else {
                if conf::junk_free() {
                    // SAFETY: the caller's live block, being freed.
                    unsafe { core::ptr::write_bytes(p, JUNK_FREE, bin_size(bin)) };
                }
                tc.free_sparse(bin, p, p as usize - e.addr)
            };
            if !cached {
                report::misuse(func, Misuse::DoubleFree, p as usize);
            }
            return;
        }
    } else if let Some(tc) = tc {
        if tc.free_large_or_shed(e) {
            return;
        }
        tc.deallocated += e.size as u64;
    }
    free_to_arena(e, p, func);
}

/// Usable size of the live block `p` (0 for null), for `malloc_usable_size`, which some
/// programs (Redis) call on every allocation: it takes no lock. It reports pointers that are
/// not ours, interior pointers and freed large blocks; whether a small block is already free
/// is left to `free` and `realloc`.
pub fn usable_size(p: *const u8, func: &str) -> usize {
    if p.is_null() {
        return 0;
    }
    let p = p as usize;
    let e = lookup_live(p, func);
    if e.is_slab {
        if crate::objects::slab::region_index(e, e.bin as usize, p).is_none() {
            report::misuse(func, Misuse::InteriorPointer, p);
        }
        bin_size(e.bin as usize)
    } else {
        e.size
    }
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
        match conf::zero_realloc() {
            conf::ZeroRealloc::Free => {
                free(p, "realloc");
                return core::ptr::null_mut();
            }
            conf::ZeroRealloc::Alloc => return realloc(p, 1),
            conf::ZeroRealloc::Abort => report::fatal_at("realloc", "size 0 with zero_realloc:abort", p as usize),
        }
    }
    init::ensure();
    let e = check_live(tcache::current().as_deref(), p as usize, "realloc");
    if size > MAX_REQUEST {
        return enomem();
    }
    let ep = e as *const Extent as *mut Extent;
    let old = usable_of(e);
    if e.is_slab {
        if size <= SMALL_MAX && size2bin(size) == e.bin as usize {
            return p;
        }
    } else if size > REALLOC_LARGE_MIN {
        let pages = align_up(size, PAGE) >> LG_PAGE;
        let cur = e.pages();
        if pages <= cur && cur <= growth_pages(pages) {
            return realloc_result(p, size);
        }
        if pages > cur {
            release_cached_neighbour(e);
        }
        let a = arena::get(e.arena);
        let mut g = a.pac.lock();
        // SAFETY: `ep` is the caller's live large block.
        let resized = if pages < cur { g.shrink(ep, pages) } else { g.expand(ep, growth_pages(pages)) || g.expand(ep, pages) };
        drop(g);
        a.tick();
        if resized {
            return realloc_result(p, size);
        }
    }
    // A growing block that must move takes headroom: it then grows in place for a while.
    let q = if size > old && size > REALLOC_LARGE_MIN {
        let bytes = growth_pages(align_up(size, PAGE) >> LG_PAGE) << LG_PAGE;
        if bytes > SMALL_MAX { malloc(bytes) } else { realloc_large_block(bytes) }
    } else {
        malloc(size)
    };
    if q.is_null() {
        return q;
    }
    if !e.is_slab && size > old && old >= MOVE_PAGES_MIN && take_move_budget() {
        // SAFETY: `p` (its whole extent, `old` bytes) and `q` (at least `old` bytes, a large
        // block: `size > old > SMALL_MAX`) are distinct page-aligned live blocks of ours, no
        // lock is held.
        match sys::move_pages(p as usize, q as usize, old) {
            sys::Moved::Yes => {
                free(p, "realloc");
                return realloc_result(q, size);
            }
            sys::Moved::No => {}
            // `q` stays allocated, unused, for ever; another block takes its place.
            sys::Moved::DestinationLost => return realloc_copy(p, old, size),
        }
    }
    // SAFETY: both blocks are live and distinct; we copy the smaller usable length.
    core::ptr::copy_nonoverlapping(p, q, old.min(size));
    free(p, "realloc");
    // Only a block of `REALLOC_LARGE_MIN` or more can hold more than `malloc(size)` gives.
    if size > REALLOC_LARGE_MIN {
        return realloc_result(q, size);
    }
    q
}

/// `realloc`'s result `p` for a request of `size` bytes: a large block that holds more than
/// `malloc(size)` would have given (a growth step's headroom, or a whole-page block below
/// `SMALL_MAX`) is marked `loose_size`, so that a sized free may name `size` or any size up
/// to its usable one (`xalloc::sdallocx`).
fn realloc_result(p: *mut u8, size: usize) -> *mut u8 {
    let e = rtree::lookup(p as usize);
    // SAFETY: `p` is the live block realloc returns; registered descriptors are never freed.
    if let Some(e) = unsafe { e.as_ref() } {
        let plain = if size <= SMALL_MAX { crate::metadata::size_class::usable_size(size) } else { align_up(size, PAGE) };
        if !e.is_slab && e.size > plain {
            e.loose_size.store(true, core::sync::atomic::Ordering::Relaxed);
        }
    }
    p
}

/// Above this size (jemalloc's largest small class) a block that `realloc` grows becomes a
/// large block (whole pages) even below `SMALL_MAX`: the slab classes of 16-32 KiB cannot
/// grow in place, so a buffer growing by appends would move at each of them (growth: 0.67 %
/// of reallocs moved against jemalloc's 0.65 %, whose classes from 16 KiB are large).
const REALLOC_LARGE_MIN: usize = 14 << 10;

/// A large block of `bytes` (a page multiple ≤ `SMALL_MAX`) from the page allocator, for
/// `realloc` (`REALLOC_LARGE_MIN`); such blocks are never cached (below the cached page
/// counts), so a free gives them straight back.
#[cold]
fn realloc_large_block(bytes: usize) -> *mut u8 {
    let tc = tcache::current();
    let a = tc.as_ref().map_or(arena::fallback(), |t| t.arena);
    let p = large_from(a, bytes, PAGE, false);
    if let (Some(tc), false) = (tc, p.is_null()) {
        tc.allocated += bytes as u64;
    }
    p
}

/// The size from which `realloc` moves a large block's pages (`sys::move_pages`) instead of
/// copying its bytes. Each move leaves about 2.7 more mappings in the process (see
/// `MOVE_BUDGET`): 64 buffers grown to 8 MiB (`bench/workloads/growth.c`) take 0.39-0.47 s
/// and end with 1314 mappings from 1 MiB, 0.43-0.44 s and 679 from 2 MiB, 0.51-0.56 s and
/// 289 from 4 MiB, 0.62-0.65 s and 36 with copies only (glibc 0.57-0.63 s).
const MOVE_PAGES_MIN: usize = 2 << 20;

/// Page moves `realloc` may still make. A moved range keeps its own mapping at its new place
/// and splits the chunk it lands in (about 2.7 more mappings per move, measured; they never
/// merge again since address space is never unmapped), and a process has at most
/// `vm.max_map_count` (65530 by default) before every `mmap` fails: the budget keeps what
/// moves add below 3 K mappings, then moves copy. Sync: an atomic count.
static MOVE_BUDGET: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(1024);

/// Takes one page move from `MOVE_BUDGET`; false when it is spent.
fn take_move_budget() -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    MOVE_BUDGET.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok()
}

/// `realloc`'s move by copy into a new block of `size` bytes, then the free of `p` (`old`
/// usable bytes).
///
/// # Safety
/// As for `realloc`.
#[cold]
unsafe fn realloc_copy(p: *mut u8, old: usize, size: usize) -> *mut u8 {
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    core::ptr::copy_nonoverlapping(p, q, old.min(size));
    free(p, "realloc");
    q
}

/// The pages a large block of `pages` pages grows to in `realloc`: `pages` rounded up to
/// four steps per doubling (jemalloc's large size classes: 36, 40, 48, 56, 64, 80 KiB...),
/// so a block that keeps growing by appends moves or takes its neighbour's pages once per
/// step instead of once per page. A block that moved keeps at most 1/4 more than asked (as
/// every large block in jemalloc), and one shrunk below its step gives the rest back.
pub fn growth_pages(pages: usize) -> usize {
    if pages <= 4 {
        return pages;
    }
    let step = 1usize << ((usize::BITS - 1 - (pages - 1).leading_zeros()) - 2);
    align_up(pages, step)
}

/// Before large block `e` grows in place: the block after it, if this thread's cache holds
/// it, goes back to the page allocator so that `e` can take its pages (a block shrunk in
/// place and then freed into the cache would otherwise keep its neighbour from growing until
/// the cache gives it back).
pub fn release_cached_neighbour(e: &Extent) {
    let Some(tc) = tcache_fast() else {
        return;
    };
    let n = rtree::lookup(e.end());
    if n.is_null() {
        return;
    }
    // SAFETY: descriptors are never freed. The fields read before `take_cached_large` may
    // change under another thread's lock; the decision rests on this cache's own stack, where
    // a block it holds stays `Cached` with its address and arena unchanged.
    let n = unsafe { &*n };
    if n.state() != State::Cached || n.is_slab || n.addr != e.end() || n.arena != e.arena {
        return;
    }
    if tc.take_cached_large(n) {
        let a = arena::get(n.arena);
        // SAFETY: `n` is the active large extent this thread owns now.
        let ok = unsafe { a.pac.lock().dalloc(n as *const Extent as *mut Extent) };
        debug_assert!(ok);
        a.tick();
    }
}

/// Empties the calling thread's cache (`thread.tcache.flush`).
pub fn tcache_flush() {
    if let Some(tc) = tcache_fast() {
        tc.flush_all();
    }
}

/// Empties the calling thread's cache, returns empty current slabs and purges all dirty
/// pages; true if anything was released.
pub fn trim() -> bool {
    init::ensure();
    tcache_flush();
    arena::all().map(purge_arena).sum::<usize>() > 0
}

/// Returns arena `a`'s empty current slabs and purges its dirty pages; returns the pages
/// released (`malloc_trim`, `arena.<i>.purge`).
pub fn purge_arena(a: &Arena) -> usize {
    let mut pages = 0;
    for b in a.bins.iter() {
        pages += b.locked(|g| g.trim(&a.pac));
    }
    pages + a.pac.purge(crate::pages::decay::now_ns(), crate::pages::purge::Mode::All)
}

#[cfg(test)]
pub(crate) mod tests {
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
    pub(crate) static ARENA0_EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn random_walk_threads() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let hs: std::vec::Vec<_> = (0..4u64)
            .map(|t| std::thread::spawn(move || walk(0x9E37_79B9_7F4A_7C15 ^ t, 30_000)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        for a in arena::all() {
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

    fn mapped() -> usize {
        arena::all().map(|a| a.pac.lock().mapped).sum()
    }

    #[test]
    fn emptied_slabs_feed_other_classes() {
        // 8 MiB of 64-byte objects, freed, then 8 MiB of 4 KiB objects: the second wave must
        // fit in the pages the first left behind (other tests may run alongside, so allow
        // slack).
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let mapped0 = mapped();
        let small: std::vec::Vec<_> = (0..(8 << 20) / 64).map(|_| malloc(64)).collect();
        for &p in &small {
            free(p, "free");
        }
        tcache_flush();
        let mapped1 = mapped();
        let big: std::vec::Vec<_> = (0..(8 << 20) / 4096).map(|_| malloc(4096)).collect();
        let mapped2 = mapped();
        assert!(mapped2 - mapped1 <= 64 << 20, "{mapped0} {mapped1} {mapped2}");
        for &p in &big {
            free(p, "free");
        }
        trim();
        for a in arena::all() {
            a.validate();
        }
    }

    fn my_tcache() -> &'static mut Tcache {
        init::ensure();
        tcache::current().expect("thread cache")
    }

    /// Binds the calling thread's cache to a new manual arena, which no other thread is bound
    /// to: the test harness's own threads allocate through this allocator too (its `malloc`
    /// interposes libc's in the test binary), so a region that a test frees and then inspects
    /// in a shared arena may already be allocated again (in one run of 3 under `cargo test
    /// --release`, without this).
    fn bind_private_arena() {
        let a = arena::create_manual().expect("manual arena");
        my_tcache().rebind(a);
    }

    #[test]
    fn thread_exit_flushes_and_recycles_the_cache() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let (tc, blocks) = std::thread::spawn(|| {
            bind_private_arena();
            let ps: std::vec::Vec<usize> = (0..100).map(|_| malloc(64) as usize).collect();
            for &p in &ps {
                free(p as *mut u8, "free");
            }
            let tc = my_tcache();
            assert!(tc.bins[size2bin(64)].ncached() >= 100);
            tc.validate();
            (tc as *mut Tcache as usize, ps)
        })
        .join()
        .unwrap();
        // After the exit the cache sits in the pool, empty, unless a thread of the harness
        // took it already (caches are never unmapped).
        let pooled = tcache::pooled_and_empty(tc as *const Tcache);
        assert!(pooled != Some(false), "cache not flushed at thread exit");
        for p in blocks {
            let e = rtree::lookup(p);
            // SAFETY: the slab stays registered while any region of it is live; if it was
            // released, the page is no longer a slab of this class (both fine).
            if !e.is_null() && unsafe { (*e).is_slab && (*e).bin as usize == size2bin(64) } {
                let e = unsafe { &*e };
                let i = slab::region_index(e, e.bin as usize, p).unwrap();
                assert!(e.bitmap.get(i), "block {p:#x} still allocated after its thread exited");
            }
        }
    }

    #[test]
    fn a_thread_that_only_frees_leaks_nothing() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        let ps: std::vec::Vec<usize> = std::thread::spawn(|| {
            bind_private_arena();
            (0..3000).map(|i| malloc(16 + i % 200) as usize).collect()
        })
        .join()
        .unwrap();
        let ps2 = ps.clone();
        std::thread::spawn(move || {
            for p in ps2 {
                free(p as *mut u8, "free");
            }
        })
        .join()
        .unwrap();
        let mut live = 0;
        for p in ps {
            let e = rtree::lookup(p);
            // SAFETY: as above.
            if !e.is_null() && unsafe { (*e).is_slab } {
                let e = unsafe { &*e };
                if let Some(i) = slab::region_index(e, e.bin as usize, p) {
                    live += !e.bitmap.get(i) as usize;
                }
            }
        }
        assert_eq!(live, 0, "blocks freed by another thread stayed allocated");
    }

    /// The sparse buffers of all classes together hold fewer than `SPARSE_BUF` blocks: a
    /// thread that tears down a structure of many sizes and then sleeps keeps only that
    /// many back (and the sparse slabs they pin).
    #[test]
    fn sparse_buffers_are_bounded_across_classes() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            bind_private_arena();
            let sizes = [48usize, 64, 96, 128];
            // Slabs of each class, every region live, then a quarter of each slab back (through
            // the cache and a flush): sparse slabs.
            let mut rest = std::vec::Vec::new();
            for &size in &sizes {
                let ps: std::vec::Vec<usize> = (0..4000).map(|_| malloc(size) as usize).collect();
                for (k, &p) in ps.iter().enumerate() {
                    if k % 4 == 0 {
                        free(p as *mut u8, "free");
                    } else {
                        rest.push(p);
                    }
                }
            }
            tcache_flush();
            // A teardown of the rest, shuffled across the classes.
            let mut r = Rng(77);
            for i in (1..rest.len()).rev() {
                rest.swap(i, (r.next() as usize) % (i + 1));
            }
            let mut most = 0;
            for &p in &rest {
                free(p as *mut u8, "free");
                most = most.max(my_tcache().sparse_held());
            }
            assert!(most < tcache::SPARSE_BUF, "the sparse buffers held {most} blocks");
            my_tcache().validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn frees_into_sparse_slabs_go_back_in_batches() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            bind_private_arena();
            let bin = size2bin(64);
            let a = my_tcache().arena;
            let ndalloc = || a.bins[bin].lock.lock().ndalloc;
            // One-page slabs of 64 regions, every region live.
            let nb = tcache::SPARSE_BUF;
            let ps: std::vec::Vec<usize> = (0..64 * (nb + 8)).map(|_| malloc(64) as usize).collect();
            let mut by_slab: std::collections::BTreeMap<usize, std::vec::Vec<usize>> = Default::default();
            for &p in &ps {
                by_slab.entry(p & !(PAGE - 1)).or_default().push(p);
            }
            let slabs: std::vec::Vec<_> = by_slab.values().filter(|v| v.len() == 64).cloned().collect();
            assert!(slabs.len() >= nb + 4);
            // 8 regions of each slab back (through the cache, then a flush): sparse slabs.
            for s in &slabs[..nb + 4] {
                for &p in &s[..8] {
                    free(p as *mut u8, "free");
                }
            }
            tcache_flush();
            for s in &slabs[..nb + 2] {
                assert!(rtree::is_sparse(rtree::lookup_entry(s[0])), "slab not sparse");
            }
            // One more free per sparse slab: no bin lock per free; the blocks stay live in
            // their slabs until SPARSE_BUF of them are buffered, then go back together.
            let before = ndalloc();
            for (k, s) in slabs[..tcache::SPARSE_BUF].iter().enumerate() {
                free(s[8] as *mut u8, "free");
                let e = rtree::lookup(s[8]);
                // SAFETY: the slab still has live regions: registered, never freed.
                let e = unsafe { &*e };
                let i = slab::region_index(e, bin, s[8]).unwrap();
                if k + 1 < tcache::SPARSE_BUF {
                    assert_eq!(ndalloc(), before, "free {k} into a sparse slab took the bin lock");
                    assert!(!e.bitmap.get(i));
                } else {
                    assert_eq!(ndalloc(), before + tcache::SPARSE_BUF as u64);
                    assert!(e.bitmap.get(i));
                }
                my_tcache().validate();
            }
            // A buffered block is found by the slow paths' double-free check.
            free(slabs[nb + 1][8] as *mut u8, "free");
            assert!(my_tcache().holds(bin, slabs[nb + 1][8] as *mut u8));
            // The rest, then every slab of the test is gone from the bin.
            for s in &slabs {
                for &p in &s[9..] {
                    free(p as *mut u8, "free");
                }
            }
            for k in [nb, nb + 2, nb + 3] {
                free(slabs[k][8] as *mut u8, "free");
            }
            for s in &slabs[nb + 4..] {
                for &p in &s[..9] {
                    free(p as *mut u8, "free");
                }
            }
            for v in by_slab.values().filter(|v| v.len() != 64) {
                for &p in v {
                    free(p as *mut u8, "free");
                }
            }
            tcache_flush();
            my_tcache().validate();
            a.validate();
            assert!(a.bins[bin].lock.lock().curregs == 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn growth_steps_are_four_per_doubling() {
        let want = [(9, 10), (10, 10), (11, 12), (16, 16), (17, 20), (33, 40), (2048, 2048), (2049, 2560)];
        for (n, g) in want {
            assert_eq!(growth_pages(n), g, "{n} pages");
        }
        for n in 5..5000 {
            let g = growth_pages(n);
            assert!(g >= n && (g - n) * 4 < n, "{n} -> {g}");
        }
    }

    #[test]
    fn a_growing_block_that_moves_takes_headroom_and_large_ones_move_their_pages() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            bind_private_arena();
            // Fresh arena: blocks are placed one after the other, so `a` cannot grow in place.
            let a = malloc(40 << 10);
            let b = malloc(40 << 10);
            assert_eq!(b as usize, a as usize + (40 << 10));
            fill(a, 40 << 10, 9);
            // SAFETY: `a` is live and ours; realloc returns the live block.
            let q = unsafe { realloc(a, (40 << 10) + 1) };
            assert_ne!(q, a);
            check(q, 40 << 10, 9);
            assert_eq!(usable_size(q, "t"), 48 << 10, "a moved block grows into its step");
            // Growth within the step stays in place and keeps the headroom.
            let q2 = unsafe { realloc(q, 47 << 10) };
            assert_eq!((q2, usable_size(q2, "t")), (q, 48 << 10));
            // A shrink below the step gives pages back.
            let q3 = unsafe { realloc(q2, 37 << 10) };
            assert_eq!((q3, usable_size(q3, "t")), (q, 40 << 10));
            // 2 MiB with a neighbour: the pages move (no copy), the contents with them.
            let big = malloc(2 << 20);
            let next = malloc(64 << 10);
            assert_eq!(next as usize, big as usize + (2 << 20));
            for i in (0..2 << 20).step_by(4096) {
                // SAFETY: inside the live block `big`.
                unsafe { *big.add(i) = (i >> 12) as u8 };
            }
            let moved = unsafe { realloc(big, 3 << 20) };
            assert_ne!(moved, big);
            for i in (0..2 << 20).step_by(4096) {
                // SAFETY: inside the live block `moved`.
                assert_eq!(unsafe { *moved.add(i) }, (i >> 12) as u8);
            }
            for p in [q3, b, moved, next] {
                free(p, "free");
            }
            my_tcache().validate();
            my_tcache().arena.validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_block_grown_past_14_kib_grows_in_place_through_the_slab_sizes() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            bind_private_arena();
            let mut p = malloc(10 << 10);
            fill(p, 10 << 10, 5);
            let mut moves = 0;
            for size in ((10 << 10) + 100..=(40 << 10)).step_by(1000) {
                // SAFETY: `p` is live and ours.
                let q = unsafe { realloc(p, size) };
                moves += (q != p) as usize;
                p = q;
            }
            check(p, 10 << 10, 5);
            // 10 KiB -> 12 KiB -> 14 KiB (slab classes), then one block of whole pages that
            // takes the free pages after it (a fresh arena has them).
            assert!(moves <= 3, "{moves} moves");
            let e = rtree::lookup(p as usize);
            // SAFETY: `p` is live: its descriptor is registered.
            assert!(!unsafe { (*e).is_slab });
            free(p, "free");
            let small = malloc(15 << 10);
            assert!(unsafe { (*rtree::lookup(small as usize)).is_slab }, "malloc keeps its slab classes");
            // SAFETY: `small` is live; a realloc within its class keeps it.
            let small = unsafe { realloc(small, 16 << 10) };
            free(small, "free");
            my_tcache().validate();
            my_tcache().arena.validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_cached_block_does_not_keep_its_neighbour_from_growing() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            bind_private_arena();
            let a = malloc(1 << 20);
            let b = malloc(1 << 20);
            assert_eq!(b as usize, a as usize + (1 << 20));
            // `b` shrunk in place, then freed into the thread cache (100 KiB is a cached size).
            // SAFETY: `b` is live and ours.
            let b2 = unsafe { realloc(b, 100 << 10) };
            assert_eq!(b2, b);
            free(b2, "free");
            assert_eq!(my_tcache().bins[tcache::large_index(25).unwrap()].ncached(), 1);
            // SAFETY: `a` is live and ours.
            assert_eq!(unsafe { crate::front::xalloc::xallocx(a, 2 << 20, 0, 0) }, 2 << 20);
            assert_eq!(my_tcache().bins[tcache::large_index(25).unwrap()].ncached(), 0);
            my_tcache().validate();
            free(a, "free");
            my_tcache().arena.validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn gc_drains_a_class_the_thread_stopped_using() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            let ps: std::vec::Vec<_> = (0..500).map(|_| malloc(64)).collect();
            for &p in &ps {
                free(p, "free");
            }
            let bin = size2bin(64);
            assert!(my_tcache().bins[bin].ncached() >= 500);
            for _ in 0..20_000 {
                let p = malloc(4096);
                free(p, "free");
            }
            let left = my_tcache().bins[bin].ncached();
            assert!(left < 20, "idle class still caches {left} blocks");
            my_tcache().validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn runs_of_one_large_size_refill_several_blocks_per_miss() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            let i = tcache::large_index(16).unwrap();
            my_tcache().flush_all();
            // Cycling through sizes in different bins: every miss takes one block.
            let mut mixed = std::vec::Vec::new();
            for k in 0..30 {
                mixed.push(malloc([40 << 10, 100 << 10, 200 << 10][k % 3]));
                assert_eq!(my_tcache().bins.iter().skip(crate::metadata::size_class::NBINS).map(|b| b.ncached()).sum::<u16>(), 0);
            }
            // A run of one size without the cache having had to give that size back: one
            // block per miss.
            let mut run = std::vec::Vec::new();
            for _ in 0..6 {
                run.push(malloc(64 << 10));
                assert_eq!(my_tcache().bins[i].ncached(), 0);
            }
            // Frees of that size overflow its bin (2 × LARGE_REFILL_MAX blocks), then a run of
            // mallocs of it: from the third miss on, misses cache extra blocks.
            let old: std::vec::Vec<_> = (0..2 * tcache::LARGE_REFILL_MAX + 2).map(|_| malloc(64 << 10)).collect();
            for p in old {
                free(p, "free");
            }
            let mut refilled = 0;
            for _ in 0..40 {
                let before = my_tcache().bins[i].ncached();
                let p = malloc(64 << 10);
                fill(p, 64 << 10, 3);
                run.push(p);
                if before == 0 {
                    // A miss: what the bin holds now came with this block.
                    refilled = refilled.max(my_tcache().bins[i].ncached());
                }
                my_tcache().validate();
            }
            // The refill size doubles per repeated miss up to LARGE_REFILL_MAX: that many
            // blocks, less the one returned.
            assert_eq!(refilled as usize, tcache::LARGE_REFILL_MAX - 1, "a run of one large size refilled {refilled} extra blocks at most");
            let mut all = run.clone();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), run.len(), "a block handed out twice");
            for p in run.into_iter().chain(mixed) {
                free(p, "free");
            }
            my_tcache().validate();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn large_blocks_are_cached_within_budget() {
        let _x = ARENA0_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::spawn(|| {
            let p = malloc(40 << 10);
            fill(p, 40 << 10, 7);
            free(p, "free");
            // Same page count: the cached block comes back.
            let q = malloc(37 << 10);
            assert_eq!(p, q);
            free(q, "free");
            let z = calloc(1, 40 << 10);
            assert_eq!(z, p);
            check(z, 40 << 10, 0);
            free(z, "free");
            // A request up to 1/8 smaller takes a cached block, which keeps its full size:
            // 18 pages asked, 20 cached; 17 pages is too small for it.
            let big = malloc(80 << 10);
            free(big, "free");
            let r = malloc(68 << 10);
            assert_ne!(r, big);
            let q = malloc(72 << 10);
            assert_eq!(q, big);
            assert_eq!(usable_size(q, "t"), 80 << 10);
            // A sized free with the requested size (C++ sized delete) accepts it.
            crate::front::xalloc::sdallocx(q, 72 << 10, 0, "sdallocx");
            free(r, "free");
            // 64 blocks of 256 KiB exceed the 2 MiB budget: frees beyond it shed older blocks
            // in batches, and the budget holds.
            let ps: std::vec::Vec<_> = (0..64).map(|_| malloc(256 << 10)).collect();
            for &p in &ps {
                free(p, "free");
                my_tcache().validate();
            }
        })
        .join()
        .unwrap();
    }
}
