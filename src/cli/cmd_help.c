/*
 * src/cli/cmd_help.c - "keyjournal help [COMMAND]": prints the usage text
 * that usage.c puts together from the command table. An unknown COMMAND
 * is a usage error (exit 2), as it is for `keyjournal COMMAND`.
 */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

const char cli_usage_help[] = "  keyjournal help [COMMAND]   this text\n";

int cmd_help(int argc, char **argv) {
  if (argc > 2) {
    cli_error("help", "takes at most one COMMAND (see 'keyjournal help')");
    return CLI_EXIT_USAGE;
  }
  if (argc > 1 && cli_cmd_find(argv[1]) == NULL) {
    cli_error("help", "unknown command '%s' (see 'keyjournal help')", argv[1]);
    return CLI_EXIT_USAGE;
  }
  cli_usage(stdout, argc > 1 ? argv[1] : NULL);
  return CLI_EXIT_OK;
}
