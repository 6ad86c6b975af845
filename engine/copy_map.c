/** @file
 * The id map of a copy (bkr/copy_map.h): open addressing with linear
 * probing, grown at three quarters full.
 */
#include "bkr/copy_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

static size_t slot_of(const bkr_id *id, size_t cap)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h));
	return (size_t)h & (cap - 1);
}

static int grow(bkr_copy_map *m)
{
	bkr_copy_map n = BKR_COPY_MAP_INIT;
	n.cap = m->cap ? m->cap * 2 : 1024;
	n.from = malloc(n.cap * sizeof(*n.from));
	n.to = malloc(n.cap * sizeof(*n.to));
	n.used = calloc(n.cap, 1);
	if (!n.from || !n.to || !n.used) {
		bkr_copy_map_free(&n);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;
		if (!m->used[i])
			continue;
		for (j = slot_of(&m->from[i], n.cap); n.used[j]; j = (j + 1) & (n.cap - 1))
			;
		n.from[j] = m->from[i];
		n.to[j] = m->to[i];
		n.used[j] = 1;
		n.n++;
	}
	bkr_copy_map_free(m);
	*m = n;
	return 0;
}

int bkr_copy_map_put(bkr_copy_map *m, const bkr_id *from, const bkr_id *to)
{
	size_t j;
	int err;
	if ((m->n + 1) * 4 > m->cap * 3 && (err = grow(m)) < 0)
		return err;
	for (j = slot_of(from, m->cap); m->used[j]; j = (j + 1) & (m->cap - 1)) {
		if (bkr_id_cmp(&m->from[j], from))
			continue;
		if (bkr_id_cmp(&m->to[j], to)) {
			char hex[BKR_ID_HEX];
			bkr_id_to_hex(from, hex);
			return bkr_error_set(BKR_EINVAL, "blob %s: mapped to two different ids", hex);
		}
		return 0;
	}
	m->from[j] = *from;
	m->to[j] = *to;
	m->used[j] = 1;
	m->n++;
	return 1;
}

bool bkr_copy_map_get(const bkr_copy_map *m, const bkr_id *from, bkr_id *to)
{
	if (!m->cap)
		return false;
	for (size_t j = slot_of(from, m->cap); m->used[j]; j = (j + 1) & (m->cap - 1)) {
		if (!bkr_id_cmp(&m->from[j], from)) {
			if (to)
				*to = m->to[j];
			return true;
		}
	}
	return false;
}

size_t bkr_copy_map_count(const bkr_copy_map *m)
{
	return m->n;
}

void bkr_copy_map_free(bkr_copy_map *m)
{
	free(m->from);
	free(m->to);
	free(m->used);
	*m = (bkr_copy_map)BKR_COPY_MAP_INIT;
}
