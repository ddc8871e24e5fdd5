/*
 * src/engine/overlay.c - the committed rows of a table: an overlay merged over
 * a run (src/engine/overlay.h). It sits on map.c and run.c and knows nothing
 * of the store handle: txn.c scans through it, checkpoint.c merges a new
 * run through it and counts what an open recovered.
 */
#include "overlay.h"

#include <stdlib.h>
#include <string.h>

#include "keyjournal/errors.h"
#include "keyjournal/store.h"

static void run_advance(kj_rows_cursor *c) {
  unsigned t;
  int rc =
      kj_run_iter_next(&c->ri, &t, &c->rk, &c->rkl, &c->rv, &c->rvl, &c->e);
  c->rhave = rc == KJ_OK && t == c->table;
  if (rc != KJ_OK && rc != KJ_NOTFOUND)
    c->err = rc;
}

void kj_rows_seek(kj_rows_cursor *c, kj_map *const *maps, int nmaps,
                  kj_run *run, kj_bcache *cache, unsigned table,
                  const void *start, size_t slen) {
  memset(c, 0, sizeof *c);
  c->table = table;
  for (int i = 0; i < nmaps && i < KJ_ROWS_MAPS; i++) {
    if (!maps[i])
      continue;
    kj_iter_seek(&c->oi[c->nmaps], maps[i], start, slen);
    c->o[c->nmaps] = kj_iter_next(&c->oi[c->nmaps]);
    c->nmaps++;
  }
  if (!run)
    return;
  uint64_t rows = 0;
  kj_run_table_count(run, table, &rows, NULL);
  if (!rows)
    return;
  int rc = kj_run_iter_seek(&c->ri, run, cache, table, start, slen, &c->e);
  if (rc)
    c->err = rc;
  else
    run_advance(c);
}

int kj_rows_next(kj_rows_cursor *c, const uint8_t **k, size_t *kl,
                 const uint8_t **v, size_t *vl) {
  if (c->rnext) { /* the run row handed out last time is done with */
    c->rnext = 0;
    run_advance(c);
  }
  while (!c->err) {
    /* The smallest head; the newest layer holding it wins. */
    int win = -1; /* a map layer, or -1: the run */
    const uint8_t *mk = NULL;
    size_t ml = 0;
    for (int i = 0; i < c->nmaps; i++) {
      if (!c->o[i])
        continue;
      const uint8_t *ik = kj_entry_key(c->o[i]);
      size_t il = kj_entry_klen(c->o[i]);
      if (!mk || kj_key_cmp(ik, il, mk, ml) < 0) {
        win = i;
        mk = ik;
        ml = il;
      }
    }
    int cmp = !mk ? 1 : !c->rhave ? -1 : kj_key_cmp(mk, ml, c->rk, c->rkl);
    if (!mk && !c->rhave)
      return 0;
    if (cmp > 0) {
      *k = c->rk;
      *kl = c->rkl;
      *v = c->rv;
      *vl = c->rvl;
      c->rnext = 1;
      return 1;
    }
    const kj_entry *o = c->o[win];
    /* Every older layer's entry of the key is hidden: step past it. */
    for (int i = win + 1; i < c->nmaps; i++)
      if (c->o[i] &&
          !kj_key_cmp(kj_entry_key(c->o[i]), kj_entry_klen(c->o[i]), mk, ml))
        c->o[i] = kj_iter_next(&c->oi[i]);
    if (cmp == 0)
      run_advance(c); /* hidden by the overlay's entry */
    c->o[win] = kj_iter_next(&c->oi[win]);
    if (kj_entry_tomb(o))
      continue;
    *k = kj_entry_key(o);
    *kl = kj_entry_klen(o);
    *v = kj_entry_val(o);
    *vl = kj_entry_vlen(o);
    return 1;
  }
  return 0;
}

void kj_rows_close(kj_rows_cursor *c) { kj_run_iter_close(&c->ri); }

int kj_rows_count(kj_map *overlay, kj_run *run, kj_bcache *cache,
                  unsigned table, uint64_t *rows, uint64_t *bytes,
                  kj_errbuf *e) {
  uint64_t r = 0, b = 0;
  if (run)
    kj_run_table_count(run, table, &r, &b);
  /* Tombstones over keys the run lacks (a Bloom false positive, or a key
   * put and deleted since the run) hide nothing: removed after the walk,
   * which must not see the map change. */
  size_t ndrop = 0, capdrop = 0;
  uint8_t **drop = NULL;
  size_t *droplen = NULL;
  int rc = KJ_OK;
  kj_iter it;
  kj_iter_seek(&it, overlay, NULL, 0);
  for (const kj_entry *o; (o = kj_iter_next(&it));) {
    const uint8_t *k = kj_entry_key(o);
    size_t kl = kj_entry_klen(o);
    int in_run = 0;
    size_t rvl = 0;
    if (run && kj_run_may_have(run, table, k, kl)) {
      kj_run_ref ref;
      rc = kj_run_find(run, cache, table, k, kl, &ref, e);
      if (rc == KJ_OK) {
        in_run = 1;
        rvl = ref.vlen;
        kj_run_ref_release(cache, &ref);
      } else if (rc != KJ_NOTFOUND) {
        break;
      }
      rc = KJ_OK;
    }
    if (in_run) {
      r -= 1;
      b -= (uint64_t)kl + rvl;
    }
    if (!kj_entry_tomb(o)) {
      r += 1;
      b += (uint64_t)kl + kj_entry_vlen(o);
    } else if (!in_run) {
      if (ndrop == capdrop) {
        size_t nc = capdrop ? 2 * capdrop : 64;
        uint8_t **nd = realloc(drop, nc * sizeof *nd);
        size_t *nl = nd ? realloc(droplen, nc * sizeof *nl) : NULL;
        if (nd)
          drop = nd;
        if (!nl) {
          rc = kj_err(e, KJ_ENOMEM, "counting rows: out of memory");
          break;
        }
        droplen = nl;
        capdrop = nc;
      }
      drop[ndrop] = (uint8_t *)k;
      droplen[ndrop++] = kl;
    }
  }
  /* Removing entries frees their keys: copy each out first. */
  for (size_t i = 0; !rc && i < ndrop; i++) {
    uint8_t kb[KJ_MAX_KEY];
    memcpy(kb, drop[i], droplen[i]);
    kj_map_del(overlay, kb, droplen[i]);
  }
  free(drop);
  free(droplen);
  if (rc)
    return rc;
  if (rows)
    *rows = r;
  if (bytes)
    *bytes = b;
  return KJ_OK;
}
