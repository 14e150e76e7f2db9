//! The mallctl name tree and what each name does.
//!
//! Children are listed in jemalloc 5.3's order (`ctl.c`), so a child's position — its MIB
//! component — is jemalloc's; names oxmalloc does not serve stay in the list as `Gap`s
//! (ENOENT) to keep the numbering. Integer components: `arena.<i>` (a created arena, `4096`
//! for all, or `arenas.narenas` — jemalloc's deprecated alias of 4096 that Redis uses for
//! `arena.<n>.purge`), `stats.arenas.<i>` (a created arena or 4096), `arenas.bin.<j>`.

use super::stats;
use super::{Idx, Path, Req, MAX_DEPTH, R};
use crate::objects::arena;
use crate::metadata::size_class::{bin_size, nregs, NBINS, SLAB_PAGES};
use crate::tcache;
use crate::tcache::tsd;
use crate::foundation::util::PAGE;
use core::sync::atomic::{AtomicU64, Ordering};
use libc::{EFAULT, EINVAL, ENOENT};

type Leaf = fn(&Idx, &Req) -> R;

#[derive(Clone, Copy)]
enum Kind {
    /// `arena.<i>`
    Arena,
    /// `stats.arenas.<i>`
    StatsArena,
    /// `arenas.bin.<j>`, `stats.arenas.<i>.bins.<j>`
    Bin,
    /// `arenas.lextent.<i>`
    Lextent,
}

enum Node {
    Dir(&'static [(&'static str, Node)]),
    Index(Kind, &'static Node),
    Leaf(Leaf),
    /// A jemalloc name oxmalloc does not serve (keeps the positions of its siblings).
    Gap,
}

/// "All arenas".
pub const ALL: usize = 4096;

/// `arenas.narenas`: the automatic arenas (created or not, as jemalloc counts them) plus any
/// made by `arenas.create`.
fn narenas_total() -> usize {
    arena::narenas().max(arena::all().count())
}

fn index_ok(kind: Kind, i: usize) -> bool {
    match kind {
        Kind::Arena => i == ALL || i <= narenas_total(),
        Kind::StatsArena => i == ALL || arena::try_get(i).is_some(),
        Kind::Bin => i < NBINS,
        Kind::Lextent => i < NLEXTENTS,
    }
}

fn parse_index(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0usize, |n, &c| n * 10 + (c - b'0') as usize))
}

/// Resolves a name to its path; it must end at a leaf.
pub fn lookup(name: &[u8]) -> Result<Path, i32> {
    let (path, node) = walk_name(name)?;
    match node {
        Node::Leaf(_) => Ok(path),
        _ => Err(ENOENT),
    }
}

/// Resolves a name that may end at an inner node (`mallctlnametomib` of a prefix).
pub fn lookup_prefix(name: &[u8]) -> Result<Path, i32> {
    walk_name(name).map(|(p, _)| p)
}

fn walk_name(name: &[u8]) -> Result<(Path, &'static Node), i32> {
    let mut path = Path { mib: [0; MAX_DEPTH], len: 0 };
    let mut node: &'static Node = &ROOT;
    for comp in name.split(|&c| c == b'.') {
        if path.len == MAX_DEPTH {
            return Err(ENOENT);
        }
        let (pos, next) = match node {
            Node::Dir(children) => {
                let pos = children.iter().position(|(n, _)| n.as_bytes() == comp).ok_or(ENOENT)?;
                (pos, &children[pos].1)
            }
            Node::Index(kind, child) => {
                let i = parse_index(comp).ok_or(ENOENT)?;
                if !index_ok(*kind, i) {
                    return Err(ENOENT);
                }
                (i, *child)
            }
            _ => return Err(ENOENT),
        };
        if let Node::Gap = next {
            return Err(ENOENT);
        }
        path.mib[path.len] = pos;
        path.len += 1;
        node = next;
    }
    Ok((path, node))
}

