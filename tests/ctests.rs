//! C-level test suite: compiles every `ctests/{api,misuse,stress}/*.c` program and runs it
//! against the shipped `liboxmalloc.so`, in two ways:
//!
//! * `linked`:  `cc prog.c -L<libdir> -loxmalloc -Wl,-rpath,<libdir> -ldl -lpthread`
//! * `preload`: `cc prog.c -ldl -lpthread`, run with `LD_PRELOAD=<lib>`
//!
//! `ctests/dlopen/*.c` programs run a third way, `plain` (compiled as for `preload`, run with
//! neither): they dlopen() the library themselves (its path in `CTESTS_EXPECT_LIB`).
//!
//! The library is `$OXMALLOC_LIB` if set, else `<repo>/target/release/liboxmalloc.so`
//! (`cargo build --release --features export`; the Makefile builds it first). A missing library is a test failure,
//! never a silent pass.
//!
//! api/ and stress/ programs must exit 0. misuse/ programs print the pointer they misuse
//! (`printf("%p\n")`) and must then die of SIGABRT after the library wrote exactly one stderr line
//! starting with `oxmalloc:`, of the form `oxmalloc: <func>(): <what> <pointer>`.
//!
//! This file does not use the oxmalloc crate: it is built with `cargo test --no-default-features
//! --test ctests` and only needs the `cc` dev-dependency to find the C compiler.
//!
//! Environment knobs: `OXMALLOC_LIB` (library to test), `CTESTS_TIMEOUT_SECS` (per program,
//! default 120), `CTESTS_ALLOW_OTHER_MALLOC=1` (passed to the programs: skip their "malloc is
//! oxmalloc" check, to sanity-check the suite with e.g.
//! `OXMALLOC_LIB=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`), `CTESTS_SCALE` (stress work
//! multiplier, passed through).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SIGABRT: i32 = 6;

/// The four things the library may say about a bad pointer.
const ALL_WHATS: &[&str] = &[
    "double free",
    "interior pointer",
    "pointer not allocated by oxmalloc",
    "pointer not a live block",
];

#[derive(Clone, Copy, Debug)]
enum Mode {
    Linked,
    Preload,
    /// Linked against Debian's libjemalloc.so.2 with CTESTS_ALLOW_OTHER_MALLOC=1: proof that a
    /// program tests jemalloc's documented semantics, not just ours.
    Jemalloc,
    /// Neither linked nor preloaded: the program dlopen()s the library named by
    /// CTESTS_EXPECT_LIB itself (`ctests/dlopen`).
    Plain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Linked => "linked",
            Mode::Preload => "preload",
            Mode::Jemalloc => "jemalloc",
            Mode::Plain => "plain",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Exit status 0.
    Ok,
    /// SIGABRT after one line `oxmalloc: <func>(): <one of whats> <printed pointer>`.
    Abort {
        func: &'static str,
        whats: &'static [&'static str],
    },
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test binary lives in (`<target>/debug/deps/ctests-*`): the
/// first ancestor holding cargo's CACHEDIR.TAG; `<repo>/target` if none is found.
fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join("CACHEDIR.TAG").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_dir().join("target"),
    }
}

/// The library under test. Panics (fails the test) with a clear message when it is missing.
fn library() -> PathBuf {
    let (path, origin) = match std::env::var_os("OXMALLOC_LIB") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "$OXMALLOC_LIB"),
        _ => (
            repo_dir().join("target/release/liboxmalloc.so"),
            "the default path (set OXMALLOC_LIB to test another build)",
        ),
    };
    if !path.is_file() {
        panic!(
            "ctests: the library under test does not exist: {} (from {}).\n\
             Build it first with `cargo build --release --features export` (the Makefile does), or point \
             OXMALLOC_LIB at a liboxmalloc.so. These tests never pass without it.",
            path.display(),
            origin
        );
    }
    path.canonicalize().unwrap_or(path)
}

fn compiler() -> cc::Tool {
    cc::Build::new()
        .opt_level(2)
        .debug(true)
        .target("x86_64-unknown-linux-gnu")
        .host("x86_64-unknown-linux-gnu")
        .cargo_metadata(false)
        .get_compiler()
}

