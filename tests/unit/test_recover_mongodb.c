/** @file
 * Unit tests of the mongodb strategy against a real MongoDB wire-protocol
 * server started by tests/mongo/start.sh (CongoDB; BKR_TEST_MONGO_URI may
 * name a real MongoDB instead).  Data is seeded with mongo-c.  Covers a
 * filter built from the path's capture, projection, one document vs an
 * array, no match, and an unreachable server falling through.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <mongoc/mongoc.h>

#include "../../engine/module/mongo_fetch.h"
#include "../../engine/recover/recover_i.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "test_recover_util.h"

static char *g_dir;
static char g_uri[256];
static int g_pid, g_hostile_pid;

static int group_setup(void **state)
{
	const char *env = getenv("BKR_TEST_MONGO_URI");
	const char *src = getenv("BKR_SOURCE_ROOT");
	char *port;
	(void)state;
	g_dir = tu_mkdtemp();
	if (env && *env) {
		snprintf(g_uri, sizeof(g_uri), "%s", env);
	} else {
		if (tu_sh("sh %s/tests/mongo/start.sh %s/mongo >/dev/null", src ? src : ".", g_dir) != 0)
			return -1;
		port = tu_read(g_dir, "mongo/port", NULL);
		char *pid = tu_read(g_dir, "mongo/pid", NULL);
		if (!port || !pid)
			return -1;
		g_pid = atoi(pid);
		snprintf(g_uri, sizeof(g_uri), "mongodb://127.0.0.1:%d", atoi(port));
		free(port);
		free(pid);
	}
	/* seed */
	mongoc_init();
	{
		bson_error_t err;
		mongoc_client_t *cl = mongoc_client_new(g_uri);
		mongoc_collection_t *co = mongoc_client_get_collection(cl, "app", "conversations");
		const char *docs[] = {
			"{\"session_id\":\"abc\",\"seq\":1,\"messages\":[\"hi\",\"there\"]}",
			"{\"session_id\":\"abc\",\"seq\":2,\"messages\":[\"again\"]}",
			"{\"session_id\":\"xyz\",\"seq\":1,\"messages\":[\"other\"]}",
		};
		for (int i = 0; i < 3; i++) {
			bson_t *b = bson_new_from_json((const uint8_t *)docs[i], -1, &err);
			bson_oid_t oid;
			bson_oid_init(&oid, NULL);
			BSON_APPEND_OID(b, "_id", &oid);
			if (!mongoc_collection_insert_one(co, b, NULL, NULL, &err)) {
				fprintf(stderr, "seed: %s\n", err.message);
				return -1;
			}
			bson_destroy(b);
		}
		mongoc_collection_destroy(co);
		mongoc_client_destroy(cl);
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (g_pid > 0)
		kill(g_pid, SIGTERM);
	if (g_hostile_pid > 0)
		kill(g_hostile_pid, SIGTERM);
	tu_rmrf(g_dir);
	free(g_dir);
	return 0;
}

static bkr_recover *engine(const char *ws, const char *json)
{
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover *rc = NULL;
	char stage[PATH_MAX];
	snprintf(stage, sizeof(stage), "%s/stage", g_dir);
	s.workspace = ws;
	s.recovery_json = json;
	s.staging_dir = stage;
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), 0);
	return rc;
}

