#include "dptrain/driver/metrics.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The "model name" of /proc/cpuinfo's first processor into name[n]; "unknown" without one. */
static void cpu_model(char *name, size_t n)
{
    snprintf(name, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        colon += 1 + strspn(colon + 1, " \t");
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(name, n, "%s", colon);
        break;
    }
    if (f)
        fclose(f);
}

/* Keep a string plain for JSON: no quote, backslash or control character to escape. */
static void json_plain(char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            *s = '?';
}

/* The host record: which machine and how busy it was as this run started, so that every
 * figure from the file can say so (the sweep report marks runs started under load). The
 * load averages are the kernel's (/proc/loadavg: runnable tasks, 1, 5 and 15 min); other
 * work on the machine, not this run, which has not started computing yet. */
static void write_host_record(FILE *f)
{
    char model[256], host[256] = "unknown";
    cpu_model(model, sizeof model);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    json_plain(model);
    json_plain(host);
    double load[3];
    FILE *l = fopen("/proc/loadavg", "r");
    int have = l && fscanf(l, "%lf %lf %lf", &load[0], &load[1], &load[2]) == 3;
    if (l)
        fclose(l);
    char when[32] = "";
    time_t now = time(NULL);
    struct tm utc;
    if (gmtime_r(&now, &utc))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    fprintf(
        f, "{\"type\":\"host\",\"time\":\"%s\",\"host\":\"%s\",\"cpu_model\":\"%s\",\"cores\":%ld,",
        when, host, model, sysconf(_SC_NPROCESSORS_ONLN));
    if (have)
        fprintf(f, "\"load_start\":[%.2f,%.2f,%.2f]}\n", load[0], load[1], load[2]);
    else
        fprintf(f, "\"load_start\":null}\n");
}

int metrics_open(FILE **f, const char *path, dp_err *err)
{
    *f = fopen(path, "a");
    if (!*f)
        return dp_fail(err, "--metrics %s: cannot open for appending: %s", path, strerror(errno));
    write_host_record(*f);
    if (fflush(*f) != 0 || ferror(*f))
        return dp_fail(err, "--metrics: write failed: %s", strerror(errno));
    return 0;
}

int metrics_write(FILE *f, const dp_epoch_record *r, dp_err *err)
{
    fprintf(f,
            "{\"type\":\"epoch\",\"epoch\":%d,\"step\":%ld,\"partial\":%s,\"lr\":%.6g,\"train_"
            "loss\":%.6f,"
            "\"train_accuracy\":%.6f,",
            r->epoch, r->step, r->partial ? "true" : "false", r->lr, r->train_loss,
            r->train_accuracy);
    if (r->has_test)
        fprintf(f, "\"test_loss\":%.6f,\"test_accuracy\":%.6f,", r->test_loss, r->test_accuracy);
    else
        fprintf(f, "\"test_loss\":null,\"test_accuracy\":null,");
    fprintf(f,
            "\"images_per_sec\":%.2f,\"seconds\":%.4f,\"comm_seconds\":%.4f,"
            "\"data_seconds\":%.4f,\"compute_seconds\":%.4f,\"eval_seconds\":%.4f,"
            "\"wall_seconds\":%.3f,\"max_rss_mib\":%.1f,\"ranks\":%d,\"threads\":%d,"
            "\"global_batch\":%d,\"weights_checksum\":\"%016llx\"}\n",
            r->images_per_sec, r->seconds, r->comm_seconds, r->data_seconds, r->compute_seconds,
            r->eval_seconds, r->wall_seconds, r->max_rss_mib, r->ranks, r->threads, r->global_batch,
            r->weights_checksum);
    if (fflush(f) != 0 || ferror(f))
        return dp_fail(err, "--metrics: write failed: %s", strerror(errno));
    return 0;
}

int metrics_write_balance(FILE *f, int ranks, int every, const int64_t *v, int threads,
                          const double *shares, dp_err *err)
{
    fprintf(f, "{\"type\":\"balance\",\"every\":%d,\"ranks\":%d,\"samples\":[", every, ranks);
    for (int r = 0; r < ranks; r++)
        fprintf(f, "%s%lld", r ? "," : "", (long long)v[3 * r]);
    fprintf(f, "],\"samples_per_sec\":[");
    for (int r = 0; r < ranks; r++)
        fprintf(f, "%s%lld", r ? "," : "", (long long)v[3 * r + 1]);
    fprintf(f, "]");
    if (threads > 0) {
        fprintf(f, ",\"thread_shares\":[");
        for (int t = 0; t < threads; t++)
            fprintf(f, "%s%.4f", t ? "," : "", shares[t]);
        fprintf(f, "],\"thread_least\":[");
        for (int r = 0; r < ranks; r++)
            fprintf(f, "%s%.4f", r ? "," : "", (double)v[3 * r + 2] * 1e-6);
        fprintf(f, "]");
    }
    fprintf(f, "}\n");
    if (fflush(f) != 0 || ferror(f))
        return dp_fail(err, "--metrics: writing the balance record failed: %s", strerror(errno));
    return 0;
}
