/** @file
 * An open repository and its blobs: opening (config.json, the index), the
 * index (reloaded by the mount's watcher), and the read path — index entry,
 * then the pack in the hot tier, the other tiers, then trash, each a store
 * (bkr/store.h) read with one ranged get of the blob (a pread through the
 * local store's cache of open descriptors), decoded and re-hashed.  See
 * repo.h for the threading rules.
 */
#include "bkr/repo.h"
#include "bkr/crypto_store.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "bkr/pack.h"
#include "repo_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- open/close ---------------------------------------------------------- */

static int on_key_file(void *ctx, const char *name)
{
	size_t n = strlen(name);
	(void)ctx;
	return n > 5 && !strcmp(name + n - 5, ".json") && !strchr(name + 5, '/') ? 1 : 0;
}

/*
 * An encrypted repository: open its keys with the passphrase, take the
 * secret chunker seed, and seal through the store from now on.  A plain one
 * must hold no key file (a config.json altered to say "none").
 */
static int open_keys(bkr_repo *r)
{
	uint8_t id[BKR_CRYPTO_REPO_ID_SIZE];
	const char *pass;
	bkr_store *sealed;
	size_t len;
	int err;

	if (!r->cfg.encrypted) {
		if ((err = bkr_store_list(r->store, "keys/", on_key_file, NULL)) == 1)
			return bkr_error_set(BKR_ECORRUPT, "%s: config.json says the repository is not encrypted, "
					     "but keys/ holds key files: config.json was altered; refusing to use it", r->path);
		bkr_error_clear();
		return err < 0 && err != BKR_ENOTFOUND ? err : 0;
	}
	if ((err = bkr_repo_id_bytes(&r->cfg, id)) < 0 || (err = bkr_key_passphrase(r->path, &pass, &len)) < 0 ||
	    (err = bkr_key_unlock(r->store, id, pass, len, &r->crypto, r->key_id)) < 0)
		return err;
	r->cfg.chunk_seed = bkr_crypto_chunker_seed(r->crypto);
	if ((err = bkr_crypto_store_new(&sealed, r->store, r->crypto)) < 0) {
		r->store = NULL;
		return err;
	}
	r->store = sealed;
	return 0;
}

int bkr_repo_open(bkr_repo **out, const char *path, int flags)
{
	bkr_store *s;
	int err;

	*out = NULL;
	if ((err = bkr_store_open(&s, path, 0)) < 0) {
		bkr_error_prefix("repository");
		return err;
	}
	return bkr_repo_open_store(out, s, flags);
}

int bkr_repo_open_store(bkr_repo **out, bkr_store *store, int flags)
{
	bkr_repo *r = NULL;
	int err;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r)))) {
		bkr_store_free(store);
		return bkr_error_oom();
	}
	pthread_rwlock_init(&r->index_lock, NULL);
	r->flags = flags;
	r->store = store;
	if (!(r->path = strdup(bkr_store_location(store)))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_repo_config_load(r)) < 0 || (err = open_keys(r)) < 0)
		goto done;
	if ((err = bkr_index_load(&r->index, r->store, "index/", BKR_INDEX_SKIP_DAMAGED)) < 0)
		goto done;
	*out = r;
	r = NULL;
done:
	bkr_repo_free(r);
	return err;
}

static void free_tiers(bkr_repo *r)
{
	for (size_t i = 0; i < r->ntiers; i++)
		bkr_store_free(r->tiers[i]);
	free(r->tiers);
	r->tiers = NULL;
	r->ntiers = 0;
}

void bkr_repo_free(bkr_repo *r)
{
	if (!r)
		return;
	free_tiers(r);
	bkr_store_free(r->store);
	bkr_index_free(r->index);
	bkr_crypto_free(r->crypto);
	pthread_rwlock_destroy(&r->index_lock);
	free(r->config_warning);
	free(r->path);
	free(r);
}

const char *bkr_repo_path(const bkr_repo *r)
{
	return r->path;
}

bkr_store *bkr_repo_store(const bkr_repo *r)
{
	return r->store;
}

const bkr_repo_config *bkr_repo_get_config(const bkr_repo *r)
{
	return &r->cfg;
}

const bkr_crypto *bkr_repo_crypto(const bkr_repo *r)
{
	return r->crypto;
}

const char *bkr_repo_key_id(const bkr_repo *r)
{
	return r->key_id;
}

int bkr_repo_store_new(bkr_repo *r, bkr_store **out)
{
	bkr_store *s;
	int err;
	*out = NULL;
	if ((err = bkr_store_open(&s, r->path, 0)) < 0)
		return err;
	if (!r->crypto) {
		*out = s;
		return 0;
	}
	return bkr_crypto_store_new(out, s, r->crypto);
}

void bkr_repo_blob_id(const bkr_repo *r, const void *data, size_t len, bkr_id *out)
{
	bkr_crypto_blob_id(r->crypto, data, len, out);
}

