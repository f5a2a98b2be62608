#!/usr/bin/env bash
# CLI tests: drive the built dragonmem binary as a user would, parse every output with jq,
# and walk every command, exit code and error path (the matrix is in README.md here).
# Usage: cli_test.sh [DRAGONMEM [CLI_PEER [CLI_LOCK_HOLDER]]]
# The last line is "cli: N passed, M failed"; the exit status is non-zero when M > 0.
# shellcheck disable=SC2162,SC2317 # "run read" runs dragonmem read; helpers run through check
set -u

# As root, the run goes into a private /dev/shm (a mount namespace with a tmpfs as large
# as the real one): `ls` and `destroy` of every pool then meet only this run's pools, and
# the tests running beside it (two at a time in CI) never have their pools attached,
# listed, or their thread caches taken back by a listing (which the thread_cache suite
# counts). CLI_SHARED_SHM=1 keeps the system's /dev/shm.
if [ -z "${CLI_IN_PRIVATE_SHM:-}" ] && [ "${CLI_SHARED_SHM:-0}" != 1 ] && [ "$(id -u)" = 0 ] &&
    unshare -m true 2>/dev/null; then
    shm_bytes=$(($(stat -f -c '%b' /dev/shm) * $(stat -f -c '%S' /dev/shm)))
    CLI_IN_PRIVATE_SHM=1 exec unshare -m --propagation private bash -c \
        'mount -t tmpfs -o "size=$1,mode=1777" tmpfs /dev/shm || echo "note: no private /dev/shm, using the system one"
         shift; exec bash "$@"' private-shm "$shm_bytes" "$0" "$@"
fi

BIN=$(realpath "${1:-build/tools/dragonmem}")
PEER=$(realpath "${2:-$(dirname "$BIN")/../tests/cli/cli_peer}")
HOLDER=$(realpath "${3:-$(dirname "$BIN")/../tests/cli/cli_lock_holder}")
HOLDER_PID=""   # a stopped lock holder of test_lock_holder, killed by the trap if still there
PEER_PIDS=()    # cli_peer hold processes (start_peer), killed by the trap if still there
P="clit$$"   # every pool of this run is named $P...: unique per run, and the trap finds them
WORK=$(mktemp -d)
passed=0
failed=0

