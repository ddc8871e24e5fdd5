/*
 * src/engine/durable.c - the one implementation of "write NAME.tmp, sync,
 * rename to NAME, sync the directory" (src/engine/durable.h).
 *
 * This file owns the order of those steps and their cleanup: NAME.tmp is
 * removed after any failure before the rename and never after it (NAME
 * may then already be the new file). Every step goes through the store's
 * VFS, and every failure is worded here: "create", "write", "sync" and
 * "rename" name NAME.tmp, "sync directory" the directory. It depends only
 * on the VFS table and errors.c.
 */
#include "durable.h"

#include <errno.h>
#include <stdio.h>

#include "keyjournal/errors.h"

void kj_path(char out[KJ_PATH_MAX], const char *dir, const char *name) {
  snprintf(out, KJ_PATH_MAX, "%s/%s", dir, name);
}

int kj_durable_begin(kj_durable *d, const kj_vfs *vfs, const char *dir,
                     const char *name, unsigned flags, kj_errbuf *e) {
  d->vfs = vfs;
  d->dir = dir;
  d->flags = flags;
  d->f = NULL;
  d->renamed = 0;
  kj_path(d->fin, dir, name);
  snprintf(d->tmp, sizeof d->tmp, "%s/%s.tmp", dir, name);
  vfs->unlink(vfs->ctx, d->tmp); /* a leftover of a crash; absent is fine */
  errno = 0;
  int rc = vfs->open(vfs->ctx, d->tmp, KJ_VFS_WRITE | KJ_VFS_CREATE, &d->f);
  if (rc) {
    d->f = NULL;
    return kj_err(e, rc, "create %s: %s", d->tmp, kj_err_cause());
  }
  return KJ_OK;
}

int kj_durable_write(kj_durable *d, const void *buf, size_t n, uint64_t off,
                     kj_errbuf *e) {
  errno = 0;
  int rc = d->vfs->write(d->vfs->ctx, d->f, buf, n, off);
  if (rc && e)
    kj_err(e, rc, "write %s: %s", d->tmp, kj_err_cause());
  return rc;
}

void kj_durable_abort(kj_durable *d) {
  if (d->f)
    d->vfs->close(d->vfs->ctx, d->f);
  d->f = NULL;
  if (!d->renamed)
    d->vfs->unlink(d->vfs->ctx, d->tmp);
}

int kj_durable_commit(kj_durable *d, kj_errbuf *e) {
  const kj_vfs *v = d->vfs;
  errno = 0;
  int rc = (d->flags & KJ_DURABLE_SYNC_FILE) ? v->sync(v->ctx, d->f) : KJ_OK;
  if (rc) {
    kj_err(e, rc, "sync %s: %s", d->tmp, kj_err_cause());
    kj_durable_abort(d);
    return rc;
  }
  v->close(v->ctx, d->f);
  d->f = NULL;
  errno = 0;
  if ((rc = v->rename(v->ctx, d->tmp, d->fin))) {
    kj_err(e, rc, "rename %s: %s", d->tmp, kj_err_cause());
    kj_durable_abort(d);
    return rc;
  }
  d->renamed = 1;
  errno = 0;
  if ((d->flags & KJ_DURABLE_SYNC_DIR) && (rc = v->sync_dir(v->ctx, d->dir)))
    return kj_err(e, rc, "sync directory %s: %s", d->dir, kj_err_cause());
  return KJ_OK;
}

int kj_durable_file(const kj_vfs *vfs, const char *dir, const char *name,
                    const void *buf, size_t n, kj_errbuf *e) {
  kj_durable d;
  int rc = kj_durable_begin(&d, vfs, dir, name, KJ_DURABLE_SYNC, e);
  if (rc)
    return rc;
  if ((rc = kj_durable_write(&d, buf, n, 0, e))) {
    kj_durable_abort(&d);
    return rc;
  }
  return kj_durable_commit(&d, e);
}
