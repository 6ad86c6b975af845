/** @file
 * The caching store (bkr/store_cache.h): reads of another store kept on
 * local disk, in a bounded cache of files.
 *
 * Cache files live under "<dir>/<key>/": "w/<name>" holds a whole object,
 * "b/<name>/<block>" (16 hex digits) one block of a data pack.  Each file is
 * its bytes followed by a trailer (magic, length, size of the object, its
 * last-modified time, SHA-256 of its version tag, SHA-256 of the SHA-256 of
 * the bytes and the file's name under the cache root: a file moved or copied
 * to another name, say another block of its pack, fails the check as a
 * damaged one), written to a ".tmp-*" and renamed over the final
 * name, without fsync: a crash can leave a torn file, which the trailer
 * shows.  A file found on disk at open is trusted only once this process
 * has read it whole and checked its trailer; after that it is read in
 * place (a range with one pread).
 *
 * In memory, one entry per cache file in a hash table (name, block), the
 * present ones on a list in order of use (least recent first: the first to
 * go when the cache is over its bound; files in use are skipped).  An entry
 * being fetched or checked is LOADING: the one thread that made it so does
 * the work outside the lock, every other reader of it waits on the
 * condition, so a block is fetched once however many threads want it.  The
 * size of a data pack (needed to clamp a ranged request) is a SIZE entry,
 * from one stat of the wrapped store (LOADING while it runs, as a block),
 * kept for the life of the process; the stat's last-modified time and
 * version tag (S3's Last-Modified and ETag, a file's mtime: the same HEAD)
 * come with it, and a block kept for the pack of another size, time or tag
 * is of a pack since replaced (put right by hand): dropped and fetched
 * again.  The tag tells a replacement within the second that Last-Modified
 * counts.
 *
 * A repository's directory is used when its "lock" file's time is touched:
 * at open and at close.  Opening one removes the other repositories'
 * directories beside it that no process holds and none used for
 * BKR_STORE_CACHE_UNUSED_DAYS, and at once those of a key no longer made
 * (their "location" without the endpoint, from before it was part of the
 * key): renamed away under their lock (an opener that had their lock file
 * open sees it moved and makes the directory again), then removed.
 */
#include "bkr/store_cache.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/host.h"
#include "bkr/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK ((uint64_t)BKR_STORE_CACHE_BLOCK)
#define FETCH_BLOCKS 4                 /* blocks one ranged request may bring */
#define WHOLE_MAX ((size_t)256 << 20)  /* a tree pack larger than this is an error */
#define BUCKETS 4096
#define WHOLE UINT64_MAX               /* entry of a whole object */
#define SIZE (UINT64_MAX - 1)          /* entry of a pack's size only (no file) */
#define TRAILER 96                     /* magic 8, length 8, object size 8, object time 8, tag 32, SHA-256 32 */
#define KEY_HEX 16
#define DIR_MODE 0700

/* 'bkrcach1' (no object time), 'bkrcach2' (no tag) and 'bkrcach3' (a sum of the bytes only) files
 * fail the check once and are fetched again */
static const char MAGIC[8] = { 'b', 'k', 'r', 'c', 'a', 'c', 'h', '4' };

enum { LOADING, PRESENT };

struct entry {
	struct entry *next;          /* hash chain */
	struct entry *older, *newer; /* the use list (present files) */
	uint64_t block;              /* WHOLE, SIZE, or a block number */
	uint64_t len;                /* bytes of data (SIZE: the object's size) */
	int64_t mtime;               /* SIZE: the object's last-modified time (-1: unknown) */
	uint8_t tag[BKR_ID_SIZE];    /* SIZE: SHA-256 of the object's version tag (zeros: none) */
	uint64_t disk;               /* bytes of the file (data and trailer) */
	uint64_t hash;
	int state;
	int refs;                    /* readers using the file now */
	bool verified;               /* read whole and checked by this process */
	bool listed;                 /* on the use list, counted in bytes/files */
	bool outdated;               /* not the object now (shorter than a reader needs): fetch again */
	char name[];
};

typedef struct {
	bkr_store base;
	bkr_store *inner;
	char *root;                  /* "<dir>/<key>" */
	int lock_fd;
	uint64_t max;
	pthread_mutex_t lock;        /* guards everything below */
	pthread_cond_t cond;         /* an entry stopped LOADING */
	struct entry *table[BUCKETS];
	struct entry *oldest, *newest;
	bkr_store_cache_stats st;
} cache_store;

static const bkr_store_ops cache_ops;

/* ---- entries (cs->lock held) ---------------------------------------------- */

