#!/usr/bin/env bash
# Tries the installed dragonmem as a new user would: `meson install --destdir` into a
# fresh temporary directory, then builds and runs programs against that tree only.
#   packaging_test.sh pkgconfig   cc app.c $(pkg-config --cflags --libs dragonmem), and
#                                 --static against the archive (alone, and -Wl,-Bstatic)
#   packaging_test.sh cmake       find_package(dragonmem CONFIG): C and C++, shared and
#                                 static targets; a version it cannot satisfy is refused
#   packaging_test.sh symbols     libdragonmem.so exports the C API and public C++ API only
#   packaging_test.sh cxx_std     C++ headers before C++20: the clear #error; C headers in
#                                 C11 and C++11
#   packaging_test.sh version     version.h, dragonmem_version(), version.hpp, dragonmem.pc,
#                                 the CMake package version and the project version agree
#   packaging_test.sh man         every C function has its man page (man3/<function>.3)
# Environment (set by tests/packaging/meson.build): BUILD_ROOT, SOURCE_ROOT, MESON, CC,
# CXX, PREFIX, LIBDIR, INCLUDEDIR, MANDIR, PROJECT_VERSION. Exit 77: skipped (reason printed).
set -euo pipefail
case_name=${1:?usage: packaging_test.sh pkgconfig|cmake|symbols|cxx_std|version|man|unit}
here=$(cd "$(dirname "$0")" && pwd)
# Nothing from the build tree: programs find the installed library or none.
unset LD_LIBRARY_PATH

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || skip "$1 not found (scripts/setup.sh installs it)"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dm_packaging.XXXXXX")
# A pool name of our own (the consumers create and destroy it; a crash leaves it, so the
# trap removes it: only this name, never anything else in /dev/shm).
pool="pkg$$${case_name:0:3}"
cleanup() {
  rm -rf "$work"
  rm -f "/dev/shm/dragonmem.$pool"
}
trap cleanup EXIT

abs() { case $1 in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }
root=$work/root
libdir=$root$(abs "$LIBDIR")
includedir=$root$(abs "$INCLUDEDIR")
mandir=$root$(abs "$MANDIR")

install_tree() {
  # One install at a time from this build directory (tests run in parallel).
  if ! flock "$BUILD_ROOT/meson-private/packaging-install.lock" \
       "$MESON" install -C "$BUILD_ROOT" --no-rebuild --destdir "$root" >"$work/install.log" 2>&1; then
    cat "$work/install.log" >&2
    fail "meson install --destdir failed"
  fi
  [ -f "$libdir/libdragonmem.a" ] || fail "libdragonmem.a not installed in $libdir"
  [ -f "$libdir/libdragonmem.so" ] || fail "libdragonmem.so not installed in $libdir"
}

# pkg-config reads the installed dragonmem.pc; the sysroot maps its prefix into the
# DESTDIR tree (as when packaging for a distribution).
pc() {
  PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root pkg-config "$@" dragonmem
}

run_consumer() {  # program args...: runs it against the installed libdragonmem.so
  local out
  out=$(LD_LIBRARY_PATH=$libdir "$@" 2>&1) || { echo "$out" >&2; fail "$(basename "$1") failed"; }
  echo "$out"
}

needed_libs() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

case $case_name in
pkgconfig)
  need pkg-config; need readelf
  install_tree
  echo "pkg-config --static --libs: $(pc --static --libs)"
  # Shared, as the README says.
  # shellcheck disable=SC2046
  $CC -std=c11 -o "$work/app_shared" "$here/consumer.c" $(pc --cflags --libs)
  needed_libs "$work/app_shared" | grep -qx 'libdragonmem.so.*' || fail "app_shared does not use libdragonmem.so"
  run_consumer "$work/app_shared" "$pool"
  # Static, where only the archive is installed (a static-only package).
  mkdir "$work/static_only"
  cp -a "$root/." "$work/static_only/"
  rm -f "$work/static_only$(abs "$LIBDIR")"/libdragonmem.so*
  # shellcheck disable=SC2046
  $CC -std=c11 -o "$work/app_static" "$here/consumer.c" \
    $(PKG_CONFIG_PATH=$work/static_only$(abs "$LIBDIR")/pkgconfig PKG_CONFIG_SYSROOT_DIR=$work/static_only \
      pkg-config --cflags --static --libs dragonmem)
  ! needed_libs "$work/app_static" | grep -q libdragonmem || fail "app_static needs libdragonmem.so"
  run_consumer "$work/app_static" "$pool"
  # Static from the full tree: the archive named (README.md).
  # shellcheck disable=SC2046
  $CC -std=c11 -o "$work/app_archive" "$here/consumer.c" \
    $(pc --cflags --static --libs | sed 's/-ldragonmem/-l:libdragonmem.a/')
  ! needed_libs "$work/app_archive" | grep -q libdragonmem || fail "app_archive needs libdragonmem.so"
  run_consumer "$work/app_archive" "$pool"
  ;;
