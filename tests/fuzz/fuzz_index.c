/** @file
 * libFuzzer target: an index file (bkr_index_open_file: header, superseded
 * ids, entries, checksum), then every entry and a lookup of each.
 */
#include <stdio.h>

#include "bkr/error.h"
#include "bkr/index.h"
#include "fuzz.h"

static int look(const bkr_index_entry *e, void *ctx)
{
	bkr_index_entry got;
	(void)bkr_index_lookup(ctx, &e->id, &got);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bkr_index *idx = NULL;
	char path[64];
	int fd;

	if ((fd = fuzz_memfd(data, size)) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (bkr_index_open_file(&idx, path) == 0) {
		bkr_id zero = { { 0 } };
		bkr_index_entry got;
		size_t nfiles;
		(void)bkr_index_count(idx);
		(void)bkr_index_files(idx, &nfiles);
		(void)bkr_index_foreach(idx, look, idx);
		(void)bkr_index_lookup(idx, &zero, &got);
	}
	bkr_index_free(idx);
	close(fd);
	bkr_error_clear();
	return 0;
}
