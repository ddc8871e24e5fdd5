/*
 * oracle/workload.c - seeded workloads for the differential oracle: the
 * definition of struct ora_wop (one operation of every public domain call,
 * plus TX_BEGIN / TX_COMMIT / TX_ROLLBACK), the generator of the realistic
 * and adversarial mixes (ora_workload_gen), subsets for shrinking,
 * ora_wop_apply (run one operation through the PUBLIC API and write a
 * canonical text of its status and every output), ora_wop_describe (one
 * C-like line per operation, for reproducers) and ora_workload_dump (a
 * canonical dump of every key of the workload universe in every slot).
 *
 * Operations name keys by small codes into fixed universes (8 addresses,
 * 18 pre-key ids, 4 groups, 6 JIDs, ...), so that they collide; a few
 * special codes give the empty key, a key of exactly KJ_MAX_ID bytes and
 * one of KJ_MAX_ID + 1 bytes. Values are derived from (seed, op index)
 * only, so a workload replays exactly; operations that depend on time
 * (ratchet saves and cleanups, token expiry) take explicit timestamps,
 * cutoffs and ages, and the runner gives both backends the same clock
 * (ora_oracle_clock).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

/* ---- operation kinds ---------------------------------------------------- */

enum wk {
  W_TX_BEGIN,
  W_TX_COMMIT,
  W_TX_ROLLBACK,
  /* signal.h */
  W_IDENTITY_PUT,
  W_IDENTITY_LOAD,
  W_IDENTITY_DELETE,
  W_SESSION_PUT,
  W_SESSION_GET,
  W_SESSION_HAS,
  W_SESSION_DELETE,
  W_PREKEY_STORE,
  W_PREKEY_STORE_BATCH,
  W_PREKEY_LOAD,
  W_PREKEY_LOAD_BATCH,
  W_PREKEY_REMOVE,
  W_PREKEY_MARK_UPLOADED,
  W_PREKEY_MAX_ID,
  W_SPK_STORE,
  W_SPK_LOAD,
  W_SPK_LOAD_ALL,
  W_SPK_REMOVE,
  W_SENDER_KEY_PUT,
  W_SENDER_KEY_GET,
  W_SENDER_KEY_DELETE,
  /* appsync.h */
  W_SYNC_KEY_SET,
  W_SYNC_KEY_GET,
  W_SYNC_KEY_LATEST,
  W_SYNC_VERSION_SET,
  W_SYNC_VERSION_GET,
  W_MMAC_PUT,
  W_MMAC_GET,
  W_MMAC_DELETE,
  /* protocol.h */
  W_SKDM_GET,
  W_SKDM_ADD,
  W_SKDM_CLEAR,
  W_LID_PUT,
  W_LID_GET_BY_LID,
  W_LID_GET_BY_PHONE,
  W_LID_GET_ALL,
  W_BASE_KEY_SAVE,
  W_BASE_KEY_HAS_SAME,
  W_BASE_KEY_DELETE,
  W_DEVLIST_UPDATE,
  W_DEVLIST_GET,
  W_DEVLIST_DELETE,
  W_SK_MARK_FORGET,
  W_SK_CONSUME_FORGET,
  W_TC_PUT,
  W_TC_GET,
  W_TC_DELETE,
  W_TC_ALL_JIDS,
  W_TC_DELETE_EXPIRED,
  /* device.h */
  W_DEVICE_CREATE,
  W_DEVICE_LIST_IDS,
  W_DEVICE_EXISTS,
  W_DEVICE_SAVE,
  W_DEVICE_LOAD,
  W_DEVICE_DELETE,
  /* ratchet.h */
  W_RATCHET_SAVE,
  W_RATCHET_LOAD,
  W_RATCHET_EXISTS,
  W_RATCHET_DELETE,
  W_RATCHET_CLEANUP,
  /* issue 17 (after the others, so that their numbers stay) */
  W_IDENTITY_PUT_KEY,
  W_IDENTITY_GET_KEY,
  W_LOCAL_ID_SAVE,
  W_LOCAL_ID_LOAD,
  W_LOCAL_ID_DELETE,
  W_SESSION_STORE,
  W_SESSION_LOAD,
  W_SESSION_CONTAINS,
  W_SESSION_REMOVE,
  W_SESSION_LIST_DEVICES,
  W_SESSION_REMOVE_ALL,
  W_PREKEY_HAS,
  W_SPK_HAS,
  W_SENDER_KEY_STORE,
  W_SENDER_KEY_LOAD,
  W_DEVICE_CREATE_LABELED,
  W_DEVICE_FIND,
  W_NKINDS
};

static const char *const wk_name[W_NKINDS] = {
    [W_TX_BEGIN] = "kj_backend_begin",
    [W_TX_COMMIT] = "kj_backend_commit",
    [W_TX_ROLLBACK] = "kj_backend_rollback",
    [W_IDENTITY_PUT] = "kj_identity_put",
    [W_IDENTITY_LOAD] = "kj_identity_load",
    [W_IDENTITY_DELETE] = "kj_identity_delete",
    [W_SESSION_PUT] = "kj_session_put",
    [W_SESSION_GET] = "kj_session_get",
    [W_SESSION_HAS] = "kj_session_has",
    [W_SESSION_DELETE] = "kj_session_delete",
    [W_PREKEY_STORE] = "kj_prekey_store",
    [W_PREKEY_STORE_BATCH] = "kj_prekey_store_batch",
    [W_PREKEY_LOAD] = "kj_prekey_load",
    [W_PREKEY_LOAD_BATCH] = "kj_prekey_load_batch",
    [W_PREKEY_REMOVE] = "kj_prekey_remove",
    [W_PREKEY_MARK_UPLOADED] = "kj_prekey_mark_uploaded",
    [W_PREKEY_MAX_ID] = "kj_prekey_max_id",
    [W_SPK_STORE] = "kj_signed_prekey_store",
    [W_SPK_LOAD] = "kj_signed_prekey_load",
    [W_SPK_LOAD_ALL] = "kj_signed_prekey_load_all",
    [W_SPK_REMOVE] = "kj_signed_prekey_remove",
    [W_SENDER_KEY_PUT] = "kj_sender_key_put",
    [W_SENDER_KEY_GET] = "kj_sender_key_get",
    [W_SENDER_KEY_DELETE] = "kj_sender_key_delete",
    [W_SYNC_KEY_SET] = "kj_sync_key_set",
    [W_SYNC_KEY_GET] = "kj_sync_key_get",
    [W_SYNC_KEY_LATEST] = "kj_sync_key_latest",
    [W_SYNC_VERSION_SET] = "kj_sync_version_set",
    [W_SYNC_VERSION_GET] = "kj_sync_version_get",
    [W_MMAC_PUT] = "kj_mutation_mac_put",
    [W_MMAC_GET] = "kj_mutation_mac_get",
    [W_MMAC_DELETE] = "kj_mutation_mac_delete",
    [W_SKDM_GET] = "kj_skdm_get",
    [W_SKDM_ADD] = "kj_skdm_add",
    [W_SKDM_CLEAR] = "kj_skdm_clear",
    [W_LID_PUT] = "kj_lid_put",
    [W_LID_GET_BY_LID] = "kj_lid_get_by_lid",
    [W_LID_GET_BY_PHONE] = "kj_lid_get_by_phone",
    [W_LID_GET_ALL] = "kj_lid_get_all",
    [W_BASE_KEY_SAVE] = "kj_base_key_save",
    [W_BASE_KEY_HAS_SAME] = "kj_base_key_has_same",
    [W_BASE_KEY_DELETE] = "kj_base_key_delete",
    [W_DEVLIST_UPDATE] = "kj_device_list_update",
    [W_DEVLIST_GET] = "kj_device_list_get",
    [W_DEVLIST_DELETE] = "kj_device_list_delete",
    [W_SK_MARK_FORGET] = "kj_sender_key_mark_forget",
    [W_SK_CONSUME_FORGET] = "kj_sender_key_consume_forget",
    [W_TC_PUT] = "kj_tc_token_put",
    [W_TC_GET] = "kj_tc_token_get",
    [W_TC_DELETE] = "kj_tc_token_delete",
    [W_TC_ALL_JIDS] = "kj_tc_token_all_jids",
    [W_TC_DELETE_EXPIRED] = "kj_tc_token_delete_expired",
    [W_DEVICE_CREATE] = "kj_device_create",
    [W_DEVICE_LIST_IDS] = "kj_device_list_ids",
    [W_DEVICE_EXISTS] = "kj_device_exists",
    [W_DEVICE_SAVE] = "kj_device_save",
    [W_DEVICE_LOAD] = "kj_device_load",
    [W_DEVICE_DELETE] = "kj_device_delete",
    [W_RATCHET_SAVE] = "kj_ratchet_save",
    [W_RATCHET_LOAD] = "kj_ratchet_load",
    [W_RATCHET_EXISTS] = "kj_ratchet_exists",
    [W_RATCHET_DELETE] = "kj_ratchet_delete",
    [W_RATCHET_CLEANUP] = "kj_ratchet_cleanup_skipped",
    [W_IDENTITY_PUT_KEY] = "kj_identity_put_key",
    [W_IDENTITY_GET_KEY] = "kj_identity_get_key",
    [W_LOCAL_ID_SAVE] = "kj_local_identity_save",
    [W_LOCAL_ID_LOAD] = "kj_local_identity_load",
    [W_LOCAL_ID_DELETE] = "kj_local_identity_delete",
    [W_SESSION_STORE] = "kj_session_store",
    [W_SESSION_LOAD] = "kj_session_load",
    [W_SESSION_CONTAINS] = "kj_session_contains",
    [W_SESSION_REMOVE] = "kj_session_remove",
    [W_SESSION_LIST_DEVICES] = "kj_session_list_devices",
    [W_SESSION_REMOVE_ALL] = "kj_session_remove_all",
    [W_PREKEY_HAS] = "kj_prekey_has",
    [W_SPK_HAS] = "kj_signed_prekey_has",
    [W_SENDER_KEY_STORE] = "kj_sender_key_store",
    [W_SENDER_KEY_LOAD] = "kj_sender_key_load",
    [W_DEVICE_CREATE_LABELED] = "kj_device_create_labeled",
    [W_DEVICE_FIND] = "kj_device_find",
};

/* Flags of an operation. */
#define F_UP 0x01u      /* uploaded flag (pre-keys) */
#define F_DUP 0x02u     /* batch elements collide (duplicate keys) */
#define F_HAS1 0x04u    /* first optional field present */
#define F_HAS2 0x08u    /* second optional field present */
#define F_HAS3 0x10u    /* third optional field present */
#define F_BADELEM 0x20u /* last batch element is invalid */
#define F_ODD 0x40u     /* odd variant (uploaded = 2, ...) */
/* Address-keyed session and identity ops: the address is
 * kj_address_encode(name c, device id b) (F_NAMED), with one byte more
 * (F_NAMED | F_JUNK), so that the address calls meet the name calls. */
#define F_NAMED 0x08u /* = F_HAS2, unused by those kinds */
#define F_JUNK 0x10u  /* = F_HAS3 */

/* Slot code meaning "device id 0" (never a slot). */
#define SLOT_ZERO 0xFFu

struct ora_wop {
  uint8_t kind;
  uint8_t slot;  /* index into slots[]; beyond *nslots: an absent slot */
  uint8_t flags; /* F_* */
  uint8_t pad;
  uint16_t a, b, c; /* key codes / universe indices, per kind */
  uint32_t size;    /* main payload size */
  uint32_t size2;   /* second payload size */
  uint32_t n;       /* batch count */
  uint64_t vseed;   /* value seed, from (workload seed, op index) */
  int64_t ts;       /* timestamp, version, cutoff or age */
};

/* ---- deterministic values ------------------------------------------------ */

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t h2(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

static void fill(uint64_t seed, uint8_t *p, size_t n) {
  size_t i = 0;
  uint64_t k = 0;
  while (i < n) {
    uint64_t v = h2(seed, k++);
    for (int j = 0; j < 8 && i < n; j++, i++)
      p[i] = (uint8_t)(v >> (8 * j));
  }
}

/* A malloc'd value of n bytes (never NULL, even for n == 0). */
static uint8_t *mkval(uint64_t seed, size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "oracle: out of memory\n");
    abort();
  }
  fill(seed, p, n);
  return p;
}

/* ---- key universes ------------------------------------------------------- */

enum fam {
  FA_ADDR,
  FA_SKN,
  FA_KID,
  FA_COLL,
  FA_IDX,
  FA_GROUP,
  FA_JID,
  FA_LID,
  FA_PHONE,
  FA_MSG,
  FA_USER,
  FA_CONV,
  FA_NAME,  /* peer names of the name calls */
  FA_LABEL, /* slot labels */
  FA_N
};

static const char *const fam_prefix[FA_N] = {
    "addr", "skn",   "kid", "coll", "imac", "group", "jid",
    "lid",  "phone", "msg", "user", "conv", "nm",    "lbl"};
static const unsigned fam_size[FA_N] = {8, 6, 4, 3, 8, 4, 6,
                                        6, 4, 4, 4, 3, 5, 4};

/* Device ids of the name calls: small ones, and byte-order and sign
 * traps. */
