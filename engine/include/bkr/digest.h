/** @file
 * The content digest of a file (a tree entry's `content`), in its two forms
 * (docs/format.md, "Content digests"):
 *
 * - plain: SHA-256 of the file's logical bytes;
 * - sparse (entries with holes, flagged in the tree): SHA-256 over the file
 *   size, the SHA-256 of its non-zero 4 KiB blocks and the SHA-256 of its
 *   runs of all-zero blocks, so a hole of any length costs O(1) and the
 *   digest depends only on the logical bytes (a dense copy and a sparse one
 *   of the same bytes agree).
 *
 * Bytes arrive through bkr_digest_update and known zeros (holes) through
 * bkr_digest_zeros, in file order.  bkr_digest_fd computes either form of an
 * open local file, skipping its holes with SEEK_DATA/SEEK_HOLE.
 *
 *     bkr_digest *d = bkr_digest_new(BKR_DIGEST_SPARSE);
 *     bkr_digest_update(d, buf, n); bkr_digest_zeros(d, hole_len); ...
 *     bkr_digest_final(d, &id);     // d is reset, ready for the next file
 *     bkr_digest_free(d);
 */
#ifndef BKR_DIGEST_H
#define BKR_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/chunker.h"
#include "bkr/hash.h"

typedef enum { BKR_DIGEST_PLAIN = 0, BKR_DIGEST_SPARSE = 1 } bkr_digest_form;

#define BKR_DIGEST_BLOCK 4096 /**< the sparse form's block size */

typedef struct bkr_digest bkr_digest;

bkr_digest *bkr_digest_new(bkr_digest_form form); /**< NULL on OOM */
void bkr_digest_free(bkr_digest *d);              /**< NULL is a no-op */
/** Start over in @p form. */
void bkr_digest_reset(bkr_digest *d, bkr_digest_form form);
void bkr_digest_update(bkr_digest *d, const void *data, size_t len);
/** bkr_digest_update, and the same bytes fed to @p h (a chunk's id): in
 * one pass in the plain form (bkr_hash_update2). */
void bkr_digest_update2(bkr_digest *d, bkr_hash_ctx *h, const void *data, size_t len);
/** bkr_chunker_scan of @p c over @p data, and the bytes it takes (up to the
 * cut, or all @p len) fed as bkr_digest_update2 feeds them: in the plain form
 * in the same pass as the scan (bkr_chunker_scan2).  Returns what
 * bkr_chunker_scan returns. */
size_t bkr_digest_scan2(bkr_digest *d, bkr_hash_ctx *h, bkr_chunker *c, const void *data, size_t len);
/** @p len zero bytes; O(1) per whole block in the sparse form. */
void bkr_digest_zeros(bkr_digest *d, uint64_t len);
/** The digest of everything fed since the last reset; then reset (same form). */
void bkr_digest_final(bkr_digest *d, bkr_id *out);

/**
 * The digest in @p form of the regular file open as @p fd, read from offset
 * 0 with pread (the file offset is unchanged); holes found by SEEK_DATA/
 * SEEK_HOLE are fed as zeros.  *size (may be NULL) gets the bytes covered.
 * A read error is BKR_EIO (errno-based) with a message.
 */
int bkr_digest_fd(int fd, bkr_digest_form form, bkr_id *out, uint64_t *size);

#endif
