/* ckpt_dir.c: a directory of checkpoints. Names are ckpt-<step>.h5; a file counts only when
 * it is complete (its /dptrain/complete attribute is written last) and of this format. Lists
 * them newest first, finds the newest complete one for --resume, and prunes a run's own
 * beyond --keep (each file carries the identity of the run that wrote it; another run's
 * files are never judged). The file format itself is checkpoint.c's. */
#include "dptrain/persist/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

static int parse_step(const char *name, long *step)
{
    char tail[8];
    long s;
    if (sscanf(name, "ckpt-%ld%7s", &s, tail) != 2 || strcmp(tail, ".h5") != 0 || s < 0)
        return -1;
    *step = s;
    return 0;
}

/* Whether path is a complete checkpoint of this format, with the identity of the run that
 * wrote it in run_id[DP_RUN_ID_LEN] ("" when it predates identities). */
static int read_identity(const char *path, char *run_id)
{
    run_id[0] = 0;
    hid_t f = ckpt_open_readonly(path);
    if (f < 0)
        return 0;
    int64_t complete = 0, format = 0;
    int ok = 0;
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "dptrain", H5P_DEFAULT);
        ok = g >= 0 && ckpt_get_i64(g, "complete", &complete) == 0 &&
             ckpt_get_i64(g, "format", &format) == 0 && complete == 1 && format == DP_CKPT_FORMAT;
        if (ok && h5_attr_get_str(g, "run_id", run_id, DP_RUN_ID_LEN, NULL) != 0)
            run_id[0] = 0;
        if (g >= 0)
            H5Gclose(g);
    }
    H5Fclose(f);
    return ok;
}

static int is_complete(const char *path)
{
    char run_id[DP_RUN_ID_LEN];
    return read_identity(path, run_id);
}

typedef struct {
    long step;
    char name[256];
} ckpt_entry;

static int by_step_desc(const void *a, const void *b)
{
    long x = ((const ckpt_entry *)a)->step, y = ((const ckpt_entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The ckpt-*.h5 names in dir, newest first. */
static int list_checkpoints(const char *dir, ckpt_entry **out, int *count, dp_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        int saved = errno;
        dp_fail(err, "%s: cannot read the checkpoint directory (%s)", dir, strerror(saved));
        errno = saved;
        return -1;
    }
    int n = 0, cap = 16;
    ckpt_entry *e = malloc(sizeof *e * (size_t)cap);
    struct dirent *de;
    while (e && (de = readdir(d)) != NULL) {
        long step;
        if (parse_step(de->d_name, &step) != 0 || strlen(de->d_name) >= sizeof e->name)
            continue;
        if (n == cap) {
            ckpt_entry *bigger = realloc(e, sizeof *e * (size_t)(cap *= 2));
            if (!bigger) {
                free(e);
                e = NULL;
                break;
            }
            e = bigger;
        }
        e[n].step = step;
        snprintf(e[n].name, sizeof e[n].name, "%s", de->d_name);
        n++;
    }
    closedir(d);
    if (!e)
        return dp_fail(err, "%s: out of memory listing checkpoints", dir);
    qsort(e, (size_t)n, sizeof *e, by_step_desc);
    *out = e;
    *count = n;
    return 0;
}

void ckpt_dir_prune(const char *dir, int keep, const char *run_id)
{
    ckpt_entry *e = NULL;
    int n = 0;
    dp_err ignored;
    if (list_checkpoints(dir, &e, &n, &ignored) != 0)
        return;
    char path[4096], owner[DP_RUN_ID_LEN];
    int kept = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, e[i].name);
        if (!read_identity(path, owner) || strcmp(owner, run_id) != 0)
            continue; /* not a checkpoint, or another run's: never ours to judge */
        if (++kept > keep)
            unlink(path);
    }
    free(e);
    /* temporary files of writes that died: every .ckpt-* name is one of ours */
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".ckpt-", 6) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
}

/* Whether every checksummed dataset of the checkpoint at path reads back intact; if not,
 * why[512] names the dataset. */
static int is_intact(const char *path, char why[512])
{
    hid_t f = ckpt_open_readonly(path);
    if (f < 0) {
        snprintf(why, 512, "cannot open it");
        return 0;
    }
    int damaged = h5_verify_checksums(f, why);
    H5Fclose(f);
    return !damaged;
}

static int find_latest_quietly(const char *dir, char *path, size_t len, char *note,
                               size_t note_len, dp_err *err)
{
    ckpt_entry *e = NULL;
    int n = 0;
    if (list_checkpoints(dir, &e, &n, err) != 0) {
        if (errno != ENOENT)
            return -1;
        dp_fail(err, "%s: no checkpoint (the directory does not exist yet)", dir);
        return 1;
    }
    int skipped = 0;
    char first_skipped[256] = "", why[512];
    for (int i = 0; i < n; i++) {
        snprintf(path, len, "%s/%s", dir, e[i].name);
        int complete = is_complete(path);
        if (complete && is_intact(path, why)) {
            free(e);
            return 0;
        }
        if (complete && note && note_len && !note[0]) /* the newest damaged one */
            snprintf(note, note_len, "%s: %s; it is left in place", e[i].name, why);
        if (!skipped++)
            snprintf(first_skipped, sizeof first_skipped, "%s", e[i].name);
    }
    free(e);
    if (skipped)
        dp_fail(err, "%s: no complete checkpoint (%d incomplete or unreadable ckpt-*.h5, e.g. "
                     "%s)", dir, skipped, first_skipped);
    else
        dp_fail(err, "%s: no checkpoint (no ckpt-*.h5 files)", dir);
    return 1;
}

int checkpoint_find_latest(const char *dir, char *path, size_t len, char *damaged,
                           size_t damaged_len, dp_err *err)
{
    if (damaged && damaged_len)
        damaged[0] = '\0';
    h5_quiet q = h5_quiet_begin();
    int rc = find_latest_quietly(dir, path, len, damaged, damaged_len, err);
    h5_quiet_end(q);
    return rc;
}

static int list_quietly(const char *dir, dp_ckpt_entry **out, int *count, dp_err *err)
{
    ckpt_entry *e = NULL;
    int n = 0;
    *out = NULL;
    *count = 0;
    if (list_checkpoints(dir, &e, &n, err) != 0)
        return -1;
    dp_ckpt_entry *list = dp_calloc((size_t)n + 1, sizeof *list, "checkpoint list", err);
    for (int i = 0; list && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e[i].name);
        dp_ckpt_entry *c = &list[*count];
        if (!read_identity(path, c->run_id))
            continue;
        c->step = e[i].step;
        snprintf(c->name, sizeof c->name, "%s", e[i].name);
        ++*count;
    }
    free(e);
    *out = list;
    return list ? 0 : -1;
}

int checkpoint_list(const char *dir, dp_ckpt_entry **out, int *count, dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = list_quietly(dir, out, count, err);
    h5_quiet_end(q);
    return rc;
}
