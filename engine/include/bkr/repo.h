/** @file
 * An open repository: its configuration (repo_config.c) and its blobs — the
 * index and the packs in every tier and trash (repo.c) — all read through
 * the storage layer (bkr/store.h).  Writing blobs (bkr/writer.h), the
 * catalog of manifests and records (bkr/catalog.h) and the repository lock
 * (bkr/lock.h) are modules of their own over the same bkr_repo.
 *
 * Reading is thread-safe and takes no lock (mounts run beside backups).
 * Writing goes through a bkr_writer: any number of threads may put blobs; a
 * commit publishes packs, then the index; the caller then publishes the
 * manifest (docs/design.md "Write protocol and crash safety").
 */
#ifndef BKR_REPO_H
#define BKR_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/crypto.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/index.h"
#include "bkr/manifest.h"
#include "bkr/pack.h"
#include "bkr/store.h"
#include "bkr/tree.h"

typedef struct bkr_repo bkr_repo;

typedef struct {
	int version;
	const char *compression; /**< "zstd" (NULL: the default), "zlib" or "none" */
	int level;               /**< 1..9; 0: the codec's default (zlib 1, zstd 2) */
	uint32_t chunk_min, chunk_avg, chunk_max; /**< 0 = defaults */
	uint32_t pack_size;      /**< 0 = default */
	const char *encryption;  /**< "none" (NULL: the default) or "aes-256-gcm" */
} bkr_repo_init_options;
#define BKR_REPO_INIT_OPTIONS_VERSION 1
#define BKR_REPO_INIT_OPTIONS_INIT { BKR_REPO_INIT_OPTIONS_VERSION, NULL, 0, 0, 0, 0, 0, NULL }

/**
 * Create a new repository at @p path (an absent or empty directory).  An
 * encrypted one gets fresh master keys and one key file under the new
 * passphrase (bkr_key_new_passphrase: docs/security.md).
 */
int bkr_repo_init(const char *path, const bkr_repo_init_options *opts);

/** Repository-wide settings read from config.json. */
typedef struct {
	char id[33];
	int level;               /**< 0 = no compression */
	int codec;               /**< bkr_codec of new blobs (BKR_CODEC_NONE when level is 0) */
	uint32_t chunk_min, chunk_avg, chunk_max;
	uint64_t chunk_seed;
	uint32_t pack_size;
	bool read_only;          /**< an unknown ro_compat feature was seen */
	bool encrypted;          /**< "encryption":"aes-256-gcm" (chunk_seed is then the secret one) */
} bkr_repo_config;

/*
 * BKR_REPO_CACHED: a remote repository (s3://) is read through the disk cache
 * (bkr/store_cache.h, under bkr_store_cache_default_dir): index files, tree
 * packs and manifests are fetched whole once and kept, so an incremental
 * backup reads its parent's trees from local disk.  When the cache cannot be
 * had (no HOME, or a mount of the same repository holds it) the repository
 * is opened without it.  Not for verify: it must read the stored bytes.
 */
/*
 * BKR_REPO_RETAIN_INDEX (the mount): an index that a reload replaces, when
 * the new one dropped some of its files (a prune or repair superseded them),
 * stays in use for lookups the new one misses, for the trash's grace period
 * (BKR_TRASH_GRACE_S; at most BKR_REPO_RETAINED_MAX of them): a file held
 * open in a deleted backup keeps reading its packs from trash/ after prune.
 * Only for a reader that never writes: a writer must not deduplicate
 * against a blob that lies in the trash.
 */
/*
 * BKR_REPO_PASSPHRASE (bkr key add, remove, passwd, unlock): an encrypted
 * repository's keys are opened with the passphrase, never the key cache
 * (bkr/keycache.h): changing who holds a key, or caching one, takes the
 * passphrase.  The key derived from it is kept for bkr_repo_key_cache_put.
 */
enum { BKR_REPO_RDONLY = 1, BKR_REPO_CACHED = 2, BKR_REPO_RETAIN_INDEX = 4, BKR_REPO_PASSPHRASE = 8 };
#define BKR_REPO_RETAINED_MAX 8

/**
 * Open @p path: check config.json (version, features, checksum), open an
 * encrypted repository's keys with the key cache's entry
 * (bkr_key_unlock_cached), else the passphrase (bkr_key_passphrase), and
 * load the index.  Errors: BKR_ENOTFOUND (no repository there),
 * BKR_EUNSUPPORTED (newer version or incompat feature), BKR_ECORRUPT, BKR_EKEY
 * (wrong passphrase).
 */
