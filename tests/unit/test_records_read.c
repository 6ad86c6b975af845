/** @file
 * Commands that take several things from records/ read it once: one listing
 * and one get per record (on S3, one LIST and one GET each), counted by a
 * store under the repository (counting_store.h).  `bkr health`
 * (bkr_health_check: the verify results, the backups' pins, the recovery
 * runs, the holds) and cleanup's plan (tools/lifecycle.c, compiled in:
 * lc_plan_make: the pins and the holds), then its prune, which needs no
 * record at all.  Each also still answers right: the held backup kept, the
 * pinned one kept, the released hold gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/backup.h"
#include "bkr/catalog.h"
#include "bkr/clock.h"
#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/health.h"
#include "bkr/hold.h"
#include "bkr/repo.h"
#include "lifecycle.h"

#include "counting_store.h"
#include "testutil.h"

#define NRECORDS 6 /* a pin, three holds, a release, a verify result */

typedef struct {
	char dir[256], repo[300], ws[300];
	char ids[4][128]; /* the backups, oldest first */
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_repo *r = NULL;
	char rec[512];

	if (!f || tu_mkdtemp_in(f->dir, sizeof(f->dir), "records-read") < 0)
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->dir);
	if (tu_writes(f->ws, "a.json", "{\"a\": 1}\n") < 0 || bkr_repo_init(f->repo, &io) < 0 ||
	    bkr_repo_open(&r, f->repo, 0) < 0)
		return -1;
	for (int i = 0; i < 4; i++) {
		bkr_backup_options bo = BKR_BACKUP_OPTIONS_INIT;
		bkr_source_spec src = { .name = "ws", .path = f->ws };
		bkr_manifest *m = NULL;
		char when[32];
		snprintf(when, sizeof(when), "2026-12-0%dT10:00:00Z", i + 1);
		bo.type = BKR_BACKUP_FULL;
		bo.sources = &src;
		bo.nsources = 1;
		bo.workspace_root = f->dir;
		bo.threads = 1;
		setenv("BKR_TEST_NOW", when, 1);
		if (bkr_backup_run(r, &bo, &m) < 0)
			return -1;
		unsetenv("BKR_TEST_NOW");
		snprintf(f->ids[i], sizeof(f->ids[i]), "%s", m->backup_id);
		bkr_manifest_free(m);
	}
	/* the first backup held (twice: two routines found the file at once), the
	 * second pinned, the third's hold released; a verify result */
	bkr_holds h;
	snprintf(rec, sizeof(rec), "{\"kind\":\"pin\",\"backup_id\":\"%s\",\"time\":\"2026-12-05T00:00:00Z\",\"until\":\"\"}",
		 f->ids[1]);
	if (bkr_hold_add(r, "ws/a.json", f->ids[0], "missing", 9, "h") < 0 || bkr_repo_add_record(r, rec) < 0 ||
	    bkr_hold_add(r, "ws/a.json", f->ids[0], "missing", 9, "h2") < 0 ||
	    bkr_hold_add(r, "ws/b.json", f->ids[2], "truncated", 9, "h") < 0 || bkr_holds_read(r, &h) < 0 || h.n != 3 ||
	    bkr_hold_release(r, &h.v[2], "operator") < 0 ||
	    bkr_repo_add_record(r, "{\"kind\":\"verify\",\"time\":\"2026-12-05T00:00:00Z\",\"host\":\"h\",\"result\":\"ok\"}") < 0)
		return -1;
	bkr_holds_free(&h);
	bkr_repo_free(r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* The repository through a counting store that watches records/. */
static bkr_repo *open_counted(const fx *f, counting **c)
{
	bkr_repo *r = NULL;
	*c = counting_open(f->repo);
	assert_int_equal(bkr_repo_open_store(&r, &(*c)->base, 0), 0);
	counting_watch(*c, "records");
	return r;
}

static void test_health(void **state)
{
	fx *f = *state;
	char text[1024];
	bkr_config *cfg = NULL;
	bkr_health *h = NULL;
	counting *c;
	bkr_repo *r = open_counted(f, &c);
	int64_t now;

	snprintf(text, sizeof(text),
		 "{\"repository\": \"%s\", \"workspace_root\": \"%s\", \"log_dir\": \"%s/logs\", "
		 "\"sources\": [{\"name\": \"ws\", \"paths\": [\"ws\"], \"schedule\": \"daily\"}]}",
		 f->repo, f->dir, f->dir);
	assert_int_equal(bkr_config_from_string(&cfg, text, strlen(text), "bkr.json", f->dir), 0);
	assert_int_equal(bkr_time_parse("2026-12-05T01:00:00Z", &now), 0);
	assert_int_equal(bkr_health_check(&h, cfg, r, now), 0);
	assert_int_equal(c->folder_lists, 1);
	assert_int_equal(c->folder_gets, NRECORDS);
	/* and each thing read from that one reading */
	assert_true(h->verify.known && h->verify.ok);
	assert_int_equal(h->backups, 4);
	assert_int_equal(h->holds.n, 2);
	assert_string_equal(h->holds.v[0].backup_id, f->ids[0]);
	/* one file, though held twice */
	assert_int_equal(bkr_holds_files(&h->holds), 1);
	bool said = false;
	for (size_t i = 0; i < h->nreasons; i++)
		said |= strstr(h->reasons[i], "1 workspace file damaged or missing and not recovered") != NULL;
	assert_true(said);
	bkr_health_free(h);
	bkr_config_free(cfg);
	bkr_repo_free(r);
}

static void test_cleanup(void **state)
{
	fx *f = *state;
	bkr_retention_policy keep1 = { 0 };
	const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1];
	bkr_prune_options po = BKR_PRUNE_OPTIONS_INIT;
	bkr_prune_report pr;
	bkr_manifest_list l;
	lc_plan plan;
	counting *c;
	bkr_repo *r = open_counted(f, &c);
	int64_t now;

	keep1.keep_last = 1;
	for (int t = 0; t <= BKR_BACKUP_RECOVERY; t++)
		pol[t] = &keep1;
	assert_int_equal(bkr_time_parse("2026-12-05T01:00:00Z", &now), 0);
	assert_int_equal(lc_plan_make(&plan, r, pol, NULL, now), 0);
	assert_int_equal(c->folder_lists, 1);
	assert_int_equal(c->folder_gets, NRECORDS);
	/* held, pinned, removed, newest */
	assert_int_equal(plan.n, 4);
	assert_int_equal(plan.held, 1);
	assert_int_equal(plan.held_files, 1);
	assert_true(plan.d[0].keep && (plan.d[0].rules & BKR_RETAIN_HELD));
	assert_true(plan.d[1].keep && (plan.d[1].rules & BKR_RETAIN_PINNED));
	assert_false(plan.d[2].keep);
	assert_true(plan.d[3].keep);
	assert_int_equal(plan.ngone, 1);
	assert_string_equal(plan.gone[0], f->ids[2]);
	/* the removal and its prune: no record read again */
	po.now_ns = now;
	assert_int_equal(lc_plan_apply(r, &plan, now, &po, &pr), 0);
	assert_int_equal(c->folder_lists, 1);
	assert_int_equal(c->folder_gets, NRECORDS);
	lc_plan_free(&plan);
	assert_int_equal(bkr_repo_list(r, false, &l, NULL), 0);
	assert_int_equal(l.n, 3);
	bkr_manifest_list_free(&l);
	bkr_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
