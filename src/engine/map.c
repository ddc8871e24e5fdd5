/*
 * src/engine/map.c - the in-memory ordered map behind src/engine/map.h.
 *
 * This file owns the AVL tree that holds a table's committed rows and a
 * transaction's write set: node layout and allocation, rebalancing, the
 * count/bytes accounting, the key order, and the stack-based iterator.
 * Each entry is one allocation (secmem.h): a small header followed by the key
 * bytes and then the value bytes, so a row costs one allocation and no separate
 * buffers. Replacing a row allocates a fresh node and unlinks the old one;
 * rotations only relink nodes, so an entry pointer stays valid until its own
 * key is replaced or removed. It depends on nothing else of the engine.
 *
 * Point lookups in a map of HX_MIN entries or more go through a hash index
 * beside the tree: an open-addressing table (linear probing, power-of-two
 * capacity, at most HX_LOAD_NUM/HX_LOAD_DEN full) of (hash, entry) slots,
 * keyed by SipHash-2-4 under a random key per map, so that keys an
 * adversary chooses (a contact's address, say) cannot be made to collide.
 * A lookup costs one slot line and the entry itself, where the tree costs
 * a node per level (17 at 100k rows), each a likely cache miss once the
 * table outgrows the cache. The index is only an accelerator: when it
 * cannot be allocated or grown it is dropped and lookups walk the tree, so
 * no operation ever fails because of it. Deletions shift the following
 * slots back (no tombstones), so the probe length stays that of the load.
 */
#include "map.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyjournal/errors.h"
#include "secmem.h"

struct kj_entry {
  struct kj_entry *left, *right;
  uint32_t klen, vlen;
  /* Subtree height, a leaf is 1. An AVL tree of height h holds at least
   * Fib(h + 2) - 1 nodes, so any tree that fits in memory is far below 127. */
  int8_t height;
  uint8_t tomb;
  /* klen key bytes, then vlen value bytes. */
  unsigned char data[];
};

struct kj_map {
  kj_entry *root;
  uint64_t count;
  uint64_t bytes;
  /* Bulk load (kj_map_append): nodes in increasing key order, not yet in
   * the tree; kj_map_seal() builds it. */
  kj_entry **bulk;
  size_t nbulk, capbulk;
  /* Staged replay (kj_map_stage): puts and tombstones in arrival order,
   * applied by kj_map_apply_staged(). */
  kj_entry **stage;
  size_t nstage, capstage;
  /* The hash index of point lookups: hcap slots (a power of two), or none
   * (hx NULL, hcap 0); it holds every entry of the tree when present. */
  struct hslot *hx;
  size_t hcap;
  unsigned char hkey[crypto_shorthash_KEYBYTES];
};

/* A slot of the hash index: e NULL when empty. */
typedef struct hslot {
  uint64_t h;
  kj_entry *e;
} hslot;

/* Maps smaller than this walk the tree (it is then cache-resident and as
 * fast); the index is built when a map reaches it. */
#define HX_MIN 256
/* The most a table is filled before it doubles: 3/4. */
#define HX_LOAD_NUM 3
#define HX_LOAD_DEN 4

/* Bytes before the inline data; offsetof, not sizeof, so the struct's tail
 * padding is not allocated on top of the key and value (26 bytes, not 32,
 * on LP64). */
#define NODE_HDR offsetof(struct kj_entry, data)

int kj_key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  /* memcmp with a NULL pointer is undefined even for length 0, and an empty
   * key may well arrive as (NULL, 0). */
  if (n > 0) {
    int c = memcmp(a, b, n);
    if (c != 0)
      return c;
  }
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int entry_cmp(const void *key, size_t klen, const kj_entry *e) {
  return kj_key_cmp(key, klen, e->data, e->klen);
}

static int height(const kj_entry *e) { return e ? e->height : 0; }

static void fix_height(kj_entry *e) {
  int hl = height(e->left), hr = height(e->right);
  e->height = (int8_t)((hl > hr ? hl : hr) + 1);
}

static kj_entry *rotate_right(kj_entry *e) {
  kj_entry *l = e->left;
  e->left = l->right;
  l->right = e;
  fix_height(e);
  fix_height(l);
  return l;
}

static kj_entry *rotate_left(kj_entry *e) {
  kj_entry *r = e->right;
  e->right = r->left;
  r->left = e;
  fix_height(e);
  fix_height(r);
  return r;
}

