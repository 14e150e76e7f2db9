//! The small classes' paths through a thread cache: malloc's pop and its slow half (the
//! refill), free's push and its full-stack case, and the cookie that proves a cached block
//! was not freed twice.
//!
//! Contract:
//! - Refill: a small miss takes `nfill` blocks from the arena bin under one lock (fullest
//!   slabs first; `gc` adapts `nfill`). A full stack grows (`gc`) or gives back its older
//!   half (`flush`).
//! - Double free, without reading the block or the slab's bitmap on the free path (in a large
//!   working set the block is a cache miss per free, and a bitmap test would be 8 of free's
//!   37 instructions): a free checks that `p` is a region start and not the top of the
//!   class's stack (the immediate `free(p); free(p)`), then writes `COOKIE` into the block's
//!   first word and pushes it; a refill has the slab write it into every block it takes (in
//!   the same touch as the slab checks its free mark: one pass over the blocks, not two;
//!   batches of 32 KiB take 20.6 ns with one pass against 31.3 with two, medians of 7, and
//!   17.9 with the flush's counterpart, `flush::take_cookie`). A block leaving the cache, to
//!   a malloc or in a flush back to its arena, must carry the cookie: a block freed twice is
//!   cached twice, and when the first copy leaves, the cookie goes (a malloc clears it, a
//!   flush writes the slab's free mark over it), so the second copy is reported (`malloc():
//!   double free or write after free`) before it is ever handed out twice, also when both
//!   copies are in one flush (`flush::take_cookie`). A block freed again after it went back
//!   to its slab is cached like any other, with the cookie written over the slab's free
//!   mark: the slab finds the mark gone before it hands the block out again or releases its
//!   pages (`slab`; `ctests/misuse/double_free_after_flush.c`, `double_free_then_slab_
//!   empties.c`). With a bitmap test on the free path instead, pairs of 16 B take 82
//!   instructions and 3.68 ns against 76 and 3.36, batches of 16 B 4.23 ns against 3.68,
//!   larson 18.2 ns per replacement against 17.1 (A/B medians of 7-9,
//!   `scripts/ab-fastest.sh`). Slow paths (realloc, frees) also scan the stack when they see
//!   a cookie. One constant for every block (not one per address) and no mark in the stack
//!   entries keep the check to one compare with an immediate: 110 instructions per pair of
//!   16 B, against 121 otherwise (callgrind). On a large working set what the cookie costs
//!   is the free's store into a cold block (x86 commits stores in order, so the next ones
//!   wait): the drifting cache takes 135.6 ns per replacement, 110.8 without that store and
//!   135.2 with only it (on a slower host than the other figures here).
//! - Counting: every block handed out adds its size to `allocated` (`thread.allocated`, and
//!   the GC clock), every free to `deallocated`.
//!
//! Sync: as for the `Tcache`: its thread only.

use super::flush::{flush_small, lost_cookie};
use super::{Tcache, NCB, SPARSE_BUF};
use crate::tcache::cache_bin::CacheBin;
use crate::metadata::size_class::{bin_size, NBINS};

/// Marks a cached block: the first word of every block in a cache holds it (see the module
/// header). A constant that fits a sign-extended 32-bit immediate, so writing and checking it
/// are one instruction each.
pub const COOKIE: usize = 0x6f78_6d61;

impl Tcache {
    /// Slow half of a small malloc: pop below the low-water mark, else refill. Null when the
    /// OS refuses memory.
    #[inline(never)]
    pub fn alloc_small_slow(&mut self, bin: usize) -> *mut u8 {
        // SAFETY: bin < NBINS (callers pass a class index).
        let cb = unsafe { self.bins.get_unchecked_mut(bin) };
        let entry = match cb.pop_lowering() {
            Some(x) => x,
            None => {
                self.fill(bin);
                match self.bins[bin].pop_lowering() {
                    Some(x) => x,
                    None => return core::ptr::null_mut(),
                }
            }
        };
        self.took(entry, bin_size(bin))
    }

    /// Cache bin at byte offset `off` of `bins` (a bin index times `BIN_STRIDE`, from
    /// `size_class::size2bin_scaled` or `MEDIUM_BIN`) for a fast pop: addressed through one
    /// register (`util::one_base`), so that the pop's load and store of `head` share one
    /// address form.
    #[inline(always)]
    pub fn bin_at(&mut self, off: usize) -> &mut CacheBin {
        debug_assert!(off.is_multiple_of(size_of::<CacheBin>()) && off / size_of::<CacheBin>() < NCB);
        // SAFETY: `off` is a bin index times the bin size (asserted equal to BIN_STRIDE), so
        // the pointer is that bin; `one_base` returns the same pointer.
        unsafe { &mut *crate::foundation::util::one_base(self.bins.as_mut_ptr().byte_add(off)) }
    }

