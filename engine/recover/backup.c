/** @file
 * The backup strategy and the backup-side helpers of scan: mapping
 * workspace-relative paths to paths inside a backup's tree (through the
 * manifest's sources), an index of the newest backup's files, and reading a
 * file's verified content out of a backup.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/backup.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/walk.h"
#include "bkr/io.h"
#include "recover_i.h"


/*
 * Path of workspace file @p rel inside backup @p m ("source/sub/file"): a
 * source of @p m whose path holds it.  Only a source of this workspace
 * counts: a backup of another workspace (another path, another host sharing
 * the repository) never stands for this one.
 */
static bool backup_path(const bkr_recover *rc, const bkr_manifest *m, const char *rel, char *out, size_t cap)
{
	char abs[PATH_MAX];

	if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", rc->workspace, rel) >= sizeof(abs))
		return false;
	for (size_t i = 0; i < m->nsources; i++) {
		const char *rest;
		if (!m->sources[i].path || !(rest = bkr_path_under(abs, m->sources[i].path)))
			continue;
		/* "" is the source's own directory */
		if ((size_t)snprintf(out, cap, "%s%s%s", m->sources[i].source, *rest ? "/" : "", rest) < cap)
			return true;
	}
	return false;
}

/* Workspace-relative prefix of a source, or NULL when it lies outside this workspace. */
static const char *source_prefix(const bkr_recover *rc, const bkr_manifest_source *s)
{
	return s->path ? bkr_path_under(s->path, rc->workspace) : NULL;
}

/* ---- the backups of this workspace ------------------------------------------ */

/* The view of bkr_rec_backups: its items are the listing's. */
void bkr_rec_backups_refilter(bkr_recover *rc)
{
	if (rc->backups) {
		free(rc->backups->items);
		free(rc->backups);
		rc->backups = NULL;
	}
}

static void backups_drop(bkr_recover *rc)
{
	bkr_rec_backups_refilter(rc);
	bkr_walk_dirs_free(rc->dirs);
	rc->dirs = NULL;
	if (rc->listing) {
		bkr_manifest_list_free(rc->listing);
		free(rc->listing);
		rc->listing = NULL;
	}
}

void bkr_rec_backups_hold(bkr_recover *rc)
{
	if (!rc->backups_held++)
		backups_drop(rc); /* left by a call outside a run: list again */
}

void bkr_rec_backups_release(bkr_recover *rc)
{
	if (rc->backups_held && --rc->backups_held)
		return;
	backups_drop(rc);
}

void bkr_recover_hold_backups(bkr_recover *rc)
{
	bkr_rec_backups_hold(rc);
}

void bkr_recover_release_backups(bkr_recover *rc)
{
	bkr_rec_backups_release(rc);
}

int bkr_recover_backups(bkr_recover *rc, const bkr_manifest_list **out)
{
	bkr_manifest_list *l;
	int err;

	*out = NULL;
	if (rc->listing) {
		*out = rc->listing;
		return 0;
	}
	if (!(l = calloc(1, sizeof(*l))))
		return bkr_error_oom();
	if (rc->repo && (err = bkr_repo_list(rc->repo, false, l, NULL)) < 0) {
		free(l);
		return err;
	}
	rc->listing = l;
	*out = l;
	return 0;
}

int bkr_rec_backups(bkr_recover *rc, const bkr_manifest_list **out)
{
	const bkr_manifest_list *all;
	bkr_manifest_list *l;
	int64_t now = bkr_time_now_ns();
	int err;

	*out = NULL;
	if (rc->backups) {
		*out = rc->backups;
		return 0;
	}
	if ((err = bkr_recover_backups(rc, &all)) < 0)
		return err;
	if (!(l = calloc(1, sizeof(*l))) || (all->n && !(l->items = malloc(all->n * sizeof(*l->items))))) {
		free(l);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < all->n; i++) {
		bkr_manifest *m = all->items[i];
		/* another host's backup is not this workspace's; one dated in the
		 * future (the clock was ahead) is not the newest, as for create */
		if (m->type == BKR_BACKUP_RECOVERY || !bkr_backup_of_host(m, rc->hostname) ||
		    bkr_time_in_future(m->time_ns, now))
			continue;
		l->items[l->n++] = m;
	}
	rc->backups = l;
	*out = l;
	return 0;
}

