/** @file
 * A set of blob ids, or a map from blob id to blob id (open addressing with
 * linear probing, grown at three quarters full; ids are uniformly random, so
 * their first 8 bytes are the hash).  The set marks what a walk has seen
 * (prune, verify, repair, the writer); the map is bkr copy's source ->
 * destination id map (engine/copy.c), which also remembers which blobs one
 * run dealt with already.  Not thread-safe.  Private to the engine.
 */
#ifndef BKR_IDSET_H
#define BKR_IDSET_H

#include <stdbool.h>
#include <stddef.h>

#include "bkr/hash.h"

typedef struct {
	bkr_id *slots;        /**< keys */
	bkr_id *values;       /**< the value of each slot once bkr_idset_put was used; else NULL */
	unsigned char *used;
	size_t cap, n;
} bkr_idset;

#define BKR_IDSET_INIT { NULL, NULL, NULL, 0, 0 }

/** 1 if added, 0 if already present, <0 (BKR_ENOMEM) on error. */
int bkr_idset_add(bkr_idset *s, const bkr_id *id);
bool bkr_idset_has(const bkr_idset *s, const bkr_id *id);

/**
 * Map @p id to @p value: 1 when added, 0 when @p id was mapped already (to
 * the same value; a different one is BKR_EINVAL "blob <id>: mapped to two
 * different ids"), BKR_ENOMEM.  Ids added by bkr_idset_add map to the zero id.
 */
int bkr_idset_put(bkr_idset *s, const bkr_id *id, const bkr_id *value);

/** Whether @p id is in @p s; *value (optional) gets what it maps to. */
bool bkr_idset_get(const bkr_idset *s, const bkr_id *id, bkr_id *value);

/** Free the storage (the set is empty and usable again); a zeroed set is a no-op. */
void bkr_idset_free(bkr_idset *s);

#endif
