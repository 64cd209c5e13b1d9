#include "dptrain/persist/weights.h"
#include "dptrain/util/h5util.h"
#include "ckpt_internal.h"

#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What the run computed with, beside the model (weights.h). */
static int put_info(hid_t f, const dp_weights_info *in)
{
    const int32_t norm = in->normalize > 0;
    return h5_attr_put_str(f, "dptrain_precision", in->precision) ||
           h5_attr_put_str(f, "dptrain_conv_algorithm", in->conv_algorithm) ||
           h5_attr_put(f, "dptrain_normalize", H5T_STD_I32LE, H5T_NATIVE_INT32, &norm) ||
           h5_attr_put_f64(f, "dptrain_normalize_mean", norm ? in->mean : 0.0) ||
           h5_attr_put_f64(f, "dptrain_normalize_std", norm ? in->std : 1.0);
}

int weights_put(hid_t f, const dp_model *m, const dp_weights_info *info)
{
    int ok = 1;
    for (int i = 0; i < m->nparams && ok; i++) {
        const dp_param *p = &m->params[i];
        hsize_t dims[4];
        for (int d = 0; d < p->ndims; d++)
            dims[d] = (hsize_t)p->dims[d];
        hid_t ds = h5_create_checksummed(f, p->name, H5T_IEEE_F32LE, p->ndims, dims);
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                 m->weights + p->offset) >= 0;
        if (ds >= 0)
            H5Dclose(ds);
    }
    int version = 1;
    ok = ok && h5_attr_put_str(f, "dptrain_model", m->spec) == 0 &&
         h5_attr_put(f, "dptrain_format", H5T_STD_I32LE, H5T_NATIVE_INT, &version) == 0 &&
         (!info || put_info(f, info) == 0);
    return ok ? 0 : -1;
}

static int save_quietly(const dp_model *m, const char *path, const dp_weights_info *info,
                        dp_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return dp_fail(err, "%s: path too long", path);
    hid_t f = h5_mem_create(tmp, NULL);
    if (f < 0)
        return dp_fail(err, "%s: cannot create the file (does the directory exist and is it "
                            "writable?)", tmp);
    int ok = weights_put(f, m, info) == 0;
    if (ok)
        ok = h5_mem_finish(f, tmp, NULL) == 0;
    else
        H5Fclose(f);
    if (!ok) {
        unlink(tmp);
        return dp_fail(err, "%s: writing the weights failed (disk full or not writable?); the "
                            "previous file, if any, is untouched", path);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return dp_fail(err, "%s: cannot rename %s into place", path, tmp);
    }
    return 0;
}

int weights_save(const dp_model *m, const char *path, const dp_weights_info *info,
                 dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = save_quietly(m, path, info, err);
    h5_quiet_end(q);
    return rc;
}

/* A weights file opened for reading, or -1 with err saying why (weights_load and
 * weights_info alike). */
static hid_t open_weights(const char *path, dp_err *err)
{
    if (access(path, R_OK) != 0)
        return dp_fail(err, "%s: cannot read the weights file (missing or no permission)", path);
    if (H5Fis_hdf5(path) <= 0)
        return dp_fail(err, "%s: not an HDF5 file", path);
    hid_t f = h5_open(path, H5F_ACC_RDONLY, NULL);
    return f >= 0 ? f : dp_fail(err, "%s: cannot open the HDF5 file", path);
}

