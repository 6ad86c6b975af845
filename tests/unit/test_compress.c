/** @file
 * Unit tests of the zlib-format codec (engine/compress.c): round trips at every
 * level through libdeflate and zlib, cross-decoding between the two, the
 * incompressibility probe, refusal to "compress" into something larger, and
 * hostile streams (truncated, bit-flipped, wrong length, trailing bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/compress.h"
#include "bkr/error.h"

#define TEXT_LEN (1u << 20)
#define RAND_LEN (256u << 10)

struct fixture {
	uint8_t *text;  /**< compressible: JSON-ish log lines */
	uint8_t *rnd;   /**< incompressible */
	uint8_t *buf;   /**< compressed output, bound(TEXT_LEN) */
	uint8_t *out;   /**< decompressed output, TEXT_LEN + 16 */
	size_t cap;
};

typedef int (*compress_fn)(int, const void *, size_t, void *, size_t, size_t *);
typedef int (*decompress_fn)(const void *, size_t, void *, size_t);

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void fill_text(uint8_t *p, size_t n)
{
	static const char *words[] = { "user", "assistant", "content", "the", "backup",
				       "restore", "file", "workspace", "error", "ok",
				       "timestamp", "message", "tool", "result", "json" };
	uint64_t s = 42;
	size_t i = 0;
	while (i < n) {
		char line[160];
		int k = snprintf(line, sizeof(line), "{\"role\":\"%s\",\"%s\":\"%s %s %llu\"}\n",
				 words[rng_next(&s) % 15], words[rng_next(&s) % 15],
				 words[rng_next(&s) % 15], words[rng_next(&s) % 15],
				 (unsigned long long)(rng_next(&s) % 100000));
		for (int j = 0; j < k && i < n; j++)
			p[i++] = (uint8_t)line[j];
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint64_t s = 7;
	if (!f)
		return -1;
	f->cap = bkr_compress_bound(TEXT_LEN);
	f->text = malloc(TEXT_LEN);
	f->rnd = malloc(RAND_LEN);
	f->buf = malloc(f->cap);
	f->out = malloc(TEXT_LEN + 16);
	if (!f->text || !f->rnd || !f->buf || !f->out)
		return -1;
	fill_text(f->text, TEXT_LEN);
	for (size_t i = 0; i < RAND_LEN; i++)
		f->rnd[i] = (uint8_t)(rng_next(&s) >> 56);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->text);
	free(f->rnd);
	free(f->buf);
	free(f->out);
	free(f);
	return 0;
}

static void round_trip(struct fixture *f, compress_fn c, decompress_fn d1, decompress_fn d2)
{
	for (int level = 1; level <= 9; level++) {
		size_t n = 0;
		assert_int_equal(c(level, f->text, TEXT_LEN, f->buf, f->cap, &n), 0);
		assert_true(n > 0 && n < TEXT_LEN / 2);
		/* zlib header: CM = 8, header checksum. */
		assert_int_equal(f->buf[0] & 0x0f, 8);
		assert_int_equal((f->buf[0] << 8 | f->buf[1]) % 31, 0);
		memset(f->out, 0xaa, TEXT_LEN);
		assert_int_equal(d1(f->buf, n, f->out, TEXT_LEN), 0);
		assert_memory_equal(f->out, f->text, TEXT_LEN);
		memset(f->out, 0x55, TEXT_LEN);
		assert_int_equal(d2(f->buf, n, f->out, TEXT_LEN), 0);
		assert_memory_equal(f->out, f->text, TEXT_LEN);
	}
}

/* libdeflate output decoded by libdeflate and zlib. */
static void test_round_trip_libdeflate(void **state)
{
	round_trip(*state, bkr_compress, bkr_decompress, bkr_decompress_zlib);
}

/* zlib output decoded by zlib and libdeflate. */
static void test_round_trip_zlib(void **state)
{
	round_trip(*state, bkr_compress_zlib, bkr_decompress_zlib, bkr_decompress);
}

