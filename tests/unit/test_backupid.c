/** @file
 * Unit tests for backupid.c: `latest`, whole ids, unique prefixes of an id or
 * of its random suffix, and the messages for none and for several.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bkr/backupid.h"
#include "bkr/error.h"

static const char *const ids[] = {
	"backup_20261101_010203_full_2801d7ce",
	"backup_20261101_020304_incremental_28aa0000",
	NULL, /* a deleted entry is skipped */
	"backup_20261102_010203_snapshot_ffee0011",
};
#define N (sizeof(ids) / sizeof(*ids))

static int resolve(const char *spec, size_t *i)
{
	return bkr_backupid_resolve(i, ids, N, spec, "backup", "/repo");
}

static void test_latest_and_whole(void **state)
{
	size_t i = 99;
	(void)state;
	assert_int_equal(resolve("latest", &i), 0);
	assert_int_equal(i, 3);
	assert_int_equal(resolve("backup_20261101_010203_full_2801d7ce", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(bkr_backupid_resolve(&i, ids, 0, "latest", "backup", "/repo"), BKR_ENOTFOUND);
}

static void test_prefixes(void **state)
{
	size_t i = 99;
	(void)state;
	assert_int_equal(resolve("backup_20261102", &i), 0); /* a prefix of the id */
	assert_int_equal(i, 3);
	assert_int_equal(resolve("2801d7ce", &i), 0); /* the random suffix, whole */
	assert_int_equal(i, 0);
	assert_int_equal(resolve("280", &i), 0); /* a prefix of it */
	assert_int_equal(i, 0);
	assert_int_equal(resolve("ff", &i), 0);
	assert_int_equal(i, 3);
	assert_string_equal(bkr_backupid_suffix(ids[1]), "28aa0000");
}

static void test_none_and_ambiguous(void **state)
{
	size_t i = 99;
	(void)state;
	assert_int_equal(resolve("deadbeef", &i), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "deadbeef"));
	assert_int_equal(resolve("", &i), BKR_ENOTFOUND);
	assert_int_equal(resolve("28", &i), BKR_EAMBIGUOUS); /* two suffixes */
	assert_non_null(strstr(bkr_error_message(), ids[0]));
	assert_non_null(strstr(bkr_error_message(), ids[1]));
	assert_null(strstr(bkr_error_message(), ids[3]));
	assert_int_equal(resolve("backup_202611", &i), BKR_EAMBIGUOUS);
	assert_non_null(strstr(bkr_error_message(), "matches 3 backups"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latest_and_whole),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_none_and_ambiguous),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
