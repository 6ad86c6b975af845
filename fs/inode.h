/** @file
 * The bkrfs inode table: FUSE inode numbers, what each one stands for, and
 * the kernel's lookup counts.  Pure logic (no FUSE, no I/O) so that the unit
 * tests can compile it in; see inode.c for the id spaces.
 */
#ifndef BKRFS_INODE_H
#define BKRFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "bkr/hash.h"

/** A FUSE/stat inode number.  Its own id space: never a blob or tree id. */
typedef uint64_t bkrfs_ino;

/** Fixed inode numbers of the top level. */
enum {
	BKRFS_INO_ROOT = 1,      /**< FUSE_ROOT_ID */
	BKRFS_INO_BY_ID = 2,
	BKRFS_INO_BY_DATE = 3,
	BKRFS_INO_RECOVERED = 4,
	BKRFS_INO_VERSIONS = 5,
	BKRFS_INO_BY_SOURCE = 6,
	BKRFS_INO_BY_TAG = 7,
	BKRFS_INO_RESERVED = 16, /**< hashed numbers are never below this */
};

/** What an inode stands for. */
typedef enum {
	BKRFS_NODE_ROOT = 1,
	BKRFS_NODE_BY_ID,       /**< /by-id */
	BKRFS_NODE_BY_DATE,     /**< /by-date */
	BKRFS_NODE_RECOVERED,   /**< /recovered */
	BKRFS_NODE_DAY,         /**< /by-date/<day> */
	BKRFS_NODE_LINK,        /**< a synthesized symlink (latest, by-date entries) */
	BKRFS_NODE_SNAP_ROOT,   /**< /by-id/<id> or /recovered/<run> */
	BKRFS_NODE_REPORT,      /**< /recovered/<run>/report.json */
	BKRFS_NODE_ENTRY,       /**< an entry of a backup's tree */
	BKRFS_NODE_VERSIONS,    /**< /versions and a directory below it (versions.c) */
	BKRFS_NODE_BY_SOURCE,   /**< /by-source */
	BKRFS_NODE_SOURCE,      /**< /by-source/<source> */
	BKRFS_NODE_BY_TAG,      /**< /by-tag */
	BKRFS_NODE_TAG,         /**< /by-tag/<tag> */
} bkrfs_node_kind;

struct bkrfs_snap; /* views.h: one backup or recovery run, refcounted */

/**
 * One inode.  Everything but the counters is set once, before the inode is
 * published in the table, and is then read-only (so readers need no lock).
 */
typedef struct bkrfs_inode {
	bkrfs_ino ino;
	bkrfs_node_kind kind;
	struct stat st;            /**< attributes as answered (already mapped) */
	struct bkrfs_snap *snap;   /**< owned reference (SNAP_ROOT, REPORT, ENTRY) */
	char *path;                /**< owned; path inside the backup ("/src/a") or view name */
	char *name;                /**< owned; its name in directory @p parent when that is not
	                                the last component of path (a version in /versions), else NULL */
	char *target;              /**< owned; symlink target (LINK, symlink entries) */
	size_t target_len;
	bkr_id parent_tree;        /**< ENTRY: top tree id of the directory holding it */
	uint64_t parent_index;     /**< ENTRY: its index in that directory */
	bkr_id subtree;            /**< ENTRY dirs and SNAP_ROOT: tree of the contents */
	bkr_id content;            /**< ENTRY files: the content digest */
	bool sparse_digest;        /**< ENTRY files: content is the sparse form (docs/format.md) */
	uint8_t ftype;             /**< ENTRY: bkr_file_type */
	bkrfs_ino parent;          /**< the directory it was first found in (for "..") */
	double timeout;            /**< entry/attr timeout in seconds for replies about it */
	void *file;                /**< ENTRY files, REPORT: read state (ops.c), built by the
	                                first read (atomic), freed by the release callback */
	void *vers;                /**< VERSIONS: the listing (versions.c), built on first use and
	                                replaced when the backups change (atomic), freed likewise */

	/* private to inode.c, guarded by the table lock */
	uint8_t *key;              /**< identity key (see inode.c) */
	size_t key_len;
	uint64_t nlookup;          /**< kernel lookup count */
	uint64_t refs;             /**< references held by running requests */
	bool pinned;               /**< never freed (fixed top-level inodes) */
	uint64_t used;             /**< table clock at the last get/enter (pruning order) */
	struct bkrfs_inode *next;  /**< hash chain */
} bkrfs_inode;

typedef struct bkrfs_itable bkrfs_itable;

/** Called when an inode is freed, to drop payload references (may be NULL). */
typedef void (*bkrfs_inode_release_fn)(bkrfs_inode *ino);

