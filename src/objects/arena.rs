//! Arenas: self-contained heaps (the bins of every small class plus a page allocator), and
//! the table that creates them on demand and assigns threads to them.
//!
//! Contract: every extent belongs to exactly one arena (`Extent::arena`), and frees go back to
//! that arena whichever thread makes them (thread caches batch such remote frees and return
//! them one bin lock per batch). Arena 0 is a static; arenas 1.. are made on demand in `base`
//! memory, up to `narenas` (default: see `default_narenas`), never destroyed. A thread is
//! bound to an arena when its cache is created: the one with the fewest bound threads (ties:
//! lowest index, so arenas are created in order and the table has no holes).
//!
//! Sync: each bin has its lock, the page allocator has its lock (see `sync` for the order).
//! The table: slots are written once, under `CREATE` (rank 2), published with Release; readers
//! load with Acquire. Thread counts are relaxed atomics (a balancing hint only).

use crate::metadata::base::BASE;
use crate::objects::bin::Bin;
use crate::pages::pac::Pac;
use crate::metadata::size_class::NBINS;
use crate::foundation::sync::{Mutex, Rank};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Arena indices are stored in a byte of every extent.
pub const MAX_ARENAS: usize = 256;

pub struct Arena {
    /// Index in the table. Immutable.
    pub id: u8,
    pub bins: [Bin; NBINS],
    pub pac: Pac,
}

impl Arena {
    pub const fn new(id: u8) -> Self {
        let mut bins = [const { Bin::new(0) }; NBINS];
        let mut i = 0;
        while i < NBINS {
            bins[i] = Bin::new(i as u8);
            i += 1;
        }
        Arena { id, bins, pac: Pac::new(id) }
    }

    /// Initializes a zeroed arena in place (~40 KiB: not built on the stack).
    ///
    /// # Safety
    /// `this` points to zeroed memory nobody else sees yet.
    unsafe fn init_zeroed(this: *mut Arena, id: u8) {
        core::ptr::addr_of_mut!((*this).id).write(id);
        for i in 0..NBINS {
            core::ptr::addr_of_mut!((*this).bins[i]).write(Bin::new(i as u8));
        }
        Pac::init_zeroed(core::ptr::addr_of_mut!((*this).pac), id);
    }

    /// Decay after a slow path (refills, flushes, large allocations and frees), called once
    /// its locks are released: with background threads running, wakes this arena's thread if
    /// its deadline is earlier than the thread's sleep or dirty memory piled up; else runs
    /// the decay pass that is due here (madvise in the calling thread), and asks for enabled
    /// background threads to be started once the heap is big enough for them to matter
    /// (`BACKGROUND_START_PAGES` dirty, or `BACKGROUND_START_ACTIVE` in use: a program that
    /// allocates that much and then frees it all before it goes idle makes no malloc call
    /// after the frees, and the start only happens on malloc paths).
    #[inline]
    pub fn tick(&self) {
        use crate::pages::decay::purgers;
        use core::sync::atomic::Ordering::Relaxed;
        let d = self.pac.deadline();
        if d != u64::MAX || (purgers::running() == 0 && purgers::ENABLED.load(Relaxed) != 0) {
            self.tick_slow(d);
        }
    }

    #[cold]
    #[inline(never)]
    fn tick_slow(&self, deadline: u64) {
        use crate::pages::decay::purgers;
        use core::sync::atomic::Ordering::{Relaxed, SeqCst};
        let n = purgers::running();
        if n > 0 {
            let slot = purgers::slot_of(self.id as usize, n);
            let until = slot.sleep_until.load(SeqCst);
            if until != 0 && (deadline < until || (self.pac.added_pages() > WAKE_PAGES && until > crate::pages::decay::now_ns() + LONG_SLEEP_NS)) {
                purgers::wake(slot);
            }
            return;
        }
        if deadline != u64::MAX {
            let now = crate::pages::decay::now_ns();
            if now >= deadline {
                self.pac.purge(now, crate::pages::purge::Mode::Decay);
            }
        }
        if purgers::ENABLED.load(Relaxed) != 0 && purgers::START_WANTED.load(Relaxed) == 0 {
            let (dirty, active) = all().fold((0, 0), |(d, a), x| (d + x.pac.dirty_pages(), a + x.pac.active_pages()));
            if dirty >= BACKGROUND_START_PAGES || active >= BACKGROUND_START_ACTIVE {
                purgers::START_WANTED.store(1, Relaxed);
            }
        }
    }

    /// Checks every bin and the page allocator (tests, debugging).
    pub fn validate(&self) {
        for b in self.bins.iter() {
            b.lock.lock().validate();
        }
        self.pac.lock().validate();
    }

