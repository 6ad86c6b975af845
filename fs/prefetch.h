/** @file
 * Prefetch and look-ahead: four workers decode chunks before a reader asks
 * for them, so that decoding and disk waits overlap with the reader.
 * Within a file, a streaming reader's next chunks; across files, when a
 * reader begins a file, the next files of its directory (and the trees of
 * the next subdirectories), in name order.  A one-chunk file whose inode
 * the kernel has goes whole into its page cache (pagestore.h).  Knows
 * nothing of FUSE requests.
 */
#ifndef BKRFS_PREFETCH_H
#define BKRFS_PREFETCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bkr/format.h"
#include "inode.h"
#include "layout.h"

struct bkrfs;

#define BKRFS_EXPECT_MAX 64

/** Subdirectories a reader's look-ahead passed: a walker (tar, cp -r) lists
 *  them next, and their own look-ahead then starts at once. */
struct bkrfs_expect {
	pthread_mutex_t lock;
	bkr_id id[BKRFS_EXPECT_MAX];   /**< ring of top tree ids; guarded by lock */
	unsigned next;
};

int bkrfs_prefetch_start(struct bkrfs *fs, int threads);
/** Queue no more prefetch jobs (the workers go on with the queued ones). */
void bkrfs_prefetch_close(struct bkrfs *fs);
/** Close, and wait for the workers to finish the job each is doing. */
void bkrfs_prefetch_join(struct bkrfs *fs);
/** Join, drop the jobs left, free the queue. */
void bkrfs_prefetch_stop(struct bkrfs *fs);

/**
 * After a read of [@p off, @p end): when it started near where the previous
 * one ended (*next_seq), queue the chunks the next reads will need.
 * (UINT64_MAX before the first read: then only a read from 0 streams).
 * Returns whether the read was streaming in that sense.
 */
bool bkrfs_prefetch_after(struct bkrfs *fs, const bkrfs_layout *l, uint64_t off, uint64_t end,
			  uint64_t *next_seq);

/**
 * A reader began entry @p next - 1 of the directory whose top tree is
 * @p dir_tree (inode @p dir_ino): queue the chunks of the files after it (and
 * the trees of the directories after it), bounded in files and bytes; the
 * content of small files the kernel knows goes into their page cache.
 */
void bkrfs_prefetch_dir(struct bkrfs *fs, const bkr_id *dir_tree, uint64_t next, bkrfs_ino dir_ino);

/**
 * A directory (top tree @p dir_tree, inode @p dir_ino) is being listed from
 * the start: when a look-ahead saw it coming (a reader walking its parent's
 * files, as tar and cp -r do), queue the look-ahead of its first files now.
 * Listing alone (ls -R) triggers nothing.
 */
void bkrfs_prefetch_walk(struct bkrfs *fs, const bkr_id *dir_tree, bkrfs_ino dir_ino);

#endif
