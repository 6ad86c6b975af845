/** @file
 * Unit tests of the key cache (engine/keycache.c, bkr_key_unlock_cached in
 * engine/key.c), in a session keyring of the test's own
 * (KEYCTL_JOIN_SESSION_KEYRING): an entry put, read back and dropped; the
 * bounds of its duration; entries bkr did not write (another size, another
 * magic, a key file id that is no id) refused as such; and the check at
 * use - the cached key opens the keys of its key file, and an entry whose
 * key file is gone, or whose key that key file refuses, or whose key file
 * is another repository's (an entry put under another repository's name), is not used, is removed and is named
 * to the note hook; a given passphrase and BKR_KEY_CACHE=0 leave it alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/key.h"
#include "bkr/keycache.h"
#include "bkr/store.h"
#include "testutil.h"

struct fx {
	char dir[PATH_MAX];
	bkr_store *s;
	bkr_crypto *c;
	uint8_t repo[16];
	char desc[64];
};

static char notes[4][1024];
static size_t nnotes;

static void on_note(void *ctx, const char *message)
{
	(void)ctx;
	if (nnotes < 4)
		snprintf(notes[nnotes], sizeof(notes[0]), "%s", message);
	nnotes++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t enc[32], mac[32];
	setenv("BKR_TEST_KDF_N", "1024", 1);
	unsetenv("BKR_PASSWORD");
	unsetenv("BKR_KEY_CACHE");
	if (!f || tu_mkdtemp_in(f->dir, sizeof(f->dir), "keycache") < 0 || bkr_store_local_open(&f->s, f->dir, 0) < 0 ||
	    bkr_random_bytes(f->repo, sizeof(f->repo)) < 0)
		return -1;
	memset(enc, 1, sizeof(enc));
	memset(mac, 2, sizeof(mac));
	if (bkr_crypto_new(&f->c, enc, mac, f->repo) < 0)
		return -1;
	strcpy(f->desc, "bkr:");
	bkr_hex_encode(f->repo, sizeof(f->repo), f->desc + 4);
	nnotes = 0;
	bkr_key_set_note(on_note, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bkr_keycache_drop(f->repo);
	bkr_store_free(f->s);
	bkr_crypto_free(f->c);
	tu_rmrf(f->dir);
	free(f);
	bkr_key_set_note(NULL, NULL);
	bkr_key_set_source(NULL);
	bkr_error_clear();
	return 0;
}

/* A payload under the repository's description, as anyone possessing the keyring could put it. */
static void forge(const struct fx *f, const void *payload, size_t len)
{
	assert_true(syscall(SYS_add_key, "user", f->desc, payload, len, KEY_SPEC_SESSION_KEYRING) > 0);
}

static void test_put_get_drop(void **state)
{
	struct fx *f = *state;
	uint8_t kek[32], *got = NULL;
	char id[17];
	int64_t expires, now = (int64_t)time(NULL);

	memset(kek, 0x5a, sizeof(kek));
	assert_int_equal(bkr_keycache_get(f->repo, &got, id, &expires), BKR_ENOTFOUND);
	assert_int_equal(bkr_keycache_put(f->repo, "0123456789abcdef", kek, 60, &expires), 0);
	assert_true(expires >= now + 60 && expires <= now + 62);
	assert_int_equal(bkr_keycache_get(f->repo, &got, id, &expires), 0);
	assert_string_equal(id, "0123456789abcdef");
	assert_memory_equal(got, kek, sizeof(kek));
	bkr_secure_free(got, BKR_CRYPTO_KEY_SIZE);
	/* a second put replaces the entry */
	memset(kek, 0x33, sizeof(kek));
	assert_int_equal(bkr_keycache_put(f->repo, "fedcba9876543210", kek, 30, &expires), 0);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), 0);
	assert_string_equal(id, "fedcba9876543210");
	assert_int_equal(bkr_keycache_drop(f->repo), 0);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ENOTFOUND);
	assert_int_equal(bkr_keycache_drop(f->repo), BKR_ENOTFOUND);
	/* the duration's bounds: nothing is put */
	assert_int_equal(bkr_keycache_put(f->repo, "0123456789abcdef", kek, 0, &expires), BKR_EINVAL);
	assert_int_equal(bkr_keycache_put(f->repo, "0123456789abcdef", kek, BKR_KEYCACHE_MAX_S + 1, &expires), BKR_EINVAL);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ENOTFOUND);
}

