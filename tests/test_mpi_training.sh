#!/usr/bin/env bash
# One training, any launch shape: P = 1, 2, 3 and 5 ranks give bitwise the same weights
# after 300 steps (30 under the sanitizers) with shuffling on and the default hyperparameters, on 8 shard files and
# on 3 files of uneven sizes; replicas are bitwise identical; 1 and 2 threads per rank give
# the same bits; overlapping the reduction with backward, or summing through MPI instead of
# shared memory, changes no bit; --group-size does
# change them (so the comparisons are not blind); --batch 100 --accumulate 4 is bitwise
# --batch 400.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 2400 5 8           # 8 shards of 300
"$TOOLS/make_dataset" synth uneven 2410 11 700,1300,410   # 3 files of uneven sizes
# 300 steps (12.5 epochs) and 40 for the later checks; under the sanitizers, where a step
# is several times slower, 30 (past the first epoch's end and its tail) and 12
if [[ ${DP_TEST_SANITIZED:-0} == 1 ]]; then steps=30 short=12; else steps=300 short=40; fi
common=(--test none --no-progress --threads 1 --steps "$steps")

run() { # run NAME P ARGS...: train, check the replicas, keep the weights in NAME.h5
  local name=$1 P=$2; shift 2
  mpi "$P" "$DPTRAIN" "${common[@]}" "$@" --save "$name.h5" > "$name.log" 2>&1 \
    || { cat "$name.log"; fail "$name ($P ranks) failed"; }
  expect_in "$name.log" "replicas identical on $P rank"
}

for data in train uneven; do
  tag=$data
  run "$tag-1" 1 --train "$data"
  for P in 2 3 5; do # the files' split, whatever the cores (balancing: test_balance.sh, below)
    run "$tag-$P" "$P" --train "$data" --balance off
    "$TOOLS/compare_weights" "$tag-1.h5" "$tag-$P.h5" --exact \
      || fail "$P ranks differ from 1 rank on $data"
    echo "$data: $P ranks = 1 rank, bitwise ($(grep -o 'checksum [0-9a-f]*' "$tag-$P.log"))"
  done
done
expect_in train-3.log "ranks hold: 0: files 0-2 (900), 1: files 2-5 (1200), 2: files 5-7 (900)"
held="0: file 0 (700), 1: files 0-1 (2000), 2: file 1 (1300), 3: file 1 (1300)"
expect_in uneven-5.log "ranks hold: $held, 4: files 1-2 (1710)"
# the shares following the ranks' speeds, over the whole run: the same bits as 1 rank
# (--balance on: auto leaves it off where 3 ranks oversubscribe the cores, as in CI)
run train-3b 3 --train train --balance on
"$TOOLS/compare_weights" train-1.h5 train-3b.h5 --exact || fail "3 balanced ranks differ from 1"
expect_in train-3b.log "ranks hold: 0: files 0-3 (1200), 1: files 1-6 (1800), 2: files 4-7 (1200)"

# another group size is another training: the comparison above can see a difference
run g4 2 --train train --group-size 4
"$TOOLS/compare_weights" train-1.h5 g4.h5 --exact > /dev/null \
  && fail "--group-size 4 gives the bits of --group-size 8: the comparison is blind"

# 1 vs 2 threads per rank: the same bits
common=(--test none --no-progress --steps "$short")
run t1 2 --train train --threads 1
run t2 2 --train train --threads 2
"$TOOLS/compare_weights" t1.h5 t2.h5 --exact || fail "1 and 2 threads differ"
expect_in t2.log "2 ranks x 2 threads"
# within one node the reduction runs after backward unless --overlap is given, through
# shared memory unless --reduction mpi is given (the runs above: shared memory)
expect_in t1.log "summed exactly (int64 fixed point) through shared memory, layer by layer"
# communication overlap: bucketed reductions started during backward give the same bits as
# starting them after backward (3 ranks, several buckets), and as the shared memory's sum
run o-overlap 3 --train train --threads 1 --bucket-kb 16 --overlap
run o-no-overlap 3 --train train --threads 1 --bucket-kb 16 --no-overlap --reduction mpi
expect_in o-overlap.log "buckets of >= 16 KiB, reduced with MPI_Iallreduce overlapping backward (not through shared memory: --overlap"
expect_in o-no-overlap.log "buckets of >= 16 KiB, reduced with one MPI_Allreduce after backward"
"$TOOLS/compare_weights" o-overlap.h5 o-no-overlap.h5 --exact || fail "overlap changes the weights"
"$TOOLS/compare_weights" o-overlap.h5 t1.h5 --exact || fail "3 ranks with overlap differ from 2"
# shared memory is required with --reduction shm: refused beside --overlap, on every rank
mpi 2 "$DPTRAIN" "${common[@]}" --train train --overlap --reduction shm > shm-overlap.log 2>&1 \
  && fail "--reduction shm --overlap was accepted"
