/** @file
 * Unit tests of key files and passphrases (engine/key.c): add, list, unlock
 * with the right and a wrong passphrase, two holders, a key file of another
 * repository, tampered key files (a flipped bit in the sealed keys, weaker
 * KDF parameters with a recomputed checksum, a broken checksum, hostile
 * parameters), damaged key files named (wrong passphrase, none usable) and
 * removed by id, removing (not the last, not the one in use, prefixes), and
 * passphrases from a file, a command and BKR_PASSWORD, and the order of the
 * sources of a new one (BKR_NEW_PASSWORD before BKR_PASSWORD at init); a
 * password file's first line refused beyond 1023 bytes, a directory named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "bkr/io.h"
#include "bkr/manifest.h"
#include "bkr/store.h"
#include "testutil.h"

static const uint8_t repo_a[16] = "repository-A-id";
static const uint8_t repo_b[16] = "repository-B-id";

struct fx {
	char dir[PATH_MAX];
	bkr_store *s;
	bkr_crypto *c;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t enc[32], mac[32];
	setenv("BKR_TEST_KDF_N", "1024", 1);
	if (!f || tu_mkdtemp_in(f->dir, sizeof(f->dir), "key") < 0 ||
	    bkr_store_local_open(&f->s, f->dir, 0) < 0)
		return -1;
	memset(enc, 1, sizeof(enc));
	memset(mac, 2, sizeof(mac));
	if (bkr_crypto_new(&f->c, enc, mac, repo_a) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bkr_store_free(f->s);
	bkr_crypto_free(f->c);
	tu_rmrf(f->dir);
	free(f);
	bkr_key_forget();
	bkr_key_set_source(NULL);
	return 0;
}

static char *read_key(struct fx *f, const char *id, size_t *len)
{
	char name[64];
	bkr_store_view v = { 0 };
	char *text;
	snprintf(name, sizeof(name), "keys/%s.json", id);
	assert_int_equal(bkr_store_view_get(f->s, name, 1 << 16, &v), 0);
	assert_non_null(text = malloc(v.len + 1));
	memcpy(text, v.data, v.len);
	text[v.len] = '\0';
	*len = v.len;
	bkr_store_view_release(&v);
	return text;
}

/* Replace key file @p id by @p text (re-checksummed when @p reseal). */
static void write_key(struct fx *f, const char *id, const char *text, bool reseal)
{
	char name[64], *sealed = NULL, *body;
	size_t len;
	snprintf(name, sizeof(name), "keys/%s.json", id);
	assert_int_equal(bkr_store_delete(f->s, name), 0);
	if (reseal) {
		/* drop the old ,"sha256":"..." member, then seal again */
		body = strdup(text);
		char *cut = strstr(body, ",\"sha256\":\"");
		assert_non_null(cut);
		strcpy(cut, "}");
		assert_int_equal(bkr_json_seal(body, &sealed, &len), 0);
		free(body);
		assert_int_equal(bkr_store_put(f->s, name, sealed, len), 0);
		free(sealed);
	} else {
		assert_int_equal(bkr_store_put(f->s, name, text, strlen(text)), 0);
	}
}

