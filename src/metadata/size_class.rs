//! Size classes: request size → class index → usable size, and each small class's slab shape.
//!
//! Spacing (jemalloc 5.3's table for a 16-byte quantum and 4 KiB pages, so class indices and
//! sizes match what jemalloc clients read from `arenas.bin.<j>.size`):
//! - one tiny class, 8 B (requests 0..=8);
//! - 16, 32, 48, 64 (quantum spacing);
//! - then 4 classes per doubling: (2^n, 2^(n+1)] is split at 2^n + k·2^(n-2), k = 1..4,
//!   e.g. 80 96 112 128 | 160 192 224 256 | ... | 10240 12288 14336 | 16384 ... 32768.
//!
//! 36 classes up to 14336 B as in jemalloc, then 5 more up to 32 KiB (16, 20, 24, 28, 32 KiB)
//! that jemalloc serves as large extents: slabs make batches of 32 KiB blocks a bitmap
//! operation instead of an extent split and coalesce each (`make bench`, batch 32768).
//! 41 slab classes; anything larger is *large*: a page-rounded extent.
//!
//! Waste: above 64 B the worst case is 1 - (2^n+1)/(2^n + 2^(n-2)) < 20 % (e.g. 1025 B →
//! 1280 B); at or below 64 B at most 15 bytes (quantum spacing: 17 B → 32 B); on requests
//! uniform in [512, 2048] the mean is 8.9 % (reference/performance.md §5); large requests waste
//! under one page. Alignment: a region starts at slab_base + i·size with page-aligned slab
//! bases, so every region is aligned to the largest power of two dividing its class size,
//! capped at 4096: ≥ 16 B for every class from 16 B up, 8 B for the tiny class.
//!
//! Slab shape: the smallest number of pages that the class divides exactly (no tail waste),
//! pages = size / gcd(size, 4096): 1, 3, 5 or 7 pages; for classes of 4 KiB and more, that
//! times the smallest power of two giving at least 8 regions (jemalloc keeps 1-4 regions
//! there, which makes every thread-cache refill of 4 KiB blocks a page-allocator call).
//! Regions per slab ≤ 512; slabs ≤ 64 pages (256 KiB).

use crate::foundation::util::{gcd, lg_floor, PAGE};

pub const NBINS: usize = 41;
/// Classes that match jemalloc 5.3's small classes (index, size; slab shape below 4 KiB).
pub const NBINS_JEMALLOC: usize = 36;
/// Largest small (slab-backed) class.
pub const SMALL_MAX: usize = 32768;
/// Largest request served from the lookup table.
pub const LOOKUP_MAX: usize = 4096;
/// Most regions a slab can have (8-byte class in one page).
pub const MAX_NREGS: usize = 512;
/// Most pages a slab can have (`slab::region_index_magic` relies on the bound).
pub const MAX_SLAB_PAGES: usize = 64;

/// Class index for a size computed arithmetically (any size ≤ SMALL_MAX).
pub const fn size2bin_compute(size: usize) -> usize {
    if size <= 8 {
        0
    } else if size <= 64 {
        (size + 15) >> 4
    } else {
        let lg = lg_floor(size - 1) as usize; // size in (2^lg, 2^(lg+1)]
        let delta_lg = lg - 2;
        let k = (size - (1 << lg) + (1 << delta_lg) - 1) >> delta_lg; // 1..=4
        4 + (lg - 6) * 4 + k
    }
}

pub const fn bin_size_compute(bin: usize) -> usize {
    if bin == 0 {
        8
    } else if bin <= 4 {
        bin * 16
    } else {
        let g = (bin - 5) / 4; // group: lg = 6 + g
        let k = (bin - 5) % 4 + 1;
        let lg = 6 + g;
        (1 << lg) + k * (1 << (lg - 2))
    }
}

/// Usable size of each small class.
pub static BIN_SIZE: [u32; NBINS] = {
    let mut t = [0u32; NBINS];
    let mut i = 0;
    while i < NBINS {
        t[i] = bin_size_compute(i) as u32;
        i += 1;
    }
    t
};

/// Slab length in pages: the shortest with no tail waste (jemalloc's), doubled until it holds
/// at least 8 regions. jemalloc's 1-page slabs of 4 regions (1 KiB) or 2 (2 KiB) are created
/// and released every few blocks when a program frees in batches; with ≥ 8 regions batches of
/// 1..3 KiB blocks run 20-40 % faster (`batch` in `make bench`), for a peak RSS 8 % higher on
/// the drifting cache (65 vs 60 MiB; RSS over live after purge the same, 1.18). 16 regions
/// would gain 10-20 % more and cost 15 % peak RSS.
const fn slab_pages_compute(bin: usize) -> usize {
    let s = bin_size_compute(bin);
    let mut pages = s / gcd(s, PAGE);
    while pages * PAGE / s < 8 {
        pages *= 2;
    }
    pages
}

const _: () = {
    let mut i = 0;
    while i < NBINS {
        assert!(slab_pages_compute(i) <= MAX_SLAB_PAGES);
        i += 1;
    }
};

