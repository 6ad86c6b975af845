/** @file
 * An open repository and its blobs: opening (config.json, the index), the
 * index (reloaded by the mount's watcher), and the read path — index entry,
 * then the pack in the hot tier, the other tiers, then trash, each a store
 * (bkr/store.h) read with one ranged get of the blob (a pread through the
 * local store's cache of open descriptors), decoded and re-hashed.  See
 * repo.h for the threading rules.
 */
#include "bkr/repo.h"
#include "bkr/crypto.h"
#include "bkr/crypto_store.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "bkr/keycache.h"
#include "bkr/pack.h"
#include "bkr/store_cache.h"
#include "bkr/tier.h"
#include "bkr/trash.h"
#include "bkr/utf8.h"
#include "repo_priv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- open/close ---------------------------------------------------------- */

/* Counts the key files in *(size_t *)ctx: a store's listing stops at a
 * negative return only (an S3 listing took a positive one for going on). */
static int on_key_file(void *ctx, const char *name)
{
	size_t n = strlen(name);
	if (n > 5 && !strcmp(name + n - 5, ".json") && !strchr(name + 5, '/'))
		(*(size_t *)ctx)++;
	return 0;
}

/* How the repository loads its index: damaged files left out, and a sealed one
 * refused naming the configuration file that says "not encrypted". */
static unsigned index_flags(const bkr_repo *r)
{
	return BKR_INDEX_SKIP_DAMAGED | (r->config_warning ? BKR_INDEX_CONFIG_COPY : 0);
}

/*
 * An encrypted repository: open its keys with the key cache's entry, else
 * the passphrase (BKR_REPO_PASSPHRASE: the passphrase only, its derived key
 * kept for bkr_repo_key_cache_put), take the
 * secret chunker seed, and seal through the store from now on.  A plain one
 * must hold no key file (a config.json altered to say "none"; a sealed index
 * file, the index load refuses).
 */
static int open_keys(bkr_repo *r)
{
	uint8_t id[BKR_CRYPTO_REPO_ID_SIZE];
	const char *pass;
	bkr_store *sealed;
	size_t len;
	int err;
	/* the cache is asked below unless the passphrase itself is needed */
	bool cache_tried = !(r->flags & BKR_REPO_PASSPHRASE) && bkr_keycache_enabled();

	if (!r->cfg.encrypted) {
		size_t nkeys = 0;
		if ((err = bkr_store_list(r->store, "keys/", on_key_file, &nkeys)) == 0 && nkeys)
			return bkr_error_set(BKR_ECORRUPT,
					     "%s: %s says the repository is not encrypted, "
					     "but keys/ holds key files: it was altered; refusing to use it",
					     r->path, bkr_repo_config_said(r));
		bkr_error_clear();
		return err < 0 && err != BKR_ENOTFOUND ? err : 0;
	}
	if ((err = bkr_repo_id_bytes(&r->cfg, id)) < 0)
		return err;
	if (r->flags & BKR_REPO_PASSPHRASE) {
		if (!(r->kek = bkr_secure_alloc(BKR_CRYPTO_KEY_SIZE)))
			return bkr_error_oom();
		err = 1;
	} else if ((err = bkr_key_unlock_cached(r->store, id, &r->crypto, r->key_id)) < 0) {
		return err;
	}
	if (err == 1 &&
	    ((err = bkr_key_passphrase(r->path, cache_tried, &pass, &len)) < 0 ||
	     (err = bkr_key_unlock_kek(r->store, id, pass, len, &r->crypto, r->key_id, r->kek)) < 0))
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
	if ((flags & BKR_REPO_CACHED) && !strncmp(path, "s3://", 5)) {
		char dir[PATH_MAX];
		bkr_store *cached;
		if (bkr_store_cache_default_dir(dir, sizeof(dir)) == 0) {
			if (bkr_store_cache_open(&cached, s, dir, 0) == 0)
				s = cached;
			else if ((err = bkr_store_open(&s, path, 0)) < 0) { /* the cache took s: again */
				bkr_error_prefix("repository");
				return err;
			}
		}
		bkr_error_clear();
	}
	return bkr_repo_open_store(out, s, flags);
}

/* An empty repository over @p store (taken: freed on failure too), its
 * path the store's location; nothing read yet. */
static int repo_new(bkr_repo **out, bkr_store *store, int flags)
{
	bkr_repo *r;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r)))) {
		bkr_store_free(store);
		return bkr_error_oom();
	}
	pthread_rwlock_init(&r->index_lock, NULL);
	pthread_mutex_init(&r->tier_lock, NULL);
	pthread_mutex_init(&r->miss_lock, NULL);
	r->flags = flags;
	r->store = store;
	if (!(r->path = strdup(bkr_store_location(store)))) {
		bkr_repo_free(r);
		return bkr_error_oom();
	}
	*out = r;
	return 0;
}

