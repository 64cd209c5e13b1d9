#!/usr/bin/env bash
# --precision bf16 in training runs: the same weights, bit for bit, for 2 ranks x 1 thread,
# 1 x 2 and 3 x 1, and (where the CPU has AVX512-BF16) under the scalar emulation; other
# weights than fp32's, near them; the banner says so. A checkpoint records the precision:
# resumed in bf16 it ends bitwise as the uninterrupted run; resumed in fp32 it says what
# changed. Refused, on every rank, none left hanging: on the avx2 path, where one rank's CPU
# lacks AVX512-BF16 (DPTRAIN_TEST_ISA_LACKS), and an unknown precision. On a CPU without
# AVX512-BF16 the bf16 runs take the scalar emulation (slow, so the runs are short).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 240 5 3 > /dev/null     # 3 shards of 80: 6 steps an epoch
path=$("$TOOLS/test_bf16" --path)
echo "bf16 runs here on the $path path"
[[ $path == avx512 ]] || echo "AVX512-BF16: the hardware runs skipped, this CPU lacks it"
common=(--train train --test none --batch 40 --epochs 1 --seed 5 --no-progress --isa "$path")
run() { # run NAME RANKS THREADS [ARGS...]
  local name=$1 ranks=$2 threads=$3; shift 3
  mpi "$ranks" "$DPTRAIN" "${common[@]}" --threads "$threads" "$@" --save "$name.h5" \
    > "$name.log" 2>&1 || { cat "$name.log"; fail "$name: the run failed"; }
}
same() { "$TOOLS/compare_weights" "$1.h5" "$2.h5" --exact > /dev/null || fail "$3"; }

run bf-2x1 2 1 --precision bf16
expect_in bf-2x1.log "precision: bf16 (fc layers and convolutions with 16 or more columns"
run bf-1x2 1 2 --precision bf16
run bf-3x1 3 1 --precision bf16
same bf-2x1 bf-1x2 "bf16: 1 rank x 2 threads differs from 2 ranks x 1 thread"
same bf-2x1 bf-3x1 "bf16: 3 ranks differ from 2"
if [[ $path == avx512 ]]; then
  mpi 2 "$DPTRAIN" "${common[@]}" --isa scalar --threads 1 --precision bf16 --steps 2 \
    --save emu.h5 > emu.log 2>&1 || { cat emu.log; fail "the scalar emulation run failed"; }
  expect_in emu.log "emulated with fmaf on the scalar path"
  run hw-2 2 1 --precision bf16 --steps 2
  same hw-2 emu "bf16: AVX512-BF16 and its scalar emulation give other weights"
fi
echo "bf16: the same weights on 1, 2 and 3 ranks, 1 and 2 threads, and on both paths"

run fp-2x1 2 1
grep -q "precision:" fp-2x1.log && fail "an fp32 run names a precision in its banner"
"$TOOLS/compare_weights" bf-2x1.h5 fp-2x1.h5 --exact > /dev/null \
  && fail "bf16 and fp32 give the same weights: bf16 is not in use"
"$TOOLS/compare_weights" bf-2x1.h5 fp-2x1.h5 --tensor-rtol 0.05 \
  || fail "bf16 weights are far from fp32's after one epoch"

# a checkpoint records the precision; resumed in bf16: bitwise the uninterrupted run
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --precision bf16 --steps 4 --checkpoint-dir ck \
  --checkpoint-every 2 > part.log 2>&1 || { cat part.log; fail "bf16: first part"; }
"$DP_PYTHON" -c 'import h5py,sys; p=h5py.File(sys.argv[1])["dptrain"].attrs["precision"]; sys.exit(0 if (p.decode() if isinstance(p, bytes) else p) == "bf16" else 1)' \
  ck/ckpt-00000004.h5 || fail "the checkpoint does not record precision bf16"
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --precision bf16 --resume ck --save res.h5 \
  > res.log 2>&1 || { cat res.log; fail "bf16: resume"; }
grep -q "changed since the checkpoint" res.log && { cat res.log; fail "bf16 resumed in bf16 notes a change"; }
same bf-2x1 res "bf16: resumed from step 4, the weights differ from the uninterrupted run"
mpi 2 "$DPTRAIN" "${common[@]}" --threads 1 --resume ck --save res32.h5 > res32.log 2>&1 \
  || { cat res32.log; fail "bf16 checkpoint resumed in fp32"; }
expect_in res32.log "--precision (fp32, was bf16)"
echo "bf16 checkpoint: resumed in bf16 bitwise, in fp32 with a note"

# refusals, on 2 ranks: both stop (the timeout catches a rank left waiting)
refused() { # refused NAME PROGRAM ARGS...
  local name=$1 rc=0; shift
  timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ "$@" > "$name.log" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] || { cat "$name.log"; fail "$name: the run was accepted"; }
  [[ $rc -ne 124 && $rc -ne 137 ]] || { cat "$name.log"; fail "$name: a rank was left hanging"; }
  echo "$name: refused: $(grep -m1 'error' "$name.log" || true)"
}
refused unknown "$DPTRAIN" "${common[@]}" --precision fp16
expect_in unknown.log "--precision"
expect_in unknown.log "fp16"
if "$TOOLS/test_isa" --list | grep -qx avx2; then
  refused on-avx2 "$DPTRAIN" "${common[@]/$path/avx2}" --precision bf16
  expect_in on-avx2.log "--precision bf16: the kernels run on the avx2 path"
fi
if [[ $path == avx512 ]]; then
  DPTRAIN_TEST_ISA_LACKS=1:bf16 refused lacks "$DPTRAIN_TESTHOOKS" "${common[@]}" --precision bf16
  expect_in lacks.log "this CPU lacks AVX512-BF16"
fi
echo "1 passed, 0 failed"
