/* checkpoint.c: the checkpoint file format. The weights at the root exactly as --save writes
 * them, then a /dptrain group: the run's metadata (one table of fields, written and read
 * alike), the optimizer's named state tensors, and `complete`, written last, so a file cut
 * short by a crash never counts. Written to a temporary name, fsynced and renamed into
 * place. Which files a directory holds, and pruning, are ckpt_dir.c's. */
#include "dptrain/persist/checkpoint.h"
#include "dptrain/util/h5util.h"

#include <errno.h>
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/persist/weights.h"
#include "dptrain/util/test_hooks.h"

void checkpoint_meta_free(dp_ckpt_meta *meta)
{
    free(meta->sync_state);
    free(meta->saved_counts);
    meta->sync_state = NULL;
    meta->saved_counts = NULL;
}

uint64_t data_checksum_sample(int64_t index, const uint8_t *image, size_t bytes, uint8_t label)
{
    /* FNV-1a seeded by the index, finished with a SplitMix64 mix so sums do not cancel. */
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)index * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ image[i]) * 0x100000001b3ull;
    h = (h ^ label) * 0x100000001b3ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

#include "ckpt_internal.h"

/* ---- writing ----------------------------------------------------------------------- */

/* The /dptrain attributes that mirror dp_ckpt_meta fields, with the type each is stored
 * as: write_meta and read_meta both walk this table. */
typedef enum { M_INT, M_LONG, M_I64, M_U64, M_F64, M_STR } meta_kind;

typedef struct {
    const char *name;
    meta_kind kind;
    size_t off, size;
    int optional; /* may be absent: read_meta leaves the field as it preset it */
} meta_field;

#define MF(name, kind, field) \
    {name, kind, offsetof(dp_ckpt_meta, field), sizeof(((dp_ckpt_meta *)0)->field), 0}
/* Added to format 2 with the optimizers: files written before hold only SGD's state and
 * lack them (read as "sgd"); older programs ignore them and refuse other kinds' state. */
#define MF_OPTIONAL(name, kind, field) \
    {name, kind, offsetof(dp_ckpt_meta, field), sizeof(((dp_ckpt_meta *)0)->field), 1}

static const meta_field meta_fields[] = {
    MF("step", M_LONG, step),
    MF("steps_per_epoch", M_LONG, steps_per_epoch),
    MF("total_steps", M_LONG, total_steps),
    MF("ranks", M_INT, ranks),
    MF("threads", M_INT, threads),
    MF("model", M_STR, model_spec),
    MF("global_batch", M_INT, global_batch),
    MF("seed", M_U64, seed),
    MF("shuffle", M_INT, shuffle),
    MF("lr", M_F64, lr),
    MF("momentum", M_F64, momentum),
    MF("weight_decay", M_F64, weight_decay),
    MF("nesterov", M_INT, nesterov),
    MF("lr_schedule", M_INT, schedule),
    MF("warmup_epochs", M_F64, warmup_epochs),
    MF("lr_step_epochs", M_F64, step_epochs),
    MF("lr_gamma", M_F64, gamma),
    MF("epochs", M_INT, epochs),
    MF("steps", M_LONG, steps),
    MF("normalize", M_INT, normalize),
    MF("normalize_mean", M_F64, mean),
    MF("normalize_std", M_F64, std),
    MF("train", M_STR, train),
    MF("train_samples", M_I64, train_total),
    MF("train_files", M_INT, nfiles),
    MF("sample_c", M_INT, c),
    MF("sample_h", M_INT, h),
    MF("sample_w", M_INT, w),
    MF("num_classes", M_INT, num_classes),
    MF("data_checksum", M_U64, data_checksum),
    MF("freeze", M_STR, frozen),
    MF("group_size", M_INT, group_size),
    MF("gradsync_tensors", M_INT, nsync),
    MF_OPTIONAL("optimizer", M_STR, optimizer),
    MF_OPTIONAL("beta1", M_F64, beta1),
    MF_OPTIONAL("beta2", M_F64, beta2),
    MF_OPTIONAL("eps", M_F64, eps),
    MF_OPTIONAL("trust_coefficient", M_F64, trust_coefficient),
    MF_OPTIONAL("exclude_bias", M_INT, exclude_bias),
    /* Added on 2026-12-03 with the spread ties: absent in older files, read as 0, the
     * rule they were written under (PLAN_TIES_LOWER) */
    MF_OPTIONAL("data_order_ties", M_INT, ties),
    /* Added on 2026-12-04 with --precision: absent in older files, read as fp32 */
    MF_OPTIONAL("precision", M_STR, precision),
    /* Added on 2026-12-05 with --conv-algorithm: absent in older files, read as direct */
    MF_OPTIONAL("conv_algorithm", M_STR, conv_algorithm),
};
#define NMETA (sizeof meta_fields / sizeof meta_fields[0])

