/** @file
 * Walking the trees of a backup: resolve a path to its entry, and iterate
 * over a whole subtree depth-first with full paths.  Used by ls, verify,
 * diff, restore, the mount and recovery.
 *
 * Paths are byte strings relative to the root tree of a backup, components
 * separated by '/', e.g. "workspace/src/main.c" (the first component is the
 * source name).  "", "." and "/" name the root itself; empty components and
 * "." are ignored, ".." is BKR_EINVAL.  Names never contain NUL, so paths are
 * also NUL-terminated C strings.
 *
 * Trees are read through bkr_repo_load_tree (hash-checked, then parsed).
 * The iterator keeps one open bkr_dir per level of the current path on the
 * heap, so depth is bounded by memory only.
 */
#ifndef BKR_WALK_H
#define BKR_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"
#include "bkr/tree.h"

/**
 * Resolve @p path under the root tree @p root.
 *
 * *out gets the entry; its pointers refer to trees held by *holder, which the
 * caller frees with bkr_dir_free() when done with *out (*leaf / *li locate the
 * entry for bkr_tree_chunks/holes/xattrs; both optional).  For the root
 * itself a synthetic directory entry (empty name, mode 040755, subtree =
 * @p root) is returned and *holder, *leaf are NULL.
 * Errors: BKR_ENOTFOUND (a component is missing, or a non-directory is
 * used as a directory; message names the path), BKR_EINVAL, load errors.
 */
int bkr_walk_resolve(bkr_repo *r, const bkr_id *root, const char *path, bkr_entry *out,
		     bkr_dir **holder, const bkr_tree **leaf, uint32_t *li);

/**
 * Whether source @p source of the backup with root tree @p root, found at
 * @p path on this host (its recorded sources[].path, or where it is now), is
 * a single file: a backup keeps one as the directory @p source holding that
 * file (`bkr create /etc/hostname` makes hostname/hostname).  It is when
 * @p path is something other than a directory; when nothing is at @p path
 * (the file was deleted), when the backup's directory @p source holds just
 * one entry, a non-directory named as @p path's last component.  Restore,
 * diff --live and log map a live path by it; an error reading the tree
 * counts as no (and is cleared).
 */
bool bkr_walk_source_is_file(bkr_repo *r, const bkr_id *root, const char *source, const char *path);

/**
 * Resolving many paths of the same backups (recovery looks up every damaged
 * file in the backups, newest first): the directories met on the way are
 * kept open, by tree id, so that each is read and parsed once rather than
 * once per path (backups share the ids of the directories that did not
 * change, so they share the entries too).  At most @p max_dirs directories
 * are kept; when one more is needed, all are dropped and read again as
 * paths need them.  Not thread-safe.
 */
typedef struct bkr_walk_dirs bkr_walk_dirs;
int bkr_walk_dirs_new(bkr_walk_dirs **out, bkr_repo *r, size_t max_dirs);
/**
 * bkr_walk_resolve through @p c, with the same results and messages; *out,
 * *leaf and *li (both optional) refer to directories @p c holds, valid
 * until the next call on @p c (or its free), with no holder to free.
 */
int bkr_walk_dirs_resolve(bkr_walk_dirs *c, const bkr_id *root, const char *path, bkr_entry *out,
			  const bkr_tree **leaf, uint32_t *li);
/** How many directories were read (opened) since bkr_walk_dirs_new (tests). */
uint64_t bkr_walk_dirs_loads(const bkr_walk_dirs *c);
/** NULL is a no-op. */
void bkr_walk_dirs_free(bkr_walk_dirs *c);

/** Flags for bkr_walk_new. */
enum {
	BKR_WALK_POST = 1,     /**< report every directory a second time after its contents (item->post) */
	BKR_WALK_NO_RECURSE = 2, /**< list the starting directory only */
	BKR_WALK_UNNAMED = 4,  /**< bkr_walk_new's (bkr_walk_resolve_flags') messages do not name the
				  starting directory ("root directory: ", "path 'P': "): the caller's own do */
};

/** One step of a walk.  Everything in it is valid until the next bkr_walk_next/free. */
typedef struct {
	const char *path;    /**< full path from the walk's root tree, NUL-terminated */
	size_t path_len;
	size_t depth;        /**< 1 for entries of the starting directory */
	bkr_entry entry;     /**< pointers into @p leaf */
	const bkr_tree *leaf; /**< for bkr_tree_chunks/holes/xattrs(leaf, li, ...) */
	uint32_t li;
	bool post;           /**< BKR_WALK_POST: the directory again, after its contents */
	int error;           /**< directories: <0 when their contents could not be loaded
			       (the walk goes on without them; bkr_walk_error_message says why) */
} bkr_walk_item;

typedef struct bkr_walk bkr_walk;

