/*
 * keyjournal/sys/vfs.h - the file-system table (implementer header).
 *
 * Every file operation the engine makes goes through a kj_vfs: a versioned
 * table of function pointers. The default, kj_vfs_posix(), calls POSIX.
 * Tests and the oracle plug in their own to count, fail or "crash" any
 * operation. A consumer who only opens stores never needs this header.
 *
 * Conventions for every method:
 *   - return KJ_OK (0) or a negative KJ_E* status: KJ_EIO for a generic
 *     failure, KJ_ENOSPC for a full disk, KJ_NOTFOUND when a path does not
 *     exist (open without KJ_VFS_CREATE, unlink, rename source), KJ_EEXIST
 *     for KJ_VFS_EXCL on an existing path, KJ_EBUSY from lock() when the lock
 *     is held elsewhere;
 *   - on failure they may set errno; the engine quotes strerror(errno) in its
 *     detail message;
 *   - paths are NUL-terminated and are the full paths the engine built (store
 *     directory + "/" + file name);
 *   - open() of a file (flags without KJ_VFS_DIRECTORY) must refuse, at
 *     once and without blocking, anything that is not a regular file: a
 *     FIFO, a socket, a device, or a symbolic link (to anything, a regular
 *     file included), with KJ_EIO and, for the detail message, a cause that
 *     names the type. A FIFO in place of a store file must never make an
 *     open wait for a writer (the POSIX VFS opens with O_NONBLOCK |
 *     O_NOFOLLOW | O_NOCTTY, checks fstat() and clears O_NONBLOCK). KJ_EIO
 *     and not KJ_ECORRUPT: the store's data was not found damaged; the file
 *     system holds something a store never writes, which a person must
 *     look at, as for KJ_VFS_DIRECTORY below. Links are refused because the
 *     engine's durability protocol syncs the store directory, which holds
 *     the link and not the entry of its target, and removing or replacing
 *     the file would act on the link only. The one exception: a directory
 *     opened with KJ_VFS_READ alone (the store directory, opened for its
 *     lock; it may be reached through a link);
 *   - the engine calls a VFS from several threads at once, also for one
 *     store handle (readers read run file blocks while a commit writes the
 *     journal, and a background checkpoint writes its run file), but never
 *     two calls at once on the same kj_vfs_file; several store handles may
 *     share one VFS too. A VFS with mutable state shared between files
 *     must lock it.
 *
 * Ownership: open() allocates the kj_vfs_file, close() frees it. list()
 * passes names that are valid only during the callback.
 */
#ifndef KEYJOURNAL_SYS_VFS_H
#define KEYJOURNAL_SYS_VFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open file; each VFS defines its own struct. */
typedef struct kj_vfs_file kj_vfs_file;

/* open() flags */
#define KJ_VFS_READ 0x1u   /* open for reading */
#define KJ_VFS_WRITE 0x2u  /* open for reading and writing */
#define KJ_VFS_CREATE 0x4u /* create if absent */
#define KJ_VFS_EXCL 0x8u   /* with CREATE: fail with KJ_EEXIST if present */
/* The path must name a directory itself, not a symbolic link to one (and
 * not a file): KJ_EIO otherwise. Used to check a directory the engine
 * creates entries in, so a link cannot carry them elsewhere. */
#define KJ_VFS_DIRECTORY 0x10u

/* lock() modes */
#define KJ_VFS_LOCK_SHARED 1
#define KJ_VFS_LOCK_EXCLUSIVE 2

/* Version 2 appended the mapping methods (map .. unmap); the engine
 * accepts tables of version 1 (which end at list) and 2. */
#define KJ_VFS_VERSION 2

