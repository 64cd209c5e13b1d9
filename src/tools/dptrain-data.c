/* dptrain-data: turn IDX files (MNIST and friends) into HDF5 shards, and inspect shards.
 *
 *   dptrain-data convert --images FILE --labels FILE --out PATH [--shards K] ...
 *   dptrain-data inspect FILE|DIR|LIST
 *
 * All reading and writing goes through the data module, so what `inspect` accepts is
 * exactly what the trainer accepts. */
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/data/data.h"
#include "dptrain/util/h5util.h"
#include "dptrain/util/error.h"
#include "dptrain/data/idx.h"
#include "dptrain/util/sha256.h"

static const char usage_text[] =
    "usage: dptrain-data convert --images FILE --labels FILE --out PATH [options]\n"
    "       dptrain-data inspect FILE|DIR|LIST\n"
    "       dptrain-data --help\n"
    "\n"
    "convert: read an IDX image file and an IDX label file (plain or gzipped; images\n"
    "  [N, H, W] or [N, C, H, W] uint8, labels [N] uint8) and write HDF5 shards with\n"
    "  /images uint8 [n, C, H, W], /labels uint8 [n] and the attributes shard_index,\n"
    "  shard_count, first_index, total_samples, num_classes, source_images,\n"
    "  source_labels, source_images_sha256, source_labels_sha256. Each chunk of\n"
    "  /images and /labels carries a Fletcher-32 checksum, which every read checks.\n"
    "  --images FILE    IDX images\n"
    "  --labels FILE    IDX labels\n"
    "  --out PATH       output directory (created), or a file ending in .h5 with --shards 1\n"
    "  --shards K       number of shards, split as evenly as possible (default 8)\n"
    "  --classes LIST   keep only these labels, e.g. 0-4 or 5,6,7 (labels keep their values;\n"
    "                   num_classes stays max label + 1 of the whole labels file)\n"
    "  --limit N        keep only the first N samples (after --classes)\n"
    "  --name PREFIX    shard file prefix (default train): PREFIX-00000-of-00008.h5\n"
    "\n"
    "inspect: check a directory of shards, one .h5 file, or a comma-separated list of\n"
    "  files the way the trainer does, and print per file the sample count, shape,\n"
    "  attributes, checksums and label histogram, then the totals. It reads every\n"
    "  byte, so it also checks every checksum.\n"
    "\n"
    "Exit status: 0 on success, 1 on a data error, 2 on a usage error.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "dptrain-data: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'dptrain-data --help' for usage)\n");
    return 2;
}

static int data_error(const dp_err *err)
{
    fprintf(stderr, "dptrain-data: error: %s\n", err->msg);
    return 1;
}

/* Parse a whole non-negative decimal integer; -1 when it is not one. */
static long long parse_count(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < 0 || s[0] == '-' || s[0] == '+')
        return -1;
    return v;
}

/* "0-4", "5,6,7" or a mix into keep[256]. */
static int parse_classes(const char *s, int keep[256])
{
    memset(keep, 0, 256 * sizeof *keep);
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -1;
    int any = 0, rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        long long lo, hi;
        if (dash) {
            *dash = '\0';
            lo = parse_count(tok);
            hi = parse_count(dash + 1);
        } else {
            lo = hi = parse_count(tok);
        }
        if (lo < 0 || hi < 0 || lo > hi || hi > 255) {
            rc = -1;
            break;
        }
        for (long long v = lo; v <= hi; v++)
            keep[v] = 1;
        any = 1;
    }
    free(copy);
    return rc == 0 && any ? 0 : -1;
}

