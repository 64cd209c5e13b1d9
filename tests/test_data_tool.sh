#!/usr/bin/env bash
# test_data_tool: dptrain-data convert/inspect end to end on small IDX files, checked
# with h5py (skipped, exit 77, when the Python there lacks h5py).
set -euo pipefail
py="${DP_PYTHON:-/usr/bin/python3}"
: "${DPTRAIN_DATA:?set DPTRAIN_DATA to the dptrain-data binary}"
if ! "$py" -c 'import h5py, numpy' 2>/dev/null; then
    echo "SKIP: $py has no h5py/numpy"
    exit 77
fi
exec "$py" "$(dirname "${BASH_SOURCE[0]}")/test_data_tool.py" "$DPTRAIN_DATA"
