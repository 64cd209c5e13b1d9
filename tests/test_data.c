/* test_data: shards written by shard_write come back byte for byte through every way of
 * naming them, ranks split them without gaps or overlaps, and every malformed file we
 * know of is rejected with a message naming the file. */
#include "data_check.h"
#include "h5_damage.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/data/data.h"

enum { N = 21, K = 8, C = 2, H = 3, W = 2, SAMPLE = C * H * W, CLASSES = 5 };

static uint8_t images[N * SAMPLE], labels[N];
static char dir[4096];

static const char *path_in(const char *name) { return check_path(dir, name); }

/* Sizes of K shards of N samples, first N % K one larger: 3,3,3,3,3,2,2,2. */
static int64_t shard_size(int k) { return N / K + (k < N % K ? 1 : 0); }
static int64_t shard_first(int k)
{
    int64_t s = 0;
    for (int i = 0; i < k; i++)
        s += shard_size(i);
    return s;
}

static dp_shard_attrs attrs_for(int k, int count, int64_t first, int64_t total)
{
    dp_shard_attrs a = {k, count, first, total, CLASSES, "src-images", "src-labels",
                        "00ff", NULL};
    return a;
}

static void write_shards(const char *sub)
{
    dp_err err;
    char d[4200];
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    mkdir(d, 0777);
    for (int k = 0; k < K; k++) {
        char p[4300];
        snprintf(p, sizeof p, "%s/train-%05d-of-%05d.h5", d, k, K);
        dp_shard_attrs a = attrs_for(k, K, shard_first(k), N);
        CHECK_OK(shard_write(p, images + shard_first(k) * SAMPLE, labels + shard_first(k),
                             shard_size(k), C, H, W, &a, &err),
                 &err);
    }
}

/* A file made with the raw HDF5 API, to produce what shard_write never would. */
typedef struct {
    hid_t images_type;
    int images_rank;
    hsize_t images_dims[4];
    int has_labels;
    hsize_t labels_n;
    const char *float_attr; /* write this attribute as a float, when not NULL */
} raw_spec;

