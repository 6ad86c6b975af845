/** @file
 * The watcher and the prefetch workers (watch.h).
 *
 * The watcher wakes every watch_ms (default 2 s), lists index/, backups/ and
 * runs/ (names only), and when something changed: reloads the index first
 * (new index files are published before new manifests), builds a new view
 * or runs catalog, swaps it in under view_lock, and then - outside every lock
 * and outside any request handler - tells the kernel to drop only the
 * top-level entries that changed (by-id, by-date and its days, latest,
 * recovered).  Backups are immutable, so nothing below by-id/<id> is ever
 * invalidated.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkr/error.h"
#include "watch.h"

/* ---- listing names -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
	if (!v)
		return; /* handed over (e.g. to a bkrfs_runs) */
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
}

/* sorted names in REPO/@p sub ending in @p suffix (stripped); a missing dir is empty */
static int list_names(struct bkrfs *fs, const char *sub, const char *suffix, char ***out, size_t *n)
{
	char path[PATH_MAX];
	size_t cap = 0, sl = strlen(suffix);
	struct dirent *de;
	char **v = NULL;
	DIR *d;

	*out = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/%s", bkr_repo_path(fs->repo), sub);
	if (!(d = opendir(path)))
		return errno == ENOENT ? 0 : bkr_error_set_errno(errno, "%s", path);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= sl || strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		if (*n == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*nv));
			if (!nv)
				goto oom;
			v = nv;
		}
		if (!(v[*n] = strndup(de->d_name, len - sl)))
			goto oom;
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_str);
	*out = v;
	return 0;
oom:
	closedir(d);
	free_names(v, *n);
	*n = 0;
	return bkr_error_oom();
}

static bool names_equal(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t k = 0; k < na; k++)
		if (strcmp(a[k], b[k]) != 0)
			return false;
	return true;
}

/* ---- runs ------------------------------------------------------------------- */

void bkrfs_runs_free(struct bkrfs_runs *r)
{
	if (!r)
		return;
	for (size_t k = 0; k < r->n; k++)
		bkrfs_snap_unref(r->runs[k]);
	free(r->runs);
	free_names(r->names, r->nnames);
	free(r);
}

static int build_runs(struct bkrfs *fs, char **names, size_t nnames, struct bkrfs_runs **out)
{
	bkr_manifest_list l = { 0 };
	struct bkrfs_runs *r;
	size_t bad = 0;
	int err;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return bkr_error_oom();
	r->names = names;
	r->nnames = nnames;
	if ((err = bkr_repo_list(fs->repo, true, &l, &bad)) < 0) {
		bkrfs_runs_free(r);
		return err;
	}
	if (l.n && !(r->runs = calloc(l.n, sizeof(*r->runs)))) {
		bkr_manifest_list_free(&l);
		bkrfs_runs_free(r);
		return bkr_error_oom();
	}
	for (size_t k = 0; k < l.n; k++) {
		bkrfs_snap *s = bkrfs_snap_new(l.items[k]->backup_id, true, l.items[k]->time_ns / 1000000000);
		if (!s) {
			bkr_manifest_list_free(&l);
			bkrfs_runs_free(r);
			return bkr_error_oom();
		}
		s->m = l.items[k];
		l.items[k] = NULL;
		r->runs[r->n++] = s;
	}
	bkr_manifest_list_free(&l);
	*out = r;
	return 0;
}

/* ---- refresh ------------------------------------------------------------------ */

