//! Background purge threads: memory goes back to the OS while the program is idle.
//!
//! Contract: with option `background_thread` (default true) `max_background_threads`
//! (default 1; at most one per arena) threads decay the arenas' free pages (`pages::purge`, `Mode::Decay`); thread
//! `k` of `n` looks after the arenas whose index is `k` modulo `n`. Each sleeps on its futex
//! (`pages::decay::purgers`) until the earliest decay deadline of its arenas, and with no
//! free page left to decay, until woken: no periodic wake-ups in an idle program with nothing
//! to give back. Slow paths wake it early when they make a deadline earlier or dirty memory
//! piles up (`objects::arena::Arena::tick`). Thread 0 also purges the slot arrays of exited
//! threads' caches once they have sat unused for the dirty decay time.
//!
//! When the threads start. Enabled by the option, they start lazily: only once 16 MiB or
//! more are dirty (`arena::BACKGROUND_START_PAGES`; `true`, `git status` or `python3 -c pass`
//! never get one), and only from `maybe_start`, which the front end calls at the end of a
//! malloc slow path (a small refill or a large allocation) of a thread whose cache is set up.
//! That place is chosen so that `pthread_create` cannot wait for a lock the calling thread
//! holds:
//! - no allocator lock is held there (every bin and page-allocator lock has been released);
//! - it is a malloc, never a free: glibc calls `free` while it holds the stack-cache lock
//!   that `pthread_create` takes (freeing a dead thread's TLS while trimming its stack
//!   cache), but it allocates a new thread's TLS with that lock released;
//! - the loader's locks (`dl_load_lock` around `dlopen` and its constructors,
//!   `dl_load_tls_lock` around a new thread's TLS set-up) are recursive, so a malloc made
//!   under them by the same thread (a constructor, or `pthread_create`'s own allocation of
//!   the new thread's TLS) takes them again; another thread holding them is waited for with
//!   none of our locks held, so it can finish;
//! - a malloc inside `pthread_create` (its own TLS allocation) finds the state `STARTING`
//!   and does not start again; the start is a compare-and-swap, not a lock, so no thread ever
//!   waits for another one's start;
//! - never during init (the thread's cache must exist, so init finished);
//! - the new thread starts with every signal blocked, so the program's handlers never run
//!   on it, and it calls nothing that allocates.
//!
//! Writing `background_thread` true through mallctl starts the threads at once, from the
//! caller, as jemalloc does; false stops them and joins them.
//!
//! Fork: the child has no purge thread; it starts one lazily when it needs one, like any
//! program (`postfork_child`). Exit: the threads hold no lock while they sleep or madvise;
//! one inside a purge pass holds a page-allocator lock for a bounded time, so exit handlers
//! that allocate wait at most that long, and `exit` ends the threads with the process.
//!
//! Sync: `STATE` moves by compare-and-swap (the start and the stop are each done by the one
//! thread that won it); `THREADS` is written by that thread before it publishes `RUNNING`
//! and read only by the one that wins the stop.

use crate::foundation::sys;
use crate::objects::arena;
use crate::pages::decay::{now_ns, purgers};
use crate::pages::purge::Mode;
use crate::tcache::tsd;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::{Relaxed, SeqCst}};

/// Disabled (option or mallctl false).
const DISABLED: u8 = 0;
/// Enabled, no thread yet.
const IDLE: u8 = 1;
/// A thread is creating them.
const STARTING: u8 = 2;
const RUNNING: u8 = 3;
/// A thread is stopping them.
const STOPPING: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(DISABLED);
/// `max_background_threads` (1..=`purgers::MAX`).
static MAX_THREADS: AtomicUsize = AtomicUsize::new(1);
/// The option's value of `max_background_threads` (the most a mallctl write may ask for).
static OPT_MAX_THREADS: AtomicUsize = AtomicUsize::new(1);
/// The option's value of `background_thread`.
static OPT_ENABLED: AtomicU8 = AtomicU8::new(0);
/// pthread_t of each running thread. Sync: see the module header.
static THREADS: [AtomicU64; purgers::MAX] = [const { AtomicU64::new(0) }; purgers::MAX];
/// Passes run by all threads, and the ns between the first and the last (stats).
static NUM_RUNS: AtomicU64 = AtomicU64::new(0);
static FIRST_RUN: AtomicU64 = AtomicU64::new(0);
static LAST_RUN: AtomicU64 = AtomicU64::new(0);

/// Stack of a purge thread: a pass needs a few KiB.
const STACK_SIZE: usize = 256 << 10;

