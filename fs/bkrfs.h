/** @file
 * Internal declarations shared by the files of the bkrfs daemon: the mount's
 * state (struct bkrfs), its options, and the one BKR_E* -> errno mapping.
 */
#ifndef BKRFS_BKRFS_H
#define BKRFS_BKRFS_H

#define BKRFS_CACHE_MIB_DEFAULT 64 /**< chunk cache: about 64 chunks of 1 MiB */
#define BKRFS_MAX_INODES_DEFAULT 65536 /**< inode table size before pruning (-o max_inodes) */
#define BKRFS_PREFETCH_THREADS 4 /**< decode ahead; more than the cores, so disk waits overlap */
/** st_blksize: a chunk on average, the unit reads are decoded in and at most
 *  what one read request carries (max_read); programs that size their
 *  buffers by it (cat, cp, stdio) then make 8x fewer read calls than with
 *  128 KiB, each of which pays the kernel's per-call cost on top of its
 *  per-4-KiB cost of a FUSE page cache */
#define BKRFS_BLKSIZE (1 << 20)

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bkr/repo.h"
#include "attr.h"
#include "cache.h"
#include "horizon.h"
#include "inode.h"
#include "prefetch.h"
#include "views.h"

/** Timeout for immutable things (entries and attributes of backup trees). */
#define BKRFS_TIMEOUT_FOREVER (86400.0 * 365)
/** Timeout for the top-level views the watcher changes (also invalidated). */
#define BKRFS_TIMEOUT_VIEW 1.0

/** Command-line options (main.c parses them). */
struct bkrfs_opts {
	char *repo;            /**< as given */
	char *mountpoint;
	bool foreground, debug, singlethread, show_help, show_version;
	bool allow_other;
	bool numeric_ids;
	bool has_uid, has_gid, has_umask;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	unsigned cache_mib;    /**< chunk cache size, MiB (default BKRFS_CACHE_MIB_DEFAULT) */
	char *tz;              /**< NULL = UTC */
	int ready_fd;          /**< -1 = none */
	unsigned watch_ms;     /**< watcher period (default 2000) */
	size_t max_inodes;     /**< pruning threshold (default BKRFS_MAX_INODES_DEFAULT) */
	char *cache_dir;       /**< the disk cache of a remote repository (NULL: the default) */
	unsigned long cache_max_mib; /**< its size bound, MiB (0: BKR_STORE_CACHE_MAX_DEFAULT) */
	bool remote;           /**< the repository is a URL (s3://...), read through the disk cache */
	char *password_file;   /**< an encrypted repository's passphrase: first line of this file */
	char *password_command; /**< ... or what this command prints (else BKR_PASSWORD, else a prompt) */
};

/** The catalog of recovery runs (loaded on first visit of /recovered). */
struct bkrfs_runs {
	bkrfs_snap **runs;     /**< oldest first; each holds its manifest */
	size_t n;
	char **names;          /**< the runs/ names it was built from (sorted, with stamps) */
	size_t nnames;
};

#define BKRFS_SEEN_MAX 64

/** The last chunks an EIO was logged for: one line per chunk, so a scan
 *  does not flood the log. */
struct bkrfs_seen {
	pthread_mutex_t lock;
	bkr_id id[BKRFS_SEEN_MAX];    /**< ring; guarded by lock */
	unsigned n;                   /**< chunks logged since the mount (user.bkr.damage) */
	char last[512];               /**< the last one's line, without "EIO: " */
	/** backups whose manifest did not read, and /by-source/<s>/latest
	 *  answers refused over a damaged newer manifest (SHA-256 of a key,
	 *  bkrfs_node_logged), logged once each: they answer EIO at every
	 *  visit; ring, under lock */
	bkr_id manifest[BKRFS_SEEN_MAX];
	unsigned nmanifest;
	/** FNV-1a of the backups /latest passed over as dated in the future
	 *  when last logged (0: none): one line per mount, another only when
	 *  they change; under lock */
	uint64_t future;
};

