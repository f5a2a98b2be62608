# Sourced by scripts/setup.sh and scripts/run-tests.sh.
# quietly COMMAND...: runs it, printing nothing when it works and the tail of its output
# (the compiler's or Meson's errors, without ninja's progress lines) when it fails.
quietly() {
  local log rc
  log=$(mktemp)
  rc=0
  "$@" >"$log" 2>&1 || rc=$?   # (not stopped here by a caller's set -e)
  [ "$rc" = 0 ] || grep -v '^\[[0-9]*/[0-9]*\] ' "$log" | tail -n 60
  rm -f "$log"
  return "$rc"
}
