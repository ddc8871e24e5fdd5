/*
 * src/engine/secmem.h - memory for plaintext rows, kept out of core dumps.
 *
 * Every engine buffer that holds decrypted rows (the tables' nodes, a
 * transaction's write set and undo, commit bodies, the journal's frame
 * buffer, recovery and snapshot buffers) comes from here instead of
 * malloc. The memory is mapped anonymously and marked MADV_DONTDUMP where
 * the OS has it (Linux), so a core dump of a process holding an open store
 * does not contain its rows; every block is wiped when freed.
 *
 * Blocks up to 80 KiB come from size classes carved out of 256 KiB slabs,
 * one mutex per class; a freed block goes back to
 * its class's free list, and slabs are never unmapped while the process
 * runs (like most allocators, the peak stays mapped). Larger blocks are
 * mappings of their own. A freed one is unmapped, unless one at least as
 * long was freed before: then it is wiped and kept (up to 8 of them and
 * 32 MiB) for the next large request it fits, as glibc's malloc keeps
 * memory a program shows it reuses. A process that opens a store once
 * keeps none; one that opens stores again and again does not fault in
 * fresh pages each time.
 *
 * Memory from kj_sec_* must be released with kj_sec_free and never with
 * free(); pointers are 16-byte aligned.
 */
#ifndef KJ_SECMEM_H
#define KJ_SECMEM_H

#include <stddef.h>

/* n bytes (n == 0 gives a valid minimal block), or NULL. */
void *kj_sec_alloc(size_t n);
/* n * size bytes, zeroed, or NULL (also on overflow). */
void *kj_sec_calloc(size_t n, size_t size);
/* Resize like realloc; the old block is wiped. NULL p allocates. On
 * failure NULL, and p is unchanged. */
void *kj_sec_realloc(void *p, size_t n);
/* Wipe and release; NULL is a no-op. */
void kj_sec_free(void *p);
/* kj_sec_alloc and kj_sec_free with the signatures of zstd's custom
 * allocator (ZSTD_customMem; opaque unused): zstd's windows and buffers
 * hold plaintext rows, so its contexts allocate from this memory too. */
void *kj_sec_zalloc(void *opaque, size_t n);
void kj_sec_zfree(void *opaque, void *p);

/* 1 when blocks are excluded from core dumps on this system, 0 when the
 * OS offers no way (the blocks are then ordinary anonymous memory). */
int kj_sec_dontdump(void);

/* Overwrite n bytes (at most 16 KiB) of the stack below the caller: a
 * library that passes row bytes through its own stack frames (libsodium's
 * ChaCha20 copies a message's last partial block to a buffer there, zstd
 * keeps work areas) leaves them where a core dump would keep them. Call it
 * right after such a call returns: this frame lies where the callee's did.
 * (The other source, the dynamic linker saving vector registers on the
 * stack when it binds a symbol lazily, is closed by linking with
 * -z now: configure.ac.) */
void kj_sec_burn_stack(size_t n);

#endif
