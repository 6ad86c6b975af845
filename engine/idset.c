/** @file
 * The blob id set (see idset.h).
 */
#include "idset.h"

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

static int grow(bkr_idset *s)
{
	bkr_idset n = BKR_IDSET_INIT;
	n.cap = s->cap ? s->cap * 2 : 1024;
	n.slots = malloc(n.cap * sizeof(*n.slots));
	n.used = calloc(n.cap, 1);
	if (!n.slots || !n.used) {
		free(n.slots);
		free(n.used);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->used[i])
			continue;
		size_t j = slot_of(&s->slots[i], n.cap);
		while (n.used[j])
			j = (j + 1) & (n.cap - 1);
		n.slots[j] = s->slots[i];
		n.used[j] = 1;
		n.n++;
	}
	free(s->slots);
	free(s->used);
	*s = n;
	return 0;
}

int bkr_idset_add(bkr_idset *s, const bkr_id *id)
{
	int err;
	if ((s->n + 1) * 4 > s->cap * 3 && (err = grow(s)) < 0)
		return err;
	size_t j = slot_of(id, s->cap);
	while (s->used[j]) {
		if (!bkr_id_cmp(&s->slots[j], id))
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->slots[j] = *id;
	s->used[j] = 1;
	s->n++;
	return 1;
}

bool bkr_idset_has(const bkr_idset *s, const bkr_id *id)
{
	if (!s->cap)
		return false;
	for (size_t j = slot_of(id, s->cap); s->used[j]; j = (j + 1) & (s->cap - 1))
		if (!bkr_id_cmp(&s->slots[j], id))
			return true;
	return false;
}

void bkr_idset_free(bkr_idset *s)
{
	free(s->slots);
	free(s->used);
	s->slots = NULL;
	s->used = NULL;
	s->cap = s->n = 0;
}