/// Runs the leaf at `mib`.
pub fn call(mib: &[usize], req: &Req) -> R {
    let mut node: &'static Node = &ROOT;
    let mut idx = Idx::default();
    for &c in mib {
        node = match node {
            Node::Dir(children) => &children.get(c).ok_or(ENOENT)?.1,
            Node::Index(kind, child) => {
                if !index_ok(*kind, c) {
                    return Err(ENOENT);
                }
                if idx.n < 2 {
                    idx.v[idx.n] = c;
                    idx.n += 1;
                }
                child
            }
            _ => return Err(ENOENT),
        };
    }
    match node {
        Node::Leaf(f) => f(&idx, req),
        _ => Err(ENOENT),
    }
}

// ---------------------------------------------------------------------------------------
// The tree (jemalloc 5.3 order).

macro_rules! leaf {
    ($f:expr) => {
        Node::Leaf($f)
    };
}

static ROOT: Node = Node::Dir(&[
    ("version", leaf!(|_, r| r.ro(c"5.3.0-0-oxmalloc-0.1.0".as_ptr()))),
    ("epoch", leaf!(epoch)),
    ("background_thread", leaf!(background_thread)),
    ("max_background_threads", leaf!(max_background_threads)),
    ("thread", Node::Dir(&THREAD)),
    ("config", Node::Dir(&CONFIG)),
    ("opt", Node::Dir(&OPT)),
    ("tcache", Node::Gap),
    ("arena", Node::Index(Kind::Arena, &ARENA_I)),
    ("arenas", Node::Dir(&ARENAS)),
    ("prof", Node::Gap),
    ("stats", Node::Dir(&STATS)),
    ("experimental", Node::Dir(&EXPERIMENTAL)),
]);

static THREAD: [(&str, Node); 9] = [
    ("arena", leaf!(thread_arena)),
    ("allocated", leaf!(|_, r| r.ro(tcache_stat(|t| t.allocated())))),
    ("allocatedp", leaf!(thread_allocatedp)),
    ("deallocated", leaf!(|_, r| r.ro(tcache_stat(|t| t.deallocated)))),
    ("deallocatedp", leaf!(thread_deallocatedp)),
    ("tcache", Node::Dir(&[("enabled", leaf!(tcache_enabled)), ("flush", leaf!(tcache_flush))])),
    ("peak", Node::Gap),
    ("prof", Node::Gap),
    ("idle", leaf!(tcache_flush)),
];

static CONFIG: [(&str, Node); 12] = [
    ("cache_oblivious", leaf!(|_, r| r.ro(false))),
    ("debug", leaf!(|_, r| r.ro(cfg!(debug_assertions)))),
    ("fill", leaf!(|_, r| r.ro(false))),
    ("lazy_lock", leaf!(|_, r| r.ro(false))),
    ("malloc_conf", leaf!(|_, r| r.ro(c"".as_ptr()))),
    ("opt_safety_checks", leaf!(|_, r| r.ro(true))),
    ("prof", leaf!(|_, r| r.ro(false))),
    ("prof_libgcc", leaf!(|_, r| r.ro(false))),
    ("prof_libunwind", leaf!(|_, r| r.ro(false))),
    ("stats", leaf!(|_, r| r.ro(true))),
    ("utrace", leaf!(|_, r| r.ro(false))),
    ("xmalloc", leaf!(|_, r| r.ro(false))),
];

