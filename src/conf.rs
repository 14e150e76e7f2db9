//! Options: jemalloc's `key:value,key:value` syntax, read at init from `MALLOC_CONF` and then
//! `OXMALLOC_CONF` (later settings win), without allocating.
//!
//! Contract: a known key with a valid value sets the option; an unknown key or a bad value
//! writes one warning line `oxmalloc: conf: invalid option "<text>"` and keeps the default
//! (with `abort_conf:true` such a line aborts instead). Options understood so far:
//! `narenas` (1..=256), `tcache` (true/false), `abort_conf`.
//!
//! Sync: `parse` runs once, inside init (single-threaded by the init state machine); the
//! results are stored into the modules' own atomics before READY is published.

use crate::sys;

/// Parsed values (None = not given).
#[derive(Default, Debug, PartialEq)]
pub struct Conf {
    pub narenas: Option<usize>,
    pub tcache: Option<bool>,
    pub abort_conf: bool,
    /// Invalid entries seen.
    pub errors: usize,
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"true" => Some(true),
        b"false" => Some(false),
        _ => None,
    }
}

fn parse_usize(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    let mut n = 0usize;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as usize;
    }
    Some(n)
}

impl Conf {
    /// Applies one `key:value,...` string; `warn` receives each invalid entry.
    pub fn parse(&mut self, s: &[u8], warn: &mut dyn FnMut(&[u8])) {
        for item in s.split(|&c| c == b',') {
            if item.is_empty() {
                continue;
            }
            let ok = match item.iter().position(|&c| c == b':') {
                Some(k) => {
                    let (key, val) = (&item[..k], &item[k + 1..]);
                    match key {
                        b"narenas" => match parse_usize(val) {
                            Some(n) if (1..=crate::arena::MAX_ARENAS).contains(&n) => {
                                self.narenas = Some(n);
                                true
                            }
                            _ => false,
                        },
                        b"tcache" => parse_bool(val).map(|b| self.tcache = Some(b)).is_some(),
                        b"abort_conf" => parse_bool(val).map(|b| self.abort_conf = b).is_some(),
                        _ => false,
                    }
                }
                None => false,
            };
            if !ok {
                self.errors += 1;
                warn(item);
            }
        }
    }
}

fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv neither allocates nor retains the name; the environment string it returns
    // stays valid as long as nobody calls setenv on that variable, and we copy out of it at
    // once (during init).
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
}

/// `abort_conf` as given. Sync: written once by init.
static ABORT_CONF: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

pub fn abort_conf() -> bool {
    ABORT_CONF.load(core::sync::atomic::Ordering::Relaxed)
}

/// Reads the environment and applies the options (init only).
pub fn load() {
    let mut c = Conf::default();
    let mut warn = |item: &[u8]| {
        sys::write_stderr(b"oxmalloc: conf: invalid option \"");
        sys::write_stderr(&item[..item.len().min(200)]);
        sys::write_stderr(b"\"\n");
    };
    for name in [c"MALLOC_CONF", c"OXMALLOC_CONF"] {
        if let Some(s) = env(name) {
            c.parse(s, &mut warn);
        }
    }
    if c.errors > 0 && c.abort_conf {
        crate::report::fatal("conf: invalid option and abort_conf:true");
    }
    ABORT_CONF.store(c.abort_conf, core::sync::atomic::Ordering::Relaxed);
    crate::arena::set_narenas(c.narenas.unwrap_or_else(crate::arena::default_narenas));
    crate::tcache::set_enabled(c.tcache.unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_flags_bad() {
        let mut c = Conf::default();
        let mut bad = std::vec::Vec::new();
        c.parse(b"narenas:3,tcache:false,,bogus:1,narenas:0,tcache:maybe,x", &mut |i| {
            bad.push(std::string::String::from_utf8_lossy(i).into_owned())
        });
        assert_eq!(c.narenas, Some(3));
        assert_eq!(c.tcache, Some(false));
        assert_eq!(bad, ["bogus:1", "narenas:0", "tcache:maybe", "x"]);
        assert_eq!(c.errors, 4);
    }
}