static int mkdir_p(const char *dir, dp_err *err)
{
    char *p = strdup(dir);
    if (!p)
        return dp_fail(err, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                dp_fail(err, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            *s = saved;
            if (saved == '\0')
                break;
        }
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dp_fail(err, "%s: exists and is not a directory: expected a directory for the "
                            "shards",
                       dir);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

typedef struct {
    const char *images, *labels, *out, *classes, *name;
    long long shards, limit;
} convert_opts;

static int convert_parse(int argc, char **argv, convert_opts *o)
{
    *o = (convert_opts){NULL, NULL, NULL, NULL, "train", 8, -1};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        const char *eq = strchr(arg, '=');
        char key[64];
        size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2) != 0 || klen >= sizeof key)
            return usage_error("convert: unexpected argument '%s'", arg);
        memcpy(key, arg, klen);
        key[klen] = '\0';
        static const char *const known[] = {"--images", "--labels", "--out",  "--shards",
                                            "--classes", "--limit",  "--name"};
        int found = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            found |= strcmp(key, known[k]) == 0;
        if (!found)
            return usage_error("convert: unknown option '%s'", key);
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage_error("convert: option '%s' needs a value", key);
        }
        if (strcmp(key, "--images") == 0) {
            o->images = val;
        } else if (strcmp(key, "--labels") == 0) {
            o->labels = val;
        } else if (strcmp(key, "--out") == 0) {
            o->out = val;
        } else if (strcmp(key, "--classes") == 0) {
            o->classes = val;
        } else if (strcmp(key, "--name") == 0) {
            if (!*val || strchr(val, '/'))
                return usage_error("convert: --name '%s': expected a file name prefix without "
                                   "'/'",
                                   val);
            o->name = val;
        } else if (strcmp(key, "--shards") == 0) {
            o->shards = parse_count(val);
            if (o->shards < 1 || o->shards > 99999)
                return usage_error("convert: --shards '%s': expected an integer from 1 to "
                                   "99999",
                                   val);
        } else {
            o->limit = parse_count(val);
            if (o->limit < 1)
                return usage_error("convert: --limit '%s': expected a positive integer", val);
        }
    }
    if (!o->images || !o->labels || !o->out)
        return usage_error("convert: %s", "--images, --labels and --out are required");
    if (ends_with(o->out, ".h5") && o->shards != 1)
        return usage_error("convert: --out '%s' names one .h5 file: expected a directory "
                           "when --shards is not 1",
                           o->out);
    return 0;
}


/* The trainer reads every *.h5 in a directory, so files left from an earlier split with a
 * different shard count or prefix would silently join the data set: refuse instead. */
