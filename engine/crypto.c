/** @file
 * The cryptography of an encrypted repository (bkr/crypto.h): AES-256-GCM
 * through EVP_CIPHER, HMAC-SHA-256 ids keyed per id from the MAC key in
 * locked memory (no keyed state outlives one id; no per-call fetch), scrypt
 * through EVP_KDF, the sealed forms of objects and blobs, and locked,
 * never-dumped, wiped memory for the keys (docs/security.md "Keys in memory").
 */
#include "bkr/crypto.h"
#include "bkr/digest.h"
#include "array.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/io.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- memory for secrets -------------------------------------------------- */

static size_t page_round(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t ps = pg > 0 ? (size_t)pg : 4096;
	if (len == 0)
		len = 1;
	return len > SIZE_MAX - ps ? 0 : (len + ps - 1) / ps * ps;
}

/* The live blocks, for bkr_secure_relock after a fork (which keeps no lock). */
static struct secure_block {
	void *p;
	size_t n;
} *secure_blocks;
static size_t n_secure, cap_secure;
static pthread_mutex_t secure_lock = PTHREAD_MUTEX_INITIALIZER;

void *bkr_secure_alloc(size_t len)
{
	size_t n = page_round(len);
	long pg = sysconf(_SC_PAGESIZE);
	void *p = NULL;
	int err;

	if (!n || posix_memalign(&p, pg > 0 ? (size_t)pg : 4096, n) != 0)
		return NULL;
	pthread_mutex_lock(&secure_lock);
	if ((err = bkr_array_grow((void **)&secure_blocks, &cap_secure, n_secure, sizeof(*secure_blocks))) == 0)
		secure_blocks[n_secure++] = (struct secure_block){ p, n };
	pthread_mutex_unlock(&secure_lock);
	if (err < 0) {
		free(p);
		return NULL;
	}
	memset(p, 0, n);
	(void)mlock(p, n);                  /* best effort: RLIMIT_MEMLOCK may refuse */
#ifdef MADV_DONTDUMP
	(void)madvise(p, n, MADV_DONTDUMP);
#endif
	return p;
}

void bkr_secure_relock(void)
{
	pthread_mutex_lock(&secure_lock);
	for (size_t i = 0; i < n_secure; i++)
		(void)mlock(secure_blocks[i].p, secure_blocks[i].n);
	pthread_mutex_unlock(&secure_lock);
}

void bkr_secure_free(void *p, size_t len)
{
	size_t n;
	if (!p)
		return;
	n = page_round(len);
	pthread_mutex_lock(&secure_lock);
	for (size_t i = 0; i < n_secure; i++)
		if (secure_blocks[i].p == p) {
			secure_blocks[i] = secure_blocks[--n_secure];
			break;
		}
	pthread_mutex_unlock(&secure_lock);
	OPENSSL_cleanse(p, n);
#ifdef MADV_DODUMP
	(void)madvise(p, n, MADV_DODUMP);
#endif
	(void)munlock(p, n);
	free(p);
}

/* ---- AEAD ------------------------------------------------------------------ */

/* AES-256-GCM fetched once (the legacy EVP_aes_256_gcm() is fetched again by
 * every init: a lock and a lookup per blob); kept for the process's life.
 * SHA-256 likewise, in hash.c. */