static const uint32_t devids[] = {1,   2,          3,          0,         7,
                                  256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
#define N_DEVID (sizeof devids / sizeof devids[0])

/* Special key codes. */
#define K_NAMEMAX 0xFFFCu /* exactly KJ_MAX_NAME bytes */
#define K_MAXLEN 0xFFFDu  /* exactly KJ_MAX_ID bytes */
#define K_OVER 0xFFFEu    /* KJ_MAX_ID + 1 bytes */
#define K_EMPTY 0xFFFFu   /* 0 bytes */

#define KEYBUF (KJ_MAX_ID + 8)

/* Write the key of code in family fam into buf (KEYBUF bytes); its length.
 * The last code of a family holds a NUL and a 0xff byte, the one before it
 * is the bare prefix (a prefix of every other key). */
static size_t mkkey(int fam, unsigned code, uint8_t *buf) {
  const char *pre = fam_prefix[fam];
  size_t pl = strlen(pre);
  if (code == K_EMPTY)
    return 0;
  if (code == K_MAXLEN || code == K_OVER || code == K_NAMEMAX) {
    size_t n = code == K_MAXLEN ? KJ_MAX_ID
               : code == K_OVER ? KJ_MAX_ID + 1
                                : KJ_MAX_NAME;
    memcpy(buf, pre, pl);
    for (size_t i = pl; i < n; i++)
      buf[i] = (uint8_t)(i * 7 + (size_t)fam);
    return n;
  }
  unsigned u = fam_size[fam];
  code %= u;
  memcpy(buf, pre, pl);
  if (code == u - 2)
    return pl;
  if (code == u - 1) {
    buf[pl] = 0;
    buf[pl + 1] = 0xff;
    buf[pl + 2] = (uint8_t)('0' + code);
    return pl + 3;
  }
  return pl + (size_t)snprintf((char *)buf + pl, KEYBUF - pl, "%u", code);
}

/* Pre-key ids: 18 codes, with byte-order and sign traps. */
static const uint32_t prekey_ids[] = {
    1,  2,  3,  4,  5, 6,   7,          8,          9,
    10, 11, 12, 13, 0, 256, 0x80000000, 0xFFFFFFFF, 65536};
#define N_PREKEY (sizeof prekey_ids / sizeof prekey_ids[0])
static const uint32_t spk_ids[] = {1, 2, 3, 256, 0, 0xFFFFFFFF};
#define N_SPK (sizeof spk_ids / sizeof spk_ids[0])

/* Skipped-key universe of ratchet saves: index -> (public key, msg_num). */
#define N_SKIP_PK 3u
#define N_SKIP_NUM 8u
#define N_SKIP (N_SKIP_PK * N_SKIP_NUM)

/* Element i of a batch whose codes start at a, in a universe of u. */
static unsigned elem_code(const ora_wop *op, size_t i, unsigned u) {
  if (op->flags & F_DUP)
    return (unsigned)((op->a + h2(op->vseed, i) % 2) % u);
  return (unsigned)((op->a + i) % u);
}

/* ---- output ------------------------------------------------------------- */

static uint64_t fnv64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static void o_hex(ora_obuf *r, const uint8_t *p, size_t n) {
  static const char hx[] = "0123456789abcdef";
  char buf[128];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    buf[k++] = hx[p[i] >> 4];
    buf[k++] = hx[p[i] & 15];
    if (k == sizeof buf) {
      ora_obuf_add(r, buf, k);
      k = 0;
    }
  }
  ora_obuf_add(r, buf, k);
}

/* " k=<len>:<hex>" (long blobs: a prefix and two hashes). */
static void o_blob(ora_obuf *r, const char *k, const void *pv, size_t n) {
  const uint8_t *p = pv;
  ora_obuf_addf(r, " %s=%zu:", k, n);
  if (n && !p) {
    ora_obuf_addf(r, "NULL");
    return;
  }
  if (n <= 64) {
    o_hex(r, p, n);
    return;
  }
  o_hex(r, p, 16);
  ora_obuf_addf(r, "..#%016" PRIx64 "%016" PRIx64, fnv64(p, n),
                fnv64(p + n / 2, n - n / 2));
}

static void o_kb(ora_obuf *r, const char *k, kj_blob b) {
  o_blob(r, k, b.p, b.len);
}

static void o_i(ora_obuf *r, const char *k, int64_t v) {
  ora_obuf_addf(r, " %s=%" PRId64, k, v);
}

static void o_u(ora_obuf *r, const char *k, uint64_t v) {
  ora_obuf_addf(r, " %s=%" PRIu64, k, v);
}

/* Note an out pointer left set on failure (a contract violation), free it. */
static void o_leftover(ora_obuf *r, int rc, void *p) {
  if (rc != KJ_OK && p)
    ora_obuf_addf(r, " OUT-NOT-NULL");
  kj_free(p);
}

static void o_prekeys(ora_obuf *r, const kj_prekey_list *l) {
  if (!l)
    return;
  o_u(r, "n", l->n);
  for (size_t i = 0; i < l->n; i++) {
    ora_obuf_addf(r, " [%" PRIu32 " up=%d", l->v[i].id, l->v[i].uploaded);
    o_kb(r, "rec", l->v[i].record);
    ora_obuf_addf(r, "]");
  }
}

static void o_blobs(ora_obuf *r, const kj_blob_list *l) {
  if (!l)
    return;
  o_u(r, "n", l->n);
  for (size_t i = 0; i < l->n; i++)
    o_kb(r, "e", l->v[i]);
}

static void o_lids(ora_obuf *r, const kj_lid_mapping_list *l) {
  if (!l)
    return;
  o_u(r, "n", l->n);
  for (size_t i = 0; i < l->n; i++) {
    const kj_lid_mapping *m = &l->v[i];
    ora_obuf_addf(r, " [");
    o_kb(r, "lid", m->lid);
    o_kb(r, "phone", m->phone);
    o_i(r, "created", m->created_at);
    o_i(r, "updated", m->updated_at);
    o_kb(r, "source", m->source);
    ora_obuf_addf(r, "]");
  }
}

/* ---- building arguments ------------------------------------------------- */

typedef struct keys {
  size_t n;
  kj_blob *v;
  uint8_t *mem;
} keys;

/* n keys of family fam (elem_code from op->a), the last one invalid when
 * F_BADELEM. */
static void mkkeys(const ora_wop *op, int fam, size_t n, keys *k) {
  k->n = n;
  k->v = calloc(n ? n : 1, sizeof *k->v);
  k->mem = malloc((n ? n : 1) * KEYBUF);
  if (!k->v || !k->mem) {
    fprintf(stderr, "oracle: out of memory\n");
    abort();
  }
  for (size_t i = 0; i < n; i++) {
    uint8_t *p = k->mem + i * KEYBUF;
    unsigned code = elem_code(op, i, fam_size[fam]);
    if ((op->flags & F_BADELEM) && i == n - 1)
      code = (op->flags & F_ODD) ? K_OVER : K_EMPTY;
    k->v[i].len = mkkey(fam, code, p);
    k->v[i].p = p;
  }
}

static void freekeys(keys *k) {
  free(k->v);
  free(k->mem);
}

static void mkrecord(const ora_wop *op, kj_device_record *r, uint8_t **mem) {
  memset(r, 0, sizeof *r);
  uint64_t s = op->vseed;
  size_t acc = op->size, push = op->size2 % (KJ_MAX_ID + 2);
  uint8_t *m = mkval(s, acc + push + 4 * 40);
  *mem = m;
  size_t off = 0;
  r->has_phone_jid = !!(op->flags & F_HAS1);
  r->phone_jid.p = m + off;
  r->phone_jid.len = r->has_phone_jid ? 12 + op->a % 8 : 0;
  off += 40;
  r->has_lid = !!(op->flags & F_HAS2);
  r->lid.p = m + off;
  r->lid.len = r->has_lid ? 10 + op->b % 8 : 0;
  off += 40;
  r->has_edge_routing = !!(op->flags & F_HAS3);
  r->edge_routing.p = m + off;
  r->edge_routing.len = r->has_edge_routing ? (size_t)(op->c % 40) : 0;
  off += 40;
  r->has_props_hash = !!(op->flags & F_UP);
  r->props_hash.p = m + off;
  r->props_hash.len = r->has_props_hash ? 8 : 0;
  off += 40;
  r->has_account = !(op->flags & F_ODD);
  r->account.p = m + off;
  r->account.len = r->has_account ? acc : 0;
  off += acc;
  r->push_name.p = m + off;
  r->push_name.len = push;
  r->registration_id = (uint32_t)h2(s, 1);
  fill(h2(s, 2), r->noise_pub, 32);
  fill(h2(s, 3), r->noise_priv, 32);
  fill(h2(s, 4), r->identity_pub, 32);
  fill(h2(s, 5), r->identity_priv, 32);
  fill(h2(s, 6), r->signed_prekey_pub, 32);
  fill(h2(s, 7), r->signed_prekey_priv, 32);
  r->signed_prekey_id = (uint32_t)h2(s, 8);
  fill(h2(s, 9), r->signed_prekey_sig, 64);
  fill(h2(s, 10), r->adv_secret, 32);
  r->app_version[0] = 2;
  r->app_version[1] = (uint32_t)(h2(s, 11) % 3000);
  r->app_version[2] = (uint32_t)(h2(s, 12) % 10);
  r->app_version_fetched_at_ms = op->ts;
}

static void o_record(ora_obuf *r, const kj_device_record *d) {
  if (!d)
    return;
  ora_obuf_addf(r, " hp=%d", d->has_phone_jid);
  if (d->has_phone_jid)
    o_kb(r, "phone", d->phone_jid);
  ora_obuf_addf(r, " hl=%d", d->has_lid);
  if (d->has_lid)
    o_kb(r, "lid", d->lid);
  o_u(r, "reg", d->registration_id);
  o_blob(r, "noise", d->noise_pub, 32);
  o_blob(r, "noisep", d->noise_priv, 32);
  o_blob(r, "ident", d->identity_pub, 32);
  o_blob(r, "identp", d->identity_priv, 32);
  o_blob(r, "spk", d->signed_prekey_pub, 32);
  o_blob(r, "spkp", d->signed_prekey_priv, 32);
  o_u(r, "spkid", d->signed_prekey_id);
  o_blob(r, "sig", d->signed_prekey_sig, 64);
  o_blob(r, "adv", d->adv_secret, 32);
  ora_obuf_addf(r, " ha=%d", d->has_account);
  if (d->has_account)
    o_kb(r, "account", d->account);
  o_kb(r, "push", d->push_name);
  ora_obuf_addf(r, " ver=%" PRIu32 ".%" PRIu32 ".%" PRIu32, d->app_version[0],
                d->app_version[1], d->app_version[2]);
  o_i(r, "fetched", d->app_version_fetched_at_ms);
  ora_obuf_addf(r, " he=%d", d->has_edge_routing);
  if (d->has_edge_routing)
    o_kb(r, "edge", d->edge_routing);
  ora_obuf_addf(r, " hh=%d", d->has_props_hash);
  if (d->has_props_hash)
    o_kb(r, "props", d->props_hash);
}

static void o_ratchet(ora_obuf *r, const kj_ratchet_state *s) {
  if (!s)
    return;
  o_blob(r, "root", s->root_key, 32);
  ora_obuf_addf(r, " hs=%d", s->has_sending_chain);
  if (s->has_sending_chain)
    o_blob(r, "send", s->sending_chain, 32);
  ora_obuf_addf(r, " hr=%d", s->has_receiving_chain);
  if (s->has_receiving_chain)
    o_blob(r, "recv", s->receiving_chain, 32);
  o_blob(r, "dh", s->dh_self_secret, 32);
  ora_obuf_addf(r, " hd=%d", s->has_dh_remote);
  if (s->has_dh_remote)
    o_blob(r, "remote", s->dh_remote, 32);
  ora_obuf_addf(r, " ms=%" PRIu32 " mr=%" PRIu32 " pc=%" PRIu32, s->msg_send,
                s->msg_recv, s->prev_chain_len);
  o_u(r, "nsk", s->n_skipped);
  for (size_t i = 0; i < s->n_skipped; i++) {
    const kj_skipped_key *k = &s->skipped[i];
    ora_obuf_addf(r, " [");
    o_hex(r, k->public_key, 4);
    ora_obuf_addf(r, " #%" PRIu32, k->msg_num);
    o_blob(r, "mk", k->message_key, 32);
    o_i(r, "at", k->created_at);
    ora_obuf_addf(r, "]");
  }
}

/* ---- apply -------------------------------------------------------------- */

static uint32_t op_dev(const ora_wop *op, const uint32_t *slots,
                       size_t nslots) {
  if (op->slot == SLOT_ZERO)
    return 0;
  if (op->slot < nslots)
    return slots[op->slot];
  return 0x7FFFFF00u + op->slot; /* never created */
}

/* The address of an address-keyed session or identity op into buf
 * (KEYBUF bytes): the FA_ADDR key of a, or, with F_NAMED, the encoded
 * address of (name c, device id b), one byte longer with F_JUNK. */
static size_t op_addr(const ora_wop *op, uint8_t *buf) {
  if (!(op->flags & F_NAMED))
    return mkkey(FA_ADDR, op->a, buf);
  uint8_t nm[KEYBUF];
  size_t nl = mkkey(FA_NAME, op->c, nm), al = 0;
  if (kj_address_encode(nm, nl, devids[op->b % N_DEVID], buf, &al))
    return 0; /* a name the encoding refuses: an empty address */
  if (op->flags & F_JUNK)
    buf[al++] = 'x';
  return al;
}

/* A user record of an op that stores one (session, sender key): size2
 * bytes with F_HAS1, else none; F_ODD makes it NULL with its length (a
 * caller's error). */
static uint8_t *op_urec(const ora_wop *op, size_t *ulen) {
  *ulen = (op->flags & F_HAS1) || (op->flags & F_ODD) ? op->size2 : 0;
  if (op->flags & F_ODD)
    return NULL;
  return *ulen ? mkval(h2(op->vseed, 0x05e5), *ulen) : NULL;
}

/* The outputs of a load with a user record; frees both. */
static void o_rec_user(ora_obuf *o, int rc, void *v, size_t vl, void *u,
                       size_t ul) {
  if (rc == KJ_OK) {
    o_blob(o, "rec", v, vl);
    ora_obuf_addf(o, " hu=%d", u != NULL);
    if (u)
      o_blob(o, "urec", u, ul);
  } else if (u) {
    ora_obuf_addf(o, " URec-NOT-NULL");
  }
  o_leftover(o, rc, v);
  kj_free(u);
}

