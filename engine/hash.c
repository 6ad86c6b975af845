/** @file
 * SHA-256 and random bytes through OpenSSL's EVP interface; on x86 CPUs with
 * the SHA extensions, streaming hashes run on a block function of their own
 * (the same instructions OpenSSL uses) so that two hashes can share it:
 * bkr_hash_update2 feeds the same bytes to two streams in two lanes.
 * One lane waits on each SHA256RNDS2's latency; two interleaved lanes fill
 * the gap, about 1.8 times the bytes per second of one (bench/README.md,
 * "Issue 16, 2026-12-03 full-backup CPU").
 */
#include "bkr/hash.h"
#include "bkr/error.h"
#include "gear.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define SHANI_BUILD 1
#else
#define SHANI_BUILD 0
#endif

struct bkr_hash_ctx {
	EVP_MD_CTX *md; /**< without the SHA extensions */
	uint32_t h[8];  /**< with them: the state, */
	uint64_t n;     /**< the bytes fed, */
	size_t blen;    /**< and the partial block */
	uint8_t blk[64];
};

static const uint32_t sha256_iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

#if SHANI_BUILD
#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* The state a..h as the instructions want it: ABEF and CDGH. */
SHANI static inline void shani_load(const uint32_t h[8], __m128i *s0, __m128i *s1)
{
	__m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0xB1);
	__m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1B);
	*s0 = _mm_alignr_epi8(t, u, 8);
	*s1 = _mm_blend_epi16(u, t, 0xF0);
}

SHANI static inline void shani_store(uint32_t h[8], __m128i s0, __m128i s1)
{
	__m128i t = _mm_shuffle_epi32(s0, 0x1B), u = _mm_shuffle_epi32(s1, 0xB1);
	_mm_storeu_si128((__m128i *)h, _mm_blend_epi16(t, u, 0xF0));
	_mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(u, t, 8));
}

/* Message words 4i..4i+3 into w[i % 4] (from the three groups before it). */
#define SHANI_SCHED(w, i)                                                                                              \
	(w)[(i)&3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((w)[(i)&3], (w)[((i) + 1) & 3]),          \
							_mm_alignr_epi8((w)[((i) + 3) & 3], (w)[((i) + 2) & 3], 4)),   \
					  (w)[((i) + 3) & 3])
/* Rounds 4i..4i+3. */
#define SHANI_ROUNDS(s0, s1, w, i)                                                                                     \
	do {                                                                                                           \
		__m128i m_ = _mm_add_epi32((w)[(i)&3], _mm_loadu_si128((const __m128i *)&sha256_k[4 * (i)]));          \
		s1 = _mm_sha256rnds2_epu32(s1, s0, m_);                                                                \
		s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m_, 0x0E));                                       \
	} while (0)

/* @p nb 64-byte blocks into one state. */
SHANI static void shani_blocks(uint32_t h[8], const uint8_t *p, size_t nb)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i s0, s1;

	shani_load(h, &s0, &s1);
	for (; nb > 0; nb--, p += 64) {
		__m128i a = s0, b = s1, w[4];
		for (int i = 0; i < 4; i++)
			w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) {
			if (i >= 4)
				SHANI_SCHED(w, i);
			SHANI_ROUNDS(s0, s1, w, i);
		}
		s0 = _mm_add_epi32(s0, a);
		s1 = _mm_add_epi32(s1, b);
	}
	shani_store(h, s0, s1);
}

/* The message words of one block of each of two lanes (@p pa, @p pb), byte-swapped. */
SHANI static inline void shani_words2(const uint8_t *pa, const uint8_t *pb, __m128i wa[4], __m128i wb[4])
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);

	for (int i = 0; i < 4; i++) {
		wa[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 16 * i)), bswap);
		wb[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 16 * i)), bswap);
	}
}

/* A lane's state after a block: its rounds' result plus the state before it. */
SHANI static inline void shani_add2(__m128i *s0, __m128i *s1, __m128i before0, __m128i before1)
{
	*s0 = _mm_add_epi32(*s0, before0);
	*s1 = _mm_add_epi32(*s1, before1);
}

/* @p nb blocks into each of two states, interleaved: each lane's rounds
 * depend on the one before, the two lanes not on each other. */
SHANI static void shani_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t nb)
{
	__m128i a0, a1, b0, b1;

	shani_load(ha, &a0, &a1);
	shani_load(hb, &b0, &b1);
	for (; nb > 0; nb--, pa += 64, pb += 64) {
		__m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1, wa[4], wb[4];
		shani_words2(pa, pb, wa, wb);
#pragma GCC unroll 16
		for (int i = 0; i < 16; i++) {
			if (i >= 4) {
				SHANI_SCHED(wa, i);
				SHANI_SCHED(wb, i);
			}
			SHANI_ROUNDS(a0, a1, wa, i);
			SHANI_ROUNDS(b0, b1, wb, i);
		}
		shani_add2(&a0, &a1, sa0, sa1);
		shani_add2(&b0, &b1, sb0, sb1);
	}
	shani_store(ha, a0, a1);
	shani_store(hb, b0, b1);
}

