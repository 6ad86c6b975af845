/** @file
 * Unit tests for bkr_digest (content digests, docs/format.md "Content
 * digests"): the plain form is SHA-256; the sparse form matches a value
 * computed independently from the specification, does not depend on how
 * the bytes and zeros are fed (pieces, block alignment, zeros as data or as
 * holes), and tells a single changed byte; bkr_digest_fd gives the same
 * digest for a sparse file and a dense copy of it.  The streaming SHA-256
 * (on the SHA extensions where the CPU has them, OpenSSL's otherwise: the
 * test runs again as digest_noshani with BKR_SHANI=0) gives OpenSSL's
 * one-shot values however it is fed, and bkr_digest_update2 the digest of
 * the whole and another hash's at any offset and length of either.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/digest.h"
#include "testutil.h"

static void test_plain_is_sha256(void **state)
{
	(void)state;
	uint8_t buf[10000];
	bkr_id a, b;
	bkr_digest *d = bkr_digest_new(BKR_DIGEST_PLAIN);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	memset(buf + 3000, 0, 5000);
	bkr_sha256(buf, sizeof(buf), &a);
	bkr_digest_update(d, buf, 3000);
	bkr_digest_zeros(d, 5000);
	bkr_digest_update(d, buf + 8000, 2000);
	bkr_digest_final(d, &b);
	assert_memory_equal(a.b, b.b, BKR_ID_SIZE);
	bkr_digest_free(d);
	bkr_digest_free(NULL);
}

/* FIPS 180-2's "abc" and its two-block message, fed a byte at a time and
 * whole, and a copy of a state mid-way; then any split of 3 blocks against
 * OpenSSL's one-shot SHA-256 (bkr_sha256). */
static void test_hash_stream(void **state)
{
	(void)state;
	static const char *msg2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char *hex1 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	static const char *hex2 = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
	char hex[BKR_ID_HEX];
	uint8_t buf[192 + 1];
	bkr_hash_ctx *h = bkr_hash_new(), *h2 = bkr_hash_new();
	bkr_id a, b;

	assert_non_null(h);
	assert_non_null(h2);
	if (getenv("BKR_SHANI") && strcmp(getenv("BKR_SHANI"), "0") == 0)
		assert_false(bkr_hash_pair_fast());
	bkr_hash_update(h, "abc", 3);
	bkr_hash_final(h, &a);
	bkr_id_to_hex(&a, hex);
	assert_string_equal(hex, hex1);
	for (size_t i = 0; i < strlen(msg2); i++) {
		bkr_hash_update(h, msg2 + i, 1);
		if (i == 20)
			assert_int_equal(bkr_hash_copy(h2, h), 0);
	}
	bkr_hash_final(h, &a);
	bkr_id_to_hex(&a, hex);
	assert_string_equal(hex, hex2);
	bkr_hash_update(h2, msg2 + 21, strlen(msg2) - 21);
	bkr_hash_final(h2, &a);
	bkr_id_to_hex(&a, hex);
	assert_string_equal(hex, hex2);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t len = 0; len < sizeof(buf); len += len < 70 ? 1 : 61) {
		bkr_sha256(buf, len, &a);
		for (size_t cut = 0; cut <= len; cut += cut < 70 ? 1 : 13) {
			bkr_hash_update(h, buf, cut);
			bkr_hash_update(h, buf + cut, len - cut);
			bkr_hash_final(h, &b);
			assert_memory_equal(a.b, b.b, BKR_ID_SIZE);
		}
	}
	bkr_hash_free(h);
	bkr_hash_free(h2);
	bkr_hash_free(NULL);
}

/* bkr_digest_update2 at every offset of a 64-byte block in the digest and
 * in the other hash, with lengths around block sizes: the other hash gets
 * exactly its bytes, the digest those of the whole file; in the sparse
 * form too. */
