/*
 * tools/tools.h - shared declarations of keyjournal-oracle.
 *
 * keyjournal-oracle is the program behind `keyjournal oracle` and
 * `keyjournal bench`: keyjournal runs it (src/cli/cmd_oracle.c) so that
 * the installed keyjournal links only the library. Its sources live in
 * tools/, outside src/, because it sits above both oracle/ (the campaigns)
 * and bench/ (the benchmark): in either folder it would make one of them
 * depend on the other, and in src/ it would make the library's tree depend
 * on the test code. main.c holds the command table and the dispatch,
 * cmd_oracle.c and cmd_bench.c one command each. Nothing here is global
 * mutable state.
 */
#ifndef KJ_TOOLS_H
#define KJ_TOOLS_H

/* Exit status, the same as the keyjournal command's. */
enum {
  TOOL_EXIT_OK = 0,
  TOOL_EXIT_FAIL = 1,
  TOOL_EXIT_USAGE = 2,
};

/* "keyjournal: <cmd>: <formatted message>" on stderr: the commands are
 * those of keyjournal, and their messages read the same whichever program
 * prints them. */
void tool_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "keyjournal: <cmd>: <what>: <kj_strerror(rc)>: <detail>" on stderr; what
 * and detail may be NULL or empty and are then left out. */
void tool_kj_error(const char *cmd, const char *what, int rc,
                   const char *detail);

/* The commands; argv[0] is the command's name. Return the exit status. */
int tool_oracle(int argc, char **argv); /* cmd_oracle.c */
int tool_bench(int argc, char **argv);  /* cmd_bench.c */

#endif /* KJ_TOOLS_H */
