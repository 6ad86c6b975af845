/** @file
 * Taking a backup (DESIGN §3, backup.h).
 *
 * Three phases, overlapping:
 *
 *  1. The calling thread walks each source depth-first (an explicit heap
 *     stack of directory fds, never following symlinks: openat/fstatat with
 *     O_NOFOLLOW relative to the directory fd), lstat's every entry, reads
 *     link targets and xattrs, and builds an in-memory tree of nodes.  With
 *     a parent backup it looks each regular file up in the parent's tree and
 *     takes size/mtime/ctime/inode matches from it without reading (the racy
 *     clean rule excepted).  Every other regular file is opened right away
 *     and queued, with its fd, for the workers.
 *  2. A pool of workers reads the queued files: small files in one go (the
 *     content hash is the chunk id), larger ones through the chunker with a
 *     streaming content hash, handing chunk jobs (hash + compress + put) to
 *     the pool so one big file uses every core.  A file whose size, mtime or
 *     ctime changed during the read is read again, at most three times.
 *  3. Trees are built bottom-up (iteratively) with bkr_tree_builder, the
 *     writer commits packs then the index, the root tree and every new blob
 *     are checked, and the manifest is published; a shared repository lock
 *     is held throughout.
 */
#include "pathbuf.h"
#include "bkr/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bkr/chunker.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/log.h"
#include "bkr/tree.h"

#define RETRIES 3
#define READ_BUF (8u << 20)
#define RACY_NS 1000000000LL
#define PROGRESS_NS 250000000LL

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

typedef struct chunk_job {
	struct chunk_job *next;
	file_ctx *owner;
	uint8_t *data;
	size_t len;
	bkr_id id;
	int err;
} chunk_job;

typedef struct {
	node *n;
	int fd;
} file_job;

typedef struct bctx bctx;

/* per-file state while a worker reads it */
struct file_ctx {
	bctx *c;
	size_t pending;     /* chunk jobs not done yet (c->mu) */
	int err;            /* first fatal error of its jobs */
};

typedef struct {
	bctx *c;
	pthread_t tid;
	bool started;
	uint8_t *buf;
	bkr_chunker *chunker;
	bkr_hash_ctx *hash;
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

	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_space, cv_done;
	file_job *fq;
	size_t fq_cap, fq_head, fq_n;
	chunk_job *cq_head, *cq_tail;
	size_t cq_n, cq_max;
	uint8_t **bufs;              /* free chunk buffers of cp.max bytes (c->mu) */
	size_t nbufs, bufcap;
	bool stop;
	int fatal;                   /* first fatal error (c->mu) */
	char fatal_msg[512];
	size_t active;               /* files being read by workers (mu) */

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
	name_ent *users[64], *groups[64];
	link_table links;
	int64_t parent_start;
	bool have_parent;
	bkr_pathbuf rel;             /* relative path buffer for excludes */
	bool noatime_ok;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* "source/dir/file" of @p n; malloc'd (NULL on OOM). */
static char *node_path(const node *n)
{
	size_t len = 0;
	for (const node *p = n; p; p = p->parent)
		len += p->name_len + (p->parent ? 1 : 0);
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	s[len] = '\0';
	size_t pos = len;
	for (const node *p = n; p; p = p->parent) {
		pos -= p->name_len;
		memcpy(s + pos, p->name, p->name_len);
		if (p->parent)
			s[--pos] = '/';
	}
	return s;
}

/* Record a warning (any thread). */
static void warnf(bctx *c, const node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warnf(bctx *c, const node *n, const char *fmt, ...)
{
	char msg[1024];
	char *path = n ? node_path(n) : NULL;
	va_list ap;
	int k = 0;

	if (path)
		k = snprintf(msg, sizeof(msg), "%s: ", path);
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof(msg) - (size_t)k, fmt, ap);
	va_end(ap);
	free(path);
	bkr_log_warn("backup", "%s", msg);
	pthread_mutex_lock(&c->mu);
	if (c->nwarn == c->warncap) {
		size_t cap = c->warncap ? c->warncap * 2 : 16;
		char **w = realloc(c->warnings, cap * sizeof(*w));
		if (w) {
			c->warnings = w;
			c->warncap = cap;
		}
	}
	if (c->nwarn < c->warncap) {
		char *d = strdup(msg);
		if (d)
			c->warnings[c->nwarn++] = d;
	}
	if (c->o->warning)
		c->o->warning(c->o->warning_ctx, msg);
	pthread_mutex_unlock(&c->mu);
}

static void set_fatal(bctx *c, int err)
{
	pthread_mutex_lock(&c->mu);
	if (!c->fatal) {
		c->fatal = err;
		snprintf(c->fatal_msg, sizeof(c->fatal_msg), "%s", bkr_error_message());
		c->stop = true;
		pthread_cond_broadcast(&c->cv_job);
		pthread_cond_broadcast(&c->cv_space);
		pthread_cond_broadcast(&c->cv_done);
	}
	pthread_mutex_unlock(&c->mu);
}

/* A malloc'd copy of @p len bytes, or NULL. */
static void *memdup(const void *p, size_t len)
{
	void *q = malloc(len);
	if (q)
		memcpy(q, p, len);
	return q;
}

static void node_free(node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->target);
	for (size_t i = 0; i < n->nxattrs; i++) {
		free((void *)n->xattrs[i].name);
		free((void *)n->xattrs[i].value);
	}
	free(n->xattrs);
	free(n->kids);
	free(n->holes);
	free(n->chunks);
	free(n);
}

static node *node_new(bctx *c, node *parent, const void *name, size_t len)
{
	node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	if (!(n->name = malloc(len + 1))) {
		free(n);
		return NULL;
	}
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->name_len = len;
	n->parent = parent;
	if (c->nall == c->allcap) {
		size_t cap = c->allcap ? c->allcap * 2 : 1024;
		node **a = realloc(c->all, cap * sizeof(*a));
		if (!a) {
			node_free(n);
			return NULL;
		}
		c->all = a;
		c->allcap = cap;
	}
	c->all[c->nall++] = n;
	return n;
}

static int node_add_kid(node *dir, node *kid)
{
	if (dir->nkids == dir->kcap) {
		size_t cap = dir->kcap ? dir->kcap * 2 : 8;
		node **k = realloc(dir->kids, cap * sizeof(*k));
		if (!k)
			return bkr_error_oom();
		dir->kids = k;
		dir->kcap = cap;
	}
	dir->kids[dir->nkids++] = kid;
	return 0;
}

