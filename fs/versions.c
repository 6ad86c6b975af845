/** @file
 * The history views (versions.h).
 *
 * The catalog (struct bkrfs_hist) holds every backup, oldest first, as a
 * bkrfs_snap owning its manifest (records applied, so tags are current),
 * the name its versions get, and the sorted sources and tags.  It is
 * refcounted: a listing keeps the catalog it was made from, and fs->hist
 * (under view_lock, never held during I/O) is swapped by the watcher.
 *
 * A /versions directory of path P is computed by one walk of P's history
 * (bkr_history_walk, trees through the mount's directory cache): where P is
 * a directory, the names of each distinct tree are merged and its tree id
 * is kept per backup; where P is a file, symlink or other non-directory,
 * each backup in which it differs from the backup before is a version.  A
 * subdirectory's walk starts from its parent's per-backup tree ids, so it
 * reads only the one level below (the parent was listed to reach it).  The
 * result (struct vlist, refcounted) stays with the inode until the catalog
 * changes.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bkr/clock.h"
#include "bkr/entry.h"
#include "bkr/error.h"
#include "bkr/history.h"
#include "bkr/manifest.h"
#include "bkr/utf8.h"
#include "bkrfs.h"
#include "catalog.h"
#include "node.h"
#include "versions.h"

struct bkrfs_hist {
	unsigned refs;             /* atomic */
	size_t n;
	bkrfs_snap **snap;         /* oldest first; each owns its manifest */
	bkr_history_backup *hb;    /* id, root tree and sources of each */
	char **vname;              /* the name of a version from that backup */
	size_t *by_id;             /* indexes sorted by backup id */
	char **sources, **tags;    /* sorted, unique */
	size_t nsources, ntags;
	char **bnames, **rnames;   /* the names in backups/ and records/ it was built from */
	size_t nb, nr;
	struct bkrfs_bad {
		char *file;        /* a damaged manifest named by a backup id */
		int64_t time;      /* ... and its id's time (UTC seconds) */
	} *bad;                    /* every one: which count depends on now (latest_refused) */
	size_t nbad;
};

/* one version of a non-directory in a /versions directory */
struct vver {
	const char *name;          /* the catalog's */
	size_t backup;
	bkr_id dir_tree;           /* where the entry lives */
	uint64_t index;
	uint8_t ftype;
};

/* the listing of a /versions directory */
struct vlist {
	unsigned refs;             /* atomic */
	struct bkrfs_hist *h;      /* referenced: the catalog it was computed from */
	bkr_id *dirs;              /* per backup: the path's tree where it is a directory */
	char **names;              /* the merged entries as shown, sorted */
	char **real;               /* NULL, or per shown name its name in the trees where
	                              they differ (a child named as a version: "~" added) */
	size_t nnames;
	struct vver *v;            /* sorted by name */
	size_t nv;
};

/* ---- the catalog --------------------------------------------------------------- */

static void hist_unref(struct bkrfs_hist *h)
{
	if (!h || __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t k = 0; k < h->n; k++) {
		bkrfs_snap_unref(h->snap[k]);
		free(h->vname[k]);
	}
	free(h->snap);
	free(h->hb);
	free(h->vname);
	free(h->by_id);
	free(h->sources);  /* the strings are the manifests' */
	free(h->tags);
	bkrfs_catalog_names_free(h->bnames, h->nb);
	bkrfs_catalog_names_free(h->rnames, h->nr);
	for (size_t k = 0; k < h->nbad; k++)
		free(h->bad[k].file);
	free(h->bad);
	free(h);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sort @p v and drop repeats */
static size_t sort_unique(char **v, size_t n)
{
	size_t w = 0;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t k = 0; k < n; k++)
		if (!w || strcmp(v[w - 1], v[k]) != 0)
			v[w++] = v[k];
	return w;
}

static int cmp_by_id(const void *a, const void *b, void *ctx)
{
	bkrfs_snap **s = ctx;
	return strcmp(s[*(const size_t *)a]->id, s[*(const size_t *)b]->id);
}

static int cmp_vname(const void *a, const void *b, void *ctx)
{
	char **names = ctx;
	return strcmp(names[*(const size_t *)a], names[*(const size_t *)b]);
}

/* "2026-11-30T01:21:43" in the mount's time zone; "-<suffix>" where two clash */
static int name_versions(struct bkrfs *fs, struct bkrfs_hist *h)
{
	size_t *o;
	int err = 0;

	for (size_t k = 0; k < h->n; k++) {
		struct tm tm;
		char buf[32];
		int64_t ns = h->snap[k]->m->time_ns;
		bkrfs_local_time(ns / 1000000000 - (ns % 1000000000 < 0), fs->o.tz, &tm);
		snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		if (!(h->vname[k] = strdup(buf)))
			return bkr_error_oom();
	}
	if (h->n < 2)
		return 0;
	if (!(o = malloc(h->n * sizeof(*o))))
		return bkr_error_oom();
	for (size_t k = 0; k < h->n; k++)
		o[k] = k;
	qsort_r(o, h->n, sizeof(*o), cmp_vname, h->vname);
	for (size_t a = 0, b; a < h->n && !err; a = b) {
		for (b = a + 1; b < h->n && !strcmp(h->vname[o[a]], h->vname[o[b]]); b++)
			;
		for (size_t k = a; b - a > 1 && k < b && !err; k++) {
			bkrfs_id_info info;
			const char *id = h->snap[o[k]]->id, *suffix = id;
			char *nn;
			size_t len;
			if (bkrfs_parse_backup_id(id, &info) == 0)
				suffix = info.suffix;
			bkr_error_clear();
			len = strlen(h->vname[o[k]]) + strlen(suffix) + 2;
			if (!(nn = malloc(len))) {
				err = bkr_error_oom();
				break;
			}
			snprintf(nn, len, "%s-%s", h->vname[o[k]], suffix);
			free(h->vname[o[k]]);
			h->vname[o[k]] = nn;
		}
	}
	free(o);
	return err;
}

