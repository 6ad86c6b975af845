/** @file
 * The mongodb strategy: query the configured collection with a filter whose
 * string values get the path pattern's captures substituted ("{id}"), with
 * optional sort and projection, and write the documents out as relaxed
 * extended JSON — the first document, or an array of all of them ("output":
 * "array").  Connection and query timeouts come from
 * serverSelectionTimeoutMS / socketTimeoutMS / connectTimeoutMS; an
 * unreachable server is a reported failure (BKR_EUNAVAILABLE) and the next
 * strategy runs.
 *
 * The query itself runs in the bkr-mongodb module (module/mongo_fetch.c),
 * loaded here on first use: see module/mongo_fetch.h for why libmongoc is
 * not linked into every bkr and bkrfs process.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../module/mongo_fetch.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "recover_i.h"

#include "bkr_paths.h"

#define MODULE_NAME "bkr-mongodb.so"

static pthread_once_t mongo_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mongo_lock = PTHREAD_MUTEX_INITIALIZER; /* one query at a time */
static bkr_mongo_fetch_fn mongo_fetch;
static char mongo_why[PATH_MAX + 256];  /* why it could not be loaded */

/*
 * Where the module is: $BKR_MONGODB_MODULE, else next to the executable, in
 * <libdir>/bkr relative to it (installed, bkr_paths.h), in the build tree's
 * engine/ (from tools/ or tests/unit/), or at the installed absolute path.
 */
static void *module_open(void)
{
	static const char *const rel[] = { "", BKR_BINDIR_TO_MODULE_DIR "/", "../engine/", "../../engine/",
					   BKR_MODULE_DIR "/" };
	const char *env = getenv("BKR_MONGODB_MODULE");
	char exe[PATH_MAX], path[PATH_MAX + 64], *slash;
	ssize_t n;
	void *h;

	if (env && *env) {
		if (!(h = dlopen(env, RTLD_NOW | RTLD_LOCAL)))
			snprintf(mongo_why, sizeof(mongo_why), "BKR_MONGODB_MODULE=%s: %s", env, dlerror());
		return h;
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
		snprintf(mongo_why, sizeof(mongo_why), "cannot find the executable to locate %s", MODULE_NAME);
		return NULL;
	}
	exe[n] = 0;
	if ((slash = strrchr(exe, '/')))
		slash[1] = 0;
	for (size_t k = 0; k < sizeof(rel) / sizeof(rel[0]); k++) {
		snprintf(path, sizeof(path), "%s%s%s", rel[k][0] == '/' ? "" : exe, rel[k], MODULE_NAME);
		if (access(path, R_OK) != 0)
			continue;
		if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
			return h;
		snprintf(mongo_why, sizeof(mongo_why), "%s", dlerror());
		return NULL;
	}
	snprintf(mongo_why, sizeof(mongo_why), "%s not found next to %s (set BKR_MONGODB_MODULE)", MODULE_NAME, exe);
	return NULL;
}

/* libmongoc's log lines go to bkr's log, never to stdout (mongo_fetch.h) */
static void mongo_log(int level, const char *domain, const char *message)
{
	bkr_log_kv((bkr_log_level)level, "recover", (const char *[]){ "mongoc_domain", domain, NULL }, "mongodb: %s",
		   message);
}

