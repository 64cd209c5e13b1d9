#!/usr/bin/env bash
# test.sh: the README's second command. Installs and builds what is missing (with the
# test dependencies), fetches MNIST for the end-to-end test, and runs the whole CTest
# suite. Extra arguments go to ctest (e.g. -R mpi).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh" --with-test-deps
"$repo/datasets/fetch_mnist.sh" --tool "$repo/build/dptrain-data"
source "$repo/scripts/mpi-env.sh"
export DPTRAIN_REQUIRE_DATA=1  # the end-to-end test must run, not skip
export DPTRAIN_REQUIRE_SLURM=1 # setup installed Slurm: its tests fail, not skip, without it
cd "$repo/build"
ctest --output-on-failure --timeout 900 "$@"
