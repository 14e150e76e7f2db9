//! Options: jemalloc's `key:value,key:value` syntax, read once at init, without allocating,
//! from (later sources win) the program's `malloc_conf` symbol, `MALLOC_CONF`, then
//! `OXMALLOC_CONF`.
//!
//! Contract: a known key with a valid value sets the option; an unknown key or a bad value
//! writes one line `oxmalloc: conf: invalid option "<text>"` and keeps the default; with
//! `abort_conf:true` (in any source) the process then aborts with
//! `oxmalloc: conf: invalid option and abort_conf:true`. Keys and what they do:
//! - `narenas:N` (1..=256; default one per CPU), `tcache:bool` (default true);
//! - `tcache_max:N` bytes: the largest size a thread cache keeps (default and maximum 256 KiB;
//!   every slab class up to 32 KiB is always cached); N up to jemalloc's limit of 8 MiB is
//!   valid (above 256 KiB it means 256 KiB), a larger N is a bad value;
//! - `zero_realloc:free|alloc|abort` — what `realloc(p, 0)` does (default free);
//! - `junk:false|true|alloc|free` — fill new blocks with 0xa5 and/or freed blocks with 0x5a
//!   (turns thread caches off so that every block passes the filling code);
//! - `stats_print:bool` — print `malloc_stats_print` output to stderr at exit;
//! - `stats_print_opts:letters` — the opts string of that output: as in jemalloc, each letter
//!   `malloc_stats_print` knows (`Jgmdablxeh`) is kept once, in order, across every
//!   occurrence and source; other characters are ignored;
//! - `abort_conf:bool`;
//! - `dirty_decay_ms:N`, `muzzy_decay_ms:N` (-1 never, 0 at once, else ms up to
//!   18446744073000, jemalloc's range; defaults 10000 and 0): how long freed pages stay
//!   dirty, then muzzy (`pages::decay`);
//! - `background_thread:bool` (default true) and `max_background_threads:N` (default 1; any
//!   value, clamped to 1..=64): the purge threads (`front::background`);
//! - `retain:true` only (address space is always kept).
//!
//! Sync: `load` runs once, inside init (single-threaded by the init state machine); results
//! go into the atomics below and the modules' own before READY is published.

use crate::foundation::sys;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, Ordering::Relaxed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroRealloc {
    Free = 0,
    Alloc = 1,
    Abort = 2,
}

/// Parsed values (None = not given).
#[derive(Default, Debug, PartialEq)]
pub struct Conf {
    pub narenas: Option<usize>,
    pub tcache: Option<bool>,
    pub tcache_max: Option<usize>,
    pub zero_realloc: Option<u8>,
    pub junk_alloc: Option<bool>,
    pub junk_free: Option<bool>,
    pub stats_print: Option<bool>,
    pub dirty_decay_ms: Option<isize>,
    pub muzzy_decay_ms: Option<isize>,
    pub background_thread: Option<bool>,
    pub max_background_threads: Option<usize>,
    /// `stats_print_opts` letters so far, NUL-padded.
    pub stats_print_opts: [u8; STATS_OPTS_CAP],
    pub abort_conf: bool,
    /// Invalid entries seen.
    pub errors: usize,
}

/// Largest valid `tcache_max` (jemalloc's TCACHE_MAXCLASS_LIMIT).
const TCACHE_MAX_LIMIT: usize = 8 << 20;

/// The letters `stats_print_opts` keeps (jemalloc's STATS_PRINT_OPTIONS).
const STATS_OPTS_LETTERS: &[u8] = b"Jgmdablxeh";
/// Room for every letter once, plus the terminating NUL.
pub const STATS_OPTS_CAP: usize = STATS_OPTS_LETTERS.len() + 1;

/// Appends to `opts` (NUL-terminated) each letter of `v` it lacks that `malloc_stats_print`
/// knows; other bytes are ignored.
fn add_stats_opts(opts: &mut [u8; STATS_OPTS_CAP], v: &[u8]) {
    for &c in v {
        let len = opts.iter().position(|&b| b == 0).unwrap_or(STATS_OPTS_CAP - 1);
        if STATS_OPTS_LETTERS.contains(&c) && !opts[..len].contains(&c) {
            opts[len] = c;
        }
    }
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"true" => Some(true),
        b"false" => Some(false),
        _ => None,
    }
}

