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

/**
 * The most descriptors a writer holds open at once: the pack being filled of
 * each blob type, the full ones waiting for its publisher thread and the one
 * it publishes, and the directory that publish syncs.  A command that counts
 * what it holds open (a backup's queue) counts these.
 */
#define BKR_WRITER_FDS 6

int bkr_writer_new(bkr_writer **out, bkr_repo *r);

/**
 * Store a blob unless the repository or this writer already has it.
 * Compression happens in the calling thread; many threads may call at once.
 * *is_new (optional) says whether it was stored now; *stored (optional)
 * gets the bytes it took in the pack.
 */
int bkr_writer_put(bkr_writer *w, bkr_blob_type type, const bkr_id *id,
		   const void *data, size_t len, bool *is_new, uint32_t *stored);

/**
 * bkr_writer_put of a blob the repository's index may name already, whose
 * copy there is damaged (the caller read it and it failed): stored again
 * all the same, once per writer, in a new pack that the commit's index file
 * names; readers take the newest index file's copy first (repo.h), and
 * `bkr repair` drops the damaged entry.
 */
int bkr_writer_put_anew(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, bool *is_new,
			uint32_t *stored);

/**
 * bkr_writer_put at compression level @p level (of the repository's codec;
 * 0: the repository's level).  The level changes how hard the codec looks
 * for matches, never what a reader sees: the blob decodes to the same bytes.
 */
int bkr_writer_put_level(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, int level,
			 bool *is_new, uint32_t *stored);

/** The same, computing the id (the repository's: bkr_repo_blob_id) for the caller. */
int bkr_writer_put_hash(bkr_writer *w, bkr_blob_type type, const void *data, size_t len,
			bkr_id *id, bool *is_new);

/** The id of a blob with this plaintext in the writer's repository (bkr_repo_blob_id). */
void bkr_writer_blob_id(const bkr_writer *w, const void *data, size_t len, bkr_id *id);
/** bkr_writer_blob_id in pieces: start @p h, feed it the blob's bytes, take
 * the id (bkr_repo_blob_id_start, bkr_repo_blob_id_end). */
void bkr_writer_blob_id_start(const bkr_writer *w, bkr_hash_ctx *h);
void bkr_writer_blob_id_end(const bkr_writer *w, bkr_hash_ctx *h, bkr_id *id);

/** Whether blob ids are keyed (an encrypted repository): else an id is the SHA-256. */
bool bkr_writer_keyed(const bkr_writer *w);

/** Finish open packs and publish one index file for all blobs written. */
int bkr_writer_commit(bkr_writer *w);

/** Drop the writer; an uncommitted writer leaves at most unreferenced packs. */
void bkr_writer_free(bkr_writer *w);

/** Emit callback for bkr_tree_builder_finish: @p ctx is a bkr_writer (sets the repository's id). */
int bkr_writer_emit_tree(void *w, bkr_id *id, const uint8_t *blob, size_t len);

#endif
