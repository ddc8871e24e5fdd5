/*
 * src/cli/keysrc.c - where the keyjournal command gets its key.
 *
 * Owns every byte of key material the command handles: a key file of exactly
 * KJ_KEY_BYTES raw bytes (--key-file), a passphrase from KJ_PASSPHRASE or
 * typed at a "Passphrase: " prompt on /dev/tty with echo off, and random keys
 * for new demo stores (randombytes_buf, written to a new 0600 file). Key
 * material lives in one sodium_malloc() block per cli_key and is wiped with
 * sodium_memzero() before it is freed; scratch copies are wiped too. The
 * prompt switches the terminal to non-canonical, no-echo, no-signal mode and
 * does its own line editing, so Ctrl-C restores the terminal before the
 * process dies; terminating signals are held off meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "keyjournal/store.h"

cli_key *cli_key_new(void) {
  cli_key *k = sodium_malloc(sizeof *k);
  if (k == NULL)
    return NULL;
  sodium_memzero(k, sizeof *k);
  k->kind = CLI_KEY_NONE;
  return k;
}

void cli_key_free(cli_key *k) {
  if (k == NULL)
    return;
  sodium_memzero(k, sizeof *k);
  sodium_free(k);
}

int cli_key_from_file(cli_key *k, const char *path, const char *cmd) {
  /* One byte more than a key, to tell "too long" from "exactly 32". Any
   * readable file will do, so a pipe (--key-file <(...)) works too. */
  uint8_t buf[KJ_KEY_BYTES + 1];
  size_t got = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    cli_error(cmd, "cannot read key file %s: %s", path, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  /* As ssh does for a private key: a key file others may read is used, but
   * not in silence. Pipes and the like carry no such mode. */
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
    cli_error(cmd,
              "warning: key file %s is accessible by group or others "
              "(mode %04o); anyone who can read it can open the store: "
              "chmod 600 %s",
              path, (unsigned)(st.st_mode & 07777), path);
  while (got < sizeof buf) {
    ssize_t r = read(fd, buf + got, sizeof buf - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      sodium_memzero(buf, sizeof buf);
      cli_error(cmd, "cannot read key file %s: %s", path, strerror(e));
      return CLI_EXIT_USAGE;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (got != KJ_KEY_BYTES) {
    sodium_memzero(buf, sizeof buf);
    if (got > KJ_KEY_BYTES)
      cli_error(cmd,
                "key file %s holds more than %u bytes; a key file is "
                "exactly %u raw bytes",
                path, KJ_KEY_BYTES, KJ_KEY_BYTES);
    else
      cli_error(cmd,
                "key file %s holds %zu bytes; a key file is exactly %u raw "
                "bytes",
                path, got, KJ_KEY_BYTES);
    return CLI_EXIT_USAGE;
  }
  memcpy(k->key, buf, KJ_KEY_BYTES);
  sodium_memzero(buf, sizeof buf);
  k->kind = CLI_KEY_FILE;
  return CLI_EXIT_OK;
}

int cli_key_from_env(cli_key *k, const char *cmd) {
  const char *p = getenv("KJ_PASSPHRASE");
  if (p == NULL)
    return -1;
  size_t n = strlen(p);
  if (n == 0) {
    cli_error(cmd, "KJ_PASSPHRASE is set but empty");
    return CLI_EXIT_USAGE;
  }
  if (n >= sizeof k->pass) {
    cli_error(cmd, "KJ_PASSPHRASE is longer than %u bytes",
              (unsigned)(sizeof k->pass - 1));
    return CLI_EXIT_USAGE;
  }
  memcpy(k->pass, p, n + 1);
  k->kind = CLI_KEY_ENV;
  return CLI_EXIT_OK;
}

/* Write all of buf to fd; best effort (used for the prompt only). */
static void write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    buf += w;
    n -= (size_t)w;
  }
}

/* Is c the terminal's special character cc (and is cc enabled)? */
static int is_cc(unsigned char c, cc_t cc) {
  return cc != _POSIX_VDISABLE && c == (unsigned char)cc;
}

/* Outcome of reading a line at the prompt. */
enum prompt_end { PROMPT_LINE, PROMPT_INTR, PROMPT_EOF, PROMPT_ERROR };

/* Read one line into k->pass with the terminal in raw, no-echo mode, doing
 * erase/kill editing ourselves. *too_long is set when input was dropped. */
static enum prompt_end read_line(int fd, const struct termios *cooked,
                                 cli_key *k, int *too_long) {
  size_t len = 0;
  unsigned char c = 0;
  enum prompt_end end = PROMPT_LINE;
  for (;;) {
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      end = PROMPT_ERROR;
      break;
    }
    if (r == 0) {
      end = PROMPT_EOF;
      break;
    }
    if (c == '\n' || c == '\r')
      break;
    if (is_cc(c, cooked->c_cc[VINTR]) || is_cc(c, cooked->c_cc[VQUIT])) {
      end = PROMPT_INTR;
      break;
    }
    if (is_cc(c, cooked->c_cc[VEOF])) {
      if (len == 0) {
        end = PROMPT_EOF;
        break;
      }
      continue;
    }
    if (is_cc(c, cooked->c_cc[VERASE]) || c == 0x7f || c == 0x08) {
      /* Erase one character: UTF-8 continuation bytes, then the lead. */
      while (len > 0 && ((unsigned char)k->pass[len - 1] & 0xC0) == 0x80)
        len--;
      if (len > 0)
        len--;
      continue;
    }
    if (is_cc(c, cooked->c_cc[VKILL])) {
      len = 0;
      continue;
    }
    if (len + 1 < sizeof k->pass)
      k->pass[len++] = (char)c;
    else
      *too_long = 1;
  }
  sodium_memzero(&c, sizeof c);
  k->pass[len] = '\0';
  return end;
}

