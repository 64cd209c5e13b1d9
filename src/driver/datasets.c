/* datasets: the driver's data set-up, shared by dptrain and dptrain-eval (datasets.h). */
#include "dptrain/driver/datasets.h"

#include <stdio.h>
#include <string.h>

int datasets_open(const dp_comm *c, const char *spec, const char *option, dp_filelist *fl,
                  dp_err *err)
{
    int rc = filelist_open(spec, fl, err);
    if (rc)
        dp_prefix(err, "%s", option);
    return comm_agree(c, rc, err);
}

int datasets_load_range(const dp_comm *c, const dp_filelist *fl, int64_t begin, int64_t end,
                        const char *option, dp_dataset *ds, dp_err *err)
{
    int rc = end > begin ? dataset_load(fl, begin, end, ds, err) : 0;
    if (rc)
        dp_prefix(err, "%s", option);
    return comm_agree(c, rc, err);
}

int datasets_load_share(const dp_comm *c, const char *spec, const char *option, int need_samples,
                        dp_filelist *fl, dp_dataset *ds, dp_err *err)
{
    if (datasets_open(c, spec, option, fl, err))
        return -1;
    int64_t begin, end;
    filelist_share(fl, c->rank, c->size, &begin, &end);
    int rc = 0;
    if (end <= begin && need_samples)
        rc = dp_fail(err, "%s %s: %lld samples cannot give each of %d ranks at least one; use "
                          "fewer ranks", option, spec, (long long)fl->total, c->size);
    if (comm_agree(c, rc, err))
        return -1;
    return datasets_load_range(c, fl, begin, end, option, ds, err);
}

int datasets_num_classes(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds)
{
    (void)c; /* collective: every rank of c takes part */
    int64_t top = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] > top)
            top = ds->labels[i];
    top = comm_allreduce_max_i64(top) + 1;
    return fl->num_classes > top ? fl->num_classes : (int)top;
}

/* The file holding global sample `index` of fl, and the index within that file. */
static const char *file_of(const dp_filelist *fl, int64_t index, int64_t *within)
{
    int i = 0;
    while (i + 1 < fl->nfiles && index >= fl->counts[i])
        index -= fl->counts[i++];
    *within = index;
    return fl->paths[i];
}

int datasets_check_labels(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds,
                          int classes, const char *option, const char *why, dp_err *err)
{
    int rc = 0;
    for (int64_t i = 0; i < ds->n && rc == 0; i++) {
        if (ds->labels[i] < classes)
            continue;
        int64_t within;
        const char *path = file_of(fl, ds->first + i, &within);
        rc = dp_fail(err, "%s %s: label %d of sample %lld (global index %lld) is not one of the "
                          "model's %d classes (labels 0 to %d, %s)", option, path,
                     ds->labels[i], (long long)within, (long long)(ds->first + i), classes,
                     classes - 1, why);
    }
    return comm_agree(c, rc, err);
}

void datasets_label_counts(const dp_dataset *ds, int64_t lo, int64_t hi, double counts[256])
{
    memset(counts, 0, 256 * sizeof *counts);
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->first + i >= lo && ds->first + i < hi) /* ranks may hold the same file */
            counts[ds->labels[i]] += 1;
    comm_allreduce_sum_double(counts, 256); /* exact: counts stay far below 2^53 */
}

/* "0:5923 1:6742 ... 200:1": the labels that have samples, cut short to fit len. */
static void describe_counts(const double counts[256], char *out, size_t len)
{
    out[0] = 0;
    for (int k = 0; k < 256; k++) {
        if (counts[k] == 0)
            continue;
        size_t used = strlen(out);
        if (used + 24 > len) {
            snprintf(out + used, len - used, " ...");
            return;
        }
        snprintf(out + used, len - used, "%s%d:%.0f", used ? " " : "", k, counts[k]);
    }
}

/* Without --classes and without a num_classes attribute the classes come from the largest
 * label: refuse when that leaves classes without a sample (a stray label, most likely). */
static int refuse_empty_classes(const dp_filelist *fl, const char *spec, const double counts[256],
                                int classes, dp_err *err)
{
    int empty = 0, first_empty = -1;
    for (int k = 0; k < classes; k++)
        if (counts[k] == 0) {
            empty++;
            first_empty = first_empty < 0 ? k : first_empty;
        }
    if (fl->num_classes > 0 || empty == 0)
        return 0;
    char list[600];
    describe_counts(counts, list, sizeof list);
    return dp_fail(err, "--train %s: its largest label makes %d classes, but %d of them have no "
                        "sample (the first: label %d); label counts: %s. A stray label? Fix the "
                        "data, or pass --classes %d to train %d outputs anyway", spec, classes,
                   empty, first_empty, list, classes, classes);
}

int datasets_classes(const dp_comm *c, const dp_class_sources *in, int *classes, dp_err *err)
{
    double counts[256];
    datasets_label_counts(in->train, in->train_lo, in->train_hi, counts);
    int top = 0;
    for (int k = 0; k < 256; k++)
        top = counts[k] > 0 ? k + 1 : top;
    const int declared = in->train_files->num_classes;
    const int test_declared = in->test_files ? in->test_files->num_classes : 0;
    int rc = 0;
    if (in->requested > 0) {
        *classes = in->requested;
        if (declared > in->requested || test_declared > in->requested)
            rc = dp_fail(err, "--classes %d: the %s declares %d classes (num_classes attribute): "
                              "expected at least that many", in->requested,
                         declared > in->requested ? "training data" : "test data",
                         declared > in->requested ? declared : test_declared);
        return comm_agree(c, rc, err);
    }
    *classes = declared > top ? declared : top;
    rc = refuse_empty_classes(in->train_files, in->train_spec, counts, *classes, err);
    if (rc == 0 && test_declared > 0 && test_declared != *classes)
        rc = dp_fail(err, "--test %s declares %d classes (num_classes attribute), the training "
                          "data %s %d; pass --classes N to choose", in->test_spec, test_declared,
                     declared > 0 ? "declare" : "give", *classes);
    return comm_agree(c, rc, err);
}
