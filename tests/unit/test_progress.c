/** @file
 * Unit tests of engine/progress.c: done of total, the rate since the start
 * and the time left, on a clock the test sets; unknown totals; counts past
 * the total; items without bytes; every line fits its buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bkr/progress.h"

#define S 1000000000LL /* one second in ns */

static void test_bytes_rate_eta(void **state)
{
	bkr_progress p;
	char line[256];
	(void)state;

	bkr_progress_begin(&p, 100 * S);
	/* nothing done yet: no rate, no time left */
	bkr_progress_update(&p, 100 * S, 0, 40, 0, 4 << 20);
	assert_int_equal(bkr_progress_eta_s(&p), -1);
	bkr_progress_format(&p, "restoring", "files", line, sizeof(line));
	assert_string_equal(line, "restoring: 0/40 files, 0 B/4.0 MiB (0%)");
	/* 1 MiB in 2 s: 512 KiB/s, 3 MiB left = 6 s */
	bkr_progress_update(&p, 102 * S, 10, 40, 1 << 20, 4 << 20);
	assert_true(bkr_progress_rate(&p) == 512.0 * 1024);
	assert_int_equal(bkr_progress_eta_s(&p), 6);
	bkr_progress_format(&p, "restoring", "files", line, sizeof(line));
	assert_string_equal(line, "restoring: 10/40 files, 1.0 MiB/4.0 MiB (25%), 512.0 KiB/s, 0:06 left");
	/* done */
	bkr_progress_update(&p, 108 * S, 40, 40, 4 << 20, 4 << 20);
	assert_int_equal(bkr_progress_eta_s(&p), 0);
	bkr_progress_format(&p, "restoring", "files", line, sizeof(line));
	assert_non_null(strstr(line, "(100%)"));
	assert_non_null(strstr(line, "0:00 left"));
}

static void test_long_eta_and_clock_going_back(void **state)
{
	bkr_progress p;
	char line[256];
	(void)state;

	bkr_progress_begin(&p, 10 * S);
	/* 1 KiB/s with 10000 KiB to go: 2:46:40 */
	bkr_progress_update(&p, 11 * S, 1, 2, 1024, 10001 * 1024);
	assert_int_equal(bkr_progress_eta_s(&p), 10000);
	bkr_progress_format(&p, "backing up", "files", line, sizeof(line));
	assert_non_null(strstr(line, "2:46:40 left"));
	/* a clock before the start counts as the start: no rate, no division by 0 */
	bkr_progress_update(&p, 5 * S, 1, 2, 1024, 2048);
	assert_true(bkr_progress_rate(&p) == 0);
	assert_int_equal(bkr_progress_eta_s(&p), -1);
}

static void test_unknown_totals_and_overrun(void **state)
{
	bkr_progress p;
	char line[256];
	(void)state;

	bkr_progress_begin(&p, 0);
	bkr_progress_update(&p, 2 * S, 7, 0, 2048, 0);
	assert_int_equal(bkr_progress_eta_s(&p), -1);
	bkr_progress_format(&p, "scanning", "files", line, sizeof(line));
	assert_string_equal(line, "scanning: 7 files, 2.0 KiB, 1.0 KiB/s");
	/* a count past its total (a file grew): the total is raised, never 120% */
	bkr_progress_update(&p, 2 * S, 12, 10, 3000, 2000);
	assert_int_equal(p.items_total, 12);
	assert_int_equal(p.bytes_total, 3000);
	bkr_progress_format(&p, "restoring", "files", line, sizeof(line));
	assert_non_null(strstr(line, "(100%)"));
}

static void test_items_only(void **state)
{
	bkr_progress p;
	char line[256];
	(void)state;

	bkr_progress_begin(&p, 0);
	bkr_progress_update(&p, 4 * S, 10, 50, 0, 0);
	assert_true(bkr_progress_rate(&p) == 2.5);
	assert_int_equal(bkr_progress_eta_s(&p), 16);
	bkr_progress_format(&p, "verifying", "packs", line, sizeof(line));
	assert_string_equal(line, "verifying: 10/50 packs (20%), 2.5/s, 0:16 left");
}

static void test_truncated(void **state)
{
	bkr_progress p;
	char line[16], big[300];
	(void)state;

	bkr_progress_begin(&p, 0);
	bkr_progress_update(&p, S, 123456789, 987654321, 123456789012ULL, 987654321098ULL);
	bkr_progress_format(&p, "restoring", "files", line, sizeof(line));
	assert_int_equal(strlen(line), sizeof(line) - 1);
	assert_memory_equal(line, "restoring: 1234", 15);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bkr_progress_format(&p, big, "files", line, sizeof(line));
	assert_int_equal(strlen(line), sizeof(line) - 1);
	bkr_progress_format(&p, "x", "y", line, 0); /* no room at all: nothing written */
}

static void test_bytes(void **state)
{
	char b[32];
	(void)state;
	bkr_progress_bytes(b, 0);
	assert_string_equal(b, "0 B");
	bkr_progress_bytes(b, 1023);
	assert_string_equal(b, "1023 B");
	bkr_progress_bytes(b, 1536);
	assert_string_equal(b, "1.5 KiB");
	bkr_progress_bytes(b, UINT64_MAX);
	assert_string_equal(b, "16384.0 PiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_rate_eta),
		cmocka_unit_test(test_long_eta_and_clock_going_back),
		cmocka_unit_test(test_unknown_totals_and_overrun),
		cmocka_unit_test(test_items_only),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