static void test_recover_documents(void **state)
{
	char ws[PATH_MAX], json[4096], *got;
	bkr_recover *rc;
	bkr_recover_report *rep;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e, *doc;
	(void)state;
	snprintf(ws, sizeof(ws), "%s/ws", g_dir);
	tu_mkdirs(ws);
	snprintf(json, sizeof(json),
		 "{\"rules\":["
		 "{\"pattern\":\"conversations/{id}.json\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"%s\","
		 "\"database\":\"app\",\"collection\":\"conversations\",\"filter\":{\"session_id\":\"{id}\"},"
		 "\"sort\":{\"seq\":-1},\"projection\":{\"_id\":0}}]},"
		 "{\"pattern\":\"all/{id}.json\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"%s\","
		 "\"database\":\"app\",\"collection\":\"conversations\",\"filter\":{\"session_id\":\"{id}\"},"
		 "\"sort\":{\"seq\":1},\"projection\":{\"_id\":0},\"output\":\"array\"}]}]}",
		 g_uri, g_uri);
	rc = engine(ws, json);
	o.apply = true;
	root = tu_recover(rc, "conversations/abc.json", &o, &rep);
	e = tu_report_file(root, "conversations/abc.json");
	assert_string_equal(tu_str(e, "status"), "recovered");
	{
		cJSON *src = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "attempts"), 0), "source");
		assert_string_equal(tu_str(src, "collection"), "conversations");
		assert_string_equal(tu_str(cJSON_GetObjectItem(src, "filter"), "session_id"), "abc");
	}
	got = tu_read(ws, "conversations/abc.json", NULL);
	doc = cJSON_Parse(got);
	assert_non_null(doc);
	assert_string_equal(tu_str(doc, "session_id"), "abc");
	assert_int_equal(cJSON_GetObjectItem(doc, "seq")->valueint, 2); /* sort seq -1 */
	assert_null(cJSON_GetObjectItem(doc, "_id"));                   /* projection */
	cJSON_Delete(doc);
	free(got);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);

	assert_int_equal(bkr_recover_file(rc, "all/abc.json", &o, &rep), 0);
	got = tu_read(ws, "all/abc.json", NULL);
	doc = cJSON_Parse(got);
	assert_true(cJSON_IsArray(doc));
	assert_int_equal(cJSON_GetArraySize(doc), 2);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 0), "seq")->valueint, 1);
	cJSON_Delete(doc);
	free(got);
	bkr_recover_report_free(rep);

	/* no document matches */
	root = tu_recover(rc, "conversations/nobody.json", &o, &rep);
	e = tu_report_file(root, "conversations/nobody.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
	assert_false(tu_exists(ws, "conversations/nobody.json"));
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

static void test_unreachable(void **state)
{
	char ws[PATH_MAX], json[4096];
	bkr_recover *rc;
	bkr_recover_report *rep;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	(void)state;
	snprintf(ws, sizeof(ws), "%s/ws2", g_dir);
	tu_mkdirs(ws);
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"c/{id}.json\",\"strategies\":["
		 "{\"type\":\"mongodb\",\"uri\":\"mongodb://127.0.0.1:1\",\"database\":\"app\",\"collection\":\"c\","
		 "\"filter\":{\"session_id\":\"{id}\"},\"server_selection_timeout_ms\":500,\"connect_timeout_ms\":300},"
		 "{\"type\":\"mongodb\",\"uri\":\"%s\",\"database\":\"app\",\"collection\":\"conversations\","
		 "\"filter\":{\"session_id\":\"{id}\"},\"projection\":{\"_id\":0}}]}]}",
		 g_uri);
	rc = engine(ws, json);
	root = tu_recover(rc, "c/xyz.json", &o, &rep);
	e = tu_report_file(root, "c/xyz.json");
	/* the refused connection ends the first strategy (its error names the
	 * server), not a wait for a server: no elapsed time is asserted, which on
	 * a loaded machine failed */
	assert_string_equal(tu_attempt(e, 0, "result"), "unavailable");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "'127.0.0.1:1'"));
	assert_string_equal(tu_attempt(e, 1, "result"), "recovered");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

static int g_mongo_lines;

static void log_hook(void *ctx, bkr_log_level level, const char *component, const char *message,
		     const char *json_line)
{
	(void)ctx;
	(void)level;
	(void)json_line;
	if (strcmp(component, "recover") == 0 && strncmp(message, "mongodb: ", 9) == 0)
		g_mongo_lines++;
}

/* libmongoc's log lines (a failed SCRAM authentication, an unknown URI
 * option) went to stdout and stderr through its default handler, breaking
 * `bkr batch --json`; they now go to bkr's log only. */
