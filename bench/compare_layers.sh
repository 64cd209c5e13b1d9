#!/usr/bin/env bash
# compare_layers.sh: each layer of a model alone, forward and backward, dptrain's
# (build/bench/bench_layers --layers-only) beside PyTorch's at its best
# (bench/torch_layers.py), same shapes, batch 100, same threads, alternating round by
# round; prints per layer and direction the medians in ms, GFLOP/s and the fraction of the
# FMA peak of the path dptrain runs on (measured by bench_layers in the same rounds) for
# both, and how many times faster dptrain is; then bench/quiet.sh's verdict on the spread
# of dptrain's per-round totals.
#   bench/compare_layers.sh [ROUNDS (default 5)] [MODEL (default reference)]
#                           [THREADS (default 1)] [CONV (default direct)]
# CONV: dptrain's --conv-algorithm (GFLOP/s count the direct convolution's work either way,
# as bench_layers counts them). Each layer runs alone and unfused on both sides: the trainer
# fuses relu and max pooling into the convolutions (the whole step beside PyTorch's:
# bench/compare_pytorch.sh). Exits 1 if the two sides' layers, output shapes or work
# differ. Below as many threads as CPUs, the two sides of a round run on the same CPUs
# (bench/quiet.sh: bench_pin; BENCH_PIN=0: not pinned). BENCH_LAYERS names another
# bench_layers (default build/bench/bench_layers), COMPARE_LAYERS_REPS the calls a layer
# per round (default 20; nopool 8).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
model=${2:-reference}
threads=${3:-1}
conv=${4:-direct}
ours=${BENCH_LAYERS:-$repo/build/bench/bench_layers}
py=${DP_PYTHON:-/usr/bin/python3}
[[ -x "$ours" ]] || { echo "build first: cmake --build build (needs $ours)" >&2; exit 1; }
usage() { echo "compare_layers.sh: $*" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage "ROUNDS: expected a whole number >= 1, got '$rounds'"
[[ $model == reference || $model == nopool ]] ||
  usage "MODEL: expected reference or nopool, got '$model'"
[[ $threads =~ ^[1-9][0-9]*$ ]] || usage "THREADS: expected a whole number >= 1, got '$threads'"
source "$repo/bench/torch-env.sh"
source "$repo/bench/quiet.sh"
torch_at_its_best
reps=${COMPARE_LAYERS_REPS:-20}
[[ $model == nopool ]] && reps=${COMPARE_LAYERS_REPS:-8}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
quiet_begin
for ((r = 0; r < rounds; r++)); do
  read -ra pin <<< "$(bench_pin "$r" "$threads")"
  OMP_PROC_BIND=false "${pin[@]}" "$ours" --model "$model" --threads "$threads" --reps "$reps" \
    --layers-only --conv-algorithm "$conv" > "$out/dptrain.$r"
  "${pin[@]}" "$py" "$repo/bench/torch_layers.py" --model "$model" --threads "$threads" \
    --reps "$reps" > "$out/torch.$r"
done
echo "compare_layers: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load" \
     "$(cut -d' ' -f1-3 /proc/loadavg); $model, batch 100, $threads thread(s), $rounds rounds" \
     "of $reps calls a layer; dptrain: $(sed -n 's/.*layers alone on //p' "$out/dptrain.0")"
echo "compare_layers: $(bench_pin_note "$threads")"
"$py" - "$out" "$rounds" <<'EOF'
import statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])


def table(path):
    """{layer: (shape, fwd ms, fwd GF/s, bwd ms, bwd GF/s[, fwd MFLOP, bwd MFLOP])} in
    order, and the peak (dptrain's table only)."""
    rows, peak = {}, None
    for line in open(path):
        w = line.split()
        if line.startswith("kernels:"):
            peak = float(line.split("FMA peak ")[1].split()[0])
        if len(w) >= 6 and "x" in w[1] and w[1].replace("x", "").isdigit():
            nums = [float(v) for v in w[2:] if not v.endswith("%")]
            rows[w[0]] = (w[1], *nums)
    return rows, peak


ours, peaks = zip(*(table(f"{out}/dptrain.{r}") for r in range(rounds)))
theirs = [table(f"{out}/torch.{r}")[0] for r in range(rounds)]
names = list(ours[0])
for r in range(rounds):
    a = [(k, v[0]) for k, v in ours[r].items()]
    b = [(k, v[0]) for k, v in theirs[r].items()]
    if a != b or not a:
        sys.exit(f"compare_layers.sh: the layers differ: dptrain {a}, PyTorch {b}")
peak = statistics.median(peaks)
# the work of each layer and direction: torch_layers.py's count, which dptrain's figures
# must give too (GF/s x ms, to their rounding), or the two did not run the same layers
work = {n: (theirs[0][n][5], theirs[0][n][6]) for n in names}
for n in names:
    for d, (ms, gf) in enumerate(((1, 2), (3, 4))):
        t = ours[0][n]
        # 2%, beside the rounding of the printed GF/s (0.05) and ms (0.0005)
        tol = 0.02 * work[n][d] + 0.05 * t[ms] + 0.0005 * t[gf] + 0.05
        if t[ms] >= 0.1 and abs(t[ms] * t[gf] - work[n][d]) > tol:
            sys.exit(f"compare_layers.sh: {n}: dptrain did {t[ms] * t[gf]:.1f} MFLOP, "
                     f"PyTorch's layer {work[n][d]:.1f}")


def med(side, name, col):
    return statistics.median(t[name][col] for t in side)


for direction, ms, gf in (("forward", 1, 2), ("backward", 3, 4)):
    print(f"\n{direction:<25} {'dptrain':^21}   {'PyTorch':^21}   dptrain")
    print(f"{'layer':<10} {'shape':<14} {'ms':>7} {'GF/s':>7} {'peak':>5}   "
          f"{'ms':>7} {'GF/s':>7} {'peak':>5}   faster")
    tot = [0.0, 0.0]
    for n in names:
        a, b = med(ours, n, ms), med(theirs, n, ms)
        flops = work[n][ms // 3]
        ga, gb = (flops / a if a else 0.0), (flops / b if b else 0.0)
        tot = [tot[0] + a, tot[1] + b]
        cols = (f"{ga:7.1f} {100 * ga / peak:4.0f}%" if flops else f"{'':7} {'':5}",
                f"{gb:7.1f} {100 * gb / peak:4.0f}%" if flops else f"{'':7} {'':5}")
        print(f"{n:<10} {ours[0][n][0]:<14} {a:7.3f} {cols[0]}   {b:7.3f} {cols[1]}   "
              f"{b / a if a else 0:6.2f}x")
    print(f"{'all layers':<25} {tot[0]:7.3f} {'':13}   {tot[1]:7.3f} {'':13}   "
          f"{tot[1] / tot[0]:6.2f}x")
print(f"\n(medians of {rounds} alternating rounds; FMA peak {peak:.1f} GFLOP/s, the path's, "
      f"times the threads; faster: PyTorch's ms / dptrain's)")
# dptrain's total of each round, for the spread among the rounds on the same CPUs
with open(f"{out}/totals", "w") as f:
    for t in ours:
        print(sum(v[1] + v[3] for v in t.values()), file=f)
EOF
# shellcheck disable=SC2046
quiet_end "$(spread_pinned "$(bench_pin_period "$threads")" $(cat "$out/totals"))"
