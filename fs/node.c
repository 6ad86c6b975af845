/** @file
 * Nodes (node.h): making the inodes of the tree the mount shows, and
 * resolving a name in a directory (lookup).  Top-level nodes come from the
 * catalog (the view of the backups, the runs); the nodes of a backup from
 * its trees through the directory cache.  Every function here returns 0 or
 * a positive errno.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "catalog.h"
#include "node.h"
#include "versions.h"

/* the tree holding the contents of a directory inode */
static int dir_tree_of(struct bkrfs *fs, bkrfs_inode *i, bkr_id *out)
{
	const bkr_manifest *m;
	int err;

	if (i->kind == BKRFS_NODE_ENTRY) {
		*out = i->subtree;
		return 0;
	}
	if ((err = bkrfs_snap_manifest(fs, i->snap, &m)) < 0)
		return err;
	*out = m->tree;
	return 0;
}

static bkrfs_inode *inode_alloc(bkrfs_node_kind kind)
{
	bkrfs_inode *i = calloc(1, sizeof(*i));
	if (i) {
		i->kind = kind;
		i->timeout = BKRFS_TIMEOUT_FOREVER;
	}
	return i;
}

static int key2(uint8_t **key, size_t *len, char kind, const char *a, const char *b)
{
	const void *parts[2] = { a, b };
	size_t lens[2] = { strlen(a), b ? strlen(b) : 0 };
	return bkrfs_key_make(key, len, kind, b ? 2 : 1, parts, lens);
}

int bkrfs_node_link(struct bkrfs *fs, char kind, const char *target, bkrfs_ino parent, double timeout,
		    bool lookup, bkrfs_inode **out)
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
	bkrfs_attr_synth(fs, S_IFLNK | 0777, fs->mount_time, (off_t)i->target_len, &i->st);
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
	bkrfs_attr_synth(fs, S_IFDIR | 0555, t, 0, &i->st);
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
	bkrfs_attr_synth(fs, S_IFDIR | 0555, s->time, 0, &i->st);
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

	if ((err = bkrfs_snap_manifest(fs, parent->snap, &m)) < 0)
		return bkrfs_errno(err);
	if (bkr_id_is_zero(&m->report))
		return ENOENT;
	if ((err = bkr_repo_lookup(fs->repo, &m->report, &ie)) < 0)
		return bkrfs_data_errno(err);
	if (!(i = inode_alloc(BKRFS_NODE_REPORT)) || !(i->path = strdup("report.json"))) {
		free(i);
		return ENOMEM;
	}
	i->snap = bkrfs_snap_ref(parent->snap);
	i->parent = parent->ino;
	i->content = m->report;
	/* the report names the files of the run and their hashes: readable by
	 * the repository's owner only (bkr recovered needs the repository too) */
	bkrfs_attr_synth(fs, S_IFREG | 0400, parent->snap->time, (off_t)ie.raw_len, &i->st);
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

char *bkrfs_path_join(const char *dir, const uint8_t *name, size_t len)
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

bkrfs_ino bkrfs_node_child_ino(struct bkrfs *fs, const bkrfs_inode *dir, const bkr_entry *e, bool *present)
{
	char *path = bkrfs_path_join(dir->path, e->name, e->name_len);
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
		ino = bkrfs_node_child_ino(fs, dir, e, &present);
	bkrfs_itable_put(fs->itable, dir);
	return present ? ino : 0; /* in the table: the kernel knows it */
}

int bkrfs_node_entry(struct bkrfs *fs, bkrfs_inode *parent, const bkr_id *dir_tree, uint64_t index,
		      const bkr_entry *e, bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = inode_alloc(BKRFS_NODE_ENTRY);
	uint8_t *key;
	size_t klen;

	if (!i)
		return ENOMEM;
	if (!(i->path = bkrfs_path_join(parent->path, e->name, e->name_len)))
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
	i->sparse_digest = e->sparse_digest;
	i->ftype = e->type;
	bkrfs_attr_entry(fs, e, &i->st);
	if (entry_key(parent->snap, e, i->path, &key, &klen) < 0)
		goto oom;
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
oom:
	bkrfs_inode_discard(fs->itable, i);
	return ENOMEM;
}