static void mongo_init(void)
{
	int (*abi)(void);
	bkr_mongo_cleanup_fn cleanup;
	bkr_mongo_set_log_fn set_log;
	void *h;

	/* no shared-memory counters: nothing left in /dev/shm by a killed
	 * process, no warning about a stale one (read when libmongoc loads) */
	setenv("MONGOC_DISABLE_SHM", "1", 0);
	if (!(h = module_open()))
		return;
	abi = (int (*)(void))dlsym(h, "bkr_mongo_abi");
	mongo_fetch = (bkr_mongo_fetch_fn)dlsym(h, "bkr_mongo_fetch");
	cleanup = (bkr_mongo_cleanup_fn)dlsym(h, "bkr_mongo_cleanup");
	set_log = (bkr_mongo_set_log_fn)dlsym(h, "bkr_mongo_set_log");
	if (!abi || !mongo_fetch || !cleanup || !set_log || abi() != BKR_MONGO_ABI) {
		snprintf(mongo_why, sizeof(mongo_why), "%s: not a bkr-mongodb module of this version", MODULE_NAME);
		mongo_fetch = NULL;
		return;
	}
	set_log(mongo_log);
	atexit(cleanup);
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

static bool host_ok(const char *h, size_t n)
{
	size_t i = 0;

	if (n && h[0] == '[') {
		for (i = 1; i < n && h[i] != ']'; i++)
			if (!strchr("0123456789abcdefABCDEF:.%", h[i]))
				return false;
		if (i >= n || i == 1)
			return false;
		i++;
	} else {
		while (i < n && h[i] != ':') {
			char c = h[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			      c == '-' || c == '_' || c == '%'))
				return false;
			i++;
		}
		if (i == 0)
			return false;
	}
	if (i == n)
		return true;
	if (h[i] != ':' || i + 1 == n)
		return false;
	for (i++; i < n; i++)
		if (h[i] < '0' || h[i] > '9')
			return false;
	return true;
}

static bool secret_option(const char *name, size_t n)
{
	static const char *const words[] = { "pass", "pwd", "secret", "key", "token", "auth", "cred", "sig", "sasl" };
	char low[128];

	if (n >= sizeof(low))
		return true;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
	low[n] = 0;
	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
		if (strstr(low, words[k]))
			return true;
	return false;
}

char *bkr_rec_mongo_uri_shown(const char *uri)
{
	const char *sep = strstr(uri, "://"), *rest, *auth, *at = NULL, *hosts, *db = NULL, *opts = NULL;
	size_t slen = 0, alen, hlen, dlen = 0;
	bool ok = true;
	char *out = NULL, *p;
	size_t cap;

	if (sep) {
		slen = (size_t)(sep - uri);
		for (size_t i = 0; i < slen; i++)
			if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789+.-", uri[i]))
				slen = 0;
		rest = sep + 3;
	} else {
		rest = uri;
	}
	/* scheme://[userinfo@]hosts[/[database]][?options] — userinfo has no '/' or
	 * '?' (they must be percent-encoded); its last '@' ends it */
	auth = rest;
	alen = strcspn(rest, "/?");
	for (size_t i = 0; i < alen; i++)
		if (auth[i] == '@')
			at = auth + i;
	hosts = at ? at + 1 : auth;
	hlen = (size_t)(auth + alen - hosts);
	if (auth[alen] == '/') {
		db = auth + alen + 1;
		dlen = strcspn(db, "?");
		if (db[dlen] == '?')
			opts = db + dlen + 1;
	} else if (auth[alen] == '?') {
		opts = auth + alen + 1;
	}
	/* not what a valid URI looks like (an unencoded '/', '?' or '@' in a
	 * password, ...): show none of it rather than a piece of a secret */
	for (const char *h = hosts; ok && h <= hosts + hlen;) {
		size_t n = strcspn(h, ",");
		if (h + n > hosts + hlen)
			n = (size_t)(hosts + hlen - h);
		ok = host_ok(h, n);
		h += n + 1;
	}
	if (ok && db && memchr(db, '@', dlen))
		ok = false;
	cap = (slen ? slen : 7) + 4 + strlen(rest) * 2 + 64;
	if (!(out = malloc(cap)))
		return NULL;
	p = out + sprintf(out, "%.*s://", (int)(slen ? slen : 7), slen ? uri : "mongodb");
	if (!ok) {
		strcpy(p, "(not shown: not a well-formed URI)");
		return out;
	}
	p += sprintf(p, "%.*s", (int)hlen, hosts);
	if (db)
		p += sprintf(p, "/%.*s", (int)dlen, db);
	if (opts && *opts) {
		*p++ = '?';
		for (const char *o = opts; *o;) {
			size_t n = strcspn(o, "&;"), nl = strcspn(o, "=&;");
			for (size_t i = 0; i < nl; i++) {
				char c = o[i];
				if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				      c == '_'))
					ok = false;
			}
			if (!ok || nl == 0) {
				p = out +
					sprintf(out, "%.*s://(not shown: not a well-formed URI)",
						(int)(slen ? slen : 7), slen ? uri : "mongodb");
				return out;
			}
			if (o != opts)
				*p++ = '&';
			if (nl < n && secret_option(o, nl))
				p += sprintf(p, "%.*s=***", (int)nl, o);
			else
				p += sprintf(p, "%.*s", (int)n, o);
			o += n;
			if (*o)
				o++;
		}
		*p = 0;
	}
	return out;
}

