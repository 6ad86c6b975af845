/** @file
 * Verify records (verify_record.h): the codec of a "verify" record and its
 * place among the repository's records (written and listed through the
 * catalog: bkr_repo_add_record, bkr_repo_foreach_record).
 */
#include "bkr/verify_record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/manifest.h"
#include "array.h"

static const char *const result_names[] = { "ok", "problems", "failed" };

const char *bkr_verify_result_name(bkr_verify_result r)
{
	return (unsigned)r < sizeof(result_names) / sizeof(*result_names) ? result_names[r] : "?";
}

/* The counters of a record, by key (stats, then the record's own). */
#define COUNTERS(rec)                                                                                     \
	{ "backups", &(rec)->stats.backups }, { "runs", &(rec)->stats.runs },                               \
	{ "trees", &(rec)->stats.trees }, { "files", &(rec)->stats.files },                                 \
	{ "packs", &(rec)->stats.packs }, { "blobs_read", &(rec)->stats.blobs_read },                       \
	{ "bytes_read", &(rec)->stats.bytes_read }, { "errors", &(rec)->stats.errors },                     \
	{ "leftovers", &(rec)->stats.leftovers }, { "io_errors", &(rec)->stats.io_errors },                 \
	{ "damaged_files", &(rec)->damaged_files }, { "damaged_omitted", &(rec)->damaged_omitted },          \
	{ "damaged_backups_omitted", &(rec)->damaged_backups_omitted }

struct counter {
	const char *key;
	uint64_t *v;
};

int bkr_verify_record_encode(const bkr_verify_record *rec, char **json)
{
	bkr_verify_record copy = *rec;
	struct counter cs[] = { COUNTERS(&copy) };
	char when[32];
	cJSON *o = NULL, *arr;
	size_t n = rec->ndamaged < BKR_VERIFY_RECORD_MAX_DAMAGED ? rec->ndamaged : BKR_VERIFY_RECORD_MAX_DAMAGED;
	size_t nb = rec->ndamaged_backups < BKR_VERIFY_RECORD_MAX_BACKUPS ? rec->ndamaged_backups
									   : BKR_VERIFY_RECORD_MAX_BACKUPS;
	int err = 0;

	*json = NULL;
	copy.damaged_omitted += rec->ndamaged - n;
	copy.damaged_backups_omitted += rec->ndamaged_backups - nb;
	bkr_time_format(when, rec->time_ns);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "verify") ||
	    !cJSON_AddStringToObject(o, "time", when) ||
	    !cJSON_AddNumberToObject(o, "duration_seconds", rec->duration_s >= 0 ? rec->duration_s : 0) ||
	    (rec->host && !cJSON_AddStringToObject(o, "host", rec->host)) ||
	    (rec->backup_id && !cJSON_AddStringToObject(o, "backup_id", rec->backup_id)) ||
	    !cJSON_AddBoolToObject(o, "read_data", rec->read_data) ||
	    !cJSON_AddStringToObject(o, "result", bkr_verify_result_name(rec->result)) ||
	    (rec->message && !cJSON_AddStringToObject(o, "message", rec->message)))
		goto oom;
	for (size_t i = 0; i < sizeof(cs) / sizeof(*cs); i++)
		if (!cJSON_AddNumberToObject(o, cs[i].key, (double)*cs[i].v))
			goto oom;
	if (!(arr = cJSON_AddArrayToObject(o, "damaged_blobs")))
		goto oom;
	for (size_t i = 0; i < n; i++) {
		char hex[BKR_ID_HEX];
		cJSON *s;
		bkr_id_to_hex(&rec->damaged[i], hex);
		if (!(s = cJSON_CreateString(hex)) || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			goto oom;
		}
	}
	if (!(arr = cJSON_AddArrayToObject(o, "damaged_backups")))
		goto oom;
	for (size_t i = 0; i < nb; i++) {
		cJSON *s = cJSON_CreateString(rec->damaged_backups[i]);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			goto oom;
		}
	}
	if (!(*json = cJSON_PrintUnformatted(o)))
		goto oom;
	goto done;
