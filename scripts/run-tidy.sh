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
# several sources. The library's sources are checked one by one, with a non-unity
# database from a configure-only directory beside the build (nothing is compiled there:
# the one generated header, version.h, is made at configure time): each parsed alone also
# proves that it includes what it uses. The CLI's sources are checked through the unity
# files that include them, as they were compiled: each of its sources includes CLI11,
# nlohmann/json and fmt, whose parse and matching were two thirds of clang-tidy's time
# when every CLI source was checked alone. HeaderFilterRegex (lib|tools|include) reports
# the findings in the included sources; tools/.clang-tidy's checks are passed on the
# command line, since a unity file lives in the build tree, outside tools/.
unity_db=""
if grep -q -- '-unity[0-9]*\.cpp"' "$build/compile_commands.json"; then
  unity_db="$build/compile_commands.json"
  sources_db="$build-tidy"
  if [ ! -f "$sources_db/compile_commands.json" ]; then
    meson setup "$sources_db" -Dunity=off -Dtests=false -Dbench=false >/dev/null \
      || { echo "could not configure $sources_db for clang-tidy" >&2; exit 2; }
  fi
  build=$sources_db
fi

# One database for both (the build may be GCC's: the flags clang does not know are
# dropped) and the list of what to check: lib/ sources, then tools/ sources or the CLI's
# unity files, each once (the library's files are compiled for the .a and the .so).
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
python3 - "$db/compile_commands.json" "$db/lib" "$db/tools" "$build/compile_commands.json" $unity_db <<'PY'
import json, os, re, sys
out_db, lib_list, tools_list, sources_db = sys.argv[1:5]
unity_db = sys.argv[5] if len(sys.argv) > 5 else None
gcc_only = ("-mtls-dialect=", "-fno-semantic-interposition")
def clean(e):
    if "arguments" in e:
        e["arguments"] = [a for a in e["arguments"] if not a.startswith(gcc_only)]
    else:
        e["command"] = " ".join(w for w in e["command"].split(" ") if not w.startswith(gcc_only))
    return e
def path_of(e):
    return os.path.normpath(os.path.join(e["directory"], e["file"]))
entries, lib, tools = [], [], []
for e in json.load(open(sources_db)):
    rel = os.path.relpath(path_of(e))
    if rel.startswith("lib/") and rel not in lib:
        lib.append(rel); entries.append(clean(e))
    elif rel.startswith("tools/") and unity_db is None and rel not in tools:
        tools.append(rel); entries.append(clean(e))
if unity_db:
    for e in json.load(open(unity_db)):
        path = path_of(e)
        if re.search(r"/tools/dragonmem\.p/dragonmem-unity\d+\.cpp$", path) and path not in tools:
            tools.append(path); entries.append(clean(e))
json.dump(entries, open(out_db, "w"))
open(lib_list, "w").write("".join(f + "\n" for f in lib))
open(tools_list, "w").write("".join(f + "\n" for f in tools))
PY
# The unity files themselves include .cpp files, by design: bugprone-suspicious-include
# is off for them (the library's sources, checked alone, keep it).
tools_checks=$(sed -n "s/^Checks: '\(.*\)'\$/\1/p" tools/.clang-tidy)
[ -n "$unity_db" ] && tools_checks="$tools_checks,-bugprone-suspicious-include"
echo "clang-tidy: $(wc -l <"$db/lib") files of lib/, $(wc -l <"$db/tools") of tools/${unity_db:+ (unity files)}"
out=$(mktemp)
# Two at a time (the machine is shared); --quiet drops the per-file statistics.
{ xargs -P "${TIDY_JOBS:-2}" -n 4 "$tidy" -p "$db" --quiet <"$db/lib"; echo "rc=$?"
  xargs -P "${TIDY_JOBS:-2}" -n 1 "$tidy" -p "$db" --quiet --checks="$tools_checks" <"$db/tools"; echo "rc=$?"
} >"$out" 2>&1
rc=0
grep -q '^rc=[1-9]' "$out" && rc=1
# A finding in a header or a source included by several unity files is printed once.
findings=$(grep -E ': (warning|error): ' "$out" | sort -u | grep -c .)
grep -E ': (warning|error): ' -A3 "$out" | head -400
rm -f "$out"
echo "clang-tidy: $findings finding(s)"
[ "$rc" = 0 ] && [ "$findings" = 0 ]
