/** @file
 * A set of blob ids (open addressing; ids are uniformly random, so their
 * first 8 bytes are the hash).  Private to the engine.
 */
#ifndef BKR_IDSET_H
#define BKR_IDSET_H

#include <stdbool.h>
#include <stddef.h>

#include "bkr/hash.h"

typedef struct {
	bkr_id *slots;
	unsigned char *used;
	size_t cap, n;
} bkr_idset;

#define BKR_IDSET_INIT { NULL, NULL, 0, 0 }

/** 1 if added, 0 if already present, <0 (BKR_ENOMEM) on error. */
int bkr_idset_add(bkr_idset *s, const bkr_id *id);
bool bkr_idset_has(const bkr_idset *s, const bkr_id *id);
void bkr_idset_free(bkr_idset *s);

#endif
