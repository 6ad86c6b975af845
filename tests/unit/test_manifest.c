/** @file
 * Unit tests of engine/manifest.c: manifest encode/parse round trips of every
 * field, the checksummed-JSON seal and its verification, corrupt fixtures (not
 * JSON, truncated, bit edits, every required key missing, every key with a
 * wrong type, numbers out of range, bad ids), backup ids, and time strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/manifest.h"

struct fixture {
	bkr_manifest *m;   /**< fully populated */
	char *json;        /**< its sealed encoding */
	size_t len;
};

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	assert_non_null(p);
	return p;
}

static void fill_id(bkr_id *id, uint8_t seed)
{
	for (int i = 0; i < BKR_ID_SIZE; i++)
		id->b[i] = (uint8_t)(seed + i * 7);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	bkr_manifest *m;

	assert_non_null(f);
	m = f->m = bkr_manifest_new();
	assert_non_null(m);
	m->backup_id = xstrdup("backup_20261126_070000_incremental_1a2b3c4d");
	m->timestamp = xstrdup("2026-11-26T07:00:00.123456Z");
	assert_int_equal(bkr_time_parse(m->timestamp, &m->time_ns), 0);
	m->type = BKR_BACKUP_INCREMENTAL;
	m->parent = xstrdup("backup_20261125_070000_full_deadbeef");
	fill_id(&m->tree, 1);
	m->ntags = 2;
	m->tags = calloc(2, sizeof(char *));
	m->tags[0] = xstrdup("nightly");
	m->tags[1] = xstrdup("with \"quotes\" and ünïcode");
	m->nsources = 2;
	m->sources = calloc(2, sizeof(*m->sources));
	m->sources[0].source = xstrdup("workspace");
	m->sources[0].path = xstrdup("/srv/ws");
	m->sources[0].files_backed_up = 120;
	m->sources[0].total_size_bytes = 9007199254740991ULL; /* 2^53 - 1 */
	fill_id(&m->sources[0].tree, 2);
	m->sources[0].compression = xstrdup("zlib");
	m->sources[1].source = xstrdup("config");
	m->sources[1].path = xstrdup("/etc/svc");
	m->sources[1].files_backed_up = 3;
	m->sources[1].total_size_bytes = 4096;
	fill_id(&m->sources[1].tree, 3);
	m->sources[1].compression = xstrdup("none");
	m->hostname = xstrdup("host-1");
	m->workspace_root = xstrdup("/srv/ws");
	m->duration_seconds = 1.25;
	m->integrity_check = xstrdup("passed");
	m->restore_test = xstrdup("skipped");
	m->stats = (bkr_backup_stats){ 123, 4, 5000000000ULL, 1000, 4999999000ULL, 900, 3, 40, 7, 2 };
	m->pinned_until = xstrdup("2027-01-01T00:00:00.000000Z");
	m->nwarnings = 1;
	m->warnings = calloc(1, sizeof(char *));
	m->warnings[0] = xstrdup("file changed while read: a/b\nc");
	fill_id(&m->report, 9);
	assert_int_equal(bkr_manifest_encode(m, &f->json, &f->len), 0);
	assert_int_equal(strlen(f->json), f->len);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bkr_manifest_free(f->m);
	free(f->json);
	free(f);
	return 0;
}