expect_in shm-overlap.log "--reduction shm: cannot sum through shared memory here: --overlap reduces bucket by bucket with MPI"
# where MPI's shared-memory directory cannot hold the sums, auto takes MPI (and says why),
# shm is refused
export OMPI_MCA_osc_sm_backing_directory=$WORK/no-such-dir
run shm-none 2 --train train --threads 1
expect_in shm-none.log "reduced with one MPI_Allreduce after backward (not through shared memory: $WORK/no-such-dir, where MPI keeps shared memory, cannot be read)"
mpi 2 "$DPTRAIN" "${common[@]}" --train train --reduction shm > shm-none-required.log 2>&1 \
  && fail "--reduction shm without room was accepted"
expect_in shm-none-required.log "--reduction shm: cannot sum through shared memory here: $WORK/no-such-dir"
# a file there instead of a directory: MPI could not make the window, auto takes MPI
touch "$WORK/a-file"
export OMPI_MCA_osc_sm_backing_directory=$WORK/a-file
run shm-file 2 --train train --threads 1
expect_in shm-file.log "(not through shared memory: $WORK/a-file, where MPI keeps shared memory, is not a directory this rank may write in)"
unset OMPI_MCA_osc_sm_backing_directory
# the room check (DPTRAIN_TEST_SHM_FREE: the MiB a rank sees free there; 2 ranks of the
# reference model need 5.2 MiB, and a quarter more): one rank short is enough for MPI
export DPTRAIN_TEST_SHM_FREE=1:3
mpi 2 "$DPTRAIN_TESTHOOKS" "${common[@]}" --train train --threads 1 > room1.log 2>&1 \
  || { cat room1.log; fail "the run with rank 1 short of room failed"; }
expect_in room1.log "reduced with one MPI_Allreduce after backward (not through shared memory: another rank's /dev/shm lacks room for the shared sums)"
export DPTRAIN_TEST_SHM_FREE=0:6
mpi 2 "$DPTRAIN_TESTHOOKS" "${common[@]}" --train train --reduction shm > room6.log 2>&1 \
  && fail "--reduction shm with 6 MiB free was accepted"
expect_in room6.log "--reduction shm: cannot sum through shared memory here: /dev/shm has 6 MiB free, the ranks' shared sums need 5 MiB and a quarter to spare"
export DPTRAIN_TEST_SHM_FREE=0:7
mpi 2 "$DPTRAIN_TESTHOOKS" "${common[@]}" --train train --threads 1 > room7.log 2>&1 \
  || { cat room7.log; fail "the run with 7 MiB free failed"; }
expect_in room7.log "through shared memory, layer by layer"
unset DPTRAIN_TEST_SHM_FREE
rc=0; "$DPTRAIN" --reduction bogus > bogus.log 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "--reduction bogus: exit $rc, expected 2"
expect_in bogus.log "--reduction: expected auto, mpi or shm, got 'bogus'"
"$TOOLS/compare_weights" shm-none.h5 t1.h5 --exact || fail "MPI's sum differs from shared memory's"
# --accumulate 4: four passes per step over a quarter of each rank's groups; bitwise the
# training of the 4x larger batch, on another rank count too
run big 2 --train train --threads 1 --batch 400
run acc 3 --train train --threads 1 --batch 100 --accumulate 4
expect_in acc.log "global 400 in"
expect_in acc.log "in 4 passes of about 100"
"$TOOLS/compare_weights" big.h5 acc.h5 --exact || fail "--accumulate 4 differs from --batch 400"
echo "1 passed, 0 failed"
