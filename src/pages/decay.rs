//! Time-based decay of free pages: how many pages of one free set (dirty or muzzy) of one
//! arena may stay in it at a given moment, and when to look again.
//!
//! Contract: the decay window (`dirty_decay_ms` / `muzzy_decay_ms`) is cut into `NSTEPS`
//! epochs. Each epoch records the pages that entered the set during it (the set's growth
//! since the last purge, as jemalloc counts it) and the pages the program took back out of it
//! (reuse). The pages allowed to stay are the larger of
//! - the backlog, each epoch's pages weighted by how much of the window is left for them on
//!   a smoothstep curve (`KEEP`): pages freed a moment ago stay, pages freed a whole window ago
//!   go, and a burst of frees is released gradually, oldest first, not at once at a deadline;
//! - the reuse margin, the most any recent epoch took back out of the set, weighted the same
//!   way: a program that frees and re-allocates the same volume again and again keeps its
//!   working set resident instead of purging and faulting it in each round, and once the
//!   reuse stops the margin decays like the backlog.
//!
//! `ms` 0 purges everything at once, -1 never purges. Everything takes the time as an
//! argument (nanoseconds of CLOCK_MONOTONIC), so the curve is tested with an injected clock.
//!
//! Sync: a `Decay` belongs to one free set of one arena and is used under that arena's Pac
//! lock.

use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Epochs per decay window.
pub const NSTEPS: usize = 200;
/// jemalloc's defaults: dirty pages decay over 10 s, then go straight to retained.
pub const DEFAULT_DIRTY_MS: isize = 10_000;
pub const DEFAULT_MUZZY_MS: isize = 0;

/// Decay times new arenas start with (`opt.dirty_decay_ms` / `opt.muzzy_decay_ms`, then
/// `arenas.dirty_decay_ms` / `arenas.muzzy_decay_ms`). Sync: relaxed atomics; an arena reads
/// them once, when it is made.
static ARENA_DIRTY_MS: AtomicIsize = AtomicIsize::new(DEFAULT_DIRTY_MS);
static ARENA_MUZZY_MS: AtomicIsize = AtomicIsize::new(DEFAULT_MUZZY_MS);

/// (dirty, muzzy) decay times for a new arena.
pub fn arena_defaults() -> (isize, isize) {
    (ARENA_DIRTY_MS.load(Relaxed), ARENA_MUZZY_MS.load(Relaxed))
}

/// Sets the decay times new arenas start with.
pub fn set_arena_defaults(dirty_ms: isize, muzzy_ms: isize) {
    ARENA_DIRTY_MS.store(dirty_ms, Relaxed);
    ARENA_MUZZY_MS.store(muzzy_ms, Relaxed);
}
/// Fixed-point one of the weights.
const ONE: u64 = 1 << 16;

/// `KEEP[i]`: the share (of `ONE`) of the pages that entered the set `NSTEPS - 1 - i` epochs
/// before the current one (`KEEP[NSTEPS - 1]`, all of them: the current epoch) that may
/// still stay: 1 − smoothstep(age / window), smoothstep(x) = 3x² − 2x³. The oldest slot
/// keeps almost nothing, and a slot shifted past it is gone: pages decay within the window.
const KEEP: [u64; NSTEPS] = {
    let mut t = [0u64; NSTEPS];
    let n = NSTEPS as u64;
    let mut i = 0;
    while i < NSTEPS {
        let age = n - 1 - i as u64; // 0 (newest) ..= NSTEPS - 1 (oldest)
        t[i] = ONE - age * age * (3 * n - 2 * age) * ONE / (n * n * n);
        i += 1;
    }
    t
};

