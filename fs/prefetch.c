/** @file
 * Prefetch and look-ahead (prefetch.h): the workers that decode chunks
 * before a reader asks for them.  Within a file, the chunks after a
 * streaming read; across files, the next files of a directory in name order
 * (the order of tar, cp -r, rsync, grep -r), bounded by the horizon of
 * horizon.c, and the trees of the next subdirectories.
 */
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "chunk.h"
#include "node.h"
#include "pagestore.h"
#include "prefetch.h"
#include "workq.h"

#define PREFETCH_QUEUE 64
#define PREFETCH_DEPTH 8              /**< chunks queued ahead of a streaming reader */
#define PREFETCH_SLACK (4u << 20)     /**< how far out of order a streaming read may be */
#define PREFETCH_DIR_FILES 32         /**< files read ahead of one being opened ... */
#define PREFETCH_DIR_BYTES (8u << 20) /**< ... up to this many bytes of their chunks, */
#define PREFETCH_DIR_DIRS 8           /**< ... and the trees of this many subdirectories, */
#define PREFETCH_DIR_SCAN 256         /**< ... among this many entries at most */

/* a queued job: a chunk to load, or the entries of a directory to look ahead in */
struct job {
	bool dir;
	bool walked;        /**< dir: started by a listing, not by a read (expects nothing) */
	bkr_id id;          /**< chunk id, or the directory's top tree id */
	uint64_t index;     /**< dir: first entry to look at */
	bkrfs_ino ino;      /**< dir: its inode; chunk: a file it is all of (page cache), or 0 */
	uint64_t len;       /**< chunk with ino: the file's size */
};

static bool job_same(const void *a, const void *b)
{
	const struct job *x = a, *y = b;
	return x->dir == y->dir && x->index == y->index && x->ino == y->ino &&
	       !memcmp(x->id.b, y->id.b, BKR_ID_SIZE);
}

static size_t enqueue(struct bkrfs *fs, const struct job *jobs, size_t n)
{
	return bkrfs_workq_push(fs->prefetch, jobs, n, job_same);
}

/* subdirectory @p tree was passed by a reader's look-ahead: a walker will list it next */
static void expect_add(struct bkrfs_expect *x, const bkr_id *tree)
{
	pthread_mutex_lock(&x->lock);
	for (unsigned k = 0; k < BKRFS_EXPECT_MAX; k++)
		if (!memcmp(x->id[k].b, tree->b, BKR_ID_SIZE))
			goto out;
	x->id[x->next++ % BKRFS_EXPECT_MAX] = *tree;
out:
	pthread_mutex_unlock(&x->lock);
}

/* true (once) when @p tree was expected */
static bool expect_take(struct bkrfs_expect *x, const bkr_id *tree)
{
	bool found = false;

	pthread_mutex_lock(&x->lock);
	for (unsigned k = 0; k < BKRFS_EXPECT_MAX && !found; k++)
		if (!memcmp(x->id[k].b, tree->b, BKR_ID_SIZE)) {
			memset(&x->id[k], 0, sizeof(x->id[k]));
			found = true;
		}
	pthread_mutex_unlock(&x->lock);
	return found;
}

/*
 * Add the chunk jobs of file entry @p e (leaf @p leaf, index @p li) of the
 * directory whose inode is @p dir_ino within *budget bytes; true when it is
 * a file with data.
 */
static bool file_jobs(struct bkrfs *fs, const bkr_entry *e, const bkr_tree *leaf, uint32_t li,
		      bkrfs_ino dir_ino, uint64_t *budget, struct job *jobs, size_t cap, size_t *njobs)
{
	bkr_chunk_ref *chunks;
	size_t n;

	if (e->type != BKR_FT_FILE || !e->size || bkr_tree_chunks(leaf, li, &chunks, &n) < 0)
		return false;
	for (size_t c = 0; c < n && *budget && *njobs < cap; c++) {
		struct job cj = { .dir = false, .id = chunks[c].id };
		*budget = chunks[c].length < *budget ? *budget - chunks[c].length : 0;
		/* a file that is one chunk (no holes): its whole content can
		 * go into its page cache, and the reader's read will not even
		 * reach the daemon */
		if (n == 1 && chunks[0].length == e->size && dir_ino) {
			cj.ino = bkrfs_entry_ino(fs, dir_ino, e);
			cj.len = e->size;
		}
		if (cj.ino || !bkrfs_cache_contains(fs->chunks, &cj.id))
			jobs[(*njobs)++] = cj;
	}
	free(chunks);
	return true;
}

/*
 * A reader began a file of this directory: queue the chunks of the next
 * files (in name order, the order of tar, cp -r, rsync, grep -r) and load
 * the trees of the next subdirectories, so that their decoding and disk
 * reads overlap with the reader instead of waiting in line behind it.
 */