static void test_add_unlock_two_holders(void **state)
{
	struct fx *f = *state;
	char id1[BKR_KEY_ID_HEX], id2[BKR_KEY_ID_HEX], got[BKR_KEY_ID_HEX];
	bkr_crypto *c = NULL;
	bkr_key_file *v = NULL;
	size_t n = 0, len;
	bkr_id x, y;
	char *text;

	assert_int_equal(bkr_key_add(f->s, f->c, "alice pass", 10, id1), 0);
	assert_int_equal(bkr_key_add(f->s, f->c, "bob pass", 8, id2), 0);
	assert_int_equal(strlen(id1), 16);
	assert_string_not_equal(id1, id2);
	/* nothing secret in the file: neither the keys nor the passphrase */
	text = read_key(f, id1, &len);
	assert_null(strstr(text, "alice"));
	assert_non_null(strstr(text, "\"algorithm\":\"scrypt\""));
	assert_non_null(strstr(text, "\"n\":1024"));
	free(text);

	assert_int_equal(bkr_key_unlock(f->s, repo_a, "alice pass", 10, &c, got), 0);
	assert_string_equal(got, id1);
	bkr_crypto_blob_id(c, "abc", 3, &x);
	bkr_crypto_blob_id(f->c, "abc", 3, &y);
	assert_memory_equal(x.b, y.b, 32); /* the same master keys */
	bkr_crypto_free(c);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "bob pass", 8, &c, got), 0);
	assert_string_equal(got, id2);
	bkr_crypto_free(c);

	assert_int_equal(bkr_key_unlock(f->s, repo_a, "mallory", 7, &c, got), BKR_EKEY);
	assert_null(c);
	assert_non_null(strstr(bkr_error_message(), "wrong passphrase"));
	assert_non_null(strstr(bkr_error_message(), "2 key files"));
	assert_null(strstr(bkr_error_message(), "mallory"));
	/* key files of another repository do not count: each is named, as a
	 * damaged one is, never taken for an empty keys/ */
	assert_int_equal(bkr_key_unlock(f->s, repo_b, "alice pass", 10, &c, got), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "2 damaged"));
	assert_non_null(strstr(bkr_error_message(), id1));
	assert_non_null(strstr(bkr_error_message(), "a key file of another repository"));
	assert_int_equal(bkr_key_list(f->s, repo_b, &v, &n, NULL, NULL), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(bkr_key_list(f->s, NULL, &v, &n, NULL, NULL), 0);
	assert_int_equal(n, 2);
	free(v);

	assert_int_equal(bkr_key_list(f->s, repo_a, &v, &n, NULL, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].kdf.n, 1024);
	free(v);

	/* remove: not the one in use, a prefix, then not the last */
	assert_int_equal(bkr_key_remove(f->s, repo_a, id1, id1, NULL), BKR_EINVAL);
	assert_int_equal(bkr_key_remove(f->s, repo_a, "zz", id1, NULL), BKR_ENOTFOUND);
	char prefix[5];
	memcpy(prefix, id2, 4);
	prefix[4] = 0;
	char removed[BKR_KEY_ID_HEX] = "x";
	assert_int_equal(bkr_key_remove(f->s, repo_a, prefix, id1, removed), 0);
	assert_string_equal(removed, id2); /* the full id, not the prefix */
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "bob pass", 8, &c, got), BKR_EKEY);
	assert_int_equal(bkr_key_remove(f->s, repo_a, id1, NULL, NULL), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "last key file"));
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "alice pass", 10, &c, got), 0);
	bkr_crypto_free(c);
	assert_int_equal(bkr_key_add(f->s, f->c, "", 0, id2), BKR_EINVAL);
}

static void test_tampered_key_files(void **state)
{
	struct fx *f = *state;
	char id[BKR_KEY_ID_HEX], *text, *p, what[] = "k";
	bkr_crypto *c = NULL;
	bkr_key_file kf;
	size_t len;

	assert_int_equal(bkr_key_add(f->s, f->c, "secret", 6, id), 0);
	text = read_key(f, id, &len);
	assert_int_equal(bkr_key_parse(&kf, text, len, what), 0);

	/* a flipped bit in the sealed keys, checksum recomputed: like a wrong passphrase */
	p = strstr(text, "\"keys\":\"") + 8;
	{
		char was = *p;
		*p = was == '0' ? '1' : '0';
		write_key(f, id, text, true);
		assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), BKR_EKEY);
		*p = was;
	}
	/* weaker parameters (N 1024 -> 2048 here: any change) with the checksum recomputed */
	p = strstr(text, "\"n\":1024");
	memcpy(p, "\"n\":2048", 8);
	write_key(f, id, text, true);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), BKR_EKEY);
	memcpy(p, "\"n\":1024", 8);
	/* a damaged file (checksum broken): corrupt, not a wrong passphrase */
	p = strstr(text, "\"hostname\":\"") + 12;
	*p ^= 1;
	write_key(f, id, text, false);
	assert_int_equal(bkr_key_parse(&kf, text, len, what), BKR_ECORRUPT);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "1 damaged"));
	*p ^= 1;
	/* hostile parameters (checksum recomputed) are refused before scrypt runs */
	p = strstr(text, "\"n\":1024");
	memcpy(p, "\"n\":1023", 8);
	write_key(f, id, text, true);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "1 damaged"));
	memcpy(p, "\"n\":1024", 8);
	/* p counts in the work bound: N 2^16 r 8 p 16 (64 MiB, 32 times the
	 * default's work) is a damaged key file, named, refused before scrypt */
	{
		char *hostile = malloc(len + 16), *q;
		assert_non_null(hostile);
		memcpy(hostile, text, len + 1);
		q = strstr(hostile, "\"n\":1024");
		memmove(q + 9, q + 8, strlen(q + 8) + 1);
		memcpy(q, "\"n\":65536", 9);
		q = strstr(hostile, "\"p\":1");
		memmove(q + 6, q + 5, strlen(q + 5) + 1);
		memcpy(q, "\"p\":16", 6);
		assert_int_equal(bkr_key_parse(&kf, hostile, strlen(hostile), what), BKR_ECORRUPT);
		write_key(f, id, hostile, true);
		free(hostile);
		assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "scrypt N 65536 r 8 p 16"));
		assert_non_null(strstr(bkr_error_message(), id));
	}
	/* restored: opens again */
	write_key(f, id, text, false);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "secret", 6, &c, NULL), 0);
	bkr_crypto_free(c);
	free(text);
	/* not JSON, too large, empty */
	assert_int_equal(bkr_key_parse(&kf, "{", 1, what), BKR_ECORRUPT);
	assert_int_equal(bkr_key_parse(&kf, "", 0, what), BKR_ECORRUPT);
}

