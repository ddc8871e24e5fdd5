/*
 * bench/sqlcipher.c - the SQLCipher contender's helper program and its
 * protocol with the main program.
 *
 * Debian's libsqlcipher exports the same sqlite3_* symbols as libsqlite3,
 * so the two cannot share a process: bench/bench.am builds the benchmark a
 * second time, with oracle/sqlite_backend.c, against libsqlcipher alone, as
 * bench/bench_sqlcipher, whose main is kj_bench_sqlcipher_main below. Run
 * as `bench_sqlcipher --sqlcipher-child [--reps N] [--quick] [--large]
 * DIR` it measures the SQLCipher FULL contender with the same functions
 * (measure.c), proves that the database file is encrypted (no SQLite
 * header, an unkeyed open fails) or fails, and prints "fig NAME VALUE"
 * lines. The main program runs the helper named by $KJ_BENCH_SQLCIPHER,
 * else the one of the build tree (KJ_BENCH_SQLCIPHER_PATH, defined when
 * configure found SQLCipher), and merges its figures (bench_sqlcipher_run);
 * when it is missing or fails, the column says why, it is never filled in.
 * Both sides live here so that the line protocol between them is in one
 * file; it sits above measure.c and the contenders, which call nothing
 * here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"
#include "oracle.h"

/* The SQLCipher version, or a failure when this program does not run on
 * SQLCipher (PRAGMA cipher_version gives nothing). */
