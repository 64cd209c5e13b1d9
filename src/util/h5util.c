#include "dptrain/util/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- error handling -------------------------------------------------------------- */

h5_quiet h5_quiet_begin(void)
{
    h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void h5_quiet_end(h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

static herr_t first_error(unsigned n, const H5E_error2_t *e, void *why)
{
    if (n == 0 && e->desc)
        snprintf(why, 256, "%s", e->desc);
    return 0;
}

const char *h5_reason(char why[256])
{
    why[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, why);
    return why;
}

int h5_read_damaged(char why[256])
{
    h5_reason(why);
    if (!strstr(why, "Fletcher32")) /* HDF5's "data error detected by Fletcher32 checksum" */
        return 0;
    snprintf(why, 256, "bytes there do not match the checksum stored with them: the file was "
                       "damaged after it was written");
    return 1;
}

void h5_describe_type(hid_t type, char *buf, size_t len)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    switch (cls) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", 8 * size);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", 8 * size); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    default: snprintf(buf, len, "HDF5 type class %d of %zu bytes", (int)cls, size); break;
    }
}

/* ---- files ------------------------------------------------------------------------ */

hid_t h5_fapl_nolock(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

/* The reason is read before H5Pclose, which starts by clearing the error stack. */
hid_t h5_open(const char *path, unsigned flags, char *why)
{
    hid_t fapl = h5_fapl_nolock();
    hid_t f = H5Fopen(path, flags, fapl);
    if (f < 0 && why)
        h5_reason(why);
    H5Pclose(fapl);
    return f;
}

hid_t h5_create(const char *path, char *why)
{
    hid_t fapl = h5_fapl_nolock();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0 && why)
        h5_reason(why);
    H5Pclose(fapl);
    return f;
}