typedef struct kj_vfs {
  /* KJ_VFS_VERSION. Fields are only ever appended. */
  int version;
  /* Passed as first argument to every method. */
  void *ctx;

  /* Open path with KJ_VFS_* flags; *out receives the new handle. A path
   * that is not a regular file is refused with KJ_EIO (see the
   * conventions above). */
  int (*open)(void *ctx, const char *path, unsigned flags, kj_vfs_file **out);
  /* Close and free f. Never fails in a way the engine can act on; a
   * returned error is reported but the handle is gone either way. */
  int (*close)(void *ctx, kj_vfs_file *f);
  /* Read up to n bytes at off; *got receives the count (short at EOF). */
  int (*read)(void *ctx, kj_vfs_file *f, void *buf, size_t n, uint64_t off,
              size_t *got);
  /* Write all n bytes at off (short writes are the VFS's job to retry). */
  int (*write)(void *ctx, kj_vfs_file *f, const void *buf, size_t n,
               uint64_t off);
  /* Make the file's data durable (fdatasync). */
  int (*sync)(void *ctx, kj_vfs_file *f);
  /* Set the file's size. */
  int (*truncate)(void *ctx, kj_vfs_file *f, uint64_t size);
  /* Current size in bytes. */
  int (*size)(void *ctx, kj_vfs_file *f, uint64_t *out);
  /* Take a non-blocking advisory lock (KJ_VFS_LOCK_*) that conflicts with
   * the same lock taken through any other open() of the same path, in this
   * process or another. KJ_EBUSY when held elsewhere. Released by close().
   * The engine locks the store directory: it calls open(dir, KJ_VFS_READ)
   * on the directory itself and then lock(); a VFS must support that. */
  int (*lock)(void *ctx, kj_vfs_file *f, int mode);
  /* Atomically rename from to to, replacing to. Durable only after
   * sync_dir() of the directory. */
  int (*rename)(void *ctx, const char *from, const char *to);
  /* Remove a file. Durable only after sync_dir(). */
  int (*unlink)(void *ctx, const char *path);
  /* Make creations, renames and unlinks in dir durable. */
  int (*sync_dir)(void *ctx, const char *dir);
  /* Create a directory (KJ_EEXIST if it exists). */
  int (*mkdir)(void *ctx, const char *dir);
  /* Call fn for every regular entry of dir (not "." or ".."), in any
   * order. A non-zero return from fn stops the listing and is returned. */
  int (*list)(void *ctx, const char *dir,
              int (*fn)(void *arg, const char *name), void *arg);

  /* ---- version 2: writing the journal through a shared mapping ----
   *
   * Optional: all four NULL (or a version 1 table) and the engine writes
   * frames with write(). When they are set, a store opened with
   * KJ_SYNC_NORMAL or KJ_SYNC_OFF appends the frames of its live journal
   * segment by storing them into a mapping of the segment, with no system
   * call per commit (KJ_SYNC_FULL keeps write(): doc/ARCHITECTURE.md,
   * "Mapped writes", says why):
   *
   *   map(f, len, &p)          when a segment is opened for appending,
   *                            and again after each unmap() the engine
   *                            makes before it syncs the segment; f
   *                            holds at least len bytes, all written
   *                            (segments are pre-written with zeros);
   *   map_reserve(f, p, off, n) before storing into [off, off+n) of the
   *                            mapping the first time since the last
   *                            sync() of f (a range may reach past what
   *                            the engine then stores: it reserves in
   *                            steps of 64 KiB);
   *   (the engine stores the bytes at p + off)
   *   map_wrote(f, p, off, n)  after storing them: from then on they are
   *                            the file's bytes [off, off+n), as if
   *                            write(f, p + off, n, off) had returned;
   *   unmap(f, p, len)         before close(f).
   *
   * A failed map() is not an error: the engine writes that segment with
   * write() instead. A failed map_reserve() or map_wrote() is a failed
   * write (the handle is poisoned, with the status and errno's cause).
   * sync() of f must make durable every byte reported by map_wrote()
   * before it began. Bytes stored but not yet reported may or may not
   * reach the file, as the bytes of a write() that has not returned.
   *
   * The POSIX VFS maps the file MAP_SHARED; map_reserve() prefaults the
   * pages writable (madvise MADV_POPULATE_WRITE), so that a page the
   * engine stores into cannot need a read or an allocation that fails
   * (the error comes back as a status, not as a SIGBUS); map_wrote()
   * does nothing: the stored bytes are in the page cache already, where
   * a process crash does not lose them and fdatasync() finds them. */
  int (*map)(void *ctx, kj_vfs_file *f, uint64_t len, void **out);
  int (*map_reserve)(void *ctx, kj_vfs_file *f, void *p, uint64_t off,
                     uint64_t n);
  int (*map_wrote)(void *ctx, kj_vfs_file *f, void *p, uint64_t off,
                   uint64_t n);
  int (*unmap)(void *ctx, kj_vfs_file *f, void *p, uint64_t len);
} kj_vfs;

/* The default VFS: POSIX calls, fdatasync, flock, and the journal written
 * through a shared mapping (version 2 methods). Static; never free it. */
const kj_vfs *kj_vfs_posix(void);

/* The same without the mapping methods: every frame is a pwrite(). For a
 * process that must see a failing disk as a status in every case (see
 * "Mapped writes" in doc/ARCHITECTURE.md: a file system that fails a
 * write fault on a page the engine prefaulted but the kernel has since
 * written back raises SIGBUS), at about 1 us more per commit. */
const kj_vfs *kj_vfs_posix_unmapped(void);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_SYS_VFS_H */
