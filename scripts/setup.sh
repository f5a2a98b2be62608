#!/usr/bin/env bash
# The Quick start: installs what is missing (Debian 12, as root), builds, then runs
#   scripts/setup.sh demo   a pool's life through the dragonmem CLI
#   scripts/setup.sh test   every test (normal build, then ASan+UBSan), ending with "N passed, N failed"
set -euo pipefail
cd "$(dirname "$0")/.."

# dpkg-dev: Meson asks dpkg-architecture for Debian's multiarch libdir (lib/x86_64-linux-gnu);
# without it, it installs into lib64, where neither CMake, pkg-config nor the dynamic
# linker look on Debian (tests/packaging's CMake consumer found no dragonmemConfig.cmake).
packages=(meson ninja-build g++ pkg-config cmake dpkg-dev libcli11-dev nlohmann-json3-dev libfmt-dev doctest-dev
          libboost-dev jq util-linux)
# llvm: llvm-symbolizer, without which TSan reports cannot name functions; clang-tidy for
# the lint step of the test run; python3-jsonschema: the CLI tests validate every output
# against docs/schema/. cmake (above) is for tests/packaging's CMake consumer.
# libucx-dev: off-node access (lib/remote, `dragonmem serve`); iproute2: the two-host tests
# (tests/remote: network namespaces and a veth pair); ucx-utils: ucx_perftest, the peer of
# bench/remote_bench.sh. A demo build without them is built without UCX.
[ "${1:-}" = test ] && packages+=(clang libclang-rt-14-dev llvm clang-tidy python3-jsonschema libucx-dev iproute2 ucx-utils)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# shellcheck source=scripts/quietly.sh
. scripts/quietly.sh
case "${1:-demo}" in
  demo)
    # The demo needs only the CLI, built with the defaults a user gets from meson.
    [ -f build/build.ninja ] || quietly meson setup build
    quietly ninja -C build tools/dragonmem
    exec tools/demo.sh build/tools/dragonmem ;;
  # The test run configures and builds what it tests itself (scripts/run-tests.sh).
  test) exec scripts/run-tests.sh ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
