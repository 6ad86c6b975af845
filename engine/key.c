/** @file
 * Key files (bkr/key.h, docs/format.md "Key files"): parsing and checking
 * them, wrapping master keys under a passphrase-derived key, trying a
 * passphrase on every key file, listing and removing them; and the
 * passphrase itself, read from a file, a command, BKR_PASSWORD or the
 * terminal without echo, kept in locked memory (bkr_secure_alloc) for the
 * process.
 */
#include "bkr/key.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/keycache.h"
#include "bkr/manifest.h"
#include "bkr/utf8.h"
#include "array.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define PASS_MAX 1024
#define CMD_REST_MAX (1 << 20) /* what a password command may print after its first line */
#define CMD_TIMEOUT_MS 60000   /* how long a password command may take to print and exit */
#define KEYS_PREFIX "keys/"

/* ---- key files -------------------------------------------------------------- */

/* The AD of a key file's sealed master keys: label, repository, KDF parameters. */
#define KEY_AD_SIZE (BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE + 16 + 32)
static void key_ad(uint8_t ad[KEY_AD_SIZE], const uint8_t *repo_id, const bkr_kdf_params *p)
{
	uint8_t *q = ad + BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE;
	bkr_crypto_ad_prefix(ad, "bkrfs-key-v1", repo_id);
	bkr_put_u64(q, p->n);
	bkr_put_u32(q + 8, p->r);
	bkr_put_u32(q + 12, p->p);
	memcpy(q + 16, p->salt, sizeof(p->salt));
}

static int get_str(const cJSON *o, const char *key, const char *what, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
		return bkr_error_set(BKR_ECORRUPT, "%s: key '%s': expected a string of at most %zu bytes",
				     what, key, cap - 1);
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static int get_hex(const cJSON *o, const char *key, const char *what, void *out, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v) || strlen(v->valuestring) != 2 * len || bkr_hex_decode(out, len, v->valuestring) < 0)
		return bkr_error_set(BKR_ECORRUPT, "%s: key '%s': expected %zu hex characters", what, key, 2 * len);
	return 0;
}

static int get_num(const cJSON *o, const char *key, const char *what, uint64_t max, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return bkr_error_set(BKR_ECORRUPT, "%s: key '%s': expected an integer 0..%llu",
				     what, key, (unsigned long long)max);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

int bkr_key_parse(bkr_key_file *out, const char *text, size_t len, const char *what)
{
	cJSON *root = NULL;
	const cJSON *v, *kdf;
	uint64_t u = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (len > BKR_KEY_FILE_MAX)
		return bkr_error_set(BKR_ECORRUPT, "%s: %zu bytes is too large for a key file", what, len);
	if ((err = bkr_json_verify(text, len, what)) < 0)
		return err;
	if (!(root = cJSON_ParseWithLength(text, len)))
		return bkr_error_set(BKR_ECORRUPT, "%s: not valid JSON", what);
	v = cJSON_GetObjectItemCaseSensitive(root, "kind");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "bkrfs-key")) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'kind': not a bkrfs key file", what);
		goto done;
	}
	if ((err = get_num(root, "version", what, 1000, &u)) < 0)
		goto done;
	if (u != 1) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key file version %llu is not supported", what,
				    (unsigned long long)u);
		goto done;
	}
	if ((err = get_hex(root, "repository", what, out->repo_id, sizeof(out->repo_id))) < 0 ||
	    (err = get_str(root, "created", what, out->created, sizeof(out->created))) < 0 ||
	    (err = get_str(root, "hostname", what, out->hostname, sizeof(out->hostname))) < 0 ||
	    (err = get_str(root, "username", what, out->username, sizeof(out->username))) < 0 ||
	    (err = get_hex(root, "keys", what, out->sealed, sizeof(out->sealed))) < 0)
		goto done;
	kdf = cJSON_GetObjectItemCaseSensitive(root, "kdf");
	v = cJSON_GetObjectItemCaseSensitive(kdf, "algorithm");
	if (!cJSON_IsObject(kdf) || !cJSON_IsString(v) || strcmp(v->valuestring, "scrypt")) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'kdf.algorithm': only \"scrypt\" is supported", what);
		goto done;
	}
	if ((err = get_num(kdf, "n", what, 1ull << 40, &out->kdf.n)) < 0 ||
	    (err = get_num(kdf, "r", what, 1u << 20, &u)) < 0)
		goto done;
	out->kdf.r = (uint32_t)u;
	if ((err = get_num(kdf, "p", what, 1u << 20, &u)) < 0)
		goto done;
	out->kdf.p = (uint32_t)u;
	if ((err = get_hex(kdf, "salt", what, out->kdf.salt, sizeof(out->kdf.salt))) < 0 ||
	    (err = bkr_kdf_params_check(&out->kdf, what)) < 0)
		goto done;
done:
	cJSON_Delete(root);
	return err;
}

/* The master keys of key file @p kf opened with @p kek, the key derived from
 * its passphrase (or held by the key cache): the GCM tag of its sealed keys,
 * whose AD binds the repository and the KDF parameters, says whether @p kek
 * is right.  BKR_EKEY (no message) when it is not. */
static int open_with_kek(const bkr_key_file *kf, const uint8_t *kek, bkr_crypto **out)
{
	uint8_t ad[KEY_AD_SIZE], *keys;
	int err;

	*out = NULL;
	if (!(keys = bkr_secure_alloc(2 * BKR_CRYPTO_KEY_SIZE)))
		return bkr_error_oom();
	key_ad(ad, kf->repo_id, &kf->kdf);
	if ((err = bkr_aead_open(kek, ad, sizeof(ad), kf->sealed, sizeof(kf->sealed), keys, "key file")) < 0) {
		if (err == BKR_ECORRUPT)
			err = BKR_EKEY;
		goto done;
	}
	err = bkr_crypto_new(out, keys, keys + BKR_CRYPTO_KEY_SIZE, kf->repo_id);
done:
	bkr_secure_free(keys, 2 * BKR_CRYPTO_KEY_SIZE);
	return err;
}

/* bkr_key_open; @p kek_out (may be NULL) gets the derived key when it opens. */
static int open_key(const bkr_key_file *kf, const char *pass, size_t passlen, bkr_crypto **out, uint8_t *kek_out)
{
	uint8_t *kek;
	int err;

	*out = NULL;
	if (!(kek = bkr_secure_alloc(BKR_CRYPTO_KEY_SIZE)))
		return bkr_error_oom();
	if ((err = bkr_kdf_derive(&kf->kdf, pass, passlen, kek)) < 0)
		goto done;
	if ((err = open_with_kek(kf, kek, out)) == BKR_EKEY)
		err = bkr_error_set(BKR_EKEY, "key file %s: wrong passphrase", kf->id);
	else if (err == 0 && kek_out)
		memcpy(kek_out, kek, BKR_CRYPTO_KEY_SIZE);
done:
	bkr_secure_free(kek, BKR_CRYPTO_KEY_SIZE);
	return err;
}