int bkr_repo_check_writable(const bkr_repo *r)
{
	if (r->cfg.read_only)
		return bkr_error_set(BKR_EUNSUPPORTED,
				     "%s: read-only for this bkr: the repository uses a feature it does not know "
				     "(features.ro_compat in config.json); upgrade bkr to change it", r->path);
	if (r->flags & BKR_REPO_RDONLY)
		return bkr_error_set(BKR_EUNSUPPORTED, "%s: repository is open read-only", r->path);
	return 0;
}

int bkr_repo_set_tiers(bkr_repo *r, const char *const *dirs, size_t n)
{
	bkr_store **t = calloc(n ? n : 1, sizeof(*t));
	int err = 0;
	if (!t)
		return bkr_error_oom();
	for (size_t i = 0; i < n && err == 0; i++)
		err = bkr_store_open(&t[i], dirs[i], BKR_STORE_ABSENT_OK);
	if (err < 0) {
		for (size_t i = 0; i < n; i++)
			bkr_store_free(t[i]);
		free(t);
		return err;
	}
	free_tiers(r);
	r->tiers = t;
	r->ntiers = n;
	return 0;
}

/* ---- the index ------------------------------------------------------------ */

int bkr_repo_reload_index(bkr_repo *r)
{
	bkr_index *fresh = NULL, *old;
	int err;
	if ((err = bkr_index_load(&fresh, r->store, "index/", BKR_INDEX_SKIP_DAMAGED)) < 0)
		return err;
	pthread_rwlock_wrlock(&r->index_lock);
	old = r->index;
	r->index = fresh;
	pthread_rwlock_unlock(&r->index_lock);
	bkr_index_free(old);
	return 0;
}

void bkr_repo_index_warnings(bkr_repo *r, void (*cb)(void *ctx, const char *message), void *ctx)
{
	const char *const *v;
	size_t n;
	pthread_rwlock_rdlock(&r->index_lock);
	v = bkr_index_skipped(r->index, &n);
	for (size_t i = 0; i < n; i++)
		cb(ctx, v[i]);
	pthread_rwlock_unlock(&r->index_lock);
}

const char *bkr_repo_config_warning(const bkr_repo *r)
{
	return r->config_warning;
}

int bkr_repo_lookup(bkr_repo *r, const bkr_id *id, bkr_index_entry *out)
{
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = bkr_index_lookup(r->index, id, out);
	pthread_rwlock_unlock(&r->index_lock);
	if (err == BKR_ENOTFOUND) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		bkr_error_set(BKR_ENOTFOUND, "blob %s: not in the index of %s", hex, r->path);
	}
	return err;
}

int bkr_repo_foreach_blob(bkr_repo *r, int (*cb)(const bkr_index_entry *e, void *ctx), void *ctx)
{
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = bkr_index_foreach(r->index, cb, ctx);
	pthread_rwlock_unlock(&r->index_lock);
	return err;
}

/* ---- where packs are -------------------------------------------------------- */

static const char *pack_folder(bkr_blob_type type)
{
	return type == BKR_BLOB_TREE ? "tree" : "data";
}

/*
 * Place @p i of a pack's places, in search order: the hot tier, each other
 * tier, then trash.  *s and @p name (PATH_MAX) get the store and the object;
 * false past the last.
 */
static bool pack_place(const bkr_repo *r, size_t i, const bkr_pack_id *id, bkr_blob_type type,
		       bkr_store **s, char *name)
{
	char hex[BKR_PACK_ID_HEX];
	if (i <= r->ntiers) {
		*s = i == 0 ? r->store : r->tiers[i - 1];
		return bkr_pack_path(name, PATH_MAX, pack_folder(type), id) == 0;
	}
	if (i > r->ntiers + 1)
		return false;
	*s = r->store;
	bkr_pack_id_to_hex(id, hex);
	snprintf(name, PATH_MAX, "trash/%s.pack", hex);
	return true;
}

static int pack_missing(const bkr_repo *r, const bkr_pack_id *id)
{
	char hex[BKR_PACK_ID_HEX];
	bkr_pack_id_to_hex(id, hex);
	return bkr_error_set(BKR_ENOTFOUND, "pack %s: missing from %s, every tier and trash", hex, r->path);
}

int bkr_repo_pack_path(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, char *out, size_t cap)
{
	char name[PATH_MAX];
	bkr_store *s;
	uint64_t size;
	for (size_t i = 0; pack_place(r, i, id, type, &s, name); i++)
		if (bkr_store_stat(s, name, &size) == 0)
			return bkr_store_describe(s, name, out, cap);
	return pack_missing(r, id);
}

/* ---- reading blobs ---------------------------------------------------------- */

struct range {
	bkr_store *s;
	const char *name;
	unsigned flags;
};

static int range_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct range *g = ctx;
	return bkr_store_get_range(g->s, g->name, off, len, buf, g->flags);
}