/* shani_blocks2, with the chunker's gear roll over the 64 bytes at
 * @p pr + 64 i (bkr_gear_step4, @p mask; 0: no cut) woven into the rounds of
 * the blocks at pa + 64 i and pb + 64 i, four bytes per four rounds: the roll
 * runs in the shadow of the rounds' latency, and the bytes are read once.
 * A cut in step i puts the lanes back as they were before its blocks (the
 * exact place found again by bkr_gear_roll_any): returns the blocks hashed
 * into each lane, *cut the index in pr after the cut byte (0: none). */
SHANI static size_t shani_roll2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, const uint8_t *pr,
				size_t nb, const uint64_t *gear, uint64_t *fpp, uint64_t mask, size_t *cut)
{
	__m128i a0, a1, b0, b1;
	uint64_t fp = *fpp;
	size_t i;

	*cut = 0;
	shani_load(ha, &a0, &a1);
	shani_load(hb, &b0, &b1);
	for (i = 0; i < nb; i++, pa += 64, pb += 64, pr += 64) {
		__m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1, wa[4], wb[4];
		uint64_t fp0 = fp, f1, f2, f3, f4;
		bool hit = false;
		shani_words2(pa, pb, wa, wb);
#pragma GCC unroll 16
		for (int j = 0; j < 16; j++) {
			if (j >= 4) {
				SHANI_SCHED(wa, j);
				SHANI_SCHED(wb, j);
			}
			SHANI_ROUNDS(a0, a1, wa, j);
			SHANI_ROUNDS(b0, b1, wb, j);
			bkr_gear_step4(gear, pr + 4 * j, fp, &f1, &f2, &f3, &f4);
			hit |= !(f1 & mask) | !(f2 & mask) | !(f3 & mask) | !(f4 & mask);
			fp = f4;
		}
		if (__builtin_expect(hit && mask, 0)) {
			a0 = sa0;
			a1 = sa1;
			b0 = sb0;
			b1 = sb1;
			fp = fp0;
			*cut = 64 * i + bkr_gear_roll_any(gear, pr, 64, &fp, mask);
			break;
		}
		shani_add2(&a0, &a1, sa0, sa1);
		shani_add2(&b0, &b1, sb0, sb1);
	}
	shani_store(ha, a0, a1);
	shani_store(hb, b0, b1);
	*fpp = fp;
	return i;
}

static bool shani_ok;
static pthread_once_t shani_once = PTHREAD_ONCE_INIT;

/* SHA (CPUID.7.0:EBX bit 29), SSSE3 and SSE4.1 (CPUID.1:ECX bits 9, 19):
 * everything SHANI lets the compiler use.  No OSXSAVE/XGETBV check: these are
 * legacy-SSE instructions on the XMM registers, whose state every x86-64
 * kernel saves (only VEX/AVX state is the OS's to enable in XCR0).
 * BKR_SHANI=0 in the environment turns the path off (tests of the other). */
static void shani_detect(void)
{
	unsigned a, b, c, d;
	const char *env = getenv("BKR_SHANI");

	if (env && strcmp(env, "0") == 0)
		return;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
		return;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29)))
		return;
	shani_ok = true;
}

static bool shani(void)
{
	pthread_once(&shani_once, shani_detect);
	return shani_ok;
}
#else
static void shani_blocks(uint32_t h[8], const uint8_t *p, size_t nb)
{
	(void)h;
	(void)p;
	(void)nb;
}

static void shani_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, size_t nb)
{
	(void)ha;
	(void)pa;
	(void)hb;
	(void)pb;
	(void)nb;
}

static size_t shani_roll2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8], const uint8_t *pb, const uint8_t *pr,
			  size_t nb, const uint64_t *gear, uint64_t *fpp, uint64_t mask, size_t *cut)
{
	(void)ha;
	(void)pa;
	(void)hb;
	(void)pb;
	(void)pr;
	(void)nb;
	(void)gear;
	(void)fpp;
	(void)mask;
	*cut = 0;
	return 0;
}

static bool shani(void)
{
	return false;
}
#endif

/* The native state (no EVP context): feed @p len bytes. */
static void native_update(bkr_hash_ctx *ctx, const uint8_t *p, size_t len)
{
	ctx->n += len;
	if (ctx->blen) {
		size_t k = 64 - ctx->blen < len ? 64 - ctx->blen : len;
		memcpy(ctx->blk + ctx->blen, p, k);
		ctx->blen += k;
		p += k;
		len -= k;
		if (ctx->blen < 64)
			return;
		shani_blocks(ctx->h, ctx->blk, 1);
		ctx->blen = 0;
	}
	if (len >= 64)
		shani_blocks(ctx->h, p, len / 64);
	p += len - len % 64;
	len %= 64;
	memcpy(ctx->blk, p, len);
	ctx->blen = len;
}

