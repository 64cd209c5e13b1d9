/* data: open a list of HDF5 shard files, decide which samples a rank owns, load them.
 *
 * Files are opened read-only with HDF5 file locking off, so that many ranks can read the
 * same files on a shared file system whose locking is absent or slow. HDF5's own error
 * printing is silenced while we work; every failure becomes one dp_err message that
 * names the file, what was expected and what was found. */
#include "dptrain/data/data.h"
#include "dptrain/util/h5util.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- HDF5 helpers ------------------------------------------------------------------ */

static hid_t open_shard(const char *path, dp_err *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return dp_fail(err, "%s: is a directory: expected an HDF5 file (a directory of shards "
                            "is given alone, not in a comma-separated list)", path);
    char why[256];
    hid_t file = h5_open(path, H5F_ACC_RDONLY, why);
    if (file < 0)
        return dp_fail(err, "%s: cannot open: expected an HDF5 file, but it is not one or it "
                            "is damaged (HDF5: %s)",
                       path, why[0] ? why : "no reason given");
    return file;
}

/* Shape of one uint8 dataset: checks it exists, is a dataset, is uint8, has an allowed rank;
 * *checksum: whether its chunks carry a checksum. */
static int dataset_shape(hid_t file, const char *path, const char *name, int min_rank,
                         int max_rank, int *rank, hsize_t dims[4], int *checksum, dp_err *err)
{
    const char *want = strcmp(name, "images") == 0 ? "uint8 [N, C, H, W] or [N, H, W]"
                                                   : "uint8 [N]";
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return dp_fail(err, "%s: no dataset '/%s': expected /%s %s", path, name, name, want);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return dp_fail(err, "%s: '/%s' is not a dataset: expected /%s %s", path, name, name,
                       want);
    int rc = -1;
    hid_t type = H5Dget_type(ds);
    hid_t space = H5Dget_space(ds);
    if (type < 0 || space < 0) {
        dp_fail(err, "%s: cannot read the type or shape of '/%s'", path, name);
        goto done;
    }
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5Tget_sign(type) != H5T_SGN_NONE) {
        char found[64];
        h5_describe_type(type, found, sizeof found);
        dp_fail(err, "%s: '/%s' has element type %s: expected %s (convert with dptrain-data)",
                path, name, found, want);
        goto done;
    }
    int r = H5Sget_simple_extent_ndims(space);
    if (r < min_rank || r > max_rank) {
        dp_fail(err, "%s: '/%s' has rank %d: expected %s", path, name, r, want);
        goto done;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < r; i++) {
        if (dims[i] == 0) {
            dp_fail(err, "%s: '/%s' has dimension %d of size 0: expected a non-empty %s",
                    path, name, i, want);
            goto done;
        }
    }
    *rank = r;
    *checksum = h5_has_checksum(ds);
    rc = 0;
done:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    H5Dclose(ds);
    return rc;
}

/* An optional integer root attribute: *present = 0 when absent. */
static int read_int_attr(hid_t file, const char *path, const char *name, int *present,
                         int64_t *value, dp_err *err)
{
    int rc = h5_attr_get_i64(file, name, value, err);
    *present = rc == 0;
    return rc < 0 ? dp_prefix(err, "%s", path) : 0;
}

/* ---- the file list ----------------------------------------------------------------- */

enum { ATTR_SHARD_INDEX, ATTR_SHARD_COUNT, ATTR_FIRST_INDEX, ATTR_TOTAL, ATTR_CLASSES, NATTR };
static const char *const attr_names[NATTR] = {"shard_index", "shard_count", "first_index",
                                              "total_samples", "num_classes"};

typedef struct {
    int present[NATTR];
    int64_t value[NATTR];
} file_attrs;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int push_path(dp_filelist *fl, int *cap, char *path, dp_err *err)
{
    if (!path)
        return dp_fail(err, "out of memory building the file list");
    if (fl->nfiles == *cap) {
        int ncap = *cap ? 2 * *cap : 16;
        char **np = realloc(fl->paths, (size_t)ncap * sizeof *np);
        if (!np) {
            free(path);
            return dp_fail(err, "out of memory building the file list");
        }
        fl->paths = np;
        *cap = ncap;
    }
    fl->paths[fl->nfiles++] = path;
    return 0;
}

static int list_directory(const char *dir, dp_filelist *fl, dp_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return dp_fail(err, "%s: cannot read directory: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".h5"))
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (p)
            snprintf(p, len, "%s%s%s", dir, ends_with(dir, "/") ? "" : "/", e->d_name);
        if ((rc = push_path(fl, &cap, p, err)) != 0)
            break;
    }
    closedir(d);
    if (rc)
        return rc;
    if (fl->nfiles == 0)
        return dp_fail(err, "%s: directory holds no *.h5 files: expected HDF5 shards "
                            "(make them with dptrain-data convert)",
                       dir);
    qsort(fl->paths, (size_t)fl->nfiles, sizeof *fl->paths, cmp_str);
    return 0;
}