static EVP_CIPHER *gcm_cipher;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void algorithms_fetch(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm(void)
{
	pthread_once(&fetch_once, algorithms_fetch);
	return gcm_cipher ? gcm_cipher : EVP_aes_256_gcm();
}

/* A piece of the plaintext (sealing) or ciphertext (opening). */
struct span {
	const uint8_t *p;  /* NULL: that many zero bytes */
	size_t len;
};

/* GCM's default IV length, which the one EVP_CipherInit_ex of aead_begin relies on */
_Static_assert(BKR_CRYPTO_NONCE_SIZE == 12, "AES-GCM nonces are GCM's default 96 bits");

/* One AES-256-GCM operation in progress (sealing or opening), fed piece by
 * piece: aead_begin, aead_update as often as needed, aead_end.  A fresh
 * context per operation (about 0.6 us: the key schedule and GHASH table),
 * freed and cleansed by aead_end: a context kept for the next blob would keep
 * a state as good as the key in ordinary memory (docs/security.md "Keys in
 * memory").  The cipher, key and nonce go in with one init (the nonce is
 * GCM's default 96 bits), not a second init and an IV-length ctrl. */
static int aead_begin(EVP_CIPHER_CTX **out, bool seal, const uint8_t *key, const uint8_t *nonce, const void *ad,
		      size_t adlen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int k = 0;

	*out = NULL;
	if (!ctx)
		return bkr_error_oom();
	if (adlen > INT32_MAX || EVP_CipherInit_ex(ctx, gcm(), NULL, key, nonce, seal) != 1 ||
	    (adlen && EVP_CipherUpdate(ctx, NULL, &k, ad, (int)adlen) != 1)) {
		EVP_CIPHER_CTX_free(ctx);
		return bkr_error_set(BKR_ERROR, "AES-GCM: could not set up the cipher");
	}
	*out = ctx;
	return 0;
}

/* @p len bytes of @p in (NULL: zeros) through the cipher into @p out (which
 * may be @p in, not partly overlap it) */
static bool aead_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out, size_t len)
{
	static const uint8_t zeros[4096];
	int k = 0;

	for (size_t done = 0; done < len;) {
		size_t step = in ? len - done : sizeof(zeros);
		if (step > len - done)
			step = len - done;
		if (step > (1u << 30))
			step = 1u << 30;
		if (EVP_CipherUpdate(ctx, out + done, &k, in ? in + done : zeros, (int)step) != 1)
			return false;
		done += step;
	}
	return true;
}

/* Finish (and free @p ctx): opening checks @p tag, sealing writes it. */
static bool aead_end(EVP_CIPHER_CTX *ctx, bool seal, uint8_t *tag)
{
	uint8_t last[16];
	int k = 0;
	bool ok = (seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BKR_CRYPTO_TAG_SIZE, tag) == 1) &&
		  EVP_CipherFinal_ex(ctx, last, &k) == 1 &&
		  (!seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BKR_CRYPTO_TAG_SIZE, tag) == 1);
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/*
 * AES-256-GCM over the concatenation of @p n spans into @p out (contiguous),
 * so a caller never copies its pieces together first.  Opening checks @p tag;
 * sealing writes it.
 */
static int aead(bool seal, const uint8_t *key, const uint8_t *nonce, const void *ad, size_t adlen,
		const struct span *in, size_t n, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx;
	size_t len = 0;
	bool ok;
	int err;

	for (size_t i = 0; i < n; i++)
		len += in[i].len;
	if (len > INT32_MAX || adlen > INT32_MAX)
		return bkr_error_set(BKR_EINVAL, "AES-GCM: %zu bytes is too much for one seal", len);
	if ((err = aead_begin(&ctx, seal, key, nonce, ad, adlen)) < 0)
		return err;
	len = 0;
	ok = true;
	for (size_t i = 0; ok && i < n; i++) {
		ok = aead_update(ctx, in[i].p, out + len, in[i].len);
		len += in[i].len;
	}
	ok = aead_end(ctx, seal, tag) && ok;
	if (!ok) {
		if (len)
			OPENSSL_cleanse(out, len);
		return seal ? bkr_error_set(BKR_ERROR, "AES-GCM: encryption failed") : BKR_ECORRUPT;
	}
	return 0;
}

/*
 * Nonces: random bytes from OpenSSL's generator like any others, taken
 * NONCE_BATCH at a time per thread.  A RAND_bytes call costs about 2.5 µs
 * whatever its length (the generator's fork check, lock and reseed test;
 * 0.05 µs a nonce in batches of 32), as much as sealing 8 KiB, and a backup
 * seals a blob per small file.  Each nonce is handed out once and wiped from
 * the batch.  A nonce is no secret (it is stored beside its ciphertext); what
 * matters is that none is used twice, so a forked child never uses what it
 * inherited: pthread_atfork's child handler moves the generation on, and a
 * batch of another generation is drawn again.
 */
#define NONCE_BATCH 32

static __thread struct {
	uint8_t b[NONCE_BATCH][BKR_CRYPTO_NONCE_SIZE];
	unsigned next; /* the next unused nonce (NONCE_BATCH: all used) */
	unsigned gen;  /* fork_gen when drawn (0: nothing drawn) */
} nonces;
static atomic_uint fork_gen = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void nonce_forked(void)
{
	atomic_fetch_add(&fork_gen, 1);
}

static void nonce_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, nonce_forked);
}