oom:
	err = bkr_error_oom();
done:
	cJSON_Delete(o);
	return err;
}

void bkr_verify_record_clear(bkr_verify_record *rec)
{
	if (!rec)
		return;
	free(rec->host);
	free(rec->backup_id);
	free(rec->message);
	free(rec->damaged);
	for (size_t i = 0; i < rec->ndamaged_backups; i++)
		free(rec->damaged_backups[i]);
	free(rec->damaged_backups);
	rec->host = rec->backup_id = rec->message = NULL;
	rec->damaged = NULL;
	rec->damaged_backups = NULL;
	rec->ndamaged = rec->ndamaged_backups = 0;
}

void bkr_verify_record_free(bkr_verify_record *rec)
{
	bkr_verify_record_clear(rec);
	free(rec);
}

/* An optional string member: NULL when absent; BKR_ECORRUPT when not a string. */
static int opt_str(const cJSON *o, const char *key, char **out, const char *what)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return bkr_error_set(BKR_ECORRUPT, "%s: \"%s\" is not a string", what, key);
	return (*out = strdup(v->valuestring)) ? 0 : bkr_error_oom();
}

/* A counter: absent is 0; else an integer in [0, 2^53]. */
static int get_count(const cJSON *o, const char *key, uint64_t *out, const char *what)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = 0;
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
	    v->valuedouble != floor(v->valuedouble))
		return bkr_error_set(BKR_ECORRUPT, "%s: \"%s\" is not a count", what, key);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

/* "damaged_blobs": absent is none; else an array of blob ids (*ids malloc'd). */
static int get_damaged(const cJSON *o, bkr_id **ids, size_t *n, const char *what)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "damaged_blobs"), *it;

	*ids = NULL;
	*n = 0;
	if (v && !cJSON_IsArray(v))
		return bkr_error_set(BKR_ECORRUPT, "%s: \"damaged_blobs\" is not an array", what);
	if (v && cJSON_GetArraySize(v) > 0 && !(*ids = calloc((size_t)cJSON_GetArraySize(v), sizeof(**ids))))
		return bkr_error_oom();
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || strlen(it->valuestring) != 2 * BKR_ID_SIZE ||
		    bkr_id_from_hex(&(*ids)[*n], it->valuestring) < 0)
			return bkr_error_set(BKR_ECORRUPT, "%s: \"damaged_blobs\" holds something that is not a blob id", what);
		(*n)++;
	}
	return 0;
}

/* "damaged_backups": absent is none (older records); else an array of backup ids. */
static int get_damaged_backups(const cJSON *o, bkr_verify_record *rec, const char *what)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "damaged_backups"), *it;
	size_t cap = 0;

	if (v && !cJSON_IsArray(v))
		return bkr_error_set(BKR_ECORRUPT, "%s: \"damaged_backups\" is not an array", what);
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || !it->valuestring[0])
			return bkr_error_set(BKR_ECORRUPT,
					     "%s: \"damaged_backups\" holds something that is not a backup id", what);
		if (bkr_array_push_str(&rec->damaged_backups, &cap, &rec->ndamaged_backups, it->valuestring) < 0)
			return bkr_error_oom();
	}
	return 0;
}

