/** @file
 * Unit tests of the FastCDC chunker (engine/chunker.c): size bounds, determinism,
 * seed sensitivity, resynchronisation after an insertion, independence from how
 * the input is split into pieces, parameter checks and forced cuts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bkr/chunker.h"
#include "bkr/error.h"
#include "bkr/hash.h"

#define BIG (64u << 20)

/** Cut lengths of one chunked buffer. */
struct cuts {
	size_t *len;
	size_t n, cap;
};

struct fixture {
	uint8_t *data; /**< BIG bytes of pseudo-random data */
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = rng_next(&s);
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)rng_next(&s);
}

static void cuts_push(struct cuts *c, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->len = realloc(c->len, c->cap * sizeof(*c->len));
		assert_non_null(c->len);
	}
	c->len[c->n++] = len;
}

static void cuts_free(struct cuts *c)
{
	free(c->len);
	memset(c, 0, sizeof(*c));
}

/** The two lanes of bkr_chunker_scan2: a digest of everything fed, and
 * each chunk's id (SHA-256 of its bytes), one per cut. */
struct lanes {
	bkr_hash_ctx *a, *b;
	bkr_id *ids;
	size_t n, cap;
};

static void lanes_cut(struct lanes *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->ids = realloc(l->ids, l->cap * sizeof(*l->ids));
		assert_non_null(l->ids);
	}
	bkr_hash_final(l->b, &l->ids[l->n++]);
}

/**
 * Chunk @p data; pieces of at most @p piece bytes (0 = whole buffer), or of
 * random sizes when @p rnd_seed is non-zero.  With @p l, by
 * bkr_chunker_scan2 into its lanes.
 */
static void chunk_lanes(const bkr_chunker_params *p, const uint8_t *data, size_t len, size_t piece, uint64_t rnd_seed,
			struct cuts *out, struct lanes *l)
{
	bkr_chunker *c = NULL;
	size_t off = 0, cur = 0;
	uint64_t s = rnd_seed;

	memset(out, 0, sizeof(*out));
	assert_int_equal(bkr_chunker_new(&c, p), 0);
	while (off < len) {
		size_t n = len - off;
		if (rnd_seed) {
			uint64_t r = rng_next(&s);
			size_t want = (r & 7) == 0 ? 1 + (r >> 8) % 16 : 1 + (r >> 8) % (3u << 20);
			if (want < n)
				n = want;
		} else if (piece && piece < n) {
			n = piece;
		}
		const uint8_t *q = data + off;
		size_t left = n;
		while (left > 0) {
			size_t k = l ? bkr_chunker_scan2(c, q, left, l->a, l->b) : bkr_chunker_scan(c, q, left);
			if (k == (size_t)-1) {
				cur += left;
				break;
			}
			assert_true(k >= 1 && k <= left);
			cuts_push(out, cur + k);
			if (l)
				lanes_cut(l);
			cur = 0;
			q += k;
			left -= k;
		}
		off += n;
	}
	if (cur > 0) {
		cuts_push(out, cur);
		if (l)
			lanes_cut(l);
	}
	bkr_chunker_free(c);
}

static void chunk_all(const bkr_chunker_params *p, const uint8_t *data, size_t len, size_t piece, uint64_t rnd_seed,
		      struct cuts *out)
{
	chunk_lanes(p, data, len, piece, rnd_seed, out, NULL);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || !(f->data = malloc(BIG + 100))) {
		free(f);
		return -1;
	}
	fill_random(f->data, BIG + 100, 0x1234567);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->data);
	free(f);
	return 0;
}

static void check_bounds(const bkr_chunker_params *p, const struct cuts *c, size_t total)
{
	size_t sum = 0;
	for (size_t i = 0; i < c->n; i++) {
		sum += c->len[i];
		assert_true(c->len[i] <= p->max);
		if (i + 1 < c->n)
			assert_true(c->len[i] >= p->min);
		else
			assert_true(c->len[i] >= 1);
	}
	assert_int_equal(sum, total);
}

static void test_bounds_default(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;
	struct cuts c;

	chunk_all(&p, f->data, BIG, 0, 0, &c);
	check_bounds(&p, &c, BIG);
	/* Normalized chunking keeps the mean near avg. */
	size_t mean = BIG / c.n;
	assert_true(mean >= p.avg / 2 && mean <= 2 * (size_t)p.avg);
	cuts_free(&c);
}

