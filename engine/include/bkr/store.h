/** @file
 * The storage layer: where a repository's objects live.  Everything the
 * repository keeps — config.json, packs, index files, manifests, records,
 * trash, locks, and the packs of other tiers — is an object named by a
 * relative, '/'-separated name ("data/ab/<hex>.pack", "backups/<id>.json")
 * in a bkr_store.  The repository code only ever asks a store; a remote
 * backend (S3) or another tier is a new implementation of bkr_store_ops, not
 * a change to the repository.
 *
 * The contract every implementation keeps (docs/design.md "Storage layer"):
 * - objects are written once: bkr_store_put and bkr_store_upload_publish
 *   never replace an existing object (BKR_EEXISTS), and an object is either
 *   absent or complete and durable once they return 0, whatever crashes;
 * - reads of a published object return what was written (or BKR_ECORRUPT
 *   "truncated" when it is shorter than asked);
 * - a missing object is BKR_ENOTFOUND; every message names the object with
 *   bkr_store_location();
 * - every operation is thread-safe.
 *
 * The first implementation is a local directory (bkr_store_local_open,
 * engine/store_local.c): temporary file + fsync + link without replacing +
 * directory fsync, pread through a cache of open descriptors, flock(2)
 * locks, and the BKR_FAULT fault points of bkr/io.h.
 */
#ifndef BKR_STORE_H
#define BKR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bkr_store bkr_store;
typedef struct bkr_store_upload bkr_store_upload;
typedef struct bkr_store_held bkr_store_held; /**< a lock taken */

/** Produces the next @p n bytes of what bkr_store_upload_fill appends, into @p buf; 0 or a BKR_E* code. */
typedef int (*bkr_store_fill_fn)(void *ctx, uint8_t *buf, size_t n);

/** Flags for bkr_store_get_range. */
enum {
	/** The caller will read much of this object soon (a local store reads a small one ahead). */
	BKR_STORE_READ_AHEAD = 1,
	/** The object was listed (or found by a stat): "no such object" is asked again twice, and a
	 *  third one is BKR_EIO "listed, but not readable" or "listed, but gone", not a missing object:
	 *  as bkr_store_stat_listed. */
	BKR_STORE_LISTED = 2,
};

/** Flags for bkr_store_open (and bkr_store_local_open). */
enum {
	BKR_STORE_CREATE = 1,    /**< create the root directory (mode 0700) when absent */
	BKR_STORE_ABSENT_OK = 2, /**< an absent root is an empty store (a tier not mounted yet) */
};

/**
 * What an implementation provides.  Names are validated by the bkr_store_*
 * wrappers before they reach it (relative, no "." or ".." component, no
 * empty component).
 */
typedef struct bkr_store_view bkr_store_view;

typedef struct bkr_store_ops {
	int (*stat)(bkr_store *s, const char *name, uint64_t *size);
	/** Optional (NULL: bkr_store_stat_time says the time is unknown, bkr_store_stat_tag
	 *  gives no tag).  @p tag: NULL, or BKR_STORE_TAG_MAX bytes for the version tag,
	 *  left "" by a store that has none. */
	int (*stat_time)(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag);
	int (*get)(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len);
	int (*get_range)(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags);
	/** Optional (NULL: bkr_store_advise does nothing). */
	int (*advise)(bkr_store *s, const char *name, uint64_t off, uint64_t len);
	int (*put)(bkr_store *s, const char *name, const void *data, size_t len);
	int (*upload_new)(bkr_store *s, const char *prefix, bkr_store_upload **out);
	int (*upload_write)(bkr_store_upload *u, const void *data, size_t len);
	/** Optional (NULL: bkr_store_upload_fill_copy): see bkr_store_upload_fill. */
	int (*upload_fill)(bkr_store_upload *u, size_t len, bkr_store_fill_fn fill, void *ctx);
	int (*upload_publish)(bkr_store_upload *u, const char *name);
	void (*upload_free)(bkr_store_upload *u);
	int (*list)(bkr_store *s, const char *prefix,
		    int (*cb)(void *ctx, const char *name), void *ctx);
	/** Optional (NULL: bkr_store_list_stamped gives every object the stamp ""). */
	int (*list_stamped)(bkr_store *s, const char *prefix,
			    int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx);
	int (*remove)(bkr_store *s, const char *name);
	int (*rename_new)(bkr_store *s, const char *from, const char *to);
	int (*prepare)(bkr_store *s, const char *prefix);
	int (*lock)(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out);
	/** Optional (NULL: bkr_store_mark takes a shared lock, waiting). */
	int (*mark)(bkr_store *s, const char *name, bkr_store_held **out);
	void (*unlock)(bkr_store_held *l);
	void (*free)(bkr_store *s);
	/** Optional (NULL: 0): see bkr_store_root_missing. */
	int (*root_missing)(bkr_store *s);
	/** Optional (NULL: 0): see bkr_store_drop_copy. */
	int (*drop_copy)(bkr_store *s, const char *name);
	/** Optional (NULL: 0, a store without folders): see bkr_store_drop_folder. */
	int (*drop_folder)(bkr_store *s, const char *prefix);
	/** Optional (NULL: a store that holds nothing but objects): see bkr_store_list_other. */
	int (*list_other)(bkr_store *s, const char *prefix,
			  int (*cb)(void *ctx, const char *name, const char *what), void *ctx);
	/** Optional (NULL: false): see bkr_store_reads_whole. */
	bool (*reads_whole)(bkr_store *s, const char *name);
} bkr_store_ops;

