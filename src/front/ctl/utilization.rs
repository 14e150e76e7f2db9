//! `experimental.utilization.query` and `.batch_query`: how full the slab holding a pointer
//! is, the data Redis/Valkey active defragmentation reads to decide which objects to move.
//!
//! Contract (reference/jemalloc-compat.md §3.2): batch_query takes N ≥ 1 pointers
//! (`newlen` = 8N) and needs `*oldlenp` = 24N exactly (else EINVAL, nothing written); per
//! pointer it writes {free regions in its slab, regions per slab, slab bytes}; a large block
//! gives {0, 1, its bytes}; an address that is no block gives {0, 0, 0}. query takes one
//! pointer and a 48-byte struct {current slab of the bin, nfree, nregs, slab bytes, free
//! regions in the bin's slabs, regions in the bin's slabs}; an address that is no block is
//! EINVAL (jemalloc would crash). Blocks held in thread caches count as allocated.

use super::{Idx, Req, R};
use crate::objects::arena;
use crate::metadata::extent::Extent;
use crate::metadata::rtree;
use crate::metadata::size_class::{nregs, SLAB_PAGES};
use crate::foundation::util::PAGE;
use libc::EINVAL;

fn extent_of(p: usize) -> Option<&'static Extent> {
    let e = rtree::lookup(p);
    // SAFETY: registered descriptors are never freed.
    (!e.is_null()).then(|| unsafe { &*e }).filter(|e| e.is_slab || e.state() == crate::metadata::extent::State::Active)
}

/// {nfree, nregs, size} for one pointer.
fn triple(p: usize) -> [usize; 3] {
    match extent_of(p) {
        Some(e) if e.is_slab => {
            let b = e.bin as usize;
            [e.nfree(), nregs(b), SLAB_PAGES[b] as usize * PAGE]
        }
        Some(e) => [0, 1, e.size],
        None => [0, 0, 0],
    }
}

pub fn batch_query(_: &Idx, r: &Req) -> R {
    if r.newp.is_null() || r.newlen == 0 || !r.newlen.is_multiple_of(8) || !r.wants_read() {
        return Err(EINVAL);
    }
    let n = r.newlen / 8;
    // SAFETY: `oldlenp` is non-null (wants_read).
    if unsafe { *r.oldlenp } != n * 24 {
        return Err(EINVAL);
    }
    for i in 0..n {
        // SAFETY: the caller passed `n` pointers in `newp` and room for 3n size_t in `oldp`.
        unsafe {
            let p = core::ptr::read_unaligned((r.newp as *const usize).add(i));
            let t = triple(p);
            core::ptr::copy_nonoverlapping(t.as_ptr(), (r.oldp as *mut usize).add(3 * i), 3);
        }
    }
    Ok(())
}

pub fn query(_: &Idx, r: &Req) -> R {
    let p = r.write::<usize>()?.ok_or(EINVAL)?;
    if !r.wants_read() {
        return Err(EINVAL);
    }
    // SAFETY: `oldlenp` is non-null (wants_read).
    if unsafe { *r.oldlenp } != 48 {
        return Err(EINVAL);
    }
    let e = extent_of(p).ok_or(EINVAL)?;
    let out: [usize; 6] = if e.is_slab {
        let b = e.bin as usize;
        let a = arena::get(e.arena);
        let g = a.bins[b].lock.lock();
        let bin_nregs = nregs(b) * g.nslabs;
        [g.slabcur_addr(), e.nfree(), nregs(b), SLAB_PAGES[b] as usize * PAGE, bin_nregs - g.curregs.min(bin_nregs), bin_nregs]
    } else {
        [0, 0, 1, e.size, 0, 0]
    };
    // SAFETY: `oldp` has room for the 48 bytes checked above.
    unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), r.oldp as *mut usize, 6) };
    Ok(())
}
