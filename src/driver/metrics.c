#include "dptrain/driver/metrics.h"

#include <errno.h>
#include <string.h>

int metrics_open(FILE **f, const char *path, dp_err *err)
{
    *f = fopen(path, "a");
    if (!*f)
        return dp_fail(err, "--metrics %s: cannot open for appending: %s", path, strerror(errno));
    return 0;
}

int metrics_write(FILE *f, const dp_epoch_record *r, dp_err *err)
{
    fprintf(f, "{\"type\":\"epoch\",\"epoch\":%d,\"step\":%ld,\"partial\":%s,\"lr\":%.6g,\"train_loss\":%.6f,"
               "\"train_accuracy\":%.6f,",
            r->epoch, r->step, r->partial ? "true" : "false", r->lr, r->train_loss,
            r->train_accuracy);
    if (r->has_test)
        fprintf(f, "\"test_loss\":%.6f,\"test_accuracy\":%.6f,", r->test_loss, r->test_accuracy);
    else
        fprintf(f, "\"test_loss\":null,\"test_accuracy\":null,");
    fprintf(f, "\"images_per_sec\":%.2f,\"seconds\":%.4f,\"comm_seconds\":%.4f,"
               "\"data_seconds\":%.4f,\"compute_seconds\":%.4f,\"eval_seconds\":%.4f,"
               "\"wall_seconds\":%.3f,\"max_rss_mib\":%.1f,\"ranks\":%d,\"threads\":%d,"
               "\"global_batch\":%d,\"weights_checksum\":\"%016llx\"}\n",
            r->images_per_sec, r->seconds, r->comm_seconds, r->data_seconds, r->compute_seconds,
            r->eval_seconds, r->wall_seconds, r->max_rss_mib, r->ranks, r->threads,
            r->global_batch, r->weights_checksum);
    if (fflush(f) != 0 || ferror(f))
        return dp_fail(err, "--metrics: write failed: %s", strerror(errno));
    return 0;
}
