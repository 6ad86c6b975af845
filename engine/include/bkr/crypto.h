/** @file
 * The cryptography of an encrypted repository (docs/format.md
 * "Encryption", docs/security.md): AES-256-GCM sealing with associated
 * data, HMAC-SHA-256 blob ids, the scrypt key derivation, the sealed forms
 * of objects and blobs, and memory for secrets (locked, out of core dumps,
 * wiped).  Everything goes through OpenSSL's EVP interfaces.
 *
 * A bkr_crypto holds a repository's master keys.  It is immutable once made,
 * so any number of threads may seal, open and make ids with it.  A NULL
 * bkr_crypto means a plain repository wherever one is accepted.
 */
#ifndef BKR_CRYPTO_H
#define BKR_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/hash.h"

#define BKR_CRYPTO_KEY_SIZE 32   /**< AES-256 and HMAC-SHA-256 keys */
#define BKR_CRYPTO_NONCE_SIZE 12
#define BKR_CRYPTO_TAG_SIZE 16
#define BKR_CRYPTO_OVERHEAD (BKR_CRYPTO_NONCE_SIZE + BKR_CRYPTO_TAG_SIZE) /**< 28 */
#define BKR_CRYPTO_REPO_ID_SIZE 16
#define BKR_CRYPTO_LABEL_SIZE 16

/** Sealed objects: magic, then nonce ‖ ciphertext ‖ tag. */
#define BKR_SEALED_MAGIC "BKRSEAL\0"
#define BKR_SEALED_MAGIC_SIZE 8
#define BKR_SEALED_OVERHEAD (BKR_SEALED_MAGIC_SIZE + BKR_CRYPTO_OVERHEAD) /**< 36 */

/** Sealed blobs: the inner header before the payload. */
#define BKR_SEALED_BLOB_HEADER 8
#define BKR_SEALED_BLOB_MIN 64 /**< smallest padded plaintext */

/* ---- memory for secrets -------------------------------------------------- */

/**
 * @p len zeroed bytes, page-aligned, locked into memory where the system
 * allows (mlock, best effort) and excluded from core dumps (MADV_DONTDUMP).
 * NULL on out of memory (no message set).
 */
void *bkr_secure_alloc(size_t len);
/** Wipe (OPENSSL_cleanse), unlock and free what bkr_secure_alloc gave; NULL is a no-op. */
void bkr_secure_free(void *p, size_t len);
/**
 * Lock every live bkr_secure_alloc block again (best effort): a forked child
 * inherits none of its parent's memory locks (mlock(2)), so a process that
 * goes on with its keys after fork (the mount, once it daemonises) calls this.
 */
void bkr_secure_relock(void);

/* ---- AEAD with an explicit key -------------------------------------------- */

/**
 * Seal @p len bytes of @p pt with AES-256-GCM under @p key and a fresh random
 * nonce, binding @p ad: @p out gets nonce ‖ ciphertext ‖ tag
 * (len + BKR_CRYPTO_OVERHEAD bytes).  @p out may not overlap @p pt.
 */
int bkr_aead_seal(const uint8_t key[BKR_CRYPTO_KEY_SIZE], const void *ad, size_t adlen,
		  const void *pt, size_t len, uint8_t *out);

/**
 * Open what bkr_aead_seal made (@p inlen bytes): @p out gets
 * inlen - BKR_CRYPTO_OVERHEAD bytes (it may be @p in + BKR_CRYPTO_NONCE_SIZE,
 * in place).  BKR_ECORRUPT "authentication failed" (naming @p what) when the
 * tag, the key or the associated data do not match; @p out is then zeroed.
 */
int bkr_aead_open(const uint8_t key[BKR_CRYPTO_KEY_SIZE], const void *ad, size_t adlen,
		  const uint8_t *in, size_t inlen, uint8_t *out, const char *what);

/* ---- key derivation -------------------------------------------------------- */

typedef struct {
	uint64_t n;          /**< scrypt cost, a power of two */
	uint32_t r, p;
	uint8_t salt[32];
} bkr_kdf_params;