int bkrfs_node_open_dir(struct bkrfs *fs, bkrfs_inode *i, bkrfs_cache_entry **ce, bkr_dir **d, bkr_id *tree)
{
	void *v;
	int err;

	memset(tree, 0, sizeof(*tree));
	*ce = NULL;
	*d = NULL;
	/* a manifest that does not read is its code, never an empty directory
	 * (a listing of a backup whose manifest had gone was empty, and the
	 * kernel kept that listing) */
	if ((err = dir_tree_of(fs, i, tree)) < 0)
		return err;
	if (bkr_id_is_zero(tree))
		return 0; /* no tree: an empty directory */
	/* a tree the backup names but the index lacks (a lost index file, a
	 * missing pack) is damage: the loader (chunk.c) makes it BKR_ECORRUPT */
	if ((err = bkrfs_cache_get(fs->dirs, tree, ce, &v)) < 0)
		return err;
	*d = v;
	return 0;
}

bool bkrfs_node_logged(struct bkrfs *fs, const char *key)
{
	struct bkrfs_seen *seen = &fs->seen;
	bool dup = false;
	bkr_id id;

	bkr_sha256(key, strlen(key), &id);
	pthread_mutex_lock(&seen->lock);
	for (unsigned j = 0; j < BKRFS_SEEN_MAX && j < seen->nmanifest && !dup; j++)
		dup = !memcmp(seen->manifest[j].b, id.b, BKR_ID_SIZE);
	if (!dup)
		seen->manifest[seen->nmanifest++ % BKRFS_SEEN_MAX] = id;
	pthread_mutex_unlock(&seen->lock);
	return dup;
}

/* Whether the damaged manifest of @p s was logged already (else it is now noted). */
static bool manifest_logged(struct bkrfs *fs, const bkrfs_snap *s)
{
	char k[600];

	snprintf(k, sizeof(k), "%c%s", s->run ? 'r' : 'b', s->id);
	return bkrfs_node_logged(fs, k);
}

int bkrfs_node_tree_errno(struct bkrfs *fs, bkrfs_inode *dir, int err)
{
	int e = bkrfs_errno(err);
	bool no_manifest = false;

	if (err == BKR_ENOTFOUND || err == BKR_ENOMEM)
		return e;
	if (err == BKR_ECORRUPT && dir->kind == BKRFS_NODE_SNAP_ROOT && dir->snap) {
		pthread_mutex_lock(&dir->snap->lock);
		no_manifest = !dir->snap->m;
		pthread_mutex_unlock(&dir->snap->lock);
	}
	if (no_manifest) {
		/* a damaged manifest: EIO at every visit, one line per backup */
		if (!manifest_logged(fs, dir->snap))
			bkrfs_log(fs, "%s %s: its manifest is damaged, the directory answers EIO: %s",
				  dir->snap->run ? "run" : "backup", dir->snap->id, bkr_error_message());
		return e;
	}
	bkrfs_log(fs, "%s %s, directory '%s': %s", dir->snap && dir->snap->run ? "run" : "backup",
		  dir->snap ? dir->snap->id : "?", dir->path ? dir->path : "", bkr_error_message());
	return e;
}

