/** @file
 * FastCDC content-defined chunking with normalized chunking.
 *
 * A 64-bit "gear" fingerprint is rolled over the bytes of the current chunk:
 * fp = (fp << 1) + gear[byte].  Because every step shifts left by one, bit k of
 * fp depends only on the last k + 1 bytes, so the top bits of fp are a hash of
 * a 64-byte window.  A cut is made after a byte when the top bits selected by
 * the current mask are all zero:
 *
 *  - no cut is considered before @c min bytes (and the first @c min - 64 bytes
 *    are not even hashed: FastCDC's cut-point skipping);
 *  - between @c min and @c avg the "small" mask with log2(avg) + 2 bits makes
 *    a cut four times less likely than 1/avg;
 *  - between @c avg and @c max the "large" mask with log2(avg) - 2 bits makes
 *    it four times more likely (normalized chunking, level 2);
 *  - a cut is forced at @c max bytes.
 *
 * Hashing starts exactly 64 bytes before the first possible cut, so every cut
 * decision is a function of the 64 bytes before it and of its distance from
 * the previous cut: cut points depend only on content and parameters, and an
 * insertion disturbs only the chunks around it.
 *
 * The gear table is 256 values of splitmix64 from a fixed state; a non-zero
 * seed permutes it (Fisher-Yates driven by splitmix64(seed)), so two
 * repositories with different seeds cut the same data differently.
 */
#include "bkr/chunker.h"
#include "bkr/error.h"
#include "gear.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/** Bytes of history that fully determine the fingerprint. */
#define GEAR_WINDOW 64

/** Fixed splitmix64 state of the default gear table. */
#define GEAR_BASE_SEED 0x6b726673636463ULL /* "bkrfscdc" */

struct bkr_chunker {
	bkr_chunker_params p;
	uint64_t mask_s;     /**< before avg: log2(avg) + 2 top bits */
	uint64_t mask_l;     /**< from avg on: log2(avg) - 2 top bits */
	uint32_t hash_start; /**< chunk position where hashing begins */
	uint32_t pos;        /**< bytes of the current chunk seen so far */
	uint64_t fp;         /**< rolling fingerprint */
	uint64_t gear[256];
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void gear_init(uint64_t gear[256], uint64_t seed)
{
	uint64_t st = GEAR_BASE_SEED;
	for (int i = 0; i < 256; i++)
		gear[i] = splitmix64(&st);
	if (seed == 0)
		return;
	st = seed;
	for (int i = 255; i > 0; i--) {
		int j = (int)(splitmix64(&st) % (uint64_t)(i + 1));
		uint64_t t = gear[i];
		gear[i] = gear[j];
		gear[j] = t;
	}
}

/** A mask of the @p bits most significant bits (1..63). */
static uint64_t top_mask(int bits)
{
	if (bits < 1)
		bits = 1;
	if (bits > 63)
		bits = 63;
	return ~0ULL << (64 - bits);
}

int bkr_chunker_new(bkr_chunker **out, const bkr_chunker_params *params)
{
	bkr_chunker *c = NULL;
	int bits = 0, err = 0;

	*out = NULL;
	if (!params || params->min >= params->avg || params->avg >= params->max ||
	    (params->avg & (params->avg - 1)) != 0 || params->max > BKR_BLOB_MAX) {
		err = bkr_error_set(BKR_EINVAL,
				    "chunker parameters: need min < avg < max, avg a power of two, "
				    "max <= %u (got min %u avg %u max %u)",
				    BKR_BLOB_MAX, params ? params->min : 0,
				    params ? params->avg : 0, params ? params->max : 0);
		goto done;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		err = bkr_error_oom();
		goto done;
	}
	c->p = *params;
	while ((1u << bits) < params->avg)
		bits++;
	c->mask_s = top_mask(bits + 2);
	c->mask_l = top_mask(bits - 2);
	c->hash_start = params->min > GEAR_WINDOW ? params->min - GEAR_WINDOW : 0;
	gear_init(c->gear, params->seed);
	bkr_chunker_reset(c);
	*out = c;
	c = NULL;
done:
	free(c);
	return err;
}

void bkr_chunker_free(bkr_chunker *c)
{
	free(c);
}

void bkr_chunker_reset(bkr_chunker *c)
{
	c->pos = 0;
	c->fp = 0;
}

static inline size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Roll over p[0..n) looking for a cut with @p mask (0: none), the bytes
 * rolled also fed to the lanes @p a and @p b when there are lanes. */
static inline size_t roll(bkr_chunker *c, const uint8_t *p, size_t n, uint64_t mask, bkr_hash_ctx *a, bkr_hash_ctx *b)
{
	if (a)
		return bkr_hash_update2_roll(a, b, p, n, c->gear, &c->fp, mask);
	return bkr_gear_roll_any(c->gear, p, n, &c->fp, mask);
}

/**
 * The chunk positions are split into regions by hash_start, min, avg and max;
 * each call walks the regions from the current position, so feeding the data
 * in pieces of any size gives the same cuts as one buffer.  With lanes
 * (@p a, @p b), every byte scanned is fed to both, in the same pass.
 */
static size_t scan(bkr_chunker *c, const void *data, size_t len, bkr_hash_ctx *a, bkr_hash_ctx *b)
{
	const uint8_t *p = data;
	size_t i = 0, n, cut;
	/* A cut is allowed after the byte at chunk index min - 1 (chunk >= min, >= 1). */
	uint32_t first_cut = c->p.min > 0 ? c->p.min - 1 : 0;

	/* Region 1: skipped, not rolled. */
	if (c->pos < c->hash_start) {
		n = min_sz(c->hash_start - c->pos, len - i);
		if (a)
			bkr_hash_update2(a, b, p + i, n);
		i += n;
		c->pos += (uint32_t)n;
	}
	/* Region 2: rolled, no cut yet. */
	if (c->pos < first_cut && i < len) {
		n = min_sz(first_cut - c->pos, len - i);
		roll(c, p + i, n, 0, a, b);
		i += n;
		c->pos += (uint32_t)n;
	}
	/* Region 3: up to avg, hard mask. */
	if (c->pos < c->p.avg - 1 && i < len) {
		n = min_sz(c->p.avg - 1 - c->pos, len - i);
		cut = roll(c, p + i, n, c->mask_s, a, b);
		if (cut) {
			i += cut;
			goto cut;
		}
		i += n;
		c->pos += (uint32_t)n;
	}
	/* Region 4: up to max - 1, easy mask. */
	if (c->pos < c->p.max - 1 && i < len) {
		n = min_sz(c->p.max - 1 - c->pos, len - i);
		cut = roll(c, p + i, n, c->mask_l, a, b);
		if (cut) {
			i += cut;
			goto cut;
		}
		i += n;
		c->pos += (uint32_t)n;
	}
	/* The max-th byte: forced cut. */
	if (c->pos == c->p.max - 1 && i < len) {
		if (a)
			bkr_hash_update2(a, b, p + i, 1);
		i++;
		goto cut;
	}
	return (size_t)-1;
cut:
	bkr_chunker_reset(c);
	return i;
}

size_t bkr_chunker_scan(bkr_chunker *c, const void *data, size_t len)
{
	return scan(c, data, len, NULL, NULL);
}

size_t bkr_chunker_scan2(bkr_chunker *c, const void *data, size_t len, bkr_hash_ctx *a, bkr_hash_ctx *b)
{
	return scan(c, data, len, a, b);
}