int bkr_key_open(const bkr_key_file *kf, const char *pass, size_t passlen, bkr_crypto **out)
{
	return open_key(kf, pass, passlen, out, NULL);
}

static void user_name(char *out, size_t cap)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *u = NULL;
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		u = res->pw_name;
	snprintf(out, cap, "%s", u ? u : "");
}

/* How keys_lock meets a held lock (bkr_key_set_lock_wait; default: wait, silently). */
static struct {
	bool no_wait;
	void (*waiting)(void *ctx, const char *holder);
	void *ctx;
} lock_wait;

void bkr_key_set_lock_wait(bool no_wait, void (*waiting)(void *ctx, const char *holder), void *ctx)
{
	lock_wait.no_wait = no_wait;
	lock_wait.waiting = waiting;
	lock_wait.ctx = ctx;
}

/* One "keys/.tmp-*": an unfinished key file (a local store writes one there,
 * then renames it) of a key add or passwd killed before the rename.  It may
 * hold the master keys sealed under a passphrase that no listed key file
 * shows, so it is never left behind: under the keys lock no key command is
 * writing, and it is removed. */
static int on_leftover(void *ctx, const char *name)
{
	const char *base = name + strlen(KEYS_PREFIX);
	int err;

	if (strncmp(name, KEYS_PREFIX, strlen(KEYS_PREFIX)) || strncmp(base, ".tmp-", 5) || strchr(base, '/'))
		return 0;
	if ((err = bkr_store_delete(ctx, name)) == BKR_ENOTFOUND) {
		bkr_error_clear();
		err = 0;
	}
	return err;
}

/*
 * locks/keys.lock, exclusive: key add and remove (and so passwd) change
 * keys/ one at a time, on a local store (flock) and on S3 (lock objects)
 * alike.  Backups and reads never take it.  Taken at once when free; when
 * it is held, the caller is told (a killed holder's lock on S3 stays until
 * it is stale: minutes of silence otherwise) and it waits, or with no_wait
 * fails naming the holder.  Once it is held, the unfinished key files of
 * killed key commands are removed (on_leftover).
 */
static int keys_lock(bkr_store *s, bkr_store_held **held)
{
	int err = bkr_store_lock(s, "locks/keys.lock", true, false, held);
	if (err == BKR_ELOCKED) {
		char *holder; /* the store's word on the holder, whole: on S3 its pid, host and last refresh */
		if (lock_wait.no_wait) /* formatted aside by bkr_error_set */
			return bkr_error_set(BKR_ELOCKED, "keys lock: %s; not waiting (--no-wait)",
					     bkr_error_message());
		if (!(holder = strdup(bkr_error_message())))
			return bkr_error_oom();
		bkr_error_clear();
		if (lock_wait.waiting)
			lock_wait.waiting(lock_wait.ctx, holder);
		free(holder);
		err = bkr_store_lock(s, "locks/keys.lock", true, true, held);
	}
	if (err < 0) {
		bkr_error_prefix("keys lock");
		return err;
	}
	if ((err = bkr_store_list(s, KEYS_PREFIX, on_leftover, s)) < 0) {
		bkr_store_unlock(*held);
		*held = NULL;
	}
	return err;
}

int bkr_key_add(bkr_store *s, const bkr_crypto *c, const char *pass, size_t passlen,
		char id_out[BKR_KEY_ID_HEX])
{
	uint8_t ad[KEY_AD_SIZE], *kek = NULL, *keys = NULL, rid[8];
	uint8_t sealed[2 * BKR_CRYPTO_KEY_SIZE + BKR_CRYPTO_OVERHEAD];
	char *hex = NULL, *text = NULL, *json = NULL, repo[2 * BKR_CRYPTO_REPO_ID_SIZE + 1];
	char salt[65], created[32], host[256], user[256], name[64];
	bkr_kdf_params p;
	bkr_store_held *held = NULL;
	cJSON *root = NULL, *o;
	size_t len = 0;
	int err;

	id_out[0] = 0;
	if (!passlen)
		return bkr_error_set(BKR_EINVAL, "an empty passphrase is refused");
	if (!(kek = bkr_secure_alloc(BKR_CRYPTO_KEY_SIZE)) || !(keys = bkr_secure_alloc(2 * BKR_CRYPTO_KEY_SIZE)) ||
	    !(hex = malloc(2 * sizeof(sealed) + 1))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_kdf_params_new(&p)) < 0 || (err = bkr_kdf_derive(&p, pass, passlen, kek)) < 0 ||
	    (err = bkr_random_bytes(rid, sizeof(rid))) < 0)
		goto done;
	memcpy(keys, bkr_crypto_enc_key(c), BKR_CRYPTO_KEY_SIZE);
	memcpy(keys + BKR_CRYPTO_KEY_SIZE, bkr_crypto_mac_key(c), BKR_CRYPTO_KEY_SIZE);
	key_ad(ad, bkr_crypto_repo_id(c), &p);
	if ((err = bkr_aead_seal(kek, ad, sizeof(ad), keys, 2 * BKR_CRYPTO_KEY_SIZE, sealed)) < 0)
		goto done;
	bkr_hex_encode(sealed, sizeof(sealed), hex);
	bkr_hex_encode(bkr_crypto_repo_id(c), BKR_CRYPTO_REPO_ID_SIZE, repo);
	bkr_hex_encode(p.salt, sizeof(p.salt), salt);
	bkr_time_format(created, bkr_time_now_ns());
	bkr_host_name(host, sizeof(host), NULL);
	user_name(user, sizeof(user));

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "kind", "bkrfs-key");
	cJSON_AddNumberToObject(root, "version", 1);
	cJSON_AddStringToObject(root, "repository", repo);
	cJSON_AddStringToObject(root, "created", created);
	cJSON_AddStringToObject(root, "hostname", host);
	cJSON_AddStringToObject(root, "username", user);
	o = cJSON_AddObjectToObject(root, "kdf");
	cJSON_AddStringToObject(o, "algorithm", "scrypt");
	cJSON_AddNumberToObject(o, "n", (double)p.n);
	cJSON_AddNumberToObject(o, "r", p.r);
	cJSON_AddNumberToObject(o, "p", p.p);
	cJSON_AddStringToObject(o, "salt", salt);
	cJSON_AddStringToObject(root, "keys", hex);
	if (!(text = cJSON_PrintUnformatted(root))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_json_seal(text, &json, &len)) < 0)
		goto done;
	bkr_hex_encode(rid, sizeof(rid), id_out);
	snprintf(name, sizeof(name), KEYS_PREFIX "%s.json", id_out);
	if ((err = bkr_store_prepare(s, "keys")) < 0 || (err = keys_lock(s, &held)) < 0 ||
	    (err = bkr_store_put(s, name, json, len)) < 0) {
		id_out[0] = 0;
		goto done;
	}
