#!/usr/bin/env bash
# bench/quiet.sh's verdict on hand-made /proc files: quiet; steal over the bound; a load
# average over it; repeated runs spread over it; and spread_percent itself.
source "$(dirname "$0")/lib.sh"
source "$DP_SOURCE_DIR/bench/quiet.sh"
export QUIET_PROC=$WORK/proc
mkdir -p "$QUIET_PROC"
printf 'processor\t: 0\nmodel name\t: Test CPU 9000\nprocessor\t: 1\nmodel name\t: Test CPU 9000\n' \
  > "$QUIET_PROC/cpuinfo"
# stat USER IDLE STEAL: the first line of /proc/stat (user nice system idle iowait irq softirq steal)
stat() { printf 'cpu  %d 0 0 %d 0 0 0 %d 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n' "$1" "$2" "$3" > "$QUIET_PROC/stat"; }
load() { echo "$1 0.20 0.10 1/80 1234" > "$QUIET_PROC/loadavg"; }
# verdict ARGS...: quiet_begin, the counters move as "stat" says, quiet_end ARGS
verdict() { load "$1"; stat 1000 5000 100; quiet_begin; stat "$2" "$3" "$4"; shift 4; quiet_end "$@"; }

out=$(verdict 0.10 1900 5900 100 3.0)  # 1800 ticks, no steal, spread 3%
echo "$out"
[[ $out == "quiet check: Test CPU 9000, 2 cores; load 0.10 at the start; steal 0.0%; runs spread 3.0%; quiet" ]] ||
  fail "a quiet run: $out"
out=$(verdict 0.10 1900 5810 190)      # 90 of 1800 ticks stolen: 5%
echo "$out"
[[ $out == *"steal 5.0%; NOT QUIET: the hypervisor took 5.0% of the CPU time" ]] || fail "steal: $out"
out=$(verdict 0.10 1900 5882 118)      # 18 of 1800: 1.0%, at the bound, quiet
[[ $out == *"steal 1.0%; quiet" ]] || fail "steal at the bound: $out"
out=$(verdict 1.50 1900 5900 100 2)    # 1.5 > 0.5 x 2 cores
echo "$out"
[[ $out == *"NOT QUIET: load 1.50 at the start" ]] || fail "load: $out"
out=$(verdict 0.10 1900 5900 100 12.5)
echo "$out"
[[ $out == *"NOT QUIET: repeated runs spread 12.5%" ]] || fail "spread: $out"
out=$(QUIET_MAX_SPREAD=15 verdict 0.10 1900 5900 100 12.5)
[[ $out == *"; quiet" ]] || fail "QUIET_MAX_SPREAD=15 and 12.5%: $out"
out=$(verdict 2.00 1900 5810 190 30)   # every reason at once, in order
[[ $out == *"NOT QUIET: load 2.00 at the start; the hypervisor took 5.0% of the CPU time; repeated runs spread 30.0%" ]] ||
  fail "all reasons: $out"

[[ $(spread_percent 100 110 105) == 10.0 ]] || fail "spread of 100 110 105: $(spread_percent 100 110 105)"
[[ $(spread_percent 5000) == 0 ]] || fail "spread of one figure"
[[ $(spread_percent 5000 4000 5200) == 30.0 ]] || fail "spread of 5000 4000 5200"
echo "quiet.sh: all verdicts as expected"
