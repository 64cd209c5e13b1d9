#include "dptrain/persist/checkpoint.h"
#include "dptrain/util/h5util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/persist/weights.h"

void checkpoint_meta_free(dp_ckpt_meta *meta)
{
    free(meta->pass);
    free(meta->pos);
    meta->pass = meta->pos = NULL;
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

/* ---- small HDF5 helpers ------------------------------------------------------------- */

static int put_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, mem_type, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return ok ? 0 : -1;
}

static int put_i64(hid_t obj, const char *name, int64_t v)
{
    return put_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int put_u64(hid_t obj, const char *name, uint64_t v)
{
    return put_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

static int put_f64(hid_t obj, const char *name, double v)
{
    return put_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int put_str(hid_t obj, const char *name, const char *s)
{
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, strlen(s) + 1);
    int rc = put_attr(obj, name, str, str, s);
    H5Tclose(str);
    return rc;
}

static int get_attr(hid_t obj, const char *name, hid_t mem_type, void *v)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mem_type, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : -1;
}

static int get_i64(hid_t obj, const char *name, int64_t *v)
{
    return get_attr(obj, name, H5T_NATIVE_INT64, v);
}

static int get_str(hid_t obj, const char *name, char *buf, size_t len)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    hid_t ft = H5Aget_type(a);
    size_t n = H5Tget_size(ft);
    H5Tclose(ft);
    char *tmp = calloc(n + 1, 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    int ok = tmp && H5Aread(a, mt, tmp) >= 0;
    H5Tclose(mt);
    H5Aclose(a);
    if (ok)
        snprintf(buf, len, "%s", tmp);
    free(tmp);
    return ok ? 0 : -1;
}

static int put_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, hsize_t n,
                       const void *data)
{
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(space);
    return ok ? 0 : -1;
}

/* Read a 1-D dataset of exactly n elements. */
static int get_dataset(hid_t loc, const char *name, hid_t mem_type, hsize_t n, void *data)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int ok = H5Sget_simple_extent_ndims(space) == 1 &&
             H5Sget_simple_extent_dims(space, dims, NULL) == 1 && dims[0] == n &&
             H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    H5Sclose(space);
    H5Dclose(ds);
    return ok ? 0 : -1;
}

static hid_t open_readonly(const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0 || H5Fis_hdf5(path) <= 0)
        return -1;
    hid_t f = h5_open_readonly(path);
    return f;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------- */

/* Test hook: DPTRAIN_TEST_CRASH_IN_CHECKPOINT=N ends the process halfway through the
 * N-th checkpoint write of this run, as kill -9 would. */
static void maybe_crash(void)
{
    static int writes = 0;
    const char *env = getenv("DPTRAIN_TEST_CRASH_IN_CHECKPOINT");
    if (env && atoi(env) == ++writes) {
        static const char msg[] = "dptrain: DPTRAIN_TEST_CRASH_IN_CHECKPOINT: dying mid-write\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing to do */
        }
        _exit(137);
    }
}

static int write_meta(hid_t g, const dp_ckpt_meta *m)
{
    int rc = 0;
    rc |= put_i64(g, "format", DP_CKPT_FORMAT);
    rc |= put_i64(g, "step", m->step);
    rc |= put_i64(g, "epoch", m->steps_per_epoch > 0 ? m->step / m->steps_per_epoch : 0);
    rc |= put_i64(g, "steps_per_epoch", m->steps_per_epoch);
    rc |= put_i64(g, "total_steps", m->total_steps);
    rc |= put_i64(g, "ranks", m->ranks);
    rc |= put_i64(g, "threads", m->threads);
    rc |= put_str(g, "model", m->model_spec);
    rc |= put_i64(g, "global_batch", m->global_batch);
    rc |= put_u64(g, "seed", m->seed);
    rc |= put_i64(g, "shuffle", m->shuffle);
    rc |= put_f64(g, "lr", m->lr);
    rc |= put_f64(g, "momentum", m->momentum);
    rc |= put_f64(g, "weight_decay", m->weight_decay);
    rc |= put_i64(g, "nesterov", m->nesterov);
    rc |= put_i64(g, "lr_schedule", m->schedule);
    rc |= put_f64(g, "warmup_epochs", m->warmup_epochs);
    rc |= put_f64(g, "lr_step_epochs", m->step_epochs);
    rc |= put_f64(g, "lr_gamma", m->gamma);
    rc |= put_i64(g, "epochs", m->epochs);
    rc |= put_i64(g, "steps", m->steps);
    rc |= put_i64(g, "normalize", m->normalize);
    rc |= put_f64(g, "normalize_mean", m->mean);
    rc |= put_f64(g, "normalize_std", m->std);
    rc |= put_str(g, "train", m->train);
    rc |= put_i64(g, "train_samples", m->train_total);
    rc |= put_i64(g, "train_files", m->nfiles);
    rc |= put_i64(g, "sample_c", m->c);
    rc |= put_i64(g, "sample_h", m->h);
    rc |= put_i64(g, "sample_w", m->w);
    rc |= put_i64(g, "num_classes", m->num_classes);
    rc |= put_u64(g, "data_checksum", m->data_checksum);
    rc |= put_str(g, "freeze", m->frozen);
    rc |= put_str(g, "random_state", "counter-based streams: the seed and each rank's "
                                     "(sampler_pass, sampler_pos) determine every draw");
    return rc ? -1 : 0;
}

