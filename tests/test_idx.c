/* test_idx: good IDX files of 1 and 3 dimensions (plain, gzipped, in memory), and every
 * header or length error we promise to catch, each with a message naming the file. */
#include "data_check.h"

#include <zlib.h>

#include "dptrain/data/idx.h"

static char dir_path[4096];

static const char *tmp_path(const char *name)
{
    static char buf[4][4200];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir_path, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    if (!f || gzwrite(f, data, (unsigned)len) != (int)len) {
        fprintf(stderr, "%s: gzwrite failed\n", path);
        exit(1);
    }
    gzclose(f);
}

/* Header + data for dims d[0..nd), type 0x08, data byte i = (i * 7 + 3) & 255; extra
 * changes the number of data bytes actually appended (negative: fewer). */
static size_t make_idx(uint8_t *buf, int type, int nd, const uint32_t *d, long extra)
{
    size_t pos = 0, n = 1;
    buf[pos++] = 0;
    buf[pos++] = 0;
    buf[pos++] = (uint8_t)type;
    buf[pos++] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) {
        buf[pos++] = (uint8_t)(d[i] >> 24);
        buf[pos++] = (uint8_t)(d[i] >> 16);
        buf[pos++] = (uint8_t)(d[i] >> 8);
        buf[pos++] = (uint8_t)d[i];
        n *= d[i];
    }
    size_t total = (size_t)((long)n + extra);
    for (size_t i = 0; i < total; i++)
        buf[pos++] = (uint8_t)((i * 7 + 3) & 255);
    return pos;
}

static int data_ok(const dp_idx *idx, size_t n)
{
    if (idx->size != n || !idx->data)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (idx->data[i] != (uint8_t)((i * 7 + 3) & 255))
            return 0;
    return 1;
}

int main(void)
{
    char *dir = check_tempdir("idx");
    snprintf(dir_path, sizeof dir_path, "%s", dir);
    uint8_t buf[4096];
    dp_idx idx;
    dp_err err;

    /* 1-dim labels-like file. */
    uint32_t d1[1] = {10};
    size_t len = make_idx(buf, 0x08, 1, d1, 0);
    write_file(tmp_path("labels.idx"), buf, len);
    CHECK_OK(idx_read(tmp_path("labels.idx"), &idx, &err), &err);
    CHECK(idx.ndims == 1 && idx.dims[0] == 10 && data_ok(&idx, 10));
    idx_free(&idx);
    CHECK(idx.data == NULL && idx.size == 0);

    /* 3-dim images-like file, plain, gzipped, and parsed from memory. */
    uint32_t d3[3] = {5, 4, 3};
    len = make_idx(buf, 0x08, 3, d3, 0);
    write_file(tmp_path("images.idx"), buf, len);
    CHECK_OK(idx_read(tmp_path("images.idx"), &idx, &err), &err);
    CHECK(idx.ndims == 3 && idx.dims[0] == 5 && idx.dims[1] == 4 && idx.dims[2] == 3);
    CHECK(data_ok(&idx, 60));
    idx_free(&idx);

    write_gz(tmp_path("images.idx.gz"), buf, len);
    CHECK_OK(idx_read(tmp_path("images.idx.gz"), &idx, &err), &err);
    CHECK(idx.ndims == 3 && idx.dims[0] == 5 && data_ok(&idx, 60));
    idx_free(&idx);

    CHECK_OK(idx_parse(buf, len, "memory", &idx, &err), &err);
    CHECK(idx.ndims == 3 && data_ok(&idx, 60));
    idx_free(&idx);

    /* 4 dims is the most we accept. */
    uint32_t d4[4] = {2, 3, 2, 2};
    len = make_idx(buf, 0x08, 4, d4, 0);
    CHECK_OK(idx_parse(buf, len, "four", &idx, &err), &err);
    CHECK(idx.ndims == 4 && idx.dims[1] == 3 && data_ok(&idx, 24));
    idx_free(&idx);

    /* Errors: each names the file and says what was wrong. */
    len = make_idx(buf, 0x08, 3, d3, 0);
    buf[0] = 0x1f;
    write_file(tmp_path("badmagic.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("badmagic.idx"), &idx, &err), &err, "badmagic.idx", "magic");

    len = make_idx(buf, 0x0D, 3, d3, 0);
    write_file(tmp_path("float.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("float.idx"), &idx, &err), &err, "float.idx", "0x0d");

    len = make_idx(buf, 0x08, 3, d3, -7);
    write_file(tmp_path("short.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("short.idx"), &idx, &err), &err, "short.idx",
                "expects 60 data bytes, found only 53");
    CHECK_FAILS(idx_parse(buf, len, "short-mem", &idx, &err), &err, "short-mem", "found only 53");
    write_gz(tmp_path("short.idx.gz"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("short.idx.gz"), &idx, &err), &err, "short.idx.gz",
                "found only 53");

    len = make_idx(buf, 0x08, 3, d3, 5);
    write_file(tmp_path("long.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("long.idx"), &idx, &err), &err, "long.idx",
                "expects 60 data bytes, found 65");
    write_gz(tmp_path("long.idx.gz"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("long.idx.gz"), &idx, &err), &err, "long.idx.gz", "found 65");

    uint32_t dz[3] = {5, 0, 3};
    len = make_idx(buf, 0x08, 3, dz, 0);
    write_file(tmp_path("zero.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("zero.idx"), &idx, &err), &err, "zero.idx", "dimension 1 is 0");

    uint32_t d5[5] = {1, 1, 1, 1, 1};
    len = make_idx(buf, 0x08, 5, d5, 0);
    write_file(tmp_path("fivedims.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("fivedims.idx"), &idx, &err), &err, "fivedims.idx",
                "5 dimensions");
    buf[3] = 0;
    CHECK_FAILS(idx_parse(buf, len, "nodims", &idx, &err), &err, "nodims", "0 dimensions");

    /* A header whose sizes multiply past SIZE_MAX must be caught before allocating. */
    static const uint8_t huge[20] = {0, 0, 0x08, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                     0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    memcpy(buf, huge, sizeof huge);
    len = sizeof huge; /* header only: the sizes alone must be rejected */
    write_file(tmp_path("huge.idx"), buf, len);
    CHECK_FAILS(idx_read(tmp_path("huge.idx"), &idx, &err), &err, "huge.idx", "overflow");
    CHECK_FAILS(idx_parse(buf, len, "huge-mem", &idx, &err), &err, "huge-mem", "overflow");

    /* A header cut short, an empty file, a missing file. */
    len = make_idx(buf, 0x08, 3, d3, 0);
    write_file(tmp_path("cuthdr.idx"), buf, 9);
    CHECK_FAILS(idx_read(tmp_path("cuthdr.idx"), &idx, &err), &err, "cuthdr.idx",
                "truncated IDX header");
    write_file(tmp_path("empty.idx"), buf, 0);
    CHECK_FAILS(idx_read(tmp_path("empty.idx"), &idx, &err), &err, "empty.idx", "found 0");
    CHECK_FAILS(idx_read(tmp_path("missing.idx"), &idx, &err), &err, "missing.idx",
                "cannot open");
    /* After a failure the output is empty, so idx_free is safe. */
    CHECK(idx.data == NULL);
    idx_free(&idx);

    check_rmtree(dir);
    free(dir);
    return check_finish("test_idx");
}
