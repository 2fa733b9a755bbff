#!/usr/bin/env bash
# Builds and runs the consumer (tests/consumer/main.cpp) the two ways a host uses Loom:
#   run.sh BUILD_DIR WORK_DIR [cmake args...]   install BUILD_DIR into WORK_DIR/prefix,
#                                               then find_package(loom) from there
#   run.sh --subdir WORK_DIR [cmake args...]    add_subdirectory(loom), tests/consumer_subdir
# The cmake args let ctest pass its compiler and flags (a sanitizer build's library
# links only into a program built with the same flags). WORK_DIR/prefix and
# WORK_DIR/build are recreated on every run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR|--subdir WORK_DIR [cmake args...]" >&2
  exit 2
fi
mode=$1 work=$2
shift 2
mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -rf "$work/prefix" "$work/build"

if [[ $mode == --subdir ]]; then
  source_dir=$here/../consumer_subdir
else
  echo "-- installing $mode into $work/prefix"
  cmake --install "$mode" --prefix "$work/prefix"
  # SQLiteCpp is an implementation detail: no installed header may pull it in.
  if grep -rn '#include.*SQLiteCpp' "$work/prefix/include/loom"; then
    echo "FAIL: an installed Loom header includes SQLiteCpp" >&2
    exit 1
  fi
  # The testing kit is a library of its own: a host that does not test links none of it.
  if nm -C --defined-only "$work"/prefix/lib*/libloom.* 2>/dev/null | grep -q ' loom::testing::'; then
    echo "FAIL: the installed libloom defines the testing kit (it belongs in libloom_testing)" >&2
    exit 1
  fi
  source_dir=$here
  set -- "$@" "-DCMAKE_PREFIX_PATH=$work/prefix"
fi

echo "-- configuring $source_dir"
cmake -S "$source_dir" -B "$work/build" -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@"
cmake --build "$work/build" -j "$(nproc)"

# The compile line of the host's own file must carry none of Loom's warning flags.
app_line=$(grep -E '"command": .*app\.dir/.*main\.cpp\.o' "$work/build/compile_commands.json") || {
  echo "FAIL: no compile line for main.cpp in $work/build/compile_commands.json" >&2
  exit 1
}
if grep -qE -- ' -W(all|extra|pedantic)( |$)' <<<"$app_line"; then
  echo "FAIL: Loom's warning flags reached the consumer: $app_line" >&2
  exit 1
fi

# Bounded, so a deadlock in Loom fails here in minutes rather than at ctest's timeout.
echo "-- running the consumer"
timeout 120 "$work/build/app"
timeout 120 "$work/build/kit"
