/** @file
 * A store that counts the operations reaching it, over a local store: the
 * reads (gets, ranged gets, stats) and the listings, and those of one folder
 * (its listings, and the gets of its objects: what one LIST and one GET per
 * object cost on S3); and after a listing, optionally, what another process
 * does meanwhile.  Header-only, for the unit tests that count requests
 * (test_store_cache, test_records_read) or race a reader (test_routine);
 * every other operation passes through.  Include after cmocka.h.
 */
#ifndef BKR_TEST_COUNTING_STORE_H
#define BKR_TEST_COUNTING_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/store.h"

typedef struct counting {
	bkr_store base;
	bkr_store *inner;
	unsigned gets, ranges, stats, lists; /* atomic */
	unsigned long long got;              /* bytes the gets returned (atomic) */
	unsigned stat_delay_us;              /* a slow stat, as over a network */
	char folder[64];                     /* counted apart: "records" ("": none) */
	unsigned folder_lists, folder_gets;  /* atomic */
	bool stamped;                        /* listings give the local store's stamps ("" when false: none) */
	/** Called after each listing (optional): what another process does meanwhile. */
	void (*after_list)(struct counting *c, const char *prefix);
	void *ctx;
} counting;

/* the version tag the counting store gives (S3's ETag); "" gives none */
static char fake_tag[64];

static inline bool c_in_folder(const counting *c, const char *name)
{
	size_t n = strlen(c->folder);
	return n && !strncmp(name, c->folder, n) && name[n] == '/';
}
static inline int c_stat(bkr_store *s, const char *name, uint64_t *size)
{
	__atomic_add_fetch(&((counting *)s)->stats, 1, __ATOMIC_RELAXED);
	if (((counting *)s)->stat_delay_us)
		usleep(((counting *)s)->stat_delay_us);
	return bkr_store_stat(((counting *)s)->inner, name, size);
}
static inline int c_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	__atomic_add_fetch(&((counting *)s)->stats, 1, __ATOMIC_RELAXED);
	if (((counting *)s)->stat_delay_us)
		usleep(((counting *)s)->stat_delay_us);
	if (tag)
		snprintf(tag, BKR_STORE_TAG_MAX, "%s", fake_tag);
	return bkr_store_stat_time(((counting *)s)->inner, name, size, mtime);
}
static inline int c_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	counting *c = (counting *)s;
	__atomic_add_fetch(&c->gets, 1, __ATOMIC_RELAXED);
	if (c_in_folder(c, name))
		__atomic_add_fetch(&c->folder_gets, 1, __ATOMIC_RELAXED);
	int err = bkr_store_get(c->inner, name, max, out, len);
	if (err == 0)
		__atomic_add_fetch(&c->got, (unsigned long long)*len, __ATOMIC_RELAXED);
	return err;
}
static inline int c_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	__atomic_add_fetch(&((counting *)s)->ranges, 1, __ATOMIC_RELAXED);
	return bkr_store_get_range(((counting *)s)->inner, name, off, len, buf, flags);
}
static inline int c_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	return bkr_store_put(((counting *)s)->inner, name, data, len);
}
static inline int c_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	return bkr_store_upload_new(((counting *)s)->inner, prefix, out);
}
static inline int c_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	counting *c = (counting *)s;
	__atomic_add_fetch(&c->lists, 1, __ATOMIC_RELAXED);
	if (c->folder[0] && !strncmp(prefix, c->folder, strlen(c->folder)) &&
	    (!prefix[strlen(c->folder)] || !strcmp(prefix + strlen(c->folder), "/")))
		__atomic_add_fetch(&c->folder_lists, 1, __ATOMIC_RELAXED);
	int err = bkr_store_list(c->inner, prefix, cb, ctx);
	if (c->after_list)
		c->after_list(c, prefix);
	return err;
}
/* c_list's stamped listing passes its entries through here, with no stamp */
struct c_unstamped {
	int (*cb)(void *ctx, const char *name, const char *stamp);
	void *ctx;
};
static inline int c_unstamped_one(void *ctx, const char *name)
{
	struct c_unstamped *u = ctx;
	return u->cb(u->ctx, name, "");
}
static inline int c_list_stamped(bkr_store *s, const char *prefix,
				 int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	counting *c = (counting *)s;
	struct c_unstamped u = { cb, ctx };
	int err;
	if (!c->stamped)
		return c_list(s, prefix, c_unstamped_one, &u);
	__atomic_add_fetch(&c->lists, 1, __ATOMIC_RELAXED);
	if (c->folder[0] && !strncmp(prefix, c->folder, strlen(c->folder)) &&
	    (!prefix[strlen(c->folder)] || !strcmp(prefix + strlen(c->folder), "/")))
		__atomic_add_fetch(&c->folder_lists, 1, __ATOMIC_RELAXED);
	err = bkr_store_list_stamped(c->inner, prefix, cb, ctx);
	if (c->after_list)
		c->after_list(c, prefix);
	return err;
}
static inline int c_remove(bkr_store *s, const char *name)
{
	return bkr_store_delete(((counting *)s)->inner, name);
}
static inline int c_rename(bkr_store *s, const char *from, const char *to)
{
	return bkr_store_rename(((counting *)s)->inner, from, to);
}
static inline int c_prepare(bkr_store *s, const char *prefix)
{
	return bkr_store_prepare(((counting *)s)->inner, prefix);
}
static inline int c_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	return bkr_store_lock(((counting *)s)->inner, name, exclusive, wait, out);
}
static inline void c_free(bkr_store *s)
{
	bkr_store_free(((counting *)s)->inner);
	free(s->location);
	free(s);
}

static const bkr_store_ops counting_ops = {
	.stat = c_stat,
	.stat_time = c_stat_time,
	.get = c_get,
	.get_range = c_range,
	.put = c_put,
	.upload_new = c_upload_new,
	.list = c_list,
	.list_stamped = c_list_stamped,
	.remove = c_remove,
	.rename_new = c_rename,
	.prepare = c_prepare,
	.lock = c_lock,
	.free = c_free,
};

/** A counting store over the local store at @p dir (which must exist). */
static inline counting *counting_open(const char *dir)
{
	counting *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->base.ops = &counting_ops;
	assert_int_equal(bkr_store_local_open(&c->inner, dir, 0), 0);
	c->base.location = strdup(bkr_store_location(c->inner));
	return c;
}

/** Count the listings of @p folder and the gets of its objects apart, from 0. */
static inline void counting_watch(counting *c, const char *folder)
{
	snprintf(c->folder, sizeof(c->folder), "%s", folder);
	c->folder_lists = c->folder_gets = 0;
}

static inline unsigned requests(const counting *c)
{
	return c->gets + c->ranges + c->stats;
}

#endif
