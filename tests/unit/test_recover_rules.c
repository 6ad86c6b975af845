/** @file
 * Unit tests of the recovery rules: parsing the "recovery" section (every
 * error names the exact key), pattern matching with captures, placeholder
 * substitution, workspace-relative path hostility, and the JSON validator
 * (RFC 8259 syntax, no nesting limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../engine/recover/recover_i.h"
#include "bkr/error.h"
#include "test_recover_util.h"

static void expect_error(const char *json, const char *needle)
{
	bkr_recover_rules *r = (bkr_recover_rules *)0x1;
	int err = bkr_recover_rules_parse(&r, json, "bkr.json");
	assert_int_equal(err, BKR_EINVAL);
	assert_null(r);
	if (!strstr(bkr_error_message(), needle))
		fail_msg("message '%s' does not contain '%s'", bkr_error_message(), needle);
}

static void test_defaults(void **state)
{
	bkr_recover_rules *r = NULL;
	(void)state;
	assert_int_equal(bkr_recover_rules_parse(&r, NULL, "bkr.json"), 0);
	assert_int_equal(r->nrules, 0);
	assert_int_equal(r->fallback.n, 2);
	assert_int_equal(r->fallback.strategies[0].type, BKR_STRATEGY_BACKUP);
	assert_int_equal(r->fallback.strategies[1].type, BKR_STRATEGY_MANUAL);
	assert_true(r->json_default);
	bkr_recover_rules_free(r);
	bkr_recover_rules_free(NULL);
}

static void test_full(void **state)
{
	const char *json =
		"{\"rules\":[{\"pattern\":\"conversations/{id}.json\",\"strategies\":["
		"{\"type\":\"backup\",\"max_age\":\"7d\"},"
		"{\"type\":\"git\",\"ref\":\"main\",\"max_age\":3600},"
		"{\"type\":\"mongodb\",\"uri\":\"mongodb://127.0.0.1:1\",\"database\":\"app\",\"collection\":\"c\","
		"\"filter\":{\"session_id\":\"{id}\"},\"sort\":{\"t\":-1},\"projection\":{\"_id\":0},\"output\":\"array\","
		"\"server_selection_timeout_ms\":300,\"socket_timeout_ms\":400},"
		"{\"type\":\"regenerate\",\"command\":[\"gen\",\"{path}\",\"{output}\"],\"timeout\":\"2min\"},"
		"\"manual\"]}],"
		"\"validators\":[{\"pattern\":\"*.txt\",\"type\":\"nonempty\"},"
		"{\"pattern\":\"db/*\",\"type\":\"command\",\"command\":[\"check\",\"{path}\"],\"timeout\":5}],"
		"\"required_files\":[\"config/settings.json\"],\"protected_patterns\":[\"conversations/*\"],"
		"\"alert_command\":[\"alert\",\"--now\"],\"staging_dir\":\"/var/tmp/x\",\"_comment\":1}";
	bkr_recover_rules *r = NULL;
	(void)state;
	assert_int_equal(bkr_recover_rules_parse(&r, json, "bkr.json"), 0);
	assert_int_equal(r->nrules, 1);
	assert_int_equal(r->rules[0].n, 5);
	assert_int_equal(r->rules[0].strategies[0].max_age_s, 7 * 86400);
	assert_string_equal(r->rules[0].strategies[1].git_ref, "main");
	assert_int_equal(r->rules[0].strategies[1].max_age_s, 3600);
	assert_true(r->rules[0].strategies[2].as_array);
	assert_int_equal(r->rules[0].strategies[2].server_selection_timeout_ms, 300);
	assert_int_equal(r->rules[0].strategies[2].socket_timeout_ms, 400);
	assert_string_equal(r->rules[0].strategies[2].filter, "{\"session_id\":\"{id}\"}");
	assert_int_equal(r->rules[0].strategies[3].timeout_ms, 120000);
	assert_int_equal(r->rules[0].strategies[3].argc, 3);
	assert_int_equal(r->rules[0].strategies[4].type, BKR_STRATEGY_MANUAL);
	assert_int_equal(r->nvalidators, 2);
	assert_int_equal(r->validators[1].type, BKR_VALIDATE_COMMAND);
	assert_int_equal(r->validators[1].timeout_ms, 5000);
	assert_string_equal(r->required[0], "config/settings.json");
	assert_string_equal(r->alert[1], "--now");
	assert_null(r->alert[2]);
	assert_string_equal(r->staging_dir, "/var/tmp/x");
	bkr_recover_rules_free(r);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[\"backup\"]},"
		     "{\"pattern\":\"b\",\"strategies\":[\"backup\"]},"
		     "{\"pattern\":\"c\",\"strategies\":[{\"type\":\"regenerate\",\"command\":[\"x\"],\"timeout\":true}]}]}",
		     "bkr.json: key 'recovery.rules[2].strategies[0].timeout': expected a number");
	expect_error("{\"rulez\":[]}", "bkr.json: key 'recovery.rulez': unknown key");
	/* relative: another place from each directory bkr runs in (cron's, a unit's) */
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"git\",\"repository\":\"ws-git\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].repository': expected an absolute path");
	expect_error("{\"staging_dir\":\"staged\"}", "key 'recovery.staging_dir': expected an absolute path");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"regenerate\",\"command\":[\"./rebuild.sh\"]}]}]}",
		     "key 'recovery.rules[0].strategies[0].command': the program is a relative path");
	expect_error("{\"validators\":[{\"pattern\":\"a\",\"type\":\"command\",\"command\":[\"bin/check\",\"{path}\"]}]}",
		     "key 'recovery.validators[0].command': the program is a relative path");
	expect_error("{\"alert_command\":[\"./page\"]}", "key 'recovery.alert_command': the program is a relative path");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"teleport\"}]}]}",
		     "recovery.rules[0].strategies[0].type");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"regenerate\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].command': missing");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"x\",\"database\":\"d\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].collection': missing");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"http://db\",\"database\":\"d\","
		     "\"collection\":\"c\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].uri': expected a mongodb:// or mongodb+srv:// URI");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"mongodb://h\",\"database\":\"\","
		     "\"collection\":\"c\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].database': empty");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"mongodb://h\",\"database\":\"a.b\","
		     "\"collection\":\"c\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].database': a MongoDB database name holds none of");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"mongodb\",\"uri\":\"mongodb://h\",\"database\":\"d\","
		     "\"collection\":\"\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].collection': empty");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"git\",\"uri\":\"x\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].uri': unknown key");
	expect_error("{\"rules\":[{\"pattern\":\"../x\",\"strategies\":[\"backup\"]}]}",
		     "key 'recovery.rules[0].pattern': '..'");
	expect_error("{\"rules\":[{\"pattern\":\"/etc/x\",\"strategies\":[\"backup\"]}]}",
		     "key 'recovery.rules[0].pattern': patterns are relative");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[]}]}",
		     "key 'recovery.rules[0].strategies': expected a non-empty array");
	expect_error("{\"validators\":[{\"pattern\":\"a\",\"type\":\"xml\"}]}", "recovery.validators[0].type");
	expect_error("{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"backup\",\"max_age\":\"soon\"}]}]}",
		     "key 'recovery.rules[0].strategies[0].max_age': expected a duration");
	expect_error("{\"required_files\":[\"../../etc/passwd\"]}", "recovery.required_files[0]");
	expect_error("{\"rules\":[{\"pattern\":\"x/{}.json\",\"strategies\":[\"backup\"]}]}", "capture");
	expect_error("{\"rules\":[{\"pattern\":\"users/{id}/{id}.json\",\"strategies\":[\"backup\"]}]}",
		     "key 'recovery.rules[0].pattern': a capture name appears twice");
	{ /* names that only share a prefix are two names */
		bkr_recover_rules *r = NULL;
		assert_int_equal(bkr_recover_rules_parse(&r, "{\"rules\":[{\"pattern\":\"{id}/{id2}.json\",\"strategies\":[\"backup\"]}]}", "recovery"), 0);
		bkr_recover_rules_free(r);
	}
	expect_error("[1]", "key 'recovery': expected an object");
	expect_error("{\"rules\":", "not valid JSON");
}

