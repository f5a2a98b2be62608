#!/usr/bin/env bash
# The dragonmem command at scale (issue 14): a pool with N live allocations (default
# 1,000,000 of 64 B), and the time and peak RSS of `alloc --count N`, `ls POOL`, `dump`,
# `info`, `dump --svg`, `stat` and `free --all` on it. Prints one line per command and the load average, never
# asserts (targets: ls POOL and dump <= 1.5 s and <= 50 MB; alloc --count 1M <= 2 s).
# Usage: bench/cli_scale.sh [DRAGONMEM [N]]
# Peak RSS is GNU time's %M: it counts the pool's shared pages this process touched too.
set -u
BIN=$(realpath "${1:-build/tools/dragonmem}")
N=${2:-1000000}
POOL="clibench$$"
WORK=$(mktemp -d)
cleanup() {
    "$BIN" destroy --force "$POOL" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x /usr/bin/time ]; then
    echo "cli_scale: needs GNU time (/usr/bin/time)" >&2
    exit 2
fi

# measure NAME ARGS...: runs dragonmem ARGS with stdout to a file; prints seconds, peak
# RSS and output size.
measure() {
    local name=$1
    shift
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    read -r seconds rss_kb <"$WORK/time"
    awk -v n="$name" -v s="$seconds" -v r="$rss_kb" -v o="$(stat -c %s "$WORK/out")" -v rc="$rc" \
        'BEGIN { printf "%-28s %6.2f s  %7.1f MB RSS  %8.1f MB out  exit %d\n", n, s, r / 1024, o / 1048576, rc }'
    [ "$rc" -eq 0 ] || sed 's/^/    /' "$WORK/err" | head -3
}

# 64 B blocks: N of them need N * 64 B of heap; twice that leaves room.
heap=$((N * 64 * 2))
"$BIN" create "$POOL" --size "$heap" --min-block 64 --max-allocations "$N" >/dev/null || exit 1
echo "cli_scale: $N allocations of 64 B in pool $POOL ($heap B heap); load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
measure "alloc --count $N" alloc "$POOL" --size 64 --count "$N"
measure "ls POOL" ls "$POOL"
measure "ls POOL --jsonl" ls "$POOL" --jsonl
measure "dump" dump "$POOL"
measure "info" info "$POOL"
measure "ls POOL --serialized" ls "$POOL" --serialized
measure "dump --svg" dump "$POOL" --svg "$WORK/heap.svg"
measure "stat --count 1" stat "$POOL" --interval 0.1 --count 1
measure "free --all" free "$POOL" --all
echo "cli_scale: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