/// Decimal, 0x hex or 0 octal (jemalloc reads with strtoumax base 0).
fn parse_usize(v: &[u8]) -> Option<usize> {
    let (digits, radix) = if v.len() > 2 && (v.starts_with(b"0x") || v.starts_with(b"0X")) {
        (&v[2..], 16)
    } else if v.len() > 1 && v[0] == b'0' {
        (&v[1..], 8)
    } else {
        (v, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)? as usize;
        n = n.checked_mul(radix as usize)?.checked_add(d)?;
    }
    Some(n)
}

/// The longest decay time, jemalloc's (`NSTIME_SEC_MAX` seconds in ms).
const MAX_DECAY_MS: usize = (u64::MAX / 1_000_000_000) as usize * 1000;

/// A decay time: -1, or 0 up to `MAX_DECAY_MS`.
fn parse_decay_ms(v: &[u8]) -> Option<isize> {
    match v {
        b"-1" => Some(-1),
        _ => parse_usize(v).and_then(|n| isize::try_from(n).ok()).filter(|&ms| decay_ms_valid(ms)),
    }
}

impl Conf {
    /// Applies one `key:value,...` string; `warn` receives each invalid entry.
    pub fn parse(&mut self, s: &[u8], warn: &mut dyn FnMut(&[u8])) {
        for item in s.split(|&c| c == b',') {
            if item.is_empty() {
                continue;
            }
            let ok = match item.iter().position(|&c| c == b':') {
                Some(k) => self.set(&item[..k], &item[k + 1..]),
                None => false,
            };
            if !ok {
                self.errors += 1;
                warn(item);
            }
        }
    }

    fn set(&mut self, key: &[u8], val: &[u8]) -> bool {
        fn put<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
            v.map(|v| *slot = Some(v)).is_some()
        }
        match key {
            b"narenas" => put(&mut self.narenas, parse_usize(val).filter(|n| (1..=crate::objects::arena::MAX_ARENAS).contains(n))),
            b"tcache" => put(&mut self.tcache, parse_bool(val)),
            b"tcache_max" => put(&mut self.tcache_max, parse_usize(val).filter(|&n| n <= TCACHE_MAX_LIMIT)),
            b"zero_realloc" => put(
                &mut self.zero_realloc,
                match val {
                    b"free" => Some(ZeroRealloc::Free as u8),
                    b"alloc" => Some(ZeroRealloc::Alloc as u8),
                    b"abort" => Some(ZeroRealloc::Abort as u8),
                    _ => None,
                },
            ),
            b"junk" => {
                let (a, f) = match val {
                    b"true" => (true, true),
                    b"false" => (false, false),
                    b"alloc" => (true, false),
                    b"free" => (false, true),
                    _ => return false,
                };
                self.junk_alloc = Some(a);
                self.junk_free = Some(f);
                true
            }
            b"stats_print" => put(&mut self.stats_print, parse_bool(val)),
            b"stats_print_opts" => {
                add_stats_opts(&mut self.stats_print_opts, val);
                true
            }
            b"abort_conf" => parse_bool(val).map(|b| self.abort_conf = b).is_some(),
            b"retain" => val == b"true",
            b"background_thread" => put(&mut self.background_thread, parse_bool(val)),
            b"max_background_threads" => put(&mut self.max_background_threads, parse_usize(val)),
            b"dirty_decay_ms" => put(&mut self.dirty_decay_ms, parse_decay_ms(val)),
            b"muzzy_decay_ms" => put(&mut self.muzzy_decay_ms, parse_decay_ms(val)),
            _ => false,
        }
    }
}

// Values in force. Sync: written once by `load` during init, read-only afterwards.
static ABORT_CONF: AtomicBool = AtomicBool::new(false);
static ZERO_REALLOC: AtomicU8 = AtomicU8::new(ZeroRealloc::Free as u8);
static JUNK_ALLOC: AtomicBool = AtomicBool::new(false);
static JUNK_FREE: AtomicBool = AtomicBool::new(false);
static STATS_PRINT: AtomicBool = AtomicBool::new(false);
static DIRTY_DECAY_MS: AtomicIsize = AtomicIsize::new(crate::pages::decay::DEFAULT_DIRTY_MS);
static MUZZY_DECAY_MS: AtomicIsize = AtomicIsize::new(crate::pages::decay::DEFAULT_MUZZY_MS);