static void test_match(void **state)
{
	bkr_rec_captures c;
	(void)state;
	assert_true(bkr_rec_match("conversations/{id}.json", "conversations/abc-1.json", &c));
	assert_int_equal(c.n, 1);
	assert_string_equal(c.name[0], "id");
	assert_string_equal(c.value[0], "abc-1");
	assert_false(bkr_rec_match("conversations/{id}.json", "conversations/a/b.json", &c));
	assert_false(bkr_rec_match("conversations/{id}.json", "conversations/.json", &c));
	assert_false(bkr_rec_match("conversations/{id}", "conversations/..", &c));
	assert_true(bkr_rec_match("{user}/{day}/log.json", "bob/2024-01-02/log.json", &c));
	assert_int_equal(c.n, 2);
	assert_string_equal(c.value[1], "2024-01-02");
	assert_true(bkr_rec_match("*.json", "deep/dir/x.json", NULL));
	assert_false(bkr_rec_match("a/*.json", "a/b/x.json", NULL));
	assert_true(bkr_rec_match("a/**.json", "a/b/x.json", NULL));
	assert_true(bkr_rec_match("data/?.bin", "data/7.bin", NULL));
	char *pats[] = { "conversations/*", "*.cfg" };
	assert_true(bkr_rec_glob_any(pats, 2, "conversations/x/y.json"));
	assert_true(bkr_rec_glob_any(pats, 2, "etc/app.cfg"));
	assert_false(bkr_rec_glob_any(pats, 2, "other/x.json"));
}

