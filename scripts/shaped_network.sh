#!/usr/bin/env bash
# shaped_network.sh: the projection's network model checked on a real, shaped network.
# Starts the two-node Slurm harness of the tests (tests/slurm/: nodes node1 and node2 in
# network namespaces on this machine, joined by veth links to a bridge; MPI over TCP
# between them, shared memory inside a node), shapes both ends of each node's link with
# `tc qdisc ... tbf` (each node's outgoing AND incoming bytes then pass a token bucket of
# that rate: a full-duplex link; netem, for delay, is missing from this kernel), and for
# every rate and rank count (split evenly over the two nodes) runs, as Slurm jobs with
# mpirun:
#   - allreduce_bench --as-dptrain (dptrain's reduction: int64, in place, MPI_Iallreduce)
#     at the reference model's bucket sizes and larger;
#   - dptrain --model reference, STEPS steps at 64 images per rank, with step records.
# Then scripts/shaped_network.py compares them with netmodel.py's prediction for that link
# (table + predicted-vs-measured plot). The unshaped link ("veth") runs too: it gives the
# per-message cost alpha of MPI over TCP here (the model's link alpha); beta is the shaped
# rate's TCP payload (1448 of every 1514 bytes the token bucket counts).
#   scripts/shaped_network.sh [OUTDIR (default results/shaped-network)]
# Environment: RATES ("veth 1gbit 10gbit"), RANKS ("2 4 8"), STEPS (20), BENCH_TIME (0.05 s
# per size and repetition). Needs root, Slurm and munge (as the Slurm tests). About 6 to
# 8 minutes on 2 cores with the defaults; RATES=1gbit RANKS=2 STEPS=5 is a 1-minute check.
# Writes OUTDIR/allreduce-RATE-pP.csv, train-RATE-pP.jsonl, jobs/*.out, shaped.csv,
# shaped.md, predicted_vs_measured.png; shaped.md starts with CPU, cores and load.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${1:-$repo/results/shaped-network}")
export DP_SOURCE_DIR=$repo DP_BINARY_DIR=${DP_BINARY_DIR:-$repo/build}
export DPTRAIN=${DPTRAIN:-$DP_BINARY_DIR/dptrain}
bench=$DP_BINARY_DIR/bench/allreduce_bench
[[ -x $DPTRAIN && -x $bench ]] || { echo "shaped_network: build first (cmake --build build)" >&2; exit 1; }
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
rates=${RATES:-veth 1gbit 10gbit}; ranks=${RANKS:-2 4 8}; steps=${STEPS:-20}
export DP_SLURM_HARNESS_LIMIT=${DP_SLURM_HARNESS_LIMIT:-1200}
rm -rf "$out"; mkdir -p "$out/jobs"
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
echo "$cpu|$(nproc)|$(cut -d' ' -f1 /proc/loadavg)|$(date -u +%FT%TZ)" > "$out/host.txt"
# the harness: its checks, traps and clean-up on every way out (docs/slurm-tests.md)
source "$repo/tests/slurm/common.sh"
start_cluster 2
br=$(cat "$CL_BASE/bridge")

# shape RATE: a token bucket of RATE on both ends of both nodes' links (the bridge side
# shapes what a node receives, the node side what it sends); "veth" removes them
shape() {
  local k pid dev
  for k in 1 2; do
    pid=$(cluster_node_pid "node$k")
    for dev in "host ${br}v$k" "node eth0"; do
      set -- $dev
      local cmd=(tc qdisc)
      if [[ $1 == node ]]; then cmd=(nsenter -t "$pid" --net -- tc qdisc); fi
      "${cmd[@]}" del dev "$2" root 2> /dev/null || true
      # burst: 1 ms of the rate and at least 256 KiB (a veth hands over 64 KiB GSO packets)
      [[ $RATE == veth ]] || "${cmd[@]}" add dev "$2" root tbf rate "$RATE" \
        burst "$(( ${RATE%gbit} * 125000 > 262144 ? ${RATE%gbit} * 125000 : 262144 ))" latency 100ms
    done
  done
  tc qdisc show dev "${br}v1" | sed "s/^/shaped_network: ${br}v1: /"
}

sizes=$($py -c "import sys; sys.path.insert(0, '$repo/scripts'); import netmodel
print(','.join(str(x) for x in sorted({65536, 8 << 20} | set(netmodel.buckets('reference')))))")
export OMPI_MCA_rmaps_base_oversubscribe=1
for RATE in $rates; do
  shape
  for p in $ranks; do
    tag=$RATE-p$p
    echo "shaped_network: $RATE, $p ranks over 2 nodes" >&2
    j=$(submit -N 2 --ntasks-per-node=$((p / 2)) --output="$out/jobs/$tag.out" --wrap "
      set -e
      mpirun --bind-to none $bench --as-dptrain --sizes $sizes --time-per-size ${BENCH_TIME:-0.05} \
        > $out/allreduce-$tag.csv
      mpirun --bind-to none $DPTRAIN --model reference --train $repo/data/mnist/train --test none \
        --batch $((64 * p)) --threads 1 --steps $steps --log-every 1 --quiet --no-progress \
        --metrics $out/train-$tag.jsonl")
    job_wait "$j" 600 || fail "job $j ($tag) did not end"
    expect_job "$j" COMPLETED
  done
done
echo "$(cut -d' ' -f1 /proc/loadavg)" >> "$out/host.txt"
$py "$repo/scripts/shaped_network.py" "$out"
