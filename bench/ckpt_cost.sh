#!/usr/bin/env bash
# ckpt_cost.sh: what a checkpoint costs. One rank, 1 thread, pinned to one CPU, trains
# MODEL for STEPS steps on MNIST without evaluation, once without checkpoints and once with
# one after every step (--checkpoint-every 1 --keep 2), ROUNDS times, alternating; prints
# each run's seconds and minor page faults, the medians, and the cost of one checkpoint
# ((with - without) / STEPS). With BASE_DPTRAIN set, that build runs beside build/dptrain
# in every round (the same CPU, the same order), and the last line gives the ratio.
#   bench/ckpt_cost.sh [ROUNDS (default 3)] [MODEL (default nopool)] [STEPS (default 10)]
# Example (the memory kept between files, against the build before it):
#   git worktree add /tmp/old 3cc64e5 && cmake -S /tmp/old -B /tmp/old/build && \
#     cmake --build /tmp/old/build --target dptrain
#   BASE_DPTRAIN=/tmp/old/build/dptrain bench/ckpt_cost.sh 3
# The checkpoints go to a temporary directory under TMPDIR (default /tmp): where that is a
# RAM file system the figures leave out the disk. DPTRAIN=path picks this build's binary
# (default build/dptrain), CKPT_COST_DATA another training set (default data/mnist/train).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
model=${2:-nopool}
steps=${3:-10}
for v in "ROUNDS=$rounds" "STEPS=$steps"; do
  [[ "${v#*=}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "ckpt_cost.sh: ${v%%=*} '${v#*=}': expected a positive integer" >&2; exit 2; }
done
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh"
cd "$repo"
data=${CKPT_COST_DATA:-data/mnist/train}
[[ -n ${CKPT_COST_DATA:-} ]] || bench_need_mnist
builds=("${DPTRAIN:-build/dptrain}")
names=(new)
if [[ -n ${BASE_DPTRAIN:-} ]]; then
  builds=("$BASE_DPTRAIN" "${builds[0]}")
  names=(base new)
fi
for b in "${builds[@]}"; do
  [[ -x $b ]] ||
    { echo "ckpt_cost.sh: $b: no such program (build it, or set DPTRAIN)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "ckpt_cost: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), checkpoints in $(df -P "$tmp" | awk 'NR==2 {print $1}')"
echo "ckpt_cost: $model, $steps steps, 1 rank x 1 thread, $rounds rounds; $(bench_pin_note 1)"
quiet_begin
# run BINARY [OPTIONS...]: prints "seconds minor_faults" of one training (its children's
# resource use, read by Python so that no time(1) is needed)
run() {
  local bin=$1
  shift
  rm -rf "$tmp/ck"
  "${pin[@]}" /usr/bin/python3 - "$bin" --train "$data" --test none --model "$model" \
    --steps "$steps" --threads 1 --no-progress --quiet "$@" <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.perf_counter() - t:.3f} {u.ru_minflt}")
PY
}
for i in $(seq "$rounds"); do
  read -ra pin <<< "$(bench_pin "$i" 1)"
  for b in "${!builds[@]}"; do
    read -r s0 f0 <<< "$(run "${builds[$b]}")"
    read -r s1 f1 <<< "$(run "${builds[$b]}" --checkpoint-dir "$tmp/ck" --checkpoint-every 1 \
      --keep 2)"
    echo "round $i ${names[$b]}: without $s0 s ($f0 faults), with $s1 s ($f1 faults)"
    echo "$s0 $f0 $s1 $f1" >> "$tmp/${names[$b]}.txt"
  done
done
size=$(du -b "$tmp"/ck/ckpt-*.h5 2> /dev/null | tail -1 | cut -f1)
/usr/bin/python3 - "$steps" "${size:-0}" "${names[@]}" <<PY
import statistics, sys
steps, size, names = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
per = {}
for n in names:
    rows = [list(map(float, l.split())) for l in open(f"$tmp/{n}.txt")]
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    per[n] = (med[2] - med[0]) / steps
    print(f"{n}: median {med[0]:.2f} s without, {med[2]:.2f} s with checkpoints; faults "
          f"{med[1]:.0f} / {med[3]:.0f}; one checkpoint of {size / 1e6:.1f} MB: "
          f"{1e3 * per[n]:.0f} ms, {(med[3] - med[1]) / steps:.0f} faults")
if len(names) == 2:
    ratio = f"{per['base'] / per['new']:.2f}x" if per["new"] > 0 and per["base"] > 0 else \
        "none: a cost at or below zero is the noise of runs too short"
    print(f"one checkpoint, base/new: {ratio}")
PY
period=$(bench_pin_period 1)
# shellcheck disable=SC2046
spreads() {
  for n in "${names[@]}"; do spread_pinned "$period" $(cut -d' ' -f1 "$tmp/$n.txt"); done
}
quiet_end "$(spreads | sort -n | tail -1)"
