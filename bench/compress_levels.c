/** @file
 * Benchmark of the blob codec and the chunker, to choose the default
 * compression level by measurement.
 *
 *   compress_levels [FILE] [--mb N]
 *
 * Reads FILE (or generates a mix of JSON-like log text, source-like text and
 * random bytes, N MiB, default 64), cuts it with the default FastCDC
 * parameters, then compresses every chunk with libdeflate and with zlib at
 * levels 1, 3, 6 and 9, and with zstd at levels 1, 2, 3 and 6, and
 * decompresses it again, printing throughput (MB/s of plaintext per second of
 * CPU time, so that a busy machine does not skew the comparison) and ratio
 * (stored / raw).  Chunker throughput is the best of several passes over the
 * whole buffer.
 */
#include "bkr/chunker.h"
#include "bkr/compress.h"
#include "bkr/error.h"
#include "bkr/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/** 70% JSON-ish log lines, 20% C-like text, 10% random bytes, in 256 KiB runs. */
static void generate(uint8_t *p, size_t n)
{
	static const char *w[] = { "user", "assistant", "content", "the", "backup", "restore",
				   "file", "workspace", "error", "ok", "timestamp", "message",
				   "tool_call", "result", "json", "static", "int", "return",
				   "struct", "const", "char", "if", "goto done;", "NULL" };
	uint64_t s = 12345;
	size_t i = 0;

	while (i < n) {
		size_t run = 256u << 10, end = i + run < n ? i + run : n;
		uint64_t kind = rng_next(&s) % 10;
		while (i < end) {
			char line[256];
			int k;
			if (kind == 9) {
				p[i++] = (uint8_t)(rng_next(&s) >> 56);
				continue;
			}
			if (kind < 7)
				k = snprintf(line, sizeof(line),
					     "{\"ts\":\"2026-11-%02d T%02d:%02d:%02dZ\",\"role\":\"%s\",\"%s\":\"%s %s %s %llu\"}\n",
					     (int)(rng_next(&s) % 28) + 1, (int)(rng_next(&s) % 24),
					     (int)(rng_next(&s) % 60), (int)(rng_next(&s) % 60),
					     w[rng_next(&s) % 3], w[rng_next(&s) % 24], w[rng_next(&s) % 24],
					     w[rng_next(&s) % 24], w[rng_next(&s) % 24],
					     (unsigned long long)(rng_next(&s) % 1000000));
			else
				k = snprintf(line, sizeof(line), "\t%s %s_%llu(%s *p) { %s p->%s; }\n",
					     w[15 + rng_next(&s) % 9], w[rng_next(&s) % 24],
					     (unsigned long long)(rng_next(&s) % 100), w[15 + rng_next(&s) % 9],
					     w[15 + rng_next(&s) % 9], w[rng_next(&s) % 24]);
			for (int j = 0; j < k && i < end; j++)
				p[i++] = (uint8_t)line[j];
		}
	}
}

typedef int (*compress_fn)(int, const void *, size_t, void *, size_t, size_t *);
typedef int (*decompress_fn)(const void *, size_t, void *, size_t);

struct chunk {
	size_t off, len;
};

static void bench_codec(const char *name, compress_fn c, decompress_fn d, int level,
			const uint8_t *data, const struct chunk *ch, size_t nch, uint8_t *cbuf,
			size_t cap, uint8_t *out)
{
	size_t total = 0, stored = 0, raw_stored = 0;
	double t0, tc, td = 0;

	t0 = now();
	/* Compress every chunk as the backup would (raw when it does not shrink). */
	size_t *clen = calloc(nch, sizeof(*clen));
	uint8_t **cdata = calloc(nch, sizeof(*cdata));
	if (!clen || !cdata) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	size_t pos = 0;
	for (size_t i = 0; i < nch; i++) {
		size_t n = 0;
		total += ch[i].len;
		if (c(level, data + ch[i].off, ch[i].len, cbuf + pos, cap - pos, &n) == 0) {
			cdata[i] = cbuf + pos;
			clen[i] = n;
			pos += n;
			stored += n;
		} else {
			raw_stored += ch[i].len;
			stored += ch[i].len;
		}
	}
	tc = now() - t0;
	t0 = now();
	for (size_t i = 0; i < nch; i++) {
		if (!cdata[i])
			continue;
		if (d(cdata[i], clen[i], out, ch[i].len) < 0 || memcmp(out, data + ch[i].off, ch[i].len)) {
			fprintf(stderr, "%s level %d: round trip failed: %s\n", name, level,
				bkr_error_message());
			exit(1);
		}
	}
	td = now() - t0;
	printf("%-10s  %5d  %10.0f  %10.0f  %7.3f  %8.1f\n", name, level, total / tc / 1e6,
	       total / td / 1e6, (double)stored / (double)total, raw_stored / 1e6);
	free(clen);
	free(cdata);
}