/* Restore the AVL property at e after one of its subtrees changed height by
 * at most one, and return the new subtree root. */
static kj_entry *rebalance(kj_entry *e) {
  int bf;
  fix_height(e);
  bf = height(e->left) - height(e->right);
  if (bf > 1) {
    /* A left-right shape needs the inner child lifted first, or the single
     * rotation would just mirror the imbalance. */
    if (height(e->left->left) < height(e->left->right))
      e->left = rotate_left(e->left);
    return rotate_right(e);
  }
  if (bf < -1) {
    if (height(e->right->right) < height(e->right->left))
      e->right = rotate_right(e->right);
    return rotate_left(e);
  }
  return e;
}

/* Insert node n under t, or put it in the place of the entry with the same
 * key (returned through *old). Recursion depth is the tree height. */
static kj_entry *insert(kj_entry *t, kj_entry *n, kj_entry **old) {
  int c;
  if (!t)
    return n;
  c = entry_cmp(n->data, n->klen, t);
  if (c < 0) {
    t->left = insert(t->left, n, old);
  } else if (c > 0) {
    t->right = insert(t->right, n, old);
  } else {
    /* Same shape, new node: the heights above do not change. */
    n->left = t->left;
    n->right = t->right;
    n->height = t->height;
    *old = t;
    return n;
  }
  /* A replacement leaves every height as it was, so this is then a no-op. */
  return rebalance(t);
}

/* Detach the smallest node of t into *min and return what is left. */
static kj_entry *remove_min(kj_entry *t, kj_entry **min) {
  if (!t->left) {
    *min = t;
    return t->right;
  }
  t->left = remove_min(t->left, min);
  return rebalance(t);
}

static kj_entry *erase(kj_entry *t, const void *key, size_t klen,
                       kj_entry **gone) {
  int c;
  if (!t)
    return NULL;
  c = entry_cmp(key, klen, t);
  if (c < 0) {
    t->left = erase(t->left, key, klen, gone);
  } else if (c > 0) {
    t->right = erase(t->right, key, klen, gone);
  } else {
    kj_entry *succ, *rest;
    *gone = t;
    if (!t->right)
      return t->left;
    if (!t->left)
      return t->right;
    /* Keys live inside their nodes, so the successor node itself moves into
     * t's place instead of having its key copied over. */
    rest = remove_min(t->right, &succ);
    succ->left = t->left;
    succ->right = rest;
    return rebalance(succ);
  }
  return rebalance(t);
}

/* ---- the hash index ------------------------------------------------------ */

static uint64_t hx_hash(const kj_map *m, const void *key, size_t klen) {
  unsigned char out[crypto_shorthash_BYTES];
  uint64_t h;
  /* SipHash reads klen bytes; an empty key may arrive as (NULL, 0). */
  crypto_shorthash(out, klen ? key : (const void *)"", klen, m->hkey);
  memcpy(&h, out, sizeof h);
  return h;
}

static void hx_drop(kj_map *m) {
  free(m->hx);
  m->hx = NULL;
  m->hcap = 0;
}

/* Place e (hash h) in the first free slot of its probe sequence; the
 * table has room. */
static void hx_place(hslot *t, size_t cap, uint64_t h, kj_entry *e) {
  size_t i = (size_t)h & (cap - 1);
  while (t[i].e)
    i = (i + 1) & (cap - 1);
  t[i].h = h;
  t[i].e = e;
}

/* The slot of key, or -1 when absent. */
static long hx_find(const kj_map *m, uint64_t h, const void *key, size_t klen) {
  size_t mask = m->hcap - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    const hslot *sl = &m->hx[i];
    if (!sl->e)
      return -1;
    if (sl->h == h && !kj_key_cmp(key, klen, sl->e->data, sl->e->klen))
      return (long)i;
  }
}

/* A table of cap slots holding the index's entries, in place of it. 0, or
 * -1 when it cannot be allocated (the index is then unchanged). */
static int hx_resize(kj_map *m, size_t cap) {
  hslot *t = calloc(cap, sizeof *t);
  if (!t)
    return -1;
  for (size_t i = 0; i < m->hcap; i++)
    if (m->hx[i].e)
      hx_place(t, cap, m->hx[i].h, m->hx[i].e);
  free(m->hx);
  m->hx = t;
  m->hcap = cap;
  return 0;
}