static int check_stale(const char *dir, const char *name, long long shards, dp_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return dp_fail(err, "%s: cannot read directory: %s", dir, strerror(errno));
    char want_tail[32];
    snprintf(want_tail, sizeof want_tail, "-of-%05lld.h5", shards);
    size_t nlen = strlen(name);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        const char *f = e->d_name;
        if (f[0] == '.' || !ends_with(f, ".h5"))
            continue;
        long long index = -1;
        int ours = strncmp(f, name, nlen) == 0 && f[nlen] == '-' && ends_with(f, want_tail) &&
                   strlen(f) == nlen + 1 + 5 + strlen(want_tail);
        if (ours) {
            char digits[6];
            memcpy(digits, f + nlen + 1, 5);
            digits[5] = '\0';
            index = parse_count(digits);
        }
        if (index < 0 || index >= shards) {
            rc = dp_fail(err, "%s: holds %s, which is not one of the %lld shards being written; "
                              "the trainer reads every *.h5 there, so remove it (or choose "
                              "another --out)",
                         dir, f, shards);
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Images [N, (C,) H, W] and labels [N] that agree; their C, H, W. */
static int check_idx_shapes(const convert_opts *o, const dp_idx *im, const dp_idx *lb,
                            int chw[3], dp_err *err)
{
    if (im->ndims != 3 && im->ndims != 4)
        return dp_fail(err, "%s: images have %d dimensions: expected 3 [N, H, W] or 4 "
                            "[N, C, H, W]", o->images, im->ndims);
    if (lb->ndims != 1)
        return dp_fail(err, "%s: labels have %d dimensions: expected 1 [N]", o->labels,
                       lb->ndims);
    if (im->dims[0] != lb->dims[0])
        return dp_fail(err, "%s has %u images but %s has %u labels: expected the same number",
                       o->images, im->dims[0], o->labels, lb->dims[0]);
    int c = im->ndims == 4 ? (int)im->dims[1] : 1;
    int h = (int)im->dims[im->ndims - 2], w = (int)im->dims[im->ndims - 1];
    if (c <= 0 || h <= 0 || w <= 0 || im->dims[im->ndims - 1] > 65535 ||
        im->dims[im->ndims - 2] > 65535 || (im->ndims == 4 && im->dims[1] > 65535))
        return dp_fail(err, "%s: image shape too large: expected C, H, W <= 65535", o->images);
    chw[0] = c;
    chw[1] = h;
    chw[2] = w;
    return 0;
}

/* Keep the samples --classes and --limit select, in place: kept rows move down, never up,
 * so memmove on one buffer is safe. Returns how many are kept; *max_label is over all. */
static int64_t filter_samples(const convert_opts *o, const int keep[256], dp_idx *im,
                              dp_idx *lb, size_t sample, int *max_label)
{
    int64_t n = lb->dims[0], kept = 0;
    *max_label = 0;
    for (int64_t i = 0; i < n; i++)
        if (lb->data[i] > *max_label)
            *max_label = lb->data[i];
    for (int64_t i = 0; i < n; i++) {
        if (o->classes && !keep[lb->data[i]])
            continue;
        if (o->limit > 0 && kept >= o->limit)
            break;
        if (kept != i) {
            memmove(im->data + (size_t)kept * sample, im->data + (size_t)i * sample, sample);
            lb->data[kept] = lb->data[i];
        }
        kept++;
    }
    return kept;
}

/* The output directory (or the single file's directory), checked for stale shards. */
static int prepare_output(const convert_opts *o, int single, dp_err *err)
{
    if (!single)
        return mkdir_p(o->out, err) || check_stale(o->out, o->name, o->shards, err) ? -1 : 0;
    char *dir = strdup(o->out);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    int bad = 0;
    if (!dir) {
        bad = dp_fail(err, "out of memory");
    } else if (slash && slash != dir) {
        *slash = '\0';
        bad = mkdir_p(dir, err);
    }
    free(dir);
    return bad;
}

static int write_shards(const convert_opts *o, int single, const dp_idx *im, const dp_idx *lb,
                        int64_t kept, const int chw[3], dp_shard_attrs *attrs, dp_err *err)
{
    size_t sample = (size_t)chw[0] * (size_t)chw[1] * (size_t)chw[2];
    int64_t first = 0;
    for (long long k = 0; k < o->shards; k++) {
        int64_t count = kept / o->shards + (k < kept % o->shards ? 1 : 0);
        char path[4096];
        if (single)
            snprintf(path, sizeof path, "%s", o->out);
        else
            snprintf(path, sizeof path, "%s%s%s-%05lld-of-%05lld.h5", o->out,
                     ends_with(o->out, "/") ? "" : "/", o->name, k, o->shards);
        attrs->shard_index = (int)k;
        attrs->first_index = first;
        if (shard_write(path, im->data + (size_t)first * sample, lb->data + first, count,
                        chw[0], chw[1], chw[2], attrs, err))
            return -1;
        printf("wrote %s: %lld samples [%lld, %lld) of %lld, %d x %d x %d, %d classes\n", path,
               (long long)count, (long long)first, (long long)(first + count), (long long)kept,
               chw[0], chw[1], chw[2], attrs->num_classes);
        fflush(stdout);
        first += count;
    }
    return 0;
}

/* After reading: checks, checksums, selection, output directory, shards. */
static int convert_idx(const convert_opts *o, const int keep[256], dp_idx *im, dp_idx *lb,
                       dp_err *err)
{
    int chw[3] = {0, 0, 0};
    char images_sha[65], labels_sha[65];
    if (check_idx_shapes(o, im, lb, chw, err) || sha256_file_hex(o->images, images_sha, err) ||
        sha256_file_hex(o->labels, labels_sha, err))
        return -1;
    int max_label;
    size_t sample = (size_t)chw[0] * (size_t)chw[1] * (size_t)chw[2];
    int64_t kept = filter_samples(o, keep, im, lb, sample, &max_label);
    if (kept == 0)
        return dp_fail(err, "%s: no samples left after --classes %s: expected at least one "
                            "label in that set (labels there are 0..%d)",
                       o->labels, o->classes ? o->classes : "(all)", max_label);
    if (o->shards > kept)
        return dp_fail(err, "cannot split %lld samples into %lld shards: expected --shards <= "
                            "the number of samples",
                       (long long)kept, o->shards);
    int single = o->shards == 1 && ends_with(o->out, ".h5");
    if (prepare_output(o, single, err))
        return -1;
    dp_shard_attrs attrs = {
        .shard_count = (int)o->shards,
        .total_samples = kept,
        .num_classes = max_label + 1,
        .source_images = base_name(o->images),
        .source_labels = base_name(o->labels),
        .source_images_sha256 = images_sha,
        .source_labels_sha256 = labels_sha,
    };
    return write_shards(o, single, im, lb, kept, chw, &attrs, err);
}

static int convert(const convert_opts *o)
{
    dp_err err;
    dp_idx im, lb;
    memset(&im, 0, sizeof im);
    memset(&lb, 0, sizeof lb);
    int keep[256];
    if (o->classes && parse_classes(o->classes, keep) != 0)
        return usage_error("convert: --classes '%s': expected labels 0..255 as a list like "
                           "0-4 or 5,6,7",
                           o->classes);
    int status = 0;
    if (idx_read(o->images, &im, &err) || idx_read(o->labels, &lb, &err) ||
        convert_idx(o, keep, &im, &lb, &err))
        status = data_error(&err);
    idx_free(&im);
    idx_free(&lb);
    return status;
}

/* ---- inspect ----------------------------------------------------------------------- */

/* One root attribute as "name = value": integer, float or string, whichever it is. */
static herr_t print_attr(hid_t loc, const char *name, const H5A_info_t *info, void *unused)
{
    (void)info;
    (void)unused;
    int64_t i;
    double d;
    char s[4096];
    dp_err e;
    printf("    %s = ", name);
    if (h5_attr_get_i64(loc, name, &i, &e) == 0)
        printf("%lld\n", (long long)i);
    else if (h5_attr_get_f64(loc, name, &d, &e) == 0)
        printf("%g\n", d);
    else if (h5_attr_get_str(loc, name, s, sizeof s, &e) == 0)
        printf("%s\n", s);
    else
        printf("(unreadable: %s)\n", e.msg);
    return 0;
}

static void print_attributes(const char *path)
{
    h5_quiet q = h5_quiet_begin();
    hid_t file = h5_open(path, H5F_ACC_RDONLY, NULL);
    if (file >= 0) {
        hsize_t idx = 0;
        printf("  attributes:\n");
        H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, NULL);
        if (idx == 0)
            printf("    (none)\n");
        H5Fclose(file);
    }
    h5_quiet_end(q);
}

static void print_histogram(const int64_t hist[256], int num_classes)
{
    int top = num_classes;
    for (int v = 0; v < 256; v++)
        if (hist[v] && v + 1 > top)
            top = v + 1;
    printf("  labels:");
    for (int v = 0; v < top; v++)
        printf(" %d:%lld", v, (long long)hist[v]);
    printf("\n");
}

static int inspect(const char *spec)
{
    dp_err err;
    dp_filelist fl;
    if (filelist_open(spec, &fl, &err))
        return data_error(&err);
    int64_t total_hist[256] = {0}, offset = 0;
    for (int i = 0; i < fl.nfiles; offset += fl.counts[i], i++) {
        printf("%s: %lld samples, C x H x W = %d x %d x %d\n", fl.paths[i],
               (long long)fl.counts[i], fl.c, fl.h, fl.w);
        print_attributes(fl.paths[i]);
        printf("  checksums: %s\n", fl.checksummed[i]
                                        ? "Fletcher-32 on /images and /labels, checked on "
                                          "every read"
                                        : "none: a damaged byte would go unnoticed (dptrain-data "
                                          "convert writes them)");
        dp_dataset ds;
        if (dataset_load(&fl, offset, offset + fl.counts[i], &ds, &err)) {
            filelist_free(&fl);
            return data_error(&err);
        }
        int64_t hist[256] = {0};
        for (int64_t j = 0; j < ds.n; j++)
            hist[ds.labels[j]]++;
        for (int v = 0; v < 256; v++)
            total_hist[v] += hist[v];
        print_histogram(hist, fl.num_classes);
        dataset_free(&ds);
    }
    printf("total: %lld samples in %d file(s), C x H x W = %d x %d x %d, num_classes = %d%s\n",
           (long long)fl.total, fl.nfiles, fl.c, fl.h, fl.w, fl.num_classes,
           fl.num_classes ? "" : " (no attribute)");
    print_histogram(total_hist, fl.num_classes);
    filelist_free(&fl);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
    }
    if (argc < 2)
        return usage_error("%s", "expected a command: convert or inspect");
    if (strcmp(argv[1], "convert") == 0) {
        convert_opts o;
        int rc = convert_parse(argc - 2, argv + 2, &o);
        return rc ? rc : convert(&o);
    }
    if (strcmp(argv[1], "inspect") == 0) {
        if (argc != 3)
            return usage_error("%s", "inspect: expected exactly one FILE, DIR or comma-separated "
                                     "LIST");
        if (argv[2][0] == '-')
            return usage_error("inspect: unknown option '%s'", argv[2]);
        return inspect(argv[2]);
    }
    if (argv[1][0] == '-')
        return usage_error("unknown option '%s'", argv[1]);
    return usage_error("unknown command '%s': expected convert or inspect", argv[1]);
}
