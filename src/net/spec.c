/* spec: reads a model spec, layer by layer, with the argument table of each kind
 * (layer_kind.h), and writes each layer's canonical text: positional arguments first,
 * then name=value, numbers as short as they read back exactly. The canonical text goes
 * into checkpoints and weights files and is compared on resume, so it must not change
 * for a given layer. */
#include "spec.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"

typedef struct {
    const char *p;
    int index; /* 1-based position of the layer being parsed */
} parser;

static void skip_separators(parser *ps)
{
    for (;;) {
        while (*ps->p && (isspace((unsigned char)*ps->p) || *ps->p == ',' || *ps->p == ';'))
            ps->p++;
        if (ps->p[0] == '-' && ps->p[1] == '>') {
            ps->p += 2;
            continue;
        }
        if (*ps->p == '#') {
            while (*ps->p && *ps->p != '\n')
                ps->p++;
            continue;
        }
        return;
    }
}

static void skip_blanks(parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

/* "conv, maxpool, relu, fc" from the table, for messages. */
static void kind_names(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < layer_kind_count() && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", layer_kind_at(i)->name);
}

static int needs_args(const dp_layer_kind *k)
{
    for (int a = 0; a < k->nargs; a++)
        if (k->args[a].required)
            return 1;
    return 0;
}

static int find_arg(const dp_layer_kind *k, const char *key)
{
    for (int a = 0; a < k->nargs; a++) {
        if (strcmp(k->args[a].name, key) == 0)
            return a;
        for (int j = 0; j < 3 && k->args[a].aliases[j]; j++)
            if (strcmp(k->args[a].aliases[j], key) == 0)
                return a;
    }
    return -1;
}

/* One value (a number, or the argument's word) into *v, range checked. */
static int parse_value(parser *ps, const dp_layer_arg *a, const char *word, double *v,
                       dp_err *err)
{
    if (a->word && strncmp(ps->p, a->word, strlen(a->word)) == 0) {
        ps->p += strlen(a->word);
        *v = a->word_value;
        return 0;
    }
    char *end;
    *v = a->is_float ? strtod(ps->p, &end) : (double)strtol(ps->p, &end, 10);
    if (end == ps->p)
        return dp_fail(err, "layer %d (%s): expected a number, found '%.10s'", ps->index, word,
                       ps->p);
    if (!(*v >= a->lo && (a->hi_open ? *v < a->hi : *v <= a->hi)))
        return dp_fail(err, "layer %d (%s): %s = %.*s is out of range [%.15g, %.15g%c", ps->index, word,
                       a->name, (int)(end - ps->p), ps->p, a->lo, a->hi, a->hi_open ? ')' : ']');
    ps->p = end;
    return 0;
}

/* The parenthesised list after the layer's name; marks what was given in *given. */
static int parse_args(parser *ps, dp_layer *L, const char *word, unsigned *given, dp_err *err)
{
    const dp_layer_kind *k = L->kind;
    int positional = 0;
    ps->p++; /* '(' */
    for (;;) {
        skip_blanks(ps);
        if (*ps->p == ')') {
            ps->p++;
            return 0;
        }
        char key[32] = "";
        const char *q = ps->p;
        size_t n = 0;
        while (isalpha((unsigned char)*q) || *q == '_') {
            if (n + 1 < sizeof key)
                key[n++] = (char)tolower((unsigned char)*q);
            q++;
        }
        key[n] = 0;
        int slot;
        if (n > 0 && *q == '=') {
            slot = find_arg(k, key);
            if (slot < 0)
                return dp_fail(err, "layer %d (%s): unknown argument '%s'", ps->index, word, key);
            ps->p = q + 1;
        } else {
            slot = positional++;
        }
        if (slot >= k->nargs)
            return dp_fail(err, "layer %d (%s): too many arguments (takes at most %d)", ps->index,
                           word, k->nargs);
        skip_blanks(ps);
        if (parse_value(ps, &k->args[slot], word, &L->arg[slot], err))
            return -1;
        if (*given & (1u << slot))
            return dp_fail(err, "layer %d (%s): argument given twice", ps->index, word);
        *given |= 1u << slot;
        skip_blanks(ps);
        if (*ps->p == ',')
            ps->p++;
        else if (*ps->p != ')')
            return dp_fail(err, "layer %d (%s): expected ',' or ')', found '%c'", ps->index, word,
                           *ps->p ? *ps->p : '$');
    }
}

/* Defaults for what was not given; a missing required argument is refused. */
static int complete_args(const parser *ps, dp_layer *L, const char *word, unsigned given,
                         dp_err *err)
{
    const dp_layer_kind *k = L->kind;
    for (int a = 0; a < k->nargs; a++) {
        const dp_layer_arg *arg = &k->args[a];
        if (given & (1u << a))
            continue;
        if (arg->required)
            return dp_fail(err, "layer %d (%s): needs its argument '%s', e.g. %s", ps->index, word,
                           arg->name, k->example);
        L->arg[a] = arg->def_from ? L->arg[find_arg(k, arg->def_from)] : arg->def;
    }
    return 0;
}

/* The shortest decimal that reads back as v: "0.5", not "0.50000000000000000". */
static void write_number(char *buf, size_t len, const dp_layer_arg *a, double v)
{
    if (a->word && v == a->word_value) {
        snprintf(buf, len, "%s", a->word);
    } else if (!a->is_float) {
        snprintf(buf, len, "%ld", (long)v);
    } else {
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(buf, len, "%.*g", digits, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

static void canonical_text(dp_layer *L)
{
    const dp_layer_kind *k = L->kind;
    size_t at = (size_t)snprintf(L->text, sizeof L->text, "%s", k->name);
    for (int named = 0; named <= 1; named++)
        for (int a = 0; a < k->nargs && at < sizeof L->text; a++) {
            if (k->args[a].named != named)
                continue;
            char v[32];
            write_number(v, sizeof v, &k->args[a], L->arg[a]);
            at += (size_t)snprintf(L->text + at, sizeof L->text - at, "%s%s%s%s",
                                   at == strlen(k->name) ? "(" : ",", named ? k->args[a].name : "",
                                   named ? "=" : "", v);
        }
    if (k->nargs > 0 && at < sizeof L->text)
        snprintf(L->text + at, sizeof L->text - at, ")");
}

/* 0: a layer, 1: nothing to build (flatten), -1: refused. */
static int parse_layer(parser *ps, dp_layer *L, dp_err *err)
{
    char word[32], names[256];
    size_t n = 0;
    const char *start = ps->p;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 < sizeof word)
            word[n++] = (char)tolower((unsigned char)*ps->p);
        ps->p++;
    }
    word[n] = 0;
    if (n == 0) {
        kind_names(names, sizeof names);
        return dp_fail(err, "layer %d: unexpected character '%c' (expected a layer name: %s)",
                       ps->index, *start, names);
    }
    if (strcmp(word, "flatten") == 0)
        return 1; /* accepted, nothing to build */
    memset(L, 0, sizeof *L);
    L->kind = layer_kind_find(word);
    if (!L->kind) {
        kind_names(names, sizeof names);
        return dp_fail(err, "layer %d: unknown layer '%s' (expected %s or flatten)", ps->index,
                       word, names);
    }
    unsigned given = 0;
    while (*ps->p == ' ' || *ps->p == '\t')
        ps->p++;
    if (*ps->p == '(' && parse_args(ps, L, word, &given, err))
        return -1;
    if (given == 0 && needs_args(L->kind))
        return dp_fail(err, "layer %d (%s): needs arguments, e.g. %s", ps->index, word,
                       L->kind->example);
    if (complete_args(ps, L, word, given, err))
        return -1;
    canonical_text(L);
    return 0;
}

int spec_parse(dp_model *m, const char *spec, dp_err *err)
{
    parser ps = {spec, 1};
    m->nlayers = 0;
    for (;;) {
        skip_separators(&ps);
        if (!*ps.p)
            return 0;
        if (m->nlayers == DP_MODEL_MAX_LAYERS)
            return dp_fail(err, "model: more than %d layers", DP_MODEL_MAX_LAYERS);
        int rc = parse_layer(&ps, &m->layers[m->nlayers], err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            m->nlayers++;
        ps.index++;
    }
}
