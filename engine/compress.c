/** @file
 * Blob compression in the zlib format (RFC 1950): libdeflate for whole
 * buffers, zlib as the reference codec; and zstd frames (RFC 8878) for a
 * repository created with the zstd codec.  The only file of libbkr that
 * includes zlib.h, libdeflate.h or zstd.h.
 *
 * libdeflate compressors are large (up to ~1 MiB at high levels) and not
 * thread-safe, so every thread keeps its own lazily allocated compressor per
 * level, one decompressor and a probe scratch buffer in a per-thread cache.
 * The cache is reached through a __thread pointer (fast path) and registered
 * with a pthread key whose destructor frees it when the thread exits; the
 * main thread's cache, which pthread destructors never see, is freed by a
 * library destructor at process exit.
 */
#include "bkr/compress.h"
#include "bkr/error.h"

#include <libdeflate.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define LEVEL_MAX 9
#define PROBE_MAX (64u << 10)
/** Incompressible when the compressed probe exceeds 97% of its input. */
#define PROBE_KEEP_PCT 97

struct codec_cache {
	struct libdeflate_compressor *comp[LEVEL_MAX + 1];
	struct libdeflate_decompressor *decomp;
	uint8_t *probe_buf; /**< PROBE_MAX bytes */
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
};

static __thread struct codec_cache *tls_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_free(void *arg)
{
	struct codec_cache *cc = arg;
	if (!cc)
		return;
	for (int i = 0; i <= LEVEL_MAX; i++)
		libdeflate_free_compressor(cc->comp[i]);
	libdeflate_free_decompressor(cc->decomp);
	free(cc->probe_buf);
	ZSTD_freeCCtx(cc->zc);
	ZSTD_freeDCtx(cc->zd);
	free(cc);
}

