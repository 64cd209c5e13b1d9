# Seeing training as it happens: the progress bar and lines (issue 14), step records,
# the trace, the confusion-matrix picture (issue 16).
add_executable(progress_where progress_where.c)
target_link_libraries(progress_where PRIVATE dptrain_core)
dp_add_script_test(progress test_progress.sh)
set_tests_properties(progress PROPERTIES PROCESSORS 2)
dp_add_script_test(step_records test_steplog.sh)
set_tests_properties(step_records PROPERTIES PROCESSORS 2)
dp_add_script_test(trace test_trace.sh)
set_tests_properties(trace PROPERTIES PROCESSORS 3)
dp_add_script_test(eval_plot test_eval_plot.sh)
set_tests_properties(eval_plot PROPERTIES PROCESSORS 2)
