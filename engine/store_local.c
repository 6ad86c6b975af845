/** @file
 * The local-directory store (bkr/store.h): objects are files under a root
 * directory, named by their relative path.
 *
 * Publishing follows bkr/io.h's protocol (temporary ".tmp-*" in the target's
 * directory, fsync, link(2) without replacing, unlink, directory fsync), so a
 * crash leaves no object or a complete one.  Ranged reads are one pread(2)
 * through an LRU of open descriptors (a mount reads blobs of the same packs
 * over and over; an fd stays valid while its file moves to another tier or
 * to trash).  Locks are flock(2) on a lock file, so a killed holder never
 * blocks anyone.  The fault points of BKR_FAULT are io.c's, under this file,
 * and this file's stat and rename.
 *
 * An upload (a pack) is staged in memory up to STAGE_CAP bytes and written
 * when it is published, with O_DIRECT (bkr_io_write_direct): the kernel then
 * neither copies it into the page cache nor writes the copy back.  The
 * publish protocol is the same (the data, fsync, link, directory fsync).  A
 * bigger upload goes on through the page cache.  Staging buffers are kept for
 * the next upload (STAGE_KEEP), so their pages are faulted in once.
 */
#include "bkr/store.h"
#include "bkr/error.h"
#include "bkr/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_CACHE 64
#define READ_AHEAD_MAX (4 << 20) /* objects up to this size are read ahead whole on request */
#define DIR_MODE 0700
#define STAGE_CAP (64u << 20) /* an upload staged in memory: a pack of the default 32 MiB and its last blob */
#define STAGE_KEEP 4          /* staging buffers kept for reuse */

struct fd_slot {
	uint64_t hash;     /* of the object name, checked before the name */
	int fd;
	int refs;          /* readers using fd now */
	uint64_t used;     /* LRU clock */
	bool valid;
	bool stale;        /* removed or moved: closed when the last reader is done */
	char path[PATH_MAX];
};

typedef struct {
	bkr_store base;
	pthread_mutex_t lock;  /* guards slots[] and clock */
	struct fd_slot slots[FD_CACHE];
	uint64_t clock;
	uint8_t *stage[STAGE_KEEP]; /* free staging buffers (lock) */
	int nstage;
} local_store;

typedef struct {
	bkr_store_upload base;
	int fd;
	char tmp[PATH_MAX];    /* "" once published or removed */
	uint8_t *stage;        /* the bytes so far (STAGE_CAP mapped); NULL once they go to fd */
	size_t staged;
} local_upload;

typedef struct {
	bkr_store_held base;
	int fd;
} local_held;

static int path_of(const bkr_store *s, const char *name, char *out)
{
	return bkr_store_describe(s, name, out, PATH_MAX);
}

/* The directory holding @p path into @p dir (PATH_MAX); false when it has none. */
static bool parent_of(const char *path, char *dir)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n == 0 || n >= PATH_MAX)
		return false;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return true;
}

/* mkdir -p the directory holding @p path. */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	return parent_of(path, dir) ? bkr_io_mkdir_p(dir, DIR_MODE) : 0;
}

/* no version tag: a local file's is its mtime (@p tag stays "") */
static int local_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	char path[PATH_MAX];
	struct stat st;
	int err;
	(void)tag;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	if ((err = bkr_io_fault("stat")) < 0) {
		bkr_error_prefix("%s", path); /* as a real failure here names the file */
		return err;
	}
	if (stat(path, &st) < 0)
		return bkr_error_set_errno(errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return bkr_error_set(BKR_ECORRUPT, "%s: not a regular file", path);
	*size = (uint64_t)st.st_size;
	*mtime = (int64_t)st.st_mtime;
	return 0;
}

static int local_stat(bkr_store *s, const char *name, uint64_t *size)
{
	int64_t mtime;
	return local_stat_time(s, name, size, &mtime, NULL);
}

static int local_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	char path[PATH_MAX];
	int err;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	return bkr_io_read_file(path, max, out, len);
}

static uint64_t name_hash(const char *p)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

/* A cached slot for @p path with a reference taken, or -1 (ls->lock held). */
static int slot_find(local_store *ls, uint64_t h, const char *path)
{
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid && !sl->stale && sl->hash == h && !strcmp(sl->path, path)) {
			sl->refs++;
			sl->used = ++ls->clock;
			return i;
		}
	}
	return -1;
}

/* Close every cached descriptor that no one borrows, for an open that found
 * the process out of them (EMFILE, ENFILE: a low ulimit -n, which the cache
 * alone may fill); false when none was idle. */
