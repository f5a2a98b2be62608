#!/usr/bin/env bash
# Remote read/write bandwidth (64 KiB ... 64 MiB) and 8 B read latency of dragonmem across
# a veth pair between two network namespaces, next to ucx_perftest (ucp_get, ucp_put_bw)
# on the same link in the same run, and ucp_am_bw (active messages, what dragonmem's
# transfers are made of), then a Markdown table (README.md, "Off-node data").
#   bench/remote_bench.sh BUILD_DIR [SECONDS_PER_SIZE]     (root; ucx-utils for ucx_perftest)
# Both sides use UCX_TLS=tcp on the veth devices: the two namespaces share one kernel,
# and without it UCX would take shared memory and never touch the link. Everything here
# (dragonmem's agent and client, both ucx_perftest sides) runs with
# UCX_TCP_TX_SEG_SIZE=64K, which `dragonmem serve` sets for itself, and dragonmem's with
# DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 (only these two namespaces are on the link).
set -eu
BUILD=$(realpath "$1")
BUDGET=${2:-1}
D=$BUILD/tools/dragonmem
BENCH=$BUILD/bench/dragonmem-remote-bench
[ -x "$BENCH" ] || { echo "no $BENCH (configure with -Dbench=true and UCX)" >&2; exit 1; }
command -v ucx_perftest >/dev/null || { echo "ucx_perftest not found (apt install ucx-utils)" >&2; exit 1; }
TAG=$$
NA=dmbA$TAG NB=dmbB$TAG VA=dmba$TAG VB=dmbb$TAG
IPA=10.251.$((TAG % 250)).1 IPB=10.251.$((TAG % 250)).2
POOL=dmbench$TAG
OUT=$(mktemp -d /tmp/dm_remote_bench.XXXXXX)
AGENT_PID=
# /run/netns, mounted by the first `ip netns add`, is taken down again if this run made it
# and left it empty (tests/remote/remote_test.sh says why).
NETNS_DIR_MOUNTED=$(mountpoint -q /run/netns 2>/dev/null && echo yes)
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  POD_UID=benchA "$D" destroy "$POOL" >/dev/null 2>&1 || true
  ip netns del "$NA" 2>/dev/null || true
  ip netns del "$NB" 2>/dev/null || true
  if [ -z "$NETNS_DIR_MOUNTED" ] && mountpoint -q /run/netns 2>/dev/null && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns 2>/dev/null || true
  fi
  rm -rf "$OUT"
}
trap cleanup EXIT
ip netns add "$NA"; ip netns add "$NB"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NA"; ip link set "$VB" netns "$NB"
ip -n "$NA" addr add "$IPA/24" dev "$VA"; ip -n "$NB" addr add "$IPB/24" dev "$VB"
for ns in "$NA" "$NB"; do ip -n "$ns" link set lo up; done
ip -n "$NA" link set "$VA" up; ip -n "$NB" link set "$VB" up
inA() { ip netns exec "$NA" env POD_UID=benchA DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 UCX_TLS=tcp UCX_NET_DEVICES=$VA UCX_TCP_TX_SEG_SIZE=64K "$@"; }
inB() { ip netns exec "$NB" env POD_UID=benchB DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 UCX_TLS=tcp UCX_NET_DEVICES=$VB UCX_TCP_TX_SEG_SIZE=64K "$@"; }

(exec ip netns exec "$NA" env POD_UID=benchA DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 UCX_TLS=tcp UCX_NET_DEVICES=$VA "$D" serve --listen "$IPA:0" --quiet \
   >"$OUT/agent.log" 2>&1) &
