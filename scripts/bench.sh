#!/usr/bin/env bash
# oxmalloc benchmark suite: runs every workload in bench/workloads/ under oxmalloc, glibc,
# jemalloc, mimalloc and tcmalloc (LD_PRELOAD) in one invocation, alternating the allocators
# within each round, plus the Rust row (workload `rust`: bench/rust/, one Rust program built
# once per global allocator: the system's = glibc, oxmalloc::OxMalloc, the mimalloc crate,
# tikv-jemallocator; no tcmalloc; the crates come from crates.io at build time), and writes
#   target/bench/results.csv   every run (raw)
#   target/bench/summary.csv   medians per (workload, param, allocator) + ratio to jemalloc
#   target/bench/chart.svg     ratio to jemalloc per workload and allocator (log scale)
#   target/bench/idle.svg      RSS over time of the idle workload, one curve per allocator
#   target/bench/targets.txt   the targets checked against the medians (bench_targets.py)
# and prints one table per workload, then the targets.
#
# Knobs (environment):
#   RUNS=3                 rounds (every workload x param x allocator once per round)
#   ALLOCATORS="oxmalloc glibc jemalloc mimalloc tcmalloc"
#   ONLY="pairs batch larson prodcons realloc threadchurn drift idle refault teardown growth threads rust"
#                          workload subset
#   MEM_RUNS=1             rounds that run idle, refault and threads (each run idles 11-20 s)
#   QUICK=1                ~1/4 of the timed work per run (whole suite < 2 min on 2 cores)
#   OXMALLOC_LIB=target/release/liboxmalloc.so
#   BENCH_OUT=target/bench output folder; CC=gcc
# The library is not built here (`make bench` builds it first).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
ALLOCATORS=${ALLOCATORS:-"oxmalloc glibc jemalloc mimalloc tcmalloc"}
ONLY=${ONLY:-"pairs batch larson prodcons realloc threadchurn drift idle refault teardown growth threads rust"}
MEM_RUNS=${MEM_RUNS:-1}
OXMALLOC_LIB=${OXMALLOC_LIB:-$ROOT/target/release/liboxmalloc.so}
OUT=${BENCH_OUT:-$ROOT/target/bench}
CC=${CC:-gcc}
LIBDIR=/usr/lib/x86_64-linux-gnu
SIZES="16 64 256 1024 4096 16384 32768 65536 262144"

lib_of() {
    case $1 in
        oxmalloc) echo "$OXMALLOC_LIB" ;;
        glibc) echo "" ;;
        jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
        mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
        tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
        *) echo "unknown allocator: $1" >&2; return 1 ;;
    esac
}
pkg_of() {
    case $1 in
        jemalloc) echo libjemalloc2 ;;
        mimalloc) echo libmimalloc2.0 ;;
        tcmalloc) echo libtcmalloc-minimal4 ;;
    esac
}
params_of() {
    case $1 in
        pairs|batch) echo "$SIZES" ;;
        larson) echo "1 2" ;;
        prodcons) echo "8192" ;;
        realloc) echo "step double" ;;
        threadchurn) if [ "$QUICK" = 1 ]; then echo 500; else echo 2000; fi ;;
        drift) echo "40000" ;;
        idle) echo "mixed large" ;;
        refault) if [ "$QUICK" = 1 ]; then echo 500; else echo 2000; fi ;;
        teardown) echo "16 64 256 1024" ;;
        growth) echo "64" ;;
        threads) echo "100 1000" ;;
        rust) echo "json" ;;
        *) echo "unknown workload: $1" >&2; return 1 ;;
    esac
}

# --- allocators: install missing Debian packages, drop what is still missing -----------------
missing_pkgs=""
for a in $ALLOCATORS; do
    lib=$(lib_of "$a") || exit 2
    if [ -n "$lib" ] && [ ! -e "$lib" ] && [ -n "$(pkg_of "$a")" ]; then
        missing_pkgs="$missing_pkgs $(pkg_of "$a")"
    fi
done
if [ -n "$missing_pkgs" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing$missing_pkgs" >&2
        (apt-get install -y -q $missing_pkgs || { apt-get update -q && apt-get install -y -q $missing_pkgs; }) >&2
    else
        echo "bench: missing$missing_pkgs (not root or no apt-get); those allocators are skipped" >&2
    fi
fi
active=""
declare -A LIB EXPECT
for a in $ALLOCATORS; do
    lib=$(lib_of "$a")
    if [ -n "$lib" ] && [ ! -e "$lib" ]; then
        echo "bench: skipping $a ($lib not found)" >&2
        continue
    fi
    LIB[$a]=$lib
    # Name the program will find in /proc/self/maps: the real file behind the path.
    if [ -n "$lib" ]; then EXPECT[$a]=$(basename "$(readlink -f "$lib")"); else EXPECT[$a]=glibc; fi
    active="$active $a"
done
[ -n "$active" ] || { echo "bench: no allocator available" >&2; exit 2; }

# --- build the workload programs ----------------------------------------------------------------
mkdir -p "$OUT/bin"
# The Rust row: bench/rust built once per allocator into $OUT/bin/rust-<allocator> (its own
# target dir; a build that fails, e.g. without network for the crates, drops that allocator).
rust_bin() { echo "$OUT/bin/rust-$1"; }
if [[ " $ONLY " == *" rust "* ]]; then
    for a in $active; do
        case $a in
            glibc) feat="" ;;
            oxmalloc|mimalloc|jemalloc) feat="--features $a" ;;
            *) continue ;;
        esac
        rm -f "$(rust_bin "$a")"
        if ${CARGO:-cargo} build --release --quiet --manifest-path bench/rust/Cargo.toml \
                --target-dir "$ROOT/target/bench-rust" $feat >&2; then
            cp "$ROOT/target/bench-rust/release/json-pipeline" "$(rust_bin "$a")"
        else
            echo "bench: Rust build for $a failed; no Rust row for it" >&2
        fi
    done
