# Model side: layers, the whole net, optimizer, sampling, options; and training runs.
dp_add_unit_test(test_layers test_layers.c)
dp_add_unit_test(test_model test_model.c)
# The exact gradient sum: order-independent, within its bound of a float64 sum.
dp_add_unit_test(test_gradsync test_gradsync.c)
# The sum over 3 ranks, through MPI_Allreduce and through shared memory, against one rank.
add_executable(test_gradsync_ranks test_gradsync_ranks.c)
target_link_libraries(test_gradsync_ranks PRIVATE dptrain_core)
target_include_directories(test_gradsync_ranks PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
dp_add_mpi_test(gradsync_ranks 3 $<TARGET_FILE:test_gradsync_ranks>)
# Every instruction-set path (avx512, avx2, scalar) gives the same bits as an fmaf oracle
# and as each other; paths this CPU lacks are skipped with a line saying so.
dp_add_unit_test(test_isa test_isa.c)
dp_add_unit_test(test_exact_parts test_exact_parts.c)
# --precision bf16: the conv products against an oracle, AVX512-BF16 against its emulation.
dp_add_unit_test(test_bf16 test_bf16.c)
# --conv-algorithm winograd: against a double convolution and finite differences, across
# threads and paths, the fused layers' bits; shapes it does not suit stay direct.
dp_add_unit_test(test_winograd test_winograd.c)
dp_add_script_test(winograd_training test_winograd_training.sh)
set_tests_properties(winograd_training PROPERTIES PROCESSORS 3)
dp_add_script_test(bf16_training test_bf16_training.sh)
set_tests_properties(bf16_training PROPERTIES PROCESSORS 3)
# DPTRAIN_ISA is read before main
add_test(NAME isa_env COMMAND test_isa --expect scalar)
set_tests_properties(isa_env PROPERTIES ENVIRONMENT "DPTRAIN_ISA=scalar")
# Training under each path, across ranks and threads, under a forced non-default path too.
dp_add_script_test(isa_training test_isa_training.sh)
set_tests_properties(isa_training PROPERTIES PROCESSORS 4)
add_executable(make_dataset make_dataset.c)
target_link_libraries(make_dataset PRIVATE dptrain_core)
add_executable(compare_weights compare_weights.c)
target_link_libraries(compare_weights PRIVATE dptrain_core)
# Training runs under mpirun: P ranks equal 1 rank, replicas identical, threads bitwise.
dp_add_script_test(mpi_training test_mpi_training.sh)
set_tests_properties(mpi_training PROPERTIES PROCESSORS 4)
if(DPTRAIN_SANITIZE)  # 26 launches of mpirun, each slower under ASan
  set_tests_properties(mpi_training PROPERTIES TIMEOUT 1500)
endif()
dp_add_script_test(e2e_mnist test_e2e_mnist.sh)
set_tests_properties(e2e_mnist PROPERTIES PROCESSORS 2)
# Bad input: clear message, non-zero exit, the whole job ends quickly.
dp_add_script_test(errors test_errors.sh)
set_tests_properties(errors PROPERTIES PROCESSORS 4)
# Against PyTorch (Debian's python3-torch): same start, same batches, same weights.
dp_add_script_test(torch_reference test_torch_reference.sh)
set_tests_properties(torch_reference PROPERTIES PROCESSORS 3)
# dropout: the same as PyTorch given the same masks; masks that follow the sample.
add_executable(dropout_reference dropout_reference.c)
target_link_libraries(dropout_reference PRIVATE dptrain_core)
dp_add_script_test(dropout_torch test_dropout_torch.sh)
dp_add_script_test(dropout test_dropout.sh)
set_tests_properties(dropout PROPERTIES PROCESSORS 3)
# The options the docs name are the options the programs take, and docs/options.md is
# `dptrain --help-markdown` (the option table in src/driver/cli.c); the script says how to
# regenerate the page when it fails.
add_test(NAME options_docs
         COMMAND ${DP_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_options_docs.py
                 $<TARGET_FILE:dptrain> $<TARGET_FILE:dptrain-eval> $<TARGET_FILE:dptrain-data>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(options_docs PROPERTIES ENVIRONMENT "${DP_TEST_ENV}" TIMEOUT 120)
# Optimizers step by step: sgd and adamw against torch.optim, lars and lamb against NumPy
# references of their formulas (docs/optimizers.md), 1 and 3 threads bitwise.
add_executable(optim_steps optim_steps.c)
target_link_libraries(optim_steps PRIVATE dptrain_core)
dp_add_script_test(optim_reference test_optim_reference.sh)
# Every sample exactly once per epoch with files of 20 and 380 samples on 2 ranks.
dp_add_script_test(sample_use test_sample_use.sh)
set_tests_properties(sample_use PROPERTIES PROCESSORS 2)
dp_add_script_test(balance test_balance.sh)
set_tests_properties(balance PROPERTIES PROCESSORS 2)
# The threads' shares follow their speeds (threads.h); forced uneven splits change no bit.
dp_add_script_test(thread_balance test_thread_balance.sh)
set_tests_properties(thread_balance PROPERTIES PROCESSORS 2)