static void test_bounds_small(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = { 64, 256, 1024, 7 };
	bkr_chunker_params p0 = { 0, 16, 64, 0 };
	struct cuts c;

	chunk_all(&p, f->data, 4u << 20, 0, 0, &c);
	check_bounds(&p, &c, 4u << 20);
	assert_true(c.n > (4u << 20) / 1024);
	cuts_free(&c);

	chunk_all(&p0, f->data, 1u << 20, 0, 0, &c);
	check_bounds(&p0, &c, 1u << 20);
	cuts_free(&c);
}

static void test_deterministic(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;
	struct cuts a, b;

	chunk_all(&p, f->data, 16u << 20, 0, 0, &a);
	chunk_all(&p, f->data, 16u << 20, 0, 0, &b);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.len, b.len, a.n * sizeof(*a.len));
	cuts_free(&a);
	cuts_free(&b);
}

static void test_seed_changes_cuts(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p0 = { 4096, 16384, 65536, 0 };
	bkr_chunker_params p1 = { 4096, 16384, 65536, 0x9e3779b97f4a7c15ULL };
	struct cuts a, b;
	size_t same = 0, ia = 0, ib = 0, pa = 0, pb = 0;

	chunk_all(&p0, f->data, 8u << 20, 0, 0, &a);
	chunk_all(&p1, f->data, 8u << 20, 0, 0, &b);
	check_bounds(&p1, &b, 8u << 20);
	/* Count cut positions the two share: few, by chance only. */
	while (ia < a.n && ib < b.n) {
		if (pa + a.len[ia] == pb + b.len[ib]) {
			same++;
			pa += a.len[ia++];
			pb += b.len[ib++];
		} else if (pa + a.len[ia] < pb + b.len[ib]) {
			pa += a.len[ia++];
		} else {
			pb += b.len[ib++];
		}
	}
	assert_true(same < a.n / 4);
	cuts_free(&a);
	cuts_free(&b);
}

static int id_cmp(const void *a, const void *b)
{
	return bkr_id_cmp(a, b);
}

static bkr_id *chunk_ids(const uint8_t *data, const struct cuts *c)
{
	bkr_id *ids = calloc(c->n, sizeof(*ids));
	size_t off = 0;
	assert_non_null(ids);
	for (size_t i = 0; i < c->n; i++) {
		bkr_sha256(data + off, c->len[i], &ids[i]);
		off += c->len[i];
	}
	qsort(ids, c->n, sizeof(*ids), id_cmp);
	return ids;
}

static void test_insert_resync(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;
	uint8_t *shifted = malloc(BIG + 100);
	struct cuts a, b;
	bkr_id *ia, *ib;
	size_t kept = 0;

	assert_non_null(shifted);
	fill_random(shifted, 100, 0xabcdef);
	memcpy(shifted + 100, f->data, BIG);
	chunk_all(&p, f->data, BIG, 0, 0, &a);
	chunk_all(&p, shifted, BIG + 100, 0, 0, &b);
	ia = chunk_ids(f->data, &a);
	ib = chunk_ids(shifted, &b);
	for (size_t i = 0; i < a.n; i++)
		if (bsearch(&ia[i], ib, b.n, sizeof(*ib), id_cmp))
			kept++;
	print_message("insert: %zu of %zu chunk ids kept\n", kept, a.n);
	assert_true(kept * 10 >= a.n * 9);
	free(ia);
	free(ib);
	free(shifted);
	cuts_free(&a);
	cuts_free(&b);
}