static int fsync_open(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int h5_fsync_file(const char *path) { return fsync_open(path, O_RDONLY); }

int h5_fsync_dir(const char *path) { return fsync_open(path, O_RDONLY | O_DIRECTORY); }

/* ---- scalar attributes ------------------------------------------------------------ */

int h5_attr_put(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)
                         : -1;
    int ok = a >= 0 && H5Awrite(a, mem_type, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (space >= 0)
        H5Sclose(space);
    return ok ? 0 : -1;
}

int h5_attr_put_i64(hid_t obj, const char *name, int64_t v)
{
    return h5_attr_put(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

int h5_attr_put_u64(hid_t obj, const char *name, uint64_t v)
{
    return h5_attr_put(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

int h5_attr_put_f64(hid_t obj, const char *name, double v)
{
    return h5_attr_put(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

int h5_attr_put_str(hid_t obj, const char *name, const char *s)
{
    hid_t str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, strlen(s) + 1) < 0) {
        if (str >= 0)
            H5Tclose(str);
        return -1;
    }
    int rc = h5_attr_put(obj, name, str, str, s);
    H5Tclose(str);
    return rc;
}

int h5_attr_put_vstr(hid_t obj, const char *name, const char *s)
{
    hid_t str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, H5T_VARIABLE) < 0 || H5Tset_cset(str, H5T_CSET_UTF8) < 0) {
        if (str >= 0)
            H5Tclose(str);
        return -1;
    }
    int rc = h5_attr_put(obj, name, str, str, &s);
    H5Tclose(str);
    return rc;
}

/* Open attribute `name` of obj when it holds one value of class cls: the attribute (its
 * type in *type, closed by the caller), 0 when absent, -1 with a message otherwise. */
static hid_t open_scalar(hid_t obj, const char *name, H5T_class_t cls, const char *want,
                         hid_t *type, dp_err *err)
{
    *type = -1;
    htri_t exists = H5Aexists(obj, name);
    if (exists < 0)
        return dp_fail(err, "cannot query attribute '%s'", name);
    if (exists == 0)
        return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return dp_fail(err, "cannot open attribute '%s'", name);
    hid_t t = H5Aget_type(a), space = H5Aget_space(a);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int rc = -1;
    if (t < 0 || space < 0) {
        dp_fail(err, "cannot read the type of attribute '%s'", name);
    } else if (npoints != 1) {
        dp_fail(err, "attribute '%s' has %lld values: expected a single value", name,
                (long long)npoints);
    } else if (H5Tget_class(t) != cls) {
        char found[64];
        h5_describe_type(t, found, sizeof found);
        dp_fail(err, "attribute '%s' has type %s: expected %s", name, found, want);
    } else {
        rc = 0;
    }
    if (space >= 0)
        H5Sclose(space);
    if (rc == 0) {
        *type = t;
        return a;
    }
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return -1;
}

/* A one-value attribute of class cls read as mem_type into v (0 / 1 absent / -1). */
static int get_scalar(hid_t obj, const char *name, H5T_class_t cls, const char *want,
                      hid_t mem_type, void *v, dp_err *err)
{
    hid_t type;
    hid_t a = open_scalar(obj, name, cls, want, &type, err);
    if (a <= 0)
        return a == 0 ? 1 : -1;
    int rc = H5Aread(a, mem_type, v) >= 0
                 ? 0
                 : dp_fail(err, "cannot read attribute '%s' as %s", name, want);
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

/* An integer attribute read in its own signedness, so that no value is clipped on the way
 * to the other one: a negative value is refused as unsigned, one above INT64_MAX as signed. */
static int get_integer(hid_t obj, const char *name, int want_unsigned, int64_t *i, uint64_t *u,
                       dp_err *err)
{
    const char *want = want_unsigned ? "a non-negative integer" : "an integer";
    hid_t type;
    hid_t a = open_scalar(obj, name, H5T_INTEGER, want, &type, err);
    if (a <= 0)
        return a == 0 ? 1 : -1;
    int is_signed = H5Tget_sign(type) != H5T_SGN_NONE;
    int64_t sv = 0;
    uint64_t uv = 0;
    int rc = H5Aread(a, is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64,
                     is_signed ? (void *)&sv : (void *)&uv) >= 0
                 ? 0
                 : dp_fail(err, "cannot read attribute '%s' as %s", name, want);
    if (rc == 0 && is_signed && want_unsigned && sv < 0)
        rc = dp_fail(err, "attribute '%s' is %lld: expected %s", name, (long long)sv, want);
    if (rc == 0 && !is_signed && !want_unsigned && uv > (uint64_t)INT64_MAX)
        rc = dp_fail(err, "attribute '%s' is %llu: expected at most %lld", name,
                     (unsigned long long)uv, (long long)INT64_MAX);
    if (rc == 0 && want_unsigned)
        *u = is_signed ? (uint64_t)sv : uv;
    else if (rc == 0)
        *i = is_signed ? sv : (int64_t)uv;
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

int h5_attr_get_i64(hid_t obj, const char *name, int64_t *v, dp_err *err)
{
    return get_integer(obj, name, 0, v, NULL, err);
}

int h5_attr_get_u64(hid_t obj, const char *name, uint64_t *v, dp_err *err)
{
    return get_integer(obj, name, 1, NULL, v, err);
}

int h5_attr_get_f64(hid_t obj, const char *name, double *v, dp_err *err)
{
    double tmp;
    int rc = get_scalar(obj, name, H5T_FLOAT, "a floating-point number", H5T_NATIVE_DOUBLE,
                        &tmp, err);
    if (rc == 0)
        *v = tmp;
    return rc;
}

/* Copy s into buf[len] unless it does not fit. */
static int copy_str(const char *name, const char *s, size_t n, char *buf, size_t len,
                    dp_err *err)
{
    if (n >= len)
        return dp_fail(err, "attribute '%s' holds a string of %zu bytes: expected at most %zu",
                       name, n, len - 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int read_vstr(hid_t a, hid_t type, const char *name, char *buf, size_t len, dp_err *err)
{
    char *s = NULL;
    hid_t mem = H5Tcopy(H5T_C_S1);
    int ok = mem >= 0 && H5Tset_size(mem, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(mem, H5Tget_cset(type)) >= 0 && H5Aread(a, mem, &s) >= 0 && s;
    int rc = ok ? copy_str(name, s, strlen(s), buf, len, err)
                : dp_fail(err, "cannot read attribute '%s' as a string", name);
    if (s)
        H5free_memory(s);
    if (mem >= 0)
        H5Tclose(mem);
    return rc;
}

static int read_fixed_str(hid_t a, hid_t type, const char *name, char *buf, size_t len,
                          dp_err *err)
{
    size_t size = H5Tget_size(type);
    char *s = calloc(size + 1, 1);
    hid_t mem = H5Tcopy(H5T_C_S1);
    int ok = s && mem >= 0 && H5Tset_size(mem, size) >= 0 && H5Aread(a, mem, s) >= 0;
    int rc = ok ? copy_str(name, s, strlen(s), buf, len, err)
                : dp_fail(err, "cannot read attribute '%s' as a string", name);
    if (mem >= 0)
        H5Tclose(mem);
    free(s);
    return rc;
}

int h5_attr_get_str(hid_t obj, const char *name, char *buf, size_t len, dp_err *err)
{
    hid_t type;
    hid_t a = open_scalar(obj, name, H5T_STRING, "a string", &type, err);
    if (a <= 0)
        return a == 0 ? 1 : -1;
    int rc = H5Tis_variable_str(type) > 0 ? read_vstr(a, type, name, buf, len, err)
                                          : read_fixed_str(a, type, name, buf, len, err);
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

/* ---- checksummed datasets -------------------------------------------------------- */

/* Chunks of about 64 KiB along the first dimension, checksummed; H5P_DEFAULT where a
 * dimension is empty. Below glibc's mmap threshold (128 KiB), so HDF5's buffer for each
 * chunk comes from the heap: with 1 MiB chunks each was a fresh mapping, and its page
 * faults made ten 38 MB checkpoints 1.2x slower to write on a virtual machine. */
static hid_t checksummed_dcpl(int rank, const hsize_t *dims, size_t elem)
{
    hsize_t row = elem, chunk[H5S_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0)
            return H5P_DEFAULT;
        chunk[i] = dims[i];
        row *= i ? dims[i] : 1;
    }
    hsize_t rows = ((hsize_t)1 << 16) / row;
    chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl >= 0 && (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0)) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

hid_t h5_create_checksummed(hid_t loc, const char *name, hid_t file_type, int rank,
                            const hsize_t *dims)
{
    if (rank < 1 || rank > H5S_MAX_RANK)
        return -1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = checksummed_dcpl(rank, dims, H5Tget_size(file_type));
    hid_t ds = space >= 0 && dcpl >= 0 ? H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT,
                                                    dcpl, H5P_DEFAULT)
                                       : -1;
    if (dcpl >= 0 && dcpl != H5P_DEFAULT)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return ds;
}

int h5_has_checksum(hid_t ds)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0)
        return 0;
    unsigned flags = 0, config = 0;
    size_t nvalues = 0;
    int found = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nvalues, NULL, 0,
                                     NULL, &config) >= 0;
    H5Pclose(dcpl);
    return found;
}

/* One link of H5Lvisit: a checksummed dataset is read whole (its own type, so no
 * conversion); a mismatch stops the visit with why filled. */
static herr_t verify_link(hid_t g, const char *name, const H5L_info_t *info, void *why)
{
    (void)info;
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    if (obj < 0)
        return 0;
    herr_t stop = 0;
    if (H5Iget_type(obj) == H5I_DATASET && h5_has_checksum(obj)) {
        hid_t type = H5Dget_type(obj), space = H5Dget_space(obj);
        hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
        size_t size = type >= 0 ? H5Tget_size(type) : 0;
        void *buf = n > 0 && size ? malloc((size_t)n * size) : NULL;
        if (buf && H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            char reason[256];
            h5_read_damaged(reason);
            snprintf(why, 512, "'%s': %s", name, reason);
            stop = 1;
        }
        free(buf);
        if (space >= 0)
            H5Sclose(space);
        if (type >= 0)
            H5Tclose(type);
    }
    H5Oclose(obj);
    return stop;
}

int h5_verify_checksums(hid_t f, char why[512])
{
    why[0] = '\0';
    return H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, verify_link, why) > 0;
}

/* ---- 1-D datasets ----------------------------------------------------------------- */

int h5_put_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, hsize_t n,
              const void *data)
{
    hid_t ds = h5_create_checksummed(loc, name, file_type, 1, &n);
    int ok = ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    return ok ? 0 : -1;
}

int h5_get_1d(hid_t loc, const char *name, hid_t mem_type, hsize_t n, void *data, dp_err *err)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return dp_fail(err, "no dataset '%s'", name);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0)
        return dp_fail(err, "'%s' is not a dataset", name);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int rc = -1;
    if (rank != 1)
        dp_fail(err, "dataset '%s' has rank %d: expected 1", name, rank);
    else if (H5Sget_simple_extent_dims(space, dims, NULL) != 1 || dims[0] != n)
        dp_fail(err, "dataset '%s' has %llu elements: expected %llu", name,
                (unsigned long long)dims[0], (unsigned long long)n);
    else if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char why[256];
        if (h5_read_damaged(why))
            dp_fail(err, "dataset '%s': %s", name, why);
        else
            dp_fail(err, "dataset '%s': reading failed (truncated file?)", name);
    }
    else
        rc = 0;
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
    return rc;
}
