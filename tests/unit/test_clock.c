/** @file
 * Unit tests of the ns-time helpers: timespec <-> ns both ways, before and
 * after 1970, and the monotonic clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bkr/clock.h"

static void test_round_trip(void **state)
{
	static const int64_t v[] = { 0, 1, 999999999, 1000000000, 1700000000123456789LL,
				     -1, -999999999, -1000000000, -1000000001, -1700000000123456789LL };
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct timespec t = bkr_clock_timespec(v[i]);
		assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
		assert_true(bkr_clock_ns(&t) == v[i]);
	}
	struct timespec t = bkr_clock_timespec(-1);
	assert_int_equal(t.tv_sec, -1);
	assert_int_equal(t.tv_nsec, 999999999);
}

static void test_mono(void **state)
{
	(void)state;
	int64_t a = bkr_clock_mono_ns(), b = bkr_clock_mono_ns();
	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_mono),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