int bkr_rec_lookup(bkr_recover *rc, const bkr_manifest *m, const char *bpath, bkr_entry *e,
		   const bkr_tree **leaf, uint32_t *li)
{
	int err;

	if (!rc->dirs && (err = bkr_walk_dirs_new(&rc->dirs, rc->repo, BKR_REC_DIRS_MAX)) < 0)
		return err;
	return bkr_walk_dirs_resolve(rc->dirs, &m->tree, bpath, e, leaf, li);
}

static int bfile_cmp(const void *a, const void *b)
{
	return strcmp(((const bkr_rec_bfile *)a)->rel, ((const bkr_rec_bfile *)b)->rel);
}

/* By path, then newest backup first (sorting only). */
static int bfile_seq_cmp(const void *a, const void *b)
{
	const bkr_rec_bfile *x = a, *y = b;
	int c = strcmp(x->rel, y->rel);

	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Is @p rel at or under one of @p prefixes[0..n) ("" covers everything)? */
static bool covered(char *const *prefixes, size_t n, const char *rel)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(prefixes[i]);
		if (!l || (strncmp(rel, prefixes[i], l) == 0 && (rel[l] == '/' || rel[l] == '\0')))
			return true;
	}
	return false;
}

void bkr_rec_bindex_free(bkr_rec_bindex *bi)
{
	if (!bi)
		return;
	for (size_t i = 0; i < bi->n; i++)
		free(bi->items[i].rel);
	free(bi->items);
	free(bi->backup_id);
	for (size_t i = 0; i < bi->nids; i++)
		free(bi->ids[i]);
	free(bi->ids);
	memset(bi, 0, sizeof(*bi));
}

bkr_rec_bfile *bkr_rec_bindex_find(const bkr_rec_bindex *bi, const char *rel)
{
	bkr_rec_bfile key = { .rel = (char *)rel };

	if (!bi || !bi->n)
		return NULL;
	return bsearch(&key, bi->items, bi->n, sizeof(key), bfile_cmp);
}

/* Index the regular files of source @p s of backup @p m found under @p prefix. */
static int index_source(bkr_recover *rc, const bkr_manifest *m, const bkr_manifest_source *s, const char *prefix,
			const char *id, char *const *newer, size_t nnewer, bkr_rec_bindex *out, size_t *cap)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	size_t sl = strlen(s->source);
	int r, err = 0;

	if ((err = bkr_walk_new(&w, rc->repo, &m->tree, s->source, 0)) < 0) {
		bkr_error_prefix("backup %s", m->backup_id);
		return err;
	}
	while ((r = bkr_walk_next(w, &it)) > 0) {
		bkr_rec_bfile *f;
		char *rel;
		if ((it->entry.type != BKR_FT_FILE && it->entry.type != BKR_FT_SYMLINK) || it->path_len <= sl + 1)
			continue;
		if (*prefix) {
			if (asprintf(&rel, "%s/%s", prefix, it->path + sl + 1) < 0)
				rel = NULL;
		} else {
			rel = strdup(it->path + sl + 1);
		}
		if (!rel) {
			err = bkr_error_oom();
			goto done;
		}
		if (covered(newer, nnewer, rel)) {
			free(rel); /* a newer backup of that source decides */
			continue;
		}
		if (out->n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			bkr_rec_bfile *ni = realloc(out->items, nc * sizeof(*ni));
			if (!ni) {
				free(rel);
				err = bkr_error_oom();
				goto done;
			}
			out->items = ni;
			*cap = nc;
		}
		f = &out->items[out->n];
		memset(f, 0, sizeof(*f));
		f->rel = rel;
		f->link = it->entry.type == BKR_FT_SYMLINK;
		f->backup_id = id;
		f->seq = out->n;
		f->size = it->entry.size;
		f->mtime_ns = it->entry.mtime_ns;
		f->mode = it->entry.mode;
		f->content = it->entry.content;
		f->sparse_digest = it->entry.sparse_digest;
		out->n++;
	}
	if (r < 0)
		err = r;
