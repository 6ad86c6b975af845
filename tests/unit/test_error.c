/** @file
 * Unit tests of the per-thread last error: a message built from the current
 * message (the pattern "%s (...)", bkr_error_message()), the errno form, the
 * prefix, truncation of an over-long message, and clearing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bkr/error.h"

static void test_set_from_own_message(void **state)
{
	(void)state;
	bkr_error_set(BKR_ECORRUPT, "backups/b_1.json: bad 'backup_type'");
	/* the argument is the buffer being written: the old message must come through whole */
	assert_int_equal(bkr_error_set(BKR_ECORRUPT, "1 manifest(s) are damaged (last: %s); prune stops",
				       bkr_error_message()),
			 BKR_ECORRUPT);
	assert_string_equal(bkr_error_message(),
			    "1 manifest(s) are damaged (last: backups/b_1.json: bad 'backup_type'); prune stops");
	assert_int_equal(bkr_error_last_code(), BKR_ECORRUPT);
	bkr_error_set(BKR_EIO, "%s, then %s", bkr_error_message(), bkr_error_message());
	assert_string_equal(bkr_error_message(),
			    "1 manifest(s) are damaged (last: backups/b_1.json: bad 'backup_type'); prune stops, "
			    "then 1 manifest(s) are damaged (last: backups/b_1.json: bad 'backup_type'); prune stops");
}

static void test_errno_and_prefix(void **state)
{
	(void)state;
	assert_int_equal(bkr_error_set_errno(ENOENT, "open %s", "x/y"), BKR_ENOTFOUND);
	assert_string_equal(bkr_error_message(), "open x/y: No such file or directory");
	bkr_error_prefix("repository %s", "/r");
	assert_string_equal(bkr_error_message(), "repository /r: open x/y: No such file or directory");
	assert_int_equal(bkr_error_last_code(), BKR_ENOTFOUND);
	assert_int_equal(bkr_error_set_errno(ENOSPC, "%s", bkr_error_message()), BKR_ENOSPC);
	assert_string_equal(bkr_error_message(),
			    "repository /r: open x/y: No such file or directory: No space left on device");
}

static void test_long_and_clear(void **state)
{
	char big[4000];
	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bkr_error_set(BKR_EINVAL, "key '%s'", big);
	size_t n = strlen(bkr_error_message());
	assert_true(n > 900 && n < sizeof(big));
	assert_memory_equal(bkr_error_message(), "key 'aaa", 8);
	bkr_error_clear();
	assert_string_equal(bkr_error_message(), "");
	assert_int_equal(bkr_error_last_code(), BKR_OK);
	assert_int_equal(bkr_error_oom(), BKR_ENOMEM);
	assert_string_equal(bkr_error_message(), "out of memory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_from_own_message),
		cmocka_unit_test(test_errno_and_prefix),
		cmocka_unit_test(test_long_and_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
