/** @file
 * Holds (hold.h): "hold" and "release" records, and the holds they leave in force.
 */
#include "bkr/hold.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/manifest.h"
#include "array.h"

static void hold_free(bkr_hold *h);

void bkr_holds_free(bkr_holds *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		hold_free(&h->v[i]);
	free(h->v);
	memset(h, 0, sizeof(*h));
}

/* A release: the hold of @p path found at @p since (NULL: every hold of @p path). */
struct rel {
	char *path, *since;
};

struct acc {
	bkr_holds *h;
	size_t cap;
	struct rel *rel;
	size_t nrel, caprel;
};

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * One record.  Holds and releases are matched by the hold's path and time
 * (a release names both), not by the order of the records: a release written
 * on a host whose clock is behind still ends the hold it names.
 */
static int each(void *ctx, const char *path, const char *text, size_t len)
{
	struct acc *a = ctx;
	cJSON *o;
	const char *kind, *p, *id, *t;
	int err = 0;

	if (bkr_json_verify(text, len, path) < 0) {
		bkr_error_clear(); /* damaged: as every reader of records, skipped */
		return 0;
	}
	if (!(o = cJSON_ParseWithLength(text, len)))
		return 0;
	kind = str(o, "kind");
	p = str(o, "path");
	if (!kind || !p || (strcmp(kind, "hold") && strcmp(kind, "release")))
		goto done;
	if (!strcmp(kind, "release")) {
		const char *since = str(o, "since");
		if ((err = bkr_array_grow((void **)&a->rel, &a->caprel, a->nrel, sizeof(*a->rel))) < 0)
			goto done;
		a->rel[a->nrel] = (struct rel){ strdup(p), since ? strdup(since) : NULL };
		if (!a->rel[a->nrel].path || (since && !a->rel[a->nrel].since)) {
			free(a->rel[a->nrel].path);
			free(a->rel[a->nrel].since);
			err = bkr_error_oom();
			goto done;
		}
		a->nrel++;
		goto done;
	}
	if (!(id = str(o, "backup_id")) || !(t = str(o, "time")))
		goto done; /* a hold keeps a backup and is named by its time: without them it is no hold */
	if ((err = bkr_array_grow((void **)&a->h->v, &a->cap, a->h->n, sizeof(*a->h->v))) < 0)
		goto done;
	bkr_hold *h = &a->h->v[a->h->n];
	const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size");
	memset(h, 0, sizeof(*h));
	if (bkr_time_parse(t, &h->since_ns) < 0) {
		bkr_error_clear();
		h->since_ns = 0;
	} else {
		h->since_known = true;
	}
	h->size = cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble < 9007199254740992.0 ?
			  (uint64_t)sz->valuedouble : 0;
	if (!(h->path = strdup(p)) || !(h->backup_id = strdup(id)) || !(h->since = strdup(t)) ||
	    !(h->damage = strdup(str(o, "damage") ? str(o, "damage") : "damaged")) ||
	    (str(o, "host") && !(h->host = strdup(str(o, "host"))))) {
		free(h->path);
		free(h->backup_id);
		free(h->since);
		free(h->damage);
		err = bkr_error_oom();
		goto done;
	}
	a->h->n++;
done:
	cJSON_Delete(o);
	return err;
}

static int by_path(const void *x, const void *y)
{
	const bkr_hold *a = x, *b = y;
	int c = strcmp(a->path, b->path);
	return c ? c : a->since_ns < b->since_ns ? -1 : a->since_ns > b->since_ns;
}

static void hold_free(bkr_hold *h)
{
	free(h->path);
	free(h->backup_id);
	free(h->since);
	free(h->damage);
	free(h->host);
}

/* The holds no release names stay. */
static int finish(struct acc *a, int err)
{
	bkr_holds *out = a->h;
	size_t n = 0;

	for (size_t i = 0; i < out->n; i++) {
		bool gone = false;
		for (size_t k = 0; k < a->nrel && !gone; k++)
			gone = !strcmp(a->rel[k].path, out->v[i].path) &&
			       (!a->rel[k].since || !strcmp(a->rel[k].since, out->v[i].since));
		if (gone)
			hold_free(&out->v[i]);
		else
			out->v[n++] = out->v[i];
	}
	out->n = n;
	for (size_t k = 0; k < a->nrel; k++) {
		free(a->rel[k].path);
		free(a->rel[k].since);
	}
	free(a->rel);
	if (err < 0) {
		bkr_holds_free(out);
		return err;
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), by_path);
	return 0;
}

int bkr_holds_read(bkr_repo *r, bkr_holds *out)
{
	struct acc a = { .h = out };
	memset(out, 0, sizeof(*out));
	return finish(&a, bkr_repo_foreach_record(r, false, each, &a));
}

int bkr_holds_from_records(const bkr_records *rs, bkr_holds *out)
{
	struct acc a = { .h = out };
	memset(out, 0, sizeof(*out));
	return finish(&a, bkr_records_foreach(rs, false, each, &a));
}

void bkr_holds_drop_after(bkr_holds *h, int64_t t)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].since_ns > t)
			hold_free(&h->v[i]);
		else
			h->v[n++] = h->v[i];
	h->n = n;
}

const char *bkr_hold_since(const bkr_hold *h, char out[32])
{
	if (!h->since_known)
		return NULL;
	bkr_time_format(out, h->since_ns);
	return out;
}

const bkr_hold *bkr_holds_find(const bkr_holds *h, const char *path)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->v[i].path, path))
			return &h->v[i];
	return NULL;
}

static cJSON *start(const char *kind, const char *path)
{
	char now[32];
	cJSON *o = cJSON_CreateObject();
	bkr_time_format(now, bkr_time_now_ns());
	if (!o || !cJSON_AddStringToObject(o, "kind", kind) || !cJSON_AddStringToObject(o, "time", now) ||
	    !cJSON_AddStringToObject(o, "path", path)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int bkr_hold_add(bkr_repo *r, const char *path, const char *backup_id, const char *damage, uint64_t size,
		 const char *host)
{
	cJSON *o = start("hold", path);
	if (o && (!cJSON_AddStringToObject(o, "backup_id", backup_id) || !cJSON_AddStringToObject(o, "damage", damage) ||
		  !cJSON_AddNumberToObject(o, "size", (double)size) || (host && !cJSON_AddStringToObject(o, "host", host)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return bkr_repo_add_record_obj(r, o);
}

int bkr_hold_release(bkr_repo *r, const bkr_hold *h, const char *by)
{
	cJSON *o = start("release", h->path);
	if (o && (!cJSON_AddStringToObject(o, "since", h->since) || !cJSON_AddStringToObject(o, "backup_id", h->backup_id) ||
		  !cJSON_AddStringToObject(o, "by", by))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return bkr_repo_add_record_obj(r, o);
}