static void test_update2(void **state)
{
	(void)state;
	static const size_t pre[] = { 0, 1, 55, 56, 63, 64, 65, 100, 4096 };
	static const size_t hpre[] = { 0, 1, 63, 64, 70 };
	static const size_t lens[] = { 0, 1, 8, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000, 65536 + 17 };
	size_t cap = 4096 + 65536 + 17 + 7;
	uint8_t *buf = malloc(cap), *cat = malloc(cap + 70);
	bkr_digest *d = bkr_digest_new(BKR_DIGEST_PLAIN), *s = bkr_digest_new(BKR_DIGEST_SPARSE);
	bkr_hash_ctx *h = bkr_hash_new();
	bkr_id want, got, id, idw;

	assert_non_null(buf);
	assert_non_null(cat);
	assert_non_null(d);
	assert_non_null(s);
	assert_non_null(h);
	for (size_t i = 0; i < cap; i++)
		buf[i] = (uint8_t)((i * 2654435761u) >> 13);
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			for (size_t k = 0; k < sizeof(hpre) / sizeof(hpre[0]); k++) {
				size_t p = pre[i], l = lens[j], q = hpre[k];
				/* h: q bytes of its own (the end of buf), then the chunk */
				memcpy(cat, buf + cap - q, q);
				memcpy(cat + q, buf + p, l);
				bkr_sha256(buf, p + l + 7, &want);
				bkr_sha256(cat, q + l, &idw);
				bkr_digest_update(d, buf, p);
				bkr_hash_update(h, buf + cap - q, q);
				bkr_digest_update2(d, h, buf + p, l);
				bkr_digest_update(d, buf + p + l, 7);
				bkr_digest_final(d, &got);
				bkr_hash_final(h, &id);
				assert_memory_equal(got.b, want.b, BKR_ID_SIZE);
				assert_memory_equal(id.b, idw.b, BKR_ID_SIZE);
			}
			/* two chunks in a row (the second's digest stream is mid-block) */
			size_t p = pre[i], l = lens[j];
			bkr_sha256(buf, p + l + 7, &want);
			bkr_digest_update2(d, h, buf, p);
			bkr_hash_final(h, &id);
			bkr_sha256(buf, p, &idw);
			assert_memory_equal(id.b, idw.b, BKR_ID_SIZE);
			bkr_digest_update2(d, h, buf + p, l + 7);
			bkr_hash_final(h, &id);
			bkr_sha256(buf + p, l + 7, &idw);
			assert_memory_equal(id.b, idw.b, BKR_ID_SIZE);
			bkr_digest_final(d, &got);
			assert_memory_equal(got.b, want.b, BKR_ID_SIZE);
		}
	}
	/* the sparse form: the digest as bkr_digest_update gives it, and the id */
	bkr_digest_update(s, buf, 100);
	bkr_digest_update(s, buf + 100, 65536);
	bkr_digest_final(s, &want);
	bkr_digest_update(s, buf, 100);
	bkr_digest_update2(s, h, buf + 100, 65536);
	bkr_digest_final(s, &got);
	bkr_hash_final(h, &id);
	bkr_sha256(buf + 100, 65536, &idw);
	assert_memory_equal(got.b, want.b, BKR_ID_SIZE);
	assert_memory_equal(id.b, idw.b, BKR_ID_SIZE);
	bkr_hash_free(h);
	bkr_digest_free(d);
	bkr_digest_free(s);
	free(buf);
	free(cat);
}

/* bkr_digest_scan2 (the backup's pass over a dense file): in either form,
 * the cuts of bkr_chunker_scan, each chunk's id the SHA-256 of its bytes and
 * the digest that of bkr_digest_update over everything, fed in pieces of
 * odd sizes across the cuts. */
