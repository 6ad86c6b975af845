/** @file
 * Unit tests of retention.c: every rule on synthetic backup lists with a
 * fixed as-of time, per-type overrides, pins (forever, until, expired),
 * the newest backup of each source, same-second backups, an empty list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bkr/retention.h"

#define H 3600LL
#define D (24 * H)
#define NS 1000000000LL

/* 2026-11-30T12:00:00Z, a Monday */
#define AS_OF (1796040000LL * NS)

static const char *const ws[] = { "ws" };
static const char *const other[] = { "other" };
static const char *const both[] = { "ws", "other" };

#define MAXN 128

struct list {
	bkr_retention_item it[MAXN];
	char ids[MAXN][48];
	bkr_retention_decision d[MAXN];
	size_t n;
};

/* a full backup of "ws" on host "h", @p ago seconds before AS_OF */
static bkr_retention_item *add(struct list *l, int64_t ago)
{
	bkr_retention_item *it = &l->it[l->n];
	snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "b%03zu", l->n);
	*it = (bkr_retention_item){ .id = l->ids[l->n], .time_ns = AS_OF - ago * NS, .type = BKR_BACKUP_FULL,
				    .host = "h", .sources = ws, .nsources = 1 };
	l->n++;
	return it;
}

static void run_at(struct list *l, const bkr_retention_policy *p, int64_t as_of)
{
	const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1];
	for (int t = 0; t <= BKR_BACKUP_RECOVERY; t++)
		pol[t] = p;
	assert_int_equal(bkr_retention_apply(l->d, l->it, l->n, pol, as_of), 0);
}

static void run(struct list *l, const bkr_retention_policy *p)
{
	run_at(l, p, AS_OF);
}

/* "K" or "R" per backup, in the order added */
static void expect(const struct list *l, const char *want)
{
	char got[MAXN + 1];
	for (size_t i = 0; i < l->n; i++)
		got[i] = l->d[i].keep ? 'K' : 'R';
	got[l->n] = '\0';
	assert_string_equal(got, want);
}

static void test_empty(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 3 };
	(void)state;
	run(&l, &p);
}

/* With no rule on, only the newest backup of the source stays. */
static void test_no_rule_keeps_newest(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { 0 };
	(void)state;
	add(&l, 3 * D);
	add(&l, 2 * D);
	add(&l, 1 * D);
	run(&l, &p);
	expect(&l, "RRK");
	assert_int_equal(l.d[2].rules, BKR_RETAIN_NEWEST);
	assert_int_equal(l.d[0].rules, 0);
}

static void test_keep_last(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 3 };
	(void)state;
	for (int i = 6; i >= 1; i--)
		add(&l, i * H); /* oldest first */
	run(&l, &p);
	expect(&l, "RRRKKK");
	assert_int_equal(l.d[3].rules, BKR_RETAIN_LAST);
	assert_int_equal(l.d[5].rules, BKR_RETAIN_LAST | BKR_RETAIN_NEWEST);
}

/* The list's order does not matter: newest is by time. */
static void test_order_independent(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 2 };
	(void)state;
	add(&l, 1 * H);
	add(&l, 5 * H);
	add(&l, 2 * H);
	add(&l, 4 * H);
	run(&l, &p);
	expect(&l, "KRKR");
}

static void test_keep_hourly(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_hourly = 2 };
	(void)state;
	/* AS_OF is 12:00:00; these are 11:50, 11:10, 10:40, 10:20, 09:30 */
	add(&l, 10 * 60);
	add(&l, 50 * 60);
	add(&l, 80 * 60);
	add(&l, 100 * 60);
	add(&l, 150 * 60);
	run(&l, &p);
	/* the newest of hour 11 and of hour 10 */
	expect(&l, "KRKRR");
	assert_true(l.d[2].rules & BKR_RETAIN_HOURLY);
}

static void test_keep_daily_skips_empty_days(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_daily = 3 };
	(void)state;
	/* days -0, -0, -2, -5, -6 (none on days -1, -3, -4): "the last N days that have one" */
	add(&l, 1 * H);
	add(&l, 2 * H);
	add(&l, 2 * D);
	add(&l, 5 * D);
	add(&l, 6 * D);
	run(&l, &p);
	expect(&l, "KRKKR");
	assert_int_equal(l.d[3].rules, BKR_RETAIN_DAILY);
}

