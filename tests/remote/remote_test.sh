#!/usr/bin/env bash
# Off-node reads and writes between two "hosts": two network namespaces joined by a veth
# pair, each with its own POD_UID (so its own hostid). The agent (`dragonmem serve`) runs
# in host A next to the pools; every client runs in host B and holds nothing but
# descriptors serialized in A. tests/README.md ("Two hosts") lists the rows.
#   remote_test.sh DRAGONMEM [RAW_GET [RAW_PUT]]  exit 0 all passed, 1 a failure, 77 SKIP (says why)
# RAW_GET (tests/remote/raw_get.cpp, built with UCX): a raw UCX client with one-sided
# access, which must get no byte of the agent's memory. RAW_PUT (raw_put.cpp): a raw UCT
# TCP peer whose put, with no key or secret, lands in a pool the agent has mapped: one of
# the UCX flaws for which remote access needs DRAGONMEM_REMOTE_TRUSTED_FABRIC=1.
# Needs root, iproute2 and a dragonmem built with UCX. Cleans up its namespaces, its
# agents and its pools whatever happens.
set -u
D=$(realpath "$1")
RAW_GET=${2:+$(realpath "$2")}
RAW_PUT=${3:+$(realpath "$3")}
HERE=$(cd "$(dirname "$0")" && pwd)
TOOL="python3 $HERE/descriptor_tool.py"
TAG=$$
NA=dmrA$TAG NB=dmrB$TAG VA=dmva$TAG VB=dmvb$TAG
HA=remote-test-A-$TAG HB=remote-test-B-$TAG
NET=10.$(( (TAG >> 8) % 200 + 20 )).$(( TAG % 250 ))
IPA=$NET.1 IPB=$NET.2
WORK=$(mktemp -d /tmp/dm_remote.XXXXXX)
POOLS=()
AGENTS=()
failures=0
passes=0

skip() { echo "SKIP: $*"; exit 77; }
ok() { passes=$((passes + 1)); echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }

# `ip netns add` mounts /run/netns on itself the first time; a test that made that mount
# takes it down once no namespace is left in it (in a chroot, a mount left there keeps
# the chroot's root busy after the run).
NETNS_DIR_MOUNTED=$(mountpoint -q /run/netns 2>/dev/null && echo yes)
release_netns_dir() {
  [ -z "$NETNS_DIR_MOUNTED" ] && mountpoint -q /run/netns 2>/dev/null && [ -z "$(ls -A /run/netns)" ] &&
    umount /run/netns 2>/dev/null
  return 0
}

cleanup() {
  for pid in "${AGENTS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for pid in "${AGENTS[@]}"; do wait "$pid" 2>/dev/null; done
  for p in "${POOLS[@]}"; do POD_UID=$HA "$D" destroy "$p" >/dev/null 2>&1; rm -f "/dev/shm/dragonmem.$p"; done
  ip netns del "$NA" 2>/dev/null
  ip netns del "$NB" 2>/dev/null
  release_netns_dir
  rm -rf "$WORK"
}
trap cleanup EXIT

# Host A (the pools' node, no namespace needed to reach /dev/shm) and host B (clients).
# Over UCX's TCP transport. dragonmem uses UCX only with DRAGONMEM_REMOTE_TRUSTED_FABRIC=1
# (these two "hosts" are the only ones on the veth pair); the rows below check that
# without it the agent and the client refuse, saying why, whatever the transport.
TRUST=DRAGONMEM_REMOTE_TRUSTED_FABRIC=1
inA() { ip netns exec "$NA" env POD_UID=$HA UCX_TLS=tcp UCX_NET_DEVICES=$VA $TRUST "$@"; }
inB() { ip netns exec "$NB" env POD_UID=$HB UCX_TLS=tcp UCX_NET_DEVICES=$VB $TRUST "$@"; }
# As inB, without the opt-in.
inB_untrusted() { ip netns exec "$NB" env -u DRAGONMEM_REMOTE_TRUSTED_FABRIC POD_UID=$HB UCX_TLS=tcp UCX_NET_DEVICES=$VB "$@"; }
# new_pool VAR SUFFIX: a unique pool name in VAR, remembered for the cleanup.
new_pool() { printf -v "$1" '%s' "dmr${TAG}_$2"; POOLS+=("dmr${TAG}_$2"); }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
error_code() { python3 -c "import json,sys; print(json.load(open('$1'))['error']['code'])" 2>/dev/null; }

