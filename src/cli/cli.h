/*
 * src/cli/cli.h - shared declarations of the keyjournal command.
 *
 * The command is one file per command (cmd_*.c, each a handler named in the
 * command table of main.c) over a few shared files: args.c parses the
 * options common to the store commands, messages.c prints errors and maps
 * keyjournal status codes to exit codes, readonly.c opens a store
 * read-only for verify, info and extra, keysrc.c owns key material (key files,
 * KJ_PASSPHRASE, the /dev/tty prompt, random keys) and its wiping;
 * usage_oracle.h is the usage text of the two commands that run in
 * keyjournal-oracle. The command uses the public API of the library only.
 * Nothing here is global mutable state: every function works on what it is
 * passed.
 */
#ifndef KJ_CLI_H
#define KJ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keyjournal/store.h"

/* Exit status of the command. */
enum {
  CLI_EXIT_OK = 0,      /* success */
  CLI_EXIT_FAIL = 1,    /* any other failure (busy, I/O, format, ...) */
  CLI_EXIT_USAGE = 2,   /* bad arguments, unusable key source */
  CLI_EXIT_KEY = 3,     /* KJ_EKEY: wrong key or not a store (also DIR
                         * missing, empty of a store, or not a directory) */
  CLI_EXIT_CORRUPT = 4, /* KJ_ECORRUPT: durable data is damaged */
  /* oracle, bench: keyjournal-oracle found but exec failed, and not found
   * (the shell's statuses for the same cases) */
  CLI_EXIT_CANNOT_RUN = 126,
  CLI_EXIT_NO_ORACLE = 127,
};

/* ---- commands (main.c, cmd_*.c) --------------------------------------- */

/* A command: argv[0] is its name. Returns the exit status. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

/* What `keyjournal help` prints besides a command's usage lines. */
enum {
  CLI_HELP_PAGE = 1, /* `keyjournal help NAME` prints its own page */
  CLI_HELP_KEYS = 2, /* ... followed by the key sources */
  CLI_HELP_EXIT = 4, /* ... and the exit statuses */
  CLI_SODIUM = 8,    /* libsodium is initialised before the handler runs */
};

typedef struct cli_cmd {
  const char *name;
  cli_cmd_fn fn;
  const char *summary; /* one line */
  const char *usage;   /* its lines in `keyjournal help` */
  int flags;           /* CLI_HELP_*, CLI_SODIUM */
} cli_cmd;

/* main.c hands its table to usage.c before a handler runs; the rest of
 * the command reads it through cli_cmd_find() and cli_usage(). */
void cli_set_commands(const cli_cmd *table, size_t n);
/* The command called name (aliases included), or NULL. */
const cli_cmd *cli_cmd_find(const char *name);

