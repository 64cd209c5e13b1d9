# Checkpoints, resume, stop signals, fine-tuning and evaluation (README "Checkpoints,
# resume and fine-tuning").
dp_add_script_test(checkpoint_resume test_checkpoint.sh)
set_tests_properties(checkpoint_resume PROPERTIES PROCESSORS 3)
dp_add_script_test(checkpoint_signals test_signals.sh)
set_tests_properties(checkpoint_signals PROPERTIES PROCESSORS 2)
dp_add_script_test(finetune_eval test_finetune.sh)
set_tests_properties(finetune_eval PROPERTIES PROCESSORS 3)
# The file format's run identity: pruning deletes only the writing run's checkpoints.
dp_add_unit_test(test_checkpoint_files test_checkpoint_files.c)
