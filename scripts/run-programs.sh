#!/usr/bin/env bash
# Whole-program checks: real programs run with the library preloaded.
#
#   scripts/run-programs.sh            # uses target/release/liboxmalloc.so
#   OXMALLOC_LIB=/path/lib.so EXPECT_LIB_NAME=libname scripts/run-programs.sh
#
# Each check proves the program really bound to the preloaded library (LD_DEBUG=bindings, or
# /proc/<pid>/maps for the server), then checks the program's output. Where the output is
# deterministic it is compared with a run of the same program without any preload.
#
# To try the script itself against another allocator:
#   OXMALLOC_LIB=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 EXPECT_LIB_NAME=libjemalloc \
#     scripts/run-programs.sh
#
# Env knobs: OXMALLOC_LIB (library path), EXPECT_LIB_NAME (substring the binding target's file
# name must contain; default liboxmalloc), KEEP_TMP=1 (keep the temp folder for inspection),
# ONLY="python cxx ..." (run only these checks; the names: python cxx cxx_bad_alloc redis idle
# sqlite git perl cpython), CPYTHON_TESTS="test_dict ..." (the CPython test modules `cpython` runs).
#
# Prints PASS name / FAIL name: reason per check and ends with "N passed, N failed".
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=${OXMALLOC_LIB:-$ROOT/target/release/liboxmalloc.so}
EXPECT=${EXPECT_LIB_NAME:-liboxmalloc}
ONLY=${ONLY:-}

passed=0
failed=0
REASON=""
DETAIL=""          # a file whose tail is shown under a FAIL line
REDIS_PID=""

TMP=$(mktemp -d "${TMPDIR:-/tmp}/oxmalloc-programs.XXXXXX")

cleanup() {
    if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill -9 "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "temp files kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $1${2:+ ($2)}"; passed=$((passed + 1)); }
fail() {
    echo "FAIL $1: $2"
    if [ -n "$DETAIL" ] && [ -s "$DETAIL" ]; then
        tail -n 15 "$DETAIL" | cut -c1-300 | sed 's/^/    | /'
    fi
    failed=$((failed + 1))
}

# Describe an exit status.
rc_text() {
    local rc=$1
    if [ "$rc" -eq 124 ]; then echo "timed out"
    elif [ "$rc" -gt 128 ]; then echo "killed by signal $((rc - 128)) (rc=$rc)"
    else echo "exit status $rc"
    fi
}

# run_preloaded DIR SECONDS CMD...: runs CMD with the library preloaded and the dynamic linker's
# bindings logged to DIR/ld.<pid>; stdout to DIR/out, stderr to DIR/err. Returns CMD's status.
run_preloaded() {
    local dir=$1 secs=$2
    shift 2
    LD_PRELOAD=$LIB LD_DEBUG=bindings LD_DEBUG_OUTPUT=$dir/ld \
        timeout -k 5 "$secs" "$@" >"$dir/out" 2>"$dir/err"
}

# check_bindings DIR SYMBOL...: every binding of each SYMBOL recorded in DIR/ld.* (all processes
# of the run) must go to a file whose name contains $EXPECT, and each SYMBOL must have been bound
# at least once. On failure sets REASON.
check_bindings() {
    local dir=$1
    shift
    local files=("$dir"/ld.*)
    if [ ! -e "${files[0]}" ]; then
        REASON="no LD_DEBUG output was written"
        return 1
    fi
    local sym lines
    for sym in "$@"; do
        # ld.so prints one binding in several writes, so threads binding lazily at the same
        # time can splice two bindings into one line (e.g. "..._Znwm'binding file X [0] to
        # libc.so.6 ...", which reads as _Znwm bound to libc): split before each "binding file".
        lines=$(sed 's/binding file /\nbinding file /g' "${files[@]}" |
            grep -E "^binding file .* to .*: normal symbol \`$sym'")
        if [ -z "$lines" ]; then
            REASON="no binding of $sym was recorded"
            return 1
        fi
        local target
        while read -r target; do
            [ -n "$target" ] || continue
            # A non-PIE main program (python3 is one) that takes the function's address owns
            # the canonical PLT entry: the other objects bind to that entry, and the entry
            # itself must then be bound to us.
            if [ "$(LC_ALL=C readelf -h "$target" 2>/dev/null | awk '/Type:/ { print $2 }')" = EXEC ] &&
                printf '%s\n' "$lines" | grep -F "binding file $target [0] to " | grep -v -F "to $target [" |
                    grep -q -F -- "$EXPECT"; then
                continue
            fi
            REASON="$sym bound to $target instead of $EXPECT"
            if [ "$(LC_ALL=C readelf -h "$target" 2>/dev/null | awk '/Type:/ { print $2 }')" = EXEC ]; then
                REASON="$REASON (program's PLT entry bound to: $(printf '%s\n' "$lines" |
                    grep -F "binding file $target [0] to " | grep -v -F "to $target [" |
                    sed -E 's/.* to ([^ ]+) \[[0-9]+\]: normal symbol.*/\1/' | sort -u | tr '\n' ' '))"
            fi
            return 1
        done < <(printf '%s\n' "$lines" | sed -E 's/.* to ([^ ]+) \[[0-9]+\]: normal symbol.*/\1/' \
            | grep -v -F -- "$EXPECT" | sort -u)
    done
    return 0
}

