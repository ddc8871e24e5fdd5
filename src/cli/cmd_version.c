/*
 * src/cli/cmd_version.c - "keyjournal --version": the package version, as
 * configure set it, so a bug report can say which keyjournal it was.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>

#include "cli.h"

#ifdef PACKAGE_VERSION
#define CLI_VERSION_TEXT "keyjournal " PACKAGE_VERSION
#else
#define CLI_VERSION_TEXT "keyjournal 0.1"
#endif

const char cli_usage_version[] =
    "  keyjournal --version        print the version\n";

int cmd_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  puts(CLI_VERSION_TEXT);
  return CLI_EXIT_OK;
}