static void test_levels_rejected(void **state)
{
	struct fixture *f = *state;
	size_t n = 1;
	assert_int_equal(bkr_compress(0, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
	assert_int_equal(n, 0);
	assert_int_equal(bkr_compress(10, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
	assert_int_equal(bkr_compress_zlib(-1, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
	assert_int_equal(bkr_compress_zlib(10, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
}

static void test_incompressible(void **state)
{
	struct fixture *f = *state;
	size_t n = 0;

	assert_true(bkr_compress_probe_incompressible(f->rnd, RAND_LEN));
	assert_true(bkr_compress_probe_incompressible(f->rnd, 1000));
	assert_false(bkr_compress_probe_incompressible(f->text, TEXT_LEN));
	assert_false(bkr_compress_probe_incompressible(f->text, 1000));
	/* The probe looks at the first 64 KiB only. */
	memcpy(f->out, f->rnd, 64u << 10);
	memcpy(f->out + (64u << 10), f->text, 512u << 10);
	assert_true(bkr_compress_probe_incompressible(f->out, (576u << 10)));

	for (int level = 1; level <= 9; level += 4) {
		assert_int_equal(bkr_compress(level, f->rnd, RAND_LEN, f->buf, f->cap, &n), BKR_ERROR);
		assert_int_equal(n, 0);
		assert_int_equal(bkr_compress_zlib(level, f->rnd, RAND_LEN, f->buf, f->cap, &n),
				 BKR_ERROR);
		assert_int_equal(n, 0);
	}
	/* A tiny input cannot shrink either. */
	assert_int_equal(bkr_compress(1, "ab", 2, f->buf, f->cap, &n), BKR_ERROR);
	assert_int_equal(bkr_compress_zlib(1, "ab", 2, f->buf, f->cap, &n), BKR_ERROR);
}

static size_t compress_text(struct fixture *f, size_t len)
{
	size_t n = 0;
	assert_int_equal(bkr_compress(6, f->text, len, f->buf, f->cap, &n), 0);
	return n;
}

static void expect_corrupt(const uint8_t *in, size_t len, uint8_t *out, size_t raw_len)
{
	assert_int_equal(bkr_decompress(in, len, out, raw_len), BKR_ECORRUPT);
	assert_int_equal(bkr_decompress_zlib(in, len, out, raw_len), BKR_ECORRUPT);
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	size_t n = compress_text(f, TEXT_LEN);
	size_t cuts[] = { 0, 1, 2, 10, n / 2, n - 5, n - 4, n - 1 };

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_corrupt(f->buf, cuts[i], f->out, TEXT_LEN);
	/* Trailing garbage after a valid stream. */
	f->buf[n] = 0;
	expect_corrupt(f->buf, n + 1, f->out, TEXT_LEN);
}

static void test_bit_flips(void **state)
{
	struct fixture *f = *state;
	size_t len = 64u << 10;
	size_t n = compress_text(f, len);
	size_t must[] = { 0, 1, n / 3, n / 2, n - 4, n - 1 };

	/* Header, body and Adler-32 trailer: always detected. */
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
		f->buf[must[i]] ^= 0x10;
		expect_corrupt(f->buf, n, f->out, len);
		f->buf[must[i]] ^= 0x10;
	}
	/*
	 * Every single-bit flip: either detected, or (padding bits of the last
	 * deflate byte are ignored) the exact original comes out.  Never wrong bytes.
	 */
	for (size_t i = 0; i < n; i += 7) {
		uint8_t bit = (uint8_t)(1u << (i % 8));
		int r1, r2;
		f->buf[i] ^= bit;
		r1 = bkr_decompress(f->buf, n, f->out, len);
		if (r1 == 0)
			assert_memory_equal(f->out, f->text, len);
		else
			assert_int_equal(r1, BKR_ECORRUPT);
		r2 = bkr_decompress_zlib(f->buf, n, f->out, len);
		if (r2 == 0)
			assert_memory_equal(f->out, f->text, len);
		else
			assert_int_equal(r2, BKR_ECORRUPT);
		f->buf[i] ^= bit;
	}
	assert_int_equal(bkr_decompress(f->buf, n, f->out, len), 0);
}

static void test_wrong_raw_len(void **state)
{
	struct fixture *f = *state;
	size_t len = 100000;
	size_t n = compress_text(f, len);

	expect_corrupt(f->buf, n, f->out, len - 1);
	expect_corrupt(f->buf, n, f->out, len + 1);
	expect_corrupt(f->buf, n, f->out, 0);
	expect_corrupt(f->buf, n, f->out, len / 2);
	assert_int_equal(bkr_decompress(f->buf, n, f->out, len), 0);
	assert_int_equal(bkr_decompress_zlib(f->buf, n, f->out, len), 0);
	assert_memory_equal(f->out, f->text, len);
}

static void test_empty(void **state)
{
	struct fixture *f = *state;
	/* zlib's own encoding of zero bytes (level 6). */
	static const uint8_t empty[] = { 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 };
	size_t n = 5;

	assert_int_equal(bkr_compress(1, f->text, 0, f->buf, f->cap, &n), BKR_ERROR);
	assert_int_equal(n, 0);
	assert_int_equal(bkr_compress_zlib(1, f->text, 0, f->buf, f->cap, &n), BKR_ERROR);
	assert_true(bkr_compress_probe_incompressible(f->text, 0));
	assert_true(bkr_compress_bound(0) > 0);
	assert_int_equal(bkr_decompress(empty, sizeof(empty), f->out, 0), 0);
	assert_int_equal(bkr_decompress_zlib(empty, sizeof(empty), f->out, 0), 0);
	expect_corrupt(empty, sizeof(empty), f->out, 1);
	expect_corrupt(empty, 0, f->out, 0);
}

/* ---- zstd --------------------------------------------------------------- */

static void test_zstd_round_trip(void **state)
{
	struct fixture *f = *state;
	static const int levels[] = { 1, 2, 3, 6, 9 };
	for (size_t i = 0; i < sizeof(levels) / sizeof(*levels); i++) {
		size_t n = 0;
		assert_int_equal(bkr_compress_zstd(levels[i], f->text, TEXT_LEN, f->buf, f->cap, &n), 0);
		assert_true(n > 0 && n < TEXT_LEN / 2);
		/* a zstd frame: its magic number */
		assert_int_equal(f->buf[0], 0x28);
		assert_int_equal(f->buf[3], 0xfd);
		memset(f->out, 0xaa, TEXT_LEN);
		assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, TEXT_LEN), 0);
		assert_memory_equal(f->out, f->text, TEXT_LEN);
		/* not a zlib stream */
		assert_int_equal(bkr_decompress(f->buf, n, f->out, TEXT_LEN), BKR_ECORRUPT);
	}
	size_t n = 1;
	assert_int_equal(bkr_compress_zstd(0, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
	assert_int_equal(bkr_compress_zstd(10, f->text, 100, f->buf, f->cap, &n), BKR_EINVAL);
	assert_int_equal(n, 0);
}

static void test_zstd_incompressible(void **state)
{
	struct fixture *f = *state;
	size_t n = 7;
	assert_int_equal(bkr_compress_zstd(2, f->rnd, RAND_LEN, f->buf, f->cap, &n), BKR_ERROR);
	assert_int_equal(n, 0);
	assert_int_equal(bkr_compress_zstd(2, "ab", 2, f->buf, f->cap, &n), BKR_ERROR);
	assert_int_equal(bkr_compress_zstd(2, f->text, 0, f->buf, f->cap, &n), BKR_ERROR);
	/* a zlib stream is no zstd frame */
	assert_int_equal(bkr_compress(1, f->text, 4096, f->buf, f->cap, &n), 0);
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, 4096), BKR_ECORRUPT);
}

/* The zstd codec's cheap estimate: flat byte counts in every sampled window. */
static void test_looks_random(void **state)
{
	struct fixture *f = *state;
	size_t n = 0;

	assert_true(bkr_compress_looks_random(f->rnd, RAND_LEN));
	assert_true(bkr_compress_looks_random(f->rnd, 16u << 10));
	assert_false(bkr_compress_looks_random(f->rnd, (16u << 10) - 1)); /* too short to judge */
	assert_false(bkr_compress_looks_random(f->text, TEXT_LEN));
	assert_false(bkr_compress_looks_random(f->text, 16u << 10));
	/* random but for 40 KiB of text in the middle: one window sees it (they
	 * are 36 KiB apart in 256 KiB), so it is compressed */
	memcpy(f->out, f->rnd, RAND_LEN);
	memcpy(f->out + RAND_LEN / 2, f->text, 40u << 10);
	assert_false(bkr_compress_looks_random(f->out, RAND_LEN));
	/* text at the end only */
	memcpy(f->out, f->rnd, RAND_LEN);
	memcpy(f->out + RAND_LEN - 4096, f->text, 4096);
	assert_false(bkr_compress_looks_random(f->out, RAND_LEN));
	/* bytes of a skewed distribution (a quarter of the values twice as likely)
	 * are not random: entropy coding alone saves more than 3% */
	for (size_t i = 0; i < RAND_LEN; i++)
		f->out[i] = f->rnd[i] < 64 ? (uint8_t)(f->rnd[i] >> 1) : f->rnd[i];
	assert_false(bkr_compress_looks_random(f->out, RAND_LEN));
	assert_int_equal(bkr_compress_zstd(2, f->out, RAND_LEN, f->buf, f->cap, &n), 0);
	assert_true(n < RAND_LEN * 97 / 100);
}

/* Log lines: a fixed shape, long repeats; level 1 finds them as level 2 does. */
static void fill_log(uint8_t *p, size_t n)
{
	static const char *ev[] = { "stored chunk", "opened file", "skipped unchanged file", "published pack" };
	uint64_t s = 5;
	size_t i = 0;
	for (unsigned t = 0; i < n; t++) {
		char line[200];
		int k = snprintf(line, sizeof(line),
				 "2026-12-03T05:%02u:%02u.%06uZ INFO bkr[%u]: worker %u %s workspace/logs/session-%04u.json\n",
				 t / 3600 % 60, t / 60 % 60, (unsigned)(rng_next(&s) % 1000000), 4242u,
				 (unsigned)(rng_next(&s) % 4), ev[rng_next(&s) % 4], (unsigned)(rng_next(&s) % 10000));
		for (int j = 0; j < k && i < n; j++)
			p[i++] = (uint8_t)line[j];
	}
}

/* Text of random words from a vocabulary of 4,000: short matches, which
 * level 2's second hash table finds and level 1's misses. */
static void fill_words(uint8_t *p, size_t n)
{
	static char vocab[4000][12];
	uint64_t s = 11;
	size_t i = 0;
	for (size_t w = 0; w < 4000; w++) {
		size_t len = 3 + rng_next(&s) % 9;
		for (size_t j = 0; j < len; j++)
			vocab[w][j] = (char)('a' + rng_next(&s) % 26);
		vocab[w][len] = 0;
	}
	while (i < n) {
		const char *w = vocab[rng_next(&s) % 4000];
		for (size_t j = 0; w[j] && i < n; j++)
			p[i++] = (uint8_t)w[j];
		if (i < n)
			p[i++] = rng_next(&s) % 12 ? ' ' : '\n';
	}
}

/* The level a big file's chunks take (bkr_compress_zstd_pick_level). */
static void test_zstd_pick_level(void **state)
{
	struct fixture *f = *state;
	size_t n1 = 0, n2 = 0;

	fill_log(f->out, TEXT_LEN);
	assert_int_equal(bkr_compress_zstd(1, f->out, TEXT_LEN, f->buf, f->cap, &n1), 0);
	assert_int_equal(bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, f->out, TEXT_LEN, f->buf, f->cap, &n2), 0);
	print_message("log lines: level 1 %zu, level 2 %zu bytes\n", n1, n2);
	assert_true(n1 * 100 <= n2 * (100 + BKR_ZSTD_FAST_SLACK_PCT));
	assert_int_equal(bkr_compress_zstd_pick_level(f->out, TEXT_LEN), 1);

	fill_words(f->out, TEXT_LEN);
	assert_int_equal(bkr_compress_zstd(1, f->out, TEXT_LEN, f->buf, f->cap, &n1), 0);
	assert_int_equal(bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, f->out, TEXT_LEN, f->buf, f->cap, &n2), 0);
	print_message("words: level 1 %zu, level 2 %zu bytes\n", n1, n2);
	assert_true(n1 * 100 > n2 * (100 + BKR_ZSTD_FAST_SLACK_PCT));
	assert_int_equal(bkr_compress_zstd_pick_level(f->out, TEXT_LEN), BKR_ZSTD_LEVEL_DEFAULT);

	/* nothing to learn from random bytes, or from nothing */
	assert_int_equal(bkr_compress_zstd_pick_level(f->rnd, RAND_LEN), 0);
	assert_int_equal(bkr_compress_zstd_pick_level(f->text, 0), 0);
	assert_int_equal(bkr_error_last_code(), 0);
}

struct level_job {
	const uint8_t *in;
	size_t len, n;
	uint8_t *buf;
	size_t cap;
	int level, err;
};

static void *level_main(void *arg)
{
	struct level_job *j = arg;
	j->err = bkr_compress_zstd(j->level, j->in, j->len, j->buf, j->cap, &j->n);
	return NULL;
}

/*
 * A level's frame does not depend on the calls before it: the thread's
 * context kept the parameters the default level sets (its minimum match),
 * so a level 1 frame after a level 2 one differed from a fresh thread's.
 */
static void test_zstd_no_carry_over(void **state)
{
	struct fixture *f = *state;
	size_t len = 64u << 10, n = 0;
	struct level_job j = { .in = f->out, .len = len, .cap = f->cap, .level = 1 };
	pthread_t t;

	fill_words(f->out, len);
	assert_non_null(j.buf = malloc(f->cap));
	/* a fresh thread: a fresh context */
	assert_int_equal(pthread_create(&t, NULL, level_main, &j), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.err, 0);
	assert_int_equal(bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, f->out, len, f->buf, f->cap, &n), 0);
	assert_int_equal(bkr_compress_zstd(1, f->out, len, f->buf, f->cap, &n), 0);
	print_message("level 1, fresh: %zu bytes; after level 2: %zu\n", j.n, n);
	assert_int_equal(n, j.n);
	assert_memory_equal(f->buf, j.buf, n);
	free(j.buf);
}

/* Round trip of @p len bytes at level 2; the frame's size. */
static size_t zstd_trip(struct fixture *f, const uint8_t *in, size_t len)
{
	size_t n = 0;
	assert_int_equal(bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, in, len, f->buf, f->cap, &n), 0);
	memset(f->out, 0xaa, len);
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, len), 0);
	assert_memory_equal(f->out, in, len);
	return n;
}

