#!/bin/bash
# A/B timing of malloc libraries on a noisy host: runs bench/ab/fastest_chunk under each
# library in turn, ROUNDS times, and prints per library the fastest chunk over all runs and
# the median over runs of each run's 10th-percentile chunk (ns per malloc+free).
# Usage: scripts/ab-fastest.sh ROUNDS "SIZE [BATCH [CHUNKS]]" LIB...
# Example: scripts/ab-fastest.sh 7 "65536 1 5000" old.so target/release/liboxmalloc.so
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,6p "$0"; exit 2; }
rounds=$1; args=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/ab/fastest_chunk
mkdir -p "$(dirname "$bin")"
if [ ! "$bin" -nt "$root/bench/ab/fastest_chunk.c" ] || [ ! "$bin" -nt "$root/bench/workloads/common.h" ]; then
  cc -O2 -o "$bin" "$root/bench/ab/fastest_chunk.c"
fi
declare -A p10 mins
for _ in $(seq "$rounds"); do
  for lib in "$@"; do
    # shellcheck disable=SC2086
    out=$(LD_PRELOAD=$lib "$bin" $args)
    p10[$lib]+=" $(sed 's/.*p10=\([0-9.]*\).*/\1/' <<<"$out")"
    mins[$lib]+=" $(sed 's/min=\([0-9.]*\).*/\1/' <<<"$out")"
  done
done
for lib in "$@"; do
  med=$(tr ' ' '\n' <<<"${p10[$lib]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  best=$(tr ' ' '\n' <<<"${mins[$lib]}" | grep . | sort -g | head -1)
  printf '%-32s fastest=%s p10-median=%s  [p10 per run:%s]\n' "$(basename "$lib")" "$best" "$med" "${p10[$lib]}"
done