static void apply_dev(const ora_wop *op, kj_backend *b, kj_tx *t, uint32_t dev,
                      uint32_t *slots, size_t *nslots, ora_obuf *r) {
  uint8_t k1[KEYBUF], k2[KEYBUF];
  size_t l1, l2;
  int rc = KJ_OK;
  const char *name = op->kind < W_NKINDS ? wk_name[op->kind] : "?";
  ora_obuf out = {0};
  ora_obuf *o = &out;

  switch ((enum wk)op->kind) {
  case W_TX_BEGIN:
  case W_TX_COMMIT:
  case W_TX_ROLLBACK:
  case W_NKINDS:
    rc = KJ_EINVAL; /* the runner applies these */
    break;

  case W_IDENTITY_PUT: {
    uint8_t key[32];
    fill(op->vseed, key, 32);
    l1 = mkkey(FA_ADDR, op->a, k1);
    rc = kj_identity_put(b, t, dev, k1, l1, key);
    break;
  }
  case W_IDENTITY_LOAD: {
    uint8_t key[32];
    memset(key, 0xA5, 32);
    l1 = mkkey(FA_ADDR, op->a, k1);
    rc = kj_identity_load(b, t, dev, k1, l1, key);
    if (rc == KJ_OK)
      o_blob(o, "key", key, 32);
    break;
  }
  case W_IDENTITY_DELETE:
    l1 = mkkey(FA_ADDR, op->a, k1);
    rc = kj_identity_delete(b, t, dev, k1, l1);
    break;

  case W_SESSION_PUT: {
    uint8_t *v = mkval(op->vseed, op->size);
    l1 = op_addr(op, k1);
    rc = kj_session_put(b, t, dev, k1, l1, v, op->size);
    free(v);
    break;
  }
  case W_SESSION_GET:
  case W_SENDER_KEY_GET: {
    void *v = NULL;
    size_t vl = 0;
    if (op->kind == W_SESSION_GET) {
      l1 = op_addr(op, k1);
      rc = kj_session_get(b, t, dev, k1, l1, &v, &vl);
    } else {
      l1 = mkkey(FA_SKN, op->a, k1);
      rc = kj_sender_key_get(b, t, dev, k1, l1, &v, &vl);
    }
    if (rc == KJ_OK)
      o_blob(o, "rec", v, vl);
    o_leftover(o, rc, v);
    break;
  }
  case W_SESSION_HAS: {
    int has = -1;
    l1 = op_addr(op, k1);
    rc = kj_session_has(b, t, dev, k1, l1, &has);
    if (rc == KJ_OK)
      o_i(o, "has", has);
    break;
  }
  case W_SESSION_DELETE:
    l1 = op_addr(op, k1);
    rc = kj_session_delete(b, t, dev, k1, l1);
    break;

  case W_PREKEY_STORE: {
    uint8_t *v = mkval(op->vseed, op->size);
    int up = (op->flags & F_ODD) ? 2 : !!(op->flags & F_UP);
    rc = kj_prekey_store(b, t, dev, prekey_ids[op->a % N_PREKEY], v, op->size,
                         up);
    free(v);
    break;
  }
  case W_PREKEY_STORE_BATCH: {
    size_t n = op->n;
    kj_prekey *ks = calloc(n ? n : 1, sizeof *ks);
    uint8_t **vals = calloc(n ? n : 1, sizeof *vals);
    if (!ks || !vals)
      abort();
    for (size_t i = 0; i < n; i++) {
      size_t sz = op->size + (size_t)(h2(op->vseed, i + 100) % 48);
      if ((op->flags & F_BADELEM) && i == n - 1)
        sz = (op->flags & F_ODD) ? KJ_MAX_RECORD + 1 : 0;
      vals[i] = mkval(h2(op->vseed, i), sz);
      ks[i].id = prekey_ids[elem_code(op, i, N_PREKEY)];
      ks[i].uploaded = 0;
      ks[i].record.p = vals[i];
      ks[i].record.len = sz;
    }
    rc = kj_prekey_store_batch(b, t, dev, ks, n, !!(op->flags & F_UP));
    for (size_t i = 0; i < n; i++)
      free(vals[i]);
    free(vals);
    free(ks);
    break;
  }
  case W_PREKEY_LOAD:
  case W_SPK_LOAD: {
    kj_prekey_list *l = NULL;
    if (op->kind == W_PREKEY_LOAD)
      rc = kj_prekey_load(b, t, dev, prekey_ids[op->a % N_PREKEY], &l);
    else
      rc = kj_signed_prekey_load(b, t, dev, spk_ids[op->a % N_SPK], &l);
    if (rc == KJ_OK)
      o_prekeys(o, l);
    o_leftover(o, rc, l);
    break;
  }
  case W_PREKEY_LOAD_BATCH:
  case W_PREKEY_MARK_UPLOADED: {
    size_t n = op->n;
    uint32_t *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
      abort();
    for (size_t i = 0; i < n; i++)
      ids[i] = prekey_ids[elem_code(op, i, N_PREKEY)];
    if (op->kind == W_PREKEY_LOAD_BATCH) {
      kj_prekey_list *l = NULL;
      rc = kj_prekey_load_batch(b, t, dev, ids, n, &l);
      if (rc == KJ_OK)
        o_prekeys(o, l);
      o_leftover(o, rc, l);
    } else {
      rc = kj_prekey_mark_uploaded(b, t, dev, ids, n);
    }
    free(ids);
    break;
  }
  case W_PREKEY_REMOVE:
    rc = kj_prekey_remove(b, t, dev, prekey_ids[op->a % N_PREKEY]);
    break;
  case W_PREKEY_MAX_ID: {
    uint32_t m = 0xDEADBEEF;
    rc = kj_prekey_max_id(b, t, dev, &m);
    if (rc == KJ_OK)
      o_u(o, "max", m);
    break;
  }

  case W_SPK_STORE: {
    uint8_t *v = mkval(op->vseed, op->size);
    rc = kj_signed_prekey_store(b, t, dev, spk_ids[op->a % N_SPK], v, op->size);
    free(v);
    break;
  }
  case W_SPK_LOAD_ALL: {
    kj_prekey_list *l = NULL;
    rc = kj_signed_prekey_load_all(b, t, dev, &l);
    if (rc == KJ_OK)
      o_prekeys(o, l);
    o_leftover(o, rc, l);
    break;
  }
  case W_SPK_REMOVE:
    rc = kj_signed_prekey_remove(b, t, dev, spk_ids[op->a % N_SPK]);
    break;

  case W_SENDER_KEY_PUT: {
    uint8_t *v = mkval(op->vseed, op->size);
    l1 = mkkey(FA_SKN, op->a, k1);
    rc = kj_sender_key_put(b, t, dev, k1, l1, v, op->size);
    free(v);
    break;
  }
  case W_SENDER_KEY_DELETE:
    l1 = mkkey(FA_SKN, op->a, k1);
    rc = kj_sender_key_delete(b, t, dev, k1, l1);
    break;

  case W_SYNC_KEY_SET: {
    uint8_t *v = mkval(op->vseed, (size_t)op->size + op->size2);
    kj_sync_key key = {.key_data = {v, op->size},
                       .fingerprint = {v + op->size, op->size2},
                       .timestamp = op->ts};
    l1 = mkkey(FA_KID, op->a, k1);
    rc = kj_sync_key_set(b, t, dev, k1, l1, &key);
    free(v);
    break;
  }
  case W_SYNC_KEY_GET: {
    kj_sync_key *key = NULL;
    l1 = mkkey(FA_KID, op->a, k1);
    rc = kj_sync_key_get(b, t, dev, k1, l1, &key);
    if (rc == KJ_OK && key) {
      o_kb(o, "data", key->key_data);
      o_kb(o, "fp", key->fingerprint);
      o_i(o, "ts", key->timestamp);
    }
    o_leftover(o, rc, key);
    break;
  }
  case W_SYNC_KEY_LATEST: {
    void *id = NULL;
    size_t il = 0;
    rc = kj_sync_key_latest(b, t, dev, &id, &il);
    if (rc == KJ_OK)
      o_blob(o, "id", id, il);
    o_leftover(o, rc, id);
    break;
  }
  case W_SYNC_VERSION_SET: {
    kj_sync_version v;
    memset(&v, 0, sizeof v);
    keys ks;
    mkkeys(op, FA_IDX, op->n, &ks);
    uint8_t *vals = mkval(op->vseed, (size_t)op->n * op->size + 1);
    kj_sync_entry *e = calloc(op->n ? op->n : 1, sizeof *e);
    if (!e)
      abort();
    for (size_t i = 0; i < op->n; i++) {
      e[i].name = ks.v[i];
      e[i].value.p = vals + i * op->size;
      e[i].value.len = op->size - (size_t)(h2(op->vseed, i) % (op->size + 1));
    }
    v.version = (uint64_t)op->ts;
    fill(h2(op->vseed, 77), v.hash, sizeof v.hash);
    v.n = op->n;
    v.entries = e;
    l1 = mkkey(FA_COLL, op->b, k1);
    rc = kj_sync_version_set(b, t, dev, k1, l1, &v);
    free(e);
    free(vals);
    freekeys(&ks);
    break;
  }
  case W_SYNC_VERSION_GET: {
    kj_sync_version *v = NULL;
    l1 = mkkey(FA_COLL, op->b, k1);
    rc = kj_sync_version_get(b, t, dev, k1, l1, &v);
    if (rc == KJ_OK && v) {
      o_u(o, "version", v->version);
      o_blob(o, "hash", v->hash, sizeof v->hash);
      o_u(o, "n", v->n);
      for (size_t i = 0; i < v->n; i++) {
        o_kb(o, "name", v->entries[i].name);
        o_kb(o, "value", v->entries[i].value);
      }
    }
    o_leftover(o, rc, v);
    break;
  }
  case W_MMAC_PUT: {
    keys ks;
    mkkeys(op, FA_IDX, op->n, &ks);
    kj_mutation_mac *m = calloc(op->n ? op->n : 1, sizeof *m);
    uint8_t *vals = mkval(op->vseed, (size_t)op->n * op->size + 1);
    if (!m)
      abort();
    for (size_t i = 0; i < op->n; i++) {
      m[i].index_mac = ks.v[i];
      m[i].value_mac.p = vals + i * op->size;
      m[i].value_mac.len = op->size;
    }
    l1 = mkkey(FA_COLL, op->b, k1);
    rc = kj_mutation_mac_put(b, t, dev, k1, l1, (uint64_t)op->ts, m, op->n);
    free(vals);
    free(m);
    freekeys(&ks);
    break;
  }
  case W_MMAC_GET: {
    void *v = NULL;
    size_t vl = 0;
    uint64_t ver = 0xDEAD;
    l1 = mkkey(FA_COLL, op->b, k1);
    l2 = mkkey(FA_IDX, op->a, k2);
    rc = kj_mutation_mac_get(b, t, dev, k1, l1, k2, l2, &v, &vl, &ver);
    if (rc == KJ_OK) {
      o_blob(o, "mac", v, vl);
      o_u(o, "version", ver);
    }
    o_leftover(o, rc, v);
    break;
  }
  case W_MMAC_DELETE: {
    keys ks;
    mkkeys(op, FA_IDX, op->n, &ks);
    l1 = mkkey(FA_COLL, op->b, k1);
    rc = kj_mutation_mac_delete(b, t, dev, k1, l1, ks.v, op->n);
    freekeys(&ks);
    break;
  }

  case W_SKDM_GET:
  case W_SK_CONSUME_FORGET: {
    kj_blob_list *l = NULL;
    l1 = mkkey(FA_GROUP, op->b, k1);
    if (op->kind == W_SKDM_GET)
      rc = kj_skdm_get(b, t, dev, k1, l1, &l);
    else
      rc = kj_sender_key_consume_forget(b, t, dev, k1, l1, &l);
    if (rc == KJ_OK)
      o_blobs(o, l);
    o_leftover(o, rc, l);
    break;
  }
  case W_SKDM_ADD: {
    keys ks;
    mkkeys(op, FA_JID, op->n, &ks);
    l1 = mkkey(FA_GROUP, op->b, k1);
    rc = kj_skdm_add(b, t, dev, k1, l1, ks.v, op->n);
    freekeys(&ks);
    break;
  }
  case W_SKDM_CLEAR:
    l1 = mkkey(FA_GROUP, op->b, k1);
    rc = kj_skdm_clear(b, t, dev, k1, l1);
    break;
  case W_SK_MARK_FORGET:
    l1 = mkkey(FA_GROUP, op->b, k1);
    l2 = mkkey(FA_JID, op->a, k2);
    rc = kj_sender_key_mark_forget(b, t, dev, k1, l1, k2, l2);
    break;

  case W_LID_PUT: {
    uint8_t *src = mkval(op->vseed, op->size);
    kj_lid_mapping m;
    l1 = mkkey(FA_LID, op->a, k1);
    l2 = mkkey(FA_PHONE, op->b, k2);
    m.lid.p = k1;
    m.lid.len = l1;
    m.phone.p = k2;
    m.phone.len = l2;
    m.created_at = 1000 * (int64_t)op->c;
    m.updated_at = op->ts;
    m.source.p = src;
    m.source.len = op->size;
    rc = kj_lid_put(b, t, dev, &m);
    free(src);
    break;
  }
  case W_LID_GET_BY_LID:
  case W_LID_GET_BY_PHONE:
  case W_LID_GET_ALL: {
    kj_lid_mapping_list *l = NULL;
    if (op->kind == W_LID_GET_BY_LID) {
      l1 = mkkey(FA_LID, op->a, k1);
      rc = kj_lid_get_by_lid(b, t, dev, k1, l1, &l);
    } else if (op->kind == W_LID_GET_BY_PHONE) {
      l1 = mkkey(FA_PHONE, op->b, k1);
      rc = kj_lid_get_by_phone(b, t, dev, k1, l1, &l);
    } else {
      rc = kj_lid_get_all(b, t, dev, &l);
    }
    if (rc == KJ_OK)
      o_lids(o, l);
    o_leftover(o, rc, l);
    break;
  }

  case W_BASE_KEY_SAVE:
  case W_BASE_KEY_HAS_SAME: {
    /* The base key depends on (a, b, c, size) only, so has_same can hit. */
    uint8_t *v = mkval(h2(h2(op->a, op->b), op->c), op->size);
    l1 = mkkey(FA_ADDR, op->a, k1);
    l2 = mkkey(FA_MSG, op->b, k2);
    if (op->kind == W_BASE_KEY_SAVE) {
      rc = kj_base_key_save(b, t, dev, k1, l1, k2, l2, v, op->size);
    } else {
      int same = -1;
      rc = kj_base_key_has_same(b, t, dev, k1, l1, k2, l2, v, op->size, &same);
      if (rc == KJ_OK)
        o_i(o, "same", same);
    }
    free(v);
    break;
  }
  case W_BASE_KEY_DELETE:
    l1 = mkkey(FA_ADDR, op->a, k1);
    l2 = mkkey(FA_MSG, op->b, k2);
    rc = kj_base_key_delete(b, t, dev, k1, l1, k2, l2);
    break;

  case W_DEVLIST_UPDATE: {
    kj_device_list d;
    uint8_t *ph = mkval(op->vseed, op->size);
    kj_device_entry *e = calloc(op->n ? op->n : 1, sizeof *e);
    if (!e)
      abort();
    for (size_t i = 0; i < op->n; i++) {
      uint64_t h = h2(op->vseed, i);
      e[i].device_id = (uint32_t)(h % 100);
      e[i].has_key_index = (int)((h >> 8) & 1);
      e[i].key_index = e[i].has_key_index ? (uint32_t)(h >> 16) : 0;
    }
    memset(&d, 0, sizeof d);
    l1 = mkkey(FA_USER, op->a, k1);
    d.user.p = k1;
    d.user.len = l1;
    d.timestamp = op->ts;
    d.has_phash = !!(op->flags & F_HAS1);
    d.phash.p = ph;
    d.phash.len = d.has_phash ? op->size : 0;
    d.n = op->n;
    d.devices = e;
    rc = kj_device_list_update(b, t, dev, &d);
    free(e);
    free(ph);
    break;
  }
  case W_DEVLIST_GET: {
    kj_device_list *d = NULL;
    l1 = mkkey(FA_USER, op->a, k1);
    rc = kj_device_list_get(b, t, dev, k1, l1, &d);
    if (rc == KJ_OK && d) {
      o_kb(o, "user", d->user);
      o_i(o, "ts", d->timestamp);
      ora_obuf_addf(o, " hp=%d", d->has_phash);
      if (d->has_phash)
        o_kb(o, "phash", d->phash);
      o_u(o, "n", d->n);
      for (size_t i = 0; i < d->n; i++) {
        ora_obuf_addf(o, " [%" PRIu32, d->devices[i].device_id);
        if (d->devices[i].has_key_index)
          ora_obuf_addf(o, " ki=%" PRIu32, d->devices[i].key_index);
        ora_obuf_addf(o, "]");
      }
    }
    o_leftover(o, rc, d);
    break;
  }
  case W_DEVLIST_DELETE:
    l1 = mkkey(FA_USER, op->a, k1);
    rc = kj_device_list_delete(b, t, dev, k1, l1);
    break;

  case W_TC_PUT: {
    uint8_t *v = mkval(op->vseed, op->size);
    kj_tc_token tok = {.token = {v, op->size},
                       .token_ts = op->ts,
                       .has_sender_ts = !!(op->flags & F_HAS1),
                       .sender_ts = (op->flags & F_HAS1) ? op->ts + op->c : 0};
    l1 = mkkey(FA_JID, op->a, k1);
    rc = kj_tc_token_put(b, t, dev, k1, l1, &tok);
    free(v);
    break;
  }
  case W_TC_GET: {
    kj_tc_token *tok = NULL;
    l1 = mkkey(FA_JID, op->a, k1);
    rc = kj_tc_token_get(b, t, dev, k1, l1, &tok);
    if (rc == KJ_OK && tok) {
      o_kb(o, "token", tok->token);
      o_i(o, "ts", tok->token_ts);
      ora_obuf_addf(o, " hs=%d", tok->has_sender_ts);
      if (tok->has_sender_ts)
        o_i(o, "sender_ts", tok->sender_ts);
    }
    o_leftover(o, rc, tok);
    break;
  }
  case W_TC_DELETE:
    l1 = mkkey(FA_JID, op->a, k1);
    rc = kj_tc_token_delete(b, t, dev, k1, l1);
    break;
  case W_TC_ALL_JIDS: {
    kj_blob_list *l = NULL;
    rc = kj_tc_token_all_jids(b, t, dev, &l);
    if (rc == KJ_OK)
      o_blobs(o, l);
    o_leftover(o, rc, l);
    break;
  }
  case W_TC_DELETE_EXPIRED:
  case W_RATCHET_CLEANUP: {
    uint64_t removed = 0xDEAD;
    if (op->kind == W_TC_DELETE_EXPIRED)
      rc = kj_tc_token_delete_expired(b, t, dev, op->ts, &removed);
    else
      rc = kj_ratchet_cleanup_skipped(b, t, dev, op->ts, &removed);
    if (rc == KJ_OK)
      o_u(o, "removed", removed);
    break;
  }

  case W_DEVICE_CREATE: {
    uint32_t id = 0;
    rc = kj_device_create(b, t, &id);
    if (rc == KJ_OK) {
      o_u(o, "id", id);
      if (*nslots < ORA_WORKLOAD_MAX_SLOTS)
        slots[(*nslots)++] = id;
    }
    break;
  }
  case W_DEVICE_LIST_IDS: {
    kj_u32_list *l = NULL;
    rc = kj_device_list_ids(b, t, &l);
    if (rc == KJ_OK && l) {
      o_u(o, "n", l->n);
      for (size_t i = 0; i < l->n; i++)
        ora_obuf_addf(o, " %" PRIu32, l->v[i]);
    }
    o_leftover(o, rc, l);
    break;
  }
  case W_DEVICE_EXISTS: {
    int ex = -1;
    rc = kj_device_exists(b, t, dev, &ex);
    if (rc == KJ_OK)
      o_i(o, "exists", ex);
    break;
  }
  case W_DEVICE_SAVE: {
    kj_device_record d;
    uint8_t *mem;
    mkrecord(op, &d, &mem);
    rc = kj_device_save(b, t, dev, &d);
    free(mem);
    break;
  }
  case W_DEVICE_LOAD: {
    kj_device_record *d = NULL;
    rc = kj_device_load(b, t, dev, &d);
    if (rc == KJ_OK)
      o_record(o, d);
    o_leftover(o, rc, d);
    break;
  }
  case W_DEVICE_DELETE:
    rc = kj_device_delete(b, t, dev);
    break;

  case W_IDENTITY_PUT_KEY: {
    uint8_t key[40];
    fill(op->vseed, key, sizeof key);
    l1 = op_addr(op, k1);
    rc = kj_identity_put_key(b, t, dev, k1, l1, key, op->size);
    break;
  }
  case W_IDENTITY_GET_KEY: {
    uint8_t key[KJ_IDENTITY_KEY_MAX];
    size_t kl = 99;
    memset(key, 0xA5, sizeof key);
    l1 = op_addr(op, k1);
    rc = kj_identity_get_key(b, t, dev, k1, l1, key, &kl);
    if (rc == KJ_OK)
      o_blob(o, "key", key, kl);
    else if (kl != 0 || key[0] != 0xA5)
      ora_obuf_addf(o, " OUT-TOUCHED");
    break;
  }
  case W_LOCAL_ID_SAVE: {
    kj_local_identity id;
    memset(&id, 0, sizeof id);
    id.registration_id = (uint32_t)h2(op->vseed, 1);
    id.public_len = op->size;
    fill(h2(op->vseed, 2), id.public_key, sizeof id.public_key);
    fill(h2(op->vseed, 3), id.private_key, sizeof id.private_key);
    rc = kj_local_identity_save(b, t, dev, &id);
    break;
  }
  case W_LOCAL_ID_LOAD: {
    kj_local_identity id;
    memset(&id, 0xA5, sizeof id);
    rc = kj_local_identity_load(b, t, dev, &id);
    if (rc == KJ_OK) {
      o_u(o, "reg", id.registration_id);
      o_blob(o, "pub", id.public_key, sizeof id.public_key);
      o_u(o, "publen", id.public_len);
      o_blob(o, "priv", id.private_key, sizeof id.private_key);
    } else if (id.registration_id != 0xA5A5A5A5u) {
      ora_obuf_addf(o, " OUT-TOUCHED");
    }
    break;
  }
  case W_LOCAL_ID_DELETE:
    rc = kj_local_identity_delete(b, t, dev);
    break;

  case W_SESSION_STORE:
  case W_SENDER_KEY_STORE: {
    uint8_t *v = mkval(op->vseed, op->size);
    size_t ul;
    uint8_t *u = op_urec(op, &ul);
    if (op->kind == W_SESSION_STORE) {
      l1 = mkkey(FA_NAME, op->a, k1);
      rc = kj_session_store(b, t, dev, k1, l1, devids[op->b % N_DEVID], v,
                            op->size, u, ul);
    } else {
      l1 = mkkey(FA_SKN, op->a, k1);
      rc = kj_sender_key_store(b, t, dev, k1, l1, v, op->size, u, ul);
    }
    free(u);
    free(v);
    break;
  }
  case W_SESSION_LOAD:
  case W_SENDER_KEY_LOAD: {
    void *v = NULL, *u = NULL;
    size_t vl = 0, ul = 0;
    if (op->kind == W_SESSION_LOAD) {
      l1 = mkkey(FA_NAME, op->a, k1);
      rc = kj_session_load(b, t, dev, k1, l1, devids[op->b % N_DEVID], &v, &vl,
                           &u, &ul);
    } else {
      l1 = mkkey(FA_SKN, op->a, k1);
      rc = kj_sender_key_load(b, t, dev, k1, l1, &v, &vl, &u, &ul);
    }
    o_rec_user(o, rc, v, vl, u, ul);
    break;
  }
  case W_SESSION_CONTAINS: {
    int has = -1;
    l1 = mkkey(FA_NAME, op->a, k1);
    rc = kj_session_contains(b, t, dev, k1, l1, devids[op->b % N_DEVID], &has);
    if (rc == KJ_OK)
      o_i(o, "has", has);
    break;
  }
  case W_SESSION_REMOVE:
    l1 = mkkey(FA_NAME, op->a, k1);
    rc = kj_session_remove(b, t, dev, k1, l1, devids[op->b % N_DEVID]);
    break;
  case W_SESSION_LIST_DEVICES: {
    kj_u32_list *l = NULL;
    l1 = mkkey(FA_NAME, op->a, k1);
    rc = kj_session_list_devices(b, t, dev, k1, l1, &l);
    if (rc == KJ_OK && l) {
      o_u(o, "n", l->n);
      for (size_t i = 0; i < l->n; i++)
        ora_obuf_addf(o, " %" PRIu32, l->v[i]);
    }
    o_leftover(o, rc, l);
    break;
  }
  case W_SESSION_REMOVE_ALL: {
    uint64_t removed = 0xDEAD;
    l1 = mkkey(FA_NAME, op->a, k1);
    rc = kj_session_remove_all(b, t, dev, k1, l1, &removed);
    o_u(o, "removed", removed); /* 0 on failure, as the header says */
    break;
  }
  case W_PREKEY_HAS:
  case W_SPK_HAS: {
    int has = -1;
    if (op->kind == W_PREKEY_HAS)
      rc = kj_prekey_has(b, t, dev, prekey_ids[op->a % N_PREKEY], &has);
    else
      rc = kj_signed_prekey_has(b, t, dev, spk_ids[op->a % N_SPK], &has);
    o_i(o, "has", has);
    break;
  }
  case W_DEVICE_CREATE_LABELED: {
    uint32_t id = 0xDEAD;
    l1 = mkkey(FA_LABEL, op->a, k1);
    rc = kj_device_create_labeled(b, t, k1, l1, &id);
    o_u(o, "id", id);
    if (rc == KJ_OK && *nslots < ORA_WORKLOAD_MAX_SLOTS)
      slots[(*nslots)++] = id;
    break;
  }
  case W_DEVICE_FIND: {
    uint32_t id = 0xDEAD;
    l1 = mkkey(FA_LABEL, op->a, k1);
    rc = kj_device_find(b, t, k1, l1, &id);
    o_u(o, "id", id);
    break;
  }

  case W_RATCHET_SAVE: {
    size_t n = op->n;
    kj_ratchet_state *s = kj_ratchet_state_alloc(n);
    if (!s) {
      ora_obuf_addf(o, " ALLOC-FAILED");
      rc = KJ_ENOMEM;
      break;
    }
    uint64_t v = op->vseed;
    fill(h2(v, 1), s->root_key, 32);
    s->has_sending_chain = !!(op->flags & F_HAS1);
    if (s->has_sending_chain)
      fill(h2(v, 2), s->sending_chain, 32);
    s->has_receiving_chain = !!(op->flags & F_HAS2);
    if (s->has_receiving_chain)
      fill(h2(v, 3), s->receiving_chain, 32);
    fill(h2(v, 4), s->dh_self_secret, 32);
    s->has_dh_remote = !!(op->flags & F_HAS3);
    if (s->has_dh_remote)
      fill(h2(v, 5), s->dh_remote, 32);
    s->msg_send = (uint32_t)(h2(v, 6) % 1000);
    s->msg_recv = (uint32_t)(h2(v, 7) % 1000);
    s->prev_chain_len = (uint32_t)(h2(v, 8) % 50);
    s->n_skipped = n;
    for (size_t i = 0; i < n; i++) {
      unsigned j = (op->flags & F_DUP)
                       ? (unsigned)((op->b + h2(v, i + 9) % 2) % N_SKIP)
                       : (unsigned)((op->b + i) % N_SKIP);
      if (n > N_SKIP) /* large sets: distinct msg_nums */
        j = (unsigned)(op->b + i);
      fill(h2(0x5eed, j % N_SKIP_PK), s->skipped[i].public_key, 32);
      s->skipped[i].msg_num = n > N_SKIP ? j : j / N_SKIP_PK;
      fill(h2(v, 1000 + i), s->skipped[i].message_key, 32);
      s->skipped[i].created_at = -12345; /* ignored on save */
    }
    l1 = mkkey(FA_CONV, op->a, k1);
    rc = kj_ratchet_save(b, t, dev, k1, l1, s);
    kj_free(s);
    break;
  }
  case W_RATCHET_LOAD: {
    kj_ratchet_state *s = NULL;
    l1 = mkkey(FA_CONV, op->a, k1);
    rc = kj_ratchet_load(b, t, dev, k1, l1, &s);
    if (rc == KJ_OK)
      o_ratchet(o, s);
    o_leftover(o, rc, s);
    break;
  }
  case W_RATCHET_EXISTS: {
    int ex = -1;
    l1 = mkkey(FA_CONV, op->a, k1);
    rc = kj_ratchet_exists(b, t, dev, k1, l1, &ex);
    if (rc == KJ_OK)
      o_i(o, "exists", ex);
    break;
  }
  case W_RATCHET_DELETE:
    l1 = mkkey(FA_CONV, op->a, k1);
    rc = kj_ratchet_delete(b, t, dev, k1, l1);
    break;
  }

  ora_obuf_addf(r, "%s rc=%d", name, rc);
  if (out.len)
    ora_obuf_add(r, out.p, out.len);
  ora_obuf_add(r, "\n", 1);
  ora_obuf_free(&out);
}