/* Days are UTC: 23:30 and 00:30 UTC are two days whatever TZ says. */
static void test_daily_is_utc(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_daily = 2 };
	(void)state;
	setenv("TZ", "America/New_York", 1);
	tzset();
	add(&l, 11 * H + 30 * 60); /* 00:30 UTC today */
	add(&l, 12 * H + 30 * 60); /* 23:30 UTC yesterday (all three are one day in New York) */
	add(&l, 13 * H + 30 * 60); /* 22:30 UTC yesterday */
	run(&l, &p);
	expect(&l, "KKR");
	unsetenv("TZ");
	tzset();
}

static void test_keep_weekly_iso(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_weekly = 2 };
	(void)state;
	/* AS_OF is Monday 2026-11-30 12:00: Monday 01:00 starts a week; Sunday is the week before */
	add(&l, 11 * H);       /* Mon 30 Nov 01:00, week 49 */
	add(&l, 13 * H);       /* Sun 29 Nov 23:00, week 48 */
	add(&l, 6 * D);        /* Tue 24 Nov, week 48 */
	add(&l, 8 * D);        /* Sun 22 Nov, week 47 */
	run(&l, &p);
	expect(&l, "KKRR");
	assert_true(l.d[1].rules & BKR_RETAIN_WEEKLY);
}

/* ISO week 1 of 2027 begins on Monday 2027-01-04; 2027-01-01..03 are in 2026-W53. */
static void test_weekly_across_new_year(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_weekly = 5 };
	(void)state;
	/* 2027-01-03T12:00Z (Sunday) = AS_OF + 34 days; 2026-12-28 (Monday) = AS_OF + 28 days */
	add(&l, -34 * D);
	add(&l, -28 * D);
	add(&l, -35 * D); /* Monday 2027-01-04: W01 */
	run_at(&l, &p, AS_OF + 36 * D * NS); /* after them all: none is dated in the future */
	/* the newest of W53 is the Sunday; the Monday before it is in the same week */
	expect(&l, "KRK");
}

static void test_keep_monthly_yearly(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_monthly = 2, .keep_yearly = 2 };
	(void)state;
	add(&l, 1 * D);    /* 29 Nov 2026 */
	add(&l, 10 * D);   /* 20 Nov 2026 */
	add(&l, 40 * D);   /* 21 Oct 2026 */
	add(&l, 70 * D);   /* 21 Sep 2026 */
	add(&l, 400 * D);  /* Oct 2025 */
	add(&l, 420 * D);  /* Oct 2025 */
	add(&l, 800 * D);  /* 2024 */
	run(&l, &p);
	expect(&l, "KRKRKRR");
	assert_int_equal(l.d[0].rules, BKR_RETAIN_MONTHLY | BKR_RETAIN_YEARLY | BKR_RETAIN_NEWEST);
	assert_int_equal(l.d[2].rules, BKR_RETAIN_MONTHLY);
	assert_int_equal(l.d[4].rules, BKR_RETAIN_YEARLY);
}

static void test_keep_within(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_within_s = 2 * D };
	(void)state;
	add(&l, 1 * H);
	add(&l, 2 * D - 1);
	add(&l, 2 * D);      /* exactly 2 days old: not within */
	add(&l, 3 * D);
	add(&l, -1 * D);     /* after as-of: within */
	run(&l, &p);
	expect(&l, "KKRRK");
	assert_int_equal(l.d[1].rules, BKR_RETAIN_WITHIN);
}

/* keep_within over the whole range of times a manifest holds (1677 to 2262):
 * as-of minus a backup's time exceeds an int64, and must not wrap into "within" */
static void test_keep_within_far_past(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_within_s = 30 * D };
	bkr_retention_item *old;
	(void)state;
	add(&l, 1 * H);
	old = add(&l, 0);
	old->time_ns = -9223372036LL * NS; /* 1677-09-21T00:12:44Z, the earliest time bkr_time_parse takes */
	run(&l, &p);
	expect(&l, "KR");
	/* the same from the latest as-of there is */
	l.it[0].time_ns = 9223372035LL * NS - H * NS;
	run_at(&l, &p, 9223372035LL * NS);
	expect(&l, "KR");
}

static void test_pins(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 1 };
	bkr_retention_item *it;
	(void)state;
	it = add(&l, 10 * D); /* forever */
	it->pinned = true;
	it->pinned_until_ns = INT64_MAX;
	it = add(&l, 9 * D); /* until tomorrow */
	it->pinned = true;
	it->pinned_until_ns = AS_OF + D * NS;
	it = add(&l, 8 * D); /* pin expired yesterday */
	it->pinned = true;
	it->pinned_until_ns = AS_OF - D * NS;
	it = add(&l, 7 * D); /* expires exactly now: expired */
	it->pinned = true;
	it->pinned_until_ns = AS_OF;
	add(&l, 1 * D);
	run(&l, &p);
	expect(&l, "KKRRK");
	assert_int_equal(l.d[0].rules, BKR_RETAIN_PINNED);
	assert_int_equal(l.d[1].rules, BKR_RETAIN_PINNED);
}

