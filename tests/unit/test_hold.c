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

static void test_holds(void **state)
{
	char dir[4096], repo[4200], rec[4300];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_repo *r = NULL;
	bkr_holds h;
	FILE *f;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "hold"), 0);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
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
	/* no backup_id, no time: no hold; another kind: not ours */
	put(repo, "99999999999999999992-00000000", "{\"kind\":\"hold\",\"time\":\"2030-01-02T00:00:00Z\",\"path\":\"ws/d.json\"}");
	put(repo, "99999999999999999993-00000000", "{\"kind\":\"hold\",\"path\":\"ws/e.json\",\"backup_id\":\"x\"}");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
