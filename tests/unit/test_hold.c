/** @file
 * Unit tests for hold.c: holds and releases in a real repository - a release
 * ends the hold it names by path and time whatever the order of the records
 * (a clock behind), several holds of one path, a release without "since",
 * damaged and foreign records skipped, a read-only repository refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/repo.h"
#include "testutil.h"

/* A record under an explicit name (its time order), sealed as the catalog seals them. */
static void put(const char *repo, const char *name, const char *json)
{
	char path[4400], *sealed = NULL;
	size_t len;
	FILE *f;
	assert_int_equal(bkr_json_seal(json, &sealed, &len), 0);
	snprintf(path, sizeof(path), "%s/records/%s.json", repo, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(sealed, 1, len, f), len);
	fclose(f);
	free(sealed);
}

/* A new repository @p repo in a new directory @p dir, open. */
static bkr_repo *fresh(char dir[4096], char repo[4200], const char *tag)
{
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_repo *r = NULL;
	assert_int_equal(tu_mkdtemp_in(dir, 4096, tag), 0);
	snprintf(repo, 4200, "%s/repo", dir);
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	return r;
}

static void test_holds(void **state)
{
	char dir[4096], repo[4200], rec[4300];
	bkr_repo *r = fresh(dir, repo, "hold");
	bkr_holds h;
	FILE *f;
	(void)state;
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 0);

	assert_int_equal(bkr_hold_add(r, "ws/a.json", "backup_a", "missing", 12, "host"), 0);
	assert_int_equal(bkr_hold_add(r, "ws/b.json", "backup_b", "truncated", 7, NULL), 0);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.v[0].path, "ws/a.json");
	assert_string_equal(h.v[0].backup_id, "backup_a");
	assert_string_equal(h.v[0].damage, "missing");
	assert_string_equal(h.v[0].host, "host");
	assert_true(h.v[0].size == 12);
	assert_null(h.v[1].host);
	assert_non_null(bkr_holds_find(&h, "ws/b.json"));
	assert_null(bkr_holds_find(&h, "ws/c.json"));
	/* released: gone, the other stays */
	assert_int_equal(bkr_hold_release(r, &h.v[0], "recovered"), 0);
	bkr_holds_free(&h);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.v[0].path, "ws/b.json");
	bkr_holds_free(&h);

	/* a release named before the hold it ends (its host's clock behind) still ends it;
	 * a second hold of that path, at another time, stays */
	put(repo, "00000000000000000001-00000000",
	    "{\"kind\":\"release\",\"time\":\"2020-01-01T00:00:00Z\",\"path\":\"ws/c.json\",\"since\":\"2030-01-01T00:00:00Z\",\"by\":\"operator\"}");
	put(repo, "99999999999999999990-00000000",
	    "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/c.json\",\"backup_id\":\"backup_c1\",\"damage\":\"missing\"}");
	put(repo, "99999999999999999991-00000000",
	    "{\"kind\":\"hold\",\"time\":\"2030-01-02T00:00:00Z\",\"path\":\"ws/c.json\",\"backup_id\":\"backup_c2\",\"damage\":\"missing\"}");
	/* no backup_id: no hold; another kind: not ours */
	put(repo, "99999999999999999992-00000000", "{\"kind\":\"hold\",\"time\":\"2030-01-02T00:00:00Z\",\"path\":\"ws/d.json\"}");
	put(repo, "99999999999999999994-00000000", "{\"kind\":\"pin\",\"path\":\"ws/f.json\",\"backup_id\":\"x\",\"time\":\"2030-01-02T00:00:00Z\"}");
	/* a damaged record is skipped */
	snprintf(rec, sizeof(rec), "%s/records/99999999999999999995-ffffffff.json", repo);
	assert_non_null(f = fopen(rec, "w"));
	fputs("{\"kind\":\"release\",\"path\":\"ws/b.json\",\"sha256\":\"00\"}", f);
	fclose(f);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.v[0].path, "ws/b.json");
	assert_string_equal(h.v[1].path, "ws/c.json");
	assert_string_equal(h.v[1].backup_id, "backup_c2");
	/* the hold without a backup and the damaged release: a warning each, naming the record */
	assert_int_equal(h.nwarnings, 2);
	assert_non_null(strstr(h.warnings[0], "99999999999999999992-00000000.json: a hold record without a backup_id"));
	assert_non_null(strstr(h.warnings[1], "99999999999999999995-ffffffff.json: a damaged release record (its checksum does not "
						 "match): ignored, the holds of ws/b.json stay in force"));
	bkr_holds_free(&h);
	/* a release without "since" ends every hold of its path */
	put(repo, "99999999999999999996-00000000", "{\"kind\":\"release\",\"time\":\"2030-01-03T00:00:00Z\",\"path\":\"ws/b.json\"}");
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.v[0].path, "ws/c.json");
	bkr_holds_free(&h);
	bkr_repo_free(r);
	/* read-only: refused */
	assert_int_equal(bkr_repo_open(&r, repo, BKR_REPO_RDONLY), 0);
	assert_int_equal(bkr_hold_add(r, "ws/x", "b", "missing", 1, NULL), BKR_EUNSUPPORTED);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