static void assert_strv_equal(char **a, size_t na, char **b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_manifest_equal(const bkr_manifest *a, const bkr_manifest *b)
{
	assert_string_equal(a->backup_id, b->backup_id);
	assert_string_equal(a->timestamp, b->timestamp);
	assert_int_equal(a->time_ns, b->time_ns);
	assert_int_equal(a->type, b->type);
	if (a->parent)
		assert_string_equal(a->parent, b->parent);
	else
		assert_null(b->parent);
	assert_memory_equal(a->tree.b, b->tree.b, BKR_ID_SIZE);
	assert_strv_equal(a->tags, a->ntags, b->tags, b->ntags);
	assert_int_equal(a->nsources, b->nsources);
	for (size_t i = 0; i < a->nsources; i++) {
		assert_string_equal(a->sources[i].source, b->sources[i].source);
		assert_string_equal(a->sources[i].path, b->sources[i].path);
		assert_int_equal(a->sources[i].files_backed_up, b->sources[i].files_backed_up);
		assert_true(a->sources[i].total_size_bytes == b->sources[i].total_size_bytes);
		assert_memory_equal(a->sources[i].tree.b, b->sources[i].tree.b, BKR_ID_SIZE);
		assert_string_equal(a->sources[i].compression, b->sources[i].compression);
	}
	assert_string_equal(a->hostname, b->hostname);
	assert_string_equal(a->workspace_root, b->workspace_root);
	assert_true(a->duration_seconds == b->duration_seconds);
	assert_string_equal(a->integrity_check, b->integrity_check);
	assert_string_equal(a->restore_test, b->restore_test);
	assert_memory_equal(&a->stats, &b->stats, sizeof(a->stats));
	if (a->pinned_until)
		assert_string_equal(a->pinned_until, b->pinned_until);
	else
		assert_null(b->pinned_until);
	assert_strv_equal(a->warnings, a->nwarnings, b->warnings, b->nwarnings);
	assert_memory_equal(a->report.b, b->report.b, BKR_ID_SIZE);
}

/* ---- JSON surgery for corrupt fixtures ---------------------------------- */

/*
 * Find the parent of "a.b[2].c" in @p root; *key gets "c" (or NULL and *index
 * the element index when the last step is "[n]").
 */
static cJSON *walk(cJSON *root, const char *path, char *last, size_t cap)
{
	char buf[256], *save = NULL, *tok, *next;
	cJSON *cur = root;

	snprintf(buf, sizeof(buf), "%s", path);
	tok = strtok_r(buf, ".", &save);
	while (tok) {
		char *br = strchr(tok, '[');
		int idx = -1;
		next = strtok_r(NULL, ".", &save);
		if (br) {
			idx = atoi(br + 1);
			*br = '\0';
		}
		if (!next && idx < 0) {
			snprintf(last, cap, "%s", tok);
			return cur;
		}
		cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
		assert_non_null(cur);
		if (idx >= 0) {
			cur = cJSON_GetArrayItem(cur, idx);
			assert_non_null(cur);
		}
		tok = next;
	}
	fail_msg("bad path %s", path);
	return NULL;
}

/*
 * cJSON prints doubles with 15 significant digits when they compare "close
 * enough", which would change big integers: print integral numbers exactly.
 */
static void exact_numbers(cJSON *it)
{
	for (; it; it = it->next) {
		if (cJSON_IsNumber(it) && it->valuedouble == (double)(int64_t)it->valuedouble &&
		    it->valuedouble < 1e18 && it->valuedouble > -1e18) {
			char buf[32];
			snprintf(buf, sizeof(buf), "%lld", (long long)it->valuedouble);
			it->type = cJSON_Raw;
			it->valuestring = strdup(buf);
		}
		exact_numbers(it->child);
	}
}

/* Re-seal @p json after removing "sha256" and applying the edit. */
static char *edit(const char *json, const char *path, cJSON *replacement)
{
	cJSON *root = cJSON_Parse(json), *parent;
	char key[64], *text, *out = NULL;
	size_t len;

	assert_non_null(root);
	cJSON_DeleteItemFromObjectCaseSensitive(root, "sha256");
	if (path) {
		parent = walk(root, path, key, sizeof(key));
		if (replacement && cJSON_GetObjectItemCaseSensitive(parent, key))
			assert_true(cJSON_ReplaceItemInObjectCaseSensitive(parent, key, replacement));
		else if (replacement)
			assert_true(cJSON_AddItemToObject(parent, key, replacement));
		else
			cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
	}
	exact_numbers(root->child);
	text = cJSON_PrintUnformatted(root);
	assert_non_null(text);
	assert_int_equal(bkr_json_seal(text, &out, &len), 0);
	cJSON_free(text);
	cJSON_Delete(root);
	return out;
}

/* Parsing @p json must fail with BKR_ECORRUPT and a message containing each needle. */
static void expect_corrupt(const char *json, size_t len, const char *n1, const char *n2)
{
	bkr_manifest *m = (bkr_manifest *)1;
	int err = bkr_manifest_parse(&m, json, len, "backups/x.json");
	if (err != BKR_ECORRUPT)
		fail_msg("expected corrupt, got %d (%s) for %.300s", err, bkr_error_message(), json);
	assert_null(m);
	assert_non_null(strstr(bkr_error_message(), "backups/x.json"));
	if (n1 && !strstr(bkr_error_message(), n1))
		fail_msg("message '%s' lacks '%s'", bkr_error_message(), n1);
	if (n2 && !strstr(bkr_error_message(), n2))
		fail_msg("message '%s' lacks '%s'", bkr_error_message(), n2);
	assert_null(strchr(bkr_error_message(), '\n'));
}

/* ---- round trips ----------------------------------------------------------- */

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	bkr_manifest *m = NULL;
	char *again = NULL;
	size_t len;

	assert_int_equal(bkr_manifest_parse(&m, f->json, f->len, "backups/x.json"), 0);
	assert_non_null(m);
	assert_manifest_equal(f->m, m);
	/* the same manifest encodes to the same bytes */
	assert_int_equal(bkr_manifest_encode(m, &again, &len), 0);
	assert_int_equal(len, f->len);
	assert_string_equal(again, f->json);
	/* compact: no whitespace outside strings before the checksum */
	assert_null(strstr(f->json, "\": "));
	assert_non_null(strstr(f->json, "\"files_backed_up\":120"));
	assert_non_null(strstr(f->json, "\"total_size_bytes\":9007199254740991"));
	assert_non_null(strstr(f->json, "\"bytes\":5000000000"));
	free(again);
	bkr_manifest_free(m);
}

