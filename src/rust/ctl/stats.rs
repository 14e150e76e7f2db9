//! Statistics (`stats.*`, `stats.arenas.<i>.*`, `malloc_stats_print`).
//!
//! The figures are read live from the arenas (each arena's bins, then its page allocator,
//! under their locks one at a time), without a name lookup and without allocating. Their
//! definitions are jemalloc's: `allocated ≤ active ≤ resident` and `active ≤ mapped` hold in
//! every read.
//!
//! ```
//! use oxmalloc::ctl::stats;
//!
//! let s = stats::summary();
//! println!("{} bytes allocated, {} resident", s.allocated, s.resident);
//! eprintln!("{}", stats::print());
//! ```

use super::{Error, Result};
use crate::front::ctl::stats as live;
use crate::objects::arena as arenas;
use core::ffi::{c_char, c_void};

/// Bytes in blocks the program holds, thread-cached blocks included (`stats.allocated`).
///
/// ```
/// let n = oxmalloc::ctl::stats::allocated();
/// assert!(n <= oxmalloc::ctl::stats::active());
/// ```
pub fn allocated() -> usize {
    summary().allocated
}

/// Bytes in pages of live blocks: slabs with a block in use, and large blocks
/// (`stats.active`).
///
/// ```
/// assert!(oxmalloc::ctl::stats::active() <= oxmalloc::ctl::stats::mapped());
/// ```
pub fn active() -> usize {
    summary().active
}

/// Bytes of the allocator's own metadata (extent descriptors, page map, arenas, thread
/// caches) (`stats.metadata`).
///
/// ```
/// let _ = oxmalloc::ctl::stats::metadata();
/// ```
pub fn metadata() -> usize {
    summary().metadata
}

/// Bytes that may be resident: metadata, active pages, and free pages not yet returned to
/// the OS (`stats.resident`; an upper bound).
///
/// ```
/// assert!(oxmalloc::ctl::stats::active() <= oxmalloc::ctl::stats::resident());
/// ```
pub fn resident() -> usize {
    summary().resident
}

/// Bytes of address space mapped and in use or cached: metadata, active, dirty and muzzy
/// pages (`stats.mapped`).
///
/// ```
/// let _ = oxmalloc::ctl::stats::mapped();
/// ```
pub fn mapped() -> usize {
    summary().mapped
}

/// Bytes of address space kept after its pages were returned to the OS, for reuse
/// (`stats.retained`).
///
/// ```
/// let _ = oxmalloc::ctl::stats::retained();
/// ```
pub fn retained() -> usize {
    summary().retained
}

/// The process-wide figures of one read; each function of the same name reads one of them.
///
/// ```
/// let s = oxmalloc::ctl::stats::summary();
/// assert!(s.allocated <= s.active && s.active <= s.resident && s.active <= s.mapped);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// As [`allocated`].
    pub allocated: usize,
    /// As [`active`].
    pub active: usize,
    /// As [`metadata`].
    pub metadata: usize,
    /// As [`resident`].
    pub resident: usize,
    /// As [`mapped`].
    pub mapped: usize,
    /// As [`retained`].
    pub retained: usize,
}

/// All six process-wide figures from one pass over the arenas (cheaper than six calls, and
/// consistent with each other).
///
/// ```
/// let s = oxmalloc::ctl::stats::summary();
/// println!("allocated {} active {} resident {}", s.allocated, s.active, s.resident);
/// ```
pub fn summary() -> Summary {
    crate::front::init::ensure();
    let g = live::global();
    Summary {
        allocated: g.allocated,
        active: g.active,
        metadata: g.metadata,
        resident: g.resident,
        mapped: g.mapped,
        retained: g.retained,
    }
}

/// One arena's figures (`stats.arenas.<i>.*`), in bytes unless said otherwise.
///
/// ```
/// let a = oxmalloc::ctl::stats::arena(0).unwrap();
/// assert!(a.allocated <= a.active && a.active <= a.mapped);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Threads bound to the arena (a count).
    pub threads: u32,
    /// Bytes in blocks the program holds: `small_allocated + large_allocated`.
    pub allocated: usize,
    /// Bytes in small blocks (slab regions) handed out, thread-cached ones included.
    pub small_allocated: usize,
    /// Bytes in large blocks (whole pages) handed out, thread-cached ones included.
    pub large_allocated: usize,
    /// Bytes in pages of live slabs and large blocks.
    pub active: usize,
    /// Bytes in free pages still resident (not purged yet).
    pub dirty: usize,
    /// Bytes in free pages the OS may have reclaimed.
    pub muzzy: usize,
    /// Bytes of address space kept after purging.
    pub retained: usize,
    /// `active + dirty`.
    pub resident: usize,
    /// `active + dirty + muzzy`.
    pub mapped: usize,
}

