//! The C++ `operator new` / `operator delete` family, with the exact set of mangled names that
//! libjemalloc.so.2 exports: a program linked against libjemalloc resolves `new` to whichever
//! library comes first, so without these it would mix heaps.
//!
//! The throwing forms are naked trampolines into `cxx_new.c`: a C++ exception (std::bad_alloc,
//! or whatever the program's new_handler throws) cannot cross a Rust frame of this
//! panic=abort crate, so no Rust frame may be on the stack when it is thrown. The `nothrow`
//! forms return null as the standard says. Sized deletes check the size as `sdallocx` does.

#![allow(non_snake_case)]

use crate::front::alloc;
use core::ffi::c_void;

extern "C" {
    fn oxmalloc_cxx_new(size: usize) -> *mut c_void;
    fn oxmalloc_cxx_new_aligned(size: usize, align: usize) -> *mut c_void;
}

/// `align_val_t` is always a power of two in valid C++; anything else is treated as misuse.
#[inline(always)]
fn aligned(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        crate::foundation::report::fatal("operator new(): alignment is not a power of two");
    }
    alloc::aligned(align, size)
}

/// Defines a naked exported trampoline that tail-jumps to a C function (same arguments).
macro_rules! trampoline {
    ($(#[$doc:meta])* $name:ident ($($arg:ident: $t:ty),*) => $target:ident) => {
        $(#[$doc])*
        #[no_mangle]
        #[unsafe(naked)]
        pub extern "C" fn $name($($arg: $t),*) -> *mut c_void {
            // A bare jump: the C function returns straight to our caller, and an exception it
            // throws unwinds without meeting a Rust frame.
            core::arch::naked_asm!("jmp {}", sym $target)
        }
    };
}

trampoline!(/// operator new(size_t)
    _Znwm(size: usize) => oxmalloc_cxx_new);
trampoline!(/// operator new[](size_t)
    _Znam(size: usize) => oxmalloc_cxx_new);
trampoline!(/// operator new(size_t, align_val_t)
    _ZnwmSt11align_val_t(size: usize, align: usize) => oxmalloc_cxx_new_aligned);
trampoline!(/// operator new[](size_t, align_val_t)
    _ZnamSt11align_val_t(size: usize, align: usize) => oxmalloc_cxx_new_aligned);

/// operator new(size_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZnwmRKSt9nothrow_t(size: usize, _nt: *const c_void) -> *mut c_void {
    alloc::malloc(size) as *mut c_void
}

/// operator new(size_t, align_val_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _nt: *const c_void) -> *mut c_void {
    aligned(align, size) as *mut c_void
}

/// operator new[](size_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZnamRKSt9nothrow_t(size: usize, _nt: *const c_void) -> *mut c_void {
    alloc::malloc(size) as *mut c_void
}

/// operator new[](size_t, align_val_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _nt: *const c_void) -> *mut c_void {
    aligned(align, size) as *mut c_void
}

/// operator delete(void*)
#[no_mangle]
pub extern "C" fn _ZdlPv(p: *mut c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete(void*, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZdlPvRKSt9nothrow_t(p: *mut c_void, _nt: *const c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete(void*, size_t) (sized)
#[no_mangle]
pub extern "C" fn _ZdlPvm(p: *mut c_void, size: usize) {
    crate::front::xalloc::sdallocx(p as *mut u8, size, 0, "operator delete")
}

/// operator delete(void*, align_val_t)
#[no_mangle]
pub extern "C" fn _ZdlPvSt11align_val_t(p: *mut c_void, _align: usize) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete(void*, align_val_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZdlPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, _align: usize, _nt: *const c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete(void*, size_t, align_val_t) (sized)
#[no_mangle]
pub extern "C" fn _ZdlPvmSt11align_val_t(p: *mut c_void, size: usize, align: usize) {
    crate::front::xalloc::sdallocx(p as *mut u8, size, align_flags(align), "operator delete")
}

/// operator delete[](void*)
#[no_mangle]
pub extern "C" fn _ZdaPv(p: *mut c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete[](void*, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZdaPvRKSt9nothrow_t(p: *mut c_void, _nt: *const c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete[](void*, size_t) (sized)
#[no_mangle]
pub extern "C" fn _ZdaPvm(p: *mut c_void, size: usize) {
    crate::front::xalloc::sdallocx(p as *mut u8, size, 0, "operator delete[]")
}

/// operator delete[](void*, align_val_t)
#[no_mangle]
pub extern "C" fn _ZdaPvSt11align_val_t(p: *mut c_void, _align: usize) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete[](void*, align_val_t, nothrow_t)
#[no_mangle]
pub extern "C" fn _ZdaPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, _align: usize, _nt: *const c_void) {
    alloc::free(p as *mut u8, "free")
}

/// operator delete[](void*, size_t, align_val_t) (sized)
#[no_mangle]
pub extern "C" fn _ZdaPvmSt11align_val_t(p: *mut c_void, size: usize, align: usize) {
    crate::front::xalloc::sdallocx(p as *mut u8, size, align_flags(align), "operator delete[]")
}

/// MALLOCX_ALIGN(align) for a power-of-two `align` (C++ guarantees it for align_val_t).
fn align_flags(align: usize) -> i32 {
    align.trailing_zeros() as i32 & 0x3f
}