int bkrfs_itable_new(bkrfs_itable **out, bkrfs_inode_release_fn release);
void bkrfs_itable_free(bkrfs_itable *t);

/** The preferred inode number of an identity key (SHA-256, first 8 bytes, >= RESERVED). */
bkrfs_ino bkrfs_ino_of_key(const void *key, size_t len);

/**
 * Build an identity key: @p kind byte, then each of the @p n byte strings
 * followed by a NUL separator.  *out is malloc'd.
 */
int bkrfs_key_make(uint8_t **out, size_t *len, char kind, size_t n, const void *const *parts,
		   const size_t *lens);

/**
 * The inode number that bkrfs_itable_enter would give @p key now (for
 * readdir d_ino; equal to bkrfs_ino_of_key unless a collision was probed);
 * *present (may be NULL): whether an inode with that key is in the table.
 */
bkrfs_ino bkrfs_itable_peek(bkrfs_itable *t, const uint8_t *key, size_t len, bool *present);

/**
 * Find the inode with identity @p key or publish @p fresh (whose key fields
 * and ino are set here; the table takes ownership of @p key).  Adds one to
 * the lookup count and one reference.  When an inode with that identity
 * exists, @p fresh is released and freed and the existing one returned.
 * @p fresh must be malloc'd with all payload fields set.
 */
bkrfs_inode *bkrfs_itable_enter(bkrfs_itable *t, bkrfs_inode *fresh, uint8_t *key, size_t len,
				bool lookup);

/** Install a pinned inode with a fixed number (top level). */
int bkrfs_itable_pin(bkrfs_itable *t, bkrfs_inode *fresh, bkrfs_ino ino);

/** A reference to inode @p ino, or NULL.  Release with bkrfs_itable_put. */
bkrfs_inode *bkrfs_itable_get(bkrfs_itable *t, bkrfs_ino ino);
void bkrfs_itable_put(bkrfs_itable *t, bkrfs_inode *i);

/** Undo one lookup of @p i (an entry that did not fit into a readdirplus reply). */
void bkrfs_itable_unlookup(bkrfs_itable *t, bkrfs_inode *i);

/**
 * The lookups one readdirplus reply adds, one per entry with an inode, so
 * that they can be undone when the reply is not delivered (an interrupted
 * request, an aborted connection): the kernel never saw those entries, so
 * it never forgets them, and they would pin their inodes for ever.
 */
typedef struct {
	bkrfs_ino *ino;
	size_t n, cap;
} bkrfs_lookups;

/** Room for @p cap lookups; 0 or ENOMEM. */
int bkrfs_lookups_init(bkrfs_lookups *l, size_t cap);
/** Note one lookup of @p i; false when @p l is full (the caller then
 *  undoes it with bkrfs_itable_unlookup). */
bool bkrfs_lookups_add(bkrfs_lookups *l, const bkrfs_inode *i);
/** After the reply: undo each noted lookup unless @p delivered; then free @p l. */
void bkrfs_lookups_done(bkrfs_itable *t, bkrfs_lookups *l, bool delivered);

/** FUSE forget: subtract @p n from the lookup count; free at zero when unreferenced. */
void bkrfs_itable_forget(bkrfs_itable *t, bkrfs_ino ino, uint64_t n);

/** Number of inodes in the table (pinned ones included). */
size_t bkrfs_itable_count(bkrfs_itable *t);

/** An inode the kernel is asked to forget: the directory it was found in and its name. */
typedef struct {
	bkrfs_ino parent;
	char *name;                /**< malloc'd */
} bkrfs_prune;

/**
 * When the table holds more than @p max inodes, choose backup entries that
 * are not directories, least recently used first, to bring it down to half
 * of @p max, and return them (*out malloc'd, free each name and the array);
 * 0 when under the limit.  Directories are never chosen: an invalidated
 * directory that is a process's working directory makes getcwd() fail.  The caller asks the kernel to
 * drop those dentries (notify_inval_entry); the kernel then forgets the
 * inodes it no longer uses, and forget frees them here.
 */
size_t bkrfs_itable_prune(bkrfs_itable *t, size_t max, bkrfs_prune **out);

/** The numbers of the inodes of kind @p kind (*out malloc'd; 0 when none). */
size_t bkrfs_itable_of_kind(bkrfs_itable *t, bkrfs_node_kind kind, bkrfs_ino **out);

/** The lookup count of @p ino (tests); 0 when absent. */
uint64_t bkrfs_itable_nlookup(bkrfs_itable *t, bkrfs_ino ino);

/** Free an inode that was never entered (payload released too). */
void bkrfs_inode_discard(bkrfs_itable *t, bkrfs_inode *i);

#endif
