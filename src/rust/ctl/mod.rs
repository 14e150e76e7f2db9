//! Statistics and controls of the allocator, typed: jemalloc's `mallctl` namespace as Rust
//! functions, covering what programs reach for in `tikv-jemalloc-ctl`.
//!
//! | call | jemalloc name | what |
//! |---|---|---|
//! | [`epoch::advance`] | `epoch` | bumps the epoch (statistics are live; kept for jemalloc habits) |
//! | [`stats::allocated`], [`stats::active`], [`stats::metadata`], [`stats::resident`], [`stats::mapped`], [`stats::retained`] | `stats.*` | process-wide figures, bytes |
//! | [`stats::summary`] | `stats.*` | the six in one pass |
//! | [`stats::arena`] | `stats.arenas.<i>.*` | one arena's footprint |
//! | [`stats::print`], [`stats::print_to`] | `malloc_stats_print` | the report, to a `String` or any `io::Write` |
//! | [`thread::allocated`], [`thread::deallocated`] | `thread.allocated`, `thread.deallocated` | this thread's byte counters |
//! | [`thread::allocatedp`], [`thread::deallocatedp`] | `thread.allocatedp`, `thread.deallocatedp` | a reader of the counter, no call per read |
//! | [`thread::arena`], [`thread::set_arena`] | `thread.arena` | the arena this thread allocates from |
//! | [`thread::flush`] | `thread.tcache.flush` | empties this thread's cache |
//! | [`arenas::create`] | `arenas.create` | a new arena, for [`thread::set_arena`] |
//! | [`arenas::count`] | `arenas.narenas` | arena count |
//! | [`arenas::lookup`] | `arenas.lookup` | the arena of a block (and whether it is oxmalloc's) |
//! | [`arena::purge`] | `arena.<i>.purge` | returns an arena's free pages to the OS |
//! | [`background_thread::get`], [`background_thread::set`] | `background_thread` | the background purging thread |
//! | [`version`] | `version` | the version string |
//!
//! Reads never allocate and never take a lock longer than a statistics snapshot needs; a
//! call that can fail returns [`Error`]. Statistics are read live: unlike jemalloc there is
//! no snapshot to refresh, so [`epoch::advance`] is not needed before a read.
//!
//! # Example
//!
//! ```
//! use oxmalloc::ctl::{epoch, stats};
//!
//! epoch::advance();
//! let s = stats::summary();
//! assert!(s.allocated <= s.active && s.active <= s.resident);
//! ```

pub mod stats;
pub mod thread;

use crate::front::ctl::{ctl_by_name, Req};
use core::fmt;
use core::mem::size_of;

/// Why a control call failed (jemalloc's `mallctl` error numbers, named).
///
/// # Example
///
/// ```
/// use oxmalloc::ctl::{arena, Error};
///
/// // Arena 200 was never created.
/// assert_eq!(arena::purge(200), Err(Error::NotFound));
/// assert_eq!(Error::NotFound.errno(), 2); // ENOENT
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No such control or no such index, e.g. an arena that does not exist (`ENOENT`).
    NotFound,
    /// A value the control does not accept (`EINVAL`).
    InvalidArgument,
    /// A read of a write-only control or a write of a read-only one (`EPERM`).
    NotPermitted,
    /// The operation could not be carried out, e.g. starting a background thread this build
    /// does not have, or binding to an arena past the table (`EFAULT`).
    Failed,
    /// Out of resources, e.g. no memory for another arena, or every arena slot taken
    /// (`EAGAIN`).
    OutOfResources,
    /// The calling thread has no thread cache (caching is off, or the thread is exiting), so
    /// it has no counters to point at.
    NoThreadCache,
    /// Any other error number.
    Other(i32),
}

