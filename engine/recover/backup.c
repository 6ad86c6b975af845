/** @file
 * The backup strategy and the backup-side helpers of scan: mapping
 * workspace-relative paths to paths inside a backup's tree (through the
 * manifest's sources), an index of the newest backup's files, and reading a
 * file's verified content out of a backup.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/walk.h"
#include "recover_i.h"

static const char *under(const char *path, const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return path + 1;
	if (strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return path[n] ? path + n + 1 : path + n;
	return NULL;
}

/* Path of workspace file @p rel inside backup @p m ("source/sub/file"). */
static bool backup_path(const bkr_recover *rc, const bkr_manifest *m, const char *rel, char *out, size_t cap)
{
	char abs[PATH_MAX];

	snprintf(abs, sizeof(abs), "%s/%s", rc->workspace, rel);
	for (size_t pass = 0; pass < 2; pass++) {
		/* pass 1: the backup was taken of the same workspace somewhere else */
		if (pass == 1) {
			if (!m->workspace_root || strcmp(m->workspace_root, rc->workspace) == 0)
				break;
			snprintf(abs, sizeof(abs), "%s/%s", m->workspace_root, rel);
		}
		for (size_t i = 0; i < m->nsources; i++) {
			const char *rest;
			if (!m->sources[i].path || !(rest = under(abs, m->sources[i].path)) || !*rest)
				continue;
			if ((size_t)snprintf(out, cap, "%s/%s", m->sources[i].source, rest) < cap)
				return true;
		}
	}
	return false;
}

/* Workspace-relative prefix of a source, or NULL when it lies outside. */
static const char *source_prefix(const bkr_recover *rc, const bkr_manifest *m, const bkr_manifest_source *s)
{
	const char *p;

	if (!s->path)
		return NULL;
	if ((p = under(s->path, rc->workspace)))
		return p;
	if (m->workspace_root && (p = under(s->path, m->workspace_root)))
		return p;
	return NULL;
}

static int bfile_cmp(const void *a, const void *b)
{
	return strcmp(((const bkr_rec_bfile *)a)->rel, ((const bkr_rec_bfile *)b)->rel);
}

void bkr_rec_bindex_free(bkr_rec_bindex *bi)
{
	if (!bi)
		return;
	for (size_t i = 0; i < bi->n; i++)
		free(bi->items[i].rel);
	free(bi->items);
	free(bi->backup_id);
	memset(bi, 0, sizeof(*bi));
}

bkr_rec_bfile *bkr_rec_bindex_find(const bkr_rec_bindex *bi, const char *rel)
{
	bkr_rec_bfile key = { .rel = (char *)rel };

	if (!bi || !bi->n)
		return NULL;
	return bsearch(&key, bi->items, bi->n, sizeof(key), bfile_cmp);
}

int bkr_rec_bindex_load(bkr_recover *rc, bkr_rec_bindex *out)
{
	bkr_manifest_list l = { 0 };
	bkr_walk *w = NULL;
	size_t cap = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!rc->repo)
		return 0;
	if ((err = bkr_repo_list(rc->repo, false, &l, NULL)) < 0)
		goto done;
	if (!l.n)
		goto done;
	{
		const bkr_manifest *m = l.items[l.n - 1];
		if (!(out->backup_id = strdup(m->backup_id))) {
			err = bkr_error_oom();
			goto done;
		}
		for (size_t s = 0; s < m->nsources; s++) {
			const char *prefix = source_prefix(rc, m, &m->sources[s]);
			const bkr_walk_item *it;
			size_t sl = strlen(m->sources[s].source);
			int r;

			if (!prefix)
				continue;
			if ((err = bkr_walk_new(&w, rc->repo, &m->tree, m->sources[s].source, 0)) < 0) {
				bkr_error_prefix("backup %s", m->backup_id);
				goto done;
			}
			while ((r = bkr_walk_next(w, &it)) > 0) {
				bkr_rec_bfile *f;
				const char *inner;
				if (it->entry.type != BKR_FT_FILE)
					continue;
				if (it->path_len <= sl + 1)
					continue;
				inner = it->path + sl + 1;
				if (out->n == cap) {
					size_t nc = cap ? cap * 2 : 256;
					bkr_rec_bfile *ni = realloc(out->items, nc * sizeof(*ni));
					if (!ni) {
						err = bkr_error_oom();
						goto done;
					}
					out->items = ni;
					cap = nc;
				}
				f = &out->items[out->n];
				memset(f, 0, sizeof(*f));
				if (*prefix) {
					if (asprintf(&f->rel, "%s/%s", prefix, inner) < 0)
						f->rel = NULL;
				} else {
					f->rel = strdup(inner);
				}
				if (!f->rel) {
					err = bkr_error_oom();
					goto done;
				}
				f->size = it->entry.size;
				f->mtime_ns = it->entry.mtime_ns;
				f->mode = it->entry.mode;
				f->content = it->entry.content;
				out->n++;
			}
			if (r < 0) {
				err = r;
				goto done;
			}
			bkr_walk_free(w);
			w = NULL;
		}
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), bfile_cmp);
	/* two sources may overlap: keep the first of equal paths */
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
	bkr_walk_free(w);
	bkr_manifest_list_free(&l);
	if (err < 0)
		bkr_rec_bindex_free(out);
	return err;
}

