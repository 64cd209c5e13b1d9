/* flock_busy: an LD_PRELOAD shim whose flock() fails with EWOULDBLOCK on every *.h5 file,
 * as when another process (a reader elsewhere on a shared file system, or a stale lock of
 * a dead node) holds the lock. HDF5 with file locking on then cannot open or create the
 * file; dptrain, which opens every file without locking, must not notice. Other files
 * (MPI's own) lock as usual. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

static int is_h5(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return strstr(path, ".h5") != NULL;
}

int flock(int fd, int operation)
{
    if (is_h5(fd) && !(operation & LOCK_UN)) {
        errno = EWOULDBLOCK;
        return -1;
    }
    return (int)syscall(SYS_flock, fd, operation);
}
