/*
 * oracle/faultvfs.c - the fault-injecting VFS (ora_fault_vfs of
 * oracle/oracle.h): a model of a disk with a page cache, over the POSIX VFS.
 *
 * The real files hold only DURABLE data. Each file (a node, found by path,
 * shared by every handle on it, following renames) carries in memory the
 * list of its pending (unsynced) writes and truncates; reads and size see
 * the real bytes with the pending list applied over them, and sync() writes
 * the list to the real file and clears it. Creations, renames and unlinks
 * happen on the real file system at once, and so do mkdirs, each with an
 * undo entry (the replaced or removed file's durable bytes are kept in
 * memory) in a log that sync_dir() of the entry's directory clears.
 * ora_fault_vfs_crash() then plays power loss: each pending write is kept,
 * dropped, torn or garbled per the pattern and written out, and log
 * entries are undone (newest first; an undone mkdir takes its contents
 * with it): a suffix of each directory's (GARBAGE: a file system that
 * journals a directory's metadata in order), or any entries as long as
 * those on one name stay in order (RANDOM: nothing orders them without a
 * sync of the directory), leaving exactly what a disk could hold. A sync
 * makes durable the writes issued before it began (with a sync window,
 * later ones stay pending). No real fsync is ever made: durability is the
 * model's, which keeps campaigns fast.
 *
 * Every call counts as one operation. set_crash_at() kills the "process"
 * at an operation: that call and every later one fail with KJ_EIO and
 * change nothing. ora_fault_vfs_fail() fails the Nth call of a method, once
 * or from then on. One mutex guards everything (released only during a
 * sync window).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyjournal/errors.h"
#include "oracle.h"

#define SECTOR 512u

enum { POP_WRITE, POP_TRUNC };
enum { DOP_CREATE, DOP_RENAME, DOP_UNLINK, DOP_MKDIR };

typedef struct pop {
  uint64_t seq; /* order of issue, over the whole VFS */
  int kind;
  uint64_t off; /* write offset, or the new size of a truncate */
  size_t len;
  uint8_t *data;
  struct pop *next;
} pop;

typedef struct node {
  char *path; /* NULL once unlinked or replaced */
  int refs;   /* open handles */
  pop *head, *tail;
  struct node *next;
} node;

struct kj_vfs_file {
  kj_vfs_file *base;
  node *n; /* NULL for a directory handle */
  int writable;
  /* map(): a private copy of the file's first map_len logical bytes;
   * stores into it reach the model only through map_wrote(), as a write
   * (so a crash or a fault sees them exactly as it sees a write()). */
  uint8_t *map;
  uint64_t map_len;
};

typedef struct dop {
  int kind;
  char *dir;      /* directory whose sync makes it durable */
  char *a, *b;    /* path; rename: from, to */
  uint8_t *saved; /* durable bytes of the removed / replaced file */
  size_t saved_len;
  int has_saved;
  int undo; /* chosen to be undone by the crash in progress */
  struct dop *prev, *next;
} dop;

typedef struct arm {
  int armed, status, persistent;
  uint64_t nth, seen;
} arm;

struct ora_fault_vfs {
  kj_vfs vfs;
  const kj_vfs *base;
  pthread_mutex_t mu;
  uint64_t rng;
  node *nodes;
  dop *dhead, *dtail;
  uint64_t ops, crash_at, injected;
  int dead;
  uint64_t pop_seq;    /* last pop's seq */
  unsigned sync_usec;  /* simulated duration of a file sync */
  unsigned fault_usec; /* the same, of an injected sync fault */
  uint64_t die_syncs;  /* die after this many more file syncs (0: no) */
  arm arms[ORA_FAULT_NMETHODS];
  void (*on_sync)(void *arg);
  void *on_sync_arg;
  void (*on_op)(void *arg, uint64_t op);
  void *on_op_arg;
  void (*on_dirop)(void *arg, uint64_t op, int kind);
  void *on_dirop_arg;
};

/* Every method starts here: the on_op hook runs before the lock is taken
 * (it may fork, and a child must not inherit a held lock). */
