/*
 * src/engine/vfs_posix.c - the default VFS: plain POSIX calls.
 *
 * Data syncs are fdatasync(2); directory syncs fsync(2) the directory; the
 * store lock is flock(2), which conflicts between two open() calls even in
 * one process (unlike fcntl locks), so a second handle in the same process
 * gets KJ_EBUSY too.
 *
 * Opens of files refuse, at once and with KJ_EIO, anything that is not a
 * regular file: a FIFO, a socket, a device, a symbolic link (vfs.h).
 *
 * This is the only engine file that calls the system's file functions;
 * every other one reaches files through a kj_vfs, so a test or the oracle
 * can count, fail or "crash" any operation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "keyjournal/errors.h"
#include "keyjournal/sys/vfs.h"

struct kj_vfs_file {
  int fd;
};

static int map_errno(int err) {
  switch (err) {
  case ENOSPC:
  case EDQUOT:
    return KJ_ENOSPC;
  case ENOENT:
    return KJ_NOTFOUND;
  case EEXIST:
    return KJ_EEXIST;
  case EWOULDBLOCK:
    return KJ_EBUSY;
  case ENOMEM:
    return KJ_ENOMEM;
  default:
    return KJ_EIO;
  }
}

static const char *type_name(mode_t m) {
  if (S_ISFIFO(m))
    return "a FIFO";
  if (S_ISSOCK(m))
    return "a socket";
  if (S_ISCHR(m))
    return "a character device";
  if (S_ISBLK(m))
    return "a block device";
  if (S_ISDIR(m))
    return "a directory";
  if (S_ISLNK(m))
    return "a symbolic link";
  if (S_ISREG(m))
    return "a regular file";
  return "of an unknown type";
}

static int open_retry(const char *path, int of) {
  int fd;
  do
    fd = open(path, of, 0600);
  while (fd < 0 && errno == EINTR);
  return fd;
}

/* open(path) failed with ELOOP under O_NOFOLLOW: path is a symbolic link.
 * The one link allowed is a store directory opened read-only to lock it
 * (a store may live behind a link); any other is refused with KJ_EIO,
 * naming what it points to. Returns the descriptor or -1 (errno set). */
static int open_link(const char *path, unsigned flags, int of) {
  struct stat st;
  if (stat(path, &st) != 0) {
    kj_err_note_cause(ELOOP, "is a symbolic link (dangling or looping); "
                             "store files must be regular files in the "
                             "store directory itself");
    return -1;
  }
  if (S_ISDIR(st.st_mode) && !(flags & (KJ_VFS_WRITE | KJ_VFS_CREATE)))
    return open_retry(path, (of & ~O_NOFOLLOW) | O_DIRECTORY);
  kj_err_note_cause(ELOOP,
                    "is a symbolic link to %s; store files must be regular "
                    "files in the store directory itself",
                    type_name(st.st_mode));
  return -1;
}

/* File opens (not KJ_VFS_DIRECTORY) refuse anything but a regular file,
 * at once: O_NONBLOCK keeps the open of a FIFO without a writer from
 * waiting, O_NOCTTY a terminal from becoming the controlling one, and
 * O_NOFOLLOW a link from carrying a store file elsewhere (vfs.h). The one
 * exception is a directory opened read-only: the store directory, opened
 * for its lock. O_NONBLOCK is cleared again once the type is known. */
