#!/usr/bin/env bash
# Bad input ends the whole job quickly with a message that names the culprit, also when
# only one rank sees the problem; nothing already written is overwritten with garbage.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 400 1 2
"$TOOLS/make_dataset" synth bad 400 1 2 1        # shard 1 holds a label of 12
"$TOOLS/make_dataset" synth test.h5 50 2
"$TOOLS/make_dataset" synth tiny.h5 2 3

# expect STATUS NEEDLE RANKS ARGS...: exit status, message, and done within 30 s.
expect() {
  local want=$1 needle=$2 ranks=$3; shift 3
  local start=$SECONDS rc=0
  timeout 60 bash -c "$(declare -f mpi); mpi $ranks \"\$@\"" _ "$DPTRAIN" "$@" --no-progress > out.log 2>&1 || rc=$?
  local took=$((SECONDS - start))
  [[ $rc -eq $want ]] || { cat out.log; fail "dptrain $* on $ranks ranks: exit $rc, expected $want"; }
  grep -qF -- "$needle" out.log || { cat out.log; fail "dptrain $*: message lacks '$needle'"; }
  [[ $took -le 30 ]] || fail "dptrain $*: took ${took}s to fail"
  echo "ok: $ranks rank(s) $*: exit $rc in ${took}s: $(grep -m1 -F -- "$needle" out.log)"
}
export MPIEXEC MPIEXEC_NUMPROC_FLAG MPIEXEC_PREFLAGS MPIEXEC_POSTFLAGS

expect 2 "--batch: expected an integer, got 'x'" 2 --batch x
expect 2 "unknown option '--epochz'" 2 --epochz 3
expect 1 "--train: no/such/dir: cannot open" 2 --train no/such/dir --test none
expect 1 "--test: missing.h5" 2 --train train --test missing.h5
# only rank 1 reads the bad shard (--balance off: with it on, each rank holds the other's
# file too): the job must still end, naming rank, file and label
expect 1 "rank 1:" 2 --train bad --test none --steps 2 --balance off
grep -q "bad/synth-00001-of-00002.h5" out.log || fail "the bad shard is not named"
expect 1 "layer 3 conv(64,30" 2 --train train --test none --model "conv(32,3) relu conv(64,30) fc"
expect 1 "cannot give each of 3 ranks at least one" 3 --train tiny.h5 --test none
expect 1 "--batch 500: larger than the 400 training samples" 2 --train train --test none --batch 500
# fewer groups than ranks is not an error (the groups do not depend on the rank count), but
# it is said: some ranks have nothing to do in a step
expect 0 "some ranks have no work in a step" 4 --train train --test none --batch 3 --steps 2
# and so with either reduction: ranks without groups must reduce with the same kind of
# collective as those with (non-blocking with --overlap, blocking without), not hang
expect 0 "replicas identical on 4 ranks" 4 --train train --test none --batch 3 --steps 2 --overlap
expect 0 "replicas identical on 4 ranks" 4 --train train --test none --batch 3 --steps 2 --no-overlap
expect 1 "--init-from: nothing.h5" 2 --train train --test none --init-from nothing.h5

# a failed --save leaves the existing file alone
echo "precious" > keep.h5
expect 1 "--save no/such/dir/w.h5: the directory no/such/dir does not exist" 2 --train train --test test.h5 --steps 2 --save no/such/dir/w.h5
mpi 2 "$DPTRAIN" --train bad --test none --steps 1 --save keep.h5 --no-progress > /dev/null 2>&1 || true
[[ "$(cat keep.h5)" == "precious" ]] || fail "a failed run overwrote keep.h5"
echo "1 passed, 0 failed"
