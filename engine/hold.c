/** @file
 * Holds (hold.h): "hold" and "release" records, and the holds they leave in force.
 */
#include "bkr/hold.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/utf8.h"
#include "array.h"

static void hold_free(bkr_hold *h);

void bkr_holds_free(bkr_holds *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		hold_free(&h->v[i]);
	free(h->v);
	for (size_t i = 0; i < h->nwarnings; i++)
		free(h->warnings[i]);
	free(h->warnings);
	memset(h, 0, sizeof(*h));
}

/* A release: the hold of @p path found at @p since (NULL: every hold of @p path). */
struct rel {
	char *path, *since;
};

struct acc {
	bkr_holds *h;
	size_t cap, capwarn;
	struct rel *rel;
	size_t nrel, caprel;
	int err; /* of a callback that returns none */
};

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A string member that is there and not empty, or NULL. */
static const char *nonempty(const cJSON *o, const char *key)
{
	const char *v = str(o, key);
	return v && *v ? v : NULL;
}

/* A member that is absent or a string. */
static bool str_or_absent(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return !v || cJSON_IsString(v);
}

int bkr_hold_record_check(const cJSON *o, const char *path)
{
	const char *k = str(o, "kind"), *t = str(o, "time");
	const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size");
	bool hold = k && !strcmp(k, "hold");
	int64_t ns;

	if (!hold && !(k && !strcmp(k, "release")))
		return 0;
	if (!nonempty(o, "path"))
		return bkr_error_set(BKR_ECORRUPT, "%s: the %s record's \"path\" is not a path", path, k);
	if (!t || bkr_time_parse(t, &ns) < 0)
		return bkr_error_set(BKR_ECORRUPT, "%s: the %s record's \"time\" is not an ISO 8601 time", path, k);
	if (hold ? !nonempty(o, "backup_id") : !str_or_absent(o, "backup_id"))
		return bkr_error_set(BKR_ECORRUPT, "%s: the %s record's \"backup_id\" is not a backup id", path, k);
	if (!hold) {
		/* "since" is the hold's time as its record wrote it: a string, a time or not */
		if (!str_or_absent(o, "since") || !str_or_absent(o, "by"))
			return bkr_error_set(BKR_ECORRUPT, "%s: the release record's \"%s\" is not a string", path,
					     str_or_absent(o, "since") ? "by" : "since");
		return 0;
	}
	if (!str_or_absent(o, "damage") || !str_or_absent(o, "host"))
		return bkr_error_set(BKR_ECORRUPT, "%s: the hold record's \"%s\" is not a string", path,
				     str_or_absent(o, "damage") ? "host" : "damage");
	if (sz &&
	    !(cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble <= 9007199254740992.0 &&
	      sz->valuedouble == floor(sz->valuedouble)))
		return bkr_error_set(BKR_ECORRUPT, "%s: the hold record's \"size\" is not a count", path);
	return 0;
}

/* The message of the last error less its leading "@p path: " (a record's checker names it). */
static const char *why_of(const char *path)
{
	const char *why = bkr_error_message();
	size_t pl = strlen(path);
	if (!strncmp(why, path, pl) && !strncmp(why + pl, ": ", 2))
		why += pl + 2;
	return why;
}

/* One line on what a bad record @p file is and what becomes of it, for the
 * command to show (bkr_holds.warnings); text from the record escaped. */