int bkr_verify_record_decode(bkr_verify_record **out, const char *text, size_t len, const char *what)
{
	bkr_verify_record *rec = NULL;
	cJSON *o = NULL;
	const cJSON *v;
	char *result = NULL;
	int err;

	*out = NULL;
	if ((err = bkr_json_verify(text, len, what)) < 0)
		return err;
	if (!(o = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(o)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: not a valid JSON object", what);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "kind");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "verify")) {
		err = BKR_ENOTFOUND; /* another kind of record */
		goto done;
	}
	if (!(rec = calloc(1, sizeof(*rec)))) {
		err = bkr_error_oom();
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "time");
	if (!cJSON_IsString(v) || bkr_time_parse(v->valuestring, &rec->time_ns) < 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"time\" is not an ISO 8601 time", what);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "duration_seconds");
	if (v && (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e12))) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"duration_seconds\" is not a duration", what);
		goto done;
	}
	rec->duration_s = v ? v->valuedouble : 0;
	v = cJSON_GetObjectItemCaseSensitive(o, "read_data");
	if (v && !cJSON_IsBool(v)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"read_data\" is not true or false", what);
		goto done;
	}
	rec->read_data = v && cJSON_IsTrue(v);
	if ((err = opt_str(o, "host", &rec->host, what)) < 0 || (err = opt_str(o, "backup_id", &rec->backup_id, what)) < 0 ||
	    (err = opt_str(o, "message", &rec->message, what)) < 0 || (err = opt_str(o, "result", &result, what)) < 0)
		goto done;
	err = bkr_error_set(BKR_ECORRUPT, "%s: \"result\" is not ok, problems or failed", what);
	for (size_t i = 0; result && i < sizeof(result_names) / sizeof(*result_names); i++)
		if (!strcmp(result, result_names[i])) {
			rec->result = (bkr_verify_result)i;
			bkr_error_clear();
			err = 0;
		}
	if (err < 0)
		goto done;
	{
		struct counter cs[] = { COUNTERS(rec) };
		for (size_t i = 0; i < sizeof(cs) / sizeof(*cs) && err == 0; i++)
			err = get_count(o, cs[i].key, cs[i].v, what);
		if (err < 0)
			goto done;
	}
	if ((err = get_damaged(o, &rec->damaged, &rec->ndamaged, what)) < 0 ||
	    (err = get_damaged_backups(o, rec, what)) < 0)
		goto done;
	*out = rec;
	rec = NULL;
done:
	free(result);
	bkr_verify_record_free(rec);
	cJSON_Delete(o);
	return err;
}

int bkr_verify_record_add(bkr_repo *r, const bkr_verify_record *rec)
{
	char *json = NULL;
	int err = bkr_verify_record_encode(rec, &json);
	if (err == 0)
		err = bkr_repo_add_record(r, json);
	free(json);
	return err;
}

int bkr_verify_run_recorded(char **unrecorded, bkr_repo *r, const bkr_verify_options *o, bkr_verify_stats *st)
{
	bkr_verify_options ro = *o;
	bkr_verify_record rec = { 0 };
	char *why;
	int err;

	*unrecorded = NULL;
	ro.record = &rec;
	err = bkr_verify_run(r, &ro, st);
	if (rec.time_ns) {
		/* whole: adding the record may set the slot (out of memory: the
		 * record is still added, and verify's code kept) */
		why = strdup(bkr_error_message());
		if (bkr_verify_record_add(r, &rec) < 0 && !(*unrecorded = strdup(bkr_error_message())))
			*unrecorded = strdup("out of memory"); /* NULL only when recorded, if it can be */
		if (err < 0)
			bkr_error_set(err, "%s", why ? why : "out of memory keeping verify's message");
		else
			bkr_error_clear();
		free(why);
	}
	bkr_verify_record_clear(&rec);
	return err;
}

struct each {
	int (*cb)(void *ctx, const bkr_verify_record *rec);
	void *ctx;
};

static int each_record(void *ctx, const char *path, const char *text, size_t len)
{
	struct each *e = ctx;
	bkr_verify_record *rec;
	int err = bkr_verify_record_decode(&rec, text, len, path);
	if (err == BKR_ENOMEM)
		return err;
	if (err < 0) {
		bkr_error_clear(); /* another kind, or damaged: not a verify result */
		return 0;
	}
	err = e->cb(e->ctx, rec);
	bkr_verify_record_free(rec);
	return err;
}