int bkrfs_watch_refresh(struct bkrfs *fs, bool runs)
{
	char **names = NULL;
	size_t n = 0;
	int err = 0;

	pthread_mutex_lock(&fs->load_lock);
	pthread_rwlock_rdlock(&fs->view_lock);
	if (runs ? fs->runs != NULL : fs->view != NULL) {
		pthread_mutex_unlock(&fs->load_lock);
		return 0;
	}
	pthread_rwlock_unlock(&fs->view_lock);
	if ((err = list_names(fs, runs ? "runs" : "backups", ".json", &names, &n)) < 0)
		goto done;
	if (runs) {
		struct bkrfs_runs *r;
		if ((err = build_runs(fs, names, n, &r)) < 0) {
			names = NULL; /* freed with r */
			goto done;
		}
		names = NULL;
		pthread_rwlock_wrlock(&fs->view_lock);
		fs->runs = r;
		pthread_rwlock_unlock(&fs->view_lock);
	} else {
		bkrfs_view *v;
		if ((err = bkrfs_build_view(fs, names, n, &v)) < 0)
			goto done;
		pthread_rwlock_wrlock(&fs->view_lock);
		fs->view = v;
		pthread_rwlock_unlock(&fs->view_lock);
	}
done:
	free_names(names, n);
	if (err == 0)
		pthread_rwlock_rdlock(&fs->view_lock);
	pthread_mutex_unlock(&fs->load_lock);
	return err;
}

/* ---- the watcher ---------------------------------------------------------------- */

static void inval_entry(struct bkrfs *fs, bkrfs_ino parent, const char *name)
{
	fuse_lowlevel_notify_inval_entry(fs->session, parent, name, strlen(name));
}

static void inval_inode(struct bkrfs *fs, bkrfs_ino ino)
{
	fuse_lowlevel_notify_inval_inode(fs->session, ino, 0, 0);
}

static void inval_day(struct bkrfs *fs, const char *day)
{
	uint8_t key[32];
	size_t len = strlen(day);

	if (len + 2 > sizeof(key))
		return;
	key[0] = 'D';
	memcpy(key + 1, day, len);
	key[len + 1] = 0;
	inval_inode(fs, bkrfs_ino_of_key(key, len + 2));
	inval_entry(fs, BKRFS_INO_BY_DATE, day);
}

/* tell the kernel what changed between two views */
static void notify_view(struct bkrfs *fs, const bkrfs_view *old, const bkrfs_view *nv)
{
	size_t i = 0, j = 0;

	inval_inode(fs, BKRFS_INO_BY_ID);
	inval_inode(fs, BKRFS_INO_BY_DATE);
	inval_inode(fs, BKRFS_INO_ROOT);
	if (!old->latest || !nv->latest || strcmp(old->latest, nv->latest) != 0)
		inval_entry(fs, BKRFS_INO_ROOT, "latest");
	/* merge the sorted id lists: every id added or removed */
	while (i < old->n || j < nv->n) {
		int c = i >= old->n ? 1 : j >= nv->n ? -1 : strcmp(old->b[i].id, nv->b[j].id);
		const bkrfs_view_backup *x = c < 0 ? &old->b[i] : &nv->b[j];
		if (c == 0) {
			i++;
			j++;
			continue;
		}
		inval_entry(fs, BKRFS_INO_BY_ID, x->id);
		if (x->parsed && x->day[0])
			inval_day(fs, x->day);
		if (c < 0)
			i++;
		else
			j++;
	}
}

static void notify_runs(struct bkrfs *fs, const struct bkrfs_runs *old, const struct bkrfs_runs *nr)
{
	inval_inode(fs, BKRFS_INO_RECOVERED);
	inval_entry(fs, BKRFS_INO_RECOVERED, "latest");
	for (size_t k = 0; k < old->n; k++) {
		bool kept = false;
		for (size_t m = 0; m < nr->n && !kept; m++)
			kept = !strcmp(old->runs[k]->id, nr->runs[m]->id);
		if (!kept)
			inval_entry(fs, BKRFS_INO_RECOVERED, old->runs[k]->id);
	}
	for (size_t m = 0; m < nr->n; m++)
		inval_entry(fs, BKRFS_INO_RECOVERED, nr->runs[m]->id);
}

