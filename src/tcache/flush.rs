//! Giving cached blocks back to their arenas: a full stack's older half, GC give-backs,
//! thread exit and `thread.tcache.flush`.
//!
//! Contract: blocks go home grouped by arena, one bin lock (or page-allocator lock) per
//! group, which is also how frees of blocks from other threads' arenas travel back (batched,
//! never one lock per block). Every small block must still carry the cookie (`take_cookie`),
//! which its slab's free mark replaces (see `small`). Misuse found under a lock is reported
//! after the lock is released (`by_arena`).
//!
//! Sync: the caller is the cache's thread; the arenas' bin and page-allocator locks are
//! taken one group at a time.

use crate::foundation::report::{Found, Misuse};
use crate::metadata::rtree;
use super::{Tcache, COOKIE, NCB};
use crate::objects::arena::{self, Arena};
use crate::metadata::extent::{Extent, State};
use crate::metadata::size_class::NBINS;

impl Tcache {
    /// Gives the `n` oldest blocks of cache bin `i` back to their arenas. On misuse the
    /// `n` entries leave the stack all the same (those not yet given back are abandoned) and
    /// the report follows: a SIGABRT handler that allocates finds a consistent cache.
    pub(super) fn flush(&mut self, i: usize, n: usize) {
        let n = n.min(self.bins[i].ncached() as usize);
        if n == 0 {
            return;
        }
        // SAFETY: slots[0..n] are cached entries of this bin; we own them until returned.
        let blocks = self.bins[i].oldest(n);
        let found = if i < NBINS {
            flush_small(i, blocks).err()
        } else {
            let (bytes, found) = match flush_large(blocks) {
                Ok(bytes) => (bytes, None),
                Err(f) => (n * self.bins[i].size as usize, Some(f)),
            };
            self.large_bytes -= bytes;
            found
        };
        self.bins[i].remove_oldest(n);
        if let Some(f) = found {
            f.report();
        }
    }

    /// Empties every bin and sparse buffer (thread exit, `malloc_trim`, `thread.tcache.flush`).
    pub fn flush_all(&mut self) {
        self.flush_sparse_all();
        for i in 0..NCB {
            self.flush(i, self.bins[i].ncached() as usize);
            self.bins[i].reset_low_water();
        }
    }
}

/// A block the cache held twice (the other copy already left): `func` is malloc's, as for
/// the other cache-exit checks.
pub(super) fn held_twice(p: usize) -> Found {
    Found { func: "malloc", kind: Misuse::DoubleFree, p }
}

