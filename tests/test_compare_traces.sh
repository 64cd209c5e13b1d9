#!/usr/bin/env bash
# bench/compare_traces.sh, one short round on a small synthetic set: a row for every span
# of the reference model's step, each with positive times and ratio; a build that fails is
# named (exit 1); bad arguments are named (exit 2).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 2 > /dev/null
cmp=$DP_SOURCE_DIR/bench/compare_traces.sh

bash "$cmp" "$DPTRAIN" "$DPTRAIN" 1 1 32 --train train > ok.log 2>&1 ||
  { cat ok.log; fail "compare_traces.sh failed"; }
cat ok.log
expect_in ok.log "span (median us)"
for span in forward backward "maxpool1 forward" "maxpool1 backward" "maxpool2 forward" \
            "maxpool2 backward" "fc1 forward" "fc1 backward" "fc2 backward" batch loss; do
  row=$(grep -E "^$span +[0-9]" ok.log) || fail "no row for '$span'"
  # span old new old/new: the last three fields positive
  awk '{ for (i = NF - 2; i <= NF; i++) if ($i + 0 <= 0) exit 1 }' <<< "$row" ||
    fail "$span: a figure that is not positive: $row"
done

# a build that fails: named, exit 1
expect_exit 1 fails.log bash "$cmp" /bin/false "$DPTRAIN" 1 1 32 --train train
expect_in fails.log "compare_traces.sh: /bin/false failed"

# bad arguments: exit 2, naming the argument
for bad in "0|ROUNDS: expected a whole number >= 1, got '0'" \
           "1 two|THREADS: expected a whole number >= 1, got 'two'" \
           "1 1 30|STEPS: expected a whole number above 30 (steps 1-29 warm up), got '30'"; do
  read -ra args <<< "${bad%%|*}"
  expect_exit 2 bad.log bash "$cmp" "$DPTRAIN" "$DPTRAIN" "${args[@]}" --train train
  expect_in bad.log "compare_traces.sh: ${bad#*|}"
done
echo "compare_traces: ok"
