/** @file
 * The sealing store (bkr/crypto_store.h): every call on an object that
 * bkr_crypto_object_is_sealed names is sealed on put and opened on get
 * and get_range (whole: sealed objects are small and read whole);
 * everything else — packs and their uploads, key files, config.json,
 * locks, listing, moving, deleting — goes to the inner store unchanged.
 * stat reports a sealed object's plaintext size.
 */
#include "bkr/crypto_store.h"
#include "bkr/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	bkr_store base;
	bkr_store *inner;
	bkr_crypto *c;
} crypto_store;

#define INNER(s) (((crypto_store *)(s))->inner)
#define KEYS(s) (((crypto_store *)(s))->c)

static int cs_stat(bkr_store *s, const char *name, uint64_t *size)
{
	int err = bkr_store_stat(INNER(s), name, size);
	if (err == 0 && bkr_crypto_object_is_sealed(name))
		*size = *size > BKR_SEALED_OVERHEAD ? *size - BKR_SEALED_OVERHEAD : 0;
	return err;
}

/* The inner store's time and version tag: prune judges a leftover's age by
 * its time, and takes one of unknown age for a young one. */
static int cs_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	char none[BKR_STORE_TAG_MAX];
	int err = bkr_store_stat_tag(INNER(s), name, size, mtime, tag ? tag : none);
	if (err == 0 && bkr_crypto_object_is_sealed(name))
		*size = *size > BKR_SEALED_OVERHEAD ? *size - BKR_SEALED_OVERHEAD : 0;
	return err;
}

/* The plaintext of sealed object @p name (malloc'd, NUL-terminated). */
static int open_sealed(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	char what[4096];
	uint8_t *raw = NULL;
	size_t rlen = 0;
	int err;

	*out = NULL;
	*len = 0;
	if ((err = bkr_store_describe(s, name, what, sizeof(what))) < 0)
		return err;
	if ((err = bkr_store_get(INNER(s), name, max > SIZE_MAX - BKR_SEALED_OVERHEAD ? SIZE_MAX : max + BKR_SEALED_OVERHEAD,
				 &raw, &rlen)) < 0)
		return err;
	err = bkr_crypto_open_object(KEYS(s), name, raw, rlen, out, len, what);
	free(raw);
	return err;
}

static int cs_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	if (!bkr_crypto_object_is_sealed(name))
		return bkr_store_get(INNER(s), name, max, out, len);
	return open_sealed(s, name, max, out, len);
}

static int cs_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	char what[4096];
	uint8_t *pt = NULL;
	size_t n = 0;
	int err;

	if (!bkr_crypto_object_is_sealed(name))
		return bkr_store_get_range(INNER(s), name, off, len, buf, flags);
	if ((err = open_sealed(s, name, SIZE_MAX, &pt, &n)) < 0)
		return err;
	if (off > n || len > n - off) {
		bkr_store_describe(s, name, what, sizeof(what));
		err = bkr_error_set(BKR_ECORRUPT, "%s: truncated (%zu bytes, wanted %zu at %llu)",
				    what, n, len, (unsigned long long)off);
	} else if (len) {
		memcpy(buf, pt + off, len);
	}
	free(pt);
	return err;
}

/* sealed objects are read whole and opened first: no advice for them */
static int cs_advise(bkr_store *s, const char *name, uint64_t off, uint64_t len)
{
	return bkr_crypto_object_is_sealed(name) ? 0 : bkr_store_advise(INNER(s), name, off, len);
}

static int cs_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	uint8_t *sealed = NULL;
	size_t slen = 0;
	int err;
	if (!bkr_crypto_object_is_sealed(name))
		return bkr_store_put(INNER(s), name, data, len);
	if ((err = bkr_crypto_seal_object(KEYS(s), name, data, len, &sealed, &slen)) < 0)
		return err;
	err = bkr_store_put(INNER(s), name, sealed, slen);
	free(sealed);
	return err;
}

/* Uploads are packs (sealed blob by blob in pack.c): the inner store's own. */
static int cs_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	return bkr_store_upload_new(INNER(s), prefix, out);
}

static int cs_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	return bkr_store_list(INNER(s), prefix, cb, ctx);
}

static int cs_list_stamped(bkr_store *s, const char *prefix,
			     int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	return bkr_store_list_stamped(INNER(s), prefix, cb, ctx);
}

static int cs_list_other(bkr_store *s, const char *prefix,
			 int (*cb)(void *ctx, const char *name, const char *what), void *ctx)
{
	return bkr_store_list_other(INNER(s), prefix, cb, ctx);
}

static int cs_remove(bkr_store *s, const char *name)
{
	return bkr_store_delete(INNER(s), name);
}

static int cs_rename(bkr_store *s, const char *from, const char *to)
{
	return bkr_store_rename(INNER(s), from, to);
}

static int cs_prepare(bkr_store *s, const char *prefix)
{
	return bkr_store_prepare(INNER(s), prefix);
}

static int cs_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	return bkr_store_lock(INNER(s), name, exclusive, wait, out);
}

static int cs_root_missing(bkr_store *s)
{
	return bkr_store_root_missing(INNER(s));
}

static int cs_drop_folder(bkr_store *s, const char *prefix)
{
	return bkr_store_drop_folder(INNER(s), prefix);
}

static int cs_drop_copy(bkr_store *s, const char *name)
{
	return bkr_store_drop_copy(INNER(s), name);
}

/* a sealed object is opened whole by any read (GCM), and an unsealed one as the inner store reads it */
static bool cs_reads_whole(bkr_store *s, const char *name)
{
	return bkr_crypto_object_is_sealed(name) || bkr_store_reads_whole(INNER(s), name);
}

static int cs_mark(bkr_store *s, const char *name, bkr_store_held **out)
{
	return bkr_store_mark(INNER(s), name, out);
}

static void cs_free(bkr_store *s)
{
	crypto_store *cs = (crypto_store *)s;
	bkr_store_free(cs->inner);
	bkr_crypto_free(cs->c);
	free(cs->base.location);
	free(cs);
}

static const bkr_store_ops crypto_ops = {
	.stat = cs_stat,
	.stat_time = cs_stat_time,
	.get = cs_get,
	.get_range = cs_get_range,
	.advise = cs_advise,
	.put = cs_put,
	.upload_new = cs_upload_new,
	.list = cs_list,
	.list_stamped = cs_list_stamped,
	.list_other = cs_list_other,
	.remove = cs_remove,
	.rename_new = cs_rename,
	.prepare = cs_prepare,
	.lock = cs_lock,
	.mark = cs_mark,
	.reads_whole = cs_reads_whole,
	.free = cs_free,
	.root_missing = cs_root_missing,
	.drop_copy = cs_drop_copy,
	.drop_folder = cs_drop_folder,
};

int bkr_crypto_store_new(bkr_store **out, bkr_store *inner, const bkr_crypto *c)
{
	crypto_store *cs = NULL;
	int err;

	*out = NULL;
	if (!(cs = calloc(1, sizeof(*cs))) || !(cs->base.location = strdup(bkr_store_location(inner)))) {
		err = bkr_error_oom();
		goto fail;
	}
	if ((err = bkr_crypto_new(&cs->c, bkr_crypto_enc_key(c), bkr_crypto_mac_key(c), bkr_crypto_repo_id(c))) < 0)
		goto fail;
	cs->base.ops = &crypto_ops;
	cs->inner = inner;
	*out = &cs->base;
	return 0;
fail:
	if (cs)
		free(cs->base.location);
	free(cs);
	bkr_store_free(inner);
	return err;
}
