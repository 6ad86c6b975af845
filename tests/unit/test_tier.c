/** @file
 * Storage tiers (engine/tier.c): the selection rule on synthetic manifests
 * with fixed clocks (ages at and around each after_days, pins forever and
 * until a time, one tier configured, age 0, a backup from the future), the
 * tier records (search order, one per location, damaged ones left out; two
 * tiers at one place or one inside another refused), and
 * a migration of a real repository: the old backup's data pack goes warm,
 * the new one's and every tree pack stay, a pinned backup keeps its data
 * hot, and a repository opened afresh reads everything from its records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bkr/backup.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "bkr/tier.h"

#include "testutil.h"

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)
#define DAY (86400LL * 1000000000LL)
#define T0 (1800000000LL * 1000000000LL) /* the fixed "now" of the rule tests */

static int level_at(const bkr_tier_policy *p, int64_t age_ns, const char *pinned_until)
{
	bkr_manifest m = { 0 };
	m.time_ns = T0 - age_ns;
	m.pinned_until = (char *)pinned_until;
	return bkr_tier_level(p, &m, T0);
}

static void test_rule_ages(void **state)
{
	bkr_tier_policy p = { { { NULL, 0 }, { "/w", 7 }, { "/c", 30 } } };
	(void)state;
	assert_int_equal(level_at(&p, 0, NULL), BKR_TIER_HOT);
	assert_int_equal(level_at(&p, 7 * DAY - 1, NULL), BKR_TIER_HOT);
	assert_int_equal(level_at(&p, 7 * DAY, NULL), BKR_TIER_WARM);
	assert_int_equal(level_at(&p, 30 * DAY - 1, NULL), BKR_TIER_WARM);
	assert_int_equal(level_at(&p, 30 * DAY, NULL), BKR_TIER_COLD);
	assert_int_equal(level_at(&p, 4000 * DAY, NULL), BKR_TIER_COLD);
	/* dated in the future (the clock was ahead): no age to judge by, so not
	 * young until long after its date: it asks for the coldest tier */
	assert_int_equal(level_at(&p, -DAY, NULL), BKR_TIER_COLD);
	assert_int_equal(level_at(&p, -3650 * DAY, NULL), BKR_TIER_COLD);
	/* within the 5 minutes of clock skew it was made now: hot */
	assert_int_equal(level_at(&p, -BKR_CLOCK_SKEW_NS, NULL), BKR_TIER_HOT);
	assert_int_equal(level_at(&p, -BKR_CLOCK_SKEW_NS - 1, NULL), BKR_TIER_COLD);
	/* the earliest time a manifest holds (1677): its age exceeds an int64
	 * and must not wrap into a negative age, young and hot */
	{
		bkr_manifest m = { 0 };
		m.time_ns = -9223372036LL * 1000000000LL;
		assert_int_equal(bkr_tier_level(&p, &m, T0), BKR_TIER_COLD);
	}
}

static void test_rule_future(void **state)
{
	bkr_tier_policy warm = { { { NULL, 0 }, { "/w", 7 }, { NULL, 30 } } };
	bkr_tier_policy none = { { { NULL, 0 }, { NULL, 7 }, { NULL, 30 } } };
	bkr_tier_policy both = { { { NULL, 0 }, { "/w", 7 }, { "/c", 30 } } };
	(void)state;
	assert_int_equal(level_at(&warm, -DAY, NULL), BKR_TIER_WARM); /* the coldest configured */
	assert_int_equal(level_at(&none, -DAY, NULL), BKR_TIER_HOT);
	assert_int_equal(level_at(&both, -DAY, ""), BKR_TIER_HOT);    /* a pin still keeps it hot */
}

/* judged at an --as-of time in the past, a backup made after it (not dated
 * in the future now) did not exist then: young, not taken for old */
