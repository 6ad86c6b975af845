/** @file
 * Unit tests for bkr_content (chunk-and-put of one file): the same bytes fed
 * whole or in pieces of any size give the same chunks; every chunk reads
 * back from the repository; the content id is the file's SHA-256; a small
 * file is one blob whose id is its hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bkr/content.h"
#include "bkr/repo.h"
#include "test_recover_util.h"

typedef struct {
	char *dir;
	char repo[PATH_MAX];
	bkr_repo *r;
	bkr_writer *w;
	bkr_content *c;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;

	f->dir = tu_mkdtemp();
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	assert_int_equal(bkr_writer_new(&f->w, f->r), 0);
	assert_int_equal(bkr_content_new(&f->c, f->w, f->r), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	bkr_content_free(f->c);
	bkr_writer_free(f->w);
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *b = malloc(n);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	return b;
}

static void test_pieces_give_the_same_chunks(void **state)
{
	fixture *f = *state;
	size_t n = 5u << 20, nw = 0, np = 0, off = 0;
	uint8_t *data = random_bytes(n);
	bkr_chunk_ref *whole = NULL, *pieces = NULL;
	bkr_id cw, cp, expect;
	uint64_t sw = 0, sp = 0;

	assert_int_equal(bkr_content_write(f->c, data, n), 0);
	assert_int_equal(bkr_content_finish(f->c, &whole, &nw, &cw, &sw), 0);
	for (size_t step = 1; off < n; step = step * 7 % 100003 + 1) {
		size_t k = step < n - off ? step : n - off;
		assert_int_equal(bkr_content_write(f->c, data + off, k), 0);
		off += k;
	}
	assert_int_equal(bkr_content_finish(f->c, &pieces, &np, &cp, &sp), 0);
	bkr_sha256(data, n, &expect);
	assert_int_equal(sw, n);
	assert_int_equal(sp, n);
	assert_true(nw > 2);
	assert_int_equal(nw, np);
	assert_memory_equal(whole, pieces, nw * sizeof(*whole));
	assert_memory_equal(&cw, &expect, sizeof(expect));
	assert_memory_equal(&cp, &expect, sizeof(expect));
	assert_int_equal(bkr_writer_commit(f->w), 0);
	off = 0;
	for (size_t i = 0; i < nw; i++) {
		uint8_t *got = NULL;
		size_t len = 0;
		assert_int_equal(bkr_repo_read_blob(f->r, &whole[i].id, BKR_BLOB_DATA, &got, &len), 0);
		assert_int_equal(len, whole[i].length);
		assert_memory_equal(got, data + off, len);
		off += len;
		free(got);
	}
	assert_int_equal(off, n);
	free(whole);
	free(pieces);
	free(data);
}

static void test_small_and_empty(void **state)
{
	fixture *f = *state;
	bkr_chunk_ref *refs = NULL;
	size_t n = 0;
	bkr_id c, expect;
	uint64_t size = 1;

	assert_int_equal(bkr_content_write(f->c, "hello", 5), 0);
	assert_int_equal(bkr_content_finish(f->c, &refs, &n, &c, &size), 0);
	bkr_sha256("hello", 5, &expect);
	assert_int_equal(n, 1);
	assert_int_equal(size, 5);
	assert_memory_equal(&refs[0].id, &expect, sizeof(expect));
	assert_memory_equal(&c, &expect, sizeof(expect));
	free(refs);
	assert_int_equal(bkr_content_finish(f->c, &refs, &n, &c, &size), 0);
	bkr_sha256("", 0, &expect);
	assert_null(refs);
	assert_int_equal(n, 0);
	assert_int_equal(size, 0);
	assert_memory_equal(&c, &expect, sizeof(expect));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pieces_give_the_same_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_and_empty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
