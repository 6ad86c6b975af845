/** @file
 * Unit tests of routine.c: the schedule rule (due at 90% of the interval,
 * stale beyond twice it, manual never), the newest backup of a source
 * (recovery runs and skipped ids left out), which sources each routine
 * covers, and the selection `bkr create -c` and the routines make.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/routine.h"

#include "counting_store.h"
#include "testutil.h"

#define S 1000000000LL
#define MIN (60 * S)
#define H (60 * MIN)
#define D (24 * H)

/* 2026-11-30T12:00:00Z */
#define NOW (1796040000LL * S)
/* the first and last whole days bkr's times hold: 1677-09-22, 2262-04-11 */
#define OLDEST (-9223286400LL * S)
#define LAST (9223286400LL * S)

static void test_interval(void **state)
{
	(void)state;
	assert_int_equal(bkr_schedule_interval_s(BKR_SCHEDULE_HOURLY), 3600);
	assert_int_equal(bkr_schedule_interval_s(BKR_SCHEDULE_DAILY), 86400);
	assert_int_equal(bkr_schedule_interval_s(BKR_SCHEDULE_WEEKLY), 7 * 86400);
	assert_int_equal(bkr_schedule_interval_s(BKR_SCHEDULE_MANUAL), 0);
}

static void test_due(void **state)
{
	(void)state;
	/* no backup: due, except manual */
	assert_true(bkr_schedule_due(BKR_SCHEDULE_HOURLY, INT64_MIN, NOW));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_WEEKLY, INT64_MIN, NOW));
	assert_false(bkr_schedule_due(BKR_SCHEDULE_MANUAL, INT64_MIN, NOW));
	assert_false(bkr_schedule_due(BKR_SCHEDULE_MANUAL, NOW - 365 * D, NOW));
	/* hourly: 54 minutes is 90% */
	assert_false(bkr_schedule_due(BKR_SCHEDULE_HOURLY, NOW, NOW));
	assert_false(bkr_schedule_due(BKR_SCHEDULE_HOURLY, NOW - 54 * MIN + 1, NOW));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_HOURLY, NOW - 54 * MIN, NOW));
	/* a timer firing 2 s early after a backup at the full hour */
	assert_true(bkr_schedule_due(BKR_SCHEDULE_HOURLY, NOW - H + 2 * S, NOW));
	/* daily: 21.6 h */
	assert_false(bkr_schedule_due(BKR_SCHEDULE_DAILY, NOW - 21 * H, NOW));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_DAILY, NOW - 22 * H, NOW));
	/* weekly: 6.3 days */
	assert_false(bkr_schedule_due(BKR_SCHEDULE_WEEKLY, NOW - 6 * D, NOW));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_WEEKLY, NOW - 6 * D - 8 * H, NOW));
	/* a backup "in the future" (clock skew) is not due */
	assert_false(bkr_schedule_due(BKR_SCHEDULE_HOURLY, NOW + H, NOW));
	/* a manifest may say any time bkr parses: one of 1677 is long due (now -
	 * newest overflowed an int64 and wrapped negative: never due again) */
	assert_true(bkr_schedule_due(BKR_SCHEDULE_HOURLY, OLDEST, NOW));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_WEEKLY, OLDEST, NOW));
	assert_false(bkr_schedule_due(BKR_SCHEDULE_HOURLY, LAST, LAST));
	assert_true(bkr_schedule_due(BKR_SCHEDULE_HOURLY, OLDEST, LAST));
}

