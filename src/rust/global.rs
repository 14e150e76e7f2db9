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

/// Ends the process if it is dropped while a panic unwinds. The allocator's paths do not
/// panic by design, and the crate's own profiles abort on panic; but a program that depends
/// on the crate compiles it with its own panic strategy, and unwinding out of a global
/// allocator is undefined behaviour. Each method creates one and forgets it on return, so
/// only an unwind runs its `drop`.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        crate::foundation::report::fatal("a panic inside the allocator")
    }
}

// SAFETY: `front::global` returns blocks that fit the layout (size and alignment) or null,
// never hands a live block out twice, and frees or resizes only the block it is given; see
// its contract.
unsafe impl GlobalAlloc for OxMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let guard = AbortOnUnwind;
        let p = global::alloc(layout.size(), layout.align());
        core::mem::forget(guard);
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let guard = AbortOnUnwind;
        let p = global::alloc_zeroed(layout.size(), layout.align());
        core::mem::forget(guard);
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let guard = AbortOnUnwind;
        global::dealloc(ptr, layout.size(), layout.align());
        core::mem::forget(guard);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let guard = AbortOnUnwind;
        // SAFETY: GlobalAlloc's contract: `ptr` is a live block of this allocator allocated
        // with `layout`, and `new_size` is non-zero.
        let p = unsafe { global::realloc(ptr, layout.align(), new_size) };
        core::mem::forget(guard);
        p
    }
}