/*
 * Random runs among text get blocks of their own (stored raw), so they do
 * not flatten the text's Huffman table: text with random blocks costs what
 * the text alone costs plus the random bytes, within 3 % of the text's
 * frame (10 % more without the split).  Every layout
 * round-trips: runs at either end, a run across two windows, a frame that
 * does not fit.
 */
static void test_zstd_random_runs(void **state)
{
	struct fixture *f = *state;
	uint8_t *mix = malloc(TEXT_LEN), *text = malloc(TEXT_LEN);
	uint64_t s = 3;
	size_t m = 0, t = 0, rnd = 0, n_text, n_mix, n = 0;

	assert_non_null(mix);
	assert_non_null(text);
	fill_words(text, TEXT_LEN);
	/* 64 to 128 KiB of text, then 4 to 32 KiB of random bytes at any offset */
	while (m < TEXT_LEN) {
		size_t k = (64u << 10) + rng_next(&s) % (64u << 10), r = (4u << 10) + rng_next(&s) % (28u << 10);
		if (k > TEXT_LEN - m)
			k = TEXT_LEN - m;
		memcpy(mix + m, text + t, k);
		m += k;
		t += k;
		if (r > TEXT_LEN - m)
			r = TEXT_LEN - m;
		for (size_t i = 0; i < r; i++) /* fresh bytes: no run repeats another */
			mix[m++] = (uint8_t)(rng_next(&s) >> 56);
		rnd += r;
	}
	n_text = zstd_trip(f, text, t);
	n_mix = zstd_trip(f, mix, TEXT_LEN);
	print_message("words %zu -> %zu bytes; with %zu random bytes among them -> %zu\n", t, n_text, rnd, n_mix);
	assert_true(n_mix <= n_text + rnd + n_text * 3 / 100);

	/* random at the start, at the end, both; 4 KiB of random bytes across two
	 * windows; a buffer just long enough to be looked at */
	memcpy(mix, f->rnd, 64u << 10);
	zstd_trip(f, mix, TEXT_LEN);
	memcpy(mix + TEXT_LEN - (40u << 10) - 5, f->rnd, (40u << 10) + 5);
	zstd_trip(f, mix, TEXT_LEN);
	memcpy(mix, text, TEXT_LEN);
	memcpy(mix + 5000, f->rnd, 4096);
	zstd_trip(f, mix, TEXT_LEN);
	zstd_trip(f, mix, 3 * 4096 + 1);
	/* random but for a little text: still compressed when it saves 3 % */
	memcpy(mix, f->rnd, RAND_LEN);
	memcpy(mix + RAND_LEN / 2, text, 32u << 10);
	if (bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, mix, RAND_LEN, f->buf, f->cap, &n) == 0) {
		assert_true(n < RAND_LEN * 97 / 100);
		assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, RAND_LEN), 0);
		assert_memory_equal(f->out, mix, RAND_LEN);
	}
	/* a frame that does not fit the space given: refused, nothing written past it */
	memcpy(mix, text, TEXT_LEN);
	memcpy(mix + 100000, f->rnd, 64u << 10);
	n = 1;
	memset(f->buf, 0x5c, f->cap);
	assert_int_equal(bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, mix, TEXT_LEN, f->buf, 1000, &n), BKR_ERROR);
	assert_int_equal(n, 0);
	assert_int_equal(f->buf[1000], 0x5c);
	bkr_error_clear();
	free(mix);
	free(text);
}