/* The smallest capacity that holds n entries within the load. */
static size_t hx_cap_for(uint64_t n) {
  size_t cap = 16;
  while ((uint64_t)cap * HX_LOAD_NUM < n * HX_LOAD_DEN)
    cap *= 2;
  return cap;
}

/* Index every entry of the tree anew, when the map is large enough; on
 * failure it has none. The slots are filled in order of their home slot
 * (hashes sorted by a two-pass radix sort on the home bits), so the table
 * is written front to back instead of at a random slot per entry: at 1M
 * rows that is the difference between a cache and TLB miss per row and
 * none. With homes ascending, linear probing puts each entry at
 * max(home, previous + 1); the few that would run past the end wrap to
 * the front through the ordinary probe. */
static void hx_build(kj_map *m) {
  hx_drop(m);
  if (m->count < HX_MIN)
    return;
  size_t n = (size_t)m->count, cap = hx_cap_for(m->count + 1);
  hslot *t = calloc(cap, sizeof *t);
  hslot *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  if (!t || !a || !b) {
    free(t);
    free(a);
    free(b);
    return;
  }
  randombytes_buf(m->hkey, sizeof m->hkey);
  kj_iter it;
  kj_iter_seek(&it, m, NULL, 0);
  const kj_entry *e;
  size_t k = 0;
  while ((e = kj_iter_next(&it)) && k < n) {
    a[k].h = hx_hash(m, e->data, e->klen);
    a[k++].e = (kj_entry *)e;
  }
  /* LSD radix sort of a[0..k) by (h & (cap - 1)), 11 bits per pass. */
  unsigned bits = 0;
  while (((size_t)1 << bits) < cap)
    bits++;
  for (unsigned shift = 0; shift < bits; shift += 11) {
    size_t cnt[2048] = {0};
    for (size_t i = 0; i < k; i++)
      cnt[(a[i].h & (cap - 1)) >> shift & 2047]++;
    for (size_t i = 0, sum = 0; i < 2048; i++) {
      size_t c = cnt[i];
      cnt[i] = sum;
      sum += c;
    }
    for (size_t i = 0; i < k; i++)
      b[cnt[(a[i].h & (cap - 1)) >> shift & 2047]++] = a[i];
    hslot *x = a;
    a = b;
    b = x;
  }
  size_t next = 0; /* the first slot not yet filled by the ordered pass */
  for (size_t i = 0; i < k; i++) {
    size_t home = (size_t)a[i].h & (cap - 1);
    size_t pos = home > next ? home : next;
    if (pos < cap) {
      t[pos] = a[i];
      next = pos + 1;
    } else {
      hx_place(t, cap, a[i].h, a[i].e); /* wraps to the front */
    }
  }
  free(a);
  free(b);
  m->hx = t;
  m->hcap = cap;
}

/* Build the index of a map that has none, when it is large enough (after
 * staged replays, which leave it to the caller). */
void kj_map_index(kj_map *m) {
  if (!m->hx && !m->nbulk && !m->nstage)
    hx_build(m);
}

/* Make room for one more entry (before it is linked in the tree): grow
 * the table, or drop it when it cannot grow. */
static void hx_reserve(kj_map *m) {
  if (m->hx &&
      (uint64_t)(m->count + 1) * HX_LOAD_DEN >
          (uint64_t)m->hcap * HX_LOAD_NUM &&
      hx_resize(m, m->hcap * 2))
    hx_drop(m);
}

/* n took the place of old (same key), or is new (old NULL): the tree
 * already holds n. */
static void hx_put(kj_map *m, kj_entry *n, kj_entry *old) {
  if (!m->hx) {
    if (m->count >= HX_MIN)
      hx_build(m);
    return;
  }
  uint64_t h = hx_hash(m, n->data, n->klen);
  if (old) {
    long i = hx_find(m, h, n->data, n->klen);
    assert(i >= 0 && m->hx[i].e == old);
    m->hx[i].e = n;
  } else {
    hx_place(m->hx, m->hcap, h, n);
  }
}

/* Remove gone's slot (backward-shift deletion: each later slot of the run
 * moves back into the hole unless its home lies after the hole). */