static uint64_t key_hash(const char *name, uint64_t block)
{
	uint64_t h = 1469598103934665603ull ^ block; /* FNV-1a */
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

static struct entry *find(cache_store *cs, const char *name, uint64_t block)
{
	uint64_t h = key_hash(name, block);
	for (struct entry *e = cs->table[h % BUCKETS]; e; e = e->next)
		if (e->hash == h && e->block == block && !strcmp(e->name, name))
			return e;
	return NULL;
}

static struct entry *entry_add(cache_store *cs, const char *name, uint64_t block, int state)
{
	size_t n = strlen(name);
	struct entry *e = calloc(1, sizeof(*e) + n + 1);
	if (!e)
		return NULL;
	memcpy(e->name, name, n + 1);
	e->block = block;
	e->state = state;
	e->hash = key_hash(name, block);
	e->next = cs->table[e->hash % BUCKETS];
	cs->table[e->hash % BUCKETS] = e;
	return e;
}

static void unlist(cache_store *cs, struct entry *e)
{
	if (!e->listed)
		return;
	*(e->older ? &e->older->newer : &cs->oldest) = e->newer;
	*(e->newer ? &e->newer->older : &cs->newest) = e->older;
	e->older = e->newer = NULL;
	e->listed = false;
	cs->st.bytes -= e->disk;
	cs->st.files--;
}

/* put @p e (present) at the new end of the use list */
static void touch(cache_store *cs, struct entry *e)
{
	if (e->listed) {
		if (cs->newest == e)
			return;
		unlist(cs, e);
	}
	e->older = cs->newest;
	*(cs->newest ? &cs->newest->newer : &cs->oldest) = e;
	cs->newest = e;
	e->listed = true;
	cs->st.bytes += e->disk;
	cs->st.files++;
}

static void entry_drop(cache_store *cs, struct entry *e)
{
	struct entry **p = &cs->table[e->hash % BUCKETS];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	unlist(cs, e);
	free(e);
}

/* "<root>/w/<name>" or "<root>/b/<name>/<block>" */
static int file_of(const cache_store *cs, const char *name, uint64_t block, char *out)
{
	int n = block == WHOLE ? snprintf(out, PATH_MAX, "%s/w/%s", cs->root, name)
			       : snprintf(out, PATH_MAX, "%s/b/%s/%016llx", cs->root, name, (unsigned long long)block);
	if (n < 0 || n >= PATH_MAX)
		return bkr_error_set(BKR_EINVAL, "cache path too long: %s/%s", cs->root, name);
	return 0;
}

/* remove the file of @p e and forget it */
static void entry_remove(cache_store *cs, struct entry *e)
{
	char path[PATH_MAX];
	if (e->block != SIZE && file_of(cs, e->name, e->block, path) == 0)
		unlink(path);
	entry_drop(cs, e);
}

/* least recently used files go until the cache fits (files in use stay) */
static void evict(cache_store *cs)
{
	struct entry *e = cs->oldest, *next;
	for (; e && cs->st.bytes > cs->max; e = next) {
		next = e->newer;
		if (e->refs > 0)
			continue;
		entry_remove(cs, e);
		cs->st.evicted++;
	}
}

/* an entry this thread made LOADING is done: present (and checked), or gone */
static void settle(cache_store *cs, struct entry *e, bool present, uint64_t len, uint64_t disk)
{
	if (present) {
		e->state = PRESENT;
		e->verified = true;
		e->len = len;
		e->disk = disk;
		touch(cs, e);
	} else {
		entry_drop(cs, e);
	}
	pthread_cond_broadcast(&cs->cond);
}

/* ---- cache files ------------------------------------------------------------ */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * An object as the wrapped store describes it: size, last-modified time (-1:
 * unknown) and the SHA-256 of its version tag (S3's ETag; zeros: none).
 */
struct version {
	uint64_t size;
	int64_t mtime;
	uint8_t tag[BKR_ID_SIZE];
};

/* The trailer's sum of @p len bytes at @p data kept as the file @p rel (its name under the cache root). */
static void file_sum(const uint8_t *data, size_t len, const char *rel, bkr_id *out)
{
	uint8_t buf[BKR_ID_SIZE + PATH_MAX];
	size_t n = strlen(rel);
	bkr_sha256(data, len, out);
	memcpy(buf, out->b, BKR_ID_SIZE);
	memcpy(buf + BKR_ID_SIZE, rel, n);
	bkr_sha256(buf, BKR_ID_SIZE + n, out);
}

/* the name of cache file @p path under the cache root */
static const char *rel_of(const cache_store *cs, const char *path)
{
	return path + strlen(cs->root) + 1;
}

/*
 * Write @p len bytes (of the object @p v) as the cache file @p path; *disk
 * gets its size.  A failure leaves no file and is not an error of the read
 * (the bytes are served from memory, only not kept).
 */
static int file_write(const char *path, const char *rel, const uint8_t *data, size_t len, struct version v,
		      uint64_t *disk)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	uint8_t tr[TRAILER];
	bkr_id sum;
	const char *slash = strrchr(path, '/');
	int fd, err;

	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if ((err = bkr_io_mkdir_p(dir, DIR_MODE)) < 0 || (err = bkr_io_tmpfile(dir, tmp, sizeof(tmp), &fd)) < 0)
		return err;
	file_sum(data, len, rel, &sum);
	memcpy(tr, MAGIC, 8);
	put_u64(tr + 8, len);
	put_u64(tr + 16, v.size);
	put_u64(tr + 24, (uint64_t)v.mtime);
	memcpy(tr + 32, v.tag, BKR_ID_SIZE);
	memcpy(tr + 64, sum.b, BKR_ID_SIZE);
	if ((err = bkr_io_write_full(fd, data, len, tmp)) < 0 || (err = bkr_io_write_full(fd, tr, TRAILER, tmp)) < 0) {
		close(fd);
		unlink(tmp);
		return err;
	}
	if ((err = bkr_io_commit_tmp(fd, tmp, path, BKR_IO_REPLACE | BKR_IO_NOSYNC)) < 0)
		return err;
	*disk = len + TRAILER;
	return 0;
}

/*
 * Read and check cache file @p path whole: its data into *out (malloc'd,
 * NUL-terminated) when @p out is not NULL.  BKR_ECORRUPT when it is torn,
 * truncated or damaged; BKR_ENOTFOUND when it is gone.
 */
static int file_check(const char *path, const char *rel, uint8_t **out, uint64_t *len, struct version *v)
{
	uint8_t *buf = NULL, tr[TRAILER];
	bkr_id sum;
	uint64_t n;
	size_t size;
	int fd, err = 0;

	if (out)
		*out = NULL;
	/* not blocking on a FIFO planted in the cache, refused as what is no regular file */
	if ((err = bkr_io_open_file(path, SIZE_MAX, &fd, &size)) < 0)
		return err;
	if (size < TRAILER) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: cache file truncated", path);
		goto done;
	}
	n = (uint64_t)size - TRAILER;
	if ((err = bkr_io_pread_full(fd, tr, TRAILER, n, path)) < 0)
		goto done;
	if (memcmp(tr, MAGIC, 8) || get_u64(tr + 8) != n || n > SIZE_MAX - 1) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: cache file torn or damaged", path);
		goto done;
	}
	if (!(buf = malloc(n + 1))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_io_pread_full(fd, buf, n, 0, path)) < 0)
		goto done;
	buf[n] = '\0';
	file_sum(buf, n, rel, &sum);
	if (memcmp(sum.b, tr + 64, BKR_ID_SIZE)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: cache file damaged (checksum)", path);
		goto done;
	}
	*len = n;
	v->size = get_u64(tr + 16);
	v->mtime = (int64_t)get_u64(tr + 24);
	memcpy(v->tag, tr + 32, BKR_ID_SIZE);
	if (out) {
		*out = buf;
		buf = NULL;
	}
