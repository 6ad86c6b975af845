/** @file
 * The key cache in the kernel's keyring (bkr/keycache.h, docs/security.md
 * "Key cache"): add_key(2), request_key(2) and keyctl(2) through
 * syscall(2), no library.  The payload is built and read in
 * bkr_secure_alloc memory and wiped there.
 */
#include "bkr/keycache.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"

#include <errno.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "BKRKEYC1"
#define DESC_PREFIX "bkr:"

/* Key permissions (keyutils.h's names; <linux/keyctl.h> has none). */
#define POS_VIEW 0x01000000u
#define POS_READ 0x02000000u
#define POS_SEARCH 0x08000000u
#define POS_LINK 0x10000000u
#define POS_SETATTR 0x20000000u
#define USR_VIEW 0x00010000u

static void describe(char out[sizeof(DESC_PREFIX) + 2 * BKR_CRYPTO_REPO_ID_SIZE], const uint8_t *repo_id)
{
	memcpy(out, DESC_PREFIX, sizeof(DESC_PREFIX) - 1);
	bkr_hex_encode(repo_id, BKR_CRYPTO_REPO_ID_SIZE, out + sizeof(DESC_PREFIX) - 1);
}

static long keyctl5(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
	return syscall(SYS_keyctl, op, a2, a3, a4, a5);
}

/*
 * The keyring commands of this session search: the process's session
 * keyring, or, where no PAM module made one (a container, a shell without
 * pam_keyinit), the user's default session keyring, which the kernel then
 * searches instead.  Linking into KEY_SPEC_SESSION_KEYRING in that case
 * would not do: the kernel makes the process a new session keyring of its
 * own for the link, which dies with the process, and nothing after it finds
 * the entry.  (Asking for the session keyring's id without creating one
 * adopts the default one when there is none.)
 */
static long session_ring(void)
{
	long ses = keyctl5(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_SESSION_KEYRING, 0, 0, 0);
	long user_ses = keyctl5(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_USER_SESSION_KEYRING, 0, 0, 0);

	return ses > 0 && ses == user_ses ? KEY_SPEC_USER_SESSION_KEYRING : KEY_SPEC_SESSION_KEYRING;
}

/* The serial of the repository's entry: > 0, or 0 when there is none (no
 * keyring here counts as none: the cache is opt-in). */
static long find(const char *desc)
{
	long serial = syscall(SYS_request_key, "user", desc, NULL, 0);
	return serial > 0 ? serial : 0;
}

bool bkr_keycache_enabled(void)
{
	const char *v = getenv("BKR_KEY_CACHE");
	return !v || strcmp(v, "0");
}

int bkr_keycache_put(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *key_id,
		     const uint8_t kek[BKR_CRYPTO_KEY_SIZE], int64_t seconds, int64_t *expires)
{
	char desc[sizeof(DESC_PREFIX) + 2 * BKR_CRYPTO_REPO_ID_SIZE];
	uint8_t *payload;
	const char *call = NULL;
	long serial;
	int err = 0;

	*expires = 0;
	if (seconds < 1 || seconds > BKR_KEYCACHE_MAX_S)
		return bkr_error_set(BKR_EINVAL, "key cache: %lld s is not 1 s to %d h", (long long)seconds,
				     BKR_KEYCACHE_MAX_S / 3600);
	if (strlen(key_id) != 16)
		return bkr_error_set(BKR_EINVAL, "key cache: '%s' is not a key file id", key_id);
	if (!(payload = bkr_secure_alloc(BKR_KEYCACHE_PAYLOAD)))
		return bkr_error_oom();
	describe(desc, repo_id);
	*expires = (int64_t)time(NULL) + seconds;
	memcpy(payload, MAGIC, 8);
	memcpy(payload + 8, key_id, 16);
	bkr_put_u64(payload + 24, (uint64_t)*expires);
	memcpy(payload + 32, kek, BKR_CRYPTO_KEY_SIZE);
	/* made where no other process looks, then given its timeout and
	 * permissions, and only then linked where commands find it (replacing
	 * the repository's entry there): a kill between two calls leaves no
	 * entry without a timeout in the session keyring */
	serial = syscall(SYS_add_key, "user", desc, payload, (size_t)BKR_KEYCACHE_PAYLOAD, KEY_SPEC_THREAD_KEYRING);
	if (serial < 0)
		call = "add_key";
	else if (keyctl5(KEYCTL_SET_TIMEOUT, (unsigned long)serial, (unsigned long)seconds, 0, 0) < 0)
		call = "keyctl(KEYCTL_SET_TIMEOUT)";
	else if (keyctl5(KEYCTL_SETPERM, (unsigned long)serial,
			 POS_VIEW | POS_READ | POS_SEARCH | POS_LINK | POS_SETATTR | USR_VIEW, 0, 0) < 0)
		call = "keyctl(KEYCTL_SETPERM)";
	else if (keyctl5(KEYCTL_LINK, (unsigned long)serial, (unsigned long)session_ring(), 0, 0) < 0)
		call = "keyctl(KEYCTL_LINK) into the session keyring";
	if (call) {
		err = bkr_error_set(BKR_EUNAVAILABLE, "key cache: %s: %s (the kernel's keyring is not usable here)",
				    call, strerror(errno));
		*expires = 0;
		if (serial > 0)
			keyctl5(KEYCTL_INVALIDATE, (unsigned long)serial, 0, 0, 0);
	} else {
		keyctl5(KEYCTL_UNLINK, (unsigned long)serial, (unsigned long)KEY_SPEC_THREAD_KEYRING, 0, 0);
	}
	bkr_secure_free(payload, BKR_KEYCACHE_PAYLOAD);
	return err;
}