/// Compile `ctests/<rel>.c` for `mode`; returns the executable's path. Each (program, mode) has
/// its own output path, and the file is written under a per-process name and renamed into place,
/// so tests (and concurrent `cargo test` runs) never write the same file.
fn compile(rel: &str, mode: Mode, lib: &Path) -> PathBuf {
    let src = repo_dir().join("ctests").join(format!("{rel}.c"));
    assert!(src.is_file(), "ctests: source {} is missing", src.display());
    let out_dir = target_dir().join("ctests").join(mode.name());
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("ctests: cannot create {}: {e}", out_dir.display()));
    let exe = out_dir.join(rel.replace('/', "_"));
    let tmp = out_dir.join(format!(
        "{}.{}.tmp",
        rel.replace('/', "_"),
        std::process::id()
    ));

    let mut cmd = compiler().to_command();
    cmd.arg("-std=gnu11")
        .arg("-fno-builtin")
        .arg("-Wall")
        .arg("-Wno-unused-function")
        .arg(&src)
        .arg("-o")
        .arg(&tmp);
    if let Mode::Linked | Mode::Jemalloc = mode {
        let dir = lib.parent().expect("library path has a directory");
        cmd.arg("-Wl,--no-as-needed");
        if lib.file_name().and_then(|n| n.to_str()) == Some("liboxmalloc.so") {
            cmd.arg(format!("-L{}", dir.display())).arg("-loxmalloc");
        } else {
            // OXMALLOC_LIB with another file name: link it by path.
            cmd.arg(lib);
        }
        // DT_RPATH, not DT_RUNPATH: cargo puts <target>/debug/deps on LD_LIBRARY_PATH, and
        // that directory holds the test build of liboxmalloc.so (no C exports), which would
        // win over a RUNPATH. (LD_LIBRARY_PATH is also removed for the child; belt and braces.)
        cmd.arg("-Wl,--disable-new-dtags");
        cmd.arg(format!("-Wl,-rpath,{}", dir.display()));
    }
    cmd.arg("-ldl").arg("-lpthread");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("ctests: cannot run the C compiler ({cmd:?}): {e}"));
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "ctests: compiling {} ({} mode) failed: {}\ncommand: {:?}\n{}{}",
            src.display(),
            mode.name(),
            out.status,
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &exe)
        .unwrap_or_else(|e| panic!("ctests: rename {} -> {}: {e}", tmp.display(), exe.display()));
    exe
}

struct Outcome {
    status: Option<ExitStatus>, // None: timed out and killed
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn timeout() -> Duration {
    let secs = std::env::var("CTESTS_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_secs(secs.max(1))
}

fn run_program(exe: &Path, mode: Mode, lib: &Path) -> Outcome {
    let mut cmd = Command::new(exe);
    cmd.current_dir(exe.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The programs check that malloc comes from exactly this file (common.h).
    cmd.env("CTESTS_EXPECT_LIB", lib);
    cmd.env_remove("LD_LIBRARY_PATH");
    match mode {
        Mode::Linked => {
            cmd.env_remove("LD_PRELOAD");
        }
        Mode::Jemalloc => {
            cmd.env_remove("LD_PRELOAD");
            cmd.env("CTESTS_ALLOW_OTHER_MALLOC", "1");
        }
        Mode::Preload => {
            cmd.env("LD_PRELOAD", lib);
        }
        Mode::Plain => {
            cmd.env_remove("LD_PRELOAD");
        }
    }
    let start = Instant::now();
    let mut child: Child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("ctests: cannot start {}: {e}", exe.display()));
    let out_rx = spawn_reader(child.stdout.take().unwrap());
    let err_rx = spawn_reader(child.stderr.take().unwrap());
    let limit = timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => panic!("ctests: waiting for {}: {e}", exe.display()),
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // A grandchild that inherited the pipes could keep them open: do not wait for ever.
    let grab = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(10))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| "<output not closed within 10 s after exit>".to_string())
    };
    Outcome {
        status,
        stdout: grab(out_rx),
        stderr: grab(err_rx),
        elapsed,
    }
}

fn describe(st: &Option<ExitStatus>) -> String {
    match st {
        None => "timed out (killed; deadlock or far too slow?)".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(sig)) => format!(
                "killed by signal {sig}{}",
                if s.core_dumped() {
                    " (core dumped)"
                } else {
                    ""
                }
            ),
            _ => format!("{s:?}"),
        },
    }
}

