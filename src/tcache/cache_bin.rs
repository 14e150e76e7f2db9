//! One size class of a thread cache: a bounded LIFO stack of free blocks.
//!
//! Contract: the stack lives in a slot array reserved for the bin (`cap_max` slots plus one
//! sentinel slot holding 0) and grows *downward* from its end: `head` points at the most
//! recently cached block, `end` (one past the bottom entry; the sentinel) means empty. The
//! entries `head[0..ncached]` are block addresses, each block carrying the cookie in its
//! first word (see `tcache`); the newest is at `head[0]`, the oldest just below `end`, so the
//! most recently freed block is reused first and flushes/GC give back the coldest ones.
//!
//! The fast paths compare only the low 16 bits of `head` with a mark (jemalloc's layout): a
//! bin's slots span less than 64 KiB, so equal low bits mean equal positions. Pop stops at
//! the low-water mark (`low_bits`: the position with the fewest blocks since the last GC
//! visit; popping below it takes the slow path, which lowers it, so keeping the mark costs
//! the fast path nothing), push at the capacity mark (`full_bits`). Counts come from
//! position differences: `ncached = (end - head) / 8` and so on. Against a separate count
//! and slot pointer this saves a pop two loads and a push three (pairs of 16 B: 12.1 ns
//! against 12.8 with them, in this VM's slow phase).
//!
//! Invariants (checked by `validate`): `full ≤ head ≤ low ≤ end` as positions, i.e.
//! `low_water ≤ ncached ≤ cap ≤ cap_max`; `1 ≤ nfill ≤ max(cap / 2, 1)`; the sentinel is 0;
//! no block twice. `cap` moves between the class's base capacity and `cap_max` (see
//! `tcache`: grown on repeated overflow, shrunk by GC).
//!
//! Sync: owned by one thread (its `Tcache`); never shared.

#[repr(C)]
pub struct CacheBin {
    /// The top entry (most recent block); equals the end position when empty.
    head: *mut usize,
    /// `div_magic` of a small class (0 for large bins).
    pub magic: u64,
    /// Usable size of the class (small classes) or of the block (large page counts); kept
    /// here so the fast paths read it from the line they already touch instead of a table.
    pub size: u32,
    /// Low 16 bits of the low-water position.
    low_bits: u16,
    /// Low 16 bits of the position of a full stack (`end - cap`).
    full_bits: u16,
    /// Low 16 bits of the end position (empty stack).
    end_bits: u16,
    /// Blocks taken per refill (adapted by GC).
    pub nfill: u16,
    /// Slots reserved for this bin: the most `cap` may grow to.
    pub cap_max: u16,
    /// Whether the stack ever overflowed (an overflow after a refill that followed one grows
    /// `cap`; see `tcache::gc`).
    pub overflowed: bool,
    /// Whether the stack was refilled since its last overflow that did not grow it (growth
    /// needs the thread to
    /// allocate from the class too: a thread that only frees must not hoard blocks).
    pub refilled: bool,
}

// The fast paths index the bins with a shift.
const _: () = assert!(core::mem::size_of::<CacheBin>() == 32);

/// Slots a bin of capacity `cap_max` occupies in its cache's slot array (the sentinel too).
pub const fn slots_for(cap_max: u16) -> usize {
    cap_max as usize + 1
}

#[inline(always)]
fn low16(p: *const usize) -> u16 {
    p as usize as u16
}

impl CacheBin {
    /// An empty bin whose stack occupies `slots[0..slots_for(cap_max)]`.
    ///
    /// # Safety
    /// `slots` is valid for that many writes, owned by the bin for its whole life, 8-aligned.
    pub unsafe fn new(slots: *mut usize, cap: u16, cap_max: u16, nfill: u16, size: u32, magic: u64) -> CacheBin {
        debug_assert!(cap <= cap_max && slots_for(cap_max) * 8 < 1 << 16);
        let end = slots.add(cap_max as usize);
        // The sentinel. A cache's slots are fresh zeroed memory or a pooled cache's (whose
        // sentinels pushes never overwrite): written only if not already 0, since a read of
        // an untouched page maps the shared zero page where a write would commit one page per
        // bin (97 bins over 324 KiB of slots): peak RSS of thread churn 2.5 MiB against 2.9
        // with the write, of pairs 2.1 MiB against 2.3.
        if *end != 0 {
            *end = 0;
        }
        CacheBin {
            head: end,
            magic,
            size,
            low_bits: low16(end),
            full_bits: low16(end.sub(cap as usize)),
            end_bits: low16(end),
            nfill,
            cap_max,
            overflowed: false,
            refilled: false,
        }
    }

