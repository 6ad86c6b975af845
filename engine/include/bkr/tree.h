/** @file
 * Directory trees in the binary format of docs/format.md "Trees".
 *
 * One struct, bkr_entry, describes a directory entry both ways: the builder
 * copies what the caller's pointers refer to; a parsed tree fills it with
 * pointers into the tree's own buffer (valid while the tree lives) and leaves
 * the arrays NULL: fetch them with bkr_tree_chunks/holes/xattrs.
 */
#ifndef BKR_TREE_H
#define BKR_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/hash.h"

typedef enum {
	BKR_FT_FILE = 1,
	BKR_FT_DIR = 2,
	BKR_FT_SYMLINK = 3,
	BKR_FT_FIFO = 4,
	BKR_FT_CHR = 5,
	BKR_FT_BLK = 6,
	BKR_FT_SOCK = 7,
} bkr_file_type;

typedef struct {
	const uint8_t *name;
	size_t name_len;
	const uint8_t *value; /**< inline value (NULL when in a blob) */
	uint32_t value_len;
	bool in_blob;         /**< value stored as blob @p blob */
	bkr_id blob;
} bkr_xattr;

typedef struct { uint64_t offset, length; } bkr_hole;
typedef struct { bkr_id id; uint32_t length; } bkr_chunk_ref;

typedef struct {
	const uint8_t *name; size_t name_len;
	uint8_t type;                   /**< bkr_file_type */
	uint32_t mode, uid, gid;
	const uint8_t *user; size_t user_len;
	const uint8_t *group; size_t group_len;
	int64_t mtime_ns, ctime_ns;
	uint64_t size, blocks, rdev, inode;
	uint32_t nlink;
	uint64_t link_group;            /**< 0 or a hardlink group id, equal within a group */
	const uint8_t *target; size_t target_len;
	/* arrays: inputs for the builder; NULL in parsed entries */
	const bkr_xattr *xattrs; size_t nxattrs;
	const bkr_hole *holes; size_t nholes;
	const bkr_chunk_ref *chunks; size_t nchunks;
	bkr_id content;                 /**< the file's content digest (files) */
	bool sparse_digest;             /**< content is the sparse form (bkr/digest.h); only with holes */
	bkr_id subtree;                 /**< contents (directories) */
} bkr_entry;

/** true when @p name is a valid entry name (not empty, ".", "..", no '/' or NUL, <= 65535). */
bool bkr_tree_name_valid(const uint8_t *name, size_t len);

/* ---- building ----------------------------------------------------------- */

typedef struct bkr_tree_builder bkr_tree_builder;

int bkr_tree_builder_new(bkr_tree_builder **out);
/** Copy @p e in (names, arrays and all).  Invalid names are BKR_EINVAL. */
int bkr_tree_builder_add(bkr_tree_builder *b, const bkr_entry *e);
size_t bkr_tree_builder_count(const bkr_tree_builder *b);

/**
 * Receives each encoded tree blob (children before parents); return <0 to
 * abort.  The emitter sets *id (zeroed on entry) to the blob's id in its
 * repository - SHA-256, or the keyed id of an encrypted one
 * (bkr_repo_blob_id, bkr_writer_emit_tree) - which the parent then records:
 * each blob is hashed once, by the one hash its repository uses.
 */
typedef int (*bkr_tree_emit_fn)(void *ctx, bkr_id *id, const uint8_t *blob, size_t len);

/**
 * Sort by name, reject duplicates (BKR_EINVAL naming the name), encode as one
 * leaf or as pages under inner nodes when over BKR_TREE_PAGE_MAX entries, and
 * pass every blob to @p emit.  *root gets the id of the top blob.  The builder
 * is empty afterwards and may be reused.
 */
int bkr_tree_builder_finish(bkr_tree_builder *b, bkr_tree_emit_fn emit, void *ctx, bkr_id *root);
void bkr_tree_builder_free(bkr_tree_builder *b);

/* ---- reading one blob --------------------------------------------------- */