/* A fresh random nonce into @p out. */
static int nonce_next(uint8_t out[BKR_CRYPTO_NONCE_SIZE])
{
	unsigned gen;
	int err;

	pthread_once(&atfork_once, nonce_atfork);
	gen = atomic_load(&fork_gen);
	if (nonces.gen != gen || nonces.next >= NONCE_BATCH) {
		nonces.gen = 0;
		if ((err = bkr_random_bytes(nonces.b, sizeof(nonces.b))) < 0)
			return err;
		nonces.next = 0;
		nonces.gen = gen;
	}
	memcpy(out, nonces.b[nonces.next], BKR_CRYPTO_NONCE_SIZE);
	memset(nonces.b[nonces.next], 0, BKR_CRYPTO_NONCE_SIZE);
	nonces.next++;
	return 0;
}

/* Seal @p n spans under @p key: @p out gets nonce ‖ ciphertext ‖ tag. */
static int aead_seal_spans(const uint8_t *key, const void *ad, size_t adlen, const struct span *in, size_t n,
			   uint8_t *out)
{
	size_t len = 0;
	int err;
	for (size_t i = 0; i < n; i++)
		len += in[i].len;
	if ((err = nonce_next(out)) < 0)
		return err;
	return aead(true, key, out, ad, adlen, in, n, out + BKR_CRYPTO_NONCE_SIZE,
		    out + BKR_CRYPTO_NONCE_SIZE + len);
}

int bkr_aead_seal(const uint8_t key[BKR_CRYPTO_KEY_SIZE], const void *ad, size_t adlen,
		  const void *pt, size_t len, uint8_t *out)
{
	struct span in = { pt ? pt : (const uint8_t *)"", len };
	return aead_seal_spans(key, ad, adlen, &in, 1, out);
}

/* The one message of a tag that does not check, for @p what. */
static int auth_failed(const char *what)
{
	return bkr_error_set(BKR_ECORRUPT, "%s: authentication failed (damaged, altered, or not of this repository)",
			     what);
}

int bkr_aead_open(const uint8_t key[BKR_CRYPTO_KEY_SIZE], const void *ad, size_t adlen,
		  const uint8_t *in, size_t inlen, uint8_t *out, const char *what)
{
	uint8_t nonce[BKR_CRYPTO_NONCE_SIZE], tag[BKR_CRYPTO_TAG_SIZE];
	size_t len;
	int err;

	if (inlen < BKR_CRYPTO_OVERHEAD)
		return bkr_error_set(BKR_ECORRUPT, "%s: %zu bytes, too short to be sealed", what, inlen);
	len = inlen - BKR_CRYPTO_OVERHEAD;
	/* copied first: @p out may overlap @p in (in place) */
	memcpy(nonce, in, sizeof(nonce));
	memcpy(tag, in + BKR_CRYPTO_NONCE_SIZE + len, sizeof(tag));
	err = aead(false, key, nonce, ad, adlen, &(struct span){ in + BKR_CRYPTO_NONCE_SIZE, len }, 1, out, tag);
	if (err == BKR_ECORRUPT)
		return auth_failed(what);
	return err;
}

/* ---- key derivation ------------------------------------------------------------ */

int bkr_kdf_params_new(bkr_kdf_params *out)
{
	memset(out, 0, sizeof(*out));
	out->n = BKR_KDF_N_DEFAULT;
	out->r = BKR_KDF_R_DEFAULT;
	out->p = BKR_KDF_P_DEFAULT;
#if BKR_FAULT_INJECTION
	{
		/* test builds only: cheap keys for tests (the parameters are stored) */
		const char *t = getenv("BKR_TEST_KDF_N");
		char *end;
		unsigned long long v = t ? strtoull(t, &end, 10) : 0;
		if (t && *t && !*end && v)
			out->n = v;
	}
#endif
	return bkr_random_bytes(out->salt, sizeof(out->salt));
}

