#!/usr/bin/env bash
# test_data_tool: dptrain-data convert/inspect end to end on small IDX files, checked
# with h5py (skipped, exit 77, when the Python there lacks h5py; a failure where every
# test must run: required.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/required.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
: "${DPTRAIN_DATA:?set DPTRAIN_DATA to the dptrain-data binary}"
"$py" -c 'import h5py, numpy' 2>/dev/null || skip_test "$py has no h5py/numpy"
exec "$py" "$(dirname "${BASH_SOURCE[0]}")/test_data_tool.py" "$DPTRAIN_DATA"