static void watch_tick(struct bkrfs *fs)
{
	char **names = NULL;
	size_t n = 0;
	bool have;

	/* 1. new index files first */
	if (list_names(fs, "index", ".idx", &names, &n) == 0) {
		if (!names_equal(names, n, fs->idx_names, fs->nidx)) {
			if (bkr_repo_reload_index(fs->repo) < 0)
				bkrfs_log(fs, "reloading the index: %s", bkr_error_message());
			free_names(fs->idx_names, fs->nidx);
			fs->idx_names = names;
			fs->nidx = n;
		} else {
			free_names(names, n);
		}
	}
	/* 2. backups */
	pthread_rwlock_rdlock(&fs->view_lock);
	have = fs->view != NULL;
	pthread_rwlock_unlock(&fs->view_lock);
	if (have && list_names(fs, "backups", ".json", &names, &n) == 0) {
		bkrfs_view *nv = NULL, *old;
		bool same;
		pthread_rwlock_rdlock(&fs->view_lock);
		same = fs->view->n == n;
		for (size_t k = 0; same && k < n; k++)
			same = bkrfs_view_find(fs->view, names[k]) != NULL;
		pthread_rwlock_unlock(&fs->view_lock);
		if (!same) {
			bkr_repo_reload_index(fs->repo); /* a backup's index precedes its manifest */
			if (bkrfs_build_view(fs, names, n, &nv) == 0) {
				pthread_mutex_lock(&fs->load_lock);
				pthread_rwlock_wrlock(&fs->view_lock);
				old = fs->view;
				fs->view = nv;
				pthread_rwlock_unlock(&fs->view_lock);
				pthread_mutex_unlock(&fs->load_lock);
				notify_view(fs, old, nv);
				bkrfs_view_free(old);
			}
		}
		free_names(names, n);
	}
	/* 3. recovery runs */
	pthread_rwlock_rdlock(&fs->view_lock);
	have = fs->runs != NULL;
	pthread_rwlock_unlock(&fs->view_lock);
	if (have && list_names(fs, "runs", ".json", &names, &n) == 0) {
		bool same;
		pthread_rwlock_rdlock(&fs->view_lock);
		same = names_equal(names, n, fs->runs->names, fs->runs->nnames);
		pthread_rwlock_unlock(&fs->view_lock);
		if (!same) {
			struct bkrfs_runs *nr, *old;
			bkr_repo_reload_index(fs->repo);
			if (build_runs(fs, names, n, &nr) == 0) {
				pthread_mutex_lock(&fs->load_lock);
				pthread_rwlock_wrlock(&fs->view_lock);
				old = fs->runs;
				fs->runs = nr;
				pthread_rwlock_unlock(&fs->view_lock);
				pthread_mutex_unlock(&fs->load_lock);
				notify_runs(fs, old, nr);
				bkrfs_runs_free(old);
			}
		} else {
			free_names(names, n);
		}
	}
}

/* watch_lock held: wait @p ms or until stopping; returns false when stopping */
static bool wait_ms_locked(struct bkrfs *fs, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (!fs->stopping)
		pthread_cond_timedwait(&fs->watch_cond, &fs->watch_lock, &ts);
	return !fs->stopping;
}

static void *watcher_main(void *arg)
{
	struct bkrfs *fs = arg;
	unsigned ms = fs->o.watch_ms ? fs->o.watch_ms : 2000;

	pthread_mutex_lock(&fs->watch_lock);
	while (wait_ms_locked(fs, ms)) {
		pthread_mutex_unlock(&fs->watch_lock);
		watch_tick(fs);
		pthread_mutex_lock(&fs->watch_lock);
	}
	pthread_mutex_unlock(&fs->watch_lock);
	return NULL;
}

/*
 * The pruner keeps the inode table bounded while something walks millions
 * of entries: the kernel holds an inode (and so do we) for every dentry it
 * caches, and only memory pressure would make it let go.  Ten times a second,
 * when the table is over -o max_inodes, the dentries of the least recently
 * used files and symlinks are invalidated (never directories: getcwd() fails
 * in an invalidated one); the kernel forgets the inodes nobody uses, and
 * forget frees them here.  An open file keeps working (its next open looks
 * it up again and gets the same inode number).
 */
