/** @file
 * Unit tests of the bkrfs top-level views: backup-id parsing, by-date names
 * in UTC and another time zone, clashes, the choice of "latest", lookups,
 * and snap reference counting.  fs/views.c is compiled in directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../../fs/views.c"

static void test_parse_id(void **state)
{
	bkrfs_id_info in;

	assert_int_equal(bkrfs_parse_backup_id("backup_20261126_070000_full_1a2b3c4d", &in), 0);
	assert_string_equal(in.type, "full");
	assert_string_equal(in.suffix, "1a2b3c4d");
	assert_int_equal(in.time, 1795676400); /* 2026-11-26T07:00:00Z */
	assert_int_equal(bkrfs_parse_backup_id("backup_20261126_235959_incremental_00ff00ff", &in), 0);
	assert_string_equal(in.type, "incremental");
	assert_int_not_equal(bkrfs_parse_backup_id("backup_2026112_070000_full_1a2b3c4d", &in), 0);
	assert_int_not_equal(bkrfs_parse_backup_id("backup_20261326_070000_full_1a2b3c4d", &in), 0);
	assert_int_not_equal(bkrfs_parse_backup_id("backup_20261126_070000_full", &in), 0);
	assert_int_not_equal(bkrfs_parse_backup_id("run_20261126_070000_x_1", &in), 0);
	assert_int_not_equal(bkrfs_parse_backup_id("backup_20261126_070000__1a2b", &in), 0);
}

static const char *const ids[] = {
	"backup_20261126_230000_full_aaaaaaaa",
	"backup_20261125_120000_incremental_bbbbbbbb",
	"backup_20261127_013000_snapshot_cccccccc",
	"not-a-backup-name",
	"backup_20261125_120000_incremental_bbbbbbbb", /* duplicate */
};

static void test_by_date_utc(void **state)
{
	bkrfs_view *v;
	const bkrfs_view_day *d;
	const bkrfs_view_backup *b;
	char t[128];

	assert_int_equal(bkrfs_view_build(&v, ids, 5, NULL, INT64_MAX, NULL, NULL), 0);
	assert_int_equal(v->n, 3);
	assert_int_equal(v->ntime, 3);
	assert_int_equal(v->ndays, 3);
	assert_string_equal(v->days[0].day, "2026-11-25");
	assert_string_equal(v->days[1].day, "2026-11-26");
	assert_string_equal(v->days[2].day, "2026-11-27");
	assert_non_null(d = bkrfs_view_find_day(v, "2026-11-26"));
	assert_non_null(b = bkrfs_view_find_dated(v, d, "230000-full"));
	assert_string_equal(b->id, "backup_20261126_230000_full_aaaaaaaa");
	assert_null(bkrfs_view_find_dated(v, d, "230000-incremental"));
	assert_null(bkrfs_view_find_day(v, "2026-11-28"));
	assert_string_equal(v->latest, "backup_20261127_013000_snapshot_cccccccc");
	assert_string_equal(v->latest_target, "by-id/backup_20261127_013000_snapshot_cccccccc");
	assert_int_equal(bkrfs_view_date_target(t, sizeof(t), b->id), 0);
	assert_string_equal(t, "../../by-id/backup_20261126_230000_full_aaaaaaaa");
	/* a name that is no backup id (backups/x.json) names no backup: not in by-id */
	assert_null(bkrfs_view_find(v, "not-a-backup-name"));
	assert_null(bkrfs_view_find(v, "backup_20261126_230000_full_aaaaaaab"));
	bkrfs_view_free(v);
}

/* Junk in backups/ (a name that is no backup id) is not a backup: the view
 * leaves it out of by-id, by-date and latest, whatever its name sorts as */
