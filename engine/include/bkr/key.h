/** @file
 * Key files and the passphrases that open them (docs/format.md "Key files",
 * docs/security.md "Keys", "Passphrases").  A key file wraps a repository's
 * master keys (bkr/crypto.h) under a key derived from one passphrase with
 * scrypt; several key files around the same master keys let several people
 * hold their own passphrase, and a passphrase changes without rewriting
 * data.
 *
 * Passphrases come from a process-wide source set once by the program
 * (bkr_key_set_source: a file, a command, BKR_PASSWORD, or a prompt on the
 * terminal without echo); the first one obtained is kept, in locked memory,
 * for the rest of the process, so a program that opens a repository twice
 * asks once.  Passphrases and keys are never logged or put in messages.
 */
#ifndef BKR_KEY_H
#define BKR_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/crypto.h"
#include "bkr/store.h"

#define BKR_KEY_ID_HEX 17 /**< 16 hex characters + NUL */
#define BKR_KEY_FILE_MAX (64u << 10)

/** A parsed key file (nothing secret: the keys are still sealed). */
typedef struct {
	char id[BKR_KEY_ID_HEX];   /**< from the file name */
	uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE];
	char created[40];
	char hostname[256];
	char username[256];
	bkr_kdf_params kdf;
	uint8_t sealed[2 * BKR_CRYPTO_KEY_SIZE + BKR_CRYPTO_OVERHEAD];
	bool current;              /**< bkr_key_list: the one that opened the repository */
} bkr_key_file;

/**
 * Parse and check key file text (checksummed JSON, every field and the KDF
 * bounds).  BKR_ECORRUPT naming @p what on anything wrong.
 */
int bkr_key_parse(bkr_key_file *out, const char *text, size_t len, const char *what);

/**
 * Open key file @p kf with a passphrase: *out gets the master keys.
 * BKR_EKEY when the passphrase does not open it.
 */
int bkr_key_open(const bkr_key_file *kf, const char *pass, size_t passlen, bkr_crypto **out);

/**
 * Write a new key file wrapping the master keys of @p c under @p pass
 * into store @p s (keys/<id>.json, never replacing); @p id_out gets its id.
 */
int bkr_key_add(bkr_store *s, const bkr_crypto *c, const char *pass, size_t passlen,
		char id_out[BKR_KEY_ID_HEX]);

/**
 * Every key file of store @p s, sorted by creation time; *out is malloc'd.
 * A damaged key file, or (when @p repo_id is not NULL) one of another
 * repository, is reported through @p warn (when not NULL) and left out.
 */
int bkr_key_list(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], bkr_key_file **out, size_t *n,
		 void (*warn)(void *ctx, const char *message), void *ctx);

/**
 * Try @p pass on every key file of @p s belonging to repository @p repo_id:
 * *out gets the master keys, @p id_out (may be NULL) the key file that
 * opened.  BKR_EKEY "wrong passphrase" when none opens (naming the damaged
 * key files, which could not be tried); BKR_ECORRUPT naming the damaged key
 * files and why (the first one's message) when no key file is usable;
 * BKR_ENOTFOUND when there is no key file.  Damaged here: unreadable,
 * malformed, of another repository, or a key file whose KDF fails — one
 * key file, never the repository: the others are tried.
 */
int bkr_key_unlock(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *pass,
		   size_t passlen, bkr_crypto **out, char id_out[BKR_KEY_ID_HEX]);

/**
 * bkr_key_unlock; @p kek_out (BKR_CRYPTO_KEY_SIZE bytes of the caller's
 * bkr_secure_alloc memory, may be NULL) gets the key derived from the
 * passphrase for the key file that opened (what bkr key unlock caches).
 */
int bkr_key_unlock_kek(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *pass, size_t passlen,
		       bkr_crypto **out, char id_out[BKR_KEY_ID_HEX], uint8_t *kek_out);

/**
 * Open the keys of repository @p repo_id with the key cache's entry
 * (bkr/keycache.h, docs/security.md "Key cache"), checked as a passphrase
 * is: its key file must still be in @p s, be this repository's, and its GCM
 * tag must accept the cached key.  0: *out and @p id_out (may be NULL) are
 * set.  1: use the passphrase - the cache is not to be used (a passphrase
 * source is given: a file, a command, BKR_PASSWORD; or BKR_KEY_CACHE=0),
 * holds no entry, or holds one that does not fit, which is then removed
 * from the cache and named in one line to the note hook
 * (bkr_key_set_note).  Negative: an error reading the key file (I/O) or
 * out of memory.
 */
int bkr_key_unlock_cached(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], bkr_crypto **out,
			  char id_out[BKR_KEY_ID_HEX]);

