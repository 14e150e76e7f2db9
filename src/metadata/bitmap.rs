//! Fixed-capacity bitmap for slab regions: bit i set ⇔ region i is free.
//!
//! Contract: capacity `MAX_NREGS` (512) bits in 8 words; `init(n)` sets bits 0..n and clears
//! the rest, so `first_set` never returns an index ≥ n.
//!
//! Sync: every mutation happens under the owning bin's lock (plain load + store, no
//! read-modify-write needed). The words are atomics only so that the lock-free free path may
//! read one bit (`get`) to catch a double free early: a stale answer there is harmless because
//! the flush re-checks under the lock.

use crate::metadata::size_class::MAX_NREGS;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const WORDS: usize = MAX_NREGS / 64;

#[repr(C)]
pub struct Bitmap {
    w: [AtomicU64; WORDS],
}

impl Bitmap {
    pub const fn empty() -> Self {
        Bitmap { w: [const { AtomicU64::new(0) }; WORDS] }
    }

    /// All of regions 0..n free, none beyond.
    pub fn init(&self, n: usize) {
        debug_assert!(n > 0 && n <= MAX_NREGS);
        for (i, w) in self.w.iter().enumerate() {
            let lo = i * 64;
            let v = if n >= lo + 64 {
                u64::MAX
            } else if n > lo {
                (1u64 << (n - lo)) - 1
            } else {
                0
            };
            w.store(v, Relaxed);
        }
    }

    /// Index of the lowest set bit, if any.
    #[inline]
    pub fn first_set(&self) -> Option<usize> {
        for (i, w) in self.w.iter().enumerate() {
            let w = w.load(Relaxed);
            if w != 0 {
                return Some(i * 64 + w.trailing_zeros() as usize);
            }
        }
        None
    }

    /// Clears up to `n` set bits, lowest first, calling `f(index)` for each; returns how many.
    /// (Fills a thread cache from one slab a word at a time.)
    #[inline]
    pub fn take_lowest(&self, n: usize, mut f: impl FnMut(usize)) -> usize {
        let mut got = 0;
        for (i, w) in self.w.iter().enumerate() {
            if got == n {
                break;
            }
            let mut v = w.load(Relaxed);
            if v == 0 {
                continue;
            }
            while v != 0 && got < n {
                f(i * 64 + v.trailing_zeros() as usize);
                v &= v - 1;
                got += 1;
            }
            w.store(v, Relaxed);
        }
        got
    }

    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.w[(i / 64) % WORDS].load(Relaxed) & (1u64 << (i % 64)) != 0
    }

    #[inline]
    pub fn set(&self, i: usize) {
        let w = &self.w[(i / 64) % WORDS];
        w.store(w.load(Relaxed) | 1u64 << (i % 64), Relaxed);
    }

    #[inline]
    pub fn clear(&self, i: usize) {
        let w = &self.w[(i / 64) % WORDS];
        w.store(w.load(Relaxed) & !(1u64 << (i % 64)), Relaxed);
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.w.iter().map(|w| w.load(Relaxed).count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_take_release() {
        for n in [1usize, 2, 63, 64, 65, 128, 511, 512] {
            let b = Bitmap::empty();
            b.init(n);
            assert_eq!(b.count(), n);
            for i in 0..n {
                assert_eq!(b.first_set(), Some(i));
                b.clear(i);
            }
            assert_eq!(b.first_set(), None);
            b.set(n / 2);
            assert!(b.get(n / 2));
            assert_eq!(b.first_set(), Some(n / 2));
        }
    }

    #[test]
    fn take_lowest_in_order() {
        let b = Bitmap::empty();
        b.init(200);
        b.clear(3);
        let mut seen = Vec::new();
        assert_eq!(b.take_lowest(70, |i| seen.push(i)), 70);
        let want: Vec<usize> = (0..71).filter(|&i| i != 3).collect();
        assert_eq!(seen, want);
        assert_eq!(b.count(), 200 - 71);
        assert_eq!(b.first_set(), Some(71));
        let mut rest = 0;
        assert_eq!(b.take_lowest(1000, |_| rest += 1), 129);
        assert_eq!(b.count(), 0);
    }
}
