/** @file
 * The key cache (docs/security.md "Key cache"): an opt-in cache, held by the
 * Linux kernel's keyring (add_key(2), keyctl(2), request_key(2)), of the key
 * that opens one key file of a repository, so that the commands run while
 * it is held derive nothing (scrypt: 0.1-0.2 s of CPU each).  Nothing is
 * written to disk; the kernel keeps the entry in the caller's session
 * keyring, readable by its possessors only, and removes it when its
 * timeout (KEYCTL_SET_TIMEOUT) passes.
 *
 * An entry is the key derived from the passphrase for key file ID (its
 * key-encryption key), not the master keys: it opens nothing without that
 * key file, and opening it checks the entry with the key file's GCM tag as
 * a passphrase is checked (bkr_key_unlock_cached, bkr/key.h).  Its
 * description is "bkr:<repository id in hex>"; its payload
 * (BKR_KEYCACHE_PAYLOAD bytes) is the magic "BKRKEYC1", the key file id (16
 * hex characters), the expiry (unix seconds, a little-endian u64 as in
 * the repository format: what `bkr key list` shows) and the key.
 */
#ifndef BKR_KEYCACHE_H
#define BKR_KEYCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "bkr/crypto.h"

#define BKR_KEYCACHE_DEFAULT_S (15 * 60) /**< bkr key unlock without --for */
#define BKR_KEYCACHE_MAX_S (24 * 3600)   /**< the longest --for */
#define BKR_KEYCACHE_PAYLOAD (8 + 16 + 8 + BKR_CRYPTO_KEY_SIZE)

/** Whether commands may use the cache: BKR_KEY_CACHE is not "0". */
bool bkr_keycache_enabled(void);

/**
 * Hold @p kek, the derived key of key file @p key_id (16 hex characters) of
 * repository @p repo_id, for @p seconds (1..BKR_KEYCACHE_MAX_S) in the
 * session keyring, replacing the repository's entry there.  *@p expires
 * gets the expiry (unix seconds).  The entry is made in the thread's
 * keyring, given its timeout and permissions (possessor: view, read,
 * search, link, setattr; user: view; nobody else anything) and only then
 * linked into the session keyring, so that no entry without a timeout is
 * ever there.  BKR_EUNAVAILABLE naming the call when the kernel refuses (no
 * keyring support, a container's seccomp filter, the quota).
 */
int bkr_keycache_put(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *key_id,
		     const uint8_t kek[BKR_CRYPTO_KEY_SIZE], int64_t seconds, int64_t *expires);

/**
 * The entry of repository @p repo_id: @p key_id gets its key file's id,
 * *@p expires its expiry, and *@p kek (when @p kek is not NULL) the key in
 * bkr_secure_alloc memory (bkr_secure_free(*kek, BKR_CRYPTO_KEY_SIZE)).
 * BKR_ENOTFOUND when there is none (none held, expired, revoked, or no
 * keyring here); BKR_ECORRUPT saying why when the entry under that
 * description is not one bkr wrote (its size, magic or key file id) or
 * cannot be read.
 */
int bkr_keycache_get(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], uint8_t **kek, char key_id[17], int64_t *expires);

/**
 * Remove the entry of repository @p repo_id (KEYCTL_INVALIDATE: from every
 * keyring at once).  0 when one was removed, BKR_ENOTFOUND when there was
 * none, BKR_EUNAVAILABLE when the kernel refuses.
 */
int bkr_keycache_drop(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE]);

#endif
