/*
 * src/engine/snapshot.h - snapshot files: the whole table state at one journal
 * sequence number, zstd-compressed and encrypted in authenticated chunks
 * (internal). doc/FORMAT.md section 6 is the specification.
 */
#ifndef KJ_SNAPSHOT_H
#define KJ_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "errbuf.h"
#include "keyjournal/sys/vfs.h"
#include "map.h"

/* What a snapshot says about the journal it replaces. */
typedef struct kj_snap_info {
  uint64_t seq;                   /* last frame included (0: none) */
  uint64_t base;                  /* first segment to replay after it */
  uint8_t prev_tag[KJ_TAG_BYTES]; /* tag of frame seq (zeros if seq 0) */
  /* Filled by write and read: */
  uint64_t rows;
  uint64_t raw_bytes;  /* serialised state before compression */
  uint64_t file_bytes; /* size of the file */
} kj_snap_info;

/* Row sink for reading: return KJ_OK or a status that aborts the read. */
typedef int (*kj_snap_row_fn)(void *arg, unsigned table, const uint8_t *key,
                              size_t klen, const uint8_t *val, size_t vlen);

/* Source of the encrypted bytes: read n bytes at off into buf, *got the
 * count (short at the end). */
typedef int (*kj_snap_read_fn)(void *arg, uint64_t off, void *buf, size_t n,
                               size_t *got);

/* File name of the snapshot at seq, "snapshot-<16 hex>.kjs". */
void kj_snapshot_name(uint64_t seq, char *out, size_t len);
/* 1 and *seq if name is a snapshot file name. */
int kj_snapshot_parse_name(const char *name, uint64_t *seq);

/* Write the snapshot of tables[1..255] described by info into dir,
 * durably (durable.c: tmp file, sync, rename, sync dir). Fills info->rows,
 * raw_bytes and file_bytes. *renamed tells whether the final name was reached
 * (after which a failure leaves the directory's state unknown). */
int kj_snapshot_write(const kj_vfs *vfs, const char *dir, const uint8_t *key,
                      const uint8_t *store_id, kj_map *const *tables,
                      kj_snap_info *info, int *renamed, kj_errbuf *e);

/* Decode a snapshot from rd (name is used in messages), handing every row
 * to fn in ascending (table, key) order. Any damage, truncation or
 * tampering is KJ_ECORRUPT; a newer format is KJ_EFORMAT. */
int kj_snapshot_decode(kj_snap_read_fn rd, void *rd_arg, const char *name,
                       const uint8_t *key, const uint8_t *store_id,
                       kj_snap_row_fn fn, void *arg, kj_snap_info *info,
                       kj_errbuf *e);

/* kj_snapshot_decode of the file path through vfs. */
int kj_snapshot_read(const kj_vfs *vfs, const char *path, const uint8_t *key,
                     const uint8_t *store_id, kj_snap_row_fn fn, void *arg,
                     kj_snap_info *info, kj_errbuf *e);

#endif