/* A held backup (the last good copy of a damaged workspace file) is kept however old. */
static void test_held(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 1 };
	(void)state;
	add(&l, 30 * D)->held = true;
	add(&l, 20 * D);
	add(&l, 10 * D)->held = true;
	add(&l, 1 * D);
	run(&l, &p);
	expect(&l, "KRKK");
	assert_int_equal(l.d[0].rules, BKR_RETAIN_HELD);
	assert_int_equal(l.d[2].rules, BKR_RETAIN_HELD);
	/* counted as any other: a held backup that is also the newest says both */
	l.n = 0;
	add(&l, 1 * D)->held = true;
	run(&l, &p);
	assert_int_equal(l.d[0].rules, BKR_RETAIN_HELD | BKR_RETAIN_NEWEST | BKR_RETAIN_LAST);
}

/* Each source keeps its newest backup even when no rule counts it. */
static void test_newest_of_each_source(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 1 };
	(void)state;
	add(&l, 9 * D)->sources = other; /* the only backup of "other" on h */
	add(&l, 8 * D)->sources = both;  /* a newer one of both: now the newest of "other" */
	l.it[1].nsources = 2;
	add(&l, 7 * D)->sources = other;
	add(&l, 3 * D)->host = "h2";     /* "ws" on another host */
	add(&l, 1 * D);
	add(&l, 2 * D);
	run(&l, &p);
	/* b000: older "other" -> R; b001 (ws+other, one group of its own, keep_last 1) -> K;
	 * b002: newest "other" -> K; b003: h2's only -> K; b004: newest ws -> K; b005 -> R */
	expect(&l, "RKKKKR");
	assert_int_equal(l.d[2].rules, BKR_RETAIN_NEWEST | BKR_RETAIN_LAST);
	assert_int_equal(l.d[3].rules, BKR_RETAIN_NEWEST | BKR_RETAIN_LAST);
	assert_int_equal(l.d[1].rules, BKR_RETAIN_LAST);
}

/* keep_last counts per host, type and source set (restic's groups). */
static void test_groups(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy p = { .keep_last = 2 };
	(void)state;
	for (int i = 0; i < 4; i++)
		add(&l, (10 - i) * D);
	for (int i = 0; i < 4; i++)
		add(&l, (5 - i) * D)->type = BKR_BACKUP_INCREMENTAL;
	run(&l, &p);
	expect(&l, "RRKKRRKK");
}

/* A per-type policy applies to that type's backups only. */
static void test_type_override(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy def = { .keep_last = 1 }, snap = { .keep_last = 3 };
	const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1] = { &def, &def, &def, &snap, &def };
	(void)state;
	for (int i = 0; i < 4; i++)
		add(&l, (20 - i) * D)->type = BKR_BACKUP_SNAPSHOT;
	for (int i = 0; i < 4; i++)
		add(&l, (10 - i) * D);
	assert_int_equal(bkr_retention_apply(l.d, l.it, l.n, pol, AS_OF), 0);
	expect(&l, "RKKKRRRK");
}

/* Two backups in one second: ordered by id, each counted by keep_last,
 * only the one with the greater id stands for the hour. */
static void test_same_second(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy last = { .keep_last = 1 }, hourly = { .keep_hourly = 1 };
	(void)state;
	add(&l, 5 * D);
	add(&l, 5 * D);
	add(&l, 5 * D);
	run(&l, &last);
	expect(&l, "RRK");
	run(&l, &hourly);
	expect(&l, "RRK");
	last.keep_last = 2;
	run(&l, &last);
	expect(&l, "RKK");
}

/* A backup dated in the future (the clock was ahead when it was made) is
 * kept, but counts for no rule: it is not the newest of its source, takes
 * no keep_last place and stands for no period, so the real newest backups
 * stay.  Within the 5 minutes of clock skew it counts as usual. */
