#!/usr/bin/env bash
# test_under_load.sh: the whole CTest suite RUNS times in a row beside CPU hogs, as on a
# shared CI machine (issue 13 item 12): no test may fail because the machine is slow.
#   scripts/test_under_load.sh [--runs N] [--hogs H] [ctest arguments...]
# Defaults: 3 runs, 2 hogs (stress-ng --cpu, one busy process each). Needs the build and
# the test dependencies of scripts/setup.sh --with-test-deps (stress-ng among them) and
# MNIST (datasets/fetch_mnist.sh); sets what scripts/test.sh sets, so that no test skips.
# Prints the CPU and the load before each run, each run's CTest summary and failed tests,
# and a last line with the result; exit 1 if any run failed. Logs: build/under-load-N.log.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 hogs=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --hogs) hogs=$2; shift 2 ;;
    *) break ;;
  esac
done
command -v stress-ng > /dev/null || { echo "test_under_load: stress-ng is missing (scripts/setup.sh --with-test-deps)" >&2; exit 1; }
[[ -x $repo/build/dptrain ]] || { echo "test_under_load: no build/dptrain (scripts/setup.sh --with-test-deps)" >&2; exit 1; }
source "$repo/scripts/mpi-env.sh"
export DPTRAIN_REQUIRE_DATA=1 DPTRAIN_REQUIRE_SLURM=1

stress-ng --cpu "$hogs" --cpu-method all --quiet &
hog=$!
trap 'kill "$hog" 2> /dev/null || true; wait "$hog" 2> /dev/null || true' EXIT
sleep 2   # the hogs running before the first test starts
cpu=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
failed=0
for ((r = 1; r <= runs; r++)); do
  log="$repo/build/under-load-$r.log"
  echo "test_under_load: run $r of $runs beside $hogs CPU hogs on $(nproc) x $cpu; load$(uptime | sed 's/.*load average//')"
  rc=0
  (cd "$repo/build" && ctest --output-on-failure --timeout 900 "$@") > "$log" 2>&1 || rc=$?
  grep -E "tests passed|Total Test time" "$log" | sed 's/^/  /'
  if [[ $rc -ne 0 ]]; then
    failed=$((failed + 1))
    sed -n '/The following tests FAILED/,$p' "$log" | sed 's/^/  /'
  fi
done
echo "test_under_load: $((runs - failed)) of $runs runs passed beside $hogs CPU hogs (logs: build/under-load-*.log)"
[[ $failed -eq 0 ]]