/// `opt.*`: the options in force (jemalloc's order up to `tcache_max`; oxmalloc's values).
static OPT: [(&str, Node); 37] = [
    ("abort", leaf!(|_, r| r.ro(false))),
    ("abort_conf", leaf!(|_, r| r.ro(crate::front::conf::abort_conf()))),
    ("cache_oblivious", leaf!(|_, r| r.ro(false))),
    ("trust_madvise", leaf!(|_, r| r.ro(true))),
    ("confirm_conf", leaf!(|_, r| r.ro(false))),
    ("hpa", leaf!(|_, r| r.ro(false))),
    ("hpa_slab_max_alloc", Node::Gap),
    ("hpa_hugification_threshold", Node::Gap),
    ("hpa_hugify_delay_ms", Node::Gap),
    ("hpa_min_purge_interval_ms", Node::Gap),
    ("hpa_dirty_mult", Node::Gap),
    ("hpa_sec_nshards", Node::Gap),
    ("hpa_sec_max_alloc", Node::Gap),
    ("hpa_sec_max_bytes", Node::Gap),
    ("hpa_sec_bytes_after_flush", Node::Gap),
    ("hpa_sec_batch_fill_extra", Node::Gap),
    ("metadata_thp", leaf!(|_, r| r.ro(c"disabled".as_ptr()))),
    ("retain", leaf!(|_, r| r.ro(true))),
    ("dss", leaf!(|_, r| r.ro(c"disabled".as_ptr()))),
    ("narenas", leaf!(|_, r| r.ro(arena::narenas() as u32))),
    ("percpu_arena", leaf!(|_, r| r.ro(c"disabled".as_ptr()))),
    ("oversize_threshold", leaf!(|_, r| r.ro(0usize))),
    ("mutex_max_spin", leaf!(|_, r| r.ro(100i64))),
    ("background_thread", leaf!(|_, r| r.ro(crate::front::background::opt_enabled()))),
    ("max_background_threads", leaf!(|_, r| r.ro(crate::front::background::opt_max_threads()))),
    ("dirty_decay_ms", leaf!(|_, r| r.ro(crate::front::conf::decay_ms().0))),
    ("muzzy_decay_ms", leaf!(|_, r| r.ro(crate::front::conf::decay_ms().1))),
    ("stats_print", leaf!(|_, r| r.ro(crate::front::conf::stats_print()))),
    ("stats_print_opts", leaf!(|_, r| r.ro(crate::front::conf::stats_print_opts_ptr()))),
    ("stats_interval", leaf!(|_, r| r.ro(-1i64))),
    ("stats_interval_opts", leaf!(|_, r| r.ro(c"".as_ptr()))),
    ("junk", leaf!(|_, r| r.ro(crate::front::conf::junk_name().as_ptr()))),
    ("zero", leaf!(|_, r| r.ro(false))),
    ("experimental_infallible_new", leaf!(|_, r| r.ro(false))),
    ("tcache", leaf!(|_, r| r.ro(tcache::enabled()))),
    ("tcache_max", leaf!(|_, r| r.ro(crate::tcache::max()))),
    ("zero_realloc", leaf!(|_, r| r.ro(match crate::front::conf::zero_realloc() {
        crate::front::conf::ZeroRealloc::Free => c"free",
        crate::front::conf::ZeroRealloc::Alloc => c"alloc",
        crate::front::conf::ZeroRealloc::Abort => c"abort",
    }.as_ptr()))),
];

static ARENA_I: Node = Node::Dir(&[
    ("initialized", leaf!(|i, r| r.ro(arena::try_get(i.get(0)).is_some() || i.get(0) == ALL))),
    ("decay", leaf!(arena_decay)),
    ("purge", leaf!(arena_purge)),
    ("reset", Node::Gap),
    ("destroy", Node::Gap),
    ("dss", leaf!(arena_dss)),
    ("oversize_threshold", Node::Gap),
    ("dirty_decay_ms", leaf!(|i, r| arena_decay_ms(i, r, true))),
    ("muzzy_decay_ms", leaf!(|i, r| arena_decay_ms(i, r, false))),
    ("extent_hooks", Node::Gap),
    ("retain_grow_limit", Node::Gap),
]);

