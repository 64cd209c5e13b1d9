#!/usr/bin/env bash
# --conv-algorithm winograd (the default) in training runs: the same weights, bit for bit,
# for 2 ranks x 1 thread, 1 x 2 and 3 x 1, and under every instruction-set path this CPU
# offers; other weights than direct's, near them; the banner names the algorithm. A
# checkpoint records it: resumed without the option it ends bitwise as the uninterrupted
# run, under winograd and under direct (the default before 2026-12-06, which a resumed run
# keeps, saying so); resumed under the other one it says what changed. An unknown algorithm
# is refused on every rank, none left hanging.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 240 5 3 > /dev/null     # 3 shards of 80: 6 steps an epoch
mapfile -t paths < <("$TOOLS/test_isa" --list)
common=(--train train --test none --batch 40 --epochs 1 --seed 5 --no-progress)
run() { # run NAME RANKS THREADS [ARGS...]
  local name=$1 ranks=$2 threads=$3; shift 3
  mpi "$ranks" "$DPTRAIN" "${common[@]}" --threads "$threads" "$@" --save "$name.h5" \
    > "$name.log" 2>&1 || { cat "$name.log"; fail "$name: the run failed"; }
}
same() { "$TOOLS/compare_weights" "$1.h5" "$2.h5" --exact > /dev/null || fail "$3"; }

run wg-2x1 2 1 --conv-algorithm winograd
expect_in wg-2x1.log "convolutions: winograd F(4x4, 3x3) for the 3x3 convolutions"
run wg-1x2 1 2 --conv-algorithm winograd
run wg-3x1 3 1 --conv-algorithm winograd
same wg-2x1 wg-1x2 "winograd: 1 rank x 2 threads differs from 2 ranks x 1 thread"
same wg-2x1 wg-3x1 "winograd: 3 ranks differ from 2"
for p in "${paths[@]}"; do
  run "wg-$p" 2 1 --conv-algorithm winograd --isa "$p"
  same wg-2x1 "wg-$p" "winograd: the $p path gives other weights"
done
echo "winograd: the same weights on 1, 2 and 3 ranks, 1 and 2 threads, and on ${paths[*]}"

run default-2x1 2 1
same wg-2x1 default-2x1 "the default is not winograd"
run direct-2x1 2 1 --conv-algorithm direct
expect_in direct-2x1.log "convolutions: direct (im2col and the products) for every convolution"
"$TOOLS/compare_weights" wg-2x1.h5 direct-2x1.h5 --exact > /dev/null \
  && fail "winograd and direct give the same weights: winograd is not in use"
"$TOOLS/compare_weights" wg-2x1.h5 direct-2x1.h5 --tensor-rtol 1e-4 \
  || fail "winograd's weights are far from direct's after one epoch"

# a checkpoint records the algorithm; resumed under winograd: bitwise the uninterrupted run
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --conv-algorithm winograd --steps 4 \
  --checkpoint-dir ck --checkpoint-every 2 > part.log 2>&1 || { cat part.log; fail "first part"; }
"$DP_PYTHON" -c 'import h5py,sys; p=h5py.File(sys.argv[1])["dptrain"].attrs["conv_algorithm"]; sys.exit(0 if (p.decode() if isinstance(p, bytes) else p) == "winograd" else 1)' \
  ck/ckpt-00000004.h5 || fail "the checkpoint does not record conv_algorithm winograd"
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --resume ck --save res.h5 \
  > res.log 2>&1 || { cat res.log; fail "winograd: resume"; }
grep -q "changed since the checkpoint" res.log && { cat res.log; fail "resumed as written notes a change"; }
same wg-2x1 res "winograd: resumed from step 4, the weights differ from the uninterrupted run"
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --resume ck --save resd.h5 --conv-algorithm direct \
  > resd.log 2>&1 || { cat resd.log; fail "a winograd checkpoint resumed under direct"; }
expect_in resd.log "--conv-algorithm (direct, was winograd)"
echo "winograd checkpoint: resumed without the option bitwise, under direct with a note"

# a direct checkpoint (a run begun before winograd was the default) resumed without the
# option: it goes on under direct, says so, and ends bitwise as the uninterrupted run
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --conv-algorithm direct --steps 4 \
  --checkpoint-dir ckd --checkpoint-every 2 > partd.log 2>&1 ||
  { cat partd.log; fail "direct part"; }
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --resume ckd --save resdd.h5 > resdd.log 2>&1 \
  || { cat resdd.log; fail "a direct checkpoint resumed without --conv-algorithm"; }
expect_in resdd.log "resume: note: --conv-algorithm direct, as the checkpoint ran"
expect_in resdd.log "convolutions: direct"
grep -q "changed since the checkpoint" resdd.log && { cat resdd.log; fail "a note of a change"; }
same direct-2x1 resdd "direct: resumed from step 4, the weights differ from the uninterrupted run"
echo "direct checkpoint: resumed without the option under direct, bitwise"

rc=0
timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ "$DPTRAIN" "${common[@]}" \
  --conv-algorithm fft > unknown.log 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat unknown.log; fail "--conv-algorithm fft was accepted"; }
[[ $rc -ne 124 && $rc -ne 137 ]] || { cat unknown.log; fail "a rank was left hanging"; }
expect_in unknown.log "--conv-algorithm"
expect_in unknown.log "fft"
echo "1 passed, 0 failed"