/// `opt.dirty_decay_ms`, `opt.muzzy_decay_ms`.
pub fn decay_ms() -> (isize, isize) {
    (DIRTY_DECAY_MS.load(Relaxed), MUZZY_DECAY_MS.load(Relaxed))
}

/// Whether `ms` is a decay time jemalloc accepts (`parse_decay_ms`'s range).
pub fn decay_ms_valid(ms: isize) -> bool {
    ms == -1 || (ms >= 0 && ms as usize <= MAX_DECAY_MS)
}

/// `stats_print_opts`, NUL-terminated (the last byte always stays 0).
static STATS_PRINT_OPTS: [AtomicU8; STATS_OPTS_CAP] = [const { AtomicU8::new(0) }; STATS_OPTS_CAP];

pub fn abort_conf() -> bool {
    ABORT_CONF.load(Relaxed)
}

pub fn zero_realloc() -> ZeroRealloc {
    match ZERO_REALLOC.load(Relaxed) {
        1 => ZeroRealloc::Alloc,
        2 => ZeroRealloc::Abort,
        _ => ZeroRealloc::Free,
    }
}

pub fn junk_alloc() -> bool {
    JUNK_ALLOC.load(Relaxed)
}

pub fn junk_free() -> bool {
    JUNK_FREE.load(Relaxed)
}

pub fn stats_print() -> bool {
    STATS_PRINT.load(Relaxed)
}

/// `stats_print_opts` as a NUL-terminated C string (`opt.stats_print_opts`).
pub fn stats_print_opts_ptr() -> *const core::ffi::c_char {
    STATS_PRINT_OPTS.as_ptr() as *const core::ffi::c_char
}

/// `stats_print_opts`' letters, into `buf`; returns how many.
pub fn stats_print_opts(buf: &mut [u8; STATS_OPTS_CAP]) -> usize {
    let mut n = 0;
    while n < STATS_OPTS_CAP - 1 {
        let c = STATS_PRINT_OPTS[n].load(Relaxed);
        if c == 0 {
            break;
        }
        buf[n] = c;
        n += 1;
    }
    n
}

/// The text of `opt.junk`.
pub fn junk_name() -> &'static core::ffi::CStr {
    match (junk_alloc(), junk_free()) {
        (true, true) => c"true",
        (true, false) => c"alloc",
        (false, true) => c"free",
        (false, false) => c"false",
    }
}

fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv neither allocates nor retains the name; the environment string it returns
    // stays valid as long as nobody calls setenv on that variable, and we only read it during
    // init.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
}