static void test_foreign_payloads(void **state)
{
	struct fx *f = *state;
	uint8_t p[BKR_KEYCACHE_PAYLOAD + 8];
	char id[17];
	int64_t expires;

	memset(p, 'x', sizeof(p));
	forge(f, p, 10);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "is not one bkr wrote (10 bytes)"));
	forge(f, p, sizeof(p));
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ECORRUPT);
	forge(f, p, BKR_KEYCACHE_PAYLOAD);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "another magic"));
	memcpy(p, "BKRKEYC1../../etc/passwd", 24);
	forge(f, p, BKR_KEYCACHE_PAYLOAD);
	assert_int_equal(bkr_keycache_get(f->repo, NULL, id, &expires), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "its key file id"));
	assert_string_equal(id, "");
}

static void test_unlock_cached(void **state)
{
	struct fx *f = *state;
	uint8_t *kek = bkr_secure_alloc(BKR_CRYPTO_KEY_SIZE), bad[32];
	bkr_crypto *c = NULL, *other = NULL;
	char id[17], got[17], name[64];
	int64_t expires;

	assert_non_null(kek);
	assert_int_equal(bkr_key_add(f->s, f->c, "secret", 6, id), 0);
	/* nothing cached: the passphrase, silently */
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 1);
	assert_int_equal(nnotes, 0);
	assert_int_equal(bkr_key_unlock_kek(f->s, f->repo, "secret", 6, &c, got, kek), 0);
	bkr_crypto_free(c);
	assert_int_equal(bkr_keycache_put(f->repo, id, kek, 60, &expires), 0);

	/* the cached key opens the same master keys, without the passphrase */
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 0);
	assert_string_equal(got, id);
	assert_memory_equal(bkr_crypto_enc_key(c), bkr_crypto_enc_key(f->c), 32);
	assert_memory_equal(bkr_crypto_mac_key(c), bkr_crypto_mac_key(f->c), 32);
	bkr_crypto_free(c);
	assert_int_equal(bkr_key_cached(f->s, f->repo, got, &expires), 0);
	assert_string_equal(got, id);

	/* a given passphrase, or BKR_KEY_CACHE=0: not looked at (and left in place) */
	setenv("BKR_PASSWORD", "secret", 1);
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 1);
	unsetenv("BKR_PASSWORD");
	setenv("BKR_KEY_CACHE", "0", 1);
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 1);
	unsetenv("BKR_KEY_CACHE");
	assert_null(c);
	assert_int_equal(nnotes, 0);

	/* another key under the right name: refused by the key file's tag, removed, noted */
	memset(bad, 0x77, sizeof(bad));
	assert_int_equal(bkr_keycache_put(f->repo, id, bad, 60, &expires), 0);
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 1);
	assert_null(c);
	assert_int_equal(nnotes, 1);
	assert_non_null(strstr(notes[0], "the key cache's entry is not used (removed from the cache)"));
	assert_non_null(strstr(notes[0], "it does not open its key file"));
	assert_int_equal(bkr_keycache_get(f->repo, NULL, got, &expires), BKR_ENOTFOUND);

	/* this repository's entry under another repository's name, read where its key file is (the
	 * same store): a key file of another repository, never opened */
	{
		uint8_t repo2[16];
		memset(repo2, 9, sizeof(repo2));
		assert_int_equal(bkr_keycache_put(repo2, id, kek, 60, &expires), 0);
		assert_int_equal(bkr_key_unlock_cached(f->s, repo2, &other, got), 1);
		assert_null(other);
		assert_int_equal(nnotes, 2);
		assert_non_null(strstr(notes[1], "a key file of another repository"));
		assert_int_equal(bkr_keycache_get(repo2, NULL, got, &expires), BKR_ENOTFOUND);
	}

	/* its key file removed (another session's key remove): gone, removed, noted */
	assert_int_equal(bkr_keycache_put(f->repo, id, kek, 60, &expires), 0);
	snprintf(name, sizeof(name), "keys/%s.json", id);
	assert_int_equal(bkr_store_delete(f->s, name), 0);
	assert_int_equal(bkr_key_unlock_cached(f->s, f->repo, &c, got), 1);
	assert_int_equal(nnotes, 3);
	assert_non_null(strstr(notes[2], "is gone (removed since 'bkr key unlock')"));
	assert_int_equal(bkr_keycache_get(f->repo, NULL, got, &expires), BKR_ENOTFOUND);
	assert_int_equal(bkr_key_cached(f->s, f->repo, got, &expires), 1);
	bkr_secure_free(kek, BKR_CRYPTO_KEY_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_payloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlock_cached, setup, teardown),
	};
	/* a session keyring of the test's own: nothing it does meets another's entries */
	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0) {
		perror("keyctl(KEYCTL_JOIN_SESSION_KEYRING)");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