    /// Entries between a position with low bits `bits` and the end.
    #[inline(always)]
    fn count_to_end(&self, bits: u16) -> u16 {
        self.end_bits.wrapping_sub(bits) / 8
    }

    /// Blocks cached.
    #[inline(always)]
    pub fn ncached(&self) -> u16 {
        self.count_to_end(low16(self.head))
    }

    /// Fewest blocks cached since the last GC visit.
    #[inline]
    pub fn low_water(&self) -> u16 {
        self.count_to_end(self.low_bits)
    }

    /// Capacity now.
    #[inline]
    pub fn cap(&self) -> u16 {
        self.count_to_end(self.full_bits)
    }

    /// One past the bottom entry (the sentinel slot).
    #[inline]
    fn end(&self) -> *mut usize {
        // SAFETY: head + ncached is the end position, inside the bin's slots.
        unsafe { self.head.add(self.ncached() as usize) }
    }

    /// Sets the capacity (≥ ncached, ≤ cap_max).
    pub fn set_cap(&mut self, cap: u16) {
        debug_assert!(cap >= self.ncached() && cap <= self.cap_max);
        // SAFETY: end - cap stays inside the bin's slots (cap ≤ cap_max).
        self.full_bits = low16(unsafe { self.end().sub(cap as usize) });
    }

    /// Starts a new GC period: the low-water mark is the current count.
    #[inline]
    pub fn reset_low_water(&mut self) {
        self.low_bits = low16(self.head);
    }

    /// Pops an entry if that keeps the stack above its low-water mark.
    #[inline(always)]
    pub fn pop_fast(&mut self) -> Option<usize> {
        let head = self.head;
        if low16(head) == self.low_bits {
            return None;
        }
        // SAFETY: head is above the low-water position, so it is an entry and head + 1 is at
        // most the end position.
        unsafe {
            self.head = head.add(1);
            Some(*head)
        }
    }

    /// Pops an entry, lowering the low-water mark; None when empty.
    #[inline]
    pub fn pop_lowering(&mut self) -> Option<usize> {
        let head = self.head;
        if low16(head) == self.end_bits {
            return None;
        }
        // SAFETY: not empty: head is an entry.
        unsafe {
            self.head = head.add(1);
            if self.ncached() < self.low_water() {
                self.low_bits = low16(self.head);
            }
            Some(*head)
        }
    }

    /// Pushes an entry if there is room.
    #[inline(always)]
    pub fn push(&mut self, p: usize) -> bool {
        let head = self.head;
        if low16(head) == self.full_bits {
            return false;
        }
        // SAFETY: below capacity: head - 1 is a slot of this bin.
        unsafe {
            let h = head.sub(1);
            *h = p;
            self.head = h;
        }
        true
    }

    /// Whether `p` is the most recently cached block (the immediate `free(p); free(p)`).
    /// When the stack is empty `head` is the sentinel, which holds 0.
    #[inline(always)]
    pub fn top_is(&self, p: *mut u8) -> bool {
        // SAFETY: head is an entry or the sentinel, both inside the bin's slots.
        unsafe { *self.head == p as usize }
    }

    /// The cached entries, newest first.
    #[inline]
    pub fn cached(&self) -> &[usize] {
        // SAFETY: head[0..ncached] are initialized entries owned by this bin.
        unsafe { core::slice::from_raw_parts(self.head, self.ncached() as usize) }
    }

    /// The `n` (≤ ncached) oldest entries, for the caller to give back before `remove_oldest`.
    pub fn oldest(&mut self, n: usize) -> &mut [usize] {
        let n = n.min(self.ncached() as usize);
        // SAFETY: end - n .. end are entries of this bin.
        unsafe { core::slice::from_raw_parts_mut(self.end().sub(n), n) }
    }

    /// Whether `p` is cached here (linear scan; only on the suspected-double-free path).
    pub fn contains(&self, p: *mut u8) -> bool {
        self.cached().contains(&(p as usize))
    }

    /// Removes entry `p` wherever it sits in the stack (the newer entries move down one
    /// slot); false if it is not cached here. A linear scan: slow paths only.
    pub fn remove(&mut self, p: usize) -> bool {
        let Some(k) = self.cached().iter().position(|&x| x == p) else {
            return false;
        };
        let low_water = self.low_water();
        // SAFETY: head[0..=k] are entries of this bin; `copy` handles the overlap.
        unsafe {
            core::ptr::copy(self.head, self.head.add(1), k);
            self.head = self.head.add(1);
        }
        if self.ncached() < low_water {
            self.low_bits = low16(self.head);
        }
        true
    }

