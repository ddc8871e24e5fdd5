/*
 * bench/contender_sqlite.c - the SQLite reference backend and SQLCipher as
 * contenders of the benchmark: SQLite FULL, SQLite NORMAL, SQLCipher FULL.
 *
 * Owns how the benchmark opens the reference backend of the oracle
 * (oracle/oracle.h), plain or keyed, how it describes both, and the proof
 * that a SQLCipher database file is encrypted. The SQLCipher helper
 * program and the line protocol with it live in sqlcipher.c, above the
 * workloads (measure.c) that both sides run.
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

int bench_sqlite_open(bench_run *r, int c, const char *dir, kj_backend **out) {
  char *em = NULL;
  int rc;
  *out = NULL;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return bench_errf(&r->err, "mkdir %s: %s", dir, strerror(errno));
  char path[4200];
  snprintf(path, sizeof path, "%s/store.sqlite", dir);
  if (c == SQLC_FULL)
    rc = ora_sqlite_open_keyed(path, 0, bench_key, sizeof bench_key, NULL, NULL,
                               out, &em);
  else
    rc = ora_sqlite_open(path, bench_is_normal(c), NULL, NULL, out, &em);
  if (rc) {
    bench_errf(&r->err, "open %s (%s): %s: %s", dir, bench_cont_name[c],
               kj_strerror(rc), em ? em : "");
    kj_free(em);
    return BENCH_FAILED;
  }
  kj_free(em);
  return 0;
}

void bench_describe_sqlite(char *out, size_t cap) {
  snprintf(out, cap,
           "SQLite %s, the reference backend (oracle/sqlite_backend.c), WAL, "
           "foreign keys on, not encrypted",
           sqlite3_libversion());
}

void bench_describe_sqlcipher(const bench_run *r, char *out, size_t cap) {
  const bench_cipher *q = &r->sqlc;
  if (!q->ok) {
    snprintf(out, cap, "not measured: %s", q->reason);
    return;
  }
  snprintf(out, cap,
           "SQLCipher %s on SQLite %s (separate process %s), the reference "
           "backend's schema and statements%s, raw 32-byte key by PRAGMA key; "
           "database file encrypted: %s",
           q->version, q->sqlite, q->helper,
           q->upsert_replace ? " (upserts as INSERT OR REPLACE: SQLite "
                               "before 3.24 has no UPSERT)"
                             : "",
           q->encrypted);
}

/* ---- the helper (bench/bench_sqlcipher) -------------------------------- */

int bench_sqlcipher_prove_encrypted(bench_run *r, const char *dir) {
  char path[4400];
  snprintf(path, sizeof path, "%s/store.sqlite", dir);
  unsigned char head[16];
  FILE *f = fopen(path, "rb");
  size_t got = f ? fread(head, 1, sizeof head, f) : 0;
  if (f)
    fclose(f);
  if (got != sizeof head)
    return bench_errf(&r->err, "%s: cannot read its first 16 bytes", path);
  if (memcmp(head, "SQLite format 3", 16) == 0)
    return bench_errf(
        &r->err, "%s is NOT encrypted: it starts with the SQLite header", path);
  kj_backend *b = NULL;
  char *em = NULL;
  int rc = ora_sqlite_open(path, 0, NULL, NULL, &b, &em);
  if (rc == KJ_OK) {
    kj_backend_close(b);
    kj_free(em);
    return bench_errf(&r->err, "%s is NOT encrypted: it opens without the key",
                      path);
  }
  const char *why = em ? em : kj_strerror(rc), *p = strstr(why, path);
  if (p && p[strlen(path)] == ':') /* "sqlite open PATH: message" */
    why = p + strlen(path) + 2;
  snprintf(r->sqlc.encrypted, sizeof r->sqlc.encrypted,
           "no SQLite header, an unkeyed open fails (%s)", why);
  kj_free(em);
  return 0;
}
