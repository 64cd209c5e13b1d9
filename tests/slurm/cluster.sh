# cluster.sh: a private, real Slurm cluster on this machine for the job-script tests
# (Debian's slurmctld, slurmd and munge). Sourced by the harnesses in tests/slurm/.
#
#   cluster_start BASE [NODES]   NODES=1: one node "c1" on 127.0.0.1; NODES=2: nodes
#                                "node1", "node2" in network+UTS+mount namespaces on a
#                                private bridge (10.77.X.11 and .12, X picked free so two
#                                harnesses can run at once), controller on 10.77.X.254
#   cluster_stop                 stop everything cluster_start started (also on failure:
#                                call it from an EXIT trap)
#   job_wait ID SECONDS          wait until job ID (all its array tasks) has ended
#   job_field ID FIELD           a field of `scontrol show job` (first task)
#
# Everything (config, state, spool, logs, munge key and socket) lives under BASE; nothing in
# /etc changes; clients find the config through SLURM_CONF. Facts this relies on:
# /work/shared/notes/slurm-on-one-machine.md and multinode-slurm.md. Needs root.

cluster_have_slurm() {
  command -v slurmctld > /dev/null && command -v slurmd > /dev/null &&
    command -v munged > /dev/null && command -v sbatch > /dev/null
}

# _bg NAME CMD...: start a daemon in the background, in its own session, and remember it
_bg() {
  local name=$1; shift
  setsid "$@" < /dev/null > "$CL_BASE/log/$name.out" 2>&1 &
  echo "$! $name" >> "$CL_BASE/pids"
}

