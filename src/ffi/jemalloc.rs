//! jemalloc's non-standard allocation API (`mallocx` family), with jemalloc's prototypes.

use crate::front::xalloc;
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

fn req(oldp: *mut c_void, oldlenp: *mut usize, newp: *mut c_void, newlen: usize) -> crate::front::ctl::Req {
    crate::front::ctl::Req { oldp: oldp as *mut u8, oldlenp, newp: newp as *const u8, newlen }
}

/// Reads and/or writes the control `name` (jemalloc's namespace and conventions): 0, or
/// ENOENT / EINVAL / EPERM / EFAULT / EAGAIN.
///
/// # Safety
/// `name` is a NUL-terminated string; the buffers follow jemalloc's mallctl contract.
#[no_mangle]
pub unsafe extern "C" fn mallctl(
    name: *const core::ffi::c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    if name.is_null() {
        return libc::EINVAL;
    }
    let n = core::ffi::CStr::from_ptr(name).to_bytes();
    crate::front::ctl::errno_of(crate::front::ctl::ctl_by_name(n, &req(oldp, oldlenp, newp, newlen)))
}

/// Translates `name` into a MIB (`*miblenp`: capacity in, components out).
///
/// # Safety
/// `name` is a NUL-terminated string; `mibp` has room for `*miblenp` entries.
#[no_mangle]
pub unsafe extern "C" fn mallctlnametomib(name: *const core::ffi::c_char, mibp: *mut usize, miblenp: *mut usize) -> c_int {
    if name.is_null() {
        return libc::EINVAL;
    }
    let n = core::ffi::CStr::from_ptr(name).to_bytes();
    crate::front::ctl::errno_of(crate::front::ctl::name_to_mib(n, mibp, miblenp))
}

/// `mallctl` by MIB.
///
/// # Safety
/// `mib` has `miblen` entries; the buffers follow jemalloc's mallctl contract.
#[no_mangle]
pub unsafe extern "C" fn mallctlbymib(
    mib: *const usize,
    miblen: usize,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    if mib.is_null() || miblen == 0 || miblen > crate::front::ctl::MAX_DEPTH {
        return libc::ENOENT;
    }
    let m = core::slice::from_raw_parts(mib, miblen);
    crate::front::ctl::errno_of(crate::front::ctl::ctl_by_mib(m, &req(oldp, oldlenp, newp, newlen)))
}

/// Writes the allocator's statistics through `write_cb` (stderr when NULL); `opts` letters
/// as jemalloc's (`J` JSON, `g` `m` `a` `b` skip sections).
///
/// # Safety
/// `opts` is NULL or a NUL-terminated string; `write_cb` is NULL or a valid callback.
#[no_mangle]
pub unsafe extern "C" fn malloc_stats_print(
    write_cb: Option<unsafe extern "C" fn(*mut c_void, *const core::ffi::c_char)>,
    cbopaque: *mut c_void,
    opts: *const core::ffi::c_char,
) {
    let o: &[u8] = if opts.is_null() { b"" } else { core::ffi::CStr::from_ptr(opts).to_bytes() };
    crate::front::ctl::stats_print(write_cb, cbopaque, o)
}
