# Hardening (issue 6): the failure inventory (docs/failure-inventory.md) and its tests.
dp_add_unit_test(test_hardening test_hardening.c)
# Every entry of the inventory through dptrain itself, under mpirun where rank-local.
dp_add_script_test(failures test_failures.sh)
set_tests_properties(failures PROPERTIES PROCESSORS 2)
