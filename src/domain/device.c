/*
 * src/domain/device.c - the public device-slot functions of
 * keyjournal/device.h: argument checks (src/domain/dispatch.h), then the
 * backend's kj_device_ops.
 *
 * Slot id 0 is never a slot (ids start at 1), so it is answered here,
 * identically for every backend, without a call into the backend: save and
 * load find nothing (KJ_NOTFOUND), exists says 0, delete of the absent slot
 * succeeds. Everything else is the backend's.
 */
#include "dispatch.h"

int kj_device_create(kj_backend *b, kj_tx *t, uint32_t *id) {
  KJ_D_GET(b, t, device, device_create, (b, t, id), id);
}

int kj_device_create_labeled(kj_backend *b, kj_tx *t, const void *label,
                             size_t llen, uint32_t *id) {
  KJ_D_CLEAR(id);
  KJ_D_FORWARD(b, t, device, device_create_labeled, (b, t, label, llen, id),
               kj_d_id(b, label, llen, "kj_device_create_labeled: label"),
               kj_d_ptr(b, id, "kj_device_create_labeled: id"));
}

int kj_device_find(kj_backend *b, kj_tx *t, const void *label, size_t llen,
                   uint32_t *id) {
  KJ_D_CLEAR(id);
  KJ_D_FORWARD(b, t, device, device_find, (b, t, label, llen, id),
               kj_d_id(b, label, llen, "kj_device_find: label"),
               kj_d_ptr(b, id, "kj_device_find: id"));
}

int kj_device_list_ids(kj_backend *b, kj_tx *t, kj_u32_list **out) {
  KJ_D_GET(b, t, device, device_list_ids, (b, t, out), out);
}

int kj_device_exists(kj_backend *b, kj_tx *t, uint32_t id, int *exists) {
  KJ_D_CLEAR(exists);
  int rc;
  if (KJ_D_CHECKS(rc, KJ_D_START(b, t, device, device_exists),
                  kj_d_ptr(b, exists, "kj_device_exists: exists")))
    return rc;
  return id ? b->ops->device->device_exists(b, t, id, exists) : KJ_OK;
}

/* Slot 0 holds nothing: a save or load of it is KJ_NOTFOUND, once the
 * arguments passed their checks (bad input is reported before "no such
 * slot", as for every write). */
static int check_slot(uint32_t id) { return id ? KJ_OK : KJ_NOTFOUND; }

/* An optional blob: checked only when its flag says it is present (an
 * absent one's pointer and length are ignored, so a caller may leave them
 * uninitialised). */
static int check_opt(kj_backend *b, int has, const kj_blob *v, size_t max,
                     const char *what) {
  int rc = kj_d_flag(b, has, what);
  if (!rc && has)
    rc = kj_d_opt(b, v->p, v->len, max, what);
  return rc;
}

/* The fields of a record (r checked). */
static int check_record(kj_backend *b, const kj_device_record *r) {
  int rc;
  return KJ_D_CHECKS(
      rc,
      check_opt(b, r->has_phone_jid, &r->phone_jid, KJ_MAX_ID,
                "kj_device_save: phone_jid"),
      check_opt(b, r->has_lid, &r->lid, KJ_MAX_ID, "kj_device_save: lid"),
      check_opt(b, r->has_account, &r->account, KJ_MAX_RECORD,
                "kj_device_save: account"),
      kj_d_opt(b, r->push_name.p, r->push_name.len, KJ_MAX_ID,
               "kj_device_save: push_name"),
      check_opt(b, r->has_edge_routing, &r->edge_routing, KJ_MAX_ID,
                "kj_device_save: edge_routing"),
      check_opt(b, r->has_props_hash, &r->props_hash, KJ_MAX_ID,
                "kj_device_save: props_hash"));
}

int kj_device_save(kj_backend *b, kj_tx *t, uint32_t id,
                   const kj_device_record *r) {
  KJ_D_FORWARD(b, t, device, device_save, (b, t, id, r),
               kj_d_ptr(b, r, "kj_device_save: record"), check_record(b, r),
               check_slot(id));
}

int kj_device_load(kj_backend *b, kj_tx *t, uint32_t id,
                   kj_device_record **out) {
  KJ_D_CLEAR(out);
  KJ_D_FORWARD(b, t, device, device_load, (b, t, id, out),
               kj_d_ptr(b, out, "kj_device_load: out"), check_slot(id));
}

int kj_device_delete(kj_backend *b, kj_tx *t, uint32_t id) {
  int rc = KJ_D_START(b, t, device, device_delete);
  return rc || !id ? rc : b->ops->device->device_delete(b, t, id);
}

int kj_device_snapshot_copy(kj_backend *b, kj_tx *t, const void *label,
                            size_t llen, const void *extra, size_t elen,
                            char **path) {
  KJ_D_CLEAR(path);
  /* An empty label is allowed: it becomes "copy". */
  KJ_D_FORWARD(
      b, t, device, device_snapshot_copy,
      (b, t, label, llen, extra, elen, path),
      kj_d_opt(b, label, llen, KJ_MAX_ID, "kj_device_snapshot_copy: label"),
      kj_d_opt(b, extra, elen, KJ_MAX_RECORD,
               "kj_device_snapshot_copy: extra"));
}
