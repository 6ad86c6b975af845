/** @file
 * The background threads of a mount: the watcher that notices new and
 * removed backups and runs (and invalidates the top-level kernel caches),
 * and the prefetch workers that fill the chunk cache ahead of sequential
 * readers.
 */
#ifndef BKRFS_WATCH_H
#define BKRFS_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "bkrfs.h"
#include "layout.h"

/**
 * Build the view (@p runs false) or the runs catalog (@p runs true) when it
 * does not exist yet.  On success returns 0 with fs->view_lock read-held and
 * the requested object non-NULL.
 */
int bkrfs_watch_refresh(struct bkrfs *fs, bool runs);

void bkrfs_runs_free(struct bkrfs_runs *r);

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

/**
 * The page-cache store: one thread that pushes whole decoded chunks into the
 * kernel's page cache of a file (FUSE notify_store) after a random read
 * needed part of one, so that later reads anywhere in that chunk never reach
 * the daemon.  A thread of its own, because the kernel may make it wait for
 * pages that reads in flight hold locked.
 */
int bkrfs_store_start(struct bkrfs *fs);
/** Queue no more stores; bkrfs_store_close, _join, _stop as for prefetch. */
void bkrfs_store_close(struct bkrfs *fs);
void bkrfs_store_join(struct bkrfs *fs);
void bkrfs_store_stop(struct bkrfs *fs);
/** Store @p buf (@p len bytes of the chunk held by @p ent) at file offset
 *  @p off of @p ino, once per chunk load: queued for the store thread (which
 *  takes its own reference), or with @p now from the calling thread, which
 *  must be a prefetch worker loading nothing (a look-ahead's small file:
 *  one hop less before the reader comes). */
void bkrfs_store_chunk(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, bkrfs_cache_entry *ent,
		       const uint8_t *buf, size_t len, bool now);

#endif
