# Hardening (issue 6): the failure inventory (docs/failure-inventory.md) and its tests.
dp_add_unit_test(test_hardening test_hardening.c)
# Every entry of the inventory through dptrain itself, under mpirun where rank-local.
dp_add_script_test(failures test_failures.sh)
set_tests_properties(failures PROPERTIES PROCESSORS 2)
# valgrind cannot run -march=native code (AVX-512) or ASan builds: registered only in a
# portable build (the default; scripts/test.sh --valgrind makes one in build-valgrind/),
# where the kernels take the AVX2 path, valgrind's CPUID offering no AVX-512.
find_program(DP_VALGRIND valgrind)
if(DP_VALGRIND AND NOT DPTRAIN_NATIVE AND NOT DPTRAIN_SANITIZE)
  dp_add_script_test(valgrind test_valgrind.sh)
  set_tests_properties(valgrind PROPERTIES PROCESSORS 2)
endif()
# --clip-grad-norm end to end, against a hand computation, on 1 and 2 ranks.
dp_add_script_test(clip_grad_norm test_clip.sh)
set_tests_properties(clip_grad_norm PROPERTIES PROCESSORS 2)
# HDF5 file locking off everywhere (h5util): every run and tool under a shim that
# refuses every lock on a *.h5 file.
add_library(flock_busy SHARED flock_busy.c)
dp_add_script_test(h5_nolock test_h5_nolock.sh)
# The watchdog makes no MPI call (an LD_PRELOAD shim reports any from another thread than
# MPI's), MPI_THREAD_FUNNELED is checked, and the slow phases (evaluation, checkpoint,
# --save, metrics) are watched with --watchdog-io: a rank stopped mid-checkpoint ends the job.
add_library(mpi_thread_check SHARED mpi_thread_check.c)
target_link_libraries(mpi_thread_check PRIVATE MPI::MPI_C)
dp_add_script_test(watchdog test_watchdog.sh)
set_tests_properties(watchdog PROPERTIES PROCESSORS 2)
# The fault-injection hooks are in dptrain-testhooks only: dptrain ignores DPTRAIN_TEST_*.
dp_add_script_test(test_hooks test_hooks.sh)
set_tests_properties(test_hooks PROPERTIES PROCESSORS 2)
# No silent skips where every test must run: with CI=true or DPTRAIN_REQUIRE_DATA=1 a test
# whose dependency is missing fails instead of skipping (tests/required.sh).
dp_add_script_test(required_skips test_required.sh)
set_tests_properties(required_skips PROPERTIES PROCESSORS 3)