int bkr_verify_record_foreach(bkr_repo *r, bool newest_first,
			      int (*cb)(void *ctx, const bkr_verify_record *rec), void *ctx)
{
	struct each e = { cb, ctx };
	return bkr_repo_foreach_record(r, newest_first, each_record, &e);
}

int bkr_verify_record_foreach_in(const bkr_records *rs, bool newest_first,
				 int (*cb)(void *ctx, const bkr_verify_record *rec), void *ctx)
{
	struct each e = { cb, ctx };
	return bkr_records_foreach(rs, newest_first, each_record, &e);
}

void bkr_verify_record_scalars(bkr_verify_record *to, const bkr_verify_record *from)
{
	*to = *from;
	to->host = to->backup_id = to->message = NULL;
	to->damaged = NULL; /* ndamaged is kept: health reports the count */
	to->damaged_backups = NULL;
	to->ndamaged_backups = 0;
}

struct last {
	bkr_verify_record *rec;
};

static int take_last(void *ctx, const bkr_verify_record *rec)
{
	struct last *l = ctx;
	bkr_verify_record *c = calloc(1, sizeof(*c));
	if (!c)
		return bkr_error_oom();
	bkr_verify_record_scalars(c, rec);
	for (size_t i = 0, cap = 0; i < rec->ndamaged_backups; i++)
		if (bkr_array_push_str(&c->damaged_backups, &cap, &c->ndamaged_backups, rec->damaged_backups[i]) < 0) {
			bkr_verify_record_free(c);
			return bkr_error_oom();
		}
	if ((rec->host && !(c->host = strdup(rec->host))) || (rec->backup_id && !(c->backup_id = strdup(rec->backup_id))) ||
	    (rec->message && !(c->message = strdup(rec->message))) ||
	    (rec->ndamaged && !(c->damaged = malloc(rec->ndamaged * sizeof(*c->damaged))))) {
		bkr_verify_record_free(c);
		return bkr_error_oom();
	}
	if (rec->ndamaged)
		memcpy(c->damaged, rec->damaged, rec->ndamaged * sizeof(*c->damaged));
	l->rec = c;
	return 1;
}

int bkr_verify_record_last(bkr_repo *r, bkr_verify_record **out)
{
	struct last l = { 0 };
	int err;

	*out = NULL;
	if ((err = bkr_verify_record_foreach(r, true, take_last, &l)) < 0)
		return err;
	if (!l.rec)
		return bkr_error_set(BKR_ENOTFOUND, "%s: no verify has been recorded", bkr_repo_path(r));
	*out = l.rec;
	return 0;
}

/* ---- damage records: damaged blobs another command met ---------------------- */

int bkr_damage_record_add(bkr_repo *r, const char *by, const bkr_damaged_copy *copies, size_t n)
{
	size_t keep = n < BKR_VERIFY_RECORD_MAX_DAMAGED ? n : BKR_VERIFY_RECORD_MAX_DAMAGED;
	cJSON *o = NULL, *ids, *packs;
	char when[32], host[256];
	int err;

	bkr_time_format(when, bkr_time_now_ns());
	bkr_host_name(host, sizeof(host), NULL);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "damage") ||
	    !cJSON_AddStringToObject(o, "time", when) || !cJSON_AddStringToObject(o, "host", host) ||
	    !cJSON_AddStringToObject(o, "by", by) || !(ids = cJSON_AddArrayToObject(o, "damaged_blobs")) ||
	    !(packs = cJSON_AddArrayToObject(o, "packs")) ||
	    !cJSON_AddNumberToObject(o, "damaged_omitted", (double)(n - keep)))
		goto oom;
	for (size_t i = 0; i < keep; i++) {
		char hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
		cJSON *a, *b;
		bkr_id_to_hex(&copies[i].blob, hex);
		bkr_pack_id_to_hex(&copies[i].pack, phex);
		a = cJSON_CreateString(hex);
		b = cJSON_CreateString(phex);
		if (!a || !b || !cJSON_AddItemToArray(ids, a) || (a = NULL, !cJSON_AddItemToArray(packs, b))) {
			cJSON_Delete(a);
			cJSON_Delete(b);
			goto oom;
		}
	}
	return bkr_repo_add_record_obj(r, o); /* takes o */
