//! The crate as a Rust program's allocator: this test binary's global allocator is
//! `oxmalloc::OxMalloc`, so everything it allocates, the test harness included, comes from
//! oxmalloc. Workloads of the standard collections on several threads, with blocks dropped by
//! other threads than the ones that made them, are checked through `oxmalloc::ctl` to be
//! oxmalloc's; every alignment a `Layout` can take is allocated, zeroed, resized and freed;
//! running out of memory returns an error; a sized free with a wrong size aborts.
//!
//! Built with default features (`make test`: no C symbol exported, so `libc::malloc` stays
//! the C library's) and again with `--features export` (the binary exports the C ABI, so C
//! code in it allocates from oxmalloc too); `c_code_*` checks whichever applies.

#[global_allocator]
static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;

use oxmalloc::ctl::{self, arena, arenas, background_thread, epoch, stats, thread, Error};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::mpsc;

/// What one worker builds: maps and strings of every size class, large buffers too.
struct Work {
    index: HashMap<String, Vec<u64>>,
    tree: BTreeMap<u64, String>,
    text: String,
}

fn build(seed: u64, n: u64) -> Work {
    let mut index: HashMap<String, Vec<u64>> = HashMap::new();
    let mut tree = BTreeMap::new();
    let mut text = String::new();
    for i in 0..n {
        let key = format!("key-{}-{}", seed, i % (n / 4 + 1));
        index.entry(key).or_default().extend((0..(i % 37)).map(|k| k * seed));
        tree.insert(i * 7 + seed, "x".repeat((i % 300) as usize));
        text.push_str(&i.to_string());
    }
    Work { index, tree, text }
}

fn checksum(w: &Work) -> u64 {
    let a: u64 = w.index.values().map(|v| v.iter().sum::<u64>() + v.len() as u64).sum();
    let b: u64 = w.tree.iter().map(|(k, v)| k + v.len() as u64).sum();
    a.wrapping_add(b).wrapping_add(w.text.len() as u64)
}

/// Threads bound to an arena of their own build and drop collections; half of what they
/// build is dropped by a consumer thread (cross-thread frees through a channel). The arena's
/// statistics must show the workload's memory while it is held and lose it once everything
/// is dropped and the caches are flushed; each thread's counters must count its blocks, and
/// the blocks must resolve to the arena through `arenas::lookup`.
#[test]
fn collections_on_threads_are_oxmallocs() {
    let pool = arenas::create().expect("arenas.create");
    let base = stats::arena(pool).unwrap().allocated;
    let (tx, rx) = mpsc::sync_channel::<(u64, Work)>(2);
    let consumer = std::thread::spawn(move || {
        thread::set_arena(pool).unwrap();
        let freed = thread::deallocatedp().unwrap();
        let before = freed.get();
        let mut n = 0;
        for (sum, w) in rx {
            assert_eq!(checksum(&w), sum);
            drop(w);
            n += 1;
        }
        assert!(freed.get() > before, "the consumer's frees were not counted");
        thread::flush().unwrap();
        n
    });
    let workers: Vec<_> = (1..=4u64)
        .map(|seed| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                thread::set_arena(pool).unwrap();
                assert_eq!(thread::arena().unwrap(), pool);
                let allocated = thread::allocatedp().unwrap();
                let mut peak = 0;
                for round in 0..6 {
                    let before = allocated.get();
                    let w = build(seed * 100 + round, 20_000);
                    let grew = allocated.get() - before;
                    // At least the text and the map values' buffers.
                    assert!(grew as usize >= w.text.len() + 8 * w.index.values().map(Vec::len).sum::<usize>());
                    for v in w.index.values().take(50) {
                        if v.capacity() > 0 {
                            assert_eq!(arenas::lookup(v.as_ptr()), Ok(pool));
                        }
                    }
                    assert_eq!(arenas::lookup(w.text.as_ptr()), Ok(pool));
                    peak = peak.max(stats::arena(pool).unwrap().allocated);
                    if round % 2 == 0 {
                        tx.send((checksum(&w), w)).unwrap();
                    } else {
                        let mut s = String::new();
                        for (k, v) in w.tree.iter().take(2000) {
                            s.push_str(v);
                            s.push_str(&k.to_string());
                        }
                        assert!(s.len() > 2000);
                        drop(w);
                    }
                }
                thread::flush().unwrap();
                peak
            })
        })
        .collect();
    drop(tx);
    let peak = workers.into_iter().map(|h| h.join().unwrap()).max().unwrap();
    assert_eq!(consumer.join().unwrap(), 12);
    let after = stats::arena(pool).unwrap();
    assert!(peak > base + (4 << 20), "arena {pool} held {peak} bytes at most (from {base})");
    assert!(after.allocated < base + (1 << 20), "arena {pool} still holds {} bytes", after.allocated);
    assert_eq!(after.threads, 0);
    arena::purge(pool).unwrap();
}

