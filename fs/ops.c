/** @file
 * The FUSE low-level operations of bkrfs.
 *
 * Every op resolves its inode through the inode table (inode.c), asks a
 * helper that returns an errno, and replies exactly once.  Top-level nodes
 * come from the current view (views.c, swapped by the watcher under
 * view_lock, which is never held during I/O); backup trees are read through
 * the directory cache and file data through the chunk cache (cache.c), both
 * of which load without holding any lock.  Every write-type operation
 * answers EROFS.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "chunk.h"
#include "layout.h"
#include "pagestore.h"
#include "prefetch.h"
#include "watch.h"

#define XATTR_SHA256 "user.bkr.sha256"
#define XATTR_BACKUP_ID "user.bkr.backup_id"

static struct bkrfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void bkrfs_log(struct bkrfs *fs, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!fs || fs->o.foreground)
		fprintf(stderr, "bkrfs: %s\n", line);
	else
		syslog(LOG_ERR, "%s", line);
}

/* ---- owners --------------------------------------------------------------- */

#define NAME_CACHE 256

struct name_slot {
	char name[64];
	bool group;
	bool found;
	uint32_t id;
};

static struct name_slot name_cache[NAME_CACHE]; /* guarded by name_lock */
static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned name_hash(const char *s, bool group)
{
	unsigned h = group ? 7 : 3;
	for (; *s; s++)
		h = h * 31 + (unsigned char)*s;
	return h % NAME_CACHE;
}

/* uid/gid of a user or group name, through a small cache in front of NSS */
static bool name_to_id(const uint8_t *name, size_t len, bool group, uint32_t *out)
{
	char n[64], buf[4096];
	struct name_slot *slot;
	bool found = false;
	unsigned h;

	if (len == 0 || len >= sizeof(n))
		return false;
	memcpy(n, name, len);
	n[len] = 0;
	if (memchr(n, 0, len))
		return false;
	h = name_hash(n, group);
	pthread_mutex_lock(&name_lock);
	slot = &name_cache[h];
	if (slot->name[0] && slot->group == group && strcmp(slot->name, n) == 0) {
		found = slot->found;
		*out = slot->id;
		pthread_mutex_unlock(&name_lock);
		return found;
	}
	pthread_mutex_unlock(&name_lock);
	if (group) {
		struct group g, *gp = NULL;
		if (getgrnam_r(n, &g, buf, sizeof(buf), &gp) == 0 && gp) {
			*out = gp->gr_gid;
			found = true;
		}
	} else {
		struct passwd p, *pp = NULL;
		if (getpwnam_r(n, &p, buf, sizeof(buf), &pp) == 0 && pp) {
			*out = pp->pw_uid;
			found = true;
		}
	}
	pthread_mutex_lock(&name_lock);
	snprintf(slot->name, sizeof(slot->name), "%s", n);
	slot->group = group;
	slot->found = found;
	slot->id = found ? *out : 0;
	pthread_mutex_unlock(&name_lock);
	return found;
}

static mode_t type_bits(uint8_t t)
{
	switch (t) {
	case BKR_FT_FILE: return S_IFREG;
	case BKR_FT_DIR: return S_IFDIR;
	case BKR_FT_SYMLINK: return S_IFLNK;
	case BKR_FT_FIFO: return S_IFIFO;
	case BKR_FT_CHR: return S_IFCHR;
	case BKR_FT_BLK: return S_IFBLK;
	case BKR_FT_SOCK: return S_IFSOCK;
	default: return 0;
	}
}

static void entry_stat(struct bkrfs *fs, const bkr_entry *e, struct stat *st)
{
	uint32_t id;

	memset(st, 0, sizeof(*st));
	st->st_mode = type_bits(e->type) | (e->mode & 07777);
	if (fs->o.has_umask)
		st->st_mode &= ~(fs->o.umask & 0777);
	st->st_nlink = e->nlink ? e->nlink : 1;
	if (fs->o.has_uid)
		st->st_uid = fs->o.uid;
	else if (!fs->o.numeric_ids && name_to_id(e->user, e->user_len, false, &id))
		st->st_uid = id;
	else
		st->st_uid = e->uid;
	if (fs->o.has_gid)
		st->st_gid = fs->o.gid;
	else if (!fs->o.numeric_ids && name_to_id(e->group, e->group_len, true, &id))
		st->st_gid = id;
	else
		st->st_gid = e->gid;
	st->st_size = (off_t)(e->type == BKR_FT_SYMLINK ? e->target_len : e->size);
	st->st_blocks = (blkcnt_t)e->blocks;
	st->st_blksize = BKRFS_BLKSIZE;
	if (e->type == BKR_FT_CHR || e->type == BKR_FT_BLK)
		st->st_rdev = (dev_t)e->rdev;
	st->st_mtim.tv_sec = (time_t)(e->mtime_ns / 1000000000);
	st->st_mtim.tv_nsec = (long)(e->mtime_ns % 1000000000);
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_nsec += 1000000000;
		st->st_mtim.tv_sec--;
	}
	st->st_ctim.tv_sec = (time_t)(e->ctime_ns / 1000000000);
	st->st_ctim.tv_nsec = (long)(e->ctime_ns % 1000000000);
	if (st->st_ctim.tv_nsec < 0) {
		st->st_ctim.tv_nsec += 1000000000;
		st->st_ctim.tv_sec--;
	}
	st->st_atim = st->st_mtim;
}

static void synth_stat(struct bkrfs *fs, mode_t mode, int64_t time, off_t size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	if (fs->o.has_umask)
		st->st_mode &= ~(fs->o.umask & 0777);
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = fs->o.has_uid ? fs->o.uid : fs->owner_uid;
	st->st_gid = fs->o.has_gid ? fs->o.gid : fs->owner_gid;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = BKRFS_BLKSIZE;
	st->st_mtim.tv_sec = (time_t)time;
	st->st_ctim = st->st_atim = st->st_mtim;
}

/* ---- manifests ------------------------------------------------------------ */