/** The part every implementation's store begins with. */
struct bkr_store {
	const bkr_store_ops *ops;
	char *location; /**< for messages: a directory, a URL */
	char *identity; /**< NULL: the location (see bkr_store_identity); the store's to free */
};

/**
 * The read-only bytes of a whole object, read into memory (never mapped: a
 * disk error in a mapped page kills the process with SIGBUS, where a read
 * returns an error naming the file).
 */
struct bkr_store_view {
	const uint8_t *data;
	size_t len;
	void (*release)(bkr_store_view *v); /**< set by whoever filled it */
};

/** The part every implementation's upload and lock begin with. */
struct bkr_store_upload {
	bkr_store *store;
};
struct bkr_store_held {
	bkr_store *store;
};

/**
 * The one way to open a repository's or a tier's store by its name:
 * "s3://BUCKET[/PREFIX]" is a bucket (engine/store_s3.c), anything else a
 * local directory (bkr_store_local_open).  Another "scheme://" is refused
 * (BKR_EINVAL) rather than taken for a relative path.
 */
int bkr_store_open(bkr_store **out, const char *location, unsigned flags);

/** True when @p location names a remote store (a URL such as "s3://..."), not a path. */
bool bkr_store_is_url(const char *location);

/**
 * A store in an S3 bucket, "s3://BUCKET[/PREFIX]" (engine/store_s3.c,
 * docs/s3.md).  Credentials, region and endpoint come from the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
 * AWS_DEFAULT_REGION, AWS_ENDPOINT_URL), else from bkr_store_s3_configure.
 * Opening sends nothing; a missing credential is BKR_EINVAL naming it.
 */
int bkr_store_s3_open(bkr_store **out, const char *location, unsigned flags);

/**
 * The S3 store's tuning (docs/s3.md "Tuning"): each is the configuration's
 * key s3.KEY and the environment's BKR_S3_KEY (which wins, as the AWS_*
 * variables do), a whole number from min to max, def when unset.
 */
enum {
	BKR_S3_KEEP_PACKS,      /**< a server that ignores Range: whole packs kept at once */
	BKR_S3_KEEP_MIB,        /**< ... in at most this many MiB of temporary files */
	BKR_S3_KEEP_CHECK_MS,   /**< a kept pack is used this long after a HEAD (or its download) confirmed it */
	BKR_S3_ATTEMPTS,        /**< tries of one request before giving up */
	BKR_S3_CONNECT_TIMEOUT, /**< seconds to connect */
	BKR_S3_STALL_TIMEOUT,   /**< seconds with nothing moving: a timeout */
	BKR_S3_NTUNE
};

/** The most whole packs a store keeps (s3.keep_packs' maximum: the store's slots). */
#define BKR_S3_KEEP_PACKS_MAX 64

/** One tunable: its configuration key (under "s3"), environment variable, default and range. */
typedef struct {
	const char *key, *env;
	int def, min, max;
} bkr_s3_tunable;

/** The tunables, indexed by BKR_S3_KEEP_PACKS ... (engine/store_s3_parse.c). */
extern const bkr_s3_tunable bkr_s3_tunables[BKR_S3_NTUNE];

