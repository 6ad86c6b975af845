/** @file
 * The storage layer's interface (bkr/store.h): checks every object name once,
 * here, and hands the call to the store's implementation.
 */
#include "bkr/store.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define NAME_MAX_LEN 1000

/* Relative, '/'-separated, no empty, "." or ".." component; @p folder allows
 * "" and a trailing '/'. */
static bool name_ok(const char *name, bool folder)
{
	const char *p = name;
	if (!*name)
		return folder;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 && !(folder && !slash && p != name))
			return false;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

static int check_name(const char *name, bool folder)
{
	if (!*name && !folder)
		return bkr_error_set(BKR_EINVAL, "empty object name");
	if (strlen(name) > NAME_MAX_LEN)
		return bkr_error_set(BKR_EINVAL, "object name too long: %.60s...", name);
	if (!name_ok(name, folder))
		return bkr_error_set(BKR_EINVAL, "bad object name '%s'", name);
	return 0;
}

bool bkr_store_is_url(const char *location)
{
	const char *p = location;
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
		p++;
	return p > location && !strncmp(p, "://", 3);
}

int bkr_store_open(bkr_store **out, const char *location, unsigned flags)
{
	*out = NULL;
	if (!bkr_store_is_url(location))
		return bkr_store_local_open(out, location, flags);
	if (!strncmp(location, "s3://", 5))
		return bkr_store_s3_open(out, location, flags);
	return bkr_error_set(BKR_EINVAL, "%s: unknown kind of location (expected a directory or s3://BUCKET[/PREFIX])",
			     location);
}

void bkr_store_free(bkr_store *s)
{
	if (s)
		s->ops->free(s);
}

size_t bkr_store_fd_max(const bkr_store *s, unsigned requesters)
{
	return s && bkr_store_is_url(bkr_store_location(s)) ? (size_t)requesters * BKR_STORE_S3_HANDLE_FDS : 0;
}

const char *bkr_store_location(const bkr_store *s)
{
	return s->location;
}

const char *bkr_store_identity(const bkr_store *s)
{
	return s->identity ? s->identity : s->location;
}

bool bkr_store_same_place(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	struct stat sa, sb;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	if (la == lb && !memcmp(a, b, la))
		return true;
	if (bkr_store_is_url(a) || bkr_store_is_url(b))
		return false;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISDIR(sa.st_mode) && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* @p p with symlinks resolved into @p out (PATH_MAX): its longest existing
 * leading part resolved, the rest appended as named. */
static bool resolve(const char *p, char *out)
{
	char buf[PATH_MAX];
	size_t keep = strlen(p);

	if (keep >= sizeof(buf))
		return false;
	strcpy(buf, p);
	for (;;) {
		char *slash;
		if (realpath(buf, out)) {
			size_t n = strlen(out);
			if (n == 1)
				n = 0; /* "/" and "/x" is "/x" */
			if (n + strlen(p + keep) >= PATH_MAX)
				return false;
			strcpy(out + n, p + keep);
			return true;
		}
		if (!(slash = strrchr(buf, '/')) || slash == buf)
			return false;
		*slash = '\0';
		keep = (size_t)(slash - buf);
	}
}

bool bkr_store_within(const char *inner, const char *outer)
{
	char ri[PATH_MAX], ro[PATH_MAX];

	if (bkr_store_same_place(inner, outer) || bkr_path_under(inner, outer))
		return true;
	if (bkr_store_is_url(inner) || bkr_store_is_url(outer))
		return false;
	return resolve(inner, ri) && resolve(outer, ro) && bkr_path_under(ri, ro);
}

int bkr_store_describe(const bkr_store *s, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", s->location, name);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "path too long: %s/%s", s->location, name);
	return 0;
}

int bkr_store_drop_copy(bkr_store *s, const char *name)
{
	return s && s->ops->drop_copy ? s->ops->drop_copy(s, name) : 0;
}

bool bkr_store_reads_whole(bkr_store *s, const char *name)
{
	return s->ops->reads_whole && s->ops->reads_whole(s, name);
}

int bkr_store_root_missing(bkr_store *s)
{
	return s && s->ops->root_missing ? s->ops->root_missing(s) : 0;
}

int bkr_store_stat(bkr_store *s, const char *name, uint64_t *size)
{
	int err;
	*size = 0;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->stat(s, name, size);
}

/*
 * Whether @p err, of a read or stat of object @p name that a listing named,
 * is "no such object" (the @p attempt th, from 0): then it is logged, and
 * asked again after a pause on an object store (an eventually consistent one
 * serves soon what it lists: LISTED_PAUSE_MS, at most half a second in all);
 * after LISTED_TRIES such answers, listed_unreadable.
 */
#define LISTED_TRIES 3
static const unsigned LISTED_PAUSE_MS[LISTED_TRIES - 1] = { 100, 400 };

static bool listed_missing(bkr_store *s, const char *name, int err, int attempt)
{
	char where[PATH_MAX];
	if (err != BKR_ENOTFOUND || attempt >= LISTED_TRIES - 1)
		return false;
	if (bkr_store_describe(s, name, where, sizeof(where)) < 0)
		snprintf(where, sizeof(where), "%s", name);
	bkr_log_warn("store", "%s: listed, but the store answered 'no such object': asking again", where);
	bkr_error_clear();
	if (bkr_store_is_url(s->location)) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)LISTED_PAUSE_MS[attempt] * 1000000L };
		while (nanosleep(&ts, &ts) < 0)
			;
	}
	return true;
}