int bkr_kdf_params_check(const bkr_kdf_params *p, const char *what)
{
	if (p->n < (1u << 10) || p->n > (1u << 22) || (p->n & (p->n - 1)))
		return bkr_error_set(BKR_ECORRUPT, "%s: scrypt N %llu: expected a power of two from 1024 to 4194304",
				     what, (unsigned long long)p->n);
	if (p->r < 1 || p->r > 32)
		return bkr_error_set(BKR_ECORRUPT, "%s: scrypt r %u: expected 1..32", what, p->r);
	if (p->p < 1 || p->p > 16)
		return bkr_error_set(BKR_ECORRUPT, "%s: scrypt p %u: expected 1..16", what, p->p);
	/* scrypt's own rule (RFC 7914: N < 2^(128 r / 8)), which OpenSSL enforces */
	if (p->r < 4 && p->n >= 1ull << (16 * p->r))
		return bkr_error_set(BKR_ECORRUPT, "%s: scrypt N %llu r %u: scrypt needs N below 2^(16 r)", what,
				     (unsigned long long)p->n, p->r);
	if (p->n * p->r * 128 > BKR_KDF_MAXMEM)
		return bkr_error_set(BKR_ECORRUPT, "%s: scrypt N %llu r %u would need more than %llu bytes",
				     what, (unsigned long long)p->n, p->r, (unsigned long long)BKR_KDF_MAXMEM);
	/* p multiplies the time, not the memory: within the bounds above a
	 * hostile key file could ask for 512 times the default's work (N*r 2^23,
	 * p 16: over a minute) from every command */
	if (p->n * p->r * p->p > BKR_KDF_MAXWORK)
		return bkr_error_set(BKR_ECORRUPT,
				     "%s: scrypt N %llu r %u p %u: N*r*p above %llu (16 times the default's work)",
				     what, (unsigned long long)p->n, p->r, p->p, (unsigned long long)BKR_KDF_MAXWORK);
	return 0;
}

int bkr_kdf_derive(const bkr_kdf_params *p, const char *pass, size_t passlen,
		   uint8_t out[BKR_CRYPTO_KEY_SIZE])
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	uint64_t n = p->n, maxmem = BKR_KDF_MAXMEM + (1u << 20);
	uint32_t r = p->r, pp = p->p;
	OSSL_PARAM params[7];
	int err = 0;

	if ((err = bkr_kdf_params_check(p, "scrypt")) < 0)
		return err;
	/* tests: a derivation that fails (as OpenSSL's may) */
	if ((err = bkr_io_fault("kdf")) < 0)
		return err;
	if (!(kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) || !(ctx = EVP_KDF_CTX_new(kdf))) {
		err = bkr_error_set(BKR_ERROR, "scrypt: not available in this OpenSSL");
		goto done;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(pass ? pass : ""), passlen);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)p->salt, sizeof(p->salt));
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	params[6] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, BKR_CRYPTO_KEY_SIZE, params) != 1) {
		OPENSSL_cleanse(out, BKR_CRYPTO_KEY_SIZE);
		err = bkr_error_set(BKR_ERROR, "scrypt: derivation failed (N %llu, r %u, p %u)",
				    (unsigned long long)n, r, pp);
	}
done:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return err;
}

/* ---- master keys ------------------------------------------------------------------ */

struct bkr_crypto {
	uint8_t enc[BKR_CRYPTO_KEY_SIZE];
	uint8_t mac[BKR_CRYPTO_KEY_SIZE];
	uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE];
	uint64_t chunker_seed;
};

/* The 64-byte block key ^ @p pad of HMAC-SHA-256 (the caller cleanses it). */
static void keyed_block(uint8_t block[64], const uint8_t *key, uint8_t pad)
{
	for (size_t i = 0; i < 64; i++)
		block[i] = (uint8_t)((i < BKR_CRYPTO_KEY_SIZE ? key[i] : 0) ^ pad);
}

/*
 * Start @p md as SHA-256 that has absorbed the 64-byte block key ^ @p pad.
 * The keyed state is as good as the MAC key, so it is made per id and freed
 * with @p md (EVP_MD_CTX_free cleanses it), never kept beside the keys in
 * OpenSSL's ordinary heap, where core dumps reach.
 */
static bool keyed_start(EVP_MD_CTX *md, const uint8_t *key, uint8_t pad)
{
	uint8_t block[64];
	bool ok;
	keyed_block(block, key, pad);
	ok = EVP_DigestInit_ex(md, bkr_sha256_md(), NULL) == 1 && EVP_DigestUpdate(md, block, sizeof(block)) == 1;
	OPENSSL_cleanse(block, sizeof(block));
	return ok;
}

int bkr_crypto_new(bkr_crypto **out, const uint8_t enc[BKR_CRYPTO_KEY_SIZE],
		   const uint8_t mac[BKR_CRYPTO_KEY_SIZE], const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE])
{
	static const char label[] = "bkrfs chunker seed";
	bkr_crypto *c;
	bkr_id h;

	*out = NULL;
	if (!(c = bkr_secure_alloc(sizeof(*c))))
		return bkr_error_oom();
	memcpy(c->enc, enc, sizeof(c->enc));
	memcpy(c->mac, mac, sizeof(c->mac));
	memcpy(c->repo_id, repo_id, sizeof(c->repo_id));
	bkr_crypto_blob_id(c, label, sizeof(label) - 1, &h);
	c->chunker_seed = bkr_get_u64(h.b) | (1ull << 63);
	OPENSSL_cleanse(&h, sizeof(h));
	*out = c;
	return 0;
}

