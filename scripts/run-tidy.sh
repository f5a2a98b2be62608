#!/usr/bin/env bash
# clang-tidy (.clang-tidy: bugprone-*, concurrency-*, performance-*) over every source of
# lib/ and tools/, with the flags of the normal build (BUILD/compile_commands.json).
# Prints each finding; exits 1 if there is any, 77 if clang-tidy is missing.
#   scripts/run-tidy.sh [BUILD_DIR]   (default: build; configured with meson)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tidy=${CLANG_TIDY:-clang-tidy}
command -v "$tidy" >/dev/null || { echo "SKIP: $tidy not found (scripts/setup.sh test installs clang-tidy)"; exit 77; }
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json: configure $build first" >&2; exit 2; }

# A unity build's database (-Dunity=on, as CI's) names generated files that each include
# several sources, and clang-tidy does not check the included ones alike (a finding in the
# second source of a unity file goes unreported). The sources are checked one by one, with
# a non-unity database from a configure-only directory beside the build (nothing is
# compiled there: the one generated header, version.h, is made at configure time). Each
# source parsed alone also proves that it includes what it uses, which a unity build hides.
if grep -q -- '-unity[0-9]*\.cpp"' "$build/compile_commands.json"; then
  sources_db="$build-tidy"
  if [ ! -f "$sources_db/compile_commands.json" ]; then
    meson setup "$sources_db" -Dunity=off -Dtests=false -Dbench=false >/dev/null \
      || { echo "could not configure $sources_db for clang-tidy" >&2; exit 2; }
  fi
  build=$sources_db
fi

# The build may be GCC's: drop the flags clang does not know, in a copy of the database.
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
python3 - "$build/compile_commands.json" "$db/compile_commands.json" <<'PY'
import json, sys
gcc_only = ("-mtls-dialect=", "-fno-semantic-interposition")
entries = json.load(open(sys.argv[1]))
for e in entries:
    if "arguments" in e:
        e["arguments"] = [a for a in e["arguments"] if not a.startswith(gcc_only)]
    else:
        e["command"] = " ".join(w for w in e["command"].split(" ") if not w.startswith(gcc_only))
json.dump(entries, open(sys.argv[2], "w"))
PY

# Each source once (the library's files are compiled twice, for the .a and the .so).
mapfile -t files < <(python3 - "$db/compile_commands.json" <<'PY'
import json, os, sys
seen = set()
for e in json.load(open(sys.argv[1])):
    path = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(path)
    if rel.startswith(("lib/", "tools/")) and rel not in seen:
        seen.add(rel)
        print(rel)
PY
)
echo "clang-tidy: ${#files[@]} files of lib/ and tools/"
out=$(mktemp)
# Two at a time (the machine is shared); --quiet drops the per-file statistics.
printf '%s\n' "${files[@]}" | xargs -P "${TIDY_JOBS:-2}" -n 4 "$tidy" -p "$db" --quiet >"$out" 2>&1
rc=$?
findings=$(grep -cE ': (warning|error): ' "$out")
grep -E ': (warning|error): ' -A3 "$out" | head -400
rm -f "$out"
echo "clang-tidy: $findings finding(s)"
[ "$rc" = 0 ] && [ "$findings" = 0 ]