typedef struct {
	uint8_t *buf;
	size_t len, cap;
} membuf;

static int collect(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	membuf *m = ctx;

	if (offset != m->len || m->len + len > m->cap)
		return bkr_error_set(BKR_ECORRUPT, "unexpected data layout while reading a backup copy");
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return 0;
}

int bkr_rec_try_backup(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	bkr_recover *rc = j->rc;
	bkr_manifest_list l = { 0 };
	cJSON *rejected = NULL;
	int64_t now = bkr_time_now_ns();
	int err = 0;
	size_t considered = 0;

	if (!rc->repo)
		return bkr_rec_fail(o, BKR_EUNAVAILABLE, "no repository is open");
	if ((err = bkr_repo_list(rc->repo, false, &l, NULL)) < 0)
		return bkr_rec_fail(o, err, "listing backups: %s", bkr_error_message());
	if (!(rejected = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t k = l.n; k-- > 0;) {
		const bkr_manifest *m = l.items[k];
		char bpath[PATH_MAX], *why = NULL, what[PATH_MAX + 128];
		bkr_entry e;
		bkr_dir *holder = NULL;
		const bkr_tree *leaf = NULL;
		uint32_t li = 0;
		membuf mb = { 0 };
		int r;

		if (j->s->max_age_s && m->time_ns < now - j->s->max_age_s * 1000000000LL)
			break;
		if (!backup_path(rc, m, j->rel, bpath, sizeof(bpath)))
			continue;
		r = bkr_walk_resolve(rc->repo, &m->tree, bpath, &e, &holder, &leaf, &li);
		if (r == BKR_ENOTFOUND) {
			bkr_dir_free(holder);
			continue;
		}
		considered++;
		if (r < 0) {
			why = strdup(bkr_error_message());
		} else if (e.type != BKR_FT_FILE || !leaf) {
			why = strdup("not a regular file in this backup");
		} else if (e.size > BKR_REC_MAX_FILE) {
			why = strdup("too large to recover in memory");
		} else if (!(mb.buf = malloc(e.size ? (size_t)e.size : 1))) {
			bkr_dir_free(holder);
			err = bkr_error_oom();
			goto done;
		} else {
			mb.cap = (size_t)e.size;
			snprintf(what, sizeof(what), "%s:%s", m->backup_id, bpath);
			r = bkr_walk_read_file(rc->repo, leaf, li, what, collect, &mb);
			if (r < 0) {
				why = strdup(bkr_error_message());
			} else if (mb.len != e.size) {
				why = strdup("short read from backup");
			} else {
				r = bkr_rec_validate(rc, j->rel, mb.buf, mb.len, j->nonempty, &why);
				if (r < 0) {
					why = strdup(bkr_error_message());
				} else if (r == 1) {
					o->data = mb.buf;
					o->len = mb.len;
					mb.buf = NULL;
					o->mode = e.mode & 07777;
					o->mtime_ns = e.mtime_ns;
					o->source = cJSON_CreateObject();
					if (o->source) {
						cJSON_AddStringToObject(o->source, "backup_id", m->backup_id);
						cJSON_AddStringToObject(o->source, "timestamp", m->timestamp ? m->timestamp : "");
						cJSON_AddStringToObject(o->source, "path", bpath);
						cJSON_AddItemToObject(o->source, "rejected", rejected);
						rejected = NULL;
					}
					bkr_dir_free(holder);
					goto done;
				}
			}
		}
		free(mb.buf);
		bkr_dir_free(holder);
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
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "the repository has no backups");
	else if (!considered)
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "no backup%s has a copy of %s",
				   j->s->max_age_s ? " within max_age" : "", j->rel);
	else
		err = bkr_rec_fail(o, BKR_ECORRUPT, "no valid copy in %zu backup%s that have %s", considered,
				   considered == 1 ? "" : "s", j->rel);
done:
	cJSON_Delete(rejected);
	bkr_manifest_list_free(&l);
	return err;
}