/* the manifest of @p s, loaded on first use (owned by the snap) */
static int snap_manifest(struct bkrfs *fs, bkrfs_snap *s, const bkr_manifest **out)
{
	int err = 0;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	if (!s->m)
		err = bkr_repo_load_manifest(fs->repo, s->run, s->id, &s->m);
	if (err == 0)
		*out = s->m;
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* the tree holding the contents of a directory inode */
static int dir_tree_of(struct bkrfs *fs, bkrfs_inode *i, bkr_id *out)
{
	const bkr_manifest *m;
	int err;

	if (i->kind == BKRFS_NODE_ENTRY) {
		*out = i->subtree;
		return 0;
	}
	if ((err = snap_manifest(fs, i->snap, &m)) < 0)
		return err;
	*out = m->tree;
	return 0;
}

/* ---- the view ------------------------------------------------------------- */

static int64_t precise_time(void *ctx, const char *id)
{
	struct bkrfs *fs = ctx;
	bkrfs_snap *s = bkrfs_snap_new(id, false, 0);
	const bkr_manifest *m;
	int64_t t = -1;

	if (s && snap_manifest(fs, s, &m) == 0)
		t = m->time_ns;
	bkrfs_snap_unref(s);
	return t;
}

int bkrfs_build_view(struct bkrfs *fs, char **names, size_t n, bkrfs_view **out)
{
	return bkrfs_view_build(out, (const char *const *)names, n, fs->o.tz, precise_time, fs);
}

/* make sure fs->view exists; returns with view_lock read-held on success */
static int view_rdlock(struct bkrfs *fs)
{
	pthread_rwlock_rdlock(&fs->view_lock);
	if (fs->view)
		return 0;
	pthread_rwlock_unlock(&fs->view_lock);
	return bkrfs_watch_refresh(fs, false);
}

static int runs_rdlock(struct bkrfs *fs)
{
	int err;

	pthread_rwlock_rdlock(&fs->view_lock);
	if (fs->runs)
		return 0;
	pthread_rwlock_unlock(&fs->view_lock);
	if ((err = bkrfs_watch_refresh(fs, true)) < 0)
		return err;
	return 0;
}

static bkrfs_snap *runs_find(struct bkrfs_runs *r, const char *id)
{
	for (size_t k = 0; k < r->n; k++)
		if (strcmp(r->runs[k]->id, id) == 0)
			return r->runs[k];
	return NULL;
}

/* ---- making inodes --------------------------------------------------------- */

static bkrfs_inode *inode_alloc(bkrfs_node_kind kind)
{
	bkrfs_inode *i = calloc(1, sizeof(*i));
	if (i) {
		i->kind = kind;
		i->timeout = BKRFS_TIMEOUT_FOREVER;
	}
	return i;
}

struct bkrfs_file;
static void file_free(struct bkrfs_file *f);

static void inode_release(bkrfs_inode *i)
{
	file_free(i->file);
	i->file = NULL;
	bkrfs_snap_unref(i->snap);
	i->snap = NULL;
}

static int key2(uint8_t **key, size_t *len, char kind, const char *a, const char *b)
{
	const void *parts[2] = { a, b };
	size_t lens[2] = { strlen(a), b ? strlen(b) : 0 };
	return bkrfs_key_make(key, len, kind, b ? 2 : 1, parts, lens);
}

/* a synthesized symlink with identity (kind, target) */
static int make_link(struct bkrfs *fs, char kind, const char *target, bkrfs_ino parent,
		     double timeout, bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = inode_alloc(BKRFS_NODE_LINK);
	uint8_t *key;
	size_t klen;
	int err;

	if (!i || !(i->target = strdup(target))) {
		free(i);
		return ENOMEM;
	}
	i->target_len = strlen(target);
	i->parent = parent;
	i->timeout = timeout;
	synth_stat(fs, S_IFLNK | 0777, fs->mount_time, (off_t)i->target_len, &i->st);
	if ((err = key2(&key, &klen, kind, target, NULL)) < 0) {
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
}

static int make_day(struct bkrfs *fs, const char *day, bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = inode_alloc(BKRFS_NODE_DAY);
	uint8_t *key;
	size_t klen;
	struct tm tm;
	int64_t t;

	if (!i || !(i->path = strdup(day))) {
		free(i);
		return ENOMEM;
	}
	memset(&tm, 0, sizeof(tm));
	if (sscanf(day, "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) == 3) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = (int64_t)timegm(&tm);
	} else {
		t = fs->mount_time;
	}
	i->parent = BKRFS_INO_BY_DATE;
	i->timeout = BKRFS_TIMEOUT_VIEW;
	synth_stat(fs, S_IFDIR | 0555, t, 0, &i->st);
	if (key2(&key, &klen, 'D', day, NULL) < 0) {
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
}

static int make_snap_root(struct bkrfs *fs, bkrfs_snap *s, bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = inode_alloc(BKRFS_NODE_SNAP_ROOT);
	uint8_t *key;
	size_t klen;

	if (!i || !(i->path = strdup(""))) {
		free(i);
		bkrfs_snap_unref(s);
		return ENOMEM;
	}
	i->snap = s;
	i->parent = s->run ? BKRFS_INO_RECOVERED : BKRFS_INO_BY_ID;
	synth_stat(fs, S_IFDIR | 0555, s->time, 0, &i->st);
	if (key2(&key, &klen, s->run ? 'r' : 'b', s->id, NULL) < 0) {
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
}

static int make_report(struct bkrfs *fs, bkrfs_inode *parent, bool lookup, bkrfs_inode **out)
{
	const bkr_manifest *m;
	bkr_index_entry ie;
	bkrfs_inode *i;
	uint8_t *key;
	size_t klen;
	int err;

	if ((err = snap_manifest(fs, parent->snap, &m)) < 0)
		return bkrfs_errno(err);
	if (bkr_id_is_zero(&m->report))
		return ENOENT;
	if ((err = bkr_repo_lookup(fs->repo, &m->report, &ie)) < 0)
		return bkrfs_errno(err) == ENOENT ? EIO : bkrfs_errno(err);
	if (!(i = inode_alloc(BKRFS_NODE_REPORT)) || !(i->path = strdup("report.json"))) {
		free(i);
		return ENOMEM;
	}
	i->snap = bkrfs_snap_ref(parent->snap);
	i->parent = parent->ino;
	i->content = m->report;
	/* the report names the files of the run and their hashes: readable by
	 * the repository's owner only (bkr recovered needs the repository too) */
	synth_stat(fs, S_IFREG | 0400, parent->snap->time, (off_t)ie.raw_len, &i->st);
	if (!fs->o.has_uid)
		i->st.st_uid = fs->repo_uid;
	if (!fs->o.has_gid)
		i->st.st_gid = fs->repo_gid;
	if (key2(&key, &klen, 'p', parent->snap->id, NULL) < 0) {
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
}

static char *path_join(const char *dir, const uint8_t *name, size_t len)
{
	size_t dl = strlen(dir);
	char *p = malloc(dl + len + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, dl);
	if (dl)
		p[dl++] = '/';
	memcpy(p + dl, name, len);
	p[dl + len] = 0;
	return p;
}

/* identity key of an entry: hardlink groups by group, the rest by path */
static int entry_key(const bkrfs_snap *s, const bkr_entry *e, const char *path, uint8_t **key,
		     size_t *len)
{
	char grp[32];

	if (e->link_group && e->type != BKR_FT_DIR) {
		snprintf(grp, sizeof(grp), "%llu", (unsigned long long)e->link_group);
		return key2(key, len, s->run ? 'h' : 'H', s->id, grp);
	}
	return key2(key, len, s->run ? 'e' : 'E', s->id, path);
}

/* The inode number entry @p e of directory inode @p dir has or would get
 * (0: out of memory); *present (may be NULL): whether the table has it. */
static bkrfs_ino child_ino(struct bkrfs *fs, const bkrfs_inode *dir, const bkr_entry *e, bool *present)
{
	char *path = path_join(dir->path, e->name, e->name_len);
	bkrfs_ino ino = 0;
	uint8_t *key;
	size_t klen;

	if (path && entry_key(dir->snap, e, path, &key, &klen) == 0) {
		ino = bkrfs_itable_peek(fs->itable, key, klen, present);
		free(key);
	}
	free(path);
	return ino;
}

bkrfs_ino bkrfs_entry_ino(struct bkrfs *fs, bkrfs_ino dir_ino, const bkr_entry *e)
{
	bkrfs_inode *dir;
	bkrfs_ino ino = 0;
	bool present = false;

	if (!(dir = bkrfs_itable_get(fs->itable, dir_ino)))
		return 0;
	if (dir->snap)
		ino = child_ino(fs, dir, e, &present);
	bkrfs_itable_put(fs->itable, dir);
	return present ? ino : 0; /* in the table: the kernel knows it */
}

static int make_entry(struct bkrfs *fs, bkrfs_inode *parent, const bkr_id *dir_tree, uint64_t index,
		      const bkr_entry *e, bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = inode_alloc(BKRFS_NODE_ENTRY);
	uint8_t *key;
	size_t klen;

	if (!i)
		return ENOMEM;
	if (!(i->path = path_join(parent->path, e->name, e->name_len)))
		goto oom;
	if (e->type == BKR_FT_SYMLINK) {
		if (!(i->target = malloc(e->target_len + 1)))
			goto oom;
		memcpy(i->target, e->target, e->target_len);
		i->target[e->target_len] = 0;
		i->target_len = e->target_len;
	}
	i->snap = bkrfs_snap_ref(parent->snap);
	i->parent = parent->ino;
	i->parent_tree = *dir_tree;
	i->parent_index = index;
	i->subtree = e->subtree;
	i->content = e->content;
	i->ftype = e->type;
	entry_stat(fs, e, &i->st);
	if (entry_key(parent->snap, e, i->path, &key, &klen) < 0)
		goto oom;
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
oom:
	bkrfs_inode_discard(fs->itable, i);
	return ENOMEM;
}

/* a referenced bkr_dir for the contents of directory inode @p i */
static int open_dir(struct bkrfs *fs, bkrfs_inode *i, bkrfs_cache_entry **ce, bkr_dir **d, bkr_id *tree)
{
	void *v;
	int err;

	memset(tree, 0, sizeof(*tree));
	*ce = NULL;
	if ((err = dir_tree_of(fs, i, tree)) < 0)
		return err;
	if (bkr_id_is_zero(tree))
		return bkr_error_set(BKR_ENOTFOUND, "empty");
	if ((err = bkrfs_cache_get(fs->dirs, tree, ce, &v)) < 0)
		return err;
	*d = v;
	return 0;
}

static int tree_errno(struct bkrfs *fs, bkrfs_inode *dir, int err)
{
	int e = bkrfs_errno(err);

	if (err != BKR_ENOTFOUND && err != BKR_ENOMEM)
		bkrfs_log(fs, "%s %s, directory '%s': %s", dir->snap && dir->snap->run ? "run" : "backup",
			  dir->snap ? dir->snap->id : "?", dir->path ? dir->path : "", bkr_error_message());
	return e;
}

/**
 * Resolve @p name in directory @p dir.  *out gets a referenced inode with its
 * lookup count raised when @p lookup.  Returns 0 or an errno.
 */
static int do_lookup(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out)
{
	int err = 0;

	*out = NULL;
	switch (dir->kind) {
	case BKRFS_NODE_ROOT: {
		bkrfs_ino fixed = 0;
		if (!strcmp(name, "by-id"))
			fixed = BKRFS_INO_BY_ID;
		else if (!strcmp(name, "by-date"))
			fixed = BKRFS_INO_BY_DATE;
		else if (!strcmp(name, "recovered"))
			fixed = BKRFS_INO_RECOVERED;
		if (fixed) {
			*out = bkrfs_itable_get(fs->itable, fixed);
			return *out ? 0 : ENOENT;
		}
		if (strcmp(name, "latest") != 0)
			return ENOENT;
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if (fs->view->latest_target)
			err = make_link(fs, 'L', fs->view->latest_target, BKRFS_INO_ROOT, BKRFS_TIMEOUT_VIEW,
					lookup, out);
		else
			err = ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	}
	case BKRFS_NODE_BY_ID: {
		const bkrfs_view_backup *b;
		bkrfs_snap *s = NULL;
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if ((b = bkrfs_view_find(fs->view, name)))
			s = bkrfs_snap_new(b->id, false, b->parsed ? b->info.time : fs->mount_time);
		err = b ? (s ? 0 : ENOMEM) : ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		if (err)
			return err;
		return make_snap_root(fs, s, lookup, out);
	}
	case BKRFS_NODE_BY_DATE: {
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		err = bkrfs_view_find_day(fs->view, name) ? 0 : ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		if (err)
			return err;
		return make_day(fs, name, lookup, out);
	}
	case BKRFS_NODE_DAY: {
		const bkrfs_view_day *d;
		const bkrfs_view_backup *b = NULL;
		char target[600];
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if ((d = bkrfs_view_find_day(fs->view, dir->path)))
			b = bkrfs_view_find_dated(fs->view, d, name);
		err = b ? (bkrfs_view_date_target(target, sizeof(target), b->id) < 0 ? ENAMETOOLONG : 0) : ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		if (err)
			return err;
		return make_link(fs, 'T', target, dir->ino, BKRFS_TIMEOUT_FOREVER, lookup, out);
	}
	case BKRFS_NODE_RECOVERED: {
		bkrfs_snap *s;
		if ((err = runs_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if (!strcmp(name, "latest")) {
			if (fs->runs->n)
				err = make_link(fs, 'R', fs->runs->runs[fs->runs->n - 1]->id, BKRFS_INO_RECOVERED,
						BKRFS_TIMEOUT_VIEW, lookup, out);
			else
				err = ENOENT;
			pthread_rwlock_unlock(&fs->view_lock);
			return err;
		}
		s = bkrfs_snap_ref(runs_find(fs->runs, name));
		pthread_rwlock_unlock(&fs->view_lock);
		if (!s)
			return ENOENT;
		return make_snap_root(fs, s, lookup, out);
	}
	case BKRFS_NODE_SNAP_ROOT:
	case BKRFS_NODE_ENTRY: {
		bkrfs_cache_entry *ce = NULL;
		bkr_dir *d;
		bkr_id tree;
		bkr_entry e;
		const bkr_tree *leaf;
		uint32_t li;
		uint64_t index;
		if (dir->kind == BKRFS_NODE_ENTRY && dir->ftype != BKR_FT_DIR)
			return ENOTDIR;
		if (dir->kind == BKRFS_NODE_SNAP_ROOT && dir->snap->run && !strcmp(name, "report.json")) {
			err = make_report(fs, dir, lookup, out);
			if (err != ENOENT)
				return err;
		}
		if ((err = open_dir(fs, dir, &ce, &d, &tree)) < 0)
			return err == BKR_ENOTFOUND && !ce && bkr_id_is_zero(&tree) ? ENOENT : tree_errno(fs, dir, err);
		err = bkr_dir_find(d, (const uint8_t *)name, strlen(name), &e, &leaf, &li, &index);
		if (err < 0) {
			bkrfs_cache_release(fs->dirs, ce);
			return err == BKR_ENOTFOUND ? ENOENT : tree_errno(fs, dir, err);
		}
		err = make_entry(fs, dir, &tree, index, &e, lookup, out);
		bkrfs_cache_release(fs->dirs, ce);
		return err;
	}
	default:
		return ENOTDIR;
	}
}

static void fill_entry(const bkrfs_inode *i, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->attr = i->st;
	e->attr_timeout = i->timeout;
	e->entry_timeout = i->timeout;
}

/* ---- ops: lookup, forget, getattr, readlink -------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *dir, *i = NULL;
	struct fuse_entry_param e;
	int err;

	if (!(dir = bkrfs_itable_get(fs->itable, parent))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = do_lookup(fs, dir, name, true, &i);
	bkrfs_itable_put(fs->itable, dir);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fill_entry(i, &e);
	if (fuse_reply_entry(req, &e) != 0)
		bkrfs_itable_unlookup(fs->itable, i);
	bkrfs_itable_put(fs->itable, i);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	bkrfs_itable_forget(fs_of(req)->itable, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct bkrfs *fs = fs_of(req);

	for (size_t k = 0; k < count; k++)
		bkrfs_itable_forget(fs->itable, forgets[k].ino, forgets[k].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i = bkrfs_itable_get(fs->itable, ino);

	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	fuse_reply_attr(req, &i->st, i->timeout);
	bkrfs_itable_put(fs->itable, i);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i = bkrfs_itable_get(fs->itable, ino);

	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!i->target)
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_readlink(req, i->target);
	bkrfs_itable_put(fs->itable, i);
}

/* ---- directories -------------------------------------------------------- */

struct dirh {
	bkrfs_inode *dir;           /**< referenced */
	bkrfs_cache_entry *ce;      /**< tree dirs: the cached bkr_dir */
	bkr_dir *d;
	bkr_id tree;
	uint64_t count;             /**< tree dirs: entries */
	bool report;                /**< run roots: report.json listed first */
	char **names;               /**< top-level dirs: names snapshotted at opendir */
	unsigned char *types;       /**< DT_* of names */
	size_t n;
};

static void dirh_free(struct bkrfs *fs, struct dirh *h)
{
	if (!h)
		return;
	bkrfs_cache_release(fs->dirs, h->ce);
	for (size_t k = 0; k < h->n; k++)
		free(h->names[k]);
	free(h->names);
	free(h->types);
	bkrfs_itable_put(fs->itable, h->dir);
	free(h);
}

static int dirh_add(struct dirh *h, size_t *cap, const char *name, unsigned char type)
{
	if (h->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nn = realloc(h->names, nc * sizeof(char *));
		unsigned char *nt;
		if (!nn)
			return ENOMEM;
		h->names = nn;
		if (!(nt = realloc(h->types, nc)))
			return ENOMEM;
		h->types = nt;
		*cap = nc;
	}
	if (!(h->names[h->n] = strdup(name)))
		return ENOMEM;
	h->types[h->n++] = type;
	return 0;
}

/* snapshot the names of a top-level directory */
static int list_top(struct bkrfs *fs, struct dirh *h)
{
	size_t cap = 0;
	int err = 0;

	switch (h->dir->kind) {
	case BKRFS_NODE_ROOT:
		if ((err = dirh_add(h, &cap, "by-id", DT_DIR)) || (err = dirh_add(h, &cap, "by-date", DT_DIR)) ||
		    (err = dirh_add(h, &cap, "recovered", DT_DIR)))
			return err;
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if (fs->view->latest)
			err = dirh_add(h, &cap, "latest", DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_BY_ID:
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		for (size_t k = 0; !err && k < fs->view->ntime; k++)
			err = dirh_add(h, &cap, fs->view->b[fs->view->by_time[k]].id, DT_DIR);
		for (size_t k = 0; !err && k < fs->view->n; k++)
			if (!fs->view->b[k].parsed)
				err = dirh_add(h, &cap, fs->view->b[k].id, DT_DIR);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_BY_DATE:
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		for (size_t k = 0; !err && k < fs->view->ndays; k++)
			err = dirh_add(h, &cap, fs->view->days[k].day, DT_DIR);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_DAY: {
		const bkrfs_view_day *d;
		if ((err = view_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		if ((d = bkrfs_view_find_day(fs->view, h->dir->path)))
			for (size_t k = d->first; !err && k < d->first + d->count; k++)
				err = dirh_add(h, &cap, fs->view->b[fs->view->by_time[k]].date_name, DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	}
	case BKRFS_NODE_RECOVERED:
		if ((err = runs_rdlock(fs)) < 0)
			return bkrfs_errno(err);
		for (size_t k = 0; !err && k < fs->runs->n; k++)
			err = dirh_add(h, &cap, fs->runs->runs[k]->id, DT_DIR);
		if (!err && fs->runs->n)
			err = dirh_add(h, &cap, "latest", DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	default:
		return ENOTDIR;
	}
}

/* A backup's directory (listed from its tree, immutable: the kernel may
 * keep the listing), not a top-level one (listed from names that change). */
static bool dirh_tree(const struct dirh *h)
{
	return h->dir->kind == BKRFS_NODE_SNAP_ROOT || h->dir->kind == BKRFS_NODE_ENTRY;
}

/*
 * The state a listing of directory @p ino needs.  Made by opendir, or by
 * each readdir when the kernel sends no opendir
 * (FUSE_CAP_NO_OPENDIR_SUPPORT): then a listing of a top-level directory is
 * taken afresh for every readdir call, so an entry deleted in between
 * shifts the rest by one; those directories are invalidated when they
 * change (watch.c) and rarely need more than one call.
 */
static int dirh_open(struct bkrfs *fs, fuse_ino_t ino, struct dirh **out)
{
	struct dirh *h = calloc(1, sizeof(*h));
	int err = 0;

	*out = NULL;
	if (!h)
		return ENOMEM;
	if (!(h->dir = bkrfs_itable_get(fs->itable, ino))) {
		free(h);
		return ESTALE;
	}
	if (dirh_tree(h)) {
		if (h->dir->kind == BKRFS_NODE_ENTRY && h->dir->ftype != BKR_FT_DIR) {
			err = ENOTDIR;
			goto done;
		}
		if (h->dir->kind == BKRFS_NODE_SNAP_ROOT && h->dir->snap->run) {
			const bkr_manifest *m;
			if ((err = snap_manifest(fs, h->dir->snap, &m)) < 0) {
				err = tree_errno(fs, h->dir, err);
				goto done;
			}
			h->report = !bkr_id_is_zero(&m->report);
		}
		err = open_dir(fs, h->dir, &h->ce, &h->d, &h->tree);
		if (err == BKR_ENOTFOUND && !h->ce && bkr_id_is_zero(&h->tree)) {
			err = 0; /* no tree: an empty directory */
		} else if (err < 0) {
			err = tree_errno(fs, h->dir, err);
			goto done;
		} else {
			h->count = bkr_dir_count(h->d);
		}
	} else {
		err = list_top(fs, h);
	}
done:
	if (err) {
		dirh_free(fs, h);
		return err;
	}
	*out = h;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct dirh *h;
	int err;

	if (fs->no_opendir) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking (dirh_open) */
		return;
	}
	if ((err = dirh_open(fs, ino, &h))) {
		fuse_reply_err(req, err);
		return;
	}
	fi->cache_readdir = dirh_tree(h);
	fi->keep_cache = dirh_tree(h);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		dirh_free(fs, h);
}

/* the name and inode of entry @p k of a tree dir; *e valid while h lives */
static int dirh_entry(struct bkrfs *fs, struct dirh *h, uint64_t k, bool plus, bkr_entry *e,
		      bkrfs_inode **ino_out, bkrfs_ino *ino, const char **name, size_t *name_len)
{
	const bkr_tree *leaf;
	uint32_t li;
	int err;

	*ino_out = NULL;
	if ((err = bkr_dir_get(h->d, k, e, &leaf, &li)) < 0)
		return tree_errno(fs, h->dir, err);
	*name = (const char *)e->name;
	*name_len = e->name_len;
	if (plus) {
		if ((err = make_entry(fs, h->dir, &h->tree, k, e, true, ino_out)))
			return err;
		*ino = (*ino_out)->ino;
	} else if (!(*ino = child_ino(fs, h->dir, e, NULL))) {
		return ENOMEM;
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct bkrfs *fs = fs_of(req);
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh, *own = NULL;
	char *buf, *p;
	size_t rem = size;
	int err = 0;
	bool tree;
	uint64_t extra, total;

	if (!h && (err = dirh_open(fs, ino, &own))) { /* no opendir */
		fuse_reply_err(req, err);
		return;
	}
	h = h ? h : own;
	tree = dirh_tree(h);
	extra = h->report ? 1 : 0;
	total = tree ? h->count + extra : h->n;
	if (!(buf = malloc(size))) {
		dirh_free(fs, own);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	for (uint64_t o = (uint64_t)off; o < total + 2; o++) {
		struct stat st;
		struct fuse_entry_param fe;
		bkrfs_inode *child = NULL;
		char namebuf[NAME_MAX * 4 + 1];
		const char *name = NULL;
		size_t len, nl = 0;
		bkrfs_ino cino = 0;
		bkr_entry e;

		memset(&st, 0, sizeof(st));
		memset(&fe, 0, sizeof(fe));
		if (o < 2) {
			name = o == 0 ? "." : "..";
			st.st_ino = o == 0 ? h->dir->ino : (h->dir->parent ? h->dir->parent : h->dir->ino);
			st.st_mode = S_IFDIR;
			fe.attr = st;
		} else if (tree && extra && o == 2) {
			if ((err = do_lookup(fs, h->dir, "report.json", plus, &child)))
				break;
			name = "report.json";
		} else if (tree) {
			if ((err = dirh_entry(fs, h, o - 2 - extra, plus, &e, &child, &cino, &name, &nl)))
				break;
			if (nl >= sizeof(namebuf)) {
				bkrfs_itable_put(fs->itable, child);
				if (child && plus)
					bkrfs_itable_unlookup(fs->itable, child);
				continue;
			}
			memcpy(namebuf, name, nl);
			namebuf[nl] = 0;
			name = namebuf;
			st.st_ino = cino;
			st.st_mode = type_bits(e.type);
		} else {
			name = h->names[o - 2];
			if (plus) {
				if ((err = do_lookup(fs, h->dir, name, true, &child))) {
					if (err == ENOENT) { /* vanished since opendir */
						err = 0;
						continue;
					}
					break;
				}
			} else {
				bkrfs_inode *t = NULL;
				st.st_mode = (mode_t)DTTOIF(h->types[o - 2]);
				if (do_lookup(fs, h->dir, name, false, &t) == 0) {
					st.st_ino = t->ino;
					bkrfs_itable_put(fs->itable, t);
				}
			}
		}
		if (child) {
			fill_entry(child, &fe);
			st = child->st;
		}
		if (plus)
			len = fuse_add_direntry_plus(req, p, rem, name, &fe, (off_t)(o + 1));
		else
			len = fuse_add_direntry(req, p, rem, name, &st, (off_t)(o + 1));
		if (len > rem) {
			if (child && plus)
				bkrfs_itable_unlookup(fs->itable, child);
			bkrfs_itable_put(fs->itable, child);
			break;
		}
		bkrfs_itable_put(fs->itable, child);
		p += len;
		rem -= len;
	}
	/* A directory the look-ahead expects a reader to walk next: its files
	 * go into their page cache once the kernel has their inodes (after
	 * this reply).  Copied first: once replied, the handle may be released
	 * by another thread. */
	bool walk = plus && off == 0 && h->d && !err;
	bkr_id walk_tree = h->tree;
	bkrfs_ino walk_ino = h->dir->ino;
	if (err && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
	dirh_free(fs, own);
	if (walk)
		bkrfs_prefetch_walk(fs, &walk_tree, walk_ino);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dirh_free(fs_of(req), (struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ----------------------------------------------------------------- */

/** Per-open state: everything a read needs, independent of the inode table. */
struct bkrfs_file {
	bkrfs_snap *snap;          /**< referenced (for messages) */
	char *path;
	bkrfs_layout l;
	uint8_t *report;           /**< report.json: the whole blob */
	size_t report_len;
	uint64_t next_seq;         /**< where a sequential read would continue (UINT64_MAX: none yet) */
};

static void file_free(struct bkrfs_file *f)
{
	if (!f)
		return;
	bkrfs_snap_unref(f->snap);
	free(f->path);
	bkrfs_layout_fini(&f->l);
	free(f->report);
	free(f);
}

static void log_read_error(struct bkrfs *fs, struct bkrfs_file *f, const bkr_id *chunk, const char *msg)
{
	static bkr_id seen[64];           /* guarded by seen_lock */
	static unsigned nseen;
	static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
	char hex[BKR_ID_HEX], pack[BKR_PACK_ID_HEX] = "?";
	bkr_index_entry ie;
	bool dup = false;

	pthread_mutex_lock(&seen_lock);
	for (unsigned k = 0; k < 64 && k < nseen; k++)
		if (!memcmp(seen[k].b, chunk->b, BKR_ID_SIZE))
			dup = true;
	if (!dup)
		seen[nseen++ % 64] = *chunk;
	pthread_mutex_unlock(&seen_lock);
	if (dup)
		return;
	bkr_id_to_hex(chunk, hex);
	if (bkr_repo_lookup(fs->repo, chunk, &ie) == 0)
		bkr_pack_id_to_hex(&ie.pack, pack);
	bkrfs_log(fs, "EIO: %s %s, file '%s': chunk %s in pack %s: %s", f->snap->run ? "run" : "backup",
		  f->snap->id, f->path, hex, pack, msg);
}

static int open_file(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file **out)
{
	struct bkrfs_file *f;
	bkrfs_cache_entry *ce = NULL;
	bkr_chunk_ref *chunks = NULL;
	bkr_hole *holes = NULL;
	size_t nchunks = 0, nholes = 0;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	void *v;
	int err;

	*out = NULL;
	if (!(f = calloc(1, sizeof(*f))) || !(f->path = strdup(i->path))) {
		free(f);
		return ENOMEM;
	}
	f->snap = bkrfs_snap_ref(i->snap);
	f->next_seq = UINT64_MAX;
	if (i->kind == BKRFS_NODE_REPORT) {
		if ((err = bkr_repo_read_blob(fs->repo, &i->content, BKR_BLOB_DATA, &f->report, &f->report_len)) < 0) {
			log_read_error(fs, f, &i->content, bkr_error_message());
			file_free(f);
			return bkrfs_errno(err) == ENOENT ? EIO : bkrfs_errno(err);
		}
		*out = f;
		return 0;
	}
	if ((err = bkrfs_cache_get(fs->dirs, &i->parent_tree, &ce, &v)) < 0 ||
	    (err = bkr_dir_get(v, i->parent_index, &e, &leaf, &li)) < 0 ||
	    (err = bkr_tree_chunks(leaf, li, &chunks, &nchunks)) < 0 ||
	    (err = bkr_tree_holes(leaf, li, &holes, &nholes)) < 0) {
		bkrfs_log(fs, "%s %s, file '%s': %s", f->snap->run ? "run" : "backup", f->snap->id, f->path,
			  bkr_error_message());
		err = bkrfs_errno(err) == ENOENT ? EIO : bkrfs_errno(err);
		goto fail;
	}
	if ((err = bkrfs_layout_init(&f->l, e.size, chunks, nchunks, holes, nholes)) < 0) {
		chunks = NULL;
		holes = NULL;
		bkrfs_log(fs, "%s %s, file '%s': %s", f->snap->run ? "run" : "backup", f->snap->id, f->path,
			  bkr_error_message());
		err = EIO;
		goto fail;
	}
	bkrfs_cache_release(fs->dirs, ce);
	*out = f;
	return 0;
fail:
	free(chunks);
	free(holes);
	bkrfs_cache_release(fs->dirs, ce);
	file_free(f);
	return err;
}

/*
 * The read state of file inode @p i, built on first use and kept with the
 * inode: there is nothing per open, so the kernel is told (ENOSYS from open,
 * FUSE_CAP_NO_OPEN_SUPPORT) to skip open and release entirely, and it then
 * keeps the page cache of every file across opens.
 */
static int file_of(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_file **out)
{
	struct bkrfs_file *f = __atomic_load_n((struct bkrfs_file **)&i->file, __ATOMIC_ACQUIRE), *expect = NULL;
	int err;

	if (f) {
		*out = f;
		return 0;
	}
	if (i->kind != BKRFS_NODE_REPORT && (i->kind != BKRFS_NODE_ENTRY || i->ftype != BKR_FT_FILE))
		return S_ISDIR(i->st.st_mode) ? EISDIR : EINVAL;
	if ((err = open_file(fs, i, &f)))
		return err;
	if (!__atomic_compare_exchange_n((struct bkrfs_file **)&i->file, &expect, f, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		file_free(f); /* another thread built it first */
		f = expect;
	}
	*out = f;
	return 0;
}

/* The inode and read state of @p ino for a read-type request, or false
 * after replying with the error. */
static bool file_req(fuse_req_t req, struct bkrfs *fs, fuse_ino_t ino, bkrfs_inode **i, struct bkrfs_file **f)
{
	int err;

	if (!(*i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return false;
	}
	if ((err = file_of(fs, *i, f))) {
		bkrfs_itable_put(fs->itable, *i);
		fuse_reply_err(req, err);
		return false;
	}
	return true;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	bkrfs_inode *i;
	int err;

	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking (see file_of) */
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = file_of(fs, i, &f);
	bkrfs_itable_put(fs->itable, i);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static const char zeros[65536];

/*
 * After a random read: hand every chunk it touched to the page-cache store,
 * when the chunk's bytes are one contiguous range of the file (no hole
 * inside).  The store takes its own reference.
 */
static void store_chunks(struct bkrfs *fs, fuse_ino_t ino, const bkrfs_layout *l,
			 bkrfs_cache_entry *const *ents, struct bkrfs_chunk *const *vals,
			 const uint64_t *starts, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		bkrfs_extent x;
		if (bkrfs_layout_piece(l, starts[k], UINT64_MAX - starts[k], &x) && !x.hole &&
		    x.chunk_off == 0 && x.len == vals[k]->len)
			bkrfs_pagestore_chunk(fs, (bkrfs_ino)ino, starts[k], ents[k], vals[k]->buf, vals[k]->len, false);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	bkrfs_inode *ino_ref;
	struct iovec iov_small[64], *iov = iov_small;
	bkrfs_cache_entry *ents_small[64], **ents = ents_small;
	size_t niov = 0, nents = 0, cap = 64;
	uint64_t pos = (uint64_t)off, left = size, done_mask = 0; /* ents[k] read to its end */
	uint64_t starts[64];  /* ents[k]: logical offset of its chunk's first byte (k < 64) */
	struct bkrfs_chunk *vals[64];
	bool streaming = false;
	bkrfs_extent x;
	int err = 0;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!file_req(req, fs, ino, &ino_ref, &f))
		return;
	if (f->report) {
		if (pos >= f->report_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, (const char *)f->report + pos,
				       left < f->report_len - pos ? left : f->report_len - pos);
		bkrfs_itable_put(fs->itable, ino_ref);
		return;
	}
	while (left && bkrfs_layout_piece(&f->l, pos, left, &x)) {
		if (niov == cap || nents == cap) {
			size_t nc = cap * 2;
			struct iovec *ni = iov == iov_small ? malloc(nc * sizeof(*ni)) : realloc(iov, nc * sizeof(*ni));
			bkrfs_cache_entry **ne;
			if (!ni) {
				err = ENOMEM;
				break;
			}
			if (iov == iov_small)
				memcpy(ni, iov_small, sizeof(iov_small));
			iov = ni;
			ne = ents == ents_small ? malloc(nc * sizeof(*ne)) : realloc(ents, nc * sizeof(*ne));
			if (!ne) {
				err = ENOMEM;
				break;
			}
			if (ents == ents_small)
				memcpy(ne, ents_small, sizeof(ents_small));
			ents = ne;
			cap = nc;
		}
		if (x.hole) {
			if (x.len > sizeof(zeros))
				x.len = sizeof(zeros);
			iov[niov].iov_base = (void *)zeros;
			iov[niov++].iov_len = x.len;
		} else {
			const bkr_chunk_ref *c = &f->l.chunks[x.chunk];
			struct bkrfs_chunk *v;
			void *vp;
			int e = bkrfs_cache_get(fs->chunks, &c->id, &ents[nents], &vp);
			if (e < 0) {
				log_read_error(fs, f, &c->id, bkr_error_message()[0] ? bkr_error_message() : bkr_error_name(e));
				err = bkrfs_errno(e) == ENOENT ? EIO : bkrfs_errno(e);
				break;
			}
			v = vp;
			nents++;
			if (v->len != c->length) {
				char msg[128];
				snprintf(msg, sizeof(msg), "chunk is %zu bytes, the tree says %u", v->len, c->length);
				log_read_error(fs, f, &c->id, msg);
				err = EIO;
				break;
			}
			iov[niov].iov_base = v->buf + x.chunk_off;
			iov[niov++].iov_len = x.len;
			if (x.chunk_off + x.len == v->len && nents <= 64)
				done_mask |= 1ull << (nents - 1);
			if (nents <= 64) {
				starts[nents - 1] = pos - x.chunk_off;
				vals[nents - 1] = v;
			}
		}
		pos += x.len;
		left -= x.len;
	}
	if (!err)
		streaming = bkrfs_prefetch_after(fs, &f->l, (uint64_t)off, pos, &f->next_seq);
	if (!err && off == 0 && ino_ref->kind == BKRFS_NODE_ENTRY)
		bkrfs_prefetch_dir(fs, &ino_ref->parent_tree, ino_ref->parent_index + 1, ino_ref->parent);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_iov(req, iov, niov);
	/* a random reader gets the rest of each chunk it touched into the
	 * page cache; a streaming reader that read a chunk to its end is done
	 * with it: the kernel's page cache has it (drop-behind keeps the heap
	 * small) */
	if (!err && !streaming)
		store_chunks(fs, ino, &f->l, ents, vals, starts, nents < 64 ? nents : 64);
	for (size_t k = 0; k < nents; k++)
		if (streaming && k < 64 && (done_mask >> k & 1))
			bkrfs_cache_release_drop(fs->chunks, ents[k]);
		else
			bkrfs_cache_release(fs->chunks, ents[k]);
	bkrfs_itable_put(fs->itable, ino_ref); /* keeps @p f alive until here */
	if (iov != iov_small)
		free(iov);
	if (ents != ents_small)
		free(ents);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	bkrfs_inode *i;
	int64_t r;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (!file_req(req, fs, ino, &i, &f))
		return;
	if (f->report) {
		bkrfs_layout l;
		memset(&l, 0, sizeof(l));
		l.size = f->report_len;
		r = whence == SEEK_DATA ? bkrfs_layout_seek_data(&l, (uint64_t)off) :
		    whence == SEEK_HOLE ? bkrfs_layout_seek_hole(&l, (uint64_t)off) : -EINVAL;
	} else if (whence == SEEK_DATA) {
		r = bkrfs_layout_seek_data(&f->l, (uint64_t)off);
	} else if (whence == SEEK_HOLE) {
		r = bkrfs_layout_seek_hole(&f->l, (uint64_t)off);
	} else {
		r = -EINVAL;
	}
	bkrfs_itable_put(fs->itable, i);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}

/* ---- xattrs ----------------------------------------------------------------- */

/* the xattrs of an entry inode; *holder keeps *xs valid */
static int entry_xattrs(struct bkrfs *fs, bkrfs_inode *i, bkrfs_cache_entry **holder, bkr_xattr **xs, size_t *n)
{
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	void *v;
	int err;

	*holder = NULL;
	*xs = NULL;
	*n = 0;
	if (i->kind != BKRFS_NODE_ENTRY)
		return 0;
	if ((err = bkrfs_cache_get(fs->dirs, &i->parent_tree, holder, &v)) < 0 ||
	    (err = bkr_dir_get(v, i->parent_index, &e, &leaf, &li)) < 0 ||
	    (err = bkr_tree_xattrs(leaf, li, xs, n)) < 0) {
		bkrfs_cache_release(fs->dirs, *holder);
		*holder = NULL;
		return tree_errno(fs, i, err);
	}
	return 0;
}

static int reply_value(fuse_req_t req, size_t size, const void *val, size_t len)
{
	if (size == 0)
		return fuse_reply_xattr(req, len);
	if (size < len)
		return fuse_reply_err(req, ERANGE);
	return fuse_reply_buf(req, val, len);
}

/*
 * A backup whose manifest says no entry carried a security.* xattr (a POSIX
 * ACL) answers EOPNOTSUPP for that namespace, as a filesystem without
 * security labels (ACLs) would: `ls -l` asks security.selinux and
 * system.posix_acl_access of every file and remembers "not supported" per
 * device, so it stops asking (a round trip per file otherwise, cold or
 * warm).  Older manifests, recovery runs and backups with labels (ACLs)
 * answer ENODATA exactly.
 */
static bool namespace_absent(struct bkrfs *fs, bkrfs_inode *i, const char *name)
{
	const bkr_manifest *m;
	bool security = !strncmp(name, "security.", 9), acl = !strncmp(name, "system.posix_acl_", 17);

	if (!(security || acl))
		return false;
	if (!i->snap || i->snap->run || snap_manifest(fs, i->snap, &m) < 0) {
		bkr_error_clear();
		return false;
	}
	return security ? m->stats.security_xattrs == 0 : m->stats.acl_xattrs == 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_cache_entry *holder = NULL;
	bkr_xattr *xs = NULL;
	size_t n = 0, nl = strlen(name);
	bkrfs_inode *i;
	int err = ENODATA;

	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!strcmp(name, XATTR_BACKUP_ID) && i->snap) {
		reply_value(req, size, i->snap->id, strlen(i->snap->id));
		err = 0;
		goto out;
	}
	if (!strcmp(name, XATTR_SHA256) && (i->kind == BKRFS_NODE_REPORT ||
					     (i->kind == BKRFS_NODE_ENTRY && i->ftype == BKR_FT_FILE))) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(&i->content, hex);
		reply_value(req, size, hex, 64);
		err = 0;
		goto out;
	}
	if ((err = entry_xattrs(fs, i, &holder, &xs, &n)))
		goto out;
	err = ENODATA;
	for (size_t k = 0; k < n; k++) {
		if (xs[k].name_len != nl || memcmp(xs[k].name, name, nl) != 0)
			continue;
		if (xs[k].in_blob) {
			uint8_t *val;
			size_t len;
			int e = bkr_repo_read_blob(fs->repo, &xs[k].blob, BKR_BLOB_DATA, &val, &len);
			if (e < 0) {
				bkrfs_log(fs, "%s %s, file '%s': xattr %s: %s", i->snap->run ? "run" : "backup",
					  i->snap->id, i->path, name, bkr_error_message());
				err = EIO;
				break;
			}
			reply_value(req, size, val, len);
			free(val);
		} else {
			reply_value(req, size, xs[k].value, xs[k].value_len);
		}
		err = 0;
		break;
	}
out:
	if (err == ENODATA && namespace_absent(fs, i, name))
		err = EOPNOTSUPP;
	if (err)
		fuse_reply_err(req, err);
	free(xs);
	bkrfs_cache_release(fs->dirs, holder);
	bkrfs_itable_put(fs->itable, i);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_cache_entry *holder = NULL;
	bkr_xattr *xs = NULL;
	size_t n = 0, total = 0;
	bkrfs_inode *i;
	char *buf = NULL, *p;
	int err;

	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((err = entry_xattrs(fs, i, &holder, &xs, &n)))
		goto out;
	for (size_t k = 0; k < n; k++)
		total += xs[k].name_len + 1;
	if (size == 0) {
		fuse_reply_xattr(req, total);
		goto out;
	}
	if (size < total) {
		err = ERANGE;
		goto out;
	}
	if (total && !(buf = malloc(total))) {
		err = ENOMEM;
		goto out;
	}
	p = buf;
	for (size_t k = 0; k < n; k++) {
		memcpy(p, xs[k].name, xs[k].name_len);
		p += xs[k].name_len;
		*p++ = 0;
	}
	fuse_reply_buf(req, buf, total);
out:
	if (err)
		fuse_reply_err(req, err);
	free(buf);
	free(xs);
	bkrfs_cache_release(fs->dirs, holder);
	bkrfs_itable_put(fs->itable, i);
}

/* ---- the rest ---------------------------------------------------------------- */

/*
 * Size 0, nothing free, no inodes: what borg's and restic's mounts report.
 * A backup mount holds no space of its own (its data is the repository's,
 * on another filesystem); reporting the repository's size as used with
 * nothing free made df show it 100 % full, which trips disk alerts.  df
 * hides a filesystem of size 0 (df -a shows it, with "-" for use).
 */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = BKRFS_BLKSIZE;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct bkrfs *fs = userdata;

	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		fs->no_open = true;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		fs->no_opendir = true;
	/* No FUSE_CAP_POSIX_ACL: with it the kernel would cache ACLs, but ask
	 * for every inode's once (a round trip per file of a cold `ls -l`) and
	 * enforce them, where an EOPNOTSUPP from a backup without ACLs would
	 * fail permission checks.  Without it getxattr of the ACL names comes
	 * here, and a backup without ACLs answers EOPNOTSUPP, which `ls`
	 * remembers per device (namespace_absent). */
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
	conn->max_write = 1u << 20;
	conn->max_readahead = conn->max_readahead < (1u << 20) ? conn->max_readahead : (1u << 20);
	conn->max_read = 1u << 20;
}

/* every write-type operation */
static void erofs_entry(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			 const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			    struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
				  struct fuse_file_info *fi_out, size_t len, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops bkrfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = erofs_setattr,
	.readlink = op_readlink,
	.mknod = erofs_entry,
	.mkdir = erofs_mkdir,
	.unlink = erofs_name,
	.rmdir = erofs_name,
	.symlink = erofs_symlink,
	.rename = erofs_rename,
	.link = erofs_link,
	.open = op_open,
	.read = op_read,
	.write = erofs_write,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = erofs_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = erofs_removexattr,
	.access = op_access,
	.create = erofs_create,
	.fallocate = erofs_fallocate,
	.copy_file_range = erofs_copy_file_range,
	.lseek = op_lseek,
};

/* ---- setup ---------------------------------------------------------------------- */

static int pin_top(struct bkrfs *fs, bkrfs_ino ino, bkrfs_node_kind kind, bkrfs_ino parent)
{
	bkrfs_inode *i = inode_alloc(kind);
	int err;

	if (!i)
		return bkr_error_oom();
	i->parent = parent;
	i->timeout = BKRFS_TIMEOUT_VIEW;
	if (!(i->path = strdup("")))
		err = bkr_error_oom();
	synth_stat(fs, S_IFDIR | 0555, fs->mount_time, 0, &i->st);
	i->st.st_nlink = ino == BKRFS_INO_ROOT ? 5 : 2;
	if ((err = bkrfs_itable_pin(fs->itable, i, ino)) < 0)
		bkrfs_inode_discard(fs->itable, i);
	return err;
}

int bkrfs_setup(struct bkrfs *fs)
{
	size_t cache = bkrfs_cache_bytes(&fs->o);
	struct stat st;
	bool have = stat(fs->repo_real, &st) == 0;
	int err;

	fs->owner_uid = getuid();
	fs->owner_gid = getgid();
	fs->repo_uid = have ? st.st_uid : fs->owner_uid;
	fs->repo_gid = have ? st.st_gid : fs->owner_gid;
	fs->mount_time = (int64_t)time(NULL);
	if ((err = bkrfs_itable_new(&fs->itable, inode_release)) < 0 ||
	    (err = bkrfs_cache_new(&fs->chunks, cache, bkrfs_chunk_load, bkrfs_chunk_free, fs)) < 0 ||
	    (err = bkrfs_cache_new(&fs->dirs, 1024, bkrfs_tree_load, bkrfs_tree_free, fs)) < 0)
		return err;
	if ((err = pin_top(fs, BKRFS_INO_ROOT, BKRFS_NODE_ROOT, BKRFS_INO_ROOT)) < 0 ||
	    (err = pin_top(fs, BKRFS_INO_BY_ID, BKRFS_NODE_BY_ID, BKRFS_INO_ROOT)) < 0 ||
	    (err = pin_top(fs, BKRFS_INO_BY_DATE, BKRFS_NODE_BY_DATE, BKRFS_INO_ROOT)) < 0 ||
	    (err = pin_top(fs, BKRFS_INO_RECOVERED, BKRFS_NODE_RECOVERED, BKRFS_INO_ROOT)) < 0)
		return err;
	/* threads (prefetch, watcher) start in main() after fuse_daemonize():
	 * a fork keeps only the calling thread */
	return 0;
}

void bkrfs_teardown(struct bkrfs *fs)
{
	bkrfs_itable_free(fs->itable);
	fs->itable = NULL;
	bkrfs_cache_free(fs->chunks);
	bkrfs_cache_free(fs->dirs);
	fs->chunks = fs->dirs = NULL;
	bkrfs_view_free(fs->view);
	fs->view = NULL;
	bkrfs_runs_free(fs->runs);
	fs->runs = NULL;
}
