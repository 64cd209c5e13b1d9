#!/usr/bin/env bash
# compare_traces.sh: two builds' training step span by span, from dptrain's own trace
# (--trace, docs/trace.md): each build trains STEPS steps of the reference model on the
# prepared MNIST, alternating run by run, and records steps 30 to STEPS; prints, for each
# span the trace names (a layer's forward and backward, the loss, the wait for the sum,
# the update), the median microseconds of each run side by side and old / new over the
# runs' medians (above 1: the new build is faster).
#
#   bench/compare_traces.sh OLD_DPTRAIN NEW_DPTRAIN [ROUNDS (default 2)] [THREADS (default 1)]
#                           [STEPS (default 80)] [dptrain options...]
#
# Example (a change against its parent):
#   git worktree add /tmp/old HEAD~1 && cmake -S /tmp/old -B /tmp/old/build \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/old/build --target dptrain
#   bench/compare_traces.sh /tmp/old/build/dptrain build/dptrain 2 1
#
# One rank; below as many threads as CPUs the two runs of a round share the same CPUs and
# the rounds move along them (bench/quiet.sh: bench_pin), as in compare_steps.sh. Bad
# arguments exit 2, a run that fails exits 1, each naming it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/bench/quiet.sh"
old=${1:?old dptrain}
new=${2:?new dptrain}
rounds=${3:-2}
threads=${4:-1}
steps=${5:-80}
shift $(($# < 5 ? $# : 5))
py=${DP_PYTHON:-/usr/bin/python3}
usage() { echo "compare_traces.sh: $*" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage "ROUNDS: expected a whole number >= 1, got '$rounds'"
[[ $threads =~ ^[1-9][0-9]*$ ]] || usage "THREADS: expected a whole number >= 1, got '$threads'"
[[ $steps =~ ^[0-9]+$ ]] && (( steps > 30 )) ||
  usage "STEPS: expected a whole number above 30 (steps 1-29 warm up), got '$steps'"
# (the builds by absolute path, as the runs may start elsewhere)
for side in old new; do
  if [[ ${!side} == */* && ${!side} != /* && -e ${!side} ]]; then
    printf -v "$side" '%s/%s' "$(cd "$(dirname "${!side}")" && pwd)" "$(basename "${!side}")"
  fi
done
# the prepared MNIST from the repository, unless the options name the data (--train)
if [[ " $* " != *" --train "* ]]; then
  cd "$repo"
  bench_need_mnist
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "compare_traces: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "load $(cut -d' ' -f1-3 /proc/loadavg); $threads thread(s), steps 30-$steps, $rounds rounds $*"
echo "compare_traces: $(bench_pin_note "$threads")"
files=()
for ((i = 0; i < rounds; i++)); do
  read -ra pin <<< "$(bench_pin "$i" "$threads")"
  for side in old new; do
    bin=$old
    [[ $side == new ]] && bin=$new
    f="$tmp/$i-$side.json"
    "${pin[@]}" "$bin" --threads "$threads" --steps "$steps" --test none --trace "$f" \
      --trace-steps "30:$steps" "$@" > "$tmp/out" 2>&1 ||
      { echo "compare_traces.sh: $bin failed:" >&2; tail -5 "$tmp/out" >&2; exit 1; }
    files+=("$f")
  done
done
"$py" - "${files[@]}" <<'EOF'
import json, statistics, sys
def spans(path):
    with open(path) as f:
        d = json.load(f)
    ev = d["traceEvents"] if isinstance(d, dict) else d
    by = {}
    for e in ev:
        if e.get("ph") == "X" and not e["name"].startswith("step "):
            by.setdefault(e["name"], []).append(e["dur"])
    return {k: statistics.median(v) for k, v in by.items()}
runs = [spans(p) for p in sys.argv[1:]]
old, new = runs[0::2], runs[1::2]
names = sorted(set().union(*runs), key=lambda k: -max(r.get(k, 0) for r in runs))
head = "".join("%9s" % ("old" if i % 2 == 0 else "new") for i in range(len(runs)))
print("%-24s%s  old / new" % ("span (median us)", head))
for k in names:
    if max(r.get(k, 0) for r in runs) < 5:
        continue
    o = statistics.median(r.get(k, 0) for r in old)
    n = statistics.median(r.get(k, 0) for r in new)
    cells = "".join("%9.1f" % r.get(k, 0) for r in runs)
    print("%-24s%s  %9s" % (k[:24], cells, "%.3f" % (o / n) if n else "-"))
EOF
