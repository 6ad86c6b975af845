/** @file
 * Blob compression in the zlib format (RFC 1950).  The only module that
 * touches zlib and libdeflate: libdeflate for whole-buffer work where it is
 * faster, zlib as the reference codec (both read each other's output).
 */
#ifndef BKR_COMPRESS_H
#define BKR_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The codec of a repository's new blobs (config.json "compression.codec"). */
typedef enum { BKR_CODEC_NONE = 0, BKR_CODEC_ZLIB = 1, BKR_CODEC_ZSTD = 2 } bkr_codec;

/** Upper bound of the compressed size of @p len bytes (either codec). */
size_t bkr_compress_bound(size_t len);

/**
 * Quick probe: compress (level 1) up to the first 64 KiB of @p data; true when
 * the saving is under 3%, i.e. the blob should be stored raw.
 */
bool bkr_compress_probe_incompressible(const void *data, size_t len);

/**
 * Cheaper estimate for zstd: true when every one of up to 8 windows of 4 KiB,
 * spread evenly over @p data, has a byte distribution as flat as random bytes
 * (Renyi-2 entropy of at least 7.75 bits per byte, a bound below which the
 * entropy coder alone could save 3%), i.e. the blob should be stored raw.
 * Reads at most 32 KiB.  False for inputs shorter than 16 KiB (compress them).
 * Matches across windows are not seen: a blob of one random block repeated
 * may be judged random and stored raw (correct, only larger).
 */
bool bkr_compress_looks_random(const void *data, size_t len);

/**
 * Compress @p in at @p level (0..9; 0 means "store raw", never called with 0)
 * into @p out (capacity @p cap >= bkr_compress_bound(len)).  Sets *out_len.
 * Returns 0, or BKR_ERROR when the result would not be smaller than the input
 * (the caller then stores raw).  Thread-safe: compressors are per thread.
 */
int bkr_compress(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len);

/**
 * Inflate @p in into @p out, which must receive exactly @p raw_len bytes:
 * more, fewer, or a stream error is BKR_ECORRUPT.  Thread-safe.
 */
int bkr_decompress(const void *in, size_t len, void *out, size_t raw_len);

/**
 * zstd's level for new repositories (bkr init): it compresses word-like
 * text as well as libdeflate's level 6 at the speed of its level 1, and
 * bkr_compress_zstd runs it with a minimum match of 7 bytes, not 6
 * (docs/design.md, "Compression").
 */
#define BKR_ZSTD_LEVEL_DEFAULT 2

/**
 * Compress @p in into one zstd frame (RFC 8878; its content size in the
 * header, its content checksum at the end)
 * at @p level (1..9).  Returns 0, or BKR_ERROR when it would not save at
 * least 3% (the caller then stores raw): no probe needed, zstd passes over
 * incompressible data at memory speed.  Thread-safe.
 */
int bkr_compress_zstd(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len);

/** How much larger zstd level 1's frame may be than the default level's for level 1 to do (percent). */
#define BKR_ZSTD_FAST_SLACK_PCT 3

/**
 * The zstd level that pays for data like @p in (a sample chunk of a big
 * file): 1 when level 1's frame is at most BKR_ZSTD_FAST_SLACK_PCT % larger
 * than BKR_ZSTD_LEVEL_DEFAULT's (repetitive text such as logs: level 1 finds
 * the same long matches, a third faster), else BKR_ZSTD_LEVEL_DEFAULT (word-like
 * text and source, where it saves 10-25 %); 0 when @p in tells nothing
 * (random-looking or incompressible, or out of memory).  Compresses @p in at
 * both levels into a scratch buffer.  Thread-safe.
 */
int bkr_compress_zstd_pick_level(const void *in, size_t len);

/**
 * Inflate exactly one zstd frame @p in into @p out, which must receive exactly
 * @p raw_len bytes (the frame's declared size, too): anything else is
 * BKR_ECORRUPT.  Thread-safe.
 */
int bkr_decompress_zstd(const void *in, size_t len, void *out, size_t raw_len);

/** The same with zlib only (the reference codec; tests cross-check both). */
int bkr_compress_zlib(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len);
int bkr_decompress_zlib(const void *in, size_t len, void *out, size_t raw_len);

#endif
