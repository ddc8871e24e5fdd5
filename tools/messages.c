/*
 * tools/messages.c - the error lines of keyjournal-oracle, worded like the
 * keyjournal command's, below both commands and the command table.
 */
#include <stdarg.h>
#include <stdio.h>

#include "keyjournal/errors.h"
#include "tools.h"

void tool_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("keyjournal: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void tool_kj_error(const char *cmd, const char *what, int rc,
                   const char *detail) {
  fputs("keyjournal: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  if (what != NULL && what[0] != '\0')
    fprintf(stderr, "%s: ", what);
  fputs(kj_strerror(rc), stderr);
  if (detail != NULL && detail[0] != '\0')
    fprintf(stderr, ": %s", detail);
  fputc('\n', stderr);
}
