/** @file
 * Unit tests of the cryptography (engine/crypto.c): AES-256-GCM seal/open
 * round trips with fresh nonces, every bit flip and a wrong key or AD
 * refused, the published AES-256-GCM vector (McGrew-Viega case 16) opened, HMAC-SHA-256 ids against RFC 4231 and SHA-256 without keys, the
 * scrypt KDF against RFC 7914's vector and its parameter bounds, sealed
 * objects bound to their base name and repository, sealed blobs bound to
 * their id and type, Padmé padding, secure memory, and nonces that are
 * never used twice (drawn in batches: not by a forked child either).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/crypto.h"
#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/format.h"

static const uint8_t repo_a[16] = "repository-A-id";
static const uint8_t repo_b[16] = "repository-B-id";

static bkr_crypto *keys(const uint8_t *repo, uint8_t fill)
{
	uint8_t enc[32], mac[32];
	bkr_crypto *c = NULL;
	memset(enc, fill, sizeof(enc));
	memset(mac, fill ^ 0x55, sizeof(mac));
	assert_int_equal(bkr_crypto_new(&c, enc, mac, repo), 0);
	return c;
}

static void test_aead_roundtrip_and_tamper(void **state)
{
	uint8_t key[32], other[32], pt[100], a[128], b[128], out[128];
	const char ad[] = "associated";
	(void)state;
	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	assert_int_equal(bkr_aead_seal(key, ad, sizeof(ad), pt, sizeof(pt), a), 0);
	assert_int_equal(bkr_aead_seal(key, ad, sizeof(ad), pt, sizeof(pt), b), 0);
	/* fresh nonce: two seals of the same plaintext differ */
	assert_memory_not_equal(a, b, sizeof(pt) + BKR_CRYPTO_OVERHEAD);
	assert_memory_not_equal(a + BKR_CRYPTO_NONCE_SIZE, pt, sizeof(pt));
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), a, sizeof(pt) + BKR_CRYPTO_OVERHEAD, out, "x"), 0);
	assert_memory_equal(out, pt, sizeof(pt));
	/* every single bit flip is refused */
	for (size_t bit = 0; bit < 8 * (sizeof(pt) + BKR_CRYPTO_OVERHEAD); bit++) {
		memcpy(b, a, sizeof(b));
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), b, sizeof(pt) + BKR_CRYPTO_OVERHEAD, out, "x"),
				 BKR_ECORRUPT);
	}
	assert_non_null(strstr(bkr_error_message(), "authentication failed"));
	/* wrong key, wrong AD, truncated */
	assert_int_equal(bkr_aead_open(other, ad, sizeof(ad), a, sizeof(pt) + BKR_CRYPTO_OVERHEAD, out, "x"), BKR_ECORRUPT);
	assert_int_equal(bkr_aead_open(key, "other", 5, a, sizeof(pt) + BKR_CRYPTO_OVERHEAD, out, "x"), BKR_ECORRUPT);
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), a, sizeof(pt) + BKR_CRYPTO_OVERHEAD - 1, out, "x"), BKR_ECORRUPT);
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), a, 10, out, "x"), BKR_ECORRUPT);
	/* in place */
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), a, sizeof(pt) + BKR_CRYPTO_OVERHEAD,
				       a + BKR_CRYPTO_NONCE_SIZE, "x"), 0);
	assert_memory_equal(a + BKR_CRYPTO_NONCE_SIZE, pt, sizeof(pt));
	/* empty plaintext */
	assert_int_equal(bkr_aead_seal(key, NULL, 0, "", 0, a), 0);
	assert_int_equal(bkr_aead_open(key, NULL, 0, a, BKR_CRYPTO_OVERHEAD, out, "x"), 0);
}

/*
 * The sealed format against the published AES-256-GCM vector (McGrew and
 * Viega's test case 16: 96-bit IV, 20 bytes of AD; checked independently with
 * Python's cryptography): the key and the stored nonce are what the cipher
 * uses, so repositories sealed by earlier builds still open.  In one thread a
 * good open, a tampered one, the good one again, then one with the AD of
 * another: no state from one operation reaches the next.
 */
