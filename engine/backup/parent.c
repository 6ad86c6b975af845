/** @file
 * The parent of an incremental, differential or snapshot backup: the newest
 * backup of the same host with the same sources (differential: the newest
 * full), or the one the options name; and each source's tree in it.
 */
#include "backup_i.h"

#include <stdlib.h>
#include <string.h>

#include "bkr/catalog.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/manifest.h"

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

bool bkr_backup_of_host(const bkr_manifest *m, const char *hostname)
{
	return m && m->hostname && hostname && strcmp(m->hostname, hostname) == 0;
}

/* The parent in @p l (taken out of it: the caller owns *out), or BKR_ENOTFOUND. */
static int parent_in(bkr_manifest_list *l, bkr_backup_type type, const char *hostname,
		     const bkr_source_spec *sources, size_t nsources, int64_t now_ns,
		     void (*future)(void *ctx, const char *backup_id, int64_t time_ns), void *ctx,
		     bkr_manifest **out)
{
	for (size_t i = l->n; i-- > 0;) {
		bkr_manifest *m = l->items[i];
		if (!m || m->type == BKR_BACKUP_RECOVERY)
			continue;
		if (type == BKR_BACKUP_DIFFERENTIAL && m->type != BKR_BACKUP_FULL)
			continue;
		if (!bkr_backup_of_host(m, hostname))
			continue;
		if (!same_sources(m, sources, nsources))
			continue;
		/* made while the clock was ahead: not the newest backup of these
		 * sources (as the schedules judge it), so not the parent either */
		if (bkr_time_in_future(m->time_ns, now_ns)) {
			if (future)
				future(ctx, m->backup_id, m->time_ns);
			continue;
		}
		*out = m;
		l->items[i] = NULL;
		return 0;
	}
	return bkr_error_set(BKR_ENOTFOUND, "no earlier %s backup of host '%s' with these sources",
			     type == BKR_BACKUP_DIFFERENTIAL ? "full" : "", hostname);
}

int bkr_backup_find_parent(bkr_repo *r, bkr_backup_type type, const char *hostname,
			   const bkr_source_spec *sources, size_t nsources, int64_t now_ns,
			   void (*future)(void *ctx, const char *backup_id, int64_t time_ns), void *ctx,
			   bkr_manifest **out)
{
	bkr_manifest_list l = { 0 };
	int err;

	*out = NULL;
	if (type == BKR_BACKUP_FULL || type == BKR_BACKUP_RECOVERY)
		return bkr_error_set(BKR_ENOTFOUND, "a %s backup has no parent", bkr_backup_type_name(type));
	if ((err = bkr_repo_list(r, false, &l, NULL)) < 0)
		return err;
	err = parent_in(&l, type, hostname, sources, nsources, now_ns, future, ctx, out);
	bkr_manifest_list_free(&l);
	return err;
}

/*
 * The new backup's date (docs/format.md): @p start_ns, or one microsecond
 * (the timestamp's precision) after the newest backup of the same second when
 * that is not earlier.  Backups are ordered by time and then by id, whose
 * random suffix is no order of creation, so 'latest' and retention could take
 * an older one for the newest (a clock at the same reading, BKR_TEST_NOW).
 *
 * The backups looked at are those of one listing of backups/, taken once the
 * shared lock is held (bkr_bk_parent_select): the one that finds the parent,
 * else (a full backup, or a parent named by the options) one of its own, of
 * which only the manifests of that second are read, one that cannot be read
 * passed over.  Every backup finished before this one started is in it.  One
 * made meanwhile beside this one (backups share the lock; another host) is
 * dated by its own clock: neither was made before the other, and at the same
 * reading their ids order them.
 */
struct second {
	char id[128];
	size_t plen;   /* of "backup_YYYYMMDD_HHMMSS_"; 0: no id */
	int64_t time_ns;
};

static void second_init(struct second *s, const bctx *c, int64_t start_ns)
{
	s->plen = strlen("backup_YYYYMMDD_HHMMSS_");
	s->time_ns = start_ns;
	if (bkr_backup_id_new(s->id, sizeof(s->id), c->o->type, start_ns) < 0 || strlen(s->id) < s->plen) {
		bkr_error_clear();
		s->plen = 0;
	}
}