    /// A block leaving the cache with `size` usable bytes: checks and clears its cookie,
    /// counts, returns the block.
    #[inline(always)]
    pub fn took(&mut self, entry: usize, size: usize) -> *mut u8 {
        let p = entry as *mut u8;
        // SAFETY: `p` is a block of ≥ 8 bytes that this cache owned until now.
        unsafe {
            if *(p as *const usize) != COOKIE {
                lost_cookie(p);
            }
            *(p as *mut usize) = 0;
        }
        self.counted(p, size)
    }

    /// Counts `size` bytes handed out from the cache (a GC visit when they are due); `p`.
    #[inline(always)]
    pub(super) fn counted(&mut self, p: *mut u8, size: usize) -> *mut u8 {
        self.allocated += size as u64;
        if self.allocated >= self.gc_at {
            return self.gc_event_then(p);
        }
        p
    }

    /// Bytes allocated by this thread so far (thread.allocated).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Runs a GC visit, then returns `p` (a tail call from the malloc fast path, so that path
    /// needs no stack frame).
    #[cold]
    #[inline(never)]
    fn gc_event_then(&mut self, p: *mut u8) -> *mut u8 {
        self.gc_event();
        // Opaque, so LLVM does not turn the caller's tail call back into call + saved register.
        core::hint::black_box(p)
    }

    #[inline(never)]
    fn fill(&mut self, bin: usize) {
        if self.outgrown() {
            self.rescale();
        }
        // Blocks of the class waiting for sparse slabs go back first, so the refill's choice
        // of the fullest slabs counts them free.
        let n = self.sparse_n[bin] as usize;
        if n != 0 {
            self.flush_sparse(bin, n);
        }
        let a = self.arena;
        let cb = &mut self.bins[bin];
        cb.refill(|at, n| {
            // SAFETY: the bin gives us room for `n` entries at `at`.
            // The slab writes the cookie into each block as it checks its free mark.
            a.bins[bin].locked(|g| unsafe { g.alloc_batch(&a.pac, at as *mut *mut u8, n, COOKIE) })
        });
        cb.refilled = true;
        cb.nfill = (cb.nfill * 2).min((cb.cap() / 2).max(1));
        a.tick();
    }

    /// Caches small block `p` of class `bin` (checked live by the caller), giving back the
    /// older half of the stack first if it is full. False (nothing done) if `p` is the block
    /// cached last: an immediate double free, for the caller to report.
    #[inline(always)]
    pub fn free_small(&mut self, bin: usize, p: *mut u8) -> bool {
        self.free_small_at(bin * size_of::<CacheBin>(), p)
    }

    /// `free`'s fast path for small block `p` at byte offset `off` of its slab, whose class's
    /// bin is at byte offset `bin_off` (`rtree::cacheable_bin_scaled`): caches `p` if it is a
    /// region start (`slab::region_index_magic` with the class constant from the bin) and not
    /// the block cached last; false (nothing done) otherwise, for the caller's slow path to
    /// sort out. Whether `p` is free in its slab is not checked here (see the module header:
    /// the slab's free mark catches that). The bin is addressed through one register for all
    /// of it (magic, head, push).
    #[inline(always)]
    pub fn free_small_checked(&mut self, bin_off: usize, p: *mut u8, off: usize) -> bool {
        debug_assert!(bin_off.is_multiple_of(size_of::<CacheBin>()) && bin_off / size_of::<CacheBin>() < NBINS);
        // SAFETY: as in `free_small_at`.
        let cb = unsafe { &*crate::foundation::util::one_base(self.bins.as_mut_ptr().byte_add(bin_off)) };
        match crate::objects::slab::region_index_magic(off, cb.magic) {
            Some(_) => self.free_small_at(bin_off, p),
            None => false,
        }
    }

    /// `free_small` for the bin at byte offset `bin_off` (a class times the bin size).
    #[inline(always)]
    pub fn free_small_at(&mut self, bin_off: usize, p: *mut u8) -> bool {
        debug_assert!(bin_off.is_multiple_of(size_of::<CacheBin>()) && bin_off / size_of::<CacheBin>() < NBINS);
        // SAFETY: bin_off is a class times the bin size: that class's bin; `one_base` returns
        // the same pointer (see `bin_at`: the push's store of `head` must have the same
        // one-register address form as the pop's load of it in the next malloc).
        let cb = unsafe { &mut *crate::foundation::util::one_base(self.bins.as_mut_ptr().byte_add(bin_off)) };
        if cb.top_is(p) {
            return false;
        }
        let size = cb.size;
        if !cb.push(p as usize) {
            self.free_small_full(bin_off / size_of::<CacheBin>(), p);
            return true;
        }
        // SAFETY: `p` is a live block of ≥ 8 bytes the caller just gave up. Written after
        // the push, which then needs no second load of `head` (the compiler cannot tell `p`
        // from the bin).
        unsafe { *(p as *mut usize) = COOKIE };
        self.deallocated += size as u64;
        true
    }

