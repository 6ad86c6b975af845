/** @file
 * The storage layer of an encrypted repository: a bkr_store over another
 * (local, S3, a cache) that seals every object bkr_crypto_object_is_sealed
 * names — index files, manifests, run manifests, records, trash batches —
 * on the way in and opens it on the way out (docs/format.md "Sealed
 * objects").  Packs (whose blobs pack.c seals one by one), key files,
 * config.json and locks pass through untouched.  The modules above it
 * (index, catalog, trash, recovery runs) read and write plaintext and never
 * know.
 */
#ifndef BKR_CRYPTO_STORE_H
#define BKR_CRYPTO_STORE_H

#include "bkr/crypto.h"
#include "bkr/store.h"

/**
 * Wrap @p inner (owned from now on, also on failure) with the keys of @p c
 * (copied).  The wrapper's location is the inner store's.
 */
int bkr_crypto_store_new(bkr_store **out, bkr_store *inner, const bkr_crypto *c);

#endif
