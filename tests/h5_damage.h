/* h5_damage: flip one bit inside a dataset's first stored chunk, as a disk, a copy or a
 * transfer might, for the tests of the checksums HDF5 keeps with each chunk. */
#ifndef DPTRAIN_TESTS_H5_DAMAGE_H
#define DPTRAIN_TESTS_H5_DAMAGE_H

#include <hdf5.h>
#include <stdio.h>

/* Flip a bit of byte `at` of the first chunk of dataset `name` in the file at path:
 * 0, or -1 when the file, the dataset or its chunk is not there. */
static int h5_damage_chunk(const char *path, const char *name, hsize_t at)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (ds >= 0) {
        hid_t space = H5Dget_space(ds);
        H5Dget_chunk_info(ds, space, 0, NULL, NULL, &addr, &size);
        H5Sclose(space);
        H5Dclose(ds);
    }
    if (f >= 0)
        H5Fclose(f);
    FILE *fp = addr != HADDR_UNDEF && at < size ? fopen(path, "r+b") : NULL;
    int c = fp && fseek(fp, (long)(addr + at), SEEK_SET) == 0 ? fgetc(fp) : EOF;
    int ok = c != EOF && fseek(fp, (long)(addr + at), SEEK_SET) == 0 && fputc(c ^ 4, fp) != EOF;
    if (fp)
        ok &= fclose(fp) == 0;
    return ok ? 0 : -1;
}

#endif