struct listed_find {
	const char *name;
	bool found;
};

static int listed_find_cb(void *ctx, const char *name)
{
	struct listed_find *f = ctx;
	if (!strcmp(name, f->name))
		f->found = true;
	return 0;
}

/*
 * Listed object @p name answered "no such object" LISTED_TRIES times: an I/O
 * error, never damage.  Its folder is listed again: an object gone from the
 * listing too was deleted since it was listed (a prune or delete running
 * alongside), one still listed is not served (an eventually consistent store,
 * a proxy answering 404).
 */
static int listed_unreadable(bkr_store *s, const char *name)
{
	char where[PATH_MAX], folder[PATH_MAX];
	struct listed_find f = { .name = name };
	const char *slash = strrchr(name, '/');
	int err;
	if (bkr_store_describe(s, name, where, sizeof(where)) < 0)
		snprintf(where, sizeof(where), "%s", name);
	snprintf(folder, sizeof(folder), "%.*s", slash ? (int)(slash + 1 - name) : 0, name);
	err = bkr_store_list(s, folder, listed_find_cb, &f);
	bkr_error_clear();
	if (err >= 0 && !f.found)
		return bkr_error_set(BKR_EIO, "%s: listed, but gone: deleted since it was listed (a prune, delete or "
				     "repair running alongside): not damage, nothing is dropped for it; run the "
				     "command again", where);
	return bkr_error_set(BKR_EIO, "%s: listed, but not readable: the store answered 'no such object' %d times "
			     "and still lists it (an eventually consistent store, or a proxy, answering 404 for an "
			     "object it lists): not damage, nothing is dropped for it; run the command again later",
			     where, LISTED_TRIES);
}

int bkr_store_stat_listed(bkr_store *s, const char *name, uint64_t *size)
{
	int err = bkr_store_stat(s, name, size);
	for (int i = 0; listed_missing(s, name, err, i); i++)
		err = bkr_store_stat(s, name, size);
	return err == BKR_ENOTFOUND ? listed_unreadable(s, name) : err;
}

int bkr_store_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime)
{
	int err;
	*size = 0;
	*mtime = -1;
	if ((err = check_name(name, false)) < 0)
		return err;
	if (s->ops->stat_time)
		return s->ops->stat_time(s, name, size, mtime, NULL);
	return s->ops->stat(s, name, size);
}

int bkr_store_stat_tag(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	int err;
	tag[0] = '\0';
	*size = 0;
	*mtime = -1;
	if ((err = check_name(name, false)) < 0)
		return err;
	if (s->ops->stat_time)
		return s->ops->stat_time(s, name, size, mtime, tag);
	return s->ops->stat(s, name, size);
}

int bkr_store_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	int err;
	*out = NULL;
	*len = 0;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->get(s, name, max, out, len);
}

static void view_free(bkr_store_view *v)
{
	free((void *)v->data);
}

int bkr_store_view_get(bkr_store *s, const char *name, size_t max, bkr_store_view *out)
{
	uint8_t *buf;
	int err;
	memset(out, 0, sizeof(*out));
	if ((err = check_name(name, false)) < 0)
		return err;
	if ((err = s->ops->get(s, name, max, &buf, &out->len)) < 0)
		return err;
	out->data = buf;
	out->release = view_free;
	return 0;
}

void bkr_store_view_release(bkr_store_view *v)
{
	if (v->release)
		v->release(v);
	memset(v, 0, sizeof(*v));
}

int bkr_store_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	int err;
	if ((err = check_name(name, false)) < 0)
		return err;
	err = s->ops->get_range(s, name, off, len, buf, flags & ~(unsigned)BKR_STORE_LISTED);
	if (!(flags & BKR_STORE_LISTED))
		return err;
	for (int i = 0; listed_missing(s, name, err, i); i++)
		err = s->ops->get_range(s, name, off, len, buf, flags & ~(unsigned)BKR_STORE_LISTED);
	return err == BKR_ENOTFOUND ? listed_unreadable(s, name) : err;
}

int bkr_store_advise(bkr_store *s, const char *name, uint64_t off, uint64_t len)
{
	int err;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->advise ? s->ops->advise(s, name, off, len) : 0;
}

