//! One size class of a thread cache: a bounded LIFO stack of free blocks.
//!
//! Contract: `slots[0..ncached]` hold cached blocks as *entries*: the block address, with bit
//! 0 set when the block came from a `free` (and so carries the cookie, see `tcache`), clear
//! when it came from a refill. Oldest at the bottom (index 0), so the
//! most recently freed block is reused first and flushes/GC give back the coldest ones.
//! `low_water` is the fewest blocks the stack held since the last GC visit; the fast pop only
//! runs while `ncached > low_water`, so keeping the low-water mark costs the fast path nothing
//! (the pop that would lower it takes the slow path, jemalloc's trick).
//!
//! Invariants (checked by `validate`): `low_water ≤ ncached ≤ cap ≤ cap_max`;
//! `1 ≤ nfill ≤ max(cap / 2, 1)`. `cap` moves between the class's base capacity and `cap_max`
//! (see `tcache`: grown on repeated overflow, shrunk by GC).
//!
//! Sync: owned by one thread (its `Tcache`); never shared.

#[repr(C)]
pub struct CacheBin {
    pub ncached: u16,
    pub low_water: u16,
    /// Capacity of this bin.
    pub cap: u16,
    /// Blocks taken per refill (adapted by GC).
    pub nfill: u16,
    /// Usable size of the class (small classes) or of the block (large page counts); kept
    /// here so the fast paths read it from the line they already touch instead of a table.
    pub size: u32,
    /// Slots reserved for this bin: the most `cap` may grow to.
    pub cap_max: u16,
    /// Whether the stack overflowed since the last GC visit (a second overflow grows `cap`).
    pub overflowed: bool,
    /// Whether the stack was refilled since the last GC visit (growth needs the thread to
    /// allocate from the class too: a thread that only frees must not hoard blocks).
    pub refilled: bool,
    /// `size_class::div_magic` of a small class (0 for large bins).
    pub magic: u64,
    /// Storage for `cap` entries (inside the owning `Tcache`).
    pub slots: *mut usize,
}

// The fast paths index the bins with a shift.
const _: () = assert!(core::mem::size_of::<CacheBin>() == 32);

/// Bit 0 of an entry: the block was freed into the cache and carries the cookie.
pub const FREED: usize = 1;

/// The block address of an entry.
#[inline(always)]
pub fn block(entry: usize) -> *mut u8 {
    (entry & !FREED) as *mut u8
}

impl CacheBin {
    /// Pops an entry if that keeps the stack above its low-water mark.
    #[inline(always)]
    pub fn pop_fast(&mut self) -> Option<usize> {
        if self.ncached > self.low_water {
            self.ncached -= 1;
            // SAFETY: ncached < cap, so the index is inside the slot storage, and the slot
            // holds a block pushed earlier.
            Some(unsafe { *self.slots.add(self.ncached as usize) })
        } else {
            None
        }
    }

    /// Pops an entry, lowering the low-water mark; None when empty.
    #[inline]
    pub fn pop_lowering(&mut self) -> Option<usize> {
        if self.ncached == 0 {
            return None;
        }
        self.ncached -= 1;
        self.low_water = self.low_water.min(self.ncached);
        // SAFETY: as in `pop_fast`.
        Some(unsafe { *self.slots.add(self.ncached as usize) })
    }

    /// Pushes an entry if there is room.
    #[inline(always)]
    pub fn push(&mut self, p: usize) -> bool {
        if self.ncached < self.cap {
            // SAFETY: ncached < cap: inside the slot storage.
            unsafe { *self.slots.add(self.ncached as usize) = p };
            self.ncached += 1;
            true
        } else {
            false
        }
    }

    /// The cached entries, oldest first.
    #[inline]
    pub fn cached(&self) -> &[usize] {
        // SAFETY: slots[0..ncached] are initialized and owned by this bin.
        unsafe { core::slice::from_raw_parts(self.slots, self.ncached as usize) }
    }

    /// Whether `p` is cached here (linear scan; only on the suspected-double-free path).
    pub fn contains(&self, p: *mut u8) -> bool {
        self.cached().iter().any(|&q| block(q) == p)
    }

    /// Whether `p` is the most recently cached block (the immediate `free(p); free(p)`).
    #[inline(always)]
    pub fn top_is(&self, p: *mut u8) -> bool {
        // SAFETY: when ncached > 0, slot ncached-1 holds an entry.
        self.ncached > 0 && block(unsafe { *self.slots.add(self.ncached as usize - 1) }) == p
    }

    /// Drops the `n` oldest blocks from the stack (after the caller returned them elsewhere).
    pub fn remove_oldest(&mut self, n: usize) {
        let n = n.min(self.ncached as usize);
        let rest = self.ncached as usize - n;
        // SAFETY: both ranges lie in slots[0..ncached]; `copy` handles the overlap.
        unsafe { core::ptr::copy(self.slots.add(n), self.slots, rest) };
        self.ncached = rest as u16;
        self.low_water = self.low_water.saturating_sub(n as u16).min(self.ncached);
    }

    /// Checks the invariants (tests).
    pub fn validate(&self) {
        assert!(self.low_water <= self.ncached && self.ncached <= self.cap && self.cap <= self.cap_max);
        assert!(self.nfill >= 1 && self.nfill <= (self.cap / 2).max(1));
        let c = self.cached();
        for (i, &p) in c.iter().enumerate() {
            assert!(!block(p).is_null());
            assert!(!c[i + 1..].iter().any(|&q| block(q) == block(p)), "block cached twice");
        }
    }
}
