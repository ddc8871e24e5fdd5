/*
 * src/engine/durable.h - files of the store directory (internal): their
 * paths, listing the numbered ones (segments, snapshots), and writing a
 * whole file so that it appears complete or not at all.
 *
 * Every file the engine writes in one go - the store header, a snapshot, a
 * new journal segment, a copy's extra bytes - is written the same way
 * (doc/FORMAT.md section 1): into NAME.tmp, synced, renamed to NAME, and
 * the directory synced. A crash leaves either the old state or the new
 * file; a leftover NAME.tmp is never trusted and is removed.
 */
#ifndef KJ_DURABLE_H
#define KJ_DURABLE_H

#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"
#include "keyjournal/sys/vfs.h"

/* Longest path the engine builds (store directory + "/" + file name). */
#define KJ_PATH_MAX 4096

/* out = dir + "/" + name. */
void kj_path(char out[KJ_PATH_MAX], const char *dir, const char *name);

/* The numbers of dir's entries whose names parse() accepts (1 and *no),
 * ascending, into *v (malloc'd, or NULL when none; the caller frees it)
 * and *n. Every other name goes to other(arg, name) when other is not
 * NULL; a non-zero return from it stops the listing and is returned.
 * Errors: the VFS's status or KJ_ENOMEM, as "list DIR: cause". */
int kj_list_numbered(const kj_vfs *vfs, const char *dir,
                     int (*parse)(const char *name, uint64_t *no),
                     int (*other)(void *arg, const char *name), void *arg,
                     uint64_t **v, size_t *n, kj_errbuf *e);

/* kj_durable_begin() flags. */
#define KJ_DURABLE_SYNC_FILE 0x1u /* sync NAME.tmp before the rename */
#define KJ_DURABLE_SYNC_DIR 0x2u  /* sync the directory after it */
#define KJ_DURABLE_SYNC (KJ_DURABLE_SYNC_FILE | KJ_DURABLE_SYNC_DIR)

/* One file being written. */
typedef struct kj_durable {
  const kj_vfs *vfs;
  const char *dir;
  unsigned flags;
  kj_vfs_file *f; /* NAME.tmp, open for writing from begin to commit */
  /* NAME was reached: a failure after it leaves the directory's state
   * unknown (the new file may or may not survive a crash). */
  int renamed;
  char tmp[KJ_PATH_MAX], fin[KJ_PATH_MAX];
} kj_durable;

/* Remove a leftover dir/name.tmp and create it empty, open for writing in
 * d->f. On failure nothing is left to clean up. */
int kj_durable_begin(kj_durable *d, const kj_vfs *vfs, const char *dir,
                     const char *name, unsigned flags, kj_errbuf *e);

/* Write n bytes at off of NAME.tmp. e may be NULL (the caller words the
 * message); errno is left as the VFS set it. */
int kj_durable_write(kj_durable *d, const void *buf, size_t n, uint64_t off,
                     kj_errbuf *e);

/* Finish: sync NAME.tmp (KJ_DURABLE_SYNC_FILE), close it, rename it to
 * NAME, sync the directory (KJ_DURABLE_SYNC_DIR). A failure before the
 * rename removes NAME.tmp; d->renamed tells whether the rename happened. */
int kj_durable_commit(kj_durable *d, kj_errbuf *e);

/* Give up between begin and commit: close and remove NAME.tmp. */
void kj_durable_abort(kj_durable *d);

/* All of the above for the n bytes at buf, fully synced. */
int kj_durable_file(const kj_vfs *vfs, const char *dir, const char *name,
                    const void *buf, size_t n, kj_errbuf *e);

#endif
