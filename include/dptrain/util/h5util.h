/* h5util: dptrain's HDF5 habits in one place: quiet error handling, lock-free opens and
 * creates, fsync, typed scalar attributes and 1-D datasets. data, persist and the tools
 * use these and nothing of their own.
 *
 * Quiet sections: HDF5 prints its whole error stack to stderr by default, which would
 * bury dptrain's one-line messages. A library function that may fail opens a quiet
 * section (h5_quiet_begin) and closes it on every way out (h5_quiet_end), which puts
 * back exactly the setting it found, so a program's own HDF5 use (or h5py's, or a test's
 * error printer) is left as it was. Sections nest. HDF5 keeps this setting per thread in
 * thread-safe builds and per process otherwise; dptrain calls HDF5 from one thread.
 *
 * No file locking: many ranks read the same shards on shared file systems, where HDF5's
 * locks trip over each other or are not supported at all, and a file dptrain writes is
 * open nowhere else (it is written under a temporary name and renamed). Setting
 * HDF5_USE_FILE_LOCKING in the environment still overrides this (docs: Hardening).
 *
 * Attribute getters return 0 with the value, 1 when the attribute is absent (the value
 * untouched), -1 when it is there but not one value of the asked kind; err then says
 * what was found, without a file name (callers prefix it: dp_prefix). Putters write a
 * scalar attribute and return 0 or -1; the type written is part of the file formats
 * (checkpoint.h, weights.h, data.h), so each putter names it. */
#ifndef DPTRAIN_H5UTIL_H
#define DPTRAIN_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

/* ---- error handling -------------------------------------------------------------- */

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;

/* Turn HDF5's automatic error printing off, returning what was there. */
h5_quiet h5_quiet_begin(void);
/* Put back what h5_quiet_begin found. */
void h5_quiet_end(h5_quiet q);
/* The most specific message on HDF5's error stack into why[256] ("" when none); read it
 * before any other HDF5 call, which clears the stack. Returns why. */
const char *h5_reason(char why[256]);
/* A datatype in words: "uint8", "int64", "float32", "string", ... */
void h5_describe_type(hid_t type, char *buf, size_t len);
/* After a failed H5Dread: HDF5's reason into why[256], as h5_reason; 1 when a chunk's
 * bytes did not match the Fletcher-32 checksum stored with them, why then saying so in
 * words (the caller adds what to do), else 0. */
int h5_read_damaged(char why[256]);

/* ---- files ------------------------------------------------------------------------ */

/* A file-access property list without locking; the caller closes it with H5Pclose. */
hid_t h5_fapl_nolock(void);
/* H5Fopen without locking; flags H5F_ACC_RDONLY or H5F_ACC_RDWR. < 0 on failure, with
 * HDF5's reason in why[256] when why is not NULL. */
hid_t h5_open(const char *path, unsigned flags, char *why);
/* H5Fcreate (truncating) without locking; as h5_open. */
hid_t h5_create(const char *path, char *why);
/* A new file at path built in memory (HDF5's core driver, no backing store): path is
 * created empty at once, so a directory that is missing or not writable shows here, but
 * nothing more reaches it before h5_mem_finish. Writing a file this way keeps every disk
 * error (a full disk) out of HDF5, whose close of a file that failed to write can crash
 * at exit (seen with chunked, checksummed datasets on HDF5 1.10.8). The memory is kept for
 * the next such file (h5mem.c): twice the largest file's size, until the process ends.
 * < 0 on failure, with the reason in why[256] when why is not NULL. */
hid_t h5_mem_create(const char *path, char *why);
/* Write the memory file f over path, fsync it, and close f (whatever happens): 0, or -1
 * with errno set. halfway, when not NULL, is called once half of the bytes are written
 * (the tests' hook for a write that dies halfway). */
int h5_mem_finish(hid_t f, const char *path, void (*halfway)(void));
/* fsync a file, or a directory (to make a rename in it durable): 0, or -1 with errno. */
int h5_fsync_file(const char *path);
int h5_fsync_dir(const char *path);

/* ---- scalar attributes ------------------------------------------------------------ */

int h5_attr_put(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v);
int h5_attr_put_i64(hid_t obj, const char *name, int64_t v);       /* H5T_STD_I64LE */
int h5_attr_put_u64(hid_t obj, const char *name, uint64_t v);      /* H5T_STD_U64LE */
int h5_attr_put_f64(hid_t obj, const char *name, double v);        /* H5T_IEEE_F64LE */
int h5_attr_put_str(hid_t obj, const char *name, const char *s);   /* fixed-length ASCII */
/* Variable-length UTF-8, which h5py reads back as a Python str. */
int h5_attr_put_vstr(hid_t obj, const char *name, const char *s);

int h5_attr_get_i64(hid_t obj, const char *name, int64_t *v, dp_err *err);  /* any integer */
int h5_attr_get_u64(hid_t obj, const char *name, uint64_t *v, dp_err *err); /* non-negative */
int h5_attr_get_f64(hid_t obj, const char *name, double *v, dp_err *err);   /* a float */
/* A fixed- or variable-length string into buf[len]; longer than len - 1 bytes is an
 * error, not a cut. */
int h5_attr_get_str(hid_t obj, const char *name, char *buf, size_t len, dp_err *err);

/* ---- checksummed datasets -------------------------------------------------------- */

/* Create dataset `name` in loc, of `rank` dims of file_type: chunks of about 64 KiB along
 * the first dimension, each with a Fletcher-32 checksum that HDF5 checks on every read
 * (contiguous, without one, where there is nothing to chunk: an empty dimension). Write
 * such files in memory (h5_mem_create). The dataset, or < 0; the caller closes it. */
hid_t h5_create_checksummed(hid_t loc, const char *name, hid_t file_type, int rank,
                            const hsize_t *dims);
/* Whether the open dataset ds carries Fletcher-32 checksums. */
int h5_has_checksum(hid_t ds);
/* Read every checksummed dataset in the open file f: 0 when all match, else 1 with the
 * dataset and why in why[512]. For a file that will be trusted whole (a checkpoint to
 * resume from) before any of it is used. */
int h5_verify_checksums(hid_t f, char why[512]);

/* ---- 1-D datasets ----------------------------------------------------------------- */

/* Create dataset `name` of n elements of file_type in loc from data (mem_type). */
int h5_put_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, hsize_t n,
              const void *data);
/* Read dataset `name`, which must be 1-D with exactly n elements, into data: 0, or -1
 * with what was found in err (absent, not 1-D, another length, unreadable). */
int h5_get_1d(hid_t loc, const char *name, hid_t mem_type, hsize_t n, void *data, dp_err *err);

#endif