static bool fd_shed(local_store *ls)
{
	bool any = false;

	pthread_mutex_lock(&ls->lock);
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid && sl->refs == 0) {
			close(sl->fd);
			sl->valid = false;
			any = true;
		}
	}
	pthread_mutex_unlock(&ls->lock);
	return any;
}

/*
 * Borrow a descriptor for @p path: *slot is the cache slot to release with
 * fd_put, or -1 for an uncached fd (every slot busy) that fd_put closes.
 */
static int fd_get(local_store *ls, const char *path, unsigned flags, int *fd_out, int *slot_out)
{
	uint64_t h = name_hash(path);
	int fd, victim = -1, i;

	pthread_mutex_lock(&ls->lock);
	i = slot_find(ls, h, path);
	pthread_mutex_unlock(&ls->lock);
	if (i >= 0) {
		*fd_out = ls->slots[i].fd;
		*slot_out = i;
		return 0;
	}
	while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && (errno == EMFILE || errno == ENFILE) && fd_shed(ls))
		;
	if (fd < 0)
		return bkr_error_set_errno(errno, "open %s", path);
	/* A small object read all over (tree packs are written children first
	 * and walked parents first): one asynchronous read of the whole of it
	 * beats a disk seek per piece on a cold `ls -lR` or restore. */
	if (flags & BKR_STORE_READ_AHEAD) {
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_size <= READ_AHEAD_MAX)
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	}

	pthread_mutex_lock(&ls->lock);
	if ((i = slot_find(ls, h, path)) >= 0) { /* raced with another opener */
		pthread_mutex_unlock(&ls->lock);
		close(fd);
		*fd_out = ls->slots[i].fd;
		*slot_out = i;
		return 0;
	}
	for (i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid && sl->refs > 0)
			continue;
		if (victim < 0 || !sl->valid || (ls->slots[victim].valid && sl->used < ls->slots[victim].used))
			victim = i;
	}
	*fd_out = fd;
	*slot_out = victim;
	if (victim >= 0) {
		struct fd_slot *sl = &ls->slots[victim];
		if (sl->valid)
			close(sl->fd);
		sl->hash = h;
		sl->fd = fd;
		sl->refs = 1;
		sl->used = ++ls->clock;
		sl->valid = true;
		sl->stale = false;
		snprintf(sl->path, sizeof(sl->path), "%s", path);
	}
	pthread_mutex_unlock(&ls->lock);
	return 0;
}

/* Release a borrowed descriptor; @p drop forgets it (a failed read: the next
 * one opens the file afresh, wherever it is now). */
static void fd_put(local_store *ls, int fd, int slot, bool drop)
{
	if (slot < 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&ls->lock);
	struct fd_slot *sl = &ls->slots[slot];
	if (--sl->refs == 0 && (drop || sl->stale)) {
		close(sl->fd);
		sl->valid = false;
	}
	pthread_mutex_unlock(&ls->lock);
}

/* @p path no longer names what a cached descriptor reads. */
static void fd_forget(local_store *ls, const char *path)
{
	uint64_t h = name_hash(path);
	pthread_mutex_lock(&ls->lock);
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (!sl->valid || sl->hash != h || strcmp(sl->path, path))
			continue;
		if (sl->refs == 0) {
			close(sl->fd);
			sl->valid = false;
		} else {
			sl->stale = true;
		}
	}
	pthread_mutex_unlock(&ls->lock);
}

static int local_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	local_store *ls = (local_store *)s;
	char path[PATH_MAX];
	int fd = -1, slot = -1, err;

	if ((err = path_of(s, name, path)) < 0 || (err = fd_get(ls, path, flags, &fd, &slot)) < 0)
		return err;
	err = bkr_io_pread_full(fd, buf, len, off, path);
	fd_put(ls, fd, slot, err < 0);
	return err;
}

/* posix_fadvise(WILLNEED) queues the reads and returns: the next pread of
 * the range finds it in the page cache or already on its way. */
static int local_advise(bkr_store *s, const char *name, uint64_t off, uint64_t len)
{
	char path[PATH_MAX];
	int fd = -1, slot = -1, err;

	/* through the descriptor cache: a restore advises every chunk of a pack it then reads */
	if ((err = path_of(s, name, path)) < 0 || (err = fd_get((local_store *)s, path, 0, &fd, &slot)) < 0)
		return err;
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	fd_put((local_store *)s, fd, slot, false);
	return 0;
}

static int local_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX], *slash;
	int err;
	if ((err = path_of(s, name, path)) < 0 || (err = make_parent(path)) < 0)
		return err;
	slash = strrchr(path, '/');
	*slash = '\0';
	return bkr_io_publish(path, slash + 1, data, len, BKR_IO_NOREPLACE);
}

