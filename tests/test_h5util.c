/* test_h5util: the HDF5 helper layer. Quiet sections put back exactly the error printing
 * they found (nested, and around every library entry point that may fail: before, weights
 * and checkpoint reading switched it off for the whole process); typed attributes round
 * trip, and an absent attribute, one of another type or size, or a string too long for the
 * buffer are told apart; 1-D datasets round trip and a wrong length is refused; opens
 * and creates report HDF5's reason; fsync of files and directories. Files built in memory
 * (h5_mem_create) hold exactly their own bytes when their memory is reused after a larger
 * file, when two are built at once, and the reuse spares the second file the first one's
 * page faults. */
#include "data_check.h"

#include <math.h>
#include <stdint.h>
#include <sys/resource.h>

#include "dptrain/data/data.h"
#include "dptrain/net/model.h"
#include "dptrain/persist/checkpoint.h"
#include "dptrain/persist/weights.h"
#include "dptrain/util/h5util.h"

static char dir[4096];
static int printed; /* HDF5 error reports that reached our printer */

static herr_t count_errors(hid_t stack, void *data)
{
    (void)stack;
    (*(int *)data)++;
    return 0;
}

static const char *path_in(const char *name) { return check_path(dir, name); }

/* The error printer is ours, and an HDF5 failure reaches it now. */
static int printer_is_ours(void)
{
    H5E_auto2_t func = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    int before = printed;
    hid_t f = H5Fopen(path_in("never-there.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0)
        H5Fclose(f);
    return func == count_errors && data == &printed && printed == before + 1;
}

static void test_quiet_sections(void)
{
    H5Eset_auto2(H5E_DEFAULT, count_errors, &printed);
    CHECK(printer_is_ours()); /* guard: the probe sees a failure when printing is on */
    h5_quiet outer = h5_quiet_begin();
    h5_quiet inner = h5_quiet_begin();
    int before = printed;
    CHECK(h5_open(path_in("never-there.h5"), H5F_ACC_RDONLY, NULL) < 0);
    h5_quiet_end(inner);
    CHECK(h5_open(path_in("never-there.h5"), H5F_ACC_RDONLY, NULL) < 0);
    CHECK(printed == before); /* quiet inside both sections */
    h5_quiet_end(outer);
    CHECK(printer_is_ours());
}

/* Every library entry point that fails on a bad file leaves the printer as it was and
 * prints nothing through it. */
static void test_entry_points_restore(void)
{
    const char *garbage[] = {path_in("garbage.h5"), path_in("ckpt-00000001.h5")};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(garbage[k], "w");
        CHECK(f != NULL);
        if (f) {
            fputs("not an HDF5 file\n", f);
            fclose(f);
        }
    }
    dp_err err;
    dp_model m;
    CHECK_OK(model_build(&m, "reference", 1, 28, 28, 10, &err), &err);
    dp_filelist fl;
    dp_ckpt_meta meta;
    char found[4200];
    uint8_t pix[784] = {0}, lab = 0;
    int before = printed;
    CHECK_FAILS(weights_load(&m, path_in("garbage.h5"), &err), &err, "not an HDF5 file", NULL);
    CHECK(printer_is_ours());
    CHECK_FAILS(weights_save(&m, path_in("no/dir/w.h5"), NULL, &err), &err, "cannot create", NULL);
    CHECK(printer_is_ours());
    CHECK_FAILS(filelist_open(path_in("garbage.h5"), &fl, &err), &err, "expected an HDF5 file",
                NULL);
    CHECK(printer_is_ours());
    CHECK_FAILS(shard_write(path_in("no/dir/s.h5"), pix, &lab, 1, 1, 28, 28, NULL, &err), &err,
                "cannot write", NULL);
    CHECK(printer_is_ours());
    CHECK_FAILS(checkpoint_read_meta(path_in("garbage.h5"), &meta, &err), &err,
                "cannot open the checkpoint", NULL);
    CHECK(printer_is_ours());
    CHECK_FAILS(checkpoint_read_state(path_in("garbage.h5"), &m, NULL, &err), &err,
                "not an HDF5 file", NULL);
    CHECK(printer_is_ours());
    CHECK(checkpoint_find_latest(dir, found, sizeof found, NULL, 0, &err) == 1);
    CHECK(strstr(err.msg, "1 incomplete or unreadable") != NULL); /* it did open the file */
    CHECK(printer_is_ours());
    /* each printer_is_ours() adds its own one report; nothing else came through */
    CHECK(printed == before + 7);
    model_free(&m);
}

static void test_attributes(hid_t f)
{
    dp_err err;
    CHECK(h5_attr_put_i64(f, "i", -42) == 0);
    CHECK(h5_attr_put_u64(f, "u", UINT64_MAX) == 0);
    CHECK(h5_attr_put_f64(f, "d", 0.1) == 0);
    CHECK(h5_attr_put_str(f, "s", "fixed length") == 0);
    CHECK(h5_attr_put_vstr(f, "v", "variable \xc3\xa9") == 0);
    CHECK(h5_attr_put_i64(f, "i", 1) == -1); /* exists already */
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    char s[64] = "";
    CHECK(h5_attr_get_i64(f, "i", &i, &err) == 0 && i == -42);
    CHECK(h5_attr_get_u64(f, "u", &u, &err) == 0 && u == UINT64_MAX);
    CHECK(h5_attr_get_f64(f, "d", &d, &err) == 0 && d == 0.1);
    CHECK(h5_attr_get_str(f, "s", s, sizeof s, &err) == 0 && strcmp(s, "fixed length") == 0);
    CHECK(h5_attr_get_str(f, "v", s, sizeof s, &err) == 0 &&
          strcmp(s, "variable \xc3\xa9") == 0);
    /* absent: 1, value untouched */
    i = 7;
    CHECK(h5_attr_get_i64(f, "nope", &i, &err) == 1 && i == 7);
    CHECK(h5_attr_get_str(f, "nope", s, sizeof s, &err) == 1);
    /* wrong type or range: -1 with what was found */
    CHECK_FAILS(h5_attr_get_i64(f, "d", &i, &err), &err, "'d' has type float64",
                "expected an integer");
    CHECK_FAILS(h5_attr_get_f64(f, "i", &d, &err), &err, "'i' has type int64", "floating");
    CHECK_FAILS(h5_attr_get_str(f, "i", s, sizeof s, &err), &err, "has type int64",
                "expected a string");
    CHECK_FAILS(h5_attr_get_u64(f, "i", &u, &err), &err, "'i' is -42", "non-negative");
    CHECK_FAILS(h5_attr_get_i64(f, "u", &i, &err), &err, "18446744073709551615",
                "at most 9223372036854775807");
    CHECK_FAILS(h5_attr_get_str(f, "s", s, 5, &err), &err, "string of 12 bytes",
                "at most 4");
    CHECK(i == 7);
    /* an array attribute is not a scalar */
    hsize_t three = 3;
    int64_t vals[3] = {1, 2, 3};
    hid_t space = H5Screate_simple(1, &three, NULL);
    hid_t a = H5Acreate2(f, "arr", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, vals) >= 0);
    H5Aclose(a);
    H5Sclose(space);
    CHECK_FAILS(h5_attr_get_i64(f, "arr", &i, &err), &err, "'arr' has 3 values", "single");
}