static void native_final(bkr_hash_ctx *ctx, bkr_id *out)
{
	uint64_t bits = ctx->n * 8;

	ctx->blk[ctx->blen++] = 0x80;
	if (ctx->blen > 56) {
		memset(ctx->blk + ctx->blen, 0, 64 - ctx->blen);
		shani_blocks(ctx->h, ctx->blk, 1);
		ctx->blen = 0;
	}
	memset(ctx->blk + ctx->blen, 0, 56 - ctx->blen);
	for (int i = 0; i < 8; i++)
		ctx->blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	shani_blocks(ctx->h, ctx->blk, 1);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 4; j++)
			out->b[4 * i + j] = (uint8_t)(ctx->h[i] >> (24 - 8 * j));
}

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
	if (!shani() && !(ctx->md = EVP_MD_CTX_new())) {
		free(ctx);
		return NULL;
	}
	bkr_hash_reset(ctx);
	return ctx;
}

void bkr_hash_reset(bkr_hash_ctx *ctx)
{
	if (ctx->md) {
		EVP_DigestInit_ex(ctx->md, bkr_sha256_md(), NULL);
		return;
	}
	memcpy(ctx->h, sha256_iv, sizeof(ctx->h));
	ctx->n = 0;
	ctx->blen = 0;
}

void bkr_hash_update(bkr_hash_ctx *ctx, const void *data, size_t len)
{
	if (ctx->md)
		EVP_DigestUpdate(ctx->md, data, len);
	else
		native_update(ctx, data, len);
}

void bkr_hash_final(bkr_hash_ctx *ctx, bkr_id *out)
{
	unsigned int n = 0;
	if (ctx->md)
		EVP_DigestFinal_ex(ctx->md, out->b, &n);
	else
		native_final(ctx, out);
	bkr_hash_reset(ctx);
}

bool bkr_hash_pair_fast(void)
{
	return shani();
}

void bkr_hash_update2(bkr_hash_ctx *a, bkr_hash_ctx *b, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t ka, kb, nb;

	if (a->md || b->md) {
		bkr_hash_update(a, data, len);
		bkr_hash_update(b, data, len);
		return;
	}
	/* each one's partial block first: then both lanes take whole blocks,
	 * a's from p + ka, b's from p + kb */
	ka = a->blen ? 64 - a->blen : 0;
	kb = b->blen ? 64 - b->blen : 0;
	ka = ka < len ? ka : len;
	kb = kb < len ? kb : len;
	native_update(a, p, ka);
	native_update(b, p, kb);
	nb = (len - (ka > kb ? ka : kb)) / 64;
	if (nb > 0) {
		shani_blocks2(a->h, p + ka, b->h, p + kb, nb);
		a->n += nb * 64;
		b->n += nb * 64;
	}
	native_update(a, p + ka + nb * 64, len - ka - nb * 64);
	native_update(b, p + kb + nb * 64, len - kb - nb * 64);
}

size_t bkr_hash_update2_roll(bkr_hash_ctx *a, bkr_hash_ctx *b, const void *data, size_t len, const uint64_t *gear,
			     uint64_t *fp, uint64_t mask)
{
	const uint8_t *p = data;
	size_t ka, kb, k, nb, done, end, cut;

	if (a->md || b->md)
		goto apart;
	/* each one's partial block first, the roll over the longer of the two;
	 * then a's blocks from p + ka, b's from p + kb, the roll's from p + k,
	 * never behind either lane: a cut is found before its bytes are hashed */
	ka = a->blen ? 64 - a->blen : 0;
	kb = b->blen ? 64 - b->blen : 0;
	k = ka > kb ? ka : kb;
	if (len < k + 64)
		goto apart;
	if ((cut = bkr_gear_roll_any(gear, p, k, fp, mask)) != 0) {
		bkr_hash_update2(a, b, p, cut);
		return cut;
	}
	native_update(a, p, ka);
	native_update(b, p, kb);
	nb = (len - k) / 64;
	done = shani_roll2(a->h, p + ka, b->h, p + kb, p + k, nb, gear, fp, mask, &cut);
	a->n += done * 64;
	b->n += done * 64;
	if (cut) {
		end = k + cut;
	} else {
		end = k + nb * 64;
		cut = bkr_gear_roll_any(gear, p + end, len - end, fp, mask);
		end = cut ? end + cut : len;
	}
	native_update(a, p + ka + done * 64, end - ka - done * 64);
	native_update(b, p + kb + done * 64, end - kb - done * 64);
	return cut ? end : 0;
apart:
	cut = bkr_gear_roll_any(gear, p, len, fp, mask);
	bkr_hash_update2(a, b, p, cut ? cut : len);
	return cut;
}

void bkr_hash_free(bkr_hash_ctx *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->md);
	/* as EVP_MD_CTX_free does: a state may be a keyed one (an HMAC's) */
	OPENSSL_cleanse(ctx, sizeof(*ctx));
	free(ctx);
}

int bkr_hash_copy(bkr_hash_ctx *dst, const bkr_hash_ctx *src)
{
	if (!src->md) {
		memcpy(dst->h, src->h, sizeof(dst->h));
		memcpy(dst->blk, src->blk, sizeof(dst->blk));
		dst->n = src->n;
		dst->blen = src->blen;
		return 0;
	}
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