static void test_aead_known_answer(void **state)
{
	static const uint8_t key[32] = {
		0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
		0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
	};
	static const uint8_t ad[20] = {
		0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed,
		0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2,
	};
	static const uint8_t pt[60] = {
		0xd9, 0x31, 0x32, 0x25, 0xf8, 0x84, 0x06, 0xe5, 0xa5, 0x59, 0x09, 0xc5, 0xaf, 0xf5, 0x26,
		0x9a, 0x86, 0xa7, 0xa9, 0x53, 0x15, 0x34, 0xf7, 0xda, 0x2e, 0x4c, 0x30, 0x3d, 0x8a, 0x31,
		0x8a, 0x72, 0x1c, 0x3c, 0x0c, 0x95, 0x95, 0x68, 0x09, 0x53, 0x2f, 0xcf, 0x0e, 0x24, 0x49,
		0xa6, 0xb5, 0x25, 0xb1, 0x6a, 0xed, 0xf5, 0xaa, 0x0d, 0xe6, 0x57, 0xba, 0x63, 0x7b, 0x39,
	};
	/* nonce ‖ ciphertext ‖ tag */
	static const uint8_t sealed[12 + 60 + 16] = {
		0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88,
		0x52, 0x2d, 0xc1, 0xf0, 0x99, 0x56, 0x7d, 0x07, 0xf4, 0x7f, 0x37, 0xa3, 0x2a, 0x84, 0x42,
		0x7d, 0x64, 0x3a, 0x8c, 0xdc, 0xbf, 0xe5, 0xc0, 0xc9, 0x75, 0x98, 0xa2, 0xbd, 0x25, 0x55,
		0xd1, 0xaa, 0x8c, 0xb0, 0x8e, 0x48, 0x59, 0x0d, 0xbb, 0x3d, 0xa7, 0xb0, 0x8b, 0x10, 0x56,
		0x82, 0x88, 0x38, 0xc5, 0xf6, 0x1e, 0x63, 0x93, 0xba, 0x7a, 0x0a, 0xbc, 0xc9, 0xf6, 0x62,
		0x76, 0xfc, 0x6e, 0xce, 0x0f, 0x4e, 0x17, 0x68, 0xcd, 0xdf, 0x88, 0x53, 0xbb, 0x2d, 0x55, 0x1b,
	};
	uint8_t bad[sizeof(sealed)], out[sizeof(pt)];
	(void)state;
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), sealed, sizeof(sealed), out, "kat"), 0);
	assert_memory_equal(out, pt, sizeof(pt));
	memcpy(bad, sealed, sizeof(bad));
	bad[12 + 30] ^= 0x01;
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), bad, sizeof(bad), out, "kat"), BKR_ECORRUPT);
	memset(out, 0, sizeof(out));
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad), sealed, sizeof(sealed), out, "kat"), 0);
	assert_memory_equal(out, pt, sizeof(pt));
	assert_int_equal(bkr_aead_open(key, ad, sizeof(ad) - 1, sealed, sizeof(sealed), out, "kat"), BKR_ECORRUPT);
}

static void test_hmac_ids(void **state)
{
	/* HMAC-SHA-256(key = 32 × 0x0b, "Hi There"), computed independently
	 * (Python's hmac module): RFC 4231's inputs with our 32-byte key */
	static const uint8_t want[32] = {
		0x19, 0x8a, 0x60, 0x7e, 0xb4, 0x4b, 0xfb, 0xc6, 0x99, 0x03, 0xa0, 0xf1, 0xcf, 0x2b, 0xbd, 0xc5,
		0xba, 0x0a, 0xa3, 0xf3, 0xd9, 0xae, 0x3c, 0x1c, 0x7a, 0x3b, 0x16, 0x96, 0xa0, 0xb6, 0x8c, 0xf7,
	};
	uint8_t mac[32], enc[32];
	bkr_crypto *c = NULL, *d;
	bkr_id id, id2, sha;
	(void)state;
	memset(mac, 0x0b, sizeof(mac));
	memset(enc, 1, sizeof(enc));
	assert_int_equal(bkr_crypto_new(&c, enc, mac, repo_a), 0);
	bkr_crypto_blob_id(c, "Hi There", 8, &id);
	assert_memory_equal(id.b, want, 32);
	bkr_crypto_blob_id(c, "Hi There", 8, &id2);
	assert_memory_equal(id.b, id2.b, 32); /* deterministic: dedup works */
	bkr_crypto_blob_id(NULL, "Hi There", 8, &id2);
	bkr_sha256("Hi There", 8, &sha);
	assert_memory_equal(id2.b, sha.b, 32); /* plain repositories keep SHA-256 */
	assert_memory_not_equal(id.b, sha.b, 32);
	d = keys(repo_a, 3);
	bkr_crypto_blob_id(d, "Hi There", 8, &id2);
	assert_memory_not_equal(id.b, id2.b, 32);
	assert_int_not_equal(bkr_crypto_chunker_seed(c), 0);
	assert_int_not_equal(bkr_crypto_chunker_seed(c), bkr_crypto_chunker_seed(d));
	bkr_crypto_free(c);
	bkr_crypto_free(d);
	bkr_crypto_free(NULL);
}

