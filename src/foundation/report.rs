//! Fatal error reports: one fixed line on stderr, then abort().
//!
//! Contract: never allocates, never formats through `core::fmt`; the line is
//! `oxmalloc: <func>(): <what> 0x<hex address>` and is a stable interface that
//! `ctests/misuse` matches. The set of errors is closed (`Misuse`).

use crate::foundation::sys;

/// The misuse kinds we detect on free-like calls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Misuse {
    /// A small region whose bitmap bit is already free, or a large block already freed.
    DoubleFree,
    /// Points inside a live block but not at its start.
    InteriorPointer,
    /// Outside every address range oxmalloc ever reserved.
    NotOurs,
    /// Inside oxmalloc's ranges but not at any live block (freed memory, metadata, slack).
    NotLive,
    /// A block in the thread cache lost the mark its free wrote: freed twice, or written
    /// after it was freed (found when the block is about to be handed out again).
    FreedBlockChanged,
    /// A sized free (`sdallocx`, sized `operator delete`) whose size does not belong to the
    /// block.
    SizeMismatch,
}

impl Misuse {
    pub const fn text(self) -> &'static str {
        match self {
            Misuse::DoubleFree => "double free",
            Misuse::InteriorPointer => "interior pointer",
            Misuse::NotOurs => "pointer not allocated by oxmalloc",
            Misuse::NotLive => "pointer not a live block",
            Misuse::FreedBlockChanged => "double free or write after free",
            Misuse::SizeMismatch => "size does not match the block",
        }
    }
}

/// Writes `0x<hex>` of `v` (lowercase, no padding, like printf's %p) into `buf` at `at`.
fn put_hex(buf: &mut [u8], mut at: usize, v: usize) -> usize {
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut x = v;
    loop {
        digits[n] = b"0123456789abcdef"[x & 15];
        n += 1;
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    for b in b"0x" {
        buf[at] = *b;
        at += 1;
    }
    while n > 0 {
        n -= 1;
        buf[at] = digits[n];
        at += 1;
    }
    at
}

fn put(buf: &mut [u8], at: usize, s: &[u8]) -> usize {
    let n = s.len().min(buf.len() - at);
    buf[at..at + n].copy_from_slice(&s[..n]);
    at + n
}

/// Builds the report line (exposed for tests).
pub fn format_line(buf: &mut [u8; 192], func: &str, what: &str, addr: usize) -> usize {
    let mut at = put(buf, 0, b"oxmalloc: ");
    at = put(buf, at, func.as_bytes());
    at = put(buf, at, b"(): ");
    at = put(buf, at, what.as_bytes());
    at = put(buf, at, b" ");
    at = put_hex(buf, at, addr);
    put(buf, at, b"\n")
}

/// Reports misuse of `addr` by the C call `func` and aborts.
#[cold]
#[inline(never)]
pub fn misuse(func: &str, kind: Misuse, addr: usize) -> ! {
    fatal_at(func, kind.text(), addr)
}

/// A misuse found while an allocator lock is held, reported (`report`) by whoever holds
/// the lock once it has released it: a report aborts, and a lock left held would deadlock
/// a SIGABRT handler that forks (fork takes every allocator lock) or allocates.
pub struct Found {
    pub func: &'static str,
    pub kind: Misuse,
    pub p: usize,
}

impl Found {
    #[cold]
    #[inline(never)]
    pub fn report(self) -> ! {
        misuse(self.func, self.kind, self.p)
    }
}

/// Reports `what` about `addr` in `func` and aborts.
#[cold]
#[inline(never)]
pub fn fatal_at(func: &str, what: &str, addr: usize) -> ! {
    let mut buf = [0u8; 192];
    let n = format_line(&mut buf, func, what, addr);
    sys::write_stderr(&buf[..n]);
    sys::abort()
}

/// Writes a fixed message line and aborts (internal invariant broken, out of metadata...).
#[cold]
#[inline(never)]
pub fn fatal(msg: &str) -> ! {
    sys::write_stderr(b"oxmalloc: ");
    sys::write_stderr(msg.as_bytes());
    sys::write_stderr(b"\n");
    sys::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let mut b = [0u8; 192];
        let n = format_line(&mut b, "free", Misuse::DoubleFree.text(), 0x7f00_1234_5678);
        assert_eq!(&b[..n], b"oxmalloc: free(): double free 0x7f0012345678\n");
        let n = format_line(&mut b, "realloc", Misuse::NotOurs.text(), 0);
        assert_eq!(&b[..n], b"oxmalloc: realloc(): pointer not allocated by oxmalloc 0x0\n");
    }
}
