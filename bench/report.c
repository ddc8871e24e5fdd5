/*
 * bench/report.c - the benchmark's figures as a table or as JSON.
 *
 * Owns what a reader sees: one row per figure with its unit and each
 * contender's value, the ratio of each to SQLite FULL measured in the same
 * run (for times the speedup sqlite_full_time / time, for rates and sizes
 * value / sqlite_full), the notes on what a figure does not include, the
 * project's targets for the native engine, met or missed (informative: a
 * missed target is not a failure), and the same as JSON (stable ids,
 * null where not measured). It only reads the figures of a finished run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* How a figure compares to SQLite FULL: times as the speedup
 * sqlite_full / value (above 1: faster), rates and sizes as value /
 * sqlite_full; R_NONE for derived figures. */
enum ratio_kind { R_NONE, R_SPEEDUP, R_OVER };

typedef struct row {
  char id[40]; /* stable name (JSON) */
  char name[96];
  char unit[8];
  int rkind;
  double v[NCONT];
  int has[NCONT];
  char note[128];
} row;

/* A target of the project: contender c's figure against reference ref
 * (a ratio in the row's direction), or absolute (ref < 0). */
typedef struct target {
  const row *r;
  int c, ref, ge;
  double val;
  char text[64];
  double got;
  int status; /* -1 n/a, 0 missed, 1 met */
} target;

/* The rows and targets of one report, in print order. */
typedef struct report {
  row rows[40];
  int nrows;
  target targets[24];
  int ntargets;
} report;

