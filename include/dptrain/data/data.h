/* data: IDX and HDF5 image-classification data, and which part of it a rank owns.
 *
 * On-disk layout (HDF5, one file per shard; see README "Data layout"):
 *   /images  uint8 [N, C, H, W]   (a rank-3 [N, H, W] dataset is read as C = 1)
 *   /labels  uint8 [N]
 *   optional root attributes, checked when present:
 *     shard_index, shard_count, first_index (global index of sample 0 of this file),
 *     total_samples (samples in all shards), num_classes,
 *     source_images, source_labels (file names), source_images_sha256, source_labels_sha256
 *
 * A dataset is an ordered list of such files; their samples are concatenated in list
 * order. A rank loads only its own share into memory (uint8, as stored). The caller
 * owns a dp_dataset and frees it with dataset_free. Nothing here calls MPI: the caller
 * passes rank and size in. */
#ifndef DPTRAIN_DATA_H
#define DPTRAIN_DATA_H

#include <stdint.h>

#include "dptrain/util/error.h"

typedef struct {
    char **paths;    /* sorted when they came from a directory, else as given */
    int64_t *counts; /* samples in each file */
    int nfiles;
    int c, h, w;          /* shape of one sample, the same in every file */
    int64_t total;        /* samples in all files */
    int num_classes;      /* from the num_classes attribute, 0 when absent */
    unsigned char *checksummed; /* per file: 1 when its /images and /labels carry HDF5's
                                 * Fletcher-32 checksums, which every read checks */
} dp_filelist;

typedef struct {
    uint8_t *images; /* [n, c, h, w] */
    uint8_t *labels; /* [n] */
    int64_t n;
    int c, h, w;
    int64_t first; /* index of images[0] in the concatenated data set */
    int64_t total; /* samples in the whole data set */
    int num_classes;
} dp_dataset;

/* Resolve a --train/--test argument: a directory (every *.h5 in it, sorted by name), a
 * single file, or a comma-separated list of files (in the given order). Opens each file,
 * checks images/labels exist with the right types, ranks and matching lengths, that all
 * files share C, H, W, and that attributes (when present) agree with the file's position. */
int filelist_open(const char *spec, dp_filelist *fl, dp_err *err);
void filelist_free(dp_filelist *fl);

/* The contiguous sample range [*begin, *end) owned by `rank` of `nranks`. When the
 * number of files equals nranks, rank r owns file r exactly; otherwise the concatenated
 * samples are split as evenly as possible: rank r owns [r*N/P, (r+1)*N/P). */
void filelist_share(const dp_filelist *fl, int rank, int nranks, int64_t *begin, int64_t *end);

/* Load samples [begin, end) of the concatenated data set, reading only the files and
 * rows that overlap the range. Checks every label < fl->num_classes when the files carry
 * that attribute (num_classes > 0); without it, labels are not checked here. */
int dataset_load(const dp_filelist *fl, int64_t begin, int64_t end, dp_dataset *ds, dp_err *err);
void dataset_free(dp_dataset *ds);

/* Writing one shard file with all the attributes above. */
typedef struct {
    int shard_index, shard_count;
    int64_t first_index, total_samples;
    int num_classes;
    const char *source_images, *source_labels;     /* may be NULL */
    const char *source_images_sha256, *source_labels_sha256; /* hex, may be NULL */
} dp_shard_attrs;

int shard_write(const char *path, const uint8_t *images, const uint8_t *labels, int64_t n,
                int c, int h, int w, const dp_shard_attrs *attrs, dp_err *err);

#endif