done:
	free(buf);
	close(fd);
	return err;
}

/* @p len bytes at @p off of cache file @p path (checked before) */
static int file_read(const char *path, uint64_t off, size_t len, void *buf)
{
	size_t size;
	int fd, err;
	if ((err = bkr_io_open_file(path, SIZE_MAX, &fd, &size)) < 0)
		return err;
	err = bkr_io_pread_full(fd, buf, len, off, path);
	close(fd);
	return err;
}

/* ---- getting an entry ------------------------------------------------------- */

enum { HAVE, FETCH, CHECK };

/*
 * The entry (@p name, @p block): HAVE, a checked file with a reference taken
 * (release it); FETCH, a new LOADING entry this thread fills (settle); or
 * CHECK, a file from an earlier process this thread checks (settle).  Waits
 * while another thread is fetching or checking it.  NULL *out: out of memory.
 */
static int acquire(cache_store *cs, const char *name, uint64_t block, struct entry **out)
{
	struct entry *e;
	int r;

	pthread_mutex_lock(&cs->lock);
	/* a file found bad is checked again once nobody reads it */
	while ((e = find(cs, name, block)) && (e->state == LOADING || (!e->verified && e->refs > 0)))
		pthread_cond_wait(&cs->cond, &cs->lock);
	if (!e) {
		e = entry_add(cs, name, block, LOADING);
		r = FETCH;
	} else if (e->outdated) {
		/* the object is not what was kept (replaced in the store): fetched again */
		char path[PATH_MAX];
		if (file_of(cs, e->name, e->block, path) == 0)
			unlink(path);
		e->outdated = false;
		e->verified = false;
		e->state = LOADING;
		unlist(cs, e);
		cs->st.refetched++;
		r = FETCH;
	} else if (!e->verified) {
		e->state = LOADING;
		unlist(cs, e);
		r = CHECK;
	} else {
		e->refs++;
		touch(cs, e);
		cs->st.hits++;
		r = HAVE;
	}
	pthread_mutex_unlock(&cs->lock);
	*out = e;
	return r;
}

static void release_locked(cache_store *cs, struct entry *e)
{
	if (--e->refs == 0 && !e->verified)
		pthread_cond_broadcast(&cs->cond);
}

static void release(cache_store *cs, struct entry *e)
{
	pthread_mutex_lock(&cs->lock);
	release_locked(cs, e);
	pthread_mutex_unlock(&cs->lock);
}

/*
 * A checked file turned out unreadable or short (removed or changed behind
 * our back): it is checked again (and fetched again) by the next reader,
 * once nobody reads it.
 */
static void discard(cache_store *cs, struct entry *e)
{
	pthread_mutex_lock(&cs->lock);
	e->verified = false;
	release_locked(cs, e);
	pthread_mutex_unlock(&cs->lock);
	bkr_error_clear();
}

/*
 * A checked file is not the object as it is now (a reader needs bytes past
 * its end: the object was replaced in the store, say a damaged copy put
 * right): the next reader fetches it again, once nobody reads it.
 */
static void outdate(cache_store *cs, struct entry *e)
{
	pthread_mutex_lock(&cs->lock);
	e->verified = false;
	e->outdated = true;
	release_locked(cs, e);
	pthread_mutex_unlock(&cs->lock);
}

/* the LOADING entry @p e was fetched: keep @p data as its file (or drop it if that fails) */
static void keep(cache_store *cs, struct entry *e, const uint8_t *data, size_t len, struct version v)
{
	char path[PATH_MAX];
	uint64_t disk = 0;
	bool ok = file_of(cs, e->name, e->block, path) == 0 && file_write(path, rel_of(cs, path), data, len, v, &disk) == 0;

	bkr_error_clear(); /* a cache that cannot keep a file still serves the read */
	pthread_mutex_lock(&cs->lock);
	settle(cs, e, ok, len, disk);
	evict(cs);
	pthread_mutex_unlock(&cs->lock);
}

/*
 * Check the file of CHECK entry @p e; *data gets its bytes when @p data is
 * not NULL.  A file kept for an object of another size, last-modified time
 * or version tag than @p expect (the object now; NULL: unknown) is of an
 * object since replaced: dropped.
 */
static void check(cache_store *cs, struct entry *e, uint8_t **data, uint64_t *len, const struct version *expect)
{
	char path[PATH_MAX];
	struct version v;
	bool ok = file_of(cs, e->name, e->block, path) == 0 && file_check(path, rel_of(cs, path), data, len, &v) == 0;
	if (ok && expect &&
	    (v.size != expect->size || v.mtime != expect->mtime || memcmp(v.tag, expect->tag, BKR_ID_SIZE))) {
		ok = false;
		if (data) {
			free(*data);
			*data = NULL;
		}
	}

	bkr_error_clear();
	pthread_mutex_lock(&cs->lock);
	if (!ok) {
		unlink(path);
		cs->st.refetched++;
	}
	settle(cs, e, ok, ok ? *len : 0, ok ? *len + TRAILER : 0);
	pthread_mutex_unlock(&cs->lock);
}