/** The state of one mount. */
struct bkrfs {
	struct bkrfs_opts o;
	bkr_repo *repo;
	char repo_real[4096];      /**< realpath of the repository */
	bkrfs_itable *itable;
	bkrfs_cache *chunks;       /**< verified data chunks by blob id */
	bkrfs_cache *dirs;         /**< bkr_dir by top tree id */
	uid_t owner_uid;           /**< of synthesized nodes */
	gid_t owner_gid;
	uid_t repo_uid;            /**< owner of the repository directory (report.json) */
	gid_t repo_gid;
	int64_t mount_time;

	pthread_rwlock_t view_lock;
	bkrfs_view *view;          /**< guarded by view_lock; NULL until first needed */
	char **view_names;         /**< the listing of backups/ (with stamps) the view was built
	                                from; set and read with view, under load_lock */
	size_t nview_names;
	struct bkrfs_runs *runs;   /**< guarded by view_lock; NULL until first needed */
	struct bkrfs_hist *hist;   /**< /versions, /by-source, /by-tag (versions.c); guarded by
	                                view_lock; NULL until first needed */
	pthread_mutex_t vers_lock; /**< guards the listings of /versions inodes (inode.vers) */

	void *session;             /**< struct fuse_session * */
	bool no_open;              /**< the kernel skips open/release when open says ENOSYS */
	bool no_opendir;           /**< and opendir/releasedir when opendir does */
	pthread_t watcher;
	bool watcher_running;
	pthread_t pruner;
	bool pruner_running;
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_cond;
	bool stopping;             /**< guarded by watch_lock */
	bool closing;              /**< shutting down: no new page-cache stores (atomic) */

	struct workq *prefetch;       /**< prefetch workers (prefetch.c) */
	struct workq *pagestore;      /**< page-cache store thread (pagestore.c) */
	bkrfs_horizon horizon;        /**< how far look-aheads went (prefetch.c) */
	struct bkrfs_expect expect;   /**< subdirectories a look-ahead passed (prefetch.c) */
	struct bkrfs_names names;     /**< user and group names looked up (attr.c) */
	struct bkrfs_seen seen;       /**< chunks an EIO was logged for (read.c) */
	pthread_mutex_t load_lock;    /**< serializes building view/runs */
	char **idx_names;             /**< watcher: index/ names last seen (watcher only) */
	size_t nidx;
};

/** The chunk cache's budget in bytes (-o cache_size, or the default). */
static inline size_t bkrfs_cache_bytes(const struct bkrfs_opts *o)
{
	return (size_t)(o->cache_mib ? o->cache_mib : BKRFS_CACHE_MIB_DEFAULT) << 20;
}

/* mount.c */
/** Initialize every lock of @p fs (zeroed); bkrfs_mount_fini destroys them. */
void bkrfs_mount_init(struct bkrfs *fs);
void bkrfs_mount_fini(struct bkrfs *fs);
/** The caches, the inode table and the fixed top-level nodes (no thread:
 *  a fork by fuse_daemonize keeps only the calling thread); 0 or a BKR_E*
 *  code.  bkrfs_mount_teardown frees what it made. */
int bkrfs_mount_setup(struct bkrfs *fs);
void bkrfs_mount_teardown(struct bkrfs *fs);
/** Start the mount's threads (prefetch, page-cache store, watcher, pruner);
 *  one that cannot start is logged and done without. */
int bkrfs_mount_start(struct bkrfs *fs);
/** Stop them, in the order that cannot hang (mount.c); @p connected: the
 *  session was mounted, so requests in flight may need answers. */
void bkrfs_mount_stop(struct bkrfs *fs, bool connected);
/** For the watcher and the pruner: wait @p ms, or until the mount stops;
 *  false when it stops. */
bool bkrfs_mount_sleep(struct bkrfs *fs, unsigned ms);

/** The errno for a BKR_E* code (the only place this mapping lives). */
int bkrfs_errno(int bkr_code);
/** The same for a failure to read data a tree or a manifest refers to:
 *  missing data is EIO, never ENOENT (the name exists). */
int bkrfs_data_errno(int bkr_code);

/** One line to stderr (foreground) or syslog (daemon). */
void bkrfs_log(struct bkrfs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ops.c */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops bkrfs_ops;

#endif
