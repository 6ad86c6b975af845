/** @file
 * Private declarations shared by the files of a backup run (engine/backup/
 * and engine/backup.c): the in-memory node tree, the run's shared state
 * (struct bctx), the worker pool's jobs, and each phase's entry point.
 * Nothing here is part of the public API.
 *
 *   backup.c        bkr_backup_run: options, parent, pool, scan, commit
 *   backup/run.c    the run's shared state: warnings, the first fatal error,
 *                   progress, blob counts
 *   backup/node.c   nodes, the uid/gid name cache, the hardlink table
 *   backup/pool.c   the job queues and the workers (chunk jobs, file jobs)
 *   backup/read.c   reading one file (extents, chunking, re-reads)
 *   backup/xattr.c  reading and counting extended attributes
 *   backup/scan.c   phase 1: walking a source, reuse from the parent
 *   backup/fstype.c pseudo-filesystems, never read
 *   backup/commit.c phase 3: trees, commit, checks, the manifest
 *   backup/parent.c choosing the parent backup
 */
#ifndef BKR_BACKUP_I_H
#define BKR_BACKUP_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../pathbuf.h"
#include "bkr/backup.h"
#include "bkr/chunker.h"
#include "bkr/digest.h"
#include "bkr/hash.h"
#include "bkr/tree.h"

#define BKR_BK_RETRIES 3                  /**< re-reads of a file that changes while read */
#define BKR_BK_READ_BUF (8u << 20)        /**< a worker's read buffer */
#define BKR_BK_READ_AHEAD (16u << 20)     /**< queued files' bytes asked of the disk ahead of the workers */
#define BKR_BK_ZSTD_PROBE_MIN (64ull << 20) /**< files from this size choose their zstd level */
#define BKR_BK_ZSTD_PROBE_EVERY 64u         /**< by compressing every N-th chunk at levels 1 and 2 */
#define BKR_BK_RACY_NS 1000000000LL       /**< git's racy-clean window */
#define BKR_BK_PROGRESS_NS 250000000LL    /**< between progress callbacks */

/* ---- the in-memory tree ------------------------------------------------- */

typedef struct node node;
struct node {
	node *parent;
	uint8_t *name;
	size_t name_len;
	uint8_t type;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, blocks, rdev, ino, dev;
	int64_t mtime_ns, ctime_ns;
	const char *user, *group;   /* owned by the name cache */
	uint8_t *target;
	size_t target_len;
	bkr_xattr *xattrs;          /* names and inline values malloc'd */
	size_t nxattrs;
	uint64_t link_group;
	node *alias;                /* a later hardlink: content from this node */
	node **kids;
	size_t nkids, kcap;
	bkr_hole *holes;
	size_t nholes;
	bkr_chunk_ref *chunks;
	size_t nchunks;
	bkr_id content, subtree;
	bool sparse_digest;         /* content is the sparse form (it has holes) */
	bool skip;                  /* left out of the tree (a warning says why) */
};

/* ---- caches ------------------------------------------------------------- */

typedef struct name_ent {
	struct name_ent *next;
	uint32_t id;
	char *name;
} name_ent;

typedef struct {
	node **slots;
	size_t cap, n;
} link_table;

/* ---- jobs --------------------------------------------------------------- */

typedef struct file_ctx file_ctx;

/* A worker's read buffer of BKR_BK_READ_BUF + 1 bytes.  Chunk jobs point
 * into it instead of copying their chunk; it is reused once the reading
 * worker and every such job have let go of it. */
typedef struct rbuf {
	struct rbuf *next;  /* in the free list */
	size_t refs;        /* the reading worker's, plus one per chunk job (c->mu) */
	uint8_t data[];
} rbuf;

typedef struct chunk_job {
	struct chunk_job *next;
	file_ctx *owner;
	rbuf *rb;           /* holds the buffer @p data points into */
	const uint8_t *data;
	size_t len;
	unsigned no;        /* its place in the file, from 0 */
	bkr_id id;
	bool id_set;        /* id already computed by the reading worker (file_ctx.paired) */
	int err;
} chunk_job;

