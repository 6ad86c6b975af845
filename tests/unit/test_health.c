/** @file
 * Unit tests of health.c's Prometheus text: HELP and TYPE lines for every
 * metric, label values escaped (backslash, quote, newline), "none" values
 * (no backup, no verify, a routine that never ran), and the atomic write;
 * the routine records read from the end of routines.jsonl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bkr/config.h"
#include "bkr/health.h"
#include "bkr/io.h"
#include "bkr/repo.h"
#include "bkr/verify_record.h"
#include "testutil.h"

#define NS 1000000000LL

static void fill(bkr_health *h, bkr_health_source *src)
{
	memset(h, 0, sizeof(*h));
	h->now_ns = 1796040000LL * NS;
	src[0] = (bkr_health_source){ .name = "a\"b\\c\nd", .schedule = BKR_SCHEDULE_HOURLY,
				      .newest_ns = h->now_ns - 600 * NS };
	src[1] = (bkr_health_source){ .name = "never", .schedule = BKR_SCHEDULE_DAILY, .newest_ns = INT64_MIN,
				      .stale = true };
	h->sources = src;
	h->nsources = 2;
	h->tier_bytes[BKR_TIER_HOT] = 4096;
	h->tier_packs[BKR_TIER_HOT] = 2;
	h->repo_bytes = 4096;
	h->routines[BKR_ROUTINE_DAILY] = (bkr_health_routine){ .known = true, .last_ns = h->now_ns - 3600 * NS,
							       .last_ok = false, .failures = 3 };
}

static void test_text(void **state)
{
	bkr_health_source src[2];
	bkr_health h;
	char *t;
	(void)state;
	fill(&h, src);
	t = bkr_health_prometheus(&h);
	assert_non_null(t);
	assert_non_null(strstr(t, "# HELP bkr_healthy "));
	assert_non_null(strstr(t, "# TYPE bkr_healthy gauge\nbkr_healthy 1\n"));
	assert_non_null(strstr(t, "bkr_source_last_backup_age_seconds{source=\"a\\\"b\\\\c\\nd\"} 600\n"));
	assert_non_null(strstr(t, "bkr_source_last_backup_age_seconds{source=\"never\"} -1\n"));
	assert_non_null(strstr(t, "bkr_source_last_backup_timestamp_seconds{source=\"never\"} 0\n"));
	assert_non_null(strstr(t, "bkr_source_stale{source=\"never\"} 1\n"));
	assert_non_null(strstr(t, "bkr_verify_last_timestamp_seconds 0\n"));
	assert_non_null(strstr(t, "bkr_verify_read_data_last_timestamp_seconds 0\n"));
	assert_non_null(strstr(t, "bkr_verify_read_data_last_ok 0\n"));
	assert_non_null(strstr(t, "bkr_tier_bytes{tier=\"hot\"} 4096\n"));
	assert_non_null(strstr(t, "bkr_tier_bytes{tier=\"cold\"} 0\n"));
	assert_non_null(strstr(t, "bkr_routine_last_ok{routine=\"daily\"} 0\n"));
	assert_non_null(strstr(t, "bkr_routine_last_ok{routine=\"hourly\"} 1\n"));
	assert_non_null(strstr(t, "bkr_routine_recent_failures{routine=\"daily\"} 3\n"));
	assert_null(strstr(t, "growth")); /* unknown: absent */
	/* every sample's metric has HELP and TYPE lines before it */
	for (char *line = t; *line;) {
		char *nl = strchr(line, '\n'), name[128], help[160];
		size_t n = strcspn(line, "{ ");
		assert_non_null(nl);
		if (line[0] != '#') {
			assert_true(n < sizeof(name));
			memcpy(name, line, n);
			name[n] = '\0';
			snprintf(help, sizeof(help), "# TYPE %s gauge\n", name);
			assert_non_null(strstr(t, help));
			assert_true(strstr(t, help) < line);
		}
		line = nl + 1;
	}
	free(t);
	/* a newest backup of 1677 (a manifest says any time bkr parses) is
	 * 11,019,326,400 s old in 2026: more than an int64 of ns counts */
	src[0].newest_ns = -9223286400LL * NS;
	t = bkr_health_prometheus(&h);
	assert_non_null(t);
	assert_non_null(strstr(t, "bkr_source_last_backup_age_seconds{source=\"a\\\"b\\\\c\\nd\"} 11019326400\n"));
	free(t);
}

