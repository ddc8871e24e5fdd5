/*
 * tools/main.c - keyjournal-oracle: the command table and the dispatch.
 *
 * keyjournal-oracle holds the two commands of keyjournal that need the
 * test oracle and SQLite: `keyjournal-oracle oracle ARGS` and
 * `keyjournal-oracle bench ARGS` are `keyjournal oracle ARGS` and
 * `keyjournal bench ARGS`, which keyjournal runs by executing this program
 * with its arguments (src/cli/cmd_oracle.c). It is a separate executable,
 * built and installed only when configure finds SQLite, so that keyjournal
 * itself links nothing but the library; it lives in tools/ because it
 * depends on both oracle/ and bench/ (tools/tools.h). Usage texts are
 * keyjournal's (src/cli/usage_oracle.h), since users reach the commands
 * through keyjournal.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/usage_oracle.h"
#include "keyjournal/errors.h"
#include "tools.h"

typedef struct tool_cmd {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
  const char *usage;
} tool_cmd;

static int tool_help(int argc, char **argv);

static const tool_cmd tool_cmds[] = {
    {"oracle", tool_oracle, "oracle campaigns against the SQLite reference",
     CLI_USAGE_ORACLE},
    {"bench", tool_bench,
     "the native engine, SQLite and SQLCipher side by side", CLI_USAGE_BENCH},
    {"help", tool_help, "this text",
     "  keyjournal-oracle help [COMMAND]  this text\n"},
};
#define TOOL_NCMDS (sizeof tool_cmds / sizeof tool_cmds[0])

static const tool_cmd *find_cmd(const char *name) {
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
    name = "help";
  for (size_t i = 0; i < TOOL_NCMDS; i++)
    if (strcmp(tool_cmds[i].name, name) == 0)
      return &tool_cmds[i];
  return NULL;
}

static void usage(FILE *to) {
  fputs("keyjournal-oracle - the oracle and benchmark commands of keyjournal\n"
        "\n"
        "keyjournal runs this program for `keyjournal oracle` and `keyjournal\n"
        "bench`; `keyjournal-oracle COMMAND ARGS` is `keyjournal COMMAND "
        "ARGS`.\n"
        "\n"
        "Commands:\n",
        to);
  for (size_t i = 0; i < TOOL_NCMDS; i++)
    fprintf(to, "  %-8s %s\n", tool_cmds[i].name, tool_cmds[i].summary);
  fputs("\nUsage:\n", to);
  for (size_t i = 0; i < TOOL_NCMDS; i++)
    fputs(tool_cmds[i].usage, to);
}

static int tool_help(int argc, char **argv) {
  const tool_cmd *c = argc > 1 ? find_cmd(argv[1]) : NULL;
  if (c != NULL && c->fn != tool_help)
    printf("Usage:\n%s", c->usage);
  else
    usage(stdout);
  return TOOL_EXIT_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return TOOL_EXIT_USAGE;
  }
  const tool_cmd *c = find_cmd(argv[1]);
  if (c == NULL) {
    fprintf(stderr,
            "keyjournal-oracle: unknown command '%s' (see "
            "'keyjournal-oracle help')\n",
            argv[1]);
    return TOOL_EXIT_USAGE;
  }
  return c->fn(argc - 1, argv + 1);
}
