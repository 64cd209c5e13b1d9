#!/usr/bin/env bash
# test_data_h5py: files written with plain h5py (no attributes, rank-3 or rank-4 images)
# are read by dptrain-data inspect; a float image file is refused. Exit 77 without h5py
# (a failure where every test must run: required.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/required.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
: "${DPTRAIN_DATA:?set DPTRAIN_DATA to the dptrain-data binary}"
"$py" -c 'import h5py, numpy' 2>/dev/null || skip_test "$py has no h5py/numpy"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dptrain-h5py.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$py" - "$tmp" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(f"{d}/three.h5", "w") as f:
    f.create_dataset("images", data=np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3))
    f.create_dataset("labels", data=np.array([0, 1, 1, 2, 2, 2], dtype=np.uint8))
with h5py.File(f"{d}/four.h5", "w") as f:  # with checksums, as docs/data.md shows
    f.create_dataset("images", data=np.zeros((2, 3, 4, 5), dtype=np.uint8), fletcher32=True)
    f.create_dataset("labels", data=np.array([4, 4], dtype=np.uint8), fletcher32=True)
with h5py.File(f"{d}/float.h5", "w") as f:
    f.create_dataset("images", data=np.zeros((2, 4, 3), dtype=np.float32))
    f.create_dataset("labels", data=np.array([0, 1], dtype=np.uint8))
PY

fail=0
expect() { # expect WHAT TEXT FILE
    if grep -qF -- "$2" "$3"; then echo "  ok: $1"; else echo "  FAILED: $1: no '$2' in:"; cat "$3"; fail=1; fi
}

"$DPTRAIN_DATA" inspect "$tmp/three.h5" >"$tmp/out" 2>&1 || { echo "FAILED: inspect three.h5"; cat "$tmp/out"; exit 1; }
expect "rank-3 images read as C = 1" "6 samples, C x H x W = 1 x 4 x 3" "$tmp/out"
expect "no attributes" "(none)" "$tmp/out"
expect "histogram" "labels: 0:1 1:2 2:3" "$tmp/out"
expect "no num_classes attribute" "num_classes = 0 (no attribute)" "$tmp/out"
expect "no checksums, said" "checksums: none: a damaged byte would go unnoticed" "$tmp/out"

"$DPTRAIN_DATA" inspect "$tmp/four.h5" >"$tmp/out" 2>&1 || { echo "FAILED: inspect four.h5"; cat "$tmp/out"; exit 1; }
expect "rank-4 images" "2 samples, C x H x W = 3 x 4 x 5" "$tmp/out"
expect "histogram up to the largest label" "labels: 0:0 1:0 2:0 3:0 4:2" "$tmp/out"
expect "h5py's checksums seen" "checksums: Fletcher-32 on /images and /labels" "$tmp/out"

if "$DPTRAIN_DATA" inspect "$tmp/float.h5" >"$tmp/out" 2>&1; then
    echo "  FAILED: float images accepted"; fail=1
else
    expect "float images refused, file named" "float.h5" "$tmp/out"
    expect "float images refused, type named" "float32" "$tmp/out"
fi
if "$DPTRAIN_DATA" inspect "$tmp/three.h5,$tmp/four.h5" >"$tmp/out" 2>&1; then
    echo "  FAILED: files of different sample shapes accepted"; fail=1
else
    expect "different shapes refused" "expected 1 x 4 x 3" "$tmp/out"
fi
[[ $fail -eq 0 ]] && echo "test_data_h5py: all checks passed"
exit $fail