/// Applies the options (init only, before any thread can start them).
pub fn configure(enabled: bool, max_threads: usize) {
    let max = max_threads.clamp(1, purgers::MAX);
    MAX_THREADS.store(max, Relaxed);
    OPT_MAX_THREADS.store(max, Relaxed);
    OPT_ENABLED.store(enabled as u8, Relaxed);
    STATE.store(if enabled { IDLE } else { DISABLED }, Relaxed);
    purgers::ENABLED.store(enabled as u32, Relaxed);
}

/// Option `background_thread`.
pub fn opt_enabled() -> bool {
    OPT_ENABLED.load(Relaxed) != 0
}

/// Option `max_background_threads`.
pub fn opt_max_threads() -> usize {
    OPT_MAX_THREADS.load(Relaxed)
}

/// mallctl `background_thread`: whether the threads are enabled (started or not).
pub fn enabled() -> bool {
    purgers::ENABLED.load(Relaxed) != 0
}

/// mallctl `max_background_threads`.
pub fn max_threads() -> usize {
    MAX_THREADS.load(Relaxed)
}

/// Threads running now (`stats.background_thread.num_threads`).
pub fn num_threads() -> usize {
    purgers::running()
}

/// `stats.background_thread.{num_runs, run_interval}`: passes run, and the mean ns between
/// two passes.
pub fn run_stats() -> (u64, u64) {
    let runs = NUM_RUNS.load(Relaxed);
    let span = LAST_RUN.load(Relaxed).saturating_sub(FIRST_RUN.load(Relaxed));
    (runs, if runs > 1 { span / (runs - 1) } else { 0 })
}

/// Starts the threads if they are enabled, not started, and dirty memory asked for them. The
/// end of a malloc slow path calls it, with no allocator lock held (see the module header).
#[inline]
pub fn maybe_start() {
    if purgers::START_WANTED.load(Relaxed) != 0 {
        start_lazily();
    }
}

#[cold]
#[inline(never)]
fn start_lazily() {
    if tsd::get() <= tsd::LAST_SENTINEL {
        return; // no cache: during init, the cache's set-up, or after this thread's exit
    }
    purgers::START_WANTED.store(0, Relaxed);
    if STATE.compare_exchange(IDLE, STARTING, SeqCst, Relaxed).is_ok() {
        // A failure leaves them stopped; the slow paths decay meanwhile, and a mallctl
        // write of true tries again.
        STATE.store(if spawn_all() { RUNNING } else { DISABLED }, SeqCst);
        if STATE.load(Relaxed) == DISABLED {
            purgers::ENABLED.store(0, Relaxed);
        }
    }
}

/// mallctl write of `background_thread`: true starts the threads (now), false stops and
/// joins them. Err(errno) when they cannot be created.
pub fn set_enabled(on: bool) -> Result<(), i32> {
    loop {
        match STATE.load(SeqCst) {
            STARTING | STOPPING => {
                // Another thread's start or stop finishes without waiting for us.
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            RUNNING if on => return Ok(()),
            DISABLED | IDLE if !on => {
                STATE.store(DISABLED, SeqCst);
                purgers::ENABLED.store(0, Relaxed);
                return Ok(());
            }
            s @ (DISABLED | IDLE) => {
                if STATE.compare_exchange(s, STARTING, SeqCst, Relaxed).is_err() {
                    continue;
                }
                purgers::ENABLED.store(1, Relaxed);
                let ok = spawn_all();
                STATE.store(if ok { RUNNING } else { DISABLED }, SeqCst);
                if !ok {
                    purgers::ENABLED.store(0, Relaxed);
                    return Err(libc::EAGAIN);
                }
                return Ok(());
            }
            _ => {
                if STATE.compare_exchange(RUNNING, STOPPING, SeqCst, Relaxed).is_err() {
                    continue;
                }
                stop_all();
                purgers::ENABLED.store(0, Relaxed);
                STATE.store(DISABLED, SeqCst);
                return Ok(());
            }
        }
    }
}

/// mallctl write of `max_background_threads` (1..=the option's value, else EINVAL):
/// running threads are restarted with the new count.
pub fn set_max_threads(n: usize) -> Result<(), i32> {
    if n == 0 || n > opt_max_threads() {
        return Err(libc::EINVAL);
    }
    let was_running = STATE.load(SeqCst) == RUNNING;
    if was_running {
        set_enabled(false)?;
    }
    MAX_THREADS.store(n, Relaxed);
    if was_running {
        set_enabled(true)?;
    }
    Ok(())
}

/// Creates the threads (the caller won `STARTING`); false, with none left running, if one
/// cannot be created.
fn spawn_all() -> bool {
    // More threads than arenas would have nothing to do.
    let n = max_threads().min(arena::narenas().max(arena::all().count()));
    for (k, slot) in purgers::SLOTS.iter().enumerate().take(n) {
        slot.sleep_until.store(0, SeqCst);
        // Published before the threads run: they and the slow paths divide the arenas by it.
        purgers::RUNNING.store(n, SeqCst);
        match spawn(k) {
            Some(t) => THREADS[k].store(t, Relaxed),
            None => {
                purgers::RUNNING.store(0, SeqCst);
                join_first(k);
                return false;
            }
        }
    }
    true
}

/// Creates purge thread `k`, every signal blocked in it.
fn spawn(k: usize) -> Option<libc::pthread_t> {
    // SAFETY: plain libc calls on stack values; `run` is a valid thread function and its
    // argument an integer. pthread_create may call malloc (the new thread's TLS): that call
    // sees STARTING and does not come back here.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return None;
        }
        libc::pthread_attr_setstacksize(&mut attr, STACK_SIZE);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut t, &attr, run, k as *mut libc::c_void);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return None;
        }
        // Named before anyone can look (a write to its /proc comm file; no allocation).
        libc::pthread_setname_np(t, c"oxmalloc_bg".as_ptr());
        Some(t)
    }
}

