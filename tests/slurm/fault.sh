# fault.sh: kill one rank of a running job on a node of the two-node test cluster.
# kill_rank_on NODE: SIGKILL the first dptrain process in NODE's namespaces; prints its PID
kill_rank_on() {
  local holder ns p
  holder=$(cluster_node_pid "$1"); ns=$(readlink "/proc/$holder/ns/uts")
  for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2> /dev/null) == dptrain && $(readlink "$p/ns/uts" 2> /dev/null) == "$ns" ]] || continue
    kill -KILL "${p#/proc/}" && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}

# wait_for FILE TEXT SECONDS: until FILE contains TEXT
wait_for() {
  local i
  for i in $(seq $(( $3 * 10 ))); do grep -qF -- "$2" "$1" 2> /dev/null && return 0; sleep 0.1; done
  return 1
}