done:
	bkr_walk_free(w);
	return err;
}

int bkr_rec_bindex_load(bkr_recover *rc, bkr_rec_bindex *out)
{
	const bkr_manifest_list *lp;
	bkr_manifest_list l = { 0 };
	char **prefixes = NULL;
	size_t cap = 0, np = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!rc->repo)
		return 0;
	if ((err = bkr_rec_backups(rc, &lp)) < 0)
		goto done;
	l = *lp;
	if (!l.n)
		goto done;
	if (!(out->backup_id = strdup(l.items[l.n - 1]->backup_id)) ||
	    !(out->ids = calloc(l.n, sizeof(*out->ids)))) {
		err = bkr_error_oom();
		goto done;
	}
	/* newest first; a source's prefix, once indexed, is not taken from older backups */
	for (size_t k = l.n; k-- > 0;) {
		const bkr_manifest *m = l.items[k];
		size_t nnewer = np;
		char **np2;
		const char *id = NULL;

		for (size_t s = 0; s < m->nsources; s++) {
			const char *prefix = source_prefix(rc, &m->sources[s]);
			if (!prefix || covered(prefixes, nnewer, prefix))
				continue;
			if (!id) {
				if (!(out->ids[out->nids] = strdup(m->backup_id))) {
					err = bkr_error_oom();
					goto done;
				}
				id = out->ids[out->nids++];
			}
			if ((err = index_source(rc, m, &m->sources[s], prefix, id, prefixes, nnewer, out, &cap)) < 0)
				goto done;
			if (!(np2 = realloc(prefixes, (np + 1) * sizeof(*prefixes))) || !(np2[np] = strdup(prefix))) {
				if (np2)
					prefixes = np2;
				err = bkr_error_oom();
				goto done;
			}
			prefixes = np2;
			np++;
		}
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), bfile_seq_cmp);
	/* two sources may overlap: keep the newest of equal paths */
	{
		size_t o = 0;
		for (size_t i = 0; i < out->n; i++) {
			if (o && strcmp(out->items[o - 1].rel, out->items[i].rel) == 0) {
				free(out->items[i].rel);
				continue;
			}
			out->items[o++] = out->items[i];
		}
		out->n = o;
	}
done:
	for (size_t i = 0; i < np; i++)
		free(prefixes[i]);
	free(prefixes);
	if (err < 0)
		bkr_rec_bindex_free(out);
	return err;
}

/* Where a backup copy is read to: memory, or a scratch file when it is large. */
typedef struct {
	uint8_t *buf;
	size_t cap;
	int fd;
	bool mapped;
} membuf;

static int collect(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	membuf *m = ctx;

	if (offset > m->cap || len > m->cap - offset)
		return bkr_error_set(BKR_ECORRUPT, "unexpected data layout while reading a backup copy");
	if (m->fd < 0) {
		memcpy(m->buf + offset, data, len); /* holes stay zero */
		return 0;
	}
	return bkr_io_pwrite_full(m->fd, data, len, offset, "a scratch copy");
}

/* Read the file entry (@p leaf, @p li) of size @p size into @p mb; the content hash is checked. */
static int read_copy(bkr_recover *rc, const bkr_tree *leaf, uint32_t li, uint64_t size, const char *what,
		     membuf *mb)
{
	int err;

	mb->fd = -1;
	if (size > SIZE_MAX - 1)
		return bkr_error_set(BKR_EINVAL, "%s: too large for this machine", what);
	mb->cap = (size_t)size;
	if (size > BKR_REC_MAP_MIN) {
		if ((err = bkr_rec_scratch_file(rc, size, &mb->fd)) < 0)
			return err;
	} else if (!(mb->buf = calloc(1, size ? (size_t)size : 1))) {
		return bkr_error_oom();
	}
	err = bkr_walk_read_file(rc->repo, leaf, li, what, collect, mb);
	if (err == 0 && mb->fd >= 0 && (err = bkr_rec_map(mb->fd, mb->cap, what, &mb->buf)) == 0)
		mb->mapped = true;
	if (mb->fd >= 0)
		close(mb->fd);
	mb->fd = -1;
	return err;
}