int bkr_repo_read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len)
{
	bkr_index_entry e;
	uint8_t *buf = NULL;
	char name[PATH_MAX], what[PATH_MAX];
	struct range g;
	int err;

	*out = NULL;
	*len = 0;
	if ((err = bkr_repo_lookup(r, id, &e)) < 0)
		return err;
	if (e.type != type) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		return bkr_error_set(BKR_ECORRUPT, "blob %s: indexed as type %u, wanted %u", hex, e.type, type);
	}
	if (!(buf = malloc(e.raw_len ? e.raw_len : 1)))
		return bkr_error_oom();
	/* A small tree pack is read all over, and backwards (trees are written
	 * children first and walked parents first): the store reads it ahead. */
	g = (struct range){ .name = name, .flags = type == BKR_BLOB_TREE ? BKR_STORE_READ_AHEAD : 0 };
	/* A failed read drops the store's cached descriptor: a second attempt
	 * opens the pack afresh, wherever it is now (moved to a tier or trash). */
	for (int attempt = 0; attempt < 2; attempt++) {
		err = BKR_ENOTFOUND;
		for (size_t i = 0; err == BKR_ENOTFOUND && pack_place(r, i, &e.pack, type, &g.s, name); i++) {
			if ((err = bkr_store_describe(g.s, name, what, sizeof(what))) < 0)
				break;
			err = bkr_pack_read_blob_from(r->crypto, range_read, &g, what, id, e.offset,
						      e.stored_len, e.raw_len, e.type, buf);
		}
		if (err >= 0 || err == BKR_ECORRUPT || err == BKR_ENOTFOUND)
			break;
	}
	if (err == BKR_ENOTFOUND)
		pack_missing(r, &e.pack);
	if (err < 0) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = e.raw_len;
	return 0;
}

int bkr_repo_load_tree(void *repo, const bkr_id *id, bkr_tree **out)
{
	uint8_t *buf;
	size_t len;
	int err;
	*out = NULL;
	if ((err = bkr_repo_read_blob(repo, id, BKR_BLOB_TREE, &buf, &len)) < 0)
		return err;
	return bkr_tree_parse(out, buf, len);
}

/* ---- enumeration (verify, prune) ----------------------------------------- */

typedef int (*pack_cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path);

struct pack_walk {
	bkr_store *s;
	bool hot;       /* the repository itself: its temporaries are reported too */
	pack_cb cb;
	void *ctx;
};

/* Folders whose unfinished ".tmp-*" objects are reported (besides data/ and tree/). */
static bool tmp_folder(const char *name, size_t len)
{
	static const char *const meta[] = { "index", "backups", "runs", "records" };
	if (len == 0)
		return true;
	for (size_t i = 0; i < sizeof(meta) / sizeof(*meta); i++)
		if (strlen(meta[i]) == len && !strncmp(name, meta[i], len))
			return true;
	return false;
}

/* "data/<xx>/<hex>.pack" or "tree/...", and temporaries in data/, data/<xx>/ and the meta folders. */
static int on_object(void *ctx, const char *name)
{
	struct pack_walk *pw = ctx;
	const char *base = strrchr(name, '/');
	size_t dirlen = base ? (size_t)(base - name) : 0;
	char path[PATH_MAX], hex[BKR_PACK_ID_HEX];
	bkr_blob_type type;
	bkr_pack_id id;
	int err;

	base = base ? base + 1 : name;
	if (!strncmp(name, "data/", 5))
		type = BKR_BLOB_DATA;
	else if (!strncmp(name, "tree/", 5))
		type = BKR_BLOB_TREE;
	else if (pw->hot && !strncmp(base, ".tmp-", 5) && tmp_folder(name, dirlen))
		type = BKR_BLOB_DATA;
	else
		return 0;
	if ((err = bkr_store_describe(pw->s, name, path, sizeof(path))) < 0)
		return err;
	if (!strncmp(base, ".tmp-", 5)) /* in a meta folder, data/, tree/ or <kind>/<xx>/ */
		return dirlen <= 7 ? pw->cb(pw->ctx, NULL, BKR_BLOB_DATA, path) : 0;
	/* <kind>/<xx>/<hex>.pack */
	if (dirlen != 7 || strlen(base) != 2 * BKR_PACK_ID_SIZE + 5 || strcmp(base + 2 * BKR_PACK_ID_SIZE, ".pack"))
		return 0;
	memcpy(hex, base, 2 * BKR_PACK_ID_SIZE);
	hex[2 * BKR_PACK_ID_SIZE] = '\0';
	if (bkr_pack_id_from_hex(&id, hex) < 0)
		return 0;
	return pw->cb(pw->ctx, &id, type, path);
}

int bkr_repo_foreach_pack(bkr_repo *r, pack_cb cb, void *ctx)
{
	struct pack_walk pw = { r->store, true, cb, ctx };
	int err;
	if ((err = bkr_store_list(r->store, "", on_object, &pw)) < 0)
		return err;
	pw.hot = false;
	for (size_t i = 0; i < r->ntiers; i++) {
		pw.s = r->tiers[i];
		if ((err = bkr_store_list(r->tiers[i], "data/", on_object, &pw)) < 0)
			return err;
	}
	bkr_error_clear();
	return 0;
}
