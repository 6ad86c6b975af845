/** @file
 * Benchmark of the index: write, open and look up a million entries.
 *
 *   index_million [N]
 *
 * Builds an index file of N (default 1000000) synthetic entries in a
 * temporary directory, opens it and looks up 2N ids in a scattered order,
 * printing one line: entries, write and open milliseconds, million lookups
 * per second (wall clock).  Every lookup must find its entry with the offset
 * and length it was written with; a miss or a wrong entry exits 1.
 */
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/index.h"
#include "bkr/io.h"

#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_entry(uint64_t i, bkr_index_entry *e)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "blob %llu", (unsigned long long)i);

	memset(e, 0, sizeof(*e));
	bkr_sha256(buf, (size_t)n, &e->id);
	for (int k = 0; k < BKR_PACK_ID_SIZE; k++)
		e->pack.b[k] = (uint8_t)(i * 7 + (uint64_t)k);
	e->offset = (uint32_t)(i * 4096 + 16);
	e->stored_len = (uint32_t)(i % BKR_BLOB_MAX);
	e->raw_len = (uint32_t)((i * 3) % BKR_BLOB_MAX);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int fail(const char *what)
{
	fprintf(stderr, "index_million: %s: %s\n", what, bkr_error_message());
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000, lookups = 2 * n;
	char root[] = "/tmp/bkr-index-million-XXXXXX", dir[PATH_MAX];
	bkr_index_builder *b = NULL;
	bkr_index *idx = NULL;
	bkr_index_entry e, got;
	bkr_id fid, *ids;
	double t0, t1, t2, t3;
	int rc = 1;

	if (n == 0 || !(ids = malloc(n * sizeof(*ids)))) {
		fprintf(stderr, "usage: index_million [N > 0]\n");
		return 2;
	}
	if (!mkdtemp(root) || bkr_path_join(dir, sizeof(dir), root, "index") < 0) {
		perror("index_million: temporary directory");
		free(ids);
		return 1;
	}
	if (bkr_index_builder_new(&b) < 0) {
		rc = fail("builder");
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		make_entry(i, &e);
		ids[i] = e.id;
		if (bkr_index_builder_add(b, &e) < 0) {
			rc = fail("add");
			goto out;
		}
	}
	t0 = now();
	if (bkr_index_builder_write(b, dir, &fid) < 0) {
		rc = fail(dir);
		goto out;
	}
	t1 = now();
	if (bkr_index_open(&idx, dir) < 0) {
		rc = fail(dir);
		goto out;
	}
	t2 = now();
	for (uint64_t i = 0; i < lookups; i++) {
		uint64_t k = (i * 1000003) % n;
		if (bkr_index_lookup(idx, &ids[k], &got) != 0 || got.offset != (uint32_t)(k * 4096 + 16) ||
		    got.raw_len != (uint32_t)((k * 3) % BKR_BLOB_MAX)) {
			fprintf(stderr, "index_million: entry %llu not found as written\n", (unsigned long long)k);
			goto out;
		}
	}
	t3 = now();
	printf("index: %llu entries: write %.1f ms, open %.1f ms, %.2f M lookups/s\n", (unsigned long long)n,
	       (t1 - t0) * 1e3, (t2 - t1) * 1e3, (double)lookups / (t3 - t2) / 1e6);
	rc = 0;
out:
	bkr_index_builder_free(b);
	bkr_index_free(idx);
	free(ids);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