/* An id computed while the same bytes go into a file's content digest (the
 * backup's one pass, bkr_crypto_blob_id_digest): the known HMAC above, and
 * for lengths around SHA-256's block, keyed and plain, the id
 * bkr_crypto_blob_id gives and the digest of everything fed. */
static void test_blob_id_digest(void **state)
{
	static const uint8_t want[32] = {
		0x19, 0x8a, 0x60, 0x7e, 0xb4, 0x4b, 0xfb, 0xc6, 0x99, 0x03, 0xa0, 0xf1, 0xcf, 0x2b, 0xbd, 0xc5,
		0xba, 0x0a, 0xa3, 0xf3, 0xd9, 0xae, 0x3c, 0x1c, 0x7a, 0x3b, 0x16, 0x96, 0xa0, 0xb6, 0x8c, 0xf7,
	};
	static const size_t lens[] = { 0, 1, 55, 56, 63, 64, 65, 200, 4099 };
	uint8_t mac[32], enc[32], buf[4099 + 33];
	bkr_crypto *c = NULL;
	bkr_digest *dg = bkr_digest_new(BKR_DIGEST_PLAIN);
	bkr_id id, id2, dig, sha;
	(void)state;
	memset(mac, 0x0b, sizeof(mac));
	memset(enc, 1, sizeof(enc));
	assert_non_null(dg);
	assert_int_equal(bkr_crypto_new(&c, enc, mac, repo_a), 0);
	bkr_crypto_blob_id_digest(c, dg, "Hi There", 8, &id);
	assert_memory_equal(id.b, want, 32);
	bkr_digest_final(dg, &dig);
	bkr_sha256("Hi There", 8, &sha);
	assert_memory_equal(dig.b, sha.b, 32);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 1);
	for (int keyed = 0; keyed < 2; keyed++) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			/* 33 bytes in the digest before: its stream is mid-block */
			bkr_digest_update(dg, buf, 33);
			bkr_crypto_blob_id_digest(keyed ? c : NULL, dg, buf + 33, lens[i], &id);
			bkr_crypto_blob_id(keyed ? c : NULL, buf + 33, lens[i], &id2);
			assert_memory_equal(id.b, id2.b, 32);
			bkr_digest_final(dg, &dig);
			bkr_sha256(buf, 33 + lens[i], &sha);
			assert_memory_equal(dig.b, sha.b, 32);
		}
	}
	bkr_digest_free(dg);
	bkr_crypto_free(c);
}