static void test_scan2(void **state)
{
	(void)state;
	const bkr_chunker_params cp = { 1000, 4096, 16411, 5 };
	const size_t len = 300007, pieces[] = { 1, 63, 4099, 70001 };
	uint8_t *buf = malloc(len);
	bkr_chunker *c = NULL, *ref = NULL;
	bkr_hash_ctx *h = bkr_hash_new();
	bkr_id want, got, id;

	assert_non_null(buf);
	assert_non_null(h);
	assert_int_equal(bkr_chunker_new(&c, &cp), 0);
	assert_int_equal(bkr_chunker_new(&ref, &cp), 0);
	/* text-like bytes then noise: cuts by the masks and at max */
	for (size_t i = 0; i < len; i++)
		buf[i] = i < len / 2 ? (uint8_t)"abc de\n"[((i * 2654435761u) >> 17) % 7]
				     : (uint8_t)((i * 2654435761u) >> 13);
	for (int form = 0; form < 2; form++) {
		bkr_digest *d = bkr_digest_new((bkr_digest_form)form), *w = bkr_digest_new((bkr_digest_form)form);
		assert_non_null(d);
		assert_non_null(w);
		bkr_digest_update(w, buf, len);
		bkr_digest_final(w, &want);
		for (size_t pi = 0; pi < sizeof(pieces) / sizeof(pieces[0]); pi++) {
			size_t off = 0, start = 0, rpos = 0, ncuts = 0;
			bkr_chunker_reset(c);
			bkr_chunker_reset(ref);
			while (off < len) {
				size_t n = len - off < pieces[pi] ? len - off : pieces[pi], at = off;
				while (at < off + n) {
					size_t k = bkr_digest_scan2(d, h, c, buf + at, off + n - at);
					if (k == (size_t)-1)
						break;
					at += k;
					/* the plain scan cuts at the same place */
					size_t r = bkr_chunker_scan(ref, buf + rpos, len - rpos);
					assert_int_equal(rpos + r, at);
					rpos = at;
					bkr_hash_final(h, &got);
					bkr_sha256(buf + start, at - start, &id);
					assert_memory_equal(got.b, id.b, sizeof(id.b));
					start = at;
					ncuts++;
				}
				off += n;
			}
			assert_true(ncuts > 10);
			assert_int_equal(bkr_chunker_scan(ref, buf + rpos, len - rpos), (size_t)-1);
			bkr_hash_final(h, &got);
			bkr_sha256(buf + start, len - start, &id);
			assert_memory_equal(got.b, id.b, sizeof(id.b));
			bkr_digest_final(d, &got);
			assert_memory_equal(got.b, want.b, sizeof(want.b));
		}
		bkr_digest_free(d);
		bkr_digest_free(w);
	}
	bkr_chunker_free(c);
	bkr_chunker_free(ref);
	bkr_hash_free(h);
	free(buf);
}

static void test_sparse_vector(void **state)
{
	(void)state;
	/* 100 × 'a' then 9900 zeros: one data block, one run (4096, 5904); the
	 * value computed from the specification with Python's hashlib */
	const char *want = "bc20825fc58ef3a20177e54a02f37cff5ca9ef2a7f60f53146be2aea411e6c5b";
	uint8_t buf[10000] = { 0 };
	char hex[BKR_ID_HEX];
	bkr_id id;
	bkr_digest *d = bkr_digest_new(BKR_DIGEST_SPARSE);

	memset(buf, 'a', 100);
	bkr_digest_update(d, buf, sizeof(buf));
	bkr_digest_final(d, &id);
	bkr_id_to_hex(&id, hex);
	assert_string_equal(hex, want);
	/* fed as data + a hole: the same */
	bkr_digest_update(d, buf, 100);
	bkr_digest_zeros(d, 9900);
	bkr_digest_final(d, &id);
	bkr_id_to_hex(&id, hex);
	assert_string_equal(hex, want);
	bkr_digest_free(d);
}

/* The sparse digest of @p buf fed in pieces of @p step, runs of zeros as holes when @p holes. */
static void feed(bkr_digest *d, const uint8_t *buf, size_t len, size_t step, bool holes, bkr_id *out)
{
	for (size_t off = 0; off < len;) {
		size_t k = len - off < step ? len - off : step;
		size_t z = 0;
		while (holes && z < k && buf[off + z] == 0)
			z++;
		if (z == k) {
			bkr_digest_zeros(d, k);
		} else {
			bkr_digest_update(d, buf + off, k);
		}
		off += k;
	}
	bkr_digest_final(d, out);
}

