/** @file
 * The watcher: a thread that notices new and removed backups and runs
 * (and new index files), swaps in a new view or runs catalog, and
 * invalidates the top-level kernel caches that changed.  Also the building
 * of the view and the runs catalog on first use.
 */
#ifndef BKRFS_WATCH_H
#define BKRFS_WATCH_H

#include <stdbool.h>

#include "bkrfs.h"

/**
 * Build the view (@p runs false) or the runs catalog (@p runs true) when it
 * does not exist yet.  On success returns 0 with fs->view_lock read-held and
 * the requested object non-NULL.
 */
int bkrfs_watch_refresh(struct bkrfs *fs, bool runs);

void bkrfs_runs_free(struct bkrfs_runs *r);

/** The watcher thread's body (@p fs: the struct bkrfs); mount.c starts and
 *  stops it. */
void *bkrfs_watch_main(void *fs);

#endif
