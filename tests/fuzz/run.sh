#!/usr/bin/env bash
# Fuzzes Workflow::from_json for a bounded time and prints the executions done.
#   bash tests/fuzz/run.sh [SECONDS]      (default 60; or LOOM_FUZZ_SECONDS)
# Installs clang-14 and its libFuzzer runtime if missing (needs root or sudo),
# builds fuzz_definition in build-fuzz/ with clang (library included, ASan +
# UBSan), runs it on a copy of the seed corpus and the saved regressions, and
# exits non-zero if it found a crash: the input is left in build-fuzz/artifacts/;
# copy it to tests/fuzz/regressions/ so ctest replays it from then on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build-fuzz
seconds=${1:-${LOOM_FUZZ_SECONDS:-60}}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "usage: bash tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }
say() { echo "==> $*"; }

# The library's own build needs are cmake/quickstart.sh's; these are the fuzzer's.
packages=(clang-14 libclang-rt-14-dev cmake ninja-build libsqlitecpp-dev nlohmann-json3-dev
          libfmt-dev catch2)
source "$root/cmake/packages.sh"
ensure_packages "${packages[@]}"

say "configuring $build (clang++-14, libFuzzer + ASan + UBSan)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DLOOM_BUILD_FUZZERS=ON \
  -DLOOM_BUILD_EXAMPLES=OFF -DLOOM_BUILD_BENCHMARKS=OFF -DLOOM_INSTALL=OFF >/dev/null
say "building fuzz_definition"
cmake --build "$build" -j "$(nproc)" --target fuzz_definition

# The fuzzer adds what it finds to its first directory: a scratch copy, so the
# checked-in seeds stay small and hand-written.
work=$build/corpus/definition
artifacts=$build/artifacts/
rm -rf "$work" "$artifacts"
mkdir -p "$work" "$artifacts"
cp "$root"/tests/fuzz/corpus/definition/* "$work"/
find "$root"/tests/fuzz/regressions -type f ! -name README.md -exec cp {} "$work"/ \;

say "fuzzing Workflow::from_json for ${seconds}s"
log=$build/fuzz_definition.log
status=0
"$build"/tests/fuzz_definition -max_total_time="$seconds" -print_final_stats=1 \
  -dict="$root"/tests/fuzz/json.dict -artifact_prefix="$artifacts" -timeout=10 \
  "$work" >"$log" 2>&1 || status=$?
runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
if [[ $status -ne 0 || -z $runs ]]; then
  tail -n 60 "$log" >&2
  echo "fuzz_definition FAILED (exit $status); the input is in $artifacts; log: $log" >&2
  ls -l "$artifacts" >&2
  exit 1
fi
corpus=$(find "$work" -type f | wc -l)
say "fuzz_definition: $runs executions in ${seconds}s, no crash; corpus grew to $corpus inputs"