done:
	bkr_store_unlock(held);
	cJSON_Delete(root);
	free(text);
	free(json);
	free(hex);
	bkr_secure_free(kek, BKR_CRYPTO_KEY_SIZE);
	bkr_secure_free(keys, 2 * BKR_CRYPTO_KEY_SIZE);
	return err;
}

/* "keys/<16 hex>.json": *id gets the hex. */
static bool key_name(const char *name, char id[BKR_KEY_ID_HEX])
{
	const char *base = name + strlen(KEYS_PREFIX);
	if (strncmp(name, KEYS_PREFIX, strlen(KEYS_PREFIX)) || strlen(base) != 16 + 5 || strcmp(base + 16, ".json"))
		return false;
	for (int i = 0; i < 16; i++)
		if (!strchr("0123456789abcdef", base[i]) || !base[i])
			return false;
	memcpy(id, base, 16);
	id[16] = 0;
	return true;
}

struct key_walk {
	bkr_store *s;
	bkr_key_file *v;
	size_t n, cap;
	char (*bad)[BKR_KEY_ID_HEX]; /* the damaged key files' ids (file names) */
	size_t nbad, badcap;
	char first_bad[512];         /* the first damaged one's message */
	const uint8_t *repo_id;      /* when set: a key file of another repository counts as damaged */
	void (*warn)(void *ctx, const char *message);
	void *ctx;
	char **folders;              /* the folders of keys/ warned about (in_folder) */
	size_t nfolders, capfolders;
};

/* Key file @p id is damaged (unreadable, malformed, of another repository, or
 * its KDF fails): remembered by id, the first message kept, warned about. */
static int add_bad(struct key_walk *kw, const char *id)
{
	if (kw->nbad == kw->badcap) {
		size_t ncap = kw->badcap ? 2 * kw->badcap : 4;
		char(*nb)[BKR_KEY_ID_HEX] = realloc(kw->bad, ncap * sizeof(*nb));
		if (!nb)
			return bkr_error_oom();
		kw->bad = nb;
		kw->badcap = ncap;
	}
	memcpy(kw->bad[kw->nbad++], id, BKR_KEY_ID_HEX);
	if (kw->nbad == 1)
		snprintf(kw->first_bad, sizeof(kw->first_bad), "%s", bkr_error_message());
	if (kw->warn)
		kw->warn(kw->ctx, bkr_error_message());
	bkr_error_clear();
	return 0;
}

/*
 * An object below a folder of keys/ (keys/old/ID.json: a directory holding
 * files; on S3 a name with a further '/'): no key file, whatever it holds -
 * keys/ holds key files only.  The folder is warned about once, naming it,
 * and not looked into; never a damaged key file (key remove could not remove
 * it).  An empty directory holds nothing to say.
 */
static int in_folder(struct key_walk *kw, const char *name)
{
	const char *slash = strchr(name + strlen(KEYS_PREFIX), '/');
	char folder[PATH_MAX], path[PATH_MAX];
	size_t n;
	int err;

	if (strncmp(name, KEYS_PREFIX, strlen(KEYS_PREFIX)) || !slash || (n = (size_t)(slash - name)) >= sizeof(folder))
		return 0;
	memcpy(folder, name, n);
	folder[n] = '\0';
	for (size_t i = 0; i < kw->nfolders; i++)
		if (!strcmp(kw->folders[i], folder))
			return 0;
	if ((err = bkr_array_push_str(&kw->folders, &kw->capfolders, &kw->nfolders, folder)) < 0 ||
	    (err = bkr_store_describe(kw->s, folder, path, sizeof(path))) < 0)
		return err;
	bkr_error_set(BKR_ECORRUPT, "%s: a folder, not a key file: not looked into (keys/ holds key files only)", path);
	if (kw->warn)
		kw->warn(kw->ctx, bkr_error_message());
	bkr_error_clear();
	return 0;
}

static int on_key(void *ctx, const char *name)
{
	struct key_walk *kw = ctx;
	char id[BKR_KEY_ID_HEX], what[PATH_MAX];
	uint8_t *text = NULL;
	size_t len = 0;
	int err;

	if (!key_name(name, id))
		return in_folder(kw, name);
	if ((err = bkr_store_describe(kw->s, name, what, sizeof(what))) < 0)
		return err;
	if (kw->n == kw->cap) {
		size_t ncap = kw->cap ? 2 * kw->cap : 8;
		bkr_key_file *nv = realloc(kw->v, ncap * sizeof(*nv));
		if (!nv)
			return bkr_error_oom();
		kw->v = nv;
		kw->cap = ncap;
	}
	err = bkr_store_get(kw->s, name, BKR_KEY_FILE_MAX, &text, &len);
	if (err == BKR_ENOTFOUND) {
		/* removed since the listing (a key remove or passwd meanwhile): not one of the keys */
		bkr_error_clear();
		return 0;
	}
	if (err < 0 && err != BKR_ECORRUPT && err != BKR_EUNSUPPORTED)
		/* an I/O error, a server that cannot be reached: nothing is known
		 * about the key file, so it is neither damaged nor tried (a wrong
		 * passphrase, exit 9, or one to remove as damaged): the command fails */
		return err;
	if (err == 0)
		err = bkr_key_parse(&kw->v[kw->n], (const char *)text, len, what);
	free(text);
	if (err == BKR_ENOMEM)
		return err;
	if (err == 0 && kw->repo_id && memcmp(kw->v[kw->n].repo_id, kw->repo_id, BKR_CRYPTO_REPO_ID_SIZE)) {
		/* it can never open this repository: named, never counted as one of its keys */
		char theirs[2 * BKR_CRYPTO_REPO_ID_SIZE + 1], ours[2 * BKR_CRYPTO_REPO_ID_SIZE + 1];
		bkr_hex_encode(kw->v[kw->n].repo_id, BKR_CRYPTO_REPO_ID_SIZE, theirs);
		bkr_hex_encode(kw->repo_id, BKR_CRYPTO_REPO_ID_SIZE, ours);
		err = bkr_error_set(BKR_ECORRUPT, "%s: a key file of another repository (%s; this one is %s)", what,
				    theirs, ours);
	}
	if (err < 0)
		return add_bad(kw, id);
	memcpy(kw->v[kw->n].id, id, sizeof(id));
	kw->n++;
	return 0;
}

/*
 * What keys/ holds that is no object (bkr_store_list_other): never opened (a
 * FIFO would block, a symbolic link could point anywhere: whoever can write
 * to the repository could aim one at a file of the reader's).  One named as a
 * key file is a damaged key file (warned about, counted, removed by its id);
 * another is warned about alone, for nothing there is silent.
 */
