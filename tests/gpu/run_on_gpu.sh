#!/usr/bin/env bash
# The GPU pool checks that need a GPU (issue 13), from built programs, in one go:
#   1. dm_gpu, the library's GPU tests (tests/gpu/test_gpu_pools.cpp);
#   2. the CLI on a GPU pool: create --mem-type gpu --hold, alloc, write, read back,
#      clear, ls, dump, check, destroy (the holder then exits), SIGTERM to a holder, the
#      error once the creating process is gone, and bad input (a device that does not exist);
#   3. DragonHPC's test/utils/test_gpu_mem.c, built unmodified (run_dragon_tests.sh
#      --gpu-only), when DRAGON_TESTS_DIR is given;
#   4. dragonmem-gpu-bench (a GPU pool against cudaMalloc and cudaMallocAsync).
#
#   tests/gpu/run_on_gpu.sh BIN_DIR [DRAGON_TESTS_DIR]
#
# BIN_DIR holds dm_gpu, dm_child, dragonmem and dragonmem-gpu-bench (from a build with
# CUDA: build/tests, build/tests/child, build/tools, build/bench); DRAGON_TESTS_DIR the
# Dragon test programs that `DRAGON_TESTS_KEEP=DIR tests/dragon/run_dragon_tests.sh` kept
# (libdragonmem.so must be on LD_LIBRARY_PATH for them). Needs python3 (JSON checks).
# Prints "gpu checks: N failed" last; exits 1 if any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:?BIN_DIR}" && pwd)
dragon=${2:-}
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

nvidia-smi -L || { echo "SKIP: nvidia-smi lists no GPU"; exit 77; }

echo "== 1. dm_gpu"
DM_CHILD_PATH=$bin/dm_child timeout 240 "$bin/dm_gpu" --no-version || fail "dm_gpu"

echo "== 2. the CLI on a GPU pool"
# A GPU pool's device memory lives as long as the process that created it: `create
# --hold` keeps that process until the pool is destroyed (or SIGTERM destroys it).
dm=$bin/dragonmem
pool=gpucli$$
work=$(mktemp -d)
trap '"$dm" destroy "$pool" "${pool}t" >/dev/null 2>&1; rm -f /dev/shm/dragonmem.$pool /dev/shm/dragonmem.${pool}t; rm -rf "$work"' EXIT
wait_for_pool() {  # FILE: until the holder printed its document (at most 30 s)
    for _ in $(seq 300); do [[ -s $1 ]] && return 0; sleep 0.1; done; return 1
}
"$dm" create "$pool" --size 64M --mem-type gpu --gpu 0 --hold >"$work/created" 2>&1 &
holder=$!
if wait_for_pool "$work/created" && [[ $(json 'd["pool"]["mem_type"]' <"$work/created") == gpu ]]; then
    json 'd["pool"]["mem_type"], d["pool"]["gpu_device"], d["pool"]["ipc_handle_bytes"]' <"$work/created"
    id=$("$dm" alloc "$pool" --size 4K | json 'd["allocations"][0]["id"]')
    echo "hello from the GPU" | "$dm" write "$pool" "$id" >/dev/null || fail "write"
    got=$("$dm" read "$pool" "$id" --length 18)
    [[ $got == "hello from the GPU" ]] || fail "read back '$got'"
    "$dm" clear "$pool" "$id" --start 0 --stop 5 >/dev/null || fail "clear"
    [[ $("$dm" read "$pool" "$id" --length 18 | tr '\0' '.') == "..... from the GPU" ]] || fail "clear did not zero"
    "$dm" ls | json '[ (p["name"], p["mem_type"]) for p in d["pools"] if p["name"] == "'"$pool"'" ]'
    "$dm" dump "$pool" | json 'd["pool"]["mem_type"], len(d["allocations"])' || fail "dump"
    "$dm" check "$pool" | json 'd["ok"]' | grep -qx True || fail "check"
    "$dm" destroy "$pool" >/dev/null || fail "destroy"
    wait "$holder" || fail "the holder exited $? after the destroy"
    [[ ! -e /dev/shm/dragonmem.$pool ]] || fail "destroy left /dev/shm/dragonmem.$pool"
else
    fail "create --mem-type gpu --hold: $(cat "$work/created")"
fi
# SIGTERM to the holder destroys the pool.
"$dm" create "${pool}t" --size 1M --mem-type gpu --hold >"$work/created2" 2>&1 &
holder=$!
if wait_for_pool "$work/created2"; then
    kill -TERM "$holder"; wait "$holder" || fail "the holder exited $? on SIGTERM"
    [[ ! -e /dev/shm/dragonmem.${pool}t ]] || fail "SIGTERM to the holder left the pool"
else
    fail "create --hold (second pool)"
fi
# Without a holder the device memory is gone with the creating process: a clear error.
"$dm" create "${pool}t" --size 1M --mem-type gpu >/dev/null || fail "create without --hold"
id=$("$dm" alloc "${pool}t" --size 64 | json 'd["allocations"][0]["id"]')
if gone=$("$dm" read "${pool}t" "$id" 2>&1); then
    fail "reading a GPU pool whose creator exited succeeded"
else
    echo "$gone" | json 'd["error"]["code"], d["error"]["message"]'
fi
"$dm" destroy "${pool}t" >/dev/null || fail "destroy of the pool whose creator exited"
if bad=$("$dm" create "$pool" --size 1M --mem-type gpu --gpu 99 2>&1); then
    fail "--gpu 99 was accepted"
else
    echo "$bad" | json 'd["error"]["code"], d["error"]["message"]'
    [[ -e /dev/shm/dragonmem.$pool ]] && fail "--gpu 99 left /dev/shm/dragonmem.$pool"
fi

if [[ -n "$dragon" ]]; then
    echo "== 3. Dragon's test_gpu_mem.c"
    "$here/../dragon/run_dragon_tests.sh" --gpu-only "$dragon" || fail "test_gpu_mem"
fi

echo "== 4. dragonmem-gpu-bench"
timeout 180 "$bin/dragonmem-gpu-bench" || fail "dragonmem-gpu-bench"

echo "gpu checks: $failures failed"
[[ $failures -eq 0 ]]
