/*
 * bench/kvreport.c - the key-value table of the benchmark (kv.c) as text
 * or as the JSON member "kv", with the engine's targets against LMDB and
 * RocksDB at the same durability. It only reads the figures of a finished
 * run.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

typedef struct kvrow {
  int f;
  const char *id, *name, *unit;
  double scale; /* base unit to printed unit */
} kvrow;

static const kvrow rows[] = {
    {KF_COMMIT, "commit", "commit, one 512 B put", "us", 1e6},
    {KF_THREADS, "threads", "commit, 8 writer threads (total)", "ops/s", 1},
    {KF_BATCH, "batch", "commit of a batch of 100 puts", "us", 1e6},
    {KF_GET0, "get_small", "point read, small store", "us", 1e6},
    {KF_GET0 + 1, "get_medium", "point read, medium store", "us", 1e6},
    {KF_GET0 + 2, "get_large", "point read, large store", "us", 1e6},
    {KF_SCAN, "scan", "ordered scan of 1,000 rows (medium)", "us", 1e6},
    {KF_DISK, "disk", "disk bytes (medium store)", "B", 1},
    {KF_RSS, "rss", "peak RSS, open medium + one read", "KiB", 1},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* A target: contender c's figure f against ref's, as a speedup (times) or
 * a rate ratio, at least want. */
typedef struct kvtarget {
  int f, c, ref;
  double want;
} kvtarget;

static const kvtarget targets[] = {
    {KF_COMMIT, KV_NAT_FULL, KV_LMDB, 2.0},
    {KF_COMMIT, KV_NAT_FULL, KV_ROCKS, 1.3},
    {KF_COMMIT, KV_NAT_NORMAL, KV_LMDB_NOSYNC, 2.0},
    {KF_COMMIT, KV_NAT_NORMAL, KV_ROCKS_NOSYNC, 2.0},
    {KF_GET0 + 1, KV_NAT_FULL, KV_LMDB, 1.0},
    {KF_GET0 + 1, KV_NAT_FULL, KV_ROCKS, 3.0},
    {KF_GET0 + 2, KV_NAT_FULL, KV_LMDB, 1.0},
    {KF_GET0 + 2, KV_NAT_FULL, KV_ROCKS, 3.0},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

/* c against ref on figure f: the speedup for times (ref / c), value / ref
 * for rates; 0 when either is missing. */
static double kv_ratio(const bench_kv *k, int f, int c, int ref) {
  double a = k->fig[c][f], b = k->fig[ref][f];
  if (a <= 0 || b <= 0)
    return 0;
  return f == KF_THREADS ? a / b : b / a;
}

/* Figure f is printed: a read row only for the store sizes measured. */
static int shown(const bench_kv *k, int f) {
  return f < KF_GET0 || f >= KF_GET0 + 3 || f - KF_GET0 < k->nsizes;
}

static void row_name(const bench_kv *k, const kvrow *r, char *out, size_t cap) {
  if (r->f >= KF_GET0 && r->f < KF_GET0 + 3)
    snprintf(out, cap, "point read, %ld rows", k->sizes[r->f - KF_GET0]);
  else
    snprintf(out, cap, "%s", r->name);
}

void bench_kv_print_text(const bench_run *run) {
  const bench_kv *k = &run->kv;
  printf("\nKey-value API (kj_put/kj_get/kj_scan_range) against LMDB and "
         "RocksDB: keys of 11 B, values of 512 B;\nthe native store is "
         "encrypted, the others are not. Durable: native FULL, LMDB (sync "
         "at commit),\nRocksDB sync (sync=true). Unsynced: native NORMAL, "
         "LMDB NOSYNC, RocksDB nosync (sync=false).\n");
  for (int c = 0; c < KV_NCONT; c++)
    if (!k->ok[c])
      printf("%s: %s\n", bench_kv_name[c], k->why[c]);
  printf("\n%-38s %-5s", "figure", "unit");
  for (int c = 0; c < KV_NCONT; c++)
    printf(" %15s", bench_kv_name[c]);
  printf("\n");
  for (size_t i = 0; i < NROWS; i++) {
    const kvrow *r = &rows[i];
    if (!shown(k, r->f))
      continue;
    char name[64];
    row_name(k, r, name, sizeof name);
    printf("%-38s %-5s", name, r->unit);
    for (int c = 0; c < KV_NCONT; c++) {
      char cell[32];
      double v = k->fig[c][r->f] * r->scale;
      if (!k->ok[c])
        snprintf(cell, sizeof cell, "n/a");
      else if (k->fig[c][r->f] <= 0)
        snprintf(cell, sizeof cell, "-");
      else if (v >= 1000)
        snprintf(cell, sizeof cell, "%.0f", v);
      else if (v >= 10)
        snprintf(cell, sizeof cell, "%.1f", v);
      else
        snprintf(cell, sizeof cell, "%.3f", v);
      printf(" %15s", cell);
    }
    printf("\n");
  }
  printf("\n-: not measured (reads, scans, bytes and RSS on the durable "
         "stores only; 8 threads: durable only).\n");
  printf("\nTargets of the native engine against LMDB and RocksDB at the "
         "same durability (informative):\n");
  for (size_t i = 0; i < NTARGETS; i++) {
    const kvtarget *t = &targets[i];
    char name[64], line[160], got[32] = "-";
    const kvrow *r = NULL;
    for (size_t j = 0; j < NROWS; j++)
      if (rows[j].f == t->f)
        r = &rows[j];
    if (!r || !shown(k, t->f))
      continue;
    row_name(k, r, name, sizeof name);
    double q = kv_ratio(k, t->f, t->c, t->ref);
    if (q > 0)
      snprintf(got, sizeof got, "%.2fx", q);
    snprintf(line, sizeof line, "%s, %s vs %s", name, bench_kv_name[t->c],
             bench_kv_name[t->ref]);
    printf("  %-64s >=%.1fx %10s  %s\n", line, t->want, got,
           q <= 0         ? "n/a"
           : q >= t->want ? "met"
                          : "MISSED");
  }
}

void bench_kv_print_json(const bench_run *run) {
  const bench_kv *k = &run->kv;
  printf("  \"kv\": {\n    \"contenders\": [\n");
  for (int c = 0; c < KV_NCONT; c++) {
    printf("      {\"key\": \"%s\", \"name\": \"%s\", \"available\": %s, "
           "\"reason\": ",
           bench_kv_key[c], bench_kv_name[c], k->ok[c] ? "true" : "false");
    if (k->ok[c])
      printf("null");
    else
      bench_json_str(k->why[c]);
    printf("}%s\n", c + 1 < KV_NCONT ? "," : "");
  }
  printf("    ],\n    \"sizes\": [");
  for (int s = 0; s < k->nsizes; s++)
    printf("%s%ld", s ? ", " : "", k->sizes[s]);
  printf("],\n    \"figures\": [\n");
  int first = 1;
  for (size_t i = 0; i < NROWS; i++) {
    const kvrow *r = &rows[i];
    if (!shown(k, r->f))
      continue;
    char name[64];
    row_name(k, r, name, sizeof name);
    printf("%s      {\"id\": \"%s\", \"figure\": ", first ? "" : ",\n", r->id);
    bench_json_str(name);
    printf(", \"unit\": \"%s\", \"values\": {", r->unit);
    for (int c = 0; c < KV_NCONT; c++) {
      printf("%s\"%s\": ", c ? ", " : "", bench_kv_key[c]);
      if (k->fig[c][r->f] > 0)
        printf("%.10g", k->fig[c][r->f] * r->scale);
      else
        printf("null");
    }
    printf("}}");
    first = 0;
  }
  printf("\n    ],\n    \"targets\": [\n");
  first = 1;
  for (size_t i = 0; i < NTARGETS; i++) {
    const kvtarget *t = &targets[i];
    if (!shown(k, t->f))
      continue;
    const char *id = "?";
    for (size_t j = 0; j < NROWS; j++)
      if (rows[j].f == t->f)
        id = rows[j].id;
    double q = kv_ratio(k, t->f, t->c, t->ref);
    printf("%s      {\"figure\": \"%s\", \"contender\": \"%s\", "
           "\"reference\": \"%s\", \"at_least\": %.2f, \"achieved\": ",
           first ? "" : ",\n", id, bench_kv_key[t->c], bench_kv_key[t->ref],
           t->want);
    if (q > 0)
      printf("%.4f, \"status\": \"%s\"}", q, q >= t->want ? "met" : "missed");
    else
      printf("null, \"status\": null}");
    first = 0;
  }
  printf("\n    ]\n  }\n");
}