static void test_kdf(void **state)
{
	/* scrypt("password", 32 zero bytes, N 1024, r 8, p 16), computed
	 * independently (Python's hashlib.scrypt): RFC 7914's second vector with
	 * our 32-byte salt */
	static const uint8_t want[32] = {
		0x2a, 0x5b, 0xf5, 0x7e, 0xdb, 0x5c, 0x2e, 0xb1, 0xcb, 0xeb, 0x28, 0x7b, 0x85, 0x13, 0x98, 0xc5,
		0xc7, 0x00, 0x46, 0x6b, 0xb1, 0x59, 0x03, 0xd4, 0x58, 0x32, 0xd9, 0x22, 0x48, 0xe5, 0x7e, 0xdb,
	};
	bkr_kdf_params p = { .n = 1024, .r = 8, .p = 16 };
	uint8_t out[32], out2[32];
	(void)state;
	memset(p.salt, 0, sizeof(p.salt));
	assert_int_equal(bkr_kdf_derive(&p, "password", 8, out), 0);
	assert_memory_equal(out, want, 32);
	assert_int_equal(bkr_kdf_derive(&p, "password", 8, out2), 0);
	assert_memory_equal(out, out2, 32);
	assert_int_equal(bkr_kdf_derive(&p, "passwore", 8, out2), 0);
	assert_memory_not_equal(out, out2, 32);
	p.salt[31] = 1;
	assert_int_equal(bkr_kdf_derive(&p, "password", 8, out2), 0);
	assert_memory_not_equal(out, out2, 32);
	/* bounds: hostile parameters are refused before any work */
	p.n = 1000;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.n = 1ull << 23;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	assert_int_equal(bkr_kdf_derive(&p, "x", 1, out), BKR_ECORRUPT);
	p.n = 1u << 22;
	p.r = 32; /* 16 GiB */
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.n = 1024;
	p.r = 0;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.r = 8;
	p.p = 17;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.p = 1;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	/* the work N*r*p: at most 16 times the default's (2^15 * 8 * 1): p counts */
	p.n = 1u << 16;
	p.p = 16; /* 64 MiB, but 32 times the default's work */
	assert_int_equal(bkr_kdf_params_check(&p, "keys/k.json"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "keys/k.json: scrypt N 65536 r 8 p 16"));
	assert_int_equal(bkr_kdf_derive(&p, "x", 1, out), BKR_ECORRUPT);
	p.p = 8; /* 16 times: the bound */
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	p.n = 1u << 21; /* r 2: N below 2^32, scrypt's rule */
	p.r = 2;
	p.p = 2;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.p = 1;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	p.n = 1u << 17; /* an earlier release's keys */
	p.r = 8;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	/* scrypt's rule N < 2^(16 r), which OpenSSL enforces: N 2^17 r 1 is
	 * inside every bound above, yet no derivation can succeed */
	p.r = 1;
	assert_int_equal(bkr_kdf_params_check(&p, "keys/k.json"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "keys/k.json: scrypt N 131072 r 1"));
	p.n = 1u << 16;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), BKR_ECORRUPT);
	p.n = 1u << 15;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	assert_int_equal(bkr_kdf_derive(&p, "x", 1, out), 0);
	p.n = 1u << 21;
	p.r = 2;
	assert_int_equal(bkr_kdf_params_check(&p, "k"), 0);
	p.n = 1u << 17;
	p.r = 8;
	/* defaults: N 2^15 r 8 p 1 (docs/security.md) and a fresh salt each time (BKR_TEST_KDF_N unset) */
	unsetenv("BKR_TEST_KDF_N");
	{
		bkr_kdf_params a, b;
		assert_int_equal(bkr_kdf_params_new(&a), 0);
		assert_int_equal(bkr_kdf_params_new(&b), 0);
		assert_int_equal(a.n, 1u << 15);
		assert_int_equal(a.r, 8);
		assert_int_equal(a.p, 1);
		assert_memory_not_equal(a.salt, b.salt, sizeof(a.salt));
		assert_int_equal(bkr_kdf_params_check(&a, "k"), 0);
	}
}

static void test_sealed_objects(void **state)
{
	bkr_crypto *a = keys(repo_a, 1), *b = keys(repo_b, 1), *k2 = keys(repo_a, 2);
	const char text[] = "{\"backup_id\":\"backup_x\"}";
	uint8_t *s = NULL, *o = NULL;
	size_t slen, olen;
	(void)state;
	assert_int_equal(bkr_crypto_seal_object(a, "backups/backup_x.json", text, strlen(text), &s, &slen), 0);
	assert_int_equal(slen, strlen(text) + BKR_SEALED_OVERHEAD);
	assert_memory_equal(s, BKR_SEALED_MAGIC, 8);
	assert_null(memmem(s, slen, "backup_x", 8));
	/* opens under its base name in any folder (trash) */
	assert_int_equal(bkr_crypto_open_object(a, "trash/backup_x.json", s, slen, &o, &olen, "t"), 0);
	assert_int_equal(olen, strlen(text));
	assert_string_equal((char *)o, text);
	free(o);
	/* another name, another repository, other keys, truncated, plain */
	assert_int_equal(bkr_crypto_open_object(a, "backups/backup_y.json", s, slen, &o, &olen, "t"), BKR_ECORRUPT);
	assert_int_equal(bkr_crypto_open_object(b, "backups/backup_x.json", s, slen, &o, &olen, "t"), BKR_ECORRUPT);
	assert_int_equal(bkr_crypto_open_object(k2, "backups/backup_x.json", s, slen, &o, &olen, "t"), BKR_ECORRUPT);
	assert_int_equal(bkr_crypto_open_object(a, "backups/backup_x.json", s, slen - 1, &o, &olen, "t"), BKR_ECORRUPT);
	assert_int_equal(bkr_crypto_open_object(a, "backups/backup_x.json", (const uint8_t *)text, strlen(text), &o,
						&olen, "t"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "not a sealed object"));
	assert_null(o);
	free(s);
	/* which objects are sealed */
	assert_true(bkr_crypto_object_is_sealed("backups/x.json"));
	assert_true(bkr_crypto_object_is_sealed("index/abc.idx"));
	assert_true(bkr_crypto_object_is_sealed("trash/x.json"));
	assert_true(bkr_crypto_object_is_sealed("records/x.json"));
	assert_false(bkr_crypto_object_is_sealed("config.json"));
	assert_false(bkr_crypto_object_is_sealed("config.copy.json"));
	assert_false(bkr_crypto_object_is_sealed("keys/0123456789abcdef.json"));
	assert_false(bkr_crypto_object_is_sealed("locks/repo.lock"));
	assert_false(bkr_crypto_object_is_sealed("data/ab/ab.pack"));
	assert_false(bkr_crypto_object_is_sealed("trash/ab.pack"));
	bkr_crypto_free(a);
	bkr_crypto_free(b);
	bkr_crypto_free(k2);
}