impl Error {
    /// The `errno` value `mallctl` would return for this error.
    ///
    /// ```
    /// assert_eq!(oxmalloc::ctl::Error::OutOfResources.errno(), 11); // EAGAIN on Linux
    /// ```
    pub fn errno(self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::InvalidArgument => libc::EINVAL,
            Error::NotPermitted => libc::EPERM,
            Error::Failed => libc::EFAULT,
            Error::OutOfResources | Error::NoThreadCache => libc::EAGAIN,
            Error::Other(e) => e,
        }
    }

    fn from_errno(e: i32) -> Error {
        match e {
            libc::ENOENT => Error::NotFound,
            libc::EINVAL => Error::InvalidArgument,
            libc::EPERM => Error::NotPermitted,
            libc::EFAULT => Error::Failed,
            libc::EAGAIN => Error::OutOfResources,
            e => Error::Other(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such control or index"),
            Error::InvalidArgument => f.write_str("invalid argument"),
            Error::NotPermitted => f.write_str("operation not permitted on this control"),
            Error::Failed => f.write_str("the operation could not be carried out"),
            Error::OutOfResources => f.write_str("out of resources"),
            Error::NoThreadCache => f.write_str("the calling thread has no thread cache"),
            Error::Other(e) => write!(f, "mallctl error {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this module's [`Error`].
///
/// ```
/// fn pool_arena() -> oxmalloc::ctl::Result<u32> {
///     let a = oxmalloc::ctl::arenas::create()?;
///     oxmalloc::ctl::thread::set_arena(a)?;
///     Ok(a)
/// }
/// assert!(pool_arena().is_ok());
/// ```
pub type Result<T> = core::result::Result<T, Error>;

/// `mallctl(name, old, new)` with the buffers on the stack: reads into `old` when given,
/// writes `new` when given.
fn mallctl<R: Copy, W: Copy>(name: &[u8], old: Option<&mut R>, new: Option<&W>) -> Result<()> {
    let mut len = size_of::<R>();
    let (oldp, oldlenp) = match old {
        Some(r) => (r as *mut R as *mut u8, &raw mut len),
        None => (core::ptr::null_mut(), core::ptr::null_mut()),
    };
    let (newp, newlen) = match new {
        Some(w) => (w as *const W as *const u8, size_of::<W>()),
        None => (core::ptr::null(), 0),
    };
    ctl_by_name(name, &Req { oldp, oldlenp, newp, newlen }).map_err(Error::from_errno)
}

/// Reads control `name` of type `T` (`init`: the buffer's value before the read).
fn read<T: Copy>(name: &[u8], init: T) -> Result<T> {
    let mut v = init;
    mallctl::<T, u8>(name, Some(&mut v), None)?;
    Ok(v)
}

/// Writes `v` to control `name`.
fn write<T: Copy>(name: &[u8], v: T) -> Result<()> {
    mallctl::<u8, T>(name, None, Some(&v))
}

/// Runs action `name` (no value either way).
fn action(name: &[u8]) -> Result<()> {
    mallctl::<u8, u8>(name, None, None)
}

/// `prefix<i>suffix` in `buf` (no allocation); the name's bytes.
fn indexed_name<'a>(buf: &'a mut [u8; 64], prefix: &[u8], i: u32, suffix: &[u8]) -> &'a [u8] {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut x = i;
    loop {
        digits[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let mut at = 0;
    for &b in prefix.iter().chain(digits[..n].iter().rev()).chain(suffix) {
        buf[at] = b;
        at += 1;
    }
    &buf[..at]
}

/// The version string, jemalloc's form with oxmalloc's version (`"5.3.0-0-oxmalloc-0.1.0"`).
///
/// ```
/// assert!(oxmalloc::ctl::version().contains("oxmalloc"));
/// ```
pub fn version() -> &'static str {
    let p = read::<*const core::ffi::c_char>(b"version", core::ptr::null()).unwrap_or(core::ptr::null());
    if p.is_null() {
        return "";
    }
    // SAFETY: `version` reads a static NUL-terminated string.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_str().unwrap_or("")
}

/// The statistics epoch (`epoch`).
///
/// ```
/// use oxmalloc::ctl::{epoch, stats};
///
/// epoch::advance(); // what code written for jemalloc does before reading statistics
/// let _ = stats::allocated();
/// ```
pub mod epoch {
    /// Advances the epoch and returns its new value. jemalloc refreshes its statistics
    /// snapshot here; oxmalloc's statistics are read live, so this only counts, for code
    /// written against jemalloc.
    ///
    /// ```
    /// let a = oxmalloc::ctl::epoch::advance();
    /// let b = oxmalloc::ctl::epoch::advance();
    /// assert!(b > a);
    /// ```
    pub fn advance() -> u64 {
        let mut v = 0u64;
        match super::mallctl(b"epoch", Some(&mut v), Some(&1u64)) {
            Ok(()) => v,
            Err(_) => 0,
        }
    }
}

/// Arenas as a whole (`arenas.*`).
///
/// ```
/// use oxmalloc::ctl::arenas;
///
/// let before = arenas::count();
/// let a = arenas::create().unwrap();
/// assert!(arenas::count() > before && a < arenas::count());
/// ```
pub mod arenas {
    use super::Result;

    /// Creates an arena that no thread is bound to and returns its index, for
    /// [`thread::set_arena`](super::thread::set_arena): a service can bind a thread pool to
    /// its own arena and read that pool's footprint with [`stats::arena`](super::stats::arena).
    ///
    /// Errors: [`OutOfResources`](super::Error::OutOfResources) when all 256 arena slots are
    /// taken or no memory is left for the arena's metadata.
    ///
    /// ```
    /// let a = oxmalloc::ctl::arenas::create().unwrap();
    /// assert!(a >= 1);
    /// ```
    pub fn create() -> Result<u32> {
        super::read(b"arenas.create", 0u32)
    }

    /// The number of arenas: the automatic ones (one per CPU unless `narenas` says
    /// otherwise), created yet or not, and any made by [`create`].
    ///
    /// ```
    /// assert!(oxmalloc::ctl::arenas::count() >= 1);
    /// ```
    pub fn count() -> u32 {
        super::read(b"arenas.narenas", 0u32).unwrap_or(0)
    }

    /// The arena of the block that `ptr` points into; [`InvalidArgument`](super::Error::InvalidArgument)
    /// when oxmalloc did not allocate it (a pointer from the C library's `malloc`, the stack,
    /// a static). Nothing is read at `ptr`: any value may be passed.
    ///
    /// ```
    /// let b = Box::new(5u32);
    /// // Whether `b` is oxmalloc's depends on the program's global allocator.
    /// let _ = oxmalloc::ctl::arenas::lookup(&*b);
    /// static S: u32 = 0;
    /// assert!(oxmalloc::ctl::arenas::lookup(&S).is_err());
    /// ```
    pub fn lookup<T: ?Sized>(ptr: *const T) -> Result<u32> {
        let mut arena = 0u32;
        let p = ptr as *const u8;
        super::mallctl(b"arenas.lookup", Some(&mut arena), Some(&p))?;
        Ok(arena)
    }
}

/// One arena (`arena.<i>.*`).
///
/// ```
/// use oxmalloc::ctl::{arena, thread};
///
/// arena::purge(thread::arena().unwrap()).unwrap();
/// ```
pub mod arena {
    use super::Result;

    /// The index that means every arena (jemalloc's `MALLCTL_ARENAS_ALL`).
    ///
    /// ```
    /// oxmalloc::ctl::arena::purge(oxmalloc::ctl::arena::ALL).unwrap();
    /// ```
    pub const ALL: u32 = 4096;

    /// Returns arena `i`'s unused memory to the OS: first the calling thread's cached blocks
    /// go back to their arenas, then empty slabs are released and every free dirty page is
    /// purged. `i` may be [`ALL`].
    ///
    /// Errors: [`NotFound`](super::Error::NotFound) for an index past the arenas that exist.
    ///
    /// ```
    /// let v = vec![0u8; 1 << 20];
    /// drop(v);
    /// oxmalloc::ctl::arena::purge(0).unwrap();
    /// ```
    pub fn purge(i: u32) -> Result<()> {
        let mut buf = [0u8; 64];
        super::action(super::indexed_name(&mut buf, b"arena.", i, b".purge"))
    }
}

/// The background purging thread (`background_thread`).
///
/// Both calls go through the `background_thread` control. This build has no background
/// thread yet: [`get`](background_thread::get) returns `Ok(false)`,
/// [`set`](background_thread::set)`(false)` succeeds and `set(true)` fails with
/// [`Error::Failed`] (jemalloc's answer when the thread cannot be started). Once the
/// allocator gains the thread, the same calls start, stop and report it.
///
/// ```
/// use oxmalloc::ctl::{background_thread, Error};
///
/// match background_thread::set(true) {
///     Ok(()) => assert!(background_thread::get().unwrap()),
///     Err(e) => assert_eq!(e, Error::Failed), // not in this build
/// }
/// # let _ = background_thread::set(false);
/// ```
pub mod background_thread {
    use super::Result;

    /// Whether the background thread runs.
    ///
    /// ```
    /// let on = oxmalloc::ctl::background_thread::get().unwrap();
    /// # let _ = on;
    /// ```
    pub fn get() -> Result<bool> {
        super::read(b"background_thread", false)
    }

    /// Starts (`true`) or stops (`false`) the background thread.
    ///
    /// ```
    /// oxmalloc::ctl::background_thread::set(false).unwrap();
    /// ```
    pub fn set(on: bool) -> Result<()> {
        super::write(b"background_thread", on)
    }
}
