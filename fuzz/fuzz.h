/*
 * fuzz/fuzz.h - shared pieces of the libFuzzer harnesses: a data provider
 * that turns the fuzz input into typed choices (deterministically, never
 * reading past the input: an exhausted provider yields zeros and empty
 * strings), the fixed key every target uses, and small file-system helpers
 * (temporary directory, whole-file write/read, recursive removal), and the
 * store options and open-everything pass shared by the store targets.
 * Nothing here touches library internals.
 */
#ifndef KJ_FUZZ_H
#define KJ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct fz_provider {
  const uint8_t *p;
  size_t left;
} fz_provider;

void fz_init(fz_provider *fp, const uint8_t *data, size_t size);
size_t fz_remaining(const fz_provider *fp);
uint8_t fz_u8(fz_provider *fp);
uint32_t fz_u32(fz_provider *fp);
uint64_t fz_u64(fz_provider *fp);
int fz_bool(fz_provider *fp);
/* A value in [lo, hi] (lo <= hi), from as few bytes as the range needs. */
uint64_t fz_range(fz_provider *fp, uint64_t lo, uint64_t hi);
/* Up to n bytes (fewer when the input runs out); *got is the count. The
 * returned pointer points into the input (valid while it is). */
const uint8_t *fz_bytes(fz_provider *fp, size_t n, size_t *got);
/* A length in [0, max] then that many bytes (truncated at the end). */
const uint8_t *fz_lbytes(fz_provider *fp, size_t max, size_t *got);
/* Every remaining byte. */
const uint8_t *fz_rest(fz_provider *fp, size_t *got);
/* A key: fz_lbytes(max), or the one byte "k" when that is empty. */
const uint8_t *fz_key_bytes(fz_provider *fp, size_t max, size_t *got);
/* Overwrite b[off..] with fz_lbytes(max), clipped at len (off <= len). */
void fz_overwrite(fz_provider *fp, uint8_t *b, size_t len, size_t off,
                  size_t max);
/* Append fz_lbytes(max) to the malloc'd b of *len bytes (growing it; abort()
 * when out of memory); returns b, *len is the new length. */
uint8_t *fz_append(fz_provider *fp, uint8_t *b, size_t *len, size_t max);

/* Make libsodium's randombytes deterministic (a splitmix64 stream) and
 * restart the stream from seed: call first thing in every test, so store
 * ids, nonces and secretstream headers - and so every file a harness
 * builds - are the same on every run of the same input. */
void fz_random_reset(uint64_t seed);
/* The start of every test: fz_random_reset(seed), and a provider over the
 * input. */
fz_provider fz_start(const uint8_t *data, size_t size, uint64_t seed);

/* The fixed 32-byte raw key of every target. */
extern const uint8_t fz_key[32];

/* Create a fresh directory under $TMPDIR (or /tmp); abort() on failure,
 * which is a harness problem, not a finding. Returns a malloc'd path. */
char *fz_mkdtemp(void);
/* dir/name; malloc'd. */
char *fz_join(const char *dir, const char *name);
/* Write (create/truncate) dir/name with n bytes; 0 or -1. */
int fz_write_file(const char *dir, const char *name, const void *p, size_t n);
/* Read a whole file; malloc'd (free with free), NULL on failure. */
uint8_t *fz_read_file(const char *path, size_t *n);
/* rm -rf path (does not follow symbolic links). */
void fz_rmrf(const char *path);

/* ---- stores (public API only) ---- */
struct kj_options;
/* A fixed clock (a constant time), so runs repeat exactly. */
int64_t fz_clock(void *ctx);
/* Options of every harness store: fz_key, fz_clock, the segment size, no
 * automatic snapshots. */
void fz_store_options(struct kj_options *o, uint64_t segment_bytes);
/* Open a memory-only native backend with fz_key and clock; KJ_OK or the
 * open's status. */
struct kj_backend;
int fz_open_backend(int64_t (*clock)(void *ctx), struct kj_backend **out);
/* Create a new store in dir with those options and sync mode (a kj_sync);
 * abort() if that fails (a harness problem, not a finding). */
struct kj_store;
struct kj_store *fz_create_store(const char *dir, uint64_t segment_bytes,
                                 int sync);
/* The choices of one random store operation: which one (in [0, kinds)),
 * a table in 1..4 and a key (fz_key_bytes(max_key)). */
typedef struct fz_op {
  unsigned what, table;
  const uint8_t *k;
  size_t kl;
} fz_op;
fz_op fz_next_op(fz_provider *fp, unsigned kinds, size_t max_key);
/* Open dir read-only, read-write, then read-only again; each successful
 * open reads every table and the stats (the read-write pass commits one
 * row when commit is set). A failed open that hands out a handle aborts.
 * FZ_VERBOSE=1 prints each open's status, prefixed with who. */
void fz_try_open(const char *dir, uint64_t segment_bytes, int commit,
                 const char *who);

#endif