typedef struct bkr_tree bkr_tree;

/**
 * Validate and wrap one tree blob (already hash-checked by the blob reader).
 * The tree takes ownership of @p blob (malloc'd) whatever the outcome.
 * BKR_ECORRUPT / BKR_EUNSUPPORTED with a message on bad input.
 */
int bkr_tree_parse(bkr_tree **out, uint8_t *blob, size_t len);
void bkr_tree_free(bkr_tree *t);

bool bkr_tree_is_inner(const bkr_tree *t);
uint32_t bkr_tree_count(const bkr_tree *t);

/** Leaf: entry @p i (pointers into the tree). */
int bkr_tree_get(const bkr_tree *t, uint32_t i, bkr_entry *out);
/** Leaf: binary search; BKR_ENOTFOUND. */
int bkr_tree_find(const bkr_tree *t, const uint8_t *name, size_t len, uint32_t *index);
/** Leaf: the arrays of entry @p i (malloc'd; names/values point into the tree). */
int bkr_tree_chunks(const bkr_tree *t, uint32_t i, bkr_chunk_ref **out, size_t *n);
int bkr_tree_holes(const bkr_tree *t, uint32_t i, bkr_hole **out, size_t *n);
int bkr_tree_xattrs(const bkr_tree *t, uint32_t i, bkr_xattr **out, size_t *n);

/** Inner: child @p i. */
int bkr_tree_child(const bkr_tree *t, uint32_t i, const uint8_t **first_name, size_t *first_len,
		   bkr_id *child, uint32_t *entries);

/** Child page @p id of an inner tree blob (bkr_tree_each). */
typedef int (*bkr_tree_page_fn)(void *ctx, const bkr_id *id);
/** Leaf record @p i of @p t (bkr_tree_each). */
typedef int (*bkr_tree_entry_fn)(void *ctx, const bkr_tree *t, uint32_t i);

/**
 * Visit the records of one tree blob in order: @p page with each child's id
 * when @p t is an inner node, @p entry with each record's index when it is a
 * leaf.  Loads nothing itself: the callbacks decide whether and how to load
 * and recurse, so a depth-first walk holds one blob per level.  Stops at the
 * first non-zero return and returns it; a damaged child record is
 * BKR_ECORRUPT ("tree blob: record N: ...").
 */
int bkr_tree_each(const bkr_tree *t, bkr_tree_page_fn page, bkr_tree_entry_fn entry, void *ctx);

/* ---- reading a whole (possibly paged) directory ------------------------- */

/** Loads and parses the tree blob @p id (the repository supplies this). */
typedef int (*bkr_tree_load_fn)(void *ctx, const bkr_id *id, bkr_tree **out);

typedef struct bkr_dir bkr_dir;

/** Open a directory whose top tree blob is @p id; pages load on demand. Thread-safe reads. */
int bkr_dir_open(bkr_dir **out, const bkr_id *id, bkr_tree_load_fn load, void *ctx);
void bkr_dir_free(bkr_dir *d);
uint64_t bkr_dir_count(const bkr_dir *d);

/** How long a page that failed to load (damaged, missing) answers the same
 *  error without being read again: a damaged page of a big directory is not
 *  re-read on every access, and a repair is seen soon. */
#define BKR_DIR_FAILURE_TTL_NS (5LL * 1000000000LL)
/** Set that time for @p d (0: read again every time). */
void bkr_dir_set_failure_ttl(bkr_dir *d, int64_t ns);
/**
 * Entry @p i (0-based, in name order).  *leaf and *li say where it lives, for
 * the array getters; both stay valid while @p d lives.
 */
int bkr_dir_get(bkr_dir *d, uint64_t i, bkr_entry *out, const bkr_tree **leaf, uint32_t *li);
int bkr_dir_find(bkr_dir *d, const uint8_t *name, size_t len, bkr_entry *out,
		 const bkr_tree **leaf, uint32_t *li, uint64_t *index);

#endif
