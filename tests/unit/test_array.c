/** @file
 * Unit tests for array.c, the engine's growable arrays: the first room is
 * 256 elements, then doubling; nothing happens while the element fits; a
 * capacity or element size whose product overflows is BKR_ENOMEM and leaves
 * the array as it was.  bkr_array_push_str appends copies of strings.
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

#include "array.h"

static void test_grow(void **state)
{
	uint64_t *a = NULL;
	size_t cap = 0;
	(void)state;
	assert_int_equal(bkr_array_grow((void **)&a, &cap, 0, sizeof(*a)), 0);
	assert_non_null(a);
	assert_int_equal(cap, 256);
	for (size_t n = 0; n < 1000; n++) {
		assert_int_equal(bkr_array_grow((void **)&a, &cap, n, sizeof(*a)), 0);
		a[n] = n; /* valgrind and ASan see a write past the end */
	}
	assert_int_equal(cap, 1024);
	for (size_t n = 0; n < 1000; n++)
		assert_int_equal(a[n], n);
	free(a);
}

static void test_overflow(void **state)
{
	uint8_t *a = NULL;
	size_t cap = 0;
	(void)state;
	assert_int_equal(bkr_array_grow((void **)&a, &cap, 0, 1), 0);
	uint8_t *was = a;
	/* twice the capacity times the size does not fit in a size_t */
	assert_int_equal(bkr_array_grow((void **)&a, &cap, cap, SIZE_MAX / 256), BKR_ENOMEM);
	assert_ptr_equal(a, was);
	assert_int_equal(cap, 256);
	/* nor does twice the capacity itself */
	size_t huge = SIZE_MAX / 2 + 1;
	assert_int_equal(bkr_array_grow((void **)&a, &huge, huge, 1), BKR_ENOMEM);
	assert_ptr_equal(a, was);
	assert_int_equal(huge, SIZE_MAX / 2 + 1);
	free(a);
}

static void test_push_str(void **state)
{
	char **v = NULL, name[32];
	size_t cap = 0, n = 0;
	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "trash/batch-%d.json", i);
		assert_int_equal(bkr_array_push_str(&v, &cap, &n, name), 0);
		assert_int_equal(n, (size_t)i + 1);
		assert_ptr_not_equal(v[i], name); /* a copy */
	}
	assert_int_equal(cap, 512);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "trash/batch-%zu.json", i);
		assert_string_equal(v[i], name);
	}
	/* no room to be had: the strings and their count as they were */
	char **was = v;
	size_t huge = SIZE_MAX / 2 + 1, at = huge;
	assert_int_equal(bkr_array_push_str(&v, &huge, &at, "x"), BKR_ENOMEM);
	assert_ptr_equal(v, was);
	assert_int_equal(at, SIZE_MAX / 2 + 1);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_push_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