static void *pruner_main(void *arg)
{
	struct bkrfs *fs = arg;
	size_t max = fs->o.max_inodes ? fs->o.max_inodes : BKRFS_MAX_INODES_DEFAULT;

	pthread_mutex_lock(&fs->watch_lock);
	while (wait_ms_locked(fs, 100)) {
		bkrfs_prune *p;
		size_t n;
		pthread_mutex_unlock(&fs->watch_lock);
		n = bkrfs_itable_prune(fs->itable, max, &p);
		if (n && fs->o.debug)
			bkrfs_log(fs, "inode table over %zu: the kernel is asked to forget %zu", max, n);
		for (size_t k = 0; k < n; k++) {
			fuse_lowlevel_notify_inval_entry(fs->session, p[k].parent, p[k].name, strlen(p[k].name));
			free(p[k].name);
		}
		free(p);
		pthread_mutex_lock(&fs->watch_lock);
	}
	pthread_mutex_unlock(&fs->watch_lock);
	return NULL;
}

int bkrfs_watcher_start(struct bkrfs *fs)
{
	int e;

	list_names(fs, "index", ".idx", &fs->idx_names, &fs->nidx);
	if ((e = pthread_create(&fs->watcher, NULL, watcher_main, fs)) != 0)
		return bkr_error_set_errno(e, "starting the watcher thread");
	fs->watcher_running = true;
	if ((e = pthread_create(&fs->pruner, NULL, pruner_main, fs)) != 0)
		return bkr_error_set_errno(e, "starting the inode pruner thread");
	fs->pruner_running = true;
	return 0;
}

void bkrfs_watcher_close(struct bkrfs *fs)
{
	pthread_mutex_lock(&fs->watch_lock);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->watch_cond);
	pthread_mutex_unlock(&fs->watch_lock);
}

void bkrfs_watcher_stop(struct bkrfs *fs)
{
	if (!fs->watcher_running)
		return;
	bkrfs_watcher_close(fs);
	pthread_join(fs->watcher, NULL);
	fs->watcher_running = false;
	if (fs->pruner_running)
		pthread_join(fs->pruner, NULL);
	fs->pruner_running = false;
	free_names(fs->idx_names, fs->nidx);
	fs->idx_names = NULL;
	fs->nidx = 0;
}

/* ---- work queues ------------------------------------------------------------------- */

#define WORKQ_THREADS_MAX 8
#define WORKQ_JOB_MAX 96              /**< bytes of one job */

/*
 * A bounded ring of fixed-size jobs served by a few threads: the prefetch
 * workers and the page-cache store use one each.  A job that does not fit
 * is dropped (all of them are hints); jobs left at stop go to drop().
 */
struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *q;          /**< cap jobs of size bytes; guarded by lock */
	size_t size, cap, head, n;
	bool stop;
	pthread_t th[WORKQ_THREADS_MAX];
	int nth;
	struct bkrfs *fs;
	void (*run)(struct bkrfs *fs, void *job);
	void (*drop)(struct bkrfs *fs, void *job); /**< may be NULL */
};

static void *workq_main(void *arg)
{
	struct workq *wq = arg;
	unsigned char job[WORKQ_JOB_MAX];

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		while (!wq->stop && wq->n == 0)
			pthread_cond_wait(&wq->cond, &wq->lock);
		if (wq->stop)
			break;
		memcpy(job, wq->q + wq->head * wq->size, wq->size);
		wq->head = (wq->head + 1) % wq->cap;
		wq->n--;
		pthread_mutex_unlock(&wq->lock);
		wq->run(wq->fs, job);
		pthread_mutex_lock(&wq->lock);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

static struct workq *workq_start(struct bkrfs *fs, size_t size, size_t cap, int threads,
				 void (*run)(struct bkrfs *, void *), void (*drop)(struct bkrfs *, void *))
{
	struct workq *wq = calloc(1, sizeof(*wq));

	if (!wq || size > WORKQ_JOB_MAX || !(wq->q = malloc(size * cap))) {
		free(wq);
		bkr_error_oom();
		return NULL;
	}
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->size = size;
	wq->cap = cap;
	wq->fs = fs;
	wq->run = run;
	wq->drop = drop;
	for (int k = 0; k < threads && k < WORKQ_THREADS_MAX; k++) {
		if (pthread_create(&wq->th[k], NULL, workq_main, wq) != 0)
			break;
		wq->nth++;
	}
	if (!wq->nth) {
		pthread_cond_destroy(&wq->cond);
		pthread_mutex_destroy(&wq->lock);
		free(wq->q);
		free(wq);
		bkr_error_set(BKR_EIO, "cannot start a worker thread");
		return NULL;
	}
	return wq;
}

/* Refuse new jobs from now on (workq_push queues nothing). */
static void workq_close(struct workq *wq)
{
	if (!wq)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stop = true;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}

/* Close @p wq and wait for its threads to finish the job each is doing. */
static void workq_join(struct workq *wq)
{
	if (!wq)
		return;
	workq_close(wq);
	for (int k = 0; k < wq->nth; k++)
		pthread_join(wq->th[k], NULL);
	wq->nth = 0;
}

/* Join, then drop the jobs left and free @p wq. */
static void workq_free(struct workq *wq)
{
	if (!wq)
		return;
	workq_join(wq);
	for (; wq->n; wq->n--, wq->head = (wq->head + 1) % wq->cap)
		if (wq->drop)
			wq->drop(wq->fs, wq->q + wq->head * wq->size);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq->q);
	free(wq);
}

