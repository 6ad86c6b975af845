/** @file
 * The blob index: blob id -> pack, offset, lengths (docs/format.md "Index
 * files").  Index files are sorted, checksummed, read whole into memory and
 * searched in place, so a million blobs cost one read to open and a lookup is
 * a binary search per file.
 */
#ifndef BKR_INDEX_H
#define BKR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/hash.h"
#include "bkr/store.h"

typedef struct {
	bkr_id id;
	bkr_pack_id pack;
	uint32_t offset;
	uint32_t stored_len;
	uint32_t raw_len;
	uint8_t type;
	uint8_t flags;
} bkr_index_entry;

typedef struct bkr_index_builder bkr_index_builder;

int bkr_index_builder_new(bkr_index_builder **out);
int bkr_index_builder_add(bkr_index_builder *b, const bkr_index_entry *e);
/** Record that the new file replaces index file @p old. */
int bkr_index_builder_supersede(bkr_index_builder *b, const bkr_id *old);
size_t bkr_index_builder_count(const bkr_index_builder *b);
/**
 * Sort (dropping exact duplicate ids), encode, and publish "<prefix><hex>.idx"
 * in @p s (prefix "index/" in a repository; the same bytes already there
 * count as published).  Then delete the superseded files that exist.
 * *file_id gets the new id.  More entries or superseded files than one file
 * may hold (BKR_INDEX_ENTRIES_MAX, BKR_INDEX_SUPERSEDED_MAX) are published as
 * several files, the superseding ones last; *file_id is the last one's.
 */
int bkr_index_builder_publish(bkr_index_builder *b, bkr_store *s, const char *prefix, bkr_id *file_id);
/** For tests: write files of at most @p entries entries and @p superseded superseded ids (0: the format's limit). */
void bkr_index_set_file_limits(size_t entries, size_t superseded);
/** The same into the directory @p dir (created if needed). */
int bkr_index_builder_write(bkr_index_builder *b, const char *dir, bkr_id *file_id);
void bkr_index_builder_free(bkr_index_builder *b);

/** The loaded set of index files of a repository (immutable once opened). */
typedef struct bkr_index bkr_index;

/** Flags for bkr_index_load. */
enum {
	/** A damaged file (corrupt, unknown version) is left out, its message
	 * kept for bkr_index_skipped: its packs' footers still hold the truth. */
	BKR_INDEX_SKIP_DAMAGED = 1,
	/** The repository's configuration was read from config.copy.json (a
	 * damaged or missing config.json): a sealed file's refusal names it. */
	BKR_INDEX_CONFIG_COPY = 2,
};

/** How a message names the configuration when it was read from its copy
 * (BKR_INDEX_CONFIG_COPY; bkr_repo_config_said). */
#define BKR_CONFIG_COPY_SAID "config.copy.json (read instead of the damaged or missing config.json)"

/**
 * Read (bkr_store_view_get) and verify every "*.idx" directly under @p prefix
 * of @p s that no other present file supersedes.  No files is an empty index.
 * A file over 4 MiB is judged before its body is read: a plain one by its
 * header (a ranged read) against its size, a sealed one by its size.
 * A corrupt file, and an index file's name that holds no object (a local
 * store's FIFO or symbolic link: bkr_store_list_other), is BKR_ECORRUPT
 * naming it (unless BKR_INDEX_SKIP_DAMAGED); a
 * file that cannot be read (an I/O error) is that error, never skipped.
 */
int bkr_index_load(bkr_index **out, bkr_store *s, const char *prefix, unsigned flags);

/**
 * Whether the index files under @p prefix of @p s are still the ones @p idx
 * was loaded from: the same names, each with the same stamp
 * (bkr_store_list_stamped: size, times and inode of a local file; an S3
 * object's ETag), for the price of one listing.  *same is false when any
 * differs, is new or gone, or when the store gives no stamps (a reload is
 * then the only way to know).
 */
int bkr_index_unchanged(const bkr_index *idx, bkr_store *s, const char *prefix, bool *same);

/** One line for each file bkr_index_load left out (borrowed). */
const char *const *bkr_index_skipped(const bkr_index *idx, size_t *n);
/** The same for the directory @p dir (a missing one is an empty index). */
int bkr_index_open(bkr_index **out, const char *dir);

/** Parse one index file (tests and `bkr verify`). */
int bkr_index_open_file(bkr_index **out, const char *path);

/** 0 and *out filled, or BKR_ENOTFOUND. Thread-safe. */
int bkr_index_lookup(const bkr_index *idx, const bkr_id *id, bkr_index_entry *out);
/**
 * The entry @p nth (0: the one bkr_index_lookup returns) of every entry naming
 * blob @p id, in lookup order (the files from last to first, a file's
 * entries for it - the writer writes one - first to last); BKR_ENOTFOUND
 * past the last.  Readers try the next one when a copy cannot be read.
 * Thread-safe.
 */
int bkr_index_lookup_nth(const bkr_index *idx, const bkr_id *id, size_t nth, bkr_index_entry *out);

/** How many entries name @p id over all of @p idx's files (bkr_index_lookup_nth's nth runs below it). */
size_t bkr_index_copies(const bkr_index *idx, const bkr_id *id);

/**
 * The loaded files holding exactly entry @p e (its blob at its pack and
 * offset), newest first as lookups take them: the first @p cap of their ids
 * into @p out.  Returns how many files hold it (more than @p cap: the rest
 * are not given).  Thread-safe.
 */
size_t bkr_index_files_holding(const bkr_index *idx, const bkr_index_entry *e, bkr_id *out, size_t cap);

/** Number of entries over all files (duplicates counted). */
uint64_t bkr_index_count(const bkr_index *idx);

/** Ids of the loaded files, in load order (borrowed). */
const bkr_id *bkr_index_files(const bkr_index *idx, size_t *n);

/**
 * The ids of the index files present but superseded by another present file
 * (a merge killed before it removed them); not loaded.  A new merged index
 * supersedes them too.  Owned by @p idx.
 */
const bkr_id *bkr_index_stale_files(const bkr_index *idx, size_t *n);

/**
 * qsort/bsearch order of bkr_index_entry by pack, then offset, then blob id
 * (how verify, prune and repair walk entries pack by pack).
 */
int bkr_index_entry_cmp_pack(const void *a, const void *b);

/** Calls @p cb for every entry; a negative return stops and is returned. */
int bkr_index_foreach(const bkr_index *idx, int (*cb)(const bkr_index_entry *e, void *arg), void *arg);

void bkr_index_free(bkr_index *idx);

#endif
