/*
 * oracle/tmpdir.c - the temporary directories of the oracle's stores:
 * made under $KJ_TEST_TMPDIR, else $TMPDIR, else (when asked, and it is a
 * writable directory) /dev/shm, else /tmp; removed with everything in them.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oracle.h"

char *ora_tmpdir(const char *prefix, int prefer_shm) {
  const char *base = getenv("KJ_TEST_TMPDIR");
  struct stat st;
  if (!base || !*base)
    base = getenv("TMPDIR");
  if ((!base || !*base) && prefer_shm && stat("/dev/shm", &st) == 0 &&
      S_ISDIR(st.st_mode) && access("/dev/shm", W_OK | X_OK) == 0)
    base = "/dev/shm";
  if (!base || !*base)
    base = "/tmp";
  size_t n = strlen(base) + strlen(prefix) + sizeof "/.XXXXXX";
  char *p = malloc(n);
  if (!p)
    return NULL;
  snprintf(p, n, "%s/%s.XXXXXX", base, prefix);
  if (!mkdtemp(p)) {
    free(p);
    return NULL;
  }
  return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (flag == FTW_DP || flag == FTW_D) ? rmdir(path) : unlink(path);
}

void ora_rmtree(const char *path) {
  struct stat st;
  if (path && lstat(path, &st) == 0)
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