int main(int argc, char **argv)
{
	bkr_chunker_params params = BKR_CHUNKER_PARAMS_INIT;
	bkr_chunker *chunker = NULL;
	const char *file = NULL;
	uint8_t *data = NULL, *cbuf = NULL, *out = NULL;
	struct chunk *ch = NULL;
	size_t len = 0, nch = 0, cap_ch = 0, mb = 64;
	double best = 1e9;
	int err = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s [FILE] [--mb N]\n", argv[0]);
			return 0;
		} else
			file = argv[i];
	}
	if (file) {
		if (bkr_io_read_file(file, (size_t)4 << 30, &data, &len) < 0) {
			fprintf(stderr, "%s\n", bkr_error_message());
			goto done;
		}
	} else {
		len = mb << 20;
		if (!(data = malloc(len)))
			goto done;
		generate(data, len);
	}
	if (bkr_chunker_new(&chunker, &params) < 0)
		goto done;

	/* Chunker: best of 5 passes. */
	for (int pass = 0; pass < 5; pass++) {
		size_t off = 0, start = 0;
		double t0 = now();
		nch = 0;
		bkr_chunker_reset(chunker);
		while (off < len) {
			size_t k = bkr_chunker_scan(chunker, data + off, len - off);
			size_t end = k == (size_t)-1 ? len : off + k;
			if (nch == cap_ch) {
				cap_ch = cap_ch ? 2 * cap_ch : 1024;
				if (!(ch = realloc(ch, cap_ch * sizeof(*ch))))
					goto done;
			}
			ch[nch].off = start;
			ch[nch].len = end - start;
			nch++;
			start = off = end;
		}
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	printf("input: %s, %.1f MiB, %zu chunks (mean %.0f KiB)\n", file ? file : "generated mix",
	       len / 1048576.0, nch, nch ? len / 1024.0 / nch : 0.0);
	printf("chunker (FastCDC %u/%u/%u): %.0f MB/s\n\n", params.min, params.avg, params.max,
	       len / best / 1e6);

	size_t cap = 0;
	for (size_t i = 0; i < nch; i++)
		cap += bkr_compress_bound(ch[i].len);
	if (!(cbuf = malloc(cap)) || !(out = malloc(BKR_BLOB_MAX)))
		goto done;
	printf("%-10s  %5s  %10s  %10s  %7s  %8s\n", "codec", "level", "comp MB/s", "dec MB/s",
	       "ratio", "raw MB");
	static const int levels[] = { 1, 3, 6, 9 };
	for (size_t i = 0; i < 4; i++) {
		bench_codec("libdeflate", bkr_compress, bkr_decompress, levels[i], data, ch, nch, cbuf,
			    cap, out);
		bench_codec("zlib", bkr_compress_zlib, bkr_decompress_zlib, levels[i], data, ch, nch,
			    cbuf, cap, out);
	}
	static const int zlevels[] = { 1, 2, 3, 6 };
	for (size_t i = 0; i < 4; i++)
		bench_codec("zstd", bkr_compress_zstd, bkr_decompress_zstd, zlevels[i], data, ch, nch, cbuf,
			    cap, out);
	size_t probes = 0;
	double t0 = now();
	for (size_t i = 0; i < nch; i++)
		probes += bkr_compress_probe_incompressible(data + ch[i].off, ch[i].len);
	printf("\nprobe: %zu of %zu chunks incompressible, %.2f ms total\n", probes, nch,
	       (now() - t0) * 1e3);
	err = 0;
done:
	if (err && bkr_error_message()[0])
		fprintf(stderr, "%s\n", bkr_error_message());
	bkr_chunker_free(chunker);
	free(ch);
	free(cbuf);
	free(out);
	free(data);
	return err;
}
