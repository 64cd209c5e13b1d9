/* test_h5util: the HDF5 helper layer. Quiet sections put back exactly the error printing
 * they found (nested, and around every library entry point that may fail: before, weights
 * and checkpoint reading switched it off for the whole process); typed attributes round
 * trip, and an absent attribute, one of another type or size, or a string too long for the
 * buffer are told apart; 1-D datasets round trip and a wrong length is refused; opens
 * and creates report HDF5's reason; fsync of files and directories. */
#include "data_check.h"

#include <math.h>
#include <stdint.h>

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

int main(void)
{
    char *d = check_tempdir("h5util");
    snprintf(dir, sizeof dir, "%s", d);
    test_quiet_sections();
    test_entry_points_restore();
    h5_quiet q = h5_quiet_begin(); /* the helpers' own failures below stay off stderr */
    test_files();
    h5_quiet_end(q);
    CHECK(printer_is_ours());
    check_rmtree(d);
    free(d);
    return check_finish("test_h5util");
}
