#include "dptrain/driver/datasets.h"

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
