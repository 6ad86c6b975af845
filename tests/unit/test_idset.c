/** @file
 * Unit tests for idset.c, the blob id set and map: as a set, add and has;
 * as bkr copy's id map, put and get, a second put of the same pair, a
 * conflicting one refused; a set that becomes a map keeps its ids; growth
 * past many thousands of ids (colliding hash bits included); an empty or
 * freed set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bkr/error.h"

#include "idset.h"

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
	bkr_idset m = BKR_IDSET_INIT;
	bkr_id a = id_of(1), b = id_of(2), c = id_of(3), out;
	(void)state;
	assert_false(bkr_idset_get(&m, &a, &out));
	assert_int_equal(bkr_idset_put(&m, &a, &b), 1);
	assert_true(bkr_idset_get(&m, &a, &out));
	assert_memory_equal(&out, &b, sizeof(out));
	assert_true(bkr_idset_get(&m, &a, NULL));
	assert_false(bkr_idset_get(&m, &b, NULL)); /* a value is not a key */
	assert_int_equal(bkr_idset_put(&m, &a, &b), 0); /* the same pair again */
	assert_int_equal(bkr_idset_put(&m, &a, &c), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "two different ids"));
	assert_true(bkr_idset_get(&m, &a, &out));
	assert_memory_equal(&out, &b, sizeof(out)); /* unchanged */
	assert_int_equal(bkr_idset_put(&m, &b, &b), 1); /* identity (same scheme) */
	assert_int_equal(m.n, 2);
	bkr_idset_free(&m);
	assert_int_equal(m.n, 0);
	assert_false(bkr_idset_get(&m, &a, NULL));
	bkr_idset_free(&m); /* twice, and on an empty map */
	assert_int_equal(bkr_idset_put(&m, &a, &c), 1); /* usable again */
	bkr_idset_free(&m);
}

static void test_set(void **state)
{
	bkr_idset s = BKR_IDSET_INIT;
	bkr_id a = id_of(1), b = id_of(2), c = id_of(3), zero = { { 0 } }, out;
	(void)state;
	assert_false(bkr_idset_has(&s, &a));
	assert_int_equal(bkr_idset_add(&s, &a), 1);
	assert_int_equal(bkr_idset_add(&s, &a), 0);
	assert_true(bkr_idset_has(&s, &a));
	assert_false(bkr_idset_has(&s, &b));
	assert_null(s.values); /* a plain set keeps no values */
	/* put on a set: the ids it had map to the zero id, and stay */
	assert_int_equal(bkr_idset_put(&s, &b, &c), 1);
	assert_true(bkr_idset_get(&s, &a, &out));
	assert_memory_equal(&out, &zero, sizeof(out));
	assert_true(bkr_idset_get(&s, &b, &out));
	assert_memory_equal(&out, &c, sizeof(out));
	assert_int_equal(bkr_idset_add(&s, &b), 0); /* present: the value is kept */
	assert_true(bkr_idset_get(&s, &b, &out));
	assert_memory_equal(&out, &c, sizeof(out));
	assert_int_equal(bkr_idset_add(&s, &c), 1);
	assert_true(bkr_idset_get(&s, &c, &out));
	assert_memory_equal(&out, &zero, sizeof(out));
	assert_int_equal(s.n, 3);
	bkr_idset_free(&s);
	assert_false(bkr_idset_has(&s, &a));
	assert_int_equal(s.n, 0);
}

static void test_set_growth(void **state)
{
	bkr_idset s = BKR_IDSET_INIT;
	const uint32_t n = 50000;
	(void)state;
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i);
		assert_int_equal(bkr_idset_add(&s, &k), 1);
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i);
		assert_int_equal(bkr_idset_add(&s, &k), 1);
		assert_int_equal(bkr_idset_add(&s, &k), 0);
	}
	assert_int_equal(s.n, n + 300);
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i);
		assert_true(bkr_idset_has(&s, &k));
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i);
		assert_true(bkr_idset_has(&s, &k));
	}
	for (uint32_t i = n; i < n + 100; i++) {
		bkr_id k = id_of(i * 7 + 1000000);
		assert_false(bkr_idset_has(&s, &k));
	}
	bkr_idset_free(&s);
}

static void test_growth(void **state)
{
	bkr_idset m = BKR_IDSET_INIT;
	const uint32_t n = 50000;
	(void)state;
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i), v = id_of(i + n);
		assert_int_equal(bkr_idset_put(&m, &k, &v), 1);
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i), v = id_of(i);
		assert_int_equal(bkr_idset_put(&m, &k, &v), 1);
	}
	assert_int_equal(m.n, n + 300);
	for (uint32_t i = 0; i < n; i++) {
		bkr_id k = id_of(i), want = id_of(i + n), out;
		assert_true(bkr_idset_get(&m, &k, &out));
		assert_memory_equal(&out, &want, sizeof(out));
	}
	for (uint32_t i = 0; i < 300; i++) {
		bkr_id k = colliding(i), want = id_of(i), out;
		assert_true(bkr_idset_get(&m, &k, &out));
		assert_memory_equal(&out, &want, sizeof(out));
	}
	for (uint32_t i = n; i < n + 100; i++) {
		bkr_id k = id_of(i * 7 + 1000000);
		assert_false(bkr_idset_get(&m, &k, NULL));
	}
	bkr_idset_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_set_growth),
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
