/*
 * oracle/runner.c - the differential runner (ora_diff_run) and the
 * deterministic clock of differential runs (ora_oracle_clock).
 *
 * A run opens a fresh backend from each factory, walks the workload and
 * applies every op to both, comparing the canonical result texts of
 * ora_wop_apply; every check_every ops (deferred while a transaction is
 * open) and at the end it compares the canonical dumps of
 * ora_workload_dump. Each backend has at most one open transaction: a
 * TX_BEGIN while one is open, and a COMMIT or ROLLBACK without one, are
 * no-ops. Both backends read the same clock, advanced 1000 ms per op.
 *
 * On the first divergence the runner records the op index and both texts,
 * then (if asked) shrinks the workload by delta debugging: it drops chunks
 * of halving size, keeping a removal whenever the rest still diverges (in
 * any way), on fresh backends each time, until removing any single op
 * makes the divergence go away. The report names the seed, the op index,
 * both texts and the reproducer as a numbered list of ora_wop_describe
 * lines.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

#define CLOCK_EPOCH_MS INT64_C(1700000000000)
#define CLOCK_STEP_MS 1000
/* Most runs one shrink may try. */
#define SHRINK_MAX_RUNS 4000

static _Thread_local int64_t run_clock = CLOCK_EPOCH_MS;

int64_t ora_oracle_clock(void *ctx) {
  return ctx ? *(const int64_t *)ctx : run_clock;
}

typedef struct side {
  kj_backend *b;
  kj_tx *t;
  uint32_t slots[ORA_WORKLOAD_MAX_SLOTS];
  size_t nslots;
  ora_obuf text;
} side;

/* What one run found. */
typedef struct outcome {
  int diverged;
  int at_dump;  /* the divergence showed in a dump */
  size_t index; /* op index (within the run's workload) */
  size_t ops_run;
  ora_obuf ta, tb; /* the two differing texts */
} outcome;

static void outcome_free(outcome *o) {
  ora_obuf_free(&o->ta);
  ora_obuf_free(&o->tb);
}

