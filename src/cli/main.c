/*
 * src/cli/main.c - the keyjournal command: the command table and dispatch.
 *
 * Owns which commands exist, in the order `keyjournal help` lists them,
 * their aliases, and what runs before a handler (libsodium's
 * initialisation for the commands that handle key material). Each command
 * is a file of its own (cmd_*.c); oracle and bench share one handler that
 * runs them in keyjournal-oracle. A command's argv[0] is its name.
 *
 * Exit codes (cli.h): 0 ok, 1 failure, 2 usage, 3 wrong key or not a store
 * (KJ_EKEY), 4 damaged store (KJ_ECORRUPT); oracle and bench: 127 when
 * keyjournal-oracle is not found, 126 when it cannot be run.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"

static const cli_cmd commands[] = {
    {"demo", cmd_demo,
     "crash-test a new store: SIGKILL a writer, check what it recovers",
     cli_usage_demo, CLI_HELP_PAGE | CLI_HELP_KEYS | CLI_SODIUM},
    {"verify", cmd_verify, "authenticate every frame of a store, read-only",
     cli_usage_verify,
     CLI_HELP_PAGE | CLI_HELP_KEYS | CLI_HELP_EXIT | CLI_SODIUM},
    {"info", cmd_info, "sizes, rows per table and the last recovery of a store",
     cli_usage_info,
     CLI_HELP_PAGE | CLI_HELP_KEYS | CLI_HELP_EXIT | CLI_SODIUM},
    {"extra", cmd_extra, "write a snapshot copy's sealed extra bytes to stdout",
     cli_usage_extra,
     CLI_HELP_PAGE | CLI_HELP_KEYS | CLI_HELP_EXIT | CLI_SODIUM},
    {"upgrade", cmd_upgrade, "bring a store to this build's format",
     cli_usage_upgrade,
     CLI_HELP_PAGE | CLI_HELP_KEYS | CLI_HELP_EXIT | CLI_SODIUM},
    {"oracle", cmd_oracle, "oracle campaigns against the SQLite reference",
     cli_usage_oracle, CLI_HELP_PAGE},
    {"bench", cmd_oracle,
     "the native engine, SQLite and SQLCipher side by side", cli_usage_bench,
     CLI_HELP_PAGE},
    {"help", cmd_help, "this text", cli_usage_help, 0},
    {"version", cmd_version, "print the version", cli_usage_version, 0},
};

int main(int argc, char **argv) {
  cli_set_commands(commands, sizeof commands / sizeof commands[0]);
  if (argc < 2) {
    cli_usage(stderr, NULL);
    return CLI_EXIT_USAGE;
  }
  const cli_cmd *c = cli_cmd_find(argv[1]);
  if (c == NULL) {
    cli_error(NULL, "unknown command '%s' (see 'keyjournal help')", argv[1]);
    return CLI_EXIT_USAGE;
  }
  if ((c->flags & CLI_SODIUM) && sodium_init() < 0) {
    cli_error(c->name, "libsodium failed to initialise");
    return CLI_EXIT_FAIL;
  }
  return c->fn(argc - 1, argv + 1);
}
