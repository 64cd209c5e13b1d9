# cluster.sh: a private, real Slurm cluster on this machine for the job-script tests
# (Debian's slurmctld, slurmd and munge). Sourced by the harnesses in tests/slurm/.
#
#   cluster_start BASE [NODES]   NODES=1: one node "c1" on 127.0.0.1; NODES=2: nodes
#                                "node1", "node2" in network+UTS+mount namespaces on a
#                                private bridge (10.77.X.11 and .12, X picked free so two
#                                harnesses can run at once), controller on 10.77.X.254.
#                                0 once every node is idle and a job has run on all of
#                                them, within DP_SLURM_START_TIMEOUT s (50: with the clean-
#                                up, a harness whose cluster cannot start ends within 60 s).
#                                Otherwise the reason in CL_REASON, printed with the
#                                daemons' logs, and 1, or 2 where network namespaces cannot
#                                be made here.
#   cluster_stop [WHY]           stop every process of the cluster, by PID; says what it
#                                stopped; 1 if any survived SIGKILL. Call it from an EXIT
#                                trap: a detached reaper (reaper.sh) calls it if the harness
#                                dies without doing so (ctest's timeout is a SIGKILL)
#   cluster_logs                 the tail of every daemon's log
#   job_wait ID SECONDS          wait until job ID (all its array tasks) has ended
#   job_field ID FIELD           a field of `scontrol show job` (first task)
#
# Everything (config, state, spool, logs, munge key and socket) lives under BASE; nothing in
# /etc changes; clients find the config through SLURM_CONF. Facts this relies on:
# /work/shared/notes/slurm-on-one-machine.md and multinode-slurm.md. Needs root.
# DP_SLURM_TEST_BREAK makes the start fail on purpose (test_slurm_harness_cleanup.sh):
# munge (munged gets an empty key), netns (namespaces cannot be made), node2 (node2's
# cannot, after the daemons and node1 started), slurmd (slurmd listens on another port
# than the controller calls: nodes never respond).

CL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

cluster_have_slurm() {
  command -v slurmctld > /dev/null && command -v slurmd > /dev/null &&
    command -v munged > /dev/null && command -v sbatch > /dev/null
}

# _sl CMD...: a Slurm or munge client that cannot hang the harness (an unreachable
# controller costs MessageTimeout, 10 s, per attempt, and clients retry)
_sl() { timeout -k 2 "${CL_CMD_TIMEOUT:-15}" "$@"; }

# _cl_stat PID: "STATE STARTTIME" of a process (fields 3 and 22 of /proc/PID/stat); 1 if gone
_cl_stat() {
  local s f
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r s < "/proc/$1/stat"; } 2> /dev/null || return 1
  read -ra f <<< "${s##*) }"
  echo "${f[0]} ${f[19]}"
}

