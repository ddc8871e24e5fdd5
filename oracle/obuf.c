/*
 * oracle/obuf.c - the oracle's growable byte buffer (ora_obuf of
 * oracle/oracle.h): append raw bytes or printf-formatted text, free.
 *
 * The buffer keeps a NUL byte after its contents whenever it holds
 * anything (not counted in len), so p can be printed as a string. Out of
 * memory aborts: the oracle is a test tool, and a half-written result text
 * would make two backends look different.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

static void obuf_reserve(ora_obuf *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) {
    fprintf(stderr, "oracle: out of memory\n");
    abort();
  }
  b->p = p;
  b->cap = cap;
}

void ora_obuf_add(ora_obuf *b, const void *p, size_t n) {
  obuf_reserve(b, n);
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
}

void ora_obuf_addf(ora_obuf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof small) {
    ora_obuf_add(b, small, (size_t)n);
    return;
  }
  obuf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void ora_obuf_free(ora_obuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