int bkr_repo_open(bkr_repo **out, const char *path, int flags);

/**
 * Open the repository held by @p store (e.g. a caching store over a remote
 * one, bkr/store_cache.h), as bkr_repo_open does.  Takes @p store: it is
 * freed with the repository, or at once when this fails.
 */
int bkr_repo_open_store(bkr_repo **out, bkr_store *store, int flags);
void bkr_repo_free(bkr_repo *r);

/**
 * The id of the repository at @p path and whether it is encrypted, from its
 * config.json alone (checked as bkr_repo_open checks it): no key is opened,
 * no index loaded (bkr key lock).
 */
int bkr_repo_identify(const char *path, uint8_t id[16], bool *encrypted);

/**
 * Hold the key that opened @p r in the key cache for @p seconds
 * (bkr_keycache_put; *@p expires gets the expiry, unix seconds).
 * BKR_EINVAL unless @p r is encrypted and was opened with
 * BKR_REPO_PASSPHRASE.
 */
int bkr_repo_key_cache_put(bkr_repo *r, int64_t seconds, int64_t *expires);

/** Where the repository is: its directory, or its store's location (a URL). */
const char *bkr_repo_path(const bkr_repo *r);

/** The store holding the repository (owned by it): objects go in and come out in plaintext. */
bkr_store *bkr_repo_store(const bkr_repo *r);

/** The repository's keys (NULL for a plain repository): seal and open blobs with them. */
const bkr_crypto *bkr_repo_crypto(const bkr_repo *r);

/** The key file that opened an encrypted repository ("" for a plain one). */
const char *bkr_repo_key_id(const bkr_repo *r);

/**
 * A store of its own on the repository's directory, sealing like the
 * repository's (for a module that outlives or runs beside its handle).
 */
int bkr_repo_store_new(bkr_repo *r, bkr_store **out);

/**
 * The store at @p location (bkr_store_open with @p flags) as this repository
 * sees it: sealing like the repository's store when it is encrypted (a
 * tier: its tier.json is sealed; its packs are sealed blob by blob anyway).
 */
int bkr_repo_store_open(bkr_repo *r, const char *location, int flags, bkr_store **out);

/**
 * The id of a blob with this plaintext in this repository: SHA-256, or
 * HMAC-SHA-256 under the MAC key of an encrypted one.
 */
void bkr_repo_blob_id(const bkr_repo *r, const void *data, size_t len, bkr_id *out);
/** bkr_repo_blob_id in pieces: start @p h, feed it the blob's bytes, take
 * the id (bkr_crypto_blob_id_start, bkr_crypto_blob_id_end). */
void bkr_repo_blob_id_start(const bkr_repo *r, bkr_hash_ctx *h);
void bkr_repo_blob_id_end(const bkr_repo *r, bkr_hash_ctx *h, bkr_id *out);
const bkr_repo_config *bkr_repo_get_config(const bkr_repo *r);

/**
 * The tiers (bkr/tier.h): bkr_repo_open loads the ones the repository
 * recorded; a reader that misses a pack reloads them (a migration may have
 * recorded a new one since).  Places are numbered: 0 is the repository
 * (hot), 1..bkr_repo_tier_count() the tiers in search order.
 */
size_t bkr_repo_tier_count(bkr_repo *r);

/** Place @p i's store; *tier (optional) its name, *recorded (optional) whether a record names it. */
bkr_store *bkr_repo_tier(bkr_repo *r, size_t i, const char **tier, bool *recorded);

/**
 * Where a pack is searched, for a message: "REPO, tier NAME at LOCATION, ..."
 * (the repository, then each tier in search order), whole.  Malloc'd (the
 * caller frees it); NULL out of memory.
 */
char *bkr_repo_places(bkr_repo *r);

/**
 * Search @p location too (a configured tier not recorded yet; @p recorded
 * when the caller just recorded it).  A location already searched is
 * not added again (it becomes recorded when @p recorded).  An absent
 * directory is an empty tier.  Thread-safe.
 */
int bkr_repo_add_tier(bkr_repo *r, const char *tier, const char *location, bool recorded);

/** Re-read the tier records and search the locations new to @p r.  Thread-safe. */
int bkr_repo_reload_tiers(bkr_repo *r);

/**
 * Index files left out because they are damaged (a corrupt or unknown index
 * file does not make the repository unusable: blobs it named are missing
 * until it is rebuilt from the packs' footers).  @p cb gets one line
 * for each, under the index lock.
 */
void bkr_repo_index_warnings(bkr_repo *r, void (*cb)(void *ctx, const char *message), void *ctx);