/* A hold of @p path in @p h, or fail. */
static const bkr_hold *held(const bkr_holds *h, const char *path)
{
	const bkr_hold *x = bkr_holds_find(h, path);
	if (!x)
		fail_msg("no hold of %s", path);
	return x;
}

/* @p h has a warning that holds @p part, on one line. */
static void warned(const bkr_holds *h, const char *part)
{
	for (size_t i = 0; i < h->nwarnings; i++) {
		assert_null(strchr(h->warnings[i], '\n'));
		if (strstr(h->warnings[i], part))
			return;
	}
	for (size_t i = 0; i < h->nwarnings; i++)
		print_message("warning: %s\n", h->warnings[i]);
	fail_msg("no warning '%s'", part);
}

/*
 * Bad hold and release records (a field missing, of another type or no
 * time; damaged; a path with a newline or bytes that are not UTF-8; a large
 * one): each is one line of warning naming the record, never a crash, and
 * none ends a hold or lets a backup a hold names go - a hold that names a
 * path and a backup is in force whatever else is wrong with it, and a
 * release that cannot say which holds it ends ends none.
 */
static void test_bad_records(void **state)
{
	char dir[4096], repo[4200], rec[4300], *big, *text;
	bkr_repo *r = fresh(dir, repo, "hold-bad");
	bkr_holds h;
	FILE *f;
	(void)state;

	/* no time, a time that is no time: in force since an unknown time */
	put(repo, "00000000000000000001-00000000", "{\"kind\":\"hold\",\"path\":\"ws/notime\",\"backup_id\":\"b1\"}");
	put(repo, "00000000000000000002-00000000",
	    "{\"kind\":\"hold\",\"time\":\"yesterday\\nfake line\",\"path\":\"ws/badtime\",\"backup_id\":\"b2\"}");
	put(repo, "00000000000000000003-00000000", "{\"kind\":\"hold\",\"time\":7,\"path\":\"ws/numtime\",\"backup_id\":\"b3\"}");
	/* odd types elsewhere: a number for a path or a backup is none; damage, size, host taken or defaulted
	 * (a record that does not decode: one warning, the hold in force) */
	put(repo, "00000000000000000004-00000000", "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":5,\"backup_id\":\"b4\"}");
	put(repo, "00000000000000000005-00000000", "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"\",\"backup_id\":\"b5\"}");
	put(repo, "00000000000000000006-00000000",
	    "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/odd\",\"backup_id\":\"b6\",\"damage\":[1],"
	    "\"size\":-4,\"host\":{}}");
	/* a path with a newline and a byte that is not UTF-8, its time fine */
	put(repo, "00000000000000000007-00000000",
	    "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\\nb\xff\",\"backup_id\":\"b7\",\"damage\":\"missing\"}");
	/* a damaged hold (checksum) that still reads: taken as it reads */
	snprintf(rec, sizeof(rec), "%s/records/00000000000000000008-ffffffff.json", repo);
	assert_non_null(f = fopen(rec, "w"));
	fputs("{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/damaged\",\"backup_id\":\"b8\",\"sha256\":\"00\"}", f);
	fclose(f);
	/* releases that cannot say what they end: a "since" that is no string, no path */
	put(repo, "00000000000000000009-00000000",
	    "{\"kind\":\"release\",\"time\":\"2030-01-02T00:00:00Z\",\"path\":\"ws/odd\",\"since\":20300101}");
	put(repo, "00000000000000000010-00000000", "{\"kind\":\"release\",\"time\":\"2030-01-02T00:00:00Z\",\"since\":\"2030-01-01T00:00:00Z\"}");
	/* a large one: a path of 300 KB, no time */
	assert_non_null(big = malloc(300000));
	memset(big, 'p', 300000 - 1);
	big[300000 - 1] = '\0';
	assert_non_null(text = malloc(300200));
	snprintf(text, 300200, "{\"kind\":\"hold\",\"path\":\"ws/%s\",\"backup_id\":\"b9\"}", big);
	put(repo, "00000000000000000011-00000000", text);
	free(text);

	assert_int_equal(bkr_holds_read(r, &h), 0);
	/* in force: notime, badtime, numtime, odd, the odd path, damaged, the large one */
	assert_int_equal(h.n, 7);
	assert_null(held(&h, "ws/notime")->since);
	assert_false(held(&h, "ws/notime")->since_known);
	assert_false(held(&h, "ws/badtime")->since_known);
	assert_null(held(&h, "ws/numtime")->since);
	assert_string_equal(held(&h, "ws/odd")->damage, "damaged");
	assert_true(held(&h, "ws/odd")->size == 0);
	assert_null(held(&h, "ws/odd")->host);
	assert_string_equal(held(&h, "ws/a\nb\xff")->backup_id, "b7");
	assert_string_equal(held(&h, "ws/damaged")->backup_id, "b8");
	assert_true(held(&h, "ws/odd")->since_known);
	warned(&h, "00000000000000000001-00000000.json: the hold of ws/notime has no time: in force since an unknown time");
	warned(&h, "00000000000000000002-00000000.json: the hold of ws/badtime has a time that is no time (yesterday\\x0afake line)");
	warned(&h, "00000000000000000003-00000000.json: the hold of ws/numtime has no time");
	warned(&h, "00000000000000000004-00000000.json: a hold record without a path: ignored");
	warned(&h, "00000000000000000005-00000000.json: a hold record without a path: ignored");
	warned(&h, "00000000000000000006-00000000.json: a hold record that does not decode (the hold record's \"damage\" "
		   "is not a string): taken as it reads, backup b6 is kept until 'bkr hold release' ends it");
	warned(&h, "00000000000000000008-ffffffff.json: a damaged hold record (its checksum does not match) of ws/damaged");
	warned(&h, "00000000000000000009-00000000.json: the release of ws/odd has a \"since\" that is not a string: ignored");
	warned(&h, "00000000000000000010-00000000.json: a release record without a path: ignored");
	warned(&h, "00000000000000000011-00000000.json: the hold of ws/ppp");
	assert_int_equal(h.nwarnings, 10);
	for (size_t i = 0; i < h.nwarnings; i++)
		assert_true(strlen(h.warnings[i]) < 2048);

	/* a hold without a time is released (a release without "since"), the others stay */
	assert_int_equal(bkr_hold_release(r, held(&h, "ws/notime"), "operator"), 0);
	bkr_holds_free(&h);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 6);
	assert_null(bkr_holds_find(&h, "ws/notime"));
	assert_int_equal(bkr_holds_files(&h), 6);
	bkr_holds_free(&h);
	/* two routines at once found one file: two holds, one file held */
	assert_int_equal(bkr_hold_add(r, "ws/twice", "b10", "missing", 1, "h1"), 0);
	assert_int_equal(bkr_hold_add(r, "ws/twice", "b10", "missing", 1, "h2"), 0);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 8);
	assert_int_equal(bkr_holds_files(&h), 7);
	bkr_holds_free(&h);
	free(big);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