/// Pages per slab of each class.
pub static SLAB_PAGES: [u8; NBINS] = {
    let mut t = [0u8; NBINS];
    let mut i = 0;
    while i < NBINS {
        t[i] = slab_pages_compute(i) as u8;
        i += 1;
    }
    t
};

/// Regions per slab of each class.
pub static NREGS: [u16; NBINS] = {
    let mut t = [0u16; NBINS];
    let mut i = 0;
    while i < NBINS {
        t[i] = (slab_pages_compute(i) * PAGE / bin_size_compute(i)) as u16;
        i += 1;
    }
    t
};

/// ceil(2^64 / size): region index = (offset · magic) >> 64 (a 128-bit product), exact for
/// offsets that are multiples of size within a slab (see `slab::region_index_magic`).
pub static DIV_MAGIC: [u64; NBINS] = {
    let mut t = [0u64; NBINS];
    let mut i = 0;
    while i < NBINS {
        let s = bin_size_compute(i) as u128;
        t[i] = (1u128 << 64).div_ceil(s) as u64;
        i += 1;
    }
    t
};

/// size → class · `BIN_STRIDE` (low 16 bits) and the class's size (high 16 bits) for sizes
/// ≤ LOOKUP_MAX, indexed by (size + 7) >> 3. Scaled so that malloc's fast path has the byte
/// offset of the class's thread-cache bin (`Tcache::bin_at`) without a shift (one
/// instruction fewer per malloc); the size rides along so that malloc counts it without a
/// load from the bin (a shift and a mask instead; 2 KiB of table): pairs of 16 / 64 / 256 B
/// take 3.14 / 3.20 / 3.16 ns against 3.19 / 3.29 / 3.23 with the load (A/B medians of
/// 9-11, `scripts/ab-fastest.sh`).
static LOOKUP: [u32; (LOOKUP_MAX >> 3) + 1] = {
    let mut t = [0u32; (LOOKUP_MAX >> 3) + 1];
    let mut i = 0;
    while i < t.len() {
        let size = if i == 0 { 0 } else { i << 3 };
        let b = size2bin_compute(size);
        t[i] = (b * BIN_STRIDE) as u32 | (bin_size_compute(b) as u32) << 16;
        i += 1;
    }
    t
};

/// Factor of `LOOKUP`'s entries and of `rtree::cacheable_bin_scaled`: the size of a
/// thread-cache bin (asserted in `tcache`), so that a scaled class is its bin's byte offset.
pub const BIN_STRIDE: usize = 32;

/// `size2bin(size) · BIN_STRIDE` for `size ≤ LOOKUP_MAX`.
#[inline(always)]
pub fn size2bin_scaled(size: usize) -> usize {
    size2bin_scaled_and_size(size).0
}

/// `(size2bin(size) · BIN_STRIDE, bin_size(size2bin(size)))` for `size ≤ LOOKUP_MAX`.
#[inline(always)]
pub fn size2bin_scaled_and_size(size: usize) -> (usize, usize) {
    debug_assert!(size <= LOOKUP_MAX);
    let table = crate::static_addr!(LOOKUP, u32);
    // SAFETY: size ≤ LOOKUP_MAX, so the index is ≤ LOOKUP_MAX >> 3 < LOOKUP.len().
    let v = unsafe { *table.add((size + 7) >> 3) as usize };
    (v & 0xffff, v >> 16)
}

/// Granule of the classes above LOOKUP_MAX: all of them are multiples of 1 KiB.
const LG_MEDIUM_STEP: u32 = 10;

/// size → class for LOOKUP_MAX < size ≤ SMALL_MAX, indexed by ⌈size / 1 KiB⌉. A table
/// instead of `size2bin_compute`'s bit scan and shifts by `cl` (17 instructions on the
/// malloc path): pairs of 8 / 16 / 32 KiB take 5.57 / 6.05 / 7.04 ns against 6.10 / 6.47 /
/// 7.46 with the computation.
static LOOKUP_MEDIUM: [u8; (SMALL_MAX >> LG_MEDIUM_STEP) + 1] = {
    let mut t = [0u8; (SMALL_MAX >> LG_MEDIUM_STEP) + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = size2bin_compute(i << LG_MEDIUM_STEP) as u8;
        i += 1;
    }
    t
};
const _: () = {
    let mut bin = 0;
    while bin < NBINS {
        let s = bin_size_compute(bin);
        assert!(s <= LOOKUP_MAX || s.is_multiple_of(1 << LG_MEDIUM_STEP));
        bin += 1;
    }
};

/// Class index of a small request (`size ≤ SMALL_MAX`).
#[inline(always)]
pub fn size2bin(size: usize) -> usize {
    debug_assert!(size <= SMALL_MAX);
    if size <= LOOKUP_MAX {
        size2bin_scaled(size) / BIN_STRIDE
    } else {
        let table = crate::static_addr!(LOOKUP_MEDIUM, u8);
        // SAFETY: size ≤ SMALL_MAX, so the index is ≤ SMALL_MAX >> 10 < LOOKUP_MEDIUM.len().
        unsafe { *table.add((size + (1 << LG_MEDIUM_STEP) - 1) >> LG_MEDIUM_STEP) as usize }
    }
}