static void test_write(void **state)
{
	bkr_health_source src[2];
	bkr_health h;
	char dir[256], path[300];
	uint8_t *data;
	size_t len;
	(void)state;
	fill(&h, src);
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);
	snprintf(path, sizeof(path), "%s/bkr.prom", dir);
	assert_int_equal(bkr_health_write_prometheus(&h, path), 0);
	h.repo_bytes = 8192;
	assert_int_equal(bkr_health_write_prometheus(&h, path), 0); /* replaces */
	assert_int_equal(bkr_io_read_file(path, 1 << 20, &data, &len), 0);
	assert_non_null(strstr((char *)data, "bkr_repository_bytes 8192\n"));
	free(data);
	snprintf(path, sizeof(path), "%s/missing/bkr.prom", dir);
	assert_true(bkr_health_write_prometheus(&h, path) < 0);
	tu_rmrf(dir);
}

/* Health without a repository (bkr_health_check_unopened), its routine records
 * being @p text: the reasons beyond 'cannot be opened' in *h. */
static bkr_health *records_health(const char *dir, const void *text, size_t len)
{
	char cfgtext[1024], logs[300];
	bkr_config *cfg = NULL;
	bkr_health *h = NULL;

	snprintf(logs, sizeof(logs), "%s/logs", dir);
	snprintf(cfgtext, sizeof(cfgtext),
		 "{\"repository\": \"%s/repo\", \"workspace_root\": \"%s\", \"log_dir\": \"%s\"}", dir, dir,
		 logs);
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", dir), 0);
	assert_int_equal(tu_write(logs, "routines.jsonl", text, len), 0);
	assert_int_equal(bkr_health_check_unopened(&h, cfg, "gone", 1796040000LL * NS), 0);
	bkr_config_free(cfg);
	assert_true(h->nreasons >= 1);
	return h;
}

static bool has_reason(const bkr_health *h, const char *part)
{
	for (size_t i = 0; i < h->nreasons; i++)
		if (strstr(h->reasons[i], part))
			return true;
	return false;
}

/* routines.jsonl read from its end: a file of empty lines holds no record (as
 * an empty file: no reason, not "a line longer than 4 MiB"); a tail of 4 MiB
 * that starts just after a newline starts with a whole record, which counts
 * (it was skipped as the partial first line, and the last daily routine's
 * failure went unseen behind a false "longer than 4 MiB") */
