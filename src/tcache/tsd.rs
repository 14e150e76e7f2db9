//! Thread-specific data: one initial-exec TLS word per thread, holding the thread's cache.
//!
//! Contract: `get()` costs two loads (`mov reg, [rip + slot@GOTTPOFF]; mov reg, fs:[reg]`),
//! with no `__tls_get_addr` call and no lazy TLS allocation, so it is safe from the first
//! malloc the loader makes. The word is in `.tbss`: zero in every new thread. Values at or below `LAST_SENTINEL` are states, anything else is
//! a `*mut Tcache`:
//! - `NONE` (0): no cache yet; the next call sets one up;
//! - `BUSY` (1): setting up (a nested call, e.g. from `pthread_setspecific`, is served
//!   without a cache);
//! - `OFF` (2): no cache for this thread: it has exited (our pthread key destructor ran; any
//!   later call from other destructors is served without a cache) or caching is disabled.
//!
//! Thread exit: a `pthread_key_create` destructor (not a Rust TLS destructor, which would
//! itself allocate and may run after ours) hands the cache back; see `tcache::thread_exit`.
//! Only x86-64 Linux is supported (the brief's target); the asm is the whole port surface.

use core::arch::{asm, global_asm};

pub const NONE: usize = 0;
pub const BUSY: usize = 1;
pub const OFF: usize = 2;
pub const LAST_SENTINEL: usize = 2;

global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl oxmalloc_tsd_slot",
    ".hidden oxmalloc_tsd_slot",
    ".type oxmalloc_tsd_slot, @object",
    ".size oxmalloc_tsd_slot, 8",
    "oxmalloc_tsd_slot:",
    ".zero 8",
    ".popsection",
);

/// Address of the calling thread's slot.
#[inline(always)]
fn slot() -> *mut usize {
    let p: *mut usize;
    // SAFETY: reads the thread pointer (fs:0, the TCB self-pointer on x86-64 Linux) and the
    // slot's static TLS offset from the GOT; both are valid in every thread, and the symbol is
    // defined above in `.tbss` (initial-exec model; the library is marked STATIC_TLS).
    unsafe {
        asm!(
            "mov {0}, qword ptr [rip + oxmalloc_tsd_slot@GOTTPOFF]",
            "add {0}, qword ptr fs:[0]",
            out(reg) p,
            options(pure, readonly, nostack),
        );
    }
    p
}

/// The calling thread's word (a state or a cache pointer): the slot's offset from the GOT,
/// then one load relative to the thread pointer (`fs`), without forming the slot's address
/// (the initial-exec sequence the ABI documents; one load fewer than `*slot()`).
#[inline(always)]
pub fn get() -> usize {
    let v: usize;
    // SAFETY: as in `slot()`: the GOT holds the slot's offset from the thread pointer, and
    // `fs:[offset]` is this thread's 8-byte, 8-aligned TLS word, used only by this thread.
    // `readonly` (not `pure` alone): the value changes when `set` writes it.
    unsafe {
        asm!(
            "mov {0}, qword ptr [rip + oxmalloc_tsd_slot@GOTTPOFF]",
            "mov {0}, qword ptr fs:[{0}]",
            out(reg) v,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    v
}

/// Sets the calling thread's word.
#[inline(always)]
pub fn set(v: usize) {
    // SAFETY: as in `get`.
    unsafe { *slot() = v }
}

/// The pthread key whose destructor tears a thread's cache down (created once by `init`).
/// Sync: written once during init (before READY is published), read-only afterwards.
static mut KEY: libc::pthread_key_t = 0;
static KEY_OK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Creates the key (init, once). Without it caches still work; threads just never flush at exit.
pub fn create_key(destructor: unsafe extern "C" fn(*mut libc::c_void)) {
    // SAFETY: called once by `init` while no other thread reads KEY (READY not yet published).
    unsafe {
        if libc::pthread_key_create(&raw mut KEY, Some(destructor)) == 0 {
            KEY_OK.store(true, core::sync::atomic::Ordering::Release);
        }
    }
}

/// Registers `v` for the exit destructor of the calling thread (null: nothing to do at exit).
// `v` is stored, never dereferenced here (the destructor gets it back).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn register_exit(v: *mut libc::c_void) -> bool {
    if !KEY_OK.load(core::sync::atomic::Ordering::Acquire) {
        return false;
    }
    // SAFETY: KEY is initialized (KEY_OK) and never written again. pthread_setspecific may
    // call malloc (keys ≥ 32 need a second-level block); callers set the slot to BUSY first,
    // so that nested call is served without a cache.
    unsafe { libc::pthread_setspecific(KEY, v) == 0 }
}

// Not with `export`: the test binary's own allocations would then go through us and read
// the garbage this test stores in the slot as a cache pointer (`make test` builds unit tests
// without `export`).
#[cfg(all(test, not(feature = "export")))]
mod tests {
    use super::*;

    #[test]
    fn per_thread_and_zero_initialized() {
        set(12345);
        assert_eq!(get(), 12345);
        std::thread::spawn(|| {
            assert_eq!(get(), 0);
            set(7);
            assert_eq!(get(), 7);
        })
        .join()
        .unwrap();
        assert_eq!(get(), 12345);
        set(0);
    }
}
