/** @file
 * Unit tests of the pattern matcher shared by excludes, diff and recovery:
 * whole paths, last components, directories and their contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bkr/pattern.h"

static const char *const pats[] = { "*.tmp", "cache", "logs/*.log", NULL };

static void test_match_path_and_base(void **state)
{
	(void)state;
	assert_true(bkr_pattern_match(pats, 4, "a.tmp"));
	assert_true(bkr_pattern_match(pats, 4, "dir/sub/b.tmp"));
	assert_true(bkr_pattern_match(pats, 4, "cache"));
	assert_true(bkr_pattern_match(pats, 4, "x/cache"));
	assert_true(bkr_pattern_match(pats, 4, "logs/app.log"));
	/* '*' also matches '/': a pattern with '/' is matched on the whole path */
	assert_true(bkr_pattern_match(pats, 4, "logs/old/app.log"));
	assert_false(bkr_pattern_match(pats, 4, "other/logs/app.log"));
	assert_false(bkr_pattern_match(pats, 4, "a.tmpx"));
	assert_false(bkr_pattern_match(pats, 4, "cached"));
	assert_false(bkr_pattern_match(pats, 4, "x/cache/deep")); /* walkers stop at "x/cache" */
	assert_false(bkr_pattern_match(pats, 0, "a.tmp"));
	assert_false(bkr_pattern_match(pats, 4, NULL));
}

static void test_match_under(void **state)
{
	(void)state;
	assert_true(bkr_pattern_match_under(pats, 4, "x/cache/deep/file.bin"));
	assert_true(bkr_pattern_match_under(pats, 4, "/logs/app.log"));
	assert_true(bkr_pattern_match_under(pats, 4, "a/b.tmp/c"));
	assert_false(bkr_pattern_match_under(pats, 4, "logs"));
	assert_false(bkr_pattern_match_under(pats, 4, "cached/x"));
	assert_false(bkr_pattern_match_under(pats, 4, ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_path_and_base),
		cmocka_unit_test(test_match_under),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
