/*
 * fuzz/replay.c - a plain main() that runs one target's
 * LLVMFuzzerTestOneInput over every file named on the command line
 * (directories are walked recursively, in sorted order), so corpora and
 * crash inputs can be replayed without libFuzzer, e.g. under gcc with
 * AddressSanitizer. A target that crashes takes the process down (non-zero
 * exit, the file name printed just before); a file that cannot be read is
 * reported and makes the exit status 1.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int failures;
static unsigned long runs;

static int cmp_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: cannot stat %s\n", path);
    failures = 1;
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    struct dirent **ents = NULL;
    int n = scandir(path, &ents, NULL, cmp_name);
    if (n < 0) {
      fprintf(stderr, "replay: cannot list %s\n", path);
      failures = 1;
      return;
    }
    for (int i = 0; i < n; i++) {
      if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
        char *c = fz_join(path, ents[i]->d_name);
        run_path(c);
        free(c);
      }
      free(ents[i]);
    }
    free(ents);
    return;
  }
  size_t n = 0;
  uint8_t *b = fz_read_file(path, &n);
  if (!b) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    failures = 1;
    return;
  }
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
  /* A copy of exactly n bytes, so ASan sees any read past the input. */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact)
    abort();
  memcpy(exact, b, n);
  free(b);
  (void)LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  runs++;
  /* TAP, so `make check` counts every input (a crash kills the run and
   * the harness reports the missing plan). */
  printf("ok %lu - %s\n", runs, path);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 2) {
#ifdef KJ_FUZZ_TARGET
    /* Under `make check`: this target's seed corpus and every input that
     * once crashed it. */
    const char *top = getenv("top_srcdir");
    if (top) {
      char *fz = fz_join(top, "fuzz");
      char *corp = fz_join(fz, "corpora"), *cr = fz_join(fz, "crashes");
      char *c1 = fz_join(corp, KJ_FUZZ_TARGET),
           *c2 = fz_join(cr, KJ_FUZZ_TARGET);
      struct stat st;
      run_path(c1);
      if (stat(c2, &st) == 0)
        run_path(c2);
      free(fz);
      free(corp);
      free(cr);
      free(c1);
      free(c2);
      printf("1..%lu\n", runs);
      return failures || !runs;
    }
#endif
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++)
    run_path(argv[i]);
  printf("1..%lu\n", runs);
  fprintf(stderr, "replay: %lu inputs, %s\n", runs,
          failures ? "some unreadable" : "ok");
  return failures;
}
