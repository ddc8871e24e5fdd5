/*
 * src/cli/cmd_help.c - "keyjournal help [COMMAND]": prints the usage text
 * that usage.c puts together from the command table.
 */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

const char cli_usage_help[] = "  keyjournal help [COMMAND]   this text\n";

int cmd_help(int argc, char **argv) {
  cli_usage(stdout, argc > 1 ? argv[1] : NULL);
  return CLI_EXIT_OK;
}
