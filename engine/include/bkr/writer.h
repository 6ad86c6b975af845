/** @file
 * Writing blobs into a repository (engine/writer.c): any number of threads
 * put blobs; a commit publishes the packs, then one index file naming them.
 */
#ifndef BKR_WRITER_H
#define BKR_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"

typedef struct bkr_writer bkr_writer;

int bkr_writer_new(bkr_writer **out, bkr_repo *r);

/**
 * Store a blob unless the repository or this writer already has it.
 * Compression happens in the calling thread; many threads may call at once.
 * *is_new (optional) says whether it was stored now; *stored (optional)
 * gets the bytes it took in the pack.
 */
int bkr_writer_put(bkr_writer *w, bkr_blob_type type, const bkr_id *id,
		   const void *data, size_t len, bool *is_new, uint32_t *stored);

/** The same, computing the id (SHA-256) for the caller. */
int bkr_writer_put_hash(bkr_writer *w, bkr_blob_type type, const void *data, size_t len,
			bkr_id *id, bool *is_new);

/** Finish open packs and publish one index file for all blobs written. */
int bkr_writer_commit(bkr_writer *w);

/** Drop the writer; an uncommitted writer leaves at most unreferenced packs. */
void bkr_writer_free(bkr_writer *w);

/** Emit callback for bkr_tree_builder_finish: @p ctx is a bkr_writer. */
int bkr_writer_emit_tree(void *w, const bkr_id *id, const uint8_t *blob, size_t len);

#endif