static void look_ahead(struct bkrfs *fs, const struct job *j)
{
	struct job jobs[2 * PREFETCH_DIR_FILES];
	bkr_id subs[PREFETCH_DIR_DIRS];
	bkrfs_cache_entry *ce;
	uint64_t k, count, budget = PREFETCH_DIR_BYTES;
	size_t njobs = 0;
	int files = 0, dirs = 0;
	void *v;

	if (bkrfs_cache_get(fs->dirs, &j->id, &ce, &v) < 0) {
		bkrfs_horizon_done(&fs->horizon, &j->id, j->ino, j->index, j->index);
		return;
	}
	count = bkr_dir_count(v);
	if (count > j->index + PREFETCH_DIR_SCAN)
		count = j->index + PREFETCH_DIR_SCAN;
	for (k = j->index; k < count && files < PREFETCH_DIR_FILES && dirs < PREFETCH_DIR_DIRS && budget &&
			   njobs < sizeof(jobs) / sizeof(jobs[0]);
	     k++) {
		const bkr_tree *leaf;
		uint32_t li;
		bkr_entry e;

		if (bkr_dir_get(v, k, &e, &leaf, &li) < 0)
			break;
		if (e.type == BKR_FT_DIR && !bkr_id_is_zero(&e.subtree)) {
			/* only a reader's look-ahead expects a walk: one started
			 * by a listing does not, or `ls -R` after one read would
			 * cascade through the whole tree */
			if (!j->walked)
				expect_add(&fs->expect, &e.subtree);
			subs[dirs++] = e.subtree;
			continue;
		}
		files += file_jobs(fs, &e, leaf, li, j->ino, &budget, jobs, sizeof(jobs) / sizeof(jobs[0]), &njobs);
	}
	bkrfs_cache_release(fs->dirs, ce);
	bkrfs_horizon_done(&fs->horizon, &j->id, j->ino, j->index, k);
	/* queued only now: once a file of this window is in the page cache,
	 * every subdirectory of the window is expected (a walker listing one
	 * next gets its look-ahead) */
	enqueue(fs, jobs, njobs);
	/* then the subdirectories' trees, the walker's next readdirs */
	for (int d = 0; d < dirs; d++)
		if (bkrfs_cache_get(fs->dirs, &subs[d], &ce, &v) == 0)
			bkrfs_cache_release(fs->dirs, ce);
}

/* queue look-ahead @p j unless the window ahead of its reader is wide enough */
static void look_ahead_queue(struct bkrfs *fs, struct job *j)
{
	uint64_t want = j->index;

	j->index = bkrfs_horizon_claim(&fs->horizon, &j->id, j->ino, want, PREFETCH_DIR_FILES);
	if (j->index != UINT64_MAX && !enqueue(fs, j, 1))
		bkrfs_horizon_done(&fs->horizon, &j->id, j->ino, j->index, j->index);
}

static void prefetch_run(void *ctx, void *job)
{
	struct bkrfs *fs = ctx;
	const struct job *j = job;
	bkrfs_cache_entry *e;
	void *v;

	if (j->dir) {
		look_ahead(fs, j);
	} else if (j->ino) {
		if (bkrfs_cache_get(fs->chunks, &j->id, &e, &v) == 0) {
			const struct bkrfs_chunk *c = v;
			/* the file is this chunk: its whole content, from here */
			if (c->len == j->len)
				bkrfs_pagestore_chunk(fs, j->ino, 0, e, c->buf, c->len, true);
			bkrfs_cache_release(fs->chunks, e);
		}
	} else if (!bkrfs_cache_contains(fs->chunks, &j->id) && bkrfs_cache_get(fs->chunks, &j->id, &e, &v) == 0) {
		bkrfs_cache_release(fs->chunks, e);
	}
	bkr_error_clear(); /* a bad chunk is reported by the read that needs it */
}

int bkrfs_prefetch_start(struct bkrfs *fs, int threads)
{
	struct workq *wq = bkrfs_workq_start(fs, sizeof(struct job), PREFETCH_QUEUE, threads, prefetch_run, NULL);

	fs->prefetch = wq;
	return wq ? 0 : -1;
}

void bkrfs_prefetch_close(struct bkrfs *fs)
{
	bkrfs_workq_close(fs->prefetch);
}

void bkrfs_prefetch_join(struct bkrfs *fs)
{
	bkrfs_workq_join(fs->prefetch);
}

void bkrfs_prefetch_stop(struct bkrfs *fs)
{
	bkrfs_workq_free(fs->prefetch);
	fs->prefetch = NULL;
}

void bkrfs_prefetch_walk(struct bkrfs *fs, const bkr_id *dir_tree, bkrfs_ino dir_ino)
{
	struct job j = { .dir = true, .walked = true, .id = *dir_tree, .index = 0, .ino = dir_ino };

	if (fs->prefetch && expect_take(&fs->expect, dir_tree))
		look_ahead_queue(fs, &j);
}

void bkrfs_prefetch_dir(struct bkrfs *fs, const bkr_id *dir_tree, uint64_t next, bkrfs_ino dir_ino)
{
	struct job j = { .dir = true, .id = *dir_tree, .index = next, .ino = dir_ino };

	look_ahead_queue(fs, &j);
}

bool bkrfs_prefetch_after(struct bkrfs *fs, const bkrfs_layout *l, uint64_t off, uint64_t end,
			  uint64_t *next_seq)
{
	uint64_t prev = __atomic_exchange_n(next_seq, end, __ATOMIC_RELAXED);
	struct job jobs[PREFETCH_DEPTH];
	size_t njobs = 0;
	bkrfs_extent x;
	uint64_t pos = end;

	/* Streaming when this read starts near where the last one ended: the
	 * kernel's asynchronous readahead keeps several reads in flight, so
	 * they arrive slightly out of order. */
	if (end == off || (prev == UINT64_MAX ? off != 0 : off + PREFETCH_SLACK < prev || off > prev + PREFETCH_SLACK))
		return false;
	if (!fs->prefetch)
		return true;
	/* the chunks holding the next PREFETCH_DEPTH pieces of data: decoding
	 * them (and waiting for the disk) overlaps with the reader */
	for (int k = 0; k < PREFETCH_DEPTH && pos < l->size; k++) {
		if (!bkrfs_layout_piece(l, pos, l->size - pos, &x))
			break;
		if (!x.hole) {
			struct job j = { .dir = false, .id = l->chunks[x.chunk].id };
			if (!bkrfs_cache_contains(fs->chunks, &j.id))
				jobs[njobs++] = j;
		} else {
			k--; /* a hole costs nothing: look past it */
		}
		pos += x.len;
	}
	enqueue(fs, jobs, njobs);
	return true;
}
