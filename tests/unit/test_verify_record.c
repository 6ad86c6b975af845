/** @file
 * Unit tests for verify_record.c: the codec round trip (every field, the cap
 * on damaged ids), hostile records (bad checksum, wrong types, bad ids,
 * another kind), the newest record of a real repository, and damage
 * records (prune's) read with the verify records' damaged blobs.
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
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/verify_record.h"
#include "testutil.h"

static bkr_verify_record *sample(size_t ndamaged, size_t nbackups)
{
	bkr_verify_record *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->time_ns = 1796022791232781000LL;
	r->duration_s = 1.5;
	r->host = strdup("host-a");
	r->backup_id = strdup("backup_20261130_000000_full_00000000");
	r->read_data = true;
	r->result = BKR_VERIFY_RESULT_PROBLEMS;
	r->stats = (bkr_verify_stats){ 3, 4, 5, 6, 7, 8, 9, 10 };
	r->damaged_files = 11;
	r->damaged = calloc(ndamaged ? ndamaged : 1, sizeof(*r->damaged));
	for (size_t i = 0; i < ndamaged; i++)
		memcpy(r->damaged[i].b, &i, sizeof(i));
	r->ndamaged = ndamaged;
	r->damaged_backups = calloc(nbackups ? nbackups : 1, sizeof(*r->damaged_backups));
	for (size_t i = 0; i < nbackups; i++) {
		char id[64];
		snprintf(id, sizeof(id), "backup_20261130_000000_incremental_%08zx", i);
		r->damaged_backups[i] = strdup(id);
	}
	r->ndamaged_backups = nbackups;
	return r;
}

/* @p json sealed, then decoded */
static int decode(const char *json, bkr_verify_record **out)
{
	char *sealed;
	size_t len;
	int err;
	assert_int_equal(bkr_json_seal(json, &sealed, &len), 0);
	err = bkr_verify_record_decode(out, sealed, len, "rec.json");
	free(sealed);
	return err;
}

static void test_round_trip(void **state)
{
	bkr_verify_record *in = sample(3, 2), *out = NULL;
	char *json;
	(void)state;
	assert_int_equal(bkr_verify_record_encode(in, &json), 0);
	assert_int_equal(decode(json, &out), 0);
	assert_int_equal(out->time_ns / 1000, in->time_ns / 1000); /* microseconds in the text */
	assert_true(out->duration_s == 1.5);
	assert_string_equal(out->host, "host-a");
	assert_string_equal(out->backup_id, in->backup_id);
	assert_true(out->read_data);
	assert_int_equal(out->result, BKR_VERIFY_RESULT_PROBLEMS);
	assert_memory_equal(&out->stats, &in->stats, sizeof(in->stats));
	assert_int_equal(out->damaged_files, 11);
	assert_int_equal(out->ndamaged, 3);
	assert_memory_equal(out->damaged, in->damaged, 3 * sizeof(*in->damaged));
	assert_int_equal(out->damaged_omitted, 0);
	assert_int_equal(out->ndamaged_backups, 2);
	assert_string_equal(out->damaged_backups[0], in->damaged_backups[0]);
	assert_string_equal(out->damaged_backups[1], in->damaged_backups[1]);
	assert_int_equal(out->damaged_backups_omitted, 0);
	assert_null(out->message);
	free(json);
	bkr_verify_record_free(out);
	bkr_verify_record_free(in);

	/* a failed run with a message, every backup */
	in = sample(0, 0);
	in->result = BKR_VERIFY_RESULT_FAILED;
	in->message = strdup("repo: cannot read index/: Permission denied");
	free(in->backup_id);
	in->backup_id = NULL;
	assert_int_equal(bkr_verify_record_encode(in, &json), 0);
	assert_int_equal(decode(json, &out), 0);
	assert_int_equal(out->result, BKR_VERIFY_RESULT_FAILED);
	assert_string_equal(out->message, in->message);
	assert_null(out->backup_id);
	assert_int_equal(out->ndamaged, 0);
	assert_int_equal(out->ndamaged_backups, 0);
	free(json);
	bkr_verify_record_free(out);
	bkr_verify_record_free(in);
	bkr_verify_record_free(NULL);
}