cleanup() {
    local object
    [ -n "$HOLDER_PID" ] && kill -KILL "$HOLDER_PID" 2>/dev/null
    local pid
    for pid in "${PEER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for object in /dev/shm/dragonmem."$P"*; do
        [ -e "$object" ] || continue
        "$BIN" destroy --force "${object#/dev/shm/dragonmem.}" >/dev/null 2>&1
        rm -f "$object"   # in case the binary itself is what is broken
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # through the EXIT trap

finish() {
    echo "cli: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

for tool in jq "$BIN" "$PEER" "$HOLDER"; do
    if ! command -v "$tool" >/dev/null; then
        echo "cannot run: $tool not found"
        failed=1
        finish
    fi
done

# ---- harness --------------------------------------------------------------------------

# run ARGS...: runs dragonmem with stdin from $IN (default /dev/null). Sets RC, OUT, ERR;
# the exact stdout bytes stay in $WORK/out.
# With RUN_LIMIT set (seconds), a run that hangs is killed (exit 137) instead of hanging
# the whole test.
run() {
    if [ -n "${RUN_LIMIT:-}" ]; then
        timeout -s KILL "$RUN_LIMIT" "$BIN" "$@" <"${IN:-/dev/null}" >"$WORK/out" 2>"$WORK/err"
    else
        "$BIN" "$@" <"${IN:-/dev/null}" >"$WORK/out" 2>"$WORK/err"
    fi
    RC=$?
    # Raw output may hold NUL bytes, which bash drops (with a warning) from OUT; the tests
    # of raw bytes compare $WORK/out itself.
    { OUT=$(cat "$WORK/out"); } 2>/dev/null
    ERR=$(cat "$WORK/err")
    keep_for_schema "$@"
}

# keep_for_schema ARGS...: keeps the last run (arguments, exit status, stdout, stderr) for
# test_schema, which validates every output against docs/schema/.
RUNS="$WORK/runs"
mkdir -p "$RUNS"
RUN_COUNT=0
keep_for_schema() {
    RUN_COUNT=$((RUN_COUNT + 1))
    printf '%s\0' "$@" >"$RUNS/$RUN_COUNT.args"
    echo "$RC" >"$RUNS/$RUN_COUNT.rc"
    cp "$WORK/out" "$RUNS/$RUN_COUNT.out"
    cp "$WORK/err" "$RUNS/$RUN_COUNT.err"
}

# run_full ARGS...: run, with stdout going to /dev/full (every write to it fails).
run_full() {
    "$BIN" "$@" <"${IN:-/dev/null}" >/dev/full 2>"$WORK/err"
    RC=$?
    OUT=""
    ERR=$(cat "$WORK/err")
}

# run_limited ARGS...: run, but for at most 20 s and in 2 GiB of address space: for input
# that must not make dragonmem loop or grow without end (exit 124 or a crash otherwise).
# Under AddressSanitizer the address-space limit is left out: its shadow memory alone
# reserves terabytes of address space, so the limit would stop every run; the 20 s
# timeout still catches a loop. gcc links the ASan runtime as libasan.so, clang into the
# executable itself (its interface symbols are then exported: __asan_init).
if ldd "$BIN" 2>/dev/null | grep -q libasan || nm -D "$BIN" 2>/dev/null | grep -q ' __asan_init'; then
    ADDRESS_LIMIT_KB=unlimited
else
    ADDRESS_LIMIT_KB=2097152
fi
run_limited() {
    (ulimit -v "$ADDRESS_LIMIT_KB" && exec timeout 20 "$BIN" "$@") <"${IN:-/dev/null}" >"$WORK/out" 2>"$WORK/err"
    RC=$?
    { OUT=$(cat "$WORK/out"); } 2>/dev/null
    ERR=$(cat "$WORK/err")
    keep_for_schema "$@"
}

record() {  # record NAME STATUS
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        printf 'FAIL: %s\n  exit: %s\n  stdout: %.600s\n  stderr: %.600s\n' "$1" "$RC" "$OUT" "$ERR"
    fi
}

fails_to() { ! "$@"; }
one_document() { [ "$(jq -s length <<<"$1" 2>/dev/null)" = 1 ]; }

# ok NAME [FILTER]: the last run exited 0, printed one compact JSON document on stdout
# (one line), nothing on stderr, and FILTER holds for the document.
ok() {
    local name=$1 filter=${2:-true}
    [ "$RC" -eq 0 ] && [ -z "$ERR" ] && one_document "$OUT" && [ "$(wc -l <"$WORK/out")" -eq 1 ] &&
        jq -e "$filter" <<<"$OUT" >/dev/null 2>&1
    record "$name" $?
}

# fails NAME EXIT CODE [FILTER]: the last run exited EXIT with nothing on stdout and
# exactly {"error": {"code": CODE, "rc": N, "message": "..."}} on stderr; FILTER (on the
# error object) holds. CODE may list alternatives: "DRAGON_A|DRAGON_B".
fails() {
    local name=$1 want=$2 code=$3 filter=${4:-true}
    [ "$RC" -eq "$want" ] && [ -z "$OUT" ] && one_document "$ERR" &&
        jq -e --arg code "$code" '(keys == ["error"]) and (.error | keys == ["code", "errno", "errno_name", "message", "rc"])
            and (.error.code | test("^(" + $code + ")$")) and (.error.rc | type == "number")
            and ((.error.errno == null) == (.error.errno_name == null))
            and (.error.message | length > 0)' <<<"$ERR" >/dev/null 2>&1 &&
        jq -e ".error | $filter" <<<"$ERR" >/dev/null 2>&1
    record "$name" $?
}

# usage NAME [FILTER]: bad usage: exit 2, DRAGON_INVALID_ARGUMENT with rc 1.
usage() { fails "$1" 2 DRAGON_INVALID_ARGUMENT ".rc == 1 and (${2:-true})"; }

# check NAME COMMAND...: a case that passes when COMMAND succeeds.
check() {
    local name=$1
    shift
    "$@" >/dev/null 2>&1
    record "$name" $?
}

# help_shows PATTERN...: the last run exited 0 and printed every PATTERN on stdout.
help_shows() {
    [ "$RC" -eq 0 ] || return 1
    local pattern
    for pattern; do grep -q -- "$pattern" "$WORK/out" || return 1; done
}
# indented STREAM EXIT: the last run exited EXIT and STREAM (out|err) holds one JSON
# document over several lines.
indented() { [ "$RC" -eq "$2" ] && [ "$(wc -l <"$WORK/$1")" -gt 1 ] && one_document "$(cat "$WORK/$1")"; }
gone() { [ ! -e "/dev/shm/dragonmem.$1" ]; }
exists() { [ -e "/dev/shm/dragonmem.$1" ]; }
jq_out() { jq -r "$1" <<<"$OUT"; }
now_us() { local t=$EPOCHREALTIME; echo "${t//[.,]/}"; }

# start_peer ARGS...: runs cli_peer ARGS (hold, hold-local) in the background and waits
# (up to 30 s) until it says "ready"; its pid is PEER_PID. The trap kills it.
start_peer() {
    local log="$WORK/peer.$((${#PEER_PIDS[@]} + 1))" i
    "$PEER" "$@" >"$log" 2>&1 &
    PEER_PID=$!
    PEER_PIDS+=("$PEER_PID")
    for ((i = 0; i < 300; i++)); do
        grep -q ready "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# stop_peer PID: kill -9 it and reap it.
stop_peer() {
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# ---- global options ---------------------------------------------------------------------

test_global() {
    run --version
    ok "--version prints name and version" '.name == "dragonmem" and (.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'

    run --help
    check "--help exits 0 and lists the commands" help_shows create destroy check

    local command
    for command in create attach alloc free ls dump serialize destroy write read check; do
        run "$command" --help
        check "$command --help shows an example" help_shows "^Example" "dragonmem $command"
    done

    run
    usage "no command is bad usage"
    run frobnicate
    usage "an unknown command is bad usage" '.message | test("unknown command .frobnicate.")'
    run rm "${P}a"
    usage "an unknown command names itself and the nearest command" \
        '(.message | test("unknown command .rm.") and test("nearest is .(ls|read).")) and .errno == null'
    run --lock-timeout 1 lss
    usage "an unknown command after a global option is named" '.message | test("unknown command .lss.; the nearest is .ls.")'
    run -V
    ok "-V prints name and version" '.name == "dragonmem" and (.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'
    run ls --bogus
    usage "an unknown option is bad usage" '.message | test("bogus")'
    run create "${P}u" --size 1M --bogus
    usage "an unknown option on create is bad usage"
    check "a create with an unknown option makes no pool" gone "${P}u"
    run --pretty ls
    check "--pretty indents the document" indented out 0
    run ls --pretty
    check "--pretty is accepted after the command" indented out 0
    run --pretty destroy "${P}nosuch"
    check "--pretty indents errors too" indented err 1
}

# ---- create -----------------------------------------------------------------------------

test_create() {
    run create "${P}a" --size 1M
    ok "create prints the pool" '.pool | .name == "'"${P}a"'" and .shm_name == "dragonmem.'"${P}a"'" and .local == true
        and .size == 1048576 and .free_bytes == 1048576 and .used_bytes == 0 and .utilization == 0
        and .live_allocations == 0 and .mode == "0600" and .min_block == 32 and .m_uid == 0
        and (.hostid | test("^0x[0-9a-f]{16}$")) and (.serialized | length > 0)
        and .total_bytes > .size and .max_allocations > 0'
    SERIAL_A=$(jq_out .pool.serialized)
    HOSTID=$(jq_out .pool.hostid)
    check "create makes /dev/shm/dragonmem.NAME" exists "${P}a"
    check "create's default mode is 0600" test "$(stat -c %a "/dev/shm/dragonmem.${P}a")" = 600
    check "create reports the owner uid" test "$(jq_out .pool.owner_uid)" = "$(id -u)"

    run create "${P}b" --size 1000 --min-block 100 --max-allocations 16 --mode 0640 --uid 42
    ok "create honours every option" '.pool | .size == 1024 and .min_block == 128 and .max_allocations == 16
        and .mode == "0640" and .m_uid == 42'
    check "create --mode sets the shm object's mode" test "$(stat -c %a "/dev/shm/dragonmem.${P}b")" = 640
    run destroy "${P}b"

    run create "${P}c" --size 64K --prealloc 4,2,1
    ok "create --prealloc makes a usable pool" '.pool | .size == 65536 and .free_bytes == 65536'
    run alloc "${P}c" --size 32 --count 5
    ok "a preallocated pool allocates" '.allocations | length == 5'
    run destroy "${P}c"
    run create "${P}c" --size 64K --prealloc 0,0,0,0,0,0,0,0,0,0,3
    fails "create --prealloc that does not fit fails" 1 DRAGON_INVALID_ARGUMENT
    check "a failed --prealloc create leaves nothing" gone "${P}c"

    run create "${P}d" --size 2m
    ok "sizes take lower-case suffixes" '.pool.size == 2097152'
    run destroy "${P}d"
    run create "${P}d" --size 1MiB --min-block 64B
    ok "sizes take KiB/MiB and B" '.pool.size == 1048576 and .pool.min_block == 64'
    run destroy "${P}d"
    run create "${P}d" --size 1.5K --min-block 0.25K
    ok "sizes take fractions that come to whole bytes (1.5K = 1536, rounded up to 2 KiB)" \
        '.pool.size == 2048 and .pool.min_block == 256'
    run destroy "${P}d"

    run create "${P}d" --size 1M --reserve
    ok "create --reserve makes a usable pool" '.pool | .size == 1048576 and .free_bytes == 1048576'
    check "create --reserve gives the whole object memory" \
        test "$(du -B1 "/dev/shm/dragonmem.${P}d" | cut -f1)" -ge 1048576
    run destroy "${P}d"
    run create "${P}d" --size 1T
    fails "create of a pool larger than /dev/shm's free space fails" 1 DRAGON_OUT_OF_SPACE \
        '.message | test("does not fit in /dev/shm")'
    check "a pool too large for /dev/shm leaves nothing" gone "${P}d"

    run create "${P}a" --size 1M
    fails "create of a name in use fails, errno EEXIST" 1 DRAGON_MEMORY_ERRNO \
        '(.message | length > 0) and .errno == 17 and .errno_name == "EEXIST"'
    run create "bad/name" --size 1M
    fails "create rejects a name with a slash" 1 DRAGON_INVALID_ARGUMENT
    run create "${P}with-a-name-over-29-chars" --size 1M
    fails "create rejects a name over 29 characters" 1 DRAGON_INVALID_ARGUMENT
    run create "${P}e" --size 64
    fails "create rejects fewer than 5 minimum blocks" 1 DRAGON_INVALID_ARGUMENT
    run create "${P}e" --size 1M --max-allocations 4
    fails "create rejects max-allocations below 5" 1 DRAGON_INVALID_ARGUMENT
    check "failed creates leave nothing behind" gone "${P}e"

    run create "${P}e" --size banana
    usage "--size banana is bad usage" '.message | test("banana")'
    run create "${P}e" --size 1.1K
    usage "a size that is no whole number of bytes is bad usage" '.message | test("1.1K") and test("whole number")'
    run create "${P}e" --size 0.5
    usage "a fraction of a byte is bad usage"
    run create "${P}e" --size 4i
    usage "a size with i and no unit is bad usage"
    run create "${P}e" --size 1.
    usage "a size with a dot and no fraction is bad usage"
    run create "${P}e" --size 99999999999999999999
    usage "a size beyond 64 bits is bad usage"
    run create "${P}e" --size 20000000000000G
    usage "a size overflowing with its suffix is bad usage"
    run create "${P}e"
    usage "create without --size is bad usage" '.message | test("size")'
    run create --size 1M
    usage "create without NAME is bad usage"
    run create "${P}e" --size
    usage "--size without a value is bad usage"
    run create "${P}e" --size 1M --mode 0999
    usage "a non-octal mode is bad usage"
    run create "${P}e" --size 1M --uid abc
    usage "a non-numeric uid is bad usage"
    run create "${P}e" --size 1M --prealloc 1,x
    usage "a bad prealloc list is bad usage"
    run create "${P}e" --size 1M --min-block 1Q
    usage "an unknown size suffix is bad usage"
    check "bad usage makes no pool" gone "${P}e"
}

# ---- alloc ------------------------------------------------------------------------------

test_alloc() {
    run alloc "${P}a" --size 4K --serialized
    ok "alloc makes one allocation" '.pool.name == "'"${P}a"'" and (.allocations | length == 1)
        and (.allocations[0] | (.id | type == "string") and (.id | tonumber) > 0 and .type == 0 and .type_name == "data" and .size == 4096
             and .block_size == 4096 and .offset % 4096 == 0 and (.serialized | length > 0))'
    ID1=$(jq_out '.allocations[0].id')
    MSERIAL1=$(jq_out '.allocations[0].serialized')

    run alloc "${P}a" --size 100 --type channel
    ok "alloc rounds the block up and names the type" '.allocations[0] | .size == 100 and .block_size == 128
        and .type == 1 and .type_name == "channel"'
    ID2=$(jq_out '.allocations[0].id')

    run alloc "${P}a" --size 64 --type 7
    ok "alloc takes a numeric type" '.allocations[0] | .type == 7 and .type_name == null'
    ID7=$(jq_out '.allocations[0].id')

    run alloc "${P}a" --size 1K --count 3 --type channel_buffer
    ok "alloc --count makes that many, ids increasing" '.allocations | length == 3
        and (map(.id | tonumber) | .[0] < .[1] and .[1] < .[2]) and all(.type_name == "channel_buffer")'
    run alloc "${P}a" --size 32 --type BOOTSTRAP
    ok "type names ignore case" '.allocations[0].type == 3'

    run alloc --serial "$SERIAL_A" --size 64
    ok "alloc takes a pool descriptor instead of POOL" '.pool.name == "'"${P}a"'"'

    run ls "${P}a"
    ok "allocations outlive the command that made them" '.allocations | map(.id) | index("'"$ID1"'") != null
        and index("'"$ID2"'") != null'
    run ls "${P}a"
    ok "ls and alloc agree on the live count" '.allocations | length == 8'

    run alloc "${P}a" --size 2M
    fails "alloc larger than the pool fails at once" 1 DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE
    run alloc "${P}a" --size 2M --timeout 5
    fails "alloc larger than the pool fails at once even blocking" 1 DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE
    run alloc "${P}nosuch" --size 64
    fails "alloc in a missing pool fails, errno ENOENT" 1 "$MISSING_CODE" '.errno == 2 and .errno_name == "ENOENT"'
    run alloc "${P}a" --size 2M
    fails "an error without a system call has errno null" 1 DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE \
        '.errno == null and .errno_name == null'

    run alloc "${P}a" --size banana
    usage "alloc --size banana is bad usage"
    run alloc "${P}a" --size 64 --type bogus
    usage "an unknown type is bad usage" '.message | test("bogus")'
    run alloc "${P}a" --size 64 --count 0
    usage "--count 0 is bad usage"
    run alloc "${P}a" --size 64 --timeout soon
    usage "a non-numeric timeout is bad usage"
    run alloc "${P}a" --size 64 --timeout -1
    usage "a negative timeout is bad usage"
    run alloc "${P}a"
    usage "alloc without --size is bad usage"
    run alloc --size 64
    usage "alloc without a pool is bad usage"
    run alloc "${P}a" --serial "$SERIAL_A" --size 64
    usage "POOL and --serial together are bad usage"
}

# A small pool, filled, to see full-pool errors, blocking and all-or-nothing --count.
test_alloc_full() {
    local full="${P}f" id
    run create "$full" --size 64K --max-allocations 5
    run alloc "$full" --size 16K --count 5
    fails "a failed alloc --count makes none (no space for the 5th)" 1 DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE
    run ls "$full"
    ok "after a failed --count the pool is as it was" '.allocations == []'
    run alloc "$full" --size 1K --count 6
    usage "alloc --count beyond the manifest's capacity is bad usage" '.message | test("max_allocations")'
    run alloc "$full" --size 1K --count 2
    local first_two
    first_two=$(jq_out '[.allocations[].id] | join(" ")')
    run alloc "$full" --size 1K --count 4
    fails "a failed alloc --count makes none (manifest full at the 4th)" 1 DRAGON_OUT_OF_SPACE
    # shellcheck disable=SC2086 # two ids
    run free "$full" $first_two
    run dump "$full"
    ok "after a failed --count the pool is whole again" '.pool.free_bytes == 65536 and .pool.live_allocations == 0
        and .free_blocks[-1] == {"block_size": 65536, "count": 1}'

    run alloc "$full" --size 16K --count 4
    ok "a pool fills to 100% with one block size" '.allocations | length == 4'
    id=$(jq_out '.allocations[0].id')
    run alloc "$full" --size 16K
    fails "alloc in a full pool fails without waiting" 1 DRAGON_DYNHEAP_REQUESTED_SIZE_NOT_AVAILABLE

    local start end
    start=$(now_us)
    run alloc "$full" --size 16K --timeout 0.3
    end=$(now_us)
    fails "alloc --timeout times out in a full pool" 1 DRAGON_TIMEOUT
    check "alloc --timeout 0.3 waits about 0.3 s" test $(((end - start) / 1000)) -ge 250 -a $(((end - start) / 1000)) -lt 2500

    # Another process frees a block while we wait: the waiter must wake and get it.
    ( sleep 0.4; "$BIN" free "$full" "$id" >/dev/null ) &
    start=$(now_us)
    run alloc "$full" --size 16K --timeout 20
    end=$(now_us)
    wait
    ok "alloc --timeout gets the block another process frees" '.allocations | length == 1'
    check "the blocked alloc woke soon after the free" test $(((end - start) / 1000)) -lt 5000

    run check "$full"
    ok "a full pool passes check" '.ok == true and .free_bytes == 0 and .used_bytes == 65536 and .pool.free_bytes == 0'
    run destroy "$full"
}

# ---- free -------------------------------------------------------------------------------

test_free() {
    run alloc "${P}a" --size 512 --count 2
    local a b
    a=$(jq_out '.allocations[0].id')
    b=$(jq_out '.allocations[1].id')

    run free "${P}a" "$a" 999999999
    fails "free with one id not live fails" 1 "$NOT_LIVE_CODE"
    run ls "${P}a"
    ok "a failed free frees nothing" '.allocations | map(.id) | index("'"$a"'") != null'

    run free "${P}a" "$a" "$b"
    ok "free reports what it freed" '.pool.name == "'"${P}a"'" and (.freed | map(.id)) == ["'"$a"'", "'"$b"'"]
        and (.freed[0] | .size == 512 and .block_size == 512 and .type_name == "data")'
    run ls "${P}a"
    ok "freed allocations leave the listing" '.allocations | map(.id) | index("'"$a"'") == null and index("'"$b"'") == null'
    run free "${P}a" "$a"
    fails "freeing an id twice fails" 1 "$NOT_LIVE_CODE"

    run alloc "${P}a" --size 256 --serialized
    local serial
    serial=$(jq_out '.allocations[0].serialized')
    a=$(jq_out '.allocations[0].id')
    run free --serial "$serial"
    ok "free --serial frees the allocation it names" '.pool.name == "'"${P}a"'" and .freed[0].id == "'"$a"'"'
    run free --serial "$serial"
    fails "free --serial of a freed allocation fails" 1 "$NOT_LIVE_CODE"
    run free --serial "not base64!"
    fails "free --serial with bad base64 fails" 1 DRAGON_INVALID_ARGUMENT
    run free --serial "$SERIAL_A"
    fails "free --serial with a pool descriptor fails" 1 DRAGON_INVALID_ARGUMENT

    run free "${P}a" abc
    usage "a non-numeric id is bad usage"
    run free "${P}a" -- -3
    usage "a negative id is bad usage"
    run free "${P}a"
    ok "free with no ids (an empty selection) frees nothing" '.pool.name == "'"${P}a"'" and .freed == []'
    run free
    usage "free without a pool is bad usage"
    run free "${P}a" "$ID7" "$ID7"
    usage "an id given twice is bad usage"
    run free "${P}a" "$ID7" --serial "$MSERIAL1"
    usage "ids and --serial together are bad usage"
    run free "${P}nosuch" 1
    fails "free in a missing pool fails" 1 "$MISSING_CODE"
}

# Ids pass 2^53 (where jq and JavaScript round JSON numbers) after 2^21 allocations in a
# pool whose manifest holds 2^32 records (an id is counter << 32 | slot): printed as
# strings, they survive jq, and both `jq .id` ("N", quoted) and `jq -r .id` (N) are
# accepted back.
test_big_ids() {
    local pool="${P}big" id quoted bare
    run create "$pool" --size 64K --max-allocations 4294967296
    id=$("$PEER" churn "$pool" 2097152)
    RC=0 OUT=$id ERR=""
    check "the peer made an id past 2^53 ($id)" test "${#id}" -ge 16 -a "$id" \> 9007199254740992
    run ls "$pool"
    ok "ls prints an id past 2^53 exactly, as a string" '.allocations | map(.id) == ["'"$id"'"]'
    quoted=$(jq '.allocations[0].id' <<<"$OUT")
    bare=$(jq -r '.allocations[0].id' <<<"$OUT")
    run serialize "$pool" --id "$quoted"
    ok "an id quoted as jq prints it is accepted" '.allocation.id == "'"$id"'"'
    run free "$pool" "$bare"
    ok "free of an id past 2^53 taken from jq -r frees it" '.freed | map(.id) == ["'"$id"'"]'
    run free "$pool" '"12'
    usage "a half-quoted id is bad usage" '.message | test("12")'
    run destroy "$pool"
}

# ---- selection: info, free --type / --all, ls --type across pools -----------------------

# A pool with a known content: 2 data of 100 B (128 B blocks, 56 B of internal waste), 3
# channel of 1 KiB (1 KiB-aligned: a 768 B gap stays free after the first two), one of type
# 7 of 4 KiB (4 KiB-aligned), in a 64 KiB pool.
test_selection() {
    local s="${P}sel" t="${P}sel2"
    run create "$s" --size 64K
    run alloc "$s" --size 100 --count 2
    run alloc "$s" --size 1K --count 3 --type channel
    run alloc "$s" --size 4K --type 7
    run info "$s"
    ok "info prints the pool object and no allocation list" '.pool.name == "'"$s"'" and .pool.live_allocations == 6
        and (has("allocations") | not)'
    ok "info gives bytes per allocation type" '.types == [
        {"type": 0, "type_name": "data", "allocations": 2, "bytes": 200, "block_bytes": 256},
        {"type": 1, "type_name": "channel", "allocations": 3, "bytes": 3072, "block_bytes": 3072},
        {"type": 7, "type_name": null, "allocations": 1, "bytes": 4096, "block_bytes": 4096}]'
    ok "info's largest free block is the largest free block of dump" \
        '.largest_free_block == 57344 and .pool.free_bytes == 65536 - 256 - 3072 - 4096'
    ok "info's internal waste is block bytes - requested bytes" '.internal_waste == 56'
    ok "info's largest request is the largest block size class in the largest free block" \
        '.largest_request == 57344'
    ok "info's fragmentation is 1 - largest free block / free bytes" \
        '(.fragmentation - (1 - .largest_free_block / .pool.free_bytes) | fabs) < 1e-9 and .fragmentation > 0'
    run create "$t" --size 64K
    run info "$t"
    ok "an empty pool is not fragmented" '.fragmentation == 0 and .largest_free_block == 65536 and .types == []
        and .largest_request == 65536 and .internal_waste == 0'
    run alloc "$t" --size 64 --type channel
    run info "${P}nosuch"
    fails "info of a missing pool fails" 1 "$MISSING_CODE"
    run info
    usage "info without a pool is bad usage"

    run ls --type channel
    ok "ls --type lists that type in every pool" '.type == 1 and .type_name == "channel"
        and ([.pools[] | select(.pool.name == "'"$s"'" or .pool.name == "'"$t"'") | {name: .pool.name, n: (.allocations | length)}]
             == [{"name": "'"$s"'", "n": 3}, {"name": "'"$t"'", "n": 1}])
        and all(.pools[]; has("error") or all(.allocations[]; .type == 1))'
    run ls --type 7 --jsonl
    check "ls --type --jsonl prints one allocation a line, naming its pool" \
        jq -e -s 'map(select(.pool == "'"$s"'")) | length == 1 and .[0].allocation.type == 7' "$WORK/out"

    run free "$s" --type channel
    ok "free --type frees every allocation of that type" '(.freed | length == 3 and all(.type_name == "channel"))
        and .pool.live_allocations == 3'
    run ls "$s"
    ok "free --type leaves the other types" '.allocations | map(.type) | sort == [0, 0, 7]'
    run free "$s" --type channel
    ok "free --type of a type with none left frees nothing" '.freed == []'
    run free "$s" --type nope
    usage "free --type with a bad type is bad usage"
    run free "$s" 1 --all
    usage "free --all with ids is bad usage"
    run free "$s" --all --type data
    usage "free --all with --type is bad usage"
    run ls "$s"
    ok "bad free usage frees nothing" '.allocations | length == 3'
    run free "$s" --all
    ok "free --all frees every allocation" '(.freed | length == 3) and .pool.live_allocations == 0
        and .pool.free_bytes == 65536'
    run free "${P}nosuch" --all
    fails "free --all of a missing pool fails" 1 "$MISSING_CODE"
    run free "${P}nosuch"
    fails "free with no ids of a missing pool fails" 1 "$MISSING_CODE"
    run destroy "$s" "$t"
}

# ---- --table: the human view -------------------------------------------------------------

test_table() {
    local t="${P}tbl"
    run create "$t" --size 64K
    run alloc "$t" --size 1.5K --count 2 --type channel
    run alloc "$t" --size 100
    run ls --table
    check "ls --table prints a header and the pool with human sizes" \
        grep -qE "^NAME +SIZE +USED +FREE +UTIL +LIVE" "$WORK/out"
    check "ls --table shows the pool's row" grep -qE "^$t +64\.0 KiB +3\.1 KiB +60\.9 KiB +4\.9% +3 " "$WORK/out"
    check "ls --table shows who uses the pool" grep -qE "^$t .* 0 +yes$" "$WORK/out"
    run ls "$t" --table
    check "ls POOL --table prints one row per allocation" test "$(grep -c ' channel \| data ' "$WORK/out")" -eq 3
    check "ls POOL --table aligns sizes" grep -qE "^ *[0-9]+  channel +[0-9]+  1\.5 KiB  1\.5 KiB$" "$WORK/out"
    run info "$t" --table
    check "info --table shows figures and bytes by type" \
        sh -c 'grep -qE "^largest_free_block +60\.9 KiB$" "$1" && grep -qE "^internal_waste +28 B$" "$1" &&
            grep -qE "^channel +2 +3\.0 KiB +3\.0 KiB$" "$1"' \
        sh "$WORK/out"
    run dump "$t" --table
    check "dump --table shows the pool, space figures, free blocks and allocations" \
        sh -c 'grep -q "^free_bytes" "$1" && grep -qE "^largest_request +60\.0 KiB$" "$1" &&
            grep -qE "^ *BLOCK +FREE +BYTES" "$1" && grep -qE "^ +ID +TYPE" "$1"' sh "$WORK/out"
    run ls "$t" --table --jsonl
    usage "--table with --jsonl is bad usage"
    run dump "$t" --table --id 1
    usage "dump --table with --id is bad usage"
    run ls --type channel --table
    usage "ls --type --table across pools is bad usage"
    run ls "${P}nosuch" --table
    fails "ls --table of a missing pool fails" 1 "$MISSING_CODE"
    run destroy "$t"
}

# ---- scale options: --serialized, --jsonl --------------------------------------------------

test_listing_options() {
    local l="${P}lst"
    run create "$l" --size 64K
    run alloc "$l" --size 64 --count 5
    ok "alloc prints no descriptors by default" 'all(.allocations[]; has("serialized") | not)'
    run alloc "$l" --size 64 --count 2 --serialized
    ok "alloc --serialized gives each allocation its descriptor" 'all(.allocations[]; .serialized | length > 0)'
    run ls "$l"
    ok "ls POOL prints no descriptors by default" '(.allocations | length == 7) and all(.allocations[]; has("serialized") | not)'
    run ls "$l" --serialized
    ok "ls POOL --serialized gives descriptors that name the allocation" \
        'all(.allocations[]; .serialized | length > 0)'
    local first serial
    first=$(jq_out '.allocations[0].id')
    serial=$(jq_out '.allocations[0].serialized')
    # A listing's descriptor names the allocation but carries no secret (format 1, README
    # "Off-node data"); serialize hands out the whole one.
    printf 'named-by-ls' >"$WORK/ls_descriptor"
    IN="$WORK/ls_descriptor" run write "$l" "$first"
    run read --serial "$serial" --length 11
    check "ls POOL --serialized's descriptor names the allocation" test "$OUT" = "named-by-ls"
    check "ls POOL --serialized's descriptor is format 1 (no secret)" \
        test "$(printf '%s' "$serial" | base64 -d | od -An -tu1 -j4 -N1 | tr -d ' ')" = 1
    run serialize "$l" --id "$first"
    check "serialize's descriptor is format 2 (the secret)" \
        test "$(jq_out .serialized | base64 -d | od -An -tu1 -j4 -N1 | tr -d ' ')" = 2
    run ls "$l" --jsonl
    check "ls POOL --jsonl prints one allocation a line" test "$(wc -l <"$WORK/out")" -eq 7
    check "ls POOL --jsonl lines are allocation objects" jq -e -s 'length == 7 and all(has("id") and has("block_size"))' "$WORK/out"
    run dump "$l" --jsonl
    check "dump --jsonl: the pool and free blocks, then one allocation a line" \
        jq -e -s 'length == 8 and (.[0] | has("pool") and has("free_blocks")) and (.[1:] | all(has("id")))' "$WORK/out"
    run ls --jsonl
    check "ls --jsonl prints one pool a line" jq -e -s 'map(select(.name == "'"$l"'")) | length == 1' "$WORK/out"
    run --pretty ls "$l"
    check "ls POOL --pretty streams an indented document" indented out 0
    check "ls POOL --pretty is the same document" jq -e '.allocations | length == 7' "$WORK/out"
    run --pretty dump "$l"
    check "dump --pretty streams an indented document" jq -e '(.allocations | length == 7) and .pool.name == "'"$l"'"' "$WORK/out"
    run free "$l" --all --jsonl
    check "free --jsonl prints one freed allocation a line" test "$(wc -l <"$WORK/out")" -eq 7
    run dump "$l" --id 1 --jsonl
    usage "dump --id --jsonl is bad usage"
    run destroy "$l"
}

# ---- serve, and read/write off-node: bad input (tests/remote runs two hosts) -------------
test_serve() {
    run serve
    usage "serve without --listen is bad usage"
    local bad
    for bad in nohost host: :7070 host:65536 "a b:1"; do
        run serve --listen "$bad"
        fails "serve --listen '$bad' is refused, naming it" 1 "DRAGON_INVALID_ARGUMENT|DRAGON_NOT_IMPLEMENTED" \
            '.message | contains("'"$bad"'")'
    done
    DRAGONMEM_REMOTE_TRUSTED_FABRIC=yes run serve --listen 127.0.0.1:0
    fails "DRAGONMEM_REMOTE_TRUSTED_FABRIC=yes: serve refuses it, naming it" 1 "DRAGON_INVALID_ARGUMENT|DRAGON_NOT_IMPLEMENTED" \
        '.message | contains("DRAGONMEM_REMOTE_TRUSTED_FABRIC='"'yes'"'") or contains("without UCX")'
    DRAGONMEM_REMOTE_TRUSTED_FABRIC= run serve --listen 127.0.0.1:0
    fails "serve without DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 refuses, saying why" 1 "DRAGON_INVALID_OPERATION|DRAGON_NOT_IMPLEMENTED" \
        '.message | (contains("trusted fabrics only") and contains("DRAGONMEM_REMOTE_TRUSTED_FABRIC=1")) or contains("without UCX")'
    local pool="${P}srv" id
    run create "$pool" --size 64K
    run alloc "$pool" --size 64
    id=$(jq_out '.allocations[0].id')
    DRAGONMEM_AGENT=bad run serialize "$pool" --id "$id"
    fails "DRAGONMEM_AGENT=bad: serialize refuses it, naming it" 1 DRAGON_INVALID_ARGUMENT \
        '.message | contains("DRAGONMEM_AGENT") and contains("bad")'
    run read "$pool" "$id" --timeout soon
    usage "read --timeout soon is bad usage"
    # Another host's descriptor that names no agent: the clear error, nothing read.
    local serial
    serial=$(POD_UID=cli-other-host "$BIN" serialize "$pool" --id "$id" | jq -r .serialized)
    POD_UID=cli-elsewhere run read --serial "$serial"
    fails "read --serial of another host's descriptor without an agent" 1 DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL \
        '.message | contains("names no agent")'
    run destroy "$pool"
}

# ---- ls ---------------------------------------------------------------------------------

test_ls() {
    run ls
    ok "ls lists this run's pool with its figures" '.pools | map(select(.name == "'"${P}a"'"))
        | length == 1 and (.[0] | .size == 1048576 and (.free_bytes | type == "number")
        and (.utilization | type == "number") and .live_allocations > 0)'

    # A pool created through the library, not the CLI, is listed too.
    "$PEER" create "${P}lib" 65536
    run ls
    ok "ls lists pools made by library users" '.pools | map(.name) | index("'"${P}lib"'") != null'

    # Garbage under a pool's name is listed with its error instead of ending the listing.
    head -c 8192 /dev/urandom >"/dev/shm/dragonmem.${P}junk"
    run ls
    ok "ls lists a pool it cannot attach with its error" '(.pools | map(select(.name == "'"${P}junk"'"))[0]
        | .error.code | startswith("DRAGON_")) and (.pools | map(.name) | index("'"${P}a"'") != null)'
    run check "${P}junk"
    fails "check of a damaged pool fails" 1 "$DAMAGED_CODE"
    run destroy "${P}junk"
    fails "destroy of a damaged pool fails" 1 "$DAMAGED_CODE"
    check "a failed destroy leaves the damaged pool" exists "${P}junk"
    run destroy "${P}junk" --force
    ok "destroy --force removes a damaged pool" '.destroyed == ["'"${P}junk"'"] and .failed == []'
    check "destroy --force unlinks the damaged pool's shm object" gone "${P}junk"

    run ls "${P}a" --type channel
    ok "ls POOL --type lists that type only" '.type == 1 and .type_name == "channel" and (.allocations | length == 1)
        and .allocations[0].id == "'"$ID2"'"'
    run ls "${P}a" --type 7
    ok "ls POOL --type takes numbers" '.allocations | map(.id) == ["'"$ID7"'"]'
    run ls --serial "$SERIAL_A"
    ok "ls takes a pool descriptor" '.pool.name == "'"${P}a"'" and .type == null and .type_name == null and (.allocations | length > 0)'
    run ls --type nope
    usage "ls --type with a bad type, without a pool, is bad usage" '.message | test("nope")'
    run ls "${P}a" --type nope
    usage "ls with a bad type is bad usage"
    run ls "${P}nosuch"
    fails "ls of a missing pool fails" 1 "$MISSING_CODE"
}

# ---- write / read / dump ----------------------------------------------------------------

test_bytes() {
    printf 'hello, pool' >"$WORK/hello"
    IN="$WORK/hello" run write "${P}a" "$ID1"
    ok "write copies stdin into the allocation" '.bytes_written == 11 and .allocation.id == "'"$ID1"'" and .allocation.size == 4096
        and .offset == 0'
    run read "${P}a" "$ID1" --length 11
    check "read returns what write stored" test "$OUT" = "hello, pool"
    run read "${P}a" "$ID1"
    check "read prints the whole allocation" test "$(wc -c <"$WORK/out")" -eq 4096
    IN="$WORK/hello" run write "${P}a" "$ID1" --offset 100
    ok "write --offset" '.offset == 100 and .bytes_written == 11'
    run read "${P}a" "$ID1" --offset 100 --length 5
    check "read --offset --length" test "$OUT" = "hello"

    head -c 4096 /dev/urandom >"$WORK/random"
    IN="$WORK/random" run write "${P}a" "$ID1"
    ok "write of exactly the allocation's size" '.bytes_written == 4096'
    run read "${P}a" "$ID1"
    check "binary bytes survive write and read" cmp "$WORK/out" "$WORK/random"
    run dump "${P}a" --id "$ID1" --raw
    check "dump --raw prints the raw bytes" cmp "$WORK/out" "$WORK/random"
    run dump "${P}a" --id "$ID1"
    ok "dump --id prints the bytes in hex" '.pool.name == "'"${P}a"'" and .allocation.id == "'"$ID1"'"
        and (.hex | length == 8192) and .hex == "'"$(od -An -v -tx1 "$WORK/random" | tr -d ' \n')"'"'
    run dump "${P}a" --id "$ID1" --hex
    ok "dump --hex is the default made explicit" '(.hex | length == 8192)'

    head -c 5000 /dev/zero >"$WORK/big"
    IN="$WORK/big" run write "${P}a" "$ID1"
    fails "write larger than the allocation fails naming its size" 1 DRAGON_INVALID_ARGUMENT \
        '.message | test("more than the 4096 B")'
    run read "${P}a" "$ID1"
    check "a failed write leaves the allocation as it was" cmp "$WORK/out" "$WORK/random"
    IN="$WORK/hello" run write "${P}a" "$ID1" --offset 4090
    fails "write past the end from an offset fails" 1 DRAGON_INVALID_ARGUMENT '.message | test("more than the 6 B")'
    IN="$WORK/hello" run write "${P}a" "$ID1" --offset 5000
    fails "write at an offset beyond the allocation fails" 1 DRAGON_INVALID_ARGUMENT
    run read "${P}a" "$ID1" --offset 4000 --length 200
    fails "read beyond the allocation fails" 1 DRAGON_INVALID_ARGUMENT
    run read "${P}a" 999999999
    fails "read of an id not live fails" 1 "$NOT_LIVE_CODE"
    run dump "${P}a" --id 999999999
    fails "dump of an id not live fails" 1 "$NOT_LIVE_CODE"

    IN="$WORK/hello" run write --serial "$MSERIAL1"
    ok "write takes an allocation descriptor" '.allocation.id == "'"$ID1"'"'
    run read --serial "$MSERIAL1" --length 11
    check "read takes an allocation descriptor" test "$OUT" = "hello, pool"

    # The library sees what the CLI wrote, and the CLI what the library wrote.
    check "a library user reads what the CLI wrote" "$PEER" expect "${P}a" "$ID1" "hello, pool"
    local lib_id
    lib_id=$("$PEER" alloc "${P}a" 64 "from the library")
    run ls "${P}a"
    ok "the CLI lists an allocation a library user made" '.allocations | map(.id) | index("'"${lib_id:-0}"'") != null'
    run read "${P}a" "${lib_id:-0}" --length 16
    check "the CLI reads what a library user wrote" test "$OUT" = "from the library"
    run free "${P}a" "${lib_id:-0}"
    ok "the CLI frees an allocation a library user made" '.freed[0].id == "'"${lib_id:-0}"'"'
    check "a library user sees the CLI's free" fails_to "$PEER" expect "${P}a" "${lib_id:-0}" x

    run write "${P}a"
    usage "write without an id is bad usage"
    run write "${P}a" 1 2
    usage "write with two ids is bad usage"
    run read "${P}a" "$ID1" --length lots
    usage "read with a bad length is bad usage"
    run read
    usage "read without an allocation is bad usage"
    run dump "${P}a" --hex
    usage "dump --hex without --id is bad usage"
    run dump "${P}a" --id "$ID1" --hex --raw
    usage "dump --hex --raw together is bad usage"
    run dump "${P}a" --id x
    usage "dump with a bad id is bad usage"
}

# ---- copy / clear / hash / equal (Dragon HEAD's byte operations) ---------------------------

test_copy() {
    run create "${P}c1" --size 64K
    ok "create the copy source pool"
    run create "${P}c2" --size 8K
    ok "create the copy target pool"
    run alloc "${P}c1" --size 1000
    local src
    src=$(jq_out '.allocations[0].id')
    head -c 1000 /dev/urandom >"$WORK/copysrc"
    IN="$WORK/copysrc" run write "${P}c1" "$src"
    run copy "${P}c1" "$src" --to "${P}c2"
    ok "copy makes an allocation of the same size in --to" '.pool.name == "'"${P}c1"'" and .allocation.id == "'"$src"'"
        and .allocation.size == 1000 and .to.name == "'"${P}c2"'" and .copy.size == 1000 and (.copy.serialized | length > 0)'
    local dst
    dst=$(jq_out '.copy.id')
    run read "${P}c2" "$dst"
    check "the copy holds the source's bytes" cmp "$WORK/out" "$WORK/copysrc"
    run hash "${P}c1" "$src"
    ok "hash prints Dragon's hash" '.allocation.size == 1000 and (.hash | type == "number")'
    local h1
    h1=$(jq_out .hash)
    run hash "${P}c2" "$dst"
    ok "the copy hashes the same" ".hash == $h1"
    run equal "${P}c1" "$src" --with "${P}c2" --with-id "$dst"
    ok "equal: same bytes, not the same allocation" '.equal == true and .same_allocation == false'
    run equal "${P}c1" "$src" --with "${P}c1" --with-id "$src"
    ok "equal: an allocation is itself" '.equal == true and .same_allocation == true'

    run clear "${P}c2" "$dst" --start 10 --stop 20
    ok "clear zeroes a range" '.start == 10 and .stop == 20 and .cleared == 10'
    run read "${P}c2" "$dst" --offset 10 --length 10
    check "the cleared range reads as zeros" cmp "$WORK/out" <(head -c 10 /dev/zero)
    run read "${P}c2" "$dst" --offset 20 --length 980
    check "clear left the rest alone" cmp "$WORK/out" <(tail -c 980 "$WORK/copysrc")
    run equal "${P}c1" "$src" --with "${P}c2" --with-id "$dst"
    ok "equal after clear: different" '.equal == false'
    run clear "${P}c2" "$dst"
    ok "clear without a range clears it all" '.cleared == 1000 and .stop == 1000'
    run clear "${P}c2" "$dst" --start 2000
    fails "clear from beyond the end fails naming it" 1 DRAGON_INVALID_ARGUMENT '.message | test("start 2000 is beyond")'
    run clear "${P}c2" "$dst" --start 50 --stop 10
    fails "clear with stop before start fails" 1 DRAGON_INVALID_ARGUMENT '.message | test("stop 10 is before start 50")'

    # No room in the target: a clear error, and nothing allocated there.
    run alloc "${P}c1" --size 16K
    local big
    big=$(jq_out '.allocations[0].id')
    local before
    before=$("$BIN" ls "${P}c2" | jq -c '[.allocations[].id]')
    run copy "${P}c1" "$big" --to "${P}c2" --timeout 0.05
    fails "copy that can never fit fails" 1 "DRAGON_DYNHEAP_REQUESTED_SIZE_TOO_LARGE|DRAGON_TIMEOUT|DRAGON_OUT_OF_SPACE"         '.message | test("copy_to_pool: no 16384 B allocation in pool")'
    check "a failed copy allocates nothing" test "$("$BIN" ls "${P}c2" | jq -c '[.allocations[].id]')" = "$before"
    run copy "${P}c1" "$src" --to "${P}nosuchpool"
    fails "copy to a missing pool fails" 1 "$MISSING_CODE"
    run copy "${P}c1" "$src"
    usage "copy without --to is bad usage"
    run copy "${P}c1" 999999 --to "${P}c2"
    fails "copy of an id not live fails" 1 "$NOT_LIVE_CODE"
    run hash "${P}c1" 999999
    fails "hash of an id not live fails" 1 "$NOT_LIVE_CODE"
    run equal "${P}c1" "$src" --with "${P}c2"
    usage "equal without --with-id is bad usage"

    run ls
    ok "ls says a pool is not process-local and has no NUMA node" '.pools[] | select(.name == "'"${P}c1"'")
        | .process_local == false and .owner_pid == null and .owner_alive == null and .numa_node == -1'
    run create "${P}n0" --size 64K --numa-node 0
    ok "create --numa-node 0" '.pool.numa_node == 0'
    run destroy "${P}n0"
    if [ "$(cat /sys/devices/system/node/online 2>/dev/null)" = 0 ]; then
        run create "${P}n1" --size 64K --numa-node 1
        fails "create --numa-node 1 on a one-node host fails naming the node" 1 DRAGON_INVALID_ARGUMENT \
            '.message | test("NUMA node 1 is not online")'
        check "nothing is left of it" gone "${P}n1"
    fi
    # A gpu pool (issue 13): without a usable GPU, a clear error naming what is missing
    # and nothing created; with one, tests/gpu/run_on_gpu.sh drives the CLI on it.
    if ! nvidia-smi -L >/dev/null 2>&1; then
        run create "${P}n2" --size 64K --mem-type gpu --gpu 0
        fails "create --mem-type gpu without a usable GPU fails naming why" 1 "DRAGON_MEMORY_ERRNO|DRAGON_MEMORY_ILLEGAL_MEMTYPE" \
            '(.code == "DRAGON_MEMORY_ERRNO" and (.message | test("no CUDA (driver|device)")))
             or (.code == "DRAGON_MEMORY_ILLEGAL_MEMTYPE" and (.message | test("built without CUDA")))'
        check "nothing is left of it" gone "${P}n2"
    fi
    # create --hold (a gpu pool's device memory lives as long as its creator): the
    # holder stays until the pool is destroyed elsewhere, and SIGTERM destroys it.
    local hold_out
    hold_out="$WORK/hold_out"
    "$BIN" create "${P}h" --size 64K --hold >"$hold_out" 2>&1 &
    local holder=$!
    for _ in $(seq 100); do [ -s "$hold_out" ] && break; sleep 0.1; done
    check "create --hold prints the pool" jq -e '.pool.name == "'"${P}h"'"' "$hold_out"
    check "the holder stays while the pool lives" kill -0 "$holder"
    run destroy "${P}h"
    ok "destroy the held pool" '.destroyed == ["'"${P}h"'"]'
    check "the holder exits 0 once the pool is destroyed" wait "$holder"
    : >"$hold_out"
    "$BIN" create "${P}h" --size 64K --hold >"$hold_out" 2>&1 &
    holder=$!
    for _ in $(seq 100); do [ -s "$hold_out" ] && break; sleep 0.1; done
    kill -TERM "$holder"
    check "SIGTERM: the holder exits 0" wait "$holder"
    check "SIGTERM: the holder destroyed its pool" gone "${P}h"
    rm -f "$hold_out"
    run create "${P}n2" --size 64K --mem-type file
    usage "create --mem-type file is bad usage" '.message | test("not shm, hugepage or gpu")'
    run create "${P}n2" --size 64K --gpu 1
    usage "create --gpu without --mem-type gpu is bad usage" '.message | test("--gpu")'
    check "nothing is left of them" gone "${P}n2"

    run destroy "${P}c1" "${P}c2"
    ok "destroy the copy pools"
}

# ---- exit status vs state (issue 9, item 11) ---------------------------------------------

# Exit 1 means nothing changed; no input makes dragonmem run or grow without end; numbers
# print as the unsigned values they are; mode 0 means 0600 as in the C API.
test_exit_means_unchanged() {
    local u="${P}u" m="${P}m" id big=18446744073709551615
    run_full create "$u" --size 64K
    fails "create with stdout unwritable fails" 1 DRAGON_MEMORY_ERRNO '.message | test("destroyed again")'
    check "create with stdout unwritable leaves no pool" gone "$u"

    run create "$u" --size 64K --max-allocations 8
    run_full alloc "$u" --size 64 --count 3
    fails "alloc with stdout unwritable fails" 1 DRAGON_MEMORY_ERRNO '.message | test("freed again")'
    run ls "$u"
    ok "alloc with stdout unwritable leaves no allocation" '.allocations == []'

    run alloc "$u" --size 100
    id=$(jq_out '.allocations[0].id')
    printf 'before' >"$WORK/before"
    IN="$WORK/before" run write "$u" "$id"
    printf 'after!' >"$WORK/after"
    IN="$WORK/after" run_full write "$u" "$id"
    fails "write with stdout unwritable fails" 1 DRAGON_MEMORY_ERRNO '.message | test("restored")'
    run read "$u" "$id" --length 6
    check "write with stdout unwritable leaves the bytes as they were" test "$OUT" = "before"

    IN=/dev/zero run_limited write "$u" "$id"
    fails "write of an endless stdin stops and fails" 1 DRAGON_INVALID_ARGUMENT '.message | test("more than the 100 B")'
    run read "$u" "$id" --length 6
    check "write of an endless stdin writes nothing" test "$OUT" = "before"

    run read "$u" "$id" --offset "$big"
    fails "read --offset 2^64-1 fails naming 2^64-1" 1 DRAGON_INVALID_ARGUMENT \
        '.message | test("'"$big"'") and (test("-1") | not)'
    run read "$u" "$id" --offset 9223372036854775808
    fails "read --offset 2^63 fails naming 2^63" 1 DRAGON_INVALID_ARGUMENT \
        '.message | test("9223372036854775808") and (test("-9") | not)'
    run read "$u" "$id" --offset 1 --length "$big"
    fails "read --length 2^64-1 fails naming it" 1 DRAGON_INVALID_ARGUMENT '.message | test("'"$big"'")'
    IN="$WORK/after" run write "$u" "$id" --offset "$big"
    fails "write --offset 2^64-1 fails naming 2^64-1" 1 DRAGON_INVALID_ARGUMENT \
        '.message | test("'"$big"'") and (test("-1") | not)'

    run_limited alloc "$u" --size 0 --count "$big"
    usage "alloc --count 2^64-1 is bad usage, at once" '.message | test("'"$big"'") and test("max_allocations")'
    run_limited alloc "$u" --size 64 --count 9
    usage "alloc --count beyond max_allocations is bad usage" '.message | test("\\b8\\b")'
    run ls "$u"
    ok "a refused --count makes nothing" '.allocations | length == 1'
    run destroy "$u"

    run create "$m" --size 64K --mode 0
    ok "create --mode 0 means the default, 0600" '.pool.mode == "0600"'
    check "create --mode 0 makes a 0600 object" test "$(stat -c %a "/dev/shm/dragonmem.$m")" = 600
    run destroy "$m"
}

test_dump() {
    run dump "${P}a"
    ok "dump shows attributes, free blocks and the allocations" '(.pool | .name == "'"${P}a"'" and .size == 1048576)
        and (.free_blocks | length > 0 and all(has("block_size") and has("count")))
        and (.allocations | length) == .pool.live_allocations'
    ok "dump's free blocks, counted by power of two, bound the free bytes" \
        '([.free_blocks[] | .block_size * .count] | add) as $low | $low <= .pool.free_bytes and .pool.free_bytes < 2 * $low'
    ok "dump's internal waste is the allocations' block bytes - requested bytes" \
        '.internal_waste == ([.allocations[] | .block_size - .size] | add // 0)
        and .largest_free_block <= .pool.free_bytes and .largest_request <= .largest_free_block'
    ok "dump's blocks add up to the pool" '.pool.free_bytes + ([.allocations[].block_size] | add) == .pool.size'
    ok "dump's utilization agrees with used and size" '(.pool.utilization - 100 * .pool.used_bytes / .pool.size | fabs) < 0.001'
    run dump "${P}nosuch"
    fails "dump of a missing pool fails" 1 "$MISSING_CODE"
}

# ---- serialize / attach -----------------------------------------------------------------

test_attach() {
    run serialize "${P}a"
    ok "serialize prints the pool's descriptor" '.pool.name == "'"${P}a"'" and .allocation == null and (.serialized | length > 0)'
    local serial
    serial=$(jq_out .serialized)
    run serialize "${P}a" --id "$ID1"
    ok "serialize --id prints the allocation's descriptor" '.allocation.id == "'"$ID1"'" and (.serialized | length > 0)'
    local mserial
    mserial=$(jq_out .serialized)
    run read --serial "$mserial" --length 11
    check "serialize --id's descriptor reaches the allocation" test "$OUT" = "hello, pool"
    run serialize "${P}a" --id 999999999
    fails "serialize of an id not live fails" 1 "$NOT_LIVE_CODE"
    run serialize "${P}nosuch"
    fails "serialize of a missing pool fails" 1 "$MISSING_CODE"
    run serialize "${P}a" --id -
    usage "serialize with a bad id is bad usage"

    run attach "$serial"
    ok "attach on this host is local, with the pool" '.pool | .name == "'"${P}a"'" and .local == true
        and .hostid == "'"$HOSTID"'" and .m_uid == 0 and .rt_uid == 0 and .live_allocations > 0'
    POOLSER="$serial" run attach --env POOLSER
    ok "attach --env reads the descriptor from the environment" '.pool | .name == "'"${P}a"'" and .local == true'
    POD_UID="elsewhere-$$" run attach "$serial"
    ok "attach with another POD_UID is remote, without pool figures" '.pool | .name == "'"${P}a"'" and .local == false
        and .hostid == "'"$HOSTID"'" and has("free_bytes") == false'
    DRAGON_RT_UID=77 run attach "$serial"
    ok "attach under another runtime id is remote" '.pool | .local == false and .rt_uid == 0'
    POD_UID="elsewhere-$$" run alloc --serial "$serial" --size 64
    fails "alloc through a remote descriptor fails" 1 DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL
    POD_UID="elsewhere-$$" run read --serial "$mserial"
    fails "read through a remote descriptor fails" 1 DRAGON_MEMORY_OPERATION_ATTEMPT_ON_NONLOCAL_POOL

    run attach "!!!not base64"
    fails "attach of bad base64 fails" 1 DRAGON_INVALID_ARGUMENT
    run attach "aGVsbG8gd29ybGQ="
    fails "attach of base64 that is no descriptor fails" 1 DRAGON_INVALID_ARGUMENT
    run attach "${serial:0:$((${#serial} / 2))}"
    fails "attach of a truncated descriptor fails" 1 DRAGON_INVALID_ARGUMENT
    run attach "$mserial"
    fails "attach of an allocation descriptor fails" 1 DRAGON_INVALID_ARGUMENT
    run attach --env "DRAGONMEM_UNSET_$$"
    fails "attach --env of an unset variable fails" 1 "$ENV_UNSET_CODE"
    run attach
    usage "attach without a descriptor is bad usage"
    run attach "$serial" --env POOLSER
    usage "SERIAL and --env together are bad usage"
}

# ---- check ------------------------------------------------------------------------------

test_check() {
    run check "${P}a"
    ok "check of a healthy pool" '.pool.name == "'"${P}a"'" and .ok == true and .problems == []
        and .free_bytes + .used_bytes == .pool.size and .live_allocations > 0'
    run check --serial "$SERIAL_A"
    ok "check takes a pool descriptor" '.ok == true'
    run check "${P}nosuch"
    fails "check of a missing pool fails" 1 "$MISSING_CODE"
    run check
    usage "check without a pool is bad usage"

    # Damage a pool behind the library's back: zero its heap, where free blocks keep their
    # list headers (lib/pool/pool_layout.hpp: the heap is the object's last `size` bytes).
    local damaged="${P}dmg" total size
    run create "$damaged" --size 64K
    total=$(jq_out .pool.total_bytes)
    size=$(jq_out .pool.size)
    run alloc "$damaged" --size 1K --count 2
    dd if=/dev/zero of="/dev/shm/dragonmem.$damaged" bs=4096 seek=$(((total - size) / 4096)) count=$((size / 4096)) \
        conv=notrunc status=none
    run check "$damaged"
    check "check of a damaged pool prints the verdict and exits 1" verdict_broken
    check "check of a damaged pool reports DRAGON_INVALID_STATE on stderr" \
        jq -e '.error.code == "DRAGON_INVALID_STATE" and (.error.message | test("invariant"))' "$WORK/err"
    run destroy "$damaged"
    ok "a damaged pool can still be destroyed" '.destroyed == ["'"$damaged"'"]'
}

# force_partly_failed: the last run was "destroy --force NOSUCH X": X destroyed, NOSUCH
# reported under "failed" on stdout and in the error on stderr, exit 1.
force_partly_failed() {
    [ "$RC" -eq 1 ] && gone "${P}x" &&
        jq -e '.destroyed == ["'"${P}x"'"] and .failed[0].name == "'"${P}nosuch"'"
            and .failed[0].error.code == "'"$MISSING_CODE"'"' <<<"$OUT" &&
        jq -e '.error.code == "'"$MISSING_CODE"'" and (.error.message | test("'"${P}nosuch"'"))' <<<"$ERR"
}

# verdict_broken: the last run was a check that exited 1 with a broken verdict on stdout.
verdict_broken() {
    [ "$RC" -eq 1 ] && jq -e '.ok == false and (.problems | length > 0) and .pool != null' <<<"$OUT"
}

# ---- destroy ----------------------------------------------------------------------------

test_destroy() {
    run create "${P}x" --size 64K
    run destroy "${P}x" "${P}nosuch"
    fails "destroy with one missing pool fails" 1 "$MISSING_CODE"
    check "destroy with one missing pool destroys none" exists "${P}x"
    run destroy "${P}x" "${P}x"
    usage "a pool named twice is bad usage"
    run destroy
    usage "destroy without pools is bad usage"
    run destroy --all-mine "${P}x"
    usage "--all-mine with names is bad usage"
    run destroy --force --serial "$SERIAL_A"
    usage "--force with --serial is bad usage"
    run destroy --force "${P}nosuch" "${P}x"
    check "destroy --force goes on past a missing pool, and exits 1" force_partly_failed
    run create "${P}x" --size 64K

    run destroy "${P}x" "${P}lib"
    ok "destroy removes the pools it names" '.destroyed == ["'"${P}x"'", "'"${P}lib"'"] and .failed == []'
    check "destroy unlinks the shm objects" gone "${P}x"
    check "destroy unlinks a library-made pool's shm object" gone "${P}lib"

    run destroy --serial "$SERIAL_A"
    ok "destroy --serial removes the pool" '.destroyed == ["'"${P}a"'"]'
    check "destroy --serial unlinks the shm object" gone "${P}a"
    run attach "$SERIAL_A"
    fails "attach of a destroyed pool fails" 1 "$DESTROYED_CODE"
    run destroy "${P}a"
    fails "destroy of a destroyed pool fails" 1 "$MISSING_CODE"
}

# --all-mine removes every pool of the caller on the host, so it runs where the host is
# only ours: a private /dev/shm in a user and mount namespace.
test_destroy_all_mine() {
    if ! unshare -rm true 2>/dev/null; then
        echo "SKIP: destroy --all-mine (no user namespaces here)"
        return
    fi
    unshare -rm bash -s "$BIN" "$P" "$WORK" >"$WORK/ns.log" 2>&1 <<'EOF'
set -u
bin=$1 p=$2 work=$3
mount -t tmpfs tmpfs /dev/shm || exit 3
"$bin" create "${p}m1" --size 64K >/dev/null || exit 4
"$bin" create "${p}m2" --size 64K >/dev/null || exit 4
"$bin" destroy --all-mine >"$work/first.json" || exit 5
"$bin" destroy --all-mine >"$work/second.json" || exit 6
head -c 8192 /dev/urandom >"/dev/shm/dragonmem.${p}junk"
"$bin" destroy --all-mine >"$work/junk.json" 2>"$work/junk.err"
echo $? >"$work/junk.rc"
"$bin" destroy --all-mine --force >"$work/forced.json" || exit 7
ls -A /dev/shm >"$work/left"
EOF
    RC=$?
    OUT=$(cat "$WORK/ns.log")
    ERR=""
    check "destroy --all-mine runs in a private /dev/shm" test "$RC" -eq 0
    check "destroy --all-mine removes every pool of the user" \
        jq -e '.destroyed == ["'"${P}m1"'", "'"${P}m2"'"] and .failed == []' "$WORK/first.json"
    check "a second destroy --all-mine finds nothing" jq -e '.destroyed == [] and .failed == []' "$WORK/second.json"
    check "destroy --all-mine reports a pool of the user it cannot destroy" \
        jq -e '.destroyed == [] and .failed[0].name == "'"${P}junk"'" and (.failed[0].error.code | startswith("DRAGON_"))' \
        "$WORK/junk.json"
    check "destroy --all-mine exits 1 when a pool is left" test "$(cat "$WORK/junk.rc")" = 1
    check "destroy --all-mine says which pool is left on stderr" \
        jq -e '.error.message | test("'"${P}junk"'")' "$WORK/junk.err"
    check "destroy --all-mine --force removes the pool it could not destroy" \
        jq -e '.destroyed == ["'"${P}junk"'"] and .failed == []' "$WORK/forced.json"
    check "destroy --all-mine leaves /dev/shm empty" test ! -s "$WORK/left"

    # Another user's pools are not "mine": needs root to become another user.
    if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
        echo "SKIP: destroy --all-mine leaves other users' pools (not root)"
        return
    fi
    unshare -m bash -s "$BIN" "$P" "$WORK" >"$WORK/ns.log" 2>&1 <<'EOF'
set -u
bin=$1 p=$2 work=$3
mount -t tmpfs tmpfs /dev/shm || exit 3
setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" create "${p}nobody" --size 64K >/dev/null || exit 4
"$bin" create "${p}root" --size 64K >/dev/null || exit 4
"$bin" destroy --all-mine >"$work/first.json" || exit 5
ls -A /dev/shm >"$work/left"
EOF
    RC=$?
    OUT=$(cat "$WORK/ns.log")
    check "destroy --all-mine runs as root in a private /dev/shm" test "$RC" -eq 0
    check "destroy --all-mine destroys root's pool" jq -e '.destroyed == ["'"${P}root"'"]' "$WORK/first.json"
    check "destroy --all-mine leaves another user's pool" test "$(cat "$WORK/left")" = "dragonmem.${P}nobody"
}

# ---- who is alive (creator, attached processes, orphaned) -----------------------------

test_who_is_alive() {
    local pool="${P}w" local_pool="${P}wl" peer
    run create "$pool" --size 64K
    run ls "$pool"
    ok "ls POOL shows the creator, not alive once create exited" \
        '.pool.creator.pid > 0 and .pool.creator.uid == '"$(id -u)"' and .pool.creator.start_ticks > 0
         and (.pool.creator.created | test("^20[0-9][0-9]-.*Z$")) and .pool.creator_alive == false'
    ok "a pool nobody has attached is orphaned, and ls does not count itself" \
        '.pool.attached == {"count": 0, "pids": [], "untracked": 0, "dead": 0} and .pool.orphaned == true'
    check "a library user that attaches is started" start_peer hold "$pool"
    peer=$PEER_PID
    run ls
    ok "ls lists the live process attached and the pool is not orphaned" \
        '.pools[] | select(.name == "'"$pool"'") | .attached.pids == ['"$peer"'] and .attached.count == 1
         and .orphaned == false'
    stop_peer "$peer"
    run ls "$pool"
    ok "after kill -9 of its only user the pool is orphaned, the entry counted dead" \
        '.pool.attached.count == 0 and .pool.attached.pids == [] and .pool.attached.dead == 1 and .pool.orphaned'
    run info "$pool"
    ok "info shows who is alive too" '.pool.orphaned == true and .pool.creator_alive == false'

    check "a library user that creates a process-local pool is started" start_peer hold-local "$local_pool" 65536
    peer=$PEER_PID
    run ls "$local_pool"
    ok "a live owner's process-local pool is not orphaned; its creator is alive" \
        '.pool.process_local and .pool.owner_alive and .pool.creator_alive and .pool.creator.pid == '"$peer"'
         and .pool.attached.pids == ['"$peer"'] and .pool.orphaned == false'
    stop_peer "$peer"
    run ls "$local_pool"
    ok "a process-local pool whose owner died is orphaned" \
        '.pool.process_local and .pool.owner_alive == false and .pool.creator_alive == false and .pool.orphaned'
    # Every pool of this user on the host is looked at: only this run's are checked, and
    # the real removal is tested in a private /dev/shm (test_destroy_orphaned).
    run destroy --orphaned --dry-run
    ok "destroy --orphaned --dry-run names orphaned pools and destroys nothing" \
        '.dry_run and (.destroyed | index("'"$pool"'") != null) and (.destroyed | index("'"$local_pool"'") != null)'
    check "destroy --orphaned --dry-run leaves the pools" exists "$pool"
    check "destroy --orphaned --dry-run leaves the process-local pool" exists "$local_pool"
    run destroy "$pool" "$local_pool"
}

# Globs, --dry-run of every form, and bad input.
test_destroy_selection() {
    run create "${P}g.1" --size 64K
    run create "${P}g.2" --size 64K
    run create "${P}h" --size 64K
    run destroy "${P}g.*" --dry-run
    ok "destroy GLOB --dry-run names the matching pools" \
        '.dry_run and .destroyed == ["'"${P}g.1"'", "'"${P}g.2"'"] and .failed == []'
    check "destroy --dry-run destroys nothing" exists "${P}g.1"
    run destroy "${P}g.?" "${P}g.1" "${P}h" --dry-run
    ok "overlapping globs and names name each pool once" \
        '.destroyed == ["'"${P}g.1"'", "'"${P}g.2"'", "'"${P}h"'"]'
    run destroy "${P}g.*" "${P}nosuch.*"
    fails "a glob that matches no pool fails, naming it" 1 DRAGON_MEMORY_ERRNO \
        '.errno == 2 and (.message | test("'"${P}nosuch"'"))'
    check "a glob that matches nothing destroys nothing" exists "${P}g.2"
    run destroy "${P}nosuch" --dry-run
    fails "destroy --dry-run of a missing pool fails as destroy does" 1 "$MISSING_CODE"
    run destroy --force "${P}h" "${P}nosuch" --dry-run
    check "destroy --force --dry-run names what exists and fails the rest, removing nothing" \
        jq -e '.dry_run and .destroyed == ["'"${P}h"'"] and .failed[0].name == "'"${P}nosuch"'"' "$WORK/out"
    check "destroy --force --dry-run leaves the pool" exists "${P}h"
    run destroy --all-mine --dry-run
    check "destroy --all-mine --dry-run names this run's pool" \
        jq -e '.dry_run and (.destroyed | index("'"${P}h"'") != null)' "$WORK/out"
    check "destroy --all-mine --dry-run leaves the pools" exists "${P}h"
    run destroy --orphaned "${P}h"
    usage "--orphaned with names is bad usage"
    run destroy --orphaned --all-mine
    usage "--orphaned with --all-mine is bad usage"
    run destroy --orphaned --force
    usage "--orphaned with --force is bad usage"
    run destroy "${P}g.*"
    ok "destroy GLOB destroys the matching pools" \
        '.dry_run == false and .destroyed == ["'"${P}g.1"'", "'"${P}g.2"'"]'
    check "destroy GLOB unlinks them" gone "${P}g.1"
    check "destroy GLOB leaves pools that do not match" exists "${P}h"
    run destroy "${P}h"
}

# destroy --orphaned and --all-mine act on every pool of the user: run where the host is
# only ours (a private /dev/shm in a user and mount namespace, as test_destroy_all_mine).
test_destroy_orphaned() {
    if ! unshare -rm true 2>/dev/null; then
        echo "SKIP: destroy --orphaned (no user namespaces here)"
        return
    fi
    unshare -rm bash -s "$BIN" "$PEER" "$P" "$WORK" >"$WORK/ns.log" 2>&1 <<'NS'
set -u
bin=$1 peer=$2 p=$3 work=$4
mount -t tmpfs tmpfs /dev/shm || exit 3
ready() { for _ in $(seq 300); do grep -q ready "$1" && return 0; sleep 0.1; done; return 1; }
"$bin" create "${p}o1" --size 64K >/dev/null || exit 4
"$bin" create "${p}o2" --size 64K >/dev/null || exit 4
"$peer" hold "${p}o2" >"$work/h2" & h2=$!
ready "$work/h2" || exit 5
"$peer" hold-local "${p}o3" 65536 >"$work/h3" & h3=$!
ready "$work/h3" || exit 5
kill -KILL "$h3"; wait "$h3" 2>/dev/null
head -c 8192 /dev/urandom >"/dev/shm/dragonmem.${p}junk"
"$bin" destroy --orphaned --dry-run >"$work/dry.json" || exit 6
ls -A /dev/shm >"$work/dry_left"
"$bin" destroy --orphaned >"$work/orphaned.json" || exit 7
ls -A /dev/shm >"$work/orphaned_left"
rm -f "/dev/shm/dragonmem.${p}junk"
"$bin" create "${p}o4" --size 64K >/dev/null || exit 4
"$bin" destroy --all-mine >"$work/mine.json" || exit 8
ls -A /dev/shm >"$work/mine_left"
"$bin" destroy --all-mine --force >"$work/forced.json" || exit 9
kill -KILL "$h2"; wait "$h2" 2>/dev/null
ls -A /dev/shm >"$work/left"
NS
    RC=$?
    OUT=$(cat "$WORK/ns.log")
    ERR=""
    check "destroy --orphaned runs in a private /dev/shm" test "$RC" -eq 0
    check "destroy --orphaned --dry-run names the pool nobody uses and the dead owner's, nothing else" \
        jq -e '.dry_run and .destroyed == ["'"${P}o1"'", "'"${P}o3"'"] and .failed == []' "$WORK/dry.json"
    check "destroy --orphaned --dry-run leaves every pool" test "$(wc -l <"$WORK/dry_left")" -eq 4
    check "destroy --orphaned skips a pool it cannot attach, with the reason" \
        jq -e '.skipped[0].name == "'"${P}junk"'" and (.skipped[0].reason | test("cannot be attached"))' \
        "$WORK/orphaned.json"
    check "destroy --orphaned removes the orphaned pools" \
        jq -e '.dry_run == false and .destroyed == ["'"${P}o1"'", "'"${P}o3"'"] and .failed == []' "$WORK/orphaned.json"
    check "destroy --orphaned leaves the pool a live process uses" \
        test "$(cat "$WORK/orphaned_left")" = "dragonmem.${P}junk"$'\n'"dragonmem.${P}o2"
    check "destroy --all-mine skips a pool another live process uses, naming it" \
        jq -e '.destroyed == ["'"${P}o4"'"] and .skipped[0].name == "'"${P}o2"'"
               and (.skipped[0].attached_pids | length == 1) and (.skipped[0].reason | test("--force"))' \
        "$WORK/mine.json"
    check "destroy --all-mine leaves that pool" test "$(cat "$WORK/mine_left")" = "dragonmem.${P}o2"
    check "destroy --all-mine --force removes it anyway" \
        jq -e '.destroyed == ["'"${P}o2"'"] and .skipped == []' "$WORK/forced.json"
    check "destroy --orphaned and --all-mine leave /dev/shm empty" test ! -s "$WORK/left"
}

# ---- stat ---------------------------------------------------------------------------------

test_stat() {
    local pool="${P}st" before stat_pid i
    run create "$pool" --size 1M
    "$PEER" churn "$pool" 1000 >/dev/null   # 1001 allocations (most lock-free), 1000 frees
    run stat "$pool" --interval 0.05 --count 2
    check "stat --count 2 prints two lines" test "$RC" -eq 0 -a "$(wc -l <"$WORK/out")" -eq 2 -a -z "$ERR"
    check "stat lines carry the pool's figures and the totals of both paths" jq -e -s 'length == 2 and all(.[];
        .name == "'"$pool"'" and .live_allocations == 1 and .allocations_total == 1001 and .frees_total == 1000
        and .allocations_per_s == 0 and .frees_per_s == 0 and .utilization > 0 and .waiters == false
        and .recoveries == 0 and .interval_s > 0)' "$WORK/out"

    # Allocations made while stat watches: rate x interval, summed, is what was made.
    "$BIN" stat "$pool" --interval 0.2 --count 25 >"$WORK/stat.jsonl" 2>"$WORK/stat.err" &
    stat_pid=$!
    for ((i = 0; i < 300; i++)); do
        [ -s "$WORK/stat.jsonl" ] && break
        sleep 0.05
    done
    "$PEER" churn "$pool" 500 >/dev/null
    wait "$stat_pid"
    RC=$? OUT=$(cat "$WORK/stat.jsonl") ERR=$(cat "$WORK/stat.err")
    # Each line's rate covers the interval since the line before (the first, since stat
    # began): from the second line on, rate x interval adds up to the change of the
    # totals between the first and last lines, however much of the churn (an ASan process
    # on a loaded machine may take longer than the 4.8 s stat watches) fell in the window.
    check "stat's rates add up to the allocations and frees made meanwhile" jq -e -s '
        (.[1:] | map(.allocations_per_s * .interval_s) | add | round) == .[-1].allocations_total - .[0].allocations_total
        and (.[1:] | map(.frees_per_s * .interval_s) | add | round) == .[-1].frees_total - .[0].frees_total
        and .[-1].allocations_total > .[0].allocations_total' "$WORK/stat.jsonl"
    run stat "$pool" --interval 0.05 --count 1
    ok "the totals count the churn whole: 1001 + 501 allocations, 1000 + 500 frees" \
        '.allocations_total == 1502 and .frees_total == 1500 and .live_allocations == 2'

    before=$("$BIN" ls "$pool" | jq -c '[.allocations[].id]')
    run stat "$pool" --interval 0
    usage "stat --interval 0 is bad usage, naming the value" '.message | test("--interval: .0.")'
    run stat "$pool" --interval -1
    usage "stat --interval -1 is bad usage"
    run stat "$pool" --interval soon
    usage "stat --interval soon is bad usage, naming the value" '.message | test("soon")'
    run stat "$pool" --interval 86401
    usage "stat --interval beyond a day is bad usage" '.message | test("86401")'
    run stat "$pool" --count 0
    usage "stat --count 0 is bad usage" '.message | test("--count")'
    run stat "$pool" --count many
    usage "stat --count many is bad usage, naming the value" '.message | test("many")'
    run stat "$pool" --interval
    usage "stat --interval without a value is bad usage"
    run stat
    usage "stat without a pool is bad usage"
    run stat "${P}nosuch" --count 1
    fails "stat of a missing pool fails" 1 "$MISSING_CODE"
    check "bad stat input leaves the pool as it was" \
        test "$("$BIN" ls "$pool" | jq -c '[.allocations[].id]')" = "$before"
    run destroy "$pool"
}

# ---- dump --svg -------------------------------------------------------------------------

# svg_matches SVG LS_JSON: the picture's heap rectangles tile the heap exactly, each
# allocation's block is drawn in its type's kind and the rest free, every rectangle sits
# where its offset and size put it, and the legend names every kind drawn.
svg_matches() {
    python3 - "$1" "$2" <<'PY'
import json, sys, xml.etree.ElementTree as ET
svg = ET.parse(sys.argv[1]).getroot()
listing = json.load(open(sys.argv[2]))
ns = "{http://www.w3.org/2000/svg}"
heap = int(svg.get("data-heap-bytes"))
row_bytes = int(svg.get("data-row-bytes"))
bpp = row_bytes / 1024
rects = [r for r in svg.iter(ns + "rect") if r.get("class") == "heap"]
kinds = {}
at = 0
for r in sorted(rects, key=lambda r: int(r.get("data-offset"))):
    off, size, kind = int(r.get("data-offset")), int(r.get("data-bytes")), r.get("data-kind")
    assert off == at, f"gap or overlap at {at}: next rectangle at {off}"
    assert off // row_bytes == (off + size - 1) // row_bytes, f"rectangle at {off} crosses a row"
    assert abs(float(r.get("width")) - size / bpp) < 0.01, f"width of rectangle at {off}"
    assert abs(float(r.get("x")) - 16 - (off % row_bytes) / bpp) < 0.01, f"x of rectangle at {off}"
    for b in range(off, off + size, 1024):
        kinds[b] = kind
    at = off + size
assert at == heap, f"rectangles end at {at}, the heap at {heap}"
used = set()
for a in listing["allocations"]:
    want = a["type_name"] or f"type {a['type']}"
    for b in range(a["offset"], a["offset"] + a["block_size"], 1024):
        assert kinds[b] == want, f"block at {b}: drawn {kinds[b]}, allocated as {want}"
        used.add(b)
for b, kind in kinds.items():
    assert b in used or kind == "free", f"block at {b} drawn {kind} but not allocated"
legend = {r.get("data-kind") for r in svg.iter(ns + "rect") if r.get("class") == "legend"}
assert legend == set(kinds.values()), f"legend {legend}, kinds drawn {set(kinds.values())}"
PY
}

test_svg() {
    local pool="${P}svg" id3
    run create "$pool" --size 64K --min-block 1K
    run alloc "$pool" --size 4K
    run alloc "$pool" --size 8K --type channel
    run alloc "$pool" --size 2K
    id3=$(jq_out .allocation.id)
    run alloc "$pool" --size 1K --type 77
    run alloc "$pool" --size 16K --type bootstrap
    run free "$pool" "$id3"
    "$BIN" ls "$pool" >"$WORK/svg_ls.json"
    run dump "$pool" --svg "$WORK/heap.svg"
    ok "dump --svg writes the picture and says so" \
        '.svg == "'"$WORK/heap.svg"'" and .rectangles >= 5 and .exact and .pool.name == "'"$pool"'"
         and .bytes_per_pixel == 2'
    check "the SVG's rectangles are the pool's known layout" svg_matches "$WORK/heap.svg" "$WORK/svg_ls.json"
    check "the SVG's caption gives the pool's figures" grep -q "pool ${pool}" "$WORK/heap.svg"

    run dump "$pool" --svg ""
    usage "dump --svg '' is bad usage"
    run dump "$pool" --svg "$WORK/x.svg" --id 1
    usage "dump --svg with --id is bad usage"
    run dump "$pool" --svg "$WORK/x.svg" --jsonl
    usage "dump --svg with --jsonl is bad usage"
    run dump "$pool" --svg "$WORK/x.svg" --table
    usage "dump --svg with --table is bad usage"
    check "bad usage writes no picture" test ! -e "$WORK/x.svg"
    run dump "$pool" --svg "$WORK/no/such/dir/heap.svg"
    fails "dump --svg into a missing directory fails, naming the file" 1 DRAGON_INVALID_ARGUMENT \
        '.errno == 2 and (.message | test("no/such/dir/heap.svg"))'
    run dump "${P}nosuch" --svg "$WORK/y.svg"
    fails "dump --svg of a missing pool fails" 1 "$MISSING_CODE"
    check "dump --svg of a missing pool writes no picture" test ! -e "$WORK/y.svg"
    check "dump --svg leaves the pool as it was" test "$("$BIN" ls "$pool")" = "$(cat "$WORK/svg_ls.json")"
    run destroy "$pool"
}

# svg_per_pixel SVG USED_END: a picture drawn per pixel still tiles the heap exactly, with
# [0, USED_END) drawn as data and the rest free (pixels of 128 B, four 32 B blocks each).
svg_per_pixel() {
    python3 - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
svg = ET.parse(sys.argv[1]).getroot()
used_end = int(sys.argv[2])
ns = "{http://www.w3.org/2000/svg}"
assert svg.get("data-exact") == "false", "not drawn per pixel"
heap = int(svg.get("data-heap-bytes"))
at = 0
for r in sorted((r for r in svg.iter(ns + "rect") if r.get("class") == "heap"), key=lambda r: int(r.get("data-offset"))):
    off, size, kind = int(r.get("data-offset")), int(r.get("data-bytes")), r.get("data-kind")
    assert off == at, f"gap or overlap at {at}"
    assert kind == ("data" if off < used_end else "free"), f"rectangle at {off} drawn {kind}"
    assert (off + size <= used_end) or off >= used_end, f"rectangle at {off} straddles the used end"
    at = off + size
assert at == heap, f"rectangles end at {at}, the heap at {heap}"
PY
}

# Past 65,536 runs the picture is drawn per pixel: 70,000 allocations of 32 B (a 64 B granule
# each) in an 8 MiB heap.
test_svg_per_pixel() {
    local pool="${P}svgpp"
    run create "$pool" --size 8M --min-block 32 --max-allocations 70000
    "$BIN" alloc "$pool" --size 32 --count 70000 >/dev/null   # not kept for the schema check: 70,000 objects
    run dump "$pool" --svg "$WORK/pp.svg"
    ok "dump --svg of 70,000 blocks draws per pixel and says so" '.exact == false and .rectangles < 100'
    check "the per-pixel picture tiles the heap, the used part as data" svg_per_pixel "$WORK/pp.svg" 4480000
    run destroy "$pool"
}

# ---- memory of the cached-block scan ------------------------------------------------------

# peak_rss_kb ARGS...: runs dragonmem ARGS and prints its peak RSS in KiB (GNU time).
peak_rss_kb() {
    /usr/bin/time -f %M -o "$WORK/rss" "$BIN" "$@" >/dev/null 2>&1
    cat "$WORK/rss"
}

# The first statistics call after a caching process exits takes its cached blocks back
# with a scan of the whole manifest (12.8 MB here); it must not keep those pages resident.
test_scan_memory() {
    if [ ! -x /usr/bin/time ]; then
        echo "SKIP: memory of the cached-block scan (no GNU time)"
        return
    fi
    local pool="${P}scan" small="${P}scan0" empty_kb scan_kb
    run create "$pool" --size 32M --min-block 64 --max-allocations 200000
    run create "$small" --size 64K
    # Caches blocks and exits without using them. Its 18 MB document is neither kept nor
    # checked against the schema (other alloc runs are): that took longer than all the rest.
    "$BIN" alloc "$pool" --size 64 --count 200000 >/dev/null 2>"$WORK/err"
    RC=$? OUT="" ERR=$(cat "$WORK/err")
    check "alloc --count 200000 in a pool of 200000 records" test "$RC" -eq 0
    empty_kb=$(peak_rss_kb info "$small")
    scan_kb=$(peak_rss_kb info "$pool")
    RC=0 OUT="info of an empty pool: $empty_kb KiB; first info after the allocator exited: $scan_kb KiB" ERR=""
    check "the cached-block scan does not keep the manifest resident (peak under half of it more)" \
        test $((scan_kb - empty_kb)) -lt 6250
    run destroy "$pool" "$small"
}

# ---- a stopped lock holder --------------------------------------------------------------

task_state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null; }
# destroy_timed_out POOL: the last run was a destroy of POOL that gave up on its lock:
# exit 1, POOL under "failed" with DRAGON_TIMEOUT naming the holder, the same on stderr.
destroy_timed_out() {
    [ "$RC" -eq 1 ] &&
        jq -e '.destroyed == [] and .failed[0].name == "'"$1"'" and .failed[0].error.code == "DRAGON_TIMEOUT"
            and (.failed[0].error | '"$(timeout_names_holder)"')' <<<"$OUT" &&
        jq -e '.error.code == "DRAGON_TIMEOUT" and (.error | '"$(timeout_names_holder)"')' <<<"$ERR"
}
timeout_names_holder() { echo '.message | test("process '"$HOLDER_PID"'") and test("T \\(stopped\\)")'; }

