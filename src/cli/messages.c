/*
 * src/cli/messages.c - how the keyjournal command reports failures.
 *
 * Owns the format of error messages ("keyjournal: <cmd>: <status>:
 * <detail>") and the mapping of keyjournal status codes to exit codes, so
 * that every command reports the same way and scripts can rely on 3 (wrong
 * key or not a store) and 4 (damaged store).
 */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "keyjournal/errors.h"

void cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("keyjournal: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void cli_kj_error(const char *cmd, const char *what, int rc,
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

int cli_exit_for(int rc) {
  switch (rc) {
  case KJ_OK:
    return CLI_EXIT_OK;
  case KJ_EKEY:
    return CLI_EXIT_KEY;
  case KJ_ECORRUPT:
    return CLI_EXIT_CORRUPT;
  default:
    return CLI_EXIT_FAIL;
  }
}
