# shellcheck shell=bash
# quiet.sh: was the machine quiet while a benchmark ran? Sourced by the bench scripts, which
# print its verdict under their figures, so that a figure taken on a busy host says so.
#
#   quiet_begin                  watches the CPUs for QUIET_SETTLE seconds (default 1) before
#                                the benchmark starts, then remembers the CPU counters
#   quiet_end [SPREAD_PERCENT]   prints one line: the CPU, how busy the CPUs were before the
#                                start, the share of the CPU time the hypervisor took (steal)
#                                during the run, the spread of the caller's repeated runs,
#                                and the verdict
#   spread_percent V1 V2 ...     100 * (max / min - 1) of repeated figures (for quiet_end)
#   median                       the median of the figures on stdin, one a line (blank
#                                lines skipped)
#   last_epoch FILE KEY...       the KEYs of a --metrics FILE's last epoch record, on one
#                                line (a balance record may follow it: not the last line)
#   slowest_rank FILE            from a --metrics FILE's balance record, the slowest rank's
#                                own speed over the fastest's (0.85), or - without one or
#                                with one rank
#   slowest_thread FILE          from its thread_shares (rank 0's balanced threads), the
#                                least share over the largest (0.85: the slower thread's
#                                speed over the faster's, once the shares follow them), or -
#   bench_pin ROUND THREADS      the prefix that pins a run of THREADS threads in round ROUND
#                                ("taskset -c LIST", or nothing: below)
#   bench_cpus                   the CPUs this shell may run on, one a line
#   bench_need_mnist             exits unless the prepared MNIST is in data/mnist (run from
#                                the repository root)
#   bench_pin_note THREADS       what bench_pin does, in words, for the benchmark's header
#   bench_pin_period THREADS     after how many rounds bench_pin comes back to the same CPUs
#                                (1: it pins nothing)
#   spread_pinned PERIOD V1 ...  the largest spread_percent among runs on the same CPUs (every
#                                PERIOD-th figure, from each of the first PERIOD): the spread
#                                of the machine's noise, not of its CPUs' difference; all the
#                                runs' spread where some CPU ran fewer than two
#
# Why pin: the virtual CPUs of one machine need not be equally fast. On the 2-core AMD Zen
# 5 of docs/performance.md, 2026-12-06, one CPU ran the reference step up to 34% slower
# than the other (15.3 against 11.8 ms), which one changing within minutes, with the same
# FMA peak, and so did PyTorch: two runs side by side on different CPUs compared the CPUs. bench_pin puts the runs of one round
# on the same THREADS CPUs and moves the rounds along the CPUs, so that every side of a
# comparison runs on each CPU as often; where THREADS takes every CPU it pins nothing.
# BENCH_PIN=0 turns pinning off; BENCH_CPUS ("0 1 ...") replaces the CPUs (for the tests).
#
# The verdict is "quiet", or "NOT QUIET" with the reasons: other processes kept the CPUs
# busy over QUIET_MAX_BUSY percent (default 10) in the second before the start (measured,
# where the load average would still count the previous benchmark's own processes), steal
# over QUIET_MAX_STEAL percent (default 1: another guest ran on our cores) or repeated runs
# spread over QUIET_MAX_SPREAD percent (default 10). On the 2-core virtual machines of
# docs/performance.md the host went through busy spells in which the same step ran 30-45%
# slower while nothing in the guest ran: steal and the spread of the runs are what the
# guest can see of them. QUIET_PROC is read in place of /proc (for the tests).

quiet_proc() { echo "${QUIET_PROC:-/proc}"; }

# "steal total busy" ticks over all CPUs, from the first line of stat (busy: user, nice,
# system, irq, softirq; not idle, iowait or steal)
quiet_ticks() {
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t, $2 + $3 + $4 + $7 + $8; exit }' \
    "$(quiet_proc)/stat"
}

quiet_settle() { sleep "${QUIET_SETTLE:-1}"; }

quiet_begin() {
  local t0 b0 s1 t1 b1
  quiet_settings || return 1
  read -r _ t0 b0 <<< "$(quiet_ticks)"
  quiet_settle
  read -r s1 t1 b1 <<< "$(quiet_ticks)"
  QUIET_BUSY0=$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN { printf "%.1f", (t > 0 ? 100 * b / t : 0) }')
  QUIET_STEAL0=$s1 QUIET_TOTAL0=$t1
}

spread_percent() {
  printf "%s\n" "$@" | awk 'NF { v = $1 + 0; if (n == 0 || v < lo) lo = v; if (n == 0 || v > hi) hi = v; n++ }
    END { if (n < 2 || lo <= 0) print 0; else printf "%.1f\n", 100 * (hi / lo - 1) }'
}

