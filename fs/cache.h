/** @file
 * A bounded LRU cache keyed by bkr_id with single-flight loading: when
 * several threads want the same absent key, one loads it (without any cache
 * lock held) and the others wait on a condition variable.  bkrfs uses one for
 * verified, decompressed data chunks (cost = bytes) and one for opened
 * directory trees (cost = 1 per directory).  Failures are not cached.
 */
#ifndef BKRFS_CACHE_H
#define BKRFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/hash.h"

/**
 * Produce the value of @p key: *val and its *cost.  Return 0 or a BKR_E*
 * code (set in the loading thread's error slot; bkrfs_cache_get copies it to waiters).
 */
typedef int (*bkrfs_cache_load_fn)(void *ctx, const bkr_id *key, void **val, size_t *cost);
typedef void (*bkrfs_cache_free_fn)(void *val);

typedef struct bkrfs_cache bkrfs_cache;
typedef struct bkrfs_cache_entry bkrfs_cache_entry;

/** @p max_cost bounds the total cost of unreferenced + referenced values (soft when all are in use). */
int bkrfs_cache_new(bkrfs_cache **out, size_t max_cost, bkrfs_cache_load_fn load,
		    bkrfs_cache_free_fn free_val, void *ctx);
void bkrfs_cache_free(bkrfs_cache *c);

/**
 * A reference to the value of @p key, loading it when absent.  *val is
 * owned by the cache and valid until bkrfs_cache_release(*ent).  On failure
 * the loader's code is returned (to every waiter, with the loader's message
 * in its error slot) and nothing is cached.
 */
int bkrfs_cache_get(bkrfs_cache *c, const bkr_id *key, bkrfs_cache_entry **ent, void **val);

/** The same, loading an absent value with @p load (@p ctx) instead of the cache's loader. */
int bkrfs_cache_get_by(bkrfs_cache *c, const bkr_id *key, bkrfs_cache_load_fn load, void *ctx,
		       bkrfs_cache_entry **ent, void **val);
void bkrfs_cache_release(bkrfs_cache *c, bkrfs_cache_entry *ent);

/**
 * Release and forget: the entry is freed as soon as nobody holds it (a
 * streaming reader is done with a chunk; the kernel's page cache has it, and
 * its buffer is reused for the next one instead of growing the heap).
 */
void bkrfs_cache_release_drop(bkrfs_cache *c, bkrfs_cache_entry *ent);

/** How many places an entry's marks remember. */
#define BKRFS_CACHE_MARKS 4
/**
 * Mark the entry for place (@p a, @p b) (the page-cache store: an inode and
 * the value's offset in that file, so that each file holding a shared chunk
 * gets it); returns whether that place was marked already.  Marks go with
 * the entry (a fresh load has none); it remembers its last
 * BKRFS_CACHE_MARKS places, an older one is then forgotten.
 */
bool bkrfs_cache_mark(bkrfs_cache *c, bkrfs_cache_entry *ent, uint64_t a, uint64_t b);

/** One more reference to a held entry (released with bkrfs_cache_release). */
void bkrfs_cache_ref(bkrfs_cache *c, bkrfs_cache_entry *ent);

/** true when @p key is cached or being loaded (prefetch skips it). */
bool bkrfs_cache_contains(bkrfs_cache *c, const bkr_id *key);

typedef struct {
	size_t entries, cost, max_cost;
	uint64_t hits, misses, loads, evictions;
} bkrfs_cache_stats;
void bkrfs_cache_get_stats(bkrfs_cache *c, bkrfs_cache_stats *out);

#endif