void bkr_crypto_free(bkr_crypto *c)
{
	if (!c)
		return;
	bkr_secure_free(c, sizeof(*c));
}

const uint8_t *bkr_crypto_repo_id(const bkr_crypto *c)
{
	return c->repo_id;
}

const uint8_t *bkr_crypto_enc_key(const bkr_crypto *c)
{
	return c->enc;
}

const uint8_t *bkr_crypto_mac_key(const bkr_crypto *c)
{
	return c->mac;
}

uint64_t bkr_crypto_chunker_seed(const bkr_crypto *c)
{
	return c->chunker_seed;
}

void bkr_crypto_blob_id(const bkr_crypto *c, const void *data, size_t len, bkr_id *out)
{
	EVP_MD_CTX *md;
	unsigned int n = 0;
	bkr_id inner;

	if (!c) {
		bkr_sha256(data, len, out);
		return;
	}
	/* HMAC = H(K^opad ‖ H(K^ipad ‖ m)) */
	if (!(md = EVP_MD_CTX_new()) || !keyed_start(md, c->mac, 0x36) || EVP_DigestUpdate(md, data, len) != 1 ||
	    EVP_DigestFinal_ex(md, inner.b, &n) != 1 || !keyed_start(md, c->mac, 0x5c) ||
	    EVP_DigestUpdate(md, inner.b, sizeof(inner.b)) != 1 || EVP_DigestFinal_ex(md, out->b, &n) != 1) {
		/* only out of memory: an id no blob has, so the write or read fails its check */
		memset(out->b, 0xff, sizeof(out->b));
	}
	EVP_MD_CTX_free(md);
}

void bkr_crypto_blob_id_start(const bkr_crypto *c, bkr_hash_ctx *h)
{
	uint8_t block[64];

	/* HMAC = H(K^opad ‖ H(K^ipad ‖ m)), as bkr_crypto_blob_id: the inner
	 * hash's key block.  The keyed state lives in @p h, which
	 * bkr_hash_final resets and bkr_hash_free cleanses. */
	bkr_hash_reset(h);
	if (c) {
		keyed_block(block, c->mac, 0x36);
		bkr_hash_update(h, block, sizeof(block));
		OPENSSL_cleanse(block, sizeof(block));
	}
}

void bkr_crypto_blob_id_end(const bkr_crypto *c, bkr_hash_ctx *h, bkr_id *out)
{
	uint8_t block[64];
	bkr_id inner;

	bkr_hash_final(h, c ? &inner : out);
	if (c) {
		keyed_block(block, c->mac, 0x5c);
		bkr_hash_update(h, block, sizeof(block));
		bkr_hash_update(h, inner.b, sizeof(inner.b));
		bkr_hash_final(h, out);
		OPENSSL_cleanse(block, sizeof(block));
		OPENSSL_cleanse(&inner, sizeof(inner));
	}
}

void bkr_crypto_blob_id_digest(const bkr_crypto *c, bkr_digest *d, const void *data, size_t len, bkr_id *out)
{
	bkr_hash_ctx *h = bkr_hash_new();

	if (!h) {
		bkr_digest_update(d, data, len);
		bkr_crypto_blob_id(c, data, len, out);
		return;
	}
	/* m also into d */
	bkr_crypto_blob_id_start(c, h);
	bkr_digest_update2(d, h, data, len);
	bkr_crypto_blob_id_end(c, h, out);
	bkr_hash_free(h);
}

void bkr_crypto_ad_prefix(uint8_t out[BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE],
			  const char *label, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE])
{
	size_t n = strlen(label);
	memset(out, 0, BKR_CRYPTO_LABEL_SIZE);
	memcpy(out, label, n < BKR_CRYPTO_LABEL_SIZE ? n : BKR_CRYPTO_LABEL_SIZE);
	memcpy(out + BKR_CRYPTO_LABEL_SIZE, repo_id, BKR_CRYPTO_REPO_ID_SIZE);
}

int bkr_crypto_seal(const bkr_crypto *c, const void *ad, size_t adlen,
		    const void *pt, size_t len, uint8_t *out)
{
	return bkr_aead_seal(c->enc, ad, adlen, pt, len, out);
}

int bkr_crypto_open(const bkr_crypto *c, const void *ad, size_t adlen,
		    const uint8_t *in, size_t inlen, uint8_t *out, const char *what)
{
	return bkr_aead_open(c->enc, ad, adlen, in, inlen, out, what);
}