/// Usable size of class `bin` (< NBINS).
#[inline(always)]
pub fn bin_size(bin: usize) -> usize {
    debug_assert!(bin < NBINS);
    // SAFETY: every caller passes a class index, < NBINS (size2bin's range, Extent::bin).
    unsafe { *BIN_SIZE.get_unchecked(bin) as usize }
}

/// Regions per slab of class `bin` (< NBINS).
#[inline(always)]
pub fn nregs(bin: usize) -> usize {
    debug_assert!(bin < NBINS);
    // SAFETY: as in `bin_size`.
    unsafe { *NREGS.get_unchecked(bin) as usize }
}

/// Division magic of class `bin` (< NBINS).
#[inline(always)]
pub fn div_magic(bin: usize) -> u64 {
    debug_assert!(bin < NBINS);
    // SAFETY: as in `bin_size`.
    unsafe { *DIV_MAGIC.get_unchecked(bin) }
}

/// Usable size for a request of `size` bytes (size ≤ MAX_REQUEST): the class size for small
/// requests, the page-rounded size for large ones.
#[inline]
pub fn usable_size(size: usize) -> usize {
    if size <= SMALL_MAX {
        bin_size(size2bin(size))
    } else {
        crate::foundation::util::align_up(size, PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// jemalloc 5.3 x86_64 (lg_quantum 4, lg_page 12) small classes and slab sizes.
    const JEMALLOC: [(usize, usize); NBINS_JEMALLOC] = [
        (8, 4096), (16, 4096), (32, 4096), (48, 12288), (64, 4096), (80, 20480), (96, 12288),
        (112, 28672), (128, 4096), (160, 20480), (192, 12288), (224, 28672), (256, 4096),
        (320, 20480), (384, 12288), (448, 28672), (512, 4096), (640, 20480), (768, 12288),
        (896, 28672), (1024, 4096), (1280, 20480), (1536, 12288), (1792, 28672), (2048, 4096),
        (2560, 20480), (3072, 12288), (3584, 28672), (4096, 4096), (5120, 20480),
        (6144, 12288), (7168, 28672), (8192, 8192), (10240, 20480), (12288, 12288),
        (14336, 28672),
    ];

    #[test]
    fn matches_jemalloc_table() {
        for (i, &(size, slab)) in JEMALLOC.iter().enumerate() {
            assert_eq!(bin_size(i), size, "class {i}");
            // Our slabs are jemalloc's shape times the smallest power of two that gives ≥ 8
            // regions (1, 2 and 4 KiB... classes differ; the others are jemalloc's).
            let m = SLAB_PAGES[i] as usize * PAGE / slab;
            assert!(m.is_power_of_two() && NREGS[i] >= 8, "slab of class {i}");
            assert!(m == 1 || NREGS[i] < 16, "slab of class {i} larger than needed");
            assert_eq!(NREGS[i] as usize, SLAB_PAGES[i] as usize * PAGE / size);
        }
        let beyond: std::vec::Vec<usize> = (NBINS_JEMALLOC..NBINS).map(bin_size).collect();
        assert_eq!(beyond, [16384, 20480, 24576, 28672, 32768]);
        assert_eq!(bin_size(NBINS - 1), SMALL_MAX);
        assert!((0..NBINS).all(|b| NREGS[b] as usize <= MAX_NREGS)); // pages: checked at compile time
    }

    #[test]
    fn every_size_maps_to_smallest_fitting_class() {
        for size in 0..=SMALL_MAX {
            let b = size2bin(size);
            assert!(bin_size(b) >= size.max(1), "size {size}");
            if b > 0 {
                assert!(bin_size(b - 1) < size, "size {size} not smallest");
            }
            assert_eq!(b, size2bin_compute(size));
            if size <= LOOKUP_MAX {
                assert_eq!(size2bin_scaled_and_size(size), (b * BIN_STRIDE, bin_size(b)), "size {size}");
            }
        }
    }

    #[test]
    fn alignment_guarantee() {
        for b in 0..NBINS {
            let s = bin_size(b);
            let align = 1usize << s.trailing_zeros().min(12);
            assert!(if s >= 16 { align >= 16 } else { align >= 8 }, "class {s}");
        }
    }

    #[test]
    fn div_magic_exact() {
        for b in 0..NBINS {
            let s = bin_size(b);
            for i in 0..NREGS[b] as usize {
                let off = (i * s) as u64;
                assert_eq!(((off as u128 * DIV_MAGIC[b] as u128) >> 64) as usize, i);
            }
        }
    }

    #[test]
    fn worst_case_waste_under_20_percent() {
        for size in 1..=SMALL_MAX {
            let u = usable_size(size);
            if size > 64 {
                assert!(((u - size) as f64) / (u as f64) < 0.2, "{size}->{u}");
            } else {
                assert!(u - size <= 15, "{size}->{u}");
            }
        }
    }
}