# A process holds a pool's lock and is stopped: alive, so never taken over. Every command
# that needs the lock gives up after --lock-timeout (default 5 s) with an error naming
# the holder and its state; destroy --force needs no lock.
test_lock_holder() {
    local pool="${P}lk" id start end ms
    local RUN_LIMIT=30   # a command hung behind the holder fails its case instead of the run
    run create "$pool" --size 64K
    run alloc "$pool" --size 1K
    id=$(jq_out '.allocations[0].id')
    "$HOLDER" "$pool" >"$WORK/holder.out" &
    HOLDER_PID=$!
    for _ in $(seq 1000); do [ "$(task_state "$HOLDER_PID")" = T ] && break; sleep 0.01; done
    RC=0 OUT=$(cat "$WORK/holder.out") ERR=""
    check "the lock holder holds the lock, stopped" test "$(task_state "$HOLDER_PID")" = T

    start=$(now_us)
    run ls "$pool" --lock-timeout 0.5
    end=$(now_us)
    fails "ls POOL behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    ms=$(((end - start) / 1000))
    check "ls POOL gives up after about --lock-timeout 0.5 (took $ms ms)" test "$ms" -ge 450 -a "$ms" -lt 5000
    run --lock-timeout 0.2 check "$pool"
    fails "check behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    run dump "$pool" --lock-timeout 0.2
    fails "dump behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    run alloc "$pool" --size 64 --lock-timeout 0.2
    fails "alloc behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    start=$(now_us)
    run alloc "$pool" --size 64 --timeout 0.3 --lock-timeout 60
    end=$(now_us)
    fails "alloc --timeout behind a stopped lock holder fails at its timeout" 1 DRAGON_TIMEOUT \
        "($(timeout_names_holder)) and (.message | test(\"the call's timeout\"))"
    ms=$(((end - start) / 1000))
    check "alloc --timeout 0.3 gives up after about 0.3 s (took $ms ms)" test "$ms" -ge 250 -a "$ms" -lt 5000
    run free "$pool" "$id" --lock-timeout 0.2
    fails "free behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    run stat "$pool" --count 2 --interval 0.1 --lock-timeout 0.2
    fails "stat behind a stopped lock holder fails, naming it" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    run ls --lock-timeout 0.2
    ok "ls lists a pool whose lock is stuck with its error" '.pools | map(select(.name == "'"$pool"'"))[0]
        | .error.code == "DRAGON_TIMEOUT" and (.error.message | test("process '"$HOLDER_PID"'"))'
    run destroy "$pool" --lock-timeout 0.2
    check "destroy behind a stopped lock holder fails, naming it" destroy_timed_out "$pool"
    check "a destroy that timed out leaves the pool" exists "$pool"
    start=$(now_us)
    run ls "$pool"
    end=$(now_us)
    fails "ls POOL gives up by default too" 1 DRAGON_TIMEOUT "$(timeout_names_holder)"
    ms=$(((end - start) / 1000))
    check "the default lock timeout is about 5 s (took $ms ms)" test "$ms" -ge 4500 -a "$ms" -lt 15000

    start=$(now_us)
    run destroy --force "$pool"
    end=$(now_us)
    ok "destroy --force removes a pool whose lock holder is stopped" '.destroyed == ["'"$pool"'"] and .failed == []'
    check "destroy --force does not wait for the lock (took $(((end - start) / 1000)) ms)" \
        test $(((end - start) / 1000)) -lt 4500
    check "destroy --force unlinks the pool behind a stopped holder" gone "$pool"
    kill -CONT "$HOLDER_PID"
    wait "$HOLDER_PID"
    RC=$? OUT=$(cat "$WORK/holder.out") ERR=""
    HOLDER_PID=""
    check "the holder, continued, finishes normally" test "$RC" -eq 0 -a "${OUT##*$'\n'}" = released

    run ls --lock-timeout abc
    usage "a non-numeric --lock-timeout is bad usage" '.message | test("lock-timeout")'
    run ls --lock-timeout -1
    usage "a negative --lock-timeout is bad usage"
}