static void hx_del(kj_map *m, const kj_entry *gone) {
  if (!m->hx)
    return;
  uint64_t h = hx_hash(m, gone->data, gone->klen);
  long f = hx_find(m, h, gone->data, gone->klen);
  assert(f >= 0 && m->hx[f].e == gone);
  size_t mask = m->hcap - 1, hole = (size_t)f;
  for (size_t i = (hole + 1) & mask; m->hx[i].e; i = (i + 1) & mask) {
    size_t home = (size_t)m->hx[i].h & mask;
    /* The slot may move back to the hole when its home is not in the
     * cyclic range (hole, i]. */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      m->hx[hole] = m->hx[i];
      hole = i;
    }
  }
  m->hx[hole].e = NULL;
  m->hx[hole].h = 0;
}

/* Free a whole tree without recursion: rotate left children up until the
 * root has none, then free the root and continue with its right subtree.
 * Each rotation moves one node onto the right spine for good, so this is
 * O(n) with O(1) stack. */
static void free_tree(kj_entry *t) {
  while (t) {
    if (t->left) {
      kj_entry *l = t->left;
      t->left = l->right;
      l->right = t;
      t = l;
    } else {
      kj_entry *r = t->right;
      kj_sec_free(t);
      t = r;
    }
  }
}

kj_map *kj_map_new(void) { return calloc(1, sizeof(kj_map)); }

static void free_bulk(kj_map *m) {
  for (size_t i = 0; i < m->nbulk; i++)
    kj_sec_free(m->bulk[i]);
  free(m->bulk);
  m->bulk = NULL;
  m->nbulk = m->capbulk = 0;
  for (size_t i = 0; i < m->nstage; i++)
    kj_sec_free(m->stage[i]);
  free(m->stage);
  m->stage = NULL;
  m->nstage = m->capstage = 0;
}

void kj_map_free(kj_map *m) {
  if (!m)
    return;
  free_bulk(m);
  hx_drop(m);
  free_tree(m->root);
  free(m);
}

void kj_map_clear(kj_map *m) {
  free_bulk(m);
  hx_drop(m);
  free_tree(m->root);
  m->root = NULL;
  m->count = 0;
  m->bytes = 0;
}

/* A new unlinked node holding key and value, or NULL (out of memory, or
 * lengths that do not fit the node's uint32 fields). */
static kj_entry *node_new(const void *key, size_t klen, const void *val,
                          size_t vlen, int tomb) {
  kj_entry *n;
  size_t size;
  if (tomb)
    vlen = 0; /* a tombstone has no value, whatever the caller passed */
#if SIZE_MAX > UINT32_MAX
  /* The lengths are stored as uint32; a longer key or value cannot be
   * represented, which for the caller is the same as not fitting in memory. */
  if (klen > UINT32_MAX || vlen > UINT32_MAX)
    return NULL;
#else
  if (klen > SIZE_MAX - NODE_HDR || vlen > SIZE_MAX - NODE_HDR - klen)
    return NULL;
#endif
  /* Never less than the struct itself: the compiler may assume a whole
   * struct is addressable, and the allocator's rounding makes this free
   * anyway. Row memory is kept out of core dumps (secmem.h). */
  size = NODE_HDR + klen + vlen;
  n = kj_sec_alloc(size < sizeof(kj_entry) ? sizeof(kj_entry) : size);
  if (!n)
    return NULL;
  n->left = n->right = NULL;
  n->klen = (uint32_t)klen;
  n->vlen = (uint32_t)vlen;
  n->height = 1;
  n->tomb = (uint8_t)(tomb == KJ_TOMB_KEEP ? KJ_TOMB_KEEP : tomb ? 1 : 0);
  /* Guard the copies: (NULL, 0) is a valid empty key or value, but memcpy
   * from NULL is undefined even for zero bytes. */
  if (klen)
    memcpy(n->data, key, klen);
  if (vlen)
    memcpy(n->data + klen, val, vlen);
  return n;
}

static void old_state(const kj_entry *e, kj_map_old *out) {
  if (!out)
    return;
  out->present = e != NULL;
  out->tomb = e ? e->tomb : 0;
  out->vlen = e ? e->vlen : 0;
}

int kj_map_put(kj_map *m, const void *key, size_t klen, const void *val,
               size_t vlen, int tomb) {
  return kj_map_put_old(m, key, klen, val, vlen, tomb, NULL);
}

