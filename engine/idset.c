/** @file
 * The blob id set and map (see idset.h).
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

/* Where @p id is, or the empty slot where it goes (the set has room). */
static size_t probe(const bkr_idset *s, const bkr_id *id)
{
	size_t j;
	for (j = slot_of(id, s->cap); s->used[j] && bkr_id_cmp(&s->slots[j], id); j = (j + 1) & (s->cap - 1))
		;
	return j;
}

/* Double the capacity (1024 at first), values too when @p values or the set has them. */
static int grow(bkr_idset *s, bool values)
{
	bkr_idset n = BKR_IDSET_INIT;
	n.cap = s->cap ? s->cap * 2 : 1024;
	n.slots = malloc(n.cap * sizeof(*n.slots));
	n.used = calloc(n.cap, 1);
	if (values || s->values)
		n.values = calloc(n.cap, sizeof(*n.values));
	if (!n.slots || !n.used || ((values || s->values) && !n.values)) {
		bkr_idset_free(&n);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->used[i])
			continue;
		size_t j = probe(&n, &s->slots[i]);
		n.slots[j] = s->slots[i];
		if (s->values)
			n.values[j] = s->values[i];
		n.used[j] = 1;
		n.n++;
	}
	bkr_idset_free(s);
	*s = n;
	return 0;
}

/* Add @p id unless present: 1 added, 0 present, BKR_ENOMEM; *slot gets its slot. */
static int insert(bkr_idset *s, const bkr_id *id, bool values, size_t *slot)
{
	int err;
	if (((s->n + 1) * 4 > s->cap * 3 || (values && !s->values)) && (err = grow(s, values)) < 0)
		return err;
	*slot = probe(s, id);
	if (s->used[*slot])
		return 0;
	s->slots[*slot] = *id;
	s->used[*slot] = 1;
	s->n++;
	return 1;
}

int bkr_idset_add(bkr_idset *s, const bkr_id *id)
{
	size_t j;
	return insert(s, id, false, &j);
}

bool bkr_idset_has(const bkr_idset *s, const bkr_id *id)
{
	return bkr_idset_get(s, id, NULL);
}

int bkr_idset_put(bkr_idset *s, const bkr_id *id, const bkr_id *value)
{
	size_t j;
	int added = insert(s, id, true, &j);
	if (added > 0)
		s->values[j] = *value;
	else if (added == 0 && bkr_id_cmp(&s->values[j], value)) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		return bkr_error_set(BKR_EINVAL, "blob %s: mapped to two different ids", hex);
	}
	return added;
}

bool bkr_idset_get(const bkr_idset *s, const bkr_id *id, bkr_id *value)
{
	size_t j;
	if (!s->cap)
		return false;
	j = probe(s, id);
	if (!s->used[j])
		return false;
	if (value)
		*value = s->values ? s->values[j] : (bkr_id){ 0 };
	return true;
}

void bkr_idset_free(bkr_idset *s)
{
	free(s->slots);
	free(s->values);
	free(s->used);
	*s = (bkr_idset)BKR_IDSET_INIT;
}