void ora_wop_apply(const ora_wop *op, kj_backend *b, kj_tx *t, uint32_t *slots,
                   size_t *nslots, ora_obuf *res) {
  ora_beat();
  apply_dev(op, b, t, op_dev(op, slots, *nslots), slots, nslots, res);
}

int ora_wop_is_begin(const ora_wop *op) { return op->kind == W_TX_BEGIN; }
int ora_wop_is_commit(const ora_wop *op) { return op->kind == W_TX_COMMIT; }
int ora_wop_is_rollback(const ora_wop *op) { return op->kind == W_TX_ROLLBACK; }

int ora_wop_kind(const ora_wop *op) { return op->kind; }
int ora_wop_nkinds(void) { return W_NKINDS; }
const char *ora_wop_kind_name(int kind) {
  return kind >= 0 && kind < W_NKINDS ? wk_name[kind] : "?";
}

/* ---- describe ----------------------------------------------------------- */

static void d_key(ora_obuf *o, int fam, unsigned code) {
  uint8_t k[KEYBUF];
  size_t n = mkkey(fam, code, k);
  if (code == K_MAXLEN || code == K_OVER || code == K_NAMEMAX) {
    ora_obuf_addf(o, "<%s key of %zu bytes>, %zu", fam_prefix[fam], n, n);
    return;
  }
  ora_obuf_addf(o, "\"");
  for (size_t i = 0; i < n; i++) {
    if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\')
      ora_obuf_addf(o, "%c", k[i]);
    else
      ora_obuf_addf(o, "\\x%02x\"\"", k[i]);
  }
  ora_obuf_addf(o, "\", %zu", n);
}