static void count(cache_store *cs, uint64_t bytes)
{
	pthread_mutex_lock(&cs->lock);
	cs->st.requests++;
	cs->st.fetched += bytes;
	pthread_mutex_unlock(&cs->lock);
}

/* an object the wrapped store no longer has: forget every file of it (how many) */
static int forget(cache_store *cs, const char *name)
{
	int n = 0;
	pthread_mutex_lock(&cs->lock);
	for (size_t b = 0; b < BUCKETS; b++) {
		struct entry *e = cs->table[b], *next;
		for (; e; e = next) {
			next = e->next;
			if (e->state == PRESENT && e->refs == 0 && !strcmp(e->name, name)) {
				entry_remove(cs, e);
				n++;
			}
		}
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

/* ---- whole objects -------------------------------------------------------------- */

/* Objects read whole and kept whole: immutable once published, and small. */
static bool whole_object(const char *name)
{
	static const char *const folders[] = { "index/", "tree/", "backups/", "runs/" };
	for (size_t i = 0; i < sizeof(folders) / sizeof(*folders); i++)
		if (!strncmp(name, folders[i], strlen(folders[i])))
			return true;
	return false;
}

/*
 * Whole object @p name, into *out (malloc'd, NUL-terminated) when @p out is
 * not NULL, or its bytes [@p off, @p off + @p len) into @p buf.
 */
static int whole_read(cache_store *cs, const char *name, size_t max, uint8_t **out, size_t *out_len,
		      uint64_t off, size_t len, void *buf)
{
	char path[PATH_MAX];
	struct entry *e;
	uint8_t *data = NULL;
	uint64_t n = 0;
	struct version v;
	size_t got;
	bool refetched = false;
	int err;

	if ((err = file_of(cs, name, WHOLE, path)) < 0)
		return err;
	for (int attempt = 0; attempt < 4; attempt++) {
		switch (acquire(cs, name, WHOLE, &e)) {
		case HAVE:
			if (!out && (off > e->len || len > e->len - off)) {
				if (!refetched) {
					/* the reader knows the object is longer: a copy of another
					 * object by that name (a damaged one since put right)? */
					refetched = true;
					outdate(cs, e);
					continue;
				}
				release(cs, e);
				return bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (%zu bytes at %llu of %llu)",
						     cs->base.location, name, len, (unsigned long long)off,
						     (unsigned long long)e->len);
			}
			err = out ? file_check(path, rel_of(cs, path), &data, &n, &v) : file_read(path, off, len, buf);
			if (err == BKR_ENOTFOUND || err == BKR_ECORRUPT) {
				discard(cs, e);
				continue;
			}
			release(cs, e);
			if (err < 0)
				return err;
			goto found;
		case CHECK:
			check(cs, e, out ? &data : NULL, &n, NULL);
			if (out && data)
				goto found;
			continue;
		default:
			if (!e)
				return bkr_error_oom();
			err = bkr_store_get(cs->inner, name, out ? max : WHOLE_MAX, &data, &got);
			count(cs, err < 0 ? 0 : got);
			if (err < 0) {
				pthread_mutex_lock(&cs->lock);
				settle(cs, e, false, 0, 0);
				pthread_mutex_unlock(&cs->lock);
				if (err == BKR_ENOTFOUND)
					forget(cs, name);
				return err;
			}
			n = got;
			keep(cs, e, data, got, (struct version){ .size = got, .mtime = -1 });
			goto found;
		}
	}
	return bkr_error_set(BKR_EIO, "%s/%s: the cache file keeps failing", cs->base.location, name);
found:
	if (out) {
		if (n > max) {
			free(data);
			return bkr_error_set(BKR_ECORRUPT, "%s/%s: too large", cs->base.location, name);
		}
		*out = data;
		*out_len = (size_t)n;
		return 0;
	}
	if (data) {
		if (off > n || len > n - off)
			err = bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated", cs->base.location, name);
		else
			memcpy(buf, data + off, len);
		free(data);
	}
	return err;
}

/* ---- data packs, in blocks ------------------------------------------------------ */

/*
 * The size, last-modified time and version tag of pack @p name: a stat of
 * the wrapped store once, however many threads ask at the same time (the
 * first stats, the others wait for it).
 */
static int object_version(cache_store *cs, const char *name, struct version *v)
{
	struct entry *e;
	char tag[BKR_STORE_TAG_MAX];
	bool known;
	int err;

	memset(v->tag, 0, BKR_ID_SIZE);
	pthread_mutex_lock(&cs->lock);
	while ((e = find(cs, name, SIZE)) && e->state == LOADING)
		pthread_cond_wait(&cs->cond, &cs->lock);
	if ((known = e != NULL)) {
		v->size = e->len;
		v->mtime = e->mtime;
		memcpy(v->tag, e->tag, BKR_ID_SIZE);
	} else {
		e = entry_add(cs, name, SIZE, LOADING);
	}
	pthread_mutex_unlock(&cs->lock);
	if (known)
		return 0;
	if (!e)
		return bkr_error_oom();
	err = bkr_store_stat_tag(cs->inner, name, &v->size, &v->mtime, tag);
	if (err == 0 && tag[0]) {
		bkr_id h;
		bkr_sha256(tag, strlen(tag), &h);
		memcpy(v->tag, h.b, BKR_ID_SIZE);
	}
	count(cs, 0);
	pthread_mutex_lock(&cs->lock);
	if (err < 0) {
		entry_drop(cs, e);
	} else {
		e->state = PRESENT;
		e->len = v->size;
		e->mtime = v->mtime;
		memcpy(e->tag, v->tag, BKR_ID_SIZE);
	}
	pthread_cond_broadcast(&cs->cond);
	pthread_mutex_unlock(&cs->lock);
	if (err == BKR_ENOTFOUND)
		forget(cs, name);
	return err < 0 ? err : 0;
}

/*
 * Blocks to fetch with block @p first (a FETCH entry): the ones after it
 * that nobody has or fetches, up to FETCH_BLOCKS and the end of the object,
 * made LOADING here.  Returns how many (at least 1).
 */
static size_t claim_run(cache_store *cs, const char *name, uint64_t first, uint64_t nblocks, struct entry **run)
{
	size_t n = 1;
	pthread_mutex_lock(&cs->lock);
	while (n < FETCH_BLOCKS && first + n < nblocks && !find(cs, name, first + n)) {
		if (!(run[n] = entry_add(cs, name, first + n, LOADING)))
			break;
		n++;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

/*
 * Fetch the run of blocks starting at run[0] with one ranged get; copy the
 * part of [*off, end) they hold into @p out (*off advances); keep each block.
 */
static int fetch_run(cache_store *cs, const char *name, struct version v, struct entry **run, size_t n,
		     uint64_t *off, uint64_t end, uint8_t *out, uint64_t start)
{
	uint64_t size = v.size, from = run[0]->block * BLOCK, to = (run[0]->block + n) * BLOCK;
	uint8_t *data;
	int err;

	if (to > size)
		to = size;
	if (!(data = malloc(to - from))) {
		err = bkr_error_oom();
		goto fail;
	}
	err = bkr_store_get_range(cs->inner, name, from, to - from, data, 0);
	count(cs, err < 0 ? 0 : to - from);
	if (err < 0)
		goto fail;
	{
		uint64_t stop = end < to ? end : to;
		memcpy(out + (*off - start), data + (*off - from), stop - *off);
		*off = stop;
	}
	for (size_t k = 0; k < n; k++) {
		uint64_t b = from + k * BLOCK, e = b + BLOCK < to ? b + BLOCK : to;
		keep(cs, run[k], data + (b - from), e - b, v);
	}
	free(data);
	return 0;
fail:
	free(data);
	pthread_mutex_lock(&cs->lock);
	for (size_t k = 0; k < n; k++)
		settle(cs, run[k], false, 0, 0);
	pthread_mutex_unlock(&cs->lock);
	if (err == BKR_ENOTFOUND)
		forget(cs, name);
	return err;
}

static int blocks_read(cache_store *cs, const char *name, uint64_t start, size_t len, uint8_t *out)
{
	struct entry *run[FETCH_BLOCKS], *e;
	struct version v;
	uint64_t size, off = start, end = start + len;
	char path[PATH_MAX];
	unsigned failures = 0;
	int err;

	if ((err = object_version(cs, name, &v)) < 0)
		return err;
	size = v.size;
	if (start > size || len > size - start)
		return bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (%zu bytes at %llu of %llu)", cs->base.location,
				     name, len, (unsigned long long)start, (unsigned long long)size);
	while (off < end) {
		uint64_t b = off / BLOCK, n = 0;
		switch (acquire(cs, name, b, &e)) {
		case HAVE: {
			uint64_t stop = (b + 1) * BLOCK < end ? (b + 1) * BLOCK : end;
			if ((err = file_of(cs, name, b, path)) == 0 && stop - b * BLOCK <= e->len)
				err = file_read(path, off - b * BLOCK, stop - off, out + (off - start));
			else if (err == 0)
				err = BKR_ECORRUPT;
			if (err < 0) { /* gone or shrunk since it was checked */
				discard(cs, e);
				if (++failures > 3)
					return bkr_error_set(BKR_EIO, "%s: the cache file keeps failing", path);
				continue;
			}
			release(cs, e);
			off = stop;
			break;
		}
		case CHECK:
			check(cs, e, NULL, &n, &v);
			break;
		default:
			if (!e)
				return bkr_error_oom();
			run[0] = e;
			n = claim_run(cs, name, b, (size + BLOCK - 1) / BLOCK, run);
			if ((err = fetch_run(cs, name, v, run, n, &off, end, out, start)) < 0)
				return err;
		}
	}
	return 0;
}

/* ---- the store operations ------------------------------------------------------ */

static bkr_store *inner_of(bkr_store *s)
{
	return ((cache_store *)s)->inner;
}

/*
 * A whole object's size is its cached copy's (fetched whole when absent:
 * the read that follows a stat, an index file's header, is then free); a
 * copy this process has checked is taken at its word.
 */
static int cache_stat(bkr_store *s, const char *name, uint64_t *size)
{
	cache_store *cs = (cache_store *)s;
	struct entry *e;
	uint8_t *data = NULL;
	size_t len = 0;
	int err;

	if (!whole_object(name))
		return bkr_store_stat(inner_of(s), name, size);
	pthread_mutex_lock(&cs->lock);
	e = find(cs, name, WHOLE);
	if (e && e->state == PRESENT && e->verified)
		*size = e->len;
	pthread_mutex_unlock(&cs->lock);
	if (e && e->state == PRESENT && e->verified)
		return 0;
	if ((err = whole_read(cs, name, WHOLE_MAX, &data, &len, 0, 0, NULL)) < 0)
		return err;
	free(data);
	*size = len;
	return 0;
}

/* @p data, just published as whole object @p name, is kept as its cache file */
static void keep_written(cache_store *cs, const char *name, const uint8_t *data, size_t len)
{
	struct entry *e = NULL;
	pthread_mutex_lock(&cs->lock);
	if (!find(cs, name, WHOLE))
		e = entry_add(cs, name, WHOLE, LOADING);
	pthread_mutex_unlock(&cs->lock);
	if (e)
		keep(cs, e, data, len, (struct version){ .size = len, .mtime = -1 });
}

static int cache_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	if (!whole_object(name))
		return bkr_store_get(inner_of(s), name, max, out, len);
	return whole_read((cache_store *)s, name, max, out, len, 0, 0, NULL);
}

static int cache_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	(void)flags;
	if (len == 0)
		return 0;
	if (whole_object(name))
		return whole_read((cache_store *)s, name, 0, NULL, NULL, off, len, buf);
	return blocks_read((cache_store *)s, name, off, len, buf);
}