# ---- The secret is never printed by the listing commands (no namespaces needed).
secret_checks() {
  local p s secret out
  new_pool p list
  POD_UID=$HA "$D" create "$p" --size 1M >/dev/null || { bad "secret: create"; return; }
  s=$(POD_UID=$HA "$D" alloc "$p" --size 64 --serialized | json_field 'd["allocations"][0]["serialized"]')
  secret=$($TOOL secret "$s")
  local leaked=0
  for cmd in "ls" "ls $p" "ls $p --serialized" "dump $p" "dump $p --serialized" "info $p" "ls $p --jsonl --serialized"; do
    # shellcheck disable=SC2086
    out=$(POD_UID=$HA "$D" $cmd 2>&1)
    if echo "$out" | grep -qi "$secret"; then leaked=1; echo "  '$cmd' prints the secret in hex"; fi
    # Every descriptor it prints is format 1 (no secret).
    if ! echo "$out" | python3 -c '
import base64, json, sys
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "serialized" and base64.b64decode(x)[4] != 1: sys.exit(1)
            walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
for line in sys.stdin.read().splitlines() if "--jsonl" in sys.argv[1] else [sys.stdin.read()]:
    if line.strip(): walk(json.loads(line))
' "$cmd"; then leaked=1; echo "  '$cmd' prints a descriptor with the secret"; fi
  done
  [ $leaked = 0 ] && ok "secret: ls, dump, info print no secret (their descriptors are format 1)" || bad "secret: leaked"
  # The commands that hand descriptors out print them whole.
  local whole
  whole=$(POD_UID=$HA "$D" serialize "$p" | json_field 'd["serialized"]')
  [ "$($TOOL secret "$whole")" = "$secret" ] && ok "secret: serialize hands out the capability" || bad "secret: serialize"
}
secret_checks

# ---- Two hosts.
[ "$(id -u)" = 0 ] || skip "two-host tests need root (network namespaces)"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
if "$D" serve --listen 127.0.0.1:bad 2>&1 | grep -q "without UCX"; then skip "dragonmem was built without UCX"; fi
# The agent runs on no shared-memory transport (a client's key there names local memory).
if env $TRUST UCX_TLS=tcp,cma "$D" serve --listen 127.0.0.1:0 >/dev/null 2>"$WORK/tls.err"; then bad "serve ran with UCX_TLS=tcp,cma"
else grep -q "UCX_TLS 'tcp,cma' names 'cma'" "$WORK/tls.err" && ok "serve refuses UCX_TLS naming cma" || bad "serve with cma: $(cat "$WORK/tls.err")"; fi
# Without DRAGONMEM_REMOTE_TRUSTED_FABRIC=1 serve refuses, saying why, on every transport
# (TCP, or verbs named in UCX_TLS: UD executes peers' puts too, and UCX's reassembly of
# large messages trusts peers on all of them); a value other than 1 or 0 is named.
untrusted_serve() {  # untrusted_serve ROW CODE MESSAGE_PART [VAR=VALUE...]
  local row=$1 code=$2 part=$3
  shift 3
  if env -u DRAGONMEM_REMOTE_TRUSTED_FABRIC -u UCX_TLS "$@" timeout 20 "$D" serve --listen 127.0.0.1:0 >/dev/null 2>"$WORK/trust.err"; then
    bad "$row: serve ran"
  elif [ "$(error_code "$WORK/trust.err")" = "$code" ] && grep -q -- "$part" "$WORK/trust.err"; then ok "$row: $code"
  else bad "$row: $(cat "$WORK/trust.err")"; fi
}
for tls in "" tcp "rc,ud" "ud_verbs"; do
  untrusted_serve "serve refuses without DRAGONMEM_REMOTE_TRUSTED_FABRIC (UCX_TLS='$tls')" DRAGON_INVALID_OPERATION \
    "for trusted fabrics only.*DRAGONMEM_REMOTE_TRUSTED_FABRIC=1" ${tls:+UCX_TLS=$tls}
done
untrusted_serve "serve refuses DRAGONMEM_REMOTE_TRUSTED_FABRIC=yes, naming it" DRAGON_INVALID_ARGUMENT \
  "DRAGONMEM_REMOTE_TRUSTED_FABRIC='yes'" DRAGONMEM_REMOTE_TRUSTED_FABRIC=yes