static const char *cached_name(name_ent **tab, uint32_t id, bool group)
{
	name_ent **b = &tab[id % 64];
	for (name_ent *e = *b; e; e = e->next)
		if (e->id == id)
			return e->name;
	char buf[4096];
	const char *nm = "";
	if (group) {
		struct group g, *res = NULL;
		if (getgrgid_r(id, &g, buf, sizeof(buf), &res) == 0 && res)
			nm = res->gr_name;
	} else {
		struct passwd p, *res = NULL;
		if (getpwuid_r(id, &p, buf, sizeof(buf), &res) == 0 && res)
			nm = res->pw_name;
	}
	name_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return "";
	if (!(e->name = strdup(nm))) {
		free(e);
		return "";
	}
	e->id = id;
	e->next = *b;
	*b = e;
	return e->name;
}

static void names_free(name_ent **tab)
{
	for (int i = 0; i < 64; i++) {
		name_ent *e = tab[i];
		while (e) {
			name_ent *nx = e->next;
			free(e->name);
			free(e);
			e = nx;
		}
	}
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t link_key(uint64_t dev, uint64_t ino)
{
	uint64_t k = mix64(mix64(dev) ^ ino);
	return k ? k : 1;
}

/* First node of the (dev, ino) group, after inserting @p n when new. */
static node *links_find_or_add(link_table *t, node *n)
{
	if (t->n * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		node **s = calloc(cap, sizeof(*s));
		if (!s)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			node *x = t->slots[i];
			if (!x)
				continue;
			size_t j = link_key(x->dev, x->ino) & (cap - 1);
			while (s[j])
				j = (j + 1) & (cap - 1);
			s[j] = x;
		}
		free(t->slots);
		t->slots = s;
		t->cap = cap;
	}
	size_t j = link_key(n->dev, n->ino) & (t->cap - 1);
	while (t->slots[j]) {
		if (t->slots[j]->dev == n->dev && t->slots[j]->ino == n->ino)
			return t->slots[j];
		j = (j + 1) & (t->cap - 1);
	}
	t->slots[j] = n;
	t->n++;
	return n;
}

static bool excluded(const bkr_source_spec *s, const char *rel)
{
	const char *base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	for (size_t i = 0; i < s->nexcludes; i++) {
		const char *p = s->excludes[i];
		if (fnmatch(p, rel, 0) == 0)
			return true;
		if (!strchr(p, '/') && fnmatch(p, base, 0) == 0)
			return true;
	}
	return false;
}

static void maybe_progress(bctx *c, const char *current, bool force)
{
	if (!c->o->progress)
		return;
	int64_t t = now_ns();
	if (!force && t - c->last_progress < PROGRESS_NS)
		return;
	c->last_progress = t;
	bkr_backup_progress p = {
		.phase = c->phase,
		.files_total = c->files_total,
		.bytes_total = c->bytes_total,
		.files_done = atomic_load(&c->files_done),
		.bytes_done = atomic_load(&c->bytes_done),
		.current = current,
		.files_read = atomic_load(&c->files_read),
		.bytes_read = atomic_load(&c->bytes_read),
	};
	c->o->progress(c->o->progress_ctx, &p);
}

/* ---- workers ------------------------------------------------------------ */

static void note_blob(bctx *c, const bkr_id *id, size_t len, bool is_new, uint32_t stored)
{
	pthread_mutex_lock(&c->mu);
	if (is_new) {
		c->st.new_blobs++;
		c->st.new_bytes += len;
		c->st.stored_bytes += stored;
		if (c->nnew == c->newcap) {
			size_t cap = c->newcap ? c->newcap * 2 : 1024;
			bkr_id *a = realloc(c->new_ids, cap * sizeof(*a));
			if (a) {
				c->new_ids = a;
				c->newcap = cap;
			}
		}
		if (c->nnew < c->newcap)
			c->new_ids[c->nnew++] = *id;
	} else {
		c->st.reused_blobs++;
		c->st.reused_bytes += len;
	}
	pthread_mutex_unlock(&c->mu);
}

static int put_data(bctx *c, const bkr_id *id, const uint8_t *data, size_t len)
{
	bool is_new = false;
	uint32_t stored = 0;
	int err = bkr_writer_put(c->w, BKR_BLOB_DATA, id, data, len, &is_new, &stored);
	if (err < 0)
		return err;
	note_blob(c, id, len, is_new, stored);
	return 0;
}

/* A chunk buffer from the free list (c->mu held), or a new one. */
static uint8_t *buf_get(bctx *c)
{
	if (c->nbufs)
		return c->bufs[--c->nbufs];
	return malloc(c->cp.max);
}

/* Return a chunk buffer (c->mu held). */
static void buf_put(bctx *c, uint8_t *b)
{
	if (c->nbufs < c->bufcap)
		c->bufs[c->nbufs++] = b;
	else
		free(b);
}

/* Hash and store a queued chunk.  Once pending drops, the owner may free @p j:
 * nothing of it is touched after the unlock. */
static void run_chunk_job(bctx *c, chunk_job *j)
{
	int err;
	bkr_sha256(j->data, j->len, &j->id);
	err = j->err = put_data(c, &j->id, j->data, j->len);
	if (err < 0)
		set_fatal(c, err);
	pthread_mutex_lock(&c->mu);
	buf_put(c, j->data);
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

static int refs_push(worker *wk, chunk_job *job, const bkr_id *id, size_t len)
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

static int holes_push(worker *wk, uint64_t off, uint64_t len)
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
static int emit_chunk(worker *wk, file_ctx *fc, const uint8_t *data, size_t len)
{
	bctx *c = wk->c;
	chunk_job *j = NULL;
	int err;

	uint8_t *cb = NULL;
	pthread_mutex_lock(&c->mu);
	bool room = c->cq_n < c->cq_max && c->nthreads > 1 && len <= c->cp.max;
	if (room)
		cb = buf_get(c);
	pthread_mutex_unlock(&c->mu);
	if (cb && (j = calloc(1, sizeof(*j)))) {
		j->data = cb;
		cb = NULL;
		memcpy(j->data, data, len);
		j->len = len;
		j->owner = fc;
		if ((err = refs_push(wk, j, NULL, len)) < 0) {
			pthread_mutex_lock(&c->mu);
			buf_put(c, j->data);
			pthread_mutex_unlock(&c->mu);
			free(j);
			return err;
		}
		pthread_mutex_lock(&c->mu);
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
	if (cb) {
		pthread_mutex_lock(&c->mu);
		buf_put(c, cb);
		pthread_mutex_unlock(&c->mu);
	}
	bkr_id id;
	bkr_sha256(data, len, &id);
	if ((err = put_data(c, &id, data, len)) < 0)
		return err;
	return refs_push(wk, NULL, &id, len);
}

/* Wait for the chunk jobs of @p fc, helping with queued chunk jobs meanwhile. */
static void wait_chunks(worker *wk, file_ctx *fc)
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

static void drop_jobs(worker *wk)
{
	for (size_t i = 0; i < wk->nrefs; i++) {
		if (wk->jobs[i]) {
			wk->refs[i].id = wk->jobs[i]->id;
			free(wk->jobs[i]);
			wk->jobs[i] = NULL;
		}
	}
}

enum { READ_OK = 0, READ_CHANGED = 1, READ_FAILED = 2 };

/* Data extents of @p fd (size @p size): SEEK_DATA/SEEK_HOLE when it looks sparse. */
static int file_extents(int fd, const struct stat *st, uint64_t **ext, size_t *n)
{
	size_t cap = 8, k = 0;
	uint64_t *e = malloc(cap * 2 * sizeof(*e));
	uint64_t size = (uint64_t)st->st_size;

	*ext = NULL;
	*n = 0;
	if (!e)
		return bkr_error_oom();
	if (size == 0) {
		*ext = e;
		return 0;
	}
	if ((uint64_t)st->st_blocks * 512 >= size) {
		e[0] = 0;
		e[1] = size;
		*ext = e;
		*n = 1;
		return 0;
	}
	off_t pos = 0;
	while ((uint64_t)pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0) {
			if (errno == ENXIO)
				break;
			/* no SEEK_DATA support: one extent */
			e[0] = 0;
			e[1] = size;
			k = 1;
			break;
		}
		if ((uint64_t)d >= size)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > size)
			h = (off_t)size;
		if (k == cap) {
			cap *= 2;
			uint64_t *x = realloc(e, cap * 2 * sizeof(*x));
			if (!x) {
				free(e);
				return bkr_error_oom();
			}
			e = x;
		}
		e[2 * k] = (uint64_t)d;
		e[2 * k + 1] = (uint64_t)(h - d);
		k++;
		pos = h;
	}
	*ext = e;
	*n = k;
	return 0;
}