/* The address of op_addr(): a key, or the encoded (name, id). */
static void d_addr(ora_obuf *o, const ora_wop *op) {
  if (!(op->flags & F_NAMED)) {
    d_key(o, FA_ADDR, op->a);
    return;
  }
  ora_obuf_addf(o, "<address of (");
  d_key(o, FA_NAME, op->c);
  ora_obuf_addf(o, ", %" PRIu32 ")%s>", devids[op->b % N_DEVID],
                (op->flags & F_JUNK) ? " + 'x'" : "");
}

static void d_val(ora_obuf *o, uint64_t seed, size_t n) {
  ora_obuf_addf(o, "<%zu bytes seed 0x%016" PRIx64 ">", n, seed);
}

static void d_batch(ora_obuf *o, const ora_wop *op, const char *what) {
  ora_obuf_addf(o, "{%" PRIu32 " %s from #%u%s%s}, %" PRIu32, op->n, what,
                (unsigned)op->a, (op->flags & F_DUP) ? " dup" : "",
                (op->flags & F_BADELEM) ? " last-invalid" : "", op->n);
}

void ora_wop_describe(const ora_wop *op, ora_obuf *o) {
  const char *name = op->kind < W_NKINDS ? wk_name[op->kind] : "?";
  switch (op->kind) {
  case W_TX_BEGIN:
    ora_obuf_addf(o, "kj_backend_begin(b, &t)");
    return;
  case W_TX_COMMIT:
    ora_obuf_addf(o, "kj_backend_commit(t)");
    return;
  case W_TX_ROLLBACK:
    ora_obuf_addf(o, "kj_backend_rollback(t)");
    return;
  case W_DEVICE_CREATE:
    ora_obuf_addf(o, "kj_device_create(b, t, &slot[next])");
    return;
  case W_DEVICE_LIST_IDS:
    ora_obuf_addf(o, "kj_device_list_ids(b, t, &out)");
    return;
  case W_DEVICE_CREATE_LABELED:
  case W_DEVICE_FIND:
    ora_obuf_addf(o, "%s(b, t, ",
                  op->kind == W_DEVICE_FIND ? "kj_device_find"
                                            : "kj_device_create_labeled");
    d_key(o, FA_LABEL, op->a);
    ora_obuf_addf(o, ", &%s)", op->kind == W_DEVICE_FIND ? "id" : "slot[next]");
    return;
  default:
    break;
  }
  ora_obuf_addf(o, "%s(b, t, ", name);
  if (op->slot == SLOT_ZERO)
    ora_obuf_addf(o, "0");
  else
    ora_obuf_addf(o, "slot[%u]", (unsigned)op->slot);
  switch ((enum wk)op->kind) {
  case W_IDENTITY_PUT:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_ADDR, op->a);
    ora_obuf_addf(o, ", ");
    d_val(o, op->vseed, 32);
    break;
  case W_IDENTITY_LOAD:
  case W_IDENTITY_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_ADDR, op->a);
    break;
  case W_SESSION_GET:
  case W_SESSION_HAS:
  case W_SESSION_DELETE:
  case W_IDENTITY_GET_KEY:
    ora_obuf_addf(o, ", ");
    d_addr(o, op);
    break;
  case W_SESSION_PUT:
  case W_SENDER_KEY_PUT:
    ora_obuf_addf(o, ", ");
    if (op->kind == W_SESSION_PUT)
      d_addr(o, op);
    else
      d_key(o, FA_SKN, op->a);
    ora_obuf_addf(o, ", ");
    d_val(o, op->vseed, op->size);
    break;
  case W_IDENTITY_PUT_KEY:
    ora_obuf_addf(o, ", ");
    d_addr(o, op);
    ora_obuf_addf(o, ", ");
    d_val(o, op->vseed, op->size);
    break;
  case W_LOCAL_ID_SAVE:
    ora_obuf_addf(o,
                  ", <identity seed 0x%016" PRIx64 " public_len %" PRIu32 ">",
                  op->vseed, op->size);
    break;
  case W_SESSION_STORE:
  case W_SENDER_KEY_STORE:
    ora_obuf_addf(o, ", ");
    if (op->kind == W_SESSION_STORE) {
      d_key(o, FA_NAME, op->a);
      ora_obuf_addf(o, ", %" PRIu32, devids[op->b % N_DEVID]);
    } else {
      d_key(o, FA_SKN, op->a);
    }
    ora_obuf_addf(o, ", ");
    d_val(o, op->vseed, op->size);
    if (op->flags & F_ODD)
      ora_obuf_addf(o, ", NULL, %" PRIu32, op->size2);
    else if (op->flags & F_HAS1)
      ora_obuf_addf(o, ", <%" PRIu32 " bytes seed 0x%016" PRIx64 ">", op->size2,
                    h2(op->vseed, 0x05e5));
    else
      ora_obuf_addf(o, ", NULL, 0");
    break;
  case W_SESSION_LOAD:
  case W_SESSION_CONTAINS:
  case W_SESSION_REMOVE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_NAME, op->a);
    ora_obuf_addf(o, ", %" PRIu32, devids[op->b % N_DEVID]);
    break;
  case W_SESSION_LIST_DEVICES:
  case W_SESSION_REMOVE_ALL:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_NAME, op->a);
    break;
  case W_SENDER_KEY_LOAD:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_SKN, op->a);
    break;
  case W_PREKEY_HAS:
    ora_obuf_addf(o, ", %" PRIu32, prekey_ids[op->a % N_PREKEY]);
    break;
  case W_SPK_HAS:
    ora_obuf_addf(o, ", %" PRIu32, spk_ids[op->a % N_SPK]);
    break;
  case W_SENDER_KEY_GET:
  case W_SENDER_KEY_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_SKN, op->a);
    break;
  case W_PREKEY_STORE:
    ora_obuf_addf(o, ", %" PRIu32 ", ", prekey_ids[op->a % N_PREKEY]);
    d_val(o, op->vseed, op->size);
    ora_obuf_addf(o, ", %d", (op->flags & F_ODD) ? 2 : !!(op->flags & F_UP));
    break;
  case W_PREKEY_STORE_BATCH:
    ora_obuf_addf(o, ", ");
    d_batch(o, op, "pre-keys");
    ora_obuf_addf(o, ", %d) /* records %" PRIu32 "+ bytes */",
                  !!(op->flags & F_UP), op->size);
    return;
  case W_PREKEY_LOAD:
  case W_PREKEY_REMOVE:
    ora_obuf_addf(o, ", %" PRIu32, prekey_ids[op->a % N_PREKEY]);
    break;
  case W_PREKEY_LOAD_BATCH:
  case W_PREKEY_MARK_UPLOADED:
    ora_obuf_addf(o, ", ");
    d_batch(o, op, "ids");
    break;
  case W_SPK_STORE:
    ora_obuf_addf(o, ", %" PRIu32 ", ", spk_ids[op->a % N_SPK]);
    d_val(o, op->vseed, op->size);
    break;
  case W_SPK_LOAD:
  case W_SPK_REMOVE:
    ora_obuf_addf(o, ", %" PRIu32, spk_ids[op->a % N_SPK]);
    break;
  case W_SYNC_KEY_SET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_KID, op->a);
    ora_obuf_addf(o, ", {data ");
    d_val(o, op->vseed, op->size);
    ora_obuf_addf(o, ", fp %" PRIu32 " bytes, ts %" PRId64 "}", op->size2,
                  op->ts);
    break;
  case W_SYNC_KEY_GET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_KID, op->a);
    break;
  case W_SYNC_VERSION_SET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_COLL, op->b);
    ora_obuf_addf(o, ", {version %" PRId64 ", ", op->ts);
    d_batch(o, op, "entries");
    ora_obuf_addf(o, " values <=%" PRIu32 " bytes seed 0x%016" PRIx64 "}",
                  op->size, op->vseed);
    break;
  case W_SYNC_VERSION_GET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_COLL, op->b);
    break;
  case W_MMAC_PUT:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_COLL, op->b);
    ora_obuf_addf(o, ", %" PRId64 ", ", op->ts);
    d_batch(o, op, "macs");
    ora_obuf_addf(o,
                  ") /* value_mac %" PRIu32 " bytes seed 0x%016" PRIx64 " */",
                  op->size, op->vseed);
    return;
  case W_MMAC_GET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_COLL, op->b);
    ora_obuf_addf(o, ", ");
    d_key(o, FA_IDX, op->a);
    break;
  case W_MMAC_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_COLL, op->b);
    ora_obuf_addf(o, ", ");
    d_batch(o, op, "index macs");
    break;
  case W_SKDM_GET:
  case W_SKDM_CLEAR:
  case W_SK_CONSUME_FORGET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_GROUP, op->b);
    break;
  case W_SKDM_ADD:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_GROUP, op->b);
    ora_obuf_addf(o, ", ");
    d_batch(o, op, "jids");
    break;
  case W_SK_MARK_FORGET:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_GROUP, op->b);
    ora_obuf_addf(o, ", ");
    d_key(o, FA_JID, op->a);
    break;
  case W_LID_PUT:
    ora_obuf_addf(o, ", {lid ");
    d_key(o, FA_LID, op->a);
    ora_obuf_addf(o, ", phone ");
    d_key(o, FA_PHONE, op->b);
    ora_obuf_addf(o, ", created %d, updated %" PRId64 ", source ",
                  1000 * (int)op->c, op->ts);
    d_val(o, op->vseed, op->size);
    ora_obuf_addf(o, "}");
    break;
  case W_LID_GET_BY_LID:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_LID, op->a);
    break;
  case W_LID_GET_BY_PHONE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_PHONE, op->b);
    break;
  case W_BASE_KEY_SAVE:
  case W_BASE_KEY_HAS_SAME:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_ADDR, op->a);
    ora_obuf_addf(o, ", ");
    d_key(o, FA_MSG, op->b);
    ora_obuf_addf(o, ", <base key variant %u, %" PRIu32 " bytes>",
                  (unsigned)op->c, op->size);
    break;
  case W_BASE_KEY_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_ADDR, op->a);
    ora_obuf_addf(o, ", ");
    d_key(o, FA_MSG, op->b);
    break;
  case W_DEVLIST_UPDATE:
    ora_obuf_addf(o, ", {user ");
    d_key(o, FA_USER, op->a);
    ora_obuf_addf(o,
                  ", ts %" PRId64 ", phash %s%" PRIu32 " bytes, %" PRIu32
                  " devices seed 0x%016" PRIx64 "}",
                  op->ts, (op->flags & F_HAS1) ? "" : "none/", op->size, op->n,
                  op->vseed);
    break;
  case W_DEVLIST_GET:
  case W_DEVLIST_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_USER, op->a);
    break;
  case W_TC_PUT:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_JID, op->a);
    ora_obuf_addf(o, ", {token ");
    d_val(o, op->vseed, op->size);
    ora_obuf_addf(o, ", ts %" PRId64, op->ts);
    if (op->flags & F_HAS1)
      ora_obuf_addf(o, ", sender_ts %" PRId64, op->ts + op->c);
    ora_obuf_addf(o, "}");
    break;
  case W_TC_GET:
  case W_TC_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_JID, op->a);
    break;
  case W_TC_DELETE_EXPIRED:
  case W_RATCHET_CLEANUP:
    ora_obuf_addf(o, ", %" PRId64, op->ts);
    break;
  case W_DEVICE_SAVE:
    ora_obuf_addf(o,
                  ", <record seed 0x%016" PRIx64 " account %s%" PRIu32
                  " push %" PRIu32 " flags 0x%x>",
                  op->vseed, (op->flags & F_ODD) ? "none/" : "", op->size,
                  op->size2, (unsigned)op->flags);
    break;
  case W_RATCHET_SAVE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_CONV, op->a);
    ora_obuf_addf(o,
                  ", <state seed 0x%016" PRIx64 " flags 0x%x, %" PRIu32
                  " skipped from #%u%s>",
                  op->vseed, (unsigned)op->flags, op->n, (unsigned)op->b,
                  (op->flags & F_DUP) ? " dup" : "");
    break;
  case W_RATCHET_LOAD:
  case W_RATCHET_EXISTS:
  case W_RATCHET_DELETE:
    ora_obuf_addf(o, ", ");
    d_key(o, FA_CONV, op->a);
    break;
  default:
    break;
  }
  ora_obuf_addf(o, ")");
}

/* ---- generation --------------------------------------------------------- */

#define MODEL_SLOTS ORA_WORKLOAD_MAX_SLOTS
#define MODEL_CODES 8u

typedef struct gen {
  uint64_t s; /* rng state */
  uint64_t seed;
  ora_mix mix;
  ora_wop *ops;
  size_t n, cap;
  unsigned creates;
  int64_t now;            /* a notion of time for timestamps (ms) */
  uint16_t rlo[3], rn[3]; /* per conversation skipped-key window */
  uint8_t live[ORA_WORKLOAD_MAX_SLOTS]; /* realistic: slots not deleted */
  unsigned nlive;
  /* Boundaries: a model of the timestamps the store holds, so that expiry
   * cutoffs and cleanup ages land on one of them exactly (or one before,
   * or one after) and a strict comparison is told from an inclusive one.
   * tok: each token's token_ts + 1 (0: none) by slot and JID code; made:
   * each skipped key's created op index + 1 by slot, conversation code
   * and key (the store clock moves 1 s per op). Transactions rolled back
   * and failed ops make the model approximate, which costs aim, not
   * correctness: the reference judges every result. */
  int64_t tok[MODEL_SLOTS][MODEL_CODES];
  int64_t made[MODEL_SLOTS][MODEL_CODES][N_SKIP];
  /* The LID codes put in each slot: half the puts update one of them (an
   * update keeps some fields of the first put, which a first put never
   * shows). */
  uint8_t lids[MODEL_SLOTS];
  /* Realistic: the label codes live slots carry (bit per code), and the
   * label of each slot index (code + 1, 0: none), freed when it is
   * deleted. */
  unsigned labels;
  uint8_t label_of[ORA_WORKLOAD_MAX_SLOTS];
} gen;