static void test_zstd_damaged(void **state)
{
	struct fixture *f = *state;
	size_t len = 64u << 10, n = 0;
	assert_int_equal(bkr_compress_zstd(3, f->text, len, f->buf, f->cap, &n), 0);
	size_t cuts[] = { 0, 1, 4, 10, n / 2, n - 4, n - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		assert_int_equal(bkr_decompress_zstd(f->buf, cuts[i], f->out, len), BKR_ECORRUPT);
	/* trailing bytes, a wrong raw length */
	f->buf[n] = 0;
	assert_int_equal(bkr_decompress_zstd(f->buf, n + 1, f->out, len), BKR_ECORRUPT);
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, len - 1), BKR_ECORRUPT);
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, len + 1), BKR_ECORRUPT);
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, 0), BKR_ECORRUPT);
	/* every bit flip: detected, or the exact original (never wrong bytes) */
	for (size_t i = 0; i < n; i += 5) {
		uint8_t bit = (uint8_t)(1u << (i % 8));
		f->buf[i] ^= bit;
		int r = bkr_decompress_zstd(f->buf, n, f->out, len);
		if (r == 0)
			assert_memory_equal(f->out, f->text, len);
		else
			assert_int_equal(r, BKR_ECORRUPT);
		f->buf[i] ^= bit;
	}
	assert_int_equal(bkr_decompress_zstd(f->buf, n, f->out, len), 0);
	assert_memory_equal(f->out, f->text, len);
}

static void *thread_main(void *arg)
{
	struct fixture *f = arg;
	size_t cap = bkr_compress_bound(TEXT_LEN);
	uint8_t *buf = malloc(cap), *out = malloc(TEXT_LEN);
	intptr_t bad = 0;

	for (int round = 0; round < 4 && buf && out; round++) {
		size_t n = 0;
		int level = 1 + round * 2;
		if (bkr_compress(level, f->text, TEXT_LEN, buf, cap, &n) < 0 ||
		    bkr_decompress(buf, n, out, TEXT_LEN) < 0 || memcmp(out, f->text, TEXT_LEN) != 0)
			bad++;
		if (!bkr_compress_probe_incompressible(f->rnd, RAND_LEN))
			bad++;
	}
	if (!buf || !out)
		bad++;
	free(buf);
	free(out);
	return (void *)bad;
}

/* Per-thread compressors: concurrent use works and is freed at thread exit. */
static void test_threads(void **state)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, *state), 0);
	for (int i = 0; i < 4; i++) {
		void *ret = NULL;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_libdeflate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_zlib, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incompressible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_raw_len, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_incompressible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_pick_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_random_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zstd_no_carry_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_looks_random, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