static int on_other(void *ctx, const char *name, const char *what)
{
	struct key_walk *kw = ctx;
	char id[BKR_KEY_ID_HEX], path[PATH_MAX];
	int err;

	if ((err = bkr_store_describe(kw->s, name, path, sizeof(path))) < 0)
		return err;
	bkr_error_set(BKR_ECORRUPT, "%s: %s, not a key file: %s", path, what,
		      !strcmp(what, "a symbolic link") ? "refused (a link could point anywhere)" : "never opened");
	if (key_name(name, id))
		return add_bad(kw, id);
	if (kw->warn)
		kw->warn(kw->ctx, bkr_error_message());
	bkr_error_clear();
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const bkr_key_file *x = a, *y = b;
	int c = strcmp(x->created, y->created);
	return c ? c : strcmp(x->id, y->id);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Every key file of @p s into @p kw: the usable ones sorted, the damaged ones by id. */
static int list_keys(bkr_store *s, struct key_walk *kw)
{
	int err;

	kw->s = s;
	err = bkr_store_list(s, KEYS_PREFIX, on_key, kw);
	for (size_t i = 0; i < kw->nfolders; i++)
		free(kw->folders[i]);
	free(kw->folders);
	kw->folders = NULL;
	kw->nfolders = kw->capfolders = 0;
	if (err < 0 || (err = bkr_store_list_other(s, KEYS_PREFIX, on_other, kw)) < 0) {
		free(kw->v);
		free(kw->bad);
		kw->v = NULL;
		kw->bad = NULL;
		kw->n = kw->nbad = 0;
		return err;
	}
	bkr_error_clear();
	if (kw->n > 1)
		qsort(kw->v, kw->n, sizeof(*kw->v), key_cmp);
	if (kw->nbad > 1)
		qsort(kw->bad, kw->nbad, sizeof(*kw->bad), id_cmp);
	return 0;
}

int bkr_key_list(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], bkr_key_file **out, size_t *n,
		 void (*warn)(void *ctx, const char *message), void *ctx)
{
	struct key_walk kw = { .repo_id = repo_id, .warn = warn, .ctx = ctx };
	int err;

	*out = NULL;
	*n = 0;
	if ((err = list_keys(s, &kw)) < 0)
		return err;
	free(kw.bad);
	*out = kw.v;
	*n = kw.n;
	return 0;
}

/* "keys/A.json, keys/B.json, ..." for a message: the first few damaged key files. */
static void bad_names(const struct key_walk *kw, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < kw->nbad && o < cap; i++) {
		int w = i < 4 ? snprintf(out + o, cap - o, "%s" KEYS_PREFIX "%s.json", i ? ", " : "", kw->bad[i])
			      : snprintf(out + o, cap - o, ", and %zu more", kw->nbad - i);
		if (w < 0)
			break;
		o += (size_t)w;
		if (i >= 4)
			break;
	}
}

/*
 * The key files this user made on this host first, each group oldest first:
 * each one tried costs a derivation (0.1 s of CPU), and a second holder
 * would otherwise derive for the first holder's key file on every command.
 * hostname and username are not trusted (docs/format.md): a wrong hint
 * only costs that time.
 */
static void mine_first(struct key_walk *kw)
{
	char host[256], user[256];
	size_t k = 0;

	bkr_host_name(host, sizeof(host), NULL);
	user_name(user, sizeof(user));
	for (size_t i = 0; i < kw->n; i++) {
		if (strcmp(kw->v[i].hostname, host) || strcmp(kw->v[i].username, user))
			continue;
		bkr_key_file mine = kw->v[i];
		memmove(&kw->v[k + 1], &kw->v[k], (i - k) * sizeof(*kw->v));
		kw->v[k++] = mine;
	}
}

static const char *newline_hint(const char *pass, char *out, size_t cap);

int bkr_key_unlock(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *pass,
		   size_t passlen, bkr_crypto **out, char id_out[BKR_KEY_ID_HEX])
{
	return bkr_key_unlock_kek(s, repo_id, pass, passlen, out, id_out, NULL);
}

int bkr_key_unlock_kek(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *pass, size_t passlen,
		       bkr_crypto **out, char id_out[BKR_KEY_ID_HEX], uint8_t *kek_out)
{
	struct key_walk kw = { .repo_id = repo_id };
	char names[200], hint[256];
	size_t tried = 0;
	int err;

	*out = NULL;
	if ((err = list_keys(s, &kw)) < 0)
		return err;
	mine_first(&kw);
	for (size_t i = 0; i < kw.n; i++) {
		err = open_key(&kw.v[i], pass, passlen, out, kek_out);
		if (err == 0) {
			if (id_out)
				memcpy(id_out, kw.v[i].id, BKR_KEY_ID_HEX);
			goto done;
		}
		if (err == BKR_EKEY) {
			tried++;
			continue;
		}
		if (err == BKR_ENOMEM)
			goto done;
		/* its KDF failed (parameters OpenSSL refuses): that key file is
		 * unusable, never the repository; the others are tried */
		/* formatted aside by bkr_error_set: the message whole */
		bkr_error_set(BKR_ECORRUPT, "%s: " KEYS_PREFIX "%s.json: %s", bkr_store_location(s), kw.v[i].id,
			      bkr_error_message());
		if ((err = add_bad(&kw, kw.v[i].id)) < 0)
			goto done;
	}
	bad_names(&kw, names, sizeof(names));
	if (!tried && kw.nbad)
		/* nothing to try: name the damaged files and why (bkr key list needs an open repository) */
		err = bkr_error_set(BKR_ECORRUPT, "%s: no usable key file in keys/, %zu damaged (%s): the repository "
				    "cannot be opened; %s", bkr_store_location(s), kw.nbad, names, kw.first_bad);
	else if (!tried)
		err = bkr_error_set(BKR_ENOTFOUND, "%s: no usable key file in keys/: the repository cannot be opened",
				    bkr_store_location(s));
	else if (kw.nbad)
		/* a damaged key file is corrupt, not a wrong passphrase (docs/format.md): say so */
		err = bkr_error_set(BKR_EKEY,
				    "%s: wrong passphrase: it opens none of the %zu key file%s in keys/; "
				    "%zu damaged key file%s could not be tried (%s: 'bkr key list' names %s)%s",
				    bkr_store_location(s), tried, tried == 1 ? "" : "s", kw.nbad, kw.nbad == 1 ? "" : "s",
				    names, kw.nbad == 1 ? "it" : "them", newline_hint(pass, hint, sizeof(hint)));
	else
		err = bkr_error_set(BKR_EKEY, "%s: wrong passphrase: it opens none of the %zu key file%s in keys/%s",
				    bkr_store_location(s), tried, tried == 1 ? "" : "s",
				    newline_hint(pass, hint, sizeof(hint)));
done:
	free(kw.v);
	free(kw.bad);
	return err;
}

/* ---- the key cache ---------------------------------------------------------------- */

static bool source_given(void);

/* Who is told that a cache entry is not used (bkr_key_set_note). */
static struct {
	void (*fn)(void *ctx, const char *message);
	void *ctx;
} cache_note;