cmake)
  need cmake
  install_tree
  # The compilers meson uses (without ccache, which CMake would take for the compiler).
  cc_bin=${CC#ccache }; cxx_bin=${CXX#ccache }
  cmake_args=(-DCMAKE_PREFIX_PATH="$root$PREFIX" -DCONSUMER_DIR="$here"
              -DCMAKE_C_COMPILER="${cc_bin%% *}" -DCMAKE_CXX_COMPILER="${cxx_bin%% *}")
  # Ninja, which building dragonmem needs anyway: CMake's default generator wants make,
  # which a fresh Debian with the Quick start's packages does not have.
  if command -v ninja >/dev/null; then cmake_args+=(-G Ninja); fi
  if ! cmake -S "$here/cmake_consumer" -B "$work/cmake_build" "${cmake_args[@]}" >"$work/cmake.log" 2>&1; then
    cat "$work/cmake.log" >&2; fail "cmake configure of the consumer failed"
  fi
  grep "dragonmem package version" "$work/cmake.log"
  if ! cmake --build "$work/cmake_build" -j 1 >"$work/cmake_build.log" 2>&1; then
    cat "$work/cmake_build.log" >&2; fail "cmake build of the consumer failed"
  fi
  for exe in consumer_c consumer_c_static consumer_cxx consumer_cxx_static; do
    run_consumer "$work/cmake_build/$exe" "$pool" "$PROJECT_VERSION"
  done
  needed_libs "$work/cmake_build/consumer_c" | grep -qx 'libdragonmem.so.*' || fail "consumer_c does not use libdragonmem.so"
  ! needed_libs "$work/cmake_build/consumer_c_static" | grep -q libdragonmem || fail "consumer_c_static needs libdragonmem.so"
  # The package moves with its tree (paths relative to dragonmemConfig.cmake).
  mv "$root" "$work/moved"
  if ! cmake -S "$here/cmake_consumer" -B "$work/cmake_moved" "${cmake_args[@]}" \
       -DCMAKE_PREFIX_PATH="$work/moved$PREFIX" >"$work/cmake_moved.log" 2>&1 \
     || ! cmake --build "$work/cmake_moved" -j 1 --target consumer_c_static >>"$work/cmake_moved.log" 2>&1; then
    cat "$work/cmake_moved.log" >&2; fail "the moved package did not configure or build"
  fi
  run_consumer "$work/cmake_moved/consumer_c_static" "$pool" "$PROJECT_VERSION"
  mv "$work/moved" "$root"
  # Bad input: a version this package cannot satisfy is refused, naming the version found.
  major=${PROJECT_VERSION%%.*}
  if cmake -S "$here/cmake_consumer" -B "$work/cmake_too_new" "${cmake_args[@]}" \
       -DDRAGONMEM_REQUEST="$((major + 1)).0" >"$work/cmake_too_new.log" 2>&1; then
    fail "find_package(dragonmem $((major + 1)).0) accepted version $PROJECT_VERSION"
  fi
  grep -q "$PROJECT_VERSION" "$work/cmake_too_new.log" || { cat "$work/cmake_too_new.log" >&2; fail "the refusal does not name $PROJECT_VERSION"; }
  echo "find_package(dragonmem $((major + 1)).0) refused, as it must"
  ;;
symbols)
  need nm; need c++filt; need python3
  install_tree
  so=$libdir/libdragonmem.so
  nm -D --defined-only "$so" | awk '{print $3}' | sort -u >"$work/exported"
  grep -v '^_Z' "$work/exported" >"$work/exported_c" || true
  python3 "$SOURCE_ROOT/scripts/c_api_functions.py" "$includedir"/dragon/*.h "$includedir"/dragonmem/*.h >"$work/declared"
  echo "exported symbols: $(wc -l <"$work/exported") ($(wc -l <"$work/exported_c") C functions)"
  missing=$(comm -23 "$work/declared" "$work/exported_c")
  [ -z "$missing" ] || fail "declared in the C headers but not exported: $missing"
  extra=$(comm -13 "$work/declared" "$work/exported_c")
  [ -z "$extra" ] || fail "exported C symbols no C header declares: $extra"
  # C++: only the public classes and functions of namespace dragonmem (the ABI helpers
  # the inline header code calls, in dragonmem::abi, included); nothing of
  # dragonmem::detail, std:: or fmt:: template code instantiated inside the library.
  grep '^_Z' "$work/exported" | c++filt >"$work/exported_cxx" || true
  name_of() { sed -e 's/^typeinfo name for //' -e 's/^typeinfo for //' -e 's/^vtable for //' -e 's/(.*//'; }
  bad=$(name_of <"$work/exported_cxx" | grep -Ev '^dragonmem::(Pool|Memory|ThreadLockWaitLimit|Error|abi)::|^dragonmem::(set_lock_wait_limit|lock_wait_limit|version|read_bytes|write_bytes|remote_available|serve)$|^dragonmem::(System)?Error$' || true)
  [ -z "$bad" ] || fail "exported C++ symbols outside the public API: $(echo "$bad" | head -20)"
  if name_of <"$work/exported_cxx" | grep -q 'detail::'; then fail "a detail:: symbol is exported"; fi
  # And the public C++ API is all there: each public class's members the headers name.
  for want in 'dragonmem::Pool::create' 'dragonmem::Pool::alloc' 'dragonmem::Memory::attach_base64' \
              'dragonmem::Memory::free' 'dragonmem::set_lock_wait_limit' 'dragonmem::version' \
              'dragonmem::abi::mapping_add_ref' 'dragonmem::abi::mapping_release' 'typeinfo for dragonmem::Error' \
              'dragonmem::read_bytes' 'dragonmem::write_bytes' 'dragonmem::serve'; do
    grep -q "^$want" "$work/exported_cxx" || fail "$want is not exported"
  done
  echo "exported C++ symbols: $(wc -l <"$work/exported_cxx"), none outside the public API"
  ;;