#define BKR_KDF_N_DEFAULT (1u << 15) /**< docs/security.md "Why these scrypt parameters" */
#define BKR_KDF_R_DEFAULT 8u
#define BKR_KDF_P_DEFAULT 1u
#define BKR_KDF_MAXMEM (1ull << 30) /**< bytes scrypt may use, at most */
/** N·r·p at most: 16 times the default's work (the time one derivation may take) */
#define BKR_KDF_MAXWORK (16ull * BKR_KDF_N_DEFAULT * BKR_KDF_R_DEFAULT * BKR_KDF_P_DEFAULT)

/** The defaults with a fresh random salt (test builds: N from BKR_TEST_KDF_N when set). */
int bkr_kdf_params_new(bkr_kdf_params *out);

/** BKR_ECORRUPT naming @p what unless the parameters are within the bounds of docs/format.md. */
int bkr_kdf_params_check(const bkr_kdf_params *p, const char *what);

/** scrypt(@p pass, salt, N, r, p) into @p out (checked parameters only). */
int bkr_kdf_derive(const bkr_kdf_params *p, const char *pass, size_t passlen,
		   uint8_t out[BKR_CRYPTO_KEY_SIZE]);

/* ---- a repository's master keys -------------------------------------------- */

typedef struct bkr_crypto bkr_crypto;

/**
 * Keys for repository @p repo_id (16 bytes): @p enc (AES-256-GCM) and
 * @p mac (HMAC-SHA-256), copied into locked memory.
 */
int bkr_crypto_new(bkr_crypto **out, const uint8_t enc[BKR_CRYPTO_KEY_SIZE],
		   const uint8_t mac[BKR_CRYPTO_KEY_SIZE], const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE]);
/** Wipe and free; NULL is a no-op. */
void bkr_crypto_free(bkr_crypto *c);

/** The repository id the keys belong to. */
const uint8_t *bkr_crypto_repo_id(const bkr_crypto *c);

/** The master keys (borrowed, for wrapping them in a key file). */
const uint8_t *bkr_crypto_enc_key(const bkr_crypto *c);
const uint8_t *bkr_crypto_mac_key(const bkr_crypto *c);

/**
 * The id of a blob with this plaintext: HMAC-SHA-256 under the MAC key, or
 * SHA-256 when @p c is NULL (a plain repository).
 */
void bkr_crypto_blob_id(const bkr_crypto *c, const void *data, size_t len, bkr_id *out);
struct bkr_digest;
/** bkr_crypto_blob_id, feeding the same bytes to the content digest @p d in
 * the same pass (bkr_digest_update2). */
void bkr_crypto_blob_id_digest(const bkr_crypto *c, struct bkr_digest *d, const void *data, size_t len, bkr_id *out);
/** bkr_crypto_blob_id in pieces: @p h reset and started (an HMAC's inner key
 * block when @p c is not NULL); the blob's bytes fed to it by the caller; the
 * id from it (@p h reset after).  @p h holds key material while it runs:
 * bkr_hash_free cleanses it. */
void bkr_crypto_blob_id_start(const bkr_crypto *c, bkr_hash_ctx *h);
void bkr_crypto_blob_id_end(const bkr_crypto *c, bkr_hash_ctx *h, bkr_id *out);

/** The secret chunker seed of an encrypted repository (never 0). */
uint64_t bkr_crypto_chunker_seed(const bkr_crypto *c);

/** The 16-byte label @p text padded with NULs, then the repository id: the start of every AD. */
void bkr_crypto_ad_prefix(uint8_t out[BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE],
			  const char *label, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE]);

/** bkr_aead_seal / bkr_aead_open under the encryption key. */
int bkr_crypto_seal(const bkr_crypto *c, const void *ad, size_t adlen,
		    const void *pt, size_t len, uint8_t *out);
int bkr_crypto_open(const bkr_crypto *c, const void *ad, size_t adlen,
		    const uint8_t *in, size_t inlen, uint8_t *out, const char *what);

/* ---- sealed objects ------------------------------------------------------------ */

/** Whether the last component of object @p name is sealed in an encrypted repository. */
bool bkr_crypto_object_is_sealed(const char *name);

/**
 * The sealed form of object @p name (only its base name is bound) holding
 * @p len bytes of @p pt: *out is malloc'd, *outlen = len + BKR_SEALED_OVERHEAD.
 */
