/** @file
 * The logical layout of one backed-up file: data extents (its chunks
 * concatenated) interleaved with holes.  Pure arithmetic on the chunk and
 * hole lists of a tree entry: offset -> chunk by binary search over a
 * cumulative table, hole-aware, plus SEEK_DATA / SEEK_HOLE.  No I/O.
 */
#ifndef BKRFS_LAYOUT_H
#define BKRFS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/tree.h"

typedef struct {
	uint64_t size;              /**< logical file size */
	bkr_chunk_ref *chunks;      /**< owned */
	size_t nchunks;
	uint64_t *chunk_start;      /**< owned; nchunks + 1 cumulative data offsets */
	bkr_hole *holes;            /**< owned; sorted, non-overlapping */
	size_t nholes;
	uint64_t *hole_before;      /**< owned; nholes + 1: hole bytes before hole i */
} bkrfs_layout;

/**
 * Take ownership of @p chunks and @p holes (malloc'd, may be NULL when the
 * count is 0) and build the tables.  BKR_ECORRUPT when the holes overlap, are
 * unsorted, run past @p size, or data + holes != size.
 */
int bkrfs_layout_init(bkrfs_layout *l, uint64_t size, bkr_chunk_ref *chunks, size_t nchunks,
		      bkr_hole *holes, size_t nholes);
void bkrfs_layout_fini(bkrfs_layout *l);

/** One piece of a logical range: either a hole or part of one chunk. */
typedef struct {
	uint64_t len;
	int hole;          /**< 1: zeros */
	size_t chunk;      /**< data: chunk index */
	uint64_t chunk_off;/**< data: offset inside that chunk */
} bkrfs_extent;

/**
 * The first piece of [@p off, @p off + @p len) clipped to the file size:
 * *ext describes at most @p len bytes starting at @p off.  Returns 1 when a
 * piece was produced, 0 at or past EOF (or len 0).
 */
int bkrfs_layout_piece(const bkrfs_layout *l, uint64_t off, uint64_t len, bkrfs_extent *ext);

/** Index of the chunk holding data offset @p doff (binary search); nchunks when past the end. */
size_t bkrfs_layout_chunk_at(const bkrfs_layout *l, uint64_t doff);

/** lseek SEEK_DATA / SEEK_HOLE; -ENXIO when @p off is at or past EOF (or no data follows). */
int64_t bkrfs_layout_seek_data(const bkrfs_layout *l, uint64_t off);
int64_t bkrfs_layout_seek_hole(const bkrfs_layout *l, uint64_t off);

#endif
