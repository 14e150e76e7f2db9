//! The OS interface: the only file that calls mmap, munmap, mremap, madvise, mincore, futex,
//! write, abort and errno.
//!
//! Contract: every function here is async-signal-safe in the sense that it never allocates
//! and never takes a lock; each states its preconditions. Failures are reported as return
//! values, never by panicking. Functions that make a system call on a path where the
//! caller's `errno` must survive (`free`) save and restore it themselves.

use crate::foundation::util::{PAGE, PAGE_MASK};

/// Reserves `size` bytes (page multiple, > 0) of fresh, zero-filled, read-write anonymous
/// memory. The kernel commits pages on first touch, so untouched pages cost no RSS.
/// Returns null on failure (errno is left as mmap set it; callers turn it into ENOMEM).
pub fn reserve(size: usize) -> *mut u8 {
    debug_assert!(size > 0 && size & PAGE_MASK == 0);
    // SAFETY: anonymous private mapping at an address of the kernel's choosing; no existing
    // memory is affected.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        core::ptr::null_mut()
    } else {
        p as *mut u8
    }
}

/// Unmaps `[addr, addr+size)`, a whole range `reserve` returned that holds nothing (a
/// reservation the caller could not put to use). Preserves errno.
pub fn release(addr: usize, size: usize) {
    debug_assert!(addr & PAGE_MASK == 0 && size & PAGE_MASK == 0 && size > 0);
    let saved = errno();
    // SAFETY: the range is a mapping of ours that nothing references (precondition).
    unsafe { libc::munmap(addr as *mut libc::c_void, size) };
    set_errno(saved);
}

/// Gives the physical pages of `[addr, addr+size)` back to the OS (MADV_DONTNEED): RSS drops
/// at once, the range stays mapped and reads back as zeros. Preconditions: page-aligned
/// range inside a mapping made by `reserve`. Returns false if the kernel refused.
/// Preserves errno.
pub fn purge_forced(addr: usize, size: usize) -> bool {
    debug_assert!(addr & PAGE_MASK == 0 && size & PAGE_MASK == 0 && size >= PAGE);
    let saved = errno();
    // SAFETY: the range is ours (precondition) and holds no live objects; DONTNEED on a
    // private anonymous mapping only drops page contents.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, size, libc::MADV_DONTNEED) };
    set_errno(saved);
    rc == 0
}

/// Lets the OS take the physical pages of `[addr, addr+size)` when it needs memory
/// (MADV_FREE): until then they stay resident and keep their contents; a write cancels the
/// free of the page written. Same preconditions as `purge_forced`. Returns false if the
/// kernel refused (kernels before 4.5 lack MADV_FREE). Preserves errno.
pub fn purge_lazy(addr: usize, size: usize) -> bool {
    debug_assert!(addr & PAGE_MASK == 0 && size & PAGE_MASK == 0 && size >= PAGE);
    let saved = errno();
    // SAFETY: as in `purge_forced`.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, size, libc::MADV_FREE) };
    set_errno(saved);
    rc == 0
}

/// Whether the page at `addr` (page-aligned, inside a mapping of ours) is resident
/// (mincore); false if the kernel refuses to say. Preserves errno.
pub fn resident(addr: usize) -> bool {
    debug_assert!(addr & PAGE_MASK == 0);
    let saved = errno();
    let mut v: u8 = 0;
    // SAFETY: one page of a mapping of ours; `v` has room for that one page's byte.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, PAGE, &mut v) };
    set_errno(saved);
    rc == 0 && v & 1 != 0
}

/// What `move_pages` did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Moved {
    /// The pages moved.
    Yes,
    /// Nothing changed.
    No,
    /// Nothing moved, and the destination range could not be mapped again after the kernel
    /// refused: it must never be used (the caller keeps it allocated).
    DestinationLost,
}