static void test_junk_names(void **state)
{
	static const char *const names[] = {
		"x",
		"zzz-newest-by-name",
		"backup_20261126_230000_full_aaaaaaaa",
		"backup_99999999_999999_full_ffffffff", /* no date */
		"backup_20261201_010101_Full_ffffffff", /* no lower-case type */
		"backup_20261201_010101_full_",         /* no suffix */
		"README",
	};
	bkrfs_view *v, *w;

	(void)state;
	assert_int_equal(bkrfs_view_build(&v, names, 7, NULL, INT64_MAX, NULL, NULL), 0);
	assert_int_equal(v->n, 1);
	assert_int_equal(v->ntime, 1);
	assert_int_equal(v->ndays, 1);
	assert_string_equal(v->b[0].id, "backup_20261126_230000_full_aaaaaaaa");
	assert_string_equal(v->latest, "backup_20261126_230000_full_aaaaaaaa");
	for (size_t k = 0; k < 7; k++)
		if (k != 2)
			assert_null(bkrfs_view_find(v, names[k]));
	/* junk coming or going changes nothing the mount shows */
	assert_int_equal(bkrfs_view_build(&w, names + 2, 1, NULL, INT64_MAX, NULL, NULL), 0);
	assert_true(bkrfs_view_same(v, w));
	bkrfs_view_free(w);
	/* only junk: an empty view, no latest */
	assert_int_equal(bkrfs_view_build(&w, names, 2, NULL, INT64_MAX, NULL, NULL), 0);
	assert_int_equal(w->n, 0);
	assert_null(w->latest);
	bkrfs_view_free(w);
	bkrfs_view_free(v);
}

static void test_by_date_tz(void **state)
{
	bkrfs_view *v;
	const bkrfs_view_day *d;

	assert_true(bkrfs_tz_valid("UTC"));
	assert_false(bkrfs_tz_valid("No/Such_Zone"));
	assert_false(bkrfs_tz_valid("../../etc/passwd"));
	setenv("TZ", "EST5EDT", 1); /* a POSIX rule: no zoneinfo files needed */
	tzset();
	assert_true(bkrfs_tz_valid("EST5EDT"));
	assert_int_equal(bkrfs_view_build(&v, ids, 3, "EST5EDT", INT64_MAX, NULL, NULL), 0);
	/* 2026-11-26 23:00Z is 18:00 EST; 2026-11-27 01:30Z is 20:30 on the 26th */
	assert_int_equal(v->ndays, 2);
	assert_non_null(d = bkrfs_view_find_day(v, "2026-11-26"));
	assert_int_equal(d->count, 2);
	assert_non_null(bkrfs_view_find_dated(v, d, "180000-full"));
	assert_non_null(bkrfs_view_find_dated(v, d, "203000-snapshot"));
	assert_non_null(d = bkrfs_view_find_day(v, "2026-11-25"));
	assert_non_null(bkrfs_view_find_dated(v, d, "070000-incremental"));
	bkrfs_view_free(v);
	unsetenv("TZ");
	tzset();
}

static int64_t fake_precise(void *ctx, const char *id)
{
	/* the "b" backup was taken later within the same second */
	return strstr(id, "_bbbbbbbb") ? 2000 : 1000;
}

static void test_clash_and_latest(void **state)
{
	const char *const same[] = {
		"backup_20261126_070000_full_bbbbbbbb",
		"backup_20261126_070000_full_aaaaaaaa",
		"backup_20261126_070000_incremental_cccccccc",
	};
	bkrfs_view *v;
	const bkrfs_view_day *d;

	assert_int_equal(bkrfs_view_build(&v, same, 3, NULL, INT64_MAX, NULL, NULL), 0);
	d = bkrfs_view_find_day(v, "2026-11-26");
	assert_non_null(d);
	assert_int_equal(d->count, 3);
	assert_non_null(bkrfs_view_find_dated(v, d, "070000-full-aaaaaaaa"));
	assert_non_null(bkrfs_view_find_dated(v, d, "070000-full-bbbbbbbb"));
	assert_null(bkrfs_view_find_dated(v, d, "070000-full"));
	assert_non_null(bkrfs_view_find_dated(v, d, "070000-incremental"));
	/* without precise times: the greatest id of the newest second */
	assert_string_equal(v->latest, "backup_20261126_070000_incremental_cccccccc");
	bkrfs_view_free(v);
	/* with them: the manifest times decide */
	assert_int_equal(bkrfs_view_build(&v, same, 3, NULL, INT64_MAX, fake_precise, NULL), 0);
	assert_string_equal(v->latest, "backup_20261126_070000_full_bbbbbbbb");
	bkrfs_view_free(v);
}