/*
 * Read the file once: chunks into wk->refs, holes into wk->holes, content
 * hash into *content.  Returns READ_OK/READ_CHANGED/READ_FAILED (a warning
 * message in @p why) or <0 for a fatal error.
 */
static int read_once(worker *wk, node *n, int fd, const struct stat *st, bkr_id *content,
		     char *why, size_t whycap)
{
	bctx *c = wk->c;
	file_ctx fc = { .c = c };
	uint64_t *ext = NULL;
	size_t next = 0;
	int err, ret = READ_OK;
	uint64_t size = (uint64_t)st->st_size;
	uint64_t lpos = 0;

	wk->nrefs = 0;
	wk->nholes = 0;
	if ((err = file_extents(fd, st, &ext, &next)) < 0)
		return err;

	/* small and dense: one chunk, whose id is the content hash */
	if (next == 1 && ext[0] == 0 && size <= c->cp.min && size <= READ_BUF) {
		ssize_t r = pread(fd, wk->buf, (size_t)size + 1, 0);
		if (r < 0) {
			snprintf(why, whycap, "read: %s", strerror(errno));
			ret = READ_FAILED;
			goto done;
		}
		if ((uint64_t)r != size) {
			ret = READ_CHANGED;
			goto done;
		}
		bkr_sha256(wk->buf, (size_t)size, content);
		if ((err = put_data(c, content, wk->buf, (size_t)size)) < 0) {
			ret = err;
			goto done;
		}
		if ((err = refs_push(wk, NULL, content, (size_t)size)) < 0)
			ret = err;
		atomic_fetch_add(&c->bytes_done, size);
		goto done;
	}

	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	bkr_chunker_reset(wk->chunker);
	bkr_hash_reset(wk->hash);
	size_t cap = READ_BUF, start = 0, end = 0, scanned = 0;
	static const uint8_t zeros[65536];

	for (size_t x = 0; x < next && ret == READ_OK; x++) {
		uint64_t off = ext[2 * x], len = ext[2 * x + 1];
		if (off > lpos) {
			if ((err = holes_push(wk, lpos, off - lpos)) < 0) {
				ret = err;
				break;
			}
			for (uint64_t z = off - lpos; z > 0;) {
				size_t k = z > sizeof(zeros) ? sizeof(zeros) : (size_t)z;
				bkr_hash_update(wk->hash, zeros, k);
				z -= k;
			}
		}
		lpos = off;
		while (len > 0) {
			if (end == cap) {
				memmove(wk->buf, wk->buf + start, end - start);
				end -= start;
				scanned -= start;
				start = 0;
			}
			size_t want = cap - end;
			if (want > len)
				want = (size_t)len;
			ssize_t r = pread(fd, wk->buf + end, want, (off_t)lpos);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				snprintf(why, whycap, "read: %s", strerror(errno));
				ret = READ_FAILED;
				break;
			}
			if (r == 0) {
				ret = READ_CHANGED;
				break;
			}
			bkr_hash_update(wk->hash, wk->buf + end, (size_t)r);
			end += (size_t)r;
			lpos += (uint64_t)r;
			len -= (uint64_t)r;
			atomic_fetch_add(&c->bytes_done, (uint64_t)r);
			while (scanned < end) {
				size_t k = bkr_chunker_scan(wk->chunker, wk->buf + scanned, end - scanned);
				if (k == (size_t)-1) {
					scanned = end;
					break;
				}
				scanned += k;
				if ((err = emit_chunk(wk, &fc, wk->buf + start, scanned - start)) < 0) {
					ret = err;
					break;
				}
				start = scanned;
			}
			if (ret != READ_OK)
				break;
		}
	}
	if (ret == READ_OK && end > start) {
		if ((err = emit_chunk(wk, &fc, wk->buf + start, end - start)) < 0)
			ret = err;
	}
	if (ret == READ_OK && lpos < size) {
		if ((err = holes_push(wk, lpos, size - lpos)) < 0) {
			ret = err;
		} else {
			for (uint64_t z = size - lpos; z > 0;) {
				size_t k = z > sizeof(zeros) ? sizeof(zeros) : (size_t)z;
				bkr_hash_update(wk->hash, zeros, k);
				z -= k;
			}
		}
	}
	wait_chunks(wk, &fc);
	drop_jobs(wk);
	if (ret == READ_OK && fc.err < 0)
		ret = fc.err;
	if (ret == READ_OK) {
		bkr_hash_final(wk->hash, content);
		/* a one-chunk dense file: the content hash equals the chunk id */
	}
done:
	free(ext);
	return ret;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       ts_ns(&a->st_mtim) == ts_ns(&b->st_mtim) && ts_ns(&a->st_ctim) == ts_ns(&b->st_ctim);
}

static void node_set_stat(node *n, const struct stat *st)
{
	n->mode = st->st_mode;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->nlink = (uint32_t)st->st_nlink;
	n->size = (uint64_t)st->st_size;
	n->blocks = (uint64_t)st->st_blocks;
	n->rdev = (uint64_t)st->st_rdev;
	n->ino = st->st_ino;
	n->dev = st->st_dev;
	n->mtime_ns = ts_ns(&st->st_mtim);
	n->ctime_ns = ts_ns(&st->st_ctim);
}