/* A staging buffer (STAGE_CAP bytes, page-aligned): a kept one, else a new
 * mapping, whose pages are faulted in as they are written.  NULL when none
 * can be had: the upload goes through the page cache. */
static uint8_t *stage_get(local_store *ls)
{
	uint8_t *b = NULL;
	pthread_mutex_lock(&ls->lock);
	if (ls->nstage > 0)
		b = ls->stage[--ls->nstage];
	pthread_mutex_unlock(&ls->lock);
	if (b)
		return b;
	b = mmap(NULL, STAGE_CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	return b;
}

static void stage_put(local_store *ls, uint8_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&ls->lock);
	if (ls->nstage < STAGE_KEEP) {
		ls->stage[ls->nstage++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&ls->lock);
	if (b)
		munmap(b, STAGE_CAP);
}

/* Write what is staged to the file; the upload goes on through the page cache. */
static int stage_flush(local_upload *u)
{
	int err = u->staged ? bkr_io_write_full(u->fd, u->stage, u->staged, u->tmp) : 0;
	stage_put((local_store *)u->base.store, u->stage);
	u->stage = NULL;
	u->staged = 0;
	return err;
}

/* The directory of folder @p prefix into @p dir (PATH_MAX), without a trailing '/'. */
static int folder_of(const bkr_store *s, const char *prefix, char *dir)
{
	size_t n;
	int err;
	if ((err = path_of(s, prefix, dir)) < 0)
		return err;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return 0;
}

static int local_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	char dir[PATH_MAX];
	local_upload *u;
	int err;

	if ((err = folder_of(s, prefix, dir)) < 0)
		return err;
	if ((err = bkr_io_mkdir_p(dir, DIR_MODE)) < 0)
		return err;
	if (!(u = calloc(1, sizeof(*u))))
		return bkr_error_oom();
	u->base.store = s;
	if ((err = bkr_io_tmpfile(dir, u->tmp, sizeof(u->tmp), &u->fd)) < 0) {
		free(u);
		return err;
	}
	u->stage = stage_get((local_store *)s);
	*out = &u->base;
	return 0;
}

static int upload_usable(const local_upload *u)
{
	if (u->fd < 0)
		return bkr_error_set(BKR_EINVAL, "upload already published or abandoned");
	return 0;
}

/* Give up: no temporary is left behind. */
static void upload_abandon(local_upload *u)
{
	stage_put((local_store *)u->base.store, u->stage);
	u->stage = NULL;
	u->staged = 0;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	if (u->tmp[0])
		unlink(u->tmp);
	u->tmp[0] = '\0';
}

static int local_upload_write(bkr_store_upload *base, const void *data, size_t len)
{
	local_upload *u = (local_upload *)base;
	int err;
	if ((err = upload_usable(u)) < 0)
		return err;
	if (u->stage && len <= STAGE_CAP - u->staged) {
		/* a write of the upload all the same: BKR_FAULT's "write" fails it */
		if ((err = bkr_io_fault("write")) < 0) {
			bkr_error_prefix("write %s", u->tmp);
			upload_abandon(u);
			return err;
		}
		if (len)
			memcpy(u->stage + u->staged, data, len);
		u->staged += len;
		return 0;
	}
	if ((err = stage_flush(u)) < 0 || (err = bkr_io_write_full(u->fd, data, len, u->tmp)) < 0)
		upload_abandon(u);
	return err;
}

static int local_upload_publish(bkr_store_upload *base, const char *name)
{
	local_upload *u = (local_upload *)base;
	char final[PATH_MAX], dir[PATH_MAX];
	bool made = false; /* final's directory (data/XX) is this publish's */
	int err, fd;

	if ((err = upload_usable(u)) < 0)
		return err;
	if ((err = path_of(u->base.store, name, final)) == 0)
		made = parent_of(final, dir) && access(dir, F_OK) < 0 && errno == ENOENT;
	if (err < 0 || (err = make_parent(final)) < 0 ||
	    (u->staged && (err = bkr_io_write_direct(u->fd, u->stage, u->staged, u->tmp)) < 0)) {
		upload_abandon(u);
		goto done;
	}
	stage_put((local_store *)u->base.store, u->stage);
	u->stage = NULL;
	u->staged = 0;
	/* commit_tmp closes the fd and removes the temporary on failure */
	fd = u->fd;
	u->fd = -1;
	err = bkr_io_commit_tmp(fd, u->tmp, final, BKR_IO_NOREPLACE);
	u->tmp[0] = '\0';
done:
	/* a failed publish leaves no empty directory it made: rmdir keeps one
	 * another writer published into meanwhile (ENOTEMPTY), and its error
	 * is not the publish's */
	if (err < 0 && made)
		(void)rmdir(dir);
	return err;
}