typedef struct {
	node *n;
	int fd;
	struct stat st;     /* fstat of fd by the scan, right after its open */
	bool advised;       /* its first bytes asked for (POSIX_FADV_WILLNEED, pool.c) */
} file_job;

typedef struct bctx bctx;

/* per-file state while a worker reads it */
struct file_ctx {
	bctx *c;
	size_t pending;     /* chunk jobs not done yet (c->mu) */
	int err;            /* first fatal error of its jobs */
	unsigned nchunks;   /* chunks emitted so far (the reading worker's) */
	/* a big file of a zstd repository at the default level: its chunks' level
	 * is chosen by sampling one every BKR_BK_ZSTD_PROBE_EVERY (pool.c) */
	bool adapt;
	atomic_uint probe_at;   /* the next chunk to sample */
	atomic_int level;       /* its chunks' level (0: the repository's) */
	/* a dense file on a CPU with the SHA extensions: the reading worker
	 * hashes the bytes into the content digest and the current chunk's id
	 * (SHA-256 or HMAC, worker.idh) in the chunker's pass over them
	 * (bkr_digest_scan2), not the digest as it reads and the id in the
	 * chunk job */
	bool paired;
};

typedef struct {
	bctx *c;
	pthread_t tid;
	bool started;
	rbuf *rb;                   /* the buffer files are read into (its data) */
	bkr_chunker *chunker;
	bkr_digest *digest;         /* the current file's content digest */
	bkr_hash_ctx *idh;          /* the current chunk's id (file_ctx.paired) */
	/* chunk refs of the file being read */
	bkr_chunk_ref *refs;
	chunk_job **jobs;   /* NULL for chunks done inline */
	size_t nrefs, refcap;
	bkr_hole *holes;
	size_t nholes, holecap;
} worker;

struct bctx {
	bkr_repo *repo;
	const bkr_backup_options *o;
	bkr_writer *w;
	bkr_chunker_params cp;
	int nthreads;
	char hostname[256];
	bkr_manifest *parent;        /* NULL for a full backup or without one */

	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_space, cv_done;
	bool mu_init;
	file_job *fq;
	size_t fq_cap, fq_head, fq_n;
	/* descriptors the scan's open directories and the files queued or being read hold at most: the
	 * limit of open files less what the backup holds besides (bkr_bk_pool_start), less once the
	 * process ran out of fds (bkr_bk_queue_drain), growing back towards fq_max after BK_FD_REGROW
	 * opens without running out (bkr_bk_fd_room); the scan's thread only */
	size_t fq_lim;
	size_t fq_max;      /* fq_lim as bkr_bk_pool_start computed it */
	size_t fq_calm;     /* the scan's opens since fq_lim was lowered or last grew */
	unsigned fd_waits;  /* open_failed's pauses for this open with none held (scan.c) */
	size_t room_at; /* bkr_bk_fd_room waits until the files held are this few (mu) */
	bool room_wait; /* ... and does now (mu) */
	chunk_job *cq_head, *cq_tail;
	size_t cq_n, cq_max;
	rbuf *rfree;                 /* free read buffers (c->mu) */
	size_t nrfree, rfree_max;
	bool stop;
	int fatal;                   /* first fatal error (c->mu) */
	char *fatal_msg;      /**< the first fatal error's message, whole (NULL: out of memory) */
	size_t active;               /* files being read by workers (mu) */
	worker *workers;             /* [0] is the calling thread */

	/* results (c->mu) */
	bkr_backup_stats st;
	char **warnings;
	size_t nwarn, warncap;
	bkr_id *new_ids;
	size_t nnew, newcap;

	atomic_uint_fast64_t files_done, bytes_done, files_read, bytes_read;
	uint64_t files_total, bytes_total;
	int64_t last_progress;
	int phase;

	/* scanner only */
	node **all;
	size_t nall, allcap;
	node **roots;                /* one per source */
	name_ent *users[64], *groups[64];
	link_table links;
	int64_t parent_start;
	bool have_parent;
	int64_t time_ns;             /* the manifest's date (bkr_bk_parent_select) */
	bkr_pathbuf rel;             /* relative path buffer for excludes */
	size_t scan_fds;             /* the scan's open directories (its stack, the listing), for fq_lim */
	struct { dev_t dev; ino_t ino; } *skip; /* directories never backed up */
	size_t nskip;
	bool noatime_ok;
};

