# Shared by the script tests: launcher, temp dir, assertions. CTest passes DPTRAIN,
# DPTRAIN_DATA, MPIEXEC*, DP_BINARY_DIR in the environment (tests/CMakeLists.txt).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/required.sh"
: "${DPTRAIN:?run through ctest}" "${DP_BINARY_DIR:?run through ctest}"
# the same program with the DPTRAIN_TEST_* hooks (test_hooks.h), for the runs that use them
DPTRAIN_TESTHOOKS=${DPTRAIN_TESTHOOKS:-$DP_BINARY_DIR/dptrain-testhooks}
TOOLS="$DP_BINARY_DIR/tests"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dptrain-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# mpi N ARGS...: launch through the configured launcher.
mpi() {
  local n=$1; shift
  # shellcheck disable=SC2086
  "${MPIEXEC:-mpiexec}" ${MPIEXEC_NUMPROC_FLAG:--n} "$n" ${MPIEXEC_PREFLAGS:-} "$@" ${MPIEXEC_POSTFLAGS:-}
}
# expect_in FILE TEXT: the file must contain the text.
expect_in() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks '$2'"; }; }
# expect_exit RC LOG CMD...: CMD's output goes to LOG, and it must exit with RC.
expect_exit() {
  local want=$1 log=$2 rc=0
  shift 2
  "$@" > "$log" 2>&1 || rc=$?
  [[ $rc == "$want" ]] || { cat "$log" >&2; fail "$*: exit $rc, expected $want"; }
}
