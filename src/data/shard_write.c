/* shard_write: write one HDF5 shard (images, labels, root attributes) atomically.
 *
 * The file is written as PATH.tmp and renamed over PATH only once HDF5 has closed it,
 * so a crash or a full disk never leaves a half-written shard under the final name
 * (readers skip *.tmp: they list only *.h5). */
#include "dptrain/data/data.h"
#include "dptrain/util/h5util.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h5_write_fail(dp_err *err, const char *path, const char *what)
{
    char why[256];
    h5_reason(why);
    return dp_fail(err, "%s: cannot write %s%s%s", path, what, why[0] ? ": " : "", why);
}

/* One uint8 dataset, checksummed in chunks of about 64 KiB (no compression: reads stay
 * cheap). */
static int write_uint8(hid_t file, const char *name, int rank, const hsize_t *dims,
                       const uint8_t *data)
{
    hid_t ds = h5_create_checksummed(file, name, H5T_STD_U8LE, rank, dims);
    int rc = ds < 0 || H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0
                 ? -1
                 : 0;
    if (ds >= 0)
        H5Dclose(ds);
    return rc;
}

int shard_write(const char *path, const uint8_t *images, const uint8_t *labels, int64_t n,
                int c, int h, int w, const dp_shard_attrs *attrs, dp_err *err)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return dp_fail(err, "%s: cannot write a shard of %lld samples of %d x %d x %d: expected "
                            "at least one sample and positive C, H, W",
                       path, (long long)n, c, h, w);
    if (!images || !labels)
        return dp_fail(err, "%s: no image or label data to write", path);
    size_t plen = strlen(path) + 5;
    char *tmp = malloc(plen);
    if (!tmp)
        return dp_fail(err, "%s: out of memory", path);
    snprintf(tmp, plen, "%s.tmp", path);

    h5_quiet q = h5_quiet_begin();
    int rc = -1;
    char why[256];
    hid_t file = h5_mem_create(tmp, why);
    if (file < 0) {
        dp_fail(err, "%s: cannot write a new HDF5 file (does the directory exist and is it "
                     "writable?)%s%s", tmp, why[0] ? ": " : "", why);
        goto out;
    }
    hsize_t idims[4] = {(hsize_t)n, (hsize_t)c, (hsize_t)h, (hsize_t)w};
    hsize_t ldims[1] = {(hsize_t)n};
    if (write_uint8(file, "images", 4, idims, images)) {
        h5_write_fail(err, tmp, "/images");
        goto close;
    }
    if (write_uint8(file, "labels", 1, ldims, labels)) {
        h5_write_fail(err, tmp, "/labels");
        goto close;
    }
    if (attrs) {
        struct {
            const char *name;
            int64_t value;
        } ints[] = {{"shard_index", attrs->shard_index},
                    {"shard_count", attrs->shard_count},
                    {"first_index", attrs->first_index},
                    {"total_samples", attrs->total_samples},
                    {"num_classes", attrs->num_classes}};
        struct {
            const char *name, *value;
        } strs[] = {{"source_images", attrs->source_images},
                    {"source_labels", attrs->source_labels},
                    {"source_images_sha256", attrs->source_images_sha256},
                    {"source_labels_sha256", attrs->source_labels_sha256}};
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            if (h5_attr_put_i64(file, ints[i].name, ints[i].value)) {
                h5_write_fail(err, tmp, ints[i].name);
                goto close;
            }
        }
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
            if (strs[i].value && h5_attr_put_vstr(file, strs[i].name, strs[i].value)) {
                h5_write_fail(err, tmp, strs[i].name);
                goto close;
            }
        }
    }
    rc = 0;
close:
    if (rc != 0)
        H5Fclose(file);
    else if (h5_mem_finish(file, tmp, NULL) != 0)
        rc = dp_fail(err, "%s: cannot write the file to disk: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = dp_fail(err, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
    if (rc != 0)
        remove(tmp);
out:
    h5_quiet_end(q);
    free(tmp);
    return rc;
}