static int load_quietly(dp_model *m, const char *path, dp_err *err)
{
    hid_t f = open_weights(path, err);
    if (f < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < m->nparams && rc == 0; i++) {
        const dp_param *p = &m->params[i];
        if (H5Lexists(f, p->name, H5P_DEFAULT) <= 0) {
            rc = dp_fail(err, "%s: has no dataset '%s' (the model %s needs it)", path, p->name,
                         m->spec);
            break;
        }
        hid_t ds = H5Dopen2(f, p->name, H5P_DEFAULT);
        hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t dims[8] = {0};
        int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        if (nd >= 0 && nd <= 8)
            H5Sget_simple_extent_dims(space, dims, NULL);
        int same = nd == p->ndims;
        for (int d = 0; same && d < nd; d++)
            same = dims[d] == (hsize_t)p->dims[d];
        if (!same) {
            char want[64] = "", got[64] = "";
            for (int d = 0; d < p->ndims; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "," : "",
                         p->dims[d]);
            for (int d = 0; d < nd && d < 8; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "," : "",
                         (unsigned long long)dims[d]);
            rc = dp_fail(err, "%s: dataset '%s' has shape [%s], the model needs [%s]", path,
                         p->name, got, want);
        } else {
            hid_t type = H5Dget_type(ds);
            int is_float = H5Tget_class(type) == H5T_FLOAT;
            H5Tclose(type);
            if (!is_float)
                rc = dp_fail(err, "%s: dataset '%s' is not floating point", path, p->name);
            else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             m->weights + p->offset) < 0) {
                char why[256];
                rc = h5_read_damaged(why)
                         ? dp_fail(err, "%s: dataset '%s': %s", path, p->name, why)
                         : dp_fail(err, "%s: reading dataset '%s' failed (truncated file?)",
                                   path, p->name);
            }
            for (size_t k = 0; rc == 0 && k < p->count; k++)
                if (!isfinite(m->weights[p->offset + k]))
                    rc = dp_fail(err, "%s: dataset '%s' holds %g at element %zu: expected "
                                      "finite weights", path, p->name,
                                 (double)m->weights[p->offset + k], k);
        }
        if (space >= 0)
            H5Sclose(space);
        if (ds >= 0)
            H5Dclose(ds);
    }
    H5Fclose(f);
    return rc;
}

int weights_load(dp_model *m, const char *path, dp_err *err)
{
    h5_quiet q = h5_quiet_begin();
    int rc = load_quietly(m, path, err);
    h5_quiet_end(q);
    return rc;
}

/* Where an attribute is: the root's `name`, else (a checkpoint written before the root
 * held it) the /dptrain group's `old`; 0 when neither has it. */
static hid_t info_holder(hid_t f, hid_t g, const char *name, const char *old)
{
    if (H5Aexists(f, name) > 0)
        return f;
    return old && g >= 0 && H5Aexists(g, old) > 0 ? g : 0;
}

static int read_info(hid_t f, hid_t g, dp_weights_info *in, dp_err *err)
{
    static const struct {
        const char *name, *old;
        size_t at, len;
    } strs[] = {
        {"dptrain_model", NULL, offsetof(dp_weights_info, model), sizeof in->model},
        {"dptrain_precision", "precision", offsetof(dp_weights_info, precision),
         sizeof in->precision},
        {"dptrain_conv_algorithm", "conv_algorithm", offsetof(dp_weights_info, conv_algorithm),
         sizeof in->conv_algorithm},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        hid_t h = info_holder(f, g, strs[i].name, strs[i].old);
        if (h > 0 && h5_attr_get_str(h, h == f ? strs[i].name : strs[i].old,
                                     (char *)in + strs[i].at, strs[i].len, err) != 0)
            return -1;
    }
    hid_t h = info_holder(f, g, "dptrain_normalize", "normalize");
    if (h <= 0)
        return 0;
    const int root = h == f;
    int64_t norm = 0;
    if (h5_attr_get_i64(h, root ? "dptrain_normalize" : "normalize", &norm, err) ||
        h5_attr_get_f64(h, root ? "dptrain_normalize_mean" : "normalize_mean", &in->mean, err) ||
        h5_attr_get_f64(h, root ? "dptrain_normalize_std" : "normalize_std", &in->std, err))
        return -1;
    in->normalize = norm != 0;
    if (in->normalize && !(in->std > 0 && isfinite(in->std) && isfinite(in->mean)))
        return dp_fail(err, "records the normalisation (%g, %g): expected a finite mean and a "
                            "standard deviation above 0", in->mean, in->std);
    return 0;
}

int weights_info(const char *path, dp_weights_info *info, dp_err *err)
{
    memset(info, 0, sizeof *info);
    info->normalize = -1;
    h5_quiet q = h5_quiet_begin();
    hid_t f = open_weights(path, err);
    int rc = f < 0 ? -1 : 0;
    if (rc == 0) {
        hid_t g = H5Lexists(f, "dptrain", H5P_DEFAULT) > 0 ? H5Gopen2(f, "dptrain", H5P_DEFAULT)
                                                           : -1;
        if (read_info(f, g, info, err) != 0)
            rc = dp_prefix(err, "%s", path);
        if (g >= 0)
            H5Gclose(g);
        H5Fclose(f);
    }
    h5_quiet_end(q);
    return rc;
}