/* a whole object is fetched whole by any read of it (and a data pack as the wrapped store reads it) */
static bool cache_reads_whole(bkr_store *s, const char *name)
{
	return whole_object(name) || bkr_store_reads_whole(inner_of(s), name);
}

/* what this process writes it will read again (an index file, the next backup's parent) */
static int cache_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	int err = bkr_store_put(inner_of(s), name, data, len);
	if (err == 0 && whole_object(name))
		keep_written((cache_store *)s, name, data, len);
	return err;
}

/* An upload of a tree pack: the wrapped store's, and a copy kept once it is published. */
typedef struct {
	bkr_store_upload base;
	bkr_store_upload *inner;
	uint8_t *data;
	size_t len, cap;
	bool failed; /* out of memory for the copy: published all the same, not kept */
} cache_upload;

/* a data pack's upload belongs to the wrapped store: its calls go there directly */
static int cache_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	cache_upload *u;
	int err;

	if (strcmp(prefix, "tree") && strncmp(prefix, "tree/", 5))
		return bkr_store_upload_new(inner_of(s), prefix, out);
	*out = NULL;
	if (!(u = calloc(1, sizeof(*u))))
		return bkr_error_oom();
	if ((err = bkr_store_upload_new(inner_of(s), prefix, &u->inner)) < 0) {
		free(u);
		return err;
	}
	u->base.store = s;
	*out = &u->base;
	return 0;
}