int bkr_repo_open_store(bkr_repo **out, bkr_store *store, int flags)
{
	bkr_repo *r = NULL;
	int err;

	*out = NULL;
	if ((err = repo_new(&r, store, flags)) < 0)
		return err;
	if ((err = bkr_repo_config_load(r)) < 0 || (err = open_keys(r)) < 0)
		goto done;
	if ((err = bkr_index_load(&r->index, r->store, "index/", index_flags(r))) < 0 ||
	    (err = bkr_repo_reload_tiers(r)) < 0)
		goto done;
	*out = r;
	r = NULL;
done:
	bkr_repo_free(r);
	return err;
}

int bkr_repo_identify(const char *path, uint8_t id[BKR_CRYPTO_REPO_ID_SIZE], bool *encrypted)
{
	bkr_repo *r = NULL;
	bkr_store *s;
	int err;

	*encrypted = false;
	if ((err = bkr_store_open(&s, path, 0)) < 0) {
		bkr_error_prefix("repository");
		return err;
	}
	if ((err = repo_new(&r, s, 0)) < 0)
		return err;
	if ((err = bkr_repo_config_load(r)) < 0 || (err = bkr_repo_id_bytes(&r->cfg, id)) < 0)
		goto done;
	*encrypted = r->cfg.encrypted;
done:
	bkr_repo_free(r);
	return err;
}

int bkr_repo_key_cache_put(bkr_repo *r, int64_t seconds, int64_t *expires)
{
	*expires = 0;
	if (!r->crypto || !r->kek)
		return bkr_error_set(BKR_EINVAL, "%s: its keys were not opened with the passphrase", r->path);
	return bkr_keycache_put(bkr_crypto_repo_id(r->crypto), r->key_id, r->kek, seconds, expires);
}

static void free_tiers(bkr_repo *r)
{
	for (size_t i = 0; i < r->ntiers; i++) {
		bkr_store_free(r->tiers[i].store);
		free(r->tiers[i].name);
	}
	r->ntiers = 0;
}