static void test_rule_after_as_of(void **state)
{
	bkr_tier_policy both = { { { NULL, 0 }, { "/w", 7 }, { "/c", 30 } } };
	int64_t as_of = bkr_time_now_ns() - 400 * DAY;
	bkr_manifest m = { 0 };
	(void)state;
	m.time_ns = as_of + DAY;
	assert_int_equal(bkr_tier_level(&both, &m, as_of), BKR_TIER_HOT);
	m.time_ns = as_of - 40 * DAY;
	assert_int_equal(bkr_tier_level(&both, &m, as_of), BKR_TIER_COLD);
	m.time_ns = bkr_time_now_ns() + 3650 * DAY; /* dated in the future now too */
	assert_int_equal(bkr_tier_level(&both, &m, as_of), BKR_TIER_COLD);
}

static void test_rule_pins(void **state)
{
	bkr_tier_policy p = { { { NULL, 0 }, { "/w", 7 }, { "/c", 30 } } };
	char before[32], after[32];
	(void)state;
	bkr_time_format(before, T0 - DAY);
	bkr_time_format(after, T0 + DAY);
	assert_int_equal(level_at(&p, 400 * DAY, ""), BKR_TIER_HOT);      /* pinned forever */
	assert_int_equal(level_at(&p, 400 * DAY, after), BKR_TIER_HOT);   /* pinned past as-of */
	assert_int_equal(level_at(&p, 400 * DAY, before), BKR_TIER_COLD); /* the pin ended */
	assert_int_equal(level_at(&p, 400 * DAY, "not a time"), BKR_TIER_HOT);
}

static void test_rule_one_tier(void **state)
{
	bkr_tier_policy warm = { { { NULL, 0 }, { "/w", 7 }, { NULL, 30 } } };
	bkr_tier_policy cold = { { { NULL, 0 }, { NULL, 7 }, { "/c", 30 } } };
	bkr_tier_policy zero = { { { NULL, 0 }, { "/w", 0 }, { NULL, 0 } } };
	(void)state;
	assert_int_equal(level_at(&warm, 400 * DAY, NULL), BKR_TIER_WARM);
	assert_int_equal(level_at(&cold, 10 * DAY, NULL), BKR_TIER_HOT);
	assert_int_equal(level_at(&cold, 30 * DAY, NULL), BKR_TIER_COLD);
	assert_int_equal(level_at(&zero, 0, NULL), BKR_TIER_WARM);
	assert_int_equal(level_at(&zero, 0, ""), BKR_TIER_HOT);
	assert_string_equal(bkr_tier_name(BKR_TIER_COLD), "cold");
}

static void test_records(void **state)
{
	char *dir = tu_mkdtemp();
	bkr_store *s = NULL;
	bkr_tier_record *v = NULL;
	size_t n = 0;
	(void)state;
	assert_non_null(dir);
	assert_int_equal(bkr_store_local_open(&s, dir, 0), 0);
	assert_int_equal(bkr_tier_records_load(s, &v, &n), 0); /* none */
	assert_int_equal(n, 0);
	bkr_tier_records_free(v, n);
	assert_int_equal(bkr_tier_record_add(s, "cold", "/b", 2 * DAY), 0);
	assert_int_equal(bkr_tier_record_add(s, "warm", "/a", 1 * DAY), 0);
	assert_int_equal(bkr_tier_record_add(s, "warm", "/c", 3 * DAY), 0);
	assert_int_equal(bkr_tier_record_add(s, "warm", "/a/", 4 * DAY), 0); /* the same place again */
	assert_int_equal(bkr_tier_record_add(s, "bad/name", "/x", 5 * DAY), BKR_EINVAL);
	/* a damaged record, a temporary and a stray file are left out */
	sh("cd '%s/tiers' && sed 's|\"/c\"|\"/d\"|' *-warm.json | head -c 400 >00000000000000000009-warm.json && "
	   "echo x >.tmp-1 && echo y >README", dir);
	assert_int_equal(bkr_tier_records_load(s, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].tier, "warm");
	assert_string_equal(v[0].location, "/a/");
	assert_true(v[0].time_ns == 4 * DAY);
	assert_string_equal(v[1].location, "/c");
	assert_string_equal(v[2].tier, "cold");
	assert_string_equal(v[2].location, "/b");
	bkr_tier_records_free(v, n);
	bkr_store_free(s);
	tu_rmrf(dir);
	free(dir);
}

