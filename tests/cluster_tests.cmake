# Clusters and scaling (issue 5): the linear lr scaling rule, the sweep/collect/plot
# scripts, and the Slurm harnesses (real slurmctld/slurmd/munge; root only, skip 77
# otherwise).
dp_add_unit_test(test_lr_scaling test_lr_scaling.c)
dp_add_script_test(lr_scaling_run test_lr_scaling_run.sh)
set_tests_properties(lr_scaling_run PROPERTIES PROCESSORS 2)
dp_add_script_test(slurm_1node slurm/test_slurm_1node.sh)
set_tests_properties(slurm_1node PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)
dp_add_script_test(slurm_preempt slurm/test_slurm_preempt.sh)
set_tests_properties(slurm_preempt PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)
dp_add_script_test(slurm_2node slurm/test_slurm_2node.sh)
set_tests_properties(slurm_2node PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)
dp_add_script_test(slurm_2node_fault slurm/test_slurm_2node_fault.sh)
set_tests_properties(slurm_2node_fault PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)
dp_add_script_test(slurm_2node_resume slurm/test_slurm_2node_resume.sh)
set_tests_properties(slurm_2node_resume PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)
dp_add_script_test(sweep_scripts test_sweep_scripts.sh)
set_tests_properties(sweep_scripts PROPERTIES PROCESSORS 2)

# Issue 15: every way out of a Slurm harness (failed start, failed check, SIGTERM, SIGINT,
# its own time limit, ctest's SIGKILL at TIMEOUT) stops every process it started; a cluster
# that cannot start fails within its bound. The harnesses' own limit (common.sh, 540 s)
# stays below the TIMEOUT of 600 s set here, so that they end themselves, with their logs.
dp_add_script_test(slurm_harness_cleanup slurm/test_slurm_harness_cleanup.sh)
set_tests_properties(slurm_harness_cleanup PROPERTIES PROCESSORS 2 RESOURCE_LOCK slurm TIMEOUT 600)

# Issue 12: honest results and time to accuracy. Hand-made metrics: the time to 99%
# arithmetic, the report's load marks and its refusal to publish runs under load;
# dptrain's host record; the projection's time to 99% and where nodes stop helping.
dp_add_script_test(time_to_accuracy test_time_to_accuracy.sh)
dp_add_script_test(load_marking test_load_marking.sh)
set_tests_properties(load_marking PROPERTIES PROCESSORS 2)
dp_add_script_test(projection test_projection.sh)
# Issue 12: the large-batch table maker on hand-made metrics, and scripts/large_batch.sh's
# runner on synthetic data (2 epochs, batch 32 in 2 passes of 16).
# bench/quiet.sh: the benchmarks' verdict on the machine (steal, load, spread of runs).
dp_add_script_test(quiet test_quiet.sh)
# bench/compare_layers.sh: each layer beside PyTorch's; the two sides must run the same layers.
dp_add_script_test(compare_layers test_compare_layers.sh)
# bench/compare_traces.sh: two builds' steps span by span, from dptrain's trace.
dp_add_script_test(compare_traces test_compare_traces.sh)
# bench/cpus.sh: each CPU's speed, pinned (a virtual machine's CPUs need not be equal).
dp_add_script_test(cpus test_cpus.sh)
# bench/ckpt_cost.sh: a checkpoint's cost, two builds side by side.
dp_add_script_test(ckpt_cost test_ckpt_cost.sh)
# scripts/bundle.sh: dptrain and its runtime for a machine without Open MPI and HDF5
dp_add_script_test(bundle test_bundle.sh)
set_tests_properties(bundle PROPERTIES PROCESSORS 2)
# bench/scale_out.sh: its verdict on the weights under every launch shape, on synthetic data
dp_add_script_test(scale_out test_scale_out.sh)
set_tests_properties(scale_out PROPERTIES PROCESSORS 2)
dp_add_script_test(large_batch_table test_large_batch_table.sh)
set_tests_properties(large_batch_table PROPERTIES PROCESSORS 2)
