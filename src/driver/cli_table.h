/* cli_table: the shape of dptrain's option table, shared by the table itself
 * (cli_options.c: the rows, the sections, the options with their own parsing) and the
 * code that reads it (cli.c: parsing, --help, --help-markdown). Private to the driver.
 *
 * A row says everything about an option: its long name, the value it takes (shown in the
 * help as e.g. N or PATH), how that value is parsed and checked (a parse function, usually
 * one of the kinds below, with its range or choices), the dp_config field it lands in, its
 * default, its help text and its section. Adding an option is one row plus its field.
 *
 * Kinds: FLAG (no value; stores a fixed int), INT (a range of long), DOUBLE (a finite
 * range), CHOICE ("a|b|c", stored as the index of the word), STRING (with an optional
 * message refusing ""). Anything else (pairs like M,S, ranges like A:B, options that set
 * several fields) is a row with its own parse function, which gets the row, the value
 * and the context (config, options given so far, output) as the kinds do.
 *
 * Defaults: a row's `init` is a value text that the row's own parser applies before
 * argv is parsed, so the default shown is the default used; `shown` is what --help prints
 * where the default is not a value the option accepts ("off", "automatic"), and those
 * few fields are set by cli_special_defaults. */
#ifndef DPTRAIN_CLI_TABLE_H
#define DPTRAIN_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "dptrain/driver/cli.h"

typedef struct cli_opt cli_opt;

typedef struct {
    dp_config *cfg;
    unsigned char *given; /* [row]: the option appeared earlier on the command line */
    FILE *out;            /* --help and --version print here; NULL: nowhere */
} cli_ctx;

/* 0: parsed; 1: stop, exit 0 (--help, --version); -1: error in err. value is NULL for
 * options without one. */
typedef int (*cli_parse_fn)(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);

struct cli_opt {
    const char *name;  /* without the leading -- */
    const char *arg;   /* the value's name in --help; NULL: the option takes none */
    cli_parse_fn parse;
    size_t off, size;  /* the dp_config field */
    long lo, hi;       /* INT range */
    double dlo, dhi;   /* DOUBLE range */
    int flag;          /* FLAG: the value stored */
    const char *choices;  /* CHOICE: "a|b|c" */
    const char *if_empty; /* STRING: why "" is refused; NULL: "" is accepted */
    const char *init;  /* the default, as a value the option accepts */
    const char *shown; /* the default in words when it is not such a value */
    int section;
    const char *help;
};

typedef struct {
    const char *title, *note; /* note: printed after the section's options, or NULL */
} cli_section;

extern const cli_opt cli_options[];
extern const size_t cli_noptions;
extern const cli_section cli_sections[];
extern const int cli_nsections;
extern const char cli_intro[], cli_exit_status[];

/* Fields whose default is not a value their option accepts. */
void cli_special_defaults(dp_config *cfg);
/* Rules between options, once all are read (may also settle a field, e.g. --steps). */
int cli_check_combinations(dp_config *cfg, const cli_ctx *ctx, dp_err *err);

/* The kinds (cli.c). */
int cli_set_flag(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);
int cli_set_int(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);
int cli_set_double(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);
int cli_set_choice(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);
int cli_set_string(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err);
/* Values with opt (e.g. "--lr") in the messages, for parse functions of their own. */
int cli_long_value(const char *opt, const char *s, long lo, long hi, long *out, dp_err *err);
int cli_double_value(const char *opt, const char *s, double lo, double hi, double *out,
                     dp_err *err);
/* Whether option `name` appeared before the one being parsed. */
int cli_given(const cli_ctx *ctx, const char *name);

#define CLI_AT(f) .off = offsetof(dp_config, f), .size = sizeof(((dp_config *)0)->f)
#define CLI_FLAG(f, v) .parse = cli_set_flag, CLI_AT(f), .flag = (v)
#define CLI_INT(f, l, h) .parse = cli_set_int, CLI_AT(f), .lo = (l), .hi = (h)
#define CLI_DOUBLE(f, l, h) .parse = cli_set_double, CLI_AT(f), .dlo = (l), .dhi = (h)
#define CLI_CHOICE(f, words) .parse = cli_set_choice, CLI_AT(f), .choices = (words)
#define CLI_STRING(f) .parse = cli_set_string, CLI_AT(f)

#endif
