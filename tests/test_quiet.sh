#!/usr/bin/env bash
# bench/quiet.sh's verdict on hand-made /proc files: quiet; steal over the bound; CPUs busy
# before the start over it; repeated runs spread over it; spread_percent and median.
source "$(dirname "$0")/lib.sh"
source "$DP_SOURCE_DIR/bench/quiet.sh"
export QUIET_PROC=$WORK/proc
mkdir -p "$QUIET_PROC"
printf 'processor\t: 0\nmodel name\t: Test CPU 9000\nprocessor\t: 1\nmodel name\t: Test CPU 9000\n' \
  > "$QUIET_PROC/cpuinfo"
# stat USER IDLE STEAL: the first line of /proc/stat (user nice system idle iowait irq softirq steal)
stat() { printf 'cpu  %d 0 0 %d 0 0 0 %d 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n' "$1" "$2" "$3" > "$QUIET_PROC/stat"; }
# verdict BUSY USER IDLE STEAL [SPREAD]: in the second before the start BUSY of 200 ticks
# are user time; during the run USER, IDLE and STEAL ticks pass; quiet_end SPREAD
verdict() {
  local u=$((800 + $1)) i=$((5000 - $1))
  stat 800 4800 100
  quiet_settle() { stat "$u" "$i" 100; }
  quiet_begin
  stat "$((u + $2))" "$((i + $3))" "$((100 + $4))"
  shift 4
  quiet_end "$@"
}

out=$(verdict 2 900 900 0 3.0)    # 1% busy before; 1800 ticks, no steal; spread 3%
echo "$out"
[[ $out == "quiet check: Test CPU 9000, 2 cores; 1.0% busy before the start; steal 0.0%; runs spread 3.0%; quiet" ]] ||
  fail "a quiet run: $out"
out=$(verdict 2 900 810 90)       # 90 of 1800 ticks stolen: 5%
echo "$out"
[[ $out == *"steal 5.0%; NOT QUIET: the hypervisor took 5.0% of the CPU time" ]] || fail "steal: $out"
out=$(verdict 2 900 882 18)       # 18 of 1800: 1.0%, at the bound, quiet
[[ $out == *"steal 1.0%; quiet" ]] || fail "steal at the bound: $out"
out=$(verdict 60 900 900 0 2)     # 60 of 200 ticks busy before the start: 30%
echo "$out"
[[ $out == *"NOT QUIET: the CPUs were 30.0% busy before the start" ]] || fail "busy before: $out"
out=$(verdict 20 900 900 0 2)     # 10%, at the bound
[[ $out == *"10.0% busy before the start; steal 0.0%; runs spread 2.0%; quiet" ]] || fail "busy at the bound: $out"
out=$(verdict 2 900 900 0 12.5)
echo "$out"
[[ $out == *"NOT QUIET: repeated runs spread 12.5%" ]] || fail "spread: $out"
out=$(QUIET_MAX_SPREAD=15 verdict 2 900 900 0 12.5)
[[ $out == *"; quiet" ]] || fail "QUIET_MAX_SPREAD=15 and 12.5%: $out"
out=$(verdict 40 900 810 90 30)   # every reason at once, in order
[[ $out == *"NOT QUIET: the CPUs were 20.0% busy before the start; the hypervisor took 5.0% of the CPU time; repeated runs spread 30.0%" ]] ||
  fail "all reasons: $out"
# the real /proc: a line, whatever the verdict
out=$(QUIET_PROC=/proc QUIET_SETTLE=0.2 bash -c "source '$DP_SOURCE_DIR/bench/quiet.sh'; quiet_begin; quiet_end 1")
[[ $out == "quiet check: "*"% busy before the start; steal "*"%; runs spread 1.0%; "* ]] || fail "on /proc: $out"