static bool second_same(const struct second *s, const char *id)
{
	return s->plen && !strncmp(id, s->id, s->plen);
}

static void second_after(struct second *s, const bkr_manifest *m)
{
	if (m && m->backup_id && second_same(s, m->backup_id) && m->time_ns >= s->time_ns)
		s->time_ns = m->time_ns + 1000; /* the timestamp's microseconds */
}

/* The date from a listing of backups/ of its own (no parent lookup to share). */
static int64_t date_listed(bctx *c, int64_t start_ns)
{
	struct second s;
	char **ids = NULL;
	size_t n = 0;

	second_init(&s, c, start_ns);
	if (!s.plen || bkr_repo_list_ids(c->repo, false, &ids, &n) < 0) {
		bkr_error_clear();
		return start_ns;
	}
	for (size_t i = 0; i < n; i++) {
		bkr_manifest *m = NULL;
		if (second_same(&s, ids[i]) && bkr_repo_load_manifest(c->repo, false, ids[i], &m) == 0)
			second_after(&s, m);
		bkr_manifest_free(m);
		bkr_error_clear();
	}
	bkr_repo_ids_free(ids, n);
	return s.time_ns;
}

int bkr_bk_parent_select(bctx *c, int64_t now_ns)
{
	const bkr_backup_options *o = c->o;
	int err = 0;

	c->time_ns = now_ns;
	if (o->type == BKR_BACKUP_FULL || o->parent) {
		if (o->parent && (err = bkr_repo_find_backup(c->repo, o->parent, &c->parent)) < 0)
			return err;
		c->time_ns = date_listed(c, now_ns);
	} else {
		/* one listing finds the parent and dates the backup */
		bkr_manifest_list l = { 0 };
		struct second s;
		if ((err = bkr_repo_list(c->repo, false, &l, NULL)) < 0)
			return err;
		second_init(&s, c, now_ns);
		for (size_t i = 0; i < l.n; i++)
			second_after(&s, l.items[i]);
		c->time_ns = s.time_ns;
		err = parent_in(&l, o->type, c->hostname, o->sources, o->nsources, now_ns, o->future, o->future_ctx,
				&c->parent);
		bkr_manifest_list_free(&l);
		if (err == BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		} else if (err < 0) {
			return err;
		}
	}
	if (c->parent) {
		c->have_parent = true;
		c->parent_start = c->parent->time_ns;
	}
	return 0;
}

/* Every chunk of @p n is in the index (bkr repair takes damaged ones out:
 * such a file is read again, so that the backup stores its bytes anew). */
static bool chunks_indexed(bctx *c, const node *n)
{
	bkr_index_entry e;
	for (size_t i = 0; i < n->nchunks; i++)
		if (bkr_repo_lookup(c->repo, &n->chunks[i].id, &e) < 0)
			return false;
	return true;
}

bool bkr_bk_parent_take(bctx *c, node *n, const bkr_entry *pe, const bkr_tree *leaf, uint32_t li)
{
	if (bkr_tree_chunks(leaf, li, &n->chunks, &n->nchunks) < 0 || !chunks_indexed(c, n) ||
	    bkr_tree_holes(leaf, li, &n->holes, &n->nholes) < 0) {
		free(n->chunks);
		n->chunks = NULL;
		n->nchunks = 0;
		free(n->holes);
		n->holes = NULL;
		n->nholes = 0;
		bkr_error_clear();
		return false;
	}
	n->content = pe->content;
	n->sparse_digest = pe->sparse_digest;
	pthread_mutex_lock(&c->mu);
	c->st.reused_blobs += n->nchunks;
	for (size_t i = 0; i < n->nchunks; i++)
		c->st.reused_bytes += n->chunks[i].length;
	pthread_mutex_unlock(&c->mu);
	return true;
}

const bkr_id *bkr_bk_parent_tree(const bctx *c, const bkr_source_spec *s)
{
	const bkr_manifest *p = c->parent;
	const bkr_id *tree = NULL;

	for (size_t j = 0; p && j < p->nsources; j++)
		if (p->sources[j].source && strcmp(p->sources[j].source, s->name) == 0 &&
		    p->sources[j].path && strcmp(p->sources[j].path, s->path) == 0)
			tree = &p->sources[j].tree;
	return tree;
}