/** The configuration's "s3" object (bkr/config.h); NULL strings are unset. */
typedef struct {
	const char *access_key_id, *secret_access_key, *session_token;
	const char *region, *endpoint_url;
	int path_style;         /**< -1: automatic (an IP address or localhost endpoint), 0 no, 1 yes */
	int lock_stale_seconds; /**< a lock not refreshed for this long is stale; 0: 300 */
	int retry_pause_ms;     /**< the first pause before a retry, doubled each time up to 15x; 0: 200 */
	int tune[BKR_S3_NTUNE]; /**< bkr_s3_tunables' values; 0: unset (the environment's, else the default) */
} bkr_store_s3_settings;

/**
 * Settings for every later bkr_store_s3_open, copied (NULL forgets them).
 * The environment's variables win over them, as with every AWS tool.
 */
int bkr_store_s3_configure(const bkr_store_s3_settings *cfg);

/**
 * Before @p name is moved or removed (by bkr_store_delete and
 * bkr_store_rename, on any store: a tier's too), every S3 lock this process
 * holds is confirmed still ours (docs/s3.md "A lost lock stops its holder"):
 * BKR_ELOCKED "repository lock lost" when another host removed one as
 * stale.  Names under "locks/" are not checked.  0 when no S3 lock is held.
 */
int bkr_store_s3_locks_confirm(const char *name);

/**
 * A store over the directory @p root (BKR_ENOTFOUND when it is not a
 * directory, unless @p flags has BKR_STORE_CREATE or BKR_STORE_ABSENT_OK).
 */
int bkr_store_local_open(bkr_store **out, const char *root, unsigned flags);

/**
 * Bytes of memory a local store stages its uploads in now: the windows mapped
 * for uploads being written, being flushed, or kept idle while an upload is
 * open (none once the last upload is published or freed).  0 for any other
 * store.  For tests and measurements.
 */
size_t bkr_store_local_staging(bkr_store *s);

/**
 * For an open that failed for want of descriptors (EMFILE, ENFILE): close
 * the descriptors every local store of the process keeps open for its next
 * reads and no one is reading through now.  True when any was closed (open
 * again), false when none was idle.  Thread-safe.
 */
bool bkr_store_local_shed(void);

/**
 * For an open that failed with errno @p e: when for want of descriptors
 * (EMFILE, ENFILE), bkr_store_local_shed().  True when any was closed (open
 * again, once: what fills the limit then is not the stores'), false for any
 * other error or when none was idle.  errno is left @p e.  Thread-safe.
 */
bool bkr_store_local_shed_for(int e);

/**
 * The most descriptors all the local stores of the process keep open at once
 * for their next reads: a quarter of the limit of open files
 * (bkr_io_fd_share), which a command that counts what it holds open (a
 * backup's queue) counts too.
 */
size_t bkr_store_local_cache_max(void);

/**
 * The most descriptors one thread's requests to an S3 store hold: its curl
 * handle, kept in the store's pool after the request, keeps one connection
 * (CURLOPT_MAXCONNECTS 1) and the socket pair of the multi handle
 * curl_easy_perform keeps in it (libcurl 7.68 and later), and while it
 * connects one more (the resolver's socket pair, or a second address tried).
 */
#define BKR_STORE_S3_HANDLE_FDS 4

/**
 * The most descriptors @p s holds for @p requesters threads making requests
 * at once, besides what bkr_store_local_cache_max counts: an S3 store's
 * handles (BKR_STORE_S3_HANDLE_FDS each, also behind a cache,
 * bkr_store_cache_open), none for a local store.  A command that counts what
 * it holds open (a backup's queue) counts these.
 */
size_t bkr_store_fd_max(const bkr_store *s, unsigned requesters);

/** Close; NULL is a no-op. */
void bkr_store_free(bkr_store *s);

/** Where the store is (a directory for a local store). */
const char *bkr_store_location(const bkr_store *s);

/**
 * Which objects the store holds, for a disk cache's key (bkr/store_cache.h):
 * its location, and for an S3 store the endpoint too ("s3://BUCKET/PREFIX at
 * http://HOST:PORT"): one bucket name on two servers is two repositories.
 */
const char *bkr_store_identity(const bkr_store *s);

/**
 * Whether locations @p a and @p b are one place: the same text (trailing
 * slashes aside), or two directories that are one (the same device and inode:
 * a symlink or a bind mount).  A URL is compared as text only.
 */
bool bkr_store_same_place(const char *a, const char *b);