/* bkr_record_check of a sealed record @p json named "rec.json": 0, or the error with its message in @p why. */
static int check(const char *json, char why[512])
{
	char *sealed;
	size_t len;
	int err;
	assert_int_equal(bkr_json_seal(json, &sealed, &len), 0);
	err = bkr_record_check(sealed, len, "rec.json");
	snprintf(why, 512, "%s", bkr_error_message());
	bkr_error_clear();
	free(sealed);
	return err;
}

/*
 * Hold and release records that pass their checksum but do not decode (a
 * member of the wrong type, a time that is no time), and pins whose until is
 * no date: damaged for verify and health (bkr_record_check, which
 * bkr_records_foreach_damaged asks), the key named.  The holds' reader warns
 * of each once, naming it: a hold in one is still in force (its backup is
 * kept), a release in one ends nothing.
 */
static void test_undecodable(void **state)
{
	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"backup_id\":\"b1\","
		  "\"size\":\"big\"}", "rec.json: the hold record's \"size\" is not a count" },
		{ "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"backup_id\":\"b1\","
		  "\"size\":1.5}", "rec.json: the hold record's \"size\" is not a count" },
		{ "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"backup_id\":\"b1\","
		  "\"host\":7}", "rec.json: the hold record's \"host\" is not a string" },
		{ "{\"kind\":\"hold\",\"time\":\"soon\",\"path\":\"ws/a\",\"backup_id\":\"b1\"}",
		  "rec.json: the hold record's \"time\" is not an ISO 8601 time" },
		{ "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"backup_id\":[\"b1\"]}",
		  "rec.json: the hold record's \"backup_id\" is not a backup id" },
		{ "{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":5,\"backup_id\":\"b1\"}",
		  "rec.json: the hold record's \"path\" is not a path" },
		{ "{\"kind\":\"release\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"by\":5}",
		  "rec.json: the release record's \"by\" is not a string" },
		{ "{\"kind\":\"release\",\"time\":7,\"path\":\"ws/a\"}",
		  "rec.json: the release record's \"time\" is not an ISO 8601 time" },
		{ "{\"kind\":\"pin\",\"backup_id\":\"b1\",\"time\":\"2030-01-01T00:00:00Z\",\"until\":\"next week\"}",
		  "rec.json: the pin record's \"until\" is not a date" },
	};
	static const char *const good[] = {
		"{\"kind\":\"hold\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"backup_id\":\"b1\","
		"\"damage\":\"missing\",\"size\":12,\"host\":\"h\",\"later\":{\"a\":1}}",
		/* a release of a hold whose time was no time names it as written */
		"{\"kind\":\"release\",\"time\":\"2030-01-01T00:00:00Z\",\"path\":\"ws/a\",\"since\":\"soon\","
		"\"backup_id\":\"b1\",\"by\":\"operator\"}",
		"{\"kind\":\"pin\",\"backup_id\":\"b1\",\"time\":\"2030-01-01T00:00:00Z\",\"until\":\"2031-01-31\"}",
		"{\"kind\":\"pin\",\"backup_id\":\"b1\",\"time\":\"2030-01-01T00:00:00Z\",\"until\":\"\"}",
		"{\"kind\":\"pin\",\"backup_id\":\"b1\",\"time\":\"2030-01-01T00:00:00Z\"}",
	};
	char dir[4096], repo[4200], why[512];
	bkr_repo *r = fresh(dir, repo, "hold-undecodable");
	bkr_holds h;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(check(bad[i].json, why), BKR_ECORRUPT);
		assert_string_equal(why, bad[i].why);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_int_equal(check(good[i], why), 0);

	/* the holds' reader: the hold whose size is a string is in force, the release whose "by" is a number ends
	 * nothing, each one warning naming it */
	put(repo, "00000000000000000001-00000000", bad[0].json);
	put(repo, "00000000000000000002-00000000", bad[6].json);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	assert_int_equal(h.n, 1);
	assert_string_equal(held(&h, "ws/a")->backup_id, "b1");
	assert_true(held(&h, "ws/a")->size == 0);
	warned(&h, "00000000000000000001-00000000.json: a hold record that does not decode (the hold record's \"size\" "
		   "is not a count): taken as it reads, backup b1 is kept until 'bkr hold release' ends it");
	warned(&h, "00000000000000000002-00000000.json: a release record that does not decode (the release record's "
		   "\"by\" is not a string): ignored, the holds of ws/a stay in force");
	assert_int_equal(h.nwarnings, 2);
	bkr_holds_free(&h);
	/* the pin whose until is no date: skipped, one warning */
	put(repo, "00000000000000000003-00000000", bad[8].json);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	warned(&h, "00000000000000000003-00000000.json: a record that does not decode (the pin record's \"until\" is "
		   "not a date): every command skips it");
	assert_int_equal(h.nwarnings, 3);
	bkr_holds_free(&h);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holds),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_undecodable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
