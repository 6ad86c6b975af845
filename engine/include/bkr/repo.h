/** @file
 * An open repository: its configuration, the blob store (index + packs in
 * every tier + trash), manifests and records, and locks.
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

#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/index.h"
#include "bkr/manifest.h"
#include "bkr/tree.h"

typedef struct bkr_repo bkr_repo;

typedef struct {
	int version;
	const char *compression; /**< "zlib" (default) or "none" */
	int level;               /**< 1..9, default 1 */
	uint32_t chunk_min, chunk_avg, chunk_max; /**< 0 = defaults */
	uint32_t pack_size;      /**< 0 = default */
} bkr_repo_init_options;
#define BKR_REPO_INIT_OPTIONS_VERSION 1
#define BKR_REPO_INIT_OPTIONS_INIT { BKR_REPO_INIT_OPTIONS_VERSION, "zlib", 1, 0, 0, 0, 0 }

/** Create a new repository at @p path (an absent or empty directory). */
int bkr_repo_init(const char *path, const bkr_repo_init_options *opts);

/** Repository-wide settings read from config.json. */
typedef struct {
	char id[33];
	int level;               /**< 0 = no compression */
	uint32_t chunk_min, chunk_avg, chunk_max;
	uint64_t chunk_seed;
	uint32_t pack_size;
	bool read_only;          /**< an unknown ro_compat feature was seen */
} bkr_repo_config;

enum { BKR_REPO_RDONLY = 1 };

/**
 * Open @p path: check config.json (version, features, checksum) and load the
 * index.  Errors: BKR_ENOTFOUND (no repository there), BKR_EUNSUPPORTED
 * (newer version or incompat feature), BKR_ECORRUPT.
 */
int bkr_repo_open(bkr_repo **out, const char *path, int flags);
void bkr_repo_free(bkr_repo *r);

const char *bkr_repo_path(const bkr_repo *r);
const bkr_repo_config *bkr_repo_get_config(const bkr_repo *r);

/**
 * Extra places to look for data packs, in order after the hot tier
 * (warm, cold...).  Copied.  Trash is always searched last.
 */
int bkr_repo_set_tiers(bkr_repo *r, const char *const *dirs, size_t n);

/** Pick up index files written since open (mount watcher). Thread-safe. */
int bkr_repo_reload_index(bkr_repo *r);

/** Look up a blob in the index.  BKR_ENOTFOUND when absent. */
int bkr_repo_lookup(bkr_repo *r, const bkr_id *id, bkr_index_entry *out);

/**
 * Read, decompress and verify blob @p id.  *out is malloc'd (*len bytes).
 * BKR_ENOTFOUND (not indexed / pack missing everywhere), BKR_ECORRUPT (hash
 * or format mismatch; message names blob and pack).  Thread-safe.
 */
int bkr_repo_read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len);

/** Loader for bkr_dir_open: @p ctx is the bkr_repo. */
int bkr_repo_load_tree(void *repo, const bkr_id *id, bkr_tree **out);

/** Locate a pack's file in hot, the tiers, then trash; BKR_ENOTFOUND. */
int bkr_repo_pack_path(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, char *out, size_t cap);

/**
 * Every pack file in the hot tier and the configured tiers (not trash), and
 * every unfinished ".tmp-*" file in the repository: @p cb gets the pack id
 * (NULL for a temporary), the blob type its folder holds, and its path.
 * A return <0 from @p cb stops and is returned.
 */
int bkr_repo_foreach_pack(bkr_repo *r,
			  int (*cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path),
			  void *ctx);

/** Every index entry (under the index read lock: @p cb must not reload). */
int bkr_repo_foreach_blob(bkr_repo *r, int (*cb)(const bkr_index_entry *e, void *ctx), void *ctx);

/* ---- writing blobs ------------------------------------------------------ */

typedef struct bkr_writer bkr_writer;

int bkr_writer_new(bkr_writer **out, bkr_repo *r);

/**
 * Store a blob unless the repository or this writer already has it.
 * Compression happens in the calling thread; many threads may call at once.
 * *is_new (optional) says whether it was stored now; *stored (optional)
 * gets the bytes it took in the pack.
 */
int bkr_writer_put(bkr_writer *w, bkr_blob_type type, const bkr_id *id,
		   const void *data, size_t len, bool *is_new, uint32_t *stored);

/** The same, computing the id (SHA-256) for the caller. */
int bkr_writer_put_hash(bkr_writer *w, bkr_blob_type type, const void *data, size_t len,
			bkr_id *id, bool *is_new);

/** Finish open packs and publish one index file for all blobs written. */
int bkr_writer_commit(bkr_writer *w);

/** Drop the writer; an uncommitted writer leaves at most unreferenced packs. */
void bkr_writer_free(bkr_writer *w);

/** Emit callback for bkr_tree_builder_finish: @p ctx is a bkr_writer. */
int bkr_writer_emit_tree(void *w, const bkr_id *id, const uint8_t *blob, size_t len);

/* ---- manifests and records --------------------------------------------- */

/** A list of manifests, oldest first (by timestamp, then id). */
typedef struct {
	bkr_manifest **items;
	size_t n;
} bkr_manifest_list;

/**
 * Load all backups (or recovery runs when @p runs), applying records (pins,
 * tags).  A backup exists while its manifest is in backups/ (bkr/trash.h).  Corrupt manifests are skipped and counted in *bad (optional),
 * with the message of the last one left in the error slot.
 */
int bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad);

/** The same, calling @p on_bad(ctx, file, message) for each damaged manifest. */
int bkr_repo_list_cb(bkr_repo *r, bool runs, bkr_manifest_list *out,
		     void (*on_bad)(void *ctx, const char *file, const char *message), void *ctx);
void bkr_manifest_list_free(bkr_manifest_list *l);

/**
 * Load one manifest by its exact id from backups/ (or runs/ when @p run),
 * without listing the others.  Records are not applied.
 */
int bkr_repo_load_manifest(bkr_repo *r, bool run, const char *id, bkr_manifest **out);

/** Resolve an id, a unique prefix, or "latest". BKR_ENOTFOUND / BKR_EAMBIGUOUS. */
int bkr_repo_find_backup(bkr_repo *r, const char *spec, bkr_manifest **out);
int bkr_repo_find_run(bkr_repo *r, const char *spec, bkr_manifest **out);

/** Publish a manifest (never replaces): backups/ or runs/ by its type. */
int bkr_repo_publish_manifest(bkr_repo *r, const bkr_manifest *m);

/** Append a record (sealed JSON object text without "sha256"; @p kind names it). */
int bkr_repo_add_record(bkr_repo *r, const char *json_object);

/* ---- locks -------------------------------------------------------------- */

typedef enum { BKR_LOCK_SHARED, BKR_LOCK_EXCLUSIVE } bkr_lock_mode;
typedef struct bkr_lock bkr_lock;
/** flock(2) on locks/repo.lock; BKR_ELOCKED when @p wait is false and it is held. */
int bkr_repo_lock(bkr_repo *r, bkr_lock_mode mode, bool wait, bkr_lock **out);
void bkr_lock_release(bkr_lock *l);

#endif
