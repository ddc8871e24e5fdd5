/*
 * src/cli/args.c - the options of the store commands (demo, verify, info,
 * extra).
 *
 * Owns their common command line: options before or after DIR, "--name
 * VALUE" and "--name=VALUE", "--" ending the options, -h/--help, one DIR,
 * and the usage errors (exit 2) for anything else, so the commands accept
 * and refuse exactly the same things.
 */
#include <string.h>

#include "cli.h"

/* Match option name as "--name VALUE" or "--name=VALUE". Returns 1 and sets
 * *val on a match, 0 when arg is another option, -CLI_EXIT_USAGE (after a
 * message) when the value is missing or the option is repeated. */
static int opt_value(const char *cmd, const char *name, int argc, char **argv,
                     int *i, const char **val) {
  const char *arg = argv[*i];
  size_t n = strlen(name);
  const char *v;
  if (strncmp(arg, name, n) != 0)
    return 0;
  if (arg[n] == '=') {
    v = arg + n + 1;
  } else if (arg[n] == '\0') {
    if (*i + 1 >= argc) {
      cli_error(cmd, "option %s needs a value", name);
      return -CLI_EXIT_USAGE;
    }
    v = argv[++*i];
  } else {
    return 0;
  }
  if (v[0] == '\0') {
    cli_error(cmd, "option %s needs a non-empty value", name);
    return -CLI_EXIT_USAGE;
  }
  if (*val != NULL) {
    cli_error(cmd, "option %s given twice", name);
    return -CLI_EXIT_USAGE;
  }
  *val = v;
  return 1;
}

int cli_parse_args(const char *cmd, int argc, char **argv, int first,
                   int allow_seed, cli_args *a) {
  int only_dirs = 0;
  memset(a, 0, sizeof *a);
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (!only_dirs && arg[0] == '-' && arg[1] != '\0') {
      int m;
      if (strcmp(arg, "--") == 0) {
        only_dirs = 1;
        continue;
      }
      if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        a->help = 1;
        continue;
      }
      m = opt_value(cmd, "--key-file", argc, argv, &i, &a->key_file);
      if (m == 0 && allow_seed)
        m = opt_value(cmd, "--seed", argc, argv, &i, &a->seed);
      if (m < 0)
        return CLI_EXIT_USAGE;
      if (m > 0)
        continue;
      cli_error(cmd, "unknown option '%s' (see 'keyjournal help %s')", arg,
                cmd);
      return CLI_EXIT_USAGE;
    }
    if (a->dir != NULL) {
      cli_error(cmd, "unexpected argument '%s': only one DIR is accepted", arg);
      return CLI_EXIT_USAGE;
    }
    a->dir = arg;
  }
  return CLI_EXIT_OK;
}

int cli_parse_dir_args(const char *cmd, int argc, char **argv, cli_args *a) {
  int rc = cli_parse_args(cmd, argc, argv, 1, 0, a);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (a->help) {
    cli_usage(stdout, cmd);
    return CLI_EXIT_OK;
  }
  if (a->dir == NULL) {
    cli_error(cmd, "missing DIR (usage: keyjournal %s [--key-file F] DIR)",
              cmd);
    return CLI_EXIT_USAGE;
  }
  return CLI_GO_ON;
}
