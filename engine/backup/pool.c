/** @file
 * The worker pool of a backup run: a bounded queue of files (opened by the
 * scanner) and a queue of chunk jobs (hash + compress + put) that lets one
 * big file use every core; the calling thread joins in after its scan.
 * A chunk job points into the reading worker's buffer, which it holds by a
 * reference (no copy); buffers are recycled through a free list.  A worker
 * taking a file asks the disk for the first bytes of the files queued behind
 * it (the kernel reads ahead within a file, not into the next one).
 */
#include "backup_i.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bkr/compress.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/store.h"

int bkr_bk_put_data(bctx *c, const bkr_id *id, const uint8_t *data, size_t len, int level)
{
	bool is_new = false;
	uint32_t stored = 0;
	int err = bkr_writer_put_level(c->w, BKR_BLOB_DATA, id, data, len, level, &is_new, &stored);
	if (err < 0)
		return err;
	bkr_bk_note_blob(c, id, len, is_new, stored);
	return 0;
}

/* A free read buffer, or NULL when the free list is empty (c->mu held). */
static rbuf *rbuf_pop(bctx *c)
{
	rbuf *b = c->rfree;
	if (b) {
		c->rfree = b->next;
		c->nrfree--;
		b->next = NULL;
		b->refs = 1;
	}
	return b;
}

static rbuf *rbuf_new(void)
{
	rbuf *b = malloc(sizeof(*b) + BKR_BK_READ_BUF + 1);
	if (b) {
		b->next = NULL;
		b->refs = 1;
	}
	return b;
}

/* Let go of one reference to @p b: the last one frees it or keeps it for
 * reuse (c->mu held). */
static void rbuf_put(bctx *c, rbuf *b)
{
	if (--b->refs > 0)
		return;
	if (c->nrfree < c->rfree_max) {
		b->next = c->rfree;
		c->rfree = b;
		c->nrfree++;
	} else {
		free(b);
	}
}

int bkr_bk_rbuf_shift(worker *wk, size_t start, size_t end)
{
	bctx *c = wk->c;
	rbuf *nb = NULL;

	pthread_mutex_lock(&c->mu);
	bool shared = wk->rb->refs > 1;
	if (shared)
		nb = rbuf_pop(c);
	pthread_mutex_unlock(&c->mu);
	if (!shared) {
		memmove(wk->rb->data, wk->rb->data + start, end - start);
		return 0;
	}
	/* chunk jobs still read the old one: the tail moves to another */
	if (!nb && !(nb = rbuf_new()))
		return bkr_error_oom();
	memcpy(nb->data, wk->rb->data + start, end - start);
	pthread_mutex_lock(&c->mu);
	rbuf_put(c, wk->rb);
	pthread_mutex_unlock(&c->mu);
	wk->rb = nb;
	return 0;
}

/*
 * Store chunk @p no of the file @p fc.  A big file of a zstd repository at
 * the default level samples a chunk every BKR_BK_ZSTD_PROBE_EVERY (the first
 * that tells something, then every N-th after it) and stores its chunks at
 * the level the last sample chose (docs/design.md, "Compression"): level 1
 * where it stores within BKR_ZSTD_FAST_SLACK_PCT % of level 2, as on logs.
 * Chunks are stored in any order by any thread: one stored before the sample
 * that precedes it in the file is done takes the level chosen before that.
 */
static int put_chunk(bctx *c, file_ctx *fc, unsigned no, const bkr_id *id, const uint8_t *data, size_t len)
{
	unsigned at = atomic_load(&fc->probe_at);
	if (fc->adapt && no >= at && atomic_compare_exchange_strong(&fc->probe_at, &at, no + BKR_BK_ZSTD_PROBE_EVERY)) {
		int level = bkr_compress_zstd_pick_level(data, len);
		if (level > 0)
			atomic_store(&fc->level, level);
		else
			atomic_store(&fc->probe_at, no + 1); /* random bytes: the next chunk samples */
	}
	return bkr_bk_put_data(c, id, data, len, atomic_load(&fc->level));
}

/* Hash and store a queued chunk.  Once pending drops, the owner may free @p j:
 * nothing of it is touched after the unlock. */
