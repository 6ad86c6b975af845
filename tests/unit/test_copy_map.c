/** @file
 * Unit tests for copy_map.c, the id map of bkr copy: put and get, a second
 * put of the same pair, a conflicting one refused, growth past many
 * thousands of ids (colliding hash bits included), and an empty or freed map.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bkr/copy_map.h"
#include "bkr/error.h"

/* A distinct id for @p n (SHA-256 of its bytes), and a crafted one whose hash bits collide. */
static bkr_id id_of(uint32_t n)
{
	bkr_id id;
	bkr_sha256(&n, sizeof(n), &id);
	return id;
}

static bkr_id colliding(uint32_t n)
{
	bkr_id id;
	memset(&id, 0xab, sizeof(id)); /* the first 8 bytes (the hash) equal for all */
	memcpy(id.b + 8, &n, sizeof(n));
	return id;
}

static void test_put_get(void **state)
{
	bkr_copy_map m = BKR_COPY_MAP_INIT;
	bkr_id a = id_of(1), b = id_of(2), c = id_of(3), out;
	(void)state;
	assert_false(bkr_copy_map_get(&m, &a, &out));
	assert_int_equal(bkr_copy_map_put(&m, &a, &b), 1);
	assert_true(bkr_copy_map_get(&m, &a, &out));
	assert_memory_equal(&out, &b, sizeof(out));
	assert_true(bkr_copy_map_get(&m, &a, NULL));
	assert_false(bkr_copy_map_get(&m, &b, NULL)); /* a value is not a key */
	assert_int_equal(bkr_copy_map_put(&m, &a, &b), 0); /* the same pair again */
	assert_int_equal(bkr_copy_map_put(&m, &a, &c), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "two different ids"));
	assert_true(bkr_copy_map_get(&m, &a, &out));
	assert_memory_equal(&out, &b, sizeof(out)); /* unchanged */
	assert_int_equal(bkr_copy_map_put(&m, &b, &b), 1); /* identity (same scheme) */
	assert_int_equal(bkr_copy_map_count(&m), 2);
	bkr_copy_map_free(&m);
	assert_int_equal(bkr_copy_map_count(&m), 0);
	assert_false(bkr_copy_map_get(&m, &a, NULL));
	bkr_copy_map_free(&m); /* twice, and on an empty map */
	assert_int_equal(bkr_copy_map_put(&m, &a, &c), 1); /* usable again */
	bkr_copy_map_free(&m);
}

static void test_growth(void **state)
{
	bkr_copy_map m = BKR_COPY_MAP_INIT;
	const uint32_t n = 50000;
	(void)state;
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i), v = id_of(i + n);
		assert_int_equal(bkr_copy_map_put(&m, &k, &v), 1);
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i), v = id_of(i);
		assert_int_equal(bkr_copy_map_put(&m, &k, &v), 1);
	}
	assert_int_equal(bkr_copy_map_count(&m), n + 300);
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i), want = id_of(i + n), out;
		assert_true(bkr_copy_map_get(&m, &k, &out));
		assert_memory_equal(&out, &want, sizeof(out));
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i), want = id_of(i), out;
		assert_true(bkr_copy_map_get(&m, &k, &out));
		assert_memory_equal(&out, &want, sizeof(out));
	}
	for (uint32_t i = n; i < n + 100; i++) {
		bkr_id k = id_of(i * 7 + 1000000);
		assert_false(bkr_copy_map_get(&m, &k, NULL));
	}
	bkr_copy_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