/* Damaged key files are named, not hidden: in the wrong-passphrase message
 * (pointing to bkr key list), in the error when none is usable (files and
 * why), and bkr_key_remove deletes one by its id (never the last usable). */
static void test_damaged_key_files(void **state)
{
	struct fx *f = *state;
	char good[BKR_KEY_ID_HEX], bad[BKR_KEY_ID_HEX], name[64], want[128], prefix[7];
	bkr_crypto *c = NULL;
	size_t len;
	char *text;

	assert_int_equal(bkr_key_add(f->s, f->c, "alice", 5, good), 0);
	assert_int_equal(bkr_key_add(f->s, f->c, "bob", 3, bad), 0);
	text = read_key(f, bad, &len);
	strstr(text, "\"hostname\":\"")[12] ^= 1; /* the checksum no longer matches */
	write_key(f, bad, text, false);
	free(text);
	snprintf(want, sizeof(want), "keys/%s.json", bad);

	/* a wrong passphrase: the damaged one was not tried, and is named */
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "bob", 3, &c, NULL), BKR_EKEY);
	assert_non_null(strstr(bkr_error_message(), "none of the 1 key file in keys/"));
	assert_non_null(strstr(bkr_error_message(), "1 damaged key file could not be tried"));
	assert_non_null(strstr(bkr_error_message(), want));
	assert_non_null(strstr(bkr_error_message(), "bkr key list"));
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "alice", 5, &c, NULL), 0);
	bkr_crypto_free(c);
	c = NULL;

	/* the good one is the last usable: refused; the damaged one goes by its id (a prefix) */
	assert_int_equal(bkr_key_remove(f->s, repo_a, good, NULL, NULL), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "last key file"));
	memcpy(prefix, bad, 6);
	prefix[6] = 0;
	char removed[BKR_KEY_ID_HEX] = "x";
	assert_int_equal(bkr_key_remove(f->s, repo_a, prefix, good, removed), 0);
	assert_string_equal(removed, bad);
	snprintf(name, sizeof(name), "keys/%s.json", bad);
	uint64_t size;
	assert_int_equal(bkr_store_stat(f->s, name, &size), BKR_ENOTFOUND);
	assert_int_equal(bkr_key_remove(f->s, repo_a, bad, good, NULL), BKR_ENOTFOUND);

	/* every key file unusable: the error names them and why */
	text = read_key(f, good, &len);
	strstr(text, "\"hostname\":\"")[12] ^= 1;
	write_key(f, good, text, false);
	free(text);
	assert_int_equal(bkr_key_add(f->s, f->c, "carol", 5, bad), 0);
	text = read_key(f, bad, &len);
	memcpy(strstr(text, "\"n\":1024"), "\"n\":1023", 8);
	write_key(f, bad, text, true);
	free(text);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "alice", 5, &c, NULL), BKR_ECORRUPT);
	assert_null(c);
	assert_non_null(strstr(bkr_error_message(), "2 damaged"));
	snprintf(want, sizeof(want), "keys/%s.json", good);
	assert_non_null(strstr(bkr_error_message(), want));
	snprintf(want, sizeof(want), "keys/%s.json", bad);
	assert_non_null(strstr(bkr_error_message(), want));
	/* why: the first one's own message (a checksum or a KDF bound) */
	assert_true(strstr(bkr_error_message(), "checksum mismatch") || strstr(bkr_error_message(), "scrypt N 1023"));
}