static int cache_upload_write(bkr_store_upload *base, const void *data, size_t len)
{
	cache_upload *u = (cache_upload *)base;
	int err = bkr_store_upload_write(u->inner, data, len);
	if (err < 0 || u->failed || len == 0)
		return err;
	if (len > WHOLE_MAX - u->len) {
		u->failed = true;
	} else if (u->len + len > u->cap) {
		size_t cap = u->cap ? u->cap : 1u << 16;
		uint8_t *p;
		while (cap < u->len + len)
			cap *= 2;
		if (!(p = realloc(u->data, cap)))
			u->failed = true;
		else
			u->data = p, u->cap = cap;
	}
	if (!u->failed) {
		memcpy(u->data + u->len, data, len);
		u->len += len;
	}
	return 0;
}

static int cache_upload_publish(bkr_store_upload *base, const char *name)
{
	cache_upload *u = (cache_upload *)base;
	int err = bkr_store_upload_publish(u->inner, name);
	if (err == 0 && !u->failed && whole_object(name))
		keep_written((cache_store *)base->store, name, u->data, u->len);
	return err;
}

static void cache_upload_free(bkr_store_upload *base)
{
	cache_upload *u = (cache_upload *)base;
	bkr_store_upload_free(u->inner);
	free(u->data);
	free(u);
}

static int cache_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	return bkr_store_list(inner_of(s), prefix, cb, ctx);
}

static int cache_list_stamped(bkr_store *s, const char *prefix,
			     int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	return bkr_store_list_stamped(inner_of(s), prefix, cb, ctx);
}

static int cache_list_other(bkr_store *s, const char *prefix,
			    int (*cb)(void *ctx, const char *name, const char *what), void *ctx)
{
	return bkr_store_list_other(inner_of(s), prefix, cb, ctx);
}

static int cache_remove(bkr_store *s, const char *name)
{
	forget((cache_store *)s, name);
	return bkr_store_delete(inner_of(s), name);
}

static int cache_rename(bkr_store *s, const char *from, const char *to)
{
	forget((cache_store *)s, from);
	return bkr_store_rename(inner_of(s), from, to);
}

static int cache_prepare(bkr_store *s, const char *prefix)
{
	return bkr_store_prepare(inner_of(s), prefix);
}

static int cache_drop_folder(bkr_store *s, const char *prefix)
{
	return bkr_store_drop_folder(inner_of(s), prefix);
}

/* a lock belongs to the wrapped store: unlock goes there directly */
static int cache_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	return bkr_store_lock(inner_of(s), name, exclusive, wait, out);
}

static int cache_mark(bkr_store *s, const char *name, bkr_store_held **out)
{
	return bkr_store_mark(inner_of(s), name, out);
}

/* a copy that failed to parse: perhaps of an object since put right in the wrapped store */
static int cache_drop_copy(bkr_store *s, const char *name)
{
	cache_store *cs = (cache_store *)s;
	int n = forget(cs, name);
	if (n) {
		pthread_mutex_lock(&cs->lock);
		cs->st.refetched++;
		pthread_mutex_unlock(&cs->lock);
	}
	return n > 0;
}

static int cache_root_missing(bkr_store *s)
{
	return bkr_store_root_missing(inner_of(s));
}

static void cache_free(bkr_store *s)
{
	cache_store *cs = (cache_store *)s;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct entry *e = cs->table[b], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	if (cs->lock_fd >= 0) {
		(void)futimens(cs->lock_fd, NULL); /* used until now */
		close(cs->lock_fd);
	}
	pthread_cond_destroy(&cs->cond);
	pthread_mutex_destroy(&cs->lock);
	bkr_store_free(cs->inner);
	free(cs->root);
	free(s->location);
	free(cs);
}