static void test_sealed_blobs(void **state)
{
	bkr_crypto *a = keys(repo_a, 1), *b = keys(repo_b, 1);
	uint8_t data[5000], *s = NULL, *copy;
	const uint8_t *pl;
	uint32_t slen;
	size_t len;
	uint8_t codec;
	bkr_id id, other;
	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	bkr_crypto_blob_id(a, data, sizeof(data), &id);
	bkr_crypto_blob_id(a, data, 10, &other);
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, BKR_BLOB_FLAG_ZLIB, data, sizeof(data), &s, &slen), 0);
	assert_int_equal(slen, bkr_crypto_blob_sealed_len(sizeof(data)));
	assert_true(slen >= sizeof(data) + 8 + BKR_CRYPTO_OVERHEAD);
	copy = malloc(slen);
	memcpy(copy, s, slen);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, copy, slen, &pl, &len, &codec, "b"), 0);
	assert_int_equal(len, sizeof(data));
	assert_int_equal(codec, BKR_BLOB_FLAG_ZLIB);
	assert_memory_equal(pl, data, sizeof(data));
	for (size_t k = sizeof(data); k < bkr_crypto_blob_padded(sizeof(data)) - 8; k++)
		assert_int_equal(pl[k], 0); /* the padding is zeros */
	/* bound to id, type, repository; a flipped bit */
	memcpy(copy, s, slen);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &other, copy, slen, &pl, &len, &codec, "b"), BKR_ECORRUPT);
	memcpy(copy, s, slen);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_TREE, &id, copy, slen, &pl, &len, &codec, "b"), BKR_ECORRUPT);
	memcpy(copy, s, slen);
	assert_int_equal(bkr_crypto_open_blob(b, BKR_BLOB_DATA, &id, copy, slen, &pl, &len, &codec, "b"), BKR_ECORRUPT);
	memcpy(copy, s, slen);
	copy[slen / 2] ^= 1;
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, copy, slen, &pl, &len, &codec, "b"), BKR_ECORRUPT);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, copy, 20, &pl, &len, &codec, "b"), BKR_ECORRUPT);
	free(copy);
	free(s);
	/* a blob whose padding spans several pieces of zeros (sealed without a copy) */
	{
		size_t big = 1000001, pad = bkr_crypto_blob_padded(big);
		uint8_t *v = malloc(big);
		assert_non_null(v);
		for (size_t i = 0; i < big; i++)
			v[i] = (uint8_t)(i * 13 + 1);
		assert_true(pad - 8 - big > 4096);
		assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, 0, v, big, &s, &slen), 0);
		assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, s, slen, &pl, &len, &codec, "b"), 0);
		assert_int_equal(len, big);
		assert_memory_equal(pl, v, big);
		for (size_t k = big; k < pad - 8; k++)
			assert_int_equal(pl[k], 0);
		free(s);
		free(v);
	}
	/* empty blob */
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_TREE, &id, 0, "", 0, &s, &slen), 0);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_TREE, &id, s, slen, &pl, &len, &codec, "b"), 0);
	assert_int_equal(len, 0);
	assert_int_equal(codec, 0);
	free(s);
	/* the zstd bit travels inside the seal; two codec bits or an unknown one never */
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, BKR_BLOB_FLAG_ZSTD, data, sizeof(data), &s, &slen), 0);
	assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, s, slen, &pl, &len, &codec, "b"), 0);
	assert_int_equal(codec, BKR_BLOB_FLAG_ZSTD);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(pl, data, sizeof(data));
	free(s);
	s = NULL;
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD, data,
					      sizeof(data), &s, &slen), BKR_EINVAL);
	assert_null(s);
	{
		/* an inner header with both codec bits, sealed by hand: authentic, still refused */
		uint8_t ad[BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE + 1 + BKR_ID_SIZE];
		uint8_t pt[64] = { BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD, 0, 0, 0, 8 };
		uint8_t sealed[64 + BKR_CRYPTO_OVERHEAD];
		bkr_crypto_ad_prefix(ad, "bkrfs-blob-v1", bkr_crypto_repo_id(a));
		ad[BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE] = BKR_BLOB_DATA;
		memcpy(ad + BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE + 1, id.b, BKR_ID_SIZE);
		assert_int_equal(bkr_crypto_seal(a, ad, sizeof(ad), pt, sizeof(pt), sealed), 0);
		assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, sealed, sizeof(sealed), &pl, &len, &codec, "b"),
				 BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "inner header"));
		pt[0] = 0x08;
		assert_int_equal(bkr_crypto_seal(a, ad, sizeof(ad), pt, sizeof(pt), sealed), 0);
		assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, sealed, sizeof(sealed), &pl, &len, &codec, "b"),
				 BKR_ECORRUPT);
		pt[0] = BKR_BLOB_FLAG_ZSTD;
		assert_int_equal(bkr_crypto_seal(a, ad, sizeof(ad), pt, sizeof(pt), sealed), 0);
		assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, sealed, sizeof(sealed), &pl, &len, &codec, "b"), 0);
		assert_int_equal(codec, BKR_BLOB_FLAG_ZSTD);
		assert_int_equal(len, 8);
	}
	bkr_crypto_free(a);
	bkr_crypto_free(b);
}

