#!/usr/bin/env bash
# DRAGON_MEMORY_TYPE_HUGEPAGE pools, end to end through the dragonmem CLI (each command
# a separate process): with no hugetlbfs mount, creation is a clear error naming it;
# with one (mounted here in a private mount namespace) and pages reserved here, a pool
# is created backed by huge pages (HugePages_Free drops by its heap's pages), listed by
# `dragonmem ls`, attached by name from other processes that write and read it, and
# destroyed cleanly (object, heap file and pages given back). Too few pages: a clear
# error naming the counts, and nothing left behind.
#
#   tests/hugepage/hugepage_test.sh DRAGONMEM [--bench BENCH_EXE SIZE]
#
# Needs root (it writes /proc/sys/vm/nr_hugepages and mounts hugetlbfs with unshare -m);
# otherwise prints SKIP with the reason and exits 77. Restores nr_hugepages on exit.
set -uo pipefail

dm=${1:?usage: hugepage_test.sh DRAGONMEM [--bench BENCH_EXE SIZE]}
dm=$(realpath "$dm")
bench_exe=""
bench_size=0
if [[ "${2:-}" == "--bench" ]]; then
    bench_exe=$(realpath "${3:?--bench BENCH_EXE SIZE}")
    bench_size=${4:?--bench BENCH_EXE SIZE}
fi

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (reserves huge pages in /proc/sys/vm/nr_hugepages and mounts hugetlbfs)"
grep -qw hugetlbfs /proc/filesystems || skip "the kernel has no hugetlbfs"
command -v unshare >/dev/null || skip "no unshare(1) for a private mount namespace"
command -v jq >/dev/null || skip "no jq"
grep -q 'Hugepagesize:[[:space:]]*2048 kB' /proc/meminfo || skip "the default huge page size is not 2 MiB"
unshare -m true 2>/dev/null || skip "unshare -m is not permitted here"

free_pages() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }

# Pages: 3 for the small pools (a 4 MiB heap is 2), plus the bench's.
want=3
[[ -n "$bench_exe" ]] && want=$((want + bench_size / 2097152))
old_nr=$(cat /proc/sys/vm/nr_hugepages)
restore() { echo "$old_nr" >/proc/sys/vm/nr_hugepages; }
trap restore EXIT
echo $((old_nr + want)) >/proc/sys/vm/nr_hugepages 2>/dev/null || skip "cannot write /proc/sys/vm/nr_hugepages"
got=$(cat /proc/sys/vm/nr_hugepages)
if (( got < old_nr + want )); then
    skip "asked the kernel for $want more huge pages, it gave $((got - old_nr)) (memory too fragmented or too small)"
fi

export DM BENCH_EXE BENCH_SIZE
DM=$dm BENCH_EXE=$bench_exe BENCH_SIZE=$bench_size
# Everything that mounts runs in a private mount namespace: the mount vanishes with it.
unshare -m --propagation private bash -s <<'INNER'
set -uo pipefail
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
free_pages() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }
name="hp$$"
big="hpbig$$"
mnt=$(mktemp -d /tmp/dm-hugetlbfs.XXXXXX)
cleanup() {
    "$DM" destroy "$name" >/dev/null 2>&1
    "$DM" destroy "$big" >/dev/null 2>&1
    rm -f "/dev/shm/dragonmem.$name" "/dev/shm/dragonmem.$big" "$mnt/dragonmem.$name" "$mnt/dragonmem.$big"
    umount "$mnt" 2>/dev/null
    rmdir "$mnt"
}
trap cleanup EXIT

# Hide any hugetlbfs mount this namespace inherited, so "no mount" can be tested.
for m in $(awk '$3 == "hugetlbfs" {print $2}' /proc/self/mounts); do umount "$m" 2>/dev/null; done
if awk '$3 == "hugetlbfs"' /proc/self/mounts | grep -q .; then
    echo "note: a hugetlbfs mount could not be hidden; the no-mount case is not tested"
else
    out=$("$DM" create "$name" --size 4M --mem-type hugepage 2>&1); rc=$?
    if [[ $rc -ne 0 ]] && grep -q 'no hugetlbfs mount with 2 MiB pages' <<<"$out" && [[ ! -e /dev/shm/dragonmem.$name ]]; then
        ok "no hugetlbfs mount: clear error, nothing created"
    else
        fail "no mount: rc $rc, $out"
    fi
fi