/// Stops and joins every running thread (the caller won `STOPPING`).
fn stop_all() {
    let n = purgers::running();
    purgers::RUNNING.store(0, SeqCst);
    join_first(n);
}

/// Wakes and joins threads 0..n (they see a state other than RUNNING and end).
fn join_first(n: usize) {
    for (k, slot) in purgers::SLOTS.iter().enumerate().take(n) {
        purgers::wake(slot);
        let t = THREADS[k].swap(0, Relaxed);
        if t != 0 {
            // SAFETY: `t` is a thread we created and nobody else joins (we won the stop).
            unsafe { libc::pthread_join(t as libc::pthread_t, core::ptr::null_mut()) };
        }
        slot.sleep_until.store(u64::MAX, SeqCst);
    }
}

/// A purge thread: `arg` is its index.
extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
    let k = arg as usize;
    let slot = &purgers::SLOTS[k];
    loop {
        slot.sleep_until.store(0, SeqCst);
        let n = purgers::running();
        if STATE.load(SeqCst) == STOPPING || n == 0 {
            break;
        }
        let seen = slot.word.load(SeqCst);
        let now = now_ns();
        count_run(now);
        for a in arena::all().filter(|a| a.id as usize % n == k) {
            a.pac.reset_added();
            if a.pac.deadline() <= now {
                a.pac.purge(now, Mode::Decay);
            }
        }
        if k == 0 {
            crate::tcache::purge_pool(now, pool_age_ns());
        }
        let next = next_deadline(k, n).min(if k == 0 { crate::tcache::pool_deadline(pool_age_ns()) } else { u64::MAX });
        slot.sleep_until.store(next.max(1), SeqCst);
        // A slow path that made a deadline earlier after we read it either saw the new
        // `sleep_until` and woke us (the word changed), or its deadline shows here.
        if next_deadline(k, n) < next || STATE.load(SeqCst) != RUNNING {
            continue;
        }
        let wait = match next {
            u64::MAX => None,
            t => match t.checked_sub(now_ns()) {
                Some(ns) if ns > 0 => Some(ns),
                _ => continue,
            },
        };
        sys::futex_wait_for(&slot.word, seen, wait);
    }
    core::ptr::null_mut()
}

/// The earliest decay deadline of the arenas thread `k` of `n` looks after.
fn next_deadline(k: usize, n: usize) -> u64 {
    arena::all().filter(|a| a.id as usize % n == k).map(|a| a.pac.deadline()).min().unwrap_or(u64::MAX)
}

/// How long an exited thread's cache sits in the pool before its slot pages are purged: the
/// dirty decay time (never when it is -1).
fn pool_age_ns() -> u64 {
    match crate::pages::decay::arena_defaults().0 {
        ms if ms < 0 => u64::MAX,
        ms => (ms as u64).saturating_mul(1_000_000),
    }
}

fn count_run(now: u64) {
    if NUM_RUNS.fetch_add(1, Relaxed) == 0 {
        FIRST_RUN.store(now, Relaxed);
    }
    LAST_RUN.store(now, Relaxed);
}

/// Fork child: no purge thread survives; enabled threads start again lazily.
pub fn postfork_child() {
    purgers::RUNNING.store(0, Relaxed);
    purgers::START_WANTED.store(0, Relaxed);
    for (k, slot) in purgers::SLOTS.iter().enumerate() {
        slot.sleep_until.store(u64::MAX, Relaxed);
        THREADS[k].store(0, Relaxed);
    }
    let on = purgers::ENABLED.load(Relaxed) != 0;
    STATE.store(if on { IDLE } else { DISABLED }, Relaxed);
}