static ARENAS: [(&str, Node); 13] = [
    ("narenas", leaf!(|_, r| r.ro(narenas_total() as u32))),
    ("dirty_decay_ms", leaf!(|_, r| arenas_decay_ms(r, true))),
    ("muzzy_decay_ms", leaf!(|_, r| arenas_decay_ms(r, false))),
    ("quantum", leaf!(|_, r| r.ro(16usize))),
    ("page", leaf!(|_, r| r.ro(PAGE))),
    ("tcache_max", leaf!(|_, r| r.ro(crate::tcache::max()))),
    ("nbins", leaf!(|_, r| r.ro(NBINS as u32))),
    ("nhbins", leaf!(|_, r| r.ro(tcache::NCB as u32))),
    ("bin", Node::Index(Kind::Bin, &BIN_J)),
    ("nlextents", leaf!(|_, r| r.ro(NLEXTENTS as u32))),
    ("lextent", Node::Index(Kind::Lextent, &LEXTENT_I)),
    ("create", leaf!(arenas_create)),
    ("lookup", leaf!(arenas_lookup)),
];

/// Large size classes as jemalloc spaces them (4 per doubling) from the first above the
/// largest slab class (40 KiB) up to jemalloc's limit 7·2^60. oxmalloc itself rounds large
/// requests to whole pages (`nallocx` answers finer sizes); the table is the grouping
/// jemalloc clients iterate over.
const NLEXTENTS: usize = (61 - 15 + 1) * 4 + 3; // groups (2^15, 2^16] .. (2^61, 2^62], then 5, 6, 7·2^60

fn lextent_size(i: usize) -> usize {
    let lg = 15 + i / 4;
    (1usize << lg) + ((i % 4) + 1) * (1usize << (lg - 2))
}

static LEXTENT_I: Node = Node::Dir(&[("size", leaf!(|i, r| r.ro(lextent_size(i.get(0)))))]);

static BIN_J: Node = Node::Dir(&[
    ("size", leaf!(|i, r| r.ro(bin_size(i.get(0))))),
    ("nregs", leaf!(|i, r| r.ro(nregs(i.get(0)) as u32))),
    ("slab_size", leaf!(|i, r| r.ro(SLAB_PAGES[i.get(0)] as usize * PAGE))),
    ("nshards", leaf!(|_, r| r.ro(1u32))),
]);

static STATS: [(&str, Node); 11] = [
    ("allocated", leaf!(|_, r| r.ro(stats::global().allocated))),
    ("active", leaf!(|_, r| r.ro(stats::global().active))),
    ("metadata", leaf!(|_, r| r.ro(stats::global().metadata))),
    ("metadata_thp", leaf!(|_, r| r.ro(0usize))),
    ("resident", leaf!(|_, r| r.ro(stats::global().resident))),
    ("mapped", leaf!(|_, r| r.ro(stats::global().mapped))),
    ("retained", leaf!(|_, r| r.ro(stats::global().retained))),
    ("background_thread", Node::Dir(&[
        ("num_threads", leaf!(|_, r| r.ro(crate::front::background::num_threads()))),
        ("num_runs", leaf!(|_, r| r.ro(crate::front::background::run_stats().0))),
        ("run_interval", leaf!(|_, r| r.ro(crate::front::background::run_stats().1))),
    ])),
    ("mutexes", Node::Gap),
    ("arenas", Node::Index(Kind::StatsArena, &STATS_ARENA_I)),
    ("zero_reallocs", Node::Gap),
];

fn arena_stats(i: &Idx) -> stats::ArenaStats {
    match arena::try_get(i.get(0)) {
        Some(a) if i.get(0) != ALL => stats::arena(a),
        _ => stats::merged(),
    }
}

