#!/usr/bin/env bash
# compare_steps.sh: two builds' training step side by side (bench_layers --step-only),
# alternating run by run; prints each pair, then for each build the fastest run, the lower
# quartile and the median (ms per step), and the ratios old/new of each (above 1: the new
# build is faster).
#
#   bench/compare_steps.sh OLD_BENCH_LAYERS NEW_BENCH_LAYERS [PAIRS (default 8)] [MODEL
#                          (default reference)] [THREADS (default 1)] [bench_layers options...]
#
# Why the fastest run and the lower quartile: on a shared virtual machine whose speed
# jumps between states (the 2-core AMD Zen 5 of 2026-12-06 ran the same binary at 8.2 and
# at 12.5 ms a step, minutes apart), a median of pairs mixes the states, while the fastest
# runs of each build were taken in the same state. Example (a change against its parent):
#   git worktree add /tmp/old HEAD~1 && cmake -S /tmp/old -B /tmp/old/build \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/old/build --target bench_layers
#   bench/compare_steps.sh /tmp/old/build/bench/bench_layers build/bench/bench_layers 10 \
#     nopool 1 --conv-algorithm winograd
#
# Below as many threads as CPUs, the two runs of a pair share the same CPUs and the pairs
# move along them (bench/quiet.sh: bench_pin): the CPUs of a virtual machine need not be
# equally fast (on that Zen 5 one ran the reference step up to 34% slower than the other).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/quiet.sh"
old=${1:?old bench_layers}
new=${2:?new bench_layers}
pairs=${3:-8}
model=${4:-reference}
threads=${5:-1}
shift $(($# < 5 ? $# : 5))
py=${DP_PYTHON:-/usr/bin/python3}
step_ms() {
  "${pin[@]}" "$1" --model "$model" --threads "$threads" --step-only --reps 15 "${@:2}" \
    | sed -nE 's/.*step ([0-9.]+) ms.*/\1/p'
}
echo "compare_steps: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "load $(cut -d' ' -f1-3 /proc/loadavg); $model, $threads thread(s), $pairs pairs $*"
runs=()
echo "compare_steps: $(bench_pin_note "$threads")"
for ((i = 0; i < pairs; i++)); do
  read -ra pin <<< "$(bench_pin "$i" "$threads")"
  a=$(step_ms "$old" "$@")
  b=$(step_ms "$new" "$@")
  [[ -n $a && -n $b ]] || { echo "compare_steps: a run printed no step time" >&2; exit 1; }
  echo "pair $((i + 1)): old $a ms, new $b ms"
  runs+=("$a $b")
done
printf "%s\n" "${runs[@]}" | "$py" -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
def figures(xs):
    xs = sorted(xs)
    return xs[0], xs[len(xs) // 4], statistics.median(xs)
o, n = figures([r[0] for r in rows]), figures([r[1] for r in rows])
print("ms per step     fastest  lower quartile  median")
print("old           %9.2f %15.2f %7.2f" % o)
print("new           %9.2f %15.2f %7.2f" % n)
print("old / new     %9.3f %15.3f %7.3f" % tuple(a / b for a, b in zip(o, n)))
'