static int parse_step(const char *name, long *step)
{
    char tail[8];
    long s;
    if (sscanf(name, "ckpt-%ld%7s", &s, tail) != 2 || strcmp(tail, ".h5") != 0 || s < 0)
        return -1;
    *step = s;
    return 0;
}

static int is_complete(const char *path)
{
    hid_t f = open_readonly(path);
    if (f < 0)
        return 0;
    int64_t complete = 0, format = 0;
    int ok = 0;
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "dptrain", H5P_DEFAULT);
        ok = g >= 0 && get_i64(g, "complete", &complete) == 0 &&
             get_i64(g, "format", &format) == 0 && complete == 1 && format == DP_CKPT_FORMAT;
        if (g >= 0)
            H5Gclose(g);
    }
    H5Fclose(f);
    return ok;
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
    if (!d)
        return dp_fail(err, "%s: cannot read the checkpoint directory (%s)", dir, strerror(errno));
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

static void prune(const char *dir, int keep)
{
    ckpt_entry *e = NULL;
    int n = 0;
    dp_err ignored;
    if (list_checkpoints(dir, &e, &n, &ignored) != 0)
        return;
    char path[4096];
    int kept = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, e[i].name);
        if (!is_complete(path))
            continue; /* never ours to judge: leave it */
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

/* /dptrain/optimizer: attribute kind, one float32 dataset per named state tensor. */
static int write_optimizer(hid_t g, const dp_optimizer *opt)
{
    hid_t o = H5Gcreate2(g, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (o < 0)
        return -1;
    int rc = put_str(o, "kind", optimizer_kind(opt));
    for (int i = 0; i < optimizer_state_count(opt) && rc == 0; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        rc = put_dataset(o, st->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->count, st->data);
    }
    H5Gclose(o);
    return rc;
}

int checkpoint_write(const char *dir, const dp_model *m, const dp_optimizer *opt,
                     const dp_ckpt_meta *meta, int keep, char *written, size_t len, dp_err *err)
{
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/ckpt-%08ld.h5", dir, meta->step) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.ckpt-%08ld.h5.tmp", dir, meta->step) >= sizeof tmp)
        return dp_fail(err, "--checkpoint-dir %s: path too long", dir);
    /* the weights at the root, exactly as --save writes them (and to the same .tmp rule) */
    char wtmp[4096];
    snprintf(wtmp, sizeof wtmp, "%s/.ckpt-%08ld.weights.h5", dir, meta->step);
    if (weights_save(m, wtmp, err) != 0)
        return dp_prefix(err, "--checkpoint-dir");
    if (rename(wtmp, tmp) != 0) {
        unlink(wtmp);
        return dp_fail(err, "--checkpoint-dir %s: cannot rename %s (%s)", dir, wtmp,
                       strerror(errno));
    }
    maybe_crash();
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        unlink(tmp);
        return dp_fail(err, "--checkpoint-dir %s: cannot reopen %s", dir, tmp);
    }
    int rc = 0;
    hid_t g = H5Gcreate2(f, "dptrain", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        rc = -1;
    if (rc == 0)
        rc = write_optimizer(g, opt);
    if (rc == 0)
        rc = put_dataset(g, "sampler_pass", H5T_STD_I64LE, H5T_NATIVE_INT64,
                         (hsize_t)meta->ranks, meta->pass);
    if (rc == 0)
        rc = put_dataset(g, "sampler_pos", H5T_STD_I64LE, H5T_NATIVE_INT64,
                         (hsize_t)meta->ranks, meta->pos);
    if (rc == 0 && meta->file_counts && meta->nfiles > 0)
        rc = put_dataset(g, "train_file_samples", H5T_STD_I64LE, H5T_NATIVE_INT64,
                         (hsize_t)meta->nfiles, meta->file_counts);
    if (rc == 0 && meta->file_paths) {
        size_t len = 1;
        for (int i = 0; i < meta->nfiles; i++)
            len += strlen(meta->file_paths[i]) + 1;
        char *names = calloc(len, 1);
        if (!names)
            rc = -1;
        for (int i = 0; names && i < meta->nfiles; i++) {
            strcat(names, meta->file_paths[i]);
            strcat(names, "\n");
        }
        if (names)
            rc = put_str(g, "train_file_names", names);
        free(names);
    }
    if (rc == 0)
        rc = write_meta(g, meta);
    if (rc == 0)
        H5Fflush(f, H5F_SCOPE_GLOBAL);
    if (rc == 0)
        rc = put_i64(g, "complete", 1); /* last: a file without it is never resumed from */
    if (g >= 0)
        H5Gclose(g);
    if (H5Fclose(f) < 0)
        rc = -1;
    if (rc != 0 || fsync_path(tmp, O_RDONLY) != 0) {
        unlink(tmp);
        return dp_fail(err, "--checkpoint-dir %s: writing %s failed (disk full or not "
                            "writable?); the earlier checkpoints are untouched", dir, tmp);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return dp_fail(err, "--checkpoint-dir %s: cannot rename %s into place (%s)", dir, tmp,
                       strerror(errno));
    }
    fsync_path(dir, O_RDONLY | O_DIRECTORY); /* make the rename itself durable */
    prune(dir, keep);
    if (written)
        snprintf(written, len, "%s", path);
    return 0;
}

