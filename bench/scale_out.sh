#!/usr/bin/env bash
# scale_out.sh: ranks and threads from 1 to the machine's cores, on the prepared MNIST
# (data/mnist), and the weights after 40 steps under every launch shape.
#   bench/scale_out.sh [MAX (default: the cores)] [ROUNDS (default 3)] [STEPS (default 200)]
# Takes P = 1, 2, 4, ... up to MAX (and MAX itself):
# 1. Bits: the weights checksum after 40 steps (reference model, global batch 100) for
#    P ranks x 1 thread, 1 rank x P threads, a mixed shape and every instruction-set path
#    (`--isa`, on 1 rank x min(MAX, 8) threads; a path the CPU lacks shows "refused");
#    they must all be equal ("same", else "DIFFER" and exit status 1).
# 2. Strong scaling, global batch 100: P ranks x 1 thread and 1 rank x P threads.
# 3. Weak scaling, 100 images per rank: P ranks x 1 thread at global batch 100 P.
# Every configuration runs STEPS steps without evaluation, once per round, the rounds
# alternating the configurations; medians, their speed-up over 1 x 1 and the efficiency
# (speed-up / cores used). Ends with the quiet check (bench/quiet.sh). DPTRAIN=path picks
# the binary (default build/dptrain, else dptrain on PATH); SCALE_OUT_DATA another training
# set (default data/mnist/train), SCALE_OUT_BITS_STEPS the steps of part 1 (default 40).
# ~4 minutes on 16 cores.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
max=${1:-$(nproc)}
rounds=${2:-3}
steps=${3:-200}
for v in "MAX=$max" "ROUNDS=$rounds" "STEPS=$steps" "SCALE_OUT_BITS_STEPS=${SCALE_OUT_BITS_STEPS:-40}"; do
  [[ "${v#*=}" =~ ^[1-9][0-9]*$ ]] ||
    { echo "scale_out.sh: ${v%%=*} '${v#*=}': expected a positive integer" >&2; exit 1; }
done
dptrain=${DPTRAIN:-$repo/build/dptrain}
[[ -x "$dptrain" ]] || dptrain=$(command -v dptrain || true)
[[ -x "$dptrain" ]] || { echo "scale_out.sh: no dptrain (build it, or set DPTRAIN)" >&2; exit 1; }
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh"
cd "$repo"
data=${SCALE_OUT_DATA:-data/mnist/train}
bits_steps=${SCALE_OUT_BITS_STEPS:-40}
[[ -e $data ]] || { echo "scale_out.sh: $data: no such training set (datasets/fetch_mnist.sh fetches MNIST)" >&2; exit 1; }
mpi_oversubscribe_if_needed "$max"
quiet_begin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ps=()
for ((p = 1; p < max; p *= 2)); do ps+=("$p"); done
ps+=("$max")
echo "== $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u '+%F %H:%M UTC'); P = ${ps[*]}"
echo "== $("$dptrain" --train "$data" --steps 1 --test none --no-progress 2>&1 | grep -m1 '^kernels:' || true)"

train() { # RANKS THREADS BATCH STEPS [ARGS...] -> the run's output
  local n=$1 t=$2 b=$3 s=$4
  shift 4
  mpirun -n "$n" --bind-to none "$dptrain" --train "$data" --threads "$t" --batch "$b" \
    --steps "$s" --test none --no-progress "$@"
}
checksum() { grep -oE 'checksum [0-9a-f]{16}' | cut -d' ' -f2; }

echo "== 1. the weights after $bits_steps steps, global batch 100"
declare -A sums
shapes=()
for p in "${ps[@]}"; do shapes+=("$p 1"); [[ $p -gt 1 ]] && shapes+=("1 $p"); done
[[ $max -ge 4 ]] && shapes+=("$((max / 4)) 4")
for s in "${shapes[@]}"; do
  read -r n t <<<"$s"
  sums["$n ranks x $t threads"]=$(train "$n" "$t" 100 "$bits_steps" | checksum)
done
it=$((max < 8 ? max : 8)) # the scalar path is ~100x slower: all the threads it can use
for isa in avx512 avx2 scalar; do
  sums["1 rank x $it threads, --isa $isa"]=$(train 1 "$it" 100 "$bits_steps" --isa "$isa" 2>/dev/null | checksum || echo "refused")
done
for k in "${!sums[@]}"; do printf "%-36s %s\n" "$k" "${sums[$k]}"; done | sort -n
verdict=same
for k in "${!sums[@]}"; do
  [[ ${sums[$k]} == refused || ${sums[$k]} == "${sums["1 ranks x 1 threads"]}" ]] || verdict=DIFFER
done
echo "weights under every shape and path: $verdict"

echo "== 2-3. images/s, $steps steps, medians of $rounds rounds"
configs=()
for p in "${ps[@]}"; do configs+=("strong $p 1"); done
for p in "${ps[@]:1}"; do configs+=("strong 1 $p"); done
for p in "${ps[@]:1}"; do configs+=("weak $p 1"); done
declare -A ips
for ((r = 0; r < rounds; r++)); do
  for c in "${configs[@]}"; do
    read -r kind n t <<<"$c"
    b=100; [[ $kind == weak ]] && b=$((100 * n))
    rm -f "$tmp/m.jsonl"
    train "$n" "$t" "$b" "$steps" --quiet --metrics "$tmp/m.jsonl" >/dev/null
    ips[$c]+="$(sed -nE 's/.*"images_per_sec":([0-9.]+).*/\1/p' "$tmp/m.jsonl" | tail -1) "
  done
done
base=$(echo "${ips["strong 1 1"]}" | tr ' ' '\n' | median)
printf "%-8s %-22s %12s %9s %11s %8s\n" scaling configuration images/s speed-up efficiency spread
worst=0
for c in "${configs[@]}"; do
  read -r kind n t <<<"$c"
  v=$(echo "${ips[$c]}" | tr ' ' '\n' | median)
  # shellcheck disable=SC2086
  sp=$(spread_percent ${ips[$c]})
  worst=$(printf "%s\n" "$worst" "$sp" | sort -n | tail -1)
  awk -v k="$kind" -v c="$n rank(s) x $t thread(s)" -v v="$v" -v b="$base" -v u=$((n * t)) -v sp="$sp" \
    'BEGIN { printf "%-8s %-22s %12.0f %9.2f %10.0f%% %7s%%\n", k, c, v, v / b, 100 * v / b / u, sp }'
done
echo "(reference model; strong: global batch 100; weak: 100 per rank; training set $data)"
quiet_end "$worst"
[[ $verdict == same ]]