static void test_round_trip_minimal(void **state)
{
	bkr_manifest *m = bkr_manifest_new(), *back = NULL;
	char *json = NULL;
	size_t len;

	(void)state;
	m->backup_id = xstrdup("backup_20260101_000000_full_00000000");
	m->time_ns = 1767225600000000000LL; /* 2026-01-01 */
	m->type = BKR_BACKUP_FULL;
	assert_int_equal(bkr_manifest_encode(m, &json, &len), 0);
	assert_non_null(strstr(json, "\"parent\":null"));
	assert_non_null(strstr(json, "\"pinned_until\":null"));
	assert_non_null(strstr(json, "\"timestamp\":\"2026-01-01T00:00:00.000000Z\""));
	assert_null(strstr(json, "\"report\""));
	assert_int_equal(bkr_manifest_parse(&back, json, len, "m.json"), 0);
	assert_null(back->parent);
	assert_null(back->pinned_until);
	assert_int_equal(back->ntags, 0);
	assert_int_equal(back->nsources, 0);
	assert_int_equal(back->nwarnings, 0);
	assert_int_equal(back->time_ns, m->time_ns);
	assert_true(bkr_id_is_zero(&back->report));
	assert_string_equal(back->integrity_check, "skipped");
	bkr_manifest_free(back);
	free(json);

	/* pinned forever is "" and survives */
	m->pinned_until = xstrdup("");
	m->type = BKR_BACKUP_SNAPSHOT;
	assert_int_equal(bkr_manifest_encode(m, &json, &len), 0);
	assert_int_equal(bkr_manifest_parse(&back, json, len, "m.json"), 0);
	assert_string_equal(back->pinned_until, "");
	assert_int_equal(back->type, BKR_BACKUP_SNAPSHOT);
	bkr_manifest_free(back);
	free(json);
	bkr_manifest_free(m);
}

static void test_optional_keys_absent(void **state)
{
	struct fixture *f = *state;
	const char *opt[] = { "parent", "tags", "pinned_until", "warnings", "report",
			      "metadata.bkr_version", "stats.security_xattrs", "stats.acl_xattrs" };
	for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
		char *j = edit(f->json, opt[i], NULL);
		bkr_manifest *m = NULL;
		if (bkr_manifest_parse(&m, j, strlen(j), "x.json") != 0)
			fail_msg("without %s: %s", opt[i], bkr_error_message());
		bkr_manifest_free(m);
		free(j);
	}
	/* a manifest from before stats.security_xattrs / acl_xattrs: the counts
	 * are unknown, and stay absent when encoded again */
	{
		char *j0 = edit(f->json, "stats.security_xattrs", NULL), *j = edit(j0, "stats.acl_xattrs", NULL);
		char *again = NULL;
		bkr_manifest *m = NULL;
		size_t len;
		free(j0);
		assert_int_equal(bkr_manifest_parse(&m, j, strlen(j), "x.json"), 0);
		assert_true(m->stats.security_xattrs == BKR_STATS_UNKNOWN);
		assert_true(m->stats.acl_xattrs == BKR_STATS_UNKNOWN);
		assert_int_equal(bkr_manifest_encode(m, &again, &len), 0);
		assert_null(strstr(again, "security_xattrs"));
		assert_null(strstr(again, "acl_xattrs"));
		assert_non_null(strstr(f->json, "\"security_xattrs\":7"));
		assert_non_null(strstr(f->json, "\"acl_xattrs\":2"));
		bkr_manifest_free(m);
		free(again);
		free(j);
	}
	/* unknown keys are ignored (later versions may add fields) */
	{
		char *j = edit(f->json, "future_field", cJSON_CreateString("x"));
		bkr_manifest *m = NULL;
		assert_int_equal(bkr_manifest_parse(&m, j, strlen(j), "x.json"), 0);
		assert_manifest_equal(f->m, m);
		bkr_manifest_free(m);
		free(j);
	}
}

static void test_encode_refuses_huge_counter(void **state)
{
	struct fixture *f = *state;
	char *json = (char *)1;
	size_t len;

	f->m->stats.stored_bytes = 1ULL << 53;
	assert_int_equal(bkr_manifest_encode(f->m, &json, &len), BKR_EINVAL);
	assert_null(json);
	assert_non_null(strstr(bkr_error_message(), "stored_bytes"));
	f->m->stats.stored_bytes = UINT64_MAX;
	assert_int_equal(bkr_manifest_encode(f->m, &json, &len), BKR_EINVAL);
	f->m->stats.stored_bytes = 0;
	free(f->m->backup_id);
	f->m->backup_id = NULL;
	assert_int_equal(bkr_manifest_encode(f->m, &json, &len), BKR_EINVAL);
	f->m->backup_id = xstrdup("b");
}