/**
 * NULL, or one line saying that config.json is damaged and its copy
 * (config.copy.json, written beside it at init) was read instead.
 */
const char *bkr_repo_config_warning(const bkr_repo *r);

/**
 * The configuration file that was read, for messages about what it says:
 * "config.json", or its copy when bkr_repo_config_warning is set (a static
 * string).
 */
const char *bkr_repo_config_said(const bkr_repo *r);

/**
 * Make config.json and its copy config.copy.json whole again (bkr repair):
 * an intact config.json is copied over a damaged, missing or different copy;
 * an intact copy over a damaged or missing config.json.  *fixed names the
 * object rewritten (or that would be, with @p dry_run), else NULL.  Both
 * damaged: BKR_ECORRUPT.  The caller holds the exclusive lock.
 */
int bkr_repo_config_heal(bkr_repo *r, bool dry_run, const char **fixed);

/** Pick up index files written since open (mount watcher). Thread-safe. */
int bkr_repo_reload_index(bkr_repo *r);

/**
 * bkr_repo_reload_index only when the index files changed since the index
 * was loaded (bkr_index_unchanged: one listing), as after taking the lock
 * a backup dedups against what a prune left: the index is read once, not
 * twice, when nothing ran in between.  Thread-safe.
 */
int bkr_repo_refresh_index(bkr_repo *r);

/** Look up a blob in the index.  BKR_ENOTFOUND when absent. */
int bkr_repo_lookup(bkr_repo *r, const bkr_id *id, bkr_index_entry *out);
/** Entry @p nth of every entry naming blob @p id, in the order readers try them (0: bkr_repo_lookup's);
 *  BKR_ENOTFOUND past the last (its message the index's, naming the blob but not the repository, as
 *  bkr_repo_lookup's does). */
int bkr_repo_lookup_nth(bkr_repo *r, const bkr_id *id, size_t nth, bkr_index_entry *out);

/**
 * Read, decompress and verify blob @p id.  *out is malloc'd (*len bytes).
 * Every index entry naming the blob is tried in turn (newest index file
 * first) while a copy's pack is missing or the copy is damaged.
 * BKR_ENOTFOUND (a data blob not indexed / its pack missing everywhere),
 * BKR_ECORRUPT (hash or format mismatch, a tree not found: trees never
 * leave the repository; the message names blob and pack).  Thread-safe.
 */
int bkr_repo_read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len);

/**
 * bkr_repo_read_blob of a data blob without comparing the plaintext's hash
 * with @p id (BKR_PACK_UNHASHED; trees are always hashed): only for a
 * caller that checks the bytes another way before it uses any of them
 * (restore: a file's whole-content hash, before the file gets its name).
 * Thread-safe.
 */
int bkr_repo_read_data_unhashed(bkr_repo *r, const bkr_id *id, uint8_t **out, size_t *len);

/**
 * Loader for bkr_dir_open: @p ctx is the bkr_repo.  A small tree pack is
 * read ahead whole (a walk of one backup reads much of it).  A tree that is
 * not found (not in the index, its pack gone) is BKR_ECORRUPT naming the
 * blob: a backup or a directory names it, and trees never leave the
 * repository, so BKR_ENOTFOUND stays "no such path" for the readers.
 */
int bkr_repo_load_tree(void *repo, const bkr_id *id, bkr_tree **out);

/**
 * The same, without reading the rest of its pack ahead: for walks that take
 * one or two trees from each of many packs (the history of one path), where
 * a whole pack per tree would read the repository's every tree pack.
 */
int bkr_repo_load_tree_only(void *repo, const bkr_id *id, bkr_tree **out);

/**
 * Advice: blob @p id will be read soon (bkr_store_advise of its bytes in
 * its pack, where the pack was last found, else the hot store), with the
 * @p before bytes that precede it (trees are written children first: a
 * tree's last subdirectory lies just before it).  Issued for many blobs
 * before reading them, the reads reach the device together.  0, or
 * BKR_ENOTFOUND when the blob is not indexed (nothing advised).
 */
int bkr_repo_advise_blob(bkr_repo *r, const bkr_id *id, uint32_t before);

/** The ranges of packs that a run of bkr_repo_advise_blob_ahead calls advised last (zeroed: none). */
#define BKR_REPO_ADVICE_RANGES 8
typedef struct {
	bkr_pack_id pack;
	uint64_t lo, hi;    /**< bytes [lo, hi) of it; hi 0: none */
} bkr_repo_advice_range;
typedef struct {
	bkr_repo_advice_range r[BKR_REPO_ADVICE_RANGES];
	size_t next;        /**< the one replaced next */
} bkr_repo_advice;

