//! glibc extensions that programs written for glibc call.

use crate::front::alloc;

/// Returns empty slabs and purges every free dirty page (MADV_DONTNEED); 1 if memory was
/// released, else 0. `pad` is ignored.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> core::ffi::c_int {
    alloc::trim() as i32
}

/// Accepts and ignores every parameter (returns 1, "success"): glibc's own tests and some
/// programs fail when mallopt returns 0.
#[no_mangle]
pub extern "C" fn mallopt(_param: core::ffi::c_int, _value: core::ffi::c_int) -> core::ffi::c_int {
    1
}
