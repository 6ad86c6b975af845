/** @file
 * libFuzzer target: a pack file.  The footer is decoded and validated
 * (bkr_pack_read_footer), then every blob it lists is read as the index would
 * ask for it (bkr_pack_read_blob: header checks, decompression, hash).
 * Then the input's last 64 bytes as the trailer of a far larger file, the
 * rest of the input at its start and zeros between (a sparse file): the size
 * its trailer claims, up to 1 TiB, must cost no more than a piece of it
 * (-rss_limit_mb and -malloc_limit_mb catch a footer allocated whole).
 */
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/pack.h"
#include "fuzz.h"

/* The input's head at 0, its trailer at the end of @c size bytes, zeros between. */
struct sparse {
	const uint8_t *data;
	size_t len;
	uint64_t size;
	uint64_t read; /* bytes asked for, in all */
};

static int sparse_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct sparse *s = ctx;
	uint64_t head = s->len - BKR_PACK_TRAILER_SIZE, tail = s->size - BKR_PACK_TRAILER_SIZE, from;
	uint8_t *b = buf;

	if (off > s->size || len > s->size - off || (s->read += len) > ((uint64_t)64 << 20))
		return bkr_error_set(BKR_EIO, "sparse: read of %zu bytes at %llu", len, (unsigned long long)off);
	memset(buf, 0, len);
	if (off < head)
		memcpy(b, s->data + off, (size_t)(head - off < len ? head - off : len));
	if (off + len > tail) {
		from = off > tail ? off : tail;
		memcpy(b + (from - off), s->data + head + (from - tail), (size_t)(off + len - from));
	}
	return 0;
}

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
	if (size >= BKR_PACK_TRAILER_SIZE) {
		const uint8_t *t = data + size - BKR_PACK_TRAILER_SIZE;
		uint64_t claimed = bkr_get_u64(t + 16) + (uint64_t)bkr_get_u32(t + 12) * BKR_PACK_ENTRY_SIZE;
		claimed += BKR_PACK_TRAILER_SIZE;
		struct sparse sp = { data, size, claimed, 0 };
		if (claimed >= size && claimed <= ((uint64_t)1 << 40) &&
		    bkr_pack_read_footer_from(NULL, NULL, sparse_read, &sp, claimed, "sparse", &e, &n) == 0)
			free(e);
		bkr_error_clear();
	}
	return 0;
}
