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
    fprintf(f, "{\"epoch\":%d,\"step\":%ld,\"partial\":%s,\"lr\":%.6g,\"train_loss\":%.6f,"
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

void progress_draw(FILE *out, int epoch, int epochs, long done, long total, double loss,
                   double images_per_sec)
{
    const int width = 30;
    int filled = total > 0 ? (int)(width * done / total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    if (epochs > 0)
        fprintf(out, "\repoch %d/%d [%s] %ld/%ld loss %.4f %.0f img/s ", epoch, epochs, bar, done,
                total, loss, images_per_sec);
    else
        fprintf(out, "\repoch %d [%s] %ld/%ld loss %.4f %.0f img/s ", epoch, bar, done, total,
                loss, images_per_sec);
    fflush(out);
}

void progress_clear(FILE *out)
{
    fprintf(out, "\r%*s\r", 79, "");
    fflush(out);
}