static uint64_t rnd(gen *g) {
  g->s += 0x9e3779b97f4a7c15ull;
  return mix64(g->s);
}
static uint32_t below(gen *g, uint32_t n) { return (uint32_t)(rnd(g) % n); }
static int chance(gen *g, unsigned pct) { return below(g, 100) < pct; }

/* 0 half the time, else -1 or +1: a comparison against a cutoff flips
 * at 0. */
static int64_t nudge(gen *g) {
  uint32_t r = below(g, 4);
  return r < 2 ? 0 : r == 2 ? -1 : 1;
}

/* One of the n values of the model table t (+1 encoded, 0: none), chosen
 * at random, in *v; 0 if there is none. */
static int pick_held(gen *g, const int64_t *t, size_t n, int64_t *v) {
  size_t have = 0;
  for (size_t i = 0; i < n; i++)
    have += t[i] != 0;
  if (!have)
    return 0;
  size_t k = below(g, (uint32_t)have);
  for (size_t i = 0; i < n; i++)
    if (t[i] && k-- == 0) {
      *v = t[i] - 1;
      return 1;
    }
  return 0;
}

/* Forget what a removal by cutoff (v < cutoff) takes from table t. */
static void drop_below(int64_t *t, size_t n, int64_t cutoff) {
  for (size_t i = 0; i < n; i++)
    if (t[i] && t[i] - 1 < cutoff)
      t[i] = 0;
}

static int modelled(uint8_t slot, uint16_t code) {
  return slot < MODEL_SLOTS && code < MODEL_CODES;
}

/* A modelled slot holding something in the tokens (skipped 0) or the
 * skipped keys (1) of the model, chosen at random, or -1. */
static int held_slot(gen *g, int skipped) {
  uint8_t cand[MODEL_SLOTS];
  unsigned nc = 0;
  for (unsigned sl = 0; sl < MODEL_SLOTS && sl < g->creates; sl++) {
    const int64_t *t = skipped ? &g->made[sl][0][0] : g->tok[sl];
    size_t n = skipped ? MODEL_CODES * N_SKIP : MODEL_CODES;
    for (size_t i = 0; i < n; i++)
      if (t[i]) {
        cand[nc++] = (uint8_t)sl;
        break;
      }
  }
  return nc ? cand[below(g, nc)] : -1;
}

static ora_wop *emit(gen *g, int kind) {
  if (g->n >= g->cap)
    return NULL;
  ora_wop *op = &g->ops[g->n];
  memset(op, 0, sizeof *op);
  op->kind = (uint8_t)kind;
  op->vseed = h2(g->seed, g->n);
  g->n++;
  g->now += 1000;
  return op;
}

static uint8_t pick_slot(gen *g) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    uint32_t r = below(g, 100);
    if (r < 5)
      return SLOT_ZERO;
    if (r < 15)
      return (uint8_t)(3 + below(g, 2)); /* usually never created */
    return (uint8_t)below(g, 3);
  }
  /* Mostly the first live slot, else any live one. */
  if (g->nlive == 0)
    return 0;
  if (chance(g, 75))
    return g->live[0];
  return g->live[below(g, g->nlive)];
}

static uint32_t pick_size(gen *g, uint32_t typical);

/* A key code of family fam. Names also get KJ_MAX_NAME bytes, the
 * longest a name call takes (KJ_MAX_ID is 6 too many for them). */
static uint16_t pick_key(gen *g, int fam) {
  if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 12)) {
    uint32_t r = below(g, fam == FA_NAME ? 4 : 3);
    return r == 0 ? K_MAXLEN : r == 1 ? K_OVER : r == 2 ? K_EMPTY : K_NAMEMAX;
  }
  return (uint16_t)below(g, fam_size[fam]);
}

/* A device id code of the name calls: mostly the first three. */
static uint16_t pick_devid(gen *g) {
  if (g->mix == ORA_MIX_REALISTIC && chance(g, 90))
    return (uint16_t)below(g, 3);
  return (uint16_t)below(g, N_DEVID);
}

/* Address-keyed session and identity ops: a quarter of them at the
 * address of a (name, device id), a few of those one byte longer. */
static void pick_addr(gen *g, ora_wop *op) {
  op->a = pick_key(g, FA_ADDR);
  if (chance(g, 25)) {
    op->flags |= F_NAMED;
    op->c = (uint16_t)below(g, fam_size[FA_NAME]);
    op->b = pick_devid(g);
    if (chance(g, 10)) {
      op->flags |= F_JUNK;
      op->b = 0; /* the dump looks for these at device id code 0 only */
    }
  }
}

/* The user record of a store: present most of the time. */
static void pick_urec(gen *g, ora_wop *op) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    op->size2 = pick_size(g, 64);
    if (chance(g, 60))
      op->flags |= F_HAS1;
    else if (chance(g, 10))
      op->flags |= F_ODD; /* NULL with a length */
  } else {
    op->size2 = 1 + below(g, 64);
    if (chance(g, 70))
      op->flags |= F_HAS1;
  }
}

/* A public key length: 33 (libsignal) or 32; adversarially others. */
static uint32_t pick_keylen(gen *g) {
  if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 20)) {
    static const uint32_t odd[] = {0, 1, 31, 34, 40};
    return odd[below(g, 5)];
  }
  return chance(g, 70) ? 33 : 32;
}

/* A record size. */
static uint32_t pick_size(gen *g, uint32_t typical) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    uint32_t r = below(g, 1000);
    if (r < 150)
      return 0;
    if (r < 250)
      return 1;
    if (r < 350)
      return KJ_MAX_ID;
    if (r < 450)
      return KJ_MAX_ID + 1;
    if (r < 453)
      return KJ_MAX_RECORD;
    if (r < 456)
      return KJ_MAX_RECORD + 1;
    return 1 + below(g, typical);
  }
  if (chance(g, 3))
    return 4096 + below(g, 16384);
  return typical / 4 + below(g, typical);
}

/* An identifier-sized value (0..KJ_MAX_ID, adversarially beyond). */
static uint32_t pick_idsize(gen *g, uint32_t typical) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    uint32_t r = below(g, 100);
    if (r < 15)
      return 0;
    if (r < 30)
      return KJ_MAX_ID;
    if (r < 40)
      return KJ_MAX_ID + 1;
    return below(g, typical + 1);
  }
  return 1 + below(g, typical);
}

static uint32_t pick_n(gen *g, uint32_t typical) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    uint32_t r = below(g, 100);
    if (r < 20)
      return 0;
    if (r < 25)
      return 40 + below(g, 40);
    if (r < 26 && chance(g, 20)) /* refused: one past the limit */
      return KJ_MAX_BATCH + 1;
  }
  return 1 + below(g, typical);
}

static void batch_flags(gen *g, ora_wop *op) {
  if (g->mix == ORA_MIX_ADVERSARIAL) {
    if (chance(g, 30))
      op->flags |= F_DUP;
    if (op->n && chance(g, 8))
      op->flags |= F_BADELEM | (chance(g, 50) ? F_ODD : 0);
  } else if (chance(g, 5)) {
    op->flags |= F_DUP;
  }
}

static void forget_slot(gen *g, uint8_t slot) {
  if (slot < MODEL_SLOTS) {
    memset(g->tok[slot], 0, sizeof g->tok[0]);
    memset(g->made[slot], 0, sizeof g->made[0]);
    g->lids[slot] = 0;
  }
}

/* A ratchet save replaces the conversation's skipped keys: those kept
 * keep their created_at, new ones are created now (as in ora_wop_apply:
 * key j of the universe for j = b + i; a duplicate set, a refused one or
 * one beyond the universe is not modelled: the conversation is
 * forgotten). */
static void model_save(gen *g, const ora_wop *op) {
  if (!modelled(op->slot, op->a))
    return;
  int64_t *m = g->made[op->slot][op->a];
  if ((op->flags & F_DUP) || op->n > N_SKIP) {
    memset(m, 0, sizeof g->made[0][0]);
    return;
  }
  uint8_t in[N_SKIP] = {0};
  for (uint32_t i = 0; i < op->n; i++)
    in[(op->b + i) % N_SKIP] = 1;
  for (unsigned j = 0; j < N_SKIP; j++)
    m[j] = !in[j] ? 0 : m[j] ? m[j] : (int64_t)(op - g->ops) + 1;
}

