//! One-time initialization, safe from the dynamic loader, constructors and re-entrant calls.
//!
//! State machine: UNINIT → (one thread wins a CAS) BUSY → READY. BUSY checks the page size,
//! reads the options (`conf`; getenv does not allocate) and creates the pthread key whose
//! destructor flushes a thread's cache (`pthread_key_create` does not allocate either); fork
//! handlers are registered *after* READY, so if `pthread_atfork` allocates, that nested malloc
//! finds READY and is served. Other threads arriving during BUSY yield until READY; the same
//! thread cannot arrive during BUSY because nothing in it calls into libc's allocating code.
//! A constructor in `.init_array` runs it early, before `main` and before other threads exist.

use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

/// Sync: atomic; Acquire/Release pair publishes whatever init wrote.
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

#[inline(always)]
pub fn ensure() {
    if STATE.load(Ordering::Acquire) != READY {
        slow();
    }
}

#[cold]
#[inline(never)]
fn slow() {
    match STATE.compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            if crate::foundation::sys::os_page_size() != crate::foundation::util::PAGE {
                crate::foundation::report::fatal("this build needs 4 KiB pages");
            }
            crate::front::conf::load();
            crate::tcache::tsd::create_key(crate::tcache::thread_exit);
            STATE.store(READY, Ordering::Release);
            crate::front::fork::register();
            if crate::front::conf::stats_print() {
                // After READY: atexit may allocate, and that nested malloc must be served.
                // SAFETY: registers a plain function valid for the life of the process.
                unsafe { libc::atexit(print_stats_at_exit) };
            }
        }
        Err(_) => {
            while STATE.load(Ordering::Acquire) != READY {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }
}

/// Option `stats_print`: the statistics on stderr at exit, shaped by `stats_print_opts`.
extern "C" fn print_stats_at_exit() {
    let mut opts = [0; crate::front::conf::STATS_OPTS_CAP];
    let n = crate::front::conf::stats_print_opts(&mut opts);
    crate::front::ctl::print::print(None, core::ptr::null_mut(), &opts[..n]);
}

extern "C" fn constructor() {
    ensure();
}

/// Runs `constructor` when the library is loaded.
#[used]
#[link_section = ".init_array"]
static INIT_ARRAY: extern "C" fn() = constructor;