cluster_start() {
  CL_BASE=$1; CL_NODES=${2:-1}
  mkdir -p "$CL_BASE"/{etc,state,log,run,munge,tmp,spool}
  chmod 755 "$CL_BASE" "$CL_BASE/munge"
  : > "$CL_BASE/pids"
  export SLURM_CONF=$CL_BASE/etc/slurm.conf
  # every process the cluster starts (daemons, jobs, ranks) carries this mark, so that
  # cluster_stop can end exactly those
  export DP_SLURM_CLUSTER=$CL_BASE
  dd if=/dev/urandom of="$CL_BASE/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$CL_BASE/munge/munge.key"
  _bg munged munged -F -f --socket="$CL_BASE/munge/munge.socket" \
    --key-file="$CL_BASE/munge/munge.key" --pid-file="$CL_BASE/run/munged.pid" \
    --log-file="$CL_BASE/log/munged.log" --seed-file="$CL_BASE/munge/seed"
  local host ctl_addr nodes_conf port=$((20000 + RANDOM % 20000))
  host=$(hostname -s)
  if [[ $CL_NODES == 1 ]]; then
    ctl_addr=127.0.0.1
    nodes_conf="NodeName=c1 NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN"
    CL_NODE_NAMES=(c1)
  else
    # a /24 that no interface here uses yet
    local x
    for x in $(shuf -i 1-250 -n 40); do ip -4 addr | grep -q " 10\.77\.$x\." || break; done
    CL_NET=10.77.$x
    echo "$CL_NET" > "$CL_BASE/net"
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
  for n in "${CL_NODE_NAMES[@]}"; do mkdir -p "$CL_BASE/spool/$n" "$CL_BASE/tmp/$n"; done
  local i
  for i in $(seq 50); do [[ -S $CL_BASE/munge/munge.socket ]] && break; sleep 0.1; done
  _bg slurmctld slurmctld -D -f "$SLURM_CONF"
  if [[ $CL_NODES == 1 ]]; then
    _bg slurmd-c1 slurmd -D -N c1 -f "$SLURM_CONF"
  else
    _cluster_netns || return 1
  fi
  for i in $(seq 100); do
    [[ $(sinfo -h -o %T 2> /dev/null | sort -u) == idle ]] && return 0
    sleep 0.2
  done
  echo "cluster: nodes did not become idle in 20 s:" >&2
  sinfo >&2 || true
  tail -5 "$CL_BASE"/log/*.log >&2 || true
  return 1
}

# Two nodes: each a network + UTS + mount namespace, held open by a `sleep` that we
# started; veth pairs into a bridge in this namespace ($CL_NET.254).
_cluster_netns() {
  CL_BRIDGE=dpbr$((RANDOM % 10000))
  ip link add "$CL_BRIDGE" type bridge || return 1
  echo "$CL_BRIDGE" > "$CL_BASE/bridge"
  ip addr add "$CL_NET.254/24" dev "$CL_BRIDGE"
  ip link set "$CL_BRIDGE" up
  printf '127.0.0.1 localhost\n%s.254 %s\n%s.11 node1\n%s.12 node2\n' \
    "$CL_NET" "$(hostname -s)" "$CL_NET" "$CL_NET" > "$CL_BASE/etc/hosts"
  local k n pid
  for k in 1 2; do
    n=node$k
    setsid unshare --net --uts --mount --propagation private sleep infinity < /dev/null &
    pid=$!
    echo "$pid ns-$n" >> "$CL_BASE/pids"
    echo "$pid" > "$CL_BASE/run/ns-$n"
    sleep 0.2
    ip link add "${CL_BRIDGE}v$k" type veth peer name eth0 netns "$pid" || return 1
    ip link set "${CL_BRIDGE}v$k" master "$CL_BRIDGE" up
    nsenter -t "$pid" --net --uts --mount -- sh -c "
      hostname $n && mount --bind '$CL_BASE/etc/hosts' /etc/hosts &&
      ip link set lo up && ip addr add $CL_NET.1$k/24 dev eth0 && ip link set eth0 up" || return 1
    setsid nsenter -t "$pid" --net --uts --mount -- slurmd -D -N "$n" -f "$SLURM_CONF" \
      < /dev/null > "$CL_BASE/log/slurmd-$n.out" 2>&1 &
    echo "$! slurmd-$n" >> "$CL_BASE/pids"
  done
}

# cluster_node_pid NODE: the PID holding NODE's namespaces (for nsenter)
cluster_node_pid() { cat "$CL_BASE/run/ns-$1"; }

# _marked_pids: processes carrying this cluster's mark, other than this shell and its
# ancestors (the harness itself carries it too)
_marked_pids() {
  local p self=" $$ $BASHPID " a=$$
  while [[ $a -gt 1 ]]; do
    self+=" $a "
    a=$(awk '{print $4}' "/proc/$a/stat" 2> /dev/null) || break
  done
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $self == *" $p "* ]] && continue
    { tr "\0" "\n" < "/proc/$p/environ"; } 2> /dev/null | grep -qxF "DP_SLURM_CLUSTER=$CL_BASE" && echo "$p"
  done
}

cluster_stop() {
  [[ -n ${CL_BASE:-} && -f $CL_BASE/pids ]] || return 0
  scancel --full --quiet -u root 2> /dev/null || true  # ends running jobs' processes first
  sleep 0.5
  local pid name i left
  while read -r pid name; do kill -TERM "$pid" 2> /dev/null || true; done < "$CL_BASE/pids"
  for i in $(seq 30); do
    left=0
    while read -r pid name; do kill -0 "$pid" 2> /dev/null && left=1; done < "$CL_BASE/pids"
    [[ $left == 0 ]] && break
    sleep 0.2
  done
  while read -r pid name; do kill -KILL "$pid" 2> /dev/null || true; done < "$CL_BASE/pids"
  # job steps and ranks that outlived their daemons
  for pid in $(_marked_pids); do kill -KILL "$pid" 2> /dev/null || true; done
  if [[ -f $CL_BASE/bridge ]]; then
    local br; br=$(cat "$CL_BASE/bridge")
    ip link del "${br}v1" 2> /dev/null || true
    ip link del "${br}v2" 2> /dev/null || true
    ip link del "$br" 2> /dev/null || true
  fi
  mv "$CL_BASE/pids" "$CL_BASE/pids.stopped"
}

# job_field ID FIELD: FIELD=value from `scontrol show job ID` (the first record)
job_field() {
  scontrol show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# job_wait ID SECONDS: wait until the job and all its array tasks have left the queue's
# pending/running states; 1 on timeout
job_wait() {
  local id=$1 limit=$2 t=0 states
  while (( t < limit * 5 )); do
    states=$(scontrol show job "$id" 2> /dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u)
    if [[ -n $states ]] && ! grep -qE '^(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT)$' <<< "$states"; then
      return 0
    fi
    sleep 0.2; t=$((t + 1))
  done
  echo "job $id still not done after $limit s: $states" >&2
  return 1
}