/* ---- sealed objects ------------------------------------------------------------------ */

#define PREFIX_SIZE (BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE)

static const char *base_name(const char *name)
{
	const char *s = strrchr(name, '/');
	return s ? s + 1 : name;
}

bool bkr_crypto_object_is_sealed(const char *name)
{
	const char *base = base_name(name);
	size_t n = strlen(base);
	if (!strcmp(name, "config.json") || !strcmp(name, "config.copy.json") || !strncmp(name, "keys/", 5) || !strncmp(name, "locks/", 6) ||
	    !strncmp(name, "data/", 5) || !strncmp(name, "tree/", 5))
		return false;
	return !(n > 5 && !strcmp(base + n - 5, ".pack"));
}

/* AD of object @p name: malloc'd. */
static int object_ad(const bkr_crypto *c, const char *name, uint8_t **ad, size_t *adlen)
{
	const char *base = base_name(name);
	size_t n = strlen(base);
	if (!(*ad = malloc(PREFIX_SIZE + n)))
		return bkr_error_oom();
	bkr_crypto_ad_prefix(*ad, "bkrfs-object-v1", c->repo_id);
	memcpy(*ad + PREFIX_SIZE, base, n);
	*adlen = PREFIX_SIZE + n;
	return 0;
}

int bkr_crypto_seal_object(const bkr_crypto *c, const char *name, const void *pt, size_t len,
			   uint8_t **out, size_t *outlen)
{
	uint8_t *ad = NULL, *buf = NULL;
	size_t adlen = 0;
	int err;

	*out = NULL;
	*outlen = 0;
	if (len > SIZE_MAX - BKR_SEALED_OVERHEAD)
		return bkr_error_set(BKR_EINVAL, "%s: too large to seal", name);
	if ((err = object_ad(c, name, &ad, &adlen)) < 0)
		return err;
	if (!(buf = malloc(len + BKR_SEALED_OVERHEAD))) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(buf, BKR_SEALED_MAGIC, BKR_SEALED_MAGIC_SIZE);
	if ((err = bkr_crypto_seal(c, ad, adlen, pt, len, buf + BKR_SEALED_MAGIC_SIZE)) < 0)
		goto done;
	*out = buf;
	*outlen = len + BKR_SEALED_OVERHEAD;
	buf = NULL;
done:
	free(buf);
	free(ad);
	return err;
}

int bkr_crypto_open_object(const bkr_crypto *c, const char *name, const uint8_t *in, size_t len,
			   uint8_t **out, size_t *outlen, const char *what)
{
	uint8_t *ad = NULL, *buf = NULL;
	size_t adlen = 0, n;
	int err;

	*out = NULL;
	*outlen = 0;
	if (len < BKR_SEALED_OVERHEAD || memcmp(in, BKR_SEALED_MAGIC, BKR_SEALED_MAGIC_SIZE) != 0)
		return bkr_error_set(BKR_ECORRUPT, "%s: not a sealed object of an encrypted repository%s",
				     what, len < BKR_SEALED_OVERHEAD ? " (truncated)" : "");
	n = len - BKR_SEALED_OVERHEAD;
	if ((err = object_ad(c, name, &ad, &adlen)) < 0)
		return err;
	if (!(buf = malloc(n + 1))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_crypto_open(c, ad, adlen, in + BKR_SEALED_MAGIC_SIZE, len - BKR_SEALED_MAGIC_SIZE,
				   buf, what)) < 0)
		goto done;
	buf[n] = 0;
	*out = buf;
	*outlen = n;
	buf = NULL;
done:
	free(buf);
	free(ad);
	return err;
}

/* ---- sealed blobs ------------------------------------------------------------------ */

size_t bkr_crypto_blob_padded(size_t len)
{
	size_t n = len + BKR_SEALED_BLOB_HEADER, mask;
	int e, s;

	if (n < BKR_SEALED_BLOB_MIN)
		n = BKR_SEALED_BLOB_MIN;
	/* Padmé: keep the top S+1 bits of n, S = floor(log2 E) + 1 */
	e = 63 - __builtin_clzll((unsigned long long)n);
	s = 31 - __builtin_clz((unsigned)e) + 1;
	if (e - s <= 0)
		return n;
	mask = ((size_t)1 << (e - s)) - 1;
	return (n + mask) & ~mask;
}

size_t bkr_crypto_blob_sealed_len(size_t len)
{
	return bkr_crypto_blob_padded(len) + BKR_CRYPTO_OVERHEAD;
}

