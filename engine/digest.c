/** @file
 * Content digests of files, plain and sparse (see bkr/digest.h and
 * docs/format.md, "Content digests").  The sparse form walks the logical
 * bytes in 4 KiB blocks: a block of zeros only extends the current zero run,
 * any other block goes into the data hash; runs are hashed as (offset,
 * length) pairs when they end.  Zeros fed in whole blocks are never
 * touched, so a terabyte hole costs what a short one does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/format.h"

#define SPARSE_TAG "bkrfs sparse v1"

struct bkr_digest {
	bkr_digest_form form;
	bkr_hash_ctx *data;   /**< plain: everything; sparse: the non-zero blocks */
	bkr_hash_ctx *runs;   /**< sparse: the zero runs */
	uint64_t pos;         /**< bytes before blk */
	uint64_t run_off, run_len;
	size_t blen;
	uint8_t blk[BKR_DIGEST_BLOCK];
};

static const uint8_t zero_buf[65536];

bkr_digest *bkr_digest_new(bkr_digest_form form)
{
	bkr_digest *d = calloc(1, sizeof(*d));

	if (!d || !(d->data = bkr_hash_new()) || !(d->runs = bkr_hash_new())) {
		bkr_digest_free(d);
		return NULL;
	}
	d->form = form;
	return d;
}

void bkr_digest_free(bkr_digest *d)
{
	if (!d)
		return;
	bkr_hash_free(d->data);
	bkr_hash_free(d->runs);
	free(d);
}