static void test_log_not_on_stdout(void **state)
{
	char ws[PATH_MAX], json[4096], uri[512], cap[PATH_MAX], *out;
	bkr_recover *rc;
	bkr_recover_report *rep;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	int fd, save1, save2;
	size_t n = 0;
	(void)state;
	if (strncmp(g_uri, "mongodb://", 10) != 0 || strchr(g_uri, '@') || strchr(g_uri, '?'))
		skip();
	snprintf(uri, sizeof(uri), "mongodb://alice:pw@%s/?bkrNoSuchOption=1", g_uri + 10);
	snprintf(ws, sizeof(ws), "%s/ws3", g_dir);
	tu_mkdirs(ws);
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"c/{id}.json\",\"strategies\":["
		 "{\"type\":\"mongodb\",\"uri\":\"%s\",\"database\":\"app\",\"collection\":\"conversations\","
		 "\"filter\":{\"session_id\":\"{id}\"},\"server_selection_timeout_ms\":1500}]}]}",
		 uri);
	rc = engine(ws, json);
	bkr_log_set_level(BKR_LOG_DEBUG);
	bkr_log_set_hook(log_hook, NULL);
	g_mongo_lines = 0;
	snprintf(cap, sizeof(cap), "%s/captured", g_dir);
	fflush(stdout);
	fflush(stderr);
	fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	save1 = dup(1);
	save2 = dup(2);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	assert_int_equal(bkr_recover_file(rc, "c/xyz.json", &o, &rep), 0);
	fflush(stdout);
	fflush(stderr);
	dup2(save1, 1);
	dup2(save2, 2);
	close(save1);
	close(save2);
	bkr_log_set_hook(NULL, NULL);
	out = tu_read(g_dir, "captured", &n);
	if (n)
		fail_msg("printed by the mongodb strategy: %s", out);
	free(out);
	assert_true(g_mongo_lines > 0); /* in bkr's log instead */
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

static void expect_shown(const char *uri, const char *want)
{
	char *got = bkr_rec_mongo_uri_shown(uri);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("%s shown as %s, not %s", uri, got, want);
	free(got);
}

/* The report's URI: credentials were cut at the last '@' of the whole URI,
 * so a password option stayed and an '@' in an option mangled the rest. */
