/** @file
 * The read path: a file's read state, and a read served from the chunk
 * cache through an iovec.  Knows nothing of FUSE requests: the adapter
 * (ops.c) replies with the iovec bkrfs_read_fill made, then calls
 * bkrfs_read_done.  Functions return 0 or a positive errno.
 */
#ifndef BKRFS_READ_H
#define BKRFS_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cache.h"
#include "chunk.h"
#include "inode.h"
#include "layout.h"
#include "views.h"

struct bkrfs;

/** Everything a read of a file needs, independent of the inode table
 *  (kept with the inode, freed when the kernel forgets it). */
struct bkrfs_file {
	bkrfs_snap *snap;          /**< referenced (for messages) */
	char *path;
	bkrfs_layout l;
	uint8_t *report;           /**< report.json: the whole blob */
	size_t report_len;
	uint64_t next_seq;         /**< where a sequential read would continue (UINT64_MAX: none yet) */
};

void bkrfs_file_free(struct bkrfs_file *f);

/**
 * The read state of file inode @p i, built on first use and kept with the
 * inode: there is nothing per open, so the kernel is told (ENOSYS from open,
 * FUSE_CAP_NO_OPEN_SUPPORT) to skip open and release entirely, and it then
 * keeps the page cache of every file across opens.
 */
int bkrfs_file_of(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file **out);

#define BKRFS_READ_SMALL 64 /**< pieces of a read before the arrays are allocated */

/** One chunk a read holds: its cache reference and where it starts. */
struct bkrfs_read_chunk {
	bkrfs_cache_entry *ent;
	const struct bkrfs_chunk *val;
	uint64_t start;            /**< logical offset of the chunk's first byte */
	bool to_end;               /**< the read covers it up to its end */
};

/** One read in progress (on the stack of the request). */
struct bkrfs_read {
	size_t niov, nchunks, cap;
	bool streaming;            /**< near where the previous read ended */
	struct iovec *iov;         /**< the reply */
	struct bkrfs_read_chunk *chunks;
	struct iovec iov_small[BKRFS_READ_SMALL];
	struct bkrfs_read_chunk chunks_small[BKRFS_READ_SMALL];
};

/**
 * Take the pieces of [@p off, @p off + @p size) of file @p f (of inode @p i)
 * into @p r: holes as zeros, data from the chunk cache (loaded and verified
 * when missing; a chunk that is missing or wrong is EIO, logged once per
 * chunk).  Then queue the prefetch the read calls for.  @p r must be passed
 * to bkrfs_read_done in every case.
 */
int bkrfs_read_fill(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file *f, uint64_t off, uint64_t size,
		    struct bkrfs_read *r);
/** After the reply (@p replied: the read succeeded): store the chunks of a
 *  random read into the page cache, drop those a streaming read finished,
 *  release the rest. */
void bkrfs_read_done(struct bkrfs *fs, bkrfs_ino ino, struct bkrfs_file *f, struct bkrfs_read *r, bool replied);

#endif
