/* cli_parse: run cli_parse on a command line written as one string, for option tests. */
#ifndef DPTRAIN_TESTS_CLI_PARSE_H
#define DPTRAIN_TESTS_CLI_PARSE_H

#include <stdio.h>
#include <string.h>

#include "dptrain/driver/cli.h"

static inline int parse(const char *line, dp_config *cfg, dp_err *err)
{
    static char buf[512]; /* cfg keeps pointers into it */
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "dptrain %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    return cli_parse(argc, argv, cfg, NULL, err);
}

#endif