void bkr_key_set_note(void (*note)(void *ctx, const char *message), void *ctx)
{
	cache_note.fn = note;
	cache_note.ctx = ctx;
}

/* Key file @p id of @p repo_id is removed: the key cache's entry naming it
 * (this session's: another session's is refused when used) is removed too. */
static void drop_cached(const uint8_t *repo_id, const char *id)
{
	char cached[BKR_KEY_ID_HEX];
	int64_t expires;
	if (bkr_keycache_get(repo_id, NULL, cached, &expires) == 0 && !strcmp(cached, id))
		bkr_keycache_drop(repo_id);
	bkr_error_clear();
}

/* The keys opened with the cache's entry (bkr_key_unlock_cached without its
 * conditions); *expires gets the entry's expiry. */
static int use_cached(bkr_store *s, const uint8_t *repo_id, bkr_crypto **out, char id_out[BKR_KEY_ID_HEX], int64_t *expires)
{
	char id[BKR_KEY_ID_HEX], name[64], what[PATH_MAX], *why = NULL, *msg = NULL;
	uint8_t *kek = NULL, *text = NULL;
	bkr_key_file kf;
	size_t len = 0;
	int err;

	*out = NULL;
	err = bkr_keycache_get(repo_id, &kek, id, expires);
	if (err == BKR_ENOTFOUND) {
		bkr_error_clear();
		return 1;
	}
	if (err == BKR_ECORRUPT)
		goto unfit;
	if (err < 0)
		return err;
	snprintf(name, sizeof(name), KEYS_PREFIX "%s.json", id);
	if ((err = bkr_store_describe(s, name, what, sizeof(what))) < 0)
		goto done;
	err = bkr_store_get(s, name, BKR_KEY_FILE_MAX, &text, &len);
	if (err == BKR_ENOTFOUND) {
		bkr_error_set(err, "its key file %s is gone (removed since 'bkr key unlock')", what);
		goto unfit;
	}
	if (err < 0 && err != BKR_ECORRUPT && err != BKR_EUNSUPPORTED)
		goto done; /* nothing is known of the key file (an I/O error): the command fails, as reading keys/ would */
	if (err == 0)
		err = bkr_key_parse(&kf, (const char *)text, len, what);
	if (err == 0 && memcmp(kf.repo_id, repo_id, BKR_CRYPTO_REPO_ID_SIZE))
		err = bkr_error_set(BKR_ECORRUPT, "%s: a key file of another repository", what);
	if (err == 0) {
		memcpy(kf.id, id, sizeof(id));
		if ((err = open_with_kek(&kf, kek, out)) == BKR_EKEY)
			bkr_error_set(err, "it does not open its key file %s", what);
	}
	if (err == 0) {
		if (id_out)
			memcpy(id_out, id, BKR_KEY_ID_HEX);
		goto done;
	}
	if (err == BKR_ENOMEM)
		goto done;
unfit:
	/* never used, and removed: the next command does not meet it again */
	why = strdup(bkr_error_message()); /* whole: it names the key file */
	bkr_keycache_drop(repo_id);
	bkr_error_clear();
	if (cache_note.fn) {
		if (!bkr_text_setf(&msg, "%s: the key cache's entry is not used (removed from the cache): %s",
				   bkr_store_location(s), why ? why : "(out of memory saying why)"))
			msg = strdup("the key cache's entry is not used (removed from the cache; out of memory "
				     "saying why)");
		if (msg)
			cache_note.fn(cache_note.ctx, msg);
	}
	free(msg);
	free(why);
	err = 1;
done:
	free(text);
	bkr_secure_free(kek, BKR_CRYPTO_KEY_SIZE);
	return err;
}

int bkr_key_unlock_cached(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], bkr_crypto **out,
			  char id_out[BKR_KEY_ID_HEX])
{
	int64_t expires;

	*out = NULL;
	if (source_given() || !bkr_keycache_enabled())
		return 1;
	return use_cached(s, repo_id, out, id_out, &expires);
}

int bkr_key_cached(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], char id_out[BKR_KEY_ID_HEX],
		   int64_t *expires)
{
	bkr_crypto *c = NULL;
	int err = use_cached(s, repo_id, &c, id_out, expires);
	bkr_crypto_free(c);
	if (err)
		*expires = 0;
	return err;
}

int bkr_key_remove(bkr_store *s, const uint8_t repo_id[BKR_CRYPTO_REPO_ID_SIZE], const char *id,
		   const char *current, char removed[BKR_KEY_ID_HEX])
{
	struct key_walk kw = { .repo_id = repo_id };
	size_t found = SIZE_MAX, matches = 0;
	bkr_store_held *held = NULL;
	const char *hit = NULL;
	char name[64];
	int err;

	if (removed)
		removed[0] = 0;
	/* under the keys lock, so that what is checked below (not the last
	 * usable key file, not the one in use) still holds when it is deleted:
	 * two holders removing each other's key at once must not both succeed */
	if ((err = keys_lock(s, &held)) < 0)
		return err;
	if ((err = list_keys(s, &kw)) < 0) {
		bkr_store_unlock(held);
		return err;
	}
	for (size_t i = 0; i < kw.n; i++)
		if (*id && !strncmp(kw.v[i].id, id, strlen(id))) {
			found = i;
			hit = kw.v[i].id;
			matches++;
		}
	/* a damaged key file is removed by its id (its file name) too */
	for (size_t i = 0; i < kw.nbad; i++)
		if (*id && !strncmp(kw.bad[i], id, strlen(id))) {
			found = SIZE_MAX;
			hit = kw.bad[i];
			matches++;
		}
	if (matches == 0) {
		err = bkr_error_set(BKR_ENOTFOUND, "key %s: no such key file in %s/keys", id, bkr_store_location(s));
		goto done;
	}
	if (matches > 1) {
		err = bkr_error_set(BKR_EAMBIGUOUS, "key %s: the prefix names %zu key files", id, matches);
		goto done;
	}
	if (found != SIZE_MAX && kw.n == 1) {
		err = bkr_error_set(BKR_EINVAL, "key %s: refusing to remove the last key file "
				    "(without it nothing can open the repository)", hit);
		goto done;
	}
	if (current && !strcmp(current, hit)) {
		err = bkr_error_set(BKR_EINVAL, "key %s: refusing to remove the key file in use "
				    "(open the repository with another passphrase, or use 'bkr key passwd')", hit);
		goto done;
	}
	snprintf(name, sizeof(name), KEYS_PREFIX "%s.json", hit);
	/* tests: stop here, checked and not yet deleted, to race another removal */
	if ((err = bkr_io_fault("key-remove")) < 0) {
		bkr_error_prefix("delete %s/%s", bkr_store_location(s), name); /* as a real failure names the file */
		goto done;
	}
	if ((err = bkr_store_delete(s, name)) == 0 && removed)
		memcpy(removed, hit, BKR_KEY_ID_HEX);
	if (err == 0)
		drop_cached(repo_id, hit);
done:
	bkr_store_unlock(held);
	free(kw.v);
	free(kw.bad);
	return err;
}