int kj_map_put_old(kj_map *m, const void *key, size_t klen, const void *val,
                   size_t vlen, int tomb, kj_map_old *was) {
  kj_entry *n, *old = NULL;
  int rc = m->nstage ? kj_map_apply_staged(m) : kj_map_seal(m);
  if (rc)
    return rc;
  /* Allocate before touching the tree so a failure leaves it unchanged. */
  n = node_new(key, klen, val, vlen, tomb);
  if (!n)
    return KJ_ENOMEM;
  vlen = n->vlen;
  hx_reserve(m);
  m->root = insert(m->root, n, &old);
  if (!old)
    m->count++;
  hx_put(m, n, old);
  old_state(old, was);
  if (old) {
    m->bytes -= (uint64_t)old->klen + old->vlen;
    kj_sec_free(old);
  }
  m->bytes += (uint64_t)klen + vlen;
  return KJ_OK;
}

/* Append a new node for (key, val, tomb) to the node vector *v (n used,
 * *cap allocated), growing it by doubling. KJ_OK or KJ_ENOMEM (unchanged). */
static int vec_push(kj_entry ***v, size_t *n, size_t *cap, const void *key,
                    size_t klen, const void *val, size_t vlen, int tomb) {
  if (*n == *cap) {
    size_t c = *cap ? 2 * *cap : 1024;
    kj_entry **g = realloc(*v, c * sizeof *g);
    if (!g)
      return KJ_ENOMEM;
    *v = g;
    *cap = c;
  }
  kj_entry *e = node_new(key, klen, val, vlen, tomb);
  if (!e)
    return KJ_ENOMEM;
  (*v)[(*n)++] = e;
  return KJ_OK;
}

/* A balanced tree of the n nodes at a (in key order), O(n). */
static kj_entry *build(kj_entry **a, size_t n) {
  if (n == 0)
    return NULL;
  size_t mid = n / 2;
  kj_entry *e = a[mid];
  e->left = build(a, mid);
  e->right = build(a + mid + 1, n - mid - 1);
  fix_height(e);
  return e;
}

int kj_map_append(kj_map *m, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  /* Only an empty map, and only keys above the last: anything else is an
   * ordinary insert. */
  if ((m->root && !m->nbulk) ||
      (m->nbulk && kj_key_cmp(key, klen, m->bulk[m->nbulk - 1]->data,
                              m->bulk[m->nbulk - 1]->klen) <= 0))
    return kj_map_put(m, key, klen, val, vlen, 0);
  if (vec_push(&m->bulk, &m->nbulk, &m->capbulk, key, klen, val, vlen, 0))
    return KJ_ENOMEM;
  kj_entry *n = m->bulk[m->nbulk - 1];
  m->count++;
  m->bytes += (uint64_t)n->klen + n->vlen;
  return KJ_OK;
}

int kj_map_seal(kj_map *m) {
  if (!m->nbulk)
    return KJ_OK;
  /* Appends went only to an empty map, so the tree is the bulk itself. */
  assert(!m->root);
  m->root = build(m->bulk, m->nbulk);
  free(m->bulk);
  m->bulk = NULL;
  m->nbulk = m->capbulk = 0;
  hx_build(m);
  return KJ_OK;
}

/* ---- staged replay ------------------------------------------------------ */

int kj_map_stage(kj_map *m, const void *key, size_t klen, const void *val,
                 size_t vlen, int tomb) {
  return vec_push(&m->stage, &m->nstage, &m->capstage, key, klen, val, vlen,
                  tomb);
}

size_t kj_map_staged(const kj_map *m) { return m->nstage; }

/* A staged op with the first 16 key bytes cached (big-endian, zero
 * padded), so that most comparisons of the sort touch no node. */
typedef struct staged_op {
  uint64_t p0, p1;
  size_t seq;
  kj_entry *e;
} staged_op;

static uint64_t be_prefix(const unsigned char *k, size_t n, size_t from) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++)
    v = v << 8 | (from + i < n ? k[from + i] : 0);
  return v;
}

