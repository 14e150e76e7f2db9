//! glibc extensions that programs written for glibc call.

use crate::alloc;

/// Returns empty slabs and purges every free dirty page (MADV_DONTNEED); 1 if memory was
/// released, else 0. `pad` is ignored.
#[cfg_attr(feature = "export", no_mangle)]
pub extern "C" fn malloc_trim(_pad: usize) -> i32 {
    alloc::trim() as i32
}

/// Accepts and ignores every parameter (returns 1, "success"): glibc's own tests and some
/// programs fail when mallopt returns 0.
#[cfg_attr(feature = "export", no_mangle)]
pub extern "C" fn mallopt(_param: i32, _value: i32) -> i32 {
    1
}