# ---- run --------------------------------------------------------------------------------

# The codes of errors met in several places. A missing pool is the errno of a failed
# shm_open (ENOENT); a descriptor of a destroyed pool is OBJECT_DESTROYED or MEMORY_ERRNO
# (docs/design.md section 2); a bad pool header or descriptor is INVALID_ARGUMENT.
MISSING_CODE=DRAGON_MEMORY_ERRNO
NOT_LIVE_CODE=DRAGON_KEY_NOT_FOUND
DAMAGED_CODE=DRAGON_INVALID_ARGUMENT
DESTROYED_CODE="DRAGON_OBJECT_DESTROYED|DRAGON_MEMORY_ERRNO"
ENV_UNSET_CODE=DRAGON_INVALID_ARGUMENT

# CLI_ONLY="test_stat test_svg" runs just those (then the schema check), for quick work.
if [ -n "${CLI_ONLY:-}" ]; then
    for only in $CLI_ONLY; do "$only"; done
else
test_global
test_create
test_alloc
test_alloc_full
test_free
test_big_ids
test_selection
test_listing_options
test_table
test_ls
test_bytes
test_copy
test_serve
test_exit_means_unchanged
test_dump
test_attach
test_check
test_destroy
test_destroy_all_mine
test_who_is_alive
test_destroy_selection
test_destroy_orphaned
test_stat
test_svg
test_svg_per_pixel
test_scan_memory
test_lock_holder
fi