ip netns add "$NA" 2>"$WORK/netns.err" || skip "cannot create network namespaces: $(cat "$WORK/netns.err")"
ip netns add "$NB" || skip "cannot create a second network namespace"
ip link add "$VA" type veth peer name "$VB" 2>"$WORK/veth.err" || skip "cannot create a veth pair: $(cat "$WORK/veth.err")"
ip link set "$VA" netns "$NA" && ip link set "$VB" netns "$NB" &&
ip -n "$NA" addr add "$IPA/24" dev "$VA" && ip -n "$NB" addr add "$IPB/24" dev "$VB" &&
ip -n "$NA" link set lo up && ip -n "$NB" link set lo up &&
ip -n "$NA" link set "$VA" up && ip -n "$NB" link set "$VB" up || skip "cannot configure the veth pair"

# start_agent LOGFILE [PORT] [setpriv args...]: starts an agent in A, sets AGENT_PID and PORT.
start_agent() {
  local log=$1 port=${2:-0}
  shift 2 2>/dev/null || shift
  # exec all the way down: $! is the agent itself, which the fault rows kill.
  (exec ip netns exec "$NA" env POD_UID=$HA UCX_TLS=tcp UCX_NET_DEVICES=$VA $TRUST "$@" "$D" serve --listen "$IPA:$port" \
     >"$log" 2>&1) &
  AGENT_PID=$!
  AGENTS+=("$AGENT_PID")
  for _ in $(seq 1 600); do  # up to 60 s: a sanitized agent on a loaded machine starts slowly
    grep -q listening "$log" 2>/dev/null && break
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  PORT=$(grep -m1 '^{"listening"' "$log" | json_field 'd["listening"].rsplit(":",1)[1]' 2>/dev/null)
  [ -n "$PORT" ] || { echo "agent did not start:"; cat "$log"; exit 1; }
}

start_agent "$WORK/agent1.log" 0
AGENT="$IPA:$PORT"
AGENT_PORT=$PORT
echo "agent in $NA at $AGENT (pid $AGENT_PID); clients in $NB"

new_pool P1 data
POD_UID=$HA "$D" create "$P1" --size 16M >/dev/null
S1=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P1" --size 1M --serialized | json_field 'd["allocations"][0]["serialized"]')
ID1=$(POD_UID=$HA "$D" ls "$P1" | json_field 'd["allocations"][0]["id"]')
[ "$($TOOL agent "$S1")" = "$AGENT" ] && ok "the descriptor names the agent ($AGENT)" || bad "descriptor agent"

# ---- Happy path: B writes, A sees it locally; B reads it back; ranges.
head -c 1048576 /dev/urandom >"$WORK/data"
head -c 67108864 /dev/zero >"$WORK/zeros"
if inB timeout 60 "$D" write --serial "$S1" --timeout 10 <"$WORK/data" >"$WORK/w.json" 2>"$WORK/w.err"; then
  POD_UID=$HA "$D" read "$P1" "$ID1" >"$WORK/local"
  cmp -s "$WORK/data" "$WORK/local" && ok "B writes 1 MiB; A reads the same bytes locally" || bad "remote write: bytes differ"
else bad "remote write: $(cat "$WORK/w.err")"; fi
inB timeout 60 "$D" read --serial "$S1" --timeout 10 >"$WORK/back" 2>"$WORK/r.err"
cmp -s "$WORK/data" "$WORK/back" && ok "B reads 1 MiB" || bad "remote read: $(cat "$WORK/r.err")"
inB timeout 60 "$D" read --serial "$S1" --offset 1000 --length 100 --timeout 10 >"$WORK/part" 2>/dev/null
cmp -s "$WORK/part" <(tail -c +1001 "$WORK/data" | head -c 100) && ok "B reads bytes [1000, 1100)" || bad "remote range read"
# The client without the opt-in: refused before anything is sent, saying why.
inB_untrusted timeout 60 "$D" read --serial "$S1" --timeout 10 >"$WORK/untrusted" 2>"$WORK/err"
if [ "$(error_code "$WORK/err")" = DRAGON_INVALID_OPERATION ] && grep -q "DRAGONMEM_REMOTE_TRUSTED_FABRIC=1" "$WORK/err" && [ ! -s "$WORK/untrusted" ]
then ok "a client without DRAGONMEM_REMOTE_TRUSTED_FABRIC refuses: DRAGON_INVALID_OPERATION"
else bad "client without the opt-in: $(cat "$WORK/err")"; fi

# The agent backs a range for remote writes once (MADV_POPULATE_WRITE walks every page
# each time otherwise): 1 MiB written twice, one "backed" event, the bytes right.
new_pool PW backing
POD_UID=$HA "$D" create "$PW" --size 4M >/dev/null
SW=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$PW" --size 1M --serialized | json_field 'd["allocations"][0]["serialized"]')
inB timeout 60 "$D" write --serial "$SW" --timeout 10 <"$WORK/data" >/dev/null 2>"$WORK/err" &&
  inB timeout 60 "$D" write --serial "$SW" --timeout 10 <"$WORK/data" >/dev/null 2>>"$WORK/err" || bad "backing: write: $(cat "$WORK/err")"