static void test_uri_shown(void **state)
{
	char ws[PATH_MAX], json[4096], uri[512];
	bkr_recover *rc;
	bkr_recover_report *rep;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *src;
	const char *shown;
	(void)state;
	expect_shown("mongodb://127.0.0.1:1/?tls=true&tlsCertificateKeyFilePassword=S3CRETPW&directConnection=true",
		     "mongodb://127.0.0.1:1/?tls=true&tlsCertificateKeyFilePassword=***&directConnection=true");
	expect_shown("mongodb://alice:S3CRETPW@127.0.0.1:1/?directConnection=true&appname=ops@example",
		     "mongodb://127.0.0.1:1/?directConnection=true&appname=ops@example");
	expect_shown("mongodb+srv://u:p%40ss@cluster0.example.net/app?authMechanismProperties=AWS_SESSION_TOKEN:S3",
		     "mongodb+srv://cluster0.example.net/app?authMechanismProperties=***");
	expect_shown("mongodb://u:p@ss@h1:27017,[::1]:27018,%2Ftmp%2Fm.sock/db",
		     "mongodb://h1:27017,[::1]:27018,%2Ftmp%2Fm.sock/db");
	expect_shown("mongodb://h", "mongodb://h");
	expect_shown("mongodb://h?", "mongodb://h");
	expect_shown("mongodb://h/?replicaSet=rs0;w=majority", "mongodb://h/?replicaSet=rs0&w=majority");
	/* an unencoded '/' or '?' in a password: nothing of the URI is shown */
	expect_shown("mongodb://u:pa/ss@h/db", "mongodb://(not shown: not a well-formed URI)");
	expect_shown("mongodb://u:pa?ss@h/db", "mongodb://(not shown: not a well-formed URI)");
	expect_shown("mongodb://u?S3CRET@h", "mongodb://(not shown: not a well-formed URI)");
	expect_shown("mongodb://h/?a%50ssword=x", "mongodb://(not shown: not a well-formed URI)");

	/* and in a report, against the server */
	if (strncmp(g_uri, "mongodb://", 10) != 0 || strchr(g_uri, '@') || strchr(g_uri, '?'))
		return;
	snprintf(uri, sizeof(uri),
		 "mongodb://alice:S3CRETPW@%s/?appname=ops@example&tlsCertificateKeyFilePassword=S3CRETPW", g_uri + 10);
	snprintf(ws, sizeof(ws), "%s/ws4", g_dir);
	tu_mkdirs(ws);
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"c/{id}.json\",\"strategies\":["
		 "{\"type\":\"mongodb\",\"uri\":\"%s\",\"database\":\"app\",\"collection\":\"conversations\","
		 "\"filter\":{\"session_id\":\"{id}\"},\"server_selection_timeout_ms\":500,\"connect_timeout_ms\":300}]}]}",
		 uri);
	rc = engine(ws, json);
	assert_int_equal(bkr_recover_file(rc, "c/xyz.json", &o, &rep), 0);
	assert_null(strstr(bkr_recover_report_json(rep), "S3CRETPW"));
	root = cJSON_Parse(bkr_recover_report_json(rep));
	src = cJSON_GetObjectItem(
		cJSON_GetArrayItem(cJSON_GetObjectItem(tu_report_file(root, "c/xyz.json"), "attempts"), 0), "source");
	shown = tu_str(src, "uri");
	assert_non_null(shown);
	assert_non_null(strstr(shown, "appname=ops@example"));
	assert_non_null(strstr(shown, g_uri + 10));
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* A reply whose batch holds a malformed document or elements that are not
 * documents was "not_found: no document matches": libmongoc stops reading the
 * batch there without an error.  It is "invalid" now, naming the reply.  So
 * is a document nested deeper than 150 levels: one a million levels deep
 * crashed bkr (bson_validate recursed off the stack), one 300 deep was
 * recovered as JSON cut to "{ ... }" (a .txt file: no JSON validator). */