/**
 * Whether the key cache holds an entry for repository @p repo_id that fits
 * (checked as bkr_key_unlock_cached checks it, whatever the passphrase
 * source and BKR_KEY_CACHE): 0, with @p id_out its key file and *@p expires
 * its expiry (unix seconds); 1 when it holds none, or one that does not fit
 * (removed and noted as there); negative on an error.
 */
int bkr_key_cached(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], char id_out[BKR_KEY_ID_HEX],
		   int64_t *expires);

/**
 * Where bkr_key_unlock_cached says (one line, no newline) that a cache
 * entry is not used (process-wide; default: nowhere).
 */
void bkr_key_set_note(void (*note)(void *ctx, const char *message), void *ctx);

/**
 * Remove key file @p id (a unique prefix of it) from @p s; a damaged key
 * file (or one of another repository than @p repo_id) is removed by its id
 * (its file name) too.  Refused (BKR_EINVAL) for the last usable key file
 * and for @p current (the one in use).  Checked and done under the keys
 * lock (locks/keys.lock, exclusive, waiting unless bkr_key_set_lock_wait
 * says not to; bkr_key_add takes it too), so
 * that concurrent removals can never leave no usable key file.  The key
 * cache's entry of this session that names the removed key file is removed
 * too (bkr/keycache.h).
 * @p removed (may be NULL) gets the full id of the key file removed.
 */
int bkr_key_remove(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *id,
		   const char *current, char removed[BKR_KEY_ID_HEX]);

/**
 * When bkr_key_add or bkr_key_remove finds the keys lock held
 * (process-wide, like bkr_key_set_source): with @p no_wait, BKR_ELOCKED at
 * once, naming the holder and "not waiting (--no-wait)"; else
 * @p waiting(@p ctx, @p holder) once (may be NULL) - @p holder is the
 * store's word on who holds it (on S3 the pid, host and last refresh, and
 * when it is stale) - and then a wait.  Default: wait, silently.
 */
void bkr_key_set_lock_wait(bool no_wait, void (*waiting)(void *ctx, const char *holder), void *ctx);

/* ---- passphrases -------------------------------------------------------------- */

/** Where passphrases come from (the program's options); NULL members are unset. */
typedef struct {
	const char *file;        /**< --password-file: its first line */
	const char *command;     /**< --password-command: first line of `sh -c` output */
	const char *new_file;    /**< --new-password-file (init, key add, key passwd) */
	const char *env;         /**< the variable read instead of BKR_PASSWORD (bkr copy: BKR_FROM_PASSWORD) */
	const char *options;     /**< the program's options for file and command, for the "no passphrase"
				      message (NULL: "--password-file or --password-command"; bkrfs: -o ...) */
} bkr_key_source;

/** Set the process-wide source (copied pointers: they must outlive its use). */
void bkr_key_set_source(const bkr_key_source *src);

/**
 * The passphrase for repository @p repo (named in the prompt): from the
 * file, the command, BKR_PASSWORD (or the source's env), or a prompt on /dev/tty.  The first one
 * obtained is kept for the process.  *out is borrowed (locked memory, wiped
 * by bkr_key_forget).  BKR_EINVAL when there is no source (no TTY) or it is
 * empty; BKR_EUNAVAILABLE when the command fails.  @p cache_tried: the key
 * cache was asked for the repository's key and held none, so the message
 * when there is no source also names 'bkr key unlock'.
 */
int bkr_key_passphrase(const char *repo, bool cache_tried, const char **out, size_t *len);

/**
 * A new passphrase (init, key add, key passwd): from the new-file, else
 * BKR_NEW_PASSWORD, else (only when @p use_current: init) the current
 * passphrase's file, command or BKR_PASSWORD, else prompted twice.  *out is
 * borrowed like bkr_key_passphrase's.
 */
int bkr_key_new_passphrase(bool use_current, const char **out, size_t *len);

/** Wipe the kept passphrases. */
void bkr_key_forget(void);

/**
 * Wipe BKR_PASSWORD (or the source's env) and BKR_NEW_PASSWORD from the
 * environment: their values overwritten where they are (the process's
 * initial environment, which /proc/PID/environ and a core dump show, holds
 * them even after unsetenv), then unset.  For a process that has opened its
 * keys and runs on (the mount): its children get neither.
 */
void bkr_key_scrub_env(void);

/**
 * The environment for a child that is not given a passphrase (a recovery
 * command, a validator, an alert command, the password command): the
 * process's own without any BKR_*PASSWORD variable and without the source's
 * env.  A NULL-terminated array for execve whose strings are borrowed from
 * environ; free() the array only.  NULL when out of memory.
 */
char **bkr_key_child_environ(void);

#endif
