//! The allocator's mutex: a futex lock that never allocates and can be reset after fork.
//!
//! Contract: `lock` spins briefly, then sleeps in FUTEX_WAIT; nothing on any path touches the
//! heap, TLS destructors or errno (sys::futex_* preserve it), unlike parking_lot, whose
//! contended path allocates through the global allocator, i.e. through us.
//!
//! Lock order (acquire only in this order; `front::fork` takes them all in it):
//!   1. the thread-cache registry (`tcache::POOL`: recycled caches);
//!   2. the arena table's creation lock (`arena::CREATE`);
//!   3. `Bin::lock`, bins in index order, arena by arena;
//!   4. `Pac::lock` of an arena (the page allocator, extent sets, emap writes);
//!   5. the rtree's leaf-installation lock;
//!   6. `Base`'s bump lock (metadata allocator).
//!
//! A lower-ranked lock is never requested while a higher-ranked one is held. Debug builds
//! (and so every unit test) check this on each acquisition: `Rank` below, a per-thread mask
//! of held ranks, and a fatal line on violation. Release builds compile the check away.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and at least one thread may be sleeping on the futex.
const CONTENDED: u32 = 2;

/// Lock ranks, in acquisition order (see the module header).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Rank {
    /// Not part of the allocator's order (test locks).
    Unranked = 0,
    Tcaches = 1,
    Arenas = 2,
    Bin = 3,
    Pac = 4,
    RtreeLeaf = 5,
    Base = 6,
}

#[cfg(debug_assertions)]
mod witness {
    use super::Rank;
    use core::cell::Cell;

    std::thread_local! {
        /// Locks of rank r this thread holds, per rank (fork's prepare handler holds every bin
        /// lock of up to 256 arenas: more than a byte counts).
        static HELD: Cell<[u16; 7]> = const { Cell::new([0; 7]) };
    }

    pub fn acquire(r: Rank) {
        if r == Rank::Unranked {
            return;
        }
        let _ = HELD.try_with(|h| {
            let mut v = h.get();
            if v[r as usize + 1..].iter().any(|&n| n > 0) {
                crate::foundation::report::fatal("lock order violated: a lower-ranked lock taken while a higher one is held");
            }
            v[r as usize] += 1;
            h.set(v);
        });
    }

    pub fn release(r: Rank) {
        if r == Rank::Unranked {
            return;
        }
        let _ = HELD.try_with(|h| {
            let mut v = h.get();
            v[r as usize] = v[r as usize].saturating_sub(1);
            h.set(v);
        });
    }
}

#[cfg(not(debug_assertions))]
mod witness {
    use super::Rank;
    #[inline(always)]
    pub fn acquire(_: Rank) {}
    #[inline(always)]
    pub fn release(_: Rank) {}
}

/// A mutual-exclusion lock around a `T`.
pub struct Mutex<T> {
    /// Sync: the lock word itself (atomic).
    state: AtomicU32,
    /// Position in the lock order (immutable).
    rank: Rank,
    /// Sync: only accessed through a `MutexGuard`, i.e. while `state != UNLOCKED` by us.
    data: UnsafeCell<T>,
}

// SAFETY: the lock serializes every access to `data`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the data; T: Send suffices.
unsafe impl<T: Send> Send for Mutex<T> {}

/// Proof that the lock is held; unlocks on drop.
pub struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A lock outside the allocator's order (tests).
    pub const fn new(v: T) -> Self {
        Self::ranked(Rank::Unranked, v)
    }

    /// A lock at position `rank` of the allocator's order.
    pub const fn ranked(rank: Rank, v: T) -> Self {
        Mutex { state: AtomicU32::new(UNLOCKED), rank, data: UnsafeCell::new(v) }
    }

    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        witness::acquire(self.rank);
        if self
            .state
            .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { m: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) {
        for _ in 0..100 {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            crate::foundation::sys::futex_wait(&self.state, CONTENDED);
        }
    }

    #[inline]
    fn unlock(&self) {
        witness::release(self.rank);
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            crate::foundation::sys::futex_wake_one(&self.state);
        }
    }

    /// Initializes, in place, a mutex whose memory is all zero bytes (metadata from `base`):
    /// unlocked, ranked `rank`; returns its data for the caller to finish initializing.
    ///
    /// # Safety
    /// `this` points to zeroed memory for a `Mutex<T>` that nobody else can see yet, and a
    /// zeroed `T` becomes valid once the caller has written its non-zero fields.
    pub unsafe fn init_zeroed(this: *mut Self, rank: Rank) -> *mut T {
        core::ptr::addr_of_mut!((*this).rank).write(rank);
        (*this).data.get()
    }

    /// Takes the lock without a guard (fork's prepare handler); pair with `force_unlock`.
    pub fn raw_lock(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken by `raw_lock`.
    ///
    /// # Safety
    /// The caller must hold the lock through `raw_lock`.
    pub unsafe fn force_unlock(&self) {
        self.unlock();
    }

    /// Re-initializes the lock as unlocked (fork child: the holder threads are gone).
    ///
    /// # Safety
    /// Only in a fork child whose only thread is the caller, after a `raw_lock` in the parent.
    pub unsafe fn reset_after_fork(&self) {
        witness::release(self.rank);
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }

    /// Access without locking.
    ///
    /// # Safety
    /// The caller guarantees no concurrent access (single-threaded init, or a racy stats read
    /// of plain integers that tolerates torn values).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_unsync(&self) -> &mut T {
        &mut *self.data.get()
    }
}

impl<T> core::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, exclusively.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.m.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_under_contention() {
        static M: Mutex<u64> = Mutex::new(0);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..100_000 {
                        *M.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*M.lock(), 400_000);
    }

    /// Run only as a child of `rank_violation_aborts`.
    #[test]
    #[ignore]
    fn child_takes_ranks_backwards() {
        let pac = Mutex::ranked(Rank::Pac, ());
        let bin = Mutex::ranked(Rank::Bin, ());
        let _b = pac.lock();
        let _a = bin.lock(); // must abort in debug builds
    }

    #[test]
    #[cfg(debug_assertions)]
    fn rank_violation_aborts() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "foundation::sync::tests::child_takes_ranks_backwards"])
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("oxmalloc: lock order violated"));
    }

    #[test]
    fn rank_order_is_accepted() {
        let bin = Mutex::ranked(Rank::Bin, ());
        let pac = Mutex::ranked(Rank::Pac, ());
        let base = Mutex::ranked(Rank::Base, ());
        let _a = bin.lock();
        let _b = pac.lock();
        let _c = base.lock();
    }
}