static void write_raw(const char *path, const raw_spec *s)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(s->images_rank, s->images_dims, NULL);
    hid_t ds = H5Dcreate2(f, "images", s->images_type, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    size_t n = 1;
    for (int i = 0; i < s->images_rank; i++)
        n *= s->images_dims[i];
    if (n) {
        double *buf = calloc(n, sizeof *buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (double)(i % 200);
        H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
    }
    H5Dclose(ds);
    H5Sclose(sp);
    if (s->has_labels) {
        sp = H5Screate_simple(1, &s->labels_n, NULL);
        ds = H5Dcreate2(f, "labels", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (s->labels_n) {
            uint8_t *lab = calloc(s->labels_n, 1);
            H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
            free(lab);
        }
        H5Dclose(ds);
        H5Sclose(sp);
    }
    if (s->float_attr) {
        double v = 10.0;
        sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, s->float_attr, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

static int same_bytes(const dp_dataset *ds, int64_t begin, int64_t end)
{
    return ds->n == end - begin && ds->first == begin && ds->c == C && ds->h == H &&
           ds->w == W && memcmp(ds->images, images + begin * SAMPLE, (size_t)(end - begin) * SAMPLE) == 0 &&
           memcmp(ds->labels, labels + begin, (size_t)(end - begin)) == 0;
}

static void test_roundtrip(void)
{
    printf("round trip: directory, single file, comma list\n");
    dp_err err;
    dp_filelist fl;
    dp_dataset ds;
    write_shards("train");
    /* A leftover temp file must not join the set. */
    FILE *junk = fopen(path_in("train/train-00009-of-00010.h5.tmp"), "w");
    if (junk)
        fclose(junk);

    CHECK_OK(filelist_open(path_in("train"), &fl, &err), &err);
    CHECK(fl.nfiles == K && fl.total == N && fl.c == C && fl.h == H && fl.w == W);
    CHECK(fl.num_classes == CLASSES);
    for (int k = 0; k < fl.nfiles && k < K; k++)
        CHECK(fl.counts[k] == shard_size(k));
    CHECK(fl.nfiles > 1 && strstr(fl.paths[1], "train-00001-of-00008.h5") != NULL);
    CHECK_OK(dataset_load(&fl, 0, N, &ds, &err), &err);
    CHECK(same_bytes(&ds, 0, N) && ds.total == N && ds.num_classes == CLASSES);
    dataset_free(&ds);
    CHECK(ds.images == NULL && ds.n == 0);
    /* Ranges that start and end inside shards. */
    int64_t ranges[][2] = {{5, 17}, {0, 1}, {20, 21}, {3, 6}, {2, 3}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        CHECK_OK(dataset_load(&fl, ranges[i][0], ranges[i][1], &ds, &err), &err);
        CHECK(same_bytes(&ds, ranges[i][0], ranges[i][1]));
        dataset_free(&ds);
    }
    CHECK_FAILS(dataset_load(&fl, 4, 4, &ds, &err), &err, "no samples", "empty");
    CHECK_FAILS(dataset_load(&fl, 10, 22, &ds, &err), &err, "outside", "21");

    /* Only overlapping files are read: remove the last shard, load the first half. */
    char last[4300];
    snprintf(last, sizeof last, "%s", fl.paths[K - 1]);
    char moved[4400];
    snprintf(moved, sizeof moved, "%s.away", last);
    CHECK(rename(last, moved) == 0);
    CHECK_OK(dataset_load(&fl, 0, 10, &ds, &err), &err);
    CHECK(same_bytes(&ds, 0, 10));
    dataset_free(&ds);
    CHECK_FAILS(dataset_load(&fl, 0, N, &ds, &err), &err, "train-00007-of-00008.h5", NULL);
    CHECK(rename(moved, last) == 0);

    /* The same set as an explicit comma-separated list. */
    char list[8 * 4300] = "";
    for (int k = 0; k < K; k++) {
        strcat(list, fl.paths[k]);
        if (k + 1 < K)
            strcat(list, ",");
    }
    dp_filelist fl2;
    CHECK_OK(filelist_open(list, &fl2, &err), &err);
    CHECK(fl2.nfiles == K && fl2.total == N);
    CHECK_OK(dataset_load(&fl2, 0, N, &ds, &err), &err);
    CHECK(same_bytes(&ds, 0, N));
    dataset_free(&ds);
    filelist_free(&fl2);
    CHECK(fl2.paths == NULL && fl2.nfiles == 0);

    /* Out of order, or a subset: the shard attributes give it away. */
    char swapped[3 * 4300];
    snprintf(swapped, sizeof swapped, "%s,%s", fl.paths[1], fl.paths[0]);
    CHECK_FAILS(filelist_open(swapped, &fl2, &err), &err, fl.paths[1], "shard_count");
    char subset[3 * 4300];
    snprintf(subset, sizeof subset, "%s,", fl.paths[0]);
    CHECK_FAILS(filelist_open(subset, &fl2, &err), &err, "empty file name", NULL);
    filelist_free(&fl);

    /* One file holding everything. */
    dp_shard_attrs a = attrs_for(0, 1, 0, N);
    CHECK_OK(shard_write(path_in("all.h5"), images, labels, N, C, H, W, &a, &err), &err);
    CHECK(access(path_in("all.h5.tmp"), F_OK) != 0);
    CHECK_OK(filelist_open(path_in("all.h5"), &fl, &err), &err);
    CHECK(fl.nfiles == 1 && fl.total == N && fl.num_classes == CLASSES);
    CHECK_OK(dataset_load(&fl, 0, N, &ds, &err), &err);
    CHECK(same_bytes(&ds, 0, N));
    dataset_free(&ds);
    filelist_free(&fl);

    /* Without attributes at all (as h5py writes it): no checks, num_classes 0. */
    CHECK_OK(shard_write(path_in("plain.h5"), images, labels, 7, C, H, W, NULL, &err), &err);
    CHECK_OK(filelist_open(path_in("plain.h5"), &fl, &err), &err);
    CHECK(fl.total == 7 && fl.num_classes == 0);
    filelist_free(&fl);
    /* Two attribute-free files concatenate in list order. */
    CHECK_OK(shard_write(path_in("plain2.h5"), images + 7 * SAMPLE, labels + 7, 14, C, H, W,
                         NULL, &err),
             &err);
    char two[2 * 4300];
    snprintf(two, sizeof two, "%s,%s", path_in("plain.h5"), path_in("plain2.h5"));
    CHECK_OK(filelist_open(two, &fl, &err), &err);
    CHECK(fl.nfiles == 2 && fl.total == N);
    CHECK_OK(dataset_load(&fl, 5, 12, &ds, &err), &err);
    CHECK(same_bytes(&ds, 5, 12));
    dataset_free(&ds);
    filelist_free(&fl);
}

/* Every rank's range, checked to tile [0, total) in order. */
static void check_tiling(const dp_filelist *fl, int nranks)
{
    int64_t expect = 0, smallest = INT64_MAX, largest = 0;
    for (int r = 0; r < nranks; r++) {
        int64_t b, e;
        filelist_share(fl, r, nranks, &b, &e);
        CHECK(b == expect && e >= b);
        expect = e;
        if (e - b < smallest)
            smallest = e - b;
        if (e - b > largest)
            largest = e - b;
    }
    CHECK(expect == fl->total);
    if (fl->nfiles != nranks)
        CHECK(largest - smallest <= 1);
}

static void test_share(void)
{
    printf("filelist_share\n");
    dp_err err;
    dp_filelist fl;
    dp_dataset ds;
    CHECK_OK(filelist_open(path_in("train"), &fl, &err), &err);
    if (fl.nfiles != K) {
        filelist_free(&fl);
        return;
    }
    /* P == K: rank r owns file r exactly, uneven sizes included. */
    for (int r = 0; r < K; r++) {
        int64_t b, e;
        filelist_share(&fl, r, K, &b, &e);
        CHECK(b == shard_first(r) && e == shard_first(r) + shard_size(r));
    }
    check_tiling(&fl, K);
    /* P = 3 over 21 samples in 8 files: [0,7) [7,14) [14,21), crossing file boundaries. */
    int64_t want[3][2] = {{0, 7}, {7, 14}, {14, 21}};
    for (int r = 0; r < 3; r++) {
        int64_t b, e;
        filelist_share(&fl, r, 3, &b, &e);
        CHECK(b == want[r][0] && e == want[r][1]);
        CHECK_OK(dataset_load(&fl, b, e, &ds, &err), &err);
        CHECK(same_bytes(&ds, b, e));
        dataset_free(&ds);
    }
    for (int p = 1; p <= 30; p++)
        check_tiling(&fl, p);
    /* P > N: some ranks own nothing, and loading nothing is a clear error. */
    int empty = 0;
    for (int r = 0; r < 25; r++) {
        int64_t b, e;
        filelist_share(&fl, r, 25, &b, &e);
        if (b == e) {
            empty++;
            if (empty == 1)
                CHECK_FAILS(dataset_load(&fl, b, e, &ds, &err), &err, "no samples",
                            "more ranks than samples");
        }
    }
    CHECK(empty == 4);
    filelist_free(&fl);

    /* Large totals: no overflow in r * N. */
    int64_t counts[2] = {INT64_C(3000000000000), INT64_C(1000000000001)};
    dp_filelist big = {NULL, counts, 2, 1, 1, 1, counts[0] + counts[1], 0, NULL};
    check_tiling(&big, 7);
    check_tiling(&big, 2);
    check_tiling(&big, 1000003);
    int64_t b, e;
    filelist_share(&big, 1, 2, &b, &e);
    CHECK(b == counts[0] && e == big.total);
    filelist_share(&big, 3, 7, &b, &e);
    CHECK(b == big.total / 7 * 3 + big.total % 7 * 3 / 7);
}

static void test_rejects(void)
{
    printf("malformed inputs\n");
    dp_err err;
    dp_filelist fl;
    dp_dataset ds;

    /* Attributes that disagree with the file's position. */
    dp_shard_attrs a = attrs_for(0, 1, 5, N);
    CHECK_OK(shard_write(path_in("badfirst.h5"), images, labels, N, C, H, W, &a, &err), &err);
    CHECK_FAILS(filelist_open(path_in("badfirst.h5"), &fl, &err), &err, "badfirst.h5",
                "first_index is 5: expected 0");
    a = attrs_for(0, 1, 0, N + 1);
    CHECK_OK(shard_write(path_in("badtotal.h5"), images, labels, N, C, H, W, &a, &err), &err);
    CHECK_FAILS(filelist_open(path_in("badtotal.h5"), &fl, &err), &err, "badtotal.h5",
                "total_samples is 22: expected 21");
    a = attrs_for(1, 1, 0, N);
    CHECK_OK(shard_write(path_in("badindex.h5"), images, labels, N, C, H, W, &a, &err), &err);
    CHECK_FAILS(filelist_open(path_in("badindex.h5"), &fl, &err), &err, "badindex.h5",
                "shard_index is 1: expected 0");
    /* num_classes differing between two files. */
    mkdir(path_in("classes"), 0777);
    a = attrs_for(0, 2, 0, N);
    CHECK_OK(shard_write(path_in("classes/a.h5"), images, labels, 10, C, H, W, &a, &err), &err);
    a = attrs_for(1, 2, 10, N);
    a.num_classes = 7;
    CHECK_OK(shard_write(path_in("classes/b.h5"), images + 10 * SAMPLE, labels + 10, 11, C, H,
                         W, &a, &err),
             &err);
    CHECK_FAILS(filelist_open(path_in("classes"), &fl, &err), &err, "classes/b.h5",
                "num_classes is 7: expected 5");
    /* A directory missing one shard. */
    mkdir(path_in("gap"), 0777);
    a = attrs_for(0, 3, 0, N);
    CHECK_OK(shard_write(path_in("gap/s0.h5"), images, labels, 10, C, H, W, &a, &err), &err);
    a = attrs_for(1, 3, 10, N);
    CHECK_OK(shard_write(path_in("gap/s1.h5"), images + 10 * SAMPLE, labels + 10, 11, C, H, W,
                         &a, &err),
             &err);
    CHECK_FAILS(filelist_open(path_in("gap"), &fl, &err), &err, "shard_count is 3",
                "list has 2");
    /* An attribute of the wrong type (written with the HDF5 API). */
    raw_spec s = {H5T_STD_U8LE, 4, {4, C, H, W}, 1, 4, "num_classes"};
    write_raw(path_in("floatattr.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("floatattr.h5"), &fl, &err), &err, "floatattr.h5",
                "num_classes");

    /* Label out of range for num_classes: found at load time, with the sample index. */
    uint8_t bad_labels[N];
    memcpy(bad_labels, labels, N);
    bad_labels[13] = 7;
    a = attrs_for(0, 1, 0, N);
    CHECK_OK(shard_write(path_in("badlabel.h5"), images, bad_labels, N, C, H, W, &a, &err),
             &err);
    CHECK_OK(filelist_open(path_in("badlabel.h5"), &fl, &err), &err);
    CHECK_FAILS(dataset_load(&fl, 0, N, &ds, &err), &err, "badlabel.h5",
                "label 7 of sample 13");
    CHECK(ds.images == NULL);
    CHECK_OK(dataset_load(&fl, 0, 13, &ds, &err), &err);
    dataset_free(&ds);
    filelist_free(&fl);

    /* Structure errors. */
    s = (raw_spec){H5T_STD_U8LE, 3, {5, H, W}, 1, 4, NULL};
    write_raw(path_in("lengths.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("lengths.h5"), &fl, &err), &err, "lengths.h5",
                "/images has 5 samples but /labels has 4");
    s = (raw_spec){H5T_IEEE_F32LE, 4, {4, C, H, W}, 1, 4, NULL};
    write_raw(path_in("floatimg.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("floatimg.h5"), &fl, &err), &err, "floatimg.h5",
                "float32");
    s = (raw_spec){H5T_STD_I8LE, 4, {4, C, H, W}, 1, 4, NULL};
    write_raw(path_in("signed.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("signed.h5"), &fl, &err), &err, "signed.h5", "int8");
    s = (raw_spec){H5T_STD_U8LE, 4, {4, C, H, W}, 0, 0, NULL};
    write_raw(path_in("nolabels.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("nolabels.h5"), &fl, &err), &err, "nolabels.h5",
                "no dataset '/labels'");
    s = (raw_spec){H5T_STD_U8LE, 2, {4, 6}, 1, 4, NULL};
    write_raw(path_in("rank2.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("rank2.h5"), &fl, &err), &err, "rank2.h5", "rank 2");
    s = (raw_spec){H5T_STD_U8LE, 3, {0, H, W}, 1, 0, NULL};
    write_raw(path_in("emptyset.h5"), &s);
    CHECK_FAILS(filelist_open(path_in("emptyset.h5"), &fl, &err), &err, "emptyset.h5",
                "size 0");
    /* Rank-3 images read as C = 1. */
    s = (raw_spec){H5T_STD_U8LE, 3, {4, H, W}, 1, 4, NULL};
    write_raw(path_in("rank3.h5"), &s);
    CHECK_OK(filelist_open(path_in("rank3.h5"), &fl, &err), &err);
    CHECK(fl.c == 1 && fl.h == H && fl.w == W && fl.total == 4);
    CHECK_OK(dataset_load(&fl, 1, 3, &ds, &err), &err);
    CHECK(ds.n == 2 && ds.c == 1 && ds.images[0] == H * W % 200 && ds.images[1] == H * W % 200 + 1);
    dataset_free(&ds);
    filelist_free(&fl);
    /* Files whose samples differ in shape. */
    char mixed[2 * 4300];
    snprintf(mixed, sizeof mixed, "%s,%s", path_in("plain.h5"), path_in("rank3.h5"));
    CHECK_FAILS(filelist_open(mixed, &fl, &err), &err, "rank3.h5", "expected 2 x 3 x 2");

    /* Not HDF5, not there, nothing in the directory. */
    FILE *f = fopen(path_in("text.h5"), "w");
    if (f) {
        fputs("this is not an HDF5 file\n", f);
        fclose(f);
    }
    CHECK_FAILS(filelist_open(path_in("text.h5"), &fl, &err), &err, "text.h5",
                "expected an HDF5 file");
    CHECK_FAILS(filelist_open(path_in("nothere.h5"), &fl, &err), &err, "nothere.h5",
                "No such file");
    mkdir(path_in("emptydir"), 0777);
    CHECK_FAILS(filelist_open(path_in("emptydir"), &fl, &err), &err, "emptydir",
                "no *.h5 files");
    CHECK_FAILS(filelist_open("", &fl, &err), &err, "empty data path", NULL);
    CHECK(fl.paths == NULL && fl.nfiles == 0);

    /* shard_write refuses nonsense and leaves nothing behind when it cannot write. */
    CHECK_FAILS(shard_write(path_in("zero.h5"), images, labels, 0, C, H, W, NULL, &err), &err,
                "zero.h5", "at least one sample");
    CHECK_FAILS(shard_write(path_in("no/such/dir/x.h5"), images, labels, 3, C, H, W, NULL, &err),
                &err, "x.h5.tmp", NULL);
    CHECK(access(path_in("no/such/dir/x.h5.tmp"), F_OK) != 0);
}

/* shard_write's files carry checksums, which every read checks: a flipped bit in the
 * images or the labels is refused, naming the file; files without them are marked. */
static void test_checksums(void)
{
    printf("checksums: written, marked, and a damaged byte refused\n");
    dp_err err;
    dp_filelist fl;
    dp_dataset ds;
    const char *names[2] = {"images", "labels"};
    for (int i = 0; i < 2; i++) {
        const char *p = path_in(i ? "sum_labels.h5" : "sum_images.h5");
        CHECK_OK(shard_write(p, images, labels, N, C, H, W, NULL, &err), &err);
        CHECK_OK(filelist_open(p, &fl, &err), &err);
        CHECK(fl.nfiles == 1 && fl.checksummed[0] == 1);
        CHECK_OK(dataset_load(&fl, 0, N, &ds, &err), &err);
        dataset_free(&ds);
        filelist_free(&fl);
        CHECK(h5_damage_chunk(p, names[i], 5) == 0);
        CHECK_OK(filelist_open(p, &fl, &err), &err); /* listing reads no chunk */
        CHECK_FAILS(dataset_load(&fl, 0, N, &ds, &err), &err, p,
                    "do not match the checksum stored with them");
        CHECK(strstr(err.msg, names[i]) != NULL);
        filelist_free(&fl);
    }
    /* A file without checksums loads, and says so. */
    raw_spec plain = {H5T_STD_U8LE, 4, {3, C, H, W}, 1, 3, NULL};
    write_raw(path_in("plain.h5"), &plain);
    CHECK_OK(filelist_open(path_in("plain.h5"), &fl, &err), &err);
    CHECK(fl.nfiles == 1 && fl.checksummed[0] == 0);
    filelist_free(&fl);
}

int main(void)
{
    for (int i = 0; i < N * SAMPLE; i++)
        images[i] = (uint8_t)((i * 37 + 11) & 255);
    for (int i = 0; i < N; i++)
        labels[i] = (uint8_t)((i * 3) % CLASSES);
    char *d = check_tempdir("data");
    snprintf(dir, sizeof dir, "%s", d);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the raw writers' own failures stay quiet */
    test_roundtrip();
    test_share();
    test_rejects();
    test_checksums();
    check_rmtree(d);
    free(d);
    return check_finish("test_data");
}
