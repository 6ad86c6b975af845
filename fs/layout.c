/** @file
 * Offset arithmetic of a file's layout (see layout.h).
 *
 * A file of size S with holes H0..Hk (sorted) and chunks C0..Cn: the data
 * stream is the chunks concatenated; logical offset L outside every hole maps
 * to data offset L - (bytes of the holes that end at or before L).
 * chunk_start[i] is the data offset of chunk i, so a binary search finds the
 * chunk; hole_before[i] is the total length of holes 0..i-1.
 */
#include "layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

void bkrfs_layout_fini(bkrfs_layout *l)
{
	if (!l)
		return;
	free(l->chunks);
	free(l->chunk_start);
	free(l->holes);
	free(l->hole_before);
	memset(l, 0, sizeof(*l));
}

int bkrfs_layout_init(bkrfs_layout *l, uint64_t size, bkr_chunk_ref *chunks, size_t nchunks,
		      bkr_hole *holes, size_t nholes)
{
	uint64_t data = 0, hole = 0, end = 0;

	memset(l, 0, sizeof(*l));
	l->size = size;
	l->chunks = chunks;
	l->nchunks = nchunks;
	l->holes = holes;
	l->nholes = nholes;
	l->chunk_start = malloc((nchunks + 1) * sizeof(uint64_t));
	l->hole_before = malloc((nholes + 1) * sizeof(uint64_t));
	if (!l->chunk_start || !l->hole_before) {
		bkrfs_layout_fini(l);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < nchunks; i++) {
		l->chunk_start[i] = data;
		if (chunks[i].length == 0 || data + chunks[i].length < data)
			goto corrupt;
		data += chunks[i].length;
	}
	l->chunk_start[nchunks] = data;
	for (size_t i = 0; i < nholes; i++) {
		l->hole_before[i] = hole;
		if (holes[i].length == 0 || holes[i].offset < end ||
		    holes[i].offset + holes[i].length < holes[i].offset ||
		    holes[i].offset + holes[i].length > size)
			goto corrupt;
		end = holes[i].offset + holes[i].length;
		hole += holes[i].length;
	}
	l->hole_before[nholes] = hole;
	if (data + hole != size)
		goto corrupt;
	return 0;
corrupt:
	bkrfs_layout_fini(l);
	return bkr_error_set(BKR_ECORRUPT, "chunk/hole layout does not add up to the file size %llu",
			     (unsigned long long)size);
}

/* number of holes starting at or before @p off */
static size_t holes_upto(const bkrfs_layout *l, uint64_t off)
{
	size_t lo = 0, hi = l->nholes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->holes[mid].offset <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t bkrfs_layout_chunk_at(const bkrfs_layout *l, uint64_t doff)
{
	size_t lo = 0, hi = l->nchunks;

	if (doff >= l->chunk_start[l->nchunks])
		return l->nchunks;
	/* last i with chunk_start[i] <= doff */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->chunk_start[mid] <= doff)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

int bkrfs_layout_piece(const bkrfs_layout *l, uint64_t off, uint64_t len, bkrfs_extent *ext)
{
	size_t h, c;
	uint64_t doff, limit;

	memset(ext, 0, sizeof(*ext));
	if (off >= l->size || len == 0)
		return 0;
	if (len > l->size - off)
		len = l->size - off;
	h = holes_upto(l, off);
	if (h > 0 && off < l->holes[h - 1].offset + l->holes[h - 1].length) {
		uint64_t hend = l->holes[h - 1].offset + l->holes[h - 1].length;
		ext->hole = 1;
		ext->len = hend - off < len ? hend - off : len;
		return 1;
	}
	/* data: up to the next hole and the end of the chunk */
	limit = h < l->nholes ? l->holes[h].offset - off : len;
	if (limit < len)
		len = limit;
	doff = off - l->hole_before[h];
	c = bkrfs_layout_chunk_at(l, doff);
	if (c >= l->nchunks)
		return 0; /* cannot happen after init's check */
	ext->chunk = c;
	ext->chunk_off = doff - l->chunk_start[c];
	ext->len = l->chunks[c].length - ext->chunk_off;
	if (ext->len > len)
		ext->len = len;
	return 1;
}

int64_t bkrfs_layout_seek_data(const bkrfs_layout *l, uint64_t off)
{
	size_t h;

	if (off >= l->size)
		return -ENXIO;
	h = holes_upto(l, off);
	if (h > 0 && off < l->holes[h - 1].offset + l->holes[h - 1].length) {
		uint64_t hend = l->holes[h - 1].offset + l->holes[h - 1].length;
		return hend >= l->size ? -ENXIO : (int64_t)hend;
	}
	return (int64_t)off;
}

int64_t bkrfs_layout_seek_hole(const bkrfs_layout *l, uint64_t off)
{
	size_t h;

	if (off >= l->size)
		return -ENXIO;
	h = holes_upto(l, off);
	if (h > 0 && off < l->holes[h - 1].offset + l->holes[h - 1].length)
		return (int64_t)off;
	if (h < l->nholes)
		return (int64_t)l->holes[h].offset;
	return (int64_t)l->size; /* the implicit hole at EOF */
}
