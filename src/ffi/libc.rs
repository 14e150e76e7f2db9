//! The C standard and POSIX allocation API.

use crate::front::alloc;
use crate::foundation::sys;
use crate::foundation::util::{align_up_checked, MAX_REQUEST, PAGE};
use core::ffi::c_void;

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc::malloc(size) as *mut c_void
}

#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    alloc::calloc(n, size) as *mut c_void
}

/// # Safety
/// C's contract: `p` is null or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    alloc::realloc(p as *mut u8, size) as *mut c_void
}

#[no_mangle]
pub extern "C" fn free(p: *mut c_void) {
    alloc::free(p as *mut u8, "free")
}

/// reallocarray: realloc(p, n * size) with the multiplication checked.
///
/// # Safety
/// As `realloc`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(t) => alloc::realloc(p as *mut u8, t) as *mut c_void,
        None => {
            sys::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// posix_memalign: EINVAL (and `*memptr` untouched) unless `align` is a power of two multiple
/// of `sizeof(void*)`; ENOMEM when out of memory. errno is left unchanged.
///
/// # Safety
/// `memptr` must be valid for a write (C contract).
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> core::ffi::c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let saved = sys::errno();
    let p = alloc::aligned(align, size);
    sys::set_errno(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    *memptr = p as *mut c_void;
    0
}

/// aligned_alloc: NULL + EINVAL for a non-power-of-two alignment; sizes that are not a
/// multiple of the alignment are accepted (glibc and jemalloc do the same).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        sys::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    alloc::aligned(align, size) as *mut c_void
}

/// memalign: as aligned_alloc (jemalloc rejects non-powers of two with EINVAL too).
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_alloc(align, size)
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc::aligned(PAGE, size) as *mut c_void
}

/// pvalloc: page-aligned, size rounded up to whole pages (at least one).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match align_up_checked(size.max(1), PAGE) {
        Some(s) if s <= MAX_REQUEST => alloc::aligned(PAGE, s) as *mut c_void,
        _ => {
            sys::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// # Safety
/// `p` must be null or a live block from this allocator (misuse is reported and aborts).
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    alloc::usable_size(p as *const u8, "malloc_usable_size")
}