/* A key file whose KDF cannot run is one unusable key file, never the
 * repository's end: scrypt's rule N < 2^(16 r) is checked as the key file
 * is read (N 2^17 r 1 passes every other bound), and a derivation that fails
 * all the same leaves that file out and tries the others. */
static void test_kdf_failure_one_key_file(void **state)
{
	struct fx *f = *state;
	char good[BKR_KEY_ID_HEX], bad[BKR_KEY_ID_HEX], got[BKR_KEY_ID_HEX], want[64];
	bkr_crypto *c = NULL;
	bkr_key_file *v = NULL;
	size_t n = 0, len;
	char *text, *hostile, *q;

	assert_int_equal(bkr_key_add(f->s, f->c, "alice", 5, good), 0);
	assert_int_equal(bkr_key_add(f->s, f->c, "bob", 3, bad), 0);
	text = read_key(f, bad, &len);
	assert_non_null(hostile = malloc(len + 16));
	memcpy(hostile, text, len + 1);
	q = strstr(hostile, "\"n\":1024");
	memmove(q + 10, q + 8, strlen(q + 8) + 1);
	memcpy(q, "\"n\":131072", 10);
	q = strstr(hostile, "\"r\":8");
	memcpy(q, "\"r\":1", 5);
	write_key(f, bad, hostile, true);
	free(hostile);
	free(text);
	snprintf(want, sizeof(want), "keys/%s.json", bad);

	/* a damaged key file, named; the other holder opens; a wrong passphrase is a wrong passphrase */
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "alice", 5, &c, got), 0);
	assert_string_equal(got, good);
	bkr_crypto_free(c);
	c = NULL;
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "mallory", 7, &c, NULL), BKR_EKEY);
	assert_non_null(strstr(bkr_error_message(), "none of the 1 key file in keys/"));
	assert_non_null(strstr(bkr_error_message(), want));
	assert_int_equal(bkr_key_list(f->s, repo_a, &v, &n, NULL, NULL), 0);
	assert_int_equal(n, 1);
	free(v);
	char removed[BKR_KEY_ID_HEX];
	assert_int_equal(bkr_key_remove(f->s, repo_a, bad, good, removed), 0);
	assert_string_equal(removed, bad);

	/* a derivation that fails anyway (an injected fault): that key file is
	 * left out, named, and the next one is tried */
	assert_int_equal(bkr_key_add(f->s, f->c, "bob", 3, bad), 0);
	setenv("BKR_FAULT", "kdf:1", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "bob", 3, &c, got), 0);
	assert_string_equal(got, bad);
	bkr_crypto_free(c);
	c = NULL;
	bkr_io_fault_reset();
	assert_int_equal(bkr_key_unlock(f->s, repo_a, "mallory", 7, &c, NULL), BKR_EKEY);
	snprintf(want, sizeof(want), "keys/%s.json", good);
	assert_non_null(strstr(bkr_error_message(), want));
	assert_non_null(strstr(bkr_error_message(), "none of the 1 key file in keys/"));
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
}