/* ---- reading ----------------------------------------------------------------------- */

int checkpoint_find_latest(const char *dir, char *path, size_t len, dp_err *err)
{
    ckpt_entry *e = NULL;
    int n = 0;
    if (list_checkpoints(dir, &e, &n, err) != 0)
        return -1;
    int skipped = 0;
    char first_skipped[256] = "";
    for (int i = 0; i < n; i++) {
        snprintf(path, len, "%s/%s", dir, e[i].name);
        if (is_complete(path)) {
            free(e);
            return 0;
        }
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

int checkpoint_read_meta(const char *path, dp_ckpt_meta *m, dp_err *err)
{
    memset(m, 0, sizeof *m);
    hid_t f = open_readonly(path);
    if (f < 0)
        return dp_fail(err, "%s: cannot open the checkpoint (not HDF5 or unreadable)", path);
    if (H5Lexists(f, "dptrain", H5P_DEFAULT) <= 0) {
        H5Fclose(f);
        return dp_fail(err, "%s: not a dptrain checkpoint (no /dptrain group; a weights file "
                            "goes to --init-from)", path);
    }
    hid_t g = H5Gopen2(f, "dptrain", H5P_DEFAULT);
    int64_t v[20] = {0};
    static const char *ints[] = {"format", "step", "steps_per_epoch", "total_steps", "ranks",
                                 "threads", "global_batch", "shuffle", "nesterov",
                                 "lr_schedule", "epochs", "steps", "normalize", "train_samples",
                                 "train_files", "sample_c", "sample_h", "sample_w",
                                 "num_classes"};
    int rc = 0;
    const char *missing = NULL;
    for (size_t i = 0; i < sizeof ints / sizeof *ints && rc == 0; i++)
        if (get_i64(g, ints[i], &v[i]) != 0) {
            rc = -1;
            missing = ints[i];
        }
    if (rc == 0 && v[0] != DP_CKPT_FORMAT) {
        H5Gclose(g);
        H5Fclose(f);
        return dp_fail(err, "%s: checkpoint format %lld, this dptrain reads format %d", path,
                       (long long)v[0], DP_CKPT_FORMAT);
    }
    m->format = (int)v[0];
    m->step = (long)v[1];
    m->steps_per_epoch = (long)v[2];
    m->total_steps = (long)v[3];
    m->ranks = (int)v[4];
    m->threads = (int)v[5];
    m->global_batch = (int)v[6];
    m->shuffle = (int)v[7];
    m->nesterov = (int)v[8];
    m->schedule = (int)v[9];
    m->epochs = (int)v[10];
    m->steps = (long)v[11];
    m->normalize = (int)v[12];
    m->train_total = v[13];
    m->nfiles = (int)v[14];
    m->c = (int)v[15];
    m->h = (int)v[16];
    m->w = (int)v[17];
    m->num_classes = (int)v[18];
    static const char *dbls[] = {"lr", "momentum", "weight_decay", "warmup_epochs",
                                 "lr_step_epochs", "lr_gamma", "normalize_mean",
                                 "normalize_std"};
    double *dst[] = {&m->lr, &m->momentum, &m->weight_decay, &m->warmup_epochs,
                     &m->step_epochs, &m->gamma, &m->mean, &m->std};
    for (size_t i = 0; i < sizeof dbls / sizeof *dbls && rc == 0; i++)
        if (get_attr(g, dbls[i], H5T_NATIVE_DOUBLE, dst[i]) != 0) {
            rc = -1;
            missing = dbls[i];
        }
    if (rc == 0 && get_attr(g, "seed", H5T_NATIVE_UINT64, &m->seed) != 0)
        rc = -1, missing = "seed";
    if (rc == 0 && get_attr(g, "data_checksum", H5T_NATIVE_UINT64, &m->data_checksum) != 0)
        rc = -1, missing = "data_checksum";
    if (rc == 0 && get_str(g, "model", m->model_spec, sizeof m->model_spec) != 0)
        rc = -1, missing = "model";
    if (rc == 0 && get_str(g, "train", m->train, sizeof m->train) != 0)
        rc = -1, missing = "train";
    if (rc == 0 && get_str(g, "freeze", m->frozen, sizeof m->frozen) != 0)
        rc = -1, missing = "freeze";
    if (rc == 0 && (m->ranks < 1 || m->ranks > 1 << 24))
        rc = -1, missing = "ranks (out of range)";
    if (rc == 0) {
        m->pass = calloc((size_t)m->ranks, sizeof(int64_t));
        m->pos = calloc((size_t)m->ranks, sizeof(int64_t));
        if (!m->pass || !m->pos)
            rc = -1, missing = "memory for the sampler state";
        else if (get_dataset(g, "sampler_pass", H5T_NATIVE_INT64, (hsize_t)m->ranks, m->pass) ||
                 get_dataset(g, "sampler_pos", H5T_NATIVE_INT64, (hsize_t)m->ranks, m->pos))
            rc = -1, missing = "sampler_pass/sampler_pos [ranks]";
    }
    H5Gclose(g);
    H5Fclose(f);
    if (rc != 0) {
        checkpoint_meta_free(m);
        return dp_fail(err, "%s: checkpoint lacks or cannot read /dptrain %s", path, missing);
    }
    return 0;
}

int checkpoint_read_state(const char *path, dp_model *m, dp_optimizer *opt, dp_err *err)
{
    if (weights_load(m, path, err) != 0)
        return -1;
    hid_t f = open_readonly(path);
    if (f < 0)
        return dp_fail(err, "%s: cannot open the checkpoint", path);
    hid_t o = H5Lexists(f, "dptrain/optimizer", H5P_DEFAULT) > 0
                  ? H5Gopen2(f, "dptrain/optimizer", H5P_DEFAULT)
                  : -1;
    char kind[64] = "";
    int rc = 0;
    if (o < 0 || get_str(o, "kind", kind, sizeof kind) != 0)
        rc = dp_fail(err, "%s: /dptrain/optimizer is missing", path);
    else if (strcmp(kind, optimizer_kind(opt)) != 0)
        rc = dp_fail(err, "%s: the checkpoint holds the state of optimizer %s, this run uses %s "
                          "(pass the same --optimizer)", path, kind, optimizer_kind(opt));
    for (int i = 0; i < optimizer_state_count(opt) && rc == 0; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        if (get_dataset(o, st->name, H5T_NATIVE_FLOAT, st->count, st->data) != 0)
            rc = dp_fail(err, "%s: /dptrain/optimizer/%s is missing or does not hold %zu "
                              "floats", path, st->name, st->count);
    }
    if (o >= 0)
        H5Gclose(o);
    H5Fclose(f);
    return rc;
}
