/** @file
 * How far the look-ahead has gone in the directories being read (watch.c).
 *
 * A reader's first read of a file asks for a look-ahead over the next files
 * of its directory.  Without memory, a `tar` of a directory of N files asks
 * N times for nearly the same window.  The horizon remembers, for the last
 * few directories, which entries a look-ahead has covered: a reader whose
 * next entry is still well inside that window asks for nothing, and a new
 * look-ahead continues where the last one stopped.
 */
#ifndef BKRFS_HORIZON_H
#define BKRFS_HORIZON_H

#include <pthread.h>
#include <stdint.h>

#include "bkr/hash.h"
#include "inode.h"

#define BKRFS_HORIZON_DIRS 16 /**< directories remembered (a ring) */

typedef struct bkrfs_horizon {
	pthread_mutex_t lock;
	struct bkrfs_horizon_dir {
		bkr_id tree;        /**< the directory's top tree */
		bkrfs_ino ino;      /**< and its inode */
		uint64_t from;      /**< the first entry looked at */
		uint64_t start;     /**< where the latest look-ahead began */
		uint64_t until;     /**< the first entry not looked at (yet) */
	} d[BKRFS_HORIZON_DIRS];    /**< guarded by lock */
	unsigned next;              /**< the ring's next slot; guarded by lock */
} bkrfs_horizon;

void bkrfs_horizon_init(bkrfs_horizon *h);
void bkrfs_horizon_destroy(bkrfs_horizon *h);

/**
 * A reader is about to need entry @p next of directory (@p tree, @p ino):
 * where a look-ahead of @p window entries should begin, or UINT64_MAX when
 * the window ahead of the reader still holds at least @p window / 2
 * entries.  A directory not remembered, or read again from before where
 * its reader began, starts afresh at @p next.  The claimed window counts
 * as covered until bkrfs_horizon_done() says how far the look-ahead went.
 */
uint64_t bkrfs_horizon_claim(bkrfs_horizon *h, const bkr_id *tree, bkrfs_ino ino, uint64_t next,
			     uint64_t window);

/** The look-ahead that began at @p start stopped before entry @p until
 *  (@p until = @p start: it never ran, and the next claim retries). */
void bkrfs_horizon_done(bkrfs_horizon *h, const bkr_id *tree, bkrfs_ino ino, uint64_t start, uint64_t until);

#endif
