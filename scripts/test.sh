#!/usr/bin/env bash
# test.sh: the README's second command. Installs and builds what is missing (with the
# test dependencies), fetches MNIST for the end-to-end test, and runs the whole CTest
# suite. Extra arguments go to ctest (e.g. -R mpi). CI (.ci/run) adds the hardening
# stages, which may also be given alone:
#   --sanitize       the whole suite again under ASan+UBSan, in build-asan/
#   --valgrind       a short training run under valgrind memcheck, in build-valgrind/
#   --fuzz SECONDS   each libFuzzer target for SECONDS (scripts/fuzz.sh), in build-fuzz/
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=0 valgrind=0 fuzz=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=1; shift ;;
    --valgrind) valgrind=1; shift ;;
    --fuzz) fuzz=$2; shift 2 ;;
    *) break ;;
  esac
done
DPTRAIN_TEST_EXTRA=$([[ $fuzz != 0 ]] && echo clang || true)
[[ $valgrind == 1 ]] && DPTRAIN_TEST_EXTRA+=" valgrind"
export DPTRAIN_TEST_EXTRA
"$repo/scripts/setup.sh" --with-test-deps
"$repo/datasets/fetch_mnist.sh" --tool "$repo/build/dptrain-data"
source "$repo/scripts/mpi-env.sh"
export DPTRAIN_REQUIRE_DATA=1  # every test must run: one that would skip fails (tests/required.sh)
export DPTRAIN_REQUIRE_SLURM=1 # setup installed Slurm: its tests fail, not skip, without it
# DPTRAIN_NO_TORCH=1: setup installed no PyTorch, so the three tests that need it are left
# out, and said to be; never in CI, where every test runs
left_out=()
if [[ ${DPTRAIN_NO_TORCH:-0} == 1 ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "test.sh: DPTRAIN_NO_TORCH=1 with CI=true: in CI every test runs, PyTorch's included" >&2
    exit 1
  fi
  left_out=(-E '^(torch_reference|dropout_torch|compare_layers)$')
fi
(cd "$repo/build" && ctest --output-on-failure --timeout 900 "${left_out[@]}" "$@")
[[ ${#left_out[@]} -eq 0 ]] ||
  echo "test.sh: DPTRAIN_NO_TORCH=1: torch_reference, dropout_torch and compare_layers" \
       "were left out (they need PyTorch)"

if [[ $sanitize == 1 ]]; then
  echo "test.sh: the suite under AddressSanitizer + UBSan (build-asan/)"
  cmake -S "$repo" -B "$repo/build-asan" -DDPTRAIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build "$repo/build-asan" -j "$(nproc)" > /dev/null
  # Open MPI's own allocations are never freed: leaks are judged by valgrind, not here.
  # Left out: the fetch script (no C code) and the Slurm harnesses (job scripts and
  # Slurm's requeue back-off, minutes each; their dptrain runs take the code paths the
  # other tests run here), and required_skips (it checks the test scripts' skips; no
  # dptrain code of its own).
  (cd "$repo/build-asan" && ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure --timeout 1800 -E '^(test_fetch_mnist|slurm_.*|sweep_scripts|required_skips)$' "$@")
fi
# The default build is portable (DPTRAIN_NATIVE=OFF), so where valgrind is installed the
# suite above has already run the valgrind test; a separate build only for a native one.
if [[ $valgrind == 1 ]] && (cd "$repo/build" && ctest -N -R '^valgrind$' | grep -q 'Total Tests: 1'); then
  echo "test.sh: valgrind memcheck: run in the suite above (a portable build)"
elif [[ $valgrind == 1 ]]; then
  echo "test.sh: valgrind memcheck (build-valgrind/)"
  cmake -S "$repo" -B "$repo/build-valgrind" -DDPTRAIN_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build "$repo/build-valgrind" -j "$(nproc)" > /dev/null
  (cd "$repo/build-valgrind" && ctest --output-on-failure -R '^valgrind$')
fi
if [[ $fuzz != 0 ]]; then
  "$repo/scripts/fuzz.sh" "$fuzz"
fi