static void test_future(void **state)
{
	struct list l = { .n = 0 };
	bkr_retention_policy last = { .keep_last = 1 }, daily = { .keep_daily = 2 }, within = { .keep_within_s = D };
	(void)state;
	add(&l, 2 * D);
	add(&l, 1 * H);
	add(&l, -3 * 365 * D); /* 2029 */
	run(&l, &last);
	expect(&l, "RKK");
	assert_int_equal(l.d[1].rules, BKR_RETAIN_NEWEST | BKR_RETAIN_LAST);
	assert_int_equal(l.d[2].rules, BKR_RETAIN_FUTURE);
	run(&l, &daily);
	expect(&l, "KKK");
	assert_int_equal(l.d[0].rules, BKR_RETAIN_DAILY);
	assert_int_equal(l.d[2].rules, BKR_RETAIN_FUTURE);
	run(&l, &within);
	expect(&l, "RKK");
	assert_int_equal(l.d[2].rules, BKR_RETAIN_FUTURE);
	/* pinned too: both said */
	l.it[2].pinned = true;
	l.it[2].pinned_until_ns = INT64_MAX;
	run(&l, &last);
	expect(&l, "RKK");
	assert_int_equal(l.d[2].rules, BKR_RETAIN_FUTURE | BKR_RETAIN_PINNED);

	/* 5 minutes ahead is clock skew: it is the newest and the last */
	l.n = 0;
	add(&l, 1 * H);
	add(&l, -5 * 60);
	run(&l, &last);
	expect(&l, "RK");
	assert_int_equal(l.d[1].rules, BKR_RETAIN_NEWEST | BKR_RETAIN_LAST);
	/* a second more is the future */
	l.it[1].time_ns += 1;
	run(&l, &last);
	expect(&l, "KK");
	assert_int_equal(l.d[1].rules, BKR_RETAIN_FUTURE);
}

static void test_rules_str(void **state)
{
	char buf[128];
	(void)state;
	assert_string_equal(bkr_retention_rules_str(0, buf, sizeof(buf)), "-");
	assert_string_equal(bkr_retention_rules_str(BKR_RETAIN_PINNED | BKR_RETAIN_DAILY, buf, sizeof(buf)),
			    "pinned,daily");
	assert_string_equal(bkr_retention_rules_str(BKR_RETAIN_YEARLY, buf, sizeof(buf)), "yearly");
	assert_string_equal(bkr_retention_rules_str(BKR_RETAIN_FUTURE, buf, sizeof(buf)), "future");
	assert_string_equal(bkr_retention_rules_str(BKR_RETAIN_HELD | BKR_RETAIN_LAST, buf, sizeof(buf)), "last,held");
}

static void test_item_from_manifest(void **state)
{
	bkr_manifest *m = bkr_manifest_new();
	bkr_retention_item it;
	const char *names[2];
	(void)state;
	assert_non_null(m);
	m->backup_id = strdup("backup_x");
	m->hostname = strdup("h");
	m->time_ns = AS_OF;
	m->type = BKR_BACKUP_SNAPSHOT;
	m->sources = calloc(2, sizeof(*m->sources));
	m->nsources = 2;
	m->sources[0].source = strdup("a");
	m->sources[1].source = strdup("b");
	bkr_retention_item_from(&it, m, names);
	assert_false(it.pinned);
	assert_int_equal(it.nsources, 2);
	assert_string_equal(it.sources[1], "b");
	m->pinned_until = strdup("");
	bkr_retention_item_from(&it, m, names);
	assert_true(it.pinned);
	assert_true(it.pinned_until_ns == INT64_MAX);
	free(m->pinned_until);
	m->pinned_until = strdup("2026-12-01");
	bkr_retention_item_from(&it, m, names);
	assert_true(it.pinned_until_ns == AS_OF + 12 * H * NS);
	free(m->pinned_until);
	m->pinned_until = strdup("not a date"); /* kept: the safe side */
	bkr_retention_item_from(&it, m, names);
	assert_true(it.pinned && it.pinned_until_ns == INT64_MAX);
	bkr_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_no_rule_keeps_newest),
		cmocka_unit_test(test_keep_last),
		cmocka_unit_test(test_order_independent),
		cmocka_unit_test(test_keep_hourly),
		cmocka_unit_test(test_keep_daily_skips_empty_days),
		cmocka_unit_test(test_daily_is_utc),
		cmocka_unit_test(test_keep_weekly_iso),
		cmocka_unit_test(test_weekly_across_new_year),
		cmocka_unit_test(test_keep_monthly_yearly),
		cmocka_unit_test(test_keep_within),
		cmocka_unit_test(test_keep_within_far_past),
		cmocka_unit_test(test_pins),
		cmocka_unit_test(test_held),
		cmocka_unit_test(test_newest_of_each_source),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_type_override),
		cmocka_unit_test(test_same_second),
		cmocka_unit_test(test_future),
		cmocka_unit_test(test_rules_str),
		cmocka_unit_test(test_item_from_manifest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