static int put_field(hid_t g, const meta_field *f, const dp_ckpt_meta *m)
{
    const char *p = (const char *)m + f->off;
    switch (f->kind) {
    case M_INT: return h5_attr_put_i64(g, f->name, *(const int *)p);
    case M_LONG: return h5_attr_put_i64(g, f->name, *(const long *)p);
    case M_I64: return h5_attr_put_i64(g, f->name, *(const int64_t *)p);
    case M_U64: return h5_attr_put_u64(g, f->name, *(const uint64_t *)p);
    case M_F64: return h5_attr_put_f64(g, f->name, *(const double *)p);
    case M_STR: return h5_attr_put_str(g, f->name, p);
    }
    return -1;
}

/* 0 read, 1 absent, -1 unreadable (as the h5util getters). */
static int get_field(hid_t g, const meta_field *f, dp_ckpt_meta *m)
{
    char *p = (char *)m + f->off;
    int64_t v = 0;
    switch (f->kind) {
    case M_U64: return h5_attr_get_u64(g, f->name, (uint64_t *)p, NULL);
    case M_F64: return h5_attr_get_f64(g, f->name, (double *)p, NULL);
    case M_STR: return h5_attr_get_str(g, f->name, p, f->size, NULL);
    default: break;
    }
    int rc = h5_attr_get_i64(g, f->name, &v, NULL);
    if (rc != 0)
        return rc;
    if (f->kind == M_INT)
        *(int *)p = (int)v;
    else if (f->kind == M_LONG)
        *(long *)p = (long)v;
    else
        *(int64_t *)p = v;
    return 0;
}

static int write_meta(hid_t g, const dp_ckpt_meta *m)
{
    int rc = h5_attr_put_i64(g, "format", DP_CKPT_FORMAT);
    rc |= h5_attr_put_i64(g, "epoch", m->steps_per_epoch > 0 ? m->step / m->steps_per_epoch : 0);
    for (size_t i = 0; i < NMETA; i++)
        rc |= put_field(g, &meta_fields[i], m);
    rc |= h5_attr_put_str(g, "run_id", m->run_id);
    rc |= h5_attr_put_str(g, "random_state", "counter-based streams: the seed and the step "
                                             "determine every draw");
    return rc ? -1 : 0;
}

/* The file names, one per line, in the attribute train_file_names. */
static int put_file_names(hid_t g, const dp_ckpt_meta *meta)
{
    size_t len = 1;
    for (int i = 0; i < meta->nfiles; i++)
        len += strlen(meta->file_paths[i]) + 1;
    char *names = calloc(len, 1);
    if (!names)
        return -1;
    for (int i = 0; i < meta->nfiles; i++) {
        strcat(names, meta->file_paths[i]);
        strcat(names, "\n");
    }
    int rc = h5_attr_put_str(g, "train_file_names", names);
    free(names);
    return rc;
}

/* /dptrain/optimizer: attribute kind, one dataset per named state tensor: float32 for
 * tensors, int64 for counters (step counts). */