/* the damaged manifests met building the catalog */
struct bad_seen {
	struct bkrfs_hist *h;
	size_t n;
	char last[1024];   /* the last one's message */
	bool oom;
};

/* bkr_repo_list_cb: count @p file and keep those named by a backup id (a
 * junk name, backups/x.json, is no backup and says nothing of what is newest) */
static void note_bad(void *ctx, const char *file, const char *message)
{
	struct bad_seen *b = ctx;
	size_t len = strlen(file);
	bkrfs_id_info info;
	char id[300];

	b->n++;
	snprintf(b->last, sizeof(b->last), "%s", message);
	if (len < 5 || len - 5 >= sizeof(id) || strcmp(file + len - 5, ".json") != 0)
		return;
	memcpy(id, file, len - 5);
	id[len - 5] = 0;
	if (bkrfs_parse_backup_id(id, &info) < 0) {
		bkr_error_clear();
		return;
	}
	struct bkrfs_bad *nb = realloc(b->h->bad, (b->h->nbad + 1) * sizeof(*nb));
	if (nb)
		b->h->bad = nb;
	if (!nb || !(nb[b->h->nbad].file = strdup(file))) {
		b->oom = true;
		return;
	}
	nb[b->h->nbad++].time = info.time;
}

/* a copy of the listing of backups/ (stamped names) the view was built from,
 * or NULL when there is no view yet; under load_lock */
