# required.sh: what a test does when it cannot run here. Sourced by lib.sh and by the
# scripts that do without it; defines functions only.
# Everywhere every test must run, a test that would skip fails instead: in CI (CI systems
# set CI=true) and under scripts/test.sh (DPTRAIN_REQUIRE_DATA=1, as it installed every
# test dependency and fetched MNIST).
tests_required() { [[ ${DPTRAIN_REQUIRE_DATA:-0} == 1 || ${CI:-} == true ]]; }
# skip_test WHY: the whole test cannot run here: exit 77 (CTest reports it skipped), or
# fail where every test must run
skip_test() {
  if tests_required; then
    echo "FAIL: $1; every test must run here (CI=true or DPTRAIN_REQUIRE_DATA=1)" >&2
    exit 1
  fi
  echo "skipped: $1"
  exit 77
}
# skip_part WHY: one part of a test cannot run here: said on a line of its own (the rest
# of the test runs and can pass), or a failure where every test must run
skip_part() {
  if tests_required; then
    echo "FAIL: $1; every test must run here (CI=true or DPTRAIN_REQUIRE_DATA=1)" >&2
    exit 1
  fi
  echo "SKIPPED PART: $1"
}