    /// Drops the `n` oldest blocks from the stack (after the caller returned them elsewhere).
    pub fn remove_oldest(&mut self, n: usize) {
        let ncached = self.ncached() as usize;
        let n = n.min(ncached);
        let low_water = (self.low_water() as usize).saturating_sub(n).min(ncached - n);
        let end = self.end();
        // SAFETY: both ranges lie in head[0..ncached]; `copy` handles the overlap.
        unsafe {
            core::ptr::copy(self.head, self.head.add(n), ncached - n);
            self.head = self.head.add(n);
            self.low_bits = low16(end.sub(low_water));
        }
    }

    /// Puts the `got` block addresses that `write(slots, max)` stores at `slots[0..got]`
    /// (lowest address first) on the empty stack, lowest on top so it is popped first; `max`
    /// is `min(nfill, cap)`. The low-water mark goes to 0. Returns `got`.
    pub fn refill(&mut self, write: impl FnOnce(*mut usize, usize) -> usize) -> usize {
        debug_assert!(self.ncached() == 0);
        let max = self.nfill.min(self.cap()) as usize;
        let end = self.end();
        // SAFETY: the stack is empty, so end - max .. end (max ≤ cap) are free slots.
        unsafe {
            let at = end.sub(max);
            let got = write(at, max).min(max);
            if got < max {
                core::ptr::copy(at, end.sub(got), got);
            }
            self.head = end.sub(got);
            self.low_bits = self.end_bits;
            got
        }
    }

    /// Checks the invariants (tests).
    pub fn validate(&self) {
        let (n, lw, cap) = (self.ncached(), self.low_water(), self.cap());
        assert!(lw <= n && n <= cap && cap <= self.cap_max, "{lw} {n} {cap} {}", self.cap_max);
        assert!(self.nfill >= 1 && self.nfill <= (cap / 2).max(1));
        // SAFETY: the end position is the sentinel slot.
        assert_eq!(unsafe { *self.end() }, 0, "sentinel overwritten");
        let c = self.cached();
        for (i, &p) in c.iter().enumerate() {
            assert!(p != 0);
            assert!(!c[i + 1..].contains(&p), "block cached twice");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_marks_and_refill() {
        let mut slots = [7usize; slots_for(8)];
        // SAFETY: `slots` outlives the bin and has room for cap_max 8 plus the sentinel.
        let mut b = unsafe { CacheBin::new(slots.as_mut_ptr(), 4, 8, 2, 16, 0) };
        b.validate();
        assert!(!b.top_is(core::ptr::null_mut::<u8>().wrapping_add(7)));
        assert_eq!(b.pop_fast(), None);
        assert_eq!(b.refill(|at, max| {
            assert_eq!(max, 2);
            // SAFETY: the bin gave us `max` slots at `at`.
            unsafe { *at = 0x100; *at.add(1) = 0x200 };
            2
        }), 2);
        b.validate();
        assert_eq!((b.ncached(), b.low_water()), (2, 0));
        assert_eq!(b.pop_fast(), Some(0x100), "lowest address first");
        assert!(b.push(0x300) && b.push(0x400) && b.push(0x500));
        assert!(!b.push(0x600), "capacity 4");
        assert!(b.top_is(0x500 as *mut u8));
        assert_eq!(b.oldest(2), &[0x300, 0x200]);
        b.remove_oldest(2);
        assert_eq!(b.cached(), &[0x500, 0x400]);
        b.reset_low_water();
        assert_eq!(b.pop_fast(), None, "at the low-water mark");
        assert_eq!(b.pop_lowering(), Some(0x500));
        assert_eq!(b.low_water(), 1);
        b.set_cap(8);
        for i in 0..7 {
            assert!(b.push(0x1000 + i * 16));
        }
        assert!(!b.push(1));
        b.validate();
        assert_eq!(b.pop_fast(), Some(0x1000 + 6 * 16));
        b.set_cap(7);
        assert_eq!(b.cap(), 7);
        b.validate();
        b.remove_oldest(7);
        assert_eq!(b.ncached(), 0);
        assert_eq!(b.refill(|at, _| {
            // SAFETY: as above.
            unsafe { *at = 0x900 };
            1
        }), 1, "a short refill");
        assert_eq!(b.cached(), &[0x900]);
        b.validate();
    }
}