/* The copy of @p e in backup @p m at @p bpath is the one: its recorded attributes and source. */
static void found(bkr_rec_outcome *o, const bkr_entry *e, uint32_t mode, const bkr_manifest *m, const char *bpath,
		  cJSON **rejected)
{
	o->mode = mode;
	o->recorded = true;
	o->uid = e->uid;
	o->gid = e->gid;
	o->mtime_ns = e->mtime_ns;
	if ((o->source = cJSON_CreateObject())) {
		cJSON_AddStringToObject(o->source, "backup_id", m->backup_id);
		cJSON_AddStringToObject(o->source, "timestamp", m->timestamp ? m->timestamp : "");
		cJSON_AddStringToObject(o->source, "path", bpath);
		cJSON_AddItemToObject(o->source, "rejected", *rejected);
		*rejected = NULL;
	}
}

/*
 * The copy of @p rel in backup @p m could not be read for want of its source
 * (@p code: an I/O error, a tier that cannot be reached or timed out:
 * bkr_error_not_damage), which proves nothing about it: the attempt fails
 * with @p code, naming the backup, and no older backup's copy is taken in
 * its place (that would silently put an older version over the newer one
 * the repository still holds), as the git strategy does with an object it
 * cannot read; the next strategy runs.  A copy proven damaged (its blob
 * fails its hash, its pack is gone) is rejected and an older one taken.
 */
static int unreadable(bkr_rec_outcome *o, int code, const bkr_manifest *m, const char *rel, cJSON **rejected)
{
	char *msg = strdup(bkr_error_message());
	cJSON *rj = cJSON_CreateObject();
	int err;

	if (rj) {
		cJSON_AddStringToObject(rj, "backup_id", m->backup_id);
		cJSON_AddStringToObject(rj, "reason", "cannot be read, which proves no damage: older copies are not used");
		cJSON_AddItemToArray(*rejected, rj);
	}
	if ((o->source = cJSON_CreateObject())) {
		cJSON_AddItemToObject(o->source, "rejected", *rejected);
		*rejected = NULL;
	}
	err = bkr_rec_fail(o, code, "the copy of %s in backup %s cannot be read: %s; older backups are not used in "
			   "its place (run again once it can be read, or restore an older copy with bkr restore)",
			   rel, m->backup_id, msg ? msg : "?");
	free(msg);
	return err;
}

