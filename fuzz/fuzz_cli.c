/* libFuzzer target: option parsing (cli_parse). The input is split at NUL bytes into
 * argv[1..]; every outcome must be a config, --help/--version, or a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/driver/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    char *argv[130];
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 0;
    argv[argc++] = "dptrain";
    for (char *p = buf; p <= buf + size && argc < 128; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    dp_config cfg;
    dp_err err = {{0}};
    int rc = cli_parse(argc, argv, &cfg, NULL, &err);
    if (rc < 0 && err.msg[0] == 0)
        abort();
    if (rc == 0 && (cfg.batch < 1 || cfg.lr < 0 || !cfg.model || !cfg.train || !cfg.test))
        abort();
    free(buf);
    return 0;
}
