/** @file
 * A file's content written into a repository as its bytes arrive: cut into
 * content-defined chunks with the repository's chunker parameters, each
 * chunk stored as a data blob through a bkr_writer, the whole hashed for the
 * tree entry's content id.  The bytes may come in pieces of any size, so a
 * file of any length is stored holding at most one chunk in memory.  A file
 * no longer than the minimum chunk is one blob whose id is the content hash,
 * as a backup stores it (so the two deduplicate).
 *
 *     bkr_content *c;
 *     bkr_content_new(&c, writer, repo);
 *     bkr_content_write(c, buf, n);   // as often as needed
 *     bkr_content_finish(c, &refs, &nrefs, &content, &size);
 *     // entry.chunks = refs ... ; free(refs); next file: write again
 *     bkr_content_free(c);
 */
#ifndef BKR_CONTENT_H
#define BKR_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/chunker.h"
#include "bkr/hash.h"
#include "bkr/repo.h"
#include "bkr/tree.h"

typedef struct bkr_content bkr_content;

/** The chunker parameters of @p repo (its config.json, defaults where unset). */
void bkr_content_params(const bkr_repo *repo, bkr_chunker_params *out);

/** A content writer putting blobs through @p w (borrowed) with @p repo's parameters. */
int bkr_content_new(bkr_content **out, bkr_writer *w, const bkr_repo *repo);
void bkr_content_free(bkr_content *c);

/** Feed the next @p len bytes of the current file; full chunks are stored. */
int bkr_content_write(bkr_content *c, const void *data, size_t len);

/**
 * End the current file: store its last chunk and hand out its chunk list
 * (*refs malloc'd, NULL when empty), its SHA-256 and length.  The writer is
 * then ready for the next file.
 */
int bkr_content_finish(bkr_content *c, bkr_chunk_ref **refs, size_t *nrefs, bkr_id *content,
		       uint64_t *size);

#endif
