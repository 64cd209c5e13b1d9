#!/usr/bin/env bash
# bench/scale_out.sh on synthetic data, 2 cores' worth: the weights agree under every launch
# shape and path ("same", exit 0) and the table has each configuration; a binary whose
# weights depend on the thread count (another seed at 2 threads) is caught ("DIFFER",
# exit 1); a missing training set and a bad count are named.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 4
export SCALE_OUT_DATA=$WORK/train SCALE_OUT_BITS_STEPS=3 QUIET_SETTLE=0
scale_out=$DP_SOURCE_DIR/bench/scale_out.sh

DPTRAIN=$DPTRAIN bash "$scale_out" 2 1 4 > same.log 2>&1 || { cat same.log; fail "scale_out.sh failed"; }
expect_in same.log "weights under every shape and path: same"
for row in "1 ranks x 2 threads" "2 ranks x 1 threads" "1 rank x 2 threads, --isa scalar" \
           "strong   1 rank(s) x 1 thread(s)" "strong   2 rank(s) x 1 thread(s)" \
           "strong   1 rank(s) x 2 thread(s)" "weak     2 rank(s) x 1 thread(s)" "quiet check:"; do
  expect_in same.log "$row"
done
[[ $(grep -c '^[0-9].* [0-9a-f]\{16\}$' same.log) -ge 5 ]] || { cat same.log; fail "fewer than 5 checksums"; }

cat > seeded <<EOF2
#!/usr/bin/env bash
# dptrain, but at 2 threads with another seed: other weights
for a in "\$@"; do [[ \$a == 2 && \${prev:-} == --threads ]] && set -- "\$@" --seed 7; prev=\$a; done
exec "$DPTRAIN" "\$@"
EOF2
chmod +x seeded
if DPTRAIN=$WORK/seeded bash "$scale_out" 2 1 4 > differ.log 2>&1; then
  cat differ.log; fail "scale_out.sh passed weights that differ at 2 threads"
fi
expect_in differ.log "weights under every shape and path: DIFFER"

SCALE_OUT_DATA=$WORK/none bash "$scale_out" 2 1 4 > missing.log 2>&1 && fail "a missing training set was accepted"
expect_in missing.log "$WORK/none: no such training set"
SCALE_OUT_BITS_STEPS=0 bash "$scale_out" 2 1 4 > zero.log 2>&1 && fail "SCALE_OUT_BITS_STEPS=0 was accepted"
expect_in zero.log "SCALE_OUT_BITS_STEPS '0': expected a positive integer"
echo "scale_out: same bits found same, a seed at 2 threads found DIFFER"