static void test_stale(void **state)
{
	(void)state;
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_DAILY, INT64_MIN, NOW));
	assert_false(bkr_schedule_stale(BKR_SCHEDULE_MANUAL, INT64_MIN, NOW));
	assert_false(bkr_schedule_stale(BKR_SCHEDULE_HOURLY, NOW - 2 * H, NOW));
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_HOURLY, NOW - 2 * H - 1, NOW));
	assert_false(bkr_schedule_stale(BKR_SCHEDULE_DAILY, NOW - 47 * H, NOW));
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_DAILY, NOW - 49 * H, NOW));
	assert_false(bkr_schedule_stale(BKR_SCHEDULE_WEEKLY, NOW - 13 * D, NOW));
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_WEEKLY, NOW - 15 * D, NOW));
	/* and one of 1677 is stale, also seen from 2262 */
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_HOURLY, OLDEST, NOW));
	assert_true(bkr_schedule_stale(BKR_SCHEDULE_WEEKLY, OLDEST, LAST));
	assert_false(bkr_schedule_stale(BKR_SCHEDULE_WEEKLY, LAST - D, LAST));
}

/* A fixed list of backups to select from. */
struct fixture {
	bkr_manifest *m[8];
	bkr_manifest_list l;
};

static void add(struct fixture *f, const char *id, bkr_backup_type type, int64_t t, const char *s1, const char *s2)
{
	bkr_manifest *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->backup_id = strdup(id);
	m->type = type;
	m->time_ns = t;
	m->sources = calloc(2, sizeof(*m->sources));
	m->sources[0].source = strdup(s1);
	m->nsources = 1;
	if (asprintf(&m->sources[0].path, "/w/%s", s1) < 0)
		fail();
	if (s2) {
		m->sources[1].source = strdup(s2);
		if (asprintf(&m->sources[1].path, "/w/%s", s2) < 0)
			fail();
		m->nsources = 2;
	}
	f->m[f->l.n] = m;
	f->l.n++;
	f->l.items = f->m;
}

static void fixture_free(struct fixture *f)
{
	for (size_t i = 0; i < f->l.n; i++)
		bkr_manifest_free(f->m[i]);
}

static void test_newest(void **state)
{
	struct fixture f = { 0 };
	const char *skip[] = { "b3" };
	size_t at = 99;
	(void)state;
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW, NULL) == INT64_MIN);
	add(&f, "b1", BKR_BACKUP_FULL, NOW - 3 * H, "a", "b");
	add(&f, "b2", BKR_BACKUP_INCREMENTAL, NOW - 2 * H, "b", NULL);
	add(&f, "b3", BKR_BACKUP_SNAPSHOT, NOW - 1 * H, "a", NULL);
	add(&f, "r1", BKR_BACKUP_RECOVERY, NOW, "a", "b");
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW, &at) == NOW - H);
	assert_int_equal(at, 2);
	assert_true(bkr_routine_newest(&f.l, "b", NULL, NULL, NULL, 0, NOW, &at) == NOW - 2 * H);
	assert_int_equal(at, 1);
	/* a damaged backup is skipped: the one before counts */
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, skip, 1, NOW, &at) == NOW - 3 * H);
	assert_int_equal(at, 0);
	assert_true(bkr_routine_newest(&f.l, "c", NULL, NULL, NULL, 0, NOW, NULL) == INT64_MIN);
	fixture_free(&f);
}

/* A backup dated in the future (the clock was ahead when it was made) is not
 * a source's newest backup: the one before counts; within the 5 minutes of
 * clock skew it does count. */
static void test_newest_future(void **state)
{
	struct fixture f = { 0 };
	size_t at = 99;
	(void)state;
	add(&f, "real", BKR_BACKUP_INCREMENTAL, NOW - 2 * H, "a", NULL);
	add(&f, "ahead", BKR_BACKUP_INCREMENTAL, NOW + 3 * 365 * D, "a", NULL);
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW, &at) == NOW - 2 * H);
	assert_int_equal(at, 0);
	/* INT64_MAX: no "now", every backup counts */
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, INT64_MAX, &at) == NOW + 3 * 365 * D);
	/* once the clock reaches it, it is the newest */
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW + 3 * 365 * D, &at) == NOW + 3 * 365 * D);
	fixture_free(&f);

	memset(&f, 0, sizeof(f));
	add(&f, "skewed", BKR_BACKUP_INCREMENTAL, NOW + 5 * MIN, "a", NULL);
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW, NULL) == NOW + 5 * MIN);
	assert_true(bkr_routine_newest(&f.l, "a", NULL, NULL, NULL, 0, NOW - 1, NULL) == INT64_MIN);
	assert_true(bkr_time_in_future(NOW + 5 * MIN + 1, NOW));
	assert_false(bkr_time_in_future(NOW + 5 * MIN, NOW));
	assert_false(bkr_time_in_future(NOW - 365 * D, NOW));
	fixture_free(&f);
}