static void test_malformed_reply(void **state)
{
	static const char *const coll[] = { "elements", "badlen", "deep", "deep300", "good", "loop" };
	const char *src = getenv("BKR_SOURCE_ROOT");
	char ws[PATH_MAX], json[4096], hdir[PATH_MAX], *port = NULL, *pid;
	bkr_recover *rc;
	bkr_recover_report *rep;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	(void)state;
	snprintf(hdir, sizeof(hdir), "%s/hostile", g_dir);
	tu_mkdirs(hdir);
	if (tu_sh("node %s/tests/mongo/hostile.mjs %s >%s/log 2>&1 & echo $! > %s/pid", src ? src : ".", hdir, hdir,
		  hdir) != 0)
		fail_msg("cannot start tests/mongo/hostile.mjs");
	pid = tu_read(hdir, "pid", NULL);
	g_hostile_pid = pid ? atoi(pid) : 0; /* stopped by group_teardown */
	free(pid);
	assert_true(g_hostile_pid > 0);
	/* until it listens, while it runs (a fixed 6 s ran out on a loaded
	 * machine, where node alone takes seconds to start); 2 minutes bound it */
	for (int64_t t0 = bkr_rec_now_ms(); !(port = tu_read(hdir, "port", NULL)); usleep(20000)) {
		if (kill(g_hostile_pid, 0) != 0 || bkr_rec_now_ms() - t0 > 120000) {
			char *log = tu_read(hdir, "log", NULL);
			fail_msg("tests/mongo/hostile.mjs did not listen: %s", log ? log : "(no output)");
		}
	}
	snprintf(ws, sizeof(ws), "%s/ws5", g_dir);
	tu_mkdirs(ws);
	for (int k = 0; k < 6; k++) {
		snprintf(json, sizeof(json),
			 "{\"rules\":[{\"pattern\":\"c/{id}.txt\",\"strategies\":["
			 "{\"type\":\"mongodb\",\"uri\":\"mongodb://127.0.0.1:%d/?directConnection=true\",\"database\":\"app\","
			 "\"collection\":\"%s\",\"filter\":{\"sid\":\"{id}\"},\"server_selection_timeout_ms\":2000,"
			 "\"output\":\"%s\",\"timeout\":2}]}]}",
			 atoi(port), coll[k], k == 5 ? "array" : "document");
		rc = engine(ws, json);
		alarm(120); /* the old code never returned from the cursor that never ends */
		root = tu_recover(rc, "c/s1.txt", &o, &rep);
		alarm(0);
		e = tu_report_file(root, "c/s1.txt");
		if (k < 4) {
			if (strcmp(tu_attempt(e, 0, "result"), "invalid") != 0)
				fail_msg("%s: %s: %s", coll[k], tu_attempt(e, 0, "result"), tu_attempt(e, 0, "error"));
			assert_non_null(strstr(tu_attempt(e, 0, "error"), "reply"));
		} else if (k == 4) {
			assert_string_equal(tu_attempt(e, 0, "result"), "recovered");
		} else {
			/* a cursor that never ends: the strategy's timeout holds */
			if (strcmp(tu_attempt(e, 0, "result"), "timeout") != 0 ||
			    !strstr(tu_attempt(e, 0, "error"), "app.loop"))
				fail_msg("loop: %s: %s", tu_attempt(e, 0, "result"), tu_attempt(e, 0, "error"));
		}
		cJSON_Delete(root);
		bkr_recover_report_free(rep);
		bkr_recover_free(rc);
	}
	free(port);
}

/* A result past the most a recovered file may hold (512 MiB, BKR_REC_MAX_FILE:
 * here a query's max_bytes of 160, through the module itself) was "result too
 * large", naming no collection and no limit. */
static void test_result_too_large(void **state)
{
	const char *build = getenv("BKR_BUILD_ROOT");
	char path[PATH_MAX];
	void *h;
	bkr_mongo_fetch_fn fetch;
	struct bkr_mongo_result r;
	struct bkr_mongo_query q = {
		.uri = g_uri,
		.database = "app",
		.collection = "conversations",
		.filter = "{\"session_id\": \"abc\"}",
		.key = "recovery.rules[2].strategies[0]",
		.as_array = 1,
		.server_selection_timeout_ms = 5000,
		.socket_timeout_ms = 5000,
		.connect_timeout_ms = 5000,
		.timeout_ms = 60000,
		.max_bytes = 160,
	};
	(void)state;
	snprintf(path, sizeof(path), "%s/engine/bkr-mongodb.so", build ? build : ".");
	if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
		fail_msg("%s", dlerror());
	assert_non_null(fetch = (bkr_mongo_fetch_fn)dlsym(h, "bkr_mongo_fetch"));
	assert_int_equal(fetch(&q, &r), BKR_MONGO_NOMEM);
	assert_null(r.data);
	assert_string_equal(r.msg,
			    "mongodb app.conversations: result too large: more than 160 bytes as JSON, the most "
			    "a recovered file may hold (1 document fit; recovery.rules[2].strategies[0].filter, "
			    ".projection or .limit make it smaller)");
	/* under the strategy's own limit the same query is whole */
	q.max_bytes = 512u << 20;
	assert_int_equal(fetch(&q, &r), BKR_MONGO_OK);
	assert_int_equal(r.ndocs, 2);
	free(r.data);
	dlclose(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recover_documents), cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_log_not_on_stdout), cmocka_unit_test(test_uri_shown),
		cmocka_unit_test(test_malformed_reply),   cmocka_unit_test(test_result_too_large),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
