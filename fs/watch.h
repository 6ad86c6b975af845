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

/** Bytes the repository takes on disk (recomputed by the watcher). */
uint64_t bkrfs_watch_repo_bytes(struct bkrfs *fs);

void bkrfs_runs_free(struct bkrfs_runs *r);

int bkrfs_prefetch_start(struct bkrfs *fs, int threads);
void bkrfs_prefetch_stop(struct bkrfs *fs);

/**
 * After a read of [@p off, @p end): when it started near where the previous
 * one ended (*next_seq), queue the chunks the next reads will need.
 */
void bkrfs_prefetch_after(struct bkrfs *fs, const bkrfs_layout *l, uint64_t off, uint64_t end,
			  uint64_t *next_seq);

#endif