fi
for w in $ONLY; do
    [ "$w" = rust ] && continue
    src=bench/workloads/$w.c
    [ -f "$src" ] || { echo "bench: no workload $w ($src)" >&2; exit 2; }
    if [ ! -x "$OUT/bin/$w" ] || [ "$src" -nt "$OUT/bin/$w" ] || [ bench/workloads/common.h -nt "$OUT/bin/$w" ]; then
        $CC -O2 -g -Wall -pthread -o "$OUT/bin/$w" "$src" -ldl -lm || { echo "bench: build of $w failed" >&2; exit 2; }
    fi
done

# --- run ----------------------------------------------------------------------------------------
RESULTS=$OUT/results.csv
echo "round,workload,param,allocator,status,ops_per_sec,ns_per_op,peak_rss_kib,rss_over_live,extra" > "$RESULTS"
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
read -r -a alist <<<"$active"
n=${#alist[@]}
failures=0
start=$(date +%s)
echo "bench: allocators:$active; workloads: $ONLY; RUNS=$RUNS QUICK=$QUICK" >&2
mkdir -p "$OUT/trace"
for ((r = 1; r <= RUNS; r++)); do
    for w in $ONLY; do
        case $w in idle|refault|threads) [ "$r" -le "$MEM_RUNS" ] || continue ;; esac
        for p in $(params_of "$w"); do
            for ((i = 0; i < n; i++)); do
                # rotate the allocator order every round (and per param) to spread drift
                a=${alist[$(((i + r + ${#p}) % n))]}
                lib=${LIB[$a]}
                bin=$OUT/bin/$w
                expect=${EXPECT[$a]}
                if [ "$w" = rust ]; then
                    # Linked in, not preloaded; the program names its allocator itself.
                    bin=$(rust_bin "$a")
                    [ -x "$bin" ] || continue
                    lib=""
                    expect=$a
                fi
                line=$(BENCH_QUICK=$QUICK LD_PRELOAD=$lib timeout 120 "$bin" "$p" 2>"$OUT/stderr.tmp" | grep '^RESULT' | tail -1)
                rc=${PIPESTATUS[0]}
                status=ok
                got=$(kv allocator "$line")
                if [ -z "$line" ]; then
                    status="fail(rc=$rc)"
                elif [ "$got" != "$expect" ]; then
                    status="wrong_allocator($got)"
                fi
                if [ "$status" != ok ]; then
                    failures=$((failures + 1))
                    echo "bench: $w $p $a: $status $(head -c 300 "$OUT/stderr.tmp")" >&2
                fi
                if [ "$w" = idle ] && [ "$status" = ok ]; then
                    grep '^TRACE ' "$OUT/stderr.tmp" > "$OUT/trace/idle-$p-$a.txt"
                fi
                extra=$(sed -e 's/.*peak_rss_kib=[^ ]*//' -e 's/^ *//' -e 's/ rss_over_live=[^ ]*//' -e 's/,/;/g' <<<"$line")
                echo "$r,$w,$p,$a,$status,$(kv ops_per_sec "$line"),$(kv ns_per_op "$line"),$(kv peak_rss_kib "$line"),$(kv rss_over_live "$line"),$extra" >> "$RESULTS"
                printf '.' >&2
            done
        done
    done
    echo " round $r/$RUNS done ($(( $(date +%s) - start )) s)" >&2
done
rm -f "$OUT/stderr.tmp"

python3 scripts/bench_chart.py "$RESULTS" "$OUT/summary.csv" "$OUT/chart.svg"
python3 scripts/bench_idle_svg.py "$OUT/trace" "$OUT/idle.svg"
echo
python3 scripts/bench_targets.py "$OUT/summary.csv" "$OUT/trace" | tee "$OUT/targets.txt"
echo "bench: wrote $RESULTS, $OUT/summary.csv, $OUT/chart.svg, $OUT/idle.svg, $OUT/targets.txt ($(( $(date +%s) - start )) s, $failures failed runs)"
[ "$failures" = 0 ]
