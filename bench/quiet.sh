# shellcheck shell=bash
# quiet.sh: was the machine quiet while a benchmark ran? Sourced by the bench scripts, which
# print its verdict under their figures, so that a figure taken on a busy host says so.
#
#   quiet_begin                  remembers the CPU counters and the load average
#   quiet_end [SPREAD_PERCENT]   prints one line: the CPU, the load at the start, the share
#                                of the CPU time the hypervisor took (steal) during the run,
#                                the spread of the caller's repeated runs, and the verdict
#   spread_percent V1 V2 ...     100 * (max / min - 1) of repeated figures (for quiet_end)
#
# The verdict is "quiet", or "NOT QUIET" with the reasons: a load average over
# QUIET_MAX_LOAD (default 0.5 per core, the benchmark's own processes not yet started), steal
# over QUIET_MAX_STEAL percent (default 1: another guest ran on our cores) or repeated runs
# spread over QUIET_MAX_SPREAD percent (default 10). On the 2-core virtual machines of
# docs/performance.md the host went through busy spells in which the same step ran 30-45%
# slower while nothing in the guest ran: steal and the spread of the runs are what the
# guest can see of them. QUIET_PROC is read in place of /proc (for the tests).

quiet_proc() { echo "${QUIET_PROC:-/proc}"; }

# "steal total" ticks over all CPUs, from the first line of stat
quiet_ticks() {
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t; exit }' \
    "$(quiet_proc)/stat"
}

quiet_begin() {
  read -r QUIET_STEAL0 QUIET_TOTAL0 <<< "$(quiet_ticks)"
  QUIET_LOAD0=$(cut -d' ' -f1 "$(quiet_proc)/loadavg")
}

spread_percent() {
  printf "%s\n" "$@" | awk 'NF { v = $1 + 0; if (n == 0 || v < lo) lo = v; if (n == 0 || v > hi) hi = v; n++ }
    END { if (n < 2 || lo <= 0) print 0; else printf "%.1f\n", 100 * (hi / lo - 1) }'
}

quiet_end() {
  local spread=${1:-} steal total cores model
  read -r steal total <<< "$(quiet_ticks)"
  cores=$(grep -c '^processor' "$(quiet_proc)/cpuinfo")
  model=$(sed -n 's/^model name[[:space:]]*: *//p' "$(quiet_proc)/cpuinfo" | head -1)
  awk -v s0="$QUIET_STEAL0" -v t0="$QUIET_TOTAL0" -v s1="$steal" -v t1="$total" \
      -v load="$QUIET_LOAD0" -v cores="$cores" -v spread="$spread" -v model="$model" \
      -v max_load="${QUIET_MAX_LOAD:-0.5}" -v max_steal="${QUIET_MAX_STEAL:-1}" \
      -v max_spread="${QUIET_MAX_SPREAD:-10}" '
    BEGIN {
      st = (t1 > t0) ? 100 * (s1 - s0) / (t1 - t0) : 0
      why = ""
      if (load > max_load * cores) why = why sprintf("; load %.2f at the start", load)
      if (st > max_steal) why = why sprintf("; the hypervisor took %.1f%% of the CPU time", st)
      if (spread != "" && spread > max_spread) why = why sprintf("; repeated runs spread %.1f%%", spread)
      line = sprintf("quiet check: %s, %d cores; load %.2f at the start; steal %.1f%%", model, cores, load, st)
      if (spread != "") line = line sprintf("; runs spread %.1f%%", spread)
      print line (why == "" ? "; quiet" : "; NOT QUIET: " substr(why, 3))
    }'
}
