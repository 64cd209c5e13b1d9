/* ckpt_internal.h: what checkpoint.c (the file format), ckpt_dir.c (a directory of
 * checkpoints: listing, finding the newest complete one, pruning a run's own) and
 * weights.c (the weights at a checkpoint's root) share. Not a public header: only
 * src/persist includes it. */
#ifndef DP_CKPT_INTERNAL_H
#define DP_CKPT_INTERNAL_H

#include <hdf5.h>
#include <unistd.h>

#include "dptrain/persist/weights.h"
#include "dptrain/util/h5util.h"

/* Checkpoints are ours: any attribute that is absent or of another type makes it
 * unreadable, so the getters' messages are not needed. */
static inline int ckpt_get_i64(hid_t obj, const char *name, int64_t *v)
{
    return h5_attr_get_i64(obj, name, v, NULL) == 0 ? 0 : -1;
}

static inline hid_t ckpt_open_readonly(const char *path)
{
    if (access(path, R_OK) != 0 || H5Fis_hdf5(path) <= 0)
        return -1;
    return h5_open(path, H5F_ACC_RDONLY, NULL);
}

/* The weights of m, and what info records, as datasets and attributes at the root of the
 * open file f, exactly as a weights file holds them (weights.c): 0 or -1. */
int weights_put(hid_t f, const dp_model *m, const dp_weights_info *info);

/* Deletes run_id's checkpoints in dir beyond the newest keep, and every temporary file of
 * a write that died; other runs' checkpoints are never touched. */
void ckpt_dir_prune(const char *dir, int keep, const char *run_id);

#endif
