//! The calling thread's counters, arena and cache (`thread.*`).
//!
//! The counters live in the thread's cache, which the thread gets on its first allocation
//! and keeps until it exits: [`allocated`] and [`deallocated`] read them directly (a TLS load
//! and a field load, no name lookup), and [`allocatedp`] and [`deallocatedp`] hand out a
//! reader bound to the counter for code that reads it often. Blocks allocated while a thread
//! has no cache (caching turned off by the `tcache:false` option) are not counted.
//!
//! ```
//! use oxmalloc::ctl::thread;
//!
//! let (allocated, freed) = (thread::allocated(), thread::deallocated());
//! println!("this thread allocated {allocated} bytes and freed {freed}");
//! ```

use super::{Error, Result};
use crate::tcache::{self, tsd, Tcache};
use core::marker::PhantomData;

/// The calling thread's cache, if it has one (none is created).
#[inline(always)]
fn cache() -> Option<*const Tcache> {
    let t = tsd::get();
    (t > tsd::LAST_SENTINEL).then_some(t as *const Tcache)
}

/// Bytes this thread has allocated so far, in usable sizes (`thread.allocated`); 0 before
/// its first allocation.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;
///
/// fn main() {
///     let before = oxmalloc::ctl::thread::allocated();
///     // black_box: the compiler may leave out an allocation that nothing reads.
///     let v = std::hint::black_box(vec![0u8; 1000]);
///     assert!(oxmalloc::ctl::thread::allocated() >= before + 1000);
///     drop(v);
/// }
/// ```
#[inline]
pub fn allocated() -> u64 {
    match cache() {
        // SAFETY: this thread's live cache; only this thread writes the counter.
        Some(t) => unsafe { core::ptr::read_volatile(&raw const (*t).allocated) },
        None => 0,
    }
}

/// Bytes this thread has freed so far, in usable sizes (`thread.deallocated`); blocks of
/// other threads count for the thread that frees them.
///
/// ```
/// let freed = oxmalloc::ctl::thread::deallocated();
/// # let _ = freed;
/// ```
#[inline]
pub fn deallocated() -> u64 {
    match cache() {
        // SAFETY: as in `allocated`.
        Some(t) => unsafe { core::ptr::read_volatile(&raw const (*t).deallocated) },
        None => 0,
    }
}

/// A reader of one of the calling thread's counters (jemalloc's `thread.allocatedp` /
/// `thread.deallocatedp` pointers): [`get`](ThreadCounter::get) is one load, no call into
/// the allocator. It belongs to the thread that made it (it is neither `Send` nor `Sync`)
/// and stays valid for that thread's life.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;
///
/// fn main() {
///     let allocated = oxmalloc::ctl::thread::allocatedp().unwrap();
///     let before = allocated.get();
///     let s = std::hint::black_box(String::from("a string long enough to allocate"));
///     assert!(allocated.get() > before);
///     drop(s);
/// }
/// ```
#[derive(Debug)]
pub struct ThreadCounter {
    counter: *const u64,
    /// Not `Send`/`Sync`: the counter is this thread's.
    _thread: PhantomData<*const ()>,
}

impl ThreadCounter {
    /// The counter's current value.
    ///
    /// ```
    /// let d = oxmalloc::ctl::thread::deallocatedp().unwrap();
    /// let _bytes_freed_by_this_thread: u64 = d.get();
    /// ```
    #[inline]
    pub fn get(&self) -> u64 {
        // SAFETY: `counter` points into this thread's cache (the type is not Send), which
        // stays in place while the thread lives; only this thread writes it. A cache is
        // never unmapped, so even after `thread.tcache.enabled` turned caching off the read
        // is of valid memory (then no longer this thread's counter).
        unsafe { core::ptr::read_volatile(self.counter) }
    }
}

/// The calling thread's cache, created if this thread has none yet.
fn cache_or_create() -> Result<&'static mut Tcache> {
    crate::front::init::ensure();
    tcache::current().ok_or(Error::NoThreadCache)
}

/// A reader of this thread's [`allocated`] counter (`thread.allocatedp`).
///
/// Errors: [`NoThreadCache`](Error::NoThreadCache) when the thread has no cache (the
/// `tcache:false` option, or a call from a thread's exit handlers after its cache was torn
/// down).
///
/// ```
/// let a = oxmalloc::ctl::thread::allocatedp().unwrap();
/// assert_eq!(a.get(), oxmalloc::ctl::thread::allocated());
/// ```
pub fn allocatedp() -> Result<ThreadCounter> {
    let t = cache_or_create()?;
    Ok(ThreadCounter { counter: &raw const t.allocated, _thread: PhantomData })
}

/// A reader of this thread's [`deallocated`] counter (`thread.deallocatedp`); errors as
/// [`allocatedp`].
///
/// ```
/// let d = oxmalloc::ctl::thread::deallocatedp().unwrap();
/// assert_eq!(d.get(), oxmalloc::ctl::thread::deallocated());
/// ```
pub fn deallocatedp() -> Result<ThreadCounter> {
    let t = cache_or_create()?;
    Ok(ThreadCounter { counter: &raw const t.deallocated, _thread: PhantomData })
}

/// The arena this thread allocates from (`thread.arena`).
///
/// ```
/// let a = oxmalloc::ctl::thread::arena().unwrap();
/// assert!(a < oxmalloc::ctl::arenas::count());
/// ```
pub fn arena() -> Result<u32> {
    super::read(b"thread.arena", 0u32)
}

/// Makes this thread allocate from arena `i` from now on (`thread.arena`); its cached blocks
/// go back to their arena first. Blocks it frees go back to the arena they came from,
/// whichever that is. An arena that does not exist yet is created.
///
/// Errors: [`Failed`](Error::Failed) for an index past the arena table (256), when no memory
/// is left to create the arena, or when the thread has no cache.
///
/// ```
/// use oxmalloc::ctl::{arenas, thread};
///
/// let mine = arenas::create().unwrap();
/// thread::set_arena(mine).unwrap();
/// assert_eq!(thread::arena().unwrap(), mine);
/// ```
pub fn set_arena(i: u32) -> Result<()> {
    super::write(b"thread.arena", i)
}

/// Empties this thread's cache: every cached block goes back to its arena
/// (`thread.tcache.flush`).
///
/// Errors: [`Failed`](Error::Failed) when the thread has no cache.
///
/// ```
/// let v = vec![0u8; 100];
/// drop(v);
/// oxmalloc::ctl::thread::flush().unwrap();
/// ```
pub fn flush() -> Result<()> {
    super::action(b"thread.tcache.flush")
}