backed=$(grep -c "backed [0-9]* B of pool '$PW'" "$WORK/agent1.log")
POD_UID=$HA "$D" read "$PW" "$($TOOL field "$SW" id)" | cmp -s - "$WORK/data" && [ "$backed" = 1 ] &&
  ok "a range is backed for remote writes once: $(grep -m1 "backed [0-9]* B of pool '$PW'" "$WORK/agent1.log" | json_field 'd["event"]')" ||
  bad "backing: $backed backed events for two writes of the same range"

# seconds_since START: seconds (3 decimals) since START, a `date +%s.%N` (awk: bc is not
# in a minimal Debian).
seconds_since() { awk -v now="$(date +%s.%N)" -v start="$1" 'BEGIN { printf "%.3f", now - start }'; }

# check_refused NAME EXPECTED_CODE MESSAGE_PART: the last client call's error.
check_refused() {
  local code
  code=$(error_code "$WORK/err")
  if [ "$code" = "$2" ] && grep -q -- "$3" "$WORK/err"; then ok "$1: $code"
  else bad "$1: expected $2 ('$3'), got: $(cat "$WORK/err")"; fi
}

# ---- A raw UCX client with one-sided access (RMA) gets nothing of the agent's memory:
# the agent's UCX has no RMA (over TCP, UCX 1.13 would serve any address without a key
# check). The control shows the probe reads when the peer offers RMA.
if [ -n "$RAW_GET" ]; then
  # The probe exits with its UCX objects alive on purpose: in a sanitizer build, its
  # leaks are not the library's and must not change its exit status.
  RAW_ENV="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  if inB env UCX_NET_DEVICES=all "$RAW_ENV" "$RAW_GET" --control >"$WORK/raw.control" 2>&1; then bad "raw get control: no bytes from its own listener: $(cat "$WORK/raw.control")"
  elif [ $? = 1 ] && grep -q "BYTES came back.*raw_get control" "$WORK/raw.control"; then ok "raw get control: a peer with RMA gives bytes"
  else bad "raw get control: $(cat "$WORK/raw.control")"; fi
  ELF=0x$(grep -m1 "$(basename "$D")" "/proc/$AGENT_PID/maps" | cut -d- -f1)
  inB env "$RAW_ENV" timeout 60 "$RAW_GET" "$IPA" "$AGENT_PORT" "$ELF" >"$WORK/raw.out" 2>&1
  rc=$?
  if [ $rc = 0 ] && grep -q "^no bytes" "$WORK/raw.out"; then ok "raw ucp_get_nbx of the agent's ELF header ($ELF): $(cat "$WORK/raw.out")"
  else bad "raw ucp_get_nbx at $ELF: rc $rc: $(cat "$WORK/raw.out")"; fi
  kill -0 "$AGENT_PID" 2>/dev/null && inB timeout 60 "$D" read --serial "$S1" --timeout 10 | cmp -s - "$WORK/data" &&
    ok "after the raw get the agent is alive and serves" || bad "agent died or stopped serving after the raw get"
else echo "skip the raw get rows: no RAW_GET program given"; fi