static void test_substitute(void **state)
{
	bkr_rec_captures c;
	char *s;
	(void)state;
	assert_true(bkr_rec_match("conv/{id}.json", "conv/42.json", &c));
	s = bkr_rec_substitute("--id={id} {path} {output} {unknown} {", &c, "/ws/conv/42.json", "/tmp/o", "/ws",
			       "conv/42.json");
	assert_string_equal(s, "--id=42 /ws/conv/42.json /tmp/o {unknown} {");
	free(s);
	assert_int_equal(bkr_rec_parse_duration("1d12h"), 86400 + 12 * 3600);
	assert_int_equal(bkr_rec_parse_duration("10min"), 600);
	assert_int_equal(bkr_rec_parse_duration("90"), 90);
	assert_int_equal(bkr_rec_parse_duration("x"), -1);
}

static void test_paths(void **state)
{
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover *rc = NULL;
	char *rel = NULL;
	(void)state;
	s.workspace = "/srv/ws/";
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), 0);
	assert_string_equal(rc->workspace, "/srv/ws");
	assert_int_equal(bkr_rec_relpath(rc, "a//b/./c.json", &rel), 0);
	assert_string_equal(rel, "a/b/c.json");
	free(rel);
	assert_int_equal(bkr_rec_relpath(rc, "/srv/ws/x/y", &rel), 0);
	assert_string_equal(rel, "x/y");
	free(rel);
	assert_int_equal(bkr_rec_relpath(rc, "../etc/passwd", &rel), BKR_EINVAL);
	assert_int_equal(bkr_rec_relpath(rc, "a/../../etc/passwd", &rel), BKR_EINVAL);
	assert_int_equal(bkr_rec_relpath(rc, "/etc/passwd", &rel), BKR_EINVAL);
	assert_int_equal(bkr_rec_relpath(rc, "/srv/wsx/a", &rel), BKR_EINVAL);
	assert_int_equal(bkr_rec_relpath(rc, "/srv/ws", &rel), BKR_EINVAL);
	assert_false(bkr_rec_rel_ok("a/../b"));
	assert_false(bkr_rec_rel_ok("/a"));
	assert_false(bkr_rec_rel_ok("a//b"));
	assert_true(bkr_rec_rel_ok("a/b"));
	bkr_recover_free(rc);

	s.workspace = "relative/ws";
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), BKR_EINVAL);
	s.workspace = "/srv/ws";
	s.recovery_json = "{\"rules\":[{\"pattern\":\"a\",\"strategies\":[{\"type\":\"git\",\"max_commits\":-1}]}]}";
	s.config_name = "my.json";
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "my.json: key 'recovery.rules[0].strategies[0].max_commits'"));
}