static void process_file(worker *wk, node *n, int fd)
{
	bctx *c = wk->c;
	struct stat before, after;
	char why[256] = "";
	int r = READ_CHANGED;
	bkr_id content;

	for (int attempt = 0; attempt <= RETRIES; attempt++) {
		if (fstat(fd, &before) < 0) {
			snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
			r = READ_FAILED;
			break;
		}
		if (!S_ISREG(before.st_mode)) {
			snprintf(why, sizeof(why), "no longer a regular file");
			r = READ_FAILED;
			break;
		}
		r = read_once(wk, n, fd, &before, &content, why, sizeof(why));
		if (r < 0) {
			set_fatal(c, r);
			break;
		}
		if (r == READ_FAILED)
			break;
		if (r == READ_OK) {
			if (fstat(fd, &after) < 0) {
				snprintf(why, sizeof(why), "fstat: %s", strerror(errno));
				r = READ_FAILED;
				break;
			}
			if (same_stat(&before, &after))
				break;
			r = READ_CHANGED;
		}
	}
	if (r == READ_OK) {
		atomic_fetch_add(&c->files_read, 1);
		atomic_fetch_add(&c->bytes_read, (uint64_t)after.st_size);
		node_set_stat(n, &after);
		n->content = content;
		if ((wk->nrefs && !(n->chunks = memdup(wk->refs, wk->nrefs * sizeof(*n->chunks)))) ||
		    (wk->nholes && !(n->holes = memdup(wk->holes, wk->nholes * sizeof(*n->holes))))) {
			set_fatal(c, bkr_error_oom());
			r = READ_FAILED;
		} else {
			n->nchunks = wk->nrefs;
			n->nholes = wk->nholes;
		}
	} else if (r == READ_FAILED) {
		n->skip = true;
		warnf(c, n, "unreadable, skipped (%s)", why);
	} else if (r == READ_CHANGED) {
		n->skip = true;
		warnf(c, n, "changed while being read %d times, skipped", RETRIES + 1);
	} else {
		n->skip = true;
	}
	close(fd);
	atomic_fetch_add(&c->files_done, 1);
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
			pthread_cond_signal(&c->cv_space);
			bool stop = c->fatal != 0;
			pthread_mutex_unlock(&c->mu);
			if (stop) {
				close(fj.fd);
				fj.n->skip = true;
			} else {
				process_file(wk, fj.n, fj.fd);
			}
			if (main)
				maybe_progress(c, NULL, false);
			pthread_mutex_lock(&c->mu);
			if (--c->active == 0 && c->stop)
				pthread_cond_broadcast(&c->cv_job);
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
			maybe_progress(c, NULL, false);
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
	if (!(wk->buf = malloc(READ_BUF + 1)) || !(wk->hash = bkr_hash_new()))
		return bkr_error_oom();
	return bkr_chunker_new(&wk->chunker, &c->cp);
}

static void worker_fini(worker *wk)
{
	free(wk->buf);
	bkr_hash_free(wk->hash);
	bkr_chunker_free(wk->chunker);
	free(wk->refs);
	free(wk->jobs);
	free(wk->holes);
}