static void test_routines(void **state)
{
	bkr_routine_kind k;
	(void)state;
	for (int i = 0; i <= BKR_ROUTINE_EMERGENCY; i++) {
		assert_int_equal(bkr_routine_parse(bkr_routine_name((bkr_routine_kind)i), &k), 0);
		assert_int_equal(k, i);
	}
	assert_int_equal(bkr_routine_parse("monthly", &k), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "monthly"));
	assert_int_equal(bkr_routine_parse(NULL, &k), BKR_EINVAL);
	assert_true(bkr_routine_covers(BKR_ROUTINE_HOURLY, BKR_SCHEDULE_HOURLY));
	assert_false(bkr_routine_covers(BKR_ROUTINE_HOURLY, BKR_SCHEDULE_DAILY));
	assert_true(bkr_routine_covers(BKR_ROUTINE_DAILY, BKR_SCHEDULE_HOURLY));
	assert_true(bkr_routine_covers(BKR_ROUTINE_DAILY, BKR_SCHEDULE_DAILY));
	assert_false(bkr_routine_covers(BKR_ROUTINE_DAILY, BKR_SCHEDULE_WEEKLY));
	assert_true(bkr_routine_covers(BKR_ROUTINE_WEEKLY, BKR_SCHEDULE_WEEKLY));
	assert_false(bkr_routine_covers(BKR_ROUTINE_WEEKLY, BKR_SCHEDULE_MANUAL));
	assert_true(bkr_routine_covers(BKR_ROUTINE_EMERGENCY, BKR_SCHEDULE_DAILY));
	assert_false(bkr_routine_covers(BKR_ROUTINE_EMERGENCY, BKR_SCHEDULE_MANUAL));
}

static void test_select(void **state)
{
	static const char cfgtext[] =
		"{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"sources\": ["
		"{\"name\": \"h\", \"paths\": [\"h\"], \"schedule\": \"hourly\"},"
		"{\"name\": \"d\", \"paths\": [\"d\"], \"schedule\": \"daily\"},"
		"{\"name\": \"w\", \"paths\": [\"w\"], \"schedule\": \"weekly\"},"
		"{\"name\": \"m\", \"paths\": [\"m\"], \"schedule\": \"manual\"}]}";
	struct fixture f = { 0 };
	bkr_config *cfg = NULL;
	const char *names[4];
	size_t n;
	(void)state;
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", "/"), 0);
	/* nothing backed up: every scheduled source is due, manual never */
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_ANY, true, NULL, names, &n);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "h");
	assert_string_equal(names[1], "d");
	assert_string_equal(names[2], "w");
	/* all of them backed up 2 h ago: only the hourly one is due */
	add(&f, "b1", BKR_BACKUP_FULL, NOW - 2 * H, "h", "d");
	add(&f, "b2", BKR_BACKUP_FULL, NOW - 2 * H, "w", "m");
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_ANY, true, NULL, names, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "h");
	/* a day later: hourly and daily */
	bkr_routine_select(cfg, &f.l, NOW + D, BKR_ROUTINE_ANY, true, NULL, names, &n);
	assert_int_equal(n, 2);
	assert_string_equal(names[1], "d");
	/* ... but the hourly routine covers only the hourly source */
	bkr_routine_select(cfg, &f.l, NOW + D, BKR_ROUTINE_HOURLY, true, NULL, names, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "h");
	/* the weekly routine, due or not: every scheduled source */
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_WEEKLY, false, NULL, names, &n);
	assert_int_equal(n, 3);
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_DAILY, false, NULL, names, &n);
	assert_int_equal(n, 2);
	/* a backup of every source dated years ahead does not make them "not due" */
	add(&f, "b3", BKR_BACKUP_FULL, NOW + 4 * 365 * D, "h", "d");
	add(&f, "b4", BKR_BACKUP_FULL, NOW + 4 * 365 * D, "w", "m");
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_ANY, true, NULL, names, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "h");
	bkr_routine_select(cfg, &f.l, NOW + D, BKR_ROUTINE_DAILY, true, NULL, names, &n);
	assert_int_equal(n, 2);
	fixture_free(&f);
	bkr_config_free(cfg);
}

