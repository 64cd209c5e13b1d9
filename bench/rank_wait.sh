#!/usr/bin/env bash
# rank_wait.sh: what the gradient sum costs 2 ranks x 1 thread on the step's critical path,
# traced. Alternates this build and BASE_DPTRAIN, when given (e.g. the commit before a
# change, built elsewhere), over ROUNDS rounds of a STEPS-step training on MNIST, 2 ranks
# bound to a core each, traced over the second half (--trace), and prints for each run the
# medians over the traced steps of:
#   step   the step, ms (the later rank's)
#   wait   the slower rank's wait for the gradients, ms: the rank that waits least is the
#          one the other waited for, so its wait is what the sum adds to the step
#   share  (step - wait) / step: the part of the step the slower rank computed
#   2x     2 x share: the scaling over 1 x 1 on the slower CPU that 2 ranks would reach if
#          half the batch took half the time (it does: forward and backward of 50 samples
#          took 1/2.00 of 100's in the traces of docs/performance.md)
# then, per build, the medians over the runs. The CPUs' unequal speed moves the step and
# which rank is slower; the slower rank's wait is what a change to the sum can move.
#   bench/rank_wait.sh [ROUNDS (default 4)] [STEPS (default 300)] [MODEL (default reference)]
#   e.g. git worktree add /tmp/base HEAD~1 && cmake -S /tmp/base -B /tmp/base/build &&
#        cmake --build /tmp/base/build --target dptrain &&
#        BASE_DPTRAIN=/tmp/base/build/dptrain bench/rank_wait.sh 6
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-4}
steps=${2:-300}
model=${3:-reference}
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh"
cd "$repo"
bench_need_mnist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
builds=("$repo/build/dptrain")
[[ -n ${BASE_DPTRAIN:-} ]] && builds+=("$BASE_DPTRAIN")

run() { # BINARY -> "step wait share"
  mpirun -n 2 --bind-to core "$1" --model "$model" --train data/mnist/train --test none \
    --steps "$steps" --threads 1 --quiet --no-progress --trace "$tmp/t.json" \
    --trace-steps "$((steps / 2 + 1)):$steps" > /dev/null
  /usr/bin/python3 - "$tmp/t.json" <<'EOF'
import json, statistics, sys
events = json.load(open(sys.argv[1]))
events = events["traceEvents"] if isinstance(events, dict) else events
steps, waits = {}, {}
for e in events:
    if e.get("ph") != "X" or e.get("tid") != 0:
        continue
    if e["name"].startswith("step "):
        steps.setdefault(e["pid"], []).append(e["dur"])
    elif e["name"] == "wait for gradients":
        waits.setdefault(e["pid"], []).append(e["dur"])
n = min(len(v) for v in list(steps.values()) + list(waits.values()))
step = [max(v[i] for v in steps.values()) for i in range(n)]
wait = [min(v[i] for v in waits.values()) for i in range(n)]
share = [(s - w) / s for s, w in zip(step, wait)]
print(f"{statistics.median(step) / 1e3:.3f} {statistics.median(wait) / 1e3:.3f} "
      f"{statistics.median(share):.4f}")
EOF
}

quiet_begin
echo "rank_wait: $model, 2 ranks x 1 thread, $steps steps (traced: the second half), $rounds rounds"
printf '%-40s %8s %8s %7s %6s\n' build "step ms" "wait ms" share 2x
declare -A all
for ((r = 1; r <= rounds; r++)); do
  for b in "${builds[@]}"; do
    read -r s w f < <(run "$b")
    all[$b]+="$s $w $f"$'\n'
    printf '%-40s %8s %8s %7s %6.3f\n' "$b" "$s" "$w" "$f" \
      "$(awk -v f="$f" 'BEGIN { print 2 * f }')"
  done
done
echo "medians over the rounds:"
spreads=()
for b in "${builds[@]}"; do
  s=$(awk 'NF {print $1}' <<< "${all[$b]}" | median)
  w=$(awk 'NF {print $2}' <<< "${all[$b]}" | median)
  f=$(awk 'NF {print $3}' <<< "${all[$b]}" | median)
  printf '%-40s %8s %8s %7s %6.3f\n' "$b" "$s" "$w" "$f" "$(awk -v f="$f" 'BEGIN { print 2 * f }')"
  mapfile -t v < <(awk 'NF {print $1}' <<< "${all[$b]}")
  spreads+=("$(spread_percent "${v[@]}")")
done
quiet_end "$(printf '%s\n' "${spreads[@]}" | sort -g | tail -1)"
