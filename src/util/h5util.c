#include "dptrain/util/h5util.h"

hid_t h5_fapl_nolock(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

hid_t h5_open_readonly(const char *path)
{
    hid_t fapl = h5_fapl_nolock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}