static int text_eq(const ora_obuf *a, const ora_obuf *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

/* Apply a transaction op to one side. */
static void tx_op(const ora_wop *op, side *s) {
  ora_beat();
  s->text.len = 0;
  if (ora_wop_is_begin(op)) {
    if (s->t) {
      ora_obuf_addf(&s->text, "kj_backend_begin skipped (open)\n");
      return;
    }
    int rc = kj_backend_begin(s->b, &s->t);
    if (rc != KJ_OK)
      s->t = NULL;
    ora_obuf_addf(&s->text, "kj_backend_begin rc=%d\n", rc);
  } else if (ora_wop_is_commit(op)) {
    if (!s->t) {
      ora_obuf_addf(&s->text, "kj_backend_commit skipped (none)\n");
      return;
    }
    int rc = kj_backend_commit(s->t);
    s->t = NULL;
    ora_obuf_addf(&s->text, "kj_backend_commit rc=%d\n", rc);
  } else {
    if (!s->t) {
      ora_obuf_addf(&s->text, "kj_backend_rollback skipped (none)\n");
      return;
    }
    kj_backend_rollback(s->t);
    s->t = NULL;
    ora_obuf_addf(&s->text, "kj_backend_rollback\n");
  }
}

static int is_tx(const ora_wop *op) {
  return ora_wop_is_begin(op) || ora_wop_is_commit(op) ||
         ora_wop_is_rollback(op);
}

/* Copy the first differing line of two texts (with the line before it)
 * into the outcome. */
static void first_diff(const ora_obuf *a, const ora_obuf *b, outcome *o) {
  size_t n = a->len < b->len ? a->len : b->len, i = 0, line = 0, prev = 0;
  while (i < n && a->p[i] == b->p[i]) {
    if (a->p[i] == '\n') {
      prev = line;
      line = i + 1;
    }
    i++;
  }
  /* The section (slot) the differing line is in. */
  size_t sec = line;
  while (sec > 0 && !(a->p[sec - 1] == '\n' && sec + 3 <= a->len &&
                      !memcmp(a->p + sec, "== ", 3)))
    sec--;
  size_t sec_end = sec;
  while (sec_end < line && a->p[sec_end] != '\n')
    sec_end++;
  const ora_obuf *src[2] = {a, b};
  ora_obuf *dst[2] = {&o->ta, &o->tb};
  for (int k = 0; k < 2; k++) {
    const ora_obuf *s = src[k];
    size_t end = line;
    while (end < s->len && s->p[end] != '\n')
      end++;
    if (sec > 0 && sec < sec_end)
      ora_obuf_addf(dst[k], "[%.*s] ", (int)(sec_end - sec), a->p + sec);
    if (prev < line)
      ora_obuf_addf(dst[k], "(after: %.*s) ", (int)(line - prev - 1),
                    s->p + prev);
    if (line < s->len)
      ora_obuf_add(dst[k], s->p + line, end - line);
    else
      ora_obuf_addf(dst[k], "<end of dump>");
    ora_obuf_add(dst[k], "\n", 1);
  }
}

/* Compare the dumps of both sides (no transaction open). */
static int dumps_differ(side *a, side *b, outcome *o) {
  ora_obuf da = {0}, db = {0};
  ora_workload_dump(a->b, a->slots, a->nslots, &da);
  ora_workload_dump(b->b, b->slots, b->nslots, &db);
  int differ = !text_eq(&da, &db);
  if (differ)
    first_diff(&da, &db, o);
  ora_obuf_free(&da);
  ora_obuf_free(&db);
  return differ;
}

/* Run ops[idx[0..m)] (idx NULL: every op of w) on fresh backends. */
static int run_once(const ora_workload *w, const size_t *idx, size_t m,
                    ora_backend_factory fa, void *actx, ora_backend_factory fb,
                    void *bctx, size_t check_every, outcome *o) {
  side sa, sb;
  int rc;
  memset(&sa, 0, sizeof sa);
  memset(&sb, 0, sizeof sb);
  memset(o, 0, sizeof *o);
  run_clock = CLOCK_EPOCH_MS;
  rc = fa(actx, &sa.b);
  if (rc != KJ_OK)
    return rc;
  rc = fb(bctx, &sb.b);
  if (rc != KJ_OK) {
    kj_backend_close(sa.b);
    return rc;
  }
  size_t n = idx ? m : w->n;
  int pending = 0;
  for (size_t i = 0; i < n && !o->diverged; i++) {
    const ora_wop *op = ora_workload_op(w, idx ? idx[i] : i);
    run_clock += CLOCK_STEP_MS;
    if (is_tx(op)) {
      tx_op(op, &sa);
      tx_op(op, &sb);
    } else {
      sa.text.len = sb.text.len = 0;
      ora_wop_apply(op, sa.b, sa.t, sa.slots, &sa.nslots, &sa.text);
      ora_wop_apply(op, sb.b, sb.t, sb.slots, &sb.nslots, &sb.text);
    }
    o->ops_run = i + 1;
    if (!text_eq(&sa.text, &sb.text) || (!sa.t) != (!sb.t)) {
      o->diverged = 1;
      o->index = i;
      ora_obuf_add(&o->ta, sa.text.p, sa.text.len);
      ora_obuf_add(&o->tb, sb.text.p, sb.text.len);
      break;
    }
    if (check_every && (i + 1) % check_every == 0)
      pending = 1;
    if (pending && !sa.t && !sb.t) {
      pending = 0;
      if (dumps_differ(&sa, &sb, o)) {
        o->diverged = 1;
        o->at_dump = 1;
        o->index = i;
      }
    }
  }
  if (sa.t)
    kj_backend_rollback(sa.t);
  if (sb.t)
    kj_backend_rollback(sb.t);
  sa.t = sb.t = NULL;
  if (!o->diverged && dumps_differ(&sa, &sb, o)) {
    o->diverged = 1;
    o->at_dump = 1;
    o->index = n ? n - 1 : 0;
  }
  kj_backend_close(sa.b);
  kj_backend_close(sb.b);
  ora_obuf_free(&sa.text);
  ora_obuf_free(&sb.text);
  return KJ_OK;
}

/* Does ops[idx[0..m)] diverge? (ora_shrink's test) */
typedef struct shrink_ctx {
  const ora_workload *w;
  ora_backend_factory fa, fb;
  void *actx, *bctx;
  size_t check_every;
} shrink_ctx;

static int diverges(void *arg, const size_t *idx, size_t m) {
  const shrink_ctx *x = arg;
  outcome o;
  int rc = run_once(x->w, idx, m, x->fa, x->actx, x->fb, x->bctx,
                    x->check_every, &o);
  int d = rc == KJ_OK && o.diverged;
  outcome_free(&o);
  return d;
}

static void report_texts(ora_obuf *r, const outcome *o) {
  if (o->at_dump)
    ora_obuf_addf(r, "  state dumps differ:\n");
  ora_obuf_addf(r, "  A: ");
  ora_obuf_add(r, o->ta.p, o->ta.len);
  if (!o->ta.len || o->ta.p[o->ta.len - 1] != '\n')
    ora_obuf_add(r, "\n", 1);
  ora_obuf_addf(r, "  B: ");
  ora_obuf_add(r, o->tb.p, o->tb.len);
  if (!o->tb.len || o->tb.p[o->tb.len - 1] != '\n')
    ora_obuf_add(r, "\n", 1);
}

int ora_diff_run(const ora_workload *w, ora_backend_factory a, void *actx,
                 ora_backend_factory b, void *bctx, size_t check_every,
                 int shrink_it, ora_diff_result *res) {
  outcome o;
  memset(res, 0, sizeof *res);
  int rc = run_once(w, NULL, 0, a, actx, b, bctx, check_every, &o);
  if (rc != KJ_OK)
    return rc;
  res->ops_run = o.ops_run;
  if (!o.diverged) {
    outcome_free(&o);
    return KJ_OK;
  }
  res->diverged = 1;
  res->op_index = o.index;
  ora_obuf *r = &res->report;
  ora_obuf_addf(r,
                "divergence: seed %" PRIu64 " (0x%016" PRIx64
                "), op %zu of %zu%s\n  op: ",
                w->seed, w->seed, o.index, w->n,
                o.at_dump ? " (state checkpoint)" : "");
  ora_wop_describe(ora_workload_op(w, o.index), r);
  ora_obuf_add(r, "\n", 1);
  report_texts(r, &o);
  outcome_free(&o);
  if (!shrink_it)
    return KJ_OK;

  size_t m = o.index + 1, runs = 0;
  size_t *idx = calloc(
      m, sizeof *idx); /* calloc: gcc -O2 cannot see the loop below fill it */
  if (!idx)
    return KJ_OK;
  for (size_t i = 0; i < m; i++)
    idx[i] = i;
  shrink_ctx sx = {w, a, b, actx, bctx, check_every};
  ora_shrink(idx, &m, SHRINK_MAX_RUNS, &runs, diverges, &sx);
  rc = run_once(w, idx, m, a, actx, b, bctx, check_every, &o);
  ora_obuf_addf(r, "shrunk reproducer: %zu op%s (%zu runs)%s\n", m,
                m == 1 ? "" : "s", runs,
                rc == KJ_OK && o.diverged ? "" : " [NO LONGER DIVERGES]");
  for (size_t i = 0; i < m; i++) {
    ora_obuf_addf(r, "  %zu. ", i + 1);
    ora_wop_describe(ora_workload_op(w, idx[i]), r);
    ora_obuf_addf(r, "   /* op %zu */\n", idx[i]);
  }
  if (rc == KJ_OK && o.diverged) {
    ora_obuf_addf(r, "  diverges at step %zu%s\n", o.index + 1,
                  o.at_dump ? " (state dump)" : "");
    report_texts(r, &o);
  }
  if (rc == KJ_OK)
    outcome_free(&o);
  free(idx);
  return KJ_OK;
}
