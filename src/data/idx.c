/* idx: read IDX files (MNIST format) of type uint8, plain or gzipped.
 *
 * The file is streamed through zlib's gzread, which passes plain files through
 * unchanged, so one code path serves both. The header is validated before any data is
 * allocated, and the data length must match the header exactly: a truncated download
 * or a file with trailing bytes is an error, not a silently shorter data set. */
#include "dptrain/data/idx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08

static const char *idx_type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

/* Check the 4-byte prefix (magic, type, rank); on success *ndims is set. */
static int check_prefix(const uint8_t p[4], const char *name, int *ndims, dp_err *err)
{
    if (p[0] != 0 || p[1] != 0)
        return dp_fail(err,
                       "%s: not an IDX file: expected magic bytes 00 00, found %02x %02x "
                       "(is it a different format, or gzipped twice?)",
                       name, p[0], p[1]);
    if (p[2] != IDX_TYPE_UBYTE)
        return dp_fail(err, "%s: IDX data type 0x%02x (%s) is not supported: expected 0x08 "
                            "(unsigned byte)",
                       name, p[2], idx_type_name(p[2]));
    if (p[3] < 1 || p[3] > IDX_MAX_DIMS)
        return dp_fail(err, "%s: IDX header has %d dimensions: expected 1 to %d", name, p[3],
                       IDX_MAX_DIMS);
    *ndims = p[3];
    return 0;
}

/* Decode the big-endian sizes and compute the data length, guarding against overflow. */
static int decode_dims(const uint8_t *p, int ndims, const char *name, dp_idx *out,
                       dp_err *err)
{
    size_t size = 1;
    out->ndims = ndims;
    for (int i = 0; i < ndims; i++) {
        uint32_t d = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                     (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
        if (d == 0)
            return dp_fail(err, "%s: IDX dimension %d is 0: expected every dimension > 0",
                           name, i);
        if (size > SIZE_MAX / d)
            return dp_fail(err, "%s: IDX dimensions overflow the addressable size "
                                "(dimension %d = %u)",
                           name, i, d);
        out->dims[i] = d;
        size *= d;
    }
    for (int i = ndims; i < IDX_MAX_DIMS; i++)
        out->dims[i] = 0;
    out->size = size;
    return 0;
}

static void format_shape(const dp_idx *idx, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < idx->ndims && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%u", i ? " x " : "", idx->dims[i]);
}

static int length_error(const dp_idx *idx, const char *name, size_t found, int trailing,
                        dp_err *err)
{
    char shape[96];
    format_shape(idx, shape, sizeof shape);
    if (trailing)
        return dp_fail(err, "%s: trailing bytes after the data: header [%s] expects %zu data "
                            "bytes, found %zu",
                       name, shape, idx->size, found);
    return dp_fail(err, "%s: truncated: header [%s] expects %zu data bytes, found only %zu "
                        "(incomplete download?)",
                   name, shape, idx->size, found);
}

int idx_parse(const uint8_t *buf, size_t len, const char *name, dp_idx *out, dp_err *err)
{
    memset(out, 0, sizeof *out);
    if (len < 4)
        return dp_fail(err, "%s: too short for an IDX header: expected at least 4 bytes, "
                            "found %zu",
                       name, len);
    int ndims = 0;
    if (check_prefix(buf, name, &ndims, err))
        return -1;
    size_t header = 4 + 4 * (size_t)ndims;
    if (len < header)
        return dp_fail(err, "%s: truncated IDX header: expected %zu bytes for %d dimensions, "
                            "found %zu",
                       name, header, ndims, len);
    dp_idx tmp;
    if (decode_dims(buf + 4, ndims, name, &tmp, err))
        return -1;
    size_t found = len - header;
    if (found != tmp.size)
        return length_error(&tmp, name, found, found > tmp.size, err);
    tmp.data = dp_calloc(tmp.size, 1, "IDX data", err);
    if (!tmp.data)
        return dp_prefix(err, "%s", name);
    memcpy(tmp.data, buf + header, tmp.size);
    *out = tmp;
    return 0;
}

/* Read up to len bytes; returns the count read, or -1 on a zlib/IO error. */
static long long gz_read_full(gzFile f, uint8_t *dst, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t want = len - done;
        if (want > (size_t)INT_MAX / 2)
            want = (size_t)INT_MAX / 2;
        int got = gzread(f, dst + done, (unsigned)want);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        done += (size_t)got;
    }
    return (long long)done;
}

static int gz_fail(gzFile f, const char *path, const char *what, dp_err *err)
{
    int code = 0;
    const char *msg = gzerror(f, &code);
    if (code == Z_ERRNO)
        msg = strerror(errno);
    size_t plen = strlen(path); /* zlib puts the path in front; we already do */
    if (strncmp(msg, path, plen) == 0 && msg[plen] == ':' && msg[plen + 1] == ' ')
        msg += plen + 2;
    return dp_fail(err, "%s: error while reading %s: %s", path, what, msg);
}

int idx_read(const char *path, dp_idx *out, dp_err *err)
{
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return dp_fail(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1 << 17);

    dp_idx tmp;
    memset(&tmp, 0, sizeof tmp);
    uint8_t header[4 + 4 * IDX_MAX_DIMS];
    long long got = gz_read_full(f, header, 4);
    if (got < 0) {
        gz_fail(f, path, "the IDX header", err);
        goto fail;
    }
    if (got < 4) {
        dp_fail(err, "%s: too short for an IDX header: expected at least 4 bytes, found %lld",
                path, got);
        goto fail;
    }
    int ndims = 0;
    if (check_prefix(header, path, &ndims, err))
        goto fail;
    got = gz_read_full(f, header + 4, 4 * (size_t)ndims);
    if (got < 0) {
        gz_fail(f, path, "the IDX header", err);
        goto fail;
    }
    if (got < 4 * ndims) {
        dp_fail(err, "%s: truncated IDX header: expected %d bytes for %d dimensions, found %lld",
                path, 4 + 4 * ndims, ndims, 4 + got);
        goto fail;
    }
    if (decode_dims(header + 4, ndims, path, &tmp, err))
        goto fail;
    tmp.data = dp_calloc(tmp.size, 1, "IDX data", err);
    if (!tmp.data) {
        dp_prefix(err, "%s", path);
        goto fail;
    }
    got = gz_read_full(f, tmp.data, tmp.size);
    if (got < 0) {
        gz_fail(f, path, "the IDX data", err);
        goto fail;
    }
    if ((size_t)got < tmp.size) {
        length_error(&tmp, path, (size_t)got, 0, err);
        goto fail;
    }
    /* Count what follows so the message can say how much is extra. */
    size_t extra = 0;
    uint8_t probe[4096];
    for (;;) {
        long long more = gz_read_full(f, probe, sizeof probe);
        if (more < 0) {
            gz_fail(f, path, "past the IDX data", err);
            goto fail;
        }
        extra += (size_t)more;
        if ((size_t)more < sizeof probe)
            break;
    }
    if (extra > 0) {
        length_error(&tmp, path, tmp.size + extra, 1, err);
        goto fail;
    }
    gzclose(f);
    *out = tmp;
    return 0;

fail:
    free(tmp.data);
    gzclose(f);
    return -1;
}

void idx_free(dp_idx *idx)
{
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