void bkr_repo_free(bkr_repo *r)
{
	if (!r)
		return;
	free_tiers(r);
	bkr_store_free(r->store);
	bkr_index_free(r->index);
	for (size_t i = 0; i < r->nretained; i++)
		bkr_index_free(r->retained[i]);
	bkr_crypto_free(r->crypto);
	bkr_secure_free(r->kek, BKR_CRYPTO_KEY_SIZE);
	pthread_rwlock_destroy(&r->index_lock);
	free(r->config_warning);
	pthread_mutex_destroy(&r->tier_lock);
	pthread_mutex_destroy(&r->miss_lock);
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

int bkr_repo_store_open(bkr_repo *r, const char *location, int flags, bkr_store **out)
{
	bkr_store *s;
	int err;
	*out = NULL;
	if ((err = bkr_store_open(&s, location, flags)) < 0)
		return err;
	if (!r->crypto) {
		*out = s;
		return 0;
	}
	return bkr_crypto_store_new(out, s, r->crypto);
}

int bkr_repo_store_new(bkr_repo *r, bkr_store **out)
{
	return bkr_repo_store_open(r, r->path, 0, out);
}

void bkr_repo_blob_id(const bkr_repo *r, const void *data, size_t len, bkr_id *out)
{
	bkr_crypto_blob_id(r->crypto, data, len, out);
}

void bkr_repo_blob_id_start(const bkr_repo *r, bkr_hash_ctx *h)
{
	bkr_crypto_blob_id_start(r->crypto, h);
}

void bkr_repo_blob_id_end(const bkr_repo *r, bkr_hash_ctx *h, bkr_id *out)
{
	bkr_crypto_blob_id_end(r->crypto, h, out);
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

/* ---- tiers ------------------------------------------------------------------ */

size_t bkr_repo_tier_count(bkr_repo *r)
{
	return __atomic_load_n(&r->ntiers, __ATOMIC_ACQUIRE);
}

bkr_store *bkr_repo_tier(bkr_repo *r, size_t i, const char **tier, bool *recorded)
{
	bool rec = i > 0 && __atomic_load_n(&r->tiers[i - 1].recorded, __ATOMIC_ACQUIRE);
	if (tier)
		*tier = i == 0 ? "hot" : r->tiers[i - 1].name;
	if (recorded)
		*recorded = rec;
	return i == 0 ? r->store : r->tiers[i - 1].store;
}

char *bkr_repo_places(bkr_repo *r)
{
	size_t nt = bkr_repo_tier_count(r);
	char *places = strdup(r->path);

	for (size_t i = 1; i <= nt && places; i++) {
		const char *name = NULL;
		bkr_store *s = bkr_repo_tier(r, i, &name, NULL);
		bkr_text_setf(&places, "%s, tier %s at %s", places, name, bkr_store_location(s));
	}
	return places;
}

/* Under tier_lock. */
static int add_tier_locked(bkr_repo *r, const char *tier, const char *location, bool recorded)
{
	struct repo_tier *t;
	size_t n = r->ntiers;
	int err;

	/* one place reached by two names (a symlink, a bind mount) is one tier: two
	 * would each see the other's packs as extra copies to delete */
	for (size_t i = 0; i < n; i++) {
		if (bkr_store_same_place(bkr_store_location(r->tiers[i].store), location)) {
			if (recorded && !r->tiers[i].recorded)
				__atomic_store_n(&r->tiers[i].recorded, true, __ATOMIC_RELEASE);
			return 0;
		}
	}
	if (bkr_store_same_place(location, r->path))
		return bkr_error_set(BKR_EINVAL, "tier %s: %s is the repository itself", tier, location);
	/* a new one only: a location recorded before this check stays readable */
	if (!recorded && (bkr_store_within(location, r->path) || bkr_store_within(r->path, location)))
		return bkr_error_set(BKR_EINVAL, "tier %s: %s and the repository %s are one inside the other "
				     "(a tier needs its own directory)", tier, location, r->path);
	if (n == BKR_REPO_TIERS_MAX)
		return bkr_error_set(BKR_EINVAL, "%s: more than %d tier locations", r->path, BKR_REPO_TIERS_MAX);
	t = &r->tiers[n];
	if (!(t->name = strdup(tier)))
		return bkr_error_oom();
	if ((err = bkr_repo_store_open(r, location, BKR_STORE_ABSENT_OK, &t->store)) < 0) {
		free(t->name);
		t->name = NULL;
		return err;
	}
	t->recorded = recorded;
	__atomic_store_n(&r->ntiers, n + 1, __ATOMIC_RELEASE);
	return 0;
}

int bkr_repo_add_tier(bkr_repo *r, const char *tier, const char *location, bool recorded)
{
	int err;
	pthread_mutex_lock(&r->tier_lock);
	err = add_tier_locked(r, tier, location, recorded);
	pthread_mutex_unlock(&r->tier_lock);
	return err;
}

int bkr_repo_reload_tiers(bkr_repo *r)
{
	bkr_tier_record *v = NULL;
	size_t n = 0;
	int err;

	if ((err = bkr_tier_records_load(r->store, &v, &n)) < 0)
		return err;
	pthread_mutex_lock(&r->tier_lock);
	for (size_t i = 0; i < n && err == 0; i++)
		err = add_tier_locked(r, v[i].tier, v[i].location, true);
	pthread_mutex_unlock(&r->tier_lock);
	bkr_tier_records_free(v, n);
	return err;
}

/* ---- the index ------------------------------------------------------------ */

/* Whether @p fresh lacks some index file that @p old read (superseded by a merge). */
static bool dropped_files(const bkr_index *old, const bkr_index *fresh)
{
	size_t no, nf;
	const bkr_id *o = bkr_index_files(old, &no), *f = bkr_index_files(fresh, &nf);
	for (size_t i = 0; i < no; i++) {
		bool found = false;
		for (size_t k = 0; k < nf && !found; k++)
			found = !bkr_id_cmp(&o[i], &f[k]);
		if (!found)
			return true;
	}
	return false;
}

int bkr_repo_refresh_index(bkr_repo *r)
{
	bool same = false;
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = r->index ? bkr_index_unchanged(r->index, r->store, "index/", &same) : 0;
	pthread_rwlock_unlock(&r->index_lock);
	if (err < 0)
		return err;
	return same ? 0 : bkr_repo_reload_index(r);
}

int bkr_repo_reload_index(bkr_repo *r)
{
	bkr_index *fresh = NULL, *old, *gone[BKR_REPO_RETAINED_MAX + 1];
	size_t ngone = 0;
	int64_t now = bkr_time_now_ns();
	int err;
	if ((err = bkr_index_load(&fresh, r->store, "index/", index_flags(r))) < 0)
		return err;
	pthread_rwlock_wrlock(&r->index_lock);
	old = r->index;
	r->index = fresh;
	/* the retained ones past the grace period: their packs have left the trash */
	size_t keep = 0;
	for (size_t i = 0; i < r->nretained; i++) {
		if (now - r->retained_ns[i] > (int64_t)BKR_TRASH_GRACE_S * 1000000000LL) {
			gone[ngone++] = r->retained[i];
			continue;
		}
		r->retained[keep] = r->retained[i];
		r->retained_ns[keep++] = r->retained_ns[i];
	}
	r->nretained = keep;
	if ((r->flags & BKR_REPO_RETAIN_INDEX) && old && dropped_files(old, fresh)) {
		if (r->nretained == BKR_REPO_RETAINED_MAX) { /* the oldest goes */
			gone[ngone++] = r->retained[0];
			memmove(r->retained, r->retained + 1, (BKR_REPO_RETAINED_MAX - 1) * sizeof(*r->retained));
			memmove(r->retained_ns, r->retained_ns + 1, (BKR_REPO_RETAINED_MAX - 1) * sizeof(*r->retained_ns));
			r->nretained--;
		}
		r->retained[r->nretained] = old;
		r->retained_ns[r->nretained++] = now;
		old = NULL;
	}
	pthread_rwlock_unlock(&r->index_lock);
	bkr_index_free(old);
	for (size_t i = 0; i < ngone; i++)
		bkr_index_free(gone[i]);
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

const char *bkr_repo_config_said(const bkr_repo *r)
{
	/* the warning is made exactly when the copy was read */
	return r->config_warning ? BKR_CONFIG_COPY_SAID : "config.json";
}

/* Entry @p nth of blob @p id over the index and then the retained ones
 * (newest first); BKR_ENOTFOUND past the last (repo.h). */
int bkr_repo_lookup_nth(bkr_repo *r, const bkr_id *id, size_t nth, bkr_index_entry *out)
{
	bkr_index_entry e;
	size_t seen = 0;
	int err = 0;

	pthread_rwlock_rdlock(&r->index_lock);
	for (size_t i = r->nretained + 1; i-- > 0;) {
		const bkr_index *idx = i == r->nretained ? r->index : r->retained[i];
		/* one search for the entry, one count past it: stepping through the
		 * copies one lookup each made a walk over n copies cost n^2 lookups */
		if ((err = bkr_index_lookup_nth(idx, id, nth - seen, &e)) == 0)
			goto done;
		seen += bkr_index_copies(idx, id);
	}
done:
	pthread_rwlock_unlock(&r->index_lock);
	if (err == 0)
		*out = e;
	return err;
}

int bkr_repo_lookup(bkr_repo *r, const bkr_id *id, bkr_index_entry *out)
{
	int err = bkr_repo_lookup_nth(r, id, 0, out);
	if (err == BKR_ENOTFOUND) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		bkr_error_set(BKR_ENOTFOUND, "blob %s: not in the index of %s", hex, r->path);
	}
	return err;
}

/*
 * A reader's lookup: the index was loaded at open, and a backup that
 * committed since (its index files are published before its manifest) may
 * have been listed since: the first miss reloads the index, once per
 * repository handle, and looks again.  Writers' misses are the normal case
 * (new data) and use bkr_repo_lookup.
 */
static int lookup_read(bkr_repo *r, const bkr_id *id, bkr_index_entry *out)
{
	int err = bkr_repo_lookup(r, id, out);
	bool reload;

	if (err != BKR_ENOTFOUND)
		return err;
	pthread_mutex_lock(&r->miss_lock);
	reload = !r->miss_reloaded;
	r->miss_reloaded = true;
	if (reload && bkr_repo_reload_index(r) < 0)
		reload = false;
	pthread_mutex_unlock(&r->miss_lock);
	bkr_error_clear();
	return bkr_repo_lookup(r, id, out); /* another thread's reload counts too */
}

int bkr_repo_foreach_blob(bkr_repo *r, int (*cb)(const bkr_index_entry *e, void *ctx), void *ctx)
{
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = bkr_index_foreach(r->index, cb, ctx);
	pthread_rwlock_unlock(&r->index_lock);
	return err;
}

size_t bkr_repo_index_files_holding(bkr_repo *r, const bkr_index_entry *e, bkr_id *out, size_t cap)
{
	size_t n;
	pthread_rwlock_rdlock(&r->index_lock);
	n = bkr_index_files_holding(r->index, e, out, cap);
	pthread_rwlock_unlock(&r->index_lock);
	return n;
}

/* ---- where packs are -------------------------------------------------------- */

static const char *pack_folder(bkr_blob_type type)
{
	return type == BKR_BLOB_TREE ? "tree" : "data";
}

/*
 * Where a pack may be, in search order: the hot tier, each other tier, then
 * the repository's trash and each tier's trash (2 + 2 * @p nt places).  *s
 * and @p name (PATH_MAX) get the store and the object; false past the last.
 */
static bool pack_place(bkr_repo *r, size_t nt, size_t i, const bkr_pack_id *id, bkr_blob_type type,
		       bkr_store **s, char *name)
{
	char hex[BKR_PACK_ID_HEX];
	if (i <= nt) {
		*s = bkr_repo_tier(r, i, NULL, NULL);
		return bkr_pack_path(name, PATH_MAX, pack_folder(type), id) == 0;
	}
	if (i > 2 * nt + 1)
		return false;
	*s = bkr_repo_tier(r, i - nt - 1, NULL, NULL);
	bkr_pack_id_to_hex(id, hex);
	snprintf(name, PATH_MAX, "trash/%s.pack", hex);
	return true;
}

/* The place cache: where a pack was last found (a reader tries it first). */
static uint64_t cache_key(const bkr_pack_id *id)
{
	uint64_t k;
	memcpy(&k, id->b, sizeof(k));
	return k & ~(uint64_t)0xff;
}

static size_t cache_get(bkr_repo *r, const bkr_pack_id *id)
{
	uint64_t k = cache_key(id);
	uint64_t v = __atomic_load_n(&r->place_cache[k % 251], __ATOMIC_RELAXED);
	return v && (v & ~(uint64_t)0xff) == k ? (size_t)(v & 0xff) - 1 : SIZE_MAX;
}

static void cache_put(bkr_repo *r, const bkr_pack_id *id, size_t place)
{
	uint64_t k = cache_key(id);
	if (place < 0xff)
		__atomic_store_n(&r->place_cache[k % 251], k | (place + 1), __ATOMIC_RELAXED);
}

static int pack_missing(bkr_repo *r, const bkr_pack_id *id)
{
	char hex[BKR_PACK_ID_HEX], absent[512] = "";
	size_t nt = bkr_repo_tier_count(r), used = 0;
	bkr_pack_id_to_hex(id, hex);
	/* a tier that is not there is the likely cause: name it */
	for (size_t i = 1; i <= nt && used < sizeof(absent); i++) {
		int n;
		if (bkr_tier_present(r, i) == 0)
			continue;
		n = snprintf(absent + used, sizeof(absent) - used, "; %s", bkr_error_message());
		used += n > 0 ? (size_t)n : 0;
	}
	return bkr_error_set(BKR_ENOTFOUND, "pack %s: missing from %s, every tier and trash%s", hex, r->path, absent);
}

/*
 * The first place holding a pack (hot, the tiers, then trash): its store in
 * *@p s and its name there in @p name; BKR_ENOTFOUND when none does.  A place
 * that cannot answer counts as not holding it, unless @p strict: then its
 * error is returned (no answer is no proof that the pack is not there).
 */
static int pack_where(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, bool strict, bkr_store **s,
		      char name[PATH_MAX])
{
	size_t nt = bkr_repo_tier_count(r);
	uint64_t size;
	int err;
	for (size_t i = 0; pack_place(r, nt, i, id, type, s, name); i++) {
		if ((err = bkr_store_stat(*s, name, &size)) == 0)
			return 0;
		if (strict && err != BKR_ENOTFOUND)
			return err;
		bkr_error_clear();
	}
	return pack_missing(r, id);
}

int bkr_repo_pack_path(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, char *out, size_t cap)
{
	char name[PATH_MAX];
	bkr_store *s = NULL; /* set when pack_where returns 0; -O3 cannot tell */
	int err = pack_where(r, id, type, true, &s, name);
	return err < 0 ? err : bkr_store_describe(s, name, out, cap);
}

int bkr_repo_pack_find(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type)
{
	char name[PATH_MAX];
	bkr_store *s = NULL;
	return pack_where(r, id, type, true, &s, name);
}

int bkr_repo_pack_seek(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, bool strict, bool *reloaded,
		       char *out, size_t cap)
{
	char name[PATH_MAX];
	bkr_store *s = NULL;
	int err = BKR_ENOTFOUND;

	if (!*reloaded) {
		*reloaded = true;
		if ((err = bkr_repo_reload_tiers(r)) < 0)
			return err;
	}
	for (int attempt = 0; attempt < 2; attempt++)
		if ((err = pack_where(r, id, type, strict, &s, name)) != BKR_ENOTFOUND)
			break;
	return err < 0 || !out ? err : bkr_store_describe(s, name, out, cap);
}

int bkr_repo_locate(bkr_repo *r, const char *path, bkr_store **s, const char **name)
{
	size_t nt = bkr_repo_tier_count(r);
	for (size_t i = 0; i <= nt; i++) {
		bkr_store *t = bkr_repo_tier(r, i, NULL, NULL);
		const char *loc = bkr_store_location(t);
		size_t n = strlen(loc);
		if (!strncmp(path, loc, n) && path[n] == '/' && path[n + 1]) {
			*s = t;
			*name = path + n + 1;
			return 0;
		}
	}
	*s = NULL;
	*name = NULL;
	return bkr_error_set(BKR_ENOTFOUND, "%s: not in the repository %s or its tiers", path, r->path);
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

int bkr_repo_pack_footer(bkr_repo *r, const bkr_pack_id *id, const char *path, bkr_pack_entry **entries,
			 size_t *n)
{
	struct range g = { .flags = BKR_STORE_LISTED };
	uint64_t size;
	int err;

	*entries = NULL;
	*n = 0;
	if ((err = bkr_repo_locate(r, path, &g.s, &g.name)) < 0 || (err = bkr_store_stat_listed(g.s, g.name, &size)) < 0)
		return err;
	return bkr_pack_read_footer_from(r->crypto, id, range_read, &g, size, path, entries, n);
}

int bkr_repo_pack_blob(bkr_repo *r, const char *path, const bkr_index_entry *e, void *out)
{
	struct range g = { .flags = BKR_STORE_LISTED };
	int err;

	if ((err = bkr_repo_locate(r, path, &g.s, &g.name)) < 0)
		return err;
	return bkr_pack_read_blob_from(r->crypto, range_read, &g, path, &e->id, e->offset, e->stored_len,
				       e->raw_len, e->type, out, 0);
}

/* Advise bytes [@p off, @p end) of the pack of @p e, where it was last found. */
static void advise_pack(bkr_repo *r, const bkr_index_entry *e, uint64_t off, uint64_t end)
{
	char name[PATH_MAX];
	bkr_store *s;
	size_t nt = bkr_repo_tier_count(r), hint = cache_get(r, &e->pack);

	if (!pack_place(r, nt, hint != SIZE_MAX && hint <= 2 * nt + 1 ? hint : 0, &e->pack, e->type, &s, name))
		return;
	if (bkr_store_advise(s, name, off, end - off) < 0)
		bkr_error_clear(); /* advice only: the read will say what is wrong */
}

int bkr_repo_advise_blob(bkr_repo *r, const bkr_id *id, uint32_t before)
{
	bkr_index_entry e;
	int err;

	if ((err = lookup_read(r, id, &e)) < 0)
		return err;
	if (before > e.offset)
		before = (uint32_t)e.offset;
	advise_pack(r, &e, e.offset - before, e.offset + BKR_BLOB_HEADER_SIZE + (uint64_t)e.stored_len);
	return 0;
}

int bkr_repo_advise_blob_ahead(bkr_repo *r, const bkr_id *id, uint32_t ahead, bkr_repo_advice *w)
{
	bkr_index_entry e;
	bkr_repo_advice_range *g = NULL;
	uint64_t lo, hi;
	int err;

	if ((err = lookup_read(r, id, &e)) < 0)
		return err;
	lo = e.offset;
	hi = lo + BKR_BLOB_HEADER_SIZE + (uint64_t)e.stored_len;
	/* a range of the same pack that reaches the blob, or @p ahead bytes short of it */
	for (size_t k = 0; k < BKR_REPO_ADVICE_RANGES && !g; k++) {
		bkr_repo_advice_range *q = &w->r[k];
		if (q->hi && bkr_pack_id_cmp(&q->pack, &e.pack) == 0 && lo <= q->hi && hi + ahead >= q->lo)
			g = q;
	}
	if (!g) {
		g = &w->r[w->next++ % BKR_REPO_ADVICE_RANGES];
		g->pack = e.pack;
		g->lo = g->hi = lo;
	}
	if (lo < g->lo) {
		/* read in reverse (a directory listed newest first when backed up): @p ahead below it */
		uint64_t to = g->lo;
		g->lo = lo > ahead ? lo - ahead : 0;
		advise_pack(r, &e, g->lo, to);
	}
	if (hi > g->hi) {
		advise_pack(r, &e, g->hi, hi + ahead);
		g->hi = hi + ahead;
	}
	return 0;
}

/*
 * A tree is loaded because a backup or a directory names it, and trees never
 * leave the repository: one that is not found (its blob not in the index, or
 * its pack gone) is damaged data, BKR_ECORRUPT naming the blob.  Readers keep
 * BKR_ENOTFOUND for a path that does not exist: a page of a big directory
 * that did not load read as a name not there, and a listing ended early.
 */
static int tree_missing(const bkr_id *id)
{
	char hex[BKR_ID_HEX];

	/* the message as an argument is formatted aside first (bkr/error.h): kept
	 * whole, not cut to a buffer here (its end says why) */
	bkr_id_to_hex(id, hex);
	if (strstr(bkr_error_message(), hex))
		return bkr_error_set(BKR_ECORRUPT, "%s", bkr_error_message());
	return bkr_error_set(BKR_ECORRUPT, "tree blob %s: %s", hex, bkr_error_message());
}

/*
 * Read the blob of index entry @p e into @p buf (e->raw_len bytes) from
 * wherever its pack is.  @p flags: the store's (BKR_STORE_*); @p opts: the
 * pack's (BKR_PACK_*).
 */
static int read_entry(bkr_repo *r, const bkr_index_entry *e, unsigned flags, unsigned opts, uint8_t *buf)
{
	char name[PATH_MAX], what[PATH_MAX];
	struct range g = { .name = name, .flags = flags };
	int err = 0;

	/* A failed read drops the store's cached descriptor: a second attempt
	 * opens the pack afresh, wherever it is now (moved to a tier or trash).
	 * A pack found nowhere may have moved during the search, or to a tier
	 * recorded since open: the tier records are reloaded and it is searched
	 * again. */
	for (int attempt = 0; attempt < 3; attempt++) {
		size_t nt, hint = cache_get(r, &e->pack);
		if (attempt > 0 && err == BKR_ENOTFOUND) {
			if (bkr_repo_reload_tiers(r) < 0)
				bkr_error_clear();
			hint = SIZE_MAX;
		}
		nt = bkr_repo_tier_count(r);
		if (hint != SIZE_MAX && hint > 2 * nt + 1)
			hint = SIZE_MAX;
		err = BKR_ENOTFOUND;
		for (size_t k = 0; err == BKR_ENOTFOUND; k++) {
			size_t i = hint == SIZE_MAX ? k : k == 0 ? hint : k - 1 + (k - 1 >= hint);
			if (!pack_place(r, nt, i, &e->pack, e->type, &g.s, name))
				break;
			if ((err = bkr_store_describe(g.s, name, what, sizeof(what))) < 0)
				break;
			err = bkr_pack_read_blob_from(r->crypto, range_read, &g, what, &e->id, e->offset, e->stored_len,
						      e->raw_len, e->type, buf, opts);
			if (err >= 0)
				cache_put(r, &e->pack, i);
		}
		if (err >= 0 || err == BKR_ECORRUPT)
			break;
	}
	if (err == BKR_ENOTFOUND)
		pack_missing(r, &e->pack);
	return err;
}

/*
 * Read blob @p id as @p type: its index entries in lookup order (newest index
 * file first), the next one when a copy's pack is missing or the copy is
 * damaged (an old index file put back names a pack prune has removed since,
 * while the present index names an intact copy).  When no copy reads, the
 * first entry's error: the one the index stands for (a tree not found is
 * BKR_ECORRUPT, tree_missing).  The one read path of every reader (restore,
 * cat, diff, copy, the mount).
 */
static int read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, unsigned flags, unsigned opts, uint8_t **out,
		     size_t *len)
{
	bkr_index_entry e;
	uint8_t *buf = NULL;
	char *first = NULL;
	int err, first_err = 0;

	*out = NULL;
	*len = 0;
	for (size_t nth = 0;; nth++) {
		err = nth == 0 ? lookup_read(r, id, &e) : bkr_repo_lookup_nth(r, id, nth, &e);
		if (err < 0) {
			if (nth == 0)
				return err == BKR_ENOTFOUND && type == BKR_BLOB_TREE ? tree_missing(id) : err;
			if (err == BKR_ENOTFOUND) /* no other copy */
				break;
			goto fail;
		}
		if (e.type != type) {
			char hex[BKR_ID_HEX];
			bkr_id_to_hex(id, hex);
			err = bkr_error_set(BKR_ECORRUPT, "blob %s: indexed as type %u, wanted %u", hex, e.type, type);
		} else {
			uint8_t *nb = realloc(buf, e.raw_len ? e.raw_len : 1);
			if (!nb) {
				err = bkr_error_oom();
				goto fail;
			}
			buf = nb;
			if ((err = read_entry(r, &e, flags, opts, buf)) >= 0) {
				free(first);
				*out = buf;
				*len = e.raw_len;
				return 0;
			}
		}
		if (err != BKR_ENOTFOUND && err != BKR_ECORRUPT)
			goto fail;
		if (nth == 0 && !(first = strdup(bkr_error_message()))) {
			err = bkr_error_oom();
			goto fail;
		}
		if (nth == 0)
			first_err = err;
	}
	err = bkr_error_set(first_err, "%s", first);
	if (err == BKR_ENOTFOUND && type == BKR_BLOB_TREE)
		err = tree_missing(id);
fail:
	free(first);
	free(buf);
	return err;
}

int bkr_repo_read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len)
{
	/* A small tree pack is read all over, and backwards (trees are written
	 * children first and walked parents first): the store reads it ahead. */
	return read_blob(r, id, type, type == BKR_BLOB_TREE ? BKR_STORE_READ_AHEAD : 0, 0, out, len);
}

int bkr_repo_read_data_unhashed(bkr_repo *r, const bkr_id *id, uint8_t **out, size_t *len)
{
	return read_blob(r, id, BKR_BLOB_DATA, 0, BKR_PACK_UNHASHED, out, len);
}

static int load_tree(bkr_repo *r, const bkr_id *id, unsigned flags, bkr_tree **out)
{
	uint8_t *buf;
	size_t len;
	int err;
	*out = NULL;
	if ((err = read_blob(r, id, BKR_BLOB_TREE, flags, 0, &buf, &len)) < 0)
		return err;
	return bkr_tree_parse(out, buf, len);
}

int bkr_repo_load_tree(void *repo, const bkr_id *id, bkr_tree **out)
{
	return load_tree(repo, id, BKR_STORE_READ_AHEAD, out);
}

int bkr_repo_load_tree_only(void *repo, const bkr_id *id, bkr_tree **out)
{
	return load_tree(repo, id, 0, out);
}

/* ---- enumeration (verify, prune) ----------------------------------------- */

typedef int (*pack_cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place,
		       const char *name, const char *path);

struct pack_walk {
	bkr_store *s;
	size_t place;   /* 0: the repository itself: its temporaries everywhere are reported too */
	pack_cb cb;
	void *ctx;
};

/* Folders whose unfinished ".tmp-*" objects are reported (besides data/ and tree/). */
static bool tmp_folder(const char *name, size_t len)
{
	static const char *const meta[] = { "index", "backups", "runs", "records", "tiers" };
	if (len == 0)
		return true;
	for (size_t i = 0; i < sizeof(meta) / sizeof(*meta); i++)
		if (strlen(meta[i]) == len && !strncmp(name, meta[i], len))
			return true;
	return false;
}

/* "data/<xx>/<hex>.pack" or "tree/...", and temporaries in data/, data/<xx>/ and the
 * meta folders (a tier: at its top, where its tier.json is written). */
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
	else if (!strncmp(base, ".tmp-", 5) && (pw->place == 0 ? tmp_folder(name, dirlen) : dirlen == 0))
		type = BKR_BLOB_DATA;
	else
		return 0;
	if ((err = bkr_store_describe(pw->s, name, path, sizeof(path))) < 0)
		return err;
	if (!strncmp(base, ".tmp-", 5)) /* in a meta folder, data/, tree/ or <kind>/<xx>/ */
		return dirlen <= 7 ? pw->cb(pw->ctx, NULL, BKR_BLOB_DATA, pw->place, name, path) : 0;
	/* <kind>/<xx>/<hex>.pack */
	if (dirlen != 7 || strlen(base) != 2 * BKR_PACK_ID_SIZE + 5 || strcmp(base + 2 * BKR_PACK_ID_SIZE, ".pack"))
		return 0;
	memcpy(hex, base, 2 * BKR_PACK_ID_SIZE);
	hex[2 * BKR_PACK_ID_SIZE] = '\0';
	if (bkr_pack_id_from_hex(&id, hex) < 0)
		return 0;
	return pw->cb(pw->ctx, &id, type, pw->place, name, path);
}

int bkr_repo_foreach_pack_in(bkr_repo *r, pack_cb cb, void *ctx)
{
	struct pack_walk pw = { r->store, 0, cb, ctx };
	size_t nt = bkr_repo_tier_count(r);
	int err;
	if ((err = bkr_store_list(r->store, "", on_object, &pw)) < 0)
		return err;
	for (size_t i = 1; i <= nt; i++) {
		pw.s = bkr_repo_tier(r, i, NULL, NULL);
		pw.place = i;
		if ((err = bkr_store_list(pw.s, "", on_object, &pw)) < 0)
			return err;
	}
	bkr_error_clear();
	return 0;
}

struct path_walk {
	int (*cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path);
	void *ctx;
};

static int by_path(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place, const char *name,
		   const char *path)
{
	struct path_walk *w = ctx;
	(void)place;
	(void)name;
	return w->cb(w->ctx, id, type, path);
}

int bkr_repo_foreach_pack(bkr_repo *r,
			  int (*cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path),
			  void *ctx)
{
	struct path_walk w = { cb, ctx };
	return bkr_repo_foreach_pack_in(r, by_path, &w);
}
