/** @file
 * The mongodb strategy (the only file that uses mongo-c-driver): query the
 * configured collection with a filter whose string values get the path
 * pattern's captures substituted ("{id}"), with optional sort and projection,
 * and write the documents out as relaxed extended JSON — the first document,
 * or an array of all of them ("output": "array").  Connection and query
 * timeouts come from serverSelectionTimeoutMS / socketTimeoutMS /
 * connectTimeoutMS; an unreachable server is a reported failure
 * (BKR_EUNAVAILABLE) and the next strategy runs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "bkr/error.h"
#include "recover_i.h"

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;

static void mongo_init(void)
{
	mongoc_init();
	atexit(mongoc_cleanup);
}

/* Substitute captures in every string value of @p j (keys stay as written). */
static int subst(cJSON *j, const bkr_rec_captures *caps, const char *rel)
{
	cJSON *e;

	if (cJSON_IsString(j) && strchr(j->valuestring, '{')) {
		char *v = bkr_rec_substitute(j->valuestring, caps, NULL, NULL, NULL, rel);
		if (!v || !cJSON_SetValuestring(j, v)) {
			free(v);
			return bkr_error_oom();
		}
		free(v);
		return 0;
	}
	cJSON_ArrayForEach(e, j)
		if (subst(e, caps, rel) < 0)
			return bkr_error_oom();
	return 0;
}

static bool unreachable(const bson_error_t *e)
{
	return e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
	       e->code == MONGOC_ERROR_SERVER_SELECTION_FAILURE || e->code == MONGOC_ERROR_STREAM_SOCKET ||
	       e->code == MONGOC_ERROR_STREAM_CONNECT;
}