# ---- Why remote access needs DRAGONMEM_REMOTE_TRUSTED_FABRIC=1: a raw UCT peer in B, presenting no
# secret and no key, connects to the TCP interface port of the agent's UCX worker (the
# port next to its listener) and puts 64 bytes at the address where the agent maps an
# allocation of a pool it serves. UCX 1.13 copies them there. If this row fails because
# the bytes no longer land, UCX was fixed: README.md, "Trusted fabric", must change.
if [ -n "$RAW_PUT" ]; then
  new_pool PP put
  POD_UID=$HA "$D" create "$PP" --size 1M >/dev/null
  SP=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$PP" --size 4096 --serialized | json_field 'd["allocations"][0]["serialized"]')
  IDP=$($TOOL field "$SP" id)
  head -c 4096 /dev/urandom >"$WORK/put.before"
  POD_UID=$HA "$D" write "$PP" "$IDP" <"$WORK/put.before" >/dev/null
  inB timeout 60 "$D" read --serial "$SP" --timeout 10 >/dev/null 2>&1 || bad "raw put: the agent did not serve $PP"
  # Where the allocation lies in the pool's object, and where the agent maps that.
  TARGET=$(python3 - "/dev/shm/dragonmem.$PP" "$WORK/put.before" "/proc/$AGENT_PID/maps" <<'PY'
import sys
obj, pattern, maps = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(), sys.argv[3]
at = obj.find(pattern)
for line in open(maps):
    f = line.split()
    # By the object's name: the agent runs in another mount namespace (ip netns exec), so
    # its maps name the object from that namespace's root, which is not ours in a chroot.
    if at >= 0 and len(f) >= 6 and f[5].endswith('/' + sys.argv[1].rsplit('/', 1)[1]):
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        off = int(f[2], 16)
        if off <= at < off + hi - lo:
            print(hex(lo + at - off)); break
PY
)
  IFPORT=$(ip netns exec "$NA" ss -Htlnp | grep "pid=$AGENT_PID," | awk '{print $4}' | sed 's/.*://' | grep -vx "$AGENT_PORT" | head -1)
  if [ -z "$TARGET" ] || [ -z "$IFPORT" ]; then bad "raw put: no target ($TARGET) or interface port ($IFPORT) found"
  else
    inB env ASAN_OPTIONS=detect_leaks=0 timeout 60 "$RAW_PUT" "$VB" "$IPA" "$IFPORT" "$TARGET" >"$WORK/put.out" 2>&1
    rc=$?
    POD_UID=$HA "$D" read "$PP" "$IDP" >"$WORK/put.after"
    if [ $rc = 1 ] && head -c 55 "$WORK/put.after" | grep -q "raw_put: written by a peer with no secret, over UCX TCP"; then
      ok "UCX's TCP hole: a raw UCT peer with no secret put 64 B into pool $PP at $TARGET through the agent's TCP port $IFPORT (why UCX needs DRAGONMEM_REMOTE_TRUSTED_FABRIC=1)"
    else bad "raw put at $TARGET (port $IFPORT): rc $rc: $(cat "$WORK/put.out"); the pool's bytes $(cmp -s "$WORK/put.before" "$WORK/put.after" && echo unchanged || echo changed)"; fi
  fi
  kill -0 "$AGENT_PID" 2>/dev/null && inB timeout 60 "$D" read --serial "$S1" --timeout 10 | cmp -s - "$WORK/data" &&
    ok "after the raw put the agent is alive and serves" || bad "agent died or stopped serving after the raw put"
else echo "skip the raw put rows: no RAW_PUT program given"; fi

# ---- Forged: a wrong secret. Nothing is read, nothing written.
FORGED=$($TOOL forge "$S1" flip_secret=1)
inB timeout 60 "$D" read --serial "$FORGED" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "forged secret, read" DRAGON_INVALID_ARGUMENT "secret presented"
head -c 100 /dev/zero | inB timeout 60 "$D" write --serial "$FORGED" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "forged secret, write" DRAGON_INVALID_ARGUMENT "secret presented"
POD_UID=$HA "$D" read "$P1" "$ID1" | cmp -s - "$WORK/data" && ok "forged write changed nothing" || bad "forged write changed the allocation"

# A forged request for a pool nobody has been granted yet: refused before the agent
# registers (pins, on RDMA) anything of that pool.
new_pool P0 unasked
POD_UID=$HA "$D" create "$P0" --size 1M >/dev/null
S0=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P0" --size 4096 --serialized | json_field 'd["allocations"][0]["serialized"]')
inB timeout 60 "$D" read --serial "$($TOOL forge "$S0" flip_secret=1)" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "forged secret, first request for its pool" DRAGON_INVALID_ARGUMENT "secret presented"
if grep -q "attached pool '$P0'" "$WORK/agent1.log"; then bad "a forged request made the agent register pool $P0"
else ok "a forged request registers nothing"; fi