static STATS_ARENA_I: Node = Node::Dir(&[
    ("nthreads", leaf!(|i, r| r.ro(arena_stats(i).nthreads))),
    ("uptime", Node::Gap),
    ("dss", leaf!(|_, r| r.ro(c"disabled".as_ptr()))),
    ("dirty_decay_ms", leaf!(|i, r| r.ro(arena_stats(i).dirty_decay_ms))),
    ("muzzy_decay_ms", leaf!(|i, r| r.ro(arena_stats(i).muzzy_decay_ms))),
    ("pactive", leaf!(|i, r| r.ro(arena_stats(i).pactive))),
    ("pdirty", leaf!(|i, r| r.ro(arena_stats(i).pdirty))),
    ("pmuzzy", leaf!(|i, r| r.ro(arena_stats(i).pmuzzy))),
    ("mapped", leaf!(|i, r| r.ro(arena_stats(i).mapped()))),
    ("retained", leaf!(|i, r| r.ro(arena_stats(i).pretained * PAGE))),
    ("extent_avail", Node::Gap),
    ("dirty_npurge", leaf!(|i, r| r.ro(arena_stats(i).purged[0].npurge))),
    ("dirty_nmadvise", leaf!(|i, r| r.ro(arena_stats(i).purged[0].nmadvise))),
    ("dirty_purged", leaf!(|i, r| r.ro(arena_stats(i).purged[0].purged))),
    ("muzzy_npurge", leaf!(|i, r| r.ro(arena_stats(i).purged[1].npurge))),
    ("muzzy_nmadvise", leaf!(|i, r| r.ro(arena_stats(i).purged[1].nmadvise))),
    ("muzzy_purged", leaf!(|i, r| r.ro(arena_stats(i).purged[1].purged))),
    ("base", Node::Gap),
    ("internal", Node::Gap),
    ("metadata_thp", Node::Gap),
    ("tcache_bytes", Node::Gap),
    ("tcache_stashed_bytes", Node::Gap),
    ("resident", leaf!(|i, r| r.ro(arena_stats(i).resident()))),
    ("abandoned_vm", leaf!(|_, r| r.ro(0usize))),
    ("hpa_sec_bytes", Node::Gap),
    ("small", Node::Dir(&[
        ("allocated", leaf!(|i, r| r.ro(arena_stats(i).small_allocated))),
        ("nmalloc", leaf!(|i, r| r.ro(arena_stats(i).small_nmalloc))),
        ("ndalloc", leaf!(|i, r| r.ro(arena_stats(i).small_ndalloc))),
        ("nrequests", leaf!(|i, r| r.ro(arena_stats(i).small_nmalloc))),
    ])),
    ("large", Node::Dir(&[("allocated", leaf!(|i, r| r.ro(arena_stats(i).large_allocated)))])),
    ("bins", Node::Index(Kind::Bin, &STATS_BIN_J)),
    ("lextents", Node::Gap),
    ("extents", Node::Gap),
    ("mutexes", Node::Gap),
]);

fn bin_stats(i: &Idx) -> stats::BinStats {
    arena_stats(i).bins[i.get(1)]
}

static STATS_BIN_J: Node = Node::Dir(&[
    ("nmalloc", leaf!(|i, r| r.ro(bin_stats(i).nmalloc))),
    ("ndalloc", leaf!(|i, r| r.ro(bin_stats(i).ndalloc))),
    ("nrequests", leaf!(|i, r| r.ro(bin_stats(i).nmalloc))),
    ("curregs", leaf!(|i, r| r.ro(bin_stats(i).curregs))),
    ("nfills", Node::Gap),
    ("nflushes", Node::Gap),
    ("nslabs", leaf!(|i, r| r.ro(bin_stats(i).curslabs as u64))),
    ("nreslabs", Node::Gap),
    ("curslabs", leaf!(|i, r| r.ro(bin_stats(i).curslabs))),
    ("nonfull_slabs", leaf!(|i, r| r.ro(bin_stats(i).nonfull_slabs))),
]);

static EXPERIMENTAL: [(&str, Node); 2] = [
    ("hooks", Node::Gap),
    ("utilization", Node::Dir(&[
        ("query", leaf!(super::utilization::query)),
        ("batch_query", leaf!(super::utilization::batch_query)),
    ])),
];

// ---------------------------------------------------------------------------------------
// Handlers with behaviour.