static void run_chunk_job(bctx *c, chunk_job *j)
{
	int err;
	if (!j->id_set)
		bkr_writer_blob_id(c->w, j->data, j->len, &j->id);
	err = j->err = put_chunk(c, j->owner, j->no, &j->id, j->data, j->len);
	if (err < 0)
		bkr_bk_fatal(c, err);
	pthread_mutex_lock(&c->mu);
	rbuf_put(c, j->rb);
	j->rb = NULL;
	j->data = NULL;
	if (err < 0 && !j->owner->err)
		j->owner->err = err;
	j->owner->pending--;
	pthread_cond_broadcast(&c->cv_done);
	pthread_mutex_unlock(&c->mu);
}

/* Pop a chunk job; c->mu held. */
static chunk_job *pop_chunk(bctx *c)
{
	chunk_job *j = c->cq_head;
	if (j) {
		c->cq_head = j->next;
		if (!c->cq_head)
			c->cq_tail = NULL;
		c->cq_n--;
	}
	return j;
}

int bkr_bk_refs_push(worker *wk, chunk_job *job, const bkr_id *id, size_t len)
{
	if (wk->nrefs == wk->refcap) {
		size_t cap = wk->refcap ? wk->refcap * 2 : 64;
		bkr_chunk_ref *r = realloc(wk->refs, cap * sizeof(*r));
		if (!r)
			return bkr_error_oom();
		wk->refs = r;
		chunk_job **j = realloc(wk->jobs, cap * sizeof(*j));
		if (!j)
			return bkr_error_oom();
		wk->jobs = j;
		wk->refcap = cap;
	}
	if (id)
		wk->refs[wk->nrefs].id = *id;
	wk->refs[wk->nrefs].length = (uint32_t)len;
	wk->jobs[wk->nrefs] = job;
	wk->nrefs++;
	return 0;
}

int bkr_bk_holes_push(worker *wk, uint64_t off, uint64_t len)
{
	if (wk->nholes == wk->holecap) {
		size_t cap = wk->holecap ? wk->holecap * 2 : 16;
		bkr_hole *h = realloc(wk->holes, cap * sizeof(*h));
		if (!h)
			return bkr_error_oom();
		wk->holes = h;
		wk->holecap = cap;
	}
	wk->holes[wk->nholes].offset = off;
	wk->holes[wk->nholes].length = len;
	wk->nholes++;
	return 0;
}