static const bkr_store_ops cache_ops = {
	.stat = cache_stat,
	.get = cache_get,
	.get_range = cache_get_range,
	.put = cache_put,
	.upload_new = cache_upload_new,
	.upload_write = cache_upload_write,
	.upload_publish = cache_upload_publish,
	.upload_free = cache_upload_free,
	.list = cache_list,
	.list_stamped = cache_list_stamped,
	.list_other = cache_list_other,
	.remove = cache_remove,
	.rename_new = cache_rename,
	.prepare = cache_prepare,
	.lock = cache_lock,
	.mark = cache_mark,
	.free = cache_free,
	.root_missing = cache_root_missing,
	.drop_copy = cache_drop_copy,
	.drop_folder = cache_drop_folder,
	.reads_whole = cache_reads_whole,
};

/* ---- opening: the files an earlier process left -------------------------------- */

struct found {
	uint64_t mtime_ns;
	uint64_t disk;
	uint64_t block;
	char *name;
};

struct scan {
	cache_store *cs;
	const char *top; /* "<root>/w" or "<root>/b" */
	bool blocks;
	struct found *v;
	size_t n, cap;
};

static int on_file(void *ctx, const char *rel)
{
	struct scan *sc = ctx;
	char path[PATH_MAX], *end;
	const char *base = strrchr(rel, '/');
	struct found f = { 0 };
	struct stat st;
	size_t nl = strlen(rel);

	if (snprintf(path, sizeof(path), "%s/%s", sc->top, rel) >= (int)sizeof(path))
		return 0;
	base = base ? base + 1 : rel;
	if (!strncmp(base, ".tmp-", 5)) { /* a write cut short */
		unlink(path);
		return 0;
	}
	f.block = WHOLE;
	if (sc->blocks) {
		if (base == rel || strlen(base) != 16)
			return 0;
		f.block = strtoull(base, &end, 16);
		if (*end || f.block >= SIZE)
			return 0;
		nl = (size_t)(base - 1 - rel);
	}
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 256;
		struct found *v = realloc(sc->v, cap * sizeof(*v));
		if (!v)
			return bkr_error_oom();
		sc->v = v;
		sc->cap = cap;
	}
	if (!(f.name = strndup(rel, nl)))
		return bkr_error_oom();
	f.mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	f.disk = (uint64_t)st.st_size;
	sc->v[sc->n++] = f;
	return 0;
}

