#!/usr/bin/env bash
# compare_builds.sh: two dptrain binaries side by side on the same training, alternating
# runs so that a machine's drift hits both alike; prints each run, the medians of images/s,
# peak resident memory per rank and the share of the time spent waiting for the gradient
# reduction, and the ratio new/old.
#
#   bench/compare_builds.sh OLD_DPTRAIN NEW_DPTRAIN [RANKS [REPS [dptrain options...]]]
#
# Default: 2 ranks, 5 repetitions, 200 steps of the reference model on data/mnist, no test
# set, 1 thread per rank. Example (the exact gradient sum against the float sum it replaced):
#   git worktree add /tmp/old 94d66ef && cmake -S /tmp/old -B /tmp/old/build && \
#     cmake --build /tmp/old/build --target dptrain
#   bench/compare_builds.sh /tmp/old/build/dptrain build/dptrain 8 5
# Where RANKS x --threads (given among the options; else every CPU) is below the CPUs, the
# two runs of a pair share the same CPUs and the pairs move along them (bench/quiet.sh:
# bench_pin): a virtual machine's CPUs need not be equally fast.
set -euo pipefail
old=${1:?old dptrain}
new=${2:?new dptrain}
ranks=${3:-2}
reps=${4:-5}
shift $(($# < 4 ? $# : 4))
extra=("$@")
[[ ${#extra[@]} -gt 0 ]] || extra=(--steps 200 --threads 1)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh"
quiet_begin
mpi_oversubscribe_if_needed "$ranks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "compare_builds: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "compare_builds: $ranks ranks, $reps alternating runs each: ${extra[*]}"
threads=$(nproc) # dptrain's default takes every CPU: nothing to pin
for ((i = 0; i + 1 < ${#extra[@]}; i++)); do
  if [[ ${extra[$i]} == --threads ]]; then threads=${extra[$((i + 1))]}; fi
done
[[ $threads =~ ^[1-9][0-9]*$ ]] || threads=$(nproc)
echo "compare_builds: $(bench_pin_note $((ranks * threads)))"
run() { # run BINARY TAG: one training, prints images/s, peak RSS, share waiting for the reduction
  local m=$work/$2.jsonl
  rm -f "$m"
  # --bind-to none: Open MPI binds each of 1 or 2 ranks to one core by default, which
  # would put all of a rank's --threads on that core
  "${pin[@]}" mpirun -n "$ranks" --bind-to none "$1" --train "$repo/data/mnist/train" \
    --test none --no-progress --quiet --metrics "$m" "${extra[@]}" > /dev/null
  last_epoch "$m" images_per_sec max_rss_mib comm_seconds seconds |
    awk '{ print $1, $2, 100 * $3 / $4 }'
}
: > "$work/old.txt"; : > "$work/new.txt"
for i in $(seq "$reps"); do
  read -ra pin <<< "$(bench_pin "$i" $((ranks * threads)))"
  a=$(run "$old" old); b=$(run "$new" new)
  read -r ai am aw <<< "$a"; read -r bi bm bw <<< "$b"
  echo "run $i: old $ai img/s $am MiB ${aw%.*}% waiting | new $bi img/s $bm MiB ${bw%.*}% waiting"
  echo "$a" >> "$work/old.txt"; echo "$b" >> "$work/new.txt"
done
python3 - "$work/old.txt" "$work/new.txt" <<'PY'
import statistics, sys
old = [list(map(float, l.split())) for l in open(sys.argv[1])]
new = [list(map(float, l.split())) for l in open(sys.argv[2])]
mo, mn = statistics.median(r[0] for r in old), statistics.median(r[0] for r in new)
print(f"median images/s: old {mo:.0f}, new {mn:.0f}; new/old {mn / mo:.3f} "
      f"(step time new/old {mo / mn:.3f})")
print(f"peak RSS per rank (MiB, largest rank): old {statistics.median(r[1] for r in old):.0f}, "
      f"new {statistics.median(r[1] for r in new):.0f}")
print(f"share of the time waiting for the gradient reduction: old "
      f"{statistics.median(r[2] for r in old):.1f}%, new {statistics.median(r[2] for r in new):.1f}%")
PY
# shellcheck disable=SC2046
# the spreads among the runs on the same CPUs (quiet.sh: spread_pinned)
period=$(bench_pin_period $((ranks * threads)))
quiet_end "$( (spread_pinned "$period" $(cut -d' ' -f1 "$work/old.txt")
               spread_pinned "$period" $(cut -d' ' -f1 "$work/new.txt")) | sort -n | tail -1)"
