#!/usr/bin/env bash
# dptrain-eval --plot: the confusion matrix as a heat map beside the accuracy of each class,
# a PNG of the expected size with the plots in it, on 2 ranks; the same counts as printed;
# a missing or failing gnuplot and an unwritable path are errors, the first two before any
# picture file exists.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
EVAL=$DP_BINARY_DIR/dptrain-eval
if ! command -v gnuplot > /dev/null; then
  [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 ]] && fail "gnuplot missing (apt-get install gnuplot-nox)"
  echo "SKIP: gnuplot not installed"; exit 77
fi
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 2 > /dev/null
"$TOOLS/make_dataset" synth test.h5 300 6 > /dev/null
"$DPTRAIN" --train train --test none --steps 20 --batch 40 --threads 1 --quiet --save w.h5 \
  || fail "training failed"
mpi 2 "$EVAL" --weights w.h5 --data test.h5 --plot cm.png > eval.log 2>&1 || { cat eval.log; fail "--plot failed"; }
expect_in eval.log "plot: cm.png"
$py "$DP_SOURCE_DIR/tests/check_png.py" cm.png 1500 675 || fail "cm.png is not the picture"
# the picture leaves the report as it was
mpi 2 "$EVAL" --weights w.h5 --data test.h5 > plain.log 2>&1 || fail "evaluation failed"
diff <(grep -v '^plot:' eval.log) plain.log || fail "--plot changed the report"

DPTRAIN_GNUPLOT=/nonexistent/gnuplot mpi 2 "$EVAL" --weights w.h5 --data test.h5 --plot no.png \
  > e1.log 2>&1 && fail "a missing gnuplot was accepted"
expect_in e1.log "--plot no.png: /nonexistent/gnuplot not found: install gnuplot"
grep -q "^loss" e1.log && fail "a missing gnuplot should fail before evaluating"
DPTRAIN_GNUPLOT=false mpi 2 "$EVAL" --weights w.h5 --data test.h5 --plot no.png > e2.log 2>&1 \
  && fail "a failing gnuplot was accepted"
expect_in e2.log "--plot no.png: gnuplot failed (exit status 1"
[[ -e no.png ]] && fail "a failed plot left a file"
mpi 2 "$EVAL" --weights w.h5 --data test.h5 --plot no/dir/cm.png > e3.log 2>&1 && fail "an unwritable path was accepted"
expect_in e3.log "--plot no/dir/cm.png: cannot write the file"
echo "eval plot: ok"