static int by_mtime(const void *a, const void *b)
{
	const struct found *x = a, *y = b;
	return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

/* every cache file on disk, unchecked, in order of age (oldest used first) */
static int scan_files(cache_store *cs)
{
	struct scan sc = { .cs = cs };
	char top[2][PATH_MAX];
	int err = 0;

	for (int k = 0; k < 2 && err == 0; k++) {
		bkr_store *dir = NULL;
		snprintf(top[k], PATH_MAX, "%s/%s", cs->root, k ? "b" : "w");
		sc.top = top[k];
		sc.blocks = k == 1;
		if ((err = bkr_store_local_open(&dir, top[k], BKR_STORE_ABSENT_OK)) == 0)
			err = bkr_store_list(dir, "", on_file, &sc);
		bkr_store_free(dir);
	}
	if (err == 0 && sc.n) /* qsort of NULL, even of 0 items, is undefined */
		qsort(sc.v, sc.n, sizeof(*sc.v), by_mtime);
	for (size_t i = 0; i < sc.n; i++) {
		struct entry *e;
		if (err == 0 && !find(cs, sc.v[i].name, sc.v[i].block)) {
			if (!(e = entry_add(cs, sc.v[i].name, sc.v[i].block, PRESENT))) {
				err = bkr_error_oom();
			} else {
				e->disk = sc.v[i].disk;
				e->len = e->disk >= TRAILER ? e->disk - TRAILER : 0;
				touch(cs, e);
			}
		}
		free(sc.v[i].name);
	}
	free(sc.v);
	if (err == 0)
		evict(cs);
	return err;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Whether the file open as @p fd is no longer at @p path (its directory was renamed away). */
static bool moved(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* "<parent>/<name>", another repository's cache directory of this user: removed when no
 * process holds it and it is of an old key or unused since @p before (see the top). */
static void sweep_one(const char *parent, const char *name, time_t before)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], where[2048] = "", gone[PATH_MAX + 64], why[64] = "";
	struct stat st;
	ssize_t got;
	int fd;

	if (snprintf(dir, sizeof(dir), "%s/%s", parent, name) >= (int)sizeof(dir) || lstat(dir, &st) < 0 ||
	    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return;
	snprintf(path, sizeof(path), "%s/location", dir);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		if ((got = read(fd, where, sizeof(where) - 1)) > 0)
			where[got] = '\0';
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/lock", dir);
	if ((fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return; /* no cache directory of ours */
	if (!strncmp(where, "s3://", 5) && !strstr(where, " at "))
		snprintf(why, sizeof(why), "made before the endpoint was part of its key");
	else if (fstat(fd, &st) == 0 && st.st_mtime < before)
		snprintf(why, sizeof(why), "unused for %d days", BKR_STORE_CACHE_UNUSED_DAYS);
	if (why[0] && flock(fd, LOCK_EX | LOCK_NB) == 0 && !moved(fd, path)) {
		snprintf(gone, sizeof(gone), "%s/.removing-%s-%ld", parent, name, (long)getpid());
		if (rename(dir, gone) == 0) {
			nftw(gone, rm_one, 16, FTW_DEPTH | FTW_PHYS);
			bkr_log_info("cache", "removed the cache directory %s of %s: %s", dir, where[0] ? where : "?",
				     why);
		}
	}
	close(fd);
}

/* The directories beside @p own under @p parent (see the top); ".removing-*": left by a removal
 * cut short. */
static void sweep(const char *parent, const char *own)
{
	time_t before = time(NULL) - (time_t)BKR_STORE_CACHE_UNUSED_DAYS * 86400;
	DIR *d = opendir(parent);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		size_t n = strlen(de->d_name);
		if (!strncmp(de->d_name, ".removing-", 10)) {
			if (snprintf(path, sizeof(path), "%s/%s", parent, de->d_name) < (int)sizeof(path) &&
			    lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
				nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		} else if (n == KEY_HEX && strspn(de->d_name, "0123456789abcdef") == n && strcmp(de->d_name, own)) {
			sweep_one(parent, de->d_name, before);
		}
	}
	closedir(d);
}

static int open_root(cache_store *cs, const char *dir)
{
	/* the endpoint's too: one bucket name on two servers must not share cached objects */
	const char *where = bkr_store_identity(cs->inner);
	char hex[BKR_ID_HEX], path[PATH_MAX];
	bkr_id h;
	size_t n = strlen(dir);
	int err;

	bkr_sha256(where, strlen(where), &h);
	bkr_id_to_hex(&h, hex);
	hex[KEY_HEX] = '\0';
	if (n == 0 || n + KEY_HEX + 64 > PATH_MAX)
		return bkr_error_set(BKR_EINVAL, "bad cache directory '%s'", dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (!(cs->root = malloc(n + KEY_HEX + 2)))
		return bkr_error_oom();
	snprintf(cs->root, n + KEY_HEX + 2, "%.*s/%s", (int)n, dir, hex);
	snprintf(path, sizeof(path), "%s/lock", cs->root);
	/* again when another process, sweeping, renamed the directory away under us */
	for (int tries = 0;; tries++) {
		if ((err = bkr_io_mkdir_p(cs->root, DIR_MODE)) < 0)
			return err;
		{
			/* A file's trailer is no seal: whoever can write here can put a good-looking copy
			 * of any object (another backup's tree under a manifest's name) */
			struct stat st;
			char why[64] = "";
			if (lstat(cs->root, &st) < 0)
				return bkr_error_set_errno(errno, "cache %s", cs->root);
			if (!S_ISDIR(st.st_mode))
				snprintf(why, sizeof(why), "not a directory");
			else if (st.st_uid != geteuid())
				snprintf(why, sizeof(why), "owned by uid %lu, not this user", (unsigned long)st.st_uid);
			else if (st.st_mode & (S_IWGRP | S_IWOTH))
				snprintf(why, sizeof(why), "writable by other users");
			if (why[0])
				return bkr_error_set(BKR_EINVAL, "cache %s: %s: its files cannot be trusted (remove it, or "
						     "give another cache directory)", cs->root, why);
		}
		if ((cs->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
			return bkr_error_set_errno(errno, "cache %s", path);
		while ((err = flock(cs->lock_fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
			;
		if (err < 0 && errno != EWOULDBLOCK)
			return bkr_error_set_errno(errno, "flock %s", path);
		if (!moved(cs->lock_fd, path) || tries == 3)
			break;
		close(cs->lock_fd);
		cs->lock_fd = -1;
	}
	if (err < 0)
		return bkr_error_set(BKR_ELOCKED, "cache %s: in use by another process (give another cache directory)",
				     cs->root);
	(void)futimens(cs->lock_fd, NULL); /* used now */
	/* which repository this is, for whoever looks */
	if ((err = bkr_io_publish(cs->root, "location", where, strlen(where), BKR_IO_REPLACE | BKR_IO_NOSYNC)) < 0)
		return err;
	cs->root[n] = '\0';
	sweep(cs->root, hex);
	cs->root[n] = '/';
	return 0;
}

int bkr_store_cache_open(bkr_store **out, bkr_store *inner, const char *dir, uint64_t max_bytes)
{
	cache_store *cs;
	int err;

	*out = NULL;
	if (!(cs = calloc(1, sizeof(*cs)))) {
		bkr_store_free(inner);
		return bkr_error_oom();
	}
	cs->base.ops = &cache_ops;
	cs->inner = inner;
	cs->lock_fd = -1;
	cs->max = max_bytes ? max_bytes : BKR_STORE_CACHE_MAX_DEFAULT;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->cond, NULL);
	if (!(cs->base.location = strdup(bkr_store_location(inner)))) {
		err = bkr_error_oom();
		goto fail;
	}
	if ((err = open_root(cs, dir)) < 0 || (err = scan_files(cs)) < 0)
		goto fail;
	*out = &cs->base;
	return 0;
fail:
	cache_free(&cs->base);
	return err;
}

bool bkr_store_is_cache(const bkr_store *s)
{
	return s && s->ops == &cache_ops;
}

void bkr_store_cache_stats_get(bkr_store *s, bkr_store_cache_stats *out)
{
	cache_store *cs = (cache_store *)s;
	memset(out, 0, sizeof(*out));
	if (!bkr_store_is_cache(s))
		return;
	pthread_mutex_lock(&cs->lock);
	*out = cs->st;
	pthread_mutex_unlock(&cs->lock);
}

const char *bkr_store_cache_root(const bkr_store *s)
{
	return bkr_store_is_cache(s) ? ((const cache_store *)s)->root : NULL;
}

int bkr_store_cache_default_dir(char *out, size_t cap)
{
	char *dir = bkr_host_cache_dir("bkrfs");
	int n;

	if (!dir)
		return bkr_error_last_code();
	n = snprintf(out, cap, "%s", dir);
	if (n < 0 || (size_t)n >= cap)
		n = bkr_error_set(BKR_EINVAL, "cache directory %s: path too long", dir);
	else
		n = 0;
	free(dir);
	return n;
}
