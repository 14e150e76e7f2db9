//! Giving free pages back to the OS. A purge pass takes extents out of the dirty and muzzy
//! sets under the Pac lock (state `Purging`, kept on the arena's stash list), releases the
//! lock, madvises them, then takes the lock again and puts them back as muzzy (MADV_FREE) or
//! retained (MADV_DONTNEED), coalescing with their new set. So no allocating thread ever
//! waits for a system call, and nothing allocates or merges a range while it is purged.
//!
//! Contract: `Pac::purge(now, Mode::Decay)` purges what `decay` owes at `now`, oldest pages
//! first, one decay pass per arena at a time; `Mode::All` purges every dirty and muzzy page
//! to retained (malloc_trim, `arena.<i>.purge`). Dirty pages go to muzzy when the arena's
//! muzzy decay time is not 0 (jemalloc's default is 0: straight to retained).
//!
//! Sync: the Pac lock around the taking and the putting back; the stash list under it. The
//! caller holds no allocator lock (bin locks included): a purge takes the Pac lock twice per
//! batch and makes system calls.

use crate::foundation::sys;
use crate::metadata::extent::{Extent, State};
use crate::pages::pac::{Pac, PacInner};

/// What a purge pass purges.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// What decay owes now.
    Decay,
    /// Every dirty and muzzy page, to retained.
    All,
}

/// Extents madvised per lock round trip.
const BATCH: usize = 32;

/// An extent taken out for purging, and the state it goes to.
#[derive(Clone, Copy)]
struct Taken {
    e: *mut Extent,
    to: State,
    from: State,
}

impl Pac {
    /// Runs one purge pass (module header); returns the pages purged.
    pub fn purge(&self, now: u64, mode: Mode) -> usize {
        let (mut owe_dirty, mut owe_muzzy, dirty_to) = {
            let mut g = self.lock();
            let to = if mode == Mode::All || g.decay_muzzy.ms() == 0 { State::Retained } else { State::Muzzy };
            match mode {
                Mode::All => (usize::MAX, usize::MAX, to),
                Mode::Decay => {
                    if g.decaying {
                        return 0;
                    }
                    g.decaying = true;
                    let (nd, nm) = (g.dirty.npages, g.muzzy.npages);
                    g.decay_dirty.advance(now, nd);
                    g.decay_muzzy.advance(now, nm);
                    (g.decay_dirty.owed(nd), g.decay_muzzy.owed(nm), to)
                }
            }
        };
        self.reset_added();
        // Pages purged from the dirty and the muzzy set.
        let mut total = [0usize; 2];
        loop {
            let mut batch = [Taken { e: core::ptr::null_mut(), to: State::Retained, from: State::Dirty }; BATCH];
            let mut n = 0;
            {
                let mut g = self.lock();
                while n < BATCH && owe_dirty > 0 {
                    let Some(e) = take_oldest(&mut g, State::Dirty, &mut owe_dirty) else { break };
                    batch[n] = Taken { e, to: dirty_to, from: State::Dirty };
                    n += 1;
                }
                while n < BATCH && owe_muzzy > 0 {
                    let Some(e) = take_oldest(&mut g, State::Muzzy, &mut owe_muzzy) else { break };
                    batch[n] = Taken { e, to: State::Retained, from: State::Muzzy };
                    n += 1;
                }
            }
            if n == 0 {
                break;
            }
            let mut ok = [false; BATCH];
            for (t, ok) in batch[..n].iter_mut().zip(ok.iter_mut()) {
                // SAFETY: a `Purging` extent is ours until we put it back: no allocation,
                // merge or other purge touches it, and its pages hold no live block.
                let (addr, size) = unsafe { ((*t.e).addr, (*t.e).size) };
                *ok = if t.to == State::Muzzy && sys::purge_lazy(addr, size) {
                    true
                } else {
                    t.to = State::Retained;
                    sys::purge_forced(addr, size)
                };
            }
            let mut g = self.lock();
            for (t, &ok) in batch[..n].iter().zip(ok.iter()) {
                // SAFETY: as above; we hold the lock again.
                total[(t.from == State::Muzzy) as usize] += unsafe { put_back(&mut g, t, ok) };
            }
        }
        let mut g = self.lock();
        for (k, &pages) in total.iter().enumerate() {
            g.purged[k].npurge += (pages > 0) as u64;
        }
        if mode == Mode::Decay {
            let (nd, nm) = (g.dirty.npages, g.muzzy.npages);
            g.decay_dirty.purged_to(nd);
            g.decay_muzzy.purged_to(nm);
            g.decaying = false;
        }
        total[0] + total[1]
    }

