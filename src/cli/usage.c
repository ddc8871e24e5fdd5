/*
 * src/cli/usage.c - the command table as the commands see it, and the
 * usage text put together from it.
 *
 * main.c owns the table (which commands exist, in the order `keyjournal
 * help` lists them) and hands it here before any handler runs, so that
 * help, --help and the oracle command can read it without calling back up
 * into main.c. The whole usage text lists every command's usage lines in
 * table order, then the notes that apply to all of them (options, key
 * sources, exit statuses); a command with a page of its own (`keyjournal
 * help verify`) gets its usage lines and the notes it needs.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_cmd *cmds;
static size_t ncmds;

void cli_set_commands(const cli_cmd *table, size_t n) {
  cmds = table;
  ncmds = n;
}

const cli_cmd *cli_cmd_find(const char *name) {
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
    name = "help";
  else if (strcmp(name, "--version") == 0)
    name = "version";
  for (size_t i = 0; i < ncmds; i++)
    if (strcmp(cmds[i].name, name) == 0)
      return &cmds[i];
  return NULL;
}

static const char usage_keys[] =
    "Key sources, the first that applies:\n"
    "  --key-file F    a file of exactly 32 raw key bytes\n"
    "  KJ_PASSPHRASE   environment variable holding a passphrase (Argon2id)\n"
    "  prompt          verify, info, extra: \"Passphrase: \" on /dev/tty, no "
    "echo\n"
    "  random key      demo: a new random key, written to DIR.key (mode\n"
    "                  0600) next to DIR\n";
static const char usage_exit[] =
    "Exit status: 0 ok, 1 failure, 2 usage error, 3 wrong key or not a\n"
    "store, 4 store damaged.\n";
static const char usage_exit_oracle[] =
    "oracle and bench run the program keyjournal-oracle, built only when\n"
    "configure finds SQLite: exit 127 when it is not found.\n";

void cli_usage(FILE *to, const char *cmd) {
  const cli_cmd *c = cmd != NULL ? cli_cmd_find(cmd) : NULL;
  if (c != NULL && (c->flags & CLI_HELP_PAGE)) {
    fprintf(to, "Usage:\n%s", c->usage);
    if (c->flags & CLI_HELP_KEYS)
      fprintf(to, "\n%s", usage_keys);
    if (c->flags & CLI_HELP_EXIT)
      fprintf(to, "\n%s", usage_exit);
    return;
  }
  fputs("keyjournal - encrypted append-only journal store\n"
        "\n"
        "Usage:\n",
        to);
  for (size_t i = 0; i < ncmds; i++)
    fputs(cmds[i].usage, to);
  fprintf(to,
          "\n"
          "Options may come before or after DIR; \"--\" ends the options.\n"
          "\n"
          "%s\n%s%s",
          usage_keys, usage_exit, usage_exit_oracle);
}
