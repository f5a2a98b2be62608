#!/usr/bin/env bash
# Runs every test: the normal build (warnings are errors here), clang-tidy over lib/ and
# tools/ (.clang-tidy), the same suite under AddressSanitizer + UndefinedBehaviorSanitizer,
# the threaded stress under ThreadSanitizer and a short fuzz run (clang). Prints per-suite
# results, then one line "N passed, N failed" (test cases).
set -uo pipefail
cd "$(dirname "$0")/.."
long=false
[ "${DRAGONMEM_LONG_TESTS:-0}" = 1 ] && long=true

# shellcheck source=scripts/quietly.sh
. scripts/quietly.sh
configure() {  # dir, extra meson args...; TARGETS (if set) limits what is built
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || quietly meson setup "$dir" "$@" || return 1
  # shellcheck disable=SC2086
  quietly ninja -C "$dir" ${TARGETS:-} || return 1
}

logs=()
status=0
# Each phase's wall time goes to the output ("--- build: 190 s"): CI's time budget is
# the sum, and this says where it goes.
phase_start=$SECONDS
lap() { echo "--- $1: $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }
# Two tests at a time (the CI machine has 2 cores): the suite must pass under load anyway.
jobs=${DRAGONMEM_TEST_JOBS:-2}
run_suite() {  # label, dir, meson test args...
  local label=$1 dir=$2; shift 2
  echo "=== $label"
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" "$@" \
    --logbase "testlog-$label" | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout|Skipped):' || true
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  logs+=("$label=$dir/meson-logs/testlog-$label.json")
}

# The normal build, as the test run wants it whether or not `build` exists (the Quick
# start's demo makes it first, with meson's defaults): warnings are errors (users' builds
# keep them warnings); unity builds, a few sources per compiler run (about 45 % less
# compile time on 2 cores; scripts/run-tidy.sh still parses every source of lib/ and
# tools/ alone); line tables only for debug information (-g1: backtraces keep file and
# line; about 20 % less compile time than -g). UCX is required here (setup.sh test installs
# libucx-dev), so that off-node access is always built and tested (tests/remote).
# A build that fails ends the run, one failed case counted, with nothing left running
# (clang-tidy may be, in the background: it is waited for).
tidy_pid=""
stop_early() {  # what failed
  echo "$1 failed"
  [ -n "$tidy_pid" ] && wait "$tidy_pid"
  echo "0 passed, 1 failed"
  exit 1
}
normal_args=(-Dlong_tests=$long -Dwerror=true -Dunity=on -Dcpp_args=-g1 -Dc_args=-g1 -Ducx=enabled)
[ -f build/build.ninja ] && { quietly meson configure build "${normal_args[@]}" \
  || stop_early build; }
configure build "${normal_args[@]}" || stop_early build
lap build

# clang-tidy over lib/ and tools/ (scripts/run-tidy.sh): one test case, failed by any
# finding (the findings are printed), skipped without clang-tidy. It is pure CPU work and
# runs in the background, beside the suites (which mostly wait on children, locks and
# timeouts) and the sanitizer build; its result is collected before the summary.
tidy_out=build/meson-logs/clang-tidy.txt
( start=$SECONDS; scripts/run-tidy.sh build >"$tidy_out" 2>&1; rc=$?
  echo "clang-tidy took $((SECONDS - start)) s" >>"$tidy_out"; exit $rc ) &
tidy_pid=$!
collect_tidy() {
  echo "=== clang-tidy"
  wait "$tidy_pid"
  local rc=$? result
  tail -n 40 "$tidy_out"
  case $rc in 0) result=OK ;; 77) result=SKIP ;; *) result=FAIL; status=1 ;; esac
  python3 -c 'import json, sys; print(json.dumps({"name": "clang-tidy", "result": sys.argv[1], "stdout": ""}))' \
    "$result" >build/meson-logs/clang-tidy.json
  echo "clang-tidy: $result"
  logs+=("clang-tidy=build/meson-logs/clang-tidy.json")
  lap "waiting for clang-tidy"
}

run_suite normal build
lap "normal tests"

# The sanitizer builds compile at -O1 (faster to build, still inlined enough to run the
# suite quickly). With clang, one build serves both the ASan+UBSan suite and the fuzz
# targets (libFuzzer needs clang); without it, gcc builds the ASan+UBSan suite alone.
# Line tables only for debug information (sanitizer reports keep file and line; about
# 18 % less compile time than -g).
sanitizer_args=(-Db_sanitize=address,undefined -Db_lundef=false -Dbench=false -Doptimization=1
                -Dlong_tests=$long -Dunity=on -Dcpp_args=-gline-tables-only -Dc_args=-gline-tables-only)
if command -v clang++ >/dev/null; then
  CXX=clang++ CC=clang configure build-asan "${sanitizer_args[@]}" -Dfuzz=true \
    || stop_early "asan build"
else
  configure build-asan "${sanitizer_args[@]}" -Dcpp_args=-g1 -Dc_args=-g1 \
    || stop_early "asan build"
fi
lap "asan build"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_suite asan_ubsan build-asan --no-suite fuzz
lap "asan tests"

if command -v clang++ >/dev/null; then
  run_suite fuzz build-asan --suite fuzz
  lap fuzz
  # The TSan build compiles just what its suite runs (dm_threads: the threaded stress).
  if TARGETS="tests/robust/dm_threads tests/child/dm_child" CXX=clang++ CC=clang \
       configure build-tsan -Db_sanitize=thread -Db_lundef=false -Dbench=false -Dcli=false -Doptimization=1 \
         -Dunity=on -Dcpp_args=-gline-tables-only -Dc_args=-gline-tables-only; then
    # No suppressions: any race TSan finds fails the run.
    TSAN_OPTIONS="halt_on_error=1" run_suite tsan build-tsan --suite tsan
    lap "tsan build and tests"
  else
    echo "tsan build failed"; status=1
  fi
fi

collect_tidy
python3 scripts/test_summary.py "${logs[@]}" || status=1
exit $status