/*
 * A repository shared with another workspace or host: their backup of a
 * source also named "d" (another path; this path by host "other") is not
 * this one's newest, as create picks a parent: "d" stays due.  It was "not
 * due" because the other backup had a source of that name.
 */
static void test_select_other_workspace(void **state)
{
	static const char cfgtext[] =
		"{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"sources\": ["
		"{\"name\": \"d\", \"paths\": [\"d\"], \"schedule\": \"daily\"}]}";
	struct fixture f = { 0 };
	bkr_config *cfg = NULL;
	const char *names[1];
	size_t n;
	(void)state;
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", "/"), 0);
	add(&f, "b1", BKR_BACKUP_FULL, NOW - 2 * H, "d", NULL);
	free(f.m[0]->sources[0].path);
	f.m[0]->sources[0].path = strdup("/elsewhere/d");
	f.m[0]->hostname = strdup("here");
	add(&f, "b2", BKR_BACKUP_FULL, NOW - H, "d", NULL);
	f.m[1]->hostname = strdup("other");
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_ANY, true, "here", names, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "d");
	assert_true(bkr_routine_newest(&f.l, "d", "/w/d", "here", NULL, 0, NOW, NULL) == INT64_MIN);
	/* that host's own backup of that path counts */
	bkr_routine_select(cfg, &f.l, NOW, BKR_ROUTINE_ANY, true, "other", names, &n);
	assert_int_equal(n, 0);
	assert_true(bkr_routine_newest(&f.l, "d", "/w/d", "other", NULL, 0, NOW, NULL) == NOW - H);
	fixture_free(&f);
	bkr_config_free(cfg);
}

/* Higher priority is backed up first (docs/config.md); equals keep the configuration's order. */
static void test_select_priority(void **state)
{
	static const char cfgtext[] =
		"{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"sources\": ["
		"{\"name\": \"a\", \"paths\": [\"a\"], \"schedule\": \"daily\"},"
		"{\"name\": \"b\", \"paths\": [\"b\"], \"schedule\": \"daily\", \"priority\": 5},"
		"{\"name\": \"c\", \"paths\": [\"c\"], \"schedule\": \"daily\", \"priority\": -3},"
		"{\"name\": \"d\", \"paths\": [\"d\"], \"schedule\": \"daily\"},"
		"{\"name\": \"e\", \"paths\": [\"e\"], \"schedule\": \"daily\", \"priority\": 5}]}";
	bkr_manifest_list l = { 0 };
	bkr_config *cfg = NULL;
	const char *names[5];
	size_t n;
	(void)state;
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", "/"), 0);
	bkr_routine_select(cfg, &l, NOW, BKR_ROUTINE_DAILY, false, NULL, names, &n);
	assert_int_equal(n, 5);
	assert_string_equal(names[0], "b");
	assert_string_equal(names[1], "e");
	assert_string_equal(names[2], "a");
	assert_string_equal(names[3], "d");
	assert_string_equal(names[4], "c");
	bkr_config_free(cfg);
}