static void test_pieces(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;
	bkr_chunker_params ps = { 64, 256, 1024, 3 };
	struct cuts whole, rnd, tiny;

	chunk_all(&p, f->data, 32u << 20, 0, 0, &whole);
	chunk_all(&p, f->data, 32u << 20, 0, 0xfeed, &rnd);
	assert_int_equal(whole.n, rnd.n);
	assert_memory_equal(whole.len, rnd.len, whole.n * sizeof(*whole.len));
	cuts_free(&rnd);
	cuts_free(&whole);

	/*
	 * Small parameters, byte-at-a-time vs whole: one-byte feeds take the
	 * chunker's per-byte tail loop, whole buffers its 4-byte unrolled loop.
	 */
	chunk_all(&ps, f->data, 256u << 10, 0, 0, &whole);
	chunk_all(&ps, f->data, 256u << 10, 1, 0, &tiny);
	assert_int_equal(whole.n, tiny.n);
	assert_memory_equal(whole.len, tiny.len, whole.n * sizeof(*whole.len));
	cuts_free(&tiny);
	cuts_free(&whole);
}

/*
 * bkr_chunker_scan2 (the scan fused with two SHA-256 lanes): the cuts of
 * bkr_chunker_scan, each chunk's id the SHA-256 of its bytes and the other
 * lane that of everything, on random bytes, zeros (forced cuts at max) and
 * text (cuts by the masks); lengths 0, 1, min - 1, min, max, max + 1 and
 * more; whole, in pieces of random sizes and a byte at a time; the digest
 * lane holding 0..63 bytes before (a file's later chunks start anywhere in
 * a block).  Also with BKR_SHANI=0 (test_chunker_noshani): the apart path.
 */
static void check_scan2(const bkr_chunker_params *p, const uint8_t *data, size_t len, size_t piece, uint64_t rnd, size_t pre)
{
	struct cuts plain, fused;
	struct lanes l = { 0 };
	bkr_id all, want;
	size_t off = 0;

	assert_non_null(l.a = bkr_hash_new());
	assert_non_null(l.b = bkr_hash_new());
	chunk_all(p, data, len, piece, rnd, &plain);
	bkr_hash_update(l.a, data + len, pre); /* bytes before: any bytes */
	chunk_lanes(p, data, len, piece, rnd, &fused, &l);
	assert_int_equal(plain.n, fused.n);
	assert_memory_equal(plain.len, fused.len, plain.n * sizeof(*plain.len));
	assert_int_equal(l.n, fused.n);
	for (size_t i = 0; i < fused.n; i++) {
		bkr_sha256(data + off, fused.len[i], &want);
		assert_memory_equal(l.ids[i].b, want.b, sizeof(want.b));
		off += fused.len[i];
	}
	assert_int_equal(off, len);
	bkr_hash_final(l.a, &all);
	{
		bkr_hash_ctx *h = bkr_hash_new();
		assert_non_null(h);
		bkr_hash_update(h, data + len, pre);
		bkr_hash_update(h, data, len);
		bkr_hash_final(h, &want);
		bkr_hash_free(h);
	}
	assert_memory_equal(all.b, want.b, sizeof(want.b));
	bkr_hash_free(l.a);
	bkr_hash_free(l.b);
	free(l.ids);
	cuts_free(&plain);
	cuts_free(&fused);
}

static void test_scan2_same_cuts(void **state)
{
	struct fixture *f = *state;
	const bkr_chunker_params ps[] = {
		{ 64, 256, 1024, 3 },
		{ 0, 16, 64, 0 },
		{ 4096, 16384, 65536, 0 },
		{ 100, 1024, 4099, 0x9e3779b97f4a7c15ULL }, /* min and max in the middle of blocks */
	};
	const bkr_chunker_params dflt = BKR_CHUNKER_PARAMS_INIT;
	const size_t pres[] = { 0, 1, 17, 63 };
	uint8_t *zeros = calloc(1, (1u << 20) + 64), *text = malloc((1u << 20) + 64);

	assert_non_null(zeros);
	assert_non_null(text);
	/* words over a small alphabet: cuts by the masks, not only at max */
	for (size_t i = 0; i < (1u << 20) + 64; i++)
		text[i] = (uint8_t)("etaoin shrdlu\n"[f->data[i] % 14]);
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		const bkr_chunker_params *p = &ps[k];
		const size_t lens[] = { 0,  1,  p->min ? p->min - 1 : 0, p->min,    p->max, p->max + 1, 63,
					64, 65, 5 * p->max + 37,         300u << 10 };
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			for (size_t j = 0; j < sizeof(pres) / sizeof(pres[0]); j++) {
				check_scan2(p, f->data, lens[i], 0, 0, pres[j]);
				check_scan2(p, zeros, lens[i], 0, 0, pres[j]);
				check_scan2(p, text, lens[i], 0, 0, pres[j]);
				check_scan2(p, text, lens[i], 0, 0xbeef + i, pres[j]);
			}
			check_scan2(p, f->data, lens[i] < 4096 ? lens[i] : 4096, 1, 0, 5);
		}
	}
	const size_t dlens[] = { 0, 1, dflt.min - 1, dflt.min, dflt.max, dflt.max + 1 };
	for (size_t i = 0; i < sizeof(dlens) / sizeof(dlens[0]); i++) {
		check_scan2(&dflt, f->data, dlens[i], 0, 0, 0);
		check_scan2(&dflt, zeros, dlens[i] < (1u << 20) ? dlens[i] : (1u << 20), 0, 0, 31);
	}
	check_scan2(&dflt, f->data, 24u << 20, 0, 0, 0);
	check_scan2(&dflt, f->data, 24u << 20, 0, 0xfeed, 45);
	check_scan2(&dflt, text, 1u << 20, 0, 0, 9);
	free(zeros);
	free(text);
}

