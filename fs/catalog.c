/** @file
 * The catalog (catalog.h): the view of the backups and the runs catalog,
 * built on first use from the names in backups/ and runs/ (a listing of
 * the repository's store: a directory, or a bucket), and the
 * manifests of snapshots, loaded on first use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkrfs.h"
#include "catalog.h"
#include "node.h"

/* ---- listing names -------------------------------------------------------- */

void bkrfs_catalog_names_free(char **v, size_t n)
{
	if (!v)
		return; /* handed over (e.g. to a bkrfs_runs) */
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
}

int bkrfs_catalog_names(struct bkrfs *fs, const char *sub, const char *suffix, char ***out, size_t *n)
{
	/* through the repository's store: a directory, or a bucket's listing */
	return bkr_repo_list_names(fs->repo, sub, suffix, out, n);
}

int bkrfs_catalog_stamped(struct bkrfs *fs, const char *sub, const char *suffix, char ***out, size_t *n)
{
	return bkr_repo_list_stamped(fs->repo, sub, suffix, out, n);
}

bool bkrfs_catalog_names_same(char **a, size_t na, char **b, size_t nb)
{
	if (!bkrfs_catalog_names_equal(a, na, b, nb))
		return false;
	for (size_t k = 0; k < na; k++) {
		const char *x = bkr_repo_name_stamp(a[k]), *y = bkr_repo_name_stamp(b[k]);
		/* "": the store cannot tell (then only names count) */
		if (*x && *y && strcmp(x, y) != 0)
			return false;
	}
	return true;
}

bool bkrfs_catalog_names_equal(char **a, size_t na, char **b, size_t nb)
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
	bkrfs_catalog_names_free(r->names, r->nnames);
	free(r);
}

/*
 * bkr_repo_list_cb: a run whose manifest does not read is left out of
 * /recovered, with one line naming it and why, once per mount (the runs
 * catalog is rebuilt at each change of runs/), as bkr list warns of it.
 */
static void log_bad_run(void *ctx, const char *file, const char *message)
{
	struct bkrfs *fs = ctx;
	size_t len = strlen(file);
	char key[600];

	if (len > 5 && !strcmp(file + len - 5, ".json"))
		len -= 5;
	snprintf(key, sizeof(key), "r%.*s", (int)len, file); /* as a damaged run directory's (node.c) */
	if (!bkrfs_node_logged(fs, key))
		bkrfs_log(fs, "run %.*s: its manifest is damaged, left out of /recovered: %s", (int)len, file, message);
}

int bkrfs_catalog_build_runs(struct bkrfs *fs, char **names, size_t nnames, struct bkrfs_runs **out)
{
	bkr_manifest_list l = { 0 };
	struct bkrfs_runs *r;
	int err;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r)))) {
		bkrfs_catalog_names_free(names, nnames); /* ours on every return */
		return bkr_error_oom();
	}
	r->names = names;
	r->nnames = nnames;
	if ((err = bkr_repo_list_cb(fs->repo, true, &l, log_bad_run, fs)) < 0) {
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

int bkrfs_catalog_refresh(struct bkrfs *fs, bool runs)
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
	/* listed (with stamps) before any manifest is read: a manifest rewritten since is
	 * noticed by the watcher */
	if ((err = bkrfs_catalog_stamped(fs, runs ? "runs" : "backups", ".json", &names, &n)) < 0)
		goto done;
	if (runs) {
		struct bkrfs_runs *r;
		if ((err = bkrfs_catalog_build_runs(fs, names, n, &r)) < 0) {
			names = NULL; /* freed with r */
			goto done;
		}
		names = NULL;
		pthread_rwlock_wrlock(&fs->view_lock);
		fs->runs = r;
		pthread_rwlock_unlock(&fs->view_lock);
	} else {
		bkrfs_view *v;
		if ((err = bkrfs_catalog_build_view(fs, names, n, &v)) < 0)
			goto done;
		pthread_rwlock_wrlock(&fs->view_lock);
		fs->view = v;
		pthread_rwlock_unlock(&fs->view_lock);
		bkrfs_catalog_names_free(fs->view_names, fs->nview_names);
		fs->view_names = names; /* under load_lock */
		fs->nview_names = n;
		names = NULL;
	}
done:
	bkrfs_catalog_names_free(names, n);
	if (err == 0)
		pthread_rwlock_rdlock(&fs->view_lock);
	pthread_mutex_unlock(&fs->load_lock);
	return err;
}