static int px_open(void *ctx, const char *path, unsigned flags,
                   kj_vfs_file **out) {
  (void)ctx;
  int of = O_CLOEXEC | O_NOFOLLOW;
  of |= (flags & KJ_VFS_WRITE) ? O_RDWR : O_RDONLY;
  if (flags & KJ_VFS_CREATE)
    of |= O_CREAT;
  if (flags & KJ_VFS_EXCL)
    of |= O_EXCL;
  if (flags & KJ_VFS_DIRECTORY)
    of |= O_DIRECTORY;
  else
    of |= O_NONBLOCK | O_NOCTTY;
  kj_vfs_file *f = malloc(sizeof *f);
  if (!f)
    return KJ_ENOMEM;
  int fd = open_retry(path, of);
  if (fd < 0 && errno == ELOOP && !(flags & KJ_VFS_DIRECTORY))
    fd = open_link(path, flags, of);
  else if (fd < 0 && errno == ENXIO && !(flags & KJ_VFS_DIRECTORY)) {
    struct stat st; /* open(2) of a socket */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
      kj_err_note_cause(ENXIO,
                        "is %s, not a regular file; keyjournal opens only "
                        "regular files",
                        type_name(st.st_mode));
    else
      errno = ENXIO;
  }
  if (fd < 0) {
    int err = errno;
    free(f);
    errno = err;
    /* A link or a non-directory where a directory was asked for; a link
     * or a non-regular file where a file was. */
    if (err == ELOOP || err == ENXIO ||
        ((flags & KJ_VFS_DIRECTORY) && err == ENOTDIR))
      return KJ_EIO;
    return map_errno(err);
  }
  if (!(flags & KJ_VFS_DIRECTORY)) {
    struct stat st;
    int fl;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      free(f);
      errno = err;
      return map_errno(err);
    }
    if (!S_ISREG(st.st_mode) &&
        !(S_ISDIR(st.st_mode) && !(flags & (KJ_VFS_WRITE | KJ_VFS_CREATE)))) {
      close(fd);
      free(f);
      kj_err_note_cause(EINVAL,
                        "is %s, not a regular file; keyjournal opens only "
                        "regular files",
                        type_name(st.st_mode));
      return KJ_EIO;
    }
    if ((fl = fcntl(fd, F_GETFL)) == -1 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
      int err = errno;
      close(fd);
      free(f);
      errno = err;
      return map_errno(err);
    }
  }
  f->fd = fd;
  *out = f;
  return KJ_OK;
}

static int px_close(void *ctx, kj_vfs_file *f) {
  (void)ctx;
  int rc = close(f->fd) == 0 ? KJ_OK : map_errno(errno);
  free(f);
  return rc;
}

static int px_read(void *ctx, kj_vfs_file *f, void *buf, size_t n, uint64_t off,
                   size_t *got) {
  (void)ctx;
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return map_errno(errno);
    }
    if (r == 0)
      break;
    done += (size_t)r;
  }
  *got = done;
  return KJ_OK;
}

static int px_write(void *ctx, kj_vfs_file *f, const void *buf, size_t n,
                    uint64_t off) {
  (void)ctx;
  size_t done = 0;
  while (done < n) {
    ssize_t r =
        pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return map_errno(errno);
    }
    done += (size_t)r;
  }
  return KJ_OK;
}

static int px_sync(void *ctx, kj_vfs_file *f) {
  (void)ctx;
  return fdatasync(f->fd) == 0 ? KJ_OK : map_errno(errno);
}

static int px_truncate(void *ctx, kj_vfs_file *f, uint64_t size) {
  (void)ctx;
  return ftruncate(f->fd, (off_t)size) == 0 ? KJ_OK : map_errno(errno);
}

static int px_size(void *ctx, kj_vfs_file *f, uint64_t *out) {
  (void)ctx;
  struct stat st;
  if (fstat(f->fd, &st) != 0)
    return map_errno(errno);
  *out = (uint64_t)st.st_size;
  return KJ_OK;
}

static int px_lock(void *ctx, kj_vfs_file *f, int mode) {
  (void)ctx;
  int op = (mode == KJ_VFS_LOCK_SHARED ? LOCK_SH : LOCK_EX) | LOCK_NB;
  int r;
  do
    r = flock(f->fd, op);
  while (r != 0 && errno == EINTR);
  return r == 0 ? KJ_OK : map_errno(errno);
}

static int px_rename(void *ctx, const char *from, const char *to) {
  (void)ctx;
  return rename(from, to) == 0 ? KJ_OK : map_errno(errno);
}

static int px_unlink(void *ctx, const char *path) {
  (void)ctx;
  return unlink(path) == 0 ? KJ_OK : map_errno(errno);
}