fn fill(p: *mut u8, n: usize, tag: u8) {
    // SAFETY: callers pass a live block of at least n bytes.
    unsafe { core::ptr::write_bytes(p, tag, n.min(1 << 16)) }
}

fn check(p: *const u8, n: usize, tag: u8) {
    for i in 0..n.min(1 << 16) {
        // SAFETY: as in `fill`.
        assert_eq!(unsafe { *p.add(i) }, tag, "block {p:p} of {n} bytes changed at {i}");
    }
}

/// Every alignment from 1 to 4 MiB with sizes around the class and page boundaries: aligned,
/// zeroed when asked (after the same memory was dirtied), resized up and down with contents
/// and alignment kept, freed with the layout it has.
#[test]
fn every_layout() {
    let sizes = [1usize, 7, 8, 15, 16, 17, 24, 100, 1000, 4095, 4096, 5000, 12993, 32768, 32769, 40000, 300_000, 3 << 20];
    for lg in 0..=22 {
        let align = 1usize << lg;
        for &size in &sizes {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; every block is freed with the layout it has.
            unsafe {
                let p = alloc(layout);
                assert!(!p.is_null(), "{size} at {align}");
                assert_eq!(p as usize % align, 0, "{size} at {align}");
                assert!(arenas::lookup(p).is_ok());
                fill(p, size, 0xee);
                dealloc(p, layout);
                let z = alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                check(z, size, 0);
                fill(z, size, 0x11);
                let mut q = z;
                let mut cur = size;
                for new in [size * 2 + 1, size / 2 + 1, size + 4096, 1, 70_000, size] {
                    let r = realloc(q, Layout::from_size_align(cur, align).unwrap(), new);
                    assert!(!r.is_null());
                    assert_eq!(r as usize % align, 0, "realloc {cur} -> {new} at {align}");
                    check(r, cur.min(new), 0x11);
                    fill(r, new, 0x11);
                    q = r;
                    cur = new;
                }
                dealloc(q, Layout::from_size_align(cur, align).unwrap());
            }
        }
    }
}

/// Running out of memory is an error for the caller, never an abort in the allocator.
#[test]
fn out_of_memory_is_an_error() {
    use std::hint::black_box;
    // SAFETY: the layouts are valid; a null result is not used. Results go through
    // black_box: the compiler may assume an unused allocation succeeded and drop it.
    unsafe {
        let huge = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
        assert!(black_box(alloc(huge)).is_null());
        assert!(black_box(alloc_zeroed(huge)).is_null());
        let huge_aligned = Layout::from_size_align(1 << 62, 1 << 62).unwrap();
        assert!(black_box(alloc(huge_aligned)).is_null());
        let l = Layout::from_size_align(100, 8).unwrap();
        let p = alloc(l);
        fill(p, 100, 3);
        assert!(black_box(realloc(p, l, isize::MAX as usize - 4095)).is_null());
        check(p, 100, 3);
        dealloc(p, l);
    }
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(isize::MAX as usize / 2).is_err());
    assert!(v.try_reserve(1000).is_ok());
}