    /// Sets the decay times (`None`: unchanged); what the changed sets hold counts as fully
    /// decayed, so the next decay pass purges it (jemalloc's rule).
    pub fn set_decay_ms(&self, dirty_ms: Option<isize>, muzzy_ms: Option<isize>) {
        let mut g = self.lock();
        if let Some(ms) = dirty_ms {
            let n = g.dirty.npages;
            g.decay_dirty.set_ms(ms, n);
        }
        if let Some(ms) = muzzy_ms {
            let n = g.muzzy.npages;
            g.decay_muzzy.set_ms(ms, n);
        }
    }
}

/// Takes the oldest extent of set `from` out for purging, or its newest `*owe` pages when it
/// is bigger (the rest stays, still the oldest); lowers `*owe`. None when the set is empty.
fn take_oldest(g: &mut PacInner, from: State, owe: &mut usize) -> Option<*mut Extent> {
    let mut e = g.set_of(from).oldest();
    if e.is_null() {
        return None;
    }
    // SAFETY: `e` is in the set, a live descriptor of this arena; we hold the lock.
    unsafe {
        g.set_of(from).remove(e);
        let pages = (*e).pages();
        if pages > *owe {
            let t = g.split(e, pages - *owe);
            if !t.is_null() {
                g.set_of(from).insert_oldest(e);
                e = t;
            }
        }
        *owe = owe.saturating_sub((*e).pages());
        (*e).set_state(State::Purging);
        g.stash.push(e);
    }
    Some(e)
}

