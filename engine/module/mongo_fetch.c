/** @file
 * The bkr-mongodb module (mongo_fetch.h): one query against a MongoDB
 * collection, the documents written out as relaxed extended JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "mongo_fetch.h"

int bkr_mongo_fetch(const struct bkr_mongo_query *q, struct bkr_mongo_result *r);
void bkr_mongo_cleanup(void);
int bkr_mongo_abi(void);
void bkr_mongo_set_log(bkr_mongo_log_fn fn);

static bkr_mongo_log_fn log_fn;

/* libmongoc's log: never its default handler (stdout and stderr) */
static void log_handler(mongoc_log_level_t level, const char *domain, const char *message, void *ctx)
{
	int l;

	(void)ctx;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		l = 3;
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		l = 2;
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
	case MONGOC_LOG_LEVEL_INFO:
		l = 1;
		break;
	case MONGOC_LOG_LEVEL_DEBUG:
		l = 0;
		break;
	default:
		return; /* trace */
	}
	if (log_fn)
		log_fn(l, domain ? domain : "", message ? message : "");
}

void bkr_mongo_set_log(bkr_mongo_log_fn fn)
{
	log_fn = fn;
	mongoc_log_set_handler(log_handler, NULL);
	mongoc_log_trace_disable();
}

int bkr_mongo_abi(void)
{
	return BKR_MONGO_ABI;
}

void bkr_mongo_cleanup(void)
{
	mongoc_cleanup();
}

static int fail(struct bkr_mongo_result *r, int status, const char *fmt, const char *a, const char *b)
{
	snprintf(r->msg, sizeof(r->msg), fmt, a, b);
	return status;
}

/*
 * The result would pass q->max_bytes (the most a recovered file may hold,
 * BKR_REC_MAX_FILE; no key sets it): say which collection, the limit, and
 * what makes a result smaller.
 */
static int too_large(struct bkr_mongo_result *r, const struct bkr_mongo_query *q)
{
	char lim[32];

	if (q->max_bytes >= (1u << 20) && q->max_bytes % (1u << 20) == 0)
		snprintf(lim, sizeof(lim), "%zu MiB", q->max_bytes >> 20);
	else
		snprintf(lim, sizeof(lim), "%zu bytes", q->max_bytes);
	snprintf(r->msg, sizeof(r->msg),
		 "mongodb %s.%s: result too large: more than %s as JSON, the most a recovered file may hold (%zu "
		 "document%s fit; %s.filter, .projection or .limit make it smaller)",
		 q->database, q->collection, lim, r->ndocs, r->ndocs == 1 ? "" : "s", q->key);
	return BKR_MONGO_NOMEM;
}

/* a monotonic clock, in milliseconds */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool unreachable(const bson_error_t *e)
{
	return e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
	       e->code == MONGOC_ERROR_SERVER_SELECTION_FAILURE || e->code == MONGOC_ERROR_STREAM_SOCKET ||
	       e->code == MONGOC_ERROR_STREAM_CONNECT;
}

