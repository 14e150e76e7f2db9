//! The metadata allocator: bump allocation from blocks mapped straight from the OS.
//!
//! Contract: feeds extent descriptors, arenas, rtree leaves and the reservation table. Memory
//! comes back zeroed and is never returned (callers recycle their own objects, e.g. extent
//! descriptors through `ExtentPool`). Never calls malloc; thread-safe through one lock
//! (rank 6 in `sync`). Counts every byte it maps for `stats.metadata`.

use crate::foundation::sync::{Mutex, Rank};
use crate::foundation::sys;
use crate::foundation::util::{align_up, PAGE};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of the blocks carved by the bump pointer.
const BLOCK: usize = 2 << 20;

struct Bump {
    /// Next free byte of the current block (0 = no block yet).
    next: usize,
    /// End of the current block.
    end: usize,
}

/// Sync: `bump` under its own lock; `mapped` atomic (stats).
pub struct Base {
    bump: Mutex<Bump>,
    mapped: AtomicUsize,
}

pub static BASE: Base = Base { bump: Mutex::ranked(Rank::Base, Bump { next: 0, end: 0 }), mapped: AtomicUsize::new(0) };

impl Base {
    /// Returns `size` zeroed bytes aligned to `align` (power of two, ≤ PAGE), or null when the
    /// OS refuses memory. Requests above a quarter block get their own mapping.
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        debug_assert!(align.is_power_of_two() && align <= PAGE);
        if size > BLOCK / 4 {
            let len = align_up(size, PAGE);
            let p = sys::reserve(len);
            if !p.is_null() {
                self.mapped.fetch_add(len, Ordering::Relaxed);
            }
            return p;
        }
        let mut b = self.bump.lock();
        let mut at = align_up(b.next, align);
        if b.next == 0 || at + size > b.end {
            let p = sys::reserve(BLOCK);
            if p.is_null() {
                return p;
            }
            self.mapped.fetch_add(BLOCK, Ordering::Relaxed);
            b.next = p as usize;
            b.end = p as usize + BLOCK;
            at = b.next;
        }
        b.next = at + size;
        at as *mut u8
    }

    /// Bytes mapped for metadata so far.
    pub fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }

    pub fn prefork(&self) {
        self.bump.raw_lock();
    }

    pub fn postfork_parent(&self) {
        // SAFETY: taken by `prefork` in this thread.
        unsafe { self.bump.force_unlock() }
    }

    pub fn postfork_child(&self) {
        // SAFETY: fork child, single thread, lock was taken in `prefork`.
        unsafe { self.bump.reset_after_fork() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_distinct() {
        let a = BASE.alloc(100, 64);
        let b = BASE.alloc(100, 64);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(a as usize % 64, 0);
        assert_ne!(a, b);
        // SAFETY: both blocks are 100 bytes we own.
        unsafe {
            assert!((0..100).all(|i| *a.add(i) == 0));
            core::ptr::write_bytes(b, 0xff, 100);
            assert!((0..100).all(|i| *a.add(i) == 0));
        }
        let big = BASE.alloc(3 << 20, 4096);
        assert_eq!(big as usize % 4096, 0);
    }
}