/* ---- passphrases ------------------------------------------------------------------ */

static bkr_key_source source;
static char *kept, *kept_new;          /* PASS_MAX bytes of locked memory each */
static size_t kept_len, kept_new_len;
static const char *env_newline;        /* kept came from this variable, and it holds a line break (from_env) */
static const char *env_breaks;         /* which: line_breaks's words */

/* The line breaks @p v holds, in words ("a newline", "a carriage return",
 * "a carriage return and a newline"); NULL for none. */
static const char *line_breaks(const char *v)
{
	bool cr = strchr(v, '\r') != NULL, lf = strchr(v, '\n') != NULL;
	return cr && lf ? "a carriage return and a newline" : cr ? "a carriage return" : lf ? "a newline" : NULL;
}

/* For a wrong passphrase @p pass that came from a variable holding a newline
 * (from_env): the newline is part of it, which a password file's line is not. */
static const char *newline_hint(const char *pass, char *out, size_t cap)
{
	if (!env_newline || pass != kept)
		return "";
	bool two = strstr(env_breaks, " and ") != NULL;
	snprintf(out, cap,
		 " (%s holds %s, which %s part of the passphrase it gives; a password file's line "
		 "ends before %s)",
		 env_newline, env_breaks, two ? "are" : "is", two ? "them" : "one");
	return out;
}

/* The prompt's terminal while echo is off, for its signal handler (from_tty);
 * prompt_caught: a signal came during the prompt. */
static const int prompt_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_PROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(*prompt_signals))
static struct sigaction prompt_old[N_PROMPT_SIGNALS];
static bool prompt_installed[N_PROMPT_SIGNALS];
static struct termios prompt_termios;
static volatile sig_atomic_t prompt_fd = -1, prompt_caught;

/* Whether the passphrase is given (a file, a command, the variable): then it
 * is what opens the repository, never the key cache. */
static bool source_given(void)
{
	return source.file || source.command || getenv(source.env ? source.env : "BKR_PASSWORD");
}

void bkr_key_set_source(const bkr_key_source *src)
{
	memset(&source, 0, sizeof(source));
	if (src)
		source = *src;
}

void bkr_key_forget(void)
{
	bkr_secure_free(kept, PASS_MAX);
	bkr_secure_free(kept_new, PASS_MAX);
	kept = kept_new = NULL;
	kept_len = kept_new_len = 0;
}

/* The value of variable @p name wiped where it is, then the variable unset. */
static void scrub_var(const char *name)
{
	char *v = getenv(name);
	if (v)
		OPENSSL_cleanse(v, strlen(v));
	unsetenv(name);
}

void bkr_key_scrub_env(void)
{
	scrub_var(source.env ? source.env : "BKR_PASSWORD");
	scrub_var("BKR_NEW_PASSWORD");
}

/* Whether environment entry @p e ("NAME=value") holds a passphrase. */
static bool secret_entry(const char *e)
{
	const char *eq = strchr(e, '=');
	size_t n = eq ? (size_t)(eq - e) : strlen(e);
	static const char suffix[] = "PASSWORD";
	if (source.env && strlen(source.env) == n && !strncmp(e, source.env, n))
		return true;
	return n >= 4 + sizeof(suffix) - 1 && !strncmp(e, "BKR_", 4) &&
	       !strncmp(e + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1);
}