/// Puts a purged extent back into the set of its new state (`ok`: the madvise worked; if it
/// did not, the pages are as they were, dirty); counts it. Returns the pages purged.
///
/// # Safety
/// `t.e` is an extent `take_oldest` took and nothing put back yet; the lock is held.
unsafe fn put_back(g: &mut PacInner, t: &Taken, ok: bool) -> usize {
    let e = t.e;
    let pages = (*e).pages();
    g.stash.remove(e);
    let to = if ok { t.to } else { t.from };
    (*e).zeroed = ok && to == State::Retained;
    (*e).set_state(to);
    g.insert_coalesced(e);
    if !ok {
        return 0;
    }
    let s = &mut g.purged[(t.from == State::Muzzy) as usize];
    s.nmadvise += 1;
    s.purged += pages as u64;
    pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::util::PAGE;
    use crate::pages::decay::NSTEPS;

    const EPOCH: u64 = 10_000 * 1_000_000 / NSTEPS as u64;

    /// Writes `v` into every page of `e` (an active extent of the caller's).
    fn fill(e: *mut Extent, v: u8) {
        // SAFETY: the caller's active extent: its pages are mapped and unused.
        unsafe {
            for i in 0..(*e).pages() {
                *(((*e).addr + i * PAGE) as *mut u8) = v;
            }
        }
    }

    /// A decay pass purges the oldest pages first, gradually over the window, with madvise:
    /// purged pages read zero and come back as retained; the purge counts add up.
    #[test]
    fn decay_purges_oldest_first_and_gradually() {
        static PAC: Pac = Pac::new(11);
        let t0 = 1_000_000_000_000;
        let (old, new) = {
            let mut g = PAC.lock();
            let old = g.alloc(64, PAGE, None);
            let _wall = g.alloc(1, PAGE, None);
            let new = g.alloc(64, PAGE, None);
            let _wall2 = g.alloc(1, PAGE, None);
            (old, new)
        };
        fill(old, 7);
        fill(new, 9);
        // SAFETY: live descriptors of this arena's extents.
        let (old_at, new_at) = unsafe { ((*old).addr, (*new).addr) };
        // SAFETY: as above; each is freed once.
        assert!(unsafe { PAC.lock().dalloc(old) });
        assert_eq!(PAC.purge(t0, Mode::Decay), 0, "the first pass starts the clock");
        // `new` is freed ten epochs later; by then at most a page of `old` has decayed.
        let mut purged = PAC.purge(t0 + 10 * EPOCH, Mode::Decay);
        assert!(purged <= 1, "{purged}");
        assert!(unsafe { PAC.lock().dalloc(new) });
        // Half a window on: the older extent decays first; part of it is purged (to retained,
        // zero), the rest is still dirty with its data.
        for k in 11..=NSTEPS as u64 / 2 {
            purged += PAC.purge(t0 + k * EPOCH, Mode::Decay);
        }
        {
            let g = PAC.lock();
            g.validate();
            assert_eq!(g.free_pages().0 + purged, 128);
            assert!(purged > 16 && purged < 64, "purged {purged} of 128 pages by mid-window");
            assert_eq!(g.purged[0].purged as usize, purged);
            assert!(g.purged[0].npurge >= 1 && g.purged[0].nmadvise >= g.purged[0].npurge);
        }
        // SAFETY: the pages are mapped (retained or dirty); reading them is fine.
        unsafe {
            assert_eq!(*(new_at as *const u8), 9, "the newer extent is untouched");
            let zero = (0..64).filter(|&i| *((old_at + i * PAGE) as *const u8) == 0).count();
            assert_eq!(zero, purged, "purged pages read zero");
        }
        // A whole window after the last free: everything is purged.
        for k in NSTEPS as u64 / 2 + 1..=NSTEPS as u64 + 12 {
            PAC.purge(t0 + k * EPOCH, Mode::Decay);
        }
        let g = PAC.lock();
        assert_eq!(g.free_pages().0, 0);
        assert_eq!(g.purged[0].purged, 128);
        g.validate();
    }

    /// With a muzzy decay time, dirty pages go to muzzy (MADV_FREE) and later to retained.
    #[test]
    fn muzzy_stage_when_enabled() {
        static PAC: Pac = Pac::new(12);
        PAC.set_decay_ms(Some(0), Some(10_000));
        let e = PAC.lock().alloc(16, PAGE, None);
        fill(e, 3);
        // SAFETY: freed once.
        assert!(unsafe { PAC.lock().dalloc(e) });
        let t0 = 2_000_000_000_000;
        assert_eq!(PAC.purge(t0, Mode::Decay), 16, "dirty decay 0: all dirty pages go at once");
        assert_eq!(PAC.lock().free_pages().1, 16, "to muzzy");
        for k in 1..=NSTEPS as u64 + 2 {
            PAC.purge(t0 + k * EPOCH, Mode::Decay);
        }
        let g = PAC.lock();
        assert_eq!(g.free_pages(), (0, 0, g.free_pages().2));
        assert_eq!((g.purged[0].purged, g.purged[1].purged), (16, 16));
        g.validate();
    }

    /// A purge in flight takes its extents out of the sets: nothing merges with them or
    /// allocates them; a fork child puts them back as dirty.
    #[test]
    fn stashed_extents_stay_apart_and_come_back_after_fork() {
        static PAC: Pac = Pac::new(13);
        let (a, b) = {
            let mut g = PAC.lock();
            (g.alloc(8, PAGE, None), g.alloc(8, PAGE, None))
        };
        let mut g = PAC.lock();
        // SAFETY: live descriptors, each freed once; the stashed extent is put back below.
        unsafe {
            assert!(g.dalloc(a));
            let mut owe = 8;
            let taken = take_oldest(&mut g, State::Dirty, &mut owe).unwrap();
            assert_eq!(((*taken).addr, (*taken).state(), (*taken).pages(), g.stash.head), ((*a).addr, State::Purging, 8, taken));
            assert!(g.dalloc(b));
            assert_eq!(g.free_pages().0, 8, "b did not merge with the extent being purged");
            assert!(g.alloc(16, PAGE, None) != taken, "a purging extent is not allocated");
            g.validate();
        }
        drop(g);
        PAC.prefork();
        PAC.postfork_child();
        let g = PAC.lock();
        assert!(g.stash.head.is_null(), "a stashed extent was not put back");
        g.validate();
    }
}