/*
 * A blob sealed piece by piece (bkr_crypto_blob_sealer: how a pack's
 * staging windows get it, no buffer of its own): pieces of any size, the
 * nonce, the ciphertext and the tag split anywhere (1 byte, 11, 4095, ...),
 * make a blob that opens to the payload; the zstd bit and the padding are
 * inside; asking past its length is refused, and so is any call after that.
 */
static void test_blob_sealer_pieces(void **state)
{
	static const size_t pieces[] = { 1, 11, 4095, 5, 65536, 3, 17 };
	bkr_crypto *a = keys(repo_a, 1);
	size_t lens[] = { 0, 1, 100, 70000, 1000001 };
	(void)state;
	for (size_t l = 0; l < sizeof(lens) / sizeof(*lens); l++) {
		size_t len = lens[l], slen, off = 0, plen;
		uint8_t *v = malloc(len + 1), *out, codec;
		const uint8_t *pl;
		bkr_blob_sealer *s = NULL;
		bkr_id id;
		assert_non_null(v);
		for (size_t i = 0; i < len; i++)
			v[i] = (uint8_t)(i * 31 + l);
		bkr_crypto_blob_id(a, v, len, &id);
		assert_int_equal(bkr_crypto_blob_sealer_new(&s, a, BKR_BLOB_DATA, &id, BKR_BLOB_FLAG_ZSTD, v, len), 0);
		slen = bkr_crypto_blob_sealer_len(s);
		assert_int_equal(slen, bkr_crypto_blob_sealed_len(len));
		out = malloc(slen);
		assert_non_null(out);
		for (size_t k = 0; off < slen; k++) {
			size_t n = pieces[k % (sizeof(pieces) / sizeof(*pieces))];
			if (n > slen - off)
				n = slen - off;
			assert_int_equal(bkr_crypto_blob_sealer_fill(s, out + off, n), 0);
			off += n;
		}
		assert_int_equal(bkr_crypto_blob_sealer_fill(s, out, 1), BKR_EINVAL);
		assert_int_equal(bkr_crypto_blob_sealer_fill(s, out, 0), 0); /* nothing asked, nothing wrong */
		bkr_crypto_blob_sealer_free(s);
		assert_int_equal(bkr_crypto_open_blob(a, BKR_BLOB_DATA, &id, out, slen, &pl, &plen, &codec, "b"), 0);
		assert_int_equal(plen, len);
		assert_int_equal(codec, BKR_BLOB_FLAG_ZSTD);
		if (len)
			assert_memory_equal(pl, v, len);
		free(out);
		free(v);
	}
	/* more than the blob in one piece: refused; an unfinished sealer freed */
	{
		uint8_t buf[256];
		bkr_blob_sealer *s = NULL;
		bkr_id id;
		bkr_crypto_blob_id(a, "x", 1, &id);
		assert_int_equal(bkr_crypto_blob_sealer_new(&s, a, BKR_BLOB_TREE, &id, 0, "x", 1), 0);
		assert_true(bkr_crypto_blob_sealer_len(s) < sizeof(buf));
		assert_int_equal(bkr_crypto_blob_sealer_fill(s, buf, sizeof(buf)), BKR_EINVAL);
		bkr_crypto_blob_sealer_free(s); /* the cipher's state freed too (valgrind) */
		s = NULL;
		assert_int_equal(bkr_crypto_blob_sealer_new(&s, a, BKR_BLOB_TREE, &id,
							    BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD, "x", 1),
				 BKR_EINVAL);
		assert_null(s);
		bkr_crypto_blob_sealer_free(NULL);
	}
	bkr_crypto_free(a);
}