char **bkr_key_child_environ(void)
{
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	if (!(env = calloc(n + 1, sizeof(*env))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!secret_entry(environ[i]))
			env[k++] = environ[i];
	return env;
}

/* Cut @p buf (of *len bytes) at its first newline. */
static void first_line(char *buf, size_t *len)
{
	char *nl = memchr(buf, '\n', *len);
	if (nl)
		*len = (size_t)(nl - buf);
	if (*len && buf[*len - 1] == '\r')
		(*len)--;
	buf[*len] = 0;
}

/* Read the first line of @p fd into @p buf (to EOF or the first newline):
 * BKR_EINVAL when it does not fit in PASS_MAX-1 bytes (refused like a too
 * long BKR_PASSWORD, never cut).  @p what names the source in messages. */
/*
 * Wait until @p fd has something to read (or EOF) before @p deadline_ns
 * (bkr_clock_mono_ns; 0: no deadline, a plain blocking read follows).
 * BKR_ETIMEOUT when the deadline passes first.
 */
static int wait_readable(int fd, int64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (!deadline_ns)
		return 0;
	for (;;) {
		int64_t left = deadline_ns - bkr_clock_mono_ns();
		int r;
		if (left <= 0)
			return BKR_ETIMEOUT;
		r = poll(&p, 1, (int)((left + 999999) / 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return bkr_error_set_errno(errno, "poll");
	}
}

static int read_line_fd(int fd, char *buf, size_t *len, const char *what, int64_t deadline_ns)
{
	size_t n = 0;
	bool nl = false;
	int err;

	*len = 0;
	buf[0] = 0;
	while (n < PASS_MAX - 1 && !nl) {
		if ((err = wait_readable(fd, deadline_ns)) < 0)
			return err;
		ssize_t r = read(fd, buf + n, PASS_MAX - 1 - n);
		if (r < 0 && errno == EINTR && !prompt_caught)
			continue;
		if (r < 0)
			return bkr_error_set_errno(errno, "%s", what);
		if (r == 0)
			break;
		nl = memchr(buf + n, '\n', (size_t)r) != NULL;
		n += (size_t)r;
	}
	if (n == PASS_MAX - 1 && !nl) {
		/* full without a newline: the line fits only when it ends here
		 * (EOF, "\n" or "\r\n" next) */
		char c[2];
		size_t got = 0;
		while (got < 2) {
			if ((err = wait_readable(fd, deadline_ns)) < 0)
				return err;
			ssize_t r = read(fd, c + got, 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return bkr_error_set_errno(errno, "%s", what);
			if (r == 0 || c[got] == '\n')
				break;
			if (c[got] != '\r' || got == 1)
				return bkr_error_set(BKR_EINVAL, "%s: the first line is longer than %d bytes", what,
						     PASS_MAX - 1);
			got++;
		}
	}
	*len = n;
	first_line(buf, len);
	return 0;
}

/* The first line of a file: a pipe or FIFO (--password-file /dev/stdin,
 * <(...)) is read blocking, waiting for its writer like any Unix tool; a
 * directory or a terminal (it would echo: the prompt does not) is refused. */
static int from_file(const char *path, char *buf, size_t *len)
{
	char what[PATH_MAX + 32];
	struct stat st;
	int fd, err;

	snprintf(what, sizeof(what), "password file %s", path);
	while ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return bkr_error_set_errno(errno, "%s", what);
	if (fstat(fd, &st) < 0)
		err = bkr_error_set_errno(errno, "%s", what);
	else if (S_ISDIR(st.st_mode))
		err = bkr_error_set_errno(EISDIR, "%s", what);
	else if (isatty(fd))
		err = bkr_error_set(BKR_EINVAL, "%s: a terminal (it would echo the passphrase: give no "
				    "password file to be asked without echo)", what);
	else if ((err = read_line_fd(fd, buf, len, what, 0)) == 0 && !*len)
		err = bkr_error_set(BKR_EINVAL, "%s: its first line is empty (an empty passphrase is refused)", what);
	close(fd);
	return err;
}

/* Read @p fd to EOF, discarding what comes: at most CMD_REST_MAX bytes, before @p deadline_ns. */
static int drain(int fd, const char *what, int64_t deadline_ns)
{
	char scratch[4096];
	size_t total = 0;
	int err = 0;

	for (;;) {
		if ((err = wait_readable(fd, deadline_ns)) < 0)
			break;
		ssize_t r = read(fd, scratch, sizeof(scratch));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = bkr_error_set_errno(errno, "%s", what);
			break;
		}
		if (r == 0)
			break;
		if ((total += (size_t)r) > CMD_REST_MAX) {
			err = bkr_error_set(BKR_EINVAL, "%s: printed more than %d MiB after its first line "
					    "(only the first line is the passphrase)", what, CMD_REST_MAX >> 20);
			break;
		}
	}
	OPENSSL_cleanse(scratch, sizeof(scratch));
	return err;
}

/* How long a password command may run when nobody is at a terminal (test builds:
 * BKR_TEST_PASSWORD_TIMEOUT_MS). */
static int64_t command_timeout_ms(void)
{
#if BKR_FAULT_INJECTION
	const char *t = getenv("BKR_TEST_PASSWORD_TIMEOUT_MS");
	char *end;
	unsigned long long v = t ? strtoull(t, &end, 10) : 0;
	if (t && *t && !*end && v && v <= CMD_TIMEOUT_MS)
		return (int64_t)v;
#endif
	return CMD_TIMEOUT_MS;
}

/* Wait for @p pid to exit until @p deadline_ns (0: as long as it takes); BKR_ETIMEOUT when it has not. */
static int wait_child(pid_t pid, int *status, int64_t deadline_ns)
{
	for (;;) {
		pid_t r = waitpid(pid, status, deadline_ns ? WNOHANG : 0);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return bkr_error_set_errno(errno, "password command: waitpid");
		if (bkr_clock_mono_ns() >= deadline_ns)
			return BKR_ETIMEOUT;
		usleep(5000);
	}
}

/* The first line `sh -c CMD` prints.  Its output is read to EOF (the rest
 * discarded, bounded): a command that prints more after the line must not
 * die of SIGPIPE.  Its exit status counts.
 *
 * How long it may take depends on who is there, as for the prompt.  With a
 * person at a terminal (stdin and stderr are one) it may ask them (pinentry,
 * `pass`, a hardware token waiting for a touch) as long as they take, as
 * ssh's askpass, git's credential helpers and borg's BORG_PASSCOMMAND may:
 * no bound, and it stays in our process group, the terminal's foreground
 * one, so that it can read the terminal and Ctrl-C ends it with us.
 * Otherwise (a timer, cron, a pipe, a script) nobody will answer a prompt:
 * it runs in a session of its own, without a controlling terminal (a prompt
 * on /dev/tty fails at once instead of waiting), and has CMD_TIMEOUT_MS to
 * print and exit; one that hangs (a network it waits for) is killed with
 * its whole process group (what it started in the background too), so that
 * no unattended command blocks for ever. */
static int from_command(const char *cmd, char *buf, size_t *len)
{
	int fds[2], status = 0, err, rest;
	bool attended = isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
	int64_t timeout_ms = command_timeout_ms(), deadline = attended ? 0 : bkr_clock_mono_ns() + timeout_ms * 1000000;
	char secs[32], **env;
	pid_t pid;

	if (!(env = bkr_key_child_environ()))
		return bkr_error_oom();
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(env);
		return bkr_error_set_errno(errno, "password command: pipe");
	}
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		free(env);
		return bkr_error_set_errno(errno, "password command: fork");
	}
	if (pid == 0) {
		char *const argv[] = { "sh", "-c", (char *)cmd, NULL };
		if (!attended)
			setsid(); /* its own session and process group (pid), no terminal */
		dup2(fds[1], 1);
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	free(env);
	close(fds[1]);
	err = read_line_fd(fds[0], buf, len, "password command", deadline);
	/* the rest, whatever the first line was (unless the pipe failed) */
	if (err < 0 && err != BKR_EINVAL)
		rest = 0;
	else if ((rest = drain(fds[0], "password command", deadline)) < 0)
		err = rest;
	close(fds[0]);
	if (err != BKR_ETIMEOUT && rest != BKR_ETIMEOUT && wait_child(pid, &status, deadline) == 0)
		goto exited;
	/* still running at the deadline (or waitpid failed): killed, its
	 * process group with it (the child itself too, should the kill come
	 * before its setsid), and the line it may have printed is not taken */
	if (!attended)
		kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	OPENSSL_cleanse(buf, PASS_MAX);
	*len = 0;
	if (timeout_ms % 1000)
		snprintf(secs, sizeof(secs), "%.1f", (double)timeout_ms / 1000);
	else
		snprintf(secs, sizeof(secs), "%lld", (long long)(timeout_ms / 1000));
	return bkr_error_set(BKR_ETIMEOUT, "password command did not finish within %s s (killed): %s", secs, cmd);
exited:
	if (rest < 0)
		return rest; /* it printed too much: it may have died of SIGPIPE since */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return bkr_error_set(BKR_EUNAVAILABLE, "password command failed (%s %d): %s",
				     WIFEXITED(status) ? "exit" : "signal",
				     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), cmd);
	if (err == 0 && !*len)
		return bkr_error_set(BKR_EINVAL, "password command printed nothing or an empty first line (an empty passphrase "
				     "is refused): %s", cmd);
	return err;
}

/*
 * The variable @p name, byte for byte, as restic takes RESTIC_PASSWORD and
 * borg BORG_PASSPHRASE: a newline in it is part of the passphrase, where a
 * password file's, a command's or a prompt's line ends before one.  Taken
 * as it is to open a key (a key made from it so stays openable), noted in
 * env_newline for the wrong-passphrase error; refused for a @p new_key, which
 * no other source could ever give.
 */
static int from_env(const char *name, char *buf, size_t *len, bool new_key)
{
	const char *v = getenv(name);
	size_t n = strlen(v);
	const char *breaks = line_breaks(v);
	if (n >= PASS_MAX)
		return bkr_error_set(BKR_EINVAL, "%s: longer than %d bytes", name, PASS_MAX - 1);
	if (!n)
		return bkr_error_set(BKR_EINVAL, "%s is empty (an empty passphrase is refused)", name);
	if (breaks && new_key)
		return bkr_error_set(BKR_EINVAL,
				     "%s holds %s: a new passphrase is one line (a password file's "
				     "or a command's first line, a prompt's line never has one); remove it",
				     name, breaks);
	if (!new_key) {
		env_newline = breaks ? name : NULL;
		env_breaks = breaks;
	}
	memcpy(buf, v, n + 1);
	*len = n;
	return 0;
}

/* A signal during the prompt (Ctrl-C, kill, a hangup): the terminal's
 * settings back (echo on), then the signal again with the disposition it
 * had before, delivered when this returns (it is blocked here): by default
 * the process ends as it would have, with a usable terminal. */
static void prompt_on_signal(int sig)
{
	int saved = errno;
	if (prompt_fd >= 0) {
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_termios);
		(void)!write(prompt_fd, "\n", 1);
		prompt_fd = -1;
	}
	prompt_caught = 1;
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		if (prompt_signals[i] == sig && prompt_installed[i])
			sigaction(sig, &prompt_old[i], NULL);
	raise(sig);
	errno = saved;
}

