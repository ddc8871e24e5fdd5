/*
 * src/engine/durable.c - files of the store directory (src/engine/durable.h):
 * paths, numbered listings, and the one implementation of "write NAME.tmp,
 * sync, rename to NAME, sync the directory".
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
#include <stdlib.h>

#include "keyjournal/errors.h"

void kj_path(char out[KJ_PATH_MAX], const char *dir, const char *name) {
  snprintf(out, KJ_PATH_MAX, "%s/%s", dir, name);
}

/* ---- listing ---------------------------------------------------------- */

typedef struct num_list {
  int (*parse)(const char *name, uint64_t *no);
  int (*other)(void *arg, const char *name);
  void *arg;
  uint64_t *v;
  size_t n, cap;
} num_list;

static int num_cb(void *arg, const char *name) {
  num_list *l = arg;
  uint64_t no;
  if (!l->parse(name, &no))
    return l->other ? l->other(l->arg, name) : 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    uint64_t *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return KJ_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = no;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int kj_list_numbered(const kj_vfs *vfs, const char *dir,
                     int (*parse)(const char *name, uint64_t *no),
                     int (*other)(void *arg, const char *name), void *arg,
                     uint64_t **v, size_t *n, kj_errbuf *e) {
  num_list l = {parse, other, arg, NULL, 0, 0};
  *v = NULL;
  *n = 0;
  errno = 0;
  int rc = vfs->list(vfs->ctx, dir, num_cb, &l);
  if (rc) {
    free(l.v);
    return kj_err(e, rc, "list %s: %s", dir, kj_err_cause());
  }
  if (l.n)
    qsort(l.v, l.n, sizeof *l.v, cmp_u64);
  *v = l.v;
  *n = l.n;
  return KJ_OK;
}

/* ---- writing a whole file --------------------------------------------- */

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
