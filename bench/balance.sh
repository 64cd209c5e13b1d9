#!/usr/bin/env bash
# balance.sh: --balance on against off, side by side: 2 ranks x 1 thread on the first two
# CPUs this shell may use (one rank bound to each), or with SHAPE threads 1 rank x 2
# threads there (one thread bound to each), training the reference model on MNIST for
# STEPS steps without evaluation, the two settings alternating (which goes first
# alternates too) over ROUNDS rounds; prints each run's images/s, the share of the samples
# of rank 0 (threads: of thread 0, at the end) and the slowest rank's speed against the
# fastest's, the medians, on/off.
#   bench/balance.sh [ROUNDS (default 5)] [STEPS (default 600)] [BUSY (default 0)] [MODEL]
#                    [SHAPE: ranks (default) or threads]
# BUSY=1 keeps the second CPU busy with a spinning shell for the whole benchmark (a core
# shared with another job): rank 1 (thread 1) then gets about half a core. The verdict of
# bench/quiet.sh then says NOT QUIET, by design.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
steps=${2:-600}
busy=${3:-0}
model=${4:-reference}
shape=${5:-ranks}
if [[ $shape != ranks && $shape != threads ]]; then
  echo "balance.sh: SHAPE is ranks or threads, not '$shape'" >&2
  exit 2
fi
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh"
cd "$repo"
bench_need_mnist
mapfile -t cpus < <(bench_cpus)
(( ${#cpus[@]} >= 2 )) || { echo "balance.sh: needs two CPUs" >&2; exit 1; }
tmp=$(mktemp -d)
spinner=
cleanup() { [[ -n $spinner ]] && kill "$spinner" 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
echo "balance: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
note=
((busy)) && note=", CPU ${cpus[1]} kept busy"
what="2 ranks x 1 thread"
[[ $shape == threads ]] && what="1 rank x 2 threads"
echo "balance: $model, $what on CPUs ${cpus[0]},${cpus[1]}, $steps steps, $rounds rounds$note"
quiet_begin
if ((busy)); then
  taskset -c "${cpus[1]}" bash -c 'while :; do :; done' &
  spinner=$!
fi
run() { # on|off -> "images/s share% slowest/fastest" (from the balance lines; off: no shares)
  rm -f "$tmp/m.jsonl"
  local opts=(--model "$model" --steps "$steps" --test none --no-progress
    --metrics "$tmp/m.jsonl" --balance "$1")
  if [[ $shape == threads ]]; then
    OMP_PLACES="{${cpus[0]}},{${cpus[1]}}" OMP_PROC_BIND=close build/dptrain --threads 2 \
      "${opts[@]}" > "$tmp/out.log"
  else
    taskset -c "${cpus[0]},${cpus[1]}" mpirun -n 2 --bind-to core build/dptrain --threads 1 \
      "${opts[@]}" > "$tmp/out.log"
  fi
  local ips share slow
  ips=$(last_epoch "$tmp/m.jsonl" images_per_sec)
  share=$(sed -nE 's/^balance: (the ranks|each rank.s threads).* 0: ([0-9.]+)%.*/\2/p' \
    "$tmp/out.log")
  slow=$(sed -nE 's/^balance: the ranks.*the slowest at ([0-9.]+)x.*/\1/p' "$tmp/out.log")
  echo "$ips ${share:-50.0} ${slow:--}"
}
: > "$tmp/on"; : > "$tmp/off"
for i in $(seq "$rounds"); do
  if ((i % 2)); then order=(off on); else order=(on off); fi
  line="round $i:"
  for b in "${order[@]}"; do
    r=$(run "$b")
    echo "$r" >> "$tmp/$b"
    line+=" $b $(cut -d' ' -f1 <<< "$r") img/s (${shape%s} 0 $(cut -d' ' -f2 <<< "$r")%"
    [[ $shape == ranks ]] && line+=", slowest rank $(cut -d' ' -f3 <<< "$r")x"
    line+=")"
  done
  echo "$line"
done
on=$(cut -d' ' -f1 "$tmp/on" | median)
off=$(cut -d' ' -f1 "$tmp/off" | median)
echo "median images/s: off $off, on $on; on/off $(python3 -c "print(f'{$on / $off:.3f}')")"
echo "${shape%s} 0's share with --balance on: $(cut -d' ' -f2 "$tmp/on" | median)% (median)"
# shellcheck disable=SC2046
quiet_end "$( (spread_percent $(cut -d' ' -f1 "$tmp/on")
               spread_percent $(cut -d' ' -f1 "$tmp/off")) | sort -n | tail -1)"