static void test_to_json(void **state)
{
	struct fixture *f = *state;
	char *compact = bkr_manifest_to_json(f->m, false);
	char *pretty = bkr_manifest_to_json(f->m, true);
	cJSON *a, *b;

	assert_non_null(compact);
	assert_non_null(pretty);
	assert_null(strstr(compact, "sha256"));
	assert_null(strstr(pretty, "sha256"));
	assert_null(strchr(compact, '\n'));
	assert_non_null(strchr(pretty, '\n'));
	a = cJSON_Parse(compact);
	b = cJSON_Parse(pretty);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(cJSON_Compare(a, b, true));
	assert_string_equal(cJSON_GetObjectItem(a, "backup_id")->valuestring, f->m->backup_id);
	assert_string_equal(cJSON_GetObjectItem(a, "backup_type")->valuestring, "incremental");
	/* the sealed file is the compact form plus the checksum */
	assert_memory_equal(f->json, compact, strlen(compact) - 1);
	cJSON_Delete(a);
	cJSON_Delete(b);
	free(compact);
	free(pretty);
}

/* ---- seal / verify --------------------------------------------------------- */

static void test_seal_verify(void **state)
{
	char *s = NULL;
	size_t len;
	(void)state;

	assert_int_equal(bkr_json_seal("{}", &s, &len), 0);
	assert_int_equal(len, strlen("{\"sha256\":\"\"}") + 64);
	assert_int_equal(strncmp(s, "{\"sha256\":\"", 11), 0);
	assert_int_equal(bkr_json_verify(s, len, "t.json"), 0);
	free(s);

	assert_int_equal(bkr_json_seal("{\"a\":1,\"b\":\"x\"}", &s, &len), 0);
	assert_int_equal(strncmp(s, "{\"a\":1,\"b\":\"x\",\"sha256\":\"", 25), 0);
	assert_string_equal(s + len - 2, "\"}");
	assert_int_equal(bkr_json_verify(s, len, "t.json"), 0);
	/* the value is the SHA-256 of the text with the 64 hex chars zeroed */
	{
		char *z = strdup(s), hex[BKR_ID_HEX];
		bkr_id id;
		memset(z + len - 66, '0', 64);
		bkr_sha256(z, len, &id);
		bkr_id_to_hex(&id, hex);
		assert_memory_equal(s + len - 66, hex, 64);
		/* upper-case hex verifies too */
		memcpy(z, s, len);
		for (size_t i = len - 66; i < len - 2; i++)
			z[i] = (char)toupper((unsigned char)z[i]);
		assert_int_equal(bkr_json_verify(z, len, "t.json"), 0);
		free(z);
	}
	/* a trailing newline is tolerated */
	{
		char *nl = malloc(len + 2);
		memcpy(nl, s, len);
		nl[len] = '\n';
		nl[len + 1] = '\0';
		assert_int_equal(bkr_json_verify(nl, len + 1, "t.json"), 0);
		free(nl);
	}
	free(s);

	/* not objects */
	s = (char *)1;
	assert_int_equal(bkr_json_seal("[1]", &s, &len), BKR_EINVAL);
	assert_null(s);
	assert_int_equal(bkr_json_seal("", &s, &len), BKR_EINVAL);
}

static void expect_verify_fail(const char *text, size_t len, const char *needle)
{
	int err = bkr_json_verify(text, len, "f.json");
	if (err != BKR_ECORRUPT)
		fail_msg("verify of '%.200s' gave %d", text, err);
	assert_non_null(strstr(bkr_error_message(), "f.json"));
	if (needle && !strstr(bkr_error_message(), needle))
		fail_msg("message '%s' lacks '%s'", bkr_error_message(), needle);
}