int bkr_rec_try_backup(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	bkr_recover *rc = j->rc;
	const bkr_manifest_list *lp;
	bkr_manifest_list l;
	cJSON *rejected = NULL;
	int64_t now = bkr_time_now_ns();
	int err = 0;
	size_t considered = 0;

	if (!rc->repo)
		return bkr_rec_fail(o, BKR_EUNAVAILABLE, "no repository is open");
	if ((err = bkr_rec_backups(rc, &lp)) < 0)
		return bkr_rec_fail(o, err, "listing backups: %s", bkr_error_message());
	l = *lp;
	if (!(rejected = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t k = l.n; k-- > 0;) {
		const bkr_manifest *m = l.items[k];
		char bpath[PATH_MAX], *why = NULL, what[PATH_MAX + 128];
		bkr_entry e;
		const bkr_tree *leaf = NULL;
		uint32_t li = 0;
		membuf mb = { NULL, 0, -1, false };
		int r;

		if (j->s->max_age_s && m->time_ns < now - j->s->max_age_s * 1000000000LL)
			break;
		if (!backup_path(rc, m, j->rel, bpath, sizeof(bpath)))
			continue;
		r = bkr_rec_lookup(rc, m, bpath, &e, &leaf, &li);
		if (r == BKR_ENOTFOUND)
			continue;
		considered++;
		if (r < 0 && bkr_error_not_damage(r)) {
			err = unreadable(o, r, m, j->rel, &rejected);
			goto done;
		} else if (r < 0) {
			why = strdup(bkr_error_message());
		} else if (e.type == BKR_FT_SYMLINK) {
			if (!(o->link = strndup((const char *)e.target, e.target_len))) {
				err = bkr_error_oom();
				goto done;
			}
			found(o, &e, 0777, m, bpath, &rejected);
			goto done;
		} else if (e.type != BKR_FT_FILE || !leaf) {
			why = strdup("not a regular file in this backup");
		} else {
			snprintf(what, sizeof(what), "%s:%s", m->backup_id, bpath);
			r = read_copy(rc, leaf, li, e.size, what, &mb);
			if (r < 0 && bkr_error_not_damage(r)) {
				bkr_rec_data_free(mb.buf, mb.cap, mb.mapped);
				err = r == BKR_ENOMEM ? r : unreadable(o, r, m, j->rel, &rejected);
				goto done;
			} else if (r < 0) {
				why = strdup(bkr_error_message());
			} else {
				r = bkr_rec_validate(rc, j->rel, mb.buf, mb.cap, j->nonempty, &why);
				if (r < 0) {
					why = strdup(bkr_error_message());
				} else if (r == 1) {
					o->data = mb.buf;
					o->len = mb.cap;
					o->mapped = mb.mapped;
					mb.buf = NULL;
					found(o, &e, e.mode & 07777, m, bpath, &rejected);
					goto done;
				}
			}
		}
		bkr_rec_data_free(mb.buf, mb.cap, mb.mapped);
		{
			cJSON *rj = cJSON_CreateObject();
			if (rj) {
				cJSON_AddStringToObject(rj, "backup_id", m->backup_id);
				cJSON_AddStringToObject(rj, "reason", why ? why : "unknown");
				cJSON_AddItemToArray(rejected, rj);
			}
		}
		free(why);
	}
	o->source = cJSON_CreateObject();
	if (o->source) {
		cJSON_AddItemToObject(o->source, "rejected", rejected);
		rejected = NULL;
	}
	if (!l.n)
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "the repository has no backups of this host");
	else if (!considered)
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "no backup%s has a copy of %s",
				   j->s->max_age_s ? " within max_age" : "", j->rel);
	else
		err = bkr_rec_fail(o, BKR_ECORRUPT, "no valid copy in %zu backup%s that have %s", considered,
				   considered == 1 ? "" : "s", j->rel);
done:
	cJSON_Delete(rejected);
	return err;
}

int bkr_rec_dir_attrs(bkr_recover *rc, const char *rel, bool backup_only, uint32_t *mode, uint32_t *uid,
		      uint32_t *gid)
{
	const bkr_manifest_list *lp;
	bkr_manifest_list l;
	struct stat st;
	int err = BKR_ENOTFOUND;

	if (!backup_only && bkr_rec_lstat_ws(rc, rel, &st) == 0 && S_ISDIR(st.st_mode)) {
		*mode = st.st_mode & 07777;
		*uid = st.st_uid;
		*gid = st.st_gid;
		return 0;
	}
	if (!rc->repo || bkr_rec_backups(rc, &lp) < 0) {
		bkr_error_clear();
		return BKR_ENOTFOUND;
	}
	l = *lp;
	for (size_t k = l.n; k-- > 0 && err == BKR_ENOTFOUND;) {
		char bpath[PATH_MAX];
		bkr_entry e;

		if (!backup_path(rc, l.items[k], rel, bpath, sizeof(bpath)))
			continue;
		if (bkr_rec_lookup(rc, l.items[k], bpath, &e, NULL, NULL) == 0 && e.type == BKR_FT_DIR) {
			*mode = e.mode & 07777;
			*uid = e.uid;
			*gid = e.gid;
			err = 0;
		}
	}
	return err;
}
