# Checkpoints, resume, stop signals, fine-tuning and evaluation (README "Checkpoints,
# resume and fine-tuning").
dp_add_script_test(checkpoint_resume test_checkpoint.sh)
set_tests_properties(checkpoint_resume PROPERTIES PROCESSORS 3)
dp_add_script_test(checkpoint_signals test_signals.sh)
set_tests_properties(checkpoint_signals PROPERTIES PROCESSORS 2)
dp_add_script_test(finetune_eval test_finetune.sh)
set_tests_properties(finetune_eval PROPERTIES PROCESSORS 3)
dp_add_script_test(eval_arithmetic test_eval_arithmetic.sh)
set_tests_properties(eval_arithmetic PROPERTIES PROCESSORS 2)
# Resume on another rank count: 8 -> 3, 3 -> 8, 1 -> 4, 4 -> 1, bitwise the uninterrupted run.
dp_add_script_test(resume_ranks test_resume_ranks.sh)
set_tests_properties(resume_ranks PROPERTIES PROCESSORS 8)
# --optimizer lars|lamb|adamw end to end: threads, replicas, resume bitwise with their
# state (step counts as int64), frozen layers, refusals (docs/optimizers.md).
dp_add_script_test(optimizers test_optimizers.sh)
set_tests_properties(optimizers PROPERTIES PROCESSORS 3)
# The file format's run identity: pruning deletes only the writing run's checkpoints.
dp_add_unit_test(test_checkpoint_files test_checkpoint_files.c)