oom:
	err = bkr_error_oom();
	cJSON_Delete(o);
	return err;
}

struct each_damaged {
	int (*cb)(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted);
	void *ctx;
};

/* The damaged blobs of a damage record, and when it was made: BKR_ENOTFOUND when it is another kind. */
static int damage_decode(const char *text, size_t len, const char *what, bkr_id **ids, size_t *n, uint64_t *omitted,
			 int64_t *time_ns)
{
	const cJSON *v;
	cJSON *o;
	int err;

	*ids = NULL;
	*n = 0;
	if ((err = bkr_json_verify(text, len, what)) < 0)
		return err;
	if (!(o = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return bkr_error_set(BKR_ECORRUPT, "%s: not a valid JSON object", what);
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "kind");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "damage"))
		err = BKR_ENOTFOUND;
	else if ((err = get_damaged(o, ids, n, what)) == 0 && (err = get_count(o, "damaged_omitted", omitted, what)) == 0) {
		v = cJSON_GetObjectItemCaseSensitive(o, "time");
		if (!cJSON_IsString(v) || bkr_time_parse(v->valuestring, time_ns) < 0)
			err = bkr_error_set(BKR_ECORRUPT, "%s: \"time\" is not an ISO 8601 time", what);
	}
	cJSON_Delete(o);
	if (err < 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return err;
}

/*
 * A verify or a damage record's damaged blobs: BKR_ENOTFOUND when it is neither kind, BKR_ECORRUPT naming the key
 * when it is one that does not decode.  On success @p d->ids are @p d->rec's (a verify record) or malloc'd (a damage
 * record); either_free releases them, whatever was returned.
 */
struct either {
	bkr_verify_record *rec;
	bkr_id *ids;
	size_t n;
	uint64_t omitted;
};

static int decode_either(struct either *d, const char *text, size_t len, const char *what)
{
	int64_t t;
	int err = bkr_verify_record_decode(&d->rec, text, len, what);

	d->ids = NULL;
	d->n = 0;
	d->omitted = 0;
	if (err == 0) {
		d->ids = d->rec->damaged;
		d->n = d->rec->ndamaged;
		d->omitted = d->rec->damaged_omitted;
	} else if (err == BKR_ENOTFOUND) {
		err = damage_decode(text, len, what, &d->ids, &d->n, &d->omitted, &t);
	}
	return err;
}

static void either_free(struct either *d)
{
	if (!d->rec)
		free(d->ids);
	bkr_verify_record_free(d->rec);
}

int bkr_verify_record_check(const char *text, size_t len, const char *what)
{
	struct either d;
	int err = decode_either(&d, text, len, what);

	either_free(&d);
	if (err == BKR_ENOTFOUND) {
		bkr_error_clear(); /* another kind: not a verify's or a damage's to judge */
		return 0;
	}
	return err;
}

static int each_damaged_record(void *ctx, const char *path, const char *text, size_t len)
{
	struct each_damaged *e = ctx;
	struct either d;
	int err = decode_either(&d, text, len, path);

	if (err == 0) {
		err = e->cb(e->ctx, d.ids, d.n, d.omitted);
	} else if (err != BKR_ENOMEM) {
		bkr_error_clear(); /* another kind, or damaged: says nothing about blobs */
		err = 0;
	}
	either_free(&d);
	return err;
}

int bkr_damaged_blobs_foreach(bkr_repo *r, int (*cb)(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted),
			      void *ctx)
{
	struct each_damaged e = { cb, ctx };
	return bkr_repo_foreach_record(r, false, each_damaged_record, &e);
}