static int warn(struct acc *a, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int warn(struct acc *a, const char *file, const char *fmt, ...)
{
	char *what = NULL, *f = bkr_text_escape_dup(file, strlen(file)), *line = NULL;
	va_list ap;

	va_start(ap, fmt);
	bkr_text_vsetf(&what, fmt, ap);
	va_end(ap);
	if (f && what)
		bkr_text_setf(&line, "%s: %s", f, what);
	free(f);
	free(what);
	if (!line || bkr_array_grow((void **)&a->h->warnings, &a->capwarn, a->h->nwarnings, sizeof(*a->h->warnings)) < 0) {
		free(line);
		return bkr_error_oom();
	}
	a->h->warnings[a->h->nwarnings++] = line;
	return 0;
}

/* @p s (from a record) escaped for a message, cut to fit @p out. */
static const char *esc(char out[256], const char *s)
{
	return bkr_text_escape(out, 256, s, strlen(s));
}

static int add_release(struct acc *a, const char *p, const char *since)
{
	int err;
	if ((err = bkr_array_grow((void **)&a->rel, &a->caprel, a->nrel, sizeof(*a->rel))) < 0)
		return err;
	a->rel[a->nrel] = (struct rel){ strdup(p), since ? strdup(since) : NULL };
	if (!a->rel[a->nrel].path || (since && !a->rel[a->nrel].since)) {
		free(a->rel[a->nrel].path);
		free(a->rel[a->nrel].since);
		return bkr_error_oom();
	}
	a->nrel++;
	return 0;
}

/*
 * A release record: its path, and the hold's time it ends ("since"; absent:
 * every hold of the path).  One that cannot say which holds it ends ends
 * none: they stay in force; so does one that does not decode
 * (bkr_hold_record_check: verify calls it damaged).
 */
static int take_release(struct acc *a, const char *file, const cJSON *o, bool damaged)
{
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(o, "since");
	const char *p = nonempty(o, "path");
	char e[256];

	if (damaged)
		return warn(a, file, "a damaged release record (its checksum does not match): ignored, the holds of "
			    "%s stay in force", p ? esc(e, p) : "its path");
	if (!p)
		return warn(a, file, "a release record without a path: ignored");
	if (since && !cJSON_IsString(since))
		return warn(a, file, "the release of %s has a \"since\" that is not a string: ignored, the holds of "
			    "that path stay in force", esc(e, p));
	if (bkr_hold_record_check(o, file) < 0) {
		int err = warn(a, file,
			       "a release record that does not decode (%s): ignored, the holds of %s stay in force",
			       why_of(file), esc(e, p));
		if (err == 0)
			bkr_error_clear();
		return err;
	}
	return add_release(a, p, since ? since->valuestring : NULL);
}

/*
 * A hold record.  One that names a path and a backup is a hold, whatever else
 * is wrong with it: its backup is kept (rule "held") until a release ends it,
 * so a bad field never lets retention remove a backup a hold names - a hold
 * whose time is missing or no time is in force "since an unknown time" (a
 * release without "since" ends it), and a damaged one (checksum) or one that
 * does not decode (bkr_hold_record_check: a member of the wrong type, which
 * verify calls damaged) is taken as it reads.  Without a path or a backup it
 * holds nothing.  Each is one warning.
 */
static int take_hold(struct acc *a, const char *file, const cJSON *o, bool damaged)
{
	const char *p = nonempty(o, "path"), *id = nonempty(o, "backup_id"), *t = nonempty(o, "time");
	const char *damage = nonempty(o, "damage"), *host = nonempty(o, "host");
	const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size");
	char e[256], e2[256];
	bkr_hold *h;
	int err;

	if (!p || !id)
		return warn(a, file, "a %shold record without a %s: ignored (it holds no backup)",
			    damaged ? "damaged " : "", !p ? "path" : "backup_id");
	if ((err = bkr_array_grow((void **)&a->h->v, &a->cap, a->h->n, sizeof(*a->h->v))) < 0)
		return err;
	h = &a->h->v[a->h->n];
	memset(h, 0, sizeof(*h));
	if (t && bkr_time_parse(t, &h->since_ns) == 0)
		h->since_known = true;
	bkr_error_clear();
	if (!h->since_known)
		h->since_ns = 0;
	h->size = cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble < 9007199254740992.0 ?
			  (uint64_t)sz->valuedouble : 0;
	if (!(h->path = strdup(p)) || !(h->backup_id = strdup(id)) || (t && !(h->since = strdup(t))) ||
	    !(h->damage = strdup(damage ? damage : "damaged")) || (host && !(h->host = strdup(host)))) {
		hold_free(h);
		return bkr_error_oom();
	}
	a->h->n++;
	if (damaged)
		return warn(a, file, "a damaged hold record (its checksum does not match) of %s: taken as it reads, "
			    "backup %s is kept until 'bkr hold release' ends it", esc(e, p), esc(e2, id));
	if (!t)
		return warn(a, file, "the hold of %s has no time: in force since an unknown time (backup %s is kept)",
			    esc(e, p), esc(e2, id));
	if (!h->since_known)
		return warn(a, file, "the hold of %s has a time that is no time (%s): in force since an unknown time",
			    esc(e, p), esc(e2, t));
	if (bkr_hold_record_check(o, file) < 0) {
		err = warn(a, file,
			   "a hold record that does not decode (%s): taken as it reads, backup %s is kept until "
			   "'bkr hold release' ends it",
			   why_of(file), esc(e, id));
		if (err == 0)
			bkr_error_clear();
		return err;
	}
	return 0;
}

/*
 * One record.  Holds and releases are matched by the hold's path and time
 * (a release names both), not by the order of the records: a release written
 * on a host whose clock is behind still ends the hold it names.  A record
 * that is not JSON (damaged beyond reading) is no one's to judge here: every
 * reader of records skips it.
 */
static int each(void *ctx, const char *path, const char *text, size_t len)
{
	struct acc *a = ctx;
	bool damaged = bkr_json_verify(text, len, path) < 0;
	cJSON *o = cJSON_ParseWithLength(text, len);
	const char *kind;
	int err = 0;

	bkr_error_clear();
	kind = o ? str(o, "kind") : NULL;
	if (kind && !strcmp(kind, "release"))
		err = take_release(a, path, o, damaged);
	else if (kind && !strcmp(kind, "hold"))
		err = take_hold(a, path, o, damaged);
	else if (damaged) /* a pin or a tag, or a record whose kind cannot be read */
		err = warn(a, path, "a damaged record (%s): every command skips it, so a pin, tag or hold in it is not "
			   "applied (retention may remove the backup it kept)", o ? "its checksum does not match" : "not JSON");
	else if (o && (err = bkr_record_check(text, len, path)) < 0 && err != BKR_ENOMEM) {
		/* sealed, but not what its kind needs (verify calls it damaged) */
		err = warn(a, path,
			   "a record that does not decode (%s): every command skips it, so a pin, tag or hold "
			   "in it is not applied (retention may remove the backup it kept)",
			   why_of(path));
		bkr_error_clear();
	}
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
			       (!a->rel[k].since || (out->v[i].since && !strcmp(a->rel[k].since, out->v[i].since)));
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

/* A record that could not be read or opened (in an encrypted repository: one
 * altered, or another's put in its place): a hold in it, or a pin, is lost
 * to every reader, so the command that plans retention says so. */
static void unread(void *ctx, const char *path, const char *why)
{
	struct acc *a = ctx;
	(void)path;
	if (!a->err)
		a->err = warn(a, why, "every command skips this record, so a pin, tag or hold in it is not applied "
			      "(retention may remove the backup it kept)");
}

int bkr_holds_from_records(const bkr_records *rs, bkr_holds *out)
{
	struct acc a = { .h = out };
	int err;
	memset(out, 0, sizeof(*out));
	if ((err = bkr_records_foreach(rs, false, each, &a)) == 0) {
		bkr_records_foreach_damaged(rs, true, unread, &a);
		err = a.err;
	}
	return finish(&a, err);
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

size_t bkr_holds_files(const bkr_holds *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->n; i++)
		n += i == 0 || strcmp(h->v[i].path, h->v[i - 1].path) != 0;
	return n;
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
	/* a hold without a time is ended by a release without "since" (every hold of its path) */
	if (o && ((h->since && !cJSON_AddStringToObject(o, "since", h->since)) ||
		  !cJSON_AddStringToObject(o, "backup_id", h->backup_id) ||
		  !cJSON_AddStringToObject(o, "by", by))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return bkr_repo_add_record_obj(r, o);
}