/* ---- run.c -------------------------------------------------------------- */

/** Record a warning about @p n (NULL: the run) from any thread. */
void bkr_bk_warn(bctx *c, const node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Record the first fatal error (its message is this thread's) and stop everything. */
void bkr_bk_fatal(bctx *c, int err);
/** Call the progress callback, at most every BKR_BK_PROGRESS_NS unless @p force. */
void bkr_bk_progress(bctx *c, const char *current, bool force);
/** Count a stored blob (new or reused) in the stats and the new-blob list. */
void bkr_bk_note_blob(bctx *c, const bkr_id *id, size_t len, bool is_new, uint32_t stored);

/* ---- node.c ------------------------------------------------------------- */

/** A new node named @p name under @p parent, owned by c->all; NULL on OOM. */
node *bkr_bk_node_new(bctx *c, node *parent, const void *name, size_t len);
void bkr_bk_node_free(node *n);
int bkr_bk_node_add_kid(node *dir, node *kid);
/** Stat fields of @p n (including its type; 0 for a type trees cannot hold). */
void bkr_bk_node_set_stat(node *n, const struct stat *st);
/** "source/dir/file" of @p n; malloc'd (NULL on OOM). */
char *bkr_bk_node_path(const node *n);
/** The tree entry of @p n (pointers into @p n, or its alias for a later hardlink). */
void bkr_bk_node_entry(const node *n, bkr_entry *e);
/** User (or group) name of @p id, "" when unknown; owned by the cache @p tab. */
const char *bkr_bk_name(name_ent **tab, uint32_t id, bool group);
void bkr_bk_names_free(name_ent **tab);
/** Hardlink group id of (dev, ino); never 0. */
uint64_t bkr_bk_link_key(uint64_t dev, uint64_t ino);
/** First node of @p n's (dev, ino) group, after inserting @p n when new; NULL on OOM. */
node *bkr_bk_link_find_or_add(link_table *t, node *n);
/** Take @p n out of the hardlink table (a group's first file that turned out to be another file). */
void bkr_bk_link_remove(link_table *t, node *n);
/** A malloc'd copy of @p len bytes, or NULL. */
void *bkr_bk_memdup(const void *p, size_t len);

/* ---- pool.c ------------------------------------------------------------- */

/** Allocate the queues and workers and start c->nthreads threads. */
int bkr_bk_pool_start(bctx *c);
/** No more files: the calling thread helps until every job is done, then joins. */
void bkr_bk_pool_finish(bctx *c);
/** Close queued fds and free the workers and buffers (after finish, or on failure). */
void bkr_bk_pool_free(bctx *c);
/** Queue a file for the workers, with its fstat @p st (blocks while the queue
 * is full, until it is half empty; closes @p fd on error). */
int bkr_bk_queue_file(bctx *c, node *n, int fd, const struct stat *st);
/** For a scan whose open failed for want of descriptors: wait until the workers have read every
 * queued file (and closed its fd), and lower fq_lim to what was held then (the scan's folders and the
 * files) less half the files, room for one file at least (the rest of the process needs descriptors
 * too: a pack's temporary); bkr_bk_fd_room raises it again after a while without EMFILE.  1 when some were queued or being read, 0 when none was
 * (nothing to wait for), or a worker's fatal error (its message). */
int bkr_bk_queue_drain(bctx *c);

/*
 * Before the scan opens a file or a directory: wait until it fits in fq_lim
 * with its open directories (c->scan_fds) and the files queued or being read
 * (for half of these to be read: one wake-up a half, not a file).  BKR_EIO
 * naming @p n, "the limit of open files (ulimit -n N) is too low for this
 * backup", when it does not fit with none held in the limit computed at the
 * start (fq_max); in one an EMFILE lowered, fq_lim makes room for the open
 * (which says whether the shortage lasts), and it grows half the way back
 * to fq_max after every BK_FD_REGROW opens.  A worker's failure meanwhile
 * is its error.
 */
int bkr_bk_fd_room(bctx *c, const node *n);
/** Store a data blob and count it; @p level as bkr_writer_put_level's (0: the repository's). */
int bkr_bk_put_data(bctx *c, const bkr_id *id, const uint8_t *data, size_t len, int level);
/** Store one chunk of the file @p fc, @p data inside wk->rb: through the pool
 * when there is room (the job holds wk->rb, no copy), else here. */
int bkr_bk_emit_chunk(worker *wk, file_ctx *fc, const uint8_t *data, size_t len);
/** Move bytes [@p start, @p end) of wk->rb to its front, or into a fresh
 * buffer while chunk jobs still point into it. */
int bkr_bk_rbuf_shift(worker *wk, size_t start, size_t end);
/** Wait for the chunk jobs of @p fc, helping with queued chunk jobs meanwhile. */
void bkr_bk_wait_chunks(worker *wk, file_ctx *fc);
/** Take the ids of finished chunk jobs into wk->refs and free the jobs. */
void bkr_bk_drop_jobs(worker *wk);
int bkr_bk_refs_push(worker *wk, chunk_job *job, const bkr_id *id, size_t len);
int bkr_bk_holes_push(worker *wk, uint64_t off, uint64_t len);

/* ---- read.c ------------------------------------------------------------- */

/** Read the queued file @p n (open as @p fd, closed here; @p st its fstat
 * when queued) into chunks; warnings as needed. */
void bkr_bk_read_file(worker *wk, node *n, int fd, const struct stat *st);

/* ---- xattr.c ------------------------------------------------------------ */

/** Read the xattrs of @p name in @p dirfd (-1: @p name is a path), not following it. */
int bkr_bk_read_xattrs(bctx *c, int dirfd, const char *name, node *n);
/**
 * The xattrs of @p name in @p dirfd (-1: @p name is a path), not following
 * it, sorted by name, every value inline (malloc'd); no repository needed.
 * A list or value that cannot be read is passed to @p warn (and left out);
 * only BKR_ENOMEM is returned.
 */
int bkr_bk_xattrs_get(int dirfd, const char *name, bkr_xattr **out, size_t *nout,
		      void (*warn)(void *ctx, const char *fmt, ...), void *ctx);
void bkr_bk_xattrs_free(bkr_xattr *xs, size_t n);
/** Give @p n the xattrs @p xs (owned by @p n from now on), values over
 * BKR_XATTR_INLINE_MAX stored as blobs. */
int bkr_bk_xattrs_take(bctx *c, node *n, bkr_xattr *xs, size_t nx);
/** Count @p n in the manifest's security-label and ACL stats. */
void bkr_bk_count_xattrs(bctx *c, const node *n);

/* ---- scan.c ------------------------------------------------------------- */

/** Phase 1: walk every source into c->roots, queueing the files to read. */
int bkr_bk_scan(bctx *c);

/* ---- fstype.c ---------------------------------------------------------- */

/** The name of the pseudo-filesystem the directory @p fd (on @p dev) is on, or NULL. */
const char *bkr_bk_pseudo_fs(int fd, dev_t dev);

/* ---- commit.c ----------------------------------------------------------- */

/** Phase 3: trees, commit, checks; publish the manifest dated c->time_ns (*out when not NULL). */
int bkr_bk_commit(bctx *c, int64_t t0, bkr_manifest **out);

/* ---- parent.c ----------------------------------------------------------- */

/**
 * Choose c->parent (options, or the automatic rule); none is not an error.
 * Set c->time_ns, the backup's date: @p now_ns, or just after the newest
 * backup of that second in the same listing of backups/.
 */
int bkr_bk_parent_select(bctx *c, int64_t now_ns);
/** Take the content of the parent's file entry @p pe (@p leaf, @p li) into @p n; false when unreadable. */
bool bkr_bk_parent_take(bctx *c, node *n, const bkr_entry *pe, const bkr_tree *leaf, uint32_t li);
/** The parent's tree of source @p s, or NULL. */
const bkr_id *bkr_bk_parent_tree(const bctx *c, const bkr_source_spec *s);

#endif