static void local_upload_free(bkr_store_upload *base)
{
	local_upload *u = (local_upload *)base;
	upload_abandon(u);
	free(u);
}

/* What a walk calls for each object: one of the two callbacks. */
struct walk_cb {
	int (*cb)(void *ctx, const char *name);
	int (*stamped)(void *ctx, const char *name, const char *stamp);
	void *ctx;
};

/* The stamp of @p st (bkr_store_list_stamped): anything that changes when
 * the file is rewritten in place or replaced.  The change time is there
 * because a copy made with its times kept (cp -p) restores the mtime. */
static void stamp_of(const struct stat *st, char *out, size_t cap)
{
	snprintf(out, cap, "%llu:%lld.%09ld:%lld.%09ld:%llu:%llu", (unsigned long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
		 st->st_ctim.tv_nsec, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

/* Walk <root>/<rel> (a directory) recursively; @p rel has no trailing '/'. */
static int walk(const char *root, char *rel, size_t rel_len, const struct walk_cb *w)
{
	char dir[PATH_MAX], stamp[BKR_STORE_STAMP_MAX];
	struct dirent *de;
	DIR *d;
	int err = 0;

	if (snprintf(dir, sizeof(dir), "%s%s%s", root, rel_len ? "/" : "", rel) >= (int)sizeof(dir))
		return bkr_error_set(BKR_EINVAL, "path too long: %s/%s", root, rel);
	if (!(d = opendir(dir))) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return bkr_error_set_errno(errno, "%s", dir);
	}
	while (err == 0 && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;
		bool is_dir, have_st = false;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rel_len + 1 + n >= PATH_MAX)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			have_st = true;
			is_dir = S_ISDIR(st.st_mode);
			if (!is_dir && !S_ISREG(st.st_mode))
				continue;
		} else {
			is_dir = de->d_type == DT_DIR;
			if (!is_dir && de->d_type != DT_REG)
				continue;
		}
		if (!is_dir && w->stamped) {
			if (!have_st && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* gone since readdir */
			if (!S_ISREG(st.st_mode))
				continue;
			stamp_of(&st, stamp, sizeof(stamp));
		}
		size_t l = rel_len;
		if (l)
			rel[l++] = '/';
		memcpy(rel + l, de->d_name, n + 1);
		err = is_dir ? walk(root, rel, l + n, w) : w->stamped ? w->stamped(w->ctx, rel, stamp) : w->cb(w->ctx, rel);
		rel[rel_len] = '\0';
	}
	closedir(d);
	return err;
}

static int list_prefix(bkr_store *s, const char *prefix, const struct walk_cb *w)
{
	char rel[PATH_MAX];
	size_t n = strlen(prefix);
	while (n > 0 && prefix[n - 1] == '/')
		n--;
	if (n >= sizeof(rel))
		return bkr_error_set(BKR_EINVAL, "prefix too long: %s", prefix);
	memcpy(rel, prefix, n);
	rel[n] = '\0';
	return walk(s->location, rel, n, w);
}

static int local_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	struct walk_cb w = { .cb = cb, .ctx = ctx };
	return list_prefix(s, prefix, &w);
}

static int local_list_stamped(bkr_store *s, const char *prefix,
			      int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	struct walk_cb w = { .stamped = cb, .ctx = ctx };
	return list_prefix(s, prefix, &w);
}

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	return parent_of(path, dir) ? bkr_io_fsync_dir(dir) : 0;
}

static int local_remove(bkr_store *s, const char *name)
{
	char path[PATH_MAX];
	int err;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	if (unlink(path) < 0)
		return bkr_error_set_errno(errno, "delete %s", path);
	fd_forget((local_store *)s, path);
	if ((err = fsync_parent(path)) < 0) /* done, its durability unknown: say which */
		bkr_error_prefix("%s is deleted, but that may not be on disk", path);
	return err;
}