/// Reads the sources and applies the options (init only).
pub fn load() {
    let mut c = Conf::default();
    let mut warn = |item: &[u8]| {
        sys::write_stderr(b"oxmalloc: conf: invalid option \"");
        sys::write_stderr(&item[..item.len().min(200)]);
        sys::write_stderr(b"\"\n");
    };
    if let Some(s) = crate::front::malloc_conf::program_malloc_conf() {
        c.parse(s, &mut warn);
    }
    for name in [c"MALLOC_CONF", c"OXMALLOC_CONF"] {
        if let Some(s) = env(name) {
            c.parse(s, &mut warn);
        }
    }
    if c.errors > 0 && c.abort_conf {
        crate::foundation::report::fatal("conf: invalid option and abort_conf:true");
    }
    ABORT_CONF.store(c.abort_conf, Relaxed);
    ZERO_REALLOC.store(c.zero_realloc.unwrap_or(0), Relaxed);
    let junk = c.junk_alloc.unwrap_or(false) || c.junk_free.unwrap_or(false);
    JUNK_ALLOC.store(c.junk_alloc.unwrap_or(false), Relaxed);
    JUNK_FREE.store(c.junk_free.unwrap_or(false), Relaxed);
    STATS_PRINT.store(c.stats_print.unwrap_or(false), Relaxed);
    for (slot, &b) in STATS_PRINT_OPTS.iter().zip(c.stats_print_opts.iter()) {
        slot.store(b, Relaxed);
    }
    if let Some(m) = c.tcache_max {
        crate::tcache::set_max(m);
    }
    crate::objects::arena::set_narenas(c.narenas.unwrap_or_else(crate::objects::arena::default_narenas));
    let dirty_ms = c.dirty_decay_ms.unwrap_or(crate::pages::decay::DEFAULT_DIRTY_MS);
    let muzzy_ms = c.muzzy_decay_ms.unwrap_or(crate::pages::decay::DEFAULT_MUZZY_MS);
    DIRTY_DECAY_MS.store(dirty_ms, Relaxed);
    MUZZY_DECAY_MS.store(muzzy_ms, Relaxed);
    crate::pages::decay::set_arena_defaults(dirty_ms, muzzy_ms);
    // Arena 0 is a static, made with the built-in defaults.
    crate::objects::arena::get(0).pac.set_decay_ms(Some(dirty_ms), Some(muzzy_ms));
    crate::front::background::configure(c.background_thread.unwrap_or(true), c.max_background_threads.unwrap_or(1));
    crate::tcache::set_enabled(c.tcache.unwrap_or(true) && !junk);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Conf, std::vec::Vec<std::string::String>) {
        let mut c = Conf::default();
        let mut bad = std::vec::Vec::new();
        c.parse(s.as_bytes(), &mut |i| bad.push(std::string::String::from_utf8_lossy(i).into_owned()));
        (c, bad)
    }

    #[test]
    fn parses_known_and_flags_bad() {
        let (c, bad) = parse("narenas:3,tcache:false,,bogus:1,narenas:0,tcache:maybe,x");
        assert_eq!(c.narenas, Some(3));
        assert_eq!(c.tcache, Some(false));
        assert_eq!(bad, ["bogus:1", "narenas:0", "tcache:maybe", "x"]);
        assert_eq!(c.errors, 4);
    }

    #[test]
    fn every_option() {
        let (c, bad) = parse(
            "tcache_max:0x1000,zero_realloc:alloc,junk:free,stats_print:true,abort_conf:true,\
             retain:true,background_thread:false,dirty_decay_ms:-1,muzzy_decay_ms:0,narenas:010,\
             max_background_threads:0",
        );
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(c.tcache_max, Some(4096));
        assert_eq!(c.zero_realloc, Some(ZeroRealloc::Alloc as u8));
        assert_eq!((c.junk_alloc, c.junk_free), (Some(false), Some(true)));
        assert_eq!(c.stats_print, Some(true));
        assert!(c.abort_conf);
        assert_eq!(c.narenas, Some(8));
        assert_eq!((c.background_thread, c.max_background_threads), (Some(false), Some(0)));
        assert_eq!((c.dirty_decay_ms, c.muzzy_decay_ms), (Some(-1), Some(0)));
        let (c, bad) = parse("background_thread:true,dirty_decay_ms:0x10,muzzy_decay_ms:18446744073000,max_background_threads:99999");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!((c.dirty_decay_ms, c.muzzy_decay_ms, c.max_background_threads), (Some(16), Some(18446744073000), Some(99999)));
        let (_, bad) = parse(
            "retain:false,zero_realloc:x,junk:yes,dirty_decay_ms:-2,muzzy_decay_ms:18446744073001,\
             dirty_decay_ms:,background_thread:1,max_background_threads:-1",
        );
        assert_eq!(bad.len(), 8, "{bad:?}");
    }

    #[test]
    fn tcache_max_range() {
        let (c, bad) = parse("tcache_max:8388608");
        assert!(bad.is_empty());
        assert_eq!(c.tcache_max, Some(8 << 20));
        let (c, bad) = parse("tcache_max:65536,tcache_max:4294967296,tcache_max:8388609");
        assert_eq!(bad, ["tcache_max:4294967296", "tcache_max:8388609"]);
        assert_eq!(c.tcache_max, Some(65536), "a bad value keeps the last good one");
    }

    #[test]
    fn stats_print_opts_accumulate() {
        let (c, bad) = parse("stats_print_opts:gzJJ,stats_print_opts:,stats_print_opts:aJgmdablxeh~");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(&c.stats_print_opts, b"gJamdblxeh\0");
        let (c, _) = parse("stats_print_opts:q");
        assert_eq!(c.stats_print_opts, [0; STATS_OPTS_CAP]);
    }
}
