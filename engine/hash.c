/** @file
 * SHA-256 and random bytes through OpenSSL's EVP interface.
 */
#include "bkr/hash.h"
#include "bkr/error.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bkr_hash_ctx {
	EVP_MD_CTX *md;
};

/* SHA-256 fetched once and kept for the process's life: the legacy
 * EVP_sha256() is fetched again by every init (a lock and a provider lookup:
 * a quarter of a cold `ls -lR`'s daemon instructions went there, hashing
 * inode keys, and a per-file cost in a backup of many small files). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *bkr_sha256_md(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

void bkr_sha256(const void *data, size_t len, bkr_id *out)
{
	unsigned int n = 0;
	EVP_Digest(data, len, out->b, &n, bkr_sha256_md(), NULL);
}

bkr_hash_ctx *bkr_hash_new(void)
{
	bkr_hash_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	ctx->md = EVP_MD_CTX_new();
	if (!ctx->md) {
		free(ctx);
		return NULL;
	}
	bkr_hash_reset(ctx);
	return ctx;
}

void bkr_hash_reset(bkr_hash_ctx *ctx)
{
	EVP_DigestInit_ex(ctx->md, bkr_sha256_md(), NULL);
}

void bkr_hash_update(bkr_hash_ctx *ctx, const void *data, size_t len)
{
	EVP_DigestUpdate(ctx->md, data, len);
}

void bkr_hash_final(bkr_hash_ctx *ctx, bkr_id *out)
{
	unsigned int n = 0;
	EVP_DigestFinal_ex(ctx->md, out->b, &n);
	bkr_hash_reset(ctx);
}

void bkr_hash_free(bkr_hash_ctx *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

int bkr_hash_copy(bkr_hash_ctx *dst, const bkr_hash_ctx *src)
{
	if (EVP_MD_CTX_copy_ex(dst->md, src->md) != 1)
		return bkr_error_set(BKR_ERROR, "cannot copy a hash state");
	return 0;
}

int bkr_id_cmp(const bkr_id *a, const bkr_id *b)
{
	return memcmp(a->b, b->b, BKR_ID_SIZE);
}

bool bkr_id_is_zero(const bkr_id *id)
{
	static const bkr_id zero;
	return memcmp(id->b, zero.b, BKR_ID_SIZE) == 0;
}

void bkr_hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int bkr_hex_decode(void *out, size_t len, const char *hex)
{
	uint8_t *p = out;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]);
		int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return bkr_error_set(BKR_EINVAL, "invalid hex string '%.*s'",
					     (int)(2 * len), hex);
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[2 * len] != '\0')
		return bkr_error_set(BKR_EINVAL, "hex string too long: '%s'", hex);
	return 0;
}

void bkr_id_to_hex(const bkr_id *id, char out[BKR_ID_HEX])
{
	bkr_hex_encode(id->b, BKR_ID_SIZE, out);
}

int bkr_id_from_hex(bkr_id *out, const char *hex)
{
	if (strlen(hex) != 2 * BKR_ID_SIZE)
		return bkr_error_set(BKR_EINVAL, "not a 64-character hex id: '%s'", hex);
	return bkr_hex_decode(out->b, BKR_ID_SIZE, hex);
}

void bkr_pack_id_to_hex(const bkr_pack_id *id, char out[BKR_PACK_ID_HEX])
{
	bkr_hex_encode(id->b, BKR_PACK_ID_SIZE, out);
}

int bkr_pack_id_from_hex(bkr_pack_id *out, const char *hex)
{
	if (strlen(hex) != 2 * BKR_PACK_ID_SIZE)
		return bkr_error_set(BKR_EINVAL, "not a 32-character pack id: '%s'", hex);
	return bkr_hex_decode(out->b, BKR_PACK_ID_SIZE, hex);
}

int bkr_pack_id_cmp(const bkr_pack_id *a, const bkr_pack_id *b)
{
	return memcmp(a->b, b->b, BKR_PACK_ID_SIZE);
}

int bkr_random_bytes(void *out, size_t len)
{
	if (RAND_bytes(out, (int)len) != 1)
		return bkr_error_set(BKR_ERROR, "no random bytes from OpenSSL");
	return 0;
}
