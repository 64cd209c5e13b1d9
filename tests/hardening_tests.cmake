# Hardening (issue 6): the failure inventory (docs/failure-inventory.md) and its tests.
dp_add_unit_test(test_hardening test_hardening.c)
