//! Giving cached blocks back to their arenas: a full stack's older half, GC give-backs,
//! thread exit and `thread.tcache.flush`.
//!
//! Contract: blocks go home grouped by arena, one bin lock (or page-allocator lock) per
//! group, which is also how frees of blocks from other threads' arenas travel back (batched,
//! never one lock per block). Every small block must still carry the cookie (`take_cookie`),
//! which its slab's free mark replaces (see `small`).
//!
//! Sync: the caller is the cache's thread; the arenas' bin and page-allocator locks are
//! taken one group at a time.

use super::large::{cached_twice, flush_large};
use crate::rtree;
use super::{Tcache, COOKIE, NCB};
use crate::arena::{self, Arena};
use crate::extent::Extent;
use crate::size_class::NBINS;

impl Tcache {
    /// Gives the `n` oldest blocks of cache bin `i` back to their arenas.
    pub(super) fn flush(&mut self, i: usize, n: usize) {
        let n = n.min(self.bins[i].ncached() as usize);
        if n == 0 {
            return;
        }
        // SAFETY: slots[0..n] are cached entries of this bin; we own them until returned.
        let blocks = self.bins[i].oldest(n);
        if i < NBINS {
            flush_small(i, blocks);
        } else {
            let bytes = flush_large(blocks);
            self.large_bytes -= bytes;
        }
        self.bins[i].remove_oldest(n);
    }

    /// Empties every bin (thread exit, `malloc_trim`, `thread.tcache.flush`).
    pub fn flush_all(&mut self) {
        for i in 0..NCB {
            self.flush(i, self.bins[i].ncached() as usize);
            self.bins[i].reset_low_water();
        }
    }
}

/// Calls `each(guard, arena, extent, entry)` for every cache entry of `entries` (a small
/// bin's block addresses, a large bin's descriptors: `extent_of` resolves either), arena by
/// arena, with `lock(arena)` held around each arena's group and `done(guard, arena)` called
/// at its end: one lock per arena, however the entries mix (frees of other threads' blocks
/// travel home this way). Reorders `entries`.
pub(super) fn by_arena<G>(
    entries: &mut [usize],
    extent_of: impl Fn(usize) -> *mut Extent,
    mut lock: impl FnMut(&'static Arena) -> G,
    mut each: impl FnMut(&mut G, &'static Arena, *mut Extent, usize),
    mut done: impl FnMut(&mut G, &'static Arena),
) {
    let mut todo = entries.len();
    while todo > 0 {
        // SAFETY: `extent_of` returns live descriptors (never freed).
        let a = arena::get(unsafe { (*extent_of(entries[0])).arena });
        let mut g = lock(a);
        let mut keep = 0;
        for j in 0..todo {
            let e = extent_of(entries[j]);
            // SAFETY: as above.
            if unsafe { (*e).arena } == a.id {
                each(&mut g, a, e, entries[j]);
            } else {
                entries[keep] = entries[j];
                keep += 1;
            }
        }
        done(&mut g, a);
        todo = keep;
    }
}

/// Returns small blocks of class `bin` to their slabs, one bin lock per arena.
fn flush_small(bin: usize, blocks: &mut [usize]) {
    by_arena(
        blocks,
        registered,
        |a| a.bins[bin].lock.lock(),
        |g, a, e, p| {
            // SAFETY: `e` is the active slab of class `bin` holding `p` (checked: a second
            // copy of a block freed twice may find its pages in another class's slab by now);
            // we hold its bin's lock.
            unsafe {
                if !(*e).is_slab || (*e).bin as usize != bin {
                    cached_twice(p as *mut u8);
                }
                take_cookie(p);
                g.free_marked(&a.pac, e, p, "free")
            }
        },
        |g, a| g.settle(&a.pac),
    );
}

/// The descriptor of cached block `p`. Cached blocks are live, so the rtree maps them, unless
/// the cache held `p` twice (a double free) and the first copy just went back and merged
/// into a free extent.
#[inline]
fn registered(p: usize) -> *mut Extent {
    let e = rtree::lookup(p);
    if e.is_null() {
        cached_twice(p as *mut u8);
    }
    e
}

/// A block leaving the cache for its slab (under the bin lock, just before the slab takes
/// it back): it must still carry the cookie (else a copy of it, freed twice, already left
/// the cache to a malloc or to its slab, or it was written after free); the slab's free mark
/// replaces the cookie in the same touch of the block (`bin::free_marked` leaves the word
/// alone). A second copy still cached (the block freed twice, one copy flushed) is thus
/// caught when it leaves, instead of being handed out while its slab counts the block free.
/// Against a pass over the batch before taking the lock, with the slab writing the mark:
/// batches of 32 KiB 19.6 → 17.9 ns (medians of 7; their blocks' first lines share a few
/// cache sets, so every extra touch of a block misses); with that pass writing the mark
/// itself, 30.6 (the lock's atomic then waits for hundreds of stores to cold lines).
///
/// # Safety
/// `p` is a block of ≥ 8 bytes this cache owns.
#[inline(always)]
unsafe fn take_cookie(p: usize) {
    if *(p as *const usize) != COOKIE {
        lost_cookie(p as *mut u8);
    }
    *(p as *mut usize) = crate::slab::FREE_MARK;
}

/// A freed-in block lost its cookie before leaving the cache: it was freed twice (the other
/// copy already went out) or written after free.
#[cold]
#[inline(never)]
pub(super) fn lost_cookie(p: *mut u8) -> ! {
    crate::report::misuse("malloc", crate::report::Misuse::FreedBlockChanged, p as usize)
}
