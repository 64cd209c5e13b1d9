# Model side: layers, the whole net, optimizer, sampling, options; and training runs.
dp_add_unit_test(test_layers test_layers.c)
dp_add_unit_test(test_model test_model.c)
# Every instruction-set path (avx512, avx2, scalar) gives the same bits as an fmaf oracle
# and as each other; paths this CPU lacks are skipped with a line saying so.
dp_add_unit_test(test_isa test_isa.c)
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
dp_add_script_test(e2e_mnist test_e2e_mnist.sh)
set_tests_properties(e2e_mnist PROPERTIES PROCESSORS 2)
# Bad input: clear message, non-zero exit, the whole job ends quickly.
dp_add_script_test(errors test_errors.sh)
set_tests_properties(errors PROPERTIES PROCESSORS 4)
# Against PyTorch (Debian's python3-torch): same start, same batches, same weights.
dp_add_script_test(torch_reference test_torch_reference.sh)
set_tests_properties(torch_reference PROPERTIES PROCESSORS 3)
