/* test.c - the check counters of the unit-test harness in test.h, shared by a
 * test file and the kiln_testlib code (op_harness.c) it links. */
#include "test.h"

int kt_failures;
int kt_checks;