# ---- Out of bounds: a descriptor claiming more than the allocation holds. The next
# allocation (N, right after the 1 MiB one in the heap) is neither read nor written.
SN=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P1" --size 1M --serialized | json_field 'd["allocations"][0]["serialized"]')
IDN=$($TOOL field "$SN" id)
head -c 1048576 /dev/urandom >"$WORK/neighbour"
POD_UID=$HA "$D" write "$P1" "$IDN" <"$WORK/neighbour" >/dev/null
POD_UID=$HA "$D" ls "$P1" >"$WORK/ls.before"
BIG=$($TOOL forge "$S1" requested=2097152 view_bytes=2097152)
inB timeout 60 "$D" read --serial "$BIG" --offset 1M --length 4096 --timeout 10 >"$WORK/oob" 2>"$WORK/err"
check_refused "out of bounds read (forged size)" DRAGON_INVALID_ARGUMENT "outside allocation"
[ ! -s "$WORK/oob" ] && ok "out of bounds read: no byte of the next allocation came back" || bad "out of bounds read returned bytes"
head -c 4096 /dev/zero | inB timeout 60 "$D" write --serial "$BIG" --offset 1M --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "out of bounds write (forged size)" DRAGON_INVALID_ARGUMENT "outside allocation"
POD_UID=$HA "$D" read "$P1" "$IDN" | cmp -s - "$WORK/neighbour" && POD_UID=$HA "$D" ls "$P1" | cmp -s - "$WORK/ls.before" &&
  ok "out of bounds write: the next allocation and the pool are unchanged" || bad "out of bounds write changed the pool"

# ---- Outside the heap: a descriptor whose view starts near the heap's end (16 MiB
# claimed; the allocation is not at offset 0): refused, the agent alive and serving.
FAR=$($TOOL forge "$SN" requested=16777216 view_offset=16773120 view_bytes=4096)
inB timeout 60 "$D" read --serial "$FAR" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "a range past the heap's end, read" DRAGON_INVALID_ARGUMENT "outside allocation"
head -c 4096 /dev/zero | inB timeout 60 "$D" write --serial "$FAR" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "a range past the heap's end, write" DRAGON_INVALID_ARGUMENT "outside allocation"
kill -0 "$AGENT_PID" 2>/dev/null && inB timeout 60 "$D" read --serial "$S1" --timeout 10 | cmp -s - "$WORK/data" &&
  ok "after requests outside the heap the agent is alive and serves" || bad "agent died or stopped serving"

# ---- Stale: a freed allocation.
S2=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P1" --size 4096 --serialized | json_field 'd["allocations"][0]["serialized"]')
inB timeout 60 "$D" read --serial "$S2" --timeout 10 >/dev/null 2>&1 || bad "read before free"
POD_UID=$HA "$D" free --serial "$S2" >/dev/null
inB timeout 60 "$D" read --serial "$S2" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "stale: freed allocation" DRAGON_KEY_NOT_FOUND "is not live"
# Its block given to a new allocation: the old descriptor reaches none of its bytes.
S2B=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P1" --size 4096 --serialized | json_field 'd["allocations"][0]["serialized"]')
if [ "$($TOOL field "$S2B" block_offset)" = "$($TOOL field "$S2" block_offset)" ]; then
  head -c 4096 /dev/urandom >"$WORK/reused"
  POD_UID=$HA "$D" write "$P1" "$($TOOL field "$S2B" id)" <"$WORK/reused" >/dev/null
  inB timeout 60 "$D" read --serial "$S2" --timeout 10 >"$WORK/stale" 2>"$WORK/err"
  check_refused "stale: block reused, read" DRAGON_KEY_NOT_FOUND "is not live"
  [ ! -s "$WORK/stale" ] || bad "stale read returned bytes"
  head -c 4096 /dev/zero | inB timeout 60 "$D" write --serial "$S2" --timeout 10 >/dev/null 2>"$WORK/err"
  check_refused "stale: block reused, write" DRAGON_KEY_NOT_FOUND "is not live"
  POD_UID=$HA "$D" read "$P1" "$($TOOL field "$S2B" id)" | cmp -s - "$WORK/reused" &&
    ok "stale: the new allocation's bytes are unchanged" || bad "a stale write changed the new allocation"
else bad "stale: the new allocation did not reuse the freed block (the row tests nothing)"; fi

# ---- Stale: a destroyed pool, then a new pool of the same name.
new_pool P2 gone
POD_UID=$HA "$D" create "$P2" --size 1M >/dev/null
S3=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P2" --size 4096 --serialized | json_field 'd["allocations"][0]["serialized"]')
inB timeout 60 "$D" read --serial "$S3" --timeout 10 >/dev/null 2>&1 || bad "read before destroy"
POD_UID=$HA "$D" destroy "$P2" >/dev/null
sleep 0.5  # the agent's revocation check runs every 200 ms
inB timeout 60 "$D" read --serial "$S3" --timeout 10 >/dev/null 2>"$WORK/err"
code=$(error_code "$WORK/err")
case $code in DRAGON_MEMORY_ERRNO | DRAGON_OBJECT_DESTROYED) ok "destroyed pool: $code" ;; *) bad "destroyed pool: $(cat "$WORK/err")" ;; esac
POD_UID=$HA "$D" create "$P2" --size 1M >/dev/null
POD_UID=$HA "$D" alloc "$P2" --size 4096 >/dev/null
inB timeout 60 "$D" read --serial "$S3" --timeout 10 >/dev/null 2>"$WORK/err"
check_refused "pool destroyed and made again" DRAGON_OBJECT_DESTROYED "destroyed"
grep -q "dropped pool '$P2'" "$WORK/agent1.log" && ok "the agent dropped the destroyed pool" || bad "no drop logged"

