/** @file
 * The chunker's gear roll (engine/chunker.c): fp = (fp << 1) + gear[byte]
 * over a run of bytes, stopping after the first byte where the bits of a mask
 * are all zero.  Shared by the chunker's plain scan and by the SHA-256 lanes
 * that roll it while they hash the same bytes (bkr_hash_update2_roll,
 * engine/hash.c).  Private to the engine.
 */
#ifndef BKR_GEAR_H
#define BKR_GEAR_H

#include <stddef.h>
#include <stdint.h>

/**
 * Four bytes p[0..4) rolled from @p fp: the fingerprint after each of them.
 * It is (fp << k) + the sum of gear values shifted, so the loop-carried
 * dependency is one shift-and-add per four bytes instead of per byte, and the
 * three intermediate fingerprints (needed only for the cut test) are computed
 * off that chain.
 */
static inline void bkr_gear_step4(const uint64_t *restrict gear, const uint8_t *restrict p, uint64_t fp, uint64_t *f1,
				  uint64_t *f2, uint64_t *f3, uint64_t *f4)
{
	uint64_t h1 = gear[p[0]];
	uint64_t h2 = (h1 << 1) + gear[p[1]];
	uint64_t h3 = (h2 << 1) + gear[p[2]];
	uint64_t h4 = (h3 << 1) + gear[p[3]];
	*f1 = (fp << 1) + h1;
	*f2 = (fp << 2) + h2;
	*f3 = (fp << 3) + h3;
	*f4 = (fp << 4) + h4;
}

/**
 * Roll the fingerprint over p[0..n) and look for a cut with @p mask.
 * Returns the index just after the cut byte, or 0 when there is none.
 * Four bytes per iteration (bkr_gear_step4): the cuts are exactly those of
 * the byte-at-a-time definition.
 */
static inline size_t bkr_gear_roll(const uint64_t *restrict gear, const uint8_t *restrict p, size_t n, uint64_t *fpp,
				   uint64_t mask)
{
	uint64_t fp = *fpp;
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		uint64_t f1, f2, f3, f4;
		bkr_gear_step4(gear, p + i, fp, &f1, &f2, &f3, &f4);
		if (__builtin_expect(!((f1 & mask) && (f2 & mask) && (f3 & mask) && (f4 & mask)), 0)) {
			if (!(f1 & mask)) {
				*fpp = f1;
				return i + 1;
			}
			if (!(f2 & mask)) {
				*fpp = f2;
				return i + 2;
			}
			if (!(f3 & mask)) {
				*fpp = f3;
				return i + 3;
			}
			*fpp = f4;
			return i + 4;
		}
		fp = f4;
	}
	for (; i < n; i++) {
		fp = (fp << 1) + gear[p[i]];
		if (!(fp & mask)) {
			*fpp = fp;
			return i + 1;
		}
	}
	*fpp = fp;
	return 0;
}

/** Roll without looking for cuts (the 64 bytes before min). */
static inline void bkr_gear_roll_only(const uint64_t *restrict gear, const uint8_t *restrict p, size_t n, uint64_t *fpp)
{
	uint64_t fp = *fpp;
	for (size_t i = 0; i < n; i++)
		fp = (fp << 1) + gear[p[i]];
	*fpp = fp;
}

/** bkr_gear_roll, or with @p mask 0 bkr_gear_roll_only (never a cut). */
static inline size_t bkr_gear_roll_any(const uint64_t *restrict gear, const uint8_t *restrict p, size_t n,
				       uint64_t *fpp, uint64_t mask)
{
	if (mask)
		return bkr_gear_roll(gear, p, n, fpp, mask);
	bkr_gear_roll_only(gear, p, n, fpp);
	return 0;
}

#endif