/* a raw payload opened straight into the caller's buffer; anything else in place */
static void test_sealed_blob_to(void **state)
{
	bkr_crypto *a = keys(repo_a, 1);
	size_t big = 300007, len;
	uint8_t *v = malloc(big), *dst = malloc(big + 1), *s = NULL, *copy;
	const uint8_t *pl;
	uint8_t codec;
	uint32_t slen;
	bkr_id id;
	(void)state;
	assert_non_null(v);
	assert_non_null(dst);
	for (size_t i = 0; i < big; i++)
		v[i] = (uint8_t)(i * 31 + 7);
	bkr_crypto_blob_id(a, v, big, &id);
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, 0, v, big, &s, &slen), 0);
	copy = malloc(slen);
	assert_non_null(copy);
	/* raw, the expected length: into dst */
	memcpy(copy, s, slen);
	memset(dst, 0x55, big);
	assert_int_equal(bkr_crypto_open_blob_to(a, BKR_BLOB_DATA, &id, copy, slen, dst, big, &pl, &len, &codec, "b"), 0);
	assert_ptr_equal(pl, dst);
	assert_int_equal(len, big);
	assert_int_equal(codec, 0);
	assert_memory_equal(dst, v, big);
	/* another length: in place, dst untouched */
	memcpy(copy, s, slen);
	memset(dst, 0x55, big + 1);
	assert_int_equal(bkr_crypto_open_blob_to(a, BKR_BLOB_DATA, &id, copy, slen, dst, big + 1, &pl, &len, &codec, "b"),
			 0);
	assert_ptr_equal(pl, copy + BKR_CRYPTO_NONCE_SIZE + BKR_SEALED_BLOB_HEADER);
	assert_memory_equal(pl, v, big);
	for (size_t i = 0; i < big + 1; i++)
		assert_int_equal(dst[i], 0x55);
	/* a flipped bit in the payload, in the padding, in the tag: refused, dst wiped */
	{
		size_t at[] = { BKR_CRYPTO_NONCE_SIZE + BKR_SEALED_BLOB_HEADER + 1000, slen - BKR_CRYPTO_TAG_SIZE - 1,
				slen - 1 };
		for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
			memcpy(copy, s, slen);
			copy[at[k]] ^= 0x10;
			memset(dst, 0x55, big);
			assert_int_equal(bkr_crypto_open_blob_to(a, BKR_BLOB_DATA, &id, copy, slen, dst, big, &pl, &len,
								 &codec, "b"), BKR_ECORRUPT);
			assert_non_null(strstr(bkr_error_message(), "authentication failed"));
			assert_null(pl);
			for (size_t i = 0; i < big; i++)
				assert_int_equal(dst[i], 0);
		}
	}
	free(s);
	/* compressed: in place whatever dst is */
	assert_int_equal(bkr_crypto_seal_blob(a, BKR_BLOB_DATA, &id, BKR_BLOB_FLAG_ZSTD, v, 5000, &s, &slen), 0);
	memset(dst, 0x55, 5000);
	assert_int_equal(bkr_crypto_open_blob_to(a, BKR_BLOB_DATA, &id, s, slen, dst, 5000, &pl, &len, &codec, "b"), 0);
	assert_int_equal(codec, BKR_BLOB_FLAG_ZSTD);
	assert_ptr_equal(pl, s + BKR_CRYPTO_NONCE_SIZE + BKR_SEALED_BLOB_HEADER);
	assert_memory_equal(pl, v, 5000);
	assert_int_equal(dst[0], 0x55);
	free(s);
	free(copy);
	free(dst);
	free(v);
	bkr_crypto_free(a);
}

