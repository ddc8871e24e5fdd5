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

#define DEV_START(b, t, op, fn) kj_d_start(b, t, KJ_D_OP(b, device, op), fn)

int kj_device_create(kj_backend *b, kj_tx *t, uint32_t *id) {
  if (id)
    *id = 0;
  int rc = DEV_START(b, t, device_create, "kj_device_create");
  if (!rc)
    rc = kj_d_ptr(b, id, "kj_device_create: id");
  return rc ? rc : b->ops->device->device_create(b, t, id);
}

int kj_device_list_ids(kj_backend *b, kj_tx *t, kj_u32_list **out) {
  if (out)
    *out = NULL;
  int rc = DEV_START(b, t, device_list_ids, "kj_device_list_ids");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_device_list_ids: out");
  return rc ? rc : b->ops->device->device_list_ids(b, t, out);
}

int kj_device_exists(kj_backend *b, kj_tx *t, uint32_t id, int *exists) {
  if (exists)
    *exists = 0;
  int rc = DEV_START(b, t, device_exists, "kj_device_exists");
  if (!rc)
    rc = kj_d_ptr(b, exists, "kj_device_exists: exists");
  if (rc || id == 0)
    return rc;
  return b->ops->device->device_exists(b, t, id, exists);
}

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

static int check_record(kj_backend *b, const kj_device_record *r) {
  int rc = kj_d_ptr(b, r, "kj_device_save: record");
  if (!rc)
    rc = check_opt(b, r->has_phone_jid, &r->phone_jid, KJ_MAX_ID,
                   "kj_device_save: phone_jid");
  if (!rc)
    rc = check_opt(b, r->has_lid, &r->lid, KJ_MAX_ID, "kj_device_save: lid");
  if (!rc)
    rc = check_opt(b, r->has_account, &r->account, KJ_MAX_RECORD,
                   "kj_device_save: account");
  if (!rc)
    rc = kj_d_opt(b, r->push_name.p, r->push_name.len, KJ_MAX_ID,
                  "kj_device_save: push_name");
  if (!rc)
    rc = check_opt(b, r->has_edge_routing, &r->edge_routing, KJ_MAX_ID,
                   "kj_device_save: edge_routing");
  if (!rc)
    rc = check_opt(b, r->has_props_hash, &r->props_hash, KJ_MAX_ID,
                   "kj_device_save: props_hash");
  return rc;
}

int kj_device_save(kj_backend *b, kj_tx *t, uint32_t id,
                   const kj_device_record *r) {
  int rc = DEV_START(b, t, device_save, "kj_device_save");
  if (!rc)
    rc = check_record(b, r);
  if (rc)
    return rc;
  /* Bad input is reported before "no such slot", as for every write. */
  if (id == 0)
    return KJ_NOTFOUND;
  return b->ops->device->device_save(b, t, id, r);
}

int kj_device_load(kj_backend *b, kj_tx *t, uint32_t id,
                   kj_device_record **out) {
  if (out)
    *out = NULL;
  int rc = DEV_START(b, t, device_load, "kj_device_load");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_device_load: out");
  if (rc)
    return rc;
  if (id == 0)
    return KJ_NOTFOUND;
  return b->ops->device->device_load(b, t, id, out);
}

int kj_device_delete(kj_backend *b, kj_tx *t, uint32_t id) {
  int rc = DEV_START(b, t, device_delete, "kj_device_delete");
  if (rc || id == 0)
    return rc;
  return b->ops->device->device_delete(b, t, id);
}

int kj_device_snapshot_copy(kj_backend *b, kj_tx *t, const void *label,
                            size_t llen, const void *extra, size_t elen,
                            char **path) {
  if (path)
    *path = NULL;
  int rc = DEV_START(b, t, device_snapshot_copy, "kj_device_snapshot_copy");
  if (!rc) /* empty is allowed: it becomes "copy" */
    rc = kj_d_opt(b, label, llen, KJ_MAX_ID, "kj_device_snapshot_copy: label");
  if (!rc)
    rc = kj_d_opt(b, extra, elen, KJ_MAX_RECORD,
                  "kj_device_snapshot_copy: extra");
  return rc ? rc
            : b->ops->device->device_snapshot_copy(b, t, label, llen, extra,
                                                   elen, path);
}
