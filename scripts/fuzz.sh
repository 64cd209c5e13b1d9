#!/usr/bin/env bash
# fuzz.sh: build the libFuzzer targets with clang into build-fuzz/ and run each for a
# bounded time on a copy of its seed corpus (fuzz/corpus/TARGET).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
# A crash, a sanitizer report or a leak fails the script; the input that caused it is
# left in build-fuzz/artifacts/ (add it to fuzz/corpus/ with the fix, as a regression).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
command -v clang > /dev/null || { echo "fuzz: clang is not installed (apt-get install clang)" >&2; exit 1; }
cmake -S "$repo" -B "$repo/build-fuzz" -DCMAKE_C_COMPILER=clang -DDPTRAIN_FUZZ=ON \
      -DDPTRAIN_NATIVE=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$repo/build-fuzz" -j "$(nproc)" > /dev/null
mkdir -p "$repo/build-fuzz/artifacts"
for target in idx model_spec cli; do
  work=$(mktemp -d)   # an empty directory: a spec that names a file finds none
  cp -r "$repo/fuzz/corpus/$target" "$work/corpus"
  echo "fuzz: $target for ${seconds}s"
  rc=0
  (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "$repo/build-fuzz/fuzz/fuzz_$target" \
     -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$repo/build-fuzz/artifacts/$target-" corpus > "$work/log" 2>&1) || rc=$?
  grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$work/log" | tail -n1 || true
  if [[ $rc -ne 0 ]]; then
    tail -n 60 "$work/log" >&2
    rm -rf "$work"
    echo "fuzz: $target FAILED (reproducer in build-fuzz/artifacts/)" >&2
    exit 1
  fi
  rm -rf "$work"
done
echo "fuzz: all targets ran ${seconds}s each without a finding"