static row *add_row(report *p, const char *id, const char *name,
                    const char *unit, int rkind) {
  row *r = &p->rows[p->nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->rkind = rkind;
  return r;
}

static const row *find_row(const report *p, const char *id) {
  for (int i = 0; i < p->nrows; i++)
    if (strcmp(p->rows[i].id, id) == 0)
      return &p->rows[i];
  return NULL;
}

/* Row cells from figure f: value * scale, or (inv) scale / value. */
static void row_from(const bench_run *run, row *r, int f, double scale,
                     int inv) {
  for (int c = 0; c < NCONT; c++)
    if (run->has_fig[c][f] && run->fig[c][f] > 0) {
      double v = run->fig[c][f];
      r->v[c] = inv ? scale / v : v * scale;
      r->has[c] = 1;
    }
}

/* The row of the open time of the store of size si (label nl): figure
 * fig + si, id open_<size>_<what>_ms, with note (or "not run" for a size
 * this run did not build). */
static void open_row(report *p, const bench_run *run, int si, const char *nl,
                     const char *what, const char *label, int fig,
                     const char *note) {
  static const char *const size_id[3] = {"small", "medium", "large"};
  char id[40], name[96];
  snprintf(id, sizeof id, "open_%s_%s_ms", size_id[si], what);
  snprintf(name, sizeof name, "open %s rows, %s", nl, label);
  row *r = add_row(p, id, name, "ms", R_SPEEDUP);
  row_from(run, r, fig + si, 1e3, 0);
  snprintf(r->note, sizeof r->note, "%s",
           si >= run->cfg.nsizes ? "not run (needs --large)" : note);
}

/* The ratio of cell c to SQLite FULL; 0 when there is none. */
static double ratio_to_sqlite(const row *r, int c) {
  if (r->rkind == R_NONE || !r->has[c] || !r->has[SQL_FULL] || r->v[c] <= 0 ||
      r->v[SQL_FULL] <= 0)
    return 0;
  return r->rkind == R_SPEEDUP ? r->v[SQL_FULL] / r->v[c]
                               : r->v[c] / r->v[SQL_FULL];
}

static void add_target(report *p, const char *id, int c, int ref, int ge,
                       double val, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void add_target(report *p, const char *id, int c, int ref, int ge,
                       double val, const char *fmt, ...) {
  target *t = &p->targets[p->ntargets++];
  memset(t, 0, sizeof *t);
  t->r = find_row(p, id);
  t->c = c;
  t->ref = ref;
  t->ge = ge;
  t->val = val;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->text, sizeof t->text, fmt, ap);
  va_end(ap);
  t->status = -1;
  const row *r = t->r;
  if (!r || !r->has[c] || r->v[c] <= 0 ||
      (ref >= 0 && (!r->has[ref] || r->v[ref] <= 0)))
    return;
  t->got = ref < 0                 ? r->v[c]
           : r->rkind == R_SPEEDUP ? r->v[ref] / r->v[c]
                                   : r->v[c] / r->v[ref];
  t->status = ge ? t->got >= val : t->got <= val;
}

static const char *size_label(char *out, size_t cap, long n) {
  if (n >= 1000000 && n % 1000000 == 0)
    snprintf(out, cap, "%ldM", n / 1000000);
  else if (n >= 1000 && n % 1000 == 0)
    snprintf(out, cap, "%ldk", n / 1000);
  else
    snprintf(out, cap, "%ld", n);
  return out;
}

static void build_rows(report *p, const bench_run *run, double fsync_rate,
                       long rss_base) {
  const bench_cfg *g = &run->cfg;
  char name[96], nl[32];
  row *r;
  r = add_row(p, "commit_us", "commit, 512 B session put", "us", R_SPEEDUP);
  row_from(run, r, F_COMMIT, 1e6, 0);
  r = add_row(p, "commit_ops", "commit, 512 B session put", "ops/s", R_OVER);
  row_from(run, r, F_COMMIT, 1, 1);
  r = add_row(p, "commit_fdatasync_frac", "commit / fdatasync limit", "frac",
              R_NONE);
  row_from(run, r, F_COMMIT, 1 / fsync_rate, 1);
  r = add_row(p, "threads8_ops", "FULL commit, 8 threads (total)", "ops/s",
              R_OVER);
  row_from(run, r, F_THREADS, 1, 0);
  r = add_row(p, "get_us", "point read, session get (1000 rows)", "us",
              R_SPEEDUP);
  row_from(run, r, F_GET, 1e6, 0);
  r = add_row(p, "prekey100_us", "pre-key batch of 100, one call", "us",
              R_SPEEDUP);
  row_from(run, r, F_PREKEY, 1e6, 0);
  r = add_row(p, "ratchet50_us", "ratchet save, 50 skipped keys", "us",
              R_SPEEDUP);
  row_from(run, r, F_RATCHET, 1e6, 0);

  r = add_row(p, "create_ms", "create an empty store", "ms", R_SPEEDUP);
  row_from(run, r, F_CREATE, 1e3, 0);
  snprintf(r->note, sizeof r->note, "kj_backend_open of an empty directory");
  snprintf(name, sizeof name, "open a %d-row store", BENCH_TINY);
  r = add_row(p, "open_tiny_ms", name, "ms", R_SPEEDUP);
  row_from(run, r, F_OPEN_TINY, 1e3, 0);
  snprintf(r->note, sizeof r->note, "warm cache");

  long sizes[3] = {g->sizes[0], g->sizes[1], g->sizes[2]};
  for (int si = 0; si < 3; si++) {
    size_label(nl, sizeof nl, sizes[si]);
    open_row(p, run, si, nl, "journal", "journal only", F_OPEN_J,
             "warm cache; SQLite, SQLCipher open lazily (read no rows)");
    open_row(p, run, si, nl, "checkpoint", "after checkpoint", F_OPEN_C,
             "SQLite, SQLCipher: the same store (no checkpoint step)");
    open_row(p, run, si, nl, "cold", "cold page cache", F_OPEN_COLD,
             "files dropped from the page cache (fadvise); native after a "
             "checkpoint");
  }
  long largest = sizes[g->nsizes - 1];
  size_label(nl, sizeof nl, largest);
  snprintf(name, sizeof name, "peak RSS, open %s rows + %dk reads", nl,
           BENCH_READS / 1000);
  r = add_row(p, "rss_reads_kib", name, "KiB", R_OVER);
  row_from(run, r, F_RSS_READS, 1, 0);
  snprintf(r->note, sizeof r->note,
           "child VmHWM after %d random session gets (the largest store)",
           BENCH_READS);
  snprintf(name, sizeof name, "checkpoint of %s rows, logical MB/s", nl);
  r = add_row(p, "checkpoint_mbs", name, "MB/s", R_NONE);
  row_from(run, r, F_CKPT_MBS, 1, 0);
  snprintf(r->note, sizeof r->note,
           "kj_store_checkpoint() alone; key+value bytes / seconds");
  snprintf(name, sizeof name, "point read, warm, run of %s rows", nl);
  r = add_row(p, "read_warm_us", name, "us", R_NONE);
  row_from(run, r, F_READ_WARM, 1e6, 0);
  snprintf(r->note, sizeof r->note,
           "after a checkpoint: session gets among %d keys (blocks cached)",
           BENCH_HOT);
  snprintf(name, sizeof name, "point read, cold block, run of %s rows", nl);
  r = add_row(p, "read_cold_us", name, "us", R_NONE);
  row_from(run, r, F_READ_COLD, 1e6, 0);
  snprintf(r->note, sizeof r->note,
           "random session gets over every row: mostly a block not in the "
           "8 MiB cache (page cache warm)");
  snprintf(name, sizeof name, "FULL commit p50, %s rows", nl);
  r = add_row(p, "lat_p50_us", name, "us", R_NONE);
  row_from(run, r, F_LAT_P50, 1e6, 0);
  snprintf(r->note, sizeof r->note, "%d session puts timed one by one",
           BENCH_LAT_N);
  snprintf(name, sizeof name, "FULL commit p99, checkpoint of %s rows", nl);
  r = add_row(p, "lat_p99_us", name, "us", R_NONE);
  row_from(run, r, F_LAT_P99, 1e6, 0);
  snprintf(r->note, sizeof r->note,
           "%d puts, one of which crosses the snapshot threshold", BENCH_LAT_N);
  snprintf(name, sizeof name, "FULL commit max, checkpoint of %s rows", nl);
  r = add_row(p, "lat_max_ms", name, "ms", R_NONE);
  row_from(run, r, F_LAT_MAX, 1e3, 0);
  snprintf(r->note, sizeof r->note, "the checkpoint runs in that commit");
  r = add_row(p, "lat_p99_over_p50", "commit p99 with checkpoint / p50", "frac",
              R_NONE);
  if (run->has_fig[NAT_FULL][F_LAT_P99] && run->has_fig[NAT_FULL][F_LAT_P50] &&
      run->fig[NAT_FULL][F_LAT_P50] > 0) {
    r->v[NAT_FULL] =
        run->fig[NAT_FULL][F_LAT_P99] / run->fig[NAT_FULL][F_LAT_P50];
    r->has[NAT_FULL] = 1;
  }
  size_label(nl, sizeof nl, sizes[BENCH_MEDIUM]);
  snprintf(name, sizeof name, "disk bytes %s rows, journal only", nl);
  r = add_row(p, "disk_journal_bytes", name, "B", R_OVER);
  row_from(run, r, F_DISK_J, 1, 0);
  snprintf(r->note, sizeof r->note,
           "file sizes, native incl. preallocated segment space");
  snprintf(name, sizeof name, "disk bytes %s rows, after checkpoint", nl);
  r = add_row(p, "disk_checkpoint_bytes", name, "B", R_OVER);
  row_from(run, r, F_DISK_C, 1, 0);
  snprintf(name, sizeof name, "logical bytes %s rows (key+value)", nl);
  r = add_row(p, "logical_bytes", name, "B", R_NONE);
  row_from(run, r, F_LOGICAL, 1, 0);
  snprintf(name, sizeof name, "peak RSS, open %s rows, journal", nl);
  r = add_row(p, "rss_journal_kib", name, "KiB", R_OVER);
  row_from(run, r, F_RSS_J, 1, 0);
  if (run->sqlc.ok)
    snprintf(r->note, sizeof r->note,
             "child VmHWM, SQLite lazy; empty child: %ld KiB (SQLCipher "
             "helper: %ld KiB)",
             rss_base, run->sqlc.rss_base);
  else
    snprintf(r->note, sizeof r->note,
             "child VmHWM, SQLite lazy; empty child: %ld KiB", rss_base);
  snprintf(name, sizeof name, "peak RSS, open %s rows, checkpoint", nl);
  r = add_row(p, "rss_checkpoint_kib", name, "KiB", R_OVER);
  row_from(run, r, F_RSS_C, 1, 0);

  double logical =
      run->has_fig[NAT_FULL][F_LOGICAL] ? run->fig[NAT_FULL][F_LOGICAL] : 0;
  double rss_lim = 2.0 * logical / 1024.0;
  add_target(p, "commit_us", NAT_FULL, SQL_FULL, 1, 1.2, ">=1.2x SQLite FULL");
  add_target(p, "commit_us", NAT_NORMAL, SQL_NORMAL, 1, 5,
             ">=5x SQLite NORMAL");
  add_target(p, "commit_fdatasync_frac", NAT_FULL, -1, 1, 0.9,
             ">=0.9 of fdatasync limit");
  add_target(p, "threads8_ops", NAT_FULL, SQL_FULL, 1, 4, ">=4x SQLite FULL");
  add_target(p, "get_us", NAT_FULL, SQL_FULL, 1, 10, ">=10x SQLite FULL");
  if (largest >= 1000000)
    add_target(p, "rss_reads_kib", NAT_FULL, -1, 0, 32 * 1024,
               "<=32 MiB (1M rows)");
  add_target(p, "checkpoint_mbs", NAT_FULL, -1, 1, 100, ">=100 MB/s");
  add_target(p, "read_warm_us", NAT_FULL, -1, 0, 0.5, "<=0.5 us");
  add_target(p, "read_cold_us", NAT_FULL, -1, 0, 20, "<=20 us");
  add_target(p, "lat_p99_over_p50", NAT_FULL, -1, 0, 2, "<=2");
  add_target(p, "lat_max_ms", NAT_FULL, -1, 0, 10, "<=10 ms");
  add_target(p, "create_ms", NAT_FULL, -1, 0, 5, "<=5 ms");
  add_target(p, "open_tiny_ms", NAT_FULL, -1, 0, 1, "<=1 ms");
  add_target(p, "open_large_journal_ms", NAT_FULL, -1, 0, 1000, "<=1 s");
  add_target(p, "open_large_checkpoint_ms", NAT_FULL, -1, 0, 50,
             "<=50 ms (1M rows)");
  add_target(p, "open_medium_checkpoint_ms", NAT_FULL, -1, 0, 5,
             "<=5 ms (100k rows)");
  add_target(p, "disk_journal_bytes", NAT_FULL, SQL_FULL, 0, 0.6,
             "<=0.6x SQLite FULL");
  add_target(p, "disk_checkpoint_bytes", NAT_FULL, SQL_FULL, 0, 0.6,
             "<=0.6x SQLite FULL");
  add_target(p, "rss_journal_kib", NAT_FULL, -1, 0, rss_lim,
             "<=2x logical (%.0f KiB)", rss_lim);
  add_target(p, "rss_checkpoint_kib", NAT_FULL, -1, 0, rss_lim,
             "<=2x logical (%.0f KiB)", rss_lim);
}

static void fmt_val(char *out, size_t cap, double v, const char *unit) {
  if (strcmp(unit, "B") == 0 || strcmp(unit, "KiB") == 0 || v >= 1000)
    snprintf(out, cap, "%.0f", v);
  else if (v >= 10)
    snprintf(out, cap, "%.1f", v);
  else if (v >= 0.1)
    snprintf(out, cap, "%.3f", v);
  else
    snprintf(out, cap, "%.4f", v);
}

static void fmt_ratio(char *out, size_t cap, double x) {
  snprintf(out, cap,
           x >= 100   ? "%.0fx"
           : x >= 10  ? "%.1fx"
           : x >= 0.1 ? "%.2fx"
                      : "%.3fx",
           x);
}

static const char *status_text(int s) {
  return s < 0 ? "n/a" : s ? "met" : "MISSED";
}

static void print_text(const report *p, const bench_run *run, const char *dir,
                       double fsync_rate) {
  const bench_cfg *g = &run->cfg;
  char line[8192];
  printf("keyjournal bench: native engine, SQLite and SQLCipher side by "
         "side; median of %d rep%s; dir %s\n",
         g->reps, g->reps == 1 ? "" : "s", dir);
  if (g->quick)
    printf("QUICK RUN: tiny time budgets and stores; the figures mean "
           "nothing\n");
  printf("fdatasync limit (512 B pwrite + fdatasync, preallocated): %.0f "
         "ops/s\n",
         fsync_rate);
  bench_describe_sqlite(line, sizeof line);
  printf("SQLite FULL, SQLite NORMAL: %s\n", line);
  bench_describe_sqlcipher(run, line, sizeof line);
  printf("SQLCipher FULL: %s\n\n", line);
  printf("%-38s %-5s", "figure", "unit");
  for (int c = 0; c < NCONT; c++)
    printf(" %17s", bench_cont_name[c]);
  printf("\n");
  for (int i = 0; i < p->nrows; i++) {
    const row *r = &p->rows[i];
    printf("%-38s %-5s", r->name, r->unit);
    for (int c = 0; c < NCONT; c++) {
      char cell[64], v[32], x[24];
      double q = ratio_to_sqlite(r, c);
      if (!r->has[c])
        snprintf(cell, sizeof cell, "%s",
                 c == SQLC_FULL && !run->sqlc.ok ? "n/a" : "-");
      else {
        fmt_val(v, sizeof v, r->v[c], r->unit);
        if (c == SQL_FULL || q <= 0)
          snprintf(cell, sizeof cell, "%s", v);
        else {
          fmt_ratio(x, sizeof x, q);
          snprintf(cell, sizeof cell, "%s (%s)", v, x);
        }
      }
      printf(" %17s", cell);
    }
    printf("%s%s\n", r->note[0] ? "  " : "", r->note);
  }
  printf("\n(Nx): ratio to SQLite FULL in this run. Times (us, ms): the "
         "speedup sqlite_full_time / time,\nabove 1 is faster. Rates "
         "(ops/s) and sizes (B, KiB): value / sqlite_full. -: not measured"
         "%s.\n",
         run->sqlc.ok ? "" : "; n/a: SQLCipher not measured (see above)");
  printf("\nTargets of the native engine (informative: a missed target is "
         "not a failure):\n");
  for (int i = 0; i < p->ntargets; i++) {
    const target *t = &p->targets[i];
    char got[32] = "-";
    if (t->status >= 0) {
      if (t->ref >= 0)
        fmt_ratio(got, sizeof got, t->got);
      else
        fmt_val(got, sizeof got, t->got, t->r->unit);
    }
    snprintf(line, sizeof line, "%s (%s), %s", t->r ? t->r->name : "?",
             t->r ? t->r->unit : "", bench_cont_name[t->c]);
    printf("  %-60s %-26s %10s  %s\n", line, t->text, got,
           status_text(t->status));
  }
}

static void json_num_or_null(int has, double v) {
  if (has)
    printf("%.10g", v);
  else
    printf("null");
}

static void print_json(const report *p, const bench_run *run, const char *dir,
                       double fsync_rate) {
  const bench_cfg *g = &run->cfg;
  char line[8192];
  printf("{\n  \"reps\": %d,\n  \"quick\": %s,\n  \"large\": %s,\n"
         "  \"dir\": ",
         g->reps, g->quick ? "true" : "false", g->large ? "true" : "false");
  bench_json_str(dir);
  printf(",\n  \"fdatasync_ops_per_s\": %.1f,\n  \"contenders\": [\n",
         fsync_rate);
  for (int c = 0; c < NCONT; c++) {
    printf("    {\"key\": \"%s\", \"name\": \"%s\", \"available\": %s, "
           "\"reason\": ",
           bench_cont_key[c], bench_cont_name[c],
           c != SQLC_FULL || run->sqlc.ok ? "true" : "false");
    if (c == SQLC_FULL && !run->sqlc.ok)
      bench_json_str(run->sqlc.reason);
    else
      printf("null");
    printf(", \"about\": ");
    if (bench_is_native(c))
      bench_json_str(c == NAT_FULL
                         ? "keyjournal native engine, KJ_SYNC_FULL"
                         : "keyjournal native engine, KJ_SYNC_NORMAL");
    else if (c == SQLC_FULL) {
      bench_describe_sqlcipher(run, line, sizeof line);
      bench_json_str(line);
    } else {
      bench_describe_sqlite(line, sizeof line);
      bench_json_str(line);
    }
    if (c == SQLC_FULL && run->sqlc.ok) {
      printf(", \"version\": ");
      bench_json_str(run->sqlc.version);
      printf(", \"sqlite_version\": ");
      bench_json_str(run->sqlc.sqlite);
      printf(", \"encrypted\": ");
      bench_json_str(run->sqlc.encrypted);
    }
    printf("}%s\n", c + 1 < NCONT ? "," : "");
  }
  printf("  ],\n  \"figures\": [\n");
  for (int i = 0; i < p->nrows; i++) {
    const row *r = &p->rows[i];
    printf("    {\"id\": ");
    bench_json_str(r->id);
    printf(", \"figure\": ");
    bench_json_str(r->name);
    printf(", \"unit\": ");
    bench_json_str(r->unit);
    printf(", \"ratio_kind\": \"%s\",\n     \"values\": {",
           r->rkind == R_SPEEDUP ? "speedup"
           : r->rkind == R_OVER  ? "value_over_sqlite_full"
                                 : "none");
    for (int c = 0; c < NCONT; c++) {
      printf("%s\"%s\": ", c ? ", " : "", bench_cont_key[c]);
      json_num_or_null(r->has[c], r->v[c]);
    }
    printf("},\n     \"vs_sqlite_full\": {");
    for (int c = 0; c < NCONT; c++) {
      double q = ratio_to_sqlite(r, c);
      printf("%s\"%s\": ", c ? ", " : "", bench_cont_key[c]);
      json_num_or_null(q > 0, q);
    }
    printf("}");
    if (r->note[0]) {
      printf(", \"note\": ");
      bench_json_str(r->note);
    }
    printf("}%s\n", i + 1 < p->nrows ? "," : "");
  }
  printf("  ],\n  \"targets\": [\n");
  for (int i = 0; i < p->ntargets; i++) {
    const target *t = &p->targets[i];
    printf("    {\"figure\": ");
    bench_json_str(t->r ? t->r->id : "?");
    printf(", \"contender\": \"%s\", \"reference\": ", bench_cont_key[t->c]);
    if (t->ref >= 0)
      printf("\"%s\"", bench_cont_key[t->ref]);
    else
      printf("null");
    printf(", \"target\": ");
    bench_json_str(t->text);
    printf(", \"achieved\": ");
    json_num_or_null(t->status >= 0, t->got);
    printf(", \"status\": ");
    if (t->status < 0)
      printf("null");
    else
      bench_json_str(status_text(t->status));
    printf("}%s\n", i + 1 < p->ntargets ? "," : "");
  }
  printf("  ],\n");
  bench_kv_print_json(run);
  printf("}\n");
}

int bench_report(bench_run *run, const char *dir, double fsync_rate,
                 long rss_base) {
  report *p = calloc(1, sizeof *p);
  if (p == NULL)
    return bench_errf(&run->err, "out of memory");
  build_rows(p, run, fsync_rate, rss_base);
  if (run->cfg.json) {
    print_json(p, run, dir, fsync_rate);
  } else {
    print_text(p, run, dir, fsync_rate);
    bench_kv_print_text(run);
  }
  free(p);
  return 0;
}