static int list_files(const char *spec, dp_filelist *fl, dp_err *err)
{
    int cap = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return dp_fail(err, "'%s': empty file name in the comma-separated list", spec);
        if (push_path(fl, &cap, strndup(p, len), err))
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Open one file and read its sample count, shape and attributes. */
static int probe_file(const char *path, int64_t *count, int shape[3], file_attrs *a,
                      unsigned char *checksummed, dp_err *err)
{
    hid_t file = open_shard(path, err);
    if (file < 0)
        return -1;
    int rc = -1;
    int irank, lrank, isum, lsum;
    hsize_t idims[4] = {0}, ldims[4] = {0};
    if (dataset_shape(file, path, "images", 3, 4, &irank, idims, &isum, err) ||
        dataset_shape(file, path, "labels", 1, 1, &lrank, ldims, &lsum, err))
        goto done;
    *checksummed = isum && lsum;
    if (idims[0] != ldims[0]) {
        dp_fail(err, "%s: /images has %llu samples but /labels has %llu: expected the same "
                     "number",
                path, (unsigned long long)idims[0], (unsigned long long)ldims[0]);
        goto done;
    }
    hsize_t c = irank == 4 ? idims[1] : 1, h = idims[irank - 2], w = idims[irank - 1];
    if (c > 65535 || h > 65535 || w > 65535 || idims[0] > (hsize_t)INT64_MAX / (c * h * w)) {
        dp_fail(err, "%s: /images shape %llu x %llu x %llu x %llu is too large", path,
                (unsigned long long)idims[0], (unsigned long long)c, (unsigned long long)h,
                (unsigned long long)w);
        goto done;
    }
    *count = (int64_t)idims[0];
    shape[0] = (int)c;
    shape[1] = (int)h;
    shape[2] = (int)w;
    for (int i = 0; i < NATTR; i++)
        if (read_int_attr(file, path, attr_names[i], &a->present[i], &a->value[i], err))
            goto done;
    rc = 0;
done:
    H5Fclose(file);
    return rc;
}

static int attr_mismatch(const char *path, const char *name, int64_t expected, int64_t found,
                         const char *why, dp_err *err)
{
    return dp_fail(err, "%s: attribute %s is %lld: expected %lld (%s)", path, name,
                   (long long)found, (long long)expected, why);
}

/* Cross-file checks of the optional attributes. shard_index/shard_count describe a
 * position in a complete set, so they are held to the list only when the list is a
 * directory or every file carries them; sample positions are always checked. */
static int check_attrs(const dp_filelist *fl, const file_attrs *a, int from_dir, dp_err *err)
{
    int all_shard = 1;
    for (int i = 0; i < fl->nfiles; i++)
        all_shard &= a[i].present[ATTR_SHARD_INDEX] && a[i].present[ATTR_SHARD_COUNT];
    int strict = from_dir || all_shard;
    int64_t first = 0, count_seen = -1, classes_seen = -1;
    const char *count_file = NULL, *classes_file = NULL;
    for (int i = 0; i < fl->nfiles; i++) {
        const char *p = fl->paths[i];
        const int64_t *v = a[i].value;
        const int *has = a[i].present;
        if (has[ATTR_SHARD_COUNT]) {
            if (count_seen >= 0 && v[ATTR_SHARD_COUNT] != count_seen) {
                char why[600];
                snprintf(why, sizeof why, "as in %s", count_file);
                return attr_mismatch(p, "shard_count", count_seen, v[ATTR_SHARD_COUNT], why,
                                     err);
            }
            count_seen = v[ATTR_SHARD_COUNT];
            count_file = p;
            if (strict && count_seen != fl->nfiles)
                return dp_fail(err, "%s: attribute shard_count is %lld but the list has %d "
                                    "file(s): expected all %lld shards (a shard missing, or "
                                    "a stray file?)",
                               p, (long long)count_seen, fl->nfiles, (long long)count_seen);
        }
        if (strict && has[ATTR_SHARD_INDEX] && v[ATTR_SHARD_INDEX] != i)
            return attr_mismatch(p, "shard_index", i, v[ATTR_SHARD_INDEX],
                                 "its position in the sorted file list", err);
        if (has[ATTR_FIRST_INDEX] && v[ATTR_FIRST_INDEX] != first)
            return attr_mismatch(p, "first_index", first, v[ATTR_FIRST_INDEX],
                                 "the samples in the files before it", err);
        if (has[ATTR_TOTAL] && v[ATTR_TOTAL] != fl->total)
            return attr_mismatch(p, "total_samples", fl->total, v[ATTR_TOTAL],
                                 "the samples in all listed files", err);
        if (has[ATTR_CLASSES]) {
            if (v[ATTR_CLASSES] < 1 || v[ATTR_CLASSES] > 256)
                return dp_fail(err, "%s: attribute num_classes is %lld: expected 1 to 256 "
                                    "(labels are uint8)",
                               p, (long long)v[ATTR_CLASSES]);
            if (classes_seen >= 0 && v[ATTR_CLASSES] != classes_seen) {
                char why[600];
                snprintf(why, sizeof why, "as in %s", classes_file);
                return attr_mismatch(p, "num_classes", classes_seen, v[ATTR_CLASSES], why,
                                     err);
            }
            classes_seen = v[ATTR_CLASSES];
            classes_file = p;
        }
        first += fl->counts[i];
    }
    return 0;
}

int filelist_open(const char *spec, dp_filelist *fl, dp_err *err)
{
    memset(fl, 0, sizeof *fl);
    if (!spec || !*spec)
        return dp_fail(err, "empty data path: expected a directory, an .h5 file or a "
                            "comma-separated list of .h5 files");
    struct stat st;
    int from_dir = !strchr(spec, ',') && stat(spec, &st) == 0 && S_ISDIR(st.st_mode);
    int rc = from_dir ? list_directory(spec, fl, err) : list_files(spec, fl, err);
    if (rc) {
        filelist_free(fl);
        return -1;
    }
    file_attrs *attrs = NULL;
    fl->counts = dp_calloc((size_t)fl->nfiles, sizeof *fl->counts, "file sample counts", err);
    fl->checksummed = dp_calloc((size_t)fl->nfiles, 1, "file checksum flags", err);
    attrs = dp_calloc((size_t)fl->nfiles, sizeof *attrs, "file attributes", err);
    if (!fl->counts || !fl->checksummed || !attrs)
        goto fail;

    h5_quiet q = h5_quiet_begin();
    for (int i = 0; i < fl->nfiles; i++) {
        int shape[3];
        if (probe_file(fl->paths[i], &fl->counts[i], shape, &attrs[i], &fl->checksummed[i],
                       err)) {
            h5_quiet_end(q);
            goto fail;
        }
        if (i == 0) {
            fl->c = shape[0];
            fl->h = shape[1];
            fl->w = shape[2];
        } else if (shape[0] != fl->c || shape[1] != fl->h || shape[2] != fl->w) {
            dp_fail(err, "%s: samples are %d x %d x %d (C x H x W): expected %d x %d x %d as in "
                         "%s",
                    fl->paths[i], shape[0], shape[1], shape[2], fl->c, fl->h, fl->w,
                    fl->paths[0]);
            h5_quiet_end(q);
            goto fail;
        }
        fl->total += fl->counts[i];
    }
    h5_quiet_end(q);
    if (check_attrs(fl, attrs, from_dir, err))
        goto fail;
    for (int i = 0; i < fl->nfiles; i++)
        if (attrs[i].present[ATTR_CLASSES]) {
            fl->num_classes = (int)attrs[i].value[ATTR_CLASSES];
            break;
        }
    free(attrs);
    return 0;
fail:
    free(attrs);
    filelist_free(fl);
    return -1;
}

void filelist_free(dp_filelist *fl)
{
    if (!fl)
        return;
    for (int i = 0; i < fl->nfiles; i++)
        free(fl->paths[i]);
    free(fl->paths);
    free(fl->counts);
    free(fl->checksummed);
    memset(fl, 0, sizeof *fl);
}

void filelist_share(const dp_filelist *fl, int rank, int nranks, int64_t *begin, int64_t *end)
{
    if (nranks <= 0 || rank < 0 || rank >= nranks) {
        *begin = *end = 0;
        return;
    }
    if (fl->nfiles == nranks) {
        int64_t first = 0;
        for (int i = 0; i < rank; i++)
            first += fl->counts[i];
        *begin = first;
        *end = first + fl->counts[rank];
        return;
    }
    /* floor(r * N / P) without forming r * N: with N = q P + m it is r q + floor(r m / P). */
    int64_t n = fl->total, q = n / nranks, m = n % nranks;
    *begin = (int64_t)rank * q + (int64_t)rank * m / nranks;
    *end = (int64_t)(rank + 1) * q + (int64_t)(rank + 1) * m / nranks;
}

/* ---- loading a range --------------------------------------------------------------- */

/* Read rows [lo, lo + len) of one uint8 dataset into dst (row = row_bytes bytes). */
static int read_rows(hid_t file, const char *path, const char *name, hsize_t lo, hsize_t len,
                     uint8_t *dst, dp_err *err)
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return dp_fail(err, "%s: cannot open dataset '/%s' (was the file changed since it was "
                            "listed?)",
                       path, name);
    hid_t fspace = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(fspace);
    hsize_t dims[4] = {0}, start[4] = {0}, count[4] = {0};
    int rc = -1;
    hid_t mspace = -1;
    if (rank < 1 || rank > 4) {
        dp_fail(err, "%s: '/%s' changed rank since it was listed", path, name);
        goto done;
    }
    H5Sget_simple_extent_dims(fspace, dims, NULL);
    if (lo + len > dims[0]) {
        dp_fail(err, "%s: '/%s' has %llu rows: expected at least %llu (was the file changed "
                     "since it was listed?)",
                path, name, (unsigned long long)dims[0], (unsigned long long)(lo + len));
        goto done;
    }
    start[0] = lo;
    count[0] = len;
    for (int i = 1; i < rank; i++)
        count[i] = dims[i];
    /* The memory space has the selection's own shape: with a flat one HDF5 walks the
     * selection element by element (seconds for MNIST); with the same shape it copies
     * whole chunks' rows. */
    mspace = H5Screate_simple(rank, count, NULL);
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        mspace < 0 || H5Dread(ds, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, dst) < 0) {
        char why[256];
        if (h5_read_damaged(why))
            dp_fail(err, "%s: reading rows %llu..%llu of '/%s': %s (copy it again, or make it "
                         "again with dptrain-data convert)",
                    path, (unsigned long long)lo, (unsigned long long)(lo + len), name, why);
        else
            dp_fail(err, "%s: reading rows %llu..%llu of '/%s' failed: %s", path,
                    (unsigned long long)lo, (unsigned long long)(lo + len), name, why);
        goto done;
    }
    rc = 0;