/// Calls `each(guard, arena, extent, tag, entry)` for every cache entry of `entries` (a
/// small bin's block addresses, a large bin's descriptors), arena by arena, with
/// `lock(arena)` held around each arena's group and `done(guard, arena)` called at its end (a
/// misuse it returns counts as one `each` found): one lock per arena, however the entries
/// mix (frees of other threads' blocks travel home this way). `resolve` gives an entry's
/// page-map word (a small block's, tagged with its slab's class) or its descriptor (a large
/// block's); its descriptor bits are the extent, none for a small block the page map no
/// longer maps (a block cached twice whose first copy went back and merged into a free
/// extent); `each` gets the word's tag bits. Reorders `entries`.
///
/// A misuse (`each` or `done` returning it, or an unmapped block) stops the flush: `done`
/// runs, the lock is released, and the misuse is returned for the caller to report once its
/// cache is consistent again (`report::Found`). The entries handled before it are back in
/// their arenas, the rest untouched.
pub(super) fn by_arena<G>(
    entries: &mut [usize],
    resolve: impl Fn(usize) -> usize,
    mut lock: impl FnMut(&'static Arena) -> G,
    mut each: impl FnMut(&mut G, &'static Arena, *mut Extent, usize, usize) -> Result<(), Found>,
    mut done: impl FnMut(&mut G, &'static Arena) -> Option<Found>,
) -> Result<(), Found> {
    let mut todo = entries.len();
    while todo > 0 {
        let first = rtree::entry_extent(resolve(entries[0]));
        if first.is_null() {
            return Err(held_twice(entries[0]));
        }
        // SAFETY: `resolve` gives live descriptors (never freed) or none.
        let a = arena::get(unsafe { (*first).arena });
        let mut g = lock(a);
        let mut keep = 0;
        let mut found = None;
        for j in 0..todo {
            let word = resolve(entries[j]);
            let e = rtree::entry_extent(word);
            if e.is_null() {
                found = Some(held_twice(entries[j]));
                break;
            }
            // SAFETY: as above.
            if unsafe { (*e).arena } == a.id {
                if let Err(f) = each(&mut g, a, e, word ^ e as usize, entries[j]) {
                    found = Some(f);
                    break;
                }
            } else {
                entries[keep] = entries[j];
                keep += 1;
            }
        }
        let found_at_end = done(&mut g, a);
        drop(g);
        a.tick();
        if let Some(f) = found.or(found_at_end) {
            return Err(f);
        }
        todo = keep;
    }
    Ok(())
}

/// Returns small blocks of class `bin` to their slabs, one bin lock per arena; stops at a
/// misuse (`by_arena`).
pub(super) fn flush_small(bin: usize, blocks: &mut [usize]) -> Result<(), Found> {
    by_arena(
        blocks,
        rtree::lookup_entry,
        |a| a.bins[bin].lock.lock(),
        |g, a, e, tag, p| {
            // A second copy of a block freed twice may find its pages in another class's
            // slab by now, or in no slab: the page-map entry (one atomic load; written under
            // this bin's lock for this class's slabs) must be a page of a slab of this class
            // (`e`, the entry's descriptor, is of this arena: `by_arena` checked).
            if !rtree::is_slab(tag) || rtree::entry_bin(tag) != bin {
                return Err(held_twice(p));
            }
            // SAFETY: `p` lies in a live slab of class `bin` (the entry says so, and no slab
            // of this class is made or released while we hold its bin's lock), so its first
            // word is mapped memory of a region-sized slot or an interior address, which
            // `free_marked` rejects: written only after the cookie check passed, and then
            // followed by a report unless `p` is a region start the slab counts live. We hold
            // the bin lock; `e` is the entry's slab.
            unsafe {
                take_cookie(p)?;
                g.free_marked(&a.pac, e, p).map_err(|kind| Found { func: "free", kind, p })
            }
        },
        |g, a| {
            g.settle(&a.pac);
            g.take_lost()
        },
    )
}

/// A block leaving the cache for its slab (under the bin lock, just before the slab takes
/// it back): it must still carry the cookie (else a copy of it, freed twice, already left
/// the cache to a malloc or to its slab, or it was written after free); the slab's free mark
/// replaces the cookie in the same touch of the block (`bin::free_marked` leaves the word
/// alone). A second copy still cached (the block freed twice, one copy flushed) is thus
/// caught when it leaves, instead of being handed out while its slab counts the block free.
/// Batches of 32 KiB take 17.9 ns, against 19.6 with a pass over the batch before taking
/// the lock and the slab writing the mark (medians of 7; their blocks' first lines share a
/// few cache sets, so every extra touch of a block misses), and 30.6 with that pass writing
/// the mark itself (the lock's atomic then waits for hundreds of stores to cold lines).
///
/// `Err` (the word unchanged) when the cookie is missing.
///
/// # Safety
/// `p` is the address of a mapped, writable word (a block this cache holds: in a live slab,
/// see `flush_small`).
#[inline(always)]
unsafe fn take_cookie(p: usize) -> Result<(), Found> {
    if *(p as *const usize) != COOKIE {
        return Err(cookie_gone(p));
    }
    *(p as *mut usize) = crate::objects::slab::FREE_MARK;
    Ok(())
}

/// A freed-in block lost its cookie before leaving the cache: it was freed twice (the other
/// copy already went out) or written after free.
fn cookie_gone(p: usize) -> Found {
    Found { func: "malloc", kind: Misuse::FreedBlockChanged, p }
}

/// Reports `cookie_gone` (a malloc's pop, which holds no lock).
#[cold]
#[inline(never)]
pub(super) fn lost_cookie(p: *mut u8) -> ! {
    cookie_gone(p as usize).report()
}

/// Returns large blocks (their descriptors, as the large bins hold them) to their arenas'
/// page allocators, one lock per arena; returns bytes, or the misuse that stopped it
/// (`by_arena`).
pub(super) fn flush_large(descs: &mut [usize]) -> Result<usize, Found> {
    let mut bytes = 0;
    // The guard carries the run joined so far (`Pac::join`): blocks refilled together leave
    // together, in address order one way or the other, and go back as one extent.
    by_arena(
        descs,
        |d| d,
        |a| (a.pac.lock(), core::ptr::null_mut::<Extent>()),
        |(g, run), _, e, _, _| {
            // SAFETY: large bins hold descriptors of extents marked Cached (never freed); we
            // hold their arena's Pac lock; `run` is an active extent of it we own.
            unsafe {
                // Not `uncache`: a report waits until `by_arena` released the lock.
                try_uncache(&*e)?;
                bytes += (*e).size;
                if !run.is_null() {
                    let joined = g.join(*run, e);
                    if !joined.is_null() {
                        *run = joined;
                        return Ok(());
                    }
                    let ok = g.dalloc(*run);
                    debug_assert!(ok);
                }
                *run = e;
                Ok(())
            }
        },
        |(g, run), _| {
            if !run.is_null() {
                // SAFETY: as above.
                let ok = unsafe { g.dalloc(*run) };
                debug_assert!(ok);
            }
            None
        },
    )?;
    Ok(bytes)
}

/// A cached large block leaving the cache (to a malloc or back to its page allocator): its
/// descriptor must still say `Cached`, and says `Active` again. Only two threads freeing the
/// block at the same moment can have cached it twice.
#[inline(always)]
pub(super) fn uncache(e: &Extent) {
    if e.state() != State::Cached {
        cached_twice(e.addr);
    }
    e.set_state(State::Active);
}

/// `uncache` for a caller that holds a lock: the misuse is returned, to be reported once the
/// lock is released (`flush::by_arena`).
#[inline(always)]
fn try_uncache(e: &Extent) -> Result<(), Found> {
    if e.state() != State::Cached {
        return Err(held_twice(e.addr));
    }
    e.set_state(State::Active);
    Ok(())
}

/// A block leaving the cache was cached twice (freed twice; the other copy already left).
#[cold]
#[inline(never)]
fn cached_twice(p: usize) -> ! {
    held_twice(p).report()
}