/* append @p n bytes to r->data, growing it; false when over max_bytes */
static bool put(struct bkr_mongo_result *r, size_t *cap, size_t max, const char *p, size_t n)
{
	if (r->len + n + 4 > *cap) {
		size_t nc = (r->len + n + 4) * 2;
		char *nb;
		if (nc > max + 4)
			nc = r->len + n + 4;
		if (nc > max + 4 || !(nb = realloc(r->data, nc)))
			return false;
		r->data = nb;
		*cap = nc;
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
	return true;
}

/*
 * How deep documents, arrays and code-with-scope may nest in a reply.
 * MongoDB stores documents at most 100 levels deep; libbson's bson_validate
 * and bson_as_json recurse once per level (a reply nested a million levels
 * deep, 16 MB, overflowed the stack: a crash), and bson_as_json writes
 * "{ ... }" below 200 levels, a broken copy recovered as if whole.
 */
#define MAX_DEPTH 150

/* Whether @p b nests deeper than MAX_DEPTH, found without recursion (malformed BSON is bson_validate's). */
static bool too_deep(const bson_t *b)
{
	struct {
		bson_iter_t it; /* over-aligned: an array of it is refused */
	} lv[MAX_DEPTH + 1];
	int d = 0;

	if (!bson_iter_init(&lv[0].it, b))
		return false;
	for (;;) {
		bson_t scope;
		const uint8_t *data;
		uint32_t len, clen;
		bool inner;

		if (!bson_iter_next(&lv[d].it)) {
			if (d-- == 0)
				return false;
			continue;
		}
		if (BSON_ITER_HOLDS_DOCUMENT(&lv[d].it) || BSON_ITER_HOLDS_ARRAY(&lv[d].it)) {
			if (d == MAX_DEPTH)
				return true;
			inner = bson_iter_recurse(&lv[d].it, &lv[d + 1].it);
		} else if (BSON_ITER_HOLDS_CODEWSCOPE(&lv[d].it)) {
			if (d == MAX_DEPTH)
				return true;
			bson_iter_codewscope(&lv[d].it, &clen, &len, &data);
			inner = data && bson_init_static(&scope, data, len) && bson_iter_init(&lv[d + 1].it, &scope);
		} else {
			inner = false;
		}
		if (inner)
			d++;
	}
}

/*
 * libmongoc reads a batch of a find reply only as far as it is well-formed
 * and skips what is not a document, without an error: a malformed reply
 * looked like "no document matches".  Every find/getMore reply is checked
 * here (command monitoring sees the whole reply) and a bad one fails the query.
 */
struct reply_check {
	bool bad;
	char why[200];
};

static void check_reply(const bson_t *reply, struct reply_check *c)
{
	bson_iter_t it, cur, batch;
	size_t off = 0;

	if (too_deep(reply)) {
		snprintf(c->why, sizeof(c->why), "nests documents more than %d levels deep (MongoDB stores at most 100)",
			 MAX_DEPTH);
		c->bad = true;
		return;
	}
	if (!bson_validate(reply, BSON_VALIDATE_NONE, &off)) {
		snprintf(c->why, sizeof(c->why), "is malformed BSON (at byte %zu)", off);
		c->bad = true;
		return;
	}
	if (!bson_iter_init_find(&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
	    !bson_iter_recurse(&it, &cur))
		return; /* libmongoc says "Invalid reply" itself */
	while (bson_iter_next(&cur)) {
		const char *k = bson_iter_key(&cur);
		if ((strcmp(k, "firstBatch") && strcmp(k, "nextBatch")) || !BSON_ITER_HOLDS_ARRAY(&cur) ||
		    !bson_iter_recurse(&cur, &batch))
			continue;
		while (bson_iter_next(&batch)) {
			if (!BSON_ITER_HOLDS_DOCUMENT(&batch)) {
				snprintf(c->why, sizeof(c->why), "holds an element of type 0x%02x in %s, not a document",
					 (unsigned)bson_iter_type(&batch), k);
				c->bad = true;
				return;
			}
		}
	}
}

static void reply_succeeded(const mongoc_apm_command_succeeded_t *e)
{
	struct reply_check *c = mongoc_apm_command_succeeded_get_context(e);
	const char *name = mongoc_apm_command_succeeded_get_command_name(e);

	if (c && !c->bad && name && (!strcmp(name, "find") || !strcmp(name, "getMore")))
		check_reply(mongoc_apm_command_succeeded_get_reply(e), c);
}

int bkr_mongo_fetch(const struct bkr_mongo_query *q, struct bkr_mongo_result *r)
{
	static bool inited; /* callers serialise (libbkr calls under a once) */
	mongoc_uri_t *uri = NULL;
	mongoc_client_t *client = NULL;
	mongoc_collection_t *coll = NULL;
	mongoc_cursor_t *cur = NULL;
	bson_t *filter = NULL, *opts = NULL;
	bson_error_t berr;
	const bson_t *doc;
	struct reply_check chk = { false, "" };
	mongoc_apm_callbacks_t *cbs;
	size_t cap = 0;
	int st = BKR_MONGO_OK;
	int64_t t0 = now_ms();

	memset(r, 0, sizeof(*r));
	if (!inited) {
		mongoc_log_set_handler(log_handler, NULL);
		mongoc_log_trace_disable();
		mongoc_init();
		inited = true;
	}
	if (!(filter = bson_new_from_json((const uint8_t *)q->filter, -1, &berr)))
		return fail(r, BKR_MONGO_INVALID, "%s.filter: %s", q->key, berr.message);
	if (!(opts = bson_new())) {
		st = fail(r, BKR_MONGO_NOMEM, "out of memory%s%s", "", "");
		goto done;
	}
	{
		const char *json[2] = { q->sort, q->projection }, *name[2] = { "sort", "projection" };
		for (int k = 0; k < 2; k++) {
			bson_t *b;
			char what[256];
			if (!json[k])
				continue;
			if (!(b = bson_new_from_json((const uint8_t *)json[k], -1, &berr))) {
				snprintf(what, sizeof(what), "%s.%s", q->key, name[k]);
				st = fail(r, BKR_MONGO_INVALID, "%s: %s", what, berr.message);
				goto done;
			}
			bson_append_document(opts, name[k], -1, b);
			bson_destroy(b);
		}
	}
	if (!q->as_array)
		BSON_APPEND_INT64(opts, "limit", 1);
	else if (q->limit)
		BSON_APPEND_INT64(opts, "limit", q->limit);
	if (!(uri = mongoc_uri_new_with_error(q->uri, &berr))) {
		st = fail(r, BKR_MONGO_INVALID, "%s.uri: %s", q->key, berr.message);
		goto done;
	}
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, q->server_selection_timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, q->socket_timeout_ms);
	mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, q->connect_timeout_ms);
	if (!(client = mongoc_client_new_from_uri_with_error(uri, &berr))) {
		st = fail(r, BKR_MONGO_INVALID, "%s.uri: %s", q->key, berr.message);
		goto done;
	}
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(client, "bkr-recover");
	if (!(cbs = mongoc_apm_callbacks_new())) {
		st = fail(r, BKR_MONGO_NOMEM, "out of memory%s%s", "", "");
		goto done;
	}
	mongoc_apm_set_command_succeeded_cb(cbs, reply_succeeded);
	mongoc_client_set_apm_callbacks(client, cbs, &chk);
	mongoc_apm_callbacks_destroy(cbs);
	coll = mongoc_client_get_collection(client, q->database, q->collection);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		size_t dl = 0;
		char *dj;
		bool ok;
		if (q->timeout_ms > 0 && now_ms() - t0 > q->timeout_ms) {
			/* a cursor that never ends (each getMore answers more): every read is
			 * bounded by socketTimeoutMS, the whole query by the strategy's timeout */
			st = fail(r, BKR_MONGO_TIMEOUT, "mongodb %s.%s: no complete answer within the strategy's timeout",
				  q->database, q->collection);
			snprintf(r->msg + strlen(r->msg), sizeof(r->msg) - strlen(r->msg),
				 " (%lld ms; %zu documents read)", (long long)q->timeout_ms, r->ndocs);
			goto done;
		}
		if (!chk.bad && too_deep(doc)) {
			snprintf(chk.why, sizeof(chk.why), "nests documents more than %d levels deep", MAX_DEPTH);
			chk.bad = true;
		}
		if (chk.bad)
			break; /* said below */
		if (!(dj = bson_as_relaxed_extended_json(doc, &dl))) {
			st = fail(r, BKR_MONGO_BADDOC, "a document cannot be written as JSON%s%s", "", "");
			goto done;
		}
		ok = (!q->as_array || put(r, &cap, q->max_bytes, r->ndocs ? ",\n" : "[\n", 2)) &&
		     put(r, &cap, q->max_bytes, dj, dl);
		bson_free(dj);
		if (!ok) {
			st = too_large(r, q);
			goto done;
		}
		r->ndocs++;
		if (!q->as_array)
			break;
	}
	if (mongoc_cursor_error(cur, &berr)) {
		char where[300];
		snprintf(where, sizeof(where), "%s.%s", q->database, q->collection);
		st = fail(r, unreachable(&berr) ? BKR_MONGO_UNREACHABLE : BKR_MONGO_SERVER, "mongodb %s: %s", where,
			  berr.message);
		goto done;
	}
	if (chk.bad) {
		char where[300];
		snprintf(where, sizeof(where), "%s.%s", q->database, q->collection);
		st = fail(r, BKR_MONGO_BADDOC, "mongodb %s: the server's reply %s", where, chk.why);
		goto done;
	}
	if (r->ndocs && ((q->as_array && !put(r, &cap, q->max_bytes, "\n]", 2)) ||
			 !put(r, &cap, q->max_bytes, "\n", 1)))
		st = too_large(r, q);
done:
	if (st != BKR_MONGO_OK) {
		free(r->data);
		r->data = NULL;
		r->len = 0;
	}
	if (cur)
		mongoc_cursor_destroy(cur);
	if (coll)
		mongoc_collection_destroy(coll);
	if (client)
		mongoc_client_destroy(client);
	if (uri)
		mongoc_uri_destroy(uri);
	bson_destroy(filter);
	if (opts)
		bson_destroy(opts);
	return st;
}