void bkr_digest_reset(bkr_digest *d, bkr_digest_form form)
{
	bkr_hash_reset(d->data);
	bkr_hash_reset(d->runs);
	d->form = form;
	d->pos = d->run_off = d->run_len = 0;
	d->blen = 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void flush_run(bkr_digest *d)
{
	uint8_t rec[16];

	if (!d->run_len)
		return;
	bkr_put_u64(rec, d->run_off);
	bkr_put_u64(rec + 8, d->run_len);
	bkr_hash_update(d->runs, rec, sizeof(rec));
	d->run_len = 0;
}

static void zero_run(bkr_digest *d, uint64_t n)
{
	if (!d->run_len)
		d->run_off = d->pos;
	d->run_len += n;
	d->pos += n;
}

/* One block (the last may be short) at d->pos. */
static void block(bkr_digest *d, const uint8_t *p, size_t n)
{
	if (all_zero(p, n)) {
		zero_run(d, n);
		return;
	}
	flush_run(d);
	bkr_hash_update(d->data, p, n);
	d->pos += n;
}

void bkr_digest_update(bkr_digest *d, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (d->form == BKR_DIGEST_PLAIN) {
		bkr_hash_update(d->data, p, len);
		d->pos += len;
		return;
	}
	if (d->blen) {
		size_t k = BKR_DIGEST_BLOCK - d->blen < len ? BKR_DIGEST_BLOCK - d->blen : len;
		memcpy(d->blk + d->blen, p, k);
		d->blen += k;
		p += k;
		len -= k;
		if (d->blen < BKR_DIGEST_BLOCK)
			return;
		d->blen = 0;
		block(d, d->blk, BKR_DIGEST_BLOCK);
	}
	for (; len >= BKR_DIGEST_BLOCK; p += BKR_DIGEST_BLOCK, len -= BKR_DIGEST_BLOCK)
		block(d, p, BKR_DIGEST_BLOCK);
	if (len) {
		memcpy(d->blk, p, len);
		d->blen = len;
	}
}

void bkr_digest_update2(bkr_digest *d, bkr_hash_ctx *h, const void *data, size_t len)
{
	if (d->form != BKR_DIGEST_PLAIN) {
		bkr_digest_update(d, data, len);
		bkr_hash_update(h, data, len);
		return;
	}
	bkr_hash_update2(d->data, h, data, len);
	d->pos += len;
}

size_t bkr_digest_scan2(bkr_digest *d, bkr_hash_ctx *h, bkr_chunker *c, const void *data, size_t len)
{
	size_t k;

	if (d->form != BKR_DIGEST_PLAIN) {
		k = bkr_chunker_scan(c, data, len);
		bkr_digest_update2(d, h, data, k == (size_t)-1 ? len : k);
		return k;
	}
	k = bkr_chunker_scan2(c, data, len, d->data, h);
	d->pos += k == (size_t)-1 ? len : k;
	return k;
}

void bkr_digest_zeros(bkr_digest *d, uint64_t len)
{
	if (d->form == BKR_DIGEST_PLAIN) {
		for (; len > 0;) {
			size_t k = len > sizeof(zero_buf) ? sizeof(zero_buf) : (size_t)len;
			bkr_hash_update(d->data, zero_buf, k);
			d->pos += k;
			len -= k;
		}
		return;
	}
	if (d->blen) {
		size_t k = BKR_DIGEST_BLOCK - d->blen < len ? BKR_DIGEST_BLOCK - d->blen : (size_t)len;
		memset(d->blk + d->blen, 0, k);
		d->blen += k;
		len -= k;
		if (d->blen < BKR_DIGEST_BLOCK)
			return;
		d->blen = 0;
		block(d, d->blk, BKR_DIGEST_BLOCK);
	}
	if (len >= BKR_DIGEST_BLOCK) {
		uint64_t whole = len - len % BKR_DIGEST_BLOCK;
		zero_run(d, whole);
		len -= whole;
	}
	if (len) {
		memset(d->blk, 0, (size_t)len);
		d->blen = (size_t)len;
	}
}

void bkr_digest_final(bkr_digest *d, bkr_id *out)
{
	uint8_t buf[sizeof(SPARSE_TAG) - 1 + 8 + 2 * BKR_ID_SIZE], *p = buf;
	bkr_id dh, rh;

	if (d->form == BKR_DIGEST_PLAIN) {
		bkr_hash_final(d->data, out);
		bkr_digest_reset(d, d->form);
		return;
	}
	if (d->blen) {
		size_t n = d->blen;
		d->blen = 0;
		block(d, d->blk, n);
	}
	flush_run(d);
	bkr_hash_final(d->data, &dh);
	bkr_hash_final(d->runs, &rh);
	memcpy(p, SPARSE_TAG, sizeof(SPARSE_TAG) - 1);
	p += sizeof(SPARSE_TAG) - 1;
	bkr_put_u64(p, d->pos);
	memcpy(p + 8, dh.b, BKR_ID_SIZE);
	memcpy(p + 8 + BKR_ID_SIZE, rh.b, BKR_ID_SIZE);
	bkr_sha256(buf, sizeof(buf), out);
	bkr_digest_reset(d, d->form);
}

int bkr_digest_fd(int fd, bkr_digest_form form, bkr_id *out, uint64_t *size)
{
	enum { BUF = 1 << 20 };
	bkr_digest *d = bkr_digest_new(form);
	uint8_t *buf = malloc(BUF);
	struct stat st;
	uint64_t pos = 0, end;
	bool sparse;
	int err = 0;

	if (!d || !buf) {
		err = bkr_error_oom();
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		err = bkr_error_set_errno(errno, "fstat");
		goto done;
	}
	end = (uint64_t)st.st_size;
	sparse = S_ISREG(st.st_mode) && (uint64_t)st.st_blocks * 512 < end;
	for (;;) {
		uint64_t data = pos, hole = UINT64_MAX;
		if (sparse && pos < end) {
			off_t o = lseek(fd, (off_t)pos, SEEK_DATA);
			if (o < 0 && errno == ENXIO) {
				data = end;
			} else if (o >= 0) {
				data = (uint64_t)o;
				off_t h = lseek(fd, o, SEEK_HOLE);
				if (h > o)
					hole = (uint64_t)h;
			} /* else: no SEEK_DATA here, read everything */
			if (data > end)
				data = end;
			bkr_digest_zeros(d, data - pos);
			pos = data;
			if (hole != UINT64_MAX && hole >= end)
				hole = UINT64_MAX; /* the last extent: read to the end, whatever it is now */
			if (pos >= end)
				break;
		}
		/* data from pos up to hole (or EOF) */
		bool eof = false;
		while (pos < hole) {
			size_t want = hole - pos < BUF ? (size_t)(hole - pos) : BUF;
			ssize_t r = pread(fd, buf, want, (off_t)pos);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				err = bkr_error_set_errno(errno, "read");
				goto done;
			}
			if (r == 0) {
				eof = true;
				break;
			}
			bkr_digest_update(d, buf, (size_t)r);
			pos += (uint64_t)r;
		}
		if (eof || hole == UINT64_MAX)
			break;
	}
	bkr_digest_final(d, out);
	if (size)
		*size = pos;
done:
	bkr_digest_free(d);
	free(buf);
	return err;
}
