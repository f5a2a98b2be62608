#!/usr/bin/env bash
# dragonmem demo: one pool's whole life, driven from the shell with the dragonmem CLI and
# read with jq. Leaves nothing in /dev/shm, even when interrupted.
# Usage: tools/demo.sh [PATH_TO_DRAGONMEM]   (default: build/tools/dragonmem)
set -euo pipefail

dragonmem=$(realpath "${1:-build/tools/dragonmem}")
pool="demo$$"

for tool in jq "$dragonmem"; do
    command -v "$tool" >/dev/null || { echo "demo: $tool not found (build first: meson setup build && ninja -C build)" >&2; exit 1; }
done

cleanup() {
    "$dragonmem" destroy "$pool" >/dev/null 2>&1 || true
    rm -f "/dev/shm/dragonmem.$pool"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step=0
bold='' plain=''
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
say() { step=$((step + 1)); printf '\n%s%d. %s%s\n' "$bold" "$step" "$*" "$plain"; }
show() { printf '   $ %s\n' "$*"; }

say "Create pool '$pool' with 1 MiB of allocatable memory"
show "dragonmem create $pool --size 1M"
created=$("$dragonmem" create "$pool" --size 1M)
jq '.pool | {name, shm_name, size, free_bytes, min_block, max_allocations, mode}' <<<"$created"
serial=$(jq -r .pool.serialized <<<"$created")

say "Allocate: one 4 KiB data block and two 100-byte channel blocks"
show "dragonmem alloc $pool --size 4K"
allocated=$("$dragonmem" alloc "$pool" --size 4K)
jq -c '.allocations[] | {id, type_name, size, block_size, offset}' <<<"$allocated"
data_id=$(jq -r '.allocations[0].id' <<<"$allocated")
show "dragonmem alloc $pool --size 100 --type channel --count 2"
"$dragonmem" alloc "$pool" --size 100 --type channel --count 2 |
    jq -c '.allocations[] | {id, type_name, size, block_size, offset}'

say "Write a message into allocation $data_id from stdin"
show "echo 'hello from the shell' | dragonmem write $pool $data_id"
echo 'hello from the shell' | "$dragonmem" write "$pool" "$data_id" | jq -c .

say "Serialize the pool: a base64 descriptor any process can attach"
show "dragonmem serialize $pool"
serial=$("$dragonmem" serialize "$pool" | jq -r .serialized)
echo "   ${serial:0:48}... (${#serial} chars)"

say "Attach from a second process on this host: the descriptor is local"
show "bash -c 'dragonmem attach \"\$serial\"'"
bash -c '"$0" attach "$1"' "$dragonmem" "$serial" | jq -c '.pool | {name, local, hostid, free_bytes, live_allocations}'

say "Attach as if from another node (other POD_UID): the descriptor is remote"
show "POD_UID=another-node dragonmem attach \"\$serial\""
POD_UID=another-node "$dragonmem" attach "$serial" | jq -c '.pool'

say "List the pools of this host (ours among them)"
show "dragonmem ls"
"$dragonmem" ls | jq -c --arg pool "$pool" '.pools[] | select(.name == $pool) | {name, size, free_bytes, utilization, live_allocations}'

say "List the pool's live allocations: they outlived the commands that made them"
show "dragonmem ls $pool"
"$dragonmem" ls "$pool" | jq -c '.allocations[] | {id, type_name, size}'

say "Dump the pool: utilization, free blocks per size, manifest"
show "dragonmem dump $pool"
"$dragonmem" dump "$pool" | jq -c '{utilization: .pool.utilization, free_blocks: [.free_blocks[] | select(.count > 0)], allocations: [.allocations[].id]}'

say "Read allocation $data_id back, raw"
show "dragonmem read $pool $data_id --length 21"
"$dragonmem" read "$pool" "$data_id" --length 21

say "Check the pool's invariants"
show "dragonmem check $pool"
"$dragonmem" check "$pool" | jq -c .

say "Free every allocation"
ids=$("$dragonmem" ls "$pool" | jq -r '[.allocations[].id] | join(" ")')
show "dragonmem free $pool $ids"
# shellcheck disable=SC2086 # one argument per id
"$dragonmem" free "$pool" $ids | jq -c '{freed: [.freed[].id]}'
"$dragonmem" ls "$pool" | jq -c '{live: (.allocations | length)}'

say "Destroy the pool"
show "dragonmem destroy $pool"
"$dragonmem" destroy "$pool" | jq -c .

say "Nothing is left in /dev/shm"
if [ -e "/dev/shm/dragonmem.$pool" ]; then
    echo "   left over: /dev/shm/dragonmem.$pool" >&2
    exit 1
fi
echo "   /dev/shm/dragonmem.$pool is gone"