/// Sync: epoch counter (stats are read live; the counter only satisfies clients).
static EPOCH: AtomicU64 = AtomicU64::new(1);

fn epoch(_: &Idx, r: &Req) -> R {
    if r.write::<u64>()?.is_some() {
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }
    r.read(EPOCH.load(Ordering::Relaxed))
}

/// `background_thread`: true starts the purge threads, false stops and joins them (the new
/// value's size is checked first, then the old value is read, then the change is made, as
/// jemalloc does); EFAULT when they cannot be started.
fn background_thread(_: &Idx, r: &Req) -> R {
    let new = r.write::<bool>()?;
    r.read(crate::front::background::enabled())?;
    match new {
        Some(on) => crate::front::background::set_enabled(on).map_err(|_| EFAULT),
        None => Ok(()),
    }
}

/// `max_background_threads`: 1 up to the option's value (else EINVAL); running threads are
/// restarted with the new count.
fn max_background_threads(_: &Idx, r: &Req) -> R {
    let new = r.write::<usize>()?;
    r.read(crate::front::background::max_threads())?;
    match new {
        Some(n) => crate::front::background::set_max_threads(n),
        None => Ok(()),
    }
}

/// The arenas `arena.<i>.*` names: arena i, or every arena for 4096 and `arenas.narenas`.
fn arenas_named(i: &Idx) -> impl Iterator<Item = &'static arena::Arena> {
    let which = i.get(0);
    let all = which == ALL || which == narenas_total();
    arena::all().filter(move |a| all || a.id as usize == which)
}

/// `arena.<i>.dirty_decay_ms` / `.muzzy_decay_ms` (ssize_t): the arena's decay time (for all
/// arenas: the default for new ones). A write (-1 up to jemalloc's limit, else EINVAL) sets
/// it for the arena or every arena, which makes what their sets hold fully decayed: it is
/// purged at once (unless -1).
fn arena_decay_ms(i: &Idx, r: &Req, dirty: bool) -> R {
    let pick = |(d, m): (isize, isize)| if dirty { d } else { m };
    let cur = match arena::try_get(i.get(0)) {
        Some(a) => pick(a.pac.lock().decay_ms()),
        None => pick(crate::pages::decay::arena_defaults()),
    };
    r.read(cur)?;
    if let Some(ms) = r.write::<isize>()? {
        if !crate::front::conf::decay_ms_valid(ms) {
            return Err(EINVAL);
        }
        let (d, m) = if dirty { (Some(ms), None) } else { (None, Some(ms)) };
        for a in arenas_named(i) {
            a.pac.set_decay_ms(d, m);
            a.pac.purge(crate::pages::decay::now_ns(), crate::pages::purge::Mode::Decay);
        }
    }
    Ok(())
}

/// `arenas.dirty_decay_ms` / `.muzzy_decay_ms` (ssize_t): the decay times new arenas start
/// with.
fn arenas_decay_ms(r: &Req, dirty: bool) -> R {
    let (d, m) = crate::pages::decay::arena_defaults();
    r.read(if dirty { d } else { m })?;
    if let Some(ms) = r.write::<isize>()? {
        if !crate::front::conf::decay_ms_valid(ms) {
            return Err(EINVAL);
        }
        let (d, m) = if dirty { (ms, m) } else { (d, ms) };
        crate::pages::decay::set_arena_defaults(d, m);
    }
    Ok(())
}

fn tcache_stat(f: impl Fn(&tcache::Tcache) -> u64) -> u64 {
    crate::front::init::ensure();
    tcache::current().map_or(0, |t| f(t))
}

fn thread_allocatedp(_: &Idx, r: &Req) -> R {
    r.readonly()?;
    crate::front::init::ensure();
    match tcache::current() {
        Some(t) => {
            let counter: *mut u64 = &raw mut t.allocated;
            r.read(counter)
        }
        None => Err(libc::EAGAIN),
    }
}

