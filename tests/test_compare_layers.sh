#!/usr/bin/env bash
# bench/compare_layers.sh, one short round: both tables have every layer of the reference
# model with positive times and speed-ups and the quiet check; PyTorch's side reporting
# another shape, or other work for a layer, is caught (exit 1, naming it); bad arguments
# are named (exit 2). Needs torch.
source "$(dirname "$0")/lib.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
if ! "$py" -c "import torch" 2> /dev/null; then
  skip_test "$py cannot import torch (apt-get install python3-torch)"
fi
cd "$WORK"
export BENCH_LAYERS=$DP_BINARY_DIR/bench/bench_layers COMPARE_LAYERS_REPS=2 QUIET_SETTLE=0
[[ -x $BENCH_LAYERS ]] || fail "no $BENCH_LAYERS"
cmp_layers=$DP_SOURCE_DIR/bench/compare_layers.sh

bash "$cmp_layers" 1 reference 1 > ok.log 2>&1 || { cat ok.log; fail "compare_layers.sh failed"; }
cat ok.log
for layer in "conv1 32x26x26" "relu1 32x26x26" "maxpool1 32x13x13" "conv2 64x11x11" \
             "relu2 64x11x11" "maxpool2 64x5x5" "fc1 128x1x1" "relu3 128x1x1" "fc2 10x1x1"; do
  read -r name shape <<< "$layer"
  rows=$(awk -v n="$name" -v s="$shape" '$1 == n && $2 == s' ok.log)
  [[ $(wc -l <<< "$rows") == 2 ]] || fail "$name: not one row in each table: $rows"
  # every time and the speed-up positive; GF/s and the peak's share where the layer has work
  # (name shape ms [GF/s peak%] ms [GF/s peak%] speed-up)
  awk '{ if ($3 <= 0 || $NF + 0 <= 0) exit 1 }
       $1 ~ /^(conv|fc)/ { if (NF != 9 || $4 <= 0 || $5 + 0 <= 0 || $6 <= 0 || $7 <= 0 ||
                               $8 + 0 <= 0) exit 1 }
       $1 !~ /^(conv|fc)/ { if (NF != 5 || $4 <= 0) exit 1 }' <<< "$rows" ||
    fail "$name: a figure that is not positive: $rows"
done
[[ $(grep -c '^all layers' ok.log) == 2 ]] || fail "not two 'all layers' rows"
expect_in ok.log "forward"
expect_in ok.log "backward"
expect_in ok.log "quiet check:"
grep -qE "dptrain: (avx512|avx2|scalar), fp32, direct convolutions" ok.log ||
  fail "the header does not name dptrain's path, precision and algorithm"

# PyTorch's side changed: conv2's shape, then conv2's forward work doubled
changed() { # NAME: a Python whose torch_layers.py output goes through the script NAME.filter
  cat > "$1" <<EOF2
#!/usr/bin/env bash
if [[ \${1:-} == *torch_layers.py ]]; then
  "$py" "\$@" | "$WORK/$1.filter"
  exit "\${PIPESTATUS[0]}"
fi
exec "$py" "\$@"
EOF2
  chmod +x "$1" "$1.filter"
}
printf '#!/bin/sh\nsed "s/^conv2 *64x11x11/conv2 64x12x12/"\n' > shape.filter
changed shape
if DP_PYTHON=$WORK/shape bash "$cmp_layers" 1 reference 1 > shape.log 2>&1; then
  cat shape.log; fail "another shape on PyTorch's side passed"
fi
expect_in shape.log "compare_layers.sh: the layers differ"
printf '#!/bin/sh\nawk '"'"'$1 == "conv2" { $7 = 2 * $7 } 1'"'"'\n' > work.filter
changed work
if DP_PYTHON=$WORK/work bash "$cmp_layers" 1 reference 1 > work.log 2>&1; then
  cat work.log; fail "other work for conv2 on PyTorch's side passed"
fi
expect_in work.log "compare_layers.sh: conv2: dptrain did"

# bad arguments: exit 2, naming the argument
for bad in "0|ROUNDS: expected a whole number >= 1, got '0'" \
           "1 lenet|MODEL: expected reference or nopool, got 'lenet'" \
           "1 reference two|THREADS: expected a whole number >= 1, got 'two'"; do
  read -ra args <<< "${bad%%|*}"
  expect_exit 2 bad.log bash "$cmp_layers" "${args[@]}"
  expect_in bad.log "compare_layers.sh: ${bad#*|}"
done
echo "compare_layers: ok"