AGENT_PID=$!
for _ in $(seq 1 100); do grep -q listening "$OUT/agent.log" && break; sleep 0.1; done
AGENT=$(grep -m1 '^{"listening"' "$OUT/agent.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["listening"])')
POD_UID=benchA "$D" create "$POOL" --size 128M >/dev/null
SERIAL=$(POD_UID=benchA DRAGONMEM_AGENT=$AGENT "$D" alloc "$POOL" --size 64M --serialized |
         python3 -c 'import json,sys; print(json.load(sys.stdin)["allocations"][0]["serialized"])')

# The agent's minor page faults over dragonmem's run (field 10 of /proc/PID/stat; $AGENT_PID
# is the agent itself: exec all the way down), printed per MiB moved below the table.
minflt() { awk '{ print $10 }' "/proc/$AGENT_PID/stat"; }
FAULTS_BEFORE=$(minflt)
inB "$BENCH" "$SERIAL" "$BUDGET" | tee "$OUT/dragonmem.jsonl" >&2
echo $(( $(minflt) - FAULTS_BEFORE )) >"$OUT/agent_faults"

# perftest TEST SIZE ITERATIONS: the Final line's fields (server in A, client in B).
perftest() {
  local port=$((20000 + RANDOM % 20000))
  (exec ip netns exec "$NA" env UCX_TLS=tcp UCX_NET_DEVICES=$VA UCX_TCP_TX_SEG_SIZE=64K timeout 120 ucx_perftest -p "$port" >/dev/null 2>&1) &
  local server=$!
  sleep 0.5
  inB timeout 120 ucx_perftest "$IPA" -p "$port" -t "$1" -s "$2" -n "$3" 2>/dev/null | grep '^Final:' || true
  wait "$server" 2>/dev/null || true
}
for size in 65536 262144 1048576 4194304 16777216 67108864; do
  iterations=$(( 268435456 / size )); [ $iterations -gt 2000 ] && iterations=2000; [ $iterations -lt 8 ] && iterations=8
  for t in ucp_get ucp_put_bw ucp_am_bw; do
    echo "$t $size $(perftest "$t" "$size" "$iterations")" | tee -a "$OUT/perftest.txt" >&2
  done
done
echo "ucp_get 8 $(perftest ucp_get 8 20000)" | tee -a "$OUT/perftest.txt" >&2
echo "ucp_am_lat 8 $(perftest ucp_am_lat 8 20000)" | tee -a "$OUT/perftest.txt" >&2

python3 - "$OUT/dragonmem.jsonl" "$OUT/perftest.txt" "$OUT/agent_faults" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
perf = {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) >= 11 and f[2] == "Final:":
        # Final: iterations p50 avg overall bw_avg bw_overall ...
        perf[(f[0], int(f[1]))] = {"p50_us": float(f[4]), "mib_per_s": float(f[8])}
def size(b):
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB"
print("| size | read (dragonmem) | ucp_get (perftest) | read/get | write (dragonmem) | ucp_put_bw (perftest) | write/put "
      "| ucp_am_bw (perftest) | read/am | write/am |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in [o for o in ours if o["op"] == "read"]:
    w = next(o for o in ours if o["op"] == "write" and o["bytes"] == r["bytes"])
    g = perf.get(("ucp_get", r["bytes"]), {}).get("mib_per_s")
    p = perf.get(("ucp_put_bw", r["bytes"]), {}).get("mib_per_s")
    a = perf.get(("ucp_am_bw", r["bytes"]), {}).get("mib_per_s")
    ratio = lambda a, b: f"{100 * a / b:.0f} %" if b else "n/a"
    print(f"| {size(r['bytes'])} | {r['mib_per_s']:.0f} MiB/s | {g or 0:.0f} MiB/s | {ratio(r['mib_per_s'], g)} "
          f"| {w['mib_per_s']:.0f} MiB/s | {p or 0:.0f} MiB/s | {ratio(w['mib_per_s'], p)} "
          f"| {a or 0:.0f} MiB/s | {ratio(r['mib_per_s'], a)} | {ratio(w['mib_per_s'], a)} |")
lat = next(o for o in ours if o["op"] == "read_latency")
g8 = perf.get(("ucp_get", 8), {}).get("p50_us")
a8 = perf.get(("ucp_am_lat", 8), {}).get("p50_us")
print()
print(f"8 B read: dragonmem median {lat['median_us']:.1f} us (p90 {lat['p90_us']:.1f} us); "
      f"ucp_get 8 B median {g8 if g8 is not None else 'n/a'} us; "
      f"ucp_am_lat 8 B median {a8 if a8 is not None else 'n/a'} us (one way: half a ping-pong)")
faults = int(open(sys.argv[3]).read())
moved = sum(o["bytes"] * (o["iterations"] + 1) for o in ours if o["op"] in ("read", "write")) / 2**20
print(f"agent: {faults} minor page faults while dragonmem moved {moved:.0f} MiB ({faults / moved:.2f} per MiB)")
PY