cxx_std)
  install_tree
  # C++17 with the C++ headers: the clear message, first.
  if $CXX -std=c++17 -fsyntax-only -I"$includedir" "$here/cxx17_probe.cpp" >"$work/cxx17.log" 2>&1; then
    fail "the C++ API compiled as C++17"
  fi
  first_error=$(grep -m1 'error' "$work/cxx17.log" || true)
  echo "C++17: $first_error"
  echo "$first_error" | grep -q "dragonmem's C++ API needs C++20" || { cat "$work/cxx17.log" >&2; fail "the first error is not the C++20 message"; }
  $CXX -std=c++20 -fsyntax-only -I"$includedir" "$here/cxx17_probe.cpp" || fail "the C++ API does not compile as C++20"
  # The C headers: C11 and C++11, pedantic, warnings as errors.
  $CC -std=c11 -Wall -Wextra -pedantic -Werror -I"$includedir" -fsyntax-only "$here/c_headers_probe.c" \
    || fail "the C headers do not compile as C11"
  cp "$here/c_headers_probe.c" "$work/c_headers_probe.cpp"
  $CXX -std=c++11 -Wall -Wextra -pedantic -Werror -I"$includedir" -fsyntax-only "$work/c_headers_probe.cpp" \
    || fail "the C headers do not compile as C++11"
  echo "C headers: C11 and C++11 OK; C++ headers: C++20 OK, C++17 refused with the message"
  ;;
version)
  need pkg-config
  install_tree
  modversion=$(pc --modversion)
  [ "$modversion" = "$PROJECT_VERSION" ] || fail "dragonmem.pc says $modversion, the project $PROJECT_VERSION"
  grep -q "^#define DRAGONMEM_VERSION_STRING \"$PROJECT_VERSION\"$" "$includedir/dragonmem/version.h" \
    || fail "version.h does not define DRAGONMEM_VERSION_STRING \"$PROJECT_VERSION\""
  grep -q "PACKAGE_VERSION \"$PROJECT_VERSION\"" "$libdir/cmake/dragonmem/dragonmemConfigVersion.cmake" \
    || fail "dragonmemConfigVersion.cmake is not $PROJECT_VERSION"
  # The consumers compare the macros, dragonmem_version() / dragonmem::version() and
  # version.hpp's constants with the project version.
  # shellcheck disable=SC2046
  $CC -std=c11 -o "$work/app_c" "$here/consumer.c" $(pc --cflags --libs)
  run_consumer "$work/app_c" "$pool" "$PROJECT_VERSION"
  # shellcheck disable=SC2046
  $CXX -std=c++20 -o "$work/app_cxx" "$here/consumer.cpp" $(pc --cflags --libs)
  run_consumer "$work/app_cxx" "$pool" "$PROJECT_VERSION"
  # Bad input: a consumer told to expect another version says they disagree.
  if LD_LIBRARY_PATH=$libdir "$work/app_c" "$pool" "$PROJECT_VERSION.1" >"$work/wrong.log" 2>&1; then
    fail "the consumer accepted version $PROJECT_VERSION.1"
  fi
  grep -q "versions disagree" "$work/wrong.log" || fail "no disagreement reported: $(cat "$work/wrong.log")"
  echo "version $PROJECT_VERSION everywhere"
  ;;