/// Decay state of one free set.
pub struct Decay {
    /// The decay time in ms: -1 never, 0 at once.
    ms: isize,
    /// Epoch length (window / NSTEPS), ns; 0 unless `ms > 0`.
    epoch_ns: u64,
    /// Start of the current epoch (ns), 0 before the first `advance`.
    epoch_start: u64,
    /// Pages that entered the set per epoch, oldest first; the last slot is the newest epoch.
    backlog: [usize; NSTEPS],
    /// Pages taken from the set per epoch, same order.
    reused: [usize; NSTEPS],
    /// Pages taken from the set during the current epoch.
    reused_now: usize,
    /// Pages in the set after the last purge (growth beyond it is new backlog).
    nunpurged: usize,
}

impl Decay {
    pub const fn new(ms: isize) -> Self {
        Decay {
            ms,
            epoch_ns: epoch_ns(ms),
            epoch_start: 0,
            backlog: [0; NSTEPS],
            reused: [0; NSTEPS],
            reused_now: 0,
            nunpurged: 0,
        }
    }

    pub fn ms(&self) -> isize {
        self.ms
    }

    /// Changes the decay time. The `npages` pages now in the set count as fully decayed
    /// (jemalloc's rule: setting the time purges what the set holds, unless it is -1).
    pub fn set_ms(&mut self, ms: isize, npages: usize) {
        *self = Decay::new(ms);
        self.nunpurged = npages;
    }

    /// `pages` were taken out of the set by an allocation.
    #[inline]
    pub fn note_reused(&mut self, pages: usize) {
        self.reused_now += pages;
    }

    /// Moves to the epoch holding `now` if one or more epochs ended; the set holds `npages`.
    /// Returns whether an epoch ended.
    pub fn advance(&mut self, now: u64, npages: usize) -> bool {
        if self.ms <= 0 {
            return false;
        }
        if self.epoch_start == 0 {
            self.epoch_start = now.max(1);
            self.backlog[NSTEPS - 1] = npages.saturating_sub(self.nunpurged);
            self.nunpurged = npages;
            return true;
        }
        if now < self.epoch_start + self.epoch_ns {
            return false;
        }
        let k = ((now - self.epoch_start) / self.epoch_ns) as usize;
        self.epoch_start += k as u64 * self.epoch_ns;
        let ended_reuse = core::mem::take(&mut self.reused_now);
        if k >= NSTEPS {
            self.backlog = [0; NSTEPS];
            self.reused = [0; NSTEPS];
        } else {
            self.backlog.copy_within(k.., 0);
            self.backlog[NSTEPS - k..].fill(0);
            self.reused.copy_within(k.., 0);
            self.reused[NSTEPS - k..].fill(0);
            // The epoch that just ended is k - 1 epochs behind the new one.
            self.reused[NSTEPS - k] = ended_reuse;
        }
        self.backlog[NSTEPS - 1] += npages.saturating_sub(self.nunpurged);
        self.nunpurged = npages;
        true
    }

    /// Pages the set may hold now: the weighted backlog or the reuse margin, whichever is
    /// larger (module header).
    pub fn limit(&self) -> usize {
        let mut backlog: u64 = 0;
        let mut margin: u64 = self.reused_now as u64;
        for ((&b, &r), &keep) in self.backlog.iter().zip(self.reused.iter()).zip(KEEP.iter()) {
            backlog += b as u64 * keep;
            margin = margin.max(r as u64 * keep / ONE);
        }
        ((backlog / ONE).max(margin)).min(usize::MAX as u64) as usize
    }

    /// Pages to purge from a set of `npages` now (call `advance` first).
    pub fn owed(&self, npages: usize) -> usize {
        match self.ms {
            0 => npages,
            ms if ms < 0 => 0,
            _ => npages.saturating_sub(self.limit()),
        }
    }

    /// A purge left `npages` in the set.
    pub fn purged_to(&mut self, npages: usize) {
        self.nunpurged = npages;
    }