# a bound that is not a number: a message naming it, and a failure
if out=$(QUIET_MAX_SPREAD=ten verdict 2 900 900 0 3 2>&1); then fail "QUIET_MAX_SPREAD=ten accepted: $out"; fi
[[ $out == *"QUIET_MAX_SPREAD must be a number (a percentage), got 'ten'"* ]] || fail "QUIET_MAX_SPREAD=ten: $out"
if out=$(QUIET_SETTLE=-1 quiet_begin 2>&1); then fail "QUIET_SETTLE=-1 accepted: $out"; fi
[[ $out == *"QUIET_SETTLE must be a number"* ]] || fail "QUIET_SETTLE=-1: $out"
# refused before the benchmark starts, not after it
if out=$(QUIET_MAX_STEAL=1% quiet_begin 2>&1); then fail "QUIET_MAX_STEAL=1% accepted at the start"; fi
[[ $out == *"QUIET_MAX_STEAL must be a number (a percentage), got '1%'"* ]] || fail "QUIET_MAX_STEAL=1%: $out"

[[ $(spread_percent 100 110 105) == 10.0 ]] || fail "spread of 100 110 105: $(spread_percent 100 110 105)"
[[ $(spread_percent 5000) == 0 ]] || fail "spread of one figure"
[[ $(spread_percent 5000 4000 5200) == 30.0 ]] || fail "spread of 5000 4000 5200"
# median: one figure a line, blank lines skipped, numbers ordered as numbers
[[ $(printf '100\n20\n3\n' | median) == 20 ]] || fail "median of 100 20 3: $(printf '100\n20\n3\n' | median)"
[[ $(printf '10\n\n4\n7\n1\n' | median) == 5.5 ]] || fail "median of 10 4 7 1"
[[ $(printf '10673.45\n9000\n11000.5\n' | median) == 10673.45 ]] || fail "median keeps the figure as given"
[[ $(printf '5000\n' | median) == 5000 ]] || fail "median of one figure"

# bench_pin: a round's runs on the same CPUs, the rounds in turn over the CPUs; nothing
# where the threads take every CPU or with BENCH_PIN=0
pin() { BENCH_CPUS=$1 bench_pin "$2" "$3"; }
[[ $(pin "0 1" 0 1) == "taskset -c 0" ]] || fail "round 0, 1 thread: $(pin "0 1" 0 1)"
[[ $(pin "0 1" 1 1) == "taskset -c 1" ]] || fail "round 1, 1 thread: $(pin "0 1" 1 1)"
[[ $(pin "0 1" 2 1) == "taskset -c 0" ]] || fail "round 2, 1 thread: $(pin "0 1" 2 1)"
[[ $(pin "4 6 8" 2 2) == "taskset -c 6,8" ]] || fail "round 2, 2 threads of 3 CPUs: $(pin "4 6 8" 2 2)"
[[ $(pin "0 1 2 3" 1 2) == "taskset -c 2,3" ]] || fail "round 1, 2 threads of 4: $(pin "0 1 2 3" 1 2)"
[[ -z $(pin "0 1" 0 2) ]] || fail "2 threads on 2 CPUs pinned: $(pin "0 1" 0 2)"
[[ -z $(BENCH_PIN=0 pin "0 1" 0 1) ]] || fail "BENCH_PIN=0 pinned"
[[ $(BENCH_CPUS="0 1" bench_pin_note 1) == "pinned: the runs of a round on the same 1 CPU(s), the rounds in turn over CPUs 0 1" ]] ||
  fail "note, 1 thread: $(BENCH_CPUS="0 1" bench_pin_note 1)"
[[ $(BENCH_CPUS="0 1" bench_pin_note 2) == "not pinned: 2 thread(s) take every CPU (0 1)" ]] ||
  fail "note, 2 threads: $(BENCH_CPUS="0 1" bench_pin_note 2)"
