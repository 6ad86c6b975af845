/** @file
 * Unit tests of the host defaults: the host name fallback and the state
 * directory's order (absolute XDG_STATE_HOME, absolute HOME, /var/tmp/bkr-UID).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bkr/host.h"

static void test_name(void **state)
{
	char buf[256], small[4];
	(void)state;
	bkr_host_name(buf, sizeof(buf), "given");
	assert_string_equal(buf, "given");
	bkr_host_name(buf, sizeof(buf), "");
	assert_string_equal(buf, "localhost");
	bkr_host_name(small, sizeof(small), "abcdef");
	assert_string_equal(small, "abc");
	bkr_host_name(buf, sizeof(buf), NULL);
	assert_true(buf[0] != '\0');
	char sys[256] = "";
	if (gethostname(sys, sizeof(sys)) == 0 && sys[0])
		assert_string_equal(buf, sys);
}

static void expect_dir(const char *xdg, const char *home, const char *want)
{
	if (xdg)
		setenv("XDG_STATE_HOME", xdg, 1);
	else
		unsetenv("XDG_STATE_HOME");
	if (home)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	char *d = bkr_host_state_dir();
	assert_non_null(d);
	assert_string_equal(d, want);
	free(d);
}

static void test_state_dir(void **state)
{
	char fallback[64];
	(void)state;
	snprintf(fallback, sizeof(fallback), "/var/tmp/bkr-%u", (unsigned)getuid());
	expect_dir("/x/state", "/home/u", "/x/state/bkr");
	expect_dir("/x/state/", "/home/u", "/x/state/bkr");
	expect_dir("relative", "/home/u", "/home/u/.local/state/bkr");
	expect_dir("", "/home/u/", "/home/u/.local/state/bkr");
	expect_dir(NULL, "/home/u", "/home/u/.local/state/bkr");
	expect_dir(NULL, "relative", fallback);
	expect_dir(NULL, NULL, fallback);
	expect_dir("", "", fallback);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_state_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