static void test_verify_rejects(void **state)
{
	char *s = NULL, *c;
	size_t len;
	(void)state;

	assert_int_equal(bkr_json_seal("{\"a\":\"b\"}", &s, &len), 0);
	c = malloc(len + 100);

	/* missing member */
	expect_verify_fail("{\"a\":1}", 7, "no \"sha256\"");
	expect_verify_fail("", 0, NULL);
	expect_verify_fail("hello", 5, "not a JSON object");
	/* not last */
	snprintf(c, len + 100, "{\"sha256\":\"%.64s\",\"a\":\"b\"}", s + len - 66);
	expect_verify_fail(c, strlen(c), "not the last");
	/* non-hex */
	memcpy(c, s, len + 1);
	c[len - 10] = 'g';
	expect_verify_fail(c, len, "hex");
	/* wrong hash: one byte of content edited */
	memcpy(c, s, len + 1);
	c[6] = 'c';
	expect_verify_fail(c, len, "checksum mismatch");
	/* wrong hash: one hex digit changed */
	memcpy(c, s, len + 1);
	c[len - 3] = c[len - 3] == '0' ? '1' : '0';
	expect_verify_fail(c, len, "checksum mismatch");
	/* truncated at every length */
	for (size_t l = 0; l < len; l++)
		expect_verify_fail(s, l, NULL);
	/* hash too short */
	snprintf(c, len + 100, "{\"a\":\"b\",\"sha256\":\"%.63s\"}", s + len - 66);
	expect_verify_fail(c, strlen(c), NULL);
	/* the key inside a string value is not a member */
	snprintf(c, len + 100, "{\"a\":\"x\\\"sha256\\\":\\\"%.64s\"}", s + len - 66);
	expect_verify_fail(c, strlen(c), NULL);
	free(c);
	free(s);
}

/* ---- corrupt manifests -------------------------------------------------------- */

static void test_not_json(void **state)
{
	char *s = NULL;
	size_t len;
	(void)state;

	/* a valid checksum around text that is not JSON */
	assert_int_equal(bkr_json_seal("{this is not json}", &s, &len), 0);
	assert_int_equal(bkr_json_verify(s, len, "x"), 0);
	expect_corrupt(s, len, "not a valid JSON", NULL);
	free(s);
	expect_corrupt("not json at all", 15, NULL, NULL);
	expect_corrupt("", 0, NULL, NULL);
	/* an object with a good checksum but none of the keys */
	assert_int_equal(bkr_json_seal("{\"x\":1}", &s, &len), 0);
	expect_corrupt(s, len, "key 'backup_id'", "missing");
	free(s);
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	for (size_t l = 0; l < f->len; l += (l < 20 || l > f->len - 80) ? 1 : 17)
		expect_corrupt(f->json, l, NULL, NULL);
}

static void test_one_byte_edit(void **state)
{
	struct fixture *f = *state;
	char *c = strdup(f->json);
	/* change one digit of a counter: still valid JSON, wrong checksum */
	char *p = strstr(c, "\"files\":123");
	assert_non_null(p);
	p[8] = '7';
	expect_corrupt(c, f->len, "checksum mismatch", NULL);
	/* every single-bit flip in the first 200 bytes is caught */
	for (size_t i = 0; i < 200 && i < f->len; i++) {
		memcpy(c, f->json, f->len);
		c[i] ^= 0x01;
		expect_corrupt(c, f->len, NULL, NULL);
	}
	free(c);
}

static void test_required_keys_missing(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = {
		"backup_id", "timestamp", "backup_type", "tree", "sources", "metadata",
		"validation", "stats",
		"metadata.hostname", "metadata.workspace_root", "metadata.backup_duration_seconds",
		"validation.integrity_check", "validation.restore_test",
		"stats.files", "stats.dirs", "stats.bytes", "stats.new_bytes", "stats.reused_bytes",
		"stats.stored_bytes", "stats.new_blobs", "stats.reused_blobs",
		"sources[1].source", "sources[1].path", "sources[1].files_backed_up",
		"sources[1].total_size_bytes", "sources[1].checksum", "sources[1].compression",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *j = edit(f->json, keys[i], NULL), needle[96];
		snprintf(needle, sizeof(needle), "key '%s'", keys[i]);
		expect_corrupt(j, strlen(j), needle, "missing");
		free(j);
	}
}