# Which file a symbol was bound to (first one seen), for the report.
bound_to() {
    local dir=$1 sym=$2
    grep -h -E "normal symbol \`$sym'" "$dir"/ld.* 2>/dev/null | head -n 1 \
        | sed -E 's/.* to ([^ ]+) \[[0-9]+\]: normal symbol.*/\1/' | xargs -r basename
}

want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
check_python() {
    local d=$TMP/python
    mkdir -p "$d"
    local py=/usr/bin/python3
    if [ ! -x "$py" ]; then REASON="$py not installed (apt-get install python3)"; return 1; fi
    cat >"$d/work.py" <<'EOF'
import hashlib, json, random, sys, threading

def worker(seed, out):
    rnd = random.Random(seed)
    digest = hashlib.sha256()
    for rnd_i in range(20):
        items = []
        for i in range(2000):
            d = {"id": i, "name": "n%d-%s" % (i, "x" * rnd.randrange(0, 120)),
                 "tags": [rnd.randrange(1000) for _ in range(rnd.randrange(0, 12))],
                 "nested": {"a": [str(j) * rnd.randrange(1, 5) for j in range(5)], "f": i / 7}}
            items.append(d)
        text = json.dumps(items, sort_keys=True)
        back = json.loads(text)
        if back != items:
            raise SystemExit("json round trip mismatch in thread %d" % seed)
        del items[::2]
        digest.update(json.dumps(back[::3], sort_keys=True).encode())
    out[seed] = digest.hexdigest()

out = {}
threads = [threading.Thread(target=worker, args=(s, out)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
if len(out) != 4:
    raise SystemExit("a worker thread died")
for s in sorted(out): print("thread", s, out[s])

# sort- and str-heavy part
rnd = random.Random(99)
words = ["".join(chr(97 + rnd.randrange(26)) for _ in range(rnd.randrange(1, 40))) for _ in range(150000)]
words.sort()
joined = " ".join(words)
parts = joined.split(" ")
assert parts == words
counts = {}
for w in words:
    counts[w[:2]] = counts.get(w[:2], 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
print("words", len(words), words[0], words[-1], top)
print("sha", hashlib.sha256(joined.upper().encode()).hexdigest())
EOF
    local rc
    DETAIL=$d/expected.err
    PYTHONMALLOC=malloc timeout -k 5 300 "$py" "$d/work.py" >"$d/expected" 2>"$d/expected.err"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="baseline run without preload failed: $(rc_text $rc)"; return 1; fi
    DETAIL=$d/err
    PYTHONMALLOC=malloc run_preloaded "$d" 300 "$py" "$d/work.py"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! cmp -s "$d/expected" "$d/out"; then
        diff "$d/expected" "$d/out" >"$d/diff"; DETAIL=$d/diff
        REASON="output differs from the run without preload"; return 1
    fi
    check_bindings "$d" malloc free realloc calloc || return 1
    REASON=""
}

# ---------------------------------------------------------------------------------------------
check_cxx() {
    local d=$TMP/cxx
    mkdir -p "$d"
    local src=$ROOT/ctests/interpose/jemalloc_new.cpp
    DETAIL=$d/build.log
    if ! command -v g++ >/dev/null; then REASON="g++ not installed"; return 1; fi
    if ! g++ -O2 -std=c++17 -Wall -pthread "$src" -o "$d/jemalloc_new" -ljemalloc >"$d/build.log" 2>&1; then
        REASON="compile failed (needs g++ and libjemalloc-dev)"; return 1
    fi
    # Without a preload the program's operator new must come from jemalloc: proves the test is
    # meaningful (the preload has to win over a library the program links directly).
    if ! ldd "$d/jemalloc_new" | grep -q libjemalloc; then
        REASON="test binary is not linked to libjemalloc"; return 1
    fi
    local rc
    DETAIL=$d/err
    run_preloaded "$d" 120 "$d/jemalloc_new"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! grep -q '^jemalloc_new: ok' "$d/out"; then REASON="program did not print its ok line"; return 1; fi
    check_bindings "$d" malloc free _Znwm _ZdlPvm _ZdlPv _Znam _ZdaPv _ZnwmRKSt9nothrow_t \
        _ZnwmSt11align_val_t _ZdlPvmSt11align_val_t || return 1
    # Every operator new/delete binding, whatever the overload, must go to us.
    local bad
    # (Lines split first: concurrent lazy bindings can splice two records into one line.)
    bad=$(sed 's/binding file /\nbinding file /g' "$d"/ld.* \
        | grep -h -E "normal symbol \`_Z(nw|na|dl|da)[^']*'" \
        | sed -E 's/.* to ([^ ]+) \[[0-9]+\]: normal symbol `([^'"'"']+)'"'"'.*/\2 -> \1/' \
        | grep -v -F -- "$EXPECT" | sort -u | head -n 5 | tr '\n' ' ')
    if [ -n "$bad" ]; then REASON="operators bound elsewhere: $bad"; return 1; fi
    REASON=""
}

# Throwing operator new must throw std::bad_alloc on an impossible size (not abort, not return
# null). Uses the binary built by check_cxx.
check_cxx_bad_alloc() {
    local d=$TMP/cxx_bad_alloc
    mkdir -p "$d"
    if [ ! -x "$TMP/cxx/jemalloc_new" ]; then REASON="needs the cxx check's binary (build failed or cxx not run)"; return 1; fi
    local rc
    DETAIL=$d/err
    run_preloaded "$d" 60 "$TMP/cxx/jemalloc_new" bad_alloc
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! grep -q '^jemalloc_new: bad_alloc ok' "$d/out"; then REASON="program did not print its ok line"; return 1; fi
    check_bindings "$d" _Znwm _ZnamSt11align_val_t || return 1
    REASON=""
}

# ---------------------------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Value of an INFO field ("name:value" lines, CRLF-terminated) in file $2.
field() { awk -F: -v k="$1" '$1 == k { gsub(/\r/, "", $2); print $2 }' "$2"; }

check_redis() {
    local d=$TMP/redis
    mkdir -p "$d"
    local b
    for b in redis-server redis-cli redis-benchmark; do
        if ! command -v $b >/dev/null; then REASON="$b not installed (redis-server, redis-tools)"; return 1; fi
    done
    local port="" p
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$((6390 + RANDOM % 2000))
        if port_free "$p"; then port=$p; break; fi
    done
    if [ -z "$port" ]; then REASON="no free port found"; return 1; fi
    local cli=(timeout -k 2 60 redis-cli -h 127.0.0.1 -p "$port")

    DETAIL=$d/server.log
    LD_PRELOAD=$LIB LD_DEBUG=bindings LD_DEBUG_OUTPUT=$d/ld \
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
        --dir "$d" --logfile "$d/server.log" --enable-debug-command local \
        >"$d/server.out" 2>&1 &
    REDIS_PID=$!

    local up=0
    for _ in $(seq 1 100); do
        if ! kill -0 "$REDIS_PID" 2>/dev/null; then break; fi
        if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then up=1; break; fi
        sleep 0.1
    done
    if [ $up -ne 1 ]; then
        wait "$REDIS_PID" 2>/dev/null; local rc=$?
        REASON="server did not answer PING within 10 s ($(rc_text $rc))"; REDIS_PID=""; return 1
    fi

    if ! grep -q -F -- "$EXPECT" "/proc/$REDIS_PID/maps"; then
        REASON="/proc/$REDIS_PID/maps has no $EXPECT"; return 1
    fi

    DETAIL=$d/bench.out
    timeout -k 5 180 redis-benchmark -h 127.0.0.1 -p "$port" -q -n 20000 -c 10 \
        -t set,get,lpush,lpop,incr >"$d/bench.out" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then REASON="redis-benchmark failed: $(rc_text $rc)"; return 1; fi
    local t
    for t in SET GET LPUSH LPOP INCR; do
        if ! tr '\r' '\n' <"$d/bench.out" | grep -q "^$t: .*requests per second"; then
            REASON="redis-benchmark printed no result for $t"; return 1
        fi
    done
    DETAIL=$d/server.log
    if ! kill -0 "$REDIS_PID" 2>/dev/null; then REASON="server died during redis-benchmark"; return 1; fi

    # 1 MiB value round trip (printable, no trailing newline)
    DETAIL=$d/cli.err
    head -c 1048576 < <(yes 'oxmalloc-0123456789-abcdefghijklmnopqrstuvwxyz' | tr -d '\n') >"$d/big"
    "${cli[@]}" flushall >/dev/null 2>"$d/cli.err"
    if [ "$("${cli[@]}" -x set big <"$d/big" 2>>"$d/cli.err")" != OK ]; then REASON="SET of a 1 MiB value failed"; return 1; fi
    "${cli[@]}" --raw get big >"$d/big.back" 2>>"$d/cli.err"
    if ! cmp -s <(cat "$d/big"; echo) "$d/big.back"; then REASON="GET returned a different 1 MiB value"; return 1; fi
    if [ "$("${cli[@]}" strlen big 2>>"$d/cli.err")" != 1048576 ]; then REASON="STRLEN of the 1 MiB value is wrong"; return 1; fi
    "${cli[@]}" append big tail >/dev/null 2>>"$d/cli.err"
    "${cli[@]}" del big >/dev/null 2>>"$d/cli.err"

    # many keys (100000 x 500 B, made by a Lua loop: no DEBUG command needed)
    "${cli[@]}" eval "for i=0,99999 do redis.call('set','key:'..i,string.rep('v',500)) end return 1" 0 >/dev/null 2>>"$d/cli.err"
    local n
    n=$("${cli[@]}" dbsize 2>>"$d/cli.err")
    if [ "$n" != 100000 ]; then REASON="DBSIZE is '$n' after populating 100000 keys"; return 1; fi
    # INFO memory's allocator figures come from oxmalloc's mallctl: allocated <= active <= resident
    sleep 0.3
    "${cli[@]}" info memory >"$d/info1" 2>>"$d/cli.err"
    local al ac re
    al=$(field allocator_allocated "$d/info1"); ac=$(field allocator_active "$d/info1"); re=$(field allocator_resident "$d/info1")
    if ! [ "${al:-0}" -gt 50000000 ] 2>/dev/null || ! [ "$al" -le "$ac" ] || ! [ "$ac" -le "$re" ]; then
        REASON="INFO memory allocator figures wrong: allocated=$al active=$ac resident=$re (want 50 MB < allocated <= active <= resident)"; return 1
    fi
    "${cli[@]}" memory malloc-stats >"$d/mstats" 2>>"$d/cli.err"
    if ! grep -q 'oxmalloc' "$d/mstats"; then REASON="MEMORY MALLOC-STATS does not print oxmalloc's statistics"; return 1; fi
    # delete everything key by key (FLUSHALL would purge by itself), then MEMORY PURGE must lower RSS
    "${cli[@]}" eval "for i=0,99999 do redis.call('del','key:'..i) end return 1" 0 >/dev/null 2>>"$d/cli.err"
    n=$("${cli[@]}" dbsize 2>>"$d/cli.err")
    if [ "$n" != 0 ]; then REASON="DBSIZE is '$n' after deleting every key"; return 1; fi
    local rss0 rss1 pr
    rss0=$(awk '/^VmRSS/ {print $2}' /proc/$REDIS_PID/status)
    pr=$("${cli[@]}" memory purge 2>>"$d/cli.err")
    if [ "$pr" != OK ]; then REASON="MEMORY PURGE answered '$pr'"; return 1; fi
    rss1=$(awk '/^VmRSS/ {print $2}' /proc/$REDIS_PID/status)
    if ! [ $((rss1 * 2)) -lt "$rss0" ]; then REASON="MEMORY PURGE did not halve RSS after deleting 50 MB: ${rss0} kB -> ${rss1} kB"; return 1; fi
    "${cli[@]}" memory stats >/dev/null 2>>"$d/cli.err"
    if [ "$("${cli[@]}" ping 2>>"$d/cli.err")" != PONG ]; then REASON="server stopped answering after MEMORY PURGE/STATS"; return 1; fi
    "${cli[@]}" flushall >/dev/null 2>>"$d/cli.err"
    # Redis writes background_thread true at start (jemalloc-bg-thread yes): the purge thread
    # runs. Filled again, then FLUSHALL ASYNC (which does not purge by itself): RSS must fall
    # to half or less within 15 s with nobody asking.
    if ! grep -q -x oxmalloc_bg /proc/$REDIS_PID/task/*/comm 2>/dev/null; then
        REASON="no oxmalloc_bg thread in redis-server after it enabled background_thread"; return 1
    fi
    "${cli[@]}" eval "for i=0,99999 do redis.call('set','key:'..i,string.rep('v',500)) end return 1" 0 >/dev/null 2>>"$d/cli.err"
    local rss2 rss3 waited=0
    rss2=$(awk '/^VmRSS/ {print $2}' /proc/$REDIS_PID/status)
    "${cli[@]}" flushall async >/dev/null 2>>"$d/cli.err"
    while [ $waited -lt 150 ]; do
        sleep 0.1; waited=$((waited + 1))
        rss3=$(awk '/^VmRSS/ {print $2}' /proc/$REDIS_PID/status)
        [ $((rss3 * 2)) -le "$rss2" ] && break
    done
    if ! [ $((rss3 * 2)) -le "$rss2" ]; then REASON="RSS did not halve within 15 s of FLUSHALL ASYNC: ${rss2} kB -> ${rss3} kB"; return 1; fi
    REDIS_NOTE="allocated $((al / 1048576)) MiB <= active $((ac / 1048576)) <= resident $((re / 1048576)); RSS after deleting all and MEMORY PURGE: $((rss0 / 1024)) -> $((rss1 / 1024)) MiB; after FLUSHALL ASYNC, by itself: $((rss2 / 1024)) -> $((rss3 / 1024)) MiB in $((waited / 10)).$((waited % 10)) s"

    DETAIL=$d/server.log
    "${cli[@]}" shutdown nosave >/dev/null 2>&1
    local waited=0
    while kill -0 "$REDIS_PID" 2>/dev/null && [ $waited -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$REDIS_PID" 2>/dev/null; then REASON="server did not exit within 10 s of SHUTDOWN"; return 1; fi
    wait "$REDIS_PID"
    rc=$?
    REDIS_PID=""
    if [ $rc -ne 0 ]; then REASON="server exited with $(rc_text $rc)"; return 1; fi
    if grep -q -i -E 'crashed by signal|ASSERTION FAILED|Guru Meditation' "$d/server.log"; then
        REASON="server log reports a crash"; return 1
    fi
    check_bindings "$d" malloc free calloc realloc malloc_usable_size mallctl nallocx malloc_stats_print || return 1
    REASON="$REDIS_NOTE"
}

# ---------------------------------------------------------------------------------------------
# Memory goes back by itself: small programs never get a purge thread (the statistics printed
# at exit say how many ran), and python3 that builds and drops a big structure and then
# sleeps sees its RSS fall without any call.
check_idle() {
    local d=$TMP/idle
    mkdir -p "$d"
    local cmd
    for cmd in "/bin/true" "git -C $ROOT status --short" "python3 -c pass" "perl -e 1"; do
        DETAIL=$d/err
        # shellcheck disable=SC2086
        PYTHONMALLOC=malloc OXMALLOC_CONF=stats_print:true LD_PRELOAD=$LIB timeout -k 5 60 $cmd >"$d/out" 2>"$d/err"
        if ! grep -q "^Background threads: 0," "$d/err"; then
            REASON="'$cmd' got a purge thread or printed no statistics ($(grep -m1 '^Background threads' "$d/err"))"; return 1
        fi
    done
    cat >"$d/idle.py" <<'PY'
import os, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
base = rss()
x = [str(i) * 20 for i in range(2000000)]
d = {i: [i] * 10 for i in range(300000)}
peak = rss()
del x, d
t0 = time.time()
while time.time() - t0 < 14:
    time.sleep(0.2)
    if rss() - base < (peak - base) / 4:
        break
with open("/proc/self/status") as f:
    threads = [l.split()[1] for l in f if l.startswith("Threads:")][0]
print(base, peak, rss(), round(time.time() - t0, 1), threads)
PY
    DETAIL=$d/err
    run_preloaded "$d" 60 env PYTHONMALLOC=malloc /usr/bin/python3 "$d/idle.py"
    local rc=$?
    if [ $rc -ne 0 ]; then REASON="idle.py: $(rc_text $rc)"; return 1; fi
    local base peak after secs threads
    read -r base peak after secs threads <"$d/out"
    if ! [ $(((after - base) * 4)) -lt $((peak - base)) ]; then
        REASON="python3's RSS did not fall by itself: base ${base} kB, peak ${peak} kB, ${after} kB after ${secs} s"; return 1
    fi
    check_bindings "$d" malloc free || return 1
    REASON="no thread for true, git status, python3 -c pass, perl -e 1; idle python3 RSS $((peak / 1024)) -> $((after / 1024)) MiB in ${secs} s by itself, ${threads} threads"
}

# ---------------------------------------------------------------------------------------------
check_sqlite() {
    local d=$TMP/sqlite
    mkdir -p "$d"
    if ! command -v sqlite3 >/dev/null; then REASON="sqlite3 not installed"; return 1; fi
    cat >"$d/work.sql" <<'EOF'
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, txt TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, x % 97, hex(randomblob(8 + x % 57)), zeroblob(x % 300) FROM c;
CREATE INDEX t_txt ON t(txt);
CREATE INDEX t_grp ON t(grp, txt);
SELECT 'rows', count(*) FROM t;
SELECT 'sorted', count(*) FROM (SELECT txt FROM t ORDER BY txt);
SELECT grp, count(*), sum(length(txt)), sum(length(payload)) FROM t GROUP BY grp ORDER BY grp;
SELECT 'distinct-len', count(DISTINCT length(txt)) FROM t;
DELETE FROM t WHERE id % 3 = 0;
SELECT 'after-delete', count(*) FROM t;
UPDATE t SET txt = txt || txt WHERE id % 5 = 0;
SELECT 'updated-len', sum(length(txt)) FROM t;
PRAGMA integrity_check;
EOF
    local rc
    DETAIL=$d/expected.err
    timeout -k 5 300 sqlite3 "$d/base.db" <"$d/work.sql" >"$d/expected" 2>"$d/expected.err"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="baseline run without preload failed: $(rc_text $rc)"; return 1; fi
    DETAIL=$d/err
    run_preloaded "$d" 300 sqlite3 "$d/test.db" <"$d/work.sql"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! grep -qx 'rows|200000' "$d/out" || ! grep -qx 'ok' "$d/out"; then
        DETAIL=$d/out; REASON="row count or integrity_check wrong"; return 1
    fi
    if ! cmp -s "$d/expected" "$d/out"; then
        diff "$d/expected" "$d/out" >"$d/diff"; DETAIL=$d/diff
        REASON="output differs from the run without preload"; return 1
    fi
    check_bindings "$d" malloc free realloc || return 1
    REASON=""
}

# ---------------------------------------------------------------------------------------------
check_git() {
    local d=$TMP/git
    mkdir -p "$d/home"
    local git=/usr/bin/git
    [ -x "$git" ] || git=$(command -v git || true)
    if [ -z "$git" ]; then REASON="git not installed"; return 1; fi
    cat >"$d/work.sh" <<'EOF'
set -eu
g=$1; repo=$2
export HOME=$3 GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
"$g" init -q -b main "$repo"
cd "$repo"
"$g" config user.name oxmalloc-test
"$g" config user.email test@example.invalid
"$g" config gc.auto 0
mkdir dir0 dir1 dir2 dir3 dir4 dir5 dir6 dir7 dir8 dir9
for c in 1 2 3 4 5; do
    # 200 files of a few hundred lines each, changing a little between commits
    awk -v c=$c 'BEGIN {
        for (i = 0; i < 200; i++) {
            f = "dir" (i % 10) "/f" i ".txt"
            for (l = 0; l < 200 + i; l++) printf "file %d line %d rev %d %s\n", i, l, (l % 17 == 0 ? c : 0), "payload" > f
            close(f)
        } }'
    "$g" add -A
    "$g" commit -q -m "commit $c"
done
echo "commits $("$g" rev-list --count HEAD)"
echo "files $("$g" ls-files | wc -l)"
"$g" log --stat --format='%s' | tail -n 1
"$g" diff --stat HEAD~4 HEAD | tail -n 1
"$g" gc -q --aggressive
"$g" fsck --full --no-progress 2>&1 | grep -v '^Checking' || true
echo "loose $("$g" count-objects -v | awk '/^count:/ { print $2 }')"
echo "head $("$g" rev-parse HEAD)"
EOF
    local rc
    DETAIL=$d/expected.err
    timeout -k 5 300 bash "$d/work.sh" "$git" "$d/base" "$d/home" >"$d/expected" 2>"$d/expected.err"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="baseline run without preload failed: $(rc_text $rc)"; return 1; fi
    DETAIL=$d/err
    run_preloaded "$d" 300 bash "$d/work.sh" "$git" "$d/repo" "$d/home"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! grep -qx 'commits 5' "$d/out" || ! grep -qx 'files 200' "$d/out" || ! grep -qx 'loose 0' "$d/out"; then
        DETAIL=$d/out; REASON="unexpected commit/file/loose-object counts"; return 1
    fi
    if ! cmp -s "$d/expected" "$d/out"; then
        diff "$d/expected" "$d/out" >"$d/diff"; DETAIL=$d/diff
        REASON="output differs from the run without preload"; return 1
    fi
    check_bindings "$d" malloc free realloc calloc || return 1
    # gc runs pack-objects & co in child processes: show how many processes were checked
    REASON="$(ls "$d"/ld.* | wc -l) processes checked"
}

# ---------------------------------------------------------------------------------------------
check_perl() {
    local d=$TMP/perl
    mkdir -p "$d"
    if ! command -v perl >/dev/null; then REASON="perl not installed"; return 1; fi
    local prog='
        my %h;
        for my $i (1 .. 400000) { $h{"key$i"} = ("v" x ($i % 61)) . $i; }
        for my $i (1 .. 400000) { delete $h{"key$i"} if $i % 3 == 0; }
        my @k = sort { length($h{$a}) <=> length($h{$b}) or $a cmp $b } keys %h;
        my $tot = 0; $tot += length($h{$_}) for @k;
        my $s = join(",", @k[0 .. 4]);
        my @w = sort map { scalar reverse $_ } @k[0 .. 99999];
        print scalar(@k), " $tot $s $k[-1] $w[0] $w[-1]\n";'
    local rc
    DETAIL=$d/expected.err
    timeout -k 5 300 perl -e "$prog" >"$d/expected" 2>"$d/expected.err"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="baseline run without preload failed: $(rc_text $rc)"; return 1; fi
    DETAIL=$d/err
    run_preloaded "$d" 300 perl -e "$prog"
    rc=$?
    if [ $rc -ne 0 ]; then REASON="$(rc_text $rc)"; return 1; fi
    if ! grep -q '^266667 ' "$d/out"; then DETAIL=$d/out; REASON="wrong key count"; return 1; fi
    if ! cmp -s "$d/expected" "$d/out"; then
        diff "$d/expected" "$d/out" >"$d/diff"; DETAIL=$d/diff
        REASON="output differs from the run without preload"; return 1
    fi
    check_bindings "$d" malloc free realloc || return 1
    REASON=""
}

# ---------------------------------------------------------------------------------------------
# CPython's own regression tests (Debian's libpython3.11-testsuite) on Debian's interpreter, every
# object allocation routed to malloc (PYTHONMALLOC=malloc): threads, fork, subprocesses,
# multiprocessing, signals, mmap, gc, tracemalloc, and the containers. The modules run in two
# worker processes; a module that fails under the preload is run again without it, and only a
# failure the plain run does not share counts (some modules need what a CI machine lacks).
# The proof of preload: while the tests run, every python3.11 process whose environment holds
# our LD_PRELOAD is looked up in /proc and must map the library (LD_DEBUG would change what the
# tests see: test_subprocess counts the child's open descriptors and reads its stderr).
CPYTHON_TESTS=${CPYTHON_TESTS:-"test_os test_threading test_fork1 test_thread test_mmap test_gc test_tracemalloc
    test_dict test_list test_bytes test_subprocess test_multiprocessing_fork test_json test_re
    test_unicode test_set test_pickle test_sort test_weakref test_itertools test_deque
    test_functools test_threading_local test_queue test_signal"}

# failed_modules FILE: the module names regrtest lists under "N test(s) failed:".
failed_modules() {
    awk '/^[0-9]+ tests? failed:$/ { f = 1; next } f && /^    / { print; next } { f = 0 }' "$1" | xargs
}

check_cpython() {
    local d=$TMP/cpython
    mkdir -p "$d"
    local py=/usr/bin/python3.11
    if [ ! -x "$py" ] || [ ! -d /usr/lib/python3.11/test/libregrtest ]; then
        REASON="CPython's test suite not installed (apt-get install libpython3.11-testsuite)"; return 1
    fi
    local rc
    DETAIL=$d/out
    # shellcheck disable=SC2086
    PYTHONMALLOC=malloc LD_PRELOAD=$LIB timeout -k 10 900 "$py" -m test -j2 --timeout 600 $CPYTHON_TESTS \
        >"$d/out" 2>&1 &
    local runner=$! p
    : >"$d/seen"
    # A process seen without the mapping three times in a row (≥ 0.6 s: past the dynamic
    # loader's start-up) counts as unmapped.
    declare -A misses=()
    while kill -0 "$runner" 2>/dev/null; do
        for p in $(pgrep -x python3.11); do
            grep -q "^$p " "$d/seen" && continue
            tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q -x -F "LD_PRELOAD=$LIB" || continue
            if grep -q -F -- "$LIB" "/proc/$p/maps" 2>/dev/null; then
                echo "$p mapped" >>"$d/seen"
            elif [ -e "/proc/$p" ]; then
                misses[$p]=$((${misses[$p]:-0} + 1))
                [ "${misses[$p]}" -lt 3 ] || echo "$p unmapped: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-200)" >>"$d/seen"
            fi
        done
        sleep 0.3
    done
    wait "$runner"
    rc=$?
    local failed env_failed="" ntests
    failed=$(failed_modules "$d/out")
    if [ $rc -ne 0 ]; then
        if [ -z "$failed" ]; then REASON="regrtest: $(rc_text $rc), no failed module named"; return 1; fi
        DETAIL=$d/base
        # shellcheck disable=SC2086
        PYTHONMALLOC=malloc timeout -k 10 900 "$py" -m test --timeout 600 $failed >"$d/base" 2>&1
        env_failed=$(failed_modules "$d/base")
        local t new=""
        for t in $failed; do
            [[ " $env_failed " == *" $t "* ]] || new="$new $t"
        done
        DETAIL=$d/out
        if [ -n "$new" ]; then REASON="failed only under the preload:$new"; return 1; fi
    fi
    ntests=$(grep -cE '^[0-9:]+ load avg: [0-9.]+ \[ *[0-9]+/[0-9]+' "$d/out")
    local npy nbad
    npy=$(grep -c ' mapped$' "$d/seen")
    nbad=$(grep -c ' unmapped' "$d/seen")
    if [ "$nbad" -gt 0 ]; then DETAIL=$d/seen; REASON="$nbad python3.11 processes ran without the library"; return 1; fi
    if [ "$npy" -lt 3 ]; then REASON="only $npy preloaded python3.11 processes seen (regrtest and two workers expected)"; return 1; fi
    REASON="$ntests modules${env_failed:+ (failing without the preload too: $env_failed)}, $npy python3.11 processes seen mapping the library"
}

# ---------------------------------------------------------------------------------------------
echo "run-programs: library $LIB (binding target must contain '$EXPECT')"
if [ ! -f "$LIB" ]; then
    echo "FAIL library: $LIB not found (cargo build --release --features export, or set OXMALLOC_LIB)"
    echo "0 passed, 1 failed"
    exit 1
fi
LIB=$(readlink -f "$LIB")

for name in python cxx cxx_bad_alloc redis idle sqlite git perl cpython; do
    want "$name" || continue
    REASON=""
    DETAIL=""
    start=$SECONDS
    # a program killed by a signal makes bash print "Aborted ..." on stderr: keep that out
    if "check_$name" 2>>"$TMP/shell.err"; then
        pass "$name" "${REASON:+$REASON, }$((SECONDS - start)) s"
    else
        fail "$name" "$REASON"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
