#!/usr/bin/env bash
# test_fetch_mnist: datasets/fetch_mnist.sh refuses wrong files with a message naming
# them, and (when data/mnist/raw already holds verified MNIST, e.g. after a real fetch)
# converts a --from directory of plain and .gz files and is idempotent. No network.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/required.sh"
: "${DPTRAIN_DATA:?set DPTRAIN_DATA to the dptrain-data binary}"
src="${DP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
fetch="$src/datasets/fetch_mnist.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dptrain-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "  ok: $1"; }
bad() { echo "  FAILED: $1"; cat "$tmp/log"; fail=1; }

# A wrong file is named, with both checksums.
mkdir -p "$tmp/wrong"
for n in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    echo "not mnist" >"$tmp/wrong/$n"
done
if (cd / && bash "$fetch" --from "$tmp/wrong" --dest "$tmp/d1" </dev/null >"$tmp/log" 2>&1); then
    bad "wrong files accepted"
elif grep -q "$tmp/wrong/train-images-idx3-ubyte: SHA-256" "$tmp/log"; then ok "wrong file named"; else bad "message names the file"; fi
[[ ! -e "$tmp/d1/raw/train-images-idx3-ubyte" ]] && ok "wrong file not stored" || bad "wrong file stored"

# A missing file is named.
mkdir -p "$tmp/empty"
if bash "$fetch" --from "$tmp/empty" --dest "$tmp/d2" </dev/null >"$tmp/log" 2>&1; then
    bad "empty --from accepted"
elif grep -q "neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz" "$tmp/log"; then ok "missing file named"; else bad "missing file message"; fi

if bash "$fetch" --bogus </dev/null >"$tmp/log" 2>&1; then bad "unknown option accepted"
elif grep -q -- "--bogus" "$tmp/log"; then ok "unknown option named"; else bad "unknown option message"; fi
bash "$fetch" --help >"$tmp/log" 2>&1 && grep -q -- "--from" "$tmp/log" && ok "--help" || bad "--help"

raw="$src/data/mnist/raw"
if [[ -f "$raw/train-images-idx3-ubyte" ]] && (cd "$raw" && sha256sum --quiet -c "$src/datasets/mnist.sha256") >/dev/null 2>&1; then
    mkdir -p "$tmp/from"
    gzip -c "$raw/train-images-idx3-ubyte" >"$tmp/from/train-images-idx3-ubyte.gz"
    gzip -c "$raw/t10k-labels-idx1-ubyte" >"$tmp/from/t10k-labels-idx1-ubyte.gz"
    cp "$raw/train-labels-idx1-ubyte" "$raw/t10k-images-idx3-ubyte" "$tmp/from/"
    if (cd / && bash "$fetch" --from "$tmp/from" --dest "$tmp/mnist" --shards 4 --tool "$DPTRAIN_DATA" </dev/null >"$tmp/log" 2>&1); then
        "$DPTRAIN_DATA" inspect "$tmp/mnist/train" >"$tmp/log" 2>&1 &&
            grep -q "total: 60000 samples in 4 file(s)" "$tmp/log" && ok "60000 training samples in 4 shards" || bad "train shards"
        "$DPTRAIN_DATA" inspect "$tmp/mnist/test.h5" >"$tmp/log" 2>&1 &&
            grep -q "total: 10000 samples in 1 file(s)" "$tmp/log" && ok "10000 test samples" || bad "test file"
        bash "$fetch" --from "$tmp/from" --dest "$tmp/mnist" --shards 4 --tool "$DPTRAIN_DATA" </dev/null >"$tmp/log" 2>&1 &&
            grep -q "already" "$tmp/log" && ok "second run is a no-op" || bad "idempotent rerun"
        # A corrupted stored raw file is noticed and replaced from --from.
        printf 'x' | dd of="$tmp/mnist/raw/t10k-labels-idx1-ubyte" bs=1 seek=100 conv=notrunc 2>/dev/null
        bash "$fetch" --from "$tmp/from" --dest "$tmp/mnist" --shards 4 --tool "$DPTRAIN_DATA" </dev/null >"$tmp/log" 2>&1 &&
            (cd "$tmp/mnist/raw" && sha256sum --quiet -c "$src/datasets/mnist.sha256") >/dev/null 2>&1 &&
            ok "corrupted raw file refetched" || bad "corrupted raw file refetched"
        # A damaged byte in a shard (its images lie in checksummed chunks filling most of
        # the file) is noticed, and the shards are made again.
        shard="$tmp/mnist/train/train-00001-of-00004.h5"
        printf 'x' | dd of="$shard" bs=1 seek=$(($(stat -c %s "$shard") / 2)) conv=notrunc \
            2>/dev/null
        if "$DPTRAIN_DATA" inspect "$tmp/mnist/train" >"$tmp/log" 2>&1; then
            bad "damaged shard read without error"
        elif grep -q "do not match the checksum" "$tmp/log"; then ok "damaged shard refused"
        else bad "damaged shard message"; fi
        bash "$fetch" --from "$tmp/from" --dest "$tmp/mnist" --shards 4 --tool "$DPTRAIN_DATA" \
            </dev/null >"$tmp/log" 2>&1 && ! grep -q "already" "$tmp/log" &&
            "$DPTRAIN_DATA" inspect "$tmp/mnist/train" >/dev/null 2>&1 &&
            ok "damaged shard made again" || bad "damaged shard made again"
    else
        bad "fetch --from a directory of verified files"
    fi
else
    skip_part "no verified MNIST in $raw: the full conversion was not tested (run datasets/fetch_mnist.sh once)"
fi
[[ $fail -eq 0 ]] && echo "test_fetch_mnist: all checks passed"
exit $fail
