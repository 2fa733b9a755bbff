#!/usr/bin/env bash
# Quick start for a fresh Debian 12 machine (the README's two lines):
#   bash cmake/quickstart.sh demo   install what is missing, build, run the demo
#   bash cmake/quickstart.sh test   install what is missing, build, run every test
# Builds into build/ (Ninja, RelWithDebInfo), the same tree as the "default" preset.
set -euo pipefail

usage() { echo "usage: bash cmake/quickstart.sh demo|test" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
mode=$1
[[ $mode == demo || $mode == test ]] || usage

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
say() { echo "==> $*"; }

# build-essential also brings gcc's sanitizer runtimes (libasan8, libubsan1, libtsan2,
# through libgcc-12-dev) that the asan and tsan presets need.
packages=(build-essential cmake ninja-build pkg-config libsqlitecpp-dev libsqlite3-dev
          nlohmann-json3-dev libfmt-dev catch2)
# The PostgreSQL store and the private server its tests start. Asked for by name,
# so that a build/ configured before libpqxx was installed (by "demo") builds it too.
configure_args=()
if [[ $mode == test ]]; then
  packages+=(libpqxx-dev postgresql)
  configure_args+=(-DLOOM_WITH_POSTGRES=ON)
fi

source "$root/cmake/packages.sh"
ensure_packages "${packages[@]}"

say "configuring $build (Ninja, RelWithDebInfo)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${configure_args[@]}"
say "building with $(nproc) jobs"
cmake --build "$build" -j "$(nproc)"

if [[ $mode == demo ]]; then
  [[ -x $build/examples/demo ]] || { echo "build/examples/demo was not built" >&2; exit 1; }
  # From build/, so the SQLite file the demo writes stays out of the source tree.
  say "running build/examples/demo"
  cd "$build"
  ./examples/demo
else
  # -j2, not more: the reference machine has 2 cores, and oversubscribing it would
  # make concurrency tests slow enough to time out.
  say "running the tests"
  ctest --test-dir "$build" --output-on-failure --no-tests=error -j2
  say "all tests passed"
fi
