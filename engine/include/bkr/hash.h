/** @file
 * Identifiers and hashing: SHA-256 blob ids, random pack ids, hex forms, and
 * the random bytes used for names.  The only module that touches OpenSSL.
 */
#ifndef BKR_HASH_H
#define BKR_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BKR_ID_SIZE 32      /**< bytes in a SHA-256 id */
#define BKR_ID_HEX 65       /**< hex chars + NUL */
#define BKR_PACK_ID_SIZE 16 /**< bytes in a pack id (random) */
#define BKR_PACK_ID_HEX 33

/** A blob id, tree id, index-file id, or content hash: SHA-256 of plaintext. */
typedef struct { uint8_t b[BKR_ID_SIZE]; } bkr_id;

/** A pack file's name: 16 random bytes.  A different id space from bkr_id. */
typedef struct { uint8_t b[BKR_PACK_ID_SIZE]; } bkr_pack_id;

/** SHA-256 of a buffer. */
void bkr_sha256(const void *data, size_t len, bkr_id *out);

struct evp_md_st;
/** OpenSSL's SHA-256, fetched once for the process (for EVP users: HMAC). */
const struct evp_md_st *bkr_sha256_md(void);

/** Streaming SHA-256. */
typedef struct bkr_hash_ctx bkr_hash_ctx;
bkr_hash_ctx *bkr_hash_new(void);              /**< NULL on OOM */
void bkr_hash_reset(bkr_hash_ctx *ctx);
void bkr_hash_update(bkr_hash_ctx *ctx, const void *data, size_t len);
void bkr_hash_final(bkr_hash_ctx *ctx, bkr_id *out); /**< ctx may be reset and reused */
void bkr_hash_free(bkr_hash_ctx *ctx);           /**< NULL is a no-op */
/** Make @p dst continue from @p src's state (a hash of a prefix, then of the whole). */
int bkr_hash_copy(bkr_hash_ctx *dst, const bkr_hash_ctx *src);
/**
 * Feed @p data to both @p a and @p b (each may hold bytes before): a file's
 * content hash and a chunk's id in one pass.  With the x86 SHA extensions
 * the two run interleaved, at about the cost of one (bkr_hash_pair_fast);
 * otherwise one after the other.
 */
void bkr_hash_update2(bkr_hash_ctx *a, bkr_hash_ctx *b, const void *data, size_t len);
/**
 * bkr_hash_update2, and the chunker's gear fingerprint *@p fp rolled over the
 * same bytes in the same pass (engine/gear.h, table @p gear): stops after the
 * first byte where the bits of @p mask are all zero (mask 0: never).  Returns
 * the index after that byte, or 0 when there is none; exactly the bytes
 * rolled are fed to @p a and @p b.  The chunker's scan with lanes
 * (bkr_chunker_scan2).
 */
size_t bkr_hash_update2_roll(bkr_hash_ctx *a, bkr_hash_ctx *b, const void *data, size_t len, const uint64_t *gear,
			     uint64_t *fp, uint64_t mask);
/** Whether bkr_hash_update2 costs about one hash, not two (SHA
 * extensions found, and BKR_SHANI=0 not set in the environment). */
bool bkr_hash_pair_fast(void);

int bkr_id_cmp(const bkr_id *a, const bkr_id *b);
bool bkr_id_is_zero(const bkr_id *id);
/** Writes 64 lowercase hex chars and a NUL into @p out. */
void bkr_id_to_hex(const bkr_id *id, char out[BKR_ID_HEX]);
/** Parses exactly 64 hex chars (either case); BKR_EINVAL otherwise. */
int bkr_id_from_hex(bkr_id *out, const char *hex);

void bkr_pack_id_to_hex(const bkr_pack_id *id, char out[BKR_PACK_ID_HEX]);
int bkr_pack_id_from_hex(bkr_pack_id *out, const char *hex);
int bkr_pack_id_cmp(const bkr_pack_id *a, const bkr_pack_id *b);

/** Cryptographically random bytes (for pack ids, backup-id suffixes, repo ids). */
int bkr_random_bytes(void *out, size_t len);

/** Lowercase hex of @p len bytes into @p out (2*len+1 bytes). */
void bkr_hex_encode(const void *data, size_t len, char *out);
/** Decode 2*len hex chars; BKR_EINVAL on a bad char. */
int bkr_hex_decode(void *out, size_t len, const char *hex);

#endif