static void test_passphrase_sources(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	const char *pw;
	size_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/pw", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("from file\nsecond line\n", fp);
	fclose(fp);
	setenv("BKR_PASSWORD", "from env", 1);

	bkr_key_set_source(&(bkr_key_source){ .file = path });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(len, 9);
	assert_string_equal(pw, "from file");
	bkr_key_forget();

	bkr_key_set_source(&(bkr_key_source){ .command = "printf 'from cmd\\r\\n'" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_string_equal(pw, "from cmd");
	bkr_key_forget();

	bkr_key_set_source(&(bkr_key_source){ .command = "exit 3" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_EUNAVAILABLE);
	bkr_key_forget();

	/* the command's output is read to its end: printing more after the
	 * first line (later, or more than a pipe holds) is not a SIGPIPE death */
	bkr_key_set_source(&(bkr_key_source){ .command = "echo first; sleep 0.3; echo more" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_string_equal(pw, "first");
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .command = "echo first; head -c 300000 /dev/zero; "
							  "sleep 0.2; echo last" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_string_equal(pw, "first");
	bkr_key_forget();
	/* ... but its exit status counts, and the rest is bounded */
	bkr_key_set_source(&(bkr_key_source){ .command = "echo first; sleep 0.2; exit 4" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "exit 4"));
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .command = "echo first; yes" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "printed more than 1 MiB"));
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .command = "head -c 2000 /dev/zero | tr '\\0' x; echo; echo more" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "password command: the first line is longer than 1023 bytes"));
	bkr_key_forget();

	bkr_key_set_source(NULL);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_string_equal(pw, "from env");
	/* kept: the environment is read once */
	setenv("BKR_PASSWORD", "changed", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_string_equal(pw, "from env");
	bkr_key_forget();

	setenv("BKR_PASSWORD", "", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_EINVAL);
	unsetenv("BKR_PASSWORD");

	bkr_key_set_source(&(bkr_key_source){ .file = "/nonexistent/pw" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "/nonexistent/pw"));

	/* a new passphrase: new-file first, BKR_NEW_PASSWORD otherwise */
	setenv("BKR_NEW_PASSWORD", "new env", 1);
	bkr_key_set_source(NULL);
	assert_int_equal(bkr_key_new_passphrase(false, &pw, &len), 0);
	assert_string_equal(pw, "new env");
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .new_file = path });
	assert_int_equal(bkr_key_new_passphrase(false, &pw, &len), 0);
	assert_string_equal(pw, "from file");
	bkr_key_forget();
	/* init: the explicit new sources win over the current ones (bkr(1):
	 * --new-password-file, else BKR_NEW_PASSWORD) ... */
	setenv("BKR_PASSWORD", "init pass", 1);
	bkr_key_set_source(NULL);
	assert_int_equal(bkr_key_new_passphrase(true, &pw, &len), 0);
	assert_string_equal(pw, "new env");
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .new_file = path, .command = "echo from cmd" });
	assert_int_equal(bkr_key_new_passphrase(true, &pw, &len), 0);
	assert_string_equal(pw, "from file");
	bkr_key_forget();
	/* ... which are a fallback: file, command, BKR_PASSWORD in their order */
	unsetenv("BKR_NEW_PASSWORD");
	bkr_key_set_source(NULL);
	assert_int_equal(bkr_key_new_passphrase(true, &pw, &len), 0);
	assert_string_equal(pw, "init pass");
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .command = "echo from cmd" });
	assert_int_equal(bkr_key_new_passphrase(true, &pw, &len), 0);
	assert_string_equal(pw, "from cmd");
	bkr_key_forget();
	unsetenv("BKR_PASSWORD");
	unsetenv("BKR_NEW_PASSWORD");
}

/* BKR_PASSWORD is the passphrase byte for byte (as RESTIC_PASSWORD and
 * BORG_PASSPHRASE are): a trailing newline is part of it, so a key made from
 * it by an older bkr still opens, and a wrong passphrase says the newline is
 * there (a password file's line ends before it); a new passphrase with one
 * is refused, since no other source could ever give it. */
