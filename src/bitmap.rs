//! Fixed-capacity bitmap for slab regions: bit i set ⇔ region i is free.
//!
//! Contract: capacity `MAX_NREGS` (512) bits in 8 words; `init(n)` sets bits 0..n and clears
//! the rest, so `first_set` never returns an index ≥ n. Not synchronized: the owning bin's
//! lock protects it.

use crate::size_class::MAX_NREGS;

const WORDS: usize = MAX_NREGS / 64;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Bitmap {
    w: [u64; WORDS],
}

impl Bitmap {
    pub const fn empty() -> Self {
        Bitmap { w: [0; WORDS] }
    }

    /// All of regions 0..n free, none beyond.
    pub fn init(&mut self, n: usize) {
        debug_assert!(n > 0 && n <= MAX_NREGS);
        for (i, w) in self.w.iter_mut().enumerate() {
            let lo = i * 64;
            *w = if n >= lo + 64 {
                u64::MAX
            } else if n > lo {
                (1u64 << (n - lo)) - 1
            } else {
                0
            };
        }
    }

    /// Index of the lowest set bit, if any.
    #[inline]
    pub fn first_set(&self) -> Option<usize> {
        for (i, &w) in self.w.iter().enumerate() {
            if w != 0 {
                return Some(i * 64 + w.trailing_zeros() as usize);
            }
        }
        None
    }

    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.w[(i / 64) % WORDS] & (1u64 << (i % 64)) != 0
    }

    #[inline]
    pub fn set(&mut self, i: usize) {
        self.w[(i / 64) % WORDS] |= 1u64 << (i % 64);
    }

    #[inline]
    pub fn clear(&mut self, i: usize) {
        self.w[(i / 64) % WORDS] &= !(1u64 << (i % 64));
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.w.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_take_release() {
        for n in [1usize, 2, 63, 64, 65, 128, 511, 512] {
            let mut b = Bitmap::empty();
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
}