/**
 * Advice for a reader that takes blobs in about the order they lie in their
 * packs (a restore): blob @p id and the @p ahead bytes after it in one
 * request, which @p w remembers; a blob that a caller's earlier request
 * covered (the same pack, inside @p w) costs no request, one that it covers
 * in part asks for the rest.  Many small blobs, one after another in a pack,
 * reach the device as a few big reads instead of one request each.  @p w is
 * the caller's (one per thread).  0, or BKR_ENOTFOUND when the blob is not
 * indexed (nothing advised, @p w unchanged).
 */
int bkr_repo_advise_blob_ahead(bkr_repo *r, const bkr_id *id, uint32_t ahead, bkr_repo_advice *w);

/** Locate a pack's file in hot, the tiers, then trash (the repository's, the tiers'); BKR_ENOTFOUND
 *  when none holds it, another code when a place could not answer (an I/O error is never "missing"). */
int bkr_repo_pack_path(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, char *out, size_t cap);
/** Whether a pack is in any of those places: 0; BKR_ENOTFOUND when none holds it (the message
 *  names a tier that is missing); another code when a place could not answer. */
int bkr_repo_pack_find(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type);
/**
 * A pack that a listing or a first search missed: a tier migration may have
 * moved it since, to a tier recorded after the repository was opened.  The
 * tier records are read again (once per caller's run: *@p reloaded says
 * whether it was done), then every place is searched by name twice (a move
 * is a copy, then a delete: a pack is always somewhere, but one look at each
 * place after another can pass it by once).  @p strict as for
 * bkr_repo_pack_find (else as bkr_repo_pack_path); @p out, when not NULL,
 * gets its path as bkr_repo_pack_path gives it.
 */
int bkr_repo_pack_seek(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, bool strict, bool *reloaded,
		       char *out, size_t cap);

/**
 * Every pack file in the hot tier and the tiers (not trash), and every
 * unfinished ".tmp-*" file in the repository and the tiers: @p cb gets the pack id (NULL for a temporary), the blob
 * type its folder holds, and its path.  A return <0 from @p cb stops and
 * is returned.
 */
int bkr_repo_foreach_pack(bkr_repo *r,
			  int (*cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path),
			  void *ctx);

/** The same with the place (0 = hot) and the object's name in that place's store. */
int bkr_repo_foreach_pack_in(bkr_repo *r,
			     int (*cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place,
				       const char *name, const char *path),
			     void *ctx);

/**
 * The store (the repository's or a tier's) and the object name of @p path,
 * a path bkr_repo_foreach_pack or bkr_repo_pack_path gave: how it is read
 * wherever it lies (a directory or a bucket).  BKR_ENOTFOUND when @p path is
 * in none of them.  *name points into @p path.
 */
int bkr_repo_locate(bkr_repo *r, const char *path, bkr_store **s, const char **name);

/**
 * The footer of pack @p id at @p path (a path bkr_repo_foreach_pack or
 * bkr_repo_pack_path gave), read with ranged gets of the store that holds
 * it; bkr_pack_read_footer's errors, or BKR_ENOTFOUND naming @p path when
 * it is in none of the repository's stores.  The pack was listed: a store
 * answering "no such object" is asked again twice, then the answer is BKR_EIO
 * "listed, but not readable" or "listed, but gone" (BKR_STORE_LISTED), never damage.
 */
int bkr_repo_pack_footer(bkr_repo *r, const bkr_pack_id *id, const char *path, bkr_pack_entry **entries,
			 size_t *n);

/**
 * Blob @p e (decoded and checked, e->raw_len bytes into @p out) from the
 * pack at @p path, through the store that holds it ("no such object" as in
 * bkr_repo_pack_footer).
 */
int bkr_repo_pack_blob(bkr_repo *r, const char *path, const bkr_index_entry *e, void *out);

/** Every index entry (under the index read lock: @p cb must not reload). */
int bkr_repo_foreach_blob(bkr_repo *r, int (*cb)(const bkr_index_entry *e, void *ctx), void *ctx);

/** bkr_index_files_holding over the repository's index (not the retained ones). */
size_t bkr_repo_index_files_holding(bkr_repo *r, const bkr_index_entry *e, bkr_id *out, size_t cap);

/* The writer, the catalog and the lock have their own headers (and modules);
 * they are included here so that a user of repo.h sees all of it. */
#include "bkr/catalog.h"
#include "bkr/lock.h"
#include "bkr/writer.h"

#endif
