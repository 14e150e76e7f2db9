#!/usr/bin/env bash
# Foundation measurements: bench/pair.c (single-thread malloc+free
# ns per pair at 16, 256, 4096, 65536 bytes) and bench/reuse.c (peak RSS when 512 MiB of 64-byte
# objects is freed and 512 MiB of 4096-byte objects allocated after it).
#
#   scripts/measure-foundation.sh
#
# Runs each program under every allocator, alternating allocators within each round so that
# machine noise spreads evenly, RUNS rounds (default 5), and prints the medians and the ratio to
# jemalloc. Allocators: oxmalloc (OXMALLOC_LIB, default target/release/liboxmalloc.so; skipped
# with a note if it is not built), glibc (no preload), Debian's jemalloc, mimalloc and tcmalloc
# (each skipped if not installed). Pick a subset with ALLOCATORS="oxmalloc glibc jemalloc".
# PAIR_SCALE scales pair's iteration counts (default 1). Raw output is kept in $OUT_DIR if set.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OX=${OXMALLOC_LIB:-$ROOT/target/release/liboxmalloc.so}
RUNS=${RUNS:-5}
PAIR_SCALE=${PAIR_SCALE:-1}
ALLOCATORS=${ALLOCATORS:-oxmalloc glibc jemalloc mimalloc tcmalloc}
LIBDIR=/usr/lib/x86_64-linux-gnu

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oxmalloc-measure.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OUT_DIR=${OUT_DIR:-$WORK}
mkdir -p "$OUT_DIR"

lib_of() {
    case $1 in
        oxmalloc) echo "$OX" ;;
        glibc) echo "" ;;
        jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
        mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
        tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
        *) echo "unknown allocator $1" >&2; return 1 ;;
    esac
}
# substring the program must report as the mapped malloc library
tag_of() { case $1 in glibc) echo glibc ;; tcmalloc) echo libtcmalloc ;; *) echo "lib$1" ;; esac; }

echo "== building bench/pair.c and bench/reuse.c (gcc -O2)"
gcc -O2 -Wall -o "$WORK/pair" "$ROOT/bench/pair.c" || exit 1
gcc -O2 -Wall -o "$WORK/reuse" "$ROOT/bench/reuse.c" || exit 1

allocs=()
for a in $ALLOCATORS; do
    lib=$(lib_of "$a") || exit 1
    if [ -n "$lib" ] && [ ! -f "$lib" ]; then
        echo "note: $a skipped: $lib not found"
        continue
    fi
    allocs+=("$a")
done
[ ${#allocs[@]} -gt 0 ] || { echo "no allocator to measure"; exit 1; }
echo "== allocators: ${allocs[*]}; $RUNS rounds; $(nproc) cores; $(uname -r)"
[ -n "$(lib_of oxmalloc)" ] && [ -f "$OX" ] && echo "   oxmalloc: $(readlink -f "$OX")"

RES=$OUT_DIR/results.txt   # lines: allocator metric value
: >"$RES"
failures=0

# run_one ALLOC NAME CMD...: runs CMD under ALLOC, appends parsed numbers to $RES
run_one() {
    local a=$1 what=$2
    shift 2
    local lib out rc
    lib=$(lib_of "$a")
    out=$OUT_DIR/$what.$a.$round.txt
    if [ -n "$lib" ]; then
        LD_PRELOAD=$(readlink -f "$lib") timeout -k 5 300 "$@" >"$out" 2>&1
    else
        timeout -k 5 300 "$@" >"$out" 2>&1
    fi
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAILED: $what under $a, round $round, exit status $rc; last lines:"
        tail -n 10 "$out" | sed 's/^/    | /'
        failures=$((failures + 1))
        return
    fi
    local tag
    tag=$(tag_of "$a")
    if ! grep -q "allocator=[^ ]*$tag" "$out"; then
        echo "FAILED: $what under $a reports allocator '$(grep -o 'allocator=[^ ]*' "$out" | head -n 1)', not $tag"
        failures=$((failures + 1))
        return
    fi
    if [ "$what" = pair ]; then
        sed -n -E "s/^pair allocator=[^ ]+ size=([0-9]+) ns=([0-9.]+).*/$a pair\1 \2/p" "$out" >>"$RES"
    else
        sed -n -E "s/^reuse allocator=[^ ]+ peak_ratio=([0-9.]+) net_peak_ratio=([0-9.]+).*/$a reuse_raw \1\n$a reuse_net \2/p" "$out" >>"$RES"
    fi
}

for round in $(seq 1 "$RUNS"); do
    echo "== round $round/$RUNS"
    # rotate the order each round so no allocator always runs first
    n=${#allocs[@]}
    for k in $(seq 0 $((n - 1))); do
        a=${allocs[$(((k + round - 1) % n))]}
        run_one "$a" pair "$WORK/pair" "$PAIR_SCALE" 5
        run_one "$a" reuse "$WORK/reuse"
    done
done

median() { # allocator metric -> median or "-"
    awk -v a="$1" -v m="$2" '$1 == a && $2 == m { print $3 }' "$RES" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { # value reference
    awk -v x="$1" -v r="$2" 'BEGIN { if (x == "-" || r == "-" || r == 0) print "-"; else printf "%.2f", x / r }'
}

echo
echo "== malloc+free pair, single thread: median ns per pair over $RUNS runs (each run itself the median of 5); (x jemalloc)"
printf '%-10s' allocator
for s in 16 256 4096 65536; do printf ' %20s' "${s} B"; done
echo
for a in "${allocs[@]}"; do
    printf '%-10s' "$a"
    for s in 16 256 4096 65536; do
        v=$(median "$a" pair$s)
        j=$(median jemalloc pair$s)
        printf ' %20s' "$v ($(ratio "$v" "$j"))"
    done
    echo
done

echo
echo "== reuse: peak RSS / 512 MiB, median over $RUNS runs (net: minus the pointer arrays' RSS); (x jemalloc)"
printf '%-10s %16s %16s\n' allocator net raw
for a in "${allocs[@]}"; do
    v=$(median "$a" reuse_net)
    r=$(median "$a" reuse_raw)
    printf '%-10s %16s %16s\n' "$a" "$v ($(ratio "$v" "$(median jemalloc reuse_net)"))" "$r"
done

if [ "${OUT_DIR}" != "$WORK" ]; then echo "raw output in $OUT_DIR"; fi
if [ $failures -ne 0 ]; then
    echo "$failures run(s) failed"
    exit 1
fi
