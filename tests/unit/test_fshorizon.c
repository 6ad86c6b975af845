/** @file
 * The look-ahead horizon (fs/horizon.c): which reads of a directory start a
 * look-ahead, and where it begins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../fs/horizon.c"

#define W 32

static bkr_id tree_of(uint8_t b)
{
	bkr_id id;
	memset(id.b, b, sizeof(id.b));
	return id;
}

/* a reader going through one directory file by file */
static void test_reader_walks_directory(void **state)
{
	bkrfs_horizon h;
	bkr_id t = tree_of(1);
	unsigned starts = 0;

	(void)state;
	bkrfs_horizon_init(&h);
	/* reading entry 0: the look-ahead begins at entry 1 */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 7, 1, W), 1);
	bkrfs_horizon_done(&h, &t, 7, 1, 1 + W);
	/* while half a window or more is ahead of the reader: nothing */
	for (uint64_t next = 2; next <= 1 + W / 2; next++)
		assert_int_equal(bkrfs_horizon_claim(&h, &t, 7, next, W), UINT64_MAX);
	/* less than that: the next one continues where the last stopped, not
	 * at the reader */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 7, 2 + W / 2, W), 1 + W);
	/* and while it is queued, the window counts as claimed */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 7, 3 + W / 2, W), UINT64_MAX);
	/* a reader going through 1,000 entries: about one look-ahead per W/2 */
	bkrfs_horizon_done(&h, &t, 7, 1 + W, 1 + 2 * W);
	for (uint64_t next = 3 + W / 2; next < 1000; next++) {
		uint64_t s = bkrfs_horizon_claim(&h, &t, 7, next, W);
		if (s != UINT64_MAX) {
			assert_true(s >= next);
			bkrfs_horizon_done(&h, &t, 7, s, s + W);
			starts++;
		}
	}
	assert_in_range(starts, 1000 / W - 2, 1000 / W + 2);
	bkrfs_horizon_destroy(&h);
}

/* a look-ahead that stopped early (byte budget, end of directory) or never
 * ran (queue full) lets the next read start one */
static void test_done_short_and_never(void **state)
{
	bkrfs_horizon h;
	bkr_id t = tree_of(2);

	(void)state;
	bkrfs_horizon_init(&h);
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 9, 1, W), 1);
	bkrfs_horizon_done(&h, &t, 9, 1, 3); /* two big files filled the budget */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 9, 2, W), 3);
	bkrfs_horizon_done(&h, &t, 9, 3, 3); /* never ran */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 9, 3, W), 3);
	/* a stale report (from a look-ahead superseded meanwhile) is ignored */
	bkrfs_horizon_done(&h, &t, 9, 1, 2);
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 9, 4, W), UINT64_MAX);
	bkrfs_horizon_destroy(&h);
}

/* the same tree under another inode (another backup) is another directory;
 * reading a directory again from its top starts afresh; the ring forgets
 * the oldest directory */
static void test_identity_restart_and_ring(void **state)
{
	bkrfs_horizon h;
	bkr_id t = tree_of(3);

	(void)state;
	bkrfs_horizon_init(&h);
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 10, 5, W), 5);
	bkrfs_horizon_done(&h, &t, 10, 5, 5 + W);
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 11, 5, W), 5);
	bkrfs_horizon_done(&h, &t, 11, 5, 5 + W);
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 10, 6, W), UINT64_MAX);
	/* read again from the top (a second cp -r) */
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 10, 1, W), 1);
	bkrfs_horizon_done(&h, &t, 10, 1, 1 + W);
	/* BKRFS_HORIZON_DIRS other directories push inode 10 out */
	for (uint8_t k = 0; k < BKRFS_HORIZON_DIRS; k++) {
		bkr_id o = tree_of((uint8_t)(100 + k));
		assert_int_equal(bkrfs_horizon_claim(&h, &o, 100 + k, 1, W), 1);
	}
	assert_int_equal(bkrfs_horizon_claim(&h, &t, 10, 2, W), 2);
	bkrfs_horizon_destroy(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_walks_directory),
		cmocka_unit_test(test_done_short_and_never),
		cmocka_unit_test(test_identity_restart_and_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