static int cipher_version(bench_run *r) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  const unsigned char *cv = NULL;
  if (sqlite3_open(":memory:", &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA cipher_version", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    cv = sqlite3_column_text(st, 0);
  int ok = cv && *cv;
  if (ok)
    snprintf(r->sqlc.version, sizeof r->sqlc.version, "%s", (const char *)cv);
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (!ok)
    return bench_errf(&r->err,
                      "this program is not linked against SQLCipher (PRAGMA "
                      "cipher_version gives nothing)");
  return 0;
}

/* Measure SQLCipher FULL in a scratch directory under dir and print, on
 * stdout, "key value" lines: sqlcipher_version, sqlite_version,
 * upsert_replace, encrypted, rss_base, a "fig NAME VALUE" line per
 * figure, and "done" last. On failure "error MESSAGE" instead (the exit
 * status path, bench_exit_status). */
static int sqlcipher_child(bench_run *r, const char *dir) {
  r->child_mode = 1;
  if (cipher_version(r) != 0)
    return BENCH_FAILED;
  snprintf(r->base_dir, sizeof r->base_dir, "%s/sqlcipher.%ld", dir,
           (long)getpid());
  if (mkdir(r->base_dir, 0700) != 0) {
    int e = errno;
    bench_errf(&r->err, "mkdir %s: %s", r->base_dir, strerror(e));
    r->base_dir[0] = '\0'; /* not ours to remove */
    return BENCH_FAILED;
  }
  r->base_owner = getpid();
  for (int i = 0; i < r->cfg.reps; i++)
    if (bench_measure_rep(r, SQLC_FULL, i) != 0)
      return BENCH_FAILED;
  bench_rep_medians(r, SQLC_FULL);
  if (bench_measure_stores(r, SQLC_FULL) != 0)
    return BENCH_FAILED;
  long rss_base;
  if (bench_child_rss(r, "none", r->base_dir, &rss_base) != 0)
    return BENCH_FAILED;
  bench_rm_rf(r->base_dir);
  bench_progress_end(r);
  printf("sqlcipher_version %s\n", r->sqlc.version);
  printf("sqlite_version %s\n", sqlite3_libversion());
  printf("upsert_replace %d\n", sqlite3_libversion_number() < 3024000);
  printf("encrypted %s\n", r->sqlc.encrypted);
  printf("rss_base %ld\n", rss_base);
  for (int f = 0; f < NFIG; f++)
    if (r->has_fig[SQLC_FULL][f])
      printf("fig %s %.17g\n", bench_fig_key[f], r->fig[SQLC_FULL][f]);
  printf("done\n");
  return 0;
}

int kj_bench_sqlcipher_main(int argc, char **argv) {
  bench_run *r = bench_run_new("bench_sqlcipher", NULL);
  if (r == NULL) {
    fprintf(stderr, "bench_sqlcipher: out of memory\n");
    return 1;
  }
  int status;
  const char *dir;
  int child;
  if (argc == 4 && strcmp(argv[1], "--rss-child") == 0) {
    status = bench_rss_child_main(r, argv[2], argv[3]);
  } else if ((status = bench_parse_args(r, argc, argv, &dir, &child)) >= 0) {
    /* --help or bad usage: done */
  } else if (!child) {
    fprintf(stderr,
            "%s: the SQLCipher helper of bench_compare and `keyjournal "
            "bench`; run one of those\n",
            r->prog);
    status = 2;
  } else {
    status = bench_exit_status(r, sqlcipher_child(r, dir));
    if (status == 0 && fflush(stdout))
      status = 1;
  }
  bench_run_free(r);
  return status;
}

/* The helper's failure, as the reason the column is empty. */
static void cipher_reason(bench_run *r, const char *path, int st, int good,
                          const char *error) {
  bench_cipher *q = &r->sqlc;
  if (error[0])
    snprintf(q->reason, sizeof q->reason, "helper %s failed: %s", path, error);
  else if (WIFSIGNALED(st))
    snprintf(q->reason, sizeof q->reason, "helper %s killed by signal %d", path,
             WTERMSIG(st));
  else if (!good)
    snprintf(q->reason, sizeof q->reason, "helper %s exited with status %d",
             path, WEXITSTATUS(st));
  else
    snprintf(q->reason, sizeof q->reason, "helper %s gave incomplete results",
             path);
}

/* ---- the main program's side ------------------------------------------- */

int bench_sqlcipher_run(bench_run *r) {
  bench_cipher *q = &r->sqlc;
  const char *path = getenv("KJ_BENCH_SQLCIPHER");
  if (!path || !*path) {
#ifdef KJ_BENCH_SQLCIPHER_PATH
    path = KJ_BENCH_SQLCIPHER_PATH;
#else
    snprintf(q->reason, sizeof q->reason,
             "not built (configure found no libsqlcipher-dev; "
             "KJ_BENCH_SQLCIPHER can name a bench_sqlcipher helper)");
    return 0;
#endif
  }
  snprintf(q->helper, sizeof q->helper, "%s", path);
  if (access(path, X_OK) != 0) {
    snprintf(q->reason, sizeof q->reason,
             "helper %s: %s (make bench/bench_sqlcipher builds it)", path,
             strerror(errno));
    return 0;
  }
  const bench_cfg *g = &r->cfg;
  char reps[16];
  snprintf(reps, sizeof reps, "%d", g->reps);
  const char *argv[10];
  int n = 0;
  argv[n++] = path;
  argv[n++] = "--sqlcipher-child";
  argv[n++] = "--reps";
  argv[n++] = reps;
  if (g->quick)
    argv[n++] = "--quick";
  if (g->large)
    argv[n++] = "--large";
  argv[n++] = r->base_dir;
  argv[n] = NULL;
  bench_progress(r, "SQLCipher FULL: starting %s", path);
  int st;
  char *out;
  if (bench_run_capture(r, argv, &st, &out) != 0)
    return BENCH_FAILED;
  bench_progress_end(r);

  int done = 0;
  char error[600] = "";
  for (char *line = out, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    char name[32];
    double v;
    if (strncmp(line, "error ", 6) == 0)
      snprintf(error, sizeof error, "%s", line + 6);
    else if (strncmp(line, "sqlcipher_version ", 18) == 0)
      snprintf(q->version, sizeof q->version, "%s", line + 18);
    else if (strncmp(line, "sqlite_version ", 15) == 0)
      snprintf(q->sqlite, sizeof q->sqlite, "%s", line + 15);
    else if (strncmp(line, "upsert_replace ", 15) == 0)
      q->upsert_replace = atoi(line + 15);
    else if (strncmp(line, "encrypted ", 10) == 0)
      snprintf(q->encrypted, sizeof q->encrypted, "%s", line + 10);
    else if (strncmp(line, "rss_base ", 9) == 0)
      q->rss_base = atol(line + 9);
    else if (strcmp(line, "done") == 0)
      done = 1;
    else if (sscanf(line, "fig %31s %lf", name, &v) == 2 && v > 0)
      for (int f = 0; f < NFIG; f++)
        if (strcmp(name, bench_fig_key[f]) == 0)
          bench_put_fig(r, SQLC_FULL, f, v);
  }
  free(out);
  int good = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (good && done && q->encrypted[0]) {
    q->ok = 1;
    return 0;
  }
  memset(r->has_fig[SQLC_FULL], 0, sizeof r->has_fig[SQLC_FULL]);
  cipher_reason(r, path, st, good, error);
  return 0;
}