/* Queue a file for the workers (blocks while the queue is full). */
static int queue_file(bctx *c, node *n, int fd)
{
	pthread_mutex_lock(&c->mu);
	while (c->fq_n == c->fq_cap && !c->fatal)
		pthread_cond_wait(&c->cv_space, &c->mu);
	if (c->fatal) {
		/* The failure happened on a worker: its message, not this thread's. */
		int err = bkr_error_set(c->fatal, "%s", c->fatal_msg);
		pthread_mutex_unlock(&c->mu);
		close(fd);
		return err;
	}
	c->fq[(c->fq_head + c->fq_n) % c->fq_cap] = (file_job){ n, fd };
	c->fq_n++;
	pthread_cond_signal(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* ---- scanning ----------------------------------------------------------- */

static int xattr_cmp(const void *a, const void *b)
{
	const bkr_xattr *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int r = memcmp(x->name, y->name, n);
	return r ? r : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* does @p n carry an xattr of the security namespace (manifest stats) */
/* whether @p n has an xattr whose name begins with @p prefix */
static bool has_xattr_prefix(const node *n, const char *prefix)
{
	size_t len = strlen(prefix);

	for (size_t i = 0; i < n->nxattrs; i++)
		if (n->xattrs[i].name_len >= len && !memcmp(n->xattrs[i].name, prefix, len))
			return true;
	return false;
}

/* the manifest's counts of entries with labels and with ACLs (bkrfs) */
static void count_xattrs(bctx *c, const node *n)
{
	c->st.security_xattrs += has_xattr_prefix(n, "security.");
	c->st.acl_xattrs += has_xattr_prefix(n, "system.posix_acl_");
}

/* Read the xattrs of @p name in directory @p dirfd (without following it). */
static int read_xattrs(bctx *c, int dirfd, const char *name, node *n)
{
	char path[64 + 256];
	char *list = NULL;
	uint8_t *val = NULL;
	ssize_t sz;
	int err = 0;

	if (strlen(name) > 255)
		return 0;
	if (dirfd >= 0)
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	else
		snprintf(path, sizeof(path), "%s", name);
	sz = llistxattr(path, NULL, 0);
	if (sz <= 0)
		return 0;
	for (int tries = 0; tries < 4; tries++) {
		free(list);
		if (!(list = malloc((size_t)sz + 1)))
			return bkr_error_oom();
		ssize_t r = llistxattr(path, list, (size_t)sz);
		if (r >= 0) {
			sz = r;
			break;
		}
		if (errno != ERANGE) {
			warnf(c, n, "cannot list xattrs: %s", strerror(errno));
			goto done;
		}
		sz = llistxattr(path, NULL, 0);
		if (sz <= 0)
			goto done;
	}
	size_t count = 0;
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1)
		count++;
	if (!count)
		goto done;
	if (!(n->xattrs = calloc(count, sizeof(*n->xattrs)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1) {
		const char *xn = list + i;
		ssize_t vl = lgetxattr(path, xn, NULL, 0);
		if (vl < 0)
			continue;
		free(val);
		if (!(val = malloc((size_t)vl + 1))) {
			err = bkr_error_oom();
			goto done;
		}
		vl = lgetxattr(path, xn, val, (size_t)vl);
		if (vl < 0) {
			warnf(c, n, "cannot read xattr %s: %s", xn, strerror(errno));
			continue;
		}
		bkr_xattr *x = &n->xattrs[n->nxattrs];
		memset(x, 0, sizeof(*x));
		if (!(x->name = (const uint8_t *)strdup(xn))) {
			err = bkr_error_oom();
			goto done;
		}
		x->name_len = strlen(xn);
		x->value_len = (uint32_t)vl;
		n->nxattrs++;
		if ((size_t)vl > BKR_XATTR_INLINE_MAX) {
			bool is_new = false;
			x->in_blob = true;
			bkr_sha256(val, (size_t)vl, &x->blob);
			if ((err = bkr_writer_put(c->w, BKR_BLOB_DATA, &x->blob, val, (size_t)vl, &is_new, NULL)) < 0)
				goto done;
			note_blob(c, &x->blob, (size_t)vl, is_new, 0);
		} else {
			x->value = val;
			val = NULL;
		}
	}
	if (n->nxattrs > 1)
		qsort(n->xattrs, n->nxattrs, sizeof(*n->xattrs), xattr_cmp);
done:
	free(list);
	free(val);
	return err;
}

/* Take the parent's content when the file is unchanged (and not racy). */
static bool reuse_from_parent(bctx *c, bkr_dir *pdir, node *n)
{
	bkr_entry pe;
	const bkr_tree *leaf;
	uint32_t li;

	if (!pdir || !c->have_parent)
		return false;
	if (bkr_dir_find(pdir, n->name, n->name_len, &pe, &leaf, &li, NULL) < 0) {
		bkr_error_clear();
		return false;
	}
	if (pe.type != BKR_FT_FILE || pe.size != n->size || pe.mtime_ns != n->mtime_ns ||
	    pe.ctime_ns != n->ctime_ns || pe.inode != n->ino)
		return false;
	if (n->mtime_ns >= c->parent_start - RACY_NS)
		return false;
	if (bkr_tree_chunks(leaf, li, &n->chunks, &n->nchunks) < 0 ||
	    bkr_tree_holes(leaf, li, &n->holes, &n->nholes) < 0) {
		free(n->chunks);
		n->chunks = NULL;
		n->nchunks = 0;
		bkr_error_clear();
		return false;
	}
	n->content = pe.content;
	pthread_mutex_lock(&c->mu);
	c->st.reused_blobs += n->nchunks;
	for (size_t i = 0; i < n->nchunks; i++)
		c->st.reused_bytes += n->chunks[i].length;
	pthread_mutex_unlock(&c->mu);
	return true;
}

static int rel_set(bctx *c, size_t base, const char *name, size_t len, size_t *out)
{
	return bkr_pathbuf_set(&c->rel, base, name, len, out);
}

typedef struct {
	node *dir;
	int fd;
	size_t next;    /* next kid to consider for descent */
	bkr_dir *pdir;  /* the parent backup's contents of this directory */
	size_t rel_len;
} scan_frame;

/* Read the entries of the directory of frame @p f. */
static int scan_dir(bctx *c, const bkr_source_spec *src, scan_frame *f)
{
	int dfd = dup(f->fd);
	DIR *d = NULL;
	struct dirent *de;
	int err = 0;

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		warnf(c, f->dir, "cannot list directory: %s", strerror(errno));
		return 0;
	}
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno)
				warnf(c, f->dir, "readdir: %s", strerror(errno));
			break;
		}
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		size_t nlen = strlen(nm), rl;
		if ((err = rel_set(c, f->rel_len, nm, nlen, &rl)) < 0)
			goto done;
		if (src->nexcludes && excluded(src, c->rel.p))
			continue;
		struct stat st;
		node *n = node_new(c, f->dir, nm, nlen);
		if (!n) {
			err = bkr_error_oom();
			goto done;
		}
		if (fstatat(f->fd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				warnf(c, n, "vanished during the scan, skipped");
			else
				warnf(c, n, "cannot stat, skipped: %s", strerror(errno));
			continue;
		}
		node_set_stat(n, &st);
		switch (st.st_mode & S_IFMT) {
		case S_IFREG: n->type = BKR_FT_FILE; break;
		case S_IFDIR: n->type = BKR_FT_DIR; break;
		case S_IFLNK: n->type = BKR_FT_SYMLINK; break;
		case S_IFIFO: n->type = BKR_FT_FIFO; break;
		case S_IFCHR: n->type = BKR_FT_CHR; break;
		case S_IFBLK: n->type = BKR_FT_BLK; break;
		case S_IFSOCK: n->type = BKR_FT_SOCK; break;
		default:
			warnf(c, n, "unknown file type %o, skipped", st.st_mode & S_IFMT);
			continue;
		}
		if (n->type != BKR_FT_DIR) {
			c->files_total++;
			if (n->type == BKR_FT_FILE)
				c->bytes_total += n->size;
		}
		n->user = cached_name(c->users, n->uid, false);
		n->group = cached_name(c->groups, n->gid, true);
		if (n->type == BKR_FT_SYMLINK) {
			size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 256;
			for (;;) {
				char *t = malloc(cap);
				if (!t) {
					err = bkr_error_oom();
					goto done;
				}
				ssize_t r = readlinkat(f->fd, nm, t, cap);
				if (r < 0) {
					free(t);
					warnf(c, n, "cannot read link, skipped: %s", strerror(errno));
					break;
				}
				if ((size_t)r < cap) {
					n->target = (uint8_t *)t;
					n->target_len = (size_t)r;
					break;
				}
				free(t);
				cap *= 2;
			}
			if (!n->target)
				continue;
		}
		if ((err = read_xattrs(c, f->fd, nm, n)) < 0)
			goto done;
		if (n->type != BKR_FT_DIR && n->nlink > 1) {
			node *first = links_find_or_add(&c->links, n);
			if (!first) {
				err = bkr_error_oom();
				goto done;
			}
			n->link_group = link_key(n->dev, n->ino);
			if (first != n)
				n->alias = first;
		}
		if ((err = node_add_kid(f->dir, n)) < 0)
			goto done;
		if (n->type != BKR_FT_FILE || n->alias)
			continue;
		if (reuse_from_parent(c, f->pdir, n)) {
			atomic_fetch_add(&c->files_done, 1);
			atomic_fetch_add(&c->bytes_done, n->size);
			continue;
		}
		int ffd = -1;
		if (c->noatime_ok) {
			ffd = openat(f->fd, nm, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOATIME);
			if (ffd < 0 && errno == EPERM)
				c->noatime_ok = false;
		}
		if (ffd < 0)
			ffd = openat(f->fd, nm, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (ffd < 0) {
			n->skip = true;
			if (errno == ENOENT)
				warnf(c, n, "vanished during the scan, skipped");
			else
				warnf(c, n, "cannot open, skipped: %s", strerror(errno));
			continue;
		}
		if ((err = queue_file(c, n, ffd)) < 0)
			goto done;
		maybe_progress(c, c->rel.p, false);
	}
done:
	closedir(d);
	return err;
}

/* Walk one source, building its node tree under @p root. */
static int scan_source(bctx *c, const bkr_source_spec *src, node *root, const bkr_id *parent_tree)
{
	scan_frame *stack = NULL;
	size_t depth = 0, cap = 0;
	int err = 0, fd;
	struct stat st;

	fd = open(src->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = bkr_error_set_errno(errno, "source '%s': cannot open %s", src->name, src->path);
		if (err == BKR_ENOTFOUND || errno == ENOTDIR)
			err = BKR_EINVAL;
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = bkr_error_set_errno(errno, "source '%s': fstat %s", src->name, src->path);
		close(fd);
		return err;
	}
	node_set_stat(root, &st);
	root->type = BKR_FT_DIR;
	root->user = cached_name(c->users, root->uid, false);
	root->group = cached_name(c->groups, root->gid, true);
	if ((err = read_xattrs(c, -1, src->path, root)) < 0) {
		close(fd);
		return err;
	}

	cap = 64;
	if (!(stack = calloc(cap, sizeof(*stack)))) {
		close(fd);
		return bkr_error_oom();
	}
	stack[0] = (scan_frame){ .dir = root, .fd = fd };
	if (parent_tree && bkr_dir_open(&stack[0].pdir, parent_tree, bkr_repo_load_tree, c->repo) < 0) {
		warnf(c, NULL, "source '%s': parent tree unreadable, reading everything: %s",
		      src->name, bkr_error_message());
		stack[0].pdir = NULL;
	}
	depth = 1;
	if ((err = scan_dir(c, src, &stack[0])) < 0)
		goto done;

	while (depth > 0) {
		scan_frame *f = &stack[depth - 1];
		node *kid = NULL;
		while (f->next < f->dir->nkids) {
			node *k = f->dir->kids[f->next++];
			if (k->type == BKR_FT_DIR && !k->skip) {
				kid = k;
				break;
			}
		}
		if (!kid) {
			close(f->fd);
			bkr_dir_free(f->pdir);
			depth--;
			continue;
		}
		int kfd = openat(f->fd, (const char *)kid->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (kfd < 0) {
			kid->skip = true;
			if (errno == ENOENT)
				warnf(c, kid, "vanished during the scan, skipped");
			else
				warnf(c, kid, "cannot open directory, skipped: %s", strerror(errno));
			continue;
		}
		if (depth == cap) {
			scan_frame *s = realloc(stack, cap * 2 * sizeof(*s));
			if (!s) {
				close(kfd);
				err = bkr_error_oom();
				goto done;
			}
			stack = s;
			cap *= 2;
			f = &stack[depth - 1];
		}
		scan_frame *nf = &stack[depth];
		memset(nf, 0, sizeof(*nf));
		nf->dir = kid;
		nf->fd = kfd;
		if ((err = rel_set(c, f->rel_len, (const char *)kid->name, kid->name_len, &nf->rel_len)) < 0) {
			close(kfd);
			goto done;
		}
		if (f->pdir) {
			bkr_entry pe;
			if (bkr_dir_find(f->pdir, kid->name, kid->name_len, &pe, NULL, NULL, NULL) == 0 &&
			    pe.type == BKR_FT_DIR) {
				if (bkr_dir_open(&nf->pdir, &pe.subtree, bkr_repo_load_tree, c->repo) < 0)
					nf->pdir = NULL;
			}
			bkr_error_clear();
		}
		depth++;
		if ((err = scan_dir(c, src, nf)) < 0)
			goto done;
	}
done:
	while (depth > 0) {
		close(stack[depth - 1].fd);
		bkr_dir_free(stack[depth - 1].pdir);
		depth--;
	}
	free(stack);
	return err;
}

/* ---- trees -------------------------------------------------------------- */

static int emit_tree(void *ctx, const bkr_id *id, const uint8_t *blob, size_t len)
{
	bctx *c = ctx;
	bool is_new = false;
	uint32_t stored = 0;
	int err = bkr_writer_put(c->w, BKR_BLOB_TREE, id, blob, len, &is_new, &stored);
	if (err < 0)
		return err;
	note_blob(c, id, 0, is_new, stored);
	return 0;
}

static void node_entry(const node *n, bkr_entry *e)
{
	const node *src = n->alias ? n->alias : n;

	memset(e, 0, sizeof(*e));
	e->name = n->name;
	e->name_len = n->name_len;
	e->type = n->type;
	e->mode = n->mode;
	e->uid = n->uid;
	e->gid = n->gid;
	e->user = (const uint8_t *)n->user;
	e->user_len = strlen(n->user);
	e->group = (const uint8_t *)n->group;
	e->group_len = strlen(n->group);
	e->mtime_ns = n->mtime_ns;
	e->ctime_ns = n->ctime_ns;
	e->size = n->size;
	e->blocks = n->blocks;
	e->rdev = (n->type == BKR_FT_CHR || n->type == BKR_FT_BLK) ? n->rdev : 0;
	e->inode = n->ino;
	e->nlink = n->nlink;
	e->link_group = n->link_group;
	e->target = n->target;
	e->target_len = n->target_len;
	e->xattrs = n->xattrs;
	e->nxattrs = n->nxattrs;
	if (n->type == BKR_FT_FILE) {
		e->holes = src->holes;
		e->nholes = src->nholes;
		e->chunks = src->chunks;
		e->nchunks = src->nchunks;
		e->content = src->content;
		if (n->alias) {
			/* a later link: the group's data; its stat is the group's too */
			e->size = src->size;
			e->mtime_ns = src->mtime_ns;
			e->ctime_ns = src->ctime_ns;
			e->blocks = src->blocks;
		}
	}
	if (n->type == BKR_FT_DIR)
		e->subtree = n->subtree;
}

/* Build the trees of @p root bottom-up; counts files/bytes into @p ms. */
static int build_trees(bctx *c, bkr_tree_builder *b, node *root, bkr_manifest_source *ms)
{
	typedef struct { node *n; size_t next; } frame;
	frame *stack = NULL;
	size_t depth = 0, cap = 64;
	int err = 0;

	if (!(stack = malloc(cap * sizeof(*stack))))
		return bkr_error_oom();
	stack[depth++] = (frame){ root, 0 };
	while (depth > 0) {
		frame *f = &stack[depth - 1];
		node *kid = NULL;
		while (f->next < f->n->nkids) {
			node *k = f->n->kids[f->next++];
			if (k->type == BKR_FT_DIR && !k->skip) {
				kid = k;
				break;
			}
		}
		if (kid) {
			if (depth == cap) {
				frame *s = realloc(stack, cap * 2 * sizeof(*s));
				if (!s) {
					err = bkr_error_oom();
					goto done;
				}
				stack = s;
				cap *= 2;
			}
			stack[depth++] = (frame){ kid, 0 };
			continue;
		}
		/* all subdirectories done: this directory's tree */
		node *d = f->n;
		for (size_t i = 0; i < d->nkids; i++) {
			node *k = d->kids[i];
			bkr_entry e;
			if (k->alias && k->alias->skip && !k->skip) {
				k->skip = true;
				warnf(c, k, "hardlink to a skipped file, skipped");
			}
			if (k->skip)
				continue;
			node_entry(k, &e);
			count_xattrs(c, k);
			if ((err = bkr_tree_builder_add(b, &e)) < 0) {
				char *p = node_path(k);
				bkr_error_prefix("%s", p ? p : "?");
				free(p);
				goto done;
			}
			if (k->type == BKR_FT_DIR) {
				c->st.dirs++;
			} else {
				c->st.files++;
				ms->files_backed_up++;
				if (k->type == BKR_FT_FILE) {
					c->st.bytes += e.size;
					ms->total_size_bytes += e.size;
				}
			}
		}
		if ((err = bkr_tree_builder_finish(b, emit_tree, c, &d->subtree)) < 0)
			goto done;
		depth--;
	}
done:
	free(stack);
	return err;
}

/* ---- parent selection --------------------------------------------------- */

static bool same_sources(const bkr_manifest *m, const bkr_source_spec *s, size_t n)
{
	if (m->nsources != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t j = 0; j < m->nsources && !found; j++)
			found = m->sources[j].source && m->sources[j].path &&
				strcmp(m->sources[j].source, s[i].name) == 0 &&
				strcmp(m->sources[j].path, s[i].path) == 0;
		if (!found)
			return false;
	}
	return true;
}

int bkr_backup_find_parent(bkr_repo *r, bkr_backup_type type, const char *hostname,
			   const bkr_source_spec *sources, size_t nsources, bkr_manifest **out)
{
	bkr_manifest_list l = { 0 };
	int err;

	*out = NULL;
	if (type == BKR_BACKUP_FULL || type == BKR_BACKUP_RECOVERY)
		return bkr_error_set(BKR_ENOTFOUND, "a %s backup has no parent", bkr_backup_type_name(type));
	if ((err = bkr_repo_list(r, false, &l, NULL)) < 0)
		return err;
	err = BKR_ENOTFOUND;
	for (size_t i = l.n; i-- > 0;) {
		bkr_manifest *m = l.items[i];
		if (!m || m->type == BKR_BACKUP_RECOVERY)
			continue;
		if (type == BKR_BACKUP_DIFFERENTIAL && m->type != BKR_BACKUP_FULL)
			continue;
		if (!m->hostname || strcmp(m->hostname, hostname) != 0)
			continue;
		if (!same_sources(m, sources, nsources))
			continue;
		*out = m;
		l.items[i] = NULL;
		err = 0;
		break;
	}
	if (err == BKR_ENOTFOUND)
		bkr_error_set(err, "no earlier %s backup of host '%s' with these sources",
			      type == BKR_BACKUP_DIFFERENTIAL ? "full" : "", hostname);
	bkr_manifest_list_free(&l);
	return err;
}

/* ---- the run ------------------------------------------------------------ */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static int check_options(const bkr_backup_options *o)
{
	if (!o || o->version != BKR_BACKUP_OPTIONS_VERSION)
		return bkr_error_set(BKR_EINVAL, "backup: unsupported options version");
	if (o->type == BKR_BACKUP_RECOVERY || (int)o->type < 0 || o->type > BKR_BACKUP_RECOVERY)
		return bkr_error_set(BKR_EINVAL, "backup: bad backup type %d", (int)o->type);
	if (!o->nsources || !o->sources)
		return bkr_error_set(BKR_EINVAL, "backup: no sources");
	for (size_t i = 0; i < o->nsources; i++) {
		const bkr_source_spec *s = &o->sources[i];
		if (!s->name || !bkr_tree_name_valid((const uint8_t *)s->name, strlen(s->name)))
			return bkr_error_set(BKR_EINVAL, "backup: invalid source name '%s'", s->name ? s->name : "");
		if (!s->path || s->path[0] != '/')
			return bkr_error_set(BKR_EINVAL, "source '%s': path must be absolute", s->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(o->sources[j].name, s->name) == 0)
				return bkr_error_set(BKR_EINVAL, "backup: source '%s' given twice", s->name);
	}
	return 0;
}

static int verify_result(bctx *c, const bkr_id *root)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	bkr_tree *t = NULL;
	bkr_index_entry ie;
	char hex[BKR_ID_HEX];
	int err;

	if ((err = bkr_repo_read_blob(c->repo, root, BKR_BLOB_TREE, &blob, &len)) < 0)
		goto done;
	if ((err = bkr_tree_parse(&t, blob, len)) < 0)
		goto done;
	for (size_t i = 0; i < c->nnew; i++) {
		if ((err = bkr_repo_lookup(c->repo, &c->new_ids[i], &ie)) < 0) {
			bkr_id_to_hex(&c->new_ids[i], hex);
			err = bkr_error_set(BKR_ECORRUPT, "new blob %s is not in the index after commit", hex);
			goto done;
		}
	}
done:
	bkr_tree_free(t);
	return err;
}

int bkr_backup_run(bkr_repo *r, const bkr_backup_options *o, bkr_manifest **out)
{
	bctx cs, *c = &cs;
	bkr_lock *lock = NULL;
	bkr_manifest *parent = NULL, *m = NULL;
	node **roots = NULL;
	worker *workers = NULL;
	bkr_tree_builder *b = NULL;
	int nworkers = 0, err;
	char host[256];
	int64_t t0 = now_ns(), start_ns = bkr_time_now_ns();
	bool mu_init = false;

	if (out)
		*out = NULL;
	memset(c, 0, sizeof(*c));
	if ((err = check_options(o)) < 0)
		return err;
	c->repo = r;
	c->o = o;
	c->noatime_ok = true;
	c->phase = 1;
	const char *hostname = o->hostname;
	if (!hostname) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		hostname = host;
	}
	const bkr_repo_config *cfg = bkr_repo_get_config(r);
	c->cp.min = cfg->chunk_min ? cfg->chunk_min : BKR_CHUNK_MIN;
	c->cp.avg = cfg->chunk_avg ? cfg->chunk_avg : BKR_CHUNK_AVG;
	c->cp.max = cfg->chunk_max ? cfg->chunk_max : BKR_CHUNK_MAX;
	c->cp.seed = cfg->chunk_seed;
	if (c->cp.max > READ_BUF / 2)
		return bkr_error_set(BKR_EINVAL, "backup: chunk_max %u too large", c->cp.max);
	c->nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (c->nthreads < 1)
		c->nthreads = 1;
	if (c->nthreads > 64)
		c->nthreads = 64;

	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv_job, NULL);
	pthread_cond_init(&c->cv_space, NULL);
	pthread_cond_init(&c->cv_done, NULL);
	mu_init = true;

	if ((err = bkr_repo_lock(r, BKR_LOCK_SHARED, false, &lock)) < 0)
		goto done;

	/* parent */
	if (o->type != BKR_BACKUP_FULL) {
		if (o->parent) {
			if ((err = bkr_repo_find_backup(r, o->parent, &parent)) < 0)
				goto done;
		} else {
			err = bkr_backup_find_parent(r, o->type, hostname, o->sources, o->nsources, &parent);
			if (err == BKR_ENOTFOUND) {
				bkr_error_clear();
				err = 0;
			} else if (err < 0) {
				goto done;
			}
		}
		if (parent) {
			c->have_parent = true;
			c->parent_start = parent->time_ns;
		}
	}

	if ((err = bkr_writer_new(&c->w, r)) < 0)
		goto done;

	/* pool */
	c->fq_cap = (size_t)c->nthreads * 8 + 16;
	c->cq_max = (size_t)c->nthreads * 2;
	c->bufcap = c->cq_max + (size_t)c->nthreads + 2;
	if (!(c->fq = calloc(c->fq_cap, sizeof(*c->fq))) ||
	    !(c->bufs = calloc(c->bufcap, sizeof(*c->bufs))) ||
	    !(workers = calloc((size_t)c->nthreads + 1, sizeof(*workers))) ||
	    !(roots = calloc(o->nsources, sizeof(*roots)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (int i = 0; i <= c->nthreads; i++) {
		if ((err = worker_init(&workers[i], c)) < 0)
			goto done;
	}
	/* workers[0] is the calling thread */
	for (int i = 1; i <= c->nthreads; i++) {
		if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
			err = bkr_error_set(BKR_ERROR, "backup: cannot start worker thread");
			goto stop;
		}
		workers[i].started = true;
		nworkers++;
	}

	/* phase 1 (with 2 running beside it) */
	for (size_t i = 0; i < o->nsources; i++) {
		const bkr_source_spec *s = &o->sources[i];
		const bkr_id *ptree = NULL;
		if (!(roots[i] = node_new(c, NULL, s->name, strlen(s->name)))) {
			err = bkr_error_oom();
			goto stop;
		}
		if (parent) {
			for (size_t j = 0; j < parent->nsources; j++)
				if (parent->sources[j].source && strcmp(parent->sources[j].source, s->name) == 0 &&
				    parent->sources[j].path && strcmp(parent->sources[j].path, s->path) == 0)
					ptree = &parent->sources[j].tree;
		}
		if ((err = scan_source(c, s, roots[i], ptree)) < 0)
			goto stop;
	}
	c->phase = 2;
	maybe_progress(c, NULL, true);

stop:
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
	work_loop(&workers[0], true);
	for (int i = 1; i <= c->nthreads; i++)
		if (workers[i].started)
			pthread_join(workers[i].tid, NULL);
	if (err < 0)
		goto done;
	if (c->fatal) {
		err = bkr_error_set(c->fatal, "%s", c->fatal_msg);
		goto done;
	}

	/* phase 3 */
	c->phase = 3;
	maybe_progress(c, NULL, true);
	if (!(m = bkr_manifest_new())) {
		err = bkr_error_oom();
		goto done;
	}
	if (!(m->sources = calloc(o->nsources, sizeof(*m->sources)))) {
		err = bkr_error_oom();
		goto done;
	}
	m->nsources = o->nsources;
	if ((err = bkr_tree_builder_new(&b)) < 0)
		goto done;
	const char *compression = cfg->level > 0 ? "zlib" : "none";
	for (size_t i = 0; i < o->nsources; i++) {
		bkr_manifest_source *ms = &m->sources[i];
		if (!(ms->source = xstrdup(o->sources[i].name)) || !(ms->path = xstrdup(o->sources[i].path)) ||
		    !(ms->compression = xstrdup(compression))) {
			err = bkr_error_oom();
			goto done;
		}
		if ((err = build_trees(c, b, roots[i], ms)) < 0)
			goto done;
		ms->tree = roots[i]->subtree;
		c->st.dirs++;
	}
	for (size_t i = 0; i < o->nsources; i++) {
		bkr_entry e;
		node_entry(roots[i], &e);
		count_xattrs(c, roots[i]);
		if ((err = bkr_tree_builder_add(b, &e)) < 0)
			goto done;
	}
	if ((err = bkr_tree_builder_finish(b, emit_tree, c, &m->tree)) < 0)
		goto done;
	if ((err = bkr_writer_commit(c->w)) < 0)
		goto done;
	if ((err = verify_result(c, &m->tree)) < 0)
		goto done;

	/* the manifest */
	char id[128], ts[32];
	if ((err = bkr_backup_id_new(id, sizeof(id), o->type, start_ns)) < 0)
		goto done;
	bkr_time_format(ts, start_ns);
	m->type = o->type;
	m->time_ns = start_ns;
	if (!(m->backup_id = strdup(id)) || !(m->timestamp = strdup(ts)) ||
	    !(m->hostname = xstrdup(hostname)) || !(m->workspace_root = xstrdup(o->workspace_root)) ||
	    !(m->integrity_check = strdup("passed")) || !(m->restore_test = strdup("skipped")) ||
	    (parent && !(m->parent = strdup(parent->backup_id))) ||
	    (o->type == BKR_BACKUP_SNAPSHOT && !(m->pinned_until = xstrdup(o->pinned_until)))) {
		err = bkr_error_oom();
		goto done;
	}
	if (o->ntags) {
		if (!(m->tags = calloc(o->ntags, sizeof(*m->tags)))) {
			err = bkr_error_oom();
			goto done;
		}
		for (size_t i = 0; i < o->ntags; i++) {
			if (!(m->tags[i] = xstrdup(o->tags[i]))) {
				err = bkr_error_oom();
				goto done;
			}
			m->ntags++;
		}
	}
	m->warnings = c->warnings;
	m->nwarnings = c->nwarn;
	c->warnings = NULL;
	c->nwarn = 0;
	m->stats = c->st;
	m->duration_seconds = (double)(now_ns() - t0) / 1e9;
	if ((err = bkr_repo_publish_manifest(r, m)) < 0)
		goto done;
	bkr_log_info("backup", "backup %s done: %llu files, %llu bytes (%llu new), %zu warnings",
		     m->backup_id, (unsigned long long)m->stats.files, (unsigned long long)m->stats.bytes,
		     (unsigned long long)m->stats.new_bytes, m->nwarnings);
	if (out) {
		*out = m;
		m = NULL;
	}
done:
	for (size_t i = 0; i < c->fq_n; i++)
		close(c->fq[(c->fq_head + i) % c->fq_cap].fd);
	if (workers)
		for (int i = 0; i <= c->nthreads; i++)
			worker_fini(&workers[i]);
	free(workers);
	free(c->fq);
	for (size_t i = 0; i < c->nbufs; i++)
		free(c->bufs[i]);
	free(c->bufs);
	bkr_tree_builder_free(b);
	bkr_writer_free(c->w);
	bkr_lock_release(lock);
	bkr_manifest_free(parent);
	bkr_manifest_free(m);
	for (size_t i = 0; i < c->nall; i++)
		node_free(c->all[i]);
	free(c->all);
	free(roots);
	names_free(c->users);
	names_free(c->groups);
	free(c->links.slots);
	bkr_pathbuf_free(&c->rel);
	for (size_t i = 0; i < c->nwarn; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c->new_ids);
	if (mu_init) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv_job);
		pthread_cond_destroy(&c->cv_space);
		pthread_cond_destroy(&c->cv_done);
	}
	return err;
}
