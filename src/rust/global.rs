//! `OxMalloc`, the global allocator type.

use crate::front::global;
use core::alloc::{GlobalAlloc, Layout};

/// oxmalloc as a Rust program's global allocator.
///
/// Every `Box`, `Vec`, `String`, `HashMap`... of the program then comes from oxmalloc's
/// thread caches and arenas, while C code in the same process keeps the C library's `malloc`
/// (unless the crate's `export` feature is on: then C code uses oxmalloc too).
///
/// - `alloc` and `alloc_zeroed` serve any alignment a [`Layout`] can express; `alloc_zeroed`
///   does not write pages that are known to be zero already.
/// - `dealloc` is a sized free: the layout's size is checked against the block (as
///   jemalloc's `sdallocx` checks it), and a size or pointer that does not belong to a live
///   block ends the process with one line on stderr (`oxmalloc: dealloc(): ...`) and
///   `abort()`.
/// - `realloc` resizes in place when it can (a small block within its size class, a large
///   block whose neighbouring pages are free) and keeps the layout's alignment when it moves.
/// - Running out of memory returns null, so the program's `handle_alloc_error` decides.
///
/// Statistics and controls: [`crate::ctl`].
///
/// # Example
///
/// ```
/// #[global_allocator]
/// static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;
///
/// fn main() {
///     let v: Vec<u64> = std::hint::black_box((0..1000).collect());
///     // The vector's buffer is an oxmalloc block, counted for this thread.
///     assert!(oxmalloc::ctl::thread::allocated() >= 8000);
///     assert!(oxmalloc::ctl::arenas::lookup(v.as_ptr()).is_ok());
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OxMalloc;

// The methods go through these `extern "C"` forwarders: a panic inside one ends the process
// (Rust aborts when an unwind reaches an `extern "C"` function) instead of unwinding out of
// the global allocator, which would be undefined behaviour. The allocator's paths do not
// panic by design and the crate's own profiles abort on panic, but a program that depends on
// the crate compiles it with its own panic strategy. Inlined, the forwarders cost nothing on
// the fast paths: an abort needs no cleanup, hence no stack frame.

#[inline(always)]
extern "C" fn alloc_no_unwind(size: usize, align: usize) -> *mut u8 {
    global::alloc(size, align)
}

#[inline(always)]
extern "C" fn alloc_zeroed_no_unwind(size: usize, align: usize) -> *mut u8 {
    global::alloc_zeroed(size, align)
}

#[inline(always)]
extern "C" fn dealloc_no_unwind(ptr: *mut u8, size: usize, align: usize) {
    global::dealloc(ptr, size, align)
}

/// # Safety
/// As `front::global::realloc`.
#[inline(always)]
unsafe extern "C" fn realloc_no_unwind(ptr: *mut u8, align: usize, new_size: usize) -> *mut u8 {
    // SAFETY: the caller's contract is `front::global::realloc`'s.
    unsafe { global::realloc(ptr, align, new_size) }
}

// SAFETY: `front::global` returns blocks that fit the layout (size and alignment) or null,
// never hands a live block out twice, and frees or resizes only the block it is given; see
// its contract.
unsafe impl GlobalAlloc for OxMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_no_unwind(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc_zeroed_no_unwind(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        dealloc_no_unwind(ptr, layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `ptr` is a live block of this allocator allocated
        // with `layout`, and `new_size` is non-zero.
        unsafe { realloc_no_unwind(ptr, layout.align(), new_size) }
    }
}