/* Recorded locations against each other: one directory per tier. */
static void test_records_check(void **state)
{
	static const struct {
		const char *tier[2], *loc[2];
		int want;
		const char *says;
	} cases[] = {
		{ { "warm", "cold" }, { "/t/w", "/t" }, BKR_EINVAL, "tier warm's /t/w is inside /t, the directory of tier cold" },
		{ { "warm", "cold" }, { "/t", "/t/c/" }, BKR_EINVAL, "tier warm's /t holds /t/c/, the directory of tier cold" },
		{ { "warm", "cold" }, { "/a", "/a/" }, BKR_EINVAL, "tier warm's /a is the directory of tier cold" },
		{ { "warm", "warm" }, { "/a", "/a/b" }, BKR_EINVAL, "is inside /a, the directory of tier warm" },
		{ { "warm", "warm" }, { "/a", "/a/" }, 0, NULL },  /* one tier, one place, two records */
		{ { "warm", "cold" }, { "/a", "/ab" }, 0, NULL },  /* a prefix of the name is no parent */
		{ { "warm", "cold" }, { "s3://b/t", "s3://b/t/w" }, BKR_EINVAL, "holds s3://b/t/w" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *dir = tu_mkdtemp();
		bkr_store *s = NULL;
		assert_non_null(dir);
		assert_int_equal(bkr_store_local_open(&s, dir, 0), 0);
		assert_int_equal(bkr_tier_records_check(s), 0); /* no records */
		assert_int_equal(bkr_tier_record_add(s, cases[i].tier[0], cases[i].loc[0], 1 * DAY), 0);
		assert_int_equal(bkr_tier_record_add(s, cases[i].tier[1], cases[i].loc[1], 2 * DAY), 0);
		assert_int_equal(bkr_tier_records_check(s), cases[i].want);
		if (cases[i].says) {
			if (!strstr(bkr_error_message(), cases[i].says))
				fail_msg("case %zu: '%s' does not say '%s'", i, bkr_error_message(), cases[i].says);
			assert_null(strchr(bkr_error_message(), '\n'));
		}
		bkr_error_clear();
		bkr_store_free(s);
		tu_rmrf(dir);
		free(dir);
	}
}

/* ---- a real repository ------------------------------------------------------- */

struct fx {
	char dir[256], repo[300], src[300], warm[300];
	bkr_repo *r;
};

static bkr_manifest *backup_at(struct fx *f, const char *when)
{
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_source_spec s = { "src", f->src, NULL, 0 };
	bkr_manifest *m = NULL;
	o.type = BKR_BACKUP_FULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	o.threads = 1;
	setenv("BKR_TEST_NOW", when, 1);
	assert_int_equal(bkr_backup_run(f->r, &o, &m), 0);
	unsetenv("BKR_TEST_NOW");
	return m;
}

static size_t count(const char *dir, const char *name)
{
	char cmd[600];
	size_t n = 0;
	FILE *p;
	snprintf(cmd, sizeof(cmd), "find '%s' -name '%s' 2>/dev/null | wc -l", dir, name);
	assert_non_null(p = popen(cmd, "r"));
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

static void migrate(struct fx *f, const char *as_of, bkr_tier_migrate_report *rep)
{
	bkr_tier_migrate_options o = BKR_TIER_MIGRATE_OPTIONS_INIT;
	o.policy.tier[BKR_TIER_WARM] = (bkr_tier_conf){ f->warm, 7 };
	assert_int_equal(bkr_time_parse(as_of, &o.as_of_ns), 0);
	o.as_of_set = true;
	assert_int_equal(bkr_tier_migrate(f->r, &o, rep), 0);
}

static void expect_readable(struct fx *f, const bkr_manifest *m)
{
	bkr_tree *t = NULL;
	assert_int_equal(bkr_repo_load_tree(f->r, &m->tree, &t), 0);
	bkr_tree_free(t);
}

static void test_migrate(void **state)
{
	struct fx f = { 0 };
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_tier_migrate_report rep;
	bkr_manifest *old, *young;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(f.dir, sizeof(f.dir), "test-tier"), 0);
	snprintf(f.repo, sizeof(f.repo), "%s/repo", f.dir);
	snprintf(f.src, sizeof(f.src), "%s/src", f.dir);
	snprintf(f.warm, sizeof(f.warm), "%s/warm", f.dir);
	sh("mkdir -p '%s' '%s' && head -c 100000 /dev/urandom >'%s/a'", f.src, f.warm, f.src);
	assert_int_equal(bkr_repo_init(f.repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f.r, f.repo, 0), 0);
	old = backup_at(&f, "2026-06-01T00:00:00Z");
	sh("rm '%s/a' && head -c 100000 /dev/urandom >'%s/b'", f.src, f.src);
	young = backup_at(&f, "2026-06-20T00:00:00Z");
	assert_int_equal(count(f.repo, "*.pack"), 4); /* a data and a tree pack each */

	/* as of the epoch itself (0 ns), not now: neither backup was made yet, nothing moves */
	migrate(&f, "1970-01-01T00:00:00Z", &rep);
	assert_int_equal(rep.packs[BKR_TIER_WARM], 0);
	assert_int_equal(rep.stay_packs, 2);
	assert_int_equal(count(f.warm, "*.pack"), 0);
	assert_int_equal(count(f.repo, "*.pack"), 4);

	/* as of 06-21: the old backup is 20 days old, the young one 1 */
	migrate(&f, "2026-06-21T00:00:00Z", &rep);
	assert_int_equal(rep.packs[BKR_TIER_WARM], 1);
	assert_int_equal(rep.stay_packs, 1);
	assert_int_equal(rep.backups, 2);
	assert_int_equal(count(f.warm, "*.pack"), 1);
	assert_int_equal(count(f.warm, "tier.json"), 1);
	assert_int_equal(count(f.repo, "*.pack"), 3); /* both tree packs stay */
	{
		char trees[320];
		snprintf(trees, sizeof(trees), "%s/tree", f.repo);
		assert_int_equal(count(trees, "*.pack"), 2);
	}

	/* a repository opened afresh finds the warm pack from its records alone */
	bkr_repo_free(f.r);
	assert_int_equal(bkr_repo_open(&f.r, f.repo, 0), 0);
	assert_int_equal(bkr_repo_tier_count(f.r), 1);
	assert_int_equal(bkr_tier_check(f.r), 0);
	expect_readable(&f, old);
	expect_readable(&f, young);

	/* pinned: the old backup's data comes back */
	{
		char rec[256];
		snprintf(rec, sizeof(rec), "{\"kind\":\"pin\",\"backup_id\":\"%s\",\"time\":\"2026-06-21T00:00:00Z\"}",
			 old->backup_id);
		assert_int_equal(bkr_repo_add_record(f.r, rec), 0);
	}
	migrate(&f, "2026-06-21T00:00:00Z", &rep);
	assert_int_equal(rep.packs[BKR_TIER_HOT], 1);
	assert_int_equal(count(f.warm, "*.pack"), 0);
	assert_int_equal(count(f.repo, "*.pack"), 4);

	/* a recorded tier that is gone, or not mounted (no tier.json): an error
	 * before anything moves */
	sh("mv '%s' '%s.away'", f.warm, f.warm);
	assert_int_equal(bkr_tier_check(f.r), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "missing or not mounted"));
	sh("mkdir '%s'", f.warm);
	{
		bkr_tier_migrate_options o = BKR_TIER_MIGRATE_OPTIONS_INIT;
		o.policy.tier[BKR_TIER_WARM] = (bkr_tier_conf){ f.warm, 0 };
		assert_int_equal(bkr_tier_migrate(f.r, &o, &rep), BKR_ENOTFOUND);
		assert_non_null(strstr(bkr_error_message(), "holds no tier.json"));
		assert_int_equal(count(f.repo, "*.pack"), 4);
	}
	bkr_manifest_free(old);
	bkr_manifest_free(young);
	bkr_repo_free(f.r);
	tu_rmrf(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_ages),
		cmocka_unit_test(test_rule_future),
		cmocka_unit_test(test_rule_after_as_of),
		cmocka_unit_test(test_rule_pins),
		cmocka_unit_test(test_rule_one_tier),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_records_check),
		cmocka_unit_test(test_migrate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