int bkr_rec_try_mongodb(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	const bkr_rec_strategy *s = j->s;
	mongoc_uri_t *uri = NULL;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t *filter = NULL, *opts = NULL;
	bson_error_t berr;
	cJSON *fj = NULL;
	char *ftext = NULL, *buf = NULL, *why = NULL;
	size_t len = 0, cap = 0, ndocs = 0;
	const bson_t *doc;
	int err = 0, r;

	pthread_once(&mongo_once, mongo_init);
	/* the filter */
	if (!(fj = cJSON_Parse(s->filter ? s->filter : "{}")) || subst(fj, j->caps, j->rel) < 0 ||
	    !(ftext = cJSON_PrintUnformatted(fj))) {
		err = bkr_rec_fail(o, BKR_ENOMEM, "building the filter");
		goto done;
	}
	if ((o->source = cJSON_CreateObject())) {
		const char *at = strrchr(s->uri, '@');
		char hostpart[512];
		/* never copy credentials into the report */
		snprintf(hostpart, sizeof(hostpart), "mongodb://%s", at ? at + 1 : s->uri + (strncmp(s->uri, "mongodb://", 10) ? 0 : 10));
		cJSON_AddStringToObject(o->source, "uri", hostpart);
		cJSON_AddStringToObject(o->source, "database", s->database);
		cJSON_AddStringToObject(o->source, "collection", s->collection);
		cJSON_AddItemToObject(o->source, "filter", cJSON_Duplicate(fj, true));
	}
	if (!(filter = bson_new_from_json((const uint8_t *)ftext, -1, &berr))) {
		err = bkr_rec_fail(o, BKR_EINVAL, "%s.filter: %s", s->key, berr.message);
		goto done;
	}
	/* options: sort, projection, limit */
	if (!(opts = bson_new())) {
		err = bkr_rec_fail(o, BKR_ENOMEM, "out of memory");
		goto done;
	}
	if (s->sort) {
		bson_t *b = bson_new_from_json((const uint8_t *)s->sort, -1, &berr);
		if (!b) {
			err = bkr_rec_fail(o, BKR_EINVAL, "%s.sort: %s", s->key, berr.message);
			goto done;
		}
		BSON_APPEND_DOCUMENT(opts, "sort", b);
		bson_destroy(b);
	}
	if (s->projection) {
		bson_t *b = bson_new_from_json((const uint8_t *)s->projection, -1, &berr);
		if (!b) {
			err = bkr_rec_fail(o, BKR_EINVAL, "%s.projection: %s", s->key, berr.message);
			goto done;
		}
		BSON_APPEND_DOCUMENT(opts, "projection", b);
		bson_destroy(b);
	}
	if (!s->as_array)
		BSON_APPEND_INT64(opts, "limit", 1);
	else if (s->limit)
		BSON_APPEND_INT64(opts, "limit", s->limit);
	/* the connection */
	if (!(uri = mongoc_uri_new_with_error(s->uri, &berr))) {
		err = bkr_rec_fail(o, BKR_EINVAL, "%s.uri: %s", s->key, berr.message);
		goto done;
	}
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, s->server_selection_timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, s->socket_timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, s->connect_timeout_ms);
	if (!(client = mongoc_client_new_from_uri_with_error(uri, &berr))) {
		err = bkr_rec_fail(o, BKR_EINVAL, "%s.uri: %s", s->key, berr.message);
		goto done;
	}
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(client, "bkr-recover");
	coll = mongoc_client_get_collection(client, s->database, s->collection);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		size_t dl = 0;
		char *dj = bson_as_relaxed_extended_json(doc, &dl);
		if (!dj) {
			err = bkr_rec_fail(o, BKR_ECORRUPT, "a document cannot be written as JSON");
			goto done;
		}
		if (len + dl + 8 > cap) {
			size_t nc = (len + dl + 8) * 2;
			char *nb;
			if (nc > BKR_REC_MAX_FILE || !(nb = realloc(buf, nc))) {
				bson_free(dj);
				err = bkr_rec_fail(o, BKR_ENOMEM, "result too large");
				goto done;
			}
			buf = nb;
			cap = nc;
		}
		if (s->as_array)
			buf[len++] = ndocs ? ',' : '[';
		if (s->as_array)
			buf[len++] = '\n';
		memcpy(buf + len, dj, dl);
		len += dl;
		bson_free(dj);
		ndocs++;
		if (!s->as_array)
			break;
	}
	if (mongoc_cursor_error(cur, &berr)) {
		err = bkr_rec_fail(o, unreachable(&berr) ? BKR_EUNAVAILABLE : BKR_ERROR, "mongodb %s.%s: %s",
				   s->database, s->collection, berr.message);
		goto done;
	}
	if (o->source)
		cJSON_AddNumberToObject(o->source, "documents", (double)ndocs);
	if (!ndocs) {
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "no document in %s.%s matches %s", s->database, s->collection,
				   ftext);
		goto done;
	}
	if (!buf || len + 4 > cap) {
		char *nb = realloc(buf, len + 4);
		if (!nb) {
			err = bkr_rec_fail(o, BKR_ENOMEM, "out of memory");
			goto done;
		}
		buf = nb;
	}
	if (s->as_array) {
		buf[len++] = '\n';
		buf[len++] = ']';
	}
	buf[len++] = '\n';
	r = bkr_rec_validate(j->rc, j->rel, (const uint8_t *)buf, len, j->nonempty, &why);
	if (r < 0) {
		err = bkr_rec_fail(o, r, "%s", bkr_error_message());
		goto done;
	}
	if (r == 0) {
		err = bkr_rec_fail(o, BKR_ECORRUPT, "documents written as JSON are invalid for %s: %s", j->rel, why);
		goto done;
	}
	o->data = (uint8_t *)buf;
	o->len = len;
	o->mode = 0644;
	buf = NULL;
	err = 0;
done:
	free(why);
	free(buf);
	free(ftext);
	cJSON_Delete(fj);
	if (cur)
		mongoc_cursor_destroy(cur);
	if (coll)
		mongoc_collection_destroy(coll);
	if (client)
		mongoc_client_destroy(client);
	if (uri)
		mongoc_uri_destroy(uri);
	if (filter)
		bson_destroy(filter);
	if (opts)
		bson_destroy(opts);
	return err;
}