int bkr_keycache_get(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], uint8_t **kek, char key_id[17], int64_t *expires)
{
	char desc[sizeof(DESC_PREFIX) + 2 * BKR_CRYPTO_REPO_ID_SIZE];
	uint8_t *buf;
	long serial, n;
	int err = 0;

	if (kek)
		*kek = NULL;
	key_id[0] = 0;
	*expires = 0;
	describe(desc, repo_id);
	if (!(serial = find(desc)))
		return bkr_error_set(BKR_ENOTFOUND, "key cache: no entry %s", desc);
	/* one byte more than an entry: a longer payload shows as too long */
	if (!(buf = bkr_secure_alloc(BKR_KEYCACHE_PAYLOAD + 1)))
		return bkr_error_oom();
	n = keyctl5(KEYCTL_READ, (unsigned long)serial, (unsigned long)buf, BKR_KEYCACHE_PAYLOAD + 1, 0);
	if (n < 0 && (errno == EKEYEXPIRED || errno == EKEYREVOKED || errno == ENOKEY)) {
		err = bkr_error_set(BKR_ENOTFOUND, "key cache: no entry %s", desc);
		goto done;
	}
	if (n < 0) {
		err = bkr_error_set(BKR_ECORRUPT, "key cache entry %s cannot be read: %s", desc, strerror(errno));
		goto done;
	}
	if (n != BKR_KEYCACHE_PAYLOAD || memcmp(buf, MAGIC, 8)) {
		err = bkr_error_set(BKR_ECORRUPT, "key cache entry %s is not one bkr wrote (%ld bytes%s)", desc, n,
				    n == BKR_KEYCACHE_PAYLOAD ? ", another magic" : "");
		goto done;
	}
	for (int i = 0; i < 16; i++)
		if (!strchr("0123456789abcdef", buf[8 + i]) || !buf[8 + i]) {
			err = bkr_error_set(BKR_ECORRUPT, "key cache entry %s is not one bkr wrote (its key file id)",
					    desc);
			goto done;
		}
	memcpy(key_id, buf + 8, 16);
	key_id[16] = 0;
	*expires = (int64_t)(bkr_get_u64(buf + 24) & INT64_MAX);
	if (kek) {
		if (!(*kek = bkr_secure_alloc(BKR_CRYPTO_KEY_SIZE))) {
			err = bkr_error_oom();
			goto done;
		}
		memcpy(*kek, buf + 32, BKR_CRYPTO_KEY_SIZE);
	}
done:
	bkr_secure_free(buf, BKR_KEYCACHE_PAYLOAD + 1);
	return err;
}

int bkr_keycache_drop(const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE])
{
	char desc[sizeof(DESC_PREFIX) + 2 * BKR_CRYPTO_REPO_ID_SIZE];
	long serial;

	describe(desc, repo_id);
	if (!(serial = find(desc)))
		return bkr_error_set(BKR_ENOTFOUND, "key cache: no entry %s", desc);
	/* from every keyring at once; where invalidation is refused, out of
	 * the session keyring at least (the one bkr puts it in) */
	if (keyctl5(KEYCTL_INVALIDATE, (unsigned long)serial, 0, 0, 0) < 0 &&
	    keyctl5(KEYCTL_UNLINK, (unsigned long)serial, (unsigned long)session_ring(), 0, 0) < 0)
		return bkr_error_set(BKR_EUNAVAILABLE, "key cache entry %s: keyctl(KEYCTL_INVALIDATE): %s", desc,
				     strerror(errno));
	return 0;
}
