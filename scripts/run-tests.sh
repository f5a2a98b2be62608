#!/usr/bin/env bash
# Runs every test: the normal build (warnings are errors here), clang-tidy over lib/ and
# tools/ (.clang-tidy), the same suite under AddressSanitizer + UndefinedBehaviorSanitizer,
# the threaded stress under ThreadSanitizer and a short fuzz run (clang). Prints per-suite
# results, then one line "N passed, N failed" (test cases).
set -uo pipefail
cd "$(dirname "$0")/.."
long=false
[ "${DRAGONMEM_LONG_TESTS:-0}" = 1 ] && long=true

configure() {  # dir, extra meson args...; TARGETS (if set) limits what is built
  local dir=$1; shift
  [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null || return 1
  # shellcheck disable=SC2086
  ninja -C "$dir" ${TARGETS:-} >/dev/null || return 1
}

logs=()
status=0
run_suite() {  # label, dir, meson test args...
  local label=$1 dir=$2; shift 2
  echo "=== $label"
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 1 "$@" | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout|Skipped):' || true
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
  logs+=("$label=$dir/meson-logs/testlog.json")
}

# CI treats warnings as errors (users building dragonmem do not: the default stays off).
# An existing build directory gets the option too.
[ -f build/build.ninja ] && meson configure build -Dwerror=true >/dev/null
configure build -Dlong_tests=$long -Dwerror=true || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
run_suite normal build

# clang-tidy over the normal build's compile_commands.json: one test case, failed by any
# finding (the findings are printed), skipped without clang-tidy.
echo "=== clang-tidy"
tidy_out=build/meson-logs/clang-tidy.txt
scripts/run-tidy.sh build >"$tidy_out" 2>&1
tidy_rc=$?
tail -n 40 "$tidy_out"
case $tidy_rc in 0) tidy_result=OK ;; 77) tidy_result=SKIP ;; *) tidy_result=FAIL; status=1 ;; esac
python3 -c 'import json, sys; print(json.dumps({"name": "clang-tidy", "result": sys.argv[1], "stdout": ""}))' \
  "$tidy_result" >build/meson-logs/clang-tidy.json
echo "clang-tidy: $tidy_result"
logs+=("clang-tidy=build/meson-logs/clang-tidy.json")

configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false -Dlong_tests=$long \
  || { echo "asan build failed"; echo "0 passed, 1 failed"; exit 1; }
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_suite asan_ubsan build-asan

if command -v clang++ >/dev/null; then
  # The sanitizer-only builds compile just what their suite runs.
  if TARGETS="tests/robust/dm_robust tests/robust/dm_robust_child" CXX=clang++ CC=clang \
       configure build-tsan -Db_sanitize=thread -Db_lundef=false -Dbench=false -Dcli=false; then
    # No suppressions: any race TSan finds fails the run.
    TSAN_OPTIONS="halt_on_error=1" run_suite tsan build-tsan --suite tsan
  else
    echo "tsan build failed"; status=1
  fi
  fuzz_targets="tests/robust/fuzz/fuzz_make_corpus tests/robust/fuzz/fuzz_decode_pool"
  fuzz_targets+=" tests/robust/fuzz/fuzz_decode_memory tests/robust/fuzz/fuzz_attach_header"
  if TARGETS=$fuzz_targets CXX=clang++ CC=clang configure build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
       -Db_lundef=false -Dbench=false -Dcli=false; then
    run_suite fuzz build-fuzz --suite fuzz
  else
    echo "fuzz build failed"; status=1
  fi
fi

python3 scripts/test_summary.py "${logs[@]}" || status=1
exit $status
