/*
 * src/cli/cmd_help.c - "keyjournal help [COMMAND]": the usage text.
 *
 * Owns how the usage is put together from the command table (main.c):
 * the whole text lists every command's usage lines in table order, then
 * the notes that apply to all of them (options, key sources, exit
 * statuses); a command with a page of its own (`keyjournal help verify`)
 * gets its usage lines and the notes it needs. The commands print the same
 * page for --help through cli_usage().
 */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

const char cli_usage_help[] = "  keyjournal help [COMMAND]   this text\n";

static const char usage_keys[] =
    "Key sources, the first that applies:\n"
    "  --key-file F    a file of exactly 32 raw key bytes\n"
    "  KJ_PASSPHRASE   environment variable holding a passphrase (Argon2id)\n"
    "  prompt          verify, info: \"Passphrase: \" on /dev/tty, no echo\n"
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
  for (size_t i = 0; i < cli_ncmds; i++)
    fputs(cli_cmds[i].usage, to);
  fprintf(to,
          "\n"
          "Options may come before or after DIR; \"--\" ends the options.\n"
          "\n"
          "%s\n%s%s",
          usage_keys, usage_exit, usage_exit_oracle);
}

int cmd_help(int argc, char **argv) {
  cli_usage(stdout, argc > 1 ? argv[1] : NULL);
  return CLI_EXIT_OK;
}