# ---- The agent's uid must be able to open the pool.
new_pool P3 private
POD_UID=$HA "$D" create "$P3" --size 1M --mode 0600 >/dev/null
if command -v setpriv >/dev/null; then
  start_agent "$WORK/agent_nobody.log" 0 setpriv --reuid=65534 --regid=65534 --clear-groups
  S4=$(POD_UID=$HA DRAGONMEM_AGENT=$IPA:$PORT "$D" alloc "$P3" --size 64 --serialized | json_field 'd["allocations"][0]["serialized"]')
  inB timeout 60 "$D" read --serial "$S4" --timeout 10 >/dev/null 2>"$WORK/err"
  check_refused "a pool the agent's uid may not open" DRAGON_MEMORY_ERRNO "ermission denied"
  # A pool it may read but not attach (0644, root's): a forged request is refused for its
  # secret, read from the header without attaching; a true one fails at the attach.
  new_pool P3R readable
  POD_UID=$HA "$D" create "$P3R" --size 1M --mode 0644 >/dev/null
  S4R=$(POD_UID=$HA DRAGONMEM_AGENT=$IPA:$PORT "$D" alloc "$P3R" --size 64 --serialized | json_field 'd["allocations"][0]["serialized"]')
  inB timeout 60 "$D" read --serial "$($TOOL forge "$S4R" flip_secret=1)" --timeout 10 >/dev/null 2>"$WORK/err"
  check_refused "forged secret checked before attaching (a pool it may read, not attach)" DRAGON_INVALID_ARGUMENT "secret presented"
  inB timeout 60 "$D" read --serial "$S4R" --timeout 10 >/dev/null 2>"$WORK/err"
  check_refused "the true secret for that pool: the attach is refused" DRAGON_MEMORY_ERRNO "ermission denied"
  kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
else echo "skip the other-uid row: no setpriv"; fi

# ---- A pool destroyed while remote reads run: each read succeeds whole or fails
# clearly, reads after it fail, and the agent survives.
new_pool P5 busy
POD_UID=$HA "$D" create "$P5" --size 64M >/dev/null
S5=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P5" --size 32M --serialized | json_field 'd["allocations"][0]["serialized"]')
( for i in $(seq 1 40); do
    inB timeout 60 "$D" read --serial "$S5" --timeout 10 >"$WORK/busy.$i" 2>"$WORK/busy.$i.err"
    echo "$i $?" >>"$WORK/busy.rc"
  done ) &
LOOP=$!
sleep 1.5
POD_UID=$HA "$D" destroy "$P5" >/dev/null
wait $LOOP
sane=1
while read -r i rc; do
  if [ "$rc" = 0 ]; then [ "$(stat -c %s "$WORK/busy.$i")" = 33554432 ] || sane=0
  else case $(error_code "$WORK/busy.$i.err") in DRAGON_FAILURE | DRAGON_MEMORY_ERRNO | DRAGON_OBJECT_DESTROYED | DRAGON_KEY_NOT_FOUND) ;; *) sane=0; cat "$WORK/busy.$i.err" ;; esac; fi
done <"$WORK/busy.rc"
last_rc=$(tail -1 "$WORK/busy.rc" | cut -d' ' -f2)
[ $sane = 1 ] && [ "$last_rc" != 0 ] && ok "pool destroyed during reads: $(grep -c ' 0$' "$WORK/busy.rc") whole, $(grep -vc ' 0$' "$WORK/busy.rc") clear errors" || bad "pool destroyed during reads"
kill -0 "${AGENTS[0]}" 2>/dev/null && inB timeout 60 "$D" read --serial "$S1" --timeout 10 | cmp -s - "$WORK/data" && ok "the agent survived and still serves" || bad "agent died or stopped serving"