# _cl_alive PID [STARTTIME]: running (a zombie is not: this machine's init may never reap
# orphans) and, given STARTTIME, still the same process (PIDs wrap at 32768 here)
_cl_alive() {
  local s
  s=$(_cl_stat "$1") || return 1
  [[ ${s%% *} != [ZX] && ( -z ${2:-} || ${s#* } == "$2" ) ]]
}

# _bg NAME CMD...: start a daemon in the background, in its own session, and remember it
# by PID and start time
_bg() {
  local name=$1 s; shift
  setsid "$@" < /dev/null > "$CL_BASE/log/$name.out" 2>&1 &
  s=$(_cl_stat $!)
  echo "$! $name ${s#* }" >> "$CL_BASE/pids"
}

# _cl_pid NAME: the PID of a daemon started by _bg
_cl_pid() { awk -v n="$1" '$2 == n { print $1 }' "$CL_BASE/pids"; }

# _cl_fail REASON: the start failed; say why, with the logs; 1
_cl_fail() {
  local nodes=
  _cl_alive "$(_cl_pid slurmctld)" &&
    nodes=$(_sl sinfo -h -N -o '%N %T (%E)' 2> /dev/null | sort -u | paste -sd';' | sed 's/;/; /g')
  CL_REASON="$1${nodes:+ [nodes: $nodes]}"
  echo "cluster: start failed after $((SECONDS - CL_T0)) s: $CL_REASON" >&2
  cluster_logs >&2
  CL_LOGS_SHOWN=1
  return 1
}

cluster_logs() {
  local f
  for f in "$CL_BASE"/log/*.log "$CL_BASE"/log/*.out; do
    # a daemon's stderr (.out) repeats its log file, but has what it said before opening it
    [[ -s $f && ! ( $f == *.out && -s ${f%.out}.log ) ]] || continue
    echo "--- ${f#"$CL_BASE"/} (last 15 lines)"
    tail -n 15 "$f"
  done
  return 0
}

cluster_start() {
  CL_BASE=$1; CL_NODES=${2:-1}; CL_REASON=; CL_LOGS_SHOWN=0; CL_T0=$SECONDS
  CL_DEADLINE=$((SECONDS + ${DP_SLURM_START_TIMEOUT:-50}))
  mkdir -p "$CL_BASE"/{etc,state,log,run,munge,tmp,spool}
  chmod 755 "$CL_BASE" "$CL_BASE/munge"
  : > "$CL_BASE/pids"
  export SLURM_CONF=$CL_BASE/etc/slurm.conf
  # every process the cluster starts (daemons, jobs, ranks) carries this mark, so that
  # cluster_stop can find those that are not children of what it started
  export DP_SLURM_CLUSTER=$CL_BASE
  _cl_start_reaper
  if [[ $CL_NODES == 2 ]]; then
    _cl_netns_probe || { _cl_fail "$CL_REASON"; return 2; }
  fi
  _cl_munge || return 1
  _cl_conf
  _bg slurmctld slurmctld -D -f "$SLURM_CONF"
  _cl_wait_ctl || return 1
  if [[ $CL_NODES == 1 ]]; then
    _bg slurmd-c1 slurmd -D -N c1 -f "$(_cl_slurmd_conf)"
  else
    _cl_netns || return 1
  fi
  _cl_wait_idle && _cl_smoke_job || return 1
  echo "cluster: $CL_NODES node(s) up and running jobs after $((SECONDS - CL_T0)) s ($CL_BASE)"
}

# the reaper outlives a SIGKILL of the harness's process tree: a double fork leaves it
# outside the tree, setsid outside the terminal's Ctrl-C; unmarked, it is no target
_cl_start_reaper() {
  local s; s=$(_cl_stat $$)
  ( env -u DP_SLURM_CLUSTER setsid bash "$CL_HERE/reaper.sh" "$CL_BASE" $$ "${s#* }" "${CL_CLEAN_DIR:-}" \
      < /dev/null >> "$CL_BASE/log/reaper.log" 2>&1 &
    echo $! > "$CL_BASE/run/reaper.pid" )
}

_cl_munge() {
  local sock=$CL_BASE/munge/munge.socket pid end=$((SECONDS + 10))
  if [[ ${DP_SLURM_TEST_BREAK:-} == munge ]]; then
    : > "$CL_BASE/munge/munge.key"
  else
    dd if=/dev/urandom of="$CL_BASE/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 400 "$CL_BASE/munge/munge.key"
  _bg munged munged -F -f --socket="$sock" \
    --key-file="$CL_BASE/munge/munge.key" --pid-file="$CL_BASE/run/munged.pid" \
    --log-file="$CL_BASE/log/munged.log" --seed-file="$CL_BASE/munge/seed"
  pid=$(_cl_pid munged)
  until [[ -S $sock ]]; do
    _cl_alive "$pid" || { _cl_fail "munge failed: munged exited"; return 1; }
    (( SECONDS < end )) || { _cl_fail "munge failed: no socket after 10 s"; return 1; }
    sleep 0.1
  done
  _sl munge -n -S "$sock" | _sl unmunge -S "$sock" > /dev/null ||
    { _cl_fail "munge failed: a credential does not decode (munge -n | unmunge)"; return 1; }
}

_cl_conf() {
  local host ctl_addr nodes_conf port=$((20000 + RANDOM % 20000))
  host=$(hostname -s)
  if [[ $CL_NODES == 1 ]]; then
    ctl_addr=127.0.0.1
    nodes_conf="NodeName=c1 NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN"
    CL_NODE_NAMES=(c1)
  else
    ctl_addr=$CL_NET.254
    nodes_conf="NodeName=node1 NodeAddr=$CL_NET.11 CPUs=4 RealMemory=1000 State=UNKNOWN
NodeName=node2 NodeAddr=$CL_NET.12 CPUs=4 RealMemory=1000 State=UNKNOWN"
    CL_NODE_NAMES=(node1 node2)
  fi
  cat > "$SLURM_CONF" <<CONF
ClusterName=dptest
SlurmctldHost=$host($ctl_addr)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$CL_BASE/munge/munge.socket
StateSaveLocation=$CL_BASE/state
SlurmdSpoolDir=$CL_BASE/spool/%n
SlurmctldPidFile=$CL_BASE/run/slurmctld.pid
SlurmdPidFile=$CL_BASE/run/slurmd-%n.pid
SlurmctldLogFile=$CL_BASE/log/slurmctld.log
SlurmdLogFile=$CL_BASE/log/slurmd-%n.log
TmpFS=$CL_BASE/tmp/%n
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
MpiDefault=pmix
ReturnToService=2
SlurmdTimeout=30
MinJobAge=600
KillWait=10
$nodes_conf
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  local n
  for n in "${CL_NODE_NAMES[@]}"; do mkdir -p "$CL_BASE/spool/$n" "$CL_BASE/tmp/$n"; done
}

# _cl_slurmd_conf: the config the slurmd's read (with DP_SLURM_TEST_BREAK=slurmd, one
# whose SlurmdPort the controller does not call)
_cl_slurmd_conf() {
  [[ ${DP_SLURM_TEST_BREAK:-} == slurmd ]] || { echo "$SLURM_CONF"; return; }
  local p; p=$(sed -n 's/^SlurmdPort=//p' "$SLURM_CONF")
  sed "s/^SlurmdPort=.*/SlurmdPort=$((p + 1))/" "$SLURM_CONF" > "$CL_BASE/etc/slurmd-broken.conf"
  echo "$CL_BASE/etc/slurmd-broken.conf"
}

_cl_wait_ctl() {
  local pid; pid=$(_cl_pid slurmctld)
  until _sl scontrol ping 2> /dev/null | grep -q "is UP"; do
    _cl_alive "$pid" || { _cl_fail "slurmctld exited"; return 1; }
    (( SECONDS < CL_DEADLINE )) || { _cl_fail "slurmctld does not answer (scontrol ping)"; return 1; }
    sleep 0.2
  done
}

# _cl_wait_idle: every node registered and idle ("idle*" is a node not responding)
_cl_wait_idle() {
  local states n name pid
  while :; do
    states=$(_sl sinfo -h -N -o '%N %T' 2> /dev/null | sort -u)
    [[ $(grep -c ' idle$' <<< "$states") == "$CL_NODES" ]] && return 0
    for name in "${CL_NODE_NAMES[@]}"; do
      pid=$(_cl_pid "slurmd-$name")
      _cl_alive "$pid" || { _cl_fail "slurmd on $name exited"; return 1; }
    done
    if (( SECONDS >= CL_DEADLINE )); then
      _cl_fail "nodes not idle after $((SECONDS - CL_T0)) s: not responding (the slurmd's did not register, or the controller cannot reach them)"
      return 1
    fi
    sleep 0.3
  done
}

# _cl_smoke_job: a registered node may still be unreachable for job launch: run a step on
# every node before calling the cluster up
_cl_smoke_job() {
  local id state left=$((CL_DEADLINE - SECONDS))
  id=$(_sl sbatch --parsable -N "$CL_NODES" --time=1 --output="$CL_BASE/log/smoke-job.out" \
       --wrap "srun --mpi=none true" 2> "$CL_BASE/log/smoke-sbatch.out")
  [[ $id =~ ^[0-9]+ ]] || { _cl_fail "sbatch of a test job failed"; return 1; }
  job_wait "${id%%;*}" $(( left > 1 ? left : 1 )) > /dev/null 2>&1
  state=$(job_field "${id%%;*}" JobState)
  [[ $state == COMPLETED ]] && return 0
  _cl_fail "nodes not responding: a test job on all $CL_NODES node(s) did not complete in $((SECONDS - CL_T0)) s of start-up (job ${id%%;*}: ${state:-no state}, reason $(job_field "${id%%;*}" Reason)); the controller cannot launch on them"
}

# Two nodes: each a network + UTS + mount namespace, held open by a `sleep` that we
# started; veth pairs into a bridge in this namespace ($CL_NET.254).
# _cl_netns_probe: can this machine make them at all? (the bridge, then one throwaway
# namespace made exactly as the nodes' are); CL_REASON says why not
_cl_netns_probe() {
  local x err prop=private
  # a /24 that no interface here uses yet
  for x in $(shuf -i 1-250 -n 40); do ip -4 addr | grep -q " 10\.77\.$x\." || break; done
  CL_NET=10.77.$x CL_BRIDGE=dpbr$((RANDOM % 10000))
  echo "$CL_NET" > "$CL_BASE/net"
  if ! err=$(ip link add "$CL_BRIDGE" type bridge 2>&1); then
    CL_REASON="network namespaces not available here: cannot make a bridge (ip link add $CL_BRIDGE type bridge: $err)"
    return 1
  fi
  echo "$CL_BRIDGE" > "$CL_BASE/bridge"
  echo "cluster: bridge $CL_BRIDGE for $CL_NET.0/24"
  [[ ${DP_SLURM_TEST_BREAK:-} == netns ]] && prop=forced-failure
  if ! err=$(unshare --net --uts --mount --propagation "$prop" true 2>&1); then
    CL_REASON="network namespaces not available here: unshare --net --uts --mount --propagation $prop failed: $err"
    return 1
  fi
  ip addr add "$CL_NET.254/24" dev "$CL_BRIDGE" && ip link set "$CL_BRIDGE" up ||
    { CL_REASON="cannot configure bridge $CL_BRIDGE"; return 1; }
}

_cl_netns() {
  printf '127.0.0.1 localhost\n%s.254 %s\n%s.11 node1\n%s.12 node2\n' \
    "$CL_NET" "$(hostname -s)" "$CL_NET" "$CL_NET" > "$CL_BASE/etc/hosts"
  local k n pid prop end conf
  conf=$(_cl_slurmd_conf)
  for k in 1 2; do
    n=node$k prop=private
    [[ ${DP_SLURM_TEST_BREAK:-} == node2 && $k == 2 ]] && prop=forced-failure
    _bg "ns-$n" unshare --net --uts --mount --propagation "$prop" sleep infinity
    pid=$(_cl_pid "ns-$n") end=$((SECONDS + 5))
    echo "$pid" > "$CL_BASE/run/ns-$n"
    # the namespaces exist once unshare has become the sleep
    until [[ $(cat "/proc/$pid/comm" 2> /dev/null) == sleep ]]; do
      _cl_alive "$pid" && (( SECONDS < end )) ||
        { _cl_fail "could not make $n's namespaces: $(tr '\n' ' ' < "$CL_BASE/log/ns-$n.out")"; return 1; }
      sleep 0.05
    done
    stat -L -c %i "/proc/$pid/ns/net" > "$CL_BASE/run/ns-$n.net"
    ip link add "${CL_BRIDGE}v$k" type veth peer name eth0 netns "$pid" &&
      ip link set "${CL_BRIDGE}v$k" master "$CL_BRIDGE" up &&
      nsenter -t "$pid" --net --uts --mount -- sh -c "
        hostname $n && mount --bind '$CL_BASE/etc/hosts' /etc/hosts &&
        ip link set lo up && ip addr add $CL_NET.1$k/24 dev eth0 && ip link set eth0 up" ||
      { _cl_fail "could not wire $n's namespace to bridge $CL_BRIDGE"; return 1; }
    _bg "slurmd-$n" nsenter -t "$pid" --net --uts --mount -- slurmd -D -N "$n" -f "$conf"
  done
}

# cluster_node_pid NODE: the PID holding NODE's namespaces (for nsenter)
cluster_node_pid() { cat "$CL_BASE/run/ns-$1"; }

# _cl_self: this shell and its ancestors (they may carry the mark, and must live on)
_cl_self() {
  local a=$$
  echo "$BASHPID"
  while [[ $a -gt 1 ]]; do
    echo "$a"
    a=$(awk '{ print $4 }' "/proc/$a/stat" 2> /dev/null) || break
  done
}

# _cl_targets [REAPER]: "PID NAME" of every live process of the cluster: the daemons it
# started (by PID and start time), whatever runs in the nodes' network namespaces, carries
# the cluster's mark, or holds a file under BASE open (a slurmstepd, double-forked out of
# slurmd's tree, rewrites its environment but keeps the slurmd log open), and all their
# descendants; never this shell, its ancestors, or the reaper and its children
_cl_targets() {
  local self seeds pid name start
  self=" $BASHPID $(_cl_self | tr '\n' ' ') "
  seeds=$(
    while read -r pid name start; do _cl_alive "$pid" "$start" && echo "$pid"; done < "$CL_BASE/pids"
    if compgen -G "$CL_BASE/run/ns-*.net" > /dev/null; then
      stat -L -c '%i %n' /proc/[0-9]*/ns/net 2> /dev/null |
        awk 'NR == FNR { ns[$1] = 1; next } ($1 in ns) { split($2, p, "/"); print p[3] }' \
          "$CL_BASE"/run/ns-*.net -
    fi
    grep -lzxF "DP_SLURM_CLUSTER=$CL_BASE" /proc/[0-9]*/environ 2> /dev/null | cut -d/ -f3
    find /proc/[0-9]*/fd /proc/[0-9]*/cwd -maxdepth 1 -lname "$CL_BASE/*" 2> /dev/null | cut -d/ -f3)
  ps -e -o pid=,ppid= | awk -v seeds="$seeds" -v reaper="${1:-none}" '
    BEGIN { n = split(seeds, s); for (i = 1; i <= n; i++) in_set[s[i]] = 1 }
    { parent[$1] = $2 }
    END {
      do { grew = 0
           for (p in parent) if (!(p in in_set) && (parent[p] in in_set)) { in_set[p] = 1; grew = 1 }
      } while (grew)
      for (p in in_set) {
        for (a = p; (a in parent) && a != reaper && a > 1; a = parent[a]) ;
        if (a != reaper) print p
      } }' | sort -n |
    while read -r pid; do
      [[ $self == *" $pid "* ]] && continue
      _cl_alive "$pid" || continue
      name=$(awk -v p="$pid" '$1 == p { print $2 }' "$CL_BASE/pids")
      echo "$pid ${name:-$(cat "/proc/$pid/comm" 2> /dev/null)}"
    done
}

# _cl_wait_gone SECONDS PID...: until none of them runs
_cl_wait_gone() {
  local end=$((SECONDS + $1)) p left; shift
  while :; do
    left=0
    for p in "$@"; do _cl_alive "$p" && { left=1; break; }; done
    [[ $left == 0 ]] && return 0
    (( SECONDS < end )) || return 1
    sleep 0.1
  done
}

cluster_stop() {
  [[ -n ${CL_BASE:-} && -f $CL_BASE/pids ]] || return 0
  local why=${1:-} reaper='' targets pids rc=0 br all=() round
  [[ -f $CL_BASE/run/reaper.pid ]] && reaper=$(< "$CL_BASE/run/reaper.pid")
  echo "cluster: stopping $CL_BASE${why:+ ($why)}"
  # jobs first, so that slurmd ends their steps the way it does on a real cluster
  if _cl_alive "$(_cl_pid slurmctld)"; then
    CL_CMD_TIMEOUT=5 _sl scancel --full --quiet -u root 2> /dev/null && sleep 0.5
  fi
  for round in TERM KILL KILL; do
    targets=$(_cl_targets "$reaper")
    [[ -n $targets ]] || break
    pids=$(cut -d' ' -f1 <<< "$targets" | tr '\n' ' ')
    echo "cluster: SIG$round to $(awk '{ print $2, $1 }' <<< "$targets" | paste -sd, | sed 's/,/, /g')"
    all+=($pids)
    # shellcheck disable=SC2086
    { kill -CONT $pids; kill -$round $pids; } 2> /dev/null
    # shellcheck disable=SC2086
    _cl_wait_gone $([[ $round == TERM ]] && echo 5 || echo 3) $pids
  done
  targets=$(_cl_targets "$reaper")
  if [[ -n $targets ]]; then
    echo "cluster: STILL RUNNING after SIGKILL:" >&2
    # shellcheck disable=SC2046
    ps -o pid,ppid,stat,args -p $(cut -d' ' -f1 <<< "$targets" | paste -sd,) >&2
    rc=1
  else
    echo "cluster: stopped $(printf '%s\n' "${all[@]}" | sort -u | grep -c .) processes; none of this cluster's is left"
  fi
  if [[ -f $CL_BASE/bridge ]]; then
    br=$(< "$CL_BASE/bridge")
    ip link del "${br}v1" 2> /dev/null; ip link del "${br}v2" 2> /dev/null
    ip link del "$br" 2> /dev/null
    if ip link show "$br" > /dev/null 2>&1; then echo "cluster: bridge $br is still there" >&2; rc=1
    else echo "cluster: removed bridge $br and its links"; fi
  fi
  mv "$CL_BASE/pids" "$CL_BASE/pids.stopped"
  if [[ -n $reaper && $reaper != "$$" ]]; then
    kill "$reaper" 2> /dev/null
    _cl_wait_gone 3 "$reaper" || echo "cluster: the reaper ($reaper) did not end" >&2
  fi
  return $rc
}

# job_field ID FIELD: FIELD=value from `scontrol show job ID` (the first record)
job_field() {
  _sl scontrol show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# job_wait ID SECONDS: wait (wall clock) until the job and all its array tasks have left
# the queue's pending/running states; 1 on timeout
job_wait() {
  local id=$1 end=$((SECONDS + $2)) states
  while :; do
    states=$(_sl scontrol show job "$id" 2> /dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u)
    if [[ -n $states ]] && ! grep -qE '^(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT)$' <<< "$states"; then
      return 0
    fi
    (( SECONDS < end )) || break
    sleep 0.2
  done
  echo "job $id still not done after $2 s: $states" >&2
  return 1
}