/* Another routine's release of hold ctx lands right after the first listing of records/. */
static void release_meanwhile(counting *c, const char *prefix)
{
	char *sealed;
	size_t len;
	if (strcmp(prefix, "records/") || c->folder_lists != 1)
		return;
	assert_int_equal(bkr_json_seal(c->ctx, &sealed, &len), 0);
	assert_int_equal(bkr_store_put(c->inner, "records/99999999999999999999-00000000.json", sealed, len), 0);
	free(sealed);
}

/*
 * A release racing a scan: this routine's scan finds ws/p gone and sees it
 * held already (no new hold), while another routine, which found the file
 * back a moment before, releases that hold.  The file is held again (naming
 * the backup this scan compared with) - it was left with no hold, and
 * retention free to remove its last good copy.
 */
static void test_release_races_hold(void **state)
{
	char dir[256], repo[300], rel[512];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_damage d = { .path = "ws/p", .kind = BKR_DAMAGE_MISSING, .backup_id = "backup_2", .backup_size = 5 };
	bkr_scan_result res = { .items = &d, .n = 1 };
	size_t added, released;
	bkr_repo *r = NULL;
	bkr_holds h;
	counting *c;
	(void)state;

	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "routine-race"), 0);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	assert_int_equal(bkr_hold_add(r, "ws/p", "backup_1", "missing", 5, "h1"), 0);
	assert_int_equal(bkr_holds_read(r, &h), 0);
	snprintf(rel, sizeof(rel),
		 "{\"kind\":\"release\",\"time\":\"%s\",\"path\":\"ws/p\",\"since\":\"%s\",\"backup_id\":\"backup_1\","
		 "\"by\":\"recovered\"}", h.v[0].since, h.v[0].since);
	bkr_holds_free(&h);
	bkr_repo_free(r);

	c = counting_open(repo);
	counting_watch(c, "records");
	c->after_list = release_meanwhile;
	c->ctx = rel;
	assert_int_equal(bkr_repo_open_store(&r, &c->base, 0), 0);
	/* the scan's file is listed: the workspace (NULL) is not looked at */
	assert_int_equal(bkr_routine_holds_update(r, NULL, &res, "h2", &h, &added, &released), 0);
	assert_int_equal(released, 0);
	assert_int_equal(added, 1);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.v[0].backup_id, "backup_2");
	assert_string_equal(h.v[0].host, "h2");
	assert_int_equal(c->folder_lists, 3); /* read, read after, read after the hold made again */
	bkr_holds_free(&h);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

/* A record appended after one cut short (a crash or a full disk in its write,
 * no newline) starts a line of its own: it joined the cut one, and both were
 * one line that does not parse (the new run lost, health "not healthy") */
static void test_record_after_cut(void **state)
{
	char dir[256];
	char *text;
	size_t len;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "routine"), 0);
	assert_int_equal(bkr_routine_record(dir, "{\"a\":1}"), 0);
	assert_int_equal(bkr_routine_record(dir, "{\"b\":2}"), 0);
	assert_non_null(text = tu_read(dir, BKR_ROUTINE_RECORDS, &len));
	assert_string_equal(text, "{\"a\":1}\n{\"b\":2}\n");
	free(text);
	assert_int_equal(tu_writes(dir, BKR_ROUTINE_RECORDS, "{\"a\":1}\n{\"routine\":\"da"), 0);
	assert_int_equal(bkr_routine_record(dir, "{\"c\":3}"), 0);
	assert_non_null(text = tu_read(dir, BKR_ROUTINE_RECORDS, &len));
	assert_string_equal(text, "{\"a\":1}\n{\"routine\":\"da\n{\"c\":3}\n");
	free(text);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval),
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_select_priority),
		cmocka_unit_test(test_stale),
		cmocka_unit_test(test_newest),
		cmocka_unit_test(test_newest_future),
		cmocka_unit_test(test_routines),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_select_other_workspace),
		cmocka_unit_test(test_release_races_hold),
		cmocka_unit_test(test_record_after_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