/* Queue the @p n jobs at @p jobs, each unless the ring is full or (with
 * @p same) an equal job is queued already, under one lock and with one
 * wake-up; returns how many were queued. */
static size_t workq_push(struct workq *wq, const void *jobs, size_t n,
			 bool (*same)(const void *, const void *))
{
	size_t queued = 0;

	if (!wq)
		return 0;
	pthread_mutex_lock(&wq->lock);
	for (size_t i = 0; i < n && wq->n < wq->cap && !wq->stop; i++) {
		const unsigned char *job = (const unsigned char *)jobs + i * wq->size;
		size_t k = 0;
		while (same && k < wq->n && !same(wq->q + (wq->head + k) % wq->cap * wq->size, job))
			k++;
		if (same && k < wq->n)
			continue;
		memcpy(wq->q + (wq->head + wq->n) % wq->cap * wq->size, job, wq->size);
		wq->n++;
		queued++;
	}
	if (queued > 1)
		pthread_cond_broadcast(&wq->cond);
	else if (queued)
		pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	return queued;
}

/* ---- prefetch ---------------------------------------------------------------------- */

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
	return workq_push(fs->prefetch, jobs, n, job_same);
}

/* subdirectories a look-ahead passed: a walker will list them next */
#define EXPECT_MAX 64
static struct {
	pthread_mutex_t lock;
	bkr_id id[EXPECT_MAX];   /**< ring of top tree ids; guarded by lock */
	unsigned next;
} expect = { PTHREAD_MUTEX_INITIALIZER, { { { 0 } } }, 0 };

static void expect_add(const bkr_id *tree)
{
	pthread_mutex_lock(&expect.lock);
	for (unsigned k = 0; k < EXPECT_MAX; k++)
		if (!memcmp(expect.id[k].b, tree->b, BKR_ID_SIZE))
			goto out;
	expect.id[expect.next++ % EXPECT_MAX] = *tree;
out:
	pthread_mutex_unlock(&expect.lock);
}