fn thread_deallocatedp(_: &Idx, r: &Req) -> R {
    r.readonly()?;
    match tcache::current() {
        Some(t) => {
            let counter: *mut u64 = &raw mut t.deallocated;
            r.read(counter)
        }
        None => Err(libc::EAGAIN),
    }
}

fn thread_arena(_: &Idx, r: &Req) -> R {
    crate::front::init::ensure();
    let tc = tcache::current();
    let cur = tc.as_ref().map_or(0, |t| t.arena.id as u32);
    if let Some(n) = r.write::<u32>()? {
        let to = arena::get_or_create(n as usize).ok_or(EFAULT)?;
        match tc {
            Some(t) => t.rebind(to),
            None => return Err(EFAULT),
        }
    }
    r.read(cur)
}

fn tcache_enabled(_: &Idx, r: &Req) -> R {
    crate::front::init::ensure();
    // A thread that has not allocated yet will get a cache on its first call: enabled.
    let now = match tsd::get() {
        tsd::NONE => tcache::enabled(),
        t => t > tsd::LAST_SENTINEL,
    };
    if let Some(on) = r.write::<bool>()? {
        tcache::set_thread_enabled(on);
    }
    r.read(now)
}

fn tcache_flush(_: &Idx, r: &Req) -> R {
    r.void()?;
    crate::front::init::ensure();
    match tcache::current() {
        Some(t) => {
            t.flush_all();
            Ok(())
        }
        None => Err(EFAULT),
    }
}

/// `arena.<i>.purge`: returns empty slabs and purges every dirty and muzzy page of arena i
/// (all arenas for 4096 or `arenas.narenas`), after flushing the caller's thread cache.
fn arena_purge(i: &Idx, r: &Req) -> R {
    r.void()?;
    crate::front::alloc::tcache_flush();
    for a in arenas_named(i) {
        crate::front::alloc::purge_arena(a);
    }
    Ok(())
}

/// `arena.<i>.decay`: purges what decay owes now in arena i (or all).
fn arena_decay(i: &Idx, r: &Req) -> R {
    r.void()?;
    for a in arenas_named(i) {
        a.pac.purge(crate::pages::decay::now_ns(), crate::pages::purge::Mode::Decay);
    }
    Ok(())
}

/// `arena.<i>.dss`: oxmalloc never uses sbrk, so the precedence is always "disabled". Writing
/// "disabled" succeeds; "primary" and "secondary" fail with EFAULT (jemalloc's answer where
/// dss is not supported); any other string (or null) is EINVAL. Reads the value in force.
fn arena_dss(_: &Idx, r: &Req) -> R {
    if let Some(p) = r.write::<*const core::ffi::c_char>()? {
        if p.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: mallctl's contract: a string value is a pointer to a NUL-terminated string.
        match unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes() {
            b"disabled" => {}
            b"primary" | b"secondary" => return Err(EFAULT),
            _ => return Err(EINVAL),
        }
    }
    r.read(c"disabled".as_ptr())
}

fn arenas_create(_: &Idx, r: &Req) -> R {
    if r.newp.is_null() && r.newlen == 0 {
        let a = arena::create_manual().ok_or(libc::EAGAIN)?;
        return r.read(a.id as u32);
    }
    Err(EINVAL) // custom extent hooks are not supported
}

/// `arenas.lookup`: write a pointer, read the arena index of its block.
fn arenas_lookup(_: &Idx, r: &Req) -> R {
    let p = r.write::<*const u8>()?.ok_or(EINVAL)?;
    let e = crate::metadata::rtree::lookup(p as usize);
    if e.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: registered descriptors are never freed.
    r.read(unsafe { (*e).arena } as u32)
}