/**
 * Start a depth-first walk (name order) of the directory @p path under root
 * tree @p root (NULL or "" = the whole backup).  Reported paths include
 * @p path as their prefix.  Errors as for bkr_walk_resolve, and BKR_EINVAL
 * when @p path is not a directory; each message names the directory ("root
 * directory: ...", "path 'P': ..."), unless @p flags has BKR_WALK_UNNAMED.
 */
int bkr_walk_new(bkr_walk **out, bkr_repo *r, const bkr_id *root, const char *path, unsigned flags);

/**
 * bkr_walk_resolve, whose messages do not name @p path ("path 'P': ") when
 * @p flags has BKR_WALK_UNNAMED: the caller's own message names it.
 */
int bkr_walk_resolve_flags(bkr_repo *r, const bkr_id *root, const char *path, unsigned flags, bkr_entry *out,
			   bkr_dir **holder, const bkr_tree **leaf, uint32_t *li);

/**
 * Next item: returns 1 and sets *item, 0 at the end, <0 on an error that
 * stops the walk (out of memory).  A directory whose tree cannot be read is
 * reported with item->error set and then skipped, so one damaged tree does
 * not end the walk.
 */
int bkr_walk_next(bkr_walk *w, const bkr_walk_item **item);

/** Do not descend into the directory just returned by bkr_walk_next. */
void bkr_walk_skip(bkr_walk *w);

/** The message recorded with the last item->error (valid until the next call). */
const char *bkr_walk_error_message(const bkr_walk *w);

/** NULL is a no-op. */
void bkr_walk_free(bkr_walk *w);

/**
 * The content of the regular-file entry (@p leaf, @p li) into a callback, in
 * file order: @p fn gets (ctx, offset, data, len) for the data extents only
 * (holes are the gaps), each chunk verified by the blob read, and the whole
 * content (holes as zeros) checked against the entry's content hash at the
 * end.  @p fn never gets a byte at or past the entry's size (a malformed
 * entry whose chunks or holes reach past it is BKR_ECORRUPT first).  A
 * return <0 from @p fn stops.  BKR_ECORRUPT names @p what (e.g.
 * "backup X: path") and the chunk or the content hash.
 */
typedef int (*bkr_walk_data_fn)(void *ctx, uint64_t offset, const uint8_t *data, size_t len);
int bkr_walk_read_file(bkr_repo *r, const bkr_tree *leaf, uint32_t li, const char *what,
		       bkr_walk_data_fn fn, void *ctx);

/**
 * The same in steps, for readers that fetch chunks on several threads
 * (restore): bkr_walk_file_new copies what the entry says about its content
 * (it outlives @p leaf); bkr_walk_file_read_chunk reads and checks chunk
 * @p i (any thread, any order; *data is malloc'd); bkr_walk_file_put takes
 * the chunks in file order, one call at a time, and hands their data extents
 * to @p fn while hashing; bkr_walk_file_finish checks the size and the
 * content hash once every chunk was put.  Messages name @p what.
 */
typedef struct bkr_walk_file bkr_walk_file;
int bkr_walk_file_new(bkr_walk_file **out, const bkr_tree *leaf, uint32_t li, const char *what);
size_t bkr_walk_file_chunks(const bkr_walk_file *f);
/** Whether the file has holes (its chunks alone do not cover its size). */
bool bkr_walk_file_has_holes(const bkr_walk_file *f);
uint32_t bkr_walk_file_chunk_length(const bkr_walk_file *f, size_t i);
const bkr_id *bkr_walk_file_chunk_id(const bkr_walk_file *f, size_t i);
int bkr_walk_file_read_chunk(bkr_repo *r, const bkr_walk_file *f, size_t i, uint8_t **data, size_t *len);
/**
 * The caller's promise that nothing of the file's bytes is used (linked to
 * a name, sent anywhere) before bkr_walk_file_finish succeeds.  Then the
 * chunks of a file that the content hash covers (every file but one whose
 * single chunk's id is its content hash: an unencrypted one-chunk file
 * without holes) are read without hashing each on its own, so that each
 * byte is hashed once, not twice; everything else is checked as before.
 * A damaged chunk then fails bkr_walk_file_finish, which names it: it reads
 * the file's chunks from @p r again, each hashed, and returns the first
 * corruption error (any other error of that re-read, such as I/O, leaves
 * the content hash's own).  The re-read happens only on that failure.
 */
void bkr_walk_file_defer_checks(bkr_walk_file *f, bkr_repo *r);
int bkr_walk_file_put(bkr_walk_file *f, const uint8_t *data, size_t len, bkr_walk_data_fn fn, void *ctx);
int bkr_walk_file_finish(bkr_walk_file *f);
/** NULL is a no-op. */
void bkr_walk_file_free(bkr_walk_file *f);

#endif