static void test_bad_params(void **state)
{
	bkr_chunker *c = (bkr_chunker *)0x1;
	const bkr_chunker_params bad[] = {
		{ 1024, 1024, 4096, 0 },          /* min == avg */
		{ 2048, 1024, 4096, 0 },          /* min > avg */
		{ 256, 4096, 4096, 0 },           /* avg == max */
		{ 256, 3000, 8192, 0 },           /* avg not a power of two */
		{ 256, 1024, 512, 0 },            /* max < avg */
		{ 1u << 20, 4u << 20, 32u << 20, 0 }, /* max > 16 MiB */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bkr_chunker_new(&c, &bad[i]), BKR_EINVAL);
		assert_null(c);
		assert_true(strlen(bkr_error_message()) > 0);
	}
	assert_int_equal(bkr_chunker_new(&c, NULL), BKR_EINVAL);
	bkr_chunker_free(NULL);
}

static void test_zeros_forced_max(void **state)
{
	bkr_chunker_params p = { 4096, 16384, 65536, 0 };
	size_t len = 10 * 65536 + 1234;
	uint8_t *z = calloc(1, len);
	struct cuts c;

	assert_non_null(z);
	chunk_all(&p, z, len, 0, 0, &c);
	assert_int_equal(c.n, 11);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(c.len[i], 65536);
	assert_int_equal(c.len[10], 1234);
	cuts_free(&c);

	/* The default parameters too. */
	bkr_chunker_params d = BKR_CHUNKER_PARAMS_INIT;
	free(z);
	len = 3u * BKR_CHUNK_MAX;
	z = calloc(1, len);
	assert_non_null(z);
	chunk_all(&d, z, len, 0, 0, &c);
	assert_int_equal(c.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(c.len[i], BKR_CHUNK_MAX);
	cuts_free(&c);
	free(z);
}

static void test_reset_and_empty(void **state)
{
	struct fixture *f = *state;
	bkr_chunker_params p = { 64, 256, 1024, 0 };
	bkr_chunker *c = NULL;
	struct cuts whole;
	size_t k;

	chunk_all(&p, f->data, 8192, 0, 0, &whole);
	assert_int_equal(bkr_chunker_new(&c, &p), 0);
	/* Empty feed: no cut. */
	assert_true(bkr_chunker_scan(c, f->data, 0) == (size_t)-1);
	/* Feed part of a chunk of another "file", reset, then the first cut must match. */
	assert_true(bkr_chunker_scan(c, f->data + 5000, 40) == (size_t)-1);
	bkr_chunker_reset(c);
	k = bkr_chunker_scan(c, f->data, 8192);
	assert_int_equal(k, whole.len[0]);
	bkr_chunker_free(c);
	cuts_free(&whole);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds_default),   cmocka_unit_test(test_bounds_small),
		cmocka_unit_test(test_deterministic),    cmocka_unit_test(test_seed_changes_cuts),
		cmocka_unit_test(test_insert_resync),    cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_scan2_same_cuts),  cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_zeros_forced_max), cmocka_unit_test(test_reset_and_empty),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