int bkrfs_node_lookup(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out)
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
		else if (!strcmp(name, "versions"))
			fixed = BKRFS_INO_VERSIONS;
		else if (!strcmp(name, "by-source"))
			fixed = BKRFS_INO_BY_SOURCE;
		else if (!strcmp(name, "by-tag"))
			fixed = BKRFS_INO_BY_TAG;
		if (fixed) {
			*out = bkrfs_itable_get(fs->itable, fixed);
			return *out ? 0 : ENOENT;
		}
		if (strcmp(name, "latest") != 0)
			return ENOENT;
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		if (fs->view->latest_target)
			err = bkrfs_node_link(fs, 'L', fs->view->latest_target, BKRFS_INO_ROOT, BKRFS_TIMEOUT_VIEW,
					lookup, out);
		else
			err = ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	}
	case BKRFS_NODE_BY_ID: {
		const bkrfs_view_backup *b;
		bkrfs_snap *s = NULL;
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		if ((b = bkrfs_view_find(fs->view, name)))
			s = bkrfs_snap_new(b->id, false, b->info.time);
		err = b ? (s ? 0 : ENOMEM) : ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		if (err)
			return err;
		return make_snap_root(fs, s, lookup, out);
	}
	case BKRFS_NODE_BY_DATE: {
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
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
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		if ((d = bkrfs_view_find_day(fs->view, dir->path)))
			b = bkrfs_view_find_dated(fs->view, d, name);
		err = b ? (bkrfs_view_date_target(target, sizeof(target), b->id) < 0 ? ENAMETOOLONG : 0) : ENOENT;
		pthread_rwlock_unlock(&fs->view_lock);
		if (err)
			return err;
		return bkrfs_node_link(fs, 'T', target, dir->ino, BKRFS_TIMEOUT_FOREVER, lookup, out);
	}
	case BKRFS_NODE_RECOVERED: {
		bkrfs_snap *s;
		if ((err = bkrfs_catalog_runs_rdlock(fs)))
			return err;
		if (!strcmp(name, "latest")) {
			if (fs->runs->n)
				err = bkrfs_node_link(fs, 'R', fs->runs->runs[fs->runs->n - 1]->id, BKRFS_INO_RECOVERED,
						BKRFS_TIMEOUT_VIEW, lookup, out);
			else
				err = ENOENT;
			pthread_rwlock_unlock(&fs->view_lock);
			return err;
		}
		s = bkrfs_snap_ref(bkrfs_catalog_run_find(fs->runs, name));
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
		char alias[BKRFS_REPORT_ALIAS_MAX];
		bool report;
		if ((err = bkrfs_node_run_report(fs, dir, &report)))
			return err;
		if (report && !strcmp(name, "report.json"))
			return make_report(fs, dir, lookup, out);
		if ((err = bkrfs_node_open_dir(fs, dir, &ce, &d, &tree)) < 0)
			return bkrfs_node_tree_errno(fs, dir, err);
		if (!d)
			return ENOENT; /* an empty directory */
		/* the run's recovered top-level report.json has another name,
		 * which readdir shows too */
		if (report && !strncmp(name, "report.json~", 12)) {
			if ((err = bkrfs_node_report_alias(fs, dir, d, alias)) && err != ENOENT) {
				bkrfs_cache_release(fs->dirs, ce);
				return err;
			}
			if (!err && !strcmp(name, alias))
				name = "report.json";
		}
		err = bkr_dir_find(d, (const uint8_t *)name, strlen(name), &e, &leaf, &li, &index);
		if (err < 0) {
			bkrfs_cache_release(fs->dirs, ce);
			return err == BKR_ENOTFOUND ? ENOENT : bkrfs_node_tree_errno(fs, dir, err);
		}
		err = bkrfs_node_entry(fs, dir, &tree, index, &e, lookup, out);
		bkrfs_cache_release(fs->dirs, ce);
		return err;
	}
	case BKRFS_NODE_VERSIONS:
	case BKRFS_NODE_BY_SOURCE:
	case BKRFS_NODE_SOURCE:
	case BKRFS_NODE_BY_TAG:
	case BKRFS_NODE_TAG:
		return bkrfs_versions_lookup(fs, dir, name, lookup, out);
	default:
		return ENOTDIR;
	}
}

int bkrfs_node_run_report(struct bkrfs *fs, bkrfs_inode *dir, bool *has)
{
	const bkr_manifest *m;
	int err;

	*has = false;
	if (dir->kind != BKRFS_NODE_SNAP_ROOT || !dir->snap->run)
		return 0;
	if ((err = bkrfs_snap_manifest(fs, dir->snap, &m)) < 0)
		return bkrfs_node_tree_errno(fs, dir, err);
	*has = !bkr_id_is_zero(&m->report);
	return 0;
}

int bkrfs_node_report_alias(struct bkrfs *fs, bkrfs_inode *root, bkr_dir *d, char *buf)
{
	const bkr_tree *leaf;
	uint32_t li;
	uint64_t index;
	bkr_entry e;
	size_t len = strlen("report.json");
	int err;

	memcpy(buf, "report.json", len + 1);
	do {
		if ((err = bkr_dir_find(d, (const uint8_t *)buf, len, &e, &leaf, &li, &index)) == BKR_ENOTFOUND)
			return len > strlen("report.json") ? 0 : ENOENT;
		if (err < 0)
			return bkrfs_node_tree_errno(fs, root, err);
		buf[len++] = '~';
		buf[len] = 0;
	} while (len < BKRFS_REPORT_ALIAS_MAX);
	return ENOENT;
}

int bkrfs_node_pin_top(struct bkrfs *fs, bkrfs_ino ino, bkrfs_node_kind kind, bkrfs_ino parent)
{
	bkrfs_inode *i = inode_alloc(kind);
	int err;

	if (!i)
		return bkr_error_oom();
	i->parent = parent;
	i->timeout = BKRFS_TIMEOUT_VIEW;
	if (!(i->path = strdup(""))) {
		bkrfs_inode_discard(fs->itable, i);
		return bkr_error_oom();
	}
	bkrfs_attr_synth(fs, S_IFDIR | 0555, fs->mount_time, 0, &i->st);
	i->st.st_nlink = ino == BKRFS_INO_ROOT ? 8 : 2;
	if ((err = bkrfs_itable_pin(fs->itable, i, ino)) < 0)
		bkrfs_inode_discard(fs->itable, i);
	return err;
}