/// For tests: a C string of a `const char *` result.
#[cfg(test)]
fn cstr(p: *const core::ffi::c_char) -> &'static core::ffi::CStr {
    // SAFETY: every string this module returns is a static C literal.
    unsafe { core::ffi::CStr::from_ptr(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<T: Copy + Default>(name: &str) -> Result<T, i32> {
        let mut v = T::default();
        let mut len = core::mem::size_of::<T>();
        let req = Req { oldp: &mut v as *mut T as *mut u8, oldlenp: &mut len, newp: core::ptr::null(), newlen: 0 };
        super::super::ctl_by_name(name.as_bytes(), &req).map(|_| v)
    }

    #[test]
    fn jemalloc_mib_positions() {
        let cases: &[(&str, &[usize])] = &[
            ("version", &[0]),
            ("epoch", &[1]),
            ("thread.tcache.flush", &[4, 5, 1]),
            ("thread.deallocatedp", &[4, 4]),
            ("config.malloc_conf", &[5, 4]),
            ("opt.narenas", &[6, 19]),
            ("arena.0.purge", &[8, 0, 2]),
            ("arenas.page", &[9, 4]),
            ("arenas.bin.3.nregs", &[9, 8, 3, 1]),
            ("arenas.create", &[9, 11]),
            ("stats.resident", &[11, 4]),
            ("stats.retained", &[11, 6]),
            ("stats.arenas.4096.pmuzzy", &[11, 9, 4096, 7]),
            ("stats.arenas.4096.bins.2.curregs", &[11, 9, 4096, 27, 2, 3]),
            ("stats.arenas.4096.bins.2.curslabs", &[11, 9, 4096, 27, 2, 8]),
            ("stats.arenas.4096.bins.2.nonfull_slabs", &[11, 9, 4096, 27, 2, 9]),
            ("experimental.utilization.batch_query", &[12, 1, 1]),
        ];
        crate::front::init::ensure();
        for (name, mib) in cases {
            let p = lookup(name.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&p.mib[..p.len], *mib, "{name}");
        }
        assert_eq!(lookup(b"arenas").err(), Some(ENOENT));
        assert_eq!(lookup(b"stats.cactive").err(), Some(ENOENT));
        assert_eq!(lookup(b"arenas.bin.41.size").err(), Some(ENOENT));
        assert_eq!(lookup(b"tcache.create").err(), Some(ENOENT));
        assert_eq!(lextent_size(0), 40960);
        assert_eq!(lextent_size(3), 65536);
        assert_eq!(lextent_size(NLEXTENTS - 1), 7 << 60);
        assert!(lookup(format!("arenas.lextent.{NLEXTENTS}.size").as_bytes()).is_err());
    }

    #[test]
    fn read_protocol() {
        crate::front::init::ensure();
        assert_eq!(get::<usize>("arenas.page"), Ok(4096));
        // A wrong-size buffer: copies min(size, len) bytes, rewrites len, EINVAL.
        let mut buf = [0u8; 16];
        let mut len = 16usize;
        let req = Req { oldp: buf.as_mut_ptr(), oldlenp: &mut len, newp: core::ptr::null(), newlen: 0 };
        assert_eq!(super::super::ctl_by_name(b"arenas.page", &req), Err(EINVAL));
        assert_eq!(len, 8);
        assert_eq!(usize::from_ne_bytes(buf[..8].try_into().unwrap()), 4096);
        // Writing a read-only name: EPERM.
        let v = 1usize;
        let req = Req { oldp: core::ptr::null_mut(), oldlenp: core::ptr::null_mut(), newp: &v as *const usize as *const u8, newlen: 8 };
        assert_eq!(super::super::ctl_by_name(b"arenas.page", &req), Err(libc::EPERM));
        let s = get::<usize>("stats.allocated").unwrap();
        let a = get::<usize>("stats.active").unwrap();
        let res = get::<usize>("stats.resident").unwrap();
        assert!(s <= a && a <= res, "{s} {a} {res}");
        assert!(cstr(get::<*const core::ffi::c_char>("version").unwrap()).to_bytes().ends_with(b"oxmalloc-0.1.0"));
        assert_eq!(get::<u32>("arenas.nbins"), Ok(NBINS as u32));
    }
}
