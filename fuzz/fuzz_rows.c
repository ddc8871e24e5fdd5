/*
 * fuzz/fuzz_rows.c - libFuzzer target for the row decoders of the native
 * domain tables (doc/FORMAT.md section 8). A memory-only native backend
 * gets one or two device slots; the input then writes raw rows - a table
 * id from the native tables, a key made of a slot id and input bytes, and
 * an input value - straight into the engine store (kj_put on
 * kj_backend_store), and every public getter and lister that decodes that
 * table is called on them. Any status is fine; a crash, leak, undefined
 * behaviour or an output without KJ_OK is a finding. Owns only its
 * backend, closed before returning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keyjournal.h"

static const uint8_t tables[] = {1,  2,  10, 11, 12, 13, 14, 20, 21, 22,
                                 23, 30, 31, 32, 33, 34, 35, 36, 40, 41};

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* Split an lp(x) || rest suffix; 0 if it does not parse. */
static int split_lp(const uint8_t *s, size_t n, const uint8_t **a, size_t *al,
                    const uint8_t **r, size_t *rl) {
  if (n < 2)
    return 0;
  size_t l = (size_t)s[0] << 8 | s[1];
  if (l > n - 2)
    return 0;
  *a = s + 2;
  *al = l;
  *r = s + 2 + l;
  *rl = n - 2 - l;
  return 1;
}

/* A read whose result is freed; out is cleared first, and a failing read
 * leaves it NULL. */
#define READ(call, out)                                                        \
  do {                                                                         \
    out = NULL;                                                                \
    if ((call) == KJ_OK)                                                       \
      kj_free(out);                                                            \
  } while (0)

