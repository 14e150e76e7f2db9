//! The Rust row of `make bench`: a JSON pipeline as a Rust service runs one. Worker threads
//! parse documents into `serde_json::Value` trees (maps, vectors, strings), transform them
//! (an index from tags to record ids, counts per event kind, records rewritten, filtered and
//! pruned), serialize the result and keep the last few outputs; each document's index goes
//! through a channel to an aggregator thread that merges it and drops it, so much of what a
//! worker allocates is freed on another thread.
//!
//! The same source is built once per global allocator (features `oxmalloc`, `mimalloc`,
//! `jemalloc`, none: the system's); it prints one line as bench/workloads/*.c do:
//!   RESULT workload=rust param=json allocator=A ops_per_sec=X ns_per_op=Y peak_rss_kib=N secs=T cpu_secs=C
//! where an op is one document through the pipeline, `secs` the pipeline's wall time (the
//! documents' text is generated first, untimed) and `cpu_secs` the process's user + system
//! time over the same span (less sensitive than wall time to other tenants of a shared host).
//! BENCH_QUICK=1: a quarter of the documents.
//!
//! usage: json-pipeline [json] [threads]

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::time::Instant;

#[cfg(feature = "oxmalloc")]
#[global_allocator]
static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The name the runner expects (bench.sh's allocator names; the system allocator is glibc's).
const ALLOCATOR: &str = if cfg!(feature = "oxmalloc") {
    "oxmalloc"
} else if cfg!(feature = "mimalloc") {
    "mimalloc"
} else if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "glibc"
};

/// Distinct documents, and documents each worker processes in a full run.
const NDOCS: usize = 16;
const PER_WORKER: usize = 48;
/// Outputs each worker keeps (a cache of recent results: long-lived blocks among the churn).
const KEEP: usize = 6;

/// xorshift64*
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 11) % n
    }
}

const KINDS: [&str; 5] = ["click", "view", "scroll", "purchase", "login"];
const CITIES: [&str; 6] = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tallinn", "Perth"];

/// Document `d`: 200 to 2600 records, each with tags, an address and 0 to 24 events
/// (0.1 to 1.5 MB of text).
fn document(d: usize) -> String {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ (d as u64 + 1));
    let n = 200 + (d * 2400) / (NDOCS - 1);
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let id = (d * 100_000 + i) as u64;
            let tags: Vec<Value> = (0..r.below(6)).map(|_| json!(format!("tag-{}", r.below(400)))).collect();
            let events: Vec<Value> = (0..r.below(25))
                .map(|k| {
                    json!({
                        "ts": 1_700_000_000 + r.below(10_000_000),
                        "kind": KINDS[r.below(5) as usize],
                        "payload": {"x": r.below(1920), "y": r.below(1080), "path": format!("/shop/{}/item/{}", r.below(50), k)},
                    })
                })
                .collect();
            json!({
                "id": id,
                "name": format!("user {} of batch {}", i, d),
                "email": format!("user{}@example.org", id),
                "active": r.below(4) != 0,
                "score": r.below(100_000) as f64 / 100.0,
                "tags": tags,
                "address": {"city": CITIES[r.below(6) as usize], "zip": format!("{:05}", r.below(100_000))},
                "events": events,
            })
        })
        .collect();
    json!({"version": 3, "batch": d, "records": records}).to_string()
}

/// What a worker hands to the aggregator for one document.
struct Summary {
    index: HashMap<String, Vec<u64>>,
    kinds: BTreeMap<String, u64>,
}

/// Parse, transform, serialize one document; returns the output and the summary.
fn process(text: &str) -> (String, Summary) {
    let mut v: Value = serde_json::from_str(text).expect("valid JSON");
    let mut index: HashMap<String, Vec<u64>> = HashMap::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(records) = v.get_mut("records").and_then(Value::as_array_mut) {
        for rec in records.iter_mut() {
            let id = rec["id"].as_u64().unwrap_or(0);
            if let Some(tags) = rec["tags"].as_array() {
                for t in tags.iter().filter_map(Value::as_str) {
                    index.entry(t.to_string()).or_default().push(id);
                }
            }
            let Some(obj) = rec.as_object_mut() else { continue };
            obj.remove("email");
            if let Some(Value::String(name)) = obj.get_mut("name") {
                *name = name.to_uppercase();
            }
            if let Some(Value::Array(events)) = obj.get_mut("events") {
                for kind in events.iter().filter_map(|e| e["kind"].as_str()) {
                    *kinds.entry(kind.to_string()).or_default() += 1;
                }
                events.retain(|e| e["kind"] == "click" || e["kind"] == "purchase");
                let n = events.len();
                obj.insert("kept_events".to_string(), Value::from(n));
            }
        }
        records.retain(|rec| rec["active"].as_bool().unwrap_or(false));
    }
    let out = serde_json::to_string(&v).expect("serializable");
    (out, Summary { index, kinds })
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of the whole process so far.
fn cpu_secs() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the buffer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: initialized by the successful call (and zeroed before).
    let u = unsafe { u.assume_init() };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let param = args.get(1).cloned().unwrap_or_else(|| "json".to_string());
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|q| !q.is_empty() && q != "0");
    let per_worker = if quick { PER_WORKER / 4 } else { PER_WORKER };

    let docs: std::sync::Arc<Vec<String>> = std::sync::Arc::new((0..NDOCS).map(document).collect());

    let start = Instant::now();
    let cpu_start = cpu_secs();
    let (tx, rx) = mpsc::sync_channel::<Summary>(8);
    let aggregator = std::thread::spawn(move || {
        let mut tags: HashMap<String, u64> = HashMap::new();
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for s in rx {
            for (t, ids) in s.index {
                *tags.entry(t).or_default() += ids.len() as u64;
            }
            for (k, n) in s.kinds {
                *kinds.entry(k).or_default() += n;
            }
        }
        (tags.values().sum::<u64>(), kinds.values().sum::<u64>())
    });
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let tx = tx.clone();
            let docs = docs.clone();
            std::thread::spawn(move || {
                let mut kept: VecDeque<String> = VecDeque::new();
                let mut bytes = 0usize;
                for i in 0..per_worker {
                    let (out, summary) = process(&docs[(w * 5 + i * 7) % docs.len()]);
                    bytes += out.len();
                    kept.push_back(out);
                    if kept.len() > KEEP {
                        kept.pop_front();
                    }
                    tx.send(summary).expect("aggregator alive");
                }
                bytes
            })
        })
        .collect();
    drop(tx);
    let bytes: usize = workers.into_iter().map(|h| h.join().expect("worker")).sum();
    let (tag_refs, events) = aggregator.join().expect("aggregator");
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_start;
    let ops = (threads * per_worker) as f64;
    eprintln!("json-pipeline: {ops} documents, {bytes} bytes out, {tag_refs} tag references, {events} events");
    println!(
        "RESULT workload=rust param={param} allocator={ALLOCATOR} ops_per_sec={:.1} ns_per_op={:.3} peak_rss_kib={} secs={secs:.3} cpu_secs={cpu:.3}",
        ops / secs,
        secs * 1e9 / ops,
        peak_rss_kib()
    );
}