/// Runs this binary's test `name` alone in a child process with `env`; returns its status
/// and stderr.
fn child(name: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("OXMALLOC_TEST_CHILD", name)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn is_child(name: &str) -> bool {
    std::env::var("OXMALLOC_TEST_CHILD").as_deref() == Ok(name)
}

/// A `dealloc` whose layout size does not belong to the block (another size class, other
/// pages) is misuse: the process ends with oxmalloc's line and SIGABRT.
#[test]
fn sized_free_with_a_wrong_size_aborts() {
    if is_child("sized_free_with_a_wrong_size_aborts") {
        let (size, wrong) = match std::env::var("OXMALLOC_TEST_CASE").as_deref() {
            Ok("large") => (100_000, 200_000),
            Ok("medium") => (5000, 9000),
            _ => (100, 1000),
        };
        // SAFETY: deliberately wrong (the test). The pointer goes through black_box, or the
        // compiler may drop the unused pair.
        unsafe {
            let p = std::hint::black_box(alloc(Layout::from_size_align(size, 8).unwrap()));
            dealloc(p, Layout::from_size_align(wrong, 8).unwrap());
        }
        return;
    }
    for case in ["small", "medium", "large"] {
        let (status, err) = child("sized_free_with_a_wrong_size_aborts", &[("OXMALLOC_TEST_CASE", case)]);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{case}: {status:?} {err}");
        assert!(err.contains("oxmalloc: dealloc(): size does not match the block 0x"), "{case}: {err}");
    }
}

/// Without thread caches (option `tcache:false`) everything still works; the counters of a
/// thread without a cache read 0 and its counter readers are an error.
#[test]
fn threads_without_a_cache() {
    if is_child("threads_without_a_cache") {
        let w = build(1, 5000);
        assert_eq!(thread::allocated(), 0);
        assert_eq!(thread::allocatedp().err(), Some(Error::NoThreadCache));
        assert!(arenas::lookup(w.text.as_ptr()).is_ok());
        assert!(stats::allocated() > w.text.len());
        drop(w);
        return;
    }
    let (status, err) = child("threads_without_a_cache", &[("OXMALLOC_CONF", "tcache:false")]);
    assert!(status.success(), "{status:?} {err}");
}

#[test]
fn controls() {
    let e = epoch::advance();
    assert!(epoch::advance() > e);
    assert!(ctl::version().starts_with("5.3.0-0-oxmalloc-"));
    let s = stats::summary();
    assert!(s.allocated > 0 && s.allocated <= s.active && s.active <= s.resident && s.active <= s.mapped);
    assert!(s.metadata > 0 && s.metadata <= s.resident);
    let all = stats::arena(arena::ALL).unwrap();
    assert!(all.allocated <= all.active && all.resident <= all.mapped);
    assert_eq!(stats::arena(250).err(), Some(Error::NotFound));
    assert_eq!(arena::purge(4000).err(), Some(Error::NotFound));
    arena::purge(arena::ALL).unwrap();
    assert_eq!(thread::set_arena(1000).err(), Some(Error::Failed));
    // The background thread: today there is none (set(true) fails, as jemalloc does when it
    // cannot start one); once there is, it starts and stops.
    match background_thread::set(true) {
        Ok(()) => {
            assert!(background_thread::get().unwrap());
            background_thread::set(false).unwrap();
        }
        Err(e) => assert_eq!(e, Error::Failed),
    }
    assert!(!background_thread::get().unwrap());
    let a = thread::allocatedp().unwrap();
    let d = thread::deallocatedp().unwrap();
    let (a0, d0) = (a.get(), d.get());
    // black_box: an allocation nothing reads may be left out by the compiler.
    let v = std::hint::black_box(vec![7u8; 3000]);
    assert!(a.get() >= a0 + 3000);
    assert_eq!(a.get(), thread::allocated());
    drop(v);
    assert!(d.get() >= d0 + 3000);
    assert_eq!(d.get(), thread::deallocated());
    assert_eq!(Error::NotFound.errno(), libc::ENOENT);
    assert_eq!(Error::Failed.to_string(), "the operation could not be carried out");
}

/// The report, while other threads allocate: text, JSON, an `io::Write` that fails.
#[test]
fn stats_report() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|s| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(build(s, 2000));
                }
            })
        })
        .collect();
    for _ in 0..20 {
        let text = stats::print();
        assert!(text.starts_with("___ Begin jemalloc statistics ___\n"), "{}", &text[..100]);
        assert!(text.ends_with("--- End jemalloc statistics ---\n"));
        assert!(text.contains("bins:"));
        let mut json = Vec::new();
        stats::print_to(&mut json, "J").unwrap();
        assert!(json.starts_with(b"{\"jemalloc\":{") && json.ends_with(b"}}}}\n"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in busy {
        h.join().unwrap();
    }
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 > 1000 {
                return Err(std::io::Error::other("full"));
            }
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = stats::print_to(Full(0), "").unwrap_err();
    assert_eq!(err.to_string(), "full");
}

/// Default features: the binary defines no C allocation symbol, and C code (here `libc`'s
/// `malloc` and `strdup`) allocates from the C library, not from oxmalloc.
#[cfg(not(feature = "export"))]
#[test]
fn c_code_keeps_its_own_malloc() {
    let defined = defined_symbols();
    for f in ["malloc", "free", "calloc", "realloc", "posix_memalign", "mallocx", "mallctl", "malloc_conf", "_Znwm"] {
        assert!(!defined.contains(f), "the default-features binary defines `{f}`");
    }
    // SAFETY: plain libc calls; each block is freed by the C library's free.
    unsafe {
        let p = libc::malloc(100);
        assert!(!p.is_null());
        assert_eq!(arenas::lookup(p as *const u8), Err(Error::InvalidArgument), "libc::malloc came from oxmalloc");
        libc::free(p);
        let s = libc::strdup(c"text".as_ptr());
        assert_eq!(arenas::lookup(s as *const u8), Err(Error::InvalidArgument));
        libc::free(s as *mut libc::c_void);
    }
}

/// Feature `export`: the binary defines the C ABI, so C code allocates from oxmalloc: the C
/// library's own calls (`strdup`) too, since the functions the C library defines are exported
/// dynamically; the jemalloc API and `operator new` are there for code that calls them.
#[cfg(feature = "export")]
#[test]
fn c_code_uses_oxmalloc() {
    extern "C" {
        fn mallocx(size: usize, flags: i32) -> *mut libc::c_void;
        fn sdallocx(p: *mut libc::c_void, size: usize, flags: i32);
        fn mallctl(name: *const libc::c_char, old: *mut libc::c_void, oldlen: *mut usize, new: *mut libc::c_void, newlen: usize) -> i32;
        fn _Znwm(size: usize) -> *mut libc::c_void;
        fn _ZdlPvm(p: *mut libc::c_void, size: usize);
    }
    let exported = dynamic_symbols();
    for f in ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "malloc_usable_size"] {
        assert!(exported.contains(f), "the export binary does not export `{f}`");
    }
    // SAFETY: C calls with their contracts kept; each block is freed by the matching call.
    unsafe {
        let p = libc::malloc(100);
        assert!(arenas::lookup(p as *const u8).is_ok(), "libc::malloc did not come from oxmalloc");
        libc::free(p);
        let s = libc::strdup(c"text".as_ptr());
        assert!(arenas::lookup(s as *const u8).is_ok(), "strdup inside libc did not allocate from oxmalloc");
        libc::free(s as *mut libc::c_void);
        let x = mallocx(5000, 6); // MALLOCX_ALIGN(64)
        assert!(arenas::lookup(x as *const u8).is_ok() && (x as usize).is_multiple_of(64));
        sdallocx(x, 5000, 6);
        let mut v: *const libc::c_char = core::ptr::null();
        let mut len = size_of::<*const libc::c_char>();
        assert_eq!(mallctl(c"version".as_ptr(), (&raw mut v).cast(), &mut len, core::ptr::null_mut(), 0), 0);
        assert_eq!(core::ffi::CStr::from_ptr(v).to_str().unwrap(), ctl::version());
        let n = _Znwm(24);
        assert!(arenas::lookup(n as *const u8).is_ok());
        _ZdlPvm(n, 24);
    }
}

/// Names of the functions and data the binary exports (`nm -D --defined-only`).
#[cfg(feature = "export")]
fn dynamic_symbols() -> std::collections::HashSet<String> {
    nm(&["-D", "--defined-only"])
}

/// Names of the functions and data this test binary defines, in its symbol table or its
/// dynamic one.
#[cfg(not(feature = "export"))]
fn defined_symbols() -> std::collections::HashSet<String> {
    let mut names = nm(&["--defined-only"]);
    names.extend(nm(&["-D", "--defined-only"]));
    names
}

/// The symbol names `nm ARGS <this binary>` lists (binutils' nm, which the C toolchain brings).
fn nm(args: &[&str]) -> std::collections::HashSet<String> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("nm").args(args).arg(&exe).output().expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}