mount -t hugetlbfs -o pagesize=2M,mode=1777 none "$mnt" || { echo "FAIL: mount hugetlbfs"; exit 1; }
before=$(free_pages)
out=$("$DM" create "$name" --size 4M --mem-type hugepage 2>&1); rc=$?
if [[ $rc -eq 0 ]] && [[ $(jq -r .pool.mem_type <<<"$out") == hugepage ]] && [[ $(jq -r .pool.size <<<"$out") == 4194304 ]]; then
    ok "created a 4 MiB hugepage pool"
else
    fail "create: rc $rc, $out"
fi
after=$(free_pages)
if (( before - after == 2 )); then ok "its heap took 2 huge pages at creation (HugePages_Free $before -> $after)"
else fail "HugePages_Free $before -> $after, expected 2 fewer"; fi
[[ -f "$mnt/dragonmem.$name" ]] && ok "heap file $mnt/dragonmem.$name" || fail "no heap file in $mnt"

if "$DM" ls | jq -e --arg n "$name" '.pools[] | select(.name == $n and .mem_type == "hugepage")' >/dev/null; then
    ok "dragonmem ls lists it"
else fail "ls does not list it: $("$DM" ls)"; fi

# Attached by name from other processes: one writes, another reads.
id=$("$DM" alloc "$name" --size 3M | jq -r '.allocations[0].id')
data=$(mktemp /tmp/dm-hp-data.XXXXXX)
head -c 3000000 /dev/urandom >"$data"
"$DM" write "$name" "$id" <"$data" >/dev/null || fail "write"
if "$DM" read "$name" "$id" --length 3000000 | cmp -s - "$data"; then ok "written and read back by other processes"
else fail "the bytes read differ from those written"; fi
rm -f "$data"
h1=$("$DM" hash "$name" "$id" | jq -r .hash)
[[ -n "$h1" && "$h1" != null ]] && ok "hash of the allocation: $h1" || fail "hash"
"$DM" check "$name" | jq -e .ok >/dev/null && ok "check: sound" || fail "check"

# Too few pages: a clear error naming the counts; nothing left behind.
free_now=$(free_pages)
out=$("$DM" create "$big" --size $(( (free_now + 2) * 2 ))M --mem-type hugepage 2>&1); rc=$?
if [[ $rc -ne 0 ]] && grep -q 'HugePages_Free' <<<"$out" && [[ ! -e /dev/shm/dragonmem.$big ]] &&
   [[ ! -e $mnt/dragonmem.$big ]] && (( $(free_pages) == free_now )); then
    ok "too few huge pages: clear error ($(jq -r .error.code <<<"$out" 2>/dev/null || echo error)), nothing left behind"
else
    fail "too few pages: rc $rc, $out; left: $(ls /dev/shm/dragonmem.$big $mnt/dragonmem.$big 2>&1)"
fi

out=$("$DM" destroy "$name" 2>&1) || fail "destroy: $out"
if [[ ! -e /dev/shm/dragonmem.$name && ! -e $mnt/dragonmem.$name ]] && (( $(free_pages) == before )); then
    ok "destroyed: object, heap file and huge pages gone (HugePages_Free back to $before)"
else
    fail "after destroy: $(ls -l /dev/shm/dragonmem.$name $mnt/dragonmem.$name 2>&1), HugePages_Free $(free_pages) (was $before)"
fi

# Its heap file removed behind its back: attaching is a clear error, not a crash, and
# destroy --force removes what is left.
"$DM" create "$name" --size 2M --mem-type hugepage >/dev/null || fail "create again"
rm -f "$mnt/dragonmem.$name"
out=$("$DM" ls "$name" 2>&1)
if grep -q "huge-page file .* does not exist" <<<"$out"; then ok "heap file gone: attach says so"
else fail "heap file gone: $out"; fi
"$DM" destroy --force "$name" >/dev/null 2>&1
[[ ! -e /dev/shm/dragonmem.$name ]] && ok "destroy --force removes the rest" || fail "destroy --force left the object"

if [[ -n "$BENCH_EXE" ]]; then
    echo "bench: $BENCH_SIZE B pools"
    "$BENCH_EXE" --size "$BENCH_SIZE" || fail "the bench"
fi
[[ $failures -eq 0 ]] && echo "hugepage: all passed" || echo "hugepage: $failures failed"
exit $((failures > 0))
INNER
rc=$?
exit $rc