static void blob_ad(uint8_t ad[PREFIX_SIZE + 1 + BKR_ID_SIZE], const bkr_crypto *c, uint8_t type, const bkr_id *id)
{
	bkr_crypto_ad_prefix(ad, "bkrfs-blob-v1", c->repo_id);
	ad[PREFIX_SIZE] = type;
	memcpy(ad + PREFIX_SIZE + 1, id->b, BKR_ID_SIZE);
}

/* A blob being sealed piece by piece: nonce ‖ AES-GCM(inner header ‖ payload
 * ‖ zero padding) ‖ tag, produced in order into whatever pieces the caller
 * has room in (a pack's staging windows: no buffer of its own, no copy). */
struct bkr_blob_sealer {
	EVP_CIPHER_CTX *ctx; /* NULL once the tag is made (or on failure) */
	uint8_t nonce[BKR_CRYPTO_NONCE_SIZE];
	uint8_t head[BKR_SEALED_BLOB_HEADER];
	uint8_t tag[BKR_CRYPTO_TAG_SIZE];
	struct span in[3];     /* head, payload, padding (NULL: zeros) */
	size_t span, span_off; /* the next plaintext byte */
	size_t pos, len;       /* bytes produced, of the sealed length */
	bool failed;
};

int bkr_crypto_blob_sealer_new(bkr_blob_sealer **out, const bkr_crypto *c, uint8_t type, const bkr_id *id,
			       uint8_t codec, const void *payload, size_t len)
{
	uint8_t ad[PREFIX_SIZE + 1 + BKR_ID_SIZE];
	bkr_blob_sealer *s;
	size_t padded;
	int err;

	*out = NULL;
	if (len > BKR_BLOB_MAX)
		return bkr_error_set(BKR_EINVAL, "blob of %zu bytes exceeds the %u-byte limit", len, BKR_BLOB_MAX);
	if (codec != 0 && codec != BKR_BLOB_FLAG_ZLIB && codec != BKR_BLOB_FLAG_ZSTD)
		return bkr_error_set(BKR_EINVAL, "sealed blob: codec flags 0x%02x", codec);
	if (!(s = calloc(1, sizeof(*s))))
		return bkr_error_oom();
	padded = bkr_crypto_blob_padded(len);
	s->head[0] = codec;
	bkr_put_u32(s->head + 4, (uint32_t)len);
	s->in[0] = (struct span){ s->head, sizeof(s->head) };
	s->in[1] = (struct span){ payload, len };
	s->in[2] = (struct span){ NULL, padded - sizeof(s->head) - len };
	s->len = padded + BKR_CRYPTO_OVERHEAD;
	blob_ad(ad, c, type, id);
	if ((err = nonce_next(s->nonce)) < 0 || (err = aead_begin(&s->ctx, true, c->enc, s->nonce, ad, sizeof(ad))) < 0) {
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

size_t bkr_crypto_blob_sealer_len(const bkr_blob_sealer *s)
{
	return s->len;
}

int bkr_crypto_blob_sealer_fill(bkr_blob_sealer *s, uint8_t *out, size_t n)
{
	const size_t ct_end = s->len - BKR_CRYPTO_TAG_SIZE;

	if (s->failed || n > s->len - s->pos)
		return bkr_error_set(BKR_EINVAL, "sealed blob: %zu bytes asked at %zu of %zu", n, s->pos, s->len);
	while (n > 0) {
		size_t step;
		if (s->pos < BKR_CRYPTO_NONCE_SIZE) {
			step = BKR_CRYPTO_NONCE_SIZE - s->pos < n ? BKR_CRYPTO_NONCE_SIZE - s->pos : n;
			memcpy(out, s->nonce + s->pos, step);
		} else if (s->pos < ct_end) {
			const struct span *sp = &s->in[s->span];
			step = sp->len - s->span_off < n ? sp->len - s->span_off : n;
			if (step && !aead_update(s->ctx, sp->p ? sp->p + s->span_off : NULL, out, step))
				goto failed;
			if ((s->span_off += step) == sp->len) {
				s->span++;
				s->span_off = 0;
			}
		} else {
			if (s->ctx) {
				bool ok = aead_end(s->ctx, true, s->tag);
				s->ctx = NULL;
				if (!ok)
					goto failed;
			}
			step = s->len - s->pos < n ? s->len - s->pos : n;
			memcpy(out, s->tag + (s->pos - ct_end), step);
		}
		s->pos += step;
		out += step;
		n -= step;
	}
	return 0;
failed:
	s->failed = true;
	return bkr_error_set(BKR_ERROR, "AES-GCM: encryption failed");
}

void bkr_crypto_blob_sealer_free(bkr_blob_sealer *s)
{
	if (!s)
		return;
	if (s->ctx)
		EVP_CIPHER_CTX_free(s->ctx); /* cleanses the key schedule */
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

int bkr_crypto_seal_blob(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t codec, const void *payload,
			 size_t len, uint8_t **out, uint32_t *outlen)
{
	bkr_blob_sealer *s = NULL;
	uint8_t *buf = NULL;
	int err;

	*out = NULL;
	*outlen = 0;
	if ((err = bkr_crypto_blob_sealer_new(&s, c, type, id, codec, payload, len)) < 0)
		return err;
	if (!(buf = malloc(s->len)))
		err = bkr_error_oom();
	else if ((err = bkr_crypto_blob_sealer_fill(s, buf, s->len)) == 0) {
		*out = buf;
		*outlen = (uint32_t)s->len;
		buf = NULL;
	}
	bkr_crypto_blob_sealer_free(s);
	free(buf);
	return err;
}

int bkr_crypto_open_blob_to(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t *in, size_t inlen,
			    uint8_t *dst, size_t dstlen, const uint8_t **payload, size_t *len, uint8_t *codec,
			    const char *what)
{
	uint8_t ad[PREFIX_SIZE + 1 + BKR_ID_SIZE], *pt = in + BKR_CRYPTO_NONCE_SIZE;
	EVP_CIPHER_CTX *ctx;
	size_t n, l, split = 0;
	bool ok;
	int err;

	*payload = NULL;
	*len = 0;
	*codec = 0;
	if (inlen < BKR_CRYPTO_OVERHEAD + BKR_SEALED_BLOB_MIN)
		return bkr_error_set(BKR_ECORRUPT, "%s: sealed blob of %zu bytes is too short", what, inlen);
	n = inlen - BKR_CRYPTO_OVERHEAD;
	if (n > INT32_MAX)
		return bkr_error_set(BKR_ECORRUPT, "%s: sealed blob of %zu bytes is too long", what, inlen);
	blob_ad(ad, c, type, id);
	/* nonce ‖ ciphertext ‖ tag: the plaintext goes in place, after the
	 * nonce (the tag, after it, is read only at the end) */
	if ((err = aead_begin(&ctx, false, c->enc, in, ad, sizeof(ad))) < 0)
		return err;
	ok = aead_update(ctx, pt, pt, BKR_SEALED_BLOB_HEADER);
	l = bkr_get_u32(pt + 4);
	/* what the inner header says is only trusted once the tag is checked:
	 * here it only picks where the payload goes */
	if (ok && dst && pt[0] == 0 && l == dstlen && l <= n - BKR_SEALED_BLOB_HEADER) {
		split = l;
		ok = aead_update(ctx, pt + BKR_SEALED_BLOB_HEADER, dst, l);
	}
	ok = ok && aead_update(ctx, pt + BKR_SEALED_BLOB_HEADER + split, pt + BKR_SEALED_BLOB_HEADER + split,
			       n - BKR_SEALED_BLOB_HEADER - split);
	ok = aead_end(ctx, false, in + BKR_CRYPTO_NONCE_SIZE + n) && ok;
	if (!ok) {
		OPENSSL_cleanse(pt, n);
		if (split)
			OPENSSL_cleanse(dst, split);
		return auth_failed(what);
	}
	/* one codec bit at most: zlib (any encrypted repository) or zstd */
	if ((pt[0] != 0 && pt[0] != BKR_BLOB_FLAG_ZLIB && pt[0] != BKR_BLOB_FLAG_ZSTD) || pt[1] || pt[2] || pt[3] || l > BKR_BLOB_MAX ||
	    bkr_crypto_blob_padded(l) != n)
		return bkr_error_set(BKR_ECORRUPT, "%s: sealed blob: bad inner header (flags 0x%02x, length %zu of %zu)",
				     what, pt[0], l, n);
	*payload = split ? dst : pt + BKR_SEALED_BLOB_HEADER;
	*len = l;
	*codec = pt[0];
	return 0;
}

int bkr_crypto_open_blob(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t *in, size_t inlen,
			 const uint8_t **payload, size_t *len, uint8_t *codec, const char *what)
{
	return bkr_crypto_open_blob_to(c, type, id, in, inlen, NULL, 0, payload, len, codec, what);
}