unit)
  # The agent's systemd unit, installed with a build that has UCX (dragonmem serve), and
  # its ExecStart naming the installed program, which runs.
  install_tree
  unit=$root$PREFIX/lib/systemd/system/dragonmem-serve.service
  if [ "$HAVE_UCX" != true ]; then
    [ ! -e "$unit" ] || fail "$unit installed by a build without UCX (no dragonmem serve)"
    skip "built without UCX: no agent, no unit (checked that none is installed)"
  fi
  [ -f "$unit" ] || fail "dragonmem-serve.service not installed in $(dirname "$unit")"
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  program=${exec_start%% *}
  [ "$program" = "$(abs "$BINDIR")/dragonmem" ] || fail "ExecStart runs $program, not the installed dragonmem"
  [ "${exec_start#* }" != "${exec_start#* serve }" ] || fail "ExecStart does not run serve: $exec_start"
  grep -q '@' "$unit" && fail "unsubstituted @...@ in $unit"
  # Into a variable first: `grep -q` quits at its match, and the writer's SIGPIPE failed the
  # pipeline (pipefail) in 2 of 10 runs under meson test.
  help=$(run_consumer "$root$program" serve --help)
  grep -q -- "--listen" <<<"$help" || fail "the installed dragonmem serve --help names no --listen"
  echo "unit: $unit runs $exec_start"
  ;;
man)
  need python3; need nm
  install_tree
  [ -f "$mandir/man3/libdragonmem.3" ] || fail "libdragonmem.3 not installed in $mandir/man3"
  python3 "$SOURCE_ROOT/scripts/c_api_functions.py" "$includedir"/dragon/*.h "$includedir"/dragonmem/*.h >"$work/declared"
  # The exported C functions too: a list that does not come from the same parser.
  nm -D --defined-only "$libdir/libdragonmem.so" | awk '$3 !~ /^_Z/ {print $3}' >>"$work/declared"
  sort -u -o "$work/declared" "$work/declared"
  n=0
  while read -r fn; do
    page=$mandir/man3/$fn.3
    [ -f "$page" ] || fail "no man page for $fn ($page)"
    [ "$(cat "$page")" = ".so man3/libdragonmem.3" ] || fail "$page does not link to libdragonmem.3"
    # And libdragonmem(3) documents it (the SYNOPSIS names every function).
    grep -q "$fn(" "$mandir/man3/libdragonmem.3" || grep -q "${fn//_/\\\\_}(" "$mandir/man3/libdragonmem.3" \
      || fail "libdragonmem.3 does not mention $fn"
    n=$((n + 1))
  done <"$work/declared"
  if command -v man >/dev/null; then
    found=$(MANPATH=$mandir man -w dragon_memory_alloc 2>/dev/null || true)
    # man-db follows the .so link and names the page it leads to.
    case $found in
      "$mandir/man3/dragon_memory_alloc.3" | "$mandir/man3/libdragonmem.3") ;;
      *) fail "man -w dragon_memory_alloc gave '$found'" ;;
    esac
    # Into a variable first, as in `unit`: grep -q on man's pipe could fail it by SIGPIPE.
    page=$(MANPATH=$mandir MANPAGER=cat man dragon_memory_alloc 2>/dev/null || true)
    grep -q "dragon_memory_alloc" <<<"$page" || fail "man dragon_memory_alloc does not show libdragonmem(3)"
    echo "man dragon_memory_alloc: $found"
  else
    echo "(man not installed: checked the page files only)"
  fi
  echo "$n functions, each with its page"
  ;;
*) fail "unknown case $case_name" ;;
esac
echo "ok: $case_name"