static void test_records(void **state)
{
	enum { TAIL = 4u << 20 };
	char dir[256];
	bkr_health *h;
	char *big;
	size_t at;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);

	h = records_health(dir, "\n\n", 2);
	assert_int_equal(h->nreasons, 1); /* the repository's alone */
	assert_false(has_reason(h, "routine records"));
	bkr_health_free(h);

	h = records_health(dir, "{\"routine\"\n", 12);
	assert_true(has_reason(h, "is not a routine record (it does not parse)"));
	bkr_health_free(h);

	/* a first line of 100 bytes, then a record of exactly 4 MiB (newline included) */
	assert_non_null(big = malloc(100 + TAIL));
	memset(big, ' ', 100 + TAIL);
	big[0] = '{';
	big[1] = '}';
	big[99] = '\n';
	at = 100 + (size_t)snprintf(big + 100, 200, "{\"routine\":\"daily\",\"start\":\"2026-11-30T00:00:00Z\",\"exit\":6,\"pad\":\"");
	memset(big + at, 'x', 100 + TAIL - at - 3); /* the pad runs to the end */
	memcpy(big + 100 + TAIL - 3, "\"}\n", 3);
	h = records_health(dir, big, 100 + TAIL);
	assert_false(has_reason(h, "routine records"));
	assert_true(h->routines[BKR_ROUTINE_DAILY].known);
	assert_false(h->routines[BKR_ROUTINE_DAILY].last_ok);
	assert_true(has_reason(h, "the last daily routine failed"));
	bkr_health_free(h);

	/* the tail starting inside a first line of 4 MiB + 40 bytes: that part is
	 * left out, the record after it read */
	memset(big, 'g', 100 + TAIL);
	big[TAIL + 39] = '\n';
	at = TAIL + 40 + (size_t)snprintf(big + TAIL + 40, 60, "{\"routine\":\"daily\",\"start\":\"2026-11-30T00:00:00Z\"}\n");
	h = records_health(dir, big, at);
	assert_false(has_reason(h, "routine records"));
	assert_true(h->routines[BKR_ROUTINE_DAILY].known);
	assert_true(h->routines[BKR_ROUTINE_DAILY].last_ok);
	bkr_health_free(h);
	free(big);
	tu_rmrf(dir);
}

/* A record may hold any time bkr can parse: a failed run dated 1677 is no
 * failure of the last 7 days (its distance to now overflowed an int64 and
 * wrapped: it was counted), and a count past 2^64 is no count (converted out
 * of range, undefined) */
static void test_records_far(void **state)
{
	static const char rec[] =
		"{\"routine\":\"daily\",\"start\":\"1677-09-22T00:00:00Z\",\"exit\":6,"
		"\"verify\":{\"time\":\"1677-09-22T00:00:00Z\",\"ok\":false,\"errors\":1e300,\"io_errors\":1e300}}\n";
	char dir[256];
	bkr_health *h;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);

	h = records_health(dir, rec, strlen(rec));
	assert_true(h->routines[BKR_ROUTINE_DAILY].known);
	assert_false(h->routines[BKR_ROUTINE_DAILY].last_ok);
	assert_int_equal(h->routines[BKR_ROUTINE_DAILY].failures, 0);
	assert_true(h->verify.known);
	assert_int_equal(h->verify.errors, 0);
	assert_int_equal(h->verify.io_errors, 0);
	bkr_health_free(h);
	tu_rmrf(dir);
}

/* The weekly routine's verify --read-data found damage; the daily routine's
 * verify of the structure after it read no data: both are kept, the last
 * verify being the daily one, and the damaged backups the weekly one named
 * stay known (they are no source's newest good backup) */
static void test_records_read_data(void **state)
{
	static const char rec[] =
		"{\"routine\":\"weekly\",\"start\":\"2026-11-29T00:00:00Z\",\"exit\":1,"
		"\"verify\":{\"time\":\"2026-11-29T01:00:00Z\",\"read_data\":true,\"ok\":false,\"errors\":2,"
		"\"damaged_objects\":[\"a\",\"b\"],\"damaged_backups\":[\"backup_20261128_000000_full_0a0b0c0d\"]}}\n"
		"{\"routine\":\"daily\",\"start\":\"2026-11-30T00:00:00Z\",\"exit\":0,"
		"\"verify\":{\"time\":\"2026-11-30T00:10:00Z\",\"read_data\":false,\"ok\":true,\"errors\":0}}\n";
	char dir[256];
	bkr_health *h;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);

	h = records_health(dir, rec, strlen(rec));
	assert_true(h->verify.known);
	assert_false(h->verify.read_data);
	assert_true(h->verify.ok);
	assert_true(h->verify_read_data.known);
	assert_true(h->verify_read_data.read_data);
	assert_false(h->verify_read_data.ok);
	assert_int_equal(h->verify_read_data.errors, 2);
	assert_int_equal(h->verify_read_data.damaged_objects, 2);
	assert_int_equal(h->verify_read_data.ndamaged_backups, 1);
	assert_string_equal(h->verify_read_data.damaged_backups[0], "backup_20261128_000000_full_0a0b0c0d");
	assert_true(h->verify_read_data.time_ns < h->verify.time_ns);
	bkr_health_free(h);
	tu_rmrf(dir);
}