static void test_wrong_types(void **state)
{
	struct fixture *f = *state;
	static const struct { const char *key; int kind; const char *expect; } cases[] = {
		/* kind: 0 number, 1 string, 2 object, 3 array, 4 bool, 5 null */
		{ "backup_id", 0, "expected a string" },
		{ "timestamp", 4, "expected a string" },
		{ "backup_type", 3, "expected a string" },
		{ "parent", 0, "expected a string or null" },
		{ "tree", 0, "expected a string" },
		{ "tags", 1, "expected an array of strings" },
		{ "sources", 2, "expected an array" },
		{ "metadata", 3, "expected an object" },
		{ "validation", 1, "expected an object" },
		{ "stats", 0, "expected an object" },
		{ "metadata.hostname", 0, "expected a string" },
		{ "metadata.workspace_root", 5, "expected a string" },
		{ "metadata.backup_duration_seconds", 1, "expected a number" },
		{ "metadata.bkr_version", 0, "expected a string" },
		{ "validation.integrity_check", 4, "expected a string" },
		{ "validation.restore_test", 0, "expected a string" },
		{ "stats.files", 1, "expected a number" },
		{ "stats.dirs", 5, "expected a number" },
		{ "stats.bytes", 3, "expected a number" },
		{ "stats.new_bytes", 4, "expected a number" },
		{ "stats.reused_bytes", 2, "expected a number" },
		{ "stats.stored_bytes", 1, "expected a number" },
		{ "stats.security_xattrs", 1, "expected a number" },
		{ "stats.acl_xattrs", 1, "expected a number" },
		{ "stats.new_blobs", 1, "expected a number" },
		{ "stats.reused_blobs", 1, "expected a number" },
		{ "sources[1].source", 0, "expected a string" },
		{ "sources[1].path", 3, "expected a string" },
		{ "sources[1].files_backed_up", 1, "expected a number" },
		{ "sources[1].total_size_bytes", 4, "expected a number" },
		{ "sources[1].checksum", 0, "expected a string" },
		{ "sources[1].compression", 5, "expected a string" },
		{ "pinned_until", 0, "expected a string or null" },
		{ "warnings", 2, "expected an array of strings" },
		{ "report", 0, "expected a string" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *v;
		char *j, needle[96];
		switch (cases[i].kind) {
		case 0: v = cJSON_CreateNumber(5); break;
		case 1: v = cJSON_CreateString("x"); break;
		case 2: v = cJSON_CreateObject(); break;
		case 3: v = cJSON_CreateArray(); break;
		case 4: v = cJSON_CreateTrue(); break;
		default: v = cJSON_CreateNull(); break;
		}
		j = edit(f->json, cases[i].key, v);
		snprintf(needle, sizeof(needle), "key '%s'", cases[i].key);
		expect_corrupt(j, strlen(j), needle, cases[i].expect);
		free(j);
	}
	/* array elements of the wrong type */
	{
		cJSON *arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, cJSON_CreateString("ok"));
		cJSON_AddItemToArray(arr, cJSON_CreateNumber(1));
		char *j = edit(f->json, "tags", arr);
		expect_corrupt(j, strlen(j), "key 'tags'", "expected an array of strings");
		free(j);
		arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, cJSON_CreateString("not an object"));
		j = edit(f->json, "sources", arr);
		expect_corrupt(j, strlen(j), "key 'sources[0]'", "expected an object");
		free(j);
	}
}

static void test_huge_numbers(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "1e300", "18446744073709551616", "9007199254740992",
					   "-1", "1.5", "1e16" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *j = edit(f->json, "stats.bytes", cJSON_CreateRaw(bad[i]));
		expect_corrupt(j, strlen(j), "key 'stats.bytes'", "2^53");
		free(j);
	}
	/* the raw text of a 20-digit number too */
	{
		char *j = edit(f->json, "sources[0].files_backed_up",
			       cJSON_CreateRaw("99999999999999999999"));
		expect_corrupt(j, strlen(j), "key 'sources[0].files_backed_up'", "2^53");
		free(j);
		j = edit(f->json, "sources[0].files_backed_up", cJSON_CreateRaw("9007199254740993"));
		expect_corrupt(j, strlen(j), "files_backed_up", "2^53");
		free(j);
	}
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	static const struct { const char *key; const char *value; const char *expect; } cases[] = {
		{ "tree", "zz5e0000000000000000000000000000000000000000000000000000000000ff", "hex id" },
		{ "tree", "abcd", "hex id" },
		{ "sources[0].checksum", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeX", "hex id" },
		{ "report", "", "hex id" },
		{ "backup_type", "weekly", "unknown backup type" },
		{ "timestamp", "yesterday", "ISO-8601" },
		{ "timestamp", "2026-02-30T00:00:00Z", "ISO-8601" },
		{ "pinned_until", "soon", "ISO-8601" },
		{ "backup_id", "../../etc/passwd", "not a valid backup id" },
		{ "backup_id", "", "not a valid backup id" },
		{ "parent", "a/b", "not a valid backup id" },
		{ "sources[1].source", "workspace", "repeats" },
		{ "sources[0].source", "a/b", "not a valid directory name" },
		{ "sources[0].source", "..", "not a valid directory name" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *j = edit(f->json, cases[i].key, cJSON_CreateString(cases[i].value)), needle[96];
		snprintf(needle, sizeof(needle), "key '%s'", cases[i].key);
		expect_corrupt(j, strlen(j), needle, cases[i].expect);
		free(j);
	}
}

/* Duplicate checks are O(n log n): a 2.5 MB manifest of 200,000 keys in one
 * object, and one of 100,000 sources, each with a repeat at the end, are
 * refused naming the repeat (this took minutes when they were O(n^2)). */
static void test_many_keys(void **state)
{
	struct fixture *f = *state;
	enum { N = 200000 };
	size_t cap = (size_t)N * 24 + 64, n = 0, len;
	char *text = malloc(cap), *j = NULL;
	cJSON *root = cJSON_Parse(f->json), *src, *one;

	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n, "{\"pad\":{");
	for (int i = 0; i < N; i++)
		n += (size_t)snprintf(text + n, cap - n, "\"k%d\":%d,", i, i);
	n += (size_t)snprintf(text + n, cap - n, "\"k%d\":0}}", N / 2);
	assert_true(n > 2500000);
	assert_int_equal(bkr_json_seal(text, &j, &len), 0);
	expect_corrupt(j, len, "key 'k100000'", "twice");
	free(j);
	free(text);

	/* sources: 100,000, the last repeating the first's name */
	cJSON_DeleteItemFromObject(root, "sha256");
	src = cJSON_GetObjectItemCaseSensitive(root, "sources");
	one = cJSON_Duplicate(cJSON_GetArrayItem(src, 0), true);
	while (cJSON_GetArraySize(src) > 0)
		cJSON_DeleteItemFromArray(src, 0);
	for (int i = 0; i < N / 2; i++) {
		char name[32];
		cJSON *s = cJSON_Duplicate(one, true);
		snprintf(name, sizeof(name), "s%d", i == N / 2 - 1 ? 7 : i);
		cJSON_ReplaceItemInObjectCaseSensitive(s, "source", cJSON_CreateString(name));
		cJSON_AddItemToArray(src, s);
	}
	exact_numbers(root->child);
	text = cJSON_PrintUnformatted(root);
	assert_int_equal(bkr_json_seal(text, &j, &len), 0);
	expect_corrupt(j, len, "key 'sources[99999].source'", "repeats");
	cJSON_free(text);
	cJSON_Delete(one);
	cJSON_Delete(root);
	free(j);
}

