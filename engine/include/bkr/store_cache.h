/** @file
 * A caching store for readers of a remote repository (engine/store_cache.c):
 * a bkr_store that wraps another one (any implementation: S3, a slow network
 * directory) and keeps what it reads on local disk, under a cache directory
 * of its own per repository.
 *
 * - Whole small objects — index files, tree packs, manifests (index/,
 *   tree/, backups/, runs/) — are fetched whole once and kept: objects are
 *   immutable once published, so a cached copy stays valid while the object
 *   exists (readers only ask for names a fresh listing gave them).
 * - Data packs are read with ranged gets in blocks of BKR_STORE_CACHE_BLOCK
 *   bytes, a few blocks per request, kept in the same bounded cache.
 * - The cache is bounded (least recently used files go first) and
 *   crash-safe: every cache file ends with a trailer holding its length and
 *   SHA-256, written to a temporary and renamed; a torn, truncated or
 *   corrupted file is detected (when first used by a process) and fetched
 *   again, never served.  Blob checks stay above the store (every blob is
 *   re-hashed by its reader), so bytes damaged after that first check give
 *   an error, never wrong data.
 * - A whole object this process writes (put, or the upload of a tree
 *   pack) is kept as it is sent: the next backup reads its parent's index
 *   and trees without a request.  The size of a whole object is its
 *   cached copy's.
 * - Listings, config.json, locks, data packs' writes and every other stat
 *   go to the wrapped store unchanged: nothing that can change is cached.
 *
 * One process uses a repository's cache directory at a time (an flock(2)
 * on its "lock" file); a second one gets BKR_ELOCKED naming it.  Opening
 * one removes the directories beside it that no process holds and none used
 * for BKR_STORE_CACHE_UNUSED_DAYS days, or of a key no longer made.
 */
#ifndef BKR_STORE_CACHE_H
#define BKR_STORE_CACHE_H

#include "bkr/store.h"

#include <stddef.h>
#include <stdint.h>

/** Bytes of a data pack per cache block. */
#define BKR_STORE_CACHE_BLOCK (1u << 20)
/** Default size bound of a repository's cache (bkrfs --cache-max). */
#define BKR_STORE_CACHE_MAX_DEFAULT (2048ull << 20)
/** Another repository's cache directory no process used for this many days is removed by an open. */
#define BKR_STORE_CACHE_UNUSED_DAYS 30

/** What a caching store has done since it was opened. */
typedef struct bkr_store_cache_stats {
	uint64_t requests;     /**< calls made to the wrapped store for reads (get, ranged get, stat) */
	uint64_t fetched;      /**< bytes those calls returned */
	uint64_t hits;         /**< reads served from the cache without a request */
	uint64_t refetched;    /**< cache files found torn or damaged, dropped and fetched again */
	uint64_t evicted;      /**< cache files removed to stay under the bound */
	uint64_t bytes;        /**< bytes in the cache now (files, trailers included) */
	uint64_t files;        /**< files in the cache now */
} bkr_store_cache_stats;

/**
 * A store reading @p inner through a cache under "<dir>/<key>/", where key
 * names the repository (from bkr_store_identity(@p inner): an S3 store's
 * endpoint is part of it, and is in the directory's "location" file), of at most
 * @p max_bytes (0: BKR_STORE_CACHE_MAX_DEFAULT).  Takes @p inner: it is
 * freed with the caching store, or at once when this fails.  Files left by
 * an earlier process are kept (and checked when first used); the other
 * directories under @p dir unused for BKR_STORE_CACHE_UNUSED_DAYS days (or
 * of an old key), and not in use, are removed.
 */
int bkr_store_cache_open(bkr_store **out, bkr_store *inner, const char *dir, uint64_t max_bytes);

/** true when @p s is a caching store. */
bool bkr_store_is_cache(const bkr_store *s);

/** The counters of caching store @p s (zeroes for any other store). */
void bkr_store_cache_stats_get(bkr_store *s, bkr_store_cache_stats *out);

/** The repository's own cache directory ("<dir>/<key>") of caching store @p s, or NULL. */
const char *bkr_store_cache_root(const bkr_store *s);

/**
 * The default cache directory into @p out: bkr_host_cache_dir("bkrfs")
 * ("$XDG_CACHE_HOME/bkrfs", else "$HOME/.cache/bkrfs", relative values
 * ignored); BKR_ENOTFOUND when neither variable is an absolute path.
 */
int bkr_store_cache_default_dir(char *out, size_t cap);

#endif