/* Fill the arguments of one (non-transaction) op of kind. */
static void gen_args(gen *g, ora_wop *op) {
  op->slot = pick_slot(g);
  switch ((enum wk)op->kind) {
  case W_IDENTITY_PUT:
  case W_IDENTITY_LOAD:
  case W_IDENTITY_DELETE:
    op->a = pick_key(g, FA_ADDR);
    break;
  case W_SESSION_GET:
  case W_SESSION_HAS:
  case W_SESSION_DELETE:
  case W_IDENTITY_GET_KEY:
    pick_addr(g, op);
    break;
  case W_SESSION_PUT:
    pick_addr(g, op);
    op->size = pick_size(g, 1200);
    break;
  case W_IDENTITY_PUT_KEY:
    pick_addr(g, op);
    op->size = pick_keylen(g);
    break;
  case W_LOCAL_ID_SAVE:
    op->size = pick_keylen(g);
    break;
  case W_LOCAL_ID_LOAD:
  case W_LOCAL_ID_DELETE:
    break;
  case W_SESSION_STORE:
    op->a = pick_key(g, FA_NAME);
    op->b = pick_devid(g);
    op->size = pick_size(g, 1200);
    pick_urec(g, op);
    break;
  case W_SESSION_LOAD:
  case W_SESSION_CONTAINS:
  case W_SESSION_REMOVE:
    op->a = pick_key(g, FA_NAME);
    op->b = pick_devid(g);
    break;
  case W_SESSION_LIST_DEVICES:
  case W_SESSION_REMOVE_ALL:
    op->a = pick_key(g, FA_NAME);
    break;
  case W_PREKEY_HAS:
    op->a = (uint16_t)below(g, N_PREKEY);
    break;
  case W_SPK_HAS:
    op->a = (uint16_t)below(g, N_SPK);
    break;
  case W_SENDER_KEY_STORE:
    op->a = pick_key(g, FA_SKN);
    op->size = pick_size(g, 400);
    pick_urec(g, op);
    break;
  case W_SENDER_KEY_LOAD:
    op->a = pick_key(g, FA_SKN);
    break;
  case W_DEVICE_CREATE_LABELED: /* the label is chosen by create() */
    break;
  case W_DEVICE_FIND:
    op->a = pick_key(g, FA_LABEL);
    break;
  case W_PREKEY_STORE:
    op->a = (uint16_t)below(g, N_PREKEY);
    op->size = pick_size(g, 120);
    if (chance(g, 50))
      op->flags |= F_UP;
    if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 5))
      op->flags |= F_ODD;
    break;
  case W_PREKEY_STORE_BATCH:
    op->a = (uint16_t)below(g, N_PREKEY);
    op->n = pick_n(g, 8);
    op->size = g->mix == ORA_MIX_ADVERSARIAL ? below(g, 64) + 1 : 60;
    if (chance(g, 50))
      op->flags |= F_UP;
    batch_flags(g, op);
    break;
  case W_PREKEY_LOAD:
  case W_PREKEY_REMOVE:
    op->a = (uint16_t)below(g, N_PREKEY);
    break;
  case W_PREKEY_LOAD_BATCH:
  case W_PREKEY_MARK_UPLOADED:
    op->a = (uint16_t)below(g, N_PREKEY);
    op->n = pick_n(g, 6);
    batch_flags(g, op);
    op->flags &= (uint8_t)~F_BADELEM;
    break;
  case W_PREKEY_MAX_ID:
  case W_SPK_LOAD_ALL:
  case W_SYNC_KEY_LATEST:
  case W_LID_GET_ALL:
  case W_TC_ALL_JIDS:
  case W_DEVICE_LIST_IDS:
  case W_DEVICE_EXISTS:
  case W_DEVICE_LOAD:
  case W_DEVICE_DELETE:
  case W_DEVICE_CREATE:
    if (op->kind == W_DEVICE_DELETE)
      forget_slot(g, op->slot);
    break;
  case W_SPK_STORE:
    op->a = (uint16_t)below(g, N_SPK);
    op->size = pick_size(g, 100);
    break;
  case W_SPK_LOAD:
  case W_SPK_REMOVE:
    op->a = (uint16_t)below(g, N_SPK);
    break;
  case W_SENDER_KEY_PUT:
    op->a = pick_key(g, FA_SKN);
    op->size = pick_size(g, 400);
    break;
  case W_SENDER_KEY_GET:
  case W_SENDER_KEY_DELETE:
    op->a = pick_key(g, FA_SKN);
    break;
  case W_SYNC_KEY_SET:
    op->a = pick_key(g, FA_KID);
    op->size = pick_size(g, 32);
    op->size2 = g->mix == ORA_MIX_ADVERSARIAL ? pick_size(g, 16) : below(g, 20);
    op->ts = (int64_t)below(g, 5) * 1000; /* collisions on timestamp */
    break;
  case W_SYNC_KEY_GET:
    op->a = pick_key(g, FA_KID);
    break;
  case W_SYNC_VERSION_SET:
    op->b = pick_key(g, FA_COLL);
    op->a = (uint16_t)below(g, fam_size[FA_IDX]);
    op->n = pick_n(g, 6);
    op->size = pick_idsize(g, 40);
    op->ts = (int64_t)below(g, 1000);
    batch_flags(g, op);
    break;
  case W_SYNC_VERSION_GET:
    op->b = pick_key(g, FA_COLL);
    break;
  case W_MMAC_PUT:
    op->b = pick_key(g, FA_COLL);
    op->a = (uint16_t)below(g, fam_size[FA_IDX]);
    op->n = pick_n(g, 10);
    op->size = g->mix == ORA_MIX_ADVERSARIAL ? pick_idsize(g, 40) : 32;
    op->ts = (int64_t)below(g, 1000);
    batch_flags(g, op);
    break;
  case W_MMAC_GET:
    op->b = pick_key(g, FA_COLL);
    op->a = pick_key(g, FA_IDX);
    break;
  case W_MMAC_DELETE:
    op->b = pick_key(g, FA_COLL);
    op->a = (uint16_t)below(g, fam_size[FA_IDX]);
    op->n = pick_n(g, 5);
    batch_flags(g, op);
    break;
  case W_SKDM_GET:
  case W_SKDM_CLEAR:
  case W_SK_CONSUME_FORGET:
    op->b = pick_key(g, FA_GROUP);
    break;
  case W_SKDM_ADD:
    op->b = pick_key(g, FA_GROUP);
    op->a = (uint16_t)below(g, fam_size[FA_JID]);
    op->n = pick_n(g, 4);
    batch_flags(g, op);
    break;
  case W_SK_MARK_FORGET:
    op->b = pick_key(g, FA_GROUP);
    op->a = pick_key(g, FA_JID);
    break;
  case W_LID_PUT:
    op->a = pick_key(g, FA_LID);
    if (op->slot < MODEL_SLOTS && g->lids[op->slot] && chance(g, 50)) {
      unsigned k = below(g, 8);
      while (!(g->lids[op->slot] >> k & 1))
        k = (k + 1) % 8;
      op->a = (uint16_t)k;
    }
    if (modelled(op->slot, op->a))
      g->lids[op->slot] |= (uint8_t)(1u << op->a);
    op->b = pick_key(g, FA_PHONE);
    op->c = (uint16_t)below(g, 4);
    op->ts = (int64_t)below(g, 4) * 100; /* ties on updated_at */
    op->size = g->mix == ORA_MIX_ADVERSARIAL ? pick_idsize(g, 8) : below(g, 8);
    break;
  case W_LID_GET_BY_LID:
    op->a = pick_key(g, FA_LID);
    break;
  case W_LID_GET_BY_PHONE:
    op->b = pick_key(g, FA_PHONE);
    break;
  case W_BASE_KEY_SAVE:
  case W_BASE_KEY_HAS_SAME:
    op->a = pick_key(g, FA_ADDR);
    op->b = pick_key(g, FA_MSG);
    op->c = (uint16_t)below(g, 2);
    op->size = g->mix == ORA_MIX_ADVERSARIAL && chance(g, 50)
                   ? pick_size(g, 33)
                   : (chance(g, 90) ? 32 : 1);
    break;
  case W_BASE_KEY_DELETE:
    op->a = pick_key(g, FA_ADDR);
    op->b = pick_key(g, FA_MSG);
    break;
  case W_DEVLIST_UPDATE:
    op->a = pick_key(g, FA_USER);
    op->ts = (int64_t)below(g, 100000);
    op->n = g->mix == ORA_MIX_ADVERSARIAL && chance(g, 3)
                ? KJ_MAX_DEVICES - 1 + below(g, 3)
                : below(g, 6);
    if (chance(g, 60))
      op->flags |= F_HAS1;
    op->size =
        g->mix == ORA_MIX_ADVERSARIAL ? pick_idsize(g, 20) : below(g, 20);
    break;
  case W_DEVLIST_GET:
  case W_DEVLIST_DELETE:
    op->a = pick_key(g, FA_USER);
    break;
  case W_TC_PUT:
    op->a = pick_key(g, FA_JID);
    op->size = pick_size(g, 40);
    op->ts = g->now / 1000 - (int64_t)below(g, 200);
    op->c = (uint16_t)below(g, 50);
    if (chance(g, 50))
      op->flags |= F_HAS1;
    if (modelled(op->slot, op->a))
      g->tok[op->slot][op->a] = op->ts + 1;
    break;
  case W_TC_GET:
  case W_TC_DELETE:
    op->a = pick_key(g, FA_JID);
    if (op->kind == W_TC_DELETE && modelled(op->slot, op->a))
      g->tok[op->slot][op->a] = 0;
    break;
  case W_TC_DELETE_EXPIRED:
    op->ts = g->now / 1000 - (int64_t)below(g, 300);
    if (chance(g, 90)) { /* token_ts < cutoff, at a held token's edge */
      int sl = held_slot(g, 0);
      int64_t v;
      if (sl >= 0 && pick_held(g, g->tok[sl], MODEL_CODES, &v)) {
        op->slot = (uint8_t)sl;
        op->ts = v + nudge(g);
      }
    } else if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 20)) {
      op->ts = chance(g, 50) ? INT64_MIN : INT64_MAX;
    }
    if (op->slot < MODEL_SLOTS)
      drop_below(g->tok[op->slot], MODEL_CODES, op->ts);
    break;
  case W_RATCHET_CLEANUP: {
    static const int64_t ages[] = {0, 1, 3, 10, 30, 100, 100000};
    op->ts = ages[below(g, 7)];
    int64_t at = (int64_t)(op - g->ops);
    if (chance(g, 90)) {
      /* The store clock moves 1 s per op, so a key created k ops ago is
       * k s old: an age of k keeps it (created_at < now - age is false),
       * k - 1 removes it. */
      int sl = held_slot(g, 1);
      int64_t v;
      if (sl >= 0 &&
          pick_held(g, &g->made[sl][0][0], MODEL_CODES * N_SKIP, &v)) {
        op->slot = (uint8_t)sl;
        op->ts = at - v + nudge(g);
        if (op->ts < 0)
          op->ts = 0;
      }
    } else if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 15)) {
      op->ts = chance(g, 50) ? -1 : INT64_MAX;
    }
    if (op->slot < MODEL_SLOTS && op->ts >= 0)
      drop_below(&g->made[op->slot][0][0], MODEL_CODES * N_SKIP,
                 op->ts > at ? INT64_MIN : at - op->ts);
    break;
  }
  case W_DEVICE_SAVE:
    op->flags =
        (uint8_t)below(g, 0x80) & (F_HAS1 | F_HAS2 | F_HAS3 | F_UP | F_ODD);
    op->size =
        g->mix == ORA_MIX_ADVERSARIAL ? pick_size(g, 200) : below(g, 300);
    op->size2 =
        g->mix == ORA_MIX_ADVERSARIAL ? pick_idsize(g, 30) : below(g, 30);
    op->ts = g->now;
    op->a = (uint16_t)below(g, 100);
    op->b = (uint16_t)below(g, 100);
    op->c = (uint16_t)below(g, 100);
    break;
  case W_RATCHET_SAVE: {
    unsigned conv = below(g, 3);
    op->a = (uint16_t)conv;
    if (g->mix == ORA_MIX_ADVERSARIAL && chance(g, 10))
      op->a = pick_key(g, FA_CONV);
    /* the skipped window drifts, growing and shrinking */
    int lo = g->rlo[conv] + (int)below(g, 3);
    int n = (int)g->rn[conv] + (int)below(g, 7) - 3;
    if (n < 0)
      n = 0;
    if (n > 12)
      n = 12;
    g->rlo[conv] = (uint16_t)(lo % N_SKIP);
    g->rn[conv] = (uint16_t)n;
    op->b = g->rlo[conv];
    op->n = (uint32_t)n;
    if (g->mix == ORA_MIX_ADVERSARIAL) {
      uint32_t r = below(g, 100);
      if (r < 15)
        op->n = 0;
      else if (r < 18)
        op->n = 300 + below(g, 200);
      else if (r < 19) /* refused: one past the limit */
        op->n = KJ_MAX_SKIPPED + 1;
      if (chance(g, 25))
        op->flags |= F_DUP;
    }
    op->flags |= (uint8_t)(below(g, 8) << 2); /* F_HAS1..F_HAS3 */
    model_save(g, op);
    break;
  }
  case W_RATCHET_LOAD:
  case W_RATCHET_EXISTS:
  case W_RATCHET_DELETE:
    op->a = g->mix == ORA_MIX_ADVERSARIAL ? pick_key(g, FA_CONV)
                                          : (uint16_t)below(g, 3);
    if (op->kind == W_RATCHET_DELETE && modelled(op->slot, op->a))
      memset(g->made[op->slot][op->a], 0, sizeof g->made[0][0]);
    break;
  case W_TX_BEGIN:
  case W_TX_COMMIT:
  case W_TX_ROLLBACK:
  case W_NKINDS:
    break;
  }
}

static void one(gen *g, int kind) {
  ora_wop *op = emit(g, kind);
  if (op)
    gen_args(g, op);
}

/* Device slot creation, bounded so that slots[] never overflows. A third
 * of them carry a label: realistic ones a label no live slot has (so that
 * each creates a slot, and slot indexes stay as the model counts them),
 * adversarial ones any, taken or not (a refused create adds no slot:
 * adversarial slot picks do not rely on the count). */
static void create(gen *g) {
  if (g->creates >= ORA_WORKLOAD_MAX_SLOTS - 2)
    return;
  int label = -1;
  if (chance(g, 33)) {
    if (g->mix == ORA_MIX_ADVERSARIAL) {
      label = pick_key(g, FA_LABEL);
    } else {
      for (unsigned i = 0, k = below(g, fam_size[FA_LABEL]);
           label < 0 && i < fam_size[FA_LABEL]; i++)
        if (!(g->labels >> ((k + i) % fam_size[FA_LABEL]) & 1))
          label = (int)((k + i) % fam_size[FA_LABEL]);
    }
  }
  if (label >= 0 && g->mix == ORA_MIX_REALISTIC) {
    g->labels |= 1u << label;
    g->label_of[g->creates] = (uint8_t)(label + 1);
  }
  g->live[g->nlive++] = (uint8_t)g->creates++;
  ora_wop *op = emit(g, label >= 0 ? W_DEVICE_CREATE_LABELED : W_DEVICE_CREATE);
  if (op) {
    gen_args(g, op);
    op->a = label >= 0 ? (uint16_t)label : 0;
  }
}

/* Realistic: delete a live slot other than the first, sometimes replacing
 * it with a new one. */
static void delete_slot(gen *g) {
  if (g->nlive < 2) {
    one(g, W_DEVICE_EXISTS);
    return;
  }
  unsigned i = 1 + below(g, g->nlive - 1);
  ora_wop *op = emit(g, W_DEVICE_DELETE);
  if (!op)
    return;
  op->slot = g->live[i];
  forget_slot(g, op->slot);
  if (g->label_of[op->slot]) {
    g->labels &= ~(1u << (g->label_of[op->slot] - 1));
    g->label_of[op->slot] = 0;
  }
  memmove(&g->live[i], &g->live[i + 1], (g->nlive - i - 1) * sizeof g->live[0]);
  g->nlive--;
  if (chance(g, 70))
    create(g);
}

/* Kinds the "anything" step of the mixes picks from (not tx, create). */
static int any_kind(gen *g) {
  /* The realistic mix reaches the issue-17 kinds through its libsignal
   * branch; here it keeps the kinds it always drew from. */
  int n = g->mix == ORA_MIX_REALISTIC ? W_IDENTITY_PUT_KEY : W_NKINDS;
  for (;;) {
    int k = (int)below(g, (uint32_t)n);
    if (k == W_TX_BEGIN || k == W_TX_COMMIT || k == W_TX_ROLLBACK ||
        k == W_DEVICE_CREATE || k == W_DEVICE_CREATE_LABELED)
      continue;
    if (k == W_DEVICE_DELETE && (g->mix == ORA_MIX_REALISTIC || !chance(g, 20)))
      continue;
    return k;
  }
}

/* What libsignal's decryption of a pre-key message does to its store, in
 * one transaction (the adapter's begin / commit): is the pre-key there,
 * its record, the sender's session and identity, the new session (with
 * its user record), the pre-key consumed. Sometimes rolled back, as a
 * failed delivery is. */
static void libsignal_prekey_message(gen *g) {
  uint8_t slot = pick_slot(g);
  uint16_t id = (uint16_t)below(g, N_PREKEY);
  uint16_t name = (uint16_t)below(g, fam_size[FA_NAME]), devc = pick_devid(g);
  static const int k[] = {W_PREKEY_HAS,       W_PREKEY_LOAD,
                          W_SESSION_CONTAINS, W_IDENTITY_PUT_KEY,
                          W_SESSION_STORE,    W_PREKEY_REMOVE};
  if (!emit(g, W_TX_BEGIN))
    return;
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    ora_wop *op = emit(g, k[i]);
    if (!op)
      return;
    gen_args(g, op);
    op->slot = slot;
    if (k[i] == W_PREKEY_HAS || k[i] == W_PREKEY_LOAD ||
        k[i] == W_PREKEY_REMOVE) {
      op->a = id;
    } else if (k[i] == W_IDENTITY_PUT_KEY) {
      op->flags = (uint8_t)((op->flags & ~F_JUNK) | F_NAMED);
      op->c = name;
      op->b = devc;
    } else {
      op->a = name;
      op->b = devc;
    }
  }
  emit(g, chance(g, 10) ? W_TX_ROLLBACK : W_TX_COMMIT);
}