/// Moves the pages of `[from, from+len)` to `[to, to+len)` without copying them: the
/// destination's own pages are dropped, and the source range stays mapped and reads back
/// as zeros (`mremap` with `MREMAP_FIXED | MREMAP_DONTUNMAP`, Linux 5.7 and later).
/// Preconditions: both ranges page-aligned, not overlapping, inside mappings made by
/// `reserve`, holding no object anyone else uses. The kernel refuses when the source spans
/// two mappings, when the process has too many, or on an older kernel; since a refused
/// `MREMAP_FIXED` may already have unmapped the destination, the destination is then mapped
/// again (fresh zero pages), and `DestinationLost` reported if even that fails. Preserves
/// errno.
pub fn move_pages(from: usize, to: usize, len: usize) -> Moved {
    debug_assert!(from & PAGE_MASK == 0 && to & PAGE_MASK == 0 && len & PAGE_MASK == 0 && len >= PAGE);
    debug_assert!(from + len <= to || to + len <= from);
    let saved = errno();
    // SAFETY: both ranges are ours and hold nothing anyone reads (preconditions); the source
    // keeps its mapping (DONTUNMAP), the destination's mapping is replaced.
    let r = unsafe {
        libc::mremap(
            from as *mut libc::c_void,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
            to as *mut libc::c_void,
        )
    };
    let moved = if r == to as *mut libc::c_void {
        Moved::Yes
    } else {
        // SAFETY: the destination is ours and unused; MAP_FIXED over it maps fresh zero pages
        // whether or not the refused call unmapped it.
        let m = unsafe {
            libc::mmap(
                to as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if m == to as *mut libc::c_void { Moved::No } else { Moved::DestinationLost }
    };
    set_errno(saved);
    moved
}

/// The calling thread's errno.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns the calling thread's valid errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
#[inline]
pub fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = v }
}

/// Blocks while `*word == expected` (FUTEX_WAIT, private). Spurious wake-ups are allowed.
/// Preserves errno.
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    let saved = errno();
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
    set_errno(saved);
}

/// Blocks while `*word == expected`, for at most `ns` nanoseconds (None: no limit).
/// Spurious wake-ups are allowed. Preserves errno.
pub fn futex_wait_for(word: &core::sync::atomic::AtomicU32, expected: u32, ns: Option<u64>) {
    let saved = errno();
    let ts = ns.map(|ns| libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as libc::c_long });
    let tsp = ts.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 and `tsp` null or a valid relative timeout for
    // the duration of the call.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, tsp);
    }
    set_errno(saved);
}

/// Wakes one waiter on `word` (FUTEX_WAKE, private). Preserves errno.
pub fn futex_wake_one(word: &core::sync::atomic::AtomicU32) {
    let saved = errno();
    // SAFETY: `word` is a valid, aligned u32.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
    set_errno(saved);
}

/// Writes all of `bytes` to stderr (fd 2), retrying on short writes; errors are ignored.
pub fn write_stderr(bytes: &[u8]) {
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: the pointer and length describe the live slice `bytes[off..]`.
        let n = unsafe {
            libc::write(2, bytes.as_ptr().add(off) as *const libc::c_void, bytes.len() - off)
        };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}

/// Ends the process with SIGABRT (the C `abort()`).
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

/// The page size the kernel reports (from the auxiliary vector; does not allocate).
pub fn os_page_size() -> usize {
    // SAFETY: getauxval has no preconditions.
    let v = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    if v == 0 {
        PAGE
    } else {
        v
    }
}

/// The number of online CPUs (sched_getaffinity through the raw syscall; never allocates).
pub fn ncpus() -> usize {
    let mut set = [0u64; 16];
    // SAFETY: the buffer is 1024 bits long and we pass its exact size.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            core::mem::size_of_val(&set),
            set.as_mut_ptr(),
        )
    };
    if n <= 0 {
        return 1;
    }
    let c: u32 = set.iter().map(|w| w.count_ones()).sum();
    if c == 0 {
        1
    } else {
        c as usize
    }
}