int cmd_demo(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_extra(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
/* oracle and bench: executes keyjournal-oracle with the same arguments,
 * returns only when that fails. */
int cmd_oracle(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_version(int argc, char **argv);

extern const char cli_usage_demo[];
extern const char cli_usage_verify[];
extern const char cli_usage_info[];
extern const char cli_usage_extra[];
extern const char cli_usage_upgrade[];
extern const char cli_usage_oracle[];
extern const char cli_usage_bench[];
extern const char cli_usage_help[];
extern const char cli_usage_version[];

/* Print the usage text of the command cmd (NULL: the whole command). */
void cli_usage(FILE *to, const char *cmd);

/* ---- arguments (args.c) ----------------------------------------------- */

/* Options of one command; options may come before or after DIR. */
typedef struct cli_args {
  const char *dir;      /* the one positional argument (NULL: missing) */
  const char *key_file; /* --key-file F */
  const char *seed;     /* --seed N (only when the command allows it) */
  int help;             /* -h / --help was given */
} cli_args;

/* Parse argv[first..argc-1] for command cmd. allow_seed enables --seed.
 * Returns CLI_EXIT_OK, or CLI_EXIT_USAGE after printing the reason. A
 * missing DIR is not reported here (args->help may make it legal). */
int cli_parse_args(const char *cmd, int argc, char **argv, int first,
                   int allow_seed, cli_args *args);

/* Returned by a parser when the command goes on (not an exit status). */
#define CLI_GO_ON (-1)

/* The command line of verify, info and extra, argv[0] being the command:
 * [--key-file F] DIR. Returns CLI_GO_ON with args->dir set, or the exit
 * status after the usage text (--help) or a usage error. */
int cli_parse_dir_args(const char *cmd, int argc, char **argv, cli_args *args);

/* ---- messages (messages.c) -------------------------------------------- */

/* "keyjournal: <cmd>: <formatted message>" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "keyjournal: <cmd>: <what>: <kj_strerror(rc)>: <detail>" on stderr; what
 * and detail may be NULL or empty and are then left out. */
void cli_kj_error(const char *cmd, const char *what, int rc,
                  const char *detail);
/* Exit status for a failed keyjournal call: 3 for KJ_EKEY, 4 for
 * KJ_ECORRUPT, 1 for anything else. */
int cli_exit_for(int rc);

/* ---- read-only stores (readonly.c) ------------------------------------ */

/* Resolve the key (cli_key_resolve) and open a->dir read-only. Returns an
 * exit status; on CLI_EXIT_OK *out is the open handle. */
int cli_open_read_only(const char *cmd, const cli_args *a, kj_store **out);
/* The same, read-write when read_only is 0 (an existing store only). */
int cli_open_store(const char *cmd, const cli_args *a, int read_only,
                   kj_store **out);
/* Close a handle, reporting a failed close. Returns an exit status. */
int cli_close_store(const char *cmd, kj_store *s);
/* kj_store_stats() into *st. Returns an exit status. */
int cli_get_stats(const char *cmd, kj_store *s, kj_stats *st);
/* The note on a torn or unsynced tail, when recovery found one. */
void cli_print_tail_note(const char *cmd, const kj_stats *st);

/* ---- key material (keysrc.c) ----------------------------------------- */

#define CLI_PASS_MAX 1024 /* passphrase buffer, NUL included */

typedef enum cli_key_kind {
  CLI_KEY_NONE = 0,
  CLI_KEY_FILE,   /* --key-file */
  CLI_KEY_ENV,    /* KJ_PASSPHRASE */
  CLI_KEY_PROMPT, /* typed at the /dev/tty prompt */
  CLI_KEY_RANDOM, /* generated by cli_key_generate() */
} cli_key_kind;

/* Key material. Allocated with sodium_malloc() (guard pages, mlock where
 * permitted) by cli_key_new(); wiped and freed by cli_key_free(). */
typedef struct cli_key {
  cli_key_kind kind;
  uint8_t key[KJ_KEY_BYTES]; /* raw key (FILE, RANDOM) */
  char pass[CLI_PASS_MAX];   /* NUL-terminated passphrase (ENV, PROMPT) */
} cli_key;

/* Allocate an empty key (sodium_init() must have succeeded). NULL when out
 * of memory. */
cli_key *cli_key_new(void);
/* Wipe (sodium_memzero) and free. NULL is a no-op. */
void cli_key_free(cli_key *k);

/* Read a key file of exactly KJ_KEY_BYTES raw bytes. Returns CLI_EXIT_OK or
 * CLI_EXIT_USAGE after printing why. */
int cli_key_from_file(cli_key *k, const char *path, const char *cmd);
/* Take the passphrase from KJ_PASSPHRASE. Returns CLI_EXIT_OK, -1 when the
 * variable is not set, or CLI_EXIT_USAGE (empty or too long) after printing
 * why. */
int cli_key_from_env(cli_key *k, const char *cmd);
/* The full order used by verify, info and extra: --key-file, else
 * KJ_PASSPHRASE, else a "Passphrase: " prompt on /dev/tty without echo. Returns
 * CLI_EXIT_OK, or CLI_EXIT_USAGE after printing why (also when there is no
 * terminal to prompt on). */
int cli_key_resolve(cli_key *k, const char *key_file, const char *cmd);
/* Fill k with a random key (randombytes_buf). */
void cli_key_generate(cli_key *k);
/* Write the raw key of k to a new file path with mode 0600 (never replaces
 * an existing file) and sync it. Returns CLI_EXIT_OK, CLI_EXIT_USAGE when
 * path exists, or CLI_EXIT_FAIL, after printing why. */
int cli_key_write_file(const cli_key *k, const char *path, const char *cmd);
/* Point the key or passphrase field of o at k (k must outlive the open). */
void cli_key_apply(const cli_key *k, kj_options *o);
/* Human-readable source, e.g. "key file", "KJ_PASSPHRASE". */
const char *cli_key_describe(const cli_key *k);

#endif /* KJ_CLI_H */