/* /latest is the newest backup made by now: one dated in the future (made
 * while the clock was ahead) is passed over, as bkr's 'latest' passes it
 * over; within the 5 minutes of clock skew it counts; when every one is in
 * the future, the newest of them */
static void test_latest_future(void **state)
{
	const int64_t now = 1795737600LL * 1000000000LL; /* 2026-11-27T00:00:00Z */
	const char *const skew[] = {
		"backup_20261126_230000_full_aaaaaaaa",
		"backup_20261127_000400_incremental_dddddddd",
	};
	bkrfs_view *v;
	(void)state;

	assert_int_equal(bkrfs_view_build(&v, ids, 5, NULL, now, NULL, NULL), 0);
	assert_string_equal(v->latest, "backup_20261126_230000_full_aaaaaaaa");
	assert_string_equal(v->latest_target, "by-id/backup_20261126_230000_full_aaaaaaaa");
	assert_non_null(bkrfs_view_find(v, "backup_20261127_013000_snapshot_cccccccc")); /* still listed */
	/* the one passed over, the last by time (the mount logs it) */
	assert_int_equal(v->passed, 1);
	assert_string_equal(v->b[v->by_time[v->ntime - 1]].id, "backup_20261127_013000_snapshot_cccccccc");
	bkrfs_view_free(v);
	assert_int_equal(bkrfs_view_build(&v, skew, 2, NULL, now, NULL, NULL), 0);
	assert_string_equal(v->latest, "backup_20261127_000400_incremental_dddddddd");
	assert_int_equal(v->passed, 0);
	bkrfs_view_free(v);
	assert_int_equal(bkrfs_view_build(&v, ids, 5, NULL, now - 7 * 86400LL * 1000000000LL, NULL, NULL), 0);
	assert_string_equal(v->latest, "backup_20261127_013000_snapshot_cccccccc");
	assert_int_equal(v->passed, 0); /* every one in the future: none passed over */
	bkrfs_view_free(v);
}

static void test_empty_and_same(void **state)
{
	bkrfs_view *a, *b, *c;

	assert_int_equal(bkrfs_view_build(&a, NULL, 0, NULL, INT64_MAX, NULL, NULL), 0);
	assert_null(a->latest);
	assert_null(a->latest_target);
	assert_int_equal(a->ndays, 0);
	assert_int_equal(bkrfs_view_build(&b, ids, 2, NULL, INT64_MAX, NULL, NULL), 0);
	assert_int_equal(bkrfs_view_build(&c, ids, 2, NULL, INT64_MAX, NULL, NULL), 0);
	assert_false(bkrfs_view_same(a, b));
	assert_true(bkrfs_view_same(b, c));
	bkrfs_view_free(a);
	bkrfs_view_free(b);
	bkrfs_view_free(c);
}

static void test_snap_refs(void **state)
{
	bkrfs_snap *s = bkrfs_snap_new("backup_x", false, 5);
	bkrfs_snap *volatile r; /* volatile: -O3 cannot see that this unref keeps s */

	assert_non_null(s);
	r = bkrfs_snap_ref(s);
	assert_ptr_equal(r, s);
	assert_int_equal(s->refs, 2);
	bkrfs_snap_unref(r);
	assert_int_equal(s->refs, 1);
	bkrfs_snap_unref(s);
	bkrfs_snap_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test(test_by_date_utc),
		cmocka_unit_test(test_junk_names),
		cmocka_unit_test(test_by_date_tz),
		cmocka_unit_test(test_clash_and_latest),
		cmocka_unit_test(test_latest_future),
		cmocka_unit_test(test_empty_and_same),
		cmocka_unit_test(test_snap_refs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