/* Prompt for a passphrase on /dev/tty without echo. */
static int key_from_prompt(cli_key *k, const char *cmd) {
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  struct termios cooked;
  if (fd < 0 || tcgetattr(fd, &cooked) != 0) {
    if (fd >= 0)
      close(fd);
    cli_error(cmd, "no key: use --key-file or KJ_PASSPHRASE");
    return CLI_EXIT_USAGE;
  }

  /* Hold off signals that would kill us with echo off; they are delivered
   * once the terminal is restored. Ctrl-C arrives as a byte (ISIG off). */
  sigset_t hold, saved;
  sigemptyset(&hold);
  sigaddset(&hold, SIGHUP);
  sigaddset(&hold, SIGINT);
  sigaddset(&hold, SIGQUIT);
  sigaddset(&hold, SIGTERM);
  sigaddset(&hold, SIGTSTP);
  sigaddset(&hold, SIGTTIN);
  sigaddset(&hold, SIGTTOU);
  sigprocmask(SIG_BLOCK, &hold, &saved);

  struct termios raw = cooked;
  raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;

  static const char prompt[] = "Passphrase: ";
  write_all(fd, prompt, sizeof prompt - 1);
  int too_long = 0;
  enum prompt_end end = PROMPT_ERROR;
  int saved_errno = 0;
  if (tcsetattr(fd, TCSAFLUSH, &raw) == 0) {
    end = read_line(fd, &cooked, k, &too_long);
    saved_errno = errno;
    tcsetattr(fd, TCSAFLUSH, &cooked);
  } else {
    saved_errno = errno;
  }
  write_all(fd, "\n", 1);
  close(fd);
  sigprocmask(SIG_SETMASK, &saved, NULL);

  if (end != PROMPT_LINE || too_long || k->pass[0] == '\0') {
    sodium_memzero(k->pass, sizeof k->pass);
    if (end == PROMPT_INTR) {
      /* Die of SIGINT like any interrupted command; if it is ignored,
       * fall through to an ordinary error. */
      raise(SIGINT);
      cli_error(cmd, "passphrase entry interrupted");
    } else if (end == PROMPT_ERROR) {
      cli_error(cmd, "cannot read passphrase from /dev/tty: %s",
                strerror(saved_errno));
    } else if (end == PROMPT_EOF) {
      cli_error(cmd, "no passphrase entered");
    } else if (too_long) {
      cli_error(cmd, "passphrase longer than %u bytes",
                (unsigned)(sizeof k->pass - 1));
    } else {
      cli_error(cmd, "empty passphrase");
    }
    return CLI_EXIT_USAGE;
  }
  k->kind = CLI_KEY_PROMPT;
  return CLI_EXIT_OK;
}

int cli_key_resolve(cli_key *k, const char *key_file, const char *cmd) {
  if (key_file != NULL)
    return cli_key_from_file(k, key_file, cmd);
  int rc = cli_key_from_env(k, cmd);
  if (rc >= 0)
    return rc;
  return key_from_prompt(k, cmd);
}

void cli_key_generate(cli_key *k) {
  randombytes_buf(k->key, sizeof k->key);
  k->kind = CLI_KEY_RANDOM;
}

/* fsync the directory holding path, so a new file's name is durable. Best
 * effort: a failure only weakens durability of the key file's name. */
static void sync_parent_dir(const char *path) {
  size_t n = strlen(path);
  char *dir = malloc(n + 2);
  if (dir == NULL)
    return;
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    strcpy(dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0)
    return;
  (void)fsync(fd);
  close(fd);
}

int cli_key_write_file(const cli_key *k, const char *path, const char *cmd) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == EEXIST) {
      cli_error(cmd,
                "%s already exists; it may be the key of another store, so "
                "it is not replaced (remove it, or pass --key-file)",
                path);
      return CLI_EXIT_USAGE;
    }
    cli_error(cmd, "cannot create key file %s: %s", path, strerror(e));
    return CLI_EXIT_FAIL;
  }
  /* The umask can only have removed bits; make the mode exactly 0600. */
  int failed = fchmod(fd, 0600) != 0;
  size_t done = 0;
  while (!failed && done < sizeof k->key) {
    ssize_t w = write(fd, k->key + done, sizeof k->key - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      failed = 1;
    else
      done += (size_t)w;
  }
  if (!failed && fsync(fd) != 0)
    failed = 1;
  int e = errno;
  if (close(fd) != 0 && !failed) {
    failed = 1;
    e = errno;
  }
  if (failed) {
    unlink(path);
    cli_error(cmd, "cannot write key file %s: %s", path, strerror(e));
    return CLI_EXIT_FAIL;
  }
  sync_parent_dir(path);
  return CLI_EXIT_OK;
}

void cli_key_apply(const cli_key *k, kj_options *o) {
  o->key = NULL;
  o->passphrase = NULL;
  if (k->kind == CLI_KEY_FILE || k->kind == CLI_KEY_RANDOM)
    o->key = k->key;
  else if (k->kind == CLI_KEY_ENV || k->kind == CLI_KEY_PROMPT)
    o->passphrase = k->pass;
}

const char *cli_key_describe(const cli_key *k) {
  switch (k->kind) {
  case CLI_KEY_FILE:
    return "key file";
  case CLI_KEY_ENV:
    return "passphrase from KJ_PASSPHRASE";
  case CLI_KEY_PROMPT:
    return "passphrase from the prompt";
  case CLI_KEY_RANDOM:
    return "random key";
  case CLI_KEY_NONE:
    break;
  }
  return "no key";
}