int bkrfs_snap_manifest(struct bkrfs *fs, bkrfs_snap *s, const bkr_manifest **out)
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

static int64_t precise_time(void *ctx, const char *id)
{
	struct bkrfs *fs = ctx;
	bkrfs_snap *s = bkrfs_snap_new(id, false, 0);
	const bkr_manifest *m;
	int64_t t = -1;

	if (s && bkrfs_snap_manifest(fs, s, &m) == 0)
		t = m->time_ns;
	bkrfs_snap_unref(s);
	return t;
}

/*
 * One line naming the backups /latest of @p v passed over as dated in the
 * future (the first BKR_FUTURE_NAMED, then how many more), as bkr's latest
 * warns of them: once per mount, again only when they change (a view is
 * rebuilt at each change of backups/).
 */
static void log_future(struct bkrfs *fs, const bkrfs_view *v)
{
	char names[1024];
	uint64_t sum = 14695981039346656037ull;
	size_t k, len = 0, first = v->ntime - v->passed;
	bool seen;

	for (k = first; k < v->ntime; k++)
		for (const unsigned char *p = (const unsigned char *)v->b[v->by_time[k]].id;; p++) {
			sum = (sum ^ *p) * 1099511628211ull;
			if (!*p)
				break;
		}
	if (!v->passed)
		sum = 0;
	pthread_mutex_lock(&fs->seen.lock);
	seen = fs->seen.future == sum;
	fs->seen.future = sum;
	pthread_mutex_unlock(&fs->seen.lock);
	if (seen || !v->passed)
		return;
	names[0] = 0;
	for (k = first; k < v->ntime && k < first + BKR_FUTURE_NAMED && len < sizeof(names); k++)
		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", k > first ? ", " : "",
					v->b[v->by_time[k]].id);
	if (v->passed > BKR_FUTURE_NAMED)
		bkrfs_log(fs,
			  "/latest passes over %zu backups dated in the future (the clock was ahead when they were "
			  "made): %s and %zu more (bkr list shows them)",
			  v->passed, names, v->passed - BKR_FUTURE_NAMED);
	else
		bkrfs_log(fs, "/latest passes over %zu backup%s dated in the future (the clock was ahead when %s made): %s",
			  v->passed, v->passed == 1 ? "" : "s", v->passed == 1 ? "it was" : "they were", names);
}

int bkrfs_catalog_build_view(struct bkrfs *fs, char **names, size_t n, bkrfs_view **out)
{
	int err = bkrfs_view_build(out, (const char *const *)names, n, fs->o.tz, bkr_time_now_ns(), precise_time, fs);

	if (err == 0)
		log_future(fs, *out);
	return err;
}

int bkrfs_catalog_view_rdlock(struct bkrfs *fs)
{
	pthread_rwlock_rdlock(&fs->view_lock);
	if (fs->view)
		return 0;
	pthread_rwlock_unlock(&fs->view_lock);
	return bkrfs_errno(bkrfs_catalog_refresh(fs, false));
}

int bkrfs_catalog_runs_rdlock(struct bkrfs *fs)
{
	pthread_rwlock_rdlock(&fs->view_lock);
	if (fs->runs)
		return 0;
	pthread_rwlock_unlock(&fs->view_lock);
	return bkrfs_errno(bkrfs_catalog_refresh(fs, true));
}

bkrfs_snap *bkrfs_catalog_run_find(struct bkrfs_runs *r, const char *id)
{
	for (size_t k = 0; k < r->n; k++)
		if (strcmp(r->runs[k]->id, id) == 0)
			return r->runs[k];
	return NULL;
}