    /// When this set next needs a look, given that it holds `npages`: now (0) when the decay
    /// time is 0 and pages wait, the end of the current epoch while pages wait, else never.
    pub fn deadline(&self, npages: usize) -> u64 {
        match self.ms {
            _ if npages == 0 => u64::MAX,
            0 => 0,
            ms if ms < 0 => u64::MAX,
            _ if self.epoch_start == 0 => 0,
            _ => self.epoch_start + self.epoch_ns,
        }
    }
}

const fn epoch_ns(ms: isize) -> u64 {
    if ms <= 0 {
        return 0;
    }
    let ns = (ms as u64).saturating_mul(1_000_000) / NSTEPS as u64;
    if ns == 0 {
        1
    } else {
        ns
    }
}

/// Where the background purge threads (`front::background`) sleep and are woken: the layers
/// below the front end, which cannot call it, signal through this table. Thread `k` of `n`
/// looks after the arenas whose index is `k` modulo `n`.
pub mod purgers {
    use super::*;

    /// Most background threads (`max_background_threads` is clamped to it).
    pub const MAX: usize = 64;

    /// One thread's signals. Sync: atomics; `word` is the futex the thread sleeps on (bumped
    /// by every wake), `sleep_until` when it will look again by itself (u64::MAX: never; 0:
    /// it is awake, no need to wake it). `sleep_until` and the arenas' deadlines are stored
    /// and then the other loaded with SeqCst on both sides, so a slow path that makes a
    /// deadline earlier either sees the thread's new `sleep_until` and wakes it, or the
    /// thread sees the new deadline before it sleeps.
    pub struct Slot {
        pub word: AtomicU32,
        pub sleep_until: AtomicU64,
    }

    pub static SLOTS: [Slot; MAX] = [const { Slot { word: AtomicU32::new(0), sleep_until: AtomicU64::new(u64::MAX) } }; MAX];
    /// Threads running (0: none; the slow paths then decay by themselves). Sync: written by
    /// `front::background` as it starts and stops them.
    pub static RUNNING: AtomicUsize = AtomicUsize::new(0);
    /// Whether background threads are enabled (option and mallctl `background_thread`),
    /// started or not. Sync: written by `front::background`, relaxed.
    pub static ENABLED: AtomicU32 = AtomicU32::new(0);
    /// Set when there is dirty memory for enabled threads that are not started yet;
    /// `front::background` starts them on a malloc slow path. Sync: relaxed flag.
    pub static START_WANTED: AtomicU32 = AtomicU32::new(0);

    /// How many threads run (0: none).
    #[inline]
    pub fn running() -> usize {
        RUNNING.load(Relaxed)
    }

    /// The slot of the thread that looks after arena `arena` (when `n` run).
    #[inline]
    pub fn slot_of(arena: usize, n: usize) -> &'static Slot {
        &SLOTS[arena % n.max(1)]
    }

    /// Wakes the thread of `slot` (a futex wake: a system call; never under a lock).
    pub fn wake(slot: &Slot) {
        slot.word.fetch_add(1, Relaxed);
        crate::foundation::sys::futex_wake_one(&slot.word);
    }
}