static void test_sparse_any_feeding(void **state)
{
	(void)state;
	size_t len = 300000;
	uint8_t *buf = calloc(1, len);
	static const size_t steps[] = { 1, 7, 512, 4095, 4096, 4097, 65536, 300000 };
	bkr_digest *d = bkr_digest_new(BKR_DIGEST_SPARSE);
	bkr_id ref, got, plain;

	assert_non_null(buf);
	for (size_t i = 0; i < 20000; i++)
		buf[i] = (uint8_t)(i % 251 + 1);
	buf[100000] = 1;              /* alone in its block */
	for (size_t i = 200003; i < 210000; i++)
		buf[i] = (uint8_t)i | 1;  /* unaligned */
	feed(d, buf, len, len, false, &ref);
	for (size_t s = 0; s < sizeof(steps) / sizeof(*steps); s++) {
		feed(d, buf, len, steps[s], false, &got);
		assert_memory_equal(ref.b, got.b, BKR_ID_SIZE);
		feed(d, buf, len, steps[s], true, &got);
		assert_memory_equal(ref.b, got.b, BKR_ID_SIZE);
	}
	/* not the plain form; a changed byte, a longer file differ */
	bkr_sha256(buf, len, &plain);
	assert_memory_not_equal(ref.b, plain.b, BKR_ID_SIZE);
	buf[150000] = 9;
	feed(d, buf, len, 4096, true, &got);
	assert_memory_not_equal(ref.b, got.b, BKR_ID_SIZE);
	buf[150000] = 0;
	feed(d, buf, len - 1, 4096, true, &got);
	assert_memory_not_equal(ref.b, got.b, BKR_ID_SIZE);
	/* a zero block moved: the run records tell */
	buf[100000] = 0;
	buf[104096] = 1;
	feed(d, buf, len, 4096, true, &got);
	assert_memory_not_equal(ref.b, got.b, BKR_ID_SIZE);
	bkr_digest_free(d);
	free(buf);
}

static void test_fd_sparse_and_dense(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), sp[PATH_MAX], dn[PATH_MAX];
	size_t len = (size_t)8 << 20;
	uint8_t *buf = calloc(1, len);
	bkr_id a, b, c, want;
	uint64_t size = 0;
	int fd;

	assert_non_null(buf);
	memcpy(buf + 5000, "hello", 5);
	memcpy(buf + len - 3, "end", 3);
	snprintf(sp, sizeof(sp), "%s/sparse", dir);
	snprintf(dn, sizeof(dn), "%s/dense", dir);
	/* sparse: two pwrites into a truncated file */
	fd = open(sp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	assert_int_equal(pwrite(fd, "hello", 5, 5000), 5);
	assert_int_equal(pwrite(fd, "end", 3, (off_t)len - 3), 3);
	assert_int_equal(bkr_digest_fd(fd, BKR_DIGEST_SPARSE, &a, &size), 0);
	assert_int_equal(size, len);
	assert_int_equal(bkr_digest_fd(fd, BKR_DIGEST_PLAIN, &c, NULL), 0);
	close(fd);
	fd = open(dn, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(bkr_digest_fd(fd, BKR_DIGEST_SPARSE, &b, NULL), 0);
	close(fd);
	assert_memory_equal(a.b, b.b, BKR_ID_SIZE);
	bkr_sha256(buf, len, &want);
	assert_memory_equal(c.b, want.b, BKR_ID_SIZE);
	free(buf);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_is_sha256),
		cmocka_unit_test(test_hash_stream),
		cmocka_unit_test(test_update2),
		cmocka_unit_test(test_scan2),
		cmocka_unit_test(test_sparse_vector),
		cmocka_unit_test(test_sparse_any_feeding),
		cmocka_unit_test(test_fd_sparse_and_dense),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
