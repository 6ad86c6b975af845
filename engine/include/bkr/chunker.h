/** @file
 * Content-defined chunking (FastCDC with normalized chunking).  Pure
 * algorithm: it takes buffers and does no I/O (casync's cachunker).
 *
 * Cut points depend only on the bytes and the parameters (min, avg, max and a
 * 64-bit seed that permutes the gear table, fixed per repository), so
 * inserting bytes near the start of a file changes only the chunks around the
 * insertion.
 */
#ifndef BKR_CHUNKER_H
#define BKR_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/format.h"
#include "bkr/hash.h"

typedef struct {
	uint32_t min;  /**< no cut before this many bytes (except at EOF) */
	uint32_t avg;  /**< a power of two, min < avg < max */
	uint32_t max;  /**< a cut is forced at this many bytes */
	uint64_t seed; /**< permutes the gear table; 0 = the default table */
} bkr_chunker_params;

#define BKR_CHUNKER_PARAMS_INIT { BKR_CHUNK_MIN, BKR_CHUNK_AVG, BKR_CHUNK_MAX, 0 }

typedef struct bkr_chunker bkr_chunker;

/** BKR_EINVAL when the parameters are not min < avg < max, avg a power of two, max <= 16 MiB. */
int bkr_chunker_new(bkr_chunker **out, const bkr_chunker_params *params);
void bkr_chunker_free(bkr_chunker *c);

/** Forget the bytes of the current chunk (start of a new file). */
void bkr_chunker_reset(bkr_chunker *c);

/**
 * Feed @p len bytes that continue the current chunk.  Returns the number of
 * bytes of @p data that complete the current chunk (a cut after them), or
 * (size_t)-1 when all @p len bytes belong to the chunk with no cut yet.  After
 * a cut the chunker is ready for the next chunk: call again with the rest.
 * At end of file whatever was fed since the last cut is the final chunk.
 */
size_t bkr_chunker_scan(bkr_chunker *c, const void *data, size_t len);

/**
 * bkr_chunker_scan, and the bytes it takes (up to the cut, or all @p len)
 * fed to both @p a and @p b as bkr_hash_update2 does, in the same pass over
 * them (bkr_hash_update2_roll): a file's content hash and the current chunk's
 * id, which is complete at a cut.  The cuts are those of bkr_chunker_scan.
 */
size_t bkr_chunker_scan2(bkr_chunker *c, const void *data, size_t len, bkr_hash_ctx *a, bkr_hash_ctx *b);

#endif