/* The last verify --read-data could not read some objects (an I/O error, no
 * damage) and a verify of the structure came after it: the reason gives the
 * advice of an I/O error (the disk, then verify --read-data again), not
 * 'bkr repair', which has nothing to repair and stops at the same error */
static void test_records_read_data_io(void **state)
{
	static const char rec[] =
		"{\"routine\":\"weekly\",\"start\":\"2026-11-29T00:00:00Z\",\"exit\":0,"
		"\"verify\":{\"time\":\"2026-11-29T01:00:00Z\",\"read_data\":true,\"ok\":false,\"errors\":0,"
		"\"io_errors\":3,\"damaged_objects\":[]}}\n"
		"{\"routine\":\"daily\",\"start\":\"2026-11-30T00:00:00Z\",\"exit\":0,"
		"\"verify\":{\"time\":\"2026-11-30T00:10:00Z\",\"read_data\":false,\"ok\":true,\"errors\":0}}\n";
	char dir[256], cfgtext[1024], repo[300], logs[300];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_config *cfg = NULL;
	bkr_health *h = NULL;
	bkr_repo *r = NULL;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	snprintf(logs, sizeof(logs), "%s/logs", dir);
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	snprintf(cfgtext, sizeof(cfgtext), "{\"repository\": \"%s\", \"workspace_root\": \"%s\", \"log_dir\": \"%s\"}",
		 repo, dir, logs);
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", dir), 0);
	assert_int_equal(tu_write(logs, "routines.jsonl", rec, strlen(rec)), 0);

	assert_int_equal(bkr_health_check(&h, cfg, r, 1796040000LL * NS), 0);
	assert_true(h->verify.known && h->verify.ok && !h->verify.read_data);
	assert_int_equal(h->verify_read_data.io_errors, 3);
	assert_true(has_reason(h,
			       "the last verify --read-data (2026-11-29T01:00:00.000000Z) could not read 3 objects (an "
			       "I/O error, not damage: check the disk, then run 'bkr verify --read-data' again); "
			       "the verifies since read no data"));
	assert_false(has_reason(h, "bkr repair"));
	bkr_health_free(h);
	bkr_config_free(cfg);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

/* A verify record (as `bkr verify` leaves one) at @p t: of backup @p id (NULL:
 * all), naming @p bad as damaged (NULL: none). */
static void add_verify(bkr_repo *r, int64_t t, const char *id, bool read_data, bkr_verify_result result,
		       const char *bad)
{
	char *names[1] = { (char *)bad };
	bkr_verify_record rec = { .time_ns = t, .backup_id = (char *)id, .read_data = read_data, .result = result,
				  .damaged_backups = names, .ndamaged_backups = bad ? 1 : 0 };
	rec.stats.errors = bad ? 1 : 0;
	assert_int_equal(bkr_verify_record_add(r, &rec), 0);
}

/* health's damaged backups at @p now: "" or "a,b" */
static void damaged_at(const bkr_config *cfg, bkr_repo *r, int64_t now, const char *want, const char *reason)
{
	char got[512] = "";
	bkr_health *h = NULL;
	assert_int_equal(bkr_health_check(&h, cfg, r, now), 0);
	for (size_t i = 0; i < h->ndamaged_backups; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "", h->damaged_backups[i]);
	assert_string_equal(got, want);
	/* damage is a reason: the last verify's, or one of its own when no other names it */
	assert_true(!h->ndamaged_backups || h->nreasons > 0);
	assert_int_equal(has_reason(h, "a verify found an error in"), reason != NULL);
	if (reason)
		assert_true(has_reason(h, reason));
	bkr_health_free(h);
}

/* The damaged backups are the union of what every verify said, the newest
 * that checked a backup winning: the weekly routine's verify --read-data (in
 * routines.jsonl), a verify by hand of one backup (a verify record); a clean
 * verify of another backup, or of the structure alone, does not clear a
 * backup found damaged by reading its data; one that reads it again does */
static void test_damaged_backups(void **state)
{
	static const char rec[] =
		"{\"routine\":\"weekly\",\"start\":\"2026-11-29T00:00:00Z\",\"exit\":1,"
		"\"verify\":{\"time\":\"2026-11-29T01:00:00Z\",\"read_data\":true,\"ok\":false,\"errors\":2,"
		"\"damaged_objects\":[\"a\"],\"damaged_backups\":[\"bk_a\"]}}\n"
		"{\"routine\":\"daily\",\"start\":\"2026-11-30T00:00:00Z\",\"exit\":0,"
		"\"verify\":{\"time\":\"2026-11-30T00:10:00Z\",\"read_data\":false,\"ok\":true,\"errors\":0}}\n";
	const int64_t now = 1796040000LL * NS, H = 3600 * NS; /* 2026-12-01T12:00:00Z */
	char dir[256], cfgtext[1024], repo[300], logs[300];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_config *cfg = NULL;
	bkr_repo *r = NULL;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "health"), 0);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	snprintf(logs, sizeof(logs), "%s/logs", dir);
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	snprintf(cfgtext, sizeof(cfgtext), "{\"repository\": \"%s\", \"workspace_root\": \"%s\", \"log_dir\": \"%s\"}",
		 repo, dir, logs);
	assert_int_equal(bkr_config_from_string(&cfg, cfgtext, strlen(cfgtext), "bkr.json", dir), 0);
	assert_int_equal(tu_write(logs, "routines.jsonl", rec, strlen(rec)), 0);

	damaged_at(cfg, r, now, "bk_a", NULL); /* the daily verify of the structure does not clear it */
	add_verify(r, now + 1 * H, "bk_b", true, BKR_VERIFY_RESULT_PROBLEMS, "bk_b");
	damaged_at(cfg, r, now + 1 * H + 1, "bk_a,bk_b", NULL);
	damaged_at(cfg, r, now + 1 * H - 1, "bk_a", NULL); /* --as-of before it */
	add_verify(r, now + 2 * H, "bk_c", true, BKR_VERIFY_RESULT_OK, NULL);
	add_verify(r, now + 3 * H, NULL, false, BKR_VERIFY_RESULT_OK, NULL);
	damaged_at(cfg, r, now + 3 * H + 1, "bk_a,bk_b", "1 backup is damaged (first: bk_b)");
	/* one that could not finish (an I/O error) clears nothing */
	add_verify(r, now + 4 * H, "bk_b", true, BKR_VERIFY_RESULT_FAILED, NULL);
	damaged_at(cfg, r, now + 4 * H + 1, "bk_a,bk_b", "1 backup is damaged (first: bk_b)");
	add_verify(r, now + 5 * H, "bk_b", true, BKR_VERIFY_RESULT_OK, NULL);
	damaged_at(cfg, r, now + 5 * H + 1, "bk_a", NULL);
	/* a whole verify --read-data that names another: bk_a is whole again */
	add_verify(r, now + 6 * H, NULL, true, BKR_VERIFY_RESULT_PROBLEMS, "bk_d");
	damaged_at(cfg, r, now + 6 * H + 1, "bk_d", NULL);
	add_verify(r, now + 7 * H, NULL, true, BKR_VERIFY_RESULT_OK, NULL);
	damaged_at(cfg, r, now + 7 * H + 1, "", NULL);
	bkr_config_free(cfg);
	bkr_repo_free(r);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_write),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_records_far),
		cmocka_unit_test(test_records_read_data),
		cmocka_unit_test(test_records_read_data_io),
		cmocka_unit_test(test_damaged_backups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