# ---- bash completion ----------------------------------------------------------------------

# complete WORDS...: the completions tools/completion/dragonmem.bash offers for the last
# word of "dragonmem WORDS...", one per line.
complete_words() {
    bash -c 'source "$1"; shift; COMP_WORDS=(dragonmem "$@"); COMP_CWORD=$#; _dragonmem; printf "%s\n" "${COMPREPLY[@]}"' \
        complete "$(dirname "$(realpath "$0")")/../../tools/completion/dragonmem.bash" "$@" 2>/dev/null
}
test_completion() {
    local pool="${P}cmp"
    run create "$pool" --size 64K
    OUT=$(complete_words in) RC=0 ERR=""
    check "completion offers commands" test "$OUT" = info
    OUT=$(complete_words ls "${P}cm") RC=0
    check "completion offers pool names" test "$OUT" = "$pool"
    OUT=$(complete_words alloc "$pool" --type ch) RC=0
    check "completion offers allocation types" test "$OUT" = $'channel\nchannel_buffer'
    OUT=$(complete_words free "$pool" --a) RC=0
    check "completion offers a command's options" test "$OUT" = --all
    OUT=$(complete_words stat "$pool" --i) RC=0
    check "completion offers stat's options" test "$OUT" = --interval
    OUT=$(complete_words destroy --o) RC=0
    check "completion offers destroy --orphaned" test "$OUT" = --orphaned
    OUT=$(complete_words destroy --d) RC=0
    check "completion offers destroy --dry-run" test "$OUT" = --dry-run
    touch "$WORK/picture.svg"
    OUT=$(complete_words dump "$pool" --svg "$WORK/pict") RC=0
    check "completion offers file names after --svg" test "$OUT" = "$WORK/picture.svg"
    run destroy "$pool"
}

