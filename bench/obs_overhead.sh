#!/usr/bin/env bash
# obs_overhead.sh: what seeing training costs. The same run, side by side and alternating
# (so that a change in the machine's load hits every configuration alike), with
#   off    nothing on (this build)
#   log    --log-every 10 (step records: two small allreduces every 10 steps)
#   trace  --trace over every step of the run (each layer's forward and backward, each
#          bucket, clock reads around everything)
#   both   both of them
#   base   BASE_DPTRAIN, a build without the hooks (e.g. the commit before them), when given
# and the median training images/s of each over the rounds (the epoch record's figure:
# training steps only, not start-up or writing the trace), with the ratio to off.
#   bench/obs_overhead.sh [ROUNDS (default 5)] [STEPS (default 150)] [RANKS (default 2)]
# e.g. BASE_DPTRAIN=/tmp/base/build/dptrain bench/obs_overhead.sh 7 200
# Prints one line per run and the summary with the CPU and the load (uptime).
#
# On a machine shared with other work, seconds are noisy; instructions are not:
#   bench/obs_overhead.sh --instructions [STEPS (default 10)]
# counts the instructions (valgrind's callgrind, 1 rank, 1 thread, batch 100, synthetic
# data) of a run of STEPS steps minus those of a run of 0 steps (start-up, data), for the
# same configurations, so the difference is the training steps alone (and, with --trace,
# writing their spans). valgrind 3.19 does not know AVX-512: point DPTRAIN (and BASE_DPTRAIN)
# at builds made with -DDPTRAIN_NATIVE=OFF, e.g.
#   cmake -S . -B build-generic -DDPTRAIN_NATIVE=OFF && cmake --build build-generic --target dptrain
#   DPTRAIN=build-generic/dptrain bench/obs_overhead.sh --instructions 10
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dptrain=${DPTRAIN:-$repo/build/dptrain}
if [[ ${1:-} == --instructions ]]; then
  steps=${2:-10}
  work=$(mktemp -d "${TMPDIR:-/tmp}/obs-overhead.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  "$repo/build/tests/make_dataset" synth "$work/train" 2000 5 > /dev/null
  ir() { # STEPS BINARY OPTIONS...: instructions of that run
    local n=$1 bin=$2; shift 2
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --train "$work/train" \
      --test none --steps "$n" --batch 100 --threads 1 --no-progress --quiet "$@" 2>&1 \
      | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  echo "obs_overhead --instructions: $steps steps of batch 100, 1 rank x 1 thread; $(uptime)"
  echo "| config | instructions per step | vs off |"
  echo "|---|---|---|"
  off=""
  for c in off log trace both base; do
    bin=$dptrain; extra=()
    case $c in
      log) extra=(--metrics "$work/m.jsonl" --log-every 10) ;;
      trace) extra=(--trace "$work/t.json" --trace-steps "1:$steps") ;;
      both) extra=(--metrics "$work/m.jsonl" --log-every 10 --trace "$work/t.json" --trace-steps "1:$steps") ;;
      base) [[ -n ${BASE_DPTRAIN:-} ]] || continue; bin=$BASE_DPTRAIN ;;
    esac
    a=$(ir 0 "$bin" "${extra[@]}"); b=$(ir "$steps" "$bin" "${extra[@]}")
    [[ -n $a && -n $b ]] || { echo "obs_overhead: callgrind gave no count for $c ($bin)" >&2; exit 1; }
    per=$(( (b - a) / steps ))
    [[ -z $off ]] && off=$per
    echo "| $c | $per | $(python3 -c "print(f'{100 * ($per / $off - 1):+.3f}%')") |"
  done
  exit 0
fi
rounds=${1:-5}; steps=${2:-150}; ranks=${3:-2}
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh" # last_epoch
mpi_oversubscribe_if_needed "$ranks"
train=${BENCH_TRAIN:-$repo/data/mnist/train}
[[ -e $train ]] || { echo "obs_overhead: no training data at $train (BENCH_TRAIN=...)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/obs-overhead.XXXXXX")
trap 'rm -rf "$work"' EXIT
common=(--train "$train" --test none --steps "$steps" --batch 100 --threads 1 --no-progress)
configs=(off log trace both)
[[ -n ${BASE_DPTRAIN:-} ]] && configs+=(base)

one() { # CONFIG: images/s of one run
  local c=$1 bin=$dptrain extra=()
  case $c in
    log) extra=(--log-every 10) ;;
    trace) extra=(--trace "$work/t.json" --trace-steps "1:$steps") ;;
    both) extra=(--log-every 10 --trace "$work/t.json" --trace-steps "1:$steps") ;;
    base) bin=$BASE_DPTRAIN ;;
  esac
  rm -f "$work/m.jsonl"
  mpirun -n "$ranks" "$bin" "${common[@]}" --metrics "$work/m.jsonl" "${extra[@]}" > "$work/log" 2>&1 \
    || { cat "$work/log" >&2; exit 1; }
  last_epoch "$work/m.jsonl" images_per_sec
}

echo "obs_overhead: $ranks ranks x 1 thread, $steps steps of batch 100, $rounds rounds; $(uptime)"
declare -A all
for ((k = 1; k <= rounds; k++)); do
  # rotate the order each round, so no configuration always runs first
  for ((i = 0; i < ${#configs[@]}; i++)); do
    c=${configs[$(( (i + k) % ${#configs[@]} ))]}
    got=$(one "$c")
    all[$c]="${all[$c]:-} $got"
    echo "round $k $c $got img/s"
  done
done
echo "obs_overhead: done; $(uptime)"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
python3 - "$cpu" "$(nproc)" "${configs[@]}" <<EOF
import statistics, sys
cpu, cores, configs = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {$(for c in "${configs[@]}"; do printf '"%s": [%s], ' "$c" "$(echo ${all[$c]} | tr ' ' ',')"; done)}
off = statistics.median(runs["off"])
print(f"CPU: {cpu}, {cores} cores; medians of {len(runs['off'])} runs (images/s, training steps only)")
print("| config | median img/s | min | max | vs off |")
print("|---|---|---|---|---|")
for c in configs:
    m = statistics.median(runs[c])
    print(f"| {c} | {m:.0f} | {min(runs[c]):.0f} | {max(runs[c]):.0f} | {100 * (m / off - 1):+.1f}% |")
EOF
