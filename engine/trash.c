/** @file
 * The trash (trash.h): batches that name what an operation moves into
 * trash/, and their expiry after the grace period.
 */
#include "bkr/trash.h"

#include "array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/manifest.h"

#define BATCH_PREFIX "trash/batch-"
#define BATCH_MAX (64u << 20)

int bkr_trash_name(char *out, size_t cap, const char *name)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (!*base || snprintf(out, cap, "trash/%s", base) >= (int)cap)
		return bkr_error_set(BKR_EINVAL, "cannot move '%s' into trash", name);
	return 0;
}

/* trash/batch-<20-digit ns>-<8 hex>.json listing @p names */
static int batch_publish(bkr_store *s, const char *const *names, size_t n, int64_t now_ns)
{
	char name[96], rhex[9], when[32];
	uint8_t rnd[4];
	cJSON *o = NULL, *arr;
	int err;

	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), rhex);
	snprintf(name, sizeof(name), BATCH_PREFIX "%020" PRId64 "-%s.json", now_ns, rhex);
	bkr_time_format(when, now_ns);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "trash") ||
	    !cJSON_AddStringToObject(o, "time", when) || !(arr = cJSON_AddArrayToObject(o, "objects"))) {
		cJSON_Delete(o);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < n; i++) {
		cJSON *str = cJSON_CreateString(names[i]);
		if (!str || !cJSON_AddItemToArray(arr, str)) {
			cJSON_Delete(str);
			cJSON_Delete(o);
			return bkr_error_oom();
		}
	}
	err = bkr_json_put(s, name, o);
	cJSON_Delete(o);
	return err;
}

int bkr_trash_move(bkr_store *s, const char *const *names, size_t n, int64_t now_ns)
{
	int err;

	if (n == 0)
		return 0;
	if ((err = batch_publish(s, names, n, now_ns)) < 0)
		return err;
	/* tests: BKR_FAULT="trash-move:N:stop" pauses between the batch and its moves */
	if ((err = bkr_io_fault("trash-move")) < 0) {
		/* as a real failure of the first move names the files */
		char to[512];
		if (bkr_trash_name(to, sizeof(to), names[0]) == 0)
			bkr_error_prefix("move %s/%s to %s/%s", bkr_store_location(s), names[0],
					 bkr_store_location(s), to);
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		char to[512];
		if ((err = bkr_trash_name(to, sizeof(to), names[i])) < 0)
			return err;
		err = bkr_store_rename(s, names[i], to);
		if (err == BKR_ENOTFOUND) {
			bkr_error_clear(); /* moved by an earlier, interrupted run */
			continue;
		}
		if (err == BKR_EEXISTS) {
			/* an interrupted move left both names (a local move is link, then
			 * unlink): names are unique, so the trash one is this object */
			bkr_error_clear();
			if ((err = bkr_store_delete(s, names[i])) == BKR_ENOTFOUND)
				err = 0;
		}
		if (err < 0)
			return err;
	}
	return 0;
}

struct trash_each {
	bkr_store *s;
	size_t place;
	int (*cb)(void *ctx, bkr_store *s, size_t place, const char *name);
	void *ctx;
};

static int on_trash_object(void *ctx, const char *name)
{
	struct trash_each *w = ctx;
	return w->cb(w->ctx, w->s, w->place, name);
}

int bkr_trash_foreach(bkr_repo *r, bkr_store *hot,
		      int (*cb)(void *ctx, bkr_store *s, size_t place, const char *name), void *ctx)
{
	size_t nt = bkr_repo_tier_count(r);
	for (size_t i = 0; i <= nt; i++) {
		struct trash_each w = { i == 0 ? hot : bkr_repo_tier(r, i, NULL, NULL), i, cb, ctx };
		int err = bkr_store_list(w.s, "trash/", on_trash_object, &w);
		if (err == BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		}
		if (err < 0)
			return err;
	}
	return 0;
}

int bkr_trash_repo_store(bkr_repo *r, bkr_store **out)
{
	return bkr_repo_store_new(r, out);
}