static int write_optimizer(hid_t g, const dp_optimizer *opt)
{
    hid_t o = H5Gcreate2(g, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (o < 0)
        return -1;
    int rc = h5_attr_put_str(o, "kind", optimizer_kind(opt));
    for (int i = 0; i < optimizer_state_count(opt) && rc == 0; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        if (st->type == DP_STATE_I64)
            rc = h5_put_1d(o, st->name, H5T_STD_I64LE, H5T_NATIVE_INT64, st->count, st->ints);
        else
            rc = h5_put_1d(o, st->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->count, st->data);
    }
    H5Gclose(o);
    return rc;
}

/* The /dptrain group of an open checkpoint file; `complete` is written last, after a
 * flush, so that a file without it is never resumed from. */
static int write_state(hid_t f, const dp_optimizer *opt, const dp_ckpt_meta *meta)
{
    hid_t g = H5Gcreate2(f, "dptrain", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    int rc = write_optimizer(g, opt);
    if (rc == 0)
        rc = h5_put_1d(g, "gradsync_exponents", H5T_STD_I32LE, H5T_NATIVE_INT32,
                       (hsize_t)meta->nsync, meta->sync_state);
    if (rc == 0 && meta->file_counts && meta->nfiles > 0)
        rc = h5_put_1d(g, "train_file_samples", H5T_STD_I64LE, H5T_NATIVE_INT64,
                       (hsize_t)meta->nfiles, meta->file_counts);
    if (rc == 0 && meta->file_paths)
        rc = put_file_names(g, meta);
    if (rc == 0)
        rc = write_meta(g, meta);
    if (rc == 0)
        H5Fflush(f, H5F_SCOPE_GLOBAL);
    if (rc == 0)
        rc = h5_attr_put_i64(g, "complete", 1);
    H5Gclose(g);
    return rc;
}

static int write_quietly(const char *dir, const dp_model *m, const dp_optimizer *opt,
                         const dp_ckpt_meta *meta, int keep, char *written, size_t len,
                         dp_err *err)
{
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/ckpt-%08ld.h5", dir, meta->step) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.ckpt-%08ld.h5.tmp", dir, meta->step) >= sizeof tmp)
        return dp_fail(err, "--checkpoint-dir %s: path too long", dir);
    /* built in memory (the weights at the root, exactly as --save writes them, then the
     * state), then written to tmp, fsync'd and renamed into place */
    dp_weights_info info = {.normalize = meta->normalize, .mean = meta->mean, .std = meta->std};
    snprintf(info.precision, sizeof info.precision, "%s", meta->precision);
    snprintf(info.conv_algorithm, sizeof info.conv_algorithm, "%s", meta->conv_algorithm);
    char why[256];
    hid_t f = h5_mem_create(tmp, why);
    if (f < 0)
        return dp_fail(err, "--checkpoint-dir %s: cannot create %s (%s)", dir, tmp, why);
    int rc = weights_put(f, m, &info) == 0 && write_state(f, opt, meta) == 0 ? 0 : -1;
    if (rc != 0)
        H5Fclose(f);
    else /* tests: a crash or a stop halfway through the bytes (test_hooks.h) */
        rc = h5_mem_finish(f, tmp, test_hook_checkpoint_write);
    if (rc != 0) {
        unlink(tmp);
        return dp_fail(err, "--checkpoint-dir %s: writing %s failed (disk full or not "
                            "writable?); the earlier checkpoints are untouched", dir, tmp);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return dp_fail(err, "--checkpoint-dir %s: cannot rename %s into place (%s)", dir, tmp,
                       strerror(errno));
    }
    h5_fsync_dir(dir); /* make the rename itself durable */
    ckpt_dir_prune(dir, keep, meta->run_id);
    if (written)
        snprintf(written, len, "%s", path);
    return 0;
}

