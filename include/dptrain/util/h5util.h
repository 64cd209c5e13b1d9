/* h5util: the file-access settings every HDF5 file of dptrain is opened or created with.
 *
 * No file locking: many ranks read the same shards on shared file systems, where HDF5's
 * locks trip over each other or are not supported at all, and a file dptrain writes is
 * open nowhere else (it is written under a temporary name and renamed). Setting
 * HDF5_USE_FILE_LOCKING in the environment still overrides this (README "Hardening"). */
#ifndef DPTRAIN_H5UTIL_H
#define DPTRAIN_H5UTIL_H

#include <hdf5.h>

/* A file-access property list without locking; the caller closes it with H5Pclose. */
hid_t h5_fapl_nolock(void);
/* H5Fopen(path, read-only) without locking; < 0 on failure (HDF5's error stack may have
 * been cleared: callers that report HDF5's own reason use h5_fapl_nolock themselves). */
hid_t h5_open_readonly(const char *path);

#endif