median() {
  awk 'BEGIN { OFMT = "%.10g" } NF { v[++n] = $1 } END {
    for (i = 2; i <= n; i++)
      for (k = i; k > 1 && v[k] + 0 < v[k - 1] + 0; k--) { x = v[k]; v[k] = v[k - 1]; v[k - 1] = x }
    if (n) print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

last_epoch() {
  python3 - "$@" <<'PY'
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
last = [r for r in recs if r.get("type", "epoch") == "epoch"][-1]
print(*(last[k] for k in sys.argv[2:]))
PY
}

slowest_rank() {
  python3 - "$1" <<'PY'
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
speeds = [r["samples_per_sec"] for r in recs if r.get("type") == "balance"][-1:]
ok = speeds and len(speeds[0]) > 1 and max(speeds[0]) > 0
print(f"{min(speeds[0]) / max(speeds[0]):.2f}" if ok else "-")
PY
}

slowest_thread() {
  python3 - "$1" <<'PY'
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
shares = [r.get("thread_shares") for r in recs if r.get("type") == "balance"][-1:]
ok = shares and shares[0] and len(shares[0]) > 1 and max(shares[0]) > 0
print(f"{min(shares[0]) / max(shares[0]):.2f}" if ok else "-")
PY
}

bench_need_mnist() {
  [[ -d data/mnist/train ]] || { echo "fetch the data first: datasets/fetch_mnist.sh" >&2; exit 1; }
}

bench_cpus() {
  if [[ -n ${BENCH_CPUS:-} ]]; then
    tr ' ' '\n' <<< "$BENCH_CPUS" | grep .
    return
  fi
  local list
  list=$(taskset -pc $$ 2> /dev/null | sed 's/.*: *//') || list=""
  if [[ -z $list ]]; then
    seq 0 $(($(nproc) - 1))
    return
  fi
  tr ',' '\n' <<< "$list" | while IFS=- read -r a b; do seq "$a" "${b:-$a}"; done
}

bench_pin() {
  local round=$1 threads=$2 cpus i list=()
  [[ ${BENCH_PIN:-1} == 0 ]] && return 0
  command -v taskset > /dev/null || return 0
  mapfile -t cpus < <(bench_cpus)
  (( threads < ${#cpus[@]} )) || return 0
  for ((i = 0; i < threads; i++)); do
    list+=("${cpus[$(((round * threads + i) % ${#cpus[@]}))]}")
  done
  local IFS=,
  echo "taskset -c ${list[*]}"
}

bench_pin_note() {
  local cpus
  cpus=$(bench_cpus | tr '\n' ' ')
  if [[ ${BENCH_PIN:-1} == 0 ]]; then
    echo "not pinned (BENCH_PIN=0)"
  elif ! command -v taskset > /dev/null; then
    echo "not pinned (no taskset)"
  elif [[ -z $(bench_pin 0 "$1") ]]; then
    echo "not pinned: $1 thread(s) take every CPU (${cpus% })"
  else
    echo "pinned: the runs of a round on the same $1 CPU(s), the rounds in turn over CPUs ${cpus% }"
  fi
}

bench_pin_period() {
  [[ -n $(bench_pin 0 "$1") ]] || { echo 1; return 0; }
  local n a b t
  n=$(bench_cpus | grep -c .)
  a=$n b=$1
  while ((b)); do t=$((a % b)) a=$b b=$t; done
  echo $((n / a))
}

spread_pinned() {
  local period=$1 g i worst=0 v grp
  shift
  v=("$@")
  if (( ${#v[@]} < 2 * period )); then # some CPU ran fewer than two: all the runs' spread
    spread_percent "${v[@]}"
    return
  fi
  for ((g = 0; g < period; g++)); do
    grp=()
    for ((i = g; i < ${#v[@]}; i += period)); do grp+=("${v[$i]}"); done
    worst=$(printf "%s\n" "$worst" "$(spread_percent "${grp[@]}")" | sort -g | tail -1)
  done
  echo "$worst"
}

# quiet_number NAME VALUE: VALUE must be a number (a bound given in the environment)
quiet_number() {
  [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] && return 0
  echo "quiet.sh: $1 must be a number (a percentage), got '$2'" >&2
  return 1
}

# the bounds and the settle time, checked before the benchmark starts and again at its end
quiet_settings() {
  quiet_number QUIET_SETTLE "${QUIET_SETTLE:-1}" &&
    quiet_number QUIET_MAX_BUSY "${QUIET_MAX_BUSY:-10}" &&
    quiet_number QUIET_MAX_STEAL "${QUIET_MAX_STEAL:-1}" &&
    quiet_number QUIET_MAX_SPREAD "${QUIET_MAX_SPREAD:-10}"
}

quiet_end() {
  local spread=${1:-} steal total cores model
  quiet_settings || return 1
  read -r steal total _ <<< "$(quiet_ticks)"
  cores=$(grep -c '^processor' "$(quiet_proc)/cpuinfo")
  model=$(sed -n 's/^model name[[:space:]]*: *//p' "$(quiet_proc)/cpuinfo" | head -1)
  awk -v s0="$QUIET_STEAL0" -v t0="$QUIET_TOTAL0" -v s1="$steal" -v t1="$total" \
      -v others="$QUIET_BUSY0" -v cores="$cores" -v spread="$spread" -v model="$model" \
      -v max_busy="${QUIET_MAX_BUSY:-10}" -v max_steal="${QUIET_MAX_STEAL:-1}" \
      -v max_spread="${QUIET_MAX_SPREAD:-10}" '
    BEGIN {
      st = (t1 > t0) ? 100 * (s1 - s0) / (t1 - t0) : 0
      why = ""
      if (others > max_busy) why = why sprintf("; the CPUs were %.1f%% busy before the start", others)
      if (st > max_steal) why = why sprintf("; the hypervisor took %.1f%% of the CPU time", st)
      if (spread != "" && spread > max_spread) why = why sprintf("; repeated runs spread %.1f%%", spread)
      line = sprintf("quiet check: %s, %d cores; %.1f%% busy before the start; steal %.1f%%", model, cores, others, st)
      if (spread != "") line = line sprintf("; runs spread %.1f%%", spread)
      print line (why == "" ? "; quiet" : "; NOT QUIET: " substr(why, 3))
    }'
}