/* damage_decode for a walk over every record: 1 for a damage record, 0 (the error cleared) for another kind or a
 * damaged one, which says nothing about blobs, BKR_ENOMEM.  *ids is NULL unless 1 is returned. */
static int damage_take(const char *text, size_t len, const char *path, bkr_id **ids, size_t *n, uint64_t *omitted,
		       int64_t *time_ns)
{
	int err = damage_decode(text, len, path, ids, n, omitted, time_ns);

	if (err == BKR_ENOMEM)
		return err;
	if (err < 0) {
		bkr_error_clear();
		return 0;
	}
	return 1;
}

struct damage_names {
	char **v;
	size_t n, cap;
	bool (*damaged)(void *ctx, const bkr_id *id);
	void *ctx;
};

static int take_damage_name(void *ctx, const char *path, const char *text, size_t len)
{
	struct damage_names *d = ctx;
	const char *base = strrchr(path, '/');
	bkr_id *ids = NULL;
	size_t n = 0, l;
	uint64_t omitted = 0;
	int64_t t;
	int err = damage_take(text, len, path, &ids, &n, &omitted, &t);
	bool still = false;

	for (size_t i = 0; i < n && !still; i++)
		still = d->damaged(d->ctx, &ids[i]);
	free(ids);
	if (err <= 0)
		return err;
	if (omitted || still)
		return 0; /* its other blobs were not read again; a copy still fails */
	base = base ? base + 1 : path;
	l = strlen("records/") + strlen(base) + 1;
	if ((err = bkr_array_grow((void **)&d->v, &d->cap, d->n, sizeof(*d->v))) < 0)
		return err;
	if (!(d->v[d->n] = malloc(l)))
		return bkr_error_oom();
	snprintf(d->v[d->n++], l, "records/%s", base);
	return 0;
}

int bkr_damage_records_resolved(bkr_repo *r, bool (*damaged)(void *ctx, const bkr_id *id), void *ctx,
				char ***names, size_t *n)
{
	struct damage_names d = { .damaged = damaged, .ctx = ctx };
	int err = bkr_repo_foreach_record(r, false, take_damage_name, &d);

	if (err < 0) {
		for (size_t i = 0; i < d.n; i++)
			free(d.v[i]);
		free(d.v);
		d.v = NULL;
		d.n = 0;
	}
	*names = d.v;
	*n = d.n;
	return err;
}

int bkr_damaged_blobs_foreach_in(const bkr_records *rs,
				 int (*cb)(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted), void *ctx)
{
	struct each_damaged e = { cb, ctx };
	return bkr_records_foreach(rs, false, each_damaged_record, &e);
}

struct last_damage {
	int64_t until_ns, time_ns;
	uint64_t blobs;
	bool found;
};

static int take_damage(void *ctx, const char *path, const char *text, size_t len)
{
	struct last_damage *l = ctx;
	bkr_id *ids = NULL;
	size_t n = 0;
	uint64_t omitted = 0;
	int64_t t = 0;
	int err = damage_take(text, len, path, &ids, &n, &omitted, &t);

	free(ids);
	if (err <= 0)
		return err;
	if (t <= l->until_ns && (!l->found || t >= l->time_ns)) {
		l->found = true;
		l->time_ns = t;
		l->blobs = n + omitted;
	}
	return 0;
}

int bkr_damage_record_last_in(const bkr_records *rs, int64_t until_ns, int64_t *time_ns, uint64_t *blobs)
{
	struct last_damage l = { .until_ns = until_ns };
	int err = bkr_records_foreach(rs, false, take_damage, &l);

	if (err < 0)
		return err;
	if (!l.found)
		return BKR_ENOTFOUND;
	*time_ns = l.time_ns;
	*blobs = l.blobs;
	return 0;
}
