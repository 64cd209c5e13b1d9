/* cli: parsing, --help and --help-markdown, all read from the option table
 * (cli_options.c; cli_table.h says what a row holds): the kinds of values and their
 * checks, the option loop (getopt_long, so --name=value and unambiguous prefixes work),
 * and the two renderings of the table. */
#include "dptrain/driver/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_table.h"

/* ---- values ------------------------------------------------------------------------ */

int cli_long_value(const char *opt, const char *s, long lo, long hi, long *out, dp_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return dp_fail(err, "%s: expected an integer, got '%s'", opt, s);
    if (v < lo || v > hi)
        return dp_fail(err, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
    *out = v;
    return 0;
}

int cli_double_value(const char *opt, const char *s, double lo, double hi, double *out,
                     dp_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return dp_fail(err, "%s: expected a number, got '%s'", opt, s);
    if (v < lo || v > hi)
        return dp_fail(err, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    *out = v;
    return 0;
}

/* ---- the kinds --------------------------------------------------------------------- */

static void *field(const cli_opt *o, cli_ctx *ctx) { return (char *)ctx->cfg + o->off; }

/* An int or a 64-bit integer field (long, uint64_t: the values stored are >= 0). */
static void store_int(const cli_opt *o, cli_ctx *ctx, long v)
{
    if (o->size == sizeof(int)) {
        int i = (int)v;
        memcpy(field(o, ctx), &i, sizeof i);
    } else {
        int64_t l = v;
        memcpy(field(o, ctx), &l, sizeof l);
    }
}

int cli_set_flag(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    (void)value;
    (void)err;
    store_int(o, ctx, o->flag);
    return 0;
}

int cli_set_int(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    char opt[64];
    long v = 0;
    snprintf(opt, sizeof opt, "--%s", o->name);
    if (cli_long_value(opt, value, o->lo, o->hi, &v, err))
        return -1;
    store_int(o, ctx, v);
    return 0;
}

int cli_set_double(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    char opt[64];
    snprintf(opt, sizeof opt, "--%s", o->name);
    return cli_double_value(opt, value, o->dlo, o->dhi, (double *)field(o, ctx), err);
}

/* "a|b|c" as "a, b or c". */
static void list_choices(const char *choices, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *p = choices; *p && n + 1 < len; p++) {
        if (*p != '|') {
            buf[n++] = *p;
            continue;
        }
        const char *sep = strchr(p + 1, '|') ? ", " : " or ";
        n += (size_t)snprintf(buf + n, len - n, "%s", sep);
    }
    buf[n < len ? n : len - 1] = '\0';
}

int cli_set_choice(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    size_t len = strlen(value);
    long index = 0;
    for (const char *p = o->choices; p; index++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0) {
            store_int(o, ctx, index);
            return 0;
        }
        p = bar ? bar + 1 : NULL;
    }
    char words[256];
    list_choices(o->choices, words, sizeof words);
    return dp_fail(err, "--%s: expected %s, got '%s'", o->name, words, value);
}

int cli_set_string(const cli_opt *o, const char *value, cli_ctx *ctx, dp_err *err)
{
    if (!*value && o->if_empty)
        return dp_fail(err, "--%s: %s", o->name, o->if_empty);
    memcpy(field(o, ctx), &value, sizeof value);
    return 0;
}

int cli_given(const cli_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < cli_noptions; i++)
        if (strcmp(cli_options[i].name, name) == 0)
            return ctx->given[i];
    return 0;
}

/* ---- --help and --help-markdown ------------------------------------------------------ */

enum { HELP_COLUMN = 28, HELP_WIDTH = 90, NOBREAK = '\x1f' };

/* The default as --help and the docs show it, or NULL. */
static const char *default_text(const cli_opt *o) { return o->shown ? o->shown : o->init; }

/* Print text word by word from column col on, wrapping before HELP_WIDTH with
 * continuation lines indented to `indent`; ends the line. NOBREAK prints as a space
 * that is not a place to wrap. */