/* Store one chunk: through the pool when there is room, else here. */
int bkr_bk_emit_chunk(worker *wk, file_ctx *fc, const uint8_t *data, size_t len)
{
	bctx *c = wk->c;
	chunk_job *j = NULL;
	bkr_id id;
	int err;

	/* the chunker's pass fed the chunk's bytes to its id (read.c) */
	if (fc->paired) {
		bkr_writer_blob_id_end(c->w, wk->idh, &id);
		bkr_writer_blob_id_start(c->w, wk->idh);
	}
	pthread_mutex_lock(&c->mu);
	bool room = c->cq_n < c->cq_max && c->nthreads > 1;
	pthread_mutex_unlock(&c->mu);
	if (room && (j = calloc(1, sizeof(*j)))) {
		/* the job reads the chunk where it lies in wk->rb, which it holds */
		if (fc->paired) {
			j->id = id;
			j->id_set = true;
		}
		j->rb = wk->rb;
		j->data = data;
		j->len = len;
		j->no = fc->nchunks++;
		j->owner = fc;
		if ((err = bkr_bk_refs_push(wk, j, NULL, len)) < 0) {
			free(j);
			return err;
		}
		pthread_mutex_lock(&c->mu);
		wk->rb->refs++;
		fc->pending++;
		if (c->cq_tail)
			c->cq_tail->next = j;
		else
			c->cq_head = j;
		c->cq_tail = j;
		c->cq_n++;
		pthread_cond_signal(&c->cv_job);
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	if (!fc->paired)
		bkr_writer_blob_id(c->w, data, len, &id);
	if ((err = put_chunk(c, fc, fc->nchunks++, &id, data, len)) < 0)
		return err;
	return bkr_bk_refs_push(wk, NULL, &id, len);
}

/* Wait for the chunk jobs of @p fc, helping with queued chunk jobs meanwhile. */
void bkr_bk_wait_chunks(worker *wk, file_ctx *fc)
{
	bctx *c = wk->c;

	pthread_mutex_lock(&c->mu);
	while (fc->pending > 0) {
		chunk_job *j = pop_chunk(c);
		if (j) {
			pthread_mutex_unlock(&c->mu);
			run_chunk_job(c, j);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		pthread_cond_wait(&c->cv_done, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
}

void bkr_bk_drop_jobs(worker *wk)
{
	for (size_t i = 0; i < wk->nrefs; i++) {
		if (wk->jobs[i]) {
			wk->refs[i].id = wk->jobs[i]->id;
			free(wk->jobs[i]);
			wk->jobs[i] = NULL;
		}
	}
}

#define READ_AHEAD_FILES 8 /* files advised at most per file taken */

/*
 * Pick the queued files to ask of the disk now (c->mu held): the first bytes
 * (a read buffer's worth at most) of the files queued behind the one just
 * taken, until BKR_BK_READ_AHEAD bytes lie ahead of the workers.  Without it
 * a cold cache makes each file's first pread wait for the disk while the
 * other cores have nothing to do: the kernel reads ahead within a file, not
 * into the next one.  The caller advises them after the unlock; a file taken,
 * read and closed by another worker meanwhile is at worst another descriptor
 * advised (advice only: nothing read or changed).
 */
static size_t pick_read_ahead(bctx *c, int *fds, off_t *lens)
{
	uint64_t ahead = 0;
	size_t k = 0;

	for (size_t i = 0; i < c->fq_n && ahead < BKR_BK_READ_AHEAD && k < READ_AHEAD_FILES; i++) {
		file_job *q = &c->fq[(c->fq_head + i) % c->fq_cap];
		uint64_t len = (uint64_t)q->st.st_size < BKR_BK_READ_BUF ? (uint64_t)q->st.st_size : BKR_BK_READ_BUF;
		ahead += len;
		if (!q->advised && len > 0) {
			q->advised = true;
			fds[k] = q->fd;
			lens[k++] = (off_t)len;
		}
	}
	return k;
}

/* The worker loop; @p main is the calling thread helping after its scan. */
static void work_loop(worker *wk, bool main)
{
	bctx *c = wk->c;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		chunk_job *j = pop_chunk(c);
		if (j) {
			pthread_mutex_unlock(&c->mu);
			run_chunk_job(c, j);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (c->fq_n > 0) {
			file_job fj = c->fq[c->fq_head];
			c->fq_head = (c->fq_head + 1) % c->fq_cap;
			c->fq_n--;
			c->active++;
			/* the scan waits for a half-empty queue, not for each slot:
			 * one wake-up per fq_cap / 2 files, not one per file */
			if (c->fq_n == c->fq_cap / 2)
				pthread_cond_signal(&c->cv_space);
			bool stop = c->fatal != 0;
			int ra_fd[READ_AHEAD_FILES];
			off_t ra_len[READ_AHEAD_FILES];
			size_t nra = stop ? 0 : pick_read_ahead(c, ra_fd, ra_len);
			pthread_mutex_unlock(&c->mu);
			for (size_t i = 0; i < nra; i++)
				(void)posix_fadvise(ra_fd[i], 0, ra_len[i], POSIX_FADV_WILLNEED);
			if (stop) {
				close(fj.fd);
				fj.n->skip = true;
			} else {
				bkr_bk_read_file(wk, fj.n, fj.fd, &fj.st);
			}
			if (main)
				bkr_bk_progress(c, NULL, false);
			pthread_mutex_lock(&c->mu);
			if (--c->active == 0 && c->stop)
				pthread_cond_broadcast(&c->cv_job);
			/* every queued fd closed: a scan out of descriptors waits for it
			 * (bkr_bk_queue_drain; the scan waits for space only on a full queue) */
			if ((c->active == 0 && c->fq_n == 0) || (c->room_wait && c->fq_n + c->active <= c->room_at))
				pthread_cond_signal(&c->cv_space);
			continue;
		}
		/* A file still being read may queue more chunk jobs: stay for them. */
		if (c->stop && c->active == 0)
			break;
		if (main) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cv_job, &c->mu, &ts);
			pthread_mutex_unlock(&c->mu);
			bkr_bk_progress(c, NULL, false);
			pthread_mutex_lock(&c->mu);
		} else {
			pthread_cond_wait(&c->cv_job, &c->mu);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static void *worker_main(void *arg)
{
	work_loop(arg, false);
	return NULL;
}

static int worker_init(worker *wk, bctx *c)
{
	memset(wk, 0, sizeof(*wk));
	wk->c = c;
	if (!(wk->rb = rbuf_new()) || !(wk->digest = bkr_digest_new(BKR_DIGEST_PLAIN)) || !(wk->idh = bkr_hash_new()))
		return bkr_error_oom();
	return bkr_chunker_new(&wk->chunker, &c->cp);
}

static void worker_fini(worker *wk)
{
	free(wk->rb); /* every chunk job is done: the worker's is its only reference */
	bkr_digest_free(wk->digest);
	bkr_hash_free(wk->idh);
	bkr_chunker_free(wk->chunker);
	free(wk->refs);
	free(wk->jobs);
	free(wk->holes);
}

/* Queue a file for the workers (blocks while the queue is full, until the
 * workers have taken half of it). */
int bkr_bk_queue_file(bctx *c, node *n, int fd, const struct stat *st)
{
	pthread_mutex_lock(&c->mu);
	while (c->fq_n >= c->fq_cap && !c->fatal)
		pthread_cond_wait(&c->cv_space, &c->mu);
	if (c->fatal) {
		/* The failure happened on a worker: its message, not this thread's. */
		int err = bkr_error_set(c->fatal, "%s", c->fatal_msg ? c->fatal_msg : "out of memory");
		pthread_mutex_unlock(&c->mu);
		close(fd);
		return err;
	}
	c->fq[(c->fq_head + c->fq_n) % c->fq_cap] = (file_job){ n, fd, *st, false };
	c->fq_n++;
	pthread_cond_signal(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* The scan's opens without EMFILE after which a lowered fq_lim grows back (half the way). */
#define BK_FD_REGROW 64

int bkr_bk_queue_drain(bctx *c)
{
	int r;

	pthread_mutex_lock(&c->mu);
	r = c->fq_n > 0 || c->active > 0;
	if (r) {
		/* everything held then (the scan's folders and the files, each an fd)
		 * less half the files, room for one file at least and never more than
		 * before: the rest went to descriptors not counted (another thread's,
		 * a moment's); bkr_bk_fd_room gives it back after BK_FD_REGROW opens */
		size_t files = c->fq_n + c->active, lim = c->scan_fds + files - files / 2;
		if (lim < c->fq_lim)
			c->fq_lim = lim;
		c->fq_calm = 0;
	}
	while ((c->fq_n > 0 || c->active > 0) && !c->fatal)
		pthread_cond_wait(&c->cv_space, &c->mu);
	/* a failure on a worker meanwhile: its message, as bkr_bk_queue_file gives it */
	if (c->fatal)
		r = bkr_error_set(c->fatal, "%s", c->fatal_msg ? c->fatal_msg : "out of memory");
	pthread_mutex_unlock(&c->mu);
	return r;
}

/* The limit of open files is too low for this backup: BKR_EIO, one line (@p n: where it found out, or NULL). */
static int fd_too_low(const node *n)
{
	struct rlimit rl;
	char *path = n ? bkr_bk_node_path(n) : NULL;
	unsigned long long lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
	int err = bkr_error_set(BKR_EIO,
				"%s%sthe limit of open files (ulimit -n %llu) is too low for this backup: raise it",
				path ? path : "", path ? ": " : "", lim);
	free(path);
	return err;
}

int bkr_bk_fd_room(bctx *c, const node *n)
{
	int err = 0;

	c->fd_waits = 0; /* a new open */
	/* the limit lowered by an EMFILE that did not come back for a while: half
	 * the way back to the computed one (a new EMFILE lowers it again) */
	if (c->fq_lim < c->fq_max && ++c->fq_calm >= BK_FD_REGROW) {
		c->fq_lim += (c->fq_max - c->fq_lim + 1) / 2;
		c->fq_calm = 0;
	}
	/* far from the limit (the queue full and every worker reading): not asked
	 * (fq_lim and scan_fds change in the scan's thread only) */
	if (c->scan_fds + c->fq_cap + (size_t)c->nthreads < c->fq_lim)
		return 0;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		size_t held = c->fq_n + c->active;
		if (c->fatal || held == 0 || held + c->scan_fds < c->fq_lim)
			break;
		c->room_at = held / 2;
		c->room_wait = true;
		while (c->fq_n + c->active > c->room_at && !c->fatal)
			pthread_cond_wait(&c->cv_space, &c->mu);
		c->room_wait = false;
	}
	if (c->fatal)
		err = bkr_error_set(c->fatal, "%s", c->fatal_msg ? c->fatal_msg : "out of memory");
	else if (c->scan_fds >= c->fq_lim && c->scan_fds < c->fq_max)
		c->fq_lim = c->scan_fds + 1; /* lowered by an EMFILE: the open will say whether it still is short */
	else if (c->scan_fds >= c->fq_lim)
		err = fd_too_low(n);
	pthread_mutex_unlock(&c->mu);
	return err;
}

/* What a backup holds open at most besides the scan's open directories and
 * the files queued or being read: stdin, stdout and stderr, the log, the
 * repository's lock and the writer's mark, the writer's packs
 * (BKR_WRITER_FDS), and one short open of the scan at a time (a parent
 * tree's pack, a user's or group's name, /proc); and the stores' cache
 * (bkr_store_local_cache_max) and an S3 repository's connections
 * (bkr_store_fd_max) for BK_REQUESTERS threads: the scan (a parent's trees,
 * then the index and manifest), the writer's publisher (packs), and the
 * refreshers of the lock and of the mark. */
#define BK_FD_RESERVE (3 + 1 + 2 + BKR_WRITER_FDS + 1)
#define BK_REQUESTERS 4
/* what the scan needs at least: a source's directory, its listing, a file */
#define BK_FD_LEAST 3

int bkr_bk_pool_start(bctx *c)
{
	struct rlimit rl;
	int err;

	c->fq_cap = (size_t)c->nthreads * 8 + 16;
	/* each file queued or being read holds an fd, and so does each directory
	 * the scan has open: the limit of open files less the rest of the
	 * backup's, counted, so that a pack's temporary never finds none left
	 * (bkr_bk_queue_drain lowers it when the scan runs out all the same);
	 * below what the scan needs at least, the backup stops now */
	c->fq_lim = SIZE_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t reserve = BK_FD_RESERVE + bkr_store_local_cache_max() +
				 bkr_store_fd_max(bkr_repo_store(c->repo), BK_REQUESTERS);
		c->fq_lim = rl.rlim_cur > reserve ? (size_t)rl.rlim_cur - reserve : 0;
	}
	if (c->fq_lim < BK_FD_LEAST)
		return fd_too_low(NULL);
	c->fq_max = c->fq_lim;
	c->cq_max = (size_t)c->nthreads * 2;
	c->rfree_max = (size_t)c->nthreads + 1;
	if (!(c->fq = calloc(c->fq_cap, sizeof(*c->fq))) ||
	    !(c->workers = calloc((size_t)c->nthreads + 1, sizeof(*c->workers))))
		return bkr_error_oom();
	for (int i = 0; i <= c->nthreads; i++) {
		if ((err = worker_init(&c->workers[i], c)) < 0)
			return err;
	}
	/* workers[0] is the calling thread */
	for (int i = 1; i <= c->nthreads; i++) {
		if (pthread_create(&c->workers[i].tid, NULL, worker_main, &c->workers[i]) != 0)
			return bkr_error_set(BKR_ERROR, "backup: cannot start worker thread");
		c->workers[i].started = true;
	}
	return 0;
}

void bkr_bk_pool_finish(bctx *c)
{
	if (!c->workers)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
	work_loop(&c->workers[0], true);
	for (int i = 1; i <= c->nthreads; i++) {
		if (c->workers[i].started)
			pthread_join(c->workers[i].tid, NULL);
		c->workers[i].started = false;
	}
}

void bkr_bk_pool_free(bctx *c)
{
	for (size_t i = 0; i < c->fq_n; i++)
		close(c->fq[(c->fq_head + i) % c->fq_cap].fd);
	c->fq_n = 0;
	if (c->workers)
		for (int i = 0; i <= c->nthreads; i++)
			worker_fini(&c->workers[i]);
	free(c->workers);
	c->workers = NULL;
	free(c->fq);
	c->fq = NULL;
	while (c->rfree) {
		rbuf *b = c->rfree;
		c->rfree = b->next;
		free(b);
	}
	c->nrfree = 0;
}