static int view_names_copy(struct bkrfs *fs, char ***out, size_t *n)
{
	char **v = NULL;

	*out = NULL;
	*n = 0;
	if (!fs->view_names)
		return 0;
	if (!(v = calloc(fs->nview_names ? fs->nview_names : 1, sizeof(*v))))
		return bkr_error_oom();
	for (size_t k = 0; k < fs->nview_names; k++) {
		const char *name = fs->view_names[k], *stamp = bkr_repo_name_stamp(name);
		size_t nl = strlen(name), sl = strlen(stamp);
		if (!(v[k] = malloc(nl + sl + 2))) {
			bkrfs_catalog_names_free(v, k);
			return bkr_error_oom();
		}
		memcpy(v[k], name, nl + 1);
		memcpy(v[k] + nl + 1, stamp, sl + 1);
	}
	*out = v;
	*n = fs->nview_names;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The catalog from every manifest (records applied).  With @p vnames (the
 * view's listing, taken over), only the backups the view has: /by-source and
 * /by-tag entries are symlinks into /by-id, and a backup made since the view
 * was built (which a catalog built on a first visit, or by the watcher a moment
 * after its listing, reads) would be one that does not resolve until the
 * watcher's next look.  The catalog then names the view's listing as its own,
 * so that the watcher rebuilds it with the view.
 */
static int hist_build(struct bkrfs *fs, struct bkrfs_hist **out, char **vnames, size_t nvnames)
{
	bkr_manifest_list l = { 0 };
	struct bkrfs_hist *h;
	struct bad_seen bad = { 0 };
	size_t ns = 0, nt = 0;
	bool filter = vnames != NULL;
	int err;

	*out = NULL;
	if (!(h = calloc(1, sizeof(*h)))) {
		bkrfs_catalog_names_free(vnames, nvnames);
		return bkr_error_oom();
	}
	h->refs = 1;
	bad.h = h;
	/* listed (with stamps) before the manifests are read: one rewritten in place since
	 * (a damaged one restored) is noticed by bkrfs_versions_refresh */
	if (vnames) {
		h->bnames = vnames;
		h->nb = nvnames;
		vnames = NULL;
	}
	if ((!h->bnames && (err = bkrfs_catalog_stamped(fs, "backups", ".json", &h->bnames, &h->nb)) < 0) ||
	    (err = bkrfs_catalog_names(fs, "records", ".json", &h->rnames, &h->nr)) < 0 ||
	    (err = bkr_repo_list_cb(fs->repo, false, &l, note_bad, &bad)) < 0)
		goto fail;
	if (bad.oom) {
		err = bkr_error_oom();
		goto fail;
	}
	if (bad.n)
		bkrfs_log(fs, "%zu damaged manifest(s) left out of /versions: %s", bad.n, bad.last);
	bkr_error_clear();
	if (l.n && (!(h->snap = calloc(l.n, sizeof(*h->snap))) || !(h->hb = calloc(l.n, sizeof(*h->hb))) ||
		    !(h->vname = calloc(l.n, sizeof(*h->vname))) || !(h->by_id = calloc(l.n, sizeof(size_t))))) {
		err = bkr_error_oom();
		goto fail;
	}
	for (size_t k = 0; k < l.n; k++) {
		bkr_manifest *m = l.items[k];
		const char *id = m->backup_id;
		bkrfs_snap *s;

		if (filter && !bsearch(&id, h->bnames, h->nb, sizeof(*h->bnames), cmp_name))
			continue; /* not in the view yet (freed with l) */
		if (!(s = bkrfs_snap_new(m->backup_id, false, m->time_ns / 1000000000))) {
			err = bkr_error_oom();
			goto fail;
		}
		s->m = m;
		l.items[k] = NULL;
		h->snap[h->n] = s;
		h->hb[h->n] = bkr_history_backup_of(m);
		h->by_id[h->n] = h->n;
		h->n++;
		ns += m->nsources;
		nt += m->ntags;
	}
	if ((ns && !(h->sources = calloc(ns, sizeof(char *)))) || (nt && !(h->tags = calloc(nt, sizeof(char *))))) {
		err = bkr_error_oom();
		goto fail;
	}
	for (size_t k = 0; k < h->n; k++) {
		const bkr_manifest *m = h->snap[k]->m;
		for (size_t j = 0; j < m->nsources; j++)
			h->sources[h->nsources++] = m->sources[j].source;
		for (size_t j = 0; j < m->ntags; j++) {
			/* a tag that cannot name a directory (recorded before bkr tag
			 * checked tags, or a forged record): one such name in a
			 * listing fails the whole readdir (the kernel takes a '/'
			 * for EIO), so it is left out, and said */
			if (!bkr_manifest_name_safe(m->tags[j]) || strlen(m->tags[j]) > NAME_MAX) {
				char esc[96];
				bkr_text_escape(esc, sizeof(esc), m->tags[j], strlen(m->tags[j]));
				bkrfs_log(fs,
					  "backup %s: tag '%s' left out of /by-tag: it cannot name a directory "
					  "(bkr tag %s --remove '%s')",
					  m->backup_id, esc, m->backup_id, esc);
				continue;
			}
			h->tags[h->ntags++] = m->tags[j];
		}
	}
	h->nsources = sort_unique(h->sources, h->nsources);
	h->ntags = sort_unique(h->tags, h->ntags);
	if (h->n > 1)
		qsort_r(h->by_id, h->n, sizeof(size_t), cmp_by_id, h->snap);
	if ((err = name_versions(fs, h)) < 0)
		goto fail;
	bkr_manifest_list_free(&l);
	*out = h;
	return 0;
fail:
	bkr_manifest_list_free(&l);
	hist_unref(h);
	return err;
}

/* a reference to the current catalog, built on first use; 0 or a positive errno */
static int hist_get(struct bkrfs *fs, struct bkrfs_hist **out)
{
	struct bkrfs_hist *h;
	int err = 0;

	pthread_rwlock_rdlock(&fs->view_lock);
	if ((*out = fs->hist))
		__atomic_add_fetch(&fs->hist->refs, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&fs->view_lock);
	if (*out)
		return 0;
	pthread_mutex_lock(&fs->load_lock);
	if (!fs->hist) { /* load_lock: the watcher swaps it under the same lock */
		char **vn = NULL;
		size_t nvn = 0;
		if ((err = view_names_copy(fs, &vn, &nvn)) < 0 || (err = hist_build(fs, &h, vn, nvn)) < 0) {
			bkrfs_log(fs, "the history catalog: %s", bkr_error_message());
			pthread_mutex_unlock(&fs->load_lock);
			return bkrfs_errno(err);
		}
		pthread_rwlock_wrlock(&fs->view_lock);
		fs->hist = h;
		pthread_rwlock_unlock(&fs->view_lock);
	}
	__atomic_add_fetch(&fs->hist->refs, 1, __ATOMIC_RELAXED);
	*out = fs->hist;
	pthread_mutex_unlock(&fs->load_lock);
	return 0;
}

int bkrfs_versions_refresh(struct bkrfs *fs, char **backups, size_t nbackups, bool *changed)
{
	char **b = NULL, **r = NULL;
	size_t nb = 0, nr = 0;
	struct bkrfs_hist *h, *old;
	bool same;
	int err;

	*changed = false;
	pthread_rwlock_rdlock(&fs->view_lock);
	h = fs->hist;
	pthread_rwlock_unlock(&fs->view_lock);
	if (!h) /* the watcher is the only one that replaces it */
		return 0;
	if ((!backups && (err = bkrfs_catalog_stamped(fs, "backups", ".json", &b, &nb)) < 0) ||
	    (err = bkrfs_catalog_names(fs, "records", ".json", &r, &nr)) < 0)
		goto done;
	if (backups) {
		same = bkrfs_catalog_names_same(backups, nbackups, h->bnames, h->nb);
	} else {
		same = bkrfs_catalog_names_same(b, nb, h->bnames, h->nb);
	}
	same = same && bkrfs_catalog_names_equal(r, nr, h->rnames, h->nr);
	if (same)
		goto done;
	{
		char **vn = NULL;
		size_t nvn = 0;
		pthread_mutex_lock(&fs->load_lock);
		err = view_names_copy(fs, &vn, &nvn);
		pthread_mutex_unlock(&fs->load_lock);
		if (err < 0 || (err = hist_build(fs, &h, vn, nvn)) < 0)
			goto done;
	}
	pthread_mutex_lock(&fs->load_lock);
	pthread_rwlock_wrlock(&fs->view_lock);
	old = fs->hist;
	fs->hist = h;
	pthread_rwlock_unlock(&fs->view_lock);
	pthread_mutex_unlock(&fs->load_lock);
	hist_unref(old);
	*changed = true;
done:
	bkrfs_catalog_names_free(b, nb);
	bkrfs_catalog_names_free(r, nr);
	return err;
}

void bkrfs_versions_fini(struct bkrfs *fs)
{
	hist_unref(fs->hist);
	fs->hist = NULL;
}

/* the backup with id @p id, or -1 */
static long hist_find(const struct bkrfs_hist *h, const char *id)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(h->snap[h->by_id[mid]]->id, id);
		if (!c)
			return (long)h->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* the one rule for "a backup of that source" (bkr log and /versions too) */
static bool holds_source(const bkr_manifest *m, const char *src)
{
	return *src && bkr_history_holds(m, src);
}

static bool has_tag(const bkr_manifest *m, const char *tag)
{
	for (size_t j = 0; j < m->ntags; j++)
		if (!strcmp(m->tags[j], tag))
			return true;
	return false;
}

/*
 * Whether a damaged manifest is named newer (by its id's second) than backup
 * @p k, the newest readable one holding @p source.  Whether it holds the
 * source cannot be known, so /by-source/<source>/latest answers EIO (logged
 * once) rather than name an older backup in silence: /latest names the
 * damaged backup, and 'bkr ... latest' refuses.  A damaged manifest of the
 * same second is not newer: /latest takes the readable one there too.
 */
static bool latest_refused(struct bkrfs *fs, const struct bkrfs_hist *h, size_t k, const char *source, int64_t now_ns)
{
	const bkrfs_snap *s = h->snap[k];
	const struct bkrfs_bad *bad = NULL;
	bkrfs_id_info info;
	char key[1400];
	int64_t t;
	bool made = !bkr_time_in_future(s->m->time_ns, now_ns);

	if (bkrfs_parse_backup_id(s->id, &info) == 0) {
		t = info.time;
	} else {
		bkr_error_clear();
		t = s->m->time_ns / 1000000000 - (s->m->time_ns % 1000000000 < 0);
	}
	/* judged by its id's time, as a readable one by its manifest's: a damaged
	 * manifest dated in the future is passed over as it would be if it read
	 * (bkr ... latest names it in a warning), unless latest is itself one so dated */
	for (size_t j = 0; j < h->nbad; j++) {
		const struct bkrfs_bad *b = &h->bad[j];
		if (b->time <= t)
			continue;
		/* in seconds: an id's year may be past an int64 of ns (2262) */
		if (made && b->time > now_ns / BKR_NS_PER_S + BKR_CLOCK_SKEW_NS / BKR_NS_PER_S) {
			snprintf(key, sizeof(key), "f%s/%s", source, b->file);
			if (!bkrfs_node_logged(fs, key))
				bkrfs_log(fs,
					  "/by-source/%s/latest: backups/%s is damaged and its id is dated in the "
					  "future: passed over, as any backup made while the clock was ahead",
					  source, b->file);
			continue;
		}
		if (!bad || b->time > bad->time)
			bad = b;
	}
	if (!bad)
		return false;
	snprintf(key, sizeof(key), "l%s/%s", source, bad->file);
	if (!bkrfs_node_logged(fs, key))
		bkrfs_log(fs,
			  "/by-source/%s/latest: backups/%s is damaged and newer than %s, the newest readable "
			  "backup holding '%s', so latest answers EIO rather than name an older one: name one "
			  "in /by-source/%s, or run 'bkr verify'",
			  source, bad->file, s->id, source, source);
	return true;
}

static bool in_sorted(char **v, size_t n, const char *name)
{
	return n && bsearch(&name, v, n, sizeof(*v), cmp_str) != NULL;
}

/* ---- a /versions listing ------------------------------------------------------- */

static void vlist_unref(struct vlist *vl)
{
	if (!vl || __atomic_sub_fetch(&vl->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t k = 0; k < vl->nnames; k++) {
		free(vl->names[k]);
		if (vl->real)
			free(vl->real[k]);
	}
	free(vl->names);
	free(vl->real);
	free(vl->v);
	free(vl->dirs);
	hist_unref(vl->h);
	free(vl);
}

void bkrfs_versions_release(bkrfs_inode *i)
{
	vlist_unref(i->vers);
	i->vers = NULL;
}

/* @p i's listing when it was made from catalog @p h (referenced), else NULL */
static struct vlist *vlist_current(struct bkrfs *fs, bkrfs_inode *i, const struct bkrfs_hist *h)
{
	struct vlist *vl;

	pthread_mutex_lock(&fs->vers_lock);
	vl = i->vers;
	if (vl && vl->h == h)
		__atomic_add_fetch(&vl->refs, 1, __ATOMIC_RELAXED);
	else
		vl = NULL;
	pthread_mutex_unlock(&fs->vers_lock);
	return vl;
}

/* a set of names (open addressing) */
struct nset {
	char **slot;
	size_t cap, n;
};

static uint64_t name_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t k = 0; k < len; k++)
		h = (h ^ p[k]) * 1099511628211ull;
	return h;
}

static int nset_add(struct nset *s, const uint8_t *name, size_t len)
{
	size_t k;

	if ((s->n + 1) * 2 > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		char **ns = calloc(nc, sizeof(*ns));
		if (!ns)
			return bkr_error_oom();
		for (size_t j = 0; j < s->cap; j++) {
			if (!s->slot[j])
				continue;
			for (k = name_hash((const uint8_t *)s->slot[j], strlen(s->slot[j])) & (nc - 1); ns[k];
			     k = (k + 1) & (nc - 1))
				;
			ns[k] = s->slot[j];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = nc;
	}
	for (k = name_hash(name, len) & (s->cap - 1); s->slot[k]; k = (k + 1) & (s->cap - 1))
		if (strlen(s->slot[k]) == len && !memcmp(s->slot[k], name, len))
			return 0;
	if (!(s->slot[k] = strndup((const char *)name, len)))
		return bkr_error_oom();
	s->n++;
	return 0;
}

#define MERGE_AHEAD 256 /* trees advised ahead of the one merged */

struct vctx {
	struct bkrfs *fs;
	struct vlist *vl;
	struct nset names;
	size_t vcap;
	const char *path;
};

/* A history takes one or two trees from each of many packs: each is read
 * alone (no read-ahead of its pack), the walk advises them ahead. */
static int tree_load_only(void *ctx, const bkr_id *id, void **val, size_t *cost)
{
	struct bkrfs *fs = ctx;
	bkr_dir *d;
	int err;

	if ((err = bkr_dir_open(&d, id, bkr_repo_load_tree_only, fs->repo)) < 0)
		return err;
	*val = d;
	*cost = 1;
	return 0;
}

static int dirs_open(void *ctx, const bkr_id *id, bkr_dir **d, void **holder)
{
	struct bkrfs *fs = ctx;
	void *v;
	int err = bkrfs_cache_get_by(fs->dirs, id, tree_load_only, fs, (bkrfs_cache_entry **)holder, &v);

	*d = err < 0 ? NULL : v;
	return err;
}

static void dirs_release(void *ctx, void *holder)
{
	struct bkrfs *fs = ctx;
	bkrfs_cache_release(fs->dirs, holder);
}

static void dirs_advise(void *ctx, const bkr_id *id, uint32_t before)
{
	struct bkrfs *fs = ctx;
	if (!bkrfs_cache_contains(fs->dirs, id) && bkr_repo_advise_blob(fs->repo, id, before) < 0)
		bkr_error_clear();
}

/* the names of directory tree @p tree into the set */
static int merge_names(struct vctx *c, const bkr_id *tree)
{
	bkrfs_cache_entry *ce = NULL;
	void *v;
	int err;

	if ((err = bkrfs_cache_get_by(c->fs->dirs, tree, tree_load_only, c->fs, &ce, &v)) < 0)
		return err;
	for (uint64_t k = 0, n = bkr_dir_count(v); k < n && err >= 0; k++) {
		const bkr_tree *leaf;
		uint32_t li;
		bkr_entry e;
		if ((err = bkr_dir_get(v, k, &e, &leaf, &li)) >= 0)
			err = nset_add(&c->names, e.name, e.name_len);
	}
	bkrfs_cache_release(c->fs->dirs, ce);
	return err < 0 ? err : 0;
}

/* dirs[k] is a tree, not the one of the backup before */
static bool new_tree(const bkr_id *dirs, size_t k)
{
	return !bkr_id_is_zero(&dirs[k]) && (k == 0 || bkr_id_cmp(&dirs[k], &dirs[k - 1]) != 0);
}

/* the names of every distinct tree of the directory (vl->dirs), read a window
 * ahead of merging them (a deep queue of reads on a cold cache) */
static int merge_all(struct vctx *c)
{
	const struct vlist *vl = c->vl;
	size_t n = vl->h->n, next = 0;

	for (size_t k = 0; k < n; k++) {
		int err;
		if (!new_tree(vl->dirs, k))
			continue; /* absent, or the same tree as the backup before */
		for (; next < n && next < k + MERGE_AHEAD; next++)
			if (new_tree(vl->dirs, next))
				dirs_advise(c->fs, &vl->dirs[next], 0);
		if ((err = merge_names(c, &vl->dirs[k])) < 0) {
			bkrfs_log(c->fs, "/versions/%s in backup %s: %s", c->path, vl->h->snap[k]->id, bkr_error_message());
			if (err == BKR_ENOMEM)
				return err;
			bkr_error_clear();
		}
	}
	return 0;
}

static int on_version(void *ctx, const bkr_history_item *it)
{
	struct vctx *c = ctx;
	struct vlist *vl = c->vl;

	/* with an entry, one that could not be compared with the version before: shown, it may differ */
	if (it->change == BKR_HISTORY_ERROR)
		bkrfs_log(c->fs, "/versions/%s: %s", c->path, bkr_error_message());
	if (!it->entry)
		return 0;
	if (it->entry->type == BKR_FT_DIR) {
		if (!vl->dirs && !(vl->dirs = calloc(vl->h->n, sizeof(bkr_id))))
			return bkr_error_oom();
		vl->dirs[it->backup] = it->entry->subtree; /* names merged after the walk */
		return 0;
	}
	if (it->change != BKR_HISTORY_ADDED && it->change != BKR_HISTORY_CONTENT && it->change != BKR_HISTORY_METADATA &&
	    it->change != BKR_HISTORY_ERROR)
		return 0;
	if (vl->nv == c->vcap) {
		size_t nc = c->vcap ? c->vcap * 2 : 16;
		struct vver *nv = realloc(vl->v, nc * sizeof(*nv));
		if (!nv)
			return bkr_error_oom();
		vl->v = nv;
		c->vcap = nc;
	}
	vl->v[vl->nv++] = (struct vver){ vl->h->vname[it->backup], it->backup, it->dir_tree, it->index,
					 it->entry->type };
	return 0;
}

static int cmp_vver(const void *a, const void *b)
{
	return strcmp(((const struct vver *)a)->name, ((const struct vver *)b)->name);
}

static bool is_version(const struct vlist *vl, const char *name)
{
	struct vver key = { .name = name };
	return vl->nv && bsearch(&key, vl->v, vl->nv, sizeof(*vl->v), cmp_vver) != NULL;
}

/* a shown name for child @p k that is no version's name, no child's name
 * and no other renamed child's: "~" added until it is free */
static bool name_taken(const struct vlist *vl, char **orig, const char *name)
{
	if (is_version(vl, name) || in_sorted(orig, vl->nnames, name))
		return true;
	for (size_t k = 0; k < vl->nnames; k++)
		if (vl->real && vl->real[k] && !strcmp(vl->names[k], name))
			return true;
	return false;
}

/* Names never clash: a child whose name is a version's name (the path was a
 * file in one backup, a directory holding that name in another) is shown
 * with "~" added (again until the name is free); lookup maps it back. */
static int rename_clashes(struct vlist *vl)
{
	char **orig = NULL;
	bool any = false;
	int err = 0;

	for (size_t k = 0; k < vl->nnames && !any; k++)
		any = is_version(vl, vl->names[k]);
	if (!any)
		return 0;
	if (!(orig = malloc(vl->nnames * sizeof(*orig))) || !(vl->real = calloc(vl->nnames, sizeof(char *)))) {
		free(orig);
		return bkr_error_oom();
	}
	memcpy(orig, vl->names, vl->nnames * sizeof(*orig)); /* sorted */
	for (size_t k = 0; k < vl->nnames && !err; k++) {
		size_t len = strlen(vl->names[k]);
		char *shown;
		if (!is_version(vl, vl->names[k]))
			continue;
		if (!(shown = malloc(len + 2))) {
			err = bkr_error_oom();
			break;
		}
		for (memcpy(shown, vl->names[k], len + 1); !err && name_taken(vl, orig, shown); len++) {
			char *ns = realloc(shown, len + 3);
			if (!ns) {
				err = bkr_error_oom();
				break;
			}
			shown = ns;
			shown[len] = '~';
			shown[len + 1] = 0;
		}
		if (err) {
			free(shown);
			break;
		}
		vl->real[k] = vl->names[k];
		vl->names[k] = shown;
	}
	free(orig);
	if (err)
		return err;
	/* sorted by the shown name, real names alongside */
	for (size_t a = 1; a < vl->nnames; a++)
		for (size_t b = a; b > 0 && strcmp(vl->names[b - 1], vl->names[b]) > 0; b--) {
			char *t = vl->names[b];
			vl->names[b] = vl->names[b - 1];
			vl->names[b - 1] = t;
			t = vl->real[b];
			vl->real[b] = vl->real[b - 1];
			vl->real[b - 1] = t;
		}
	return 0;
}

/* compute the listing of /versions directory @p i from catalog @p h */
static int vlist_compute(struct bkrfs *fs, bkrfs_inode *i, struct bkrfs_hist *h, struct vlist **out)
{
	bkr_history_dirs dirs = { dirs_open, dirs_release, fs, dirs_advise };
	struct vctx c = { .fs = fs, .path = i->path };
	bkr_history_backup *hb = h->hb, *own = NULL;
	const char *path = i->path;
	struct vlist *vl, *pv = NULL;
	int err;

	*out = NULL;
	if (!(vl = calloc(1, sizeof(*vl))))
		return ENOMEM;
	vl->refs = 1;
	vl->h = h;
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
	c.vl = vl;
	if (*path) {
		/* only the backups that hold its source (a backup of another source
		 * alone is no removal); from the parent's trees, when its listing is
		 * current: one level */
		bkrfs_inode *parent = bkrfs_itable_get(fs->itable, i->parent);
		if (parent && parent->kind == BKRFS_NODE_VERSIONS)
			pv = vlist_current(fs, parent, h);
		bkrfs_itable_put(fs->itable, parent);
		if (!(own = malloc((h->n ? h->n : 1) * sizeof(*own)))) {
			vlist_unref(pv);
			vlist_unref(vl);
			return ENOMEM;
		}
		if (pv && pv->dirs) {
			const char *slash = strrchr(i->path, '/');
			for (size_t k = 0; k < h->n; k++)
				own[k] = (bkr_history_backup){ h->hb[k].id, pv->dirs[k], true };
			path = slash ? slash + 1 : i->path;
		} else {
			memcpy(own, h->hb, h->n * sizeof(*own));
		}
		for (size_t k = 0; k < h->n; k++)
			own[k].skip = !bkr_history_holds(h->snap[k]->m, i->path);
		hb = own;
		vlist_unref(pv);
	}
	err = bkr_history_walk(fs->repo, hb, h->n, path, &dirs, on_version, &c);
	free(own);
	if (err < 0 || (vl->dirs && (err = merge_all(&c)) < 0))
		goto fail;
	if (c.names.n && !(vl->names = malloc(c.names.n * sizeof(char *)))) {
		err = bkr_error_oom();
		goto fail;
	}
	for (size_t k = 0; k < c.names.cap; k++)
		if (c.names.slot[k])
			vl->names[vl->nnames++] = c.names.slot[k];
	free(c.names.slot);
	c.names.slot = NULL;
	if (vl->nnames > 1)
		qsort(vl->names, vl->nnames, sizeof(char *), cmp_str);
	if (vl->nv > 1)
		qsort(vl->v, vl->nv, sizeof(*vl->v), cmp_vver);
	if ((err = rename_clashes(vl)) < 0)
		goto fail;
	*out = vl;
	return 0;
fail:
	bkrfs_log(fs, "/versions/%s: %s", i->path, bkr_error_message());
	for (size_t k = 0; k < c.names.cap; k++)
		free(c.names.slot[k]);
	free(c.names.slot);
	vlist_unref(vl);
	return bkrfs_errno(err);
}

/* the current listing of /versions directory @p i (referenced) */
static int vlist_get(struct bkrfs *fs, bkrfs_inode *i, struct vlist **out)
{
	struct bkrfs_hist *h;
	struct vlist *vl, *old;
	int err;

	if ((err = hist_get(fs, &h)))
		return err;
	if ((*out = vlist_current(fs, i, h))) {
		hist_unref(h);
		return 0;
	}
	err = vlist_compute(fs, i, h, &vl);
	hist_unref(h);
	if (err)
		return err;
	__atomic_add_fetch(&vl->refs, 1, __ATOMIC_RELAXED); /* the inode's */
	pthread_mutex_lock(&fs->vers_lock);
	old = i->vers;
	i->vers = vl;
	pthread_mutex_unlock(&fs->vers_lock);
	vlist_unref(old);
	*out = vl;
	return 0;
}

/* ---- nodes ----------------------------------------------------------------------- */

static int enter(struct bkrfs *fs, bkrfs_inode *i, char kind, const char *a, const char *b, bool lookup,
		 bkrfs_inode **out)
{
	const void *parts[2] = { a, b };
	size_t lens[2] = { strlen(a), b ? strlen(b) : 0 };
	uint8_t *key;
	size_t klen;

	if (bkrfs_key_make(&key, &klen, kind, b ? 2 : 1, parts, lens) < 0) {
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	*out = bkrfs_itable_enter(fs->itable, i, key, klen, lookup);
	return 0;
}

/* a synthesized directory: /versions/..., /by-source/<s>, /by-tag/<t> */
static int make_dir(struct bkrfs *fs, bkrfs_inode *parent, bkrfs_node_kind kind, char key, const char *name,
		    bool lookup, bkrfs_inode **out)
{
	bkrfs_inode *i = calloc(1, sizeof(*i));

	if (i)
		i->path = kind == BKRFS_NODE_VERSIONS ? bkrfs_path_join(parent->path, (const uint8_t *)name, strlen(name))
						     : strdup(name);
	if (!i || !i->path) {
		free(i);
		return ENOMEM;
	}
	i->kind = kind;
	i->parent = parent->ino;
	i->timeout = BKRFS_TIMEOUT_VIEW;
	bkrfs_attr_synth(fs, S_IFDIR | 0555, fs->mount_time, 0, &i->st);
	return enter(fs, i, key, i->path, NULL, lookup, out);
}

/* version @p ver of /versions directory @p dir: the entry as in its backup */
static int make_version(struct bkrfs *fs, bkrfs_inode *dir, const struct vlist *vl, const struct vver *ver,
			bool lookup, bkrfs_inode **out)
{
	bkrfs_cache_entry *ce = NULL;
	const bkr_tree *leaf;
	bkrfs_inode *i;
	uint32_t li;
	bkr_entry e;
	void *v;
	int err;

	if ((err = bkrfs_cache_get(fs->dirs, &ver->dir_tree, &ce, &v)) < 0 ||
	    (err = bkr_dir_get(v, ver->index, &e, &leaf, &li)) < 0) {
		bkrfs_log(fs, "/versions/%s/%s: %s", dir->path, ver->name, bkr_error_message());
		bkrfs_cache_release(fs->dirs, ce);
		return bkrfs_data_errno(err);
	}
	if (!(i = calloc(1, sizeof(*i))) || !(i->path = strdup(dir->path)) || !(i->name = strdup(ver->name)) ||
	    (e.type == BKR_FT_SYMLINK && !(i->target = strndup((const char *)e.target, e.target_len)))) {
		bkrfs_cache_release(fs->dirs, ce);
		bkrfs_inode_discard(fs->itable, i);
		return ENOMEM;
	}
	i->kind = BKRFS_NODE_ENTRY;
	i->target_len = e.target_len;
	i->snap = bkrfs_snap_ref(vl->h->snap[ver->backup]);
	i->parent = dir->ino;
	i->parent_tree = ver->dir_tree;
	i->parent_index = ver->index;
	i->subtree = e.subtree;
	i->content = e.content;
	i->sparse_digest = e.sparse_digest;
	i->ftype = e.type;
	i->timeout = BKRFS_TIMEOUT_VIEW; /* the backup may be deleted */
	bkrfs_attr_entry(fs, &e, &i->st);
	bkrfs_cache_release(fs->dirs, ce);
	return enter(fs, i, 'v', i->snap->id, i->path, lookup, out);
}

static int lookup_versions(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out)
{
	struct vver key = { .name = name }, *ver;
	struct vlist *vl;
	char **child;
	int err;

	if ((err = vlist_get(fs, dir, &vl)))
		return err;
	if (vl->nv && (ver = bsearch(&key, vl->v, vl->nv, sizeof(*vl->v), cmp_vver)))
		err = make_version(fs, dir, vl, ver, lookup, out);
	else if (vl->nnames && (child = bsearch(&name, vl->names, vl->nnames, sizeof(char *), cmp_str)))
		err = make_dir(fs, dir, BKRFS_NODE_VERSIONS, 'V',
			       vl->real && vl->real[child - vl->names] ? vl->real[child - vl->names] : name, lookup,
			       out);
	else
		err = ENOENT;
	vlist_unref(vl);
	return err;
}

int bkrfs_versions_lookup(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out)
{
	struct bkrfs_hist *h;
	char target[4096];
	long k = -1;
	int err;

	*out = NULL;
	if (dir->kind == BKRFS_NODE_VERSIONS)
		return lookup_versions(fs, dir, name, lookup, out);
	if ((err = hist_get(fs, &h)))
		return err;
	err = ENOENT;
	switch (dir->kind) {
	case BKRFS_NODE_BY_SOURCE:
		if (in_sorted(h->sources, h->nsources, name))
			err = make_dir(fs, dir, BKRFS_NODE_SOURCE, 'S', name, lookup, out);
		break;
	case BKRFS_NODE_BY_TAG:
		if (in_sorted(h->tags, h->ntags, name))
			err = make_dir(fs, dir, BKRFS_NODE_TAG, 'G', name, lookup, out);
		break;
	case BKRFS_NODE_SOURCE:
		if (!strcmp(name, "latest")) {
			/* the newest made by now, as /latest (bkrfs_view_build): one dated
			 * in the future is passed over, unless every one is */
			int64_t now = bkr_time_now_ns();
			long any = -1;
			for (k = (long)h->n - 1; k >= 0; k--) {
				if (!holds_source(h->snap[k]->m, dir->path))
					continue;
				if (any < 0)
					any = k;
				if (!bkr_time_in_future(h->snap[k]->m->time_ns, now))
					break;
			}
			if (k < 0)
				k = any;
			if (k >= 0 && latest_refused(fs, h, (size_t)k, dir->path, now)) {
				err = EIO;
				break;
			}
		} else if ((k = hist_find(h, name)) >= 0 && !holds_source(h->snap[k]->m, dir->path)) {
			k = -1;
		}
		if (k >= 0 && snprintf(target, sizeof(target), "../../by-id/%s/%s", h->snap[k]->id, dir->path) <
				      (int)sizeof(target))
			err = bkrfs_node_link(fs, 'Y', target, dir->ino, BKRFS_TIMEOUT_VIEW, lookup, out);
		break;
	case BKRFS_NODE_TAG:
		if ((k = hist_find(h, name)) >= 0 && has_tag(h->snap[k]->m, dir->path)) {
			snprintf(target, sizeof(target), "../../by-id/%s", h->snap[k]->id);
			err = bkrfs_node_link(fs, 'Z', target, dir->ino, BKRFS_TIMEOUT_VIEW, lookup, out);
		}
		break;
	default:
		err = ENOTDIR;
		break;
	}
	hist_unref(h);
	return err;
}

int bkrfs_versions_list(struct bkrfs *fs, bkrfs_inode *dir,
			int (*add)(void *ctx, const char *name, unsigned char type), void *ctx)
{
	struct bkrfs_hist *h;
	int err = 0;
	bool any = false;

	if (dir->kind == BKRFS_NODE_VERSIONS) {
		struct vlist *vl;
		if ((err = vlist_get(fs, dir, &vl)))
			return err;
		for (size_t k = 0; !err && k < vl->nnames; k++)
			err = add(ctx, vl->names[k], DT_DIR);
		for (size_t k = 0; !err && k < vl->nv; k++)
			/* the type getattr gives (FIFOs and devices too), 0 = DT_UNKNOWN for one trees cannot hold */
			err = add(ctx, vl->v[k].name, (unsigned char)IFTODT(bkr_entry_mode_of_type(vl->v[k].ftype)));
		vlist_unref(vl);
		return err;
	}
	if ((err = hist_get(fs, &h)))
		return err;
	switch (dir->kind) {
	case BKRFS_NODE_BY_SOURCE:
		for (size_t k = 0; !err && k < h->nsources; k++)
			err = add(ctx, h->sources[k], DT_DIR);
		break;
	case BKRFS_NODE_BY_TAG:
		for (size_t k = 0; !err && k < h->ntags; k++)
			err = add(ctx, h->tags[k], DT_DIR);
		break;
	case BKRFS_NODE_SOURCE:
	case BKRFS_NODE_TAG:
		for (size_t k = 0; !err && k < h->n; k++) {
			const bkr_manifest *m = h->snap[k]->m;
			if (dir->kind == BKRFS_NODE_SOURCE ? holds_source(m, dir->path) : has_tag(m, dir->path)) {
				err = add(ctx, m->backup_id, DT_LNK);
				any = true;
			}
		}
		if (!err && any && dir->kind == BKRFS_NODE_SOURCE)
			err = add(ctx, "latest", DT_LNK);
		break;
	default:
		err = ENOTDIR;
		break;
	}
	hist_unref(h);
	return err;
}
