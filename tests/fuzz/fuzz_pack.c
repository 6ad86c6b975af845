/** @file
 * libFuzzer target: a pack file.  The footer is decoded and validated
 * (bkr_pack_read_footer), then every blob it lists is read as the index would
 * ask for it (bkr_pack_read_blob: header checks, decompression, hash).
 */
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/pack.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *out;
	bkr_pack_entry *e = NULL;
	size_t n = 0;
	int fd;

	if (!out && !(out = malloc(BKR_BLOB_MAX)))
		return 0;
	if ((fd = fuzz_memfd(data, size)) < 0)
		return 0;
	if (bkr_pack_read_footer(NULL, NULL, fd, size, "pack", &e, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			(void)bkr_pack_read_blob(NULL, fd, "pack", &e[i].id, e[i].offset, e[i].stored_len, e[i].raw_len,
						 e[i].type, out);
		free(e);
	}
	/* the first blob's header read with lengths taken from the input itself,
	 * as an index entry that disagrees with the pack would ask */
	if (size >= BKR_BLOB_HEADER_SIZE + 32) {
		bkr_id id;
		memcpy(id.b, data + size - 32, 32);
		(void)bkr_pack_read_blob(NULL, fd, "pack", &id, 0, bkr_get_u32(data + 4) % (BKR_BLOB_MAX + 2),
					 bkr_get_u32(data + 8) % (BKR_BLOB_MAX + 2), data[2], out);
	}
	close(fd);
	bkr_error_clear();
	return 0;
}