/* true (once) when @p tree was expected */
static bool expect_take(const bkr_id *tree)
{
	bool found = false;

	pthread_mutex_lock(&expect.lock);
	for (unsigned k = 0; k < EXPECT_MAX && !found; k++)
		if (!memcmp(expect.id[k].b, tree->b, BKR_ID_SIZE)) {
			memset(&expect.id[k], 0, sizeof(expect.id[k]));
			found = true;
		}
	pthread_mutex_unlock(&expect.lock);
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
				expect_add(&e.subtree);
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

static void prefetch_run(struct bkrfs *fs, void *job)
{
	const struct job *j = job;
	bkrfs_cache_entry *e;
	void *v;

	if (j->dir) {
		look_ahead(fs, j);
	} else if (j->ino) {
		if (bkrfs_cache_get(fs->chunks, &j->id, &e, &v) == 0) {
			bkrfs_store_chunk_value(fs, j->ino, e, v, j->len);
			bkrfs_cache_release(fs->chunks, e);
		}
	} else if (!bkrfs_cache_contains(fs->chunks, &j->id) && bkrfs_cache_get(fs->chunks, &j->id, &e, &v) == 0) {
		bkrfs_cache_release(fs->chunks, e);
	}
	bkr_error_clear(); /* a bad chunk is reported by the read that needs it */
}

int bkrfs_prefetch_start(struct bkrfs *fs, int threads)
{
	struct workq *wq = workq_start(fs, sizeof(struct job), PREFETCH_QUEUE, threads, prefetch_run, NULL);

	fs->prefetch = wq;
	return wq ? 0 : -1;
}

void bkrfs_prefetch_close(struct bkrfs *fs)
{
	workq_close(fs->prefetch);
}

void bkrfs_prefetch_join(struct bkrfs *fs)
{
	workq_join(fs->prefetch);
}

void bkrfs_prefetch_stop(struct bkrfs *fs)
{
	workq_free(fs->prefetch);
	fs->prefetch = NULL;
}

void bkrfs_prefetch_walk(struct bkrfs *fs, const bkr_id *dir_tree, bkrfs_ino dir_ino)
{
	struct job j = { .dir = true, .walked = true, .id = *dir_tree, .index = 0, .ino = dir_ino };

	if (fs->prefetch && expect_take(dir_tree))
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

/* ---- page-cache store ------------------------------------------------------------ */

#define STORE_QUEUE 64

struct store_job {
	bkrfs_ino ino;
	uint64_t off;
	bkrfs_cache_entry *ent;   /**< a reference to the chunk */
	const uint8_t *buf;
	size_t len;
};

/* a job done or left at stop: its reference to the chunk goes */
static void store_drop(struct bkrfs *fs, void *job)
{
	bkrfs_cache_release(fs->chunks, ((struct store_job *)job)->ent);
}

/*
 * Put @p len bytes at @p buf into the page cache of @p ino at @p off.  May
 * wait for pages locked by reads in flight, which the request workers
 * answer: so never called from a request worker, nor while holding a chunk
 * being loaded (a reader may be waiting for it).  ENOENT: the kernel has
 * not made the inode yet (a readdirplus reply is turned into inodes by the
 * lister after our reply), so try again shortly, a few times.
 */
static void store_pages(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, const uint8_t *buf, size_t len)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].mem = (void *)buf;
	for (unsigned t = 0; t < 4; t++) {
		if (fuse_lowlevel_notify_store(fs->session, ino, (off_t)off, &bv, 0) != -ENOENT)
			break;
		usleep(1000u << t);
	}
}

static void store_run(struct bkrfs *fs, void *job)
{
	const struct store_job *j = job;

	store_pages(fs, j->ino, j->off, j->buf, j->len);
	store_drop(fs, job);
}

int bkrfs_store_start(struct bkrfs *fs)
{
	struct workq *wq = workq_start(fs, sizeof(struct store_job), STORE_QUEUE, 1, store_run, store_drop);

	fs->store = wq;
	return wq ? 0 : -1;
}

void bkrfs_store_close(struct bkrfs *fs)
{
	workq_close(fs->store);
}

void bkrfs_store_join(struct bkrfs *fs)
{
	workq_join(fs->store);
}

void bkrfs_store_stop(struct bkrfs *fs)
{
	workq_free(fs->store);
	fs->store = NULL;
}

void bkrfs_store_chunk(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, bkrfs_cache_entry *ent,
		       const uint8_t *buf, size_t len, bool now)
{
	struct store_job j = { ino, off, ent, buf, len };

	if (!fs->store || __atomic_load_n(&fs->closing, __ATOMIC_ACQUIRE) || bkrfs_cache_mark(fs->chunks, ent))
		return; /* no thread, shutting down, or stored since it was loaded */
	if (now) {
		store_pages(fs, ino, off, buf, len);
		return;
	}
	bkrfs_cache_ref(fs->chunks, ent);
	if (!workq_push(fs->store, &j, 1, NULL))
		bkrfs_cache_release(fs->chunks, ent);
}