static int staged_cmp(const void *a, const void *b) {
  const staged_op *x = a, *y = b;
  if (x->p0 != y->p0)
    return x->p0 < y->p0 ? -1 : 1;
  if (x->p1 != y->p1)
    return x->p1 < y->p1 ? -1 : 1;
  int c = kj_key_cmp(x->e->data, x->e->klen, y->e->data, y->e->klen);
  if (c)
    return c;
  /* Same key: arrival order, so the last op of a key sorts last. */
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* In-order nodes of t into *out (advances it); the tree is left unlinked. */
static void flatten(kj_entry *t, kj_entry ***out) {
  kj_iter it;
  kj_map tmp = {.root = t};
  kj_iter_seek(&it, &tmp, NULL, 0);
  const kj_entry *e;
  while ((e = kj_iter_next(&it)))
    *(*out)++ = (kj_entry *)e;
}

int kj_map_apply_staged(kj_map *m) {
  if (!m->nstage)
    return KJ_OK;
  int rc = kj_map_seal(m);
  if (rc)
    return rc;
  size_t ns = m->nstage;
  staged_op *ops = malloc(ns * sizeof *ops);
  kj_entry **merged = malloc((m->count + ns) * sizeof *merged);
  kj_entry **old = malloc((m->count ? m->count : 1) * sizeof *old);
  if (!ops || !merged || !old) {
    free(ops);
    free(merged);
    free(old);
    return KJ_ENOMEM;
  }
  for (size_t i = 0; i < ns; i++) {
    kj_entry *e = m->stage[i];
    ops[i].p0 = be_prefix(e->data, e->klen, 0);
    ops[i].p1 = be_prefix(e->data, e->klen, 8);
    ops[i].seq = i;
    ops[i].e = e;
  }
  qsort(ops, ns, sizeof *ops, staged_cmp);
  kj_entry **op = old;
  flatten(m->root, &op);
  size_t nold = (size_t)(op - old), io = 0, nm = 0;
  uint64_t count = 0, bytes = 0;
  for (size_t i = 0; i < ns; i++) {
    kj_entry *e = ops[i].e;
    /* Only the last op of a key counts. */
    if (i + 1 < ns &&
        !kj_key_cmp(e->data, e->klen, ops[i + 1].e->data, ops[i + 1].e->klen)) {
      kj_sec_free(e);
      continue;
    }
    while (io < nold &&
           kj_key_cmp(old[io]->data, old[io]->klen, e->data, e->klen) < 0)
      merged[nm++] = old[io++];
    if (io < nold &&
        !kj_key_cmp(old[io]->data, old[io]->klen, e->data, e->klen))
      kj_sec_free(old[io++]); /* replaced or deleted */
    if (e->tomb == 1) {
      kj_sec_free(e); /* a delete */
    } else {
      e->tomb = e->tomb == KJ_TOMB_KEEP; /* a tombstone entry stays */
      merged[nm++] = e;
    }
  }
  while (io < nold)
    merged[nm++] = old[io++];
  for (size_t i = 0; i < nm; i++) {
    merged[i]->left = merged[i]->right = NULL;
    count++;
    bytes += (uint64_t)merged[i]->klen + merged[i]->vlen;
  }
  m->root = build(merged, nm);
  m->count = count;
  m->bytes = bytes;
  /* The old index points at freed entries. The new one is left to
   * kj_map_index() or the next put: a recovery applies many batches and
   * indexes once, at the end. */
  hx_drop(m);
  free(m->stage);
  m->stage = NULL;
  m->nstage = m->capstage = 0;
  free(ops);
  free(merged);
  free(old);
  return KJ_OK;
}

int kj_map_del(kj_map *m, const void *key, size_t klen) {
  return kj_map_del_old(m, key, klen, NULL);
}

int kj_map_del_old(kj_map *m, const void *key, size_t klen, kj_map_old *was) {
  kj_entry *gone = NULL;
  if (m->nstage)
    kj_map_apply_staged(m);
  kj_map_seal(m);
  m->root = erase(m->root, key, klen, &gone);
  old_state(gone, was);
  if (!gone)
    return 0;
  hx_del(m, gone);
  m->count--;
  m->bytes -= (uint64_t)gone->klen + gone->vlen;
  kj_sec_free(gone);
  return 1;
}

const kj_entry *kj_map_get(const kj_map *m, const void *key, size_t klen) {
  if (m->hx) {
    long i = hx_find(m, hx_hash(m, key, klen), key, klen);
    return i < 0 ? NULL : m->hx[i].e;
  }
  const kj_entry *e = m->root;
  while (e) {
    int c = entry_cmp(key, klen, e);
    if (c == 0)
      return e;
    e = c < 0 ? e->left : e->right;
  }
  return NULL;
}

uint64_t kj_map_count(const kj_map *m) { return m->count; }
int kj_map_indexed(const kj_map *m) { return m->hx != NULL; }
uint64_t kj_map_bytes(const kj_map *m) { return m->bytes; }

const void *kj_entry_key(const kj_entry *e) { return e->data; }
size_t kj_entry_klen(const kj_entry *e) { return e->klen; }
const void *kj_entry_val(const kj_entry *e) { return e->data + e->klen; }
size_t kj_entry_vlen(const kj_entry *e) { return e->vlen; }
int kj_entry_tomb(const kj_entry *e) { return e->tomb; }

/*
 * The iterator stack holds, top first, the entries not yet returned whose
 * left subtrees are done: the top is the next entry, and below it are the
 * ancestors still waiting to be visited. It only ever holds nodes of one
 * root-to-leaf path, so its depth is bounded by the tree height (under 60
 * for 2^40 entries).
 */
static void iter_push(kj_iter *it, const kj_entry *e) {
  assert(it->depth < KJ_ITER_DEPTH);
  it->stack[it->depth++] = e;
}

void kj_iter_seek(kj_iter *it, const kj_map *m, const void *key, size_t klen) {
  const kj_entry *e = m->root;
  it->depth = 0;
  if (!key)
    klen = 0;
  /* Push every node >= key on the search path; nodes < key are skipped along
   * with their left subtrees. The last push is the smallest key >= the
   * bound. With klen 0 every node compares >=, giving the leftmost path. */
  while (e) {
    if (entry_cmp(key, klen, e) <= 0) {
      iter_push(it, e);
      e = e->left;
    } else {
      e = e->right;
    }
  }
}

const kj_entry *kj_iter_next(kj_iter *it) {
  const kj_entry *cur, *e;
  if (it->depth == 0)
    return NULL;
  cur = it->stack[--it->depth];
  /* The successor is the leftmost node of the right subtree, or else the
   * nearest waiting ancestor already on the stack. */
  for (e = cur->right; e; e = e->left)
    iter_push(it, e);
  return cur;
}

struct check_acc {
  uint64_t count, bytes;
};

/* Height of the subtree at e, or -1 if it breaks an invariant. Every key must
 * lie strictly between lo and hi (NULL: unbounded). Recursion stops at the
 * iterator depth, so even a degenerate tree cannot exhaust the stack. */
static int check_tree(const kj_entry *e, const kj_entry *lo, const kj_entry *hi,
                      int depth, struct check_acc *acc) {
  int hl, hr;
  if (!e)
    return 0;
  if (depth >= KJ_ITER_DEPTH)
    return -1;
  if (lo && kj_key_cmp(lo->data, lo->klen, e->data, e->klen) >= 0)
    return -1;
  if (hi && kj_key_cmp(e->data, e->klen, hi->data, hi->klen) >= 0)
    return -1;
  if (e->tomb > 1 || (e->tomb && e->vlen))
    return -1;
  acc->count++;
  acc->bytes += (uint64_t)e->klen + e->vlen;
  hl = check_tree(e->left, lo, e, depth + 1, acc);
  hr = check_tree(e->right, e, hi, depth + 1, acc);
  if (hl < 0 || hr < 0 || hl - hr > 1 || hr - hl > 1)
    return -1;
  if (e->height != (hl > hr ? hl : hr) + 1)
    return -1;
  return e->height;
}

int kj_map_check(const kj_map *m) {
  struct check_acc acc = {0, 0};
  if (m->nbulk || m->nstage)
    return -1; /* not sealed, or staged ops not applied */
  int h = check_tree(m->root, NULL, NULL, 0, &acc);
  if (h < 0 || acc.count != m->count || acc.bytes != m->bytes)
    return -1;
  if (m->hx) {
    /* The index holds exactly the tree's entries, each reachable from
     * its home slot, within the load. */
    uint64_t used = 0;
    for (size_t i = 0; i < m->hcap; i++)
      used += m->hx[i].e != NULL;
    if ((m->hcap & (m->hcap - 1)) || used != m->count ||
        used * HX_LOAD_DEN > (uint64_t)m->hcap * HX_LOAD_NUM)
      return -1;
    kj_iter it;
    kj_iter_seek(&it, m, NULL, 0);
    const kj_entry *e;
    while ((e = kj_iter_next(&it))) {
      uint64_t hh = hx_hash(m, e->data, e->klen);
      long i = hx_find(m, hh, e->data, e->klen);
      if (i < 0 || m->hx[i].e != e)
        return -1;
    }
  }
  return h;
}