/* 1 valid, 0 invalid (with the reason in *why if asked) */
static int json_ok(bkr_recover *rc, const char *text, size_t len, char **why)
{
	char *w = NULL;
	int r = bkr_rec_validate(rc, "x.json", (const uint8_t *)text, len, false, &w);
	assert_true(r == 0 || r == 1);
	if (why)
		*why = w;
	else
		free(w);
	return r;
}

static char *nested(const char *open, const char *mid, const char *close, size_t depth)
{
	size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
	char *s = malloc(depth * (lo + lc) + lm + 1), *p = s;
	for (size_t i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, mid, lm);
	p += lm;
	for (size_t i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	*p = 0;
	return s;
}

/* The json validator must never call valid JSON invalid (batch --apply would
 * replace a newer good file with a backup): deep nesting (cJSON stopped at
 * 1000 levels) and a lone surrogate escape (cJSON refused it) are valid. */
static void test_json_validator(void **state)
{
	static const char *const good[] = {
		"{\"a\":\"\\ud800\"}", "\"\\udc00\\ud800x\"", "{}", "[]", " [ 1 , -0.5e+10 , 0 , 2E3 ] \n", "1", "-0",
		"\"x\"", "true", "null", "false", "{\"a\":{\"b\":[{},[],\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"]}}",
		"\xEF\xBB\xBF{\"bom\":1}", "{\"k\":1,\"k\":2}", "[\"caf\xC3\xA9\"]",
	};
	static const char *const bad[] = {
		" ", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "[1 2]", "tru", "nul", "\"\\x\"",
		"\"\\u12\"", "\"a\tb\"", "{} x", "]", "{1:2}", "[1]]", "'a'", "NaN", "+1", ".5", "1e", "\"abc",
	};
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover *rc = NULL;
	char *deep, *why;
	(void)state;
	s.workspace = "/srv/ws";
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (json_ok(rc, good[i], strlen(good[i]), NULL) != 1)
			fail_msg("valid JSON judged invalid: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (json_ok(rc, bad[i], strlen(bad[i]), NULL) != 0)
			fail_msg("invalid JSON judged valid: %s", bad[i]);
	/* nesting far beyond cJSON's 1000 levels */
	deep = nested("[", "\"NEW\"", "]", 1100);
	assert_int_equal(json_ok(rc, deep, strlen(deep), NULL), 1);
	free(deep);
	deep = nested("{\"a\":[", "1", "]}", 200000);
	assert_int_equal(json_ok(rc, deep, strlen(deep), NULL), 1);
	deep[strlen(deep) - 1] = ' '; /* one close missing */
	assert_int_equal(json_ok(rc, deep, strlen(deep), NULL), 0);
	free(deep);
	/* where the error is */
	assert_int_equal(json_ok(rc, "{\n  \"a\": 1,\n  }", 15, &why), 0);
	assert_string_equal(why, "not valid JSON (error at line 3, column 3)");
	free(why);
	assert_int_equal(json_ok(rc, "[1,", 3, &why), 0);
	assert_string_equal(why, "not valid JSON (error at line 1, column 4)");
	free(why);
	assert_int_equal(json_ok(rc, "{\"a\":1}\0", 8, &why), 0);
	assert_non_null(strstr(why, "NUL"));
	free(why);
	bkr_recover_free(rc);
}

static void test_strategy_names(void **state)
{
	bkr_strategy_type t;
	(void)state;
	for (int i = 0; i < BKR_STRATEGY_COUNT; i++) {
		assert_int_equal(bkr_strategy_parse(bkr_strategy_name((bkr_strategy_type)i), &t), 0);
		assert_int_equal((int)t, i);
	}
	assert_int_equal(bkr_strategy_parse("magic", &t), BKR_EINVAL);
	assert_string_equal(bkr_damage_name(BKR_DAMAGE_SILENT), "silent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_substitute),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_strategy_names),
		cmocka_unit_test(test_json_validator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
