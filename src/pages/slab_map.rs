//! A slab's entries in the page map: which pages carry tagged entries (`rtree::slab_entry`:
//! class and sparse mark) while the extent is a slab, and how they are written,
//! retagged and cleared.
//!
//! Contract: called with the arena's Pac lock (registration, release) or the slab's bin lock
//! (sparse retagging) held; no other thread writes a live slab's entries. Layer 2 (next to
//! `pac`), so that the page allocator registers slabs without calling up into `slab`.

use crate::metadata::extent::Extent;
use crate::metadata::size_class::{bin_size, nregs};

/// Registers slab `e` of class `bin` in the page map with tagged entries (`rtree::slab_entry`:
/// class and sparse mark, so that `free` decides cache or slab before reading the
/// descriptor): its first and last page
/// and every page holding the start of a region. For classes below a page that is every
/// page; for larger ones only those pages (8 of a 32 KiB class's 64), since a pointer into
/// any other page is no region start anyway (it is reported, as a pointer oxmalloc does not
/// know, instead of as an interior pointer).
///
/// # Safety
/// The arena's Pac lock is held; `e` is an active slab of class `bin` whose leaves exist.
pub unsafe fn register(e: *mut Extent, bin: usize) {
    tag_pages(e, bin, false);
}

/// Writes the tagged page-map entries of slab `e` of class `bin` (see `register`), with the
/// sparse mark `sparse` (`bin::is_sparse` of its bucket).
///
/// # Safety
/// The arena's Pac lock or the bin's lock is held (no other thread writes these entries
/// while the slab is active); `e` is an active, registered slab of class `bin`.
pub unsafe fn tag_pages(e: *mut Extent, bin: usize, sparse: bool) {
    crate::metadata::rtree::set_pages((*e).addr, tagged_pages(e, bin), |_| crate::metadata::rtree::slab_entry(e, bin, sparse));
    if (*e).pages() > crate::metadata::size_class::SLAB_PAGES[bin] as usize {
        crate::metadata::rtree::set((*e).last_page(), e);
    }
}

/// The pages of slab `e` of class `bin` that carry tagged entries, counted from its first:
/// every page below a page-sized class, else the pages holding a region start and the last
/// page of the regions. The regions fill SLAB_PAGES pages; an extent is only longer when the page allocator ran out of descriptors to split it, and then
/// its extra pages hold no region (its last page gets a plain entry, as the page allocator
/// needs).
unsafe fn tagged_pages(e: *const Extent, bin: usize) -> impl Iterator<Item = usize> {
    let used = (crate::metadata::size_class::SLAB_PAGES[bin] as usize).min((*e).pages());
    let size = bin_size(bin);
    let (all, step, last) = if size < crate::foundation::util::PAGE { (used, 0, 0..0) } else { (0, nregs(bin), used - 1..used) };
    let starts = (0..step).map(move |i| (i * size) >> crate::foundation::util::LG_PAGE);
    (0..all).chain(starts).chain(last)
}

/// Undoes `register` when slab `e` goes back to the page allocator: its tagged entries
/// cleared, first and last page plain (untagged) entries, as for any extent.
///
/// # Safety
/// As for `register`.
pub unsafe fn unregister(e: *mut Extent, bin: usize) {
    crate::metadata::rtree::set_pages((*e).addr, tagged_pages(e, bin), |_| core::ptr::null_mut());
    crate::metadata::rtree::set((*e).addr, e);
    crate::metadata::rtree::set((*e).last_page(), e);
}
