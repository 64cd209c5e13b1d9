/* progress_where: prints where this process's stderr ends up, as dptrain's progress
 * decides it (test_progress.sh runs it directly, under mpirun, into files and pipes). */
#include "dptrain/driver/progress.h"

#include <stdio.h>

int main(void)
{
    int columns = 0;
    char how[512];
    int terminal = progress_where(&columns, how, sizeof how);
    printf("terminal %d columns %d: %s\n", terminal, columns, how);
    return 0;
}
