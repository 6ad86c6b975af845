/** @file
 * The page-cache store: one thread that pushes whole decoded chunks into the
 * kernel's page cache of a file (FUSE notify_store) after a random read
 * needed part of one, so that later reads anywhere in that chunk never reach
 * the daemon.  A thread of its own, because the kernel may make it wait for
 * pages that reads in flight hold locked; so never called from a request
 * worker (see pagestore.c).
 */
#ifndef BKRFS_PAGESTORE_H
#define BKRFS_PAGESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "inode.h"

struct bkrfs;

int bkrfs_pagestore_start(struct bkrfs *fs);
/** Queue no more stores; close, join and stop as for prefetch.h. */
void bkrfs_pagestore_close(struct bkrfs *fs);
void bkrfs_pagestore_join(struct bkrfs *fs);
void bkrfs_pagestore_stop(struct bkrfs *fs);
/** Store @p buf (@p len bytes of the chunk held by @p ent) at file offset
 *  @p off of @p ino, once per chunk load and place: queued for the store thread (which
 *  takes its own reference), or with @p now from the calling thread, which
 *  must be a prefetch worker loading nothing (a look-ahead's small file:
 *  one hop less before the reader comes); an inode the kernel has not made
 *  yet is then handed to the store thread, which tries it again for a
 *  while.  Nothing once the mount stops. */
void bkrfs_pagestore_chunk(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, bkrfs_cache_entry *ent,
			   const uint8_t *buf, size_t len, bool now);

#endif