static void test_padding(void **state)
{
	(void)state;
	assert_int_equal(bkr_crypto_blob_padded(0), 64);
	assert_int_equal(bkr_crypto_blob_padded(56), 64);
	for (size_t n = 0; n < (1u << 20); n = n * 3 / 2 + 1) {
		size_t p = bkr_crypto_blob_padded(n);
		assert_true(p >= n + 8);
		assert_true(p <= 64 || (double)p <= 1.12 * (double)(n + 8));
		assert_int_equal(bkr_crypto_blob_padded(p - 8), p); /* stable: the reader's check */
	}
	/* sizes collapse into classes: 1000 and 1010 look the same */
	assert_int_equal(bkr_crypto_blob_padded(1000), bkr_crypto_blob_padded(1010));
}

static void test_secure_memory(void **state)
{
	uint8_t *p;
	(void)state;
	assert_non_null(p = bkr_secure_alloc(100));
	for (int i = 0; i < 100; i++)
		assert_int_equal(p[i], 0);
	memset(p, 0xaa, 100);
	bkr_secure_free(p, 100);
	bkr_secure_free(NULL, 10);
}

static int nonce_cmp(const void *a, const void *b)
{
	return memcmp(a, b, BKR_CRYPTO_NONCE_SIZE);
}

/* The nonce of a fresh seal on this thread. */
static void seal_nonce(uint8_t nonce[BKR_CRYPTO_NONCE_SIZE])
{
	uint8_t key[32] = { 1 }, out[BKR_CRYPTO_OVERHEAD + 1];
	assert_int_equal(bkr_aead_seal(key, NULL, 0, "x", 1, out), 0);
	memcpy(nonce, out, BKR_CRYPTO_NONCE_SIZE);
}

/*
 * Nonces are drawn in batches (engine/crypto.c): many seals on one thread
 * never repeat one, and a forked child never uses the nonces its parent drew
 * before the fork (it would seal under the parent's next nonce: a GCM nonce
 * used twice under one key gives the key stream and the MAC key away).
 */
static void test_nonces_unique(void **state)
{
	enum { N = 1000 };
	uint8_t(*v)[BKR_CRYPTO_NONCE_SIZE] = calloc(N, BKR_CRYPTO_NONCE_SIZE);
	uint8_t parent[BKR_CRYPTO_NONCE_SIZE], child[BKR_CRYPTO_NONCE_SIZE];
	int fds[2], status = 0;
	pid_t pid;
	(void)state;

	assert_non_null(v);
	for (size_t i = 0; i < N; i++)
		seal_nonce(v[i]);
	qsort(v, N, BKR_CRYPTO_NONCE_SIZE, nonce_cmp);
	for (size_t i = 1; i < N; i++)
		assert_memory_not_equal(v[i - 1], v[i], BKR_CRYPTO_NONCE_SIZE);
	free(v);

	/* a batch drawn and partly used before the fork; the child's first
	 * nonce and the parent's next are different */
	seal_nonce(parent);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		seal_nonce(child);
		_exit(write(fds[1], child, sizeof(child)) == (ssize_t)sizeof(child) ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	seal_nonce(parent);
	assert_memory_not_equal(parent, child, BKR_CRYPTO_NONCE_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aead_roundtrip_and_tamper),
		cmocka_unit_test(test_aead_known_answer),
		cmocka_unit_test(test_hmac_ids),
		cmocka_unit_test(test_blob_id_digest),
		cmocka_unit_test(test_kdf),
		cmocka_unit_test(test_sealed_objects),
		cmocka_unit_test(test_sealed_blobs),
		cmocka_unit_test(test_sealed_blob_to),
		cmocka_unit_test(test_blob_sealer_pieces),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_secure_memory),
		cmocka_unit_test(test_nonces_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
