/** @file
 * The watcher (watch.h).
 *
 * It wakes every watch_ms (default 2 s; 10 s for a remote repository,
 * where each look is a listing request), lists index/, backups/ and
 * runs/ (names only, through the repository's store), and when something changed: reloads the index first
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
#include "catalog.h"
#include "versions.h"
#include "watch.h"

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
		if (x->day[0])
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

/* the history views changed: their directories' cached listings go */
static void notify_history(struct bkrfs *fs)
{
	static const bkrfs_node_kind kinds[] = { BKRFS_NODE_VERSIONS, BKRFS_NODE_SOURCE, BKRFS_NODE_TAG };
	bkrfs_ino *v;
	size_t n;

	inval_inode(fs, BKRFS_INO_BY_SOURCE);
	inval_inode(fs, BKRFS_INO_BY_TAG);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		n = bkrfs_itable_of_kind(fs->itable, kinds[k], &v);
		for (size_t j = 0; j < n; j++)
			inval_inode(fs, v[j]);
		free(v);
	}
}

static void watch_tick(struct bkrfs *fs)
{
	char **names = NULL, **bnames = NULL;
	size_t n = 0, nb = 0;
	bool have, have_hist, listed = false, owned = true;

	/* 1. new index files first */
	if (bkrfs_catalog_names(fs, "index", ".idx", &names, &n) == 0) {
		if (!bkrfs_catalog_names_equal(names, n, fs->idx_names, fs->nidx)) {
			if (bkr_repo_reload_index(fs->repo) < 0)
				bkrfs_log(fs, "reloading the index: %s", bkr_error_message());
			bkrfs_catalog_names_free(fs->idx_names, fs->nidx);
			fs->idx_names = names;
			fs->nidx = n;
		} else {
			bkrfs_catalog_names_free(names, n);
		}
	}
	/* 2. backups: names, and manifests rewritten in place (a damaged one restored:
	 * its stamp changed), listed once for the view and the history catalog */
	pthread_rwlock_rdlock(&fs->view_lock);
	have = fs->view != NULL;
	have_hist = fs->hist != NULL;
	pthread_rwlock_unlock(&fs->view_lock);
	if ((have || have_hist) && bkrfs_catalog_stamped(fs, "backups", ".json", &bnames, &nb) == 0)
		listed = true;
	if (have && listed) {
		bkrfs_view *nv = NULL, *old;
		bool same;
		pthread_mutex_lock(&fs->load_lock);
		same = bkrfs_catalog_names_same(bnames, nb, fs->view_names, fs->nview_names);
		pthread_mutex_unlock(&fs->load_lock);
		if (!same) {
			bkr_repo_reload_index(fs->repo); /* a backup's index precedes its manifest */
			if (bkrfs_catalog_build_view(fs, bnames, nb, &nv) == 0) {
				pthread_mutex_lock(&fs->load_lock);
				pthread_rwlock_wrlock(&fs->view_lock);
				old = fs->view;
				fs->view = nv;
				pthread_rwlock_unlock(&fs->view_lock);
				/* the listing goes with the view; read below still (only the watcher
				 * replaces it once there is a view) */
				bkrfs_catalog_names_free(fs->view_names, fs->nview_names);
				fs->view_names = bnames;
				fs->nview_names = nb;
				owned = false;
				pthread_mutex_unlock(&fs->load_lock);
				notify_view(fs, old, nv);
				bkrfs_view_free(old);
			}
		}
	}
	/* 3. the history views (/versions, /by-source, /by-tag): backups or records */
	if (have_hist) {
		if (bkrfs_versions_refresh(fs, listed ? bnames : NULL, nb, &have) < 0)
			bkrfs_log(fs, "the history catalog: %s", bkr_error_message());
		else if (have)
			notify_history(fs);
	}
	if (owned)
		bkrfs_catalog_names_free(bnames, nb);
	/* 4. recovery runs */
	pthread_rwlock_rdlock(&fs->view_lock);
	have = fs->runs != NULL;
	pthread_rwlock_unlock(&fs->view_lock);
	if (have && bkrfs_catalog_stamped(fs, "runs", ".json", &names, &n) == 0) {
		bool same;
		pthread_rwlock_rdlock(&fs->view_lock);
		same = bkrfs_catalog_names_same(names, n, fs->runs->names, fs->runs->nnames);
		pthread_rwlock_unlock(&fs->view_lock);
		if (!same) {
			struct bkrfs_runs *nr, *old;
			bkr_repo_reload_index(fs->repo);
			if (bkrfs_catalog_build_runs(fs, names, n, &nr) == 0) {
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
			bkrfs_catalog_names_free(names, n);
		}
	}
}

void *bkrfs_watch_main(void *arg)
{
	struct bkrfs *fs = arg;
	unsigned ms = fs->o.watch_ms ? fs->o.watch_ms : fs->o.remote ? 10000 : 2000;

	bkrfs_catalog_names(fs, "index", ".idx", &fs->idx_names, &fs->nidx);
	while (bkrfs_mount_sleep(fs, ms))
		watch_tick(fs);
	bkrfs_catalog_names_free(fs->idx_names, fs->nidx);
	fs->idx_names = NULL;
	fs->nidx = 0;
	return NULL;
}
