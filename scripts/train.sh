#!/usr/bin/env bash
# train.sh: the README's first command. Installs and builds what is missing, fetches and
# converts MNIST (checksums verified), then trains the reference model:
#   scripts/train.sh [RANKS (default 8)] [dptrain options...]
# e.g. scripts/train.sh 8 --epochs 6 --metrics run.jsonl --save model.h5
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ranks=8
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then ranks=$1; shift; fi

"$repo/scripts/setup.sh"
"$repo/datasets/fetch_mnist.sh" --tool "$repo/build/dptrain-data"

source "$repo/scripts/mpi-env.sh"
mpi_oversubscribe_if_needed "$ranks"
cd "$repo"
exec mpirun -n "$ranks" build/dptrain "$@"