static void cache_key_create(void)
{
	cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/** Free the calling (main) thread's cache at exit so leak checkers stay quiet. */
__attribute__((destructor)) static void cache_atexit(void)
{
	struct codec_cache *cc = tls_cache;
	tls_cache = NULL;
	if (cc && cache_key_ok)
		pthread_setspecific(cache_key, NULL);
	cache_free(cc);
}

static struct codec_cache *cache_get(void)
{
	struct codec_cache *cc = tls_cache;
	if (cc)
		return cc;
	pthread_once(&cache_once, cache_key_create);
	if (!cache_key_ok)
		return NULL;
	if (!(cc = calloc(1, sizeof(*cc))))
		return NULL;
	if (pthread_setspecific(cache_key, cc) != 0) {
		free(cc);
		return NULL;
	}
	tls_cache = cc;
	return cc;
}

static struct libdeflate_compressor *compressor_get(int level)
{
	struct codec_cache *cc = cache_get();
	if (!cc)
		return NULL;
	if (!cc->comp[level])
		cc->comp[level] = libdeflate_alloc_compressor(level);
	return cc->comp[level];
}

static struct libdeflate_decompressor *decompressor_get(void)
{
	struct codec_cache *cc = cache_get();
	if (!cc)
		return NULL;
	if (!cc->decomp)
		cc->decomp = libdeflate_alloc_decompressor();
	return cc->decomp;
}

size_t bkr_compress_bound(size_t len)
{
	size_t a = libdeflate_zlib_compress_bound(NULL, len);
	size_t b = len <= ULONG_MAX ? (size_t)compressBound((uLong)len) : 0;
	size_t z = ZSTD_compressBound(len);
	if (b > a)
		a = b;
	return z > a ? z : a;
}

bool bkr_compress_probe_incompressible(const void *data, size_t len)
{
	struct libdeflate_compressor *c;
	struct codec_cache *cc;
	size_t n = len < PROBE_MAX ? len : PROBE_MAX;
	size_t keep = n * PROBE_KEEP_PCT / 100;

	if (n == 0)
		return true;
	if (!(c = compressor_get(1)) || !(cc = cache_get()))
		return false; /* out of memory: let bkr_compress decide */
	if (!cc->probe_buf && !(cc->probe_buf = malloc(PROBE_MAX)))
		return false;
	/* A result that does not fit in 97% of the input means a saving under 3%. */
	return libdeflate_zlib_compress(c, data, n, cc->probe_buf, keep) == 0;
}

#define RANDOM_WIN 4096u
#define RANDOM_WINS 8u

/* One window of RANDOM_WIN bytes: the sum of squared byte counts is N^2 times
 * the collision probability 2^-H2; H2 >= 7.75 bits when
 * sum * 2^7.75 <= N^2 (2^7.75 = 215.27; random bytes give about 69,600 of the
 * 77,900 allowed, four standard deviations below it). */
static bool window_flat(const uint8_t *p)
{
	uint32_t cnt[256] = { 0 };
	uint64_t sum = 0;

	for (size_t i = 0; i < RANDOM_WIN; i++)
		cnt[p[i]]++;
	for (size_t b = 0; b < 256; b++)
		sum += (uint64_t)cnt[b] * cnt[b];
	return sum * 21527u <= (uint64_t)RANDOM_WIN * RANDOM_WIN * 100u;
}

bool bkr_compress_looks_random(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t wins;

	if (len < 4 * RANDOM_WIN)
		return false;
	wins = len / RANDOM_WIN < RANDOM_WINS ? len / RANDOM_WIN : RANDOM_WINS;
	for (size_t i = 0; i < wins; i++) {
		size_t off = (len - RANDOM_WIN) / (wins - 1) * i;
		if (!window_flat(p + off))
			return false;
	}
	return true;
}

static int check_level(int level)
{
	if (level < 1 || level > LEVEL_MAX)
		return bkr_error_set(BKR_EINVAL, "compression level %d out of range 1..%d",
				     level, LEVEL_MAX);
	return 0;
}

int bkr_compress(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len)
{
	struct libdeflate_compressor *c;
	size_t avail, n;
	int err;

	*out_len = 0;
	if ((err = check_level(level)) < 0)
		return err;
	if (!(c = compressor_get(level)))
		return bkr_error_oom();
	/* Only a result smaller than the input is useful. */
	avail = len > 0 ? len - 1 : 0;
	if (avail > cap)
		avail = cap;
	n = avail > 0 ? libdeflate_zlib_compress(c, in, len, out, avail) : 0;
	if (n == 0)
		return bkr_error_set(BKR_ERROR, "compressed form of %zu bytes would not be smaller", len);
	*out_len = n;
	return 0;
}

int bkr_decompress(const void *in, size_t len, void *out, size_t raw_len)
{
	struct libdeflate_decompressor *d;
	enum libdeflate_result r;
	size_t used = 0;
	uint8_t dummy;

	if (!(d = decompressor_get()))
		return bkr_error_oom();
	r = libdeflate_zlib_decompress_ex(d, in, len, raw_len ? out : &dummy, raw_len, &used, NULL);
	switch (r) {
	case LIBDEFLATE_SUCCESS:
		break;
	case LIBDEFLATE_SHORT_OUTPUT:
		return bkr_error_set(BKR_ECORRUPT, "zlib stream inflates to fewer than %zu bytes", raw_len);
	case LIBDEFLATE_INSUFFICIENT_SPACE:
		return bkr_error_set(BKR_ECORRUPT, "zlib stream inflates to more than %zu bytes", raw_len);
	default:
		return bkr_error_set(BKR_ECORRUPT, "invalid zlib stream (%zu bytes)", len);
	}
	if (used != len)
		return bkr_error_set(BKR_ECORRUPT, "%zu trailing bytes after zlib stream", len - used);
	return 0;
}

int bkr_compress_zlib(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len)
{
	uLongf n;
	int err, zr;

	*out_len = 0;
	if ((err = check_level(level)) < 0)
		return err;
	if (len > ULONG_MAX || cap > ULONG_MAX)
		return bkr_error_set(BKR_EINVAL, "buffer too large for zlib (%zu bytes)", len);
	n = (uLongf)cap;
	zr = compress2(out, &n, in, (uLong)len, level);
	if (zr == Z_MEM_ERROR)
		return bkr_error_oom();
	if (zr == Z_BUF_ERROR || (zr == Z_OK && n >= len))
		return bkr_error_set(BKR_ERROR, "compressed form of %zu bytes would not be smaller", len);
	if (zr != Z_OK)
		return bkr_error_set(BKR_ERROR, "zlib compress2 failed (%d)", zr);
	*out_len = n;
	return 0;
}

int bkr_decompress_zlib(const void *in, size_t len, void *out, size_t raw_len)
{
	uLong src = (uLong)len;
	uLongf dst = (uLongf)raw_len;
	uint8_t dummy;
	int zr;

	if (len > ULONG_MAX || raw_len > ULONG_MAX)
		return bkr_error_set(BKR_EINVAL, "buffer too large for zlib (%zu bytes)", len);
	zr = uncompress2(raw_len ? out : &dummy, &dst, in, &src);
	if (zr == Z_MEM_ERROR)
		return bkr_error_oom();
	if (zr == Z_BUF_ERROR && dst == raw_len && src < len)
		return bkr_error_set(BKR_ECORRUPT, "zlib stream inflates to more than %zu bytes", raw_len);
	if (zr != Z_OK)
		return bkr_error_set(BKR_ECORRUPT, "invalid or truncated zlib stream (%zu bytes, zlib error %d)",
				     len, zr);
	if (dst != raw_len)
		return bkr_error_set(BKR_ECORRUPT, "zlib stream inflates to %lu bytes, expected %zu",
				     (unsigned long)dst, raw_len);
	if (src != len)
		return bkr_error_set(BKR_ECORRUPT, "%lu trailing bytes after zlib stream",
				     (unsigned long)(len - src));
	return 0;
}

/* ---- zstd --------------------------------------------------------------- */

#define SPLIT_WIN 4096u   /**< the split's unit: 4 KiB windows from the start of the input */
#define SPLIT_SAMPLE 256u /**< judged by samples of this many bytes */
#define SPLIT_RUN 1u      /**< a random run of fewer windows is not worth a block */

/* A sample of SPLIT_SAMPLE bytes: the unbiased collision estimate
 * (sum c(c-1)) / (N(N-1)) is at most 2^-7 (H2 >= 7 bits).  Random bytes give
 * 1/256 (about 255 against the bound 510, 16 standard deviations below);
 * text of 30 symbols about 1/15, base64 1/64. */
static bool sample_flat(const uint8_t *p)
{
	uint16_t cnt[256] = { 0 };
	uint32_t sum = 0;

	for (size_t i = 0; i < SPLIT_SAMPLE; i++)
		sum += cnt[p[i]]++;
	return sum * 2u * 128u <= SPLIT_SAMPLE * (SPLIT_SAMPLE - 1);
}

/* The end of the windows from @p at that look random (judged by a sample at
 * the start of the first and at the end of each), and of the samples after
 * them: a random run ends within SPLIT_SAMPLE bytes of it.  Each sample is
 * judged once: split_run calls this at every window of text. */
static size_t flat_end(const uint8_t *p, size_t len, size_t at)
{
	if (at + SPLIT_WIN <= len) {
		if (!sample_flat(p + at))
			return at; /* the samples after would start with this one */
		while (at + SPLIT_WIN <= len && sample_flat(p + at + SPLIT_WIN - SPLIT_SAMPLE))
			at += SPLIT_WIN;
	}
	while (at + SPLIT_SAMPLE <= len && sample_flat(p + at))
		at += SPLIT_SAMPLE;
	return at;
}

/* The end of the run that starts at @p at, and whether it is random (*flat):
 * at least SPLIT_RUN windows that look random, or else everything up to the
 * next such run (a shorter random run goes with its neighbours), which
 * begins within SPLIT_SAMPLE bytes of where the text ends. */
static size_t split_run(const uint8_t *p, size_t len, size_t at, bool *flat)
{
	size_t start = at, e = flat_end(p, len, at);

	*flat = e - at >= SPLIT_RUN * SPLIT_WIN;
	if (*flat)
		return e;
	for (;;) {
		/* the window at e does not look random (or is the short tail) */
		at = len - e > SPLIT_WIN ? e + SPLIT_WIN : len;
		if (at == len)
			return len;
		e = flat_end(p, len, at);
		if (e - at >= SPLIT_RUN * SPLIT_WIN) {
			while (at - start >= SPLIT_SAMPLE && sample_flat(p + at - SPLIT_SAMPLE))
				at -= SPLIT_SAMPLE;
			return at;
		}
	}
}

/*
 * One frame of @p len bytes whose blocks end where random runs begin and end
 * (a flush ends a block; @p first is the end of the first run): zstd codes a
 * block's literals with one Huffman table, which random bytes among text
 * flatten, and stores a block of random bytes raw.  The frame is an ordinary
 * one (content size, checksum).  Returns the frame's size, or 0 with *zerr
 * set (0 when it does not fit in @p avail).
 */
static size_t zstd_split(ZSTD_CCtx *zc, const uint8_t *in, size_t len, size_t first, uint8_t *out, size_t avail,
			 size_t *zerr)
{
	ZSTD_outBuffer ob = { out, avail, 0 };
	size_t at = 0, end = first, r;
	bool flat;

	*zerr = ZSTD_CCtx_setPledgedSrcSize(zc, len);
	if (ZSTD_isError(*zerr))
		return 0;
	*zerr = 0;
	while (at < len) {
		ZSTD_inBuffer ib = { in + at, end - at, 0 };
		ZSTD_EndDirective op = end == len ? ZSTD_e_end : ZSTD_e_flush;
		do {
			r = ZSTD_compressStream2(zc, &ob, &ib, op);
			if (ZSTD_isError(r)) {
				*zerr = r;
				return 0;
			}
			if (r != 0 && ob.pos == ob.size)
				return 0; /* full: it does not fit */
		} while (r != 0);
		at = end;
		if (at < len)
			end = split_run(in, len, at, &flat);
	}
	return ob.pos;
}

int bkr_compress_zstd(int level, const void *in, size_t len, void *out, size_t cap, size_t *out_len)
{
	struct codec_cache *cc;
	size_t avail, n, first;
	bool flat;
	int err;

	*out_len = 0;
	if ((err = check_level(level)) < 0)
		return err;
	if (!(cc = cache_get()) || (!cc->zc && !(cc->zc = ZSTD_createCCtx())))
		return bkr_error_oom();
	/* Only a result that saves at least 3% is worth a decompression. */
	avail = len - len * (100 - PROBE_KEEP_PCT) / 100;
	if (avail > cap)
		avail = cap;
	/* with its content checksum, as the zlib format has its Adler-32: a
	 * damaged frame fails here, never gives wrong bytes */
	/* after a failed call, too; and the parameters: a level sets only some */
	n = ZSTD_CCtx_reset(cc->zc, ZSTD_reset_session_and_parameters);
	if (!ZSTD_isError(n))
		n = ZSTD_CCtx_setParameter(cc->zc, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(n))
		n = ZSTD_CCtx_setParameter(cc->zc, ZSTD_c_checksumFlag, 1);
	/* the default level matches from 7 bytes, not 6: faster on text at
	 * about the same size (docs/design.md, "Compression") */
	if (!ZSTD_isError(n) && level == BKR_ZSTD_LEVEL_DEFAULT)
		n = ZSTD_CCtx_setParameter(cc->zc, ZSTD_c_minMatch, 7);
	/* runs of random bytes among the rest: blocks of their own */
	first = len >= (SPLIT_RUN + 1) * SPLIT_WIN ? split_run(in, len, 0, &flat) : len;
	if (!ZSTD_isError(n) && first < len) {
		size_t zerr;
		n = zstd_split(cc->zc, in, len, first, out, avail, &zerr);
		if (n == 0)
			n = zerr ? zerr : (size_t)-ZSTD_error_dstSize_tooSmall;
	} else if (!ZSTD_isError(n)) {
		n = len > 0 ? ZSTD_compress2(cc->zc, out, avail, in, len) : 0;
	}
	if (len == 0 || ZSTD_isError(n)) {
		if (len && ZSTD_getErrorCode(n) != ZSTD_error_dstSize_tooSmall)
			return bkr_error_set(BKR_ERROR, "zstd: %s", ZSTD_getErrorName(n));
		return bkr_error_set(BKR_ERROR, "compressed form of %zu bytes would not be smaller", len);
	}
	*out_len = n;
	return 0;
}

int bkr_compress_zstd_pick_level(const void *in, size_t len)
{
	size_t cap = ZSTD_compressBound(len), fast = 0, dflt = 0;
	uint8_t *buf;
	int level = 0;

	if (len == 0 || bkr_compress_looks_random(in, len) || !(buf = malloc(cap)))
		return 0;
	if (bkr_compress_zstd(BKR_ZSTD_LEVEL_DEFAULT, in, len, buf, cap, &dflt) == 0)
		level = bkr_compress_zstd(1, in, len, buf, cap, &fast) == 0 &&
				fast * 100 <= dflt * (100 + BKR_ZSTD_FAST_SLACK_PCT)
			? 1
			: BKR_ZSTD_LEVEL_DEFAULT;
	bkr_error_clear();
	free(buf);
	return level;
}

int bkr_decompress_zstd(const void *in, size_t len, void *out, size_t raw_len)
{
	struct codec_cache *cc;
	unsigned long long fsize;
	uint8_t dummy;
	size_t n;

	if (!(cc = cache_get()) || (!cc->zd && !(cc->zd = ZSTD_createDCtx())))
		return bkr_error_oom();
	/* exactly one frame, whose header names its size */
	fsize = ZSTD_getFrameContentSize(in, len);
	if (fsize == ZSTD_CONTENTSIZE_ERROR || fsize == ZSTD_CONTENTSIZE_UNKNOWN)
		return bkr_error_set(BKR_ECORRUPT, "invalid zstd frame (%zu bytes)", len);
	if (fsize != raw_len)
		return bkr_error_set(BKR_ECORRUPT, "zstd frame holds %llu bytes, expected %zu", fsize, raw_len);
	n = ZSTD_findFrameCompressedSize(in, len);
	if (ZSTD_isError(n))
		return bkr_error_set(BKR_ECORRUPT, "invalid or truncated zstd frame (%zu bytes)", len);
	if (n != len)
		return bkr_error_set(BKR_ECORRUPT, "%zu trailing bytes after zstd frame", len - n);
	n = ZSTD_decompressDCtx(cc->zd, raw_len ? out : &dummy, raw_len ? raw_len : 1, in, len);
	if (ZSTD_isError(n))
		return bkr_error_set(BKR_ECORRUPT, "invalid zstd frame (%zu bytes): %s", len, ZSTD_getErrorName(n));
	if (n != raw_len)
		return bkr_error_set(BKR_ECORRUPT, "zstd frame inflates to %zu bytes, expected %zu", n, raw_len);
	return 0;
}