/// The figures of arena `i` (an index from [`arenas::create`](super::arenas::create) or
/// [`thread::arena`](super::thread::arena)), or of all arenas merged for
/// [`arena::ALL`](super::arena::ALL).
///
/// Errors: [`NotFound`](Error::NotFound) for an arena that does not exist (yet).
///
/// ```
/// use oxmalloc::ctl::{arenas, stats, thread};
///
/// let pool_arena = arenas::create().unwrap();
/// std::thread::spawn(move || {
///     thread::set_arena(pool_arena).unwrap();
///     let v = vec![1u8; 1 << 20];
///     // Whether `v` is oxmalloc's depends on the program's global allocator.
///     let _ = stats::arena(pool_arena).unwrap().active;
///     drop(v);
/// })
/// .join()
/// .unwrap();
/// assert_eq!(stats::arena(pool_arena).unwrap().threads, 0);
/// ```
pub fn arena(i: u32) -> Result<ArenaStats> {
    crate::front::init::ensure();
    let s = if i == super::arena::ALL {
        live::merged()
    } else {
        live::arena(arenas::try_get(i as usize).ok_or(Error::NotFound)?)
    };
    let page = crate::foundation::util::PAGE;
    Ok(ArenaStats {
        threads: s.nthreads,
        allocated: s.small_allocated + s.large_allocated,
        small_allocated: s.small_allocated,
        large_allocated: s.large_allocated,
        active: s.pactive * page,
        dirty: s.pdirty * page,
        muzzy: s.pmuzzy * page,
        retained: s.pretained * page,
        resident: s.resident(),
        mapped: s.mapped(),
    })
}

/// `malloc_stats_print`'s report as a `String`: jemalloc's text layout (the general
/// settings, the totals, every arena with its size-class table).
///
/// The report is formatted in fragments of at most 4 KiB on the stack and appended between
/// statistics reads, never while an allocator lock is held, so growing the `String` (which
/// allocates) is safe even when this allocator is the program's global allocator.
///
/// ```
/// let report = oxmalloc::ctl::stats::print();
/// assert!(report.starts_with("___ Begin jemalloc statistics ___"));
/// ```
pub fn print() -> String {
    let mut s = String::new();
    print_with(b"", |fragment| s.push_str(&String::from_utf8_lossy(fragment)));
    s
}

/// `malloc_stats_print`'s report written to `w`, with jemalloc's option letters in `opts`:
/// `J` JSON instead of text; `g` without the general settings, `m` without the merged
/// arenas, `a` without the per-arena sections, `b` without the size-class rows (other
/// letters are accepted and ignored). The first write error stops the output and is
/// returned; `w` is flushed at the end. As for [`print`](fn@print), no allocator lock is held while
/// `w` is written to. A writer that panics ends the process (the report is produced by code
/// that cannot unwind).
///
/// ```
/// let mut json = Vec::new();
/// oxmalloc::ctl::stats::print_to(&mut json, "J").unwrap();
/// assert!(json.starts_with(b"{\"jemalloc\":"));
/// oxmalloc::ctl::stats::print_to(std::io::stderr(), "gba").unwrap();
/// ```
pub fn print_to<W: std::io::Write>(mut w: W, opts: &str) -> std::io::Result<()> {
    let mut err = None;
    print_with(opts.as_bytes(), |fragment| {
        if err.is_none() {
            if let Err(e) = w.write_all(fragment) {
                err = Some(e);
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => w.flush(),
    }
}

/// Runs `malloc_stats_print` with `f` called on each fragment.
fn print_with(opts: &[u8], mut f: impl FnMut(&[u8])) {
    let mut f: &mut dyn FnMut(&[u8]) = &mut f;
    crate::front::ctl::stats_print(Some(fragment), (&raw mut f) as *mut c_void, opts);
}

/// The report's callback: `opaque` is `print_with`'s `&mut dyn FnMut(&[u8])`.
///
/// # Safety
/// `opaque` points to that closure reference; `text` is a NUL-terminated fragment.
unsafe extern "C" fn fragment(opaque: *mut c_void, text: *const c_char) {
    // SAFETY: `print_with` passes a pointer to its closure reference, alive for the whole
    // report, and the report passes NUL-terminated fragments (`front::ctl::print`).
    let (f, text) = unsafe { (&mut *(opaque as *mut &mut dyn FnMut(&[u8])), core::ffi::CStr::from_ptr(text)) };
    f(text.to_bytes());
}