/// Nanoseconds of CLOCK_MONOTONIC_COARSE (through the vDSO: no system call, no lock; a few
/// ms of resolution is plenty for epochs of tens of ms).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; clock_gettime neither allocates nor blocks.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: isize = 10_000;
    const EPOCH: u64 = MS as u64 * 1_000_000 / NSTEPS as u64;

    #[test]
    fn weights_fall_smoothly_from_one_to_zero() {
        assert!(KEEP[0] < ONE / 1000, "a whole window old: nothing kept");
        assert_eq!(KEEP[NSTEPS - 1], ONE, "the current epoch: all kept");
        for i in 1..NSTEPS {
            assert!(KEEP[i] >= KEEP[i - 1], "monotone");
        }
        assert!((KEEP[NSTEPS / 2] as i64 - ONE as i64 / 2).abs() < ONE as i64 / 50, "half at mid-window");
    }

    /// A burst of frees then silence: each epoch purges a little, never a negative amount,
    /// the first epochs almost nothing, and in all exactly the burst by the end of the window.
    #[test]
    fn a_burst_decays_gradually_and_completely() {
        let mut d = Decay::new(MS);
        let t0 = 1_000_000_000;
        let burst = 131_072; // 512 MiB of pages
        let mut npages = burst;
        d.advance(t0, npages);
        let mut purged_per_epoch = std::vec::Vec::new();
        for k in 1..=NSTEPS as u64 + 5 {
            assert!(d.advance(t0 + k * EPOCH, npages));
            let owed = d.owed(npages);
            npages -= owed;
            d.purged_to(npages);
            purged_per_epoch.push(owed);
        }
        assert_eq!(npages, 0, "everything purged within the window");
        assert_eq!(purged_per_epoch.iter().sum::<usize>(), burst, "total equals the backlog");
        assert!(purged_per_epoch[0] < burst / 1000, "the first epoch keeps nearly all: {}", purged_per_epoch[0]);
        let first_quarter: usize = purged_per_epoch[..NSTEPS / 4].iter().sum();
        assert!(first_quarter < burst / 5, "no cliff: {first_quarter} in the first quarter");
        let half: usize = purged_per_epoch[..NSTEPS / 2].iter().sum();
        assert!((burst * 2 / 5..burst * 3 / 5).contains(&half), "about half by mid-window: {half}");
    }

    /// Frees and re-allocations of the same volume every epoch: the reuse margin keeps the
    /// set; once the reuse stops, it decays like a burst.
    #[test]
    fn reused_pages_stay_until_the_reuse_stops() {
        let mut d = Decay::new(MS);
        let t0 = 5_000_000_000;
        let volume = 5000;
        let mut npages = volume;
        d.advance(t0, npages);
        for k in 1..=3 * NSTEPS as u64 {
            // The program takes the set back and frees it again within the epoch.
            d.note_reused(volume);
            d.advance(t0 + k * EPOCH, npages);
            assert_eq!(d.owed(npages), 0, "reused pages purged at epoch {k}");
        }
        let stop = t0 + 3 * NSTEPS as u64 * EPOCH;
        let mut purged = 0;
        for k in 1..=NSTEPS as u64 + 1 {
            d.advance(stop + k * EPOCH, npages);
            let owed = d.owed(npages);
            npages -= owed;
            purged += owed;
            d.purged_to(npages);
        }
        assert_eq!((npages, purged), (0, volume), "decays once unused");
    }

    #[test]
    fn epochs_skipped_while_asleep_count() {
        let mut d = Decay::new(MS);
        d.advance(1_000, 100);
        assert!(!d.advance(1_000 + EPOCH - 1, 100));
        assert_eq!(d.deadline(100), 1_000 + EPOCH);
        // A sleep over half the window: about half of the pages may go.
        d.advance(1_000 + EPOCH * NSTEPS as u64 / 2, 100);
        assert!((40..=60).contains(&d.owed(100)), "{}", d.owed(100));
        // Over a whole window: all.
        d.advance(1_000 + EPOCH * (NSTEPS as u64 + 1), 100);
        assert_eq!(d.owed(100), 100);
    }

    #[test]
    fn zero_and_never() {
        let mut now = Decay::new(0);
        assert!(!now.advance(123, 50));
        assert_eq!((now.owed(50), now.deadline(50), now.deadline(0)), (50, 0, u64::MAX));
        let mut never = Decay::new(-1);
        never.advance(123, 50);
        assert_eq!((never.owed(50), never.deadline(50)), (0, u64::MAX));
        // Setting the time makes what the set holds fully decayed.
        let mut d = Decay::new(MS);
        d.advance(1, 1000);
        assert_eq!(d.owed(1000), 0);
        d.set_ms(MS, 1000);
        assert!(d.advance(2, 1000));
        assert_eq!(d.owed(1000), 1000);
    }
}