int checkpoint_write(const char *dir, const dp_model *m, const dp_optimizer *opt,
                     const dp_ckpt_meta *meta, int keep, char *written, size_t len, dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = write_quietly(dir, m, opt, meta, keep, written, len, err);
    h5_quiet_end(q);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------- */

/* The writing run's identity (absent in older files: "") and the samples per training
 * file: NULL, or the name of what is missing or unreadable. */
static const char *read_identity_and_files(hid_t g, dp_ckpt_meta *m)
{
    if (h5_attr_get_str(g, "run_id", m->run_id, sizeof m->run_id, NULL) != 0)
        m->run_id[0] = 0;
    if (m->nfiles < 1 || m->nfiles > 1 << 24)
        return "train_files (out of range)";
    m->saved_counts = calloc((size_t)m->nfiles, sizeof(int64_t));
    if (!m->saved_counts)
        return "memory for the file sample counts";
    if (h5_get_1d(g, "train_file_samples", H5T_NATIVE_INT64, (hsize_t)m->nfiles,
                  m->saved_counts, NULL))
        return "train_file_samples [train_files]";
    return NULL;
}

/* The fields of the /dptrain group g into m (after its format was checked): NULL, or the
 * name of what is missing or unreadable. */
static const char *read_meta(hid_t g, dp_ckpt_meta *m)
{
    snprintf(m->optimizer, sizeof m->optimizer, "sgd"); /* when absent (MF_OPTIONAL) */
    snprintf(m->precision, sizeof m->precision, "fp32");
    snprintf(m->conv_algorithm, sizeof m->conv_algorithm, "direct");
    for (size_t i = 0; i < NMETA; i++) {
        const int rc = get_field(g, &meta_fields[i], m);
        if (rc != 0 && !(rc == 1 && meta_fields[i].optional))
            return meta_fields[i].name;
    }
    if (m->nsync < 0 || m->nsync > 1 << 24)
        return "gradsync_tensors (out of range)";
    m->sync_state = calloc((size_t)m->nsync + 1, sizeof(int32_t));
    if (!m->sync_state)
        return "memory for the gradient sum's state";
    if (h5_get_1d(g, "gradsync_exponents", H5T_NATIVE_INT32, (hsize_t)m->nsync, m->sync_state,
                  NULL))
        return "gradsync_exponents [gradsync_tensors]";
    return read_identity_and_files(g, m);
}

static int read_meta_quietly(const char *path, dp_ckpt_meta *m, dp_err *err)
{
    memset(m, 0, sizeof *m);
    hid_t f = ckpt_open_readonly(path);
    if (f < 0)
        return dp_fail(err, "%s: cannot open the checkpoint (not HDF5 or unreadable)", path);
    hid_t g = H5Lexists(f, "dptrain", H5P_DEFAULT) > 0 ? H5Gopen2(f, "dptrain", H5P_DEFAULT)
                                                       : -1;
    if (g < 0) {
        H5Fclose(f);
        return dp_fail(err, "%s: not a dptrain checkpoint (no /dptrain group; a weights file "
                            "goes to --init-from)", path);
    }
    int64_t format = 0;
    const char *missing = ckpt_get_i64(g, "format", &format) != 0 ? "format" : NULL;
    if (!missing && format != DP_CKPT_FORMAT) {
        H5Gclose(g);
        H5Fclose(f);
        return dp_fail(err, "%s: checkpoint format %lld, this dptrain reads format %d", path,
                       (long long)format, DP_CKPT_FORMAT);
    }
    m->format = (int)format;
    if (!missing)
        missing = read_meta(g, m);
    H5Gclose(g);
    H5Fclose(f);
    if (missing) {
        checkpoint_meta_free(m);
        return dp_fail(err, "%s: checkpoint lacks or cannot read /dptrain %s", path, missing);
    }
    return 0;
}

int checkpoint_read_meta(const char *path, dp_ckpt_meta *m, dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = read_meta_quietly(path, m, err);
    h5_quiet_end(q);
    return rc;
}

/* One state tensor or counter by name, of its own type: 0 or -1. */
static int read_state_tensor(hid_t o, const dp_optim_state *st)
{
    hid_t set = H5Lexists(o, st->name, H5P_DEFAULT) > 0 ? H5Dopen2(o, st->name, H5P_DEFAULT)
                                                        : -1;
    if (set < 0)
        return -1;
    hid_t type = H5Dget_type(set);
    /* a counter stored as a float (or the reverse) is another optimizer's file */
    const H5T_class_t want = st->type == DP_STATE_I64 ? H5T_INTEGER : H5T_FLOAT;
    const int ok = type >= 0 && H5Tget_class(type) == want;
    if (type >= 0)
        H5Tclose(type);
    H5Dclose(set);
    if (!ok)
        return -1;
    if (st->type == DP_STATE_I64)
        return h5_get_1d(o, st->name, H5T_NATIVE_INT64, st->count, st->ints, NULL);
    return h5_get_1d(o, st->name, H5T_NATIVE_FLOAT, st->count, st->data, NULL);
}

/* The optimizer's state tensors, by name, from /dptrain/optimizer. */
static int read_optimizer(hid_t f, const char *path, dp_optimizer *opt, dp_err *err)
{
    hid_t o = H5Lexists(f, "dptrain", H5P_DEFAULT) > 0 &&
                      H5Lexists(f, "dptrain/optimizer", H5P_DEFAULT) > 0
                  ? H5Gopen2(f, "dptrain/optimizer", H5P_DEFAULT)
                  : -1;
    char kind[64] = "";
    int rc = 0;
    if (o < 0 || h5_attr_get_str(o, "kind", kind, sizeof kind, NULL) != 0)
        rc = dp_fail(err, "%s: /dptrain/optimizer is missing", path);
    else if (strcmp(kind, optimizer_kind(opt)) != 0)
        rc = dp_fail(err, "%s: the checkpoint holds the state of optimizer %s, this run uses %s "
                          "(pass the same --optimizer)", path, kind, optimizer_kind(opt));
    for (int i = 0; i < optimizer_state_count(opt) && rc == 0; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        if (read_state_tensor(o, st) != 0)
            rc = dp_fail(err, "%s: /dptrain/optimizer/%s is missing or does not hold %zu "
                              "%s", path, st->name, st->count,
                         st->type == DP_STATE_I64 ? "int64" : "floats");
    }
    if (o >= 0)
        H5Gclose(o);
    return rc;
}

static int read_state_quietly(const char *path, dp_model *m, dp_optimizer *opt, dp_err *err)
{
    if (weights_load(m, path, err) != 0)
        return -1;
    hid_t f = ckpt_open_readonly(path);
    if (f < 0)
        return dp_fail(err, "%s: cannot open the checkpoint", path);
    int rc = read_optimizer(f, path, opt, err);
    H5Fclose(f);
    return rc;
}

int checkpoint_read_state(const char *path, dp_model *m, dp_optimizer *opt, dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = read_state_quietly(path, m, opt, err);
    h5_quiet_end(q);
    return rc;
}