/**
 * Whether directory @p inner is @p outer or below it: by name, or with symlinks
 * resolved (a part of @p inner that does not exist yet is taken as named).
 * URLs are compared as text only.
 */
bool bkr_store_within(const char *inner, const char *outer);

/** "<location>/<name>" into @p out (for messages; a real path for a local store). */
int bkr_store_describe(const bkr_store *s, const char *name, char *out, size_t cap);

/** Size of object @p name; BKR_ENOTFOUND when absent. */
int bkr_store_stat(bkr_store *s, const char *name, uint64_t *size);

/**
 * bkr_store_stat of an object a listing named (a pack verify, repair or prune
 * reads): a "no such object" is asked again twice (on an object store after
 * 100 ms, then 400 ms), and a third one is BKR_EIO: "listed, but gone" when
 * the object's folder, listed again, no longer names it (deleted since by a
 * command running alongside), else "listed, but not readable" — a transient
 * condition (an eventually consistent store, a proxy answering 404).  Never
 * proof that the object is damaged: callers that judge damage keep what
 * points at it.
 */
int bkr_store_stat_listed(bkr_store *s, const char *name, uint64_t *size);

/**
 * Size and last-modified time (seconds since the epoch; -1 when the store
 * cannot tell) of object @p name; BKR_ENOTFOUND when absent.
 */
int bkr_store_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime);

/** Room for a version tag of bkr_store_stat_tag, its NUL included. */
#define BKR_STORE_TAG_MAX 128

/**
 * bkr_store_stat_time, and into @p tag (BKR_STORE_TAG_MAX bytes) a string
 * that changes whenever the object is replaced, however soon (S3: its ETag,
 * as the HEAD answered it); "" when the store has none (a local store).
 */
int bkr_store_stat_tag(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag);

/**
 * The whole object (at most @p max bytes, else BKR_ECORRUPT "too large");
 * *out is malloc'd and NUL-terminated.
 */
int bkr_store_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len);

/** The whole object (at most @p max bytes) as a view; release it with bkr_store_view_release. */
int bkr_store_view_get(bkr_store *s, const char *name, size_t max, bkr_store_view *out);
/** Safe on a zeroed view and twice. */
void bkr_store_view_release(bkr_store_view *v);

/**
 * Exactly @p len bytes at @p off into @p buf (BKR_ECORRUPT "truncated" when
 * the object ends first).  A local store keeps recently read objects open.
 * With BKR_STORE_LISTED in @p flags, "no such object" is treated as in
 * bkr_store_stat_listed.
 */
int bkr_store_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags);

/**
 * Advice: @p len bytes at @p off of @p name (0: to its end) will be read
 * soon.  A local store starts reading them into the page cache and returns
 * at once, so that many pieces advised one after another reach the device
 * as one deep queue instead of a wait per piece; a store that cannot do
 * this ignores it.  0, or BKR_ENOTFOUND when the object is absent.
 */
int bkr_store_advise(bkr_store *s, const char *name, uint64_t off, uint64_t len);

/** Publish @p data as @p name unless it exists (BKR_EEXISTS); durable on return. */
int bkr_store_put(bkr_store *s, const char *name, const void *data, size_t len);

/**
 * Start an object written in pieces (packs).  @p prefix says where it will be
 * published (a local store keeps its temporary ".tmp-*" there).
 */
int bkr_store_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out);
int bkr_store_upload_write(bkr_store_upload *u, const void *data, size_t len);
/**
 * Append @p len bytes that @p fill produces in place, in order, in as many
 * pieces as it takes (each piece is filled before the next is asked for): a
 * local store hands it its staging windows, so a blob sealed there is never
 * copied (a window is handed to the flusher only once filled); other stores
 * fill a buffer and write it (bkr_store_upload_fill_copy).  As a write, for
 * the fault points too.  A failure of @p fill is returned; after any failure
 * the upload must not go on (a local store has abandoned it): free it.
 */
int bkr_store_upload_fill(bkr_store_upload *u, size_t len, bkr_store_fill_fn fill, void *ctx);
/** bkr_store_upload_fill through a buffer of @p len bytes and one upload_write: for implementations. */
int bkr_store_upload_fill_copy(bkr_store_upload *u, size_t len, bkr_store_fill_fn fill, void *ctx);
/** Publish what was written as @p name, never replacing (BKR_EEXISTS).  Once only. */
int bkr_store_upload_publish(bkr_store_upload *u, const char *name);
/** Free; an unpublished upload leaves nothing behind.  NULL is a no-op. */
void bkr_store_upload_free(bkr_store_upload *u);

