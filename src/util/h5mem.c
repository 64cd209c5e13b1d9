/* h5mem: files built whole in memory (HDF5's core driver) and written by dptrain itself
 * (h5util.h says why). Their memory is kept from one file to the next: on a virtual
 * machine every page touched for the first time costs a fault, and a checkpoint of 38 MB
 * built in fresh memory twice (HDF5's image, then the copy written out) took 372 ms
 * against 111 ms in memory kept (AMD EPYC Zen 5, 2026-12-07, bench/ckpt_cost.sh,
 * docs/checkpoints.md). The price is that memory, held until the process ends: twice the
 * largest file written. HDF5 is not thread-safe here, so neither is this. */
#include "dptrain/util/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Memory kept for reuse: one file's image at a time. */
typedef struct {
    unsigned char *mem;
    size_t cap;
    int busy; /* lent to an open file */
} arena;

static arena image_arena; /* the core driver's image of the file being built */
static arena copy_arena;  /* the bytes h5_mem_finish writes */

/* At least size bytes of a's memory, NULL when out of memory (a unchanged). Growing moves
 * a large block's pages rather than copying them, and keeps those already touched. */
static void *arena_take(arena *a, size_t size)
{
    if (size > a->cap) {
        unsigned char *bigger = realloc(a->mem, size);
        if (!bigger)
            return NULL;
        a->mem = bigger;
        a->cap = size;
    }
    return a->mem;
}

/* HDF5's file-image callbacks: the core driver grows a new file's memory with
 * image_realloc (from NULL) and gives it back with image_free on close. The first file
 * open at a time gets the arena; any other, the heap. */
static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    (void)op, (void)udata;
    return malloc(size);
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                          void *udata)
{
    (void)op, (void)udata;
    return memcpy(dest, src, size);
}

static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata)
{
    (void)op, (void)udata;
    if (!ptr && !image_arena.busy) {
        void *mem = arena_take(&image_arena, size);
        image_arena.busy = mem != NULL;
        return mem;
    }
    if (ptr && ptr == image_arena.mem && image_arena.busy)
        return arena_take(&image_arena, size);
    return realloc(ptr, size);
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    (void)op, (void)udata;
    if (ptr && ptr == image_arena.mem && image_arena.busy)
        image_arena.busy = 0;
    else
        free(ptr);
    return 0;
}

/* A file-access list for HDF5's core driver: the file in memory (the arena), grown 1 MiB
 * at a time, never written back by HDF5. */
static hid_t fapl_memory(void)
{
    H5FD_file_image_callbacks_t cb = {image_malloc, image_memcpy, image_realloc, image_free,
                                      NULL, NULL, NULL};
    hid_t fapl = h5_fapl_nolock();
    if (fapl >= 0 && (H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
                      H5Pset_file_image_callbacks(fapl, &cb) < 0)) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

hid_t h5_mem_create(const char *path, char *why)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        if (why)
            snprintf(why, 256, "%s", strerror(errno));
        return -1;
    }
    close(fd);
    hid_t fapl = fapl_memory();
    hid_t f = fapl >= 0 ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    if (f < 0 && why)
        h5_reason(why);
    if (fapl >= 0)
        H5Pclose(fapl);
    return f;
}

/* Write all n bytes of buf to fd: 0, or -1 with errno. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

int h5_mem_finish(hid_t f, const char *path, void (*halfway)(void))
{
    ssize_t size = H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    char *image = size > 0 ? arena_take(&copy_arena, (size_t)size) : NULL;
    int rc = image && H5Fget_file_image(f, image, (size_t)size) == size ? 0 : -1;
    H5Fclose(f);
    int saved = rc ? (image ? EIO : ENOMEM) : 0;
    int fd = rc == 0 ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666) : -1;
    size_t half = (size_t)size / 2;
    if (rc == 0 && (fd < 0 || write_all(fd, image, half) != 0))
        rc = -1, saved = errno;
    if (rc == 0 && halfway)
        halfway();
    if (rc == 0 && (write_all(fd, image + half, (size_t)size - half) != 0 || fsync(fd) != 0))
        rc = -1, saved = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -1, saved = errno;
    errno = saved;
    return rc;
}