static void test_duplicate_key(void **state)
{
	struct fixture *f = *state;
	char *text, *j = NULL;
	size_t len;
	cJSON *root = cJSON_Parse(f->json);

	cJSON_DeleteItemFromObject(root, "sha256");
	cJSON_AddItemToObject(root, "backup_id", cJSON_CreateString("backup_other"));
	text = cJSON_PrintUnformatted(root);
	assert_int_equal(bkr_json_seal(text, &j, &len), 0);
	expect_corrupt(j, len, "key 'backup_id'", "twice");
	cJSON_free(text);
	cJSON_Delete(root);
	free(j);
}

/* ---- ids, types, time ----------------------------------------------------------- */

static void test_backup_types(void **state)
{
	static const char *const names[] = { "full", "incremental", "differential", "snapshot", "recovery" };
	bkr_backup_type t;
	(void)state;
	for (int i = 0; i < 5; i++) {
		assert_string_equal(bkr_backup_type_name((bkr_backup_type)i), names[i]);
		assert_int_equal(bkr_backup_type_parse(names[i], &t), 0);
		assert_int_equal(t, i);
	}
	assert_int_equal(bkr_backup_type_parse("Full", &t), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "'Full'"));
	assert_int_equal(bkr_backup_type_parse("", &t), BKR_EINVAL);
	assert_int_equal(bkr_backup_type_parse(NULL, &t), BKR_EINVAL);
	assert_string_equal(bkr_backup_type_name((bkr_backup_type)42), "unknown");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_backup_id(void **state)
{
	enum { N = 2000 };
	char **ids = calloc(N, sizeof(char *)), small[20];
	int64_t t = 1795676400123456789LL; /* 2026-11-26T07:00:00.123456789Z */
	(void)state;

	for (int i = 0; i < N; i++) {
		char id[80];
		assert_int_equal(bkr_backup_id_new(id, sizeof(id), BKR_BACKUP_FULL, t), 0);
		assert_int_equal(strlen(id), strlen("backup_20261126_070000_full_") + 8);
		assert_int_equal(strncmp(id, "backup_20261126_070000_full_", 28), 0);
		for (int k = 28; k < 36; k++)
			assert_true(isxdigit((unsigned char)id[k]) && !isupper((unsigned char)id[k]));
		ids[i] = strdup(id);
	}
	qsort(ids, N, sizeof(char *), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	for (int i = 0; i < N; i++)
		free(ids[i]);
	free(ids);

	{
		char id[80];
		assert_int_equal(bkr_backup_id_new(id, sizeof(id), BKR_BACKUP_DIFFERENTIAL, 0), 0);
		assert_int_equal(strncmp(id, "backup_19700101_000000_differential_", 36), 0);
		assert_int_equal(bkr_backup_id_new(id, sizeof(id), BKR_BACKUP_SNAPSHOT,
						   bkr_time_now_ns()), 0);
		assert_non_null(strstr(id, "_snapshot_"));
	}
	assert_int_equal(bkr_backup_id_new(small, sizeof(small), BKR_BACKUP_FULL, t), BKR_EINVAL);
	assert_int_equal(bkr_backup_id_new(small, sizeof(small), (bkr_backup_type)9, t), BKR_EINVAL);
}

static void test_time_format(void **state)
{
	char s[32];
	(void)state;
	bkr_time_format(s, 0);
	assert_string_equal(s, "1970-01-01T00:00:00.000000Z");
	bkr_time_format(s, 1795676400123456789LL);
	assert_string_equal(s, "2026-11-26T07:00:00.123456Z");
	bkr_time_format(s, -1); /* one ns before the epoch */
	assert_string_equal(s, "1969-12-31T23:59:59.999999Z");
	bkr_time_format(s, 951782400000000000LL); /* leap day 2000 */
	assert_string_equal(s, "2000-02-29T00:00:00.000000Z");
}

static void test_time_parse(void **state)
{
	static const struct { const char *s; int64_t ns; } ok[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "1970-01-01", 0 },
		{ "2026-11-26", 1795651200000000000LL },
		{ "2026-11-26T07:00:00Z", 1795676400000000000LL },
		{ "2026-11-26T07:00:00.1Z", 1795676400100000000LL },
		{ "2026-11-26T07:00:00.123456Z", 1795676400123456000LL },
		{ "2026-11-26T07:00:00.123456789Z", 1795676400123456789LL },
		{ "2026-11-26t07:00:00z", 1795676400000000000LL },
		{ "2026-11-26 07:00:00Z", 1795676400000000000LL },
		{ "2026-11-26T08:30:00+01:30", 1795676400000000000LL },
		{ "2026-11-26T05:00:00.5-02:00", 1795676400500000000LL },
		{ "1969-12-31T23:59:59.999999999Z", -1 },
		{ "2000-02-29T12:00:00Z", 951825600000000000LL },
		/* the ends of int64 nanoseconds, whole seconds and to the nanosecond */
		{ "2262-04-11T23:47:16Z", 9223372036000000000LL },
		{ "2262-04-11T23:47:16.854775807Z", INT64_MAX },
		{ "2262-04-12T01:47:16+02:00", 9223372036000000000LL },
		{ "1677-09-21T00:12:44Z", -9223372036000000000LL },
		{ "1677-09-21T00:12:43.145224192Z", INT64_MIN },
		{ "1677-09-21T00:12:43.5Z", -9223372036500000000LL },
	};
	static const char *const bad[] = {
		"", "junk", "2026", "2026-11", "2026-13-01", "2026-00-10", "2026-02-29",
		"2026-11-31", "2026-11-26T", "2026-11-26T07:00Z", "2026-11-26T07:00:00",
		"2026-11-26T24:00:00Z", "2026-11-26T07:60:00Z", "2026-11-26T07:00:61Z",
		"2026-11-26T07:00:00.Z", "2026-11-26T07:00:00.1234567890Z",
		"2026-11-26T07:00:00Zjunk", "2026-11-26X07:00:00Z", " 2026-11-26",
		"2026-11-26T07:00:00+1:00", "2026-11-26T07:00:00+01", "9999-12-31T00:00:00Z",
		"1600-01-01", "2026-1-26", "2262-04-11T23:47:17Z", "2262-04-11T23:47:16.854775808Z",
		"2262-04-12", "1677-09-21T00:12:43Z", "1677-09-21T00:12:43.145224191Z", "1677-09-21",
	};
	int64_t ns;
	char s[32];
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (bkr_time_parse(ok[i].s, &ns) != 0)
			fail_msg("'%s': %s", ok[i].s, bkr_error_message());
		if (ns != ok[i].ns)
			fail_msg("'%s' -> %lld, want %lld", ok[i].s, (long long)ns, (long long)ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bkr_time_parse(bad[i], &ns) != BKR_EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		if (*bad[i] && !strstr(bkr_error_message(), bad[i]))
			fail_msg("message '%s' does not name '%s'", bkr_error_message(), bad[i]);
	}
	assert_int_equal(bkr_time_parse(NULL, &ns), BKR_EINVAL);

	/* format -> parse keeps microseconds */
	for (int64_t t = -86400LL * 1000000000 * 365; t < 4102444800000000000LL;
	     t += 123456789123457LL) {
		int64_t us = t - ((t % 1000) + 1000) % 1000; /* floor to a microsecond */
		bkr_time_format(s, t);
		assert_int_equal(bkr_time_parse(s, &ns), 0);
		assert_int_equal(ns, us);
	}
	/* now is plausible */
	ns = bkr_time_now_ns();
	assert_true(ns > 1700000000000000000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test(test_round_trip_minimal),
		cmocka_unit_test_setup_teardown(test_optional_keys_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_refuses_huge_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_to_json, setup, teardown),
		cmocka_unit_test(test_seal_verify),
		cmocka_unit_test(test_verify_rejects),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_byte_edit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_keys_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
		cmocka_unit_test(test_backup_types),
		cmocka_unit_test(test_backup_id),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_time_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
