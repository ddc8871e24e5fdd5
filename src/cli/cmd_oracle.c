/*
 * src/cli/cmd_oracle.c - `keyjournal oracle` and `keyjournal bench`: run
 * them in keyjournal-oracle.
 *
 * The oracle campaigns and the benchmark need the test oracle, SQLite and
 * the benchmark code, which the installed keyjournal must not link: they
 * live in a program of their own, keyjournal-oracle (tools/), built and
 * installed only when configure finds SQLite. This handler finds that
 * program and executes it in place of this process with the same
 * arguments (`keyjournal-oracle oracle ARGS...`), so output, signals and
 * the exit status are the command's own. The usage texts are here too
 * (usage_oracle.h), so `keyjournal help` describes both commands even where
 * keyjournal-oracle is not installed.
 *
 * The program is looked for, first found wins:
 *   1. $KEYJOURNAL_ORACLE when set (and then only there);
 *   2. the directory of the running executable (/proc/self/exe), then its
 *      parent: in the build tree ./keyjournal is a libtool wrapper whose
 *      real binary runs in .libs/, next to the real keyjournal-oracle (the
 *      wrapper's library path is inherited), and the parent holds the
 *      wrappers; installed, the two programs share $(bindir);
 *   3. $(bindir) as configured (KJ_BINDIR);
 *   4. each directory of $PATH.
 * Not found: a message naming what was searched, exit 127 (the shell's
 * "command not found"); found but not executable: exit 126.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "usage_oracle.h"

#define ORACLE_PROG "keyjournal-oracle"

const char cli_usage_oracle[] = CLI_USAGE_ORACLE;
const char cli_usage_bench[] = CLI_USAGE_BENCH;

/* What was searched, for the message: "label: dir, dir; label: dir". */
typedef struct searched {
  char text[8192];
  size_t len;
  const char *label; /* of the next directory noted: starts a group */
} searched;

static void note(searched *s, const char *dir) {
  int n;
  if (s->label != NULL)
    n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s%s: %s",
                 s->len ? "; " : "", s->label, dir);
  else
    n = snprintf(s->text + s->len, sizeof s->text - s->len, ", %s", dir);
  s->label = NULL;
  if (n > 0 && (size_t)n < sizeof s->text - s->len)
    s->len += (size_t)n;
}

static int is_program(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* dir/keyjournal-oracle into out when it is a program. */
static int try_dir(const char *dir, size_t dlen, char *out, size_t cap,
                   searched *s) {
  char d[PATH_MAX];
  if (dlen == 0) { /* an empty $PATH entry is the current directory */
    dir = ".";
    dlen = 1;
  }
  if (dlen >= sizeof d)
    return 0;
  memcpy(d, dir, dlen);
  d[dlen] = '\0';
  note(s, d);
  int n = snprintf(out, cap, "%s/%s", d, ORACLE_PROG);
  return n > 0 && (size_t)n < cap && is_program(out);
}

/* The directory of the running executable and its parent. */
static int try_self(char *out, size_t cap, searched *s) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return 0;
  exe[n] = '\0';
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
      return 0;
    *slash = '\0';
    if (try_dir(exe[0] ? exe : "/", exe[0] ? strlen(exe) : 1, out, cap, s))
      return 1;
    if (exe[0] == '\0')
      return 0;
  }
  return 0;
}

static int try_path(char *out, size_t cap, searched *s) {
  const char *p = getenv("PATH");
  if (p == NULL)
    return 0;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (try_dir(p, len, out, cap, s))
      return 1;
    if (end == NULL)
      return 0;
    p = end + 1;
  }
}

/* Fill out with the program to run. Returns CLI_EXIT_OK, or the exit
 * status after a message. */
static int find_oracle(const char *cmd, char *out, size_t cap) {
  const char *env = getenv("KEYJOURNAL_ORACLE");
  if (env != NULL && env[0] != '\0') {
    if (is_program(env) && strlen(env) < cap) {
      memcpy(out, env, strlen(env) + 1);
      return CLI_EXIT_OK;
    }
    cli_error(cmd, "KEYJOURNAL_ORACLE=%s: %s", env,
              access(env, F_OK) == 0 ? "not an executable file"
                                     : "no such file");
    return CLI_EXIT_NO_ORACLE;
  }
  searched s = {.len = 0, .label = "next to keyjournal"};
  if (try_self(out, cap, &s))
    return CLI_EXIT_OK;
#ifdef KJ_BINDIR
  s.label = "bindir";
  if (try_dir(KJ_BINDIR, strlen(KJ_BINDIR), out, cap, &s))
    return CLI_EXIT_OK;
#endif
  s.label = "PATH";
  if (try_path(out, cap, &s))
    return CLI_EXIT_OK;
  const cli_cmd *c = cli_cmd_find(cmd);
  cli_error(cmd,
            "'keyjournal %s' (%s) runs the program " ORACLE_PROG
            ", which was not found",
            cmd, c != NULL ? c->summary : "");
  cli_error(cmd, "searched: %s", s.len ? s.text : "nothing");
  cli_error(cmd, ORACLE_PROG
            " is built and installed with keyjournal only "
            "when configure finds SQLite (on Debian/Ubuntu: apt-get "
            "install libsqlite3-dev, then configure and build again); "
            "KEYJOURNAL_ORACLE can name it");
  return CLI_EXIT_NO_ORACLE;
}

int cmd_oracle(int argc, char **argv) {
  const char *cmd = argv[0];
  char path[PATH_MAX];
  int rc = find_oracle(cmd, path, sizeof path);
  if (rc != CLI_EXIT_OK)
    return rc;
  /* keyjournal-oracle CMD ARGS...: argv[0] of the new program is its
   * path, the rest passes through unchanged. */
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (args == NULL) {
    cli_error(cmd, "out of memory");
    return CLI_EXIT_FAIL;
  }
  args[0] = path;
  for (int i = 0; i < argc; i++)
    args[i + 1] = argv[i];
  fflush(NULL);
  execv(path, args);
  int e = errno;
  free(args);
  cli_error(cmd, "cannot run %s: %s", path, strerror(e));
  return CLI_EXIT_CANNOT_RUN;
}