/* Call the decoders of table t for a row whose key is dev || sfx. */
static void read_back(kj_backend *b, unsigned t, uint32_t dev,
                      const uint8_t *sfx, size_t sl) {
  void *v = NULL;
  size_t vl = 0;
  const uint8_t *a, *r;
  size_t al, rl;
  uint8_t idk[32];
  int has = 0;
  uint64_t u64 = 0;
  switch (t) {
  case 1:
  case 2: {
    kj_device_record *rec = NULL;
    kj_u32_list *ids = NULL;
    (void)kj_device_exists(b, NULL, dev, &has);
    READ(kj_device_load(b, NULL, dev, &rec), rec);
    READ(kj_device_list_ids(b, NULL, &ids), ids);
    break;
  }
  case 10:
    (void)kj_identity_load(b, NULL, dev, sfx, sl, idk);
    break;
  case 11:
    READ(kj_session_get(b, NULL, dev, sfx, sl, &v, &vl), v);
    (void)kj_session_has(b, NULL, dev, sfx, sl, &has);
    break;
  case 12:
  case 13: {
    kj_prekey_list *l = NULL;
    uint32_t id = sl >= 4 ? be32(sfx) : 0, mx = 0;
    if (t == 12) {
      READ(kj_prekey_load(b, NULL, dev, id, &l), l);
      READ(kj_prekey_load_batch(b, NULL, dev, &id, 1, &l), l);
      (void)kj_prekey_max_id(b, NULL, dev, &mx);
      (void)kj_prekey_mark_uploaded(b, NULL, dev, &id, 1);
    } else {
      READ(kj_signed_prekey_load(b, NULL, dev, id, &l), l);
      READ(kj_signed_prekey_load_all(b, NULL, dev, &l), l);
    }
    break;
  }
  case 14:
    READ(kj_sender_key_get(b, NULL, dev, sfx, sl, &v, &vl), v);
    break;
  case 20:
  case 21: {
    kj_sync_key *k = NULL;
    READ(kj_sync_key_get(b, NULL, dev, sfx, sl, &k), k);
    READ(kj_sync_key_latest(b, NULL, dev, &v, &vl), v);
    break;
  }
  case 22: {
    kj_sync_version *sv = NULL;
    READ(kj_sync_version_get(b, NULL, dev, sfx, sl, &sv), sv);
    break;
  }
  case 23:
    if (split_lp(sfx, sl, &a, &al, &r, &rl) &&
        kj_mutation_mac_get(b, NULL, dev, a, al, r, rl, &v, &vl, &u64) == KJ_OK)
      kj_free(v);
    break;
  case 30:
  case 35: {
    kj_blob_list *l = NULL;
    if (!split_lp(sfx, sl, &a, &al, &r, &rl))
      break;
    if (t == 30)
      READ(kj_skdm_get(b, NULL, dev, a, al, &l), l);
    else
      READ(kj_sender_key_consume_forget(b, NULL, dev, a, al, &l), l);
    break;
  }
  case 31:
  case 32: {
    kj_lid_mapping_list *l = NULL;
    if (t == 31)
      READ(kj_lid_get_by_lid(b, NULL, dev, sfx, sl, &l), l);
    else if (split_lp(sfx, sl, &a, &al, &r, &rl))
      READ(kj_lid_get_by_phone(b, NULL, dev, a, al, &l), l);
    READ(kj_lid_get_all(b, NULL, dev, &l), l);
    break;
  }
  case 33:
    if (split_lp(sfx, sl, &a, &al, &r, &rl))
      (void)kj_base_key_has_same(b, NULL, dev, a, al, r, rl, "k", 1, &has);
    break;
  case 34: {
    kj_device_list *l = NULL;
    READ(kj_device_list_get(b, NULL, dev, sfx, sl, &l), l);
    break;
  }
  case 36: {
    kj_tc_token *tok = NULL;
    kj_blob_list *l = NULL;
    READ(kj_tc_token_get(b, NULL, dev, sfx, sl, &tok), tok);
    READ(kj_tc_token_all_jids(b, NULL, dev, &l), l);
    (void)kj_tc_token_delete_expired(b, NULL, dev, 1000, &u64);
    break;
  }
  case 40:
  case 41: {
    kj_ratchet_state *st = NULL;
    const uint8_t *conv = sfx;
    size_t cl = sl;
    if (t == 41 && split_lp(sfx, sl, &a, &al, &r, &rl)) {
      conv = a;
      cl = al;
    }
    READ(kj_ratchet_load(b, NULL, dev, conv, cl, &st), st);
    (void)kj_ratchet_exists(b, NULL, dev, conv, cl, &has);
    (void)kj_ratchet_cleanup_skipped(b, NULL, dev, 60, &u64);
    break;
  }
  default:
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 2);
  kj_backend *b = NULL;
  if (fz_open_backend(fz_clock, &b) != KJ_OK)
    abort();
  kj_store *s = kj_backend_store(b);
  uint32_t slots[2];
  if (kj_device_create(b, NULL, &slots[0]) != KJ_OK ||
      kj_device_create(b, NULL, &slots[1]) != KJ_OK)
    abort();
  unsigned nrows = (unsigned)fz_range(&fp, 1, 8);
  for (unsigned i = 0; i < nrows && fz_remaining(&fp) > 0; i++) {
    unsigned t = tables[fz_u8(&fp) % sizeof tables];
    uint32_t dev = slots[fz_u8(&fp) & 1];
    size_t sl, vl;
    const uint8_t *sfx = fz_lbytes(&fp, 300, &sl);
    const uint8_t *val = fz_lbytes(&fp, 2000, &vl);
    uint8_t key[4 + 300];
    size_t kl;
    if (t == 1) { /* the meta row is not per slot */
      memcpy(key, "next_device_id", 14);
      kl = 14;
    } else {
      key[0] = (uint8_t)(dev >> 24);
      key[1] = (uint8_t)(dev >> 16);
      key[2] = (uint8_t)(dev >> 8);
      key[3] = (uint8_t)dev;
      memcpy(key + 4, sfx, sl);
      kl = 4 + sl;
    }
    (void)kj_put(s, NULL, t, key, kl, val, vl);
    read_back(b, t, dev, sfx, sl);
  }
  /* Whole-slot operations walk every table of the slot. */
  kj_u32_list *ids = NULL;
  if (kj_device_list_ids(b, NULL, &ids) == KJ_OK)
    kj_free(ids);
  for (int i = 0; i < 2; i++) {
    kj_device_record *rec = NULL;
    if (kj_device_load(b, NULL, slots[i], &rec) == KJ_OK)
      kj_free(rec);
  }
  (void)kj_device_delete(b, NULL, slots[fz_u8(&fp) & 1]);
  uint32_t extra;
  (void)kj_device_create(b, NULL, &extra);
  (void)kj_backend_close(b);
  return 0;
}