static int local_rename(bkr_store *s, const char *from, const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int err;
	if ((err = path_of(s, from, src)) < 0 || (err = path_of(s, to, dst)) < 0 ||
	    (err = make_parent(dst)) < 0)
		return err;
	if ((err = bkr_io_fault("rename")) < 0) {
		bkr_error_prefix("move %s to %s", src, dst); /* as a real failure here names the files */
		return err;
	}
	/* link(2) never replaces: EEXIST if the new name is taken */
	if (link(src, dst) < 0) {
		if (errno == EEXIST)
			return bkr_error_set(BKR_EEXISTS, "%s: already exists, not replaced", dst);
		return bkr_error_set_errno(errno, "move %s to %s", src, dst);
	}
	if ((err = fsync_parent(dst)) < 0)
		return err;
	if (unlink(src) < 0)
		return bkr_error_set_errno(errno, "move %s: remove the old name", src);
	fd_forget((local_store *)s, src);
	if ((err = fsync_parent(src)) < 0) /* done, its durability unknown: say which */
		bkr_error_prefix("%s is moved to %s, but that may not be on disk", src, dst);
	return err;
}

static int local_prepare(bkr_store *s, const char *prefix)
{
	char dir[PATH_MAX];
	int err;
	if ((err = path_of(s, prefix, dir)) < 0)
		return err;
	return bkr_io_mkdir_p(dir, DIR_MODE);
}

static int local_drop_folder(bkr_store *s, const char *prefix)
{
	char dir[PATH_MAX];
	int err;
	if ((err = folder_of(s, prefix, dir)) < 0)
		return err;
	/* not empty (ENOTEMPTY, or EEXIST as POSIX allows), or not there: nothing to do */
	if (rmdir(dir) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
		return bkr_error_set_errno(errno, "rmdir %s", dir);
	return 0;
}

static int local_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	char path[PATH_MAX];
	local_held *l;
	int fd, err;

	if ((err = path_of(s, name, path)) < 0 || (err = make_parent(path)) < 0)
		return err;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return bkr_error_set_errno(errno, "open %s", path);
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno == EWOULDBLOCK ? bkr_error_set(BKR_ELOCKED, "%s: held by another process", path)
					   : bkr_error_set_errno(errno, "flock %s", path);
		close(fd);
		return err;
	}
	if (!(l = malloc(sizeof(*l)))) {
		close(fd);
		return bkr_error_oom();
	}
	l->base.store = s;
	l->fd = fd;
	*out = &l->base;
	return 0;
}

static void local_unlock(bkr_store_held *base)
{
	local_held *l = (local_held *)base;
	close(l->fd);
	free(l);
}

static void local_free(bkr_store *s)
{
	local_store *ls = (local_store *)s;
	for (int i = 0; i < FD_CACHE; i++)
		if (ls->slots[i].valid)
			close(ls->slots[i].fd);
	for (int i = 0; i < ls->nstage; i++)
		munmap(ls->stage[i], STAGE_CAP);
	pthread_mutex_destroy(&ls->lock);
	free(s->location);
	free(ls);
}

static const bkr_store_ops local_ops = {
	.stat = local_stat,
	.stat_time = local_stat_time,
	.get = local_get,
	.get_range = local_get_range,
	.advise = local_advise,
	.put = local_put,
	.upload_new = local_upload_new,
	.upload_write = local_upload_write,
	.upload_publish = local_upload_publish,
	.upload_free = local_upload_free,
	.list = local_list,
	.list_stamped = local_list_stamped,
	.remove = local_remove,
	.rename_new = local_rename,
	.prepare = local_prepare,
	.drop_folder = local_drop_folder,
	.lock = local_lock,
	.unlock = local_unlock,
	.free = local_free,
};

int bkr_store_local_open(bkr_store **out, const char *root, unsigned flags)
{
	local_store *ls;
	struct stat st;
	size_t n = strlen(root);
	int err;

	*out = NULL;
	if (n == 0 || n >= PATH_MAX - 256)
		return bkr_error_set(BKR_EINVAL, "bad directory '%s'", root);
	if ((flags & BKR_STORE_CREATE) && (err = bkr_io_mkdir_p(root, DIR_MODE)) < 0)
		return err;
	if (stat(root, &st) < 0) {
		if (!(errno == ENOENT && (flags & BKR_STORE_ABSENT_OK)))
			return bkr_error_set_errno(errno, "%s", root);
		st.st_mode = S_IFDIR;
	}
	if (!S_ISDIR(st.st_mode))
		return bkr_error_set(BKR_ENOTFOUND, "%s: not a directory", root);
	if (!(ls = calloc(1, sizeof(*ls))))
		return bkr_error_oom();
	ls->base.ops = &local_ops;
	if (!(ls->base.location = strdup(root))) {
		free(ls);
		return bkr_error_oom();
	}
	while (n > 1 && ls->base.location[n - 1] == '/')
		ls->base.location[--n] = '\0';
	pthread_mutex_init(&ls->lock, NULL);
	*out = &ls->base;
	return 0;
}