# Every output of every run above, against docs/schema/ (python3-jsonschema).
test_schema() {
    local schema_dir
    schema_dir="$(dirname "$(realpath "$0")")/../../docs/schema"
    if ! python3 -c 'import jsonschema' 2>/dev/null; then
        echo "SKIP: output schemas (python3-jsonschema is not installed)"
        return
    fi
    OUT=$(python3 "$(dirname "$(realpath "$0")")/validate_outputs.py" "$schema_dir" "$RUNS" 2>&1)
    RC=$? ERR=""
    echo "${OUT##*$'\n'}"
    check "every output of this run matches its schema in docs/schema" test "$RC" -eq 0

    # The validator can fail: an id printed as a number, a pool as a name, an error without errno.
    mkdir -p "$WORK/bad"
    printf 'ls\0x\0' >"$WORK/bad/1.args"
    echo 0 >"$WORK/bad/1.rc"
    echo '{"pool":"x","type":null,"type_name":null,"allocations":[{"id":5,"type":0,"type_name":"data","offset":0,"size":1,"block_size":32}]}' \
        >"$WORK/bad/1.out"
    : >"$WORK/bad/1.err"
    printf 'free\0x\0' >"$WORK/bad/2.args"
    echo 1 >"$WORK/bad/2.rc"
    : >"$WORK/bad/2.out"
    echo '{"error":{"code":"DRAGON_MEMORY_ERRNO","rc":71,"message":"no pool"}}' >"$WORK/bad/2.err"
    OUT=$(python3 "$(dirname "$(realpath "$0")")/validate_outputs.py" "$schema_dir" "$WORK/bad" 2>&1)
    RC=$?
    check "the schema check rejects outputs that break the schema" \
        test "$RC" -eq 1 -a "${OUT##*$'\n'}" = "schema: 0 outputs valid, 2 invalid"
}
[ -z "${CLI_ONLY:-}" ] && test_completion
test_schema

shopt -s nullglob
leftovers=(/dev/shm/dragonmem."$P"*)
RC=0 OUT="${leftovers[*]}" ERR=""
check "nothing of this run is left in /dev/shm" test "${#leftovers[@]}" -eq 0
finish