int bkr_store_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	int err;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->put(s, name, data, len);
}

int bkr_store_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	int err;
	*out = NULL;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	return s->ops->upload_new(s, prefix, out);
}

int bkr_store_upload_write(bkr_store_upload *u, const void *data, size_t len)
{
	return u->store->ops->upload_write(u, data, len);
}

int bkr_store_upload_fill(bkr_store_upload *u, size_t len, bkr_store_fill_fn fill, void *ctx)
{
	if (u->store->ops->upload_fill)
		return u->store->ops->upload_fill(u, len, fill, ctx);
	return bkr_store_upload_fill_copy(u, len, fill, ctx);
}

int bkr_store_upload_fill_copy(bkr_store_upload *u, size_t len, bkr_store_fill_fn fill, void *ctx)
{
	uint8_t *buf = malloc(len ? len : 1);
	int err;
	if (!buf)
		return bkr_error_oom();
	if ((err = fill(ctx, buf, len)) == 0)
		err = u->store->ops->upload_write(u, buf, len);
	free(buf);
	return err;
}

int bkr_store_upload_publish(bkr_store_upload *u, const char *name)
{
	int err;
	if ((err = check_name(name, false)) < 0)
		return err;
	return u->store->ops->upload_publish(u, name);
}

void bkr_store_upload_free(bkr_store_upload *u)
{
	if (u)
		u->store->ops->upload_free(u);
}

/*
 * A listing's caller gets only names it can read, move or delete: a bucket
 * may hold keys no object of the store can have (a console's "folder" ending
 * in '/', "a//b", "..", written by hand), which would fail every later
 * request on them ("bad object name", a usage error) — a prune removing a
 * temporary named so, say.  They are passed over as foreign objects.
 */
struct listing {
	int (*cb)(void *ctx, const char *name);
	int (*cb_stamped)(void *ctx, const char *name, const char *stamp);
	void *ctx;
};

static bool listable(const char *name)
{
	return strlen(name) <= NAME_MAX_LEN && name_ok(name, false);
}

static int list_named(void *ctx, const char *name)
{
	struct listing *l = ctx;
	if (!listable(name))
		return 0;
	return l->cb_stamped ? l->cb_stamped(l->ctx, name, "") : l->cb(l->ctx, name);
}

static int list_stamped(void *ctx, const char *name, const char *stamp)
{
	struct listing *l = ctx;
	return listable(name) ? l->cb_stamped(l->ctx, name, stamp) : 0;
}

int bkr_store_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	struct listing l = { .cb = cb, .ctx = ctx };
	int err;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	return s->ops->list(s, prefix, list_named, &l);
}

int bkr_store_list_stamped(bkr_store *s, const char *prefix,
			   int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	struct listing l = { .cb_stamped = cb, .ctx = ctx };
	int err;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	if (s->ops->list_stamped)
		return s->ops->list_stamped(s, prefix, list_stamped, &l);
	return s->ops->list(s, prefix, list_named, &l); /* "": the store cannot tell */
}

int bkr_store_list_other(bkr_store *s, const char *prefix,
			 int (*cb)(void *ctx, const char *name, const char *what), void *ctx)
{
	int err;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	return s->ops->list_other ? s->ops->list_other(s, prefix, cb, ctx) : 0;
}

int bkr_store_delete(bkr_store *s, const char *name)
{
	int err;
	if ((err = check_name(name, false)) < 0 || (err = bkr_store_s3_locks_confirm(name)) < 0)
		return err;
	return s->ops->remove(s, name);
}

int bkr_store_rename(bkr_store *s, const char *from, const char *to)
{
	int err;
	if ((err = check_name(from, false)) < 0 || (err = check_name(to, false)) < 0 ||
	    (err = bkr_store_s3_locks_confirm(from)) < 0 || (err = bkr_store_s3_locks_confirm(to)) < 0)
		return err;
	return s->ops->rename_new(s, from, to);
}

int bkr_store_prepare(bkr_store *s, const char *prefix)
{
	int err;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	return s->ops->prepare(s, prefix);
}

int bkr_store_drop_folder(bkr_store *s, const char *prefix)
{
	int err;
	if ((err = check_name(prefix, true)) < 0)
		return err;
	return s->ops->drop_folder ? s->ops->drop_folder(s, prefix) : 0;
}

int bkr_store_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	int err;
	*out = NULL;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->lock(s, name, exclusive, wait, out);
}

int bkr_store_mark(bkr_store *s, const char *name, bkr_store_held **out)
{
	int err;
	*out = NULL;
	if ((err = check_name(name, false)) < 0)
		return err;
	return s->ops->mark ? s->ops->mark(s, name, out) : s->ops->lock(s, name, false, true, out);
}

void bkr_store_unlock(bkr_store_held *l)
{
	if (l)
		l->store->ops->unlock(l);
}
