/** @file
 * Unit tests of the per-thread last error: a message built from the current
 * message (the pattern "%s (...)", bkr_error_message()), the errno form, the
 * prefix, long messages (kept whole to 8 KiB, then head and tail), and clearing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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

/* a path deeper than PATH_MAX is named whole; a longer message keeps its
 * start and its end (the reason), saying how much it left out */
static void test_long_and_clear(void **state)
{
	static char big[20001], want[64];
	const char *m;
	(void)state;
	memset(big, 'a', 5000);
	big[5000] = '\0';
	assert_int_equal(bkr_error_set_errno(ENOENT, "open %s", big), BKR_ENOTFOUND);
	m = bkr_error_message();
	assert_int_equal(strlen(m), 5 + 5000 + strlen(": No such file or directory"));
	assert_string_equal(m + 5 + 5000, ": No such file or directory");
	bkr_error_prefix("backup %s", "b_1");
	assert_memory_equal(bkr_error_message(), "backup b_1: open aaa", 20);
	assert_string_equal(bkr_error_message() + 17 + 5000, ": No such file or directory");

	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bkr_error_set(BKR_EINVAL, "key '%s': not a number", big);
	m = bkr_error_message();
	size_t n = strlen(m);
	assert_in_range(n, 8000, 8191);
	assert_memory_equal(m, "key 'bbb", 8);
	assert_string_equal(m + n - 16, "b': not a number");
	/* head + left out + tail is the whole message */
	const char *mark = strstr(m, " [... ");
	assert_non_null(mark);
	size_t head = (size_t)(mark - m), tail = strlen(strstr(mark, " ...] ") + 6);
	snprintf(want, sizeof(want), " [... %zu bytes ...] ", 5 + 20000 + 15 - head - tail);
	assert_memory_equal(mark, want, strlen(want));
	assert_int_equal(head + strlen(want) + tail, n);
	/* the errno form and a prefix keep the reason of a long message too */
	bkr_error_set_errno(EACCES, "open %s", big);
	assert_string_equal(bkr_error_message() + strlen(bkr_error_message()) - 20, "b: Permission denied");

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