static void test_cap(void **state)
{
	bkr_verify_record *in = sample(BKR_VERIFY_RECORD_MAX_DAMAGED + 5, BKR_VERIFY_RECORD_MAX_BACKUPS + 3);
	bkr_verify_record *out = NULL;
	char *json;
	(void)state;
	assert_int_equal(bkr_verify_record_encode(in, &json), 0);
	assert_true(strlen(json) < (1u << 20)); /* a record is read with a 1 MiB limit */
	assert_int_equal(decode(json, &out), 0);
	assert_int_equal(out->ndamaged, BKR_VERIFY_RECORD_MAX_DAMAGED);
	assert_int_equal(out->damaged_omitted, 5);
	assert_int_equal(out->ndamaged_backups, BKR_VERIFY_RECORD_MAX_BACKUPS);
	assert_int_equal(out->damaged_backups_omitted, 3);
	free(json);
	bkr_verify_record_free(out);
	bkr_verify_record_free(in);
}

static void test_hostile(void **state)
{
	static const char *const bad[] = {
		"{\"kind\":\"verify\"}",                                            /* no time */
		"{\"kind\":\"verify\",\"time\":\"yesterday\"}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"fine\"}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"errors\":-1}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"errors\":1.5}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"files\":\"3\"}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"read_data\":1}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"host\":7}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_blobs\":{}}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_blobs\":[\"ab\"]}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_blobs\":[1]}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"duration_seconds\":-2}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_backups\":{}}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_backups\":[1]}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_backups\":[\"\"]}",
		"{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"damaged_backups_omitted\":-1}",
	};
	bkr_verify_record *out = (void *)1;
	const char *unsealed = "{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\"}";
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(decode(bad[i], &out), BKR_ECORRUPT);
		assert_null(out);
		assert_non_null(strstr(bkr_error_message(), "rec.json"));
	}
	/* no checksum; another kind is not an error */
	assert_int_equal(bkr_verify_record_decode(&out, unsealed, strlen(unsealed), "rec.json"), BKR_ECORRUPT);
	assert_int_equal(decode("{\"kind\":\"pin\",\"backup_id\":\"x\"}", &out), BKR_ENOTFOUND);
	assert_int_equal(decode("{\"time\":\"2026-11-30T00:00:00Z\"}", &out), BKR_ENOTFOUND);
	/* unknown keys are ignored; absent counters are 0 */
	assert_int_equal(decode("{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"new\":[1]}", &out), 0);
	assert_int_equal(out->stats.errors, 0);
	assert_false(out->read_data);
	bkr_verify_record_free(out);
}

/* bkr_verify_record_check: a sealed verify or damage record that does not
 * decode is ECORRUPT naming it and the key; another kind is not judged */
static int check(const char *json)
{
	char *sealed;
	size_t len;
	int err;
	assert_int_equal(bkr_json_seal(json, &sealed, &len), 0);
	err = bkr_verify_record_check(sealed, len, "rec.json");
	free(sealed);
	return err;
}

static void test_check(void **state)
{
	(void)state;
	assert_int_equal(check("{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"errors\":1e300}"),
			 BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "rec.json: \"errors\" is not a count"));
	assert_int_equal(check("{\"kind\":\"damage\",\"time\":\"2026-11-30T00:00:00Z\",\"damaged_blobs\":{}}"),
			 BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "rec.json: \"damaged_blobs\" is not an array"));
	assert_int_equal(check("{\"kind\":\"damage\",\"time\":7}"), BKR_ECORRUPT);
	assert_int_equal(check("{\"kind\":\"verify\",\"time\":\"2026-11-30T00:00:00Z\",\"result\":\"ok\",\"errors\":2}"),
			 0);
	assert_int_equal(check("{\"kind\":\"damage\",\"time\":\"2026-11-30T00:00:00Z\",\"damaged_blobs\":[]}"), 0);
	assert_int_equal(check("{\"kind\":\"pin\",\"backup_id\":\"x\",\"until\":7}"), 0); /* the catalog's to judge */
	assert_int_equal(check("{\"kind\":\"hold\"}"), 0);
	assert_string_equal(bkr_error_message(), "");
}