    /// Takes the arena's bin locks in index order (fork prepare; rank 3).
    fn prefork_bins(&self) {
        for b in self.bins.iter() {
            b.lock.raw_lock();
        }
    }

    fn postfork_parent_bins(&self) {
        for b in self.bins.iter().rev() {
            // SAFETY: taken in `prefork_bins` by this thread.
            unsafe { b.lock.force_unlock() };
        }
    }

    fn postfork_child_bins(&self) {
        for b in self.bins.iter() {
            // SAFETY: fork child, single thread, after `prefork_bins`.
            unsafe { b.lock.reset_after_fork() };
        }
    }
}

/// Dirty pages across arenas from which enabled background threads are started: 16 MiB.
pub const BACKGROUND_START_PAGES: usize = 4096;
/// Active pages across arenas from which they are started: 64 MiB. A program whose heap
/// stays below both (`true`, `git status`, `python3 -c pass`) never gets a thread.
pub const BACKGROUND_START_ACTIVE: usize = 16384;
/// Pages that may become dirty in an arena before a background thread that sleeps longer
/// than `LONG_SLEEP_NS` is woken ahead of its deadline: 16 MiB. A thread that looks again
/// within an epoch anyway is not woken: decay purges nothing freed this recently, and waking
/// it costs a system call here and a pass there (batches of 1000 blocks of 64 KiB, whose
/// every round frees 64 MiB, ran at 126 ns per malloc+free when every 16 MiB woke the
/// thread, against 45 with no thread; larson with 2 threads 58 against 102 Mops/s).
const WAKE_PAGES: usize = 4096;
/// See `WAKE_PAGES`: 1 s (an epoch of the default 10 s decay time is 50 ms).
const LONG_SLEEP_NS: u64 = 1_000_000_000;

static ARENA0: Arena = Arena::new(0);

/// The table. Sync: see the module header.
static TABLE: [AtomicPtr<Arena>; MAX_ARENAS] = {
    let mut t = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_ARENAS];
    t[0] = AtomicPtr::new(&ARENA0 as *const Arena as *mut Arena);
    t
};
/// Threads bound to each arena. Sync: relaxed atomics.
static NTHREADS: [AtomicU32; MAX_ARENAS] = [const { AtomicU32::new(0) }; MAX_ARENAS];
/// Serializes creation (and freezes the table around fork).
static CREATE: Mutex<()> = Mutex::ranked(Rank::Arenas, ());
/// How many arenas threads are spread over (set once by `init`, before threads exist; 1..=256).
static NARENAS: AtomicUsize = AtomicUsize::new(1);

/// jemalloc uses 4 arenas per CPU; we use 1 per CPU: measured on 2 cores (`make bench`,
/// README), more arenas than CPUs buy no throughput for thread caches that already absorb
/// almost every call, and each arena keeps its own partly used slabs.
pub fn default_narenas() -> usize {
    crate::foundation::sys::ncpus().clamp(1, MAX_ARENAS)
}

/// Sets the arena count (init only).
pub fn set_narenas(n: usize) {
    NARENAS.store(n.clamp(1, MAX_ARENAS), Ordering::Relaxed);
}

pub fn narenas() -> usize {
    NARENAS.load(Ordering::Relaxed)
}

/// The arena with index `i` (as stored in an extent, hence created).
#[inline(always)]
pub fn get(i: u8) -> &'static Arena {
    let p = TABLE[i as usize].load(Ordering::Acquire);
    debug_assert!(!p.is_null());
    // SAFETY: extents only name arenas that were created (published before any extent of
    // theirs existed); arenas are never destroyed.
    unsafe { &*p }
}

/// Arena `i` if it exists.
pub fn try_get(i: usize) -> Option<&'static Arena> {
    let p = TABLE.get(i)?.load(Ordering::Acquire);
    // SAFETY: as in `get`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Every arena created so far, in index order.
pub fn all() -> impl Iterator<Item = &'static Arena> {
    (0..MAX_ARENAS).map_while(try_get)
}

/// The arena for calls made without a thread cache (during cache set-up, after thread exit).
#[inline(always)]
pub fn fallback() -> &'static Arena {
    &ARENA0
}