static void prompt_guard(int fd, const struct termios *saved)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		sigaddset(&sa.sa_mask, prompt_signals[i]);
	prompt_termios = *saved;
	prompt_caught = 0;
	prompt_fd = fd;
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++) {
		prompt_installed[i] = false;
		/* an ignored signal stays ignored (nohup) */
		if (sigaction(prompt_signals[i], NULL, &prompt_old[i]) == 0 && prompt_old[i].sa_handler != SIG_IGN &&
		    sigaction(prompt_signals[i], &sa, NULL) == 0)
			prompt_installed[i] = true;
	}
}

static void prompt_unguard(void)
{
	prompt_fd = -1;
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		if (prompt_installed[i])
			sigaction(prompt_signals[i], &prompt_old[i], NULL);
}

/* Prompt on the terminal without echo; a signal meanwhile restores it.
 * Without a terminal, BKR_EINVAL @p none (what would have given one). */
static int from_tty(const char *prompt, const char *none, char *buf, size_t *len)
{
	struct termios old, quiet;
	int fd, err;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0 || tcgetattr(fd, &old) < 0) {
		if (fd >= 0)
			close(fd);
		return bkr_error_set(BKR_EINVAL, "%s", none);
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	(void)!write(fd, prompt, strlen(prompt));
	prompt_guard(fd, &old);
	tcsetattr(fd, TCSAFLUSH, &quiet);
	err = read_line_fd(fd, buf, len, "/dev/tty", 0);
	if (prompt_caught) /* its handler returned (not the default action): the terminal is restored */
		err = bkr_error_set(BKR_EINVAL, "no passphrase: the prompt was interrupted");
	else
		tcsetattr(fd, TCSAFLUSH, &old);
	prompt_unguard();
	if (!prompt_caught)
		(void)!write(fd, "\n", 1);
	close(fd);
	return err;
}

static int keep(char **slot, size_t *slot_len, const char *buf, size_t len)
{
	if (!len)
		return bkr_error_set(BKR_EINVAL, "an empty passphrase is refused");
	if (!*slot && !(*slot = bkr_secure_alloc(PASS_MAX)))
		return bkr_error_oom();
	memcpy(*slot, buf, len);
	(*slot)[len] = 0;
	*slot_len = len;
	return 0;
}

/* The current passphrase from the non-interactive sources (for a @p new_key
 * at init); 1 when there is none. */
static int current_noninteractive(char *buf, size_t *len, bool new_key)
{
	const char *env = source.env ? source.env : "BKR_PASSWORD";
	if (source.file)
		return from_file(source.file, buf, len);
	if (source.command)
		return from_command(source.command, buf, len);
	if (getenv(env))
		return from_env(env, buf, len, new_key);
	return 1;
}

int bkr_key_passphrase(const char *repo, bool cache_tried, const char **out, size_t *len)
{
	char *buf = NULL, prompt[PATH_MAX + 64];
	size_t n = 0;
	int err;

	*out = NULL;
	*len = 0;
	if (kept) {
		*out = kept;
		*len = kept_len;
		return 0;
	}
	if (!(buf = bkr_secure_alloc(PASS_MAX)))
		return bkr_error_oom();
	env_newline = NULL;
	if ((err = current_noninteractive(buf, &n, false)) == 1) {
		char none[256];
		snprintf(none, sizeof(none), "no passphrase: set %s, give %s, or run on a terminal%s",
			 source.env ? source.env : "BKR_PASSWORD",
			 source.options ? source.options : "--password-file or --password-command",
			 cache_tried ? "; or cache the key first with 'bkr key unlock'" : "");
		snprintf(prompt, sizeof(prompt), "passphrase for %s: ", repo);
		err = from_tty(prompt, none, buf, &n);
	}
	if (err == 0 && (err = keep(&kept, &kept_len, buf, n)) == 0) {
		*out = kept;
		*len = kept_len;
	}
	bkr_secure_free(buf, PASS_MAX);
	return err;
}

int bkr_key_new_passphrase(bool use_current, const char **out, size_t *len)
{
	char *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	int err = 1;

	*out = NULL;
	*len = 0;
	if (kept_new) {
		*out = kept_new;
		*len = kept_new_len;
		return 0;
	}
	if (!(a = bkr_secure_alloc(PASS_MAX)) || !(b = bkr_secure_alloc(PASS_MAX))) {
		err = bkr_error_oom();
		goto done;
	}
	/* the explicit new-passphrase sources first; at init (nothing to open
	 * yet) the current one's sources are a fallback before the prompt */
	if (source.new_file)
		err = from_file(source.new_file, a, &na);
	else if (getenv("BKR_NEW_PASSWORD"))
		err = from_env("BKR_NEW_PASSWORD", a, &na, true);
	else if (use_current)
		err = current_noninteractive(a, &na, true);
	if (err == 1) {
		const char *none = use_current ? "no passphrase for the new repository: set BKR_NEW_PASSWORD (or "
						 "BKR_PASSWORD), give --new-password-file (or --password-file, "
						 "--password-command), or run on a terminal"
					       : "no new passphrase: set BKR_NEW_PASSWORD, give --new-password-file, "
						 "or run on a terminal";
		if ((err = from_tty("new passphrase: ", none, a, &na)) < 0 ||
		    (err = from_tty("the same again: ", none, b, &nb)) < 0)
			goto done;
		if (na != nb || memcmp(a, b, na)) {
			err = bkr_error_set(BKR_EINVAL, "the passphrases differ; nothing was changed");
			goto done;
		}
	}
	if (err == 0 && (err = keep(&kept_new, &kept_new_len, a, na)) == 0) {
		*out = kept_new;
		*len = kept_new_len;
	}
done:
	bkr_secure_free(a, PASS_MAX);
	bkr_secure_free(b, PASS_MAX);
	return err;
}
