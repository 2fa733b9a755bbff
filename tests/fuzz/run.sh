#!/usr/bin/env bash
# Fuzzes Workflow::from_json (fuzz_definition) and the condition language
# (fuzz_expression) for a bounded time, split evenly between them, and prints the
# executions each did.
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
# SECONDS is the total (default 60; or LOOM_FUZZ_SECONDS); TARGET is definition
# or expression (default both). Installs clang-14 and its libFuzzer runtime if
# missing (needs root or sudo), builds the targets in build-fuzz/ with clang
# (library included, ASan + UBSan), runs each on a copy of its seed corpus and
# saved regressions, and exits non-zero if either found a crash: the input is left
# in build-fuzz/artifacts/<target>/; copy it to tests/fuzz/regressions/ (a
# definition) or tests/fuzz/regressions/expression/ so ctest replays it from then on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build-fuzz
fuzz=$root/tests/fuzz
seconds=${1:-${LOOM_FUZZ_SECONDS:-60}}
usage() { echo "usage: bash tests/fuzz/run.sh [SECONDS] [definition|expression]..." >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(definition expression)
for target in "${targets[@]}"; do
  [[ $target == definition || $target == expression ]] || usage
done
# The same total time whatever the number of targets, so CI's budget holds.
share=$(( seconds / ${#targets[@]} ))
[[ $share -gt 0 ]] || share=1
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
say "building ${targets[*]/#/fuzz_}"
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

# fuzz TARGET WHAT DICT REGRESSIONS [LIBFUZZER FLAGS...]: runs one target for
# $share seconds; returns non-zero if it crashed or did not report its runs.
fuzz() {
  local target=$1 what=$2 dict=$3 regressions=$4
  shift 4
  # The fuzzer adds what it finds to its first directory: a scratch copy, so the
  # checked-in seeds stay small and hand-written.
  local work=$build/corpus/$target artifacts=$build/artifacts/$target/
  local log=$build/fuzz_$target.log status=0 runs corpus
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts"
  cp "$fuzz/corpus/$target"/* "$work"/
  find "$regressions" -maxdepth 1 -type f ! -name README.md -exec cp {} "$work"/ \;

  say "fuzzing $what for ${share}s"
  "$build/tests/fuzz_$target" -max_total_time="$share" -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$artifacts" -timeout=10 "$@" \
    "$work" >"$log" 2>&1 || status=$?
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
  if [[ $status -ne 0 || -z $runs ]]; then
    tail -n 60 "$log" >&2
    echo "fuzz_$target FAILED (exit $status); the input is in $artifacts; log: $log" >&2
    ls -l "$artifacts" >&2
    return 1
  fi
  corpus=$(find "$work" -type f | wc -l)
  say "fuzz_$target: $runs executions in ${share}s, no crash; corpus grew to $corpus inputs"
}

failed=()
for target in "${targets[@]}"; do
  case $target in
    definition)
      fuzz definition "Workflow::from_json" "$fuzz/json.dict" "$fuzz/regressions" ||
        failed+=(definition) ;;
    expression)
      # Past the 4096-byte limit, so the fuzzer reaches the length check too.
      fuzz expression "Expression::parse and evaluate" "$fuzz/expression.dict" \
        "$fuzz/regressions/expression" -max_len=4200 || failed+=(expression) ;;
  esac
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing FAILED: ${failed[*]/#/fuzz_}" >&2
  exit 1
fi