    /// `free_small_at` whose stack was full: makes room (`push_full`), then caches `p`. A
    /// separate call, so that nothing of the fast path lives across it (no saved registers).
    #[cold]
    #[inline(never)]
    fn free_small_full(&mut self, bin: usize, p: *mut u8) {
        // SAFETY: as in `free_small_at`.
        unsafe { *(p as *mut usize) = COOKIE };
        self.deallocated += self.bins[bin].size as u64;
        self.push_full(bin, p as usize);
    }


    /// Whether `p` is in the small cache bin `i` or in class `i`'s sparse buffer
    /// (double-free check after a cookie hit).
    pub fn holds(&self, i: usize, p: *mut u8) -> bool {
        debug_assert!(i < NBINS);
        self.bins[i].contains(p) || self.sparse[i][..self.sparse_n[i] as usize].contains(&(p as usize))
    }

    /// `free` of small block `p` of class `bin` at byte offset `off` of its slab, a sparse
    /// one (`bin::is_sparse`): if `p` is a region start and not the block buffered last,
    /// writes the cookie into it and puts it in the class's sparse buffer; when the buffers
    /// hold `SPARSE_BUF` blocks together, they go back to the slabs under one bin lock per
    /// class and arena (`flush::flush_small`, which checks
    /// every cookie and the slab every region, so a block freed twice through this path is
    /// reported there, or by its slab later, exactly as for a cache flush). The buffer never
    /// serves a malloc, so the sparse slabs drain as they would with a free straight to the
    /// slab, one lock per `SPARSE_BUF` frees instead of one per free (a random-order
    /// teardown frees into sparse slabs almost only). False (nothing done) for an interior
    /// pointer or an immediate double free, for the caller's slow path to report.
    #[inline]
    pub fn free_sparse(&mut self, bin: usize, p: *mut u8, off: usize) -> bool {
        debug_assert!(bin < NBINS);
        // SAFETY: bin < NBINS (a class from a slab's page-map tag).
        let magic = unsafe { self.bins.get_unchecked(bin) }.magic;
        if crate::objects::slab::region_index_magic(off, magic).is_none() {
            return false;
        }
        let n = self.sparse_n[bin] as usize;
        if n > 0 && self.sparse[bin][n - 1] == p as usize {
            return false;
        }
        // SAFETY: `p` is a live block of ≥ 8 bytes the caller just gave up.
        unsafe { *(p as *mut usize) = COOKIE };
        self.sparse[bin][n] = p as usize;
        self.deallocated += bin_size(bin) as u64;
        self.sparse_n[bin] = (n + 1) as u8;
        self.sparse_pending |= 1 << bin;
        self.sparse_total += 1;
        if self.sparse_total as usize == SPARSE_BUF {
            // Full (all classes together: what a sleeping thread keeps back stays small).
            self.flush_sparse_all();
        }
        true
    }

    /// Gives the `n` blocks of class `bin`'s sparse buffer back to their slabs. On misuse
    /// the buffer is emptied all the same and the report follows (see `flush`).
    #[cold]
    #[inline(never)]
    fn flush_sparse(&mut self, bin: usize, n: usize) {
        self.sparse_n[bin] = 0;
        self.sparse_pending &= !(1 << bin);
        self.sparse_total -= n as u32;
        if let Err(f) = flush_small(bin, &mut self.sparse[bin][..n]) {
            f.report();
        }
    }

    /// Blocks in the sparse buffers, all classes together.
    pub fn sparse_held(&self) -> usize {
        self.sparse_n.iter().map(|&n| n as usize).sum()
    }

    /// Empties every sparse buffer (GC events, flushes): buffered blocks keep their slabs
    /// from draining only until then.
    #[cold]
    #[inline(never)]
    pub(super) fn flush_sparse_all(&mut self) {
        while self.sparse_pending != 0 {
            let bin = self.sparse_pending.trailing_zeros() as usize;
            self.flush_sparse(bin, self.sparse_n[bin] as usize);
        }
    }
}