int bkr_rec_try_mongodb(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	static const int code[] = {
		[BKR_MONGO_OK] = 0, [BKR_MONGO_INVALID] = BKR_EINVAL, [BKR_MONGO_UNREACHABLE] = BKR_EUNAVAILABLE,
		[BKR_MONGO_SERVER] = BKR_ERROR, [BKR_MONGO_NOMEM] = BKR_ENOMEM, [BKR_MONGO_BADDOC] = BKR_ECORRUPT,
		[BKR_MONGO_TIMEOUT] = BKR_ETIMEOUT,
	};
	const bkr_rec_strategy *s = j->s;
	struct bkr_mongo_result res = { 0 };
	cJSON *fj = NULL;
	char *ftext = NULL, *why = NULL;
	int err = 0, r, st;

	/* the filter */
	if (!(fj = cJSON_Parse(s->filter ? s->filter : "{}")) || subst(fj, j->caps, j->rel) < 0 ||
	    !(ftext = cJSON_PrintUnformatted(fj))) {
		err = bkr_rec_fail(o, BKR_ENOMEM, "building the filter");
		goto done;
	}
	if ((o->source = cJSON_CreateObject())) {
		/* never copy credentials into the report */
		char *shown = bkr_rec_mongo_uri_shown(s->uri);
		cJSON_AddStringToObject(o->source, "uri", shown ? shown : "(not shown)");
		free(shown);
		cJSON_AddStringToObject(o->source, "database", s->database);
		cJSON_AddStringToObject(o->source, "collection", s->collection);
		cJSON_AddItemToObject(o->source, "filter", cJSON_Duplicate(fj, true));
	}
	pthread_once(&mongo_once, mongo_init);
	if (!mongo_fetch) {
		err = bkr_rec_fail(o, BKR_EUNAVAILABLE, "mongodb support is not available: %s", mongo_why);
		goto done;
	}
	{
		struct bkr_mongo_query q = {
			.uri = s->uri, .database = s->database, .collection = s->collection,
			.filter = ftext, .sort = s->sort, .projection = s->projection, .key = s->key,
			.as_array = s->as_array, .limit = s->limit,
			.server_selection_timeout_ms = s->server_selection_timeout_ms,
			.socket_timeout_ms = s->socket_timeout_ms, .connect_timeout_ms = s->connect_timeout_ms,
			.timeout_ms = s->timeout_ms,
			.max_bytes = BKR_REC_MAX_FILE,
		};
		pthread_mutex_lock(&mongo_lock);
		st = mongo_fetch(&q, &res);
		pthread_mutex_unlock(&mongo_lock);
	}
	if (st < 0 || st > BKR_MONGO_TIMEOUT) {
		err = bkr_rec_fail(o, BKR_ERROR, "mongodb module: unknown status %d", st);
		goto done;
	}
	if (st != BKR_MONGO_OK) {
		err = bkr_rec_fail(o, code[st], "%s", res.msg);
		goto done;
	}
	if (o->source)
		cJSON_AddNumberToObject(o->source, "documents", (double)res.ndocs);
	if (!res.ndocs) {
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "no document in %s.%s matches %s", s->database, s->collection,
				   ftext);
		goto done;
	}
	r = bkr_rec_validate(j->rc, j->rel, (const uint8_t *)res.data, res.len, j->nonempty, &why);
	if (r < 0) {
		err = bkr_rec_fail(o, r, "%s", bkr_error_message());
		goto done;
	}
	if (r == 0) {
		err = bkr_rec_fail(o, BKR_ECORRUPT, "documents written as JSON are invalid for %s: %s", j->rel, why);
		goto done;
	}
	o->data = (uint8_t *)res.data;
	o->len = res.len;
	o->mode = 0644;
	res.data = NULL;
	err = 0;
done:
	free(why);
	free(res.data);
	free(ftext);
	cJSON_Delete(fj);
	return err;
}