static void test_datasets(hid_t f)
{
    dp_err err;
    float w[5] = {1, -2, 3.5f, NAN, 1e-30f}, r[5] = {0};
    int64_t big[6] = {0};
    CHECK(h5_put_1d(f, "w", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 5, w) == 0);
    CHECK_OK(h5_get_1d(f, "w", H5T_NATIVE_FLOAT, 5, r, &err), &err);
    CHECK(memcmp(w, r, sizeof w) == 0);
    CHECK_FAILS(h5_get_1d(f, "w", H5T_NATIVE_INT64, 6, big, &err), &err, "has 5 elements",
                "expected 6");
    CHECK_FAILS(h5_get_1d(f, "nope", H5T_NATIVE_FLOAT, 5, r, &err), &err, "no dataset 'nope'",
                NULL);
    hsize_t dims[2] = {2, 2};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(f, "m", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(space);
    CHECK_FAILS(h5_get_1d(f, "m", H5T_NATIVE_FLOAT, 4, r, &err), &err, "'m' has rank 2", NULL);
}

static void test_files(void)
{
    char why[256] = "";
    CHECK(h5_create(path_in("no/dir/x.h5"), why) < 0);
    CHECK(why[0] != '\0'); /* HDF5's reason, read before the property list was closed */
    printf("  ok, create in a missing directory: %s\n", why);
    why[0] = '\0';
    CHECK(h5_open(path_in("garbage.h5"), H5F_ACC_RDONLY, why) < 0);
    CHECK(why[0] != '\0');
    printf("  ok, open a non-HDF5 file: %s\n", why);
    hid_t f = h5_create(path_in("attrs.h5"), NULL);
    CHECK(f >= 0);
    if (f >= 0) {
        test_attributes(f);
        test_datasets(f);
        CHECK(H5Fclose(f) >= 0);
    }
    /* read back through a read-only open: the attributes are in the file */
    f = h5_open(path_in("attrs.h5"), H5F_ACC_RDONLY, NULL);
    int64_t i = 0;
    dp_err err;
    CHECK(f >= 0 && h5_attr_get_i64(f, "i", &i, &err) == 0 && i == -42);
    if (f >= 0)
        H5Fclose(f);
    CHECK(h5_fsync_file(path_in("attrs.h5")) == 0);
    CHECK(h5_fsync_dir(dir) == 0);
    CHECK(h5_fsync_file(path_in("never-there.h5")) == -1);
    CHECK(h5_fsync_dir(path_in("attrs.h5")) == -1); /* a file is not a directory */
}

/* Fill v[n] with i * scale, and write it to name as a memory file: 0 on success. */
static int mem_file(const char *name, float *v, hsize_t n, float scale)
{
    for (hsize_t i = 0; i < n; i++)
        v[i] = (float)i * scale;
    hid_t f = h5_mem_create(path_in(name), NULL);
    if (f < 0)
        return -1;
    int ok = h5_put_1d(f, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n, v) == 0;
    return h5_mem_finish(f, path_in(name), NULL) == 0 && ok ? 0 : -1;
}

/* Whether name holds exactly n floats i * scale (and is no larger than they need). */
static int mem_file_holds(const char *name, hsize_t n, float scale)
{
    float *v = malloc(sizeof *v * n);
    hid_t f = v ? h5_open(path_in(name), H5F_ACC_RDONLY, NULL) : -1;
    dp_err err;
    int ok = f >= 0 && h5_get_1d(f, "v", H5T_NATIVE_FLOAT, n, v, &err) == 0;
    for (hsize_t i = 0; ok && i < n; i++)
        ok = v[i] == (float)i * scale;
    if (f >= 0)
        H5Fclose(f);
    free(v);
    FILE *fp = fopen(path_in(name), "rb");
    long size = -1;
    if (fp && fseek(fp, 0, SEEK_END) == 0)
        size = ftell(fp);
    if (fp)
        fclose(fp);
    return ok && size > 0 && (size_t)size < sizeof(float) * n + 65536;
}

static long minor_faults(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static void test_memory_files(void)
{
    const hsize_t big = (hsize_t)3 << 20; /* 12 MiB */
    float *v = calloc(big, sizeof *v);
    CHECK(v != NULL);
    if (!v)
        return;
    long before = minor_faults();
    CHECK(mem_file("big1.h5", v, big, 0.5f) == 0);
    long first = minor_faults() - before;
    before = minor_faults();
    CHECK(mem_file("big2.h5", v, big, 0.25f) == 0);
    long second = minor_faults() - before;
    printf("  ok, page faults writing 12 MiB in memory: %ld the first time, %ld the next\n",
           first, second);
    CHECK(first > 3000);       /* at least the image's pages: the probe sees faults */
    CHECK(second < first / 4); /* the memory was kept */
    CHECK(mem_file("small.h5", v, 10, 3.0f) == 0); /* after a larger file: its bytes only */
    CHECK(mem_file_holds("big1.h5", big, 0.5f));
    CHECK(mem_file_holds("big2.h5", big, 0.25f));
    CHECK(mem_file_holds("small.h5", 10, 3.0f));
    /* two files built at once: the second is given other memory */
    hid_t a = h5_mem_create(path_in("a.h5"), NULL), b = h5_mem_create(path_in("b.h5"), NULL);
    float va[4] = {0, 1, 2, 3}, vb[4] = {0, -1, -2, -3};
    CHECK(a >= 0 && b >= 0);
    CHECK(h5_put_1d(a, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, va) == 0);
    CHECK(h5_put_1d(b, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, vb) == 0);
    CHECK(h5_mem_finish(b, path_in("b.h5"), NULL) == 0);
    CHECK(h5_mem_finish(a, path_in("a.h5"), NULL) == 0);
    CHECK(mem_file_holds("a.h5", 4, 1.0f));
    CHECK(mem_file_holds("b.h5", 4, -1.0f));
    CHECK(mem_file("after.h5", v, 1000, 2.0f) == 0 && mem_file_holds("after.h5", 1000, 2.0f));
    free(v);
}

int main(void)
{
    char *d = check_tempdir("h5util");
    snprintf(dir, sizeof dir, "%s", d);
    test_quiet_sections();
    test_entry_points_restore();
    h5_quiet q = h5_quiet_begin(); /* the helpers' own failures below stay off stderr */
    test_files();
    test_memory_files();
    h5_quiet_end(q);
    CHECK(printer_is_ours());
    check_rmtree(d);
    free(d);
    return check_finish("test_h5util");
}