/**
 * Every object whose name begins with @p prefix (a folder: "backups/",
 * "data/", or "" for all), in no particular order, including unfinished
 * temporaries (their last component begins with ".tmp-").  A missing prefix
 * lists nothing.  A return <0 from @p cb stops and is returned.
 */
int bkr_store_list(bkr_store *s, const char *prefix,
		   int (*cb)(void *ctx, const char *name), void *ctx);

/** The longest stamp bkr_store_list_stamped hands over, with its NUL. */
#define BKR_STORE_STAMP_MAX 160

/**
 * bkr_store_list, each object with a *stamp*: a short string that changes
 * whenever the object is replaced or rewritten in place under the same name,
 * at no more cost than the listing (a local store: size, modification and
 * change times and inode, from one fstatat per object; an S3 bucket: the
 * ETag, size and LastModified the listing carries).  Comparing stamps tells
 * a reader that an object it read may be different now (a damaged manifest
 * restored in place).  "" means the store cannot tell: never equal-by-proof,
 * so a caller compares stamps only when both are non-empty.
 */
int bkr_store_list_stamped(bkr_store *s, const char *prefix,
			   int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx);

/**
 * What bkr_store_list passes over under @p prefix because it is no object: a
 * local store's FIFO, socket, device or symbolic link, never opened (a FIFO
 * would block its reader, a link could point anywhere), each with @p what
 * ("a FIFO", "a socket", "a device", "a symbolic link"), for a caller that
 * must say so (keys/: bkr key list).  A store without such entries (S3)
 * calls @p cb for none.  A return <0 from @p cb stops and is returned.
 */
int bkr_store_list_other(bkr_store *s, const char *prefix,
			 int (*cb)(void *ctx, const char *name, const char *what), void *ctx);

/** Delete @p name durably; BKR_ENOTFOUND when absent. */
int bkr_store_delete(bkr_store *s, const char *name);

/**
 * Move @p from to @p to (e.g. into "trash/"), never replacing (BKR_EEXISTS).
 * Readers that have the object open may keep reading it.
 */
int bkr_store_rename(bkr_store *s, const char *from, const char *to);

/** Make @p prefix ready to hold objects (a directory on a local store). */
int bkr_store_prepare(bkr_store *s, const char *prefix);

/**
 * Undo bkr_store_prepare of @p prefix when it holds nothing (a local store
 * removes the empty directory).  0 also when it holds something (another
 * writer's object), is not there, or the store has no folders.
 */
int bkr_store_drop_folder(bkr_store *s, const char *prefix);

/**
 * Take the lock object @p name, shared or exclusive.  It is released by
 * bkr_store_unlock or when the process dies.  BKR_ELOCKED when @p wait is
 * false and it is held in a conflicting mode.
 */
int bkr_store_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out);
/**
 * Hold lock @p name shared without looking for other holders: a mark that
 * an exclusive bkr_store_lock of @p name (a momentary probe) sees, which
 * itself never waits.  On S3 one PUT instead of a PUT and a LIST; a store
 * without such marks takes a shared lock, waiting.  Released by
 * bkr_store_unlock.
 */
int bkr_store_mark(bkr_store *s, const char *name, bkr_store_held **out);
/** NULL is a no-op. */
void bkr_store_unlock(bkr_store_held *l);

/**
 * After a read found nothing: whether the store itself is absent — an S3
 * bucket that does not exist — rather than the object.  0 when not known to
 * be; else BKR_ENOTFOUND with one line naming the bucket and endpoint.
 * Sends nothing.
 */
int bkr_store_root_missing(bkr_store *s);

/**
 * The object @p name as read failed to parse: a store that keeps copies (the
 * disk cache) drops its copy, so that the next read asks the wrapped store
 * (the object may have been put right there).  1 when a copy was dropped
 * (read it again), 0 when there was none.
 */
int bkr_store_drop_copy(bkr_store *s, const char *name);

/**
 * Whether any read of object @p name, a bkr_store_get_range of a few bytes
 * too, reads it whole (an encrypted repository's sealed objects: GCM
 * authenticates the whole): a reader that would check a header before
 * reading a large object whole gains nothing from reading the header first.
 */
bool bkr_store_reads_whole(bkr_store *s, const char *name);

#endif