/// Binds the calling thread to the least loaded of the first `narenas` arenas, creating it
/// if needed (arena 0 when creation fails). The choice counts itself in with a
/// compare-and-swap on the load it saw, and looks again if another thread changed that load
/// meanwhile: two threads starting together would otherwise both see the same least loaded
/// arena and share it while another stays empty. Two larson threads on one arena run at 2/3
/// speed (`narenas:1`: 64-65 against 91-96 Mops/s); without the compare-and-swap, larson
/// with 2 threads runs that slowly in 1 of 40 runs (3 of 5 in one `make bench`), with it in
/// none of 40.
pub fn bind() -> &'static Arena {
    let n = narenas();
    let best = loop {
        let mut best = 0;
        let mut best_load = u32::MAX;
        for (i, c) in NTHREADS.iter().enumerate().take(n) {
            let l = c.load(Ordering::Relaxed);
            if l < best_load {
                best = i;
                best_load = l;
            }
        }
        let won = NTHREADS[best].compare_exchange(best_load, best_load + 1, Ordering::Relaxed, Ordering::Relaxed);
        if won.is_ok() {
            break best;
        }
    };
    match try_get(best).or_else(|| create(best)) {
        Some(a) => a,
        None => {
            rebind_counts(best, 0);
            &ARENA0
        }
    }
}

/// Arena `i`, created on demand (`MALLOCX_ARENA(i)`, `arena.<i>.*`); None past the table
/// or when metadata memory runs out.
pub fn get_or_create(i: usize) -> Option<&'static Arena> {
    if i >= MAX_ARENAS {
        return None;
    }
    try_get(i).or_else(|| create(i))
}

/// Threads bound to arena `i` (stats).
pub fn nthreads(i: usize) -> u32 {
    NTHREADS.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Moves the calling thread's binding from `from` to `to` (`thread.arena` writes).
pub fn rebind(from: &Arena, to: &Arena) {
    rebind_counts(from.id as usize, to.id as usize);
}

fn rebind_counts(from: usize, to: usize) {
    NTHREADS[from].fetch_sub(1, Ordering::Relaxed);
    NTHREADS[to].fetch_add(1, Ordering::Relaxed);
}

/// Creates the lowest-numbered arena not yet created at or above `narenas` (`arenas.create`).
pub fn create_manual() -> Option<&'static Arena> {
    let i = (narenas()..MAX_ARENAS).find(|&i| try_get(i).is_none())?;
    create(i)
}

/// Undoes one `bind` (thread exit).
pub fn unbind(a: &Arena) {
    NTHREADS[a.id as usize].fetch_sub(1, Ordering::Relaxed);
}

/// Fork child: the only thread left counts once for its arena.
pub fn rebind_after_fork(a: &Arena) {
    NTHREADS[a.id as usize].store(1, Ordering::Relaxed);
}

/// Creates arena `i` (and any missing one below it, so the table stays dense).
fn create(i: usize) -> Option<&'static Arena> {
    let _g = CREATE.lock();
    for (j, slot) in TABLE.iter().enumerate().take(i + 1) {
        if slot.load(Ordering::Acquire).is_null() {
            let p = BASE.alloc(core::mem::size_of::<Arena>(), 64) as *mut Arena;
            if p.is_null() {
                return None;
            }
            // SAFETY: `p` is fresh zeroed metadata memory of the right size, unseen by others.
            unsafe { Arena::init_zeroed(p, j as u8) };
            slot.store(p, Ordering::Release);
        }
    }
    try_get(i)
}

/// Fork prepare: freeze the table, then take the locks in rank order: every arena's bin
/// locks (rank 3), then every arena's page-allocator lock (rank 4). (Arena by arena, bins then
/// page allocator, would take a bin lock while another arena's rank-4 lock is held: the
/// debug builds' rank check would abort every fork.)
pub fn prefork() {
    CREATE.raw_lock();
    for a in all() {
        a.prefork_bins();
    }
    for a in all() {
        a.pac.prefork();
    }
}

pub fn postfork_parent() {
    let n = all().count();
    for i in (0..n).rev() {
        get(i as u8).pac.postfork_parent();
    }
    for i in (0..n).rev() {
        get(i as u8).postfork_parent_bins();
    }
    // SAFETY: taken in `prefork` by this thread.
    unsafe { CREATE.force_unlock() };
}

pub fn postfork_child() {
    for a in all() {
        a.pac.postfork_child();
        a.postfork_child_bins();
    }
    // SAFETY: fork child, single thread, taken in `prefork`.
    unsafe { CREATE.reset_after_fork() };
    for c in NTHREADS.iter() {
        c.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_arenas_are_dense_and_usable() {
        let a = create(3).expect("arena 3");
        assert_eq!(a.id, 3);
        for i in 0..=3 {
            assert_eq!(try_get(i).unwrap().id as usize, i);
        }
        let e = a.pac.lock().alloc(2, crate::foundation::util::PAGE, None);
        assert!(!e.is_null());
        // SAFETY: `e` is the active extent just allocated from arena 3.
        unsafe {
            assert_eq!((*e).arena, 3);
            assert!(a.pac.lock().dalloc(e));
        }
        a.validate();
    }
}