done:
    if (mspace >= 0)
        H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(ds);
    return rc;
}

int dataset_load(const dp_filelist *fl, int64_t begin, int64_t end, dp_dataset *ds, dp_err *err)
{
    memset(ds, 0, sizeof *ds);
    if (begin == end)
        return dp_fail(err, "no samples to load: the range [%lld, %lld) is empty (the data set "
                            "has %lld samples in %d file(s); is this rank given none because "
                            "there are more ranks than samples?)",
                       (long long)begin, (long long)end, (long long)fl->total, fl->nfiles);
    if (begin < 0 || end < begin || end > fl->total)
        return dp_fail(err, "sample range [%lld, %lld) is outside the data set: expected "
                            "0 <= begin < end <= %lld",
                       (long long)begin, (long long)end, (long long)fl->total);
    size_t sample = (size_t)fl->c * (size_t)fl->h * (size_t)fl->w;
    int64_t n = end - begin;
    ds->images = dp_calloc((size_t)n, sample, "images", err);
    ds->labels = dp_calloc((size_t)n, 1, "labels", err);
    if (!ds->images || !ds->labels) {
        dataset_free(ds);
        return -1;
    }
    h5_quiet q = h5_quiet_begin();
    int64_t offset = 0;
    for (int i = 0; i < fl->nfiles; offset += fl->counts[i], i++) {
        int64_t lo = begin > offset ? begin : offset;
        int64_t hi = end < offset + fl->counts[i] ? end : offset + fl->counts[i];
        if (lo >= hi)
            continue;
        const char *path = fl->paths[i];
        hid_t file = open_shard(path, err);
        if (file < 0)
            goto fail;
        uint8_t *lab = ds->labels + (lo - begin);
        int bad = read_rows(file, path, "images", (hsize_t)(lo - offset), (hsize_t)(hi - lo),
                            ds->images + (size_t)(lo - begin) * sample, err) ||
                  read_rows(file, path, "labels", (hsize_t)(lo - offset), (hsize_t)(hi - lo),
                            lab, err);
        H5Fclose(file);
        if (bad)
            goto fail;
        if (fl->num_classes > 0) {
            for (int64_t j = 0; j < hi - lo; j++) {
                if (lab[j] >= fl->num_classes) {
                    dp_fail(err, "%s: label %d of sample %lld (global index %lld) is out of "
                                 "range: expected < num_classes = %d",
                            path, lab[j], (long long)(lo - offset + j), (long long)(lo + j),
                            fl->num_classes);
                    goto fail;
                }
            }
        }
    }
    h5_quiet_end(q);
    ds->n = n;
    ds->c = fl->c;
    ds->h = fl->h;
    ds->w = fl->w;
    ds->first = begin;
    ds->total = fl->total;
    ds->num_classes = fl->num_classes;
    return 0;
fail:
    h5_quiet_end(q);
    dataset_free(ds);
    return -1;
}

void dataset_free(dp_dataset *ds)
{
    if (!ds)
        return;
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}