static void test_last(void **state)
{
	char dir[4096], repo_path[4200], rec[4300];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_verify_record *a = sample(1, 0), *b = sample(0, 1), *got = NULL;
	bkr_repo *r = NULL;
	FILE *f;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "verify-record"), 0);
	snprintf(repo_path, sizeof(repo_path), "%s/repo", dir);
	assert_int_equal(bkr_repo_init(repo_path, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo_path, 0), 0);
	assert_int_equal(bkr_verify_record_last(r, &got), BKR_ENOTFOUND);
	assert_int_equal(bkr_verify_record_add(r, a), 0);
	b->result = BKR_VERIFY_RESULT_OK;
	assert_int_equal(bkr_repo_add_record(r, "{\"kind\":\"pin\",\"backup_id\":\"x\",\"time\":\"2026-01-01T00:00:00Z\"}"), 0);
	assert_int_equal(bkr_verify_record_add(r, b), 0);
	/* a damaged record, named as the newest, is skipped */
	snprintf(rec, sizeof(rec), "%s/records/99999999999999999999-ffffffff.json", repo_path);
	assert_non_null(f = fopen(rec, "w"));
	fputs("{\"kind\":\"verify\",\"sha256\":\"00\"}", f);
	fclose(f);
	assert_int_equal(bkr_verify_record_last(r, &got), 0);
	assert_int_equal(got->result, BKR_VERIFY_RESULT_OK);
	assert_int_equal(got->ndamaged, 0);
	assert_int_equal(got->ndamaged_backups, 1);
	assert_string_equal(got->damaged_backups[0], b->damaged_backups[0]);
	bkr_verify_record_free(got);
	bkr_repo_free(r);
	/* read-only: refused, nothing written */
	assert_int_equal(bkr_repo_open(&r, repo_path, BKR_REPO_RDONLY), 0);
	assert_int_equal(bkr_verify_record_add(r, a), BKR_EUNSUPPORTED);
	bkr_repo_free(r);
	bkr_verify_record_free(a);
	bkr_verify_record_free(b);
	tu_rmrf(dir);
}

/* Every damaged id of the records, in order, into ctx's array. */
struct ids {
	bkr_id got[16];
	size_t n;
	uint64_t omitted;
};

static int collect(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted)
{
	struct ids *c = ctx;
	for (size_t i = 0; i < n && c->n < 16; i++)
		c->got[c->n++] = ids[i];
	c->omitted += omitted;
	return 0;
}

/* Damage records (prune's): read with the verify records' damaged blobs, never taken for a verify. */
static void test_damage_records(void **state)
{
	char dir[4096], repo_path[4200], rec[4300];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_verify_record *a = sample(1, 0), *got = NULL;
	bkr_damaged_copy c[2];
	struct ids ids = { .n = 0 };
	bkr_repo *r = NULL;
	FILE *f;
	(void)state;
	memset(c, 0, sizeof(c));
	c[0].blob.b[0] = 0xaa;
	c[0].pack.b[0] = 0x01;
	c[1].blob.b[0] = 0xbb;
	c[1].pack.b[0] = 0x02;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "damage-record"), 0);
	snprintf(repo_path, sizeof(repo_path), "%s/repo", dir);
	assert_int_equal(bkr_repo_init(repo_path, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo_path, 0), 0);
	assert_int_equal(bkr_verify_record_add(r, a), 0);
	assert_int_equal(bkr_damage_record_add(r, "prune", c, 2), 0);
	/* a damage record with a bad checksum, and one with a bad id: skipped */
	snprintf(rec, sizeof(rec), "%s/records/99999999999999999998-ffffffff.json", repo_path);
	assert_non_null(f = fopen(rec, "w"));
	fputs("{\"kind\":\"damage\",\"damaged_blobs\":[\"00\"],\"sha256\":\"00\"}", f);
	fclose(f);
	assert_int_equal(bkr_damaged_blobs_foreach(r, collect, &ids), 0);
	assert_int_equal(ids.n, 3); /* the verify's one, then prune's two */
	assert_memory_equal(&ids.got[0], &a->damaged[0], sizeof(bkr_id));
	assert_memory_equal(&ids.got[1], &c[0].blob, sizeof(bkr_id));
	assert_memory_equal(&ids.got[2], &c[1].blob, sizeof(bkr_id));
	assert_int_equal(ids.omitted, 0);
	/* the last verify is still the verify */
	assert_int_equal(bkr_verify_record_last(r, &got), 0);
	assert_int_equal(got->ndamaged, 1);
	assert_int_equal(got->result, BKR_VERIFY_RESULT_PROBLEMS);
	bkr_verify_record_free(got);
	bkr_repo_free(r);
	bkr_verify_record_free(a);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_last),
		cmocka_unit_test(test_damage_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