static void test_env_newline(void **state)
{
	struct fx *f = *state;
	char id[BKR_KEY_ID_HEX], path[PATH_MAX];
	bkr_crypto *c = NULL;
	const char *pw;
	size_t len;
	FILE *fp;

	assert_int_equal(bkr_key_add(f->s, f->c, "old\n", 4, id), 0);
	assert_int_equal(bkr_key_add(f->s, f->c, "alice", 5, id), 0);
	bkr_key_set_source(NULL);
	setenv("BKR_PASSWORD", "old\n", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(len, 4);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), 0);
	bkr_crypto_free(c);
	c = NULL;
	bkr_key_forget();
	setenv("BKR_PASSWORD", "alice\r\n", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), BKR_EKEY);
	assert_non_null(strstr(bkr_error_message(),
			       "wrong passphrase: it opens none of the 2 key files in keys/ "
			       "(BKR_PASSWORD holds a carriage return and a newline, which are part of the "
			       "passphrase it gives; a password file's line ends before them)"));
	bkr_key_forget();
	setenv("BKR_PASSWORD", "alice\n", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), BKR_EKEY);
	assert_non_null(strstr(bkr_error_message(),
			       "(BKR_PASSWORD holds a newline, which is part of the passphrase it "
			       "gives; a password file's line ends before one)"));
	bkr_key_forget();
	/* a carriage return alone is named as one, not as a newline */
	setenv("BKR_PASSWORD", "alice\r", 1);
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), BKR_EKEY);
	assert_non_null(strstr(bkr_error_message(),
			       "(BKR_PASSWORD holds a carriage return, which is part of the passphrase it "
			       "gives; a password file's line ends before one)"));
	assert_null(strstr(bkr_error_message(), "newline"));
	bkr_key_forget();
	/* the same line from a file opens; the hint is for the variable only */
	snprintf(path, sizeof(path), "%s/pw-nl", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("alice\r\n", fp);
	fclose(fp);
	bkr_key_set_source(&(bkr_key_source){ .file = path });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), 0);
	bkr_crypto_free(c);
	bkr_key_forget();
	bkr_key_set_source(&(bkr_key_source){ .command = "printf 'bob\\n'" });
	assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), 0);
	assert_int_equal(bkr_key_unlock(f->s, repo_a, pw, len, &c, NULL), BKR_EKEY);
	assert_null(strstr(bkr_error_message(), "newline"));
	bkr_key_forget();
	/* a new passphrase: refused with a newline, from BKR_NEW_PASSWORD or (init) BKR_PASSWORD */
	bkr_key_set_source(NULL);
	setenv("BKR_NEW_PASSWORD", "new\n", 1);
	assert_int_equal(bkr_key_new_passphrase(false, &pw, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "BKR_NEW_PASSWORD holds a newline: a new passphrase is one line"));
	setenv("BKR_NEW_PASSWORD", "new\rpass", 1);
	assert_int_equal(bkr_key_new_passphrase(false, &pw, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "BKR_NEW_PASSWORD holds a carriage return: a new passphrase is one line"));
	unsetenv("BKR_NEW_PASSWORD");
	setenv("BKR_PASSWORD", "init\npass", 1);
	assert_int_equal(bkr_key_new_passphrase(true, &pw, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "BKR_PASSWORD holds a newline"));
	bkr_key_forget();
	unsetenv("BKR_PASSWORD");
}

/* The first line of a password file: at most 1023 bytes (with "\n" or
 * "\r\n" after it), refused beyond like a too long BKR_PASSWORD; a
 * directory is named as a password file. */
static void test_password_file_limits(void **state)
{
	struct fx *f = *state;
	char line[1100], path[PATH_MAX];
	const char *pw;
	size_t len;

	memset(line, 'x', sizeof(line));
	snprintf(path, sizeof(path), "%s/long", f->dir);
	const struct {
		size_t n;
		const char *end;
		int want;
	} cases[] = {
		{ 1023, "", 0 }, { 1023, "\n", 0 }, { 1023, "\r\n", 0 }, { 1023, "\nmore", 0 },
		{ 1024, "", BKR_EINVAL }, { 1024, "\n", BKR_EINVAL }, { 1023, "\rx", BKR_EINVAL },
		{ 1099, "\n", BKR_EINVAL }, { 1022, "\r\n", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char text[1200];
		memcpy(text, line, cases[i].n);
		strcpy(text + cases[i].n, cases[i].end);
		assert_int_equal(tu_writes(f->dir, "long", text), 0);
		bkr_key_set_source(&(bkr_key_source){ .file = path });
		assert_int_equal(bkr_key_passphrase("r", false, &pw, &len), cases[i].want);
		if (cases[i].want == 0) {
			assert_int_equal(len, cases[i].n);
		} else {
			assert_non_null(strstr(bkr_error_message(), "password file"));
			assert_non_null(strstr(bkr_error_message(), "longer than 1023 bytes"));
		}
		bkr_key_forget();
	}
	bkr_key_set_source(&(bkr_key_source){ .file = f->dir });
	assert_true(bkr_key_passphrase("r", false, &pw, &len) < 0);
	snprintf(path, sizeof(path), "password file %s: Is a directory", f->dir);
	assert_string_equal(bkr_error_message(), path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_unlock_two_holders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered_key_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_key_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kdf_failure_one_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passphrase_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_file_limits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