static void gen_realistic(gen *g) {
  uint32_t r = below(g, 1000);
  if (r < 400) {
    uint32_t s = below(g, 100);
    one(g, s < 70   ? W_SESSION_PUT
           : s < 85 ? W_SESSION_GET
           : s < 95 ? W_SESSION_HAS
                    : W_SESSION_DELETE);
  } else if (r < 440) { /* pre-key upload */
    one(g, W_PREKEY_STORE_BATCH);
    if (chance(g, 40))
      one(g, W_PREKEY_MARK_UPLOADED);
    if (chance(g, 40))
      one(g, W_PREKEY_MAX_ID);
  } else if (r < 490) { /* pre-key consumption in one transaction */
    uint8_t slot = pick_slot(g);
    uint16_t id = (uint16_t)below(g, N_PREKEY);
    ora_wop *op;
    if (emit(g, W_TX_BEGIN) == NULL)
      return;
    if ((op = emit(g, W_PREKEY_LOAD)) != NULL) {
      op->slot = slot;
      op->a = id;
    }
    if ((op = emit(g, W_PREKEY_REMOVE)) != NULL) {
      op->slot = slot;
      op->a = id;
    }
    if ((op = emit(g, W_SESSION_PUT)) != NULL) {
      gen_args(g, op);
      op->slot = slot;
    }
    emit(g, chance(g, 10) ? W_TX_ROLLBACK : W_TX_COMMIT);
  } else if (r < 540) { /* sender-key churn */
    static const int k[] = {
        W_SENDER_KEY_PUT,    W_SENDER_KEY_PUT,    W_SENDER_KEY_GET,
        W_SENDER_KEY_DELETE, W_SKDM_ADD,          W_SKDM_ADD,
        W_SKDM_GET,          W_SKDM_CLEAR,        W_SK_MARK_FORGET,
        W_SK_MARK_FORGET,    W_SK_CONSUME_FORGET, W_SKDM_GET};
    one(g, k[below(g, sizeof k / sizeof k[0])]);
  } else if (r < 590) { /* app-state sync */
    static const int k[] = {
        W_MMAC_PUT,         W_MMAC_PUT,         W_MMAC_GET,     W_MMAC_DELETE,
        W_SYNC_VERSION_SET, W_SYNC_VERSION_GET, W_SYNC_KEY_SET, W_SYNC_KEY_GET,
        W_SYNC_KEY_LATEST,  W_MMAC_GET};
    one(g, k[below(g, sizeof k / sizeof k[0])]);
  } else if (r < 630) { /* LID mappings */
    static const int k[] = {W_LID_PUT, W_LID_PUT, W_LID_GET_BY_LID,
                            W_LID_GET_BY_PHONE, W_LID_GET_ALL};
    one(g, k[below(g, sizeof k / sizeof k[0])]);
  } else if (r < 670) { /* trusted-contact tokens and their expiry */
    static const int k[] = {W_TC_PUT,           W_TC_PUT,
                            W_TC_GET,           W_TC_DELETE,
                            W_TC_ALL_JIDS,      W_TC_DELETE_EXPIRED,
                            W_TC_DELETE_EXPIRED};
    one(g, k[below(g, sizeof k / sizeof k[0])]);
  } else if (r < 740) { /* ratchet */
    static const int k[] = {W_RATCHET_SAVE,    W_RATCHET_SAVE,
                            W_RATCHET_SAVE,    W_RATCHET_LOAD,
                            W_RATCHET_EXISTS,  W_RATCHET_CLEANUP,
                            W_RATCHET_CLEANUP, W_RATCHET_DELETE};
    uint32_t i = below(g, sizeof k / sizeof k[0]);
    if (k[i] == W_RATCHET_DELETE && !chance(g, 30))
      i = 0;
    one(g, k[i]);
  } else if (r < 800) { /* the rest of the signal and protocol stores */
    static const int k[] = {
        W_IDENTITY_PUT,   W_IDENTITY_LOAD,     W_IDENTITY_DELETE,
        W_BASE_KEY_SAVE,  W_BASE_KEY_HAS_SAME, W_BASE_KEY_DELETE,
        W_DEVLIST_UPDATE, W_DEVLIST_GET,       W_DEVLIST_DELETE,
        W_SPK_STORE,      W_SPK_LOAD,          W_SPK_LOAD_ALL,
        W_SPK_REMOVE,     W_PREKEY_STORE,      W_PREKEY_LOAD_BATCH,
        W_PREKEY_LOAD,    W_BASE_KEY_HAS_SAME, W_IDENTITY_PUT};
    one(g, k[below(g, sizeof k / sizeof k[0])]);
  } else if (r < 830) { /* device slots */
    uint32_t s = below(g, 100);
    if (s < 8)
      create(g);
    else if (s < 11)
      delete_slot(g);
    else if (s < 40)
      one(g, W_DEVICE_SAVE);
    else if (s < 70)
      one(g, W_DEVICE_LOAD);
    else if (s < 85)
      one(g, W_DEVICE_EXISTS);
    else
      one(g, W_DEVICE_LIST_IDS);
  } else if (r < 900) { /* an explicit transaction */
    int rollback = chance(g, 30);
    unsigned k = 2 + below(g, 4);
    emit(g, W_TX_BEGIN);
    for (unsigned i = 0; i < k; i++) {
      uint32_t s = below(g, 100);
      one(g, s < 50 ? W_SESSION_PUT : s < 60 ? W_RATCHET_SAVE : any_kind(g));
    }
    emit(g, rollback ? W_TX_ROLLBACK : W_TX_COMMIT);
  } else if (r < 940) { /* a libsignal store adapter */
    if (chance(g, 25))
      libsignal_prekey_message(g);
    else {
      static const int k[] = {
          W_SESSION_STORE,    W_SESSION_STORE,        W_SESSION_STORE,
          W_SESSION_LOAD,     W_SESSION_LOAD,         W_SESSION_CONTAINS,
          W_SESSION_REMOVE,   W_SESSION_LIST_DEVICES, W_SESSION_REMOVE_ALL,
          W_SENDER_KEY_STORE, W_SENDER_KEY_STORE,     W_SENDER_KEY_LOAD,
          W_IDENTITY_PUT_KEY, W_IDENTITY_GET_KEY,     W_LOCAL_ID_SAVE,
          W_LOCAL_ID_LOAD,    W_PREKEY_HAS,           W_SPK_HAS,
          W_DEVICE_FIND};
      one(g, k[below(g, sizeof k / sizeof k[0])]);
    }
  } else {
    one(g, any_kind(g));
  }
}

static void gen_adversarial(gen *g) {
  uint32_t r = below(g, 100);
  if (r < 4) {
    create(g);
  } else if (r < 8) { /* a stray transaction op */
    static const int k[] = {W_TX_BEGIN, W_TX_COMMIT, W_TX_ROLLBACK};
    emit(g, k[below(g, 3)]);
  } else if (r < 20) { /* ops in a transaction, often rolled back */
    unsigned k = 1 + below(g, 5);
    emit(g, W_TX_BEGIN);
    for (unsigned i = 0; i < k; i++)
      one(g, any_kind(g));
    emit(g, chance(g, 60) ? W_TX_ROLLBACK : W_TX_COMMIT);
  } else {
    one(g, any_kind(g));
  }
}

int ora_workload_gen(uint64_t seed, size_t n, ora_mix mix, ora_workload *w) {
  gen g;
  memset(&g, 0, sizeof g);
  memset(w, 0, sizeof *w);
  w->seed = seed;
  w->mix = mix;
  g.s = mix64(seed ^ (mix == ORA_MIX_ADVERSARIAL ? 0xad7e55a1ull : 0x7ea1ull));
  g.seed = seed;
  g.mix = mix;
  g.cap = n;
  g.now = 1700000000000;
  g.ops = calloc(n ? n : 1, sizeof *g.ops);
  if (!g.ops)
    return KJ_ENOMEM;
  /* The first ops create the slots. */
  create(&g);
  if (mix == ORA_MIX_REALISTIC) {
    create(&g);
    one(&g, W_DEVICE_SAVE);
    if (g.n == 3)
      g.ops[2].slot = 0;
  }
  while (g.n < n) {
    if (mix == ORA_MIX_ADVERSARIAL)
      gen_adversarial(&g);
    else
      gen_realistic(&g);
  }
  w->n = g.n;
  w->ops = g.ops;
  return KJ_OK;
}

void ora_workload_free(ora_workload *w) {
  if (!w)
    return;
  free(w->ops);
  w->ops = NULL;
  w->n = 0;
}

int ora_workload_subset(const ora_workload *w, const uint8_t *keep,
                        ora_workload *out) {
  size_t n = 0;
  memset(out, 0, sizeof *out);
  out->seed = w->seed;
  out->mix = w->mix;
  for (size_t i = 0; i < w->n; i++)
    n += keep[i] != 0;
  out->ops = calloc(n ? n : 1, sizeof *out->ops);
  if (!out->ops)
    return KJ_ENOMEM;
  for (size_t i = 0; i < w->n; i++)
    if (keep[i])
      out->ops[out->n++] = w->ops[i];
  return KJ_OK;
}

/* ---- dump --------------------------------------------------------------- */

static void dump_op(kj_backend *b, uint32_t dev, ora_wop *op, ora_obuf *out) {
  uint32_t none[1];
  size_t zero = 0;
  apply_dev(op, b, NULL, dev, none, &zero, out);
}

static void dump_keys(kj_backend *b, uint32_t dev, int kind, int fam, int use_b,
                      ora_obuf *out) {
  ora_wop op;
  memset(&op, 0, sizeof op);
  op.kind = (uint8_t)kind;
  for (unsigned c = 0; c <= fam_size[fam]; c++) {
    uint16_t code = c == fam_size[fam] ? K_MAXLEN : (uint16_t)c;
    if (use_b)
      op.b = code;
    else
      op.a = code;
    dump_op(b, dev, &op, out);
  }
}

static void dump_slot(kj_backend *b, uint32_t dev, ora_obuf *out) {
  ora_wop op;
  memset(&op, 0, sizeof op);

  op.kind = W_DEVICE_EXISTS;
  dump_op(b, dev, &op, out);
  op.kind = W_DEVICE_LOAD;
  dump_op(b, dev, &op, out);

  dump_keys(b, dev, W_IDENTITY_LOAD, FA_ADDR, 0, out);
  dump_keys(b, dev, W_SESSION_GET, FA_ADDR, 0, out);
  for (unsigned i = 0; i < N_PREKEY; i++) {
    op.kind = W_PREKEY_LOAD;
    op.a = (uint16_t)i;
    dump_op(b, dev, &op, out);
  }
  op.kind = W_PREKEY_LOAD_BATCH;
  op.a = 0;
  op.n = N_PREKEY;
  dump_op(b, dev, &op, out);
  op.n = 0;
  op.kind = W_PREKEY_MAX_ID;
  dump_op(b, dev, &op, out);
  op.kind = W_SPK_LOAD_ALL;
  dump_op(b, dev, &op, out);
  dump_keys(b, dev, W_SENDER_KEY_GET, FA_SKN, 0, out);

  dump_keys(b, dev, W_SYNC_KEY_GET, FA_KID, 0, out);
  op.kind = W_SYNC_KEY_LATEST;
  dump_op(b, dev, &op, out);
  dump_keys(b, dev, W_SYNC_VERSION_GET, FA_COLL, 1, out);
  for (unsigned c = 0; c <= fam_size[FA_COLL]; c++) {
    op.kind = W_MMAC_GET;
    op.b = c == fam_size[FA_COLL] ? K_MAXLEN : (uint16_t)c;
    for (unsigned i = 0; i <= fam_size[FA_IDX]; i++) {
      op.a = i == fam_size[FA_IDX] ? K_MAXLEN : (uint16_t)i;
      dump_op(b, dev, &op, out);
    }
  }

  dump_keys(b, dev, W_SKDM_GET, FA_GROUP, 1, out);
  op.kind = W_LID_GET_ALL;
  dump_op(b, dev, &op, out);
  dump_keys(b, dev, W_LID_GET_BY_LID, FA_LID, 0, out);
  dump_keys(b, dev, W_LID_GET_BY_PHONE, FA_PHONE, 1, out);
  op.kind = W_BASE_KEY_HAS_SAME;
  for (unsigned a = 0; a <= fam_size[FA_ADDR]; a++)
    for (unsigned m = 0; m <= fam_size[FA_MSG]; m++)
      for (unsigned v = 0; v < 4; v++) {
        op.a = a == fam_size[FA_ADDR] ? K_MAXLEN : (uint16_t)a;
        op.b = m == fam_size[FA_MSG] ? K_MAXLEN : (uint16_t)m;
        op.c = (uint16_t)(v & 1);
        op.size = v < 2 ? 32 : 1;
        dump_op(b, dev, &op, out);
      }
  op.size = 0;
  op.c = 0;
  dump_keys(b, dev, W_DEVLIST_GET, FA_USER, 0, out);
  dump_keys(b, dev, W_TC_GET, FA_JID, 0, out);
  op.kind = W_TC_ALL_JIDS;
  dump_op(b, dev, &op, out);
  dump_keys(b, dev, W_RATCHET_LOAD, FA_CONV, 0, out);

  /* Issue 17: the local identity, identity keys as stored (32 or 33
   * bytes), every name's sessions with their user records (names 0..4 and
   * one of KJ_MAX_NAME bytes, every device id) and device lists, the
   * identity keys and sessions at encoded addresses (and one byte past
   * them, at device id code 0), sender keys with their user records. */
  memset(&op, 0, sizeof op);
  op.kind = W_LOCAL_ID_LOAD;
  dump_op(b, dev, &op, out);
  dump_keys(b, dev, W_IDENTITY_GET_KEY, FA_ADDR, 0, out);
  dump_keys(b, dev, W_SENDER_KEY_LOAD, FA_SKN, 0, out);
  for (unsigned c = 0; c <= fam_size[FA_NAME]; c++) {
    uint16_t name = c == fam_size[FA_NAME] ? K_NAMEMAX : (uint16_t)c;
    memset(&op, 0, sizeof op);
    op.kind = W_SESSION_LIST_DEVICES;
    op.a = name;
    dump_op(b, dev, &op, out);
    for (unsigned d = 0; d < N_DEVID; d++) {
      op.kind = W_SESSION_LOAD;
      op.a = name;
      op.b = (uint16_t)d;
      dump_op(b, dev, &op, out);
    }
    if (name == K_NAMEMAX)
      continue; /* the address calls never name it (pick_addr) */
    op.a = 0;
    op.c = name;
    op.flags = F_NAMED;
    for (unsigned d = 0; d < N_DEVID; d++) {
      op.b = (uint16_t)d;
      op.kind = W_IDENTITY_GET_KEY;
      dump_op(b, dev, &op, out);
    }
    op.flags = F_NAMED | F_JUNK;
    op.b = 0;
    op.kind = W_SESSION_GET;
    dump_op(b, dev, &op, out);
    op.kind = W_IDENTITY_GET_KEY;
    dump_op(b, dev, &op, out);
  }
  memset(&op, 0, sizeof op);

  /* Forget marks can only be read by consuming them: in a transaction
   * that is rolled back. */
  kj_tx *t = NULL;
  int rc = kj_backend_begin(b, &t);
  ora_obuf_addf(out, "forget-tx rc=%d\n", rc);
  if (rc == KJ_OK) {
    uint32_t none[1];
    size_t zero = 0;
    op.kind = W_SK_CONSUME_FORGET;
    for (unsigned c = 0; c <= fam_size[FA_GROUP]; c++) {
      op.b = c == fam_size[FA_GROUP] ? K_MAXLEN : (uint16_t)c;
      apply_dev(&op, b, t, dev, none, &zero, out);
    }
    kj_backend_rollback(t);
  }
}

void ora_workload_dump(kj_backend *b, const uint32_t *slots, size_t nslots,
                       ora_obuf *out) {
  ora_wop op;
  memset(&op, 0, sizeof op);
  op.kind = W_DEVICE_LIST_IDS;
  dump_op(b, 0, &op, out);
  dump_keys(b, 0, W_DEVICE_FIND, FA_LABEL, 0, out);
  for (size_t i = 0; i < nslots; i++) {
    ora_beat();
    ora_obuf_addf(out, "== slot[%zu] = %" PRIu32 "\n", i, slots[i]);
    dump_slot(b, slots[i], out);
  }
  /* Nothing may be visible through id 0. */
  ora_obuf_addf(out, "== dev 0\n");
  op.kind = W_SESSION_GET;
  op.a = 0;
  dump_op(b, 0, &op, out);
  op.kind = W_DEVICE_EXISTS;
  dump_op(b, 0, &op, out);
}

const ora_wop *ora_workload_op(const ora_workload *w, size_t i) {
  return &w->ops[i];
}