static void enter(ora_fault_vfs *f) {
  if (f->on_op)
    f->on_op(f->on_op_arg, f->ops + 1);
  pthread_mutex_lock(&f->mu);
}

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rng_next(ora_fault_vfs *f) {
  uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rng_below(ora_fault_vfs *f, uint64_t n) {
  return n ? rng_next(f) % n : 0;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    abort(); /* a test tool: a half-modelled disk would lie */
  return p;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = xmalloc(n);
  memcpy(p, s, n);
  return p;
}

/* The directory of path, without trailing slashes ("." if none). */
static char *dir_of(const char *path) {
  const char *sl = strrchr(path, '/');
  if (!sl)
    return xstrdup(".");
  size_t n = (size_t)(sl - path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  if (n == 0)
    n = 1; /* "/x" */
  char *d = xmalloc(n + 1);
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

static char *dir_norm(const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  char *d = xmalloc(n + 1);
  memcpy(d, dir, n);
  d[n] = 0;
  return d;
}

static int selftest_hang; /* ora_fault_vfs_selftest_hang */

void ora_fault_vfs_selftest_hang(int on) { selftest_hang = on; }

/* Count a call and decide whether it fails: a death (crash_at), then an
 * armed Nth fault of method (-1: not armable). */
static int gate(ora_fault_vfs *f, int method) {
  f->ops++;
  if (f->dead || (f->crash_at && f->ops >= f->crash_at)) {
    f->dead = 1;
    f->injected++;
    errno = EIO;
    return KJ_EIO;
  }
  if (method >= 0 && f->arms[method].armed) {
    arm *a = &f->arms[method];
    a->seen++;
    if (a->seen == a->nth || (a->persistent && a->seen > a->nth)) {
      if (!a->persistent)
        a->armed = 0;
      while (selftest_hang && a->persistent && method == ORA_FAULT_SYNC)
        pause(); /* a sync that never returns (until a signal kills) */
      f->injected++;
      errno = a->status == KJ_ENOSPC ? ENOSPC : EIO;
      return a->status;
    }
  }
  return KJ_OK;
}

static node *node_find(ora_fault_vfs *f, const char *path) {
  for (node *n = f->nodes; n; n = n->next)
    if (n->path && !strcmp(n->path, path))
      return n;
  return NULL;
}

static void pops_free(node *n) {
  pop *p = n->head;
  while (p) {
    pop *nx = p->next;
    free(p->data);
    free(p);
    p = nx;
  }
  n->head = n->tail = NULL;
}

/* Free n if nothing refers to it any more. */
static void node_gc(ora_fault_vfs *f, node *n) {
  if (n->refs > 0 || (n->head && n->path))
    return;
  for (node **pp = &f->nodes; *pp; pp = &(*pp)->next)
    if (*pp == n) {
      *pp = n->next;
      break;
    }
  pops_free(n);
  free(n->path);
  free(n);
}

/* A path no longer names n (unlinked or replaced): its pending writes can
 * never reach a disk under that name. */
static void node_detach(ora_fault_vfs *f, node *n) {
  free(n->path);
  n->path = NULL;
  pops_free(n);
  node_gc(f, n);
}

static void pop_add(ora_fault_vfs *f, node *n, int kind, uint64_t off,
                    const void *data, size_t len) {
  pop *p = xmalloc(sizeof *p);
  p->seq = ++f->pop_seq;
  p->kind = kind;
  p->off = off;
  p->len = len;
  p->data = NULL;
  if (kind == POP_WRITE) {
    p->data = xmalloc(len);
    if (len)
      memcpy(p->data, data, len);
  }
  p->next = NULL;
  if (n->tail)
    n->tail->next = p;
  else
    n->head = p;
  n->tail = p;
}

static void dop_add(ora_fault_vfs *f, int kind, const char *a, const char *b,
                    uint8_t *saved, size_t saved_len, int has_saved) {
  dop *d = xmalloc(sizeof *d);
  d->kind = kind;
  d->dir = dir_of(b ? b : a);
  d->a = xstrdup(a);
  d->b = b ? xstrdup(b) : NULL;
  d->saved = saved;
  d->saved_len = saved_len;
  d->has_saved = has_saved;
  d->next = NULL;
  d->prev = f->dtail;
  if (f->dtail)
    f->dtail->next = d;
  else
    f->dhead = d;
  f->dtail = d;
}

static void dop_unlink_free(ora_fault_vfs *f, dop *d) {
  if (d->prev)
    d->prev->next = d->next;
  else
    f->dhead = d->next;
  if (d->next)
    d->next->prev = d->prev;
  else
    f->dtail = d->prev;
  free(d->dir);
  free(d->a);
  free(d->b);
  free(d->saved);
  free(d);
}

/* Real (durable) bytes of path. KJ_OK, or KJ_NOTFOUND / an error. */
static int real_read_all(ora_fault_vfs *f, const char *path, uint8_t **out,
                         size_t *len) {
  kj_vfs_file *bf;
  int rc = f->base->open(f->base->ctx, path, KJ_VFS_READ, &bf);
  if (rc)
    return rc;
  uint64_t sz = 0;
  rc = f->base->size(f->base->ctx, bf, &sz);
  uint8_t *p = xmalloc((size_t)sz);
  size_t got = 0;
  if (!rc)
    rc = f->base->read(f->base->ctx, bf, p, (size_t)sz, 0, &got);
  f->base->close(f->base->ctx, bf);
  if (rc) {
    free(p);
    return rc;
  }
  *out = p;
  *len = got;
  return KJ_OK;
}

static void real_write_all(ora_fault_vfs *f, const char *path, const uint8_t *p,
                           size_t len) {
  kj_vfs_file *bf;
  if (f->base->open(f->base->ctx, path, KJ_VFS_WRITE | KJ_VFS_CREATE, &bf))
    return;
  f->base->truncate(f->base->ctx, bf, 0);
  if (len)
    f->base->write(f->base->ctx, bf, p, len, 0);
  f->base->close(f->base->ctx, bf);
}

static int path_kind(const char *path) { /* 0 none, 1 file, 2 dir */
  struct stat st;
  if (stat(path, &st) != 0)
    return 0;
  return S_ISDIR(st.st_mode) ? 2 : 1;
}

/* Write n's pending list to the real file through bf (or by path when bf
 * is NULL) and clear it. */
/* Make n's pending writes and truncates up to seq upto durable (all of
 * them: UINT64_MAX), in order; later ones stay pending. */
static int node_flush_upto(ora_fault_vfs *f, node *n, kj_vfs_file *bf,
                           uint64_t upto) {
  if (!n->head || n->head->seq > upto)
    return KJ_OK;
  kj_vfs_file *own = NULL;
  if (!bf) {
    if (!n->path) {
      pops_free(n);
      return KJ_OK;
    }
    int rc = f->base->open(f->base->ctx, n->path, KJ_VFS_WRITE, &own);
    if (rc)
      return rc;
    bf = own;
  }
  int rc = KJ_OK;
  for (pop *p = n->head; p && p->seq <= upto && !rc; p = p->next)
    rc = p->kind == POP_WRITE
             ? f->base->write(f->base->ctx, bf, p->data, p->len, p->off)
             : f->base->truncate(f->base->ctx, bf, p->off);
  if (own)
    f->base->close(f->base->ctx, own);
  while (!rc && n->head && n->head->seq <= upto) {
    pop *p = n->head;
    n->head = p->next;
    if (!n->head)
      n->tail = NULL;
    free(p->data);
    free(p);
  }
  return rc;
}

static int node_flush(ora_fault_vfs *f, node *n, kj_vfs_file *bf) {
  return node_flush_upto(f, n, bf, UINT64_MAX);
}

/* ---- the VFS methods ---------------------------------------------------- */

#define F ((ora_fault_vfs *)ctx)

static int fv_open(void *ctx, const char *path, unsigned flags,
                   kj_vfs_file **out) {
  enter(F);
  int rc = gate(F, ORA_FAULT_OPEN);
  if (rc)
    goto done;
  int kind = path_kind(path);
  kj_vfs_file *bf;
  rc = F->base->open(F->base->ctx, path, flags, &bf);
  if (rc)
    goto done;
  kj_vfs_file *h = xmalloc(sizeof *h);
  h->base = bf;
  h->n = NULL;
  h->writable = (flags & KJ_VFS_WRITE) != 0;
  h->map = NULL;
  h->map_len = 0;
  if (kind != 2) {
    if (kind == 0)
      dop_add(F, DOP_CREATE, path, NULL, NULL, 0, 0);
    node *n = node_find(F, path);
    if (!n) {
      n = xmalloc(sizeof *n);
      n->path = xstrdup(path);
      n->refs = 0;
      n->head = n->tail = NULL;
      n->next = F->nodes;
      F->nodes = n;
    }
    n->refs++;
    h->n = n;
  }
  *out = h;
done:
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_close(void *ctx, kj_vfs_file *h) {
  enter(F);
  int rc = gate(F, -1);
  int crc = F->base->close(F->base->ctx, h->base);
  free(h->map); /* an engine that closes without unmap() */
  if (h->n) {
    h->n->refs--;
    node_gc(F, h->n);
  }
  free(h);
  pthread_mutex_unlock(&F->mu);
  return rc ? rc : crc;
}

/* Logical size: real size with the pending list applied. */
static int logical_size(ora_fault_vfs *f, kj_vfs_file *h, uint64_t *out) {
  uint64_t sz;
  int rc = f->base->size(f->base->ctx, h->base, &sz);
  if (rc)
    return rc;
  if (h->n)
    for (pop *p = h->n->head; p; p = p->next) {
      if (p->kind == POP_TRUNC)
        sz = p->off;
      else if (p->off + p->len > sz)
        sz = p->off + p->len;
    }
  *out = sz;
  return KJ_OK;
}

/* Read n bytes at off as the file is now, pending writes included. */
static int logical_read(ora_fault_vfs *f, kj_vfs_file *h, void *buf, size_t n,
                        uint64_t off, size_t *got) {
  if (!h->n)
    return f->base->read(f->base->ctx, h->base, buf, n, off, got);
  uint64_t sz;
  int rc = logical_size(f, h, &sz);
  if (rc)
    return rc;
  memset(buf, 0, n);
  size_t real = 0;
  rc = f->base->read(f->base->ctx, h->base, buf, n, off, &real);
  if (rc)
    return rc;
  uint8_t *b = buf;
  uint64_t end = off + n;
  for (pop *p = h->n->head; p; p = p->next) {
    if (p->kind == POP_TRUNC) {
      if (p->off < end) {
        uint64_t from = p->off > off ? p->off : off;
        memset(b + (from - off), 0, (size_t)(end - from));
      }
      continue;
    }
    uint64_t lo = p->off > off ? p->off : off;
    uint64_t hi = p->off + p->len < end ? p->off + p->len : end;
    if (lo < hi)
      memcpy(b + (lo - off), p->data + (lo - p->off), (size_t)(hi - lo));
  }
  *got = off >= sz ? 0 : (size_t)(sz - off < n ? sz - off : n);
  return KJ_OK;
}

static int fv_read(void *ctx, kj_vfs_file *h, void *buf, size_t n, uint64_t off,
                   size_t *got) {
  enter(F);
  int rc = gate(F, ORA_FAULT_READ);
  if (!rc)
    rc = logical_read(F, h, buf, n, off, got);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_write(void *ctx, kj_vfs_file *h, const void *buf, size_t n,
                    uint64_t off) {
  enter(F);
  int rc = gate(F, ORA_FAULT_WRITE);
  if (!rc && (!h->n || !h->writable)) {
    errno = EBADF;
    rc = KJ_EIO;
  }
  if (!rc)
    pop_add(F, h->n, POP_WRITE, off, buf, n);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

/* The mapped write path (vfs.h, version 2). map() hands out a private
 * copy, so a store the engine has not reported yet is invisible to the
 * model, as the bytes of a write() that never returned; map_wrote() is a
 * write for faults and crashes (an Nth-write fault or a crash point can
 * land on it). */
static int fv_map(void *ctx, kj_vfs_file *h, uint64_t len, void **out) {
  enter(F);
  *out = NULL;
  int rc = gate(F, -1);
  if (!rc && (!h->n || !h->writable || h->map || !len || len > SIZE_MAX)) {
    errno = EINVAL;
    rc = KJ_EINVAL;
  }
  if (!rc) {
    size_t got = 0;
    h->map = xmalloc((size_t)len);
    rc = logical_read(F, h, h->map, (size_t)len, 0, &got);
    if (!rc && got < len) { /* vfs.h: the engine maps written bytes only */
      errno = EINVAL;
      rc = KJ_EINVAL;
    }
    if (rc) {
      free(h->map);
      h->map = NULL;
    } else {
      h->map_len = len;
      *out = h->map;
    }
  }
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int map_range_ok(kj_vfs_file *h, void *p, uint64_t off, uint64_t n) {
  return h->map && p == h->map && off <= h->map_len && n <= h->map_len - off;
}

/* Not a VFS call of the model: it changes nothing on the disk (a crash
 * before map_wrote() loses the frame whether or not its pages were
 * reserved), and it happens only when a frame crosses into a page that no
 * reservation covered since the last sync, so counting it would make the
 * calls of an op depend on where earlier ops left the write position, and
 * a crash point would no longer follow its op while a case is shrunk. Its
 * failure is tested with a wrapped POSIX VFS (tests/test_errors.c). */
static int fv_map_reserve(void *ctx, kj_vfs_file *h, void *p, uint64_t off,
                          uint64_t n) {
  pthread_mutex_lock(&F->mu);
  int rc = KJ_OK;
  if (F->dead || !map_range_ok(h, p, off, n)) {
    errno = F->dead ? EIO : EINVAL;
    rc = KJ_EIO;
  }
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_map_wrote(void *ctx, kj_vfs_file *h, void *p, uint64_t off,
                        uint64_t n) {
  enter(F);
  int rc = gate(F, ORA_FAULT_WRITE);
  if (!rc && !map_range_ok(h, p, off, n)) {
    errno = EINVAL;
    rc = KJ_EIO;
  }
  if (!rc)
    pop_add(F, h->n, POP_WRITE, off, h->map + off, (size_t)n);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

/* Never fails in a way that keeps the copy: the engine closes next. */
static int fv_unmap(void *ctx, kj_vfs_file *h, void *p, uint64_t len) {
  enter(F);
  int rc = gate(F, -1);
  if (!h->map || p != h->map || len != h->map_len) {
    errno = EINVAL;
    rc = KJ_EINVAL;
  } else {
    free(h->map);
    h->map = NULL;
    h->map_len = 0;
  }
  pthread_mutex_unlock(&F->mu);
  return rc;
}

/* A journal segment under its final name (ora_fault_vfs_on_sync). */
static int is_segment(const node *n) {
  size_t len = n && n->path ? strlen(n->path) : 0;
  return len > 4 && !strcmp(n->path + len - 4, ".kjl");
}

/* A sync makes durable the writes issued before it began. With a sync
 * window, it then lasts sync_usec with the lock released, so that other
 * threads write meanwhile; what they write stays pending (a real fsync may
 * or may not carry it: the model assumes the worst). */
static int fv_sync(void *ctx, kj_vfs_file *h) {
  enter(F);
  int rc = gate(F, ORA_FAULT_SYNC);
  if (rc && !F->dead && F->fault_usec) {
    /* An injected fault that takes a while, as a failing device's does:
     * the other threads' commits queue up behind it meanwhile. */
    struct timespec ts = {(time_t)(F->fault_usec / 1000000),
                          (long)(F->fault_usec % 1000000) * 1000};
    pthread_mutex_unlock(&F->mu);
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&F->mu);
    errno = rc == KJ_ENOSPC ? ENOSPC : EIO;
  } else if (!rc && h->n && F->sync_usec) {
    uint64_t upto = F->pop_seq;
    unsigned usec = F->sync_usec;
    pthread_mutex_unlock(&F->mu);
    struct timespec ts = {0, (long)usec * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&F->mu);
    if (F->dead) { /* another thread's call found the process dead */
      rc = KJ_EIO;
      errno = EIO;
    } else {
      rc = node_flush_upto(F, h->n, h->writable ? h->base : NULL, upto);
    }
  } else if (!rc && h->n) {
    rc = node_flush(F, h->n, h->writable ? h->base : NULL);
  }
  if (!rc && F->on_sync && is_segment(h->n))
    F->on_sync(F->on_sync_arg);
  if (!rc && F->die_syncs && --F->die_syncs == 0)
    F->crash_at = F->ops + 1; /* this sync returns; the next call dies */
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_truncate(void *ctx, kj_vfs_file *h, uint64_t size) {
  enter(F);
  int rc = gate(F, -1);
  if (!rc && (!h->n || !h->writable)) {
    errno = EBADF;
    rc = KJ_EIO;
  }
  if (!rc)
    pop_add(F, h->n, POP_TRUNC, size, NULL, 0);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_size(void *ctx, kj_vfs_file *h, uint64_t *out) {
  enter(F);
  int rc = gate(F, -1);
  if (!rc)
    rc = logical_size(F, h, out);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_lock(void *ctx, kj_vfs_file *h, int mode) {
  enter(F);
  int rc = gate(F, -1);
  if (!rc)
    rc = F->base->lock(F->base->ctx, h->base, mode);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_rename(void *ctx, const char *from, const char *to) {
  enter(F);
  int rc = gate(F, ORA_FAULT_RENAME);
  if (rc)
    goto done;
  uint8_t *saved = NULL;
  size_t saved_len = 0;
  int has_saved = real_read_all(F, to, &saved, &saved_len) == KJ_OK;
  rc = F->base->rename(F->base->ctx, from, to);
  if (rc) {
    free(saved);
    goto done;
  }
  dop_add(F, DOP_RENAME, from, to, saved, saved_len, has_saved);
  if (F->on_dirop)
    F->on_dirop(F->on_dirop_arg, F->ops, 'r');
  node *old = node_find(F, to), *n = node_find(F, from);
  if (old && old != n)
    node_detach(F, old);
  if (n) {
    free(n->path);
    n->path = xstrdup(to);
  }
done:
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_unlink(void *ctx, const char *path) {
  enter(F);
  int rc = gate(F, -1);
  if (rc)
    goto done;
  uint8_t *saved = NULL;
  size_t saved_len = 0;
  int has_saved = real_read_all(F, path, &saved, &saved_len) == KJ_OK;
  rc = F->base->unlink(F->base->ctx, path);
  if (rc) {
    free(saved);
    goto done;
  }
  dop_add(F, DOP_UNLINK, path, NULL, saved, saved_len, has_saved);
  if (F->on_dirop)
    F->on_dirop(F->on_dirop_arg, F->ops, 'u');
  node *n = node_find(F, path);
  if (n)
    node_detach(F, n);
done:
  pthread_mutex_unlock(&F->mu);
  return rc;
}

static int fv_sync_dir(void *ctx, const char *dir) {
  enter(F);
  int rc = gate(F, ORA_FAULT_SYNC);
  if (!rc && path_kind(dir) != 2) {
    errno = ENOENT;
    rc = KJ_NOTFOUND;
  }
  if (!rc) {
    char *d = dir_norm(dir);
    dop *p = F->dhead;
    while (p) {
      dop *nx = p->next;
      if (!strcmp(p->dir, d))
        dop_unlink_free(F, p);
      p = nx;
    }
    free(d);
  }
  pthread_mutex_unlock(&F->mu);
  return rc;
}

/* A new directory is an entry in its parent like a new file: a crash
 * before the parent's sync may undo it, with everything in it. */
static int fv_mkdir(void *ctx, const char *dir) {
  enter(F);
  int rc = gate(F, -1);
  int existed = path_kind(dir) != 0;
  if (!rc)
    rc = F->base->mkdir(F->base->ctx, dir);
  if (!rc && !existed)
    dop_add(F, DOP_MKDIR, dir, NULL, NULL, 0, 0);
  pthread_mutex_unlock(&F->mu);
  return rc;
}

typedef struct names {
  char **v;
  size_t n, cap;
} names;

static int collect(void *arg, const char *name) {
  names *l = arg;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    char **v = realloc(l->v, l->cap * sizeof *v);
    if (!v)
      abort();
    l->v = v;
  }
  l->v[l->n++] = xstrdup(name);
  return 0;
}

/* The names are collected under the lock and passed to fn after it: the
 * engine may call the VFS (unlink) from fn. */
static int fv_list(void *ctx, const char *dir,
                   int (*fn)(void *arg, const char *name), void *arg) {
  names l = {0};
  enter(F);
  int rc = gate(F, -1);
  if (!rc)
    rc = F->base->list(F->base->ctx, dir, collect, &l);
  pthread_mutex_unlock(&F->mu);
  for (size_t i = 0; i < l.n; i++) {
    if (!rc)
      rc = fn(arg, l.v[i]);
    free(l.v[i]);
  }
  free(l.v);
  return rc;
}

#undef F

/* ---- public API ------------------------------------------------------- */

ora_fault_vfs *ora_fault_vfs_new(uint64_t seed) {
  ora_fault_vfs *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  /* Recursive: list() calls back into the engine while holding the lock,
   * and the engine's callback may unlink through this same VFS. */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  int mrc = pthread_mutex_init(&f->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  if (mrc != 0) {
    free(f);
    return NULL;
  }
  f->base = kj_vfs_posix();
  f->rng = seed ^ 0x6a09e667f3bcc909ull;
  kj_vfs v = {KJ_VFS_VERSION, f,
              fv_open,        fv_close,
              fv_read,        fv_write,
              fv_sync,        fv_truncate,
              fv_size,        fv_lock,
              fv_rename,      fv_unlink,
              fv_sync_dir,    fv_mkdir,
              fv_list,        fv_map,
              fv_map_reserve, fv_map_wrote,
              fv_unmap};
  f->vfs = v;
  return f;
}

void ora_fault_vfs_free(ora_fault_vfs *f) {
  if (!f)
    return;
  /* The OS lives on: pending writes reach the disk eventually. */
  for (node *n = f->nodes; n; n = n->next)
    node_flush(f, n, NULL);
  while (f->nodes) {
    node *n = f->nodes;
    f->nodes = n->next;
    pops_free(n);
    free(n->path);
    free(n);
  }
  while (f->dhead)
    dop_unlink_free(f, f->dhead);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

const kj_vfs *ora_fault_vfs_get(ora_fault_vfs *f) { return &f->vfs; }

/* What survives of one pending write: a length kept from its start, with an
 * optional garbage range inside it. */
static void crash_write(ora_fault_vfs *f, kj_vfs_file *bf, pop *p, int keep,
                        size_t prefix, int garbage) {
  if (!keep)
    return;
  size_t len = prefix < p->len ? prefix : p->len;
  if (len == 0)
    return;
  if (garbage) {
    uint64_t first = p->off / SECTOR, last = (p->off + len - 1) / SECTOR;
    uint64_t s = first + rng_below(f, last - first + 1);
    uint64_t lo = s * SECTOR > p->off ? s * SECTOR : p->off;
    uint64_t hi =
        (s + 1) * SECTOR < p->off + len ? (s + 1) * SECTOR : p->off + len;
    for (uint64_t i = lo; i < hi; i++)
      p->data[i - p->off] = (uint8_t)rng_next(f);
  }
  f->base->write(f->base->ctx, bf, p->data, len, p->off);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static int same_path(const char *x, const char *y) {
  return x && y && !strcmp(x, y);
}

/* Must d, later than e, be undone when e is? (They touch one name, or d
 * lies in the directory e made.) */
static int dop_depends(const dop *d, const dop *e) {
  return same_path(d->a, e->a) || same_path(d->a, e->b) ||
         same_path(d->b, e->a) || same_path(d->b, e->b) ||
         (e->kind == DOP_MKDIR && same_path(d->dir, e->a));
}

static void undo_dop(ora_fault_vfs *f, dop *d) {
  switch (d->kind) {
  case DOP_CREATE:
    f->base->unlink(f->base->ctx, d->a);
    break;
  case DOP_RENAME:
    f->base->rename(f->base->ctx, d->b, d->a);
    if (d->has_saved)
      real_write_all(f, d->b, d->saved, d->saved_len);
    break;
  case DOP_UNLINK:
    if (d->has_saved)
      real_write_all(f, d->a, d->saved, d->saved_len);
    break;
  case DOP_MKDIR:
    nftw(d->a, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    break;
  }
}

void ora_fault_vfs_crash(ora_fault_vfs *f, int pattern) {
  pthread_mutex_lock(&f->mu);
  /* The garbage victim: one pending write among all files. */
  uint64_t nwrites = 0, victim = UINT64_MAX, idx = 0;
  for (node *n = f->nodes; n; n = n->next)
    if (n->path)
      for (pop *p = n->head; p; p = p->next)
        nwrites += p->kind == POP_WRITE;
  if (pattern == ORA_CRASH_GARBAGE && nwrites)
    victim = rng_below(f, nwrites);

  for (node *n = f->nodes; n; n = n->next) {
    kj_vfs_file *bf = NULL;
    if (n->path && n->head &&
        f->base->open(f->base->ctx, n->path, KJ_VFS_WRITE, &bf) != KJ_OK)
      bf = NULL;
    for (pop *p = n->head; p && bf; p = p->next) {
      if (p->kind == POP_TRUNC) {
        int keep = pattern == ORA_CRASH_DROP     ? 0
                   : pattern == ORA_CRASH_RANDOM ? (int)rng_below(f, 2)
                                                 : 1;
        if (keep)
          f->base->truncate(f->base->ctx, bf, p->off);
        continue;
      }
      int keep = 1, garbage = 0;
      size_t prefix = p->len;
      switch (pattern) {
      case ORA_CRASH_DROP:
        keep = 0;
        break;
      case ORA_CRASH_KEEP:
        break;
      case ORA_CRASH_RANDOM:
        switch (rng_below(f, 4)) {
        case 0:
          keep = 0;
          break;
        case 1:
          prefix = (size_t)rng_below(f, p->len ? p->len : 1);
          break;
        default:
          break;
        }
        break;
      case ORA_CRASH_TEAR: {
        int last = 1;
        for (pop *q = p->next; q; q = q->next)
          if (q->kind == POP_WRITE)
            last = 0;
        if (last)
          prefix = (size_t)rng_below(f, p->len ? p->len : 1);
        break;
      }
      case ORA_CRASH_GARBAGE:
        garbage = idx == victim;
        break;
      default:
        break;
      }
      idx++;
      crash_write(f, bf, p, keep, prefix, garbage);
    }
    if (bf)
      f->base->close(f->base->ctx, bf);
    pops_free(n);
  }

  /* Directory operations. GARBAGE: of the non-durable ones in each
   * directory, a prefix survives (a file system that journals one
   * directory's changes in order, two directories' independently).
   * RANDOM: each survives on its own (POSIX orders nothing without a sync
   * of the directory), except that the operations on one name keep their
   * order: one that touches a name an undone operation touched, or lies
   * in a directory whose mkdir is undone, is undone too. */
  for (dop *d = f->dhead; d; d = d->next)
    d->undo = pattern == ORA_CRASH_DROP;
  if (pattern == ORA_CRASH_RANDOM) {
    for (dop *d = f->dhead; d; d = d->next) {
      int follows = 0;
      for (dop *e = f->dhead; e != d && !follows; e = e->next)
        follows = e->undo && dop_depends(d, e);
      d->undo = follows || rng_below(f, 2);
    }
  } else if (pattern == ORA_CRASH_GARBAGE) {
    for (dop *d = f->dhead; d; d = d->next) {
      int first = 1; /* d is the oldest of its directory */
      for (dop *e = f->dhead; e != d && first; e = e->next)
        if (!strcmp(e->dir, d->dir))
          first = 0;
      if (!first)
        continue;
      size_t n = 0;
      for (dop *e = d; e; e = e->next)
        n += !strcmp(e->dir, d->dir);
      size_t keep = (size_t)rng_below(f, n + 1), i = 0;
      for (dop *e = d; e; e = e->next)
        if (!strcmp(e->dir, d->dir))
          e->undo = i++ >= keep;
    }
  }
  for (dop *d = f->dtail; d; d = d->prev)
    if (d->undo)
      undo_dop(f, d);
  while (f->dhead)
    dop_unlink_free(f, f->dhead);

  node *n = f->nodes;
  while (n) {
    node *nx = n->next;
    node_gc(f, n);
    n = nx;
  }
  f->dead = 0;
  f->crash_at = 0;
  f->die_syncs = 0;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_set_crash_at(ora_fault_vfs *f, uint64_t op_index) {
  pthread_mutex_lock(&f->mu);
  f->crash_at = op_index;
  pthread_mutex_unlock(&f->mu);
}

/* One counter of f, read under its lock (the VFS may run in other
 * threads). */
static uint64_t read_locked(ora_fault_vfs *f, const uint64_t *counter) {
  pthread_mutex_lock(&f->mu);
  uint64_t n = *counter;
  pthread_mutex_unlock(&f->mu);
  return n;
}

uint64_t ora_fault_vfs_ops(ora_fault_vfs *f) { return read_locked(f, &f->ops); }

int ora_fault_vfs_dead(ora_fault_vfs *f) {
  pthread_mutex_lock(&f->mu);
  int d = f->dead;
  pthread_mutex_unlock(&f->mu);
  return d;
}

void ora_fault_vfs_fail(ora_fault_vfs *f, int method, uint64_t nth, int status,
                        int persistent) {
  if (method < 0 || method >= ORA_FAULT_NMETHODS)
    return;
  pthread_mutex_lock(&f->mu);
  arm *a = &f->arms[method];
  a->armed = nth > 0;
  a->nth = nth;
  a->seen = 0;
  a->status = status;
  a->persistent = persistent;
  pthread_mutex_unlock(&f->mu);
}

uint64_t ora_fault_vfs_injected(ora_fault_vfs *f) {
  return read_locked(f, &f->injected);
}

void ora_fault_vfs_reset(ora_fault_vfs *f) {
  pthread_mutex_lock(&f->mu);
  f->ops = f->crash_at = f->injected = f->die_syncs = 0;
  f->dead = 0;
  memset(f->arms, 0, sizeof f->arms);
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_on_sync(ora_fault_vfs *f, void (*fn)(void *arg), void *arg) {
  pthread_mutex_lock(&f->mu);
  f->on_sync = fn;
  f->on_sync_arg = arg;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_on_dirop(ora_fault_vfs *f,
                            void (*fn)(void *arg, uint64_t op, int kind),
                            void *arg) {
  pthread_mutex_lock(&f->mu);
  f->on_dirop = fn;
  f->on_dirop_arg = arg;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_on_op(ora_fault_vfs *f, void (*fn)(void *arg, uint64_t op),
                         void *arg) {
  pthread_mutex_lock(&f->mu);
  f->on_op = fn;
  f->on_op_arg = arg;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_sync_window(ora_fault_vfs *f, unsigned usec) {
  pthread_mutex_lock(&f->mu);
  f->sync_usec = usec;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_fault_window(ora_fault_vfs *f, unsigned usec) {
  pthread_mutex_lock(&f->mu);
  f->fault_usec = usec;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_die_after_syncs(ora_fault_vfs *f, uint64_t k) {
  pthread_mutex_lock(&f->mu);
  f->die_syncs = k;
  pthread_mutex_unlock(&f->mu);
}

void ora_fault_vfs_reseed(ora_fault_vfs *f, uint64_t seed) {
  pthread_mutex_lock(&f->mu);
  f->rng = seed ^ 0x6a09e667f3bcc909ull;
  pthread_mutex_unlock(&f->mu);
}

/* path with the directory prefix from replaced by to, or NULL when path is
 * not from itself nor under it. */
static char *rebased(const char *path, const char *from, const char *to) {
  size_t fl = strlen(from);
  if (!path || strncmp(path, from, fl) != 0 ||
      (path[fl] != 0 && path[fl] != '/'))
    return NULL;
  size_t tl = strlen(to), rl = strlen(path + fl);
  char *p = xmalloc(tl + rl + 1);
  memcpy(p, to, tl);
  memcpy(p + tl, path + fl, rl + 1);
  return p;
}

static void rebase_path(char **path, const char *from, const char *to) {
  char *p = rebased(*path, from, to);
  if (p) {
    free(*path);
    *path = p;
  }
}

typedef struct copy_ctx {
  ora_fault_vfs *f;
  const char *from, *to;
  int rc;
} copy_ctx;

static int copy_one(void *arg, const char *name) {
  copy_ctx *c = arg;
  size_t fl = strlen(c->from), tl = strlen(c->to), nl = strlen(name);
  char *src = xmalloc(fl + nl + 2), *dst = xmalloc(tl + nl + 2);
  snprintf(src, fl + nl + 2, "%s/%s", c->from, name);
  snprintf(dst, tl + nl + 2, "%s/%s", c->to, name);
  if (path_kind(src) == 1) {
    uint8_t *p = NULL;
    size_t len = 0;
    int rc = real_read_all(c->f, src, &p, &len);
    if (rc == KJ_OK)
      real_write_all(c->f, dst, p, len);
    else if (!c->rc)
      c->rc = rc;
    free(p);
  }
  free(src);
  free(dst);
  return 0;
}

int ora_fault_vfs_fork_dir(ora_fault_vfs *f, const char *from, const char *to) {
  pthread_mutex_lock(&f->mu);
  copy_ctx c = {f, from, to, KJ_OK};
  int rc = f->base->list(f->base->ctx, from, copy_one, &c);
  if (!rc)
    rc = c.rc;
  if (!rc) {
    for (node *n = f->nodes; n; n = n->next)
      rebase_path(&n->path, from, to);
    for (dop *d = f->dhead; d; d = d->next) {
      rebase_path(&d->dir, from, to);
      rebase_path(&d->a, from, to);
      rebase_path(&d->b, from, to);
    }
  }
  pthread_mutex_unlock(&f->mu);
  return rc;
}