int bkr_trash_backups(bkr_store *s, const char *const *ids, size_t n, int64_t now_ns)
{
	char **names = calloc(n ? n : 1, sizeof(*names));
	int err = 0;

	if (!names)
		return bkr_error_oom();
	for (size_t i = 0; i < n && err == 0; i++) {
		size_t l = strlen(ids[i]) + sizeof("backups/.json");
		if (!*ids[i] || strchr(ids[i], '/') || ids[i][0] == '.')
			err = bkr_error_set(BKR_EINVAL, "bad backup id '%s'", ids[i]);
		else if (!(names[i] = malloc(l)))
			err = bkr_error_oom();
		else
			snprintf(names[i], l, "backups/%s.json", ids[i]);
	}
	if (err == 0)
		err = bkr_trash_move(s, (const char *const *)names, n, now_ns);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return err;
}

/*
 * The batches of a trash, and the prunes' marks on them: the grace period runs
 * from the first prune that saw a batch, trash/seen-<20-digit ns>-<batch base>,
 * not from the time in the batch's name, which the clock of whatever made it
 * stamped (another host's, one set back or ahead since).
 */
struct batch_list {
	char **names;
	size_t n, cap;
	char **seen; /* the marks */
	size_t nseen, seen_cap;
};

#define SEEN_PREFIX "trash/seen-"
#define SEEN_TIME_LEN 20

/* The batch a mark names ("batch-..."), or NULL when @p name is none. */
static const char *seen_batch(const char *name)
{
	size_t pl = strlen(SEEN_PREFIX);
	if (strncmp(name, SEEN_PREFIX, pl) || strlen(name) < pl + SEEN_TIME_LEN + 1 ||
	    strspn(name + pl, "0123456789") != SEEN_TIME_LEN || name[pl + SEEN_TIME_LEN] != '-')
		return NULL;
	return name + pl + SEEN_TIME_LEN + 1;
}

static int collect_batch(void *ctx, const char *name)
{
	struct batch_list *l = ctx;
	size_t pl = strlen(BATCH_PREFIX), len = strlen(name);
	char ***v = &l->names;
	size_t *n = &l->n, *cap = &l->cap;

	if (seen_batch(name)) {
		v = &l->seen;
		n = &l->nseen;
		cap = &l->seen_cap;
	} else if (strncmp(name, BATCH_PREFIX, pl) || len < pl + 5 || strcmp(name + len - 5, ".json") ||
		   strchr(name + pl, '/')) {
		return 0;
	}
	return bkr_array_push_str(v, cap, n, name);
}

/* When a prune first saw @p batch (its earliest mark), or -1 for never. */
static int64_t batch_seen(const struct batch_list *l, const char *batch)
{
	const char *base = batch + strlen("trash/");
	int64_t first = -1;
	for (size_t i = 0; i < l->nseen; i++) {
		int64_t t = strtoll(l->seen[i] + strlen(SEEN_PREFIX), NULL, 10);
		if (!strcmp(seen_batch(l->seen[i]), base) && (first < 0 || t < first))
			first = t;
	}
	return first;
}

/* Mark @p batch seen at @p now_ns. */
static int batch_mark(bkr_store *s, const char *batch, int64_t now_ns)
{
	char name[160], when[32];
	cJSON *o;
	int err;

	snprintf(name, sizeof(name), SEEN_PREFIX "%020" PRId64 "-%s", now_ns, batch + strlen("trash/"));
	bkr_time_format(when, now_ns);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "trash-seen") ||
	    !cJSON_AddStringToObject(o, "batch", batch) || !cJSON_AddStringToObject(o, "time", when)) {
		cJSON_Delete(o);
		return bkr_error_oom();
	}
	err = bkr_json_put(s, name, o);
	cJSON_Delete(o);
	return err;
}

/* The trash names ("trash/<base>") the kept batches name: an object moved out
 * of the trash (an undo, a repair) and into it again belongs to its newest
 * batch, so an older batch's expiry must not delete it. */
struct kept {
	char **names;
	size_t n, cap;
};

static bool kept_has(const struct kept *k, const char *name)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->names[i], name))
			return true;
	return false;
}

/* Delete (or count) the objects one batch names; @p expire says which.  A
 * batch kept adds its names to @p k; an expiring one skips the names in it. */
static int batch_apply(bkr_store *s, const char *batch, bool expire, bool dry_run, bkr_trash_stats *st,
		       struct kept *k)
{
	uint8_t *text = NULL;
	size_t len;
	cJSON *o = NULL;
	const cJSON *arr, *it;
	int err;

