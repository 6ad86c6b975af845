/** @file
 * The parent of an incremental, differential or snapshot backup: the newest
 * backup of the same host with the same sources (differential: the newest
 * full), or the one the options name; and each source's tree in it.
 */
#include "backup_i.h"

#include <stdlib.h>
#include <string.h>

#include "bkr/clock.h"
#include "bkr/error.h"

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
	err = BKR_ENOTFOUND;
	for (size_t i = l.n; i-- > 0;) {
		bkr_manifest *m = l.items[i];
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

int bkr_bk_parent_select(bctx *c, int64_t now_ns)
{
	const bkr_backup_options *o = c->o;
	int err = 0;

	if (o->type == BKR_BACKUP_FULL)
		return 0;
	if (o->parent) {
		if ((err = bkr_repo_find_backup(c->repo, o->parent, &c->parent)) < 0)
			return err;
	} else {
		err = bkr_backup_find_parent(c->repo, o->type, c->hostname, o->sources, o->nsources, now_ns,
					     o->future, o->future_ctx, &c->parent);
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