fn report(rel: &str, mode: Mode, exe: &Path, lib: &Path, o: &Outcome, why: &str) -> String {
    format!(
        "ctests: {rel} ({} mode) FAILED: {why}\n  result: {}\n  time: {:.2?}\n  program: {}\n  \
         library: {}\n  rerun: {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        mode.name(),
        describe(&o.status),
        o.elapsed,
        exe.display(),
        lib.display(),
        match mode {
            Mode::Preload => format!("LD_PRELOAD={} ", lib.display()),
            Mode::Linked => String::new(),
            Mode::Jemalloc => "CTESTS_ALLOW_OTHER_MALLOC=1 ".to_string(),
            Mode::Plain => format!("CTESTS_EXPECT_LIB={} ", lib.display()),
        },
        exe.display(),
        o.stdout.trim_end(),
        o.stderr.trim_end()
    )
}

/// Checks a misuse program's output; returns why it is wrong, or None.
fn check_misuse(o: &Outcome, func: &str, whats: &[&str]) -> Option<String> {
    match o.status {
        Some(s) if s.signal() == Some(SIGABRT) => {}
        _ => {
            return Some(format!(
                "expected death by SIGABRT (signal {SIGABRT}) after an `oxmalloc: {func}(): ...` \
                 line"
            ))
        }
    }
    let ptr = match o.stdout.lines().next().map(str::trim) {
        Some(p) if p.starts_with("0x") => p.to_string(),
        other => {
            return Some(format!(
                "the program did not print the pointer it misuses first (stdout line: {other:?})"
            ))
        }
    };
    let ours: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("oxmalloc:"))
        .collect();
    if ours.len() != 1 {
        return Some(format!(
            "expected exactly one stderr line starting with `oxmalloc:`, found {}",
            ours.len()
        ));
    }
    let line = ours[0];
    let accepted: Vec<String> = whats
        .iter()
        .map(|w| format!("oxmalloc: {func}(): {w} {ptr}"))
        .collect();
    if accepted.iter().any(|a| a == line) {
        return None;
    }
    Some(format!(
        "the `oxmalloc:` line is {line:?}; expected {}",
        accepted
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

/// Debian's jemalloc (package libjemalloc2, installed by `make deps`).
const LIBJEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// The jemalloc-API programs pass linked against libjemalloc too.
#[test]
fn jemalloc_api_passes_under_libjemalloc() {
    let lib = Path::new(LIBJEMALLOC);
    assert!(lib.exists(), "{LIBJEMALLOC} is missing: install libjemalloc2 (make deps)");
    for rel in ["api/jemalloc_api", "api/mallctl", "api/jemalloc_edges"] {
        let exe = compile(rel, Mode::Jemalloc, lib);
        let o = run_program(&exe, Mode::Jemalloc, lib);
        if !matches!(o.status, Some(s) if s.success()) {
            panic!("{}", report(rel, Mode::Jemalloc, &exe, lib, &o, "expected exit status 0"));
        }
    }
}

/// A program that dlopen()s the library, uses it from a thread and dlclose()s it while the
/// thread lives: the thread's exit must not crash (the library is never unmapped).
#[test]
fn dlopen_unload_plain() {
    run_case("dlopen/unload", Mode::Plain, Expect::Ok)
}

fn run_case(rel: &str, mode: Mode, expect: Expect) {
    let lib = library();
    let exe = compile(rel, mode, &lib);
    let o = run_program(&exe, mode, &lib);
    let problem = match expect {
        Expect::Ok => match o.status {
            Some(s) if s.success() => None,
            _ => Some("expected exit status 0".to_string()),
        },
        Expect::Abort { func, whats } => check_misuse(&o, func, whats),
    };
    if let Some(why) = problem {
        panic!("{}", report(rel, mode, &exe, &lib, &o, &why));
    }
    println!(
        "ctests: {rel} ({} mode): ok in {:.2?}",
        mode.name(),
        o.elapsed
    );
    if !o.stdout.trim().is_empty() {
        println!("{}", o.stdout.trim_end());
    }
}

/// One module per program with a `linked` and a `preload` test, and the list of registered
/// sources (checked against the directory contents by `every_program_is_registered`).
macro_rules! ctests {
    ($($modname:ident => $rel:literal, $expect:expr;)*) => {
        const REGISTERED: &[&str] = &[$($rel),*];
        $(
            mod $modname {
                use super::*;
                #[test]
                fn linked() {
                    run_case($rel, Mode::Linked, $expect)
                }
                #[test]
                fn preload() {
                    run_case($rel, Mode::Preload, $expect)
                }
            }
        )*
    };
}

const fn free_err(whats: &'static [&'static str]) -> Expect {
    Expect::Abort {
        func: "free",
        whats,
    }
}

ctests! {
    api_basic => "api/basic", Expect::Ok;
    api_too_large => "api/too_large", Expect::Ok;
    api_calloc => "api/calloc", Expect::Ok;
    api_aligned => "api/aligned", Expect::Ok;
    api_realloc => "api/realloc", Expect::Ok;
    api_trim_mallopt => "api/trim_mallopt", Expect::Ok;
    api_symbols => "api/symbols", Expect::Ok;
    api_jemalloc_api => "api/jemalloc_api", Expect::Ok;
    api_mallctl => "api/mallctl", Expect::Ok;
    api_conf => "api/conf", Expect::Ok;
    api_background => "api/background", Expect::Ok;
    api_jemalloc_edges => "api/jemalloc_edges", Expect::Ok;
    api_conf_garbage => "api/conf_garbage", Expect::Ok;
    api_xallocx_sized_free => "api/xallocx_sized_free", Expect::Ok;
    api_oom_rlimit => "api/oom_rlimit", Expect::Ok;
    api_zero_pages => "api/zero_pages", Expect::Ok;
    api_mallctl_fuzz => "api/mallctl_fuzz", Expect::Ok;

    misuse_double_free_small => "misuse/double_free_small", free_err(&["double free"]);
    misuse_double_free_small_live => "misuse/double_free_small_live",
        free_err(&["double free"]);
    misuse_double_free_interleaved => "misuse/double_free_interleaved",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_split_by_flush => "misuse/double_free_split_by_flush",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_after_flush => "misuse/double_free_after_flush",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_flushed_together => "misuse/double_free_flushed_together",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_sparse => "misuse/double_free_sparse",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_slab_released => "misuse/double_free_slab_released",
        Expect::Abort { func: "malloc", whats: &["double free"] };
    misuse_report_then_fork => "misuse/report_then_fork",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_report_then_fork_refill => "misuse/report_then_fork_refill",
        Expect::Abort { func: "malloc", whats: &["double free or write after free"] };
    misuse_double_free_then_slab_empties => "misuse/double_free_then_slab_empties",
        free_err(&["double free or write after free"]);
    misuse_interior_small => "misuse/interior_small", free_err(&["interior pointer"]);
    misuse_interior_large => "misuse/interior_large", free_err(&["interior pointer"]);
    misuse_foreign_stack => "misuse/foreign_stack",
        free_err(&["pointer not allocated by oxmalloc"]);
    misuse_foreign_mmap => "misuse/foreign_mmap",
        free_err(&["pointer not allocated by oxmalloc"]);
    misuse_double_free_large_cached => "misuse/double_free_large_cached", free_err(&["double free"]);
    misuse_double_free_large => "misuse/double_free_large",
        free_err(&["double free", "pointer not a live block"]);
    misuse_sdallocx_wrong_size => "misuse/sdallocx_wrong_size",
        Expect::Abort { func: "sdallocx", whats: &["size does not match the block"] };
    misuse_sdallocx_wrong_size_large => "misuse/sdallocx_wrong_size_large",
        Expect::Abort { func: "sdallocx", whats: &["size does not match the block"] };
    misuse_realloc_after_free => "misuse/realloc_after_free",
        Expect::Abort { func: "realloc", whats: ALL_WHATS };

    stress_random_mt => "stress/random_mt", Expect::Ok;
    stress_producer_consumer => "stress/producer_consumer", Expect::Ok;
    stress_thread_churn => "stress/thread_churn", Expect::Ok;
    stress_thread_exit => "stress/thread_exit", Expect::Ok;
    stress_fork => "stress/fork", Expect::Ok;
    stress_background_start => "stress/background_start", Expect::Ok;
    stress_aligned_churn => "stress/aligned_churn", Expect::Ok;
}

/// A new ctests/<group>/*.c file must get its own entry above (with its expectation).
#[test]
fn every_program_is_registered() {
    let mut missing = Vec::new();
    for group in ["api", "misuse", "stress"] {
        let dir = repo_dir().join("ctests").join(group);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("ctests: cannot list {}: {e}", dir.display()));
        for ent in entries {
            let path = ent.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("c") {
                continue;
            }
            let rel = format!("{group}/{}", path.file_stem().unwrap().to_string_lossy());
            if !REGISTERED.contains(&rel.as_str()) {
                missing.push(rel);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ctests: these programs have no entry in tests/ctests.rs (add one to the ctests! list): \
         {missing:?}"
    );
    for rel in REGISTERED {
        assert!(
            repo_dir().join("ctests").join(format!("{rel}.c")).is_file(),
            "ctests: {rel}.c is registered but does not exist"
        );
    }
}