# ---- The agent stopped (SIGSTOP) mid-transfer: TIMEOUT within the call's timeout (a
# little slack for a loaded machine), never a hang; continued, it serves again.
new_pool P7 stopped
POD_UID=$HA "$D" create "$P7" --size 128M >/dev/null
S7=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P7" --size 64M --serialized | json_field 'd["allocations"][0]["serialized"]')
for direction in read write; do
  rm -f "$WORK/stop.rc"
  ( for i in $(seq 1 100); do
      start=$(date +%s.%N)
      if [ $direction = read ]; then inB timeout 60 "$D" read --serial "$S7" --timeout 2 >/dev/null 2>"$WORK/stop.err"
      else inB timeout 60 "$D" write --serial "$S7" --timeout 2 <"$WORK/zeros" >/dev/null 2>"$WORK/stop.err"; fi
      rc=$?
      echo "$rc $(seconds_since "$start")" >"$WORK/stop.rc"
      [ $rc != 0 ] && break
    done ) &
  LOOP=$!
  sleep "1.$((RANDOM % 10))"
  kill -STOP "${AGENTS[0]}"
  wait $LOOP
  kill -CONT "${AGENTS[0]}"
  read -r rc seconds <"$WORK/stop.rc"
  code=$(error_code "$WORK/stop.err")
  # A failure bound, not a figure: the call's 2 s plus the client process's start and
  # exit (under ASan, on a loaded machine), short of the 20 s a timeout read in the wrong
  # unit would take; a hang would be stopped by `timeout 60`.
  if [ "$code" = DRAGON_TIMEOUT ] && awk -v s="$seconds" 'BEGIN { exit !(s < 10) }'; then ok "agent stopped mid-$direction: $code after ${seconds}s (timeout 2 s)"
  else bad "agent stopped mid-$direction: rc $rc after ${seconds}s: $(cat "$WORK/stop.err")"; fi
  inB timeout 60 "$D" read --serial "$S1" --timeout 10 | cmp -s - "$WORK/data" && ok "continued, the agent serves again" ||
    bad "after SIGCONT the agent does not serve"
done

# ---- The agent killed mid-transfer: an error within the timeout, never a hang, and the
# client never aborts. REMOTE_KILL_ROUNDS (default 2) rounds, reads and writes in turn,
# the agent restarted on its port after each.
new_pool P6 kill
POD_UID=$HA "$D" create "$P6" --size 128M >/dev/null
S6=$(POD_UID=$HA DRAGONMEM_AGENT=$AGENT "$D" alloc "$P6" --size 64M --serialized | json_field 'd["allocations"][0]["serialized"]')
kill_round() {  # kill_round N read|write
  rm -f "$WORK/kill.rc"
  ( for i in $(seq 1 100); do
      start=$(date +%s.%N)
      if [ "$2" = read ]; then inB timeout 60 "$D" read --serial "$S6" --timeout 5 >/dev/null 2>"$WORK/kill.err"
      else inB timeout 60 "$D" write --serial "$S6" --timeout 5 <"$WORK/zeros" >/dev/null 2>"$WORK/kill.err"; fi
      rc=$?
      echo "$rc $(seconds_since "$start")" >"$WORK/kill.rc"
      [ $rc != 0 ] && break
    done ) &
  local loop=$!
  sleep "1.$((RANDOM % 10))"
  kill -9 "$AGENT_PID"
  wait "$AGENT_PID" 2>/dev/null
  wait $loop
  local rc seconds code
  read -r rc seconds <"$WORK/kill.rc"
  code=$(error_code "$WORK/kill.err")
  # 124: timeout(1) ended it (a hang); 134: SIGABRT (UCX aborted the client).
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$rc" -lt 128 ] && { [ "$code" = DRAGON_FAILURE ] || [ "$code" = DRAGON_TIMEOUT ]; }; then
    ok "agent killed mid-$2 (round $1): $code after ${seconds}s (timeout 5 s)"
  else bad "agent killed mid-$2 (round $1): rc $rc after ${seconds}s: $(cat "$WORK/kill.err")"; fi
  start_agent "$WORK/agent_r$1.log" "$AGENT_PORT"
}
AGENT_PID=${AGENTS[0]}
for round in $(seq 1 "${REMOTE_KILL_ROUNDS:-2}"); do
  if [ $((round % 2)) = 1 ]; then kill_round "$round" read; else kill_round "$round" write; fi
done

# ---- The agent restarted on its port (by the last round): the same descriptors work again.
inB timeout 60 "$D" read --serial "$S1" --timeout 10 >"$WORK/again" 2>"$WORK/err"
cmp -s "$WORK/again" "$WORK/data" && ok "agent restarted: the old descriptor reads again" || bad "after restart: $(cat "$WORK/err")"

echo "$passes passed, $failures failed"
[ $failures = 0 ]