	if ((err = bkr_store_get(s, batch, BATCH_MAX, &text, &len)) < 0)
		return err;
	if ((err = bkr_json_verify((const char *)text, len, batch)) < 0)
		goto done;
	if (!(o = cJSON_ParseWithLength((const char *)text, len)) ||
	    !cJSON_IsArray(arr = cJSON_GetObjectItemCaseSensitive(o, "objects"))) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: not a trash batch", batch);
		goto done;
	}
	cJSON_ArrayForEach(it, arr) {
		char name[512];
		uint64_t size = 0;
		if (!cJSON_IsString(it) || bkr_trash_name(name, sizeof(name), it->valuestring) < 0)
			continue;
		if (!expire) {
			if ((err = bkr_array_push_str(&k->names, &k->cap, &k->n, name)) < 0)
				goto done;
		} else if (kept_has(k, name)) {
			continue; /* in the trash again, for a younger batch */
		}
		if ((err = bkr_store_stat(s, name, &size)) == BKR_ENOTFOUND) {
			bkr_error_clear(); /* never moved, or already deleted */
			err = 0;
			continue;
		}
		if (err < 0)
			goto done;
		if (!expire) {
			st->kept_bytes += size;
			continue;
		}
		if (!dry_run && (err = bkr_store_delete(s, name)) < 0 && err != BKR_ENOTFOUND)
			goto done;
		err = 0;
		st->objects++;
		st->bytes += size;
	}
	if (expire && !dry_run && (err = bkr_store_delete(s, batch)) == BKR_ENOTFOUND)
		err = 0;
done:
	cJSON_Delete(o);
	free(text);
	return err;
}

/* Whether @p batch, first seen by a prune at @p seen_ns (-1: now), is older than the grace. */
static bool batch_expires(int64_t seen_ns, int64_t now_ns, int64_t grace_s)
{
	return grace_s <= 0 || (seen_ns >= 0 && (now_ns - seen_ns) / 1000000000LL >= grace_s);
}

/* Delete the marks of @p batch (expired), or of no batch (@p batch NULL) of @p l. */
static int marks_delete(bkr_store *s, const struct batch_list *l, const char *batch)
{
	for (size_t i = 0; i < l->nseen; i++) {
		const char *base = seen_batch(l->seen[i]);
		bool orphan = true;
		int err;
		for (size_t j = 0; !batch && j < l->n && orphan; j++)
			orphan = strcmp(l->names[j] + strlen("trash/"), base) != 0;
		if (batch ? strcmp(batch + strlen("trash/"), base) : !orphan)
			continue;
		if ((err = bkr_store_delete(s, l->seen[i])) < 0 && err != BKR_ENOTFOUND)
			return err;
		bkr_error_clear();
	}
	return 0;
}

int bkr_trash_expire(bkr_store *s, int64_t now_ns, int64_t grace_s, bool dry_run, bkr_trash_stats *st)
{
	struct batch_list l = { 0 };
	struct kept k = { 0 };
	int err;

	memset(st, 0, sizeof(*st));
	if ((err = bkr_store_list(s, "trash/", collect_batch, &l)) < 0)
		goto done;
	/* the kept batches first, so that every expiring one knows their names */
	for (int pass = 0; pass < 2; pass++)
	for (size_t i = 0; i < l.n; i++) {
		int64_t seen = batch_seen(&l, l.names[i]);
		bool expire = batch_expires(seen, now_ns, grace_s);
		if (expire != (pass == 1))
			continue;
		if (!expire && strtoll(l.names[i] + strlen(BATCH_PREFIX), NULL, 10) > now_ns)
			st->future_batches++;
		/* the first prune to see it starts its grace period */
		if (!expire && seen < 0 && !dry_run && (err = batch_mark(s, l.names[i], now_ns)) < 0)
			goto done;
		int e = batch_apply(s, l.names[i], expire, dry_run, st, &k);
		if (e == BKR_ECORRUPT) {
			bkr_error_clear(); /* left alone; verify names it */
			continue;
		}
		if (e == 0 && expire && !dry_run)
			e = marks_delete(s, &l, l.names[i]);
		if (e < 0) {
			err = e;
			goto done;
		}
		if (expire)
			st->batches++;
		else
			st->kept_batches++;
	}
	/* the marks of batches gone (a prune stopped between a batch and its marks) */
	if (!dry_run)
		err = marks_delete(s, &l, NULL);
done:
	for (size_t i = 0; i < l.n; i++)
		free(l.names[i]);
	free(l.names);
	for (size_t i = 0; i < l.nseen; i++)
		free(l.seen[i]);
	free(l.seen);
	for (size_t i = 0; i < k.n; i++)
		free(k.names[i]);
	free(k.names);
	return err;
}