int bkr_crypto_seal_object(const bkr_crypto *c, const char *name, const void *pt, size_t len,
			   uint8_t **out, size_t *outlen);

/**
 * Open a sealed object @p name of @p len bytes: *out is malloc'd and
 * NUL-terminated, *outlen its length.  BKR_ECORRUPT naming @p what when it is
 * not a sealed object, is truncated, or fails authentication.
 */
int bkr_crypto_open_object(const bkr_crypto *c, const char *name, const uint8_t *in, size_t len,
			   uint8_t **out, size_t *outlen, const char *what);

/* ---- sealed blobs -------------------------------------------------------------- */

/** The padded plaintext length of a sealed blob whose payload is @p len bytes. */
size_t bkr_crypto_blob_padded(size_t len);

/** The stored (sealed) length of a blob whose payload is @p len bytes. */
size_t bkr_crypto_blob_sealed_len(size_t len);

/**
 * Seal a blob's payload (@p len bytes; @p codec is 0 for raw,
 * BKR_BLOB_FLAG_ZLIB or BKR_BLOB_FLAG_ZSTD for compressed): *out is
 * malloc'd, *outlen = bkr_crypto_blob_sealed_len(len).
 */
int bkr_crypto_seal_blob(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t codec,
			 const void *payload, size_t len, uint8_t **out, uint32_t *outlen);

/**
 * A blob sealed straight into where it is stored, piece by piece: the bytes
 * bkr_crypto_seal_blob would give, produced in order by successive
 * bkr_crypto_blob_sealer_fill calls into pieces of any size (a pack's
 * staging windows: bkr_store_upload_fill), so the sealed blob needs no
 * buffer and no copy of its own.  @p payload must stay unchanged until the
 * last byte is produced.  The cipher's state lives in the sealer and is
 * cleansed by bkr_crypto_blob_sealer_free.
 */
typedef struct bkr_blob_sealer bkr_blob_sealer;

/** Start sealing @p len bytes of @p payload (as bkr_crypto_seal_blob): a fresh nonce, the cipher set up. */
int bkr_crypto_blob_sealer_new(bkr_blob_sealer **out, const bkr_crypto *c, uint8_t type, const bkr_id *id,
			       uint8_t codec, const void *payload, size_t len);

/** The sealed length: bkr_crypto_blob_sealed_len of the payload's. */
size_t bkr_crypto_blob_sealer_len(const bkr_blob_sealer *s);

/**
 * The next @p n bytes of the sealed blob into @p out (BKR_EINVAL past its
 * length; after a failure every later call fails).
 */
int bkr_crypto_blob_sealer_fill(bkr_blob_sealer *s, uint8_t *out, size_t n);

/** Free (wiping the cipher's state), finished or not; NULL is a no-op. */
void bkr_crypto_blob_sealer_free(bkr_blob_sealer *s);

/**
 * Open a sealed blob of @p inlen bytes in place: on success *payload points
 * into @p in at the payload of *len bytes, *codec is its inner codec flag (0,
 * BKR_BLOB_FLAG_ZLIB or BKR_BLOB_FLAG_ZSTD).  BKR_ECORRUPT naming @p what on
 * any mismatch.
 */
int bkr_crypto_open_blob(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t *in, size_t inlen,
			 const uint8_t **payload, size_t *len, uint8_t *codec, const char *what);

/**
 * bkr_crypto_open_blob, except that a raw payload (codec 0) of exactly
 * @p dstlen bytes is deciphered straight into @p dst (*payload = @p dst), so
 * a reader that wants it there never copies it: the cipher's pass is the
 * copy.  Anything else (compressed, another length, @p dst NULL) is opened in
 * place as bkr_crypto_open_blob does.  The tag covers everything either way;
 * on any failure what was written to @p dst is wiped.
 */
int bkr_crypto_open_blob_to(const bkr_crypto *c, uint8_t type, const bkr_id *id, uint8_t *in, size_t inlen,
			    uint8_t *dst, size_t dstlen, const uint8_t **payload, size_t *len, uint8_t *codec,
			    const char *what);

#endif