static int px_sync_dir(void *ctx, const char *dir) {
  (void)ctx;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return map_errno(errno);
  int rc = fsync(fd) == 0 ? KJ_OK : map_errno(errno);
  int err = errno;
  close(fd);
  errno = err;
  return rc;
}

static int px_mkdir(void *ctx, const char *dir) {
  (void)ctx;
  return mkdir(dir, 0700) == 0 ? KJ_OK : map_errno(errno);
}

static int px_list(void *ctx, const char *dir,
                   int (*fn)(void *arg, const char *name), void *arg) {
  (void)ctx;
  DIR *d = opendir(dir);
  if (!d)
    return map_errno(errno);
  int rc = KJ_OK;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    rc = fn(arg, de->d_name);
    if (rc)
      break;
    errno = 0;
  }
  if (!rc && errno)
    rc = map_errno(errno);
  closedir(d);
  return rc;
}

/* ---- the journal through a shared mapping (vfs.h, version 2) ---------- */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14; older kernels say EINVAL */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* the same */
#endif

static size_t page_bytes(void) {
  long pg = sysconf(_SC_PAGESIZE);
  return pg > 0 ? (size_t)pg : 4096;
}

/* Maps the file and checks, on its first page, that the kernel can
 * prefault pages (MADV_POPULATE_READ and _WRITE came in the same
 * release; the read one does not dirty the page, and the engine maps a
 * segment again after each of its syncs): without that, a store could
 * only learn of an I/O error as a SIGBUS, so the map is declined and the
 * engine keeps to pwrite (vfs.h: a failed map() is not an error). */
static int px_map(void *ctx, kj_vfs_file *f, uint64_t len, void **out) {
  (void)ctx;
  *out = NULL;
  if (!len || len > SIZE_MAX)
    return KJ_EINVAL;
  void *p =
      mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
  if (p == MAP_FAILED)
    return map_errno(errno);
  size_t pg = page_bytes();
  if (madvise(p, len < pg ? (size_t)len : pg, MADV_POPULATE_READ)) {
    int err = errno;
    munmap(p, (size_t)len);
    errno = err;
    return map_errno(err);
  }
  *out = p;
  return KJ_OK;
}

static int px_map_reserve(void *ctx, kj_vfs_file *f, void *p, uint64_t off,
                          uint64_t n) {
  (void)ctx;
  (void)f;
  size_t pg = page_bytes();
  uint64_t lo = off / pg * pg, hi = off + n;
  int rc;
  do
    rc = madvise((char *)p + lo, (size_t)(hi - lo), MADV_POPULATE_WRITE);
  while (rc && errno == EINTR);
  /* EFAULT: a page could not be faulted in (an I/O error, or the file
   * was cut shorter under us); ENOMEM as itself. */
  return rc ? map_errno(errno) : KJ_OK;
}

static int px_map_wrote(void *ctx, kj_vfs_file *f, void *p, uint64_t off,
                        uint64_t n) {
  (void)ctx, (void)f, (void)p, (void)off, (void)n;
  return KJ_OK; /* the stores are in the page cache already */
}

static int px_unmap(void *ctx, kj_vfs_file *f, void *p, uint64_t len) {
  (void)ctx;
  (void)f;
  return munmap(p, (size_t)len) ? map_errno(errno) : KJ_OK;
}

static const kj_vfs posix_vfs = {
    KJ_VFS_VERSION, NULL,           px_open,      px_close, px_read,
    px_write,       px_sync,        px_truncate,  px_size,  px_lock,
    px_rename,      px_unlink,      px_sync_dir,  px_mkdir, px_list,
    px_map,         px_map_reserve, px_map_wrote, px_unmap,
};

static const kj_vfs posix_unmapped_vfs = {
    KJ_VFS_VERSION, NULL,      px_open,     px_close, px_read,
    px_write,       px_sync,   px_truncate, px_size,  px_lock,
    px_rename,      px_unlink, px_sync_dir, px_mkdir, px_list,
    NULL,           NULL,      NULL,        NULL,
};

const kj_vfs *kj_vfs_posix(void) { return &posix_vfs; }

const kj_vfs *kj_vfs_posix_unmapped(void) { return &posix_unmapped_vfs; }