# the period of the rounds' CPUs, and the spread among the runs on the same CPUs
period() { BENCH_CPUS=$1 bench_pin_period "$2"; }
[[ $(period "0 1" 1) == 2 ]] || fail "period, 1 thread on 2 CPUs: $(period "0 1" 1)"
[[ $(period "0 1 2 3" 2) == 2 ]] || fail "period, 2 threads on 4 CPUs: $(period "0 1 2 3" 2)"
[[ $(period "0 1 2" 2) == 3 ]] || fail "period, 2 threads on 3 CPUs: $(period "0 1 2" 2)"
[[ $(period "0 1" 2) == 1 ]] || fail "period, 2 threads on 2 CPUs: $(period "0 1" 2)"
[[ $(BENCH_PIN=0 period "0 1" 1) == 1 ]] || fail "period with BENCH_PIN=0"
# CPU 0's runs 100 and 110, CPU 1's 200 and 210: 10.0, not the 110.0 of all four
[[ $(spread_pinned 2 100 200 110 210) == 10.0 ]] || fail "spread_pinned 2: $(spread_pinned 2 100 200 110 210)"
[[ $(spread_pinned 1 100 200 110 210) == 110.0 ]] || fail "spread_pinned 1: $(spread_pinned 1 100 200 110 210)"
[[ $(spread_pinned 2 100 200 130 220 110) == 30.0 ]] ||
  fail "spread_pinned 2, odd count: $(spread_pinned 2 100 200 130 220 110)"
# a CPU with one run only: the spread of all the runs
[[ $(spread_pinned 2 100 200 130) == 100.0 ]] || fail "spread_pinned 2, 3 runs: $(spread_pinned 2 100 200 130)"
# the real affinity mask: bench_cpus lists the CPUs this shell may use, and a pinned
# command runs on the one bench_pin names
mapfile -t real < <(bench_cpus)
(( ${#real[@]} == $(nproc) )) || fail "bench_cpus: ${real[*]}, nproc $(nproc)"
if (( ${#real[@]} >= 2 )); then
  read -ra p <<< "$(bench_pin 1 1)"
  got=$("${p[@]}" awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)
  [[ $got == "${real[1]}" ]] || fail "bench_pin 1 1 ran on CPUs $got, not ${real[1]}"
fi
# last_epoch: the last epoch record's figures, not the balance record after it
{ echo '{"type":"host","cpu":"x"}'
  echo '{"type":"epoch","epoch":1,"images_per_sec":900.5,"seconds":2.0}'
  echo '{"type":"step","step":3,"images_per_sec":1.0}'
  echo '{"type":"epoch","epoch":2,"images_per_sec":1000.25,"seconds":1.5}'
  echo '{"type":"balance","every":8,"ranks":2,"samples":[1,2],"samples_per_sec":[3,4]}'
} > "$WORK/m.jsonl"
got=$(last_epoch "$WORK/m.jsonl" images_per_sec seconds)
[[ $got == "1000.25 1.5" ]] || fail "last_epoch: '$got', not '1000.25 1.5'"
got=$(slowest_rank "$WORK/m.jsonl")
[[ $got == 0.75 ]] || fail "slowest_rank: '$got', not 0.75 (speeds 3 and 4)"
head -4 "$WORK/m.jsonl" > "$WORK/none.jsonl"
got=$(slowest_rank "$WORK/none.jsonl")
[[ $got == - ]] || fail "slowest_rank without a balance record: '$got', not -"
got=$(slowest_thread "$WORK/m.jsonl")
[[ $got == - ]] || fail "slowest_thread without thread shares: '$got', not -"
# one rank whose threads balanced: no slowest rank, the threads' shares
{ head -4 "$WORK/m.jsonl"
  echo '{"type":"balance","every":0,"ranks":1,"samples":[5],"samples_per_sec":[7],'\
'"thread_shares":[0.4,0.6],"thread_least":[0.8]}'
} > "$WORK/one.jsonl"
got=$(slowest_rank "$WORK/one.jsonl")
[[ $got == - ]] || fail "slowest_rank of one rank: '$got', not -"
got=$(slowest_thread "$WORK/one.jsonl")
[[ $got == 0.67 ]] || fail "slowest_thread: '$got', not 0.67 (shares 0.4 and 0.6)"
echo "quiet.sh: all verdicts as expected"