static void wrap(FILE *out, const char *text, int col, int indent)
{
    int first = 1;
    for (const char *p = text; *p; p += strspn(p, " ")) {
        size_t n = strcspn(p, " ");
        if (!first && col + 1 + (int)n > HELP_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        for (size_t i = 0; i < n; i++)
            fputc(p[i] == NOBREAK ? ' ' : p[i], out);
        col += (int)n;
        first = 0;
        p += n;
    }
    fputc('\n', out);
}

static void usage_option(FILE *out, const cli_opt *o)
{
    char text[512];
    const char *def = default_text(o);
    int n = snprintf(text, sizeof text, "%s", o->help);
    if (def && n >= 0 && (size_t)n < sizeof text) {
        snprintf(text + n, sizeof text - (size_t)n, " (default %s)", def);
        for (char *t = text + n + 1; *t; t++) /* "(default X)" stays on one line */
            if (*t == ' ')
                *t = NOBREAK;
    }
    int col = fprintf(out, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    if (col + 2 > HELP_COLUMN) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - col, "");
    wrap(out, text, HELP_COLUMN, HELP_COLUMN);
}

void cli_usage(FILE *out)
{
    if (!out)
        return;
    fprintf(out, "Usage: mpirun -n RANKS dptrain [OPTIONS]\n");
    wrap(out, cli_intro, 0, 0);
    for (int s = 0; s < cli_nsections; s++) {
        fprintf(out, "\n%s:\n", cli_sections[s].title);
        for (size_t i = 0; i < cli_noptions; i++)
            if (cli_options[i].section == s)
                usage_option(out, &cli_options[i]);
        if (cli_sections[s].note) {
            fputs("  ", out);
            wrap(out, cli_sections[s].note, 2, 2);
        }
    }
    fputc('\n', out);
    wrap(out, cli_exit_status, 0, 0);
}

/* Text in a Markdown table cell: | would end the cell, * and _ would emphasise. */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (strchr("|*_<>", *s))
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void md_option(FILE *out, const cli_opt *o)
{
    const char *def = default_text(o);
    fprintf(out, "| `--%s%s", o->name, o->arg ? " " : "");
    for (const char *a = o->arg ? o->arg : ""; *a; a++) {
        if (*a == '|')
            fputc('\\', out); /* even inside code, | would end the cell */
        fputc(*a, out);
    }
    fputs("` | ", out);
    md_text(out, def ? def : "");
    fputs(" | ", out);
    md_text(out, o->help);
    fputs(" |\n", out);
}

void cli_markdown(FILE *out)
{
    if (!out)
        return;
    fprintf(out, "# dptrain options\n\n<!-- Generated from the option table in "
                 "src/driver/cli.c by `dptrain --help-markdown`: edit the table, not this "
                 "file (the options_docs test compares them). -->\n\n"
                 "`mpirun -n RANKS dptrain [OPTIONS]`\n\n%s\n", cli_intro);
    for (int s = 0; s < cli_nsections; s++) {
        fprintf(out, "\n## %s\n\n| option | default | meaning |\n|---|---|---|\n",
                cli_sections[s].title);
        for (size_t i = 0; i < cli_noptions; i++)
            if (cli_options[i].section == s)
                md_option(out, &cli_options[i]);
        if (cli_sections[s].note)
            fprintf(out, "\n%s\n", cli_sections[s].note);
    }
    fprintf(out, "\n## Exit status\n\n%s\n", cli_exit_status + strlen("Exit status: "));
}

/* ---- parsing ----------------------------------------------------------------------- */

/* A row whose field cannot hold its kind is a mistake in the table: say so at once. */
static int check_row(const cli_opt *o, dp_err *err)
{
    size_t want = o->parse == cli_set_double ? sizeof(double)
                  : o->parse == cli_set_string ? sizeof(const char *)
                                               : 0;
    int ints = o->parse == cli_set_int || o->parse == cli_set_flag || o->parse == cli_set_choice;
    if ((want && o->size != want) || (ints && o->size != sizeof(int) && o->size != 8))
        return dp_fail(err, "option table: --%s: a field of %zu bytes does not fit its kind",
                       o->name, o->size);
    return 0;
}

static int set_defaults(cli_ctx *ctx, dp_err *err)
{
    memset(ctx->cfg, 0, sizeof *ctx->cfg);
    cli_special_defaults(ctx->cfg);
    for (size_t i = 0; i < cli_noptions; i++) {
        const cli_opt *o = &cli_options[i];
        if (check_row(o, err) || (o->init && o->arg && o->parse(o, o->init, ctx, err)))
            return dp_prefix(err, "option table");
    }
    return 0;
}

enum { MAX_OPTIONS = 256 };

int cli_parse(int argc, char **argv, dp_config *cfg, FILE *out, dp_err *err)
{
    struct option longopts[MAX_OPTIONS + 1];
    unsigned char seen[MAX_OPTIONS] = {0};
    cli_ctx ctx = {cfg, seen, out};
    if (cli_noptions > MAX_OPTIONS)
        return dp_fail(err, "option table: %zu options, at most %d", cli_noptions, MAX_OPTIONS);
    for (size_t i = 0; i < cli_noptions; i++)
        longopts[i] = (struct option){cli_options[i].name,
                                      cli_options[i].arg ? required_argument : no_argument,
                                      NULL, (int)(256 + i)};
    memset(&longopts[cli_noptions], 0, sizeof longopts[cli_noptions]);
    if (set_defaults(&ctx, err))
        return -1;

    optind = 0; /* reset getopt (also makes GNU getopt re-initialise) */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (c == ':')
            return dp_fail(err, "%s: needs a value (see --help)", name);
        if (c < 256 || c >= 256 + (int)cli_noptions)
            return dp_fail(err, "unknown option '%s' (see --help)", name);
        const cli_opt *o = &cli_options[c - 256];
        int rc = o->parse(o, o->arg ? optarg : NULL, &ctx, err);
        if (rc != 0)
            return rc;
        seen[c - 256] = 1;
    }
    if (optind < argc)
        return dp_fail(err, "unexpected argument '%s' (options start with --; see --help)",
                       argv[optind]);
    return cli_check_combinations(cfg, &ctx, err);
}

double cli_peak_lr(const dp_config *cfg)
{
    if (!cfg->lr_scaling)
        return cfg->lr;
    return cfg->lr * (double)cli_global_batch(cfg) / (double)cfg->lr_base_batch;
}

int cli_global_batch(const dp_config *cfg) { return cfg->batch * cfg->accumulate; }
