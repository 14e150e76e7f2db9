//! jemalloc's non-standard allocation API (`mallocx` family), with jemalloc's prototypes.

use crate::xalloc;
use core::ffi::{c_int, c_void};

/// Allocates at least `size` bytes with jemalloc `flags` (MALLOCX_ALIGN, MALLOCX_ZERO,
/// MALLOCX_TCACHE_NONE, MALLOCX_ARENA); NULL on failure.
#[no_mangle]
pub extern "C" fn mallocx(size: usize, flags: c_int) -> *mut c_void {
    xalloc::mallocx(size, flags) as *mut c_void
}

/// Resizes `ptr` to at least `size` bytes, moving it if needed; NULL on failure (the block is
/// then untouched).
///
/// # Safety
/// `ptr` is a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn rallocx(ptr: *mut c_void, size: usize, flags: c_int) -> *mut c_void {
    xalloc::rallocx(ptr as *mut u8, size, flags) as *mut c_void
}

/// Resizes `ptr` in place to between `size` and `size + extra` bytes if possible; returns the
/// usable size afterwards (unchanged = not resized).
///
/// # Safety
/// `ptr` is a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn xallocx(ptr: *mut c_void, size: usize, extra: usize, flags: c_int) -> usize {
    xalloc::xallocx(ptr as *mut u8, size, extra, flags)
}

/// Usable size of the live block `ptr`.
#[no_mangle]
pub extern "C" fn sallocx(ptr: *const c_void, flags: c_int) -> usize {
    xalloc::sallocx(ptr as *const u8, flags)
}

/// Frees `ptr`; MALLOCX_TCACHE_NONE returns it to its slab at once.
#[no_mangle]
pub extern "C" fn dallocx(ptr: *mut c_void, flags: c_int) {
    xalloc::dallocx(ptr as *mut u8, flags)
}

/// Frees `ptr` of `size` bytes (any size from the requested one up to the usable size, with
/// the allocation's alignment flags); a size that does not belong to the block aborts.
#[no_mangle]
pub extern "C" fn sdallocx(ptr: *mut c_void, size: usize, flags: c_int) {
    xalloc::sdallocx(ptr as *mut u8, size, flags, "sdallocx")
}

/// The usable size `mallocx(size, flags)` would give; 0 if it would fail.
#[no_mangle]
pub extern "C" fn nallocx(size: usize, flags: c_int) -> usize {
    xalloc::nallocx(size, flags)
}
