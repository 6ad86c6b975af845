/** @file
 * The catalog (bkr/catalog.h): a repository's backups and recovery runs —
 * manifests under backups/ and runs/ — with the records (pins, tags,
 * deletions) under records/ applied, oldest first; finding one by id, prefix
 * or "latest"; publishing manifests and records.  Everything is read and
 * written through the repository's store.
 */
#include "bkr/backupid.h"
#include "bkr/catalog.h"
#include "bkr/clock.h"
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/utf8.h"
#include "bkr/verify_record.h"
#include "array.h"
#include "repo_priv.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MANIFEST_MAX (64u << 20)

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

struct names {
	size_t plen;     /* of the folder prefix "<sub>/" */
	const char *suffix;
	size_t slen;
	char **v;
	size_t n, cap;
};

static int add_stamped(void *ctx, const char *name, const char *stamp)
{
	struct names *l = ctx;
	const char *base = name + l->plen;
	size_t len = strlen(base);
	int err;
	/* temporaries, hidden files and anything in a subfolder are not ours */
	if (base[0] == '.' || strchr(base, '/') || len <= l->slen || strcmp(base + len - l->slen, l->suffix))
		return 0;
	if ((err = bkr_array_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v))) < 0)
		return err;
	/* the name, its NUL, the stamp (bkr_repo_name_stamp) */
	size_t nlen = len - l->slen, slen = stamp ? strlen(stamp) : 0;
	if (!(l->v[l->n] = malloc(nlen + slen + 2)))
		return bkr_error_oom();
	memcpy(l->v[l->n], base, nlen);
	l->v[l->n][nlen] = '\0';
	memcpy(l->v[l->n] + nlen + 1, stamp ? stamp : "", slen + 1);
	l->n++;
	return 0;
}

static int add_name(void *ctx, const char *name)
{
	return add_stamped(ctx, name, NULL);
}

/* The time in record name @p name (bkr_repo_add_record's: 20 digits, ns
 * since the epoch, and '-') into r->records_newest_ns when it is later. */
static void note_record_time(bkr_repo *r, const char *name)
{
	uint64_t t = 0;
	size_t k;
	long long cur;

	for (k = 0; k < 20 && name[k] >= '0' && name[k] <= '9' && t <= (uint64_t)INT64_MAX / 10; k++)
		t = t * 10 + (uint64_t)(name[k] - '0');
	if (k != 20 || name[k] != '-' || t >= (uint64_t)INT64_MAX)
		return;
	cur = atomic_load(&r->records_newest_ns);
	while ((long long)t > cur && !atomic_compare_exchange_weak(&r->records_newest_ns, &cur, (long long)t))
		;
}

static int list_names(bkr_repo *r, const char *sub, const char *suffix, bool stamped, char ***out, size_t *n)
{
	char prefix[64];
	struct names l = { .suffix = suffix, .slen = strlen(suffix) };
	int err;

	*out = NULL;
	*n = 0;
	l.plen = (size_t)snprintf(prefix, sizeof(prefix), "%s/", sub);
	if (l.plen >= sizeof(prefix))
		return bkr_error_set(BKR_EINVAL, "folder name too long: %s", sub);
	if ((err = stamped ? bkr_store_list_stamped(r->store, prefix, add_stamped, &l)
			   : bkr_store_list(r->store, prefix, add_name, &l)) < 0) {
		free_names(l.v, l.n);
		return err;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), name_cmp);
	if (!strcmp(sub, "records")) {
		for (size_t i = 0; i < l.n; i++)
			note_record_time(r, l.v[i]);
		atomic_store(&r->records_listed, true);
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

int bkr_repo_list_names(bkr_repo *r, const char *sub, const char *suffix, char ***out, size_t *n)
{
	return list_names(r, sub, suffix, false, out, n);
}

int bkr_repo_list_stamped(bkr_repo *r, const char *sub, const char *suffix, char ***out, size_t *n)
{
	return list_names(r, sub, suffix, true, out, n);
}

const char *bkr_repo_name_stamp(const char *name)
{
	return name + strlen(name) + 1;
}

/* Manifest @p id of folder @p sub. */
#define MANIFEST_AHEAD 256 /* manifests advised ahead of the one read (bkr_repo_list_cb) */

/*
 * Load manifest @p id of folder @p sub.  *@p sealed is set when it is an
 * encrypted repository's (the sealed magic: the store would have unsealed
 * it, so config.json says "none" and was altered): never merely damaged.
 * *@p unreadable is set when the store could not give it (a server that
 * cannot be reached or denies access, an I/O error): that is no proof of
 * damage, and the caller's command fails with that error.
 */
static int load_manifest(bkr_repo *r, const char *sub, const char *id, bkr_manifest **out, bool *sealed,
			 bool *unreadable)
{
	char path[PATH_MAX * 4], rel[PATH_MAX], what[PATH_MAX];
	uint8_t *text;
	size_t len;
	int err;
	*out = NULL;
	*sealed = false;
	*unreadable = false;
	if (!*id || strchr(id, '/') || id[0] == '.' ||
	    snprintf(rel, sizeof(rel), "%s/%s.json", sub, id) >= (int)sizeof(rel))
		return bkr_error_set(BKR_EINVAL, "bad backup id '%s'", id);
	if ((err = bkr_store_describe(r->store, rel, what, sizeof(what))) < 0)
		return err;
	/* for messages: a name from the store may hold a newline or an escape sequence */
	bkr_text_escape(path, sizeof(path), what, strlen(what));
	if ((err = bkr_store_get(r->store, rel, MANIFEST_MAX, &text, &len)) < 0) {
		char *msg = bkr_text_escape_dup(bkr_error_message(), strlen(bkr_error_message())); /* whole */
		*unreadable = err != BKR_ECORRUPT && err != BKR_ENOTFOUND;
		if (!msg)
			return bkr_error_set(err, "%s: cannot be read (out of memory escaping why)", path);
		err = bkr_error_set(err, "%s", msg);
		free(msg);
		return err;
	}
	if (len >= BKR_SEALED_MAGIC_SIZE && !memcmp(text, BKR_SEALED_MAGIC, BKR_SEALED_MAGIC_SIZE)) {
		free(text);
		*sealed = true;
		return bkr_error_set(BKR_ECORRUPT,
				     "%s is sealed (encrypted), but %s says the repository is not encrypted: "
				     "it was altered; refusing to use it",
				     path, bkr_repo_config_said(r));
	}
	err = bkr_manifest_parse(out, (const char *)text, len, path);
	free(text);
	/* the file name is the id: another name would make two catalogs disagree */
	if (err == 0 && strcmp((*out)->backup_id, id) != 0) {
		char safe[1024];
		err = bkr_error_set(BKR_ECORRUPT, "%s: the file name does not match its backup_id '%s'", path,
				    bkr_text_escape(safe, sizeof(safe), (*out)->backup_id, strlen((*out)->backup_id)));
		bkr_manifest_free(*out);
		*out = NULL;
	}
	/* a recovery run is published in runs/, every other backup in backups/
	 * (bkr_repo_publish_manifest): one in the other folder was moved there
	 * (sealed objects are bound to their base name only), and would pass for
	 * what it is not - a run for the latest backup */
	if (err == 0 && ((*out)->type == BKR_BACKUP_RECOVERY) != !strcmp(sub, "runs")) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: the manifest of a %s in %s/ (moved there: %s)", path,
				    (*out)->type == BKR_BACKUP_RECOVERY ? "recovery run" : "backup", sub,
				    (*out)->type == BKR_BACKUP_RECOVERY ? "recovery runs are kept in runs/"
									 : "only recovery runs are kept in runs/");
		bkr_manifest_free(*out);
		*out = NULL;
	}
	return err;
}

/* load_manifest, and once more when a cached copy that failed to parse was dropped */
static int load_manifest_fresh(bkr_repo *r, const char *sub, const char *id, bkr_manifest **out, bool *sealed,
			       bool *unreadable)
{
	char rel[PATH_MAX];
	int err = load_manifest(r, sub, id, out, sealed, unreadable);
	if (err == BKR_ECORRUPT && !*sealed && snprintf(rel, sizeof(rel), "%s/%s.json", sub, id) < (int)sizeof(rel) &&
	    bkr_store_drop_copy(r->store, rel) > 0) {
		bkr_error_clear();
		err = load_manifest(r, sub, id, out, sealed, unreadable);
	}
	return err;
}

int bkr_repo_load_manifest(bkr_repo *r, bool run, const char *id, bkr_manifest **out)
{
	bool sealed, unreadable;
	return load_manifest_fresh(r, run ? "runs" : "backups", id, out, &sealed, &unreadable);
}

static int cmp_manifest(const void *a, const void *b)
{
	const bkr_manifest *x = *(bkr_manifest *const *)a, *y = *(bkr_manifest *const *)b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return strcmp(x->backup_id, y->backup_id);
}

static bkr_manifest *list_find(bkr_manifest_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i] && !strcmp(l->items[i]->backup_id, id))
			return l->items[i];
	return NULL;
}

static int add_tag(bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag))
			return 0;
	char **t = realloc(m->tags, (m->ntags + 1) * sizeof(*t));
	if (!t)
		return bkr_error_oom();
	m->tags = t;
	if (!(t[m->ntags] = strdup(tag)))
		return bkr_error_oom();
	m->ntags++;
	return 0;
}

static void del_tag(bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag)) {
			free(m->tags[i]);
			memmove(&m->tags[i], &m->tags[i + 1], (m->ntags - i - 1) * sizeof(*m->tags));
			m->ntags--;
			return;
		}
}

/*
 * Whether record @p rec (named @p path: its checksum holds, it parses) says
 * what its kind needs: a "kind" string; for a pin, unpin, tag or untag a
 * "backup_id" string, and a "tag" string (tag, untag) or an "until" that is
 * absent (forever), null, "" or a time (pin).  BKR_ECORRUPT naming the key:
 * such a record is damaged as one whose checksum fails - it is not applied,
 * and verify and health report it (bkr_records_foreach_damaged).  Verify and
 * damage records are judged by their decoder (bkr_verify_record_check),
 * holds and releases by theirs (bkr_hold_record_check); kinds of later
 * versions are not judged.
 */
static int backup_record_check(const cJSON *rec, const char *path)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rec, "kind"), *v;
	const char *k;
	int64_t until;

	if (!cJSON_IsString(kind))
		return bkr_error_set(BKR_ECORRUPT, "%s: \"kind\" is not a string", path);
	k = kind->valuestring;
	if (strcmp(k, "pin") && strcmp(k, "unpin") && strcmp(k, "tag") && strcmp(k, "untag"))
		return 0;
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec, "backup_id")))
		return bkr_error_set(BKR_ECORRUPT, "%s: the %s record's \"backup_id\" is not a string", path, k);
	/* null or "" is forever, as a manifest's "pinned_until" (bkr pin writes none, or the date as given) */
	if (!strcmp(k, "pin") && (v = cJSON_GetObjectItemCaseSensitive(rec, "until")) && !cJSON_IsNull(v) &&
	    (!cJSON_IsString(v) || (*v->valuestring && bkr_time_parse(v->valuestring, &until) < 0)))
		return bkr_error_set(BKR_ECORRUPT, "%s: the pin record's \"until\" is not a date", path);
	if ((!strcmp(k, "tag") || !strcmp(k, "untag")) && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec, "tag")))
		return bkr_error_set(BKR_ECORRUPT, "%s: the %s record's \"tag\" is not a string", path, k);
	return 0;
}

/* backup_record_check, then the verify and damage records' decoder, then the holds' and releases' */
static int record_check(const cJSON *json, const char *text, size_t len, const char *path)
{
	int err = backup_record_check(json, path);

	if (err == 0)
		err = bkr_verify_record_check(text, len, path);
	return err < 0 ? err : bkr_hold_record_check(json, path);
}

int bkr_record_check(const char *text, size_t len, const char *path)
{
	cJSON *o = cJSON_ParseWithLength(text, len);
	int err;

	if (!o)
		return bkr_error_set(BKR_ECORRUPT, "%s: not valid JSON", path);
	err = record_check(o, text, len, path);
	cJSON_Delete(o);
	return err;
}

/* Apply one record to the list (unknown kinds are ignored: forward
 * compatible; "delete" records of older versions are ignored: a backup
 * exists while its manifest is in backups/, bkr delete moves it to trash/;
 * one that does not decode, backup_record_check, is skipped as damaged). */
static int apply_record(bkr_manifest_list *l, const cJSON *rec, const char *path)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rec, "kind");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "backup_id");
	const cJSON *val;
	bkr_manifest *m;

	if (backup_record_check(rec, path) < 0) {
		bkr_error_clear();
		return 0;
	}
	if (!cJSON_IsString(kind) || !cJSON_IsString(id) || !(m = list_find(l, id->valuestring)))
		return 0;
	if (!strcmp(kind->valuestring, "pin")) {
		val = cJSON_GetObjectItemCaseSensitive(rec, "until");
		free(m->pinned_until);
		m->pinned_until = strdup(cJSON_IsString(val) ? val->valuestring : "");
		return m->pinned_until ? 0 : bkr_error_oom();
	}
	if (!strcmp(kind->valuestring, "unpin")) {
		free(m->pinned_until);
		m->pinned_until = NULL;
		return 0;
	}
	val = cJSON_GetObjectItemCaseSensitive(rec, "tag");
	if (!strcmp(kind->valuestring, "tag") && cJSON_IsString(val))
		return add_tag(m, val->valuestring);
	if (!strcmp(kind->valuestring, "untag") && cJSON_IsString(val))
		del_tag(m, val->valuestring);
	return 0;
}

/* Record @p name's bytes and its path for messages; < 0 when it vanished (a
 * concurrent cleanup) or is too large to be a record. */
static int record_get(bkr_repo *r, const char *name, char path[PATH_MAX], uint8_t **text, size_t *len)
{
	char rel[PATH_MAX];
	int err;
	snprintf(rel, PATH_MAX, "records/%s.json", name);
	if ((err = bkr_store_describe(r->store, rel, path, PATH_MAX)) < 0)
		return err;
	return bkr_store_get(r->store, rel, BKR_REPO_CONFIG_MAX, text, len);
}

/*
 * A record that could not be read is left out when it vanished (a concurrent
 * cleanup) or is no record (too large, not a regular file): damaged, as one
 * whose checksum fails.  Any other failure (an I/O error, a server that does
 * not answer) is the reader's: a pin or hold left out in silence would let
 * retention remove the backup it keeps.
 */
static bool record_skippable(int err)
{
	return err == BKR_ENOTFOUND || err == BKR_ECORRUPT;
}

/*
 * The records, oldest first, read once: each one's name (for messages), text
 * (checksum not checked) and, when its checksum holds and it parses, its JSON
 * (else NULL: left out of the catalog).  Records that vanished (a concurrent
 * cleanup) or are too large to be one are left out.
 */
struct bkr_records {
	struct record {
		char *path;
		char *text; /* NULL: no record (too large, not a regular file, does not decrypt): why says */
		size_t len;
		cJSON *json;
		char *why;
	} *v;
	size_t n;
};

/* One record in the order records are applied: its time (the name's digits
 * before the '-'), then what it says. */
struct applied {
	const cJSON *json;
	const char *time;
	size_t tlen;
	const char *id, *kind, *value, *name, *path;
};

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/*
 * Records apply in time order.  Records of one instant (one command writes
 * several at the same clock reading: 'bkr tag ID --add a --add b', or two
 * hosts meet within a nanosecond) are ordered by what they say - backup id,
 * kind, tag or date - never by the random part of their names, so tags
 * added together are listed by name, and the state is the same in every
 * repository and every run (a copy writes its own records: bkr copy).
 */
static int applied_cmp(const void *a, const void *b)
{
	const struct applied *x = a, *y = b;
	size_t n = x->tlen < y->tlen ? x->tlen : y->tlen;
	int c;
	if ((c = memcmp(x->time, y->time, n)) || (c = (x->tlen > y->tlen) - (x->tlen < y->tlen)) ||
	    (c = strcmp(x->id, y->id)) || (c = strcmp(x->kind, y->kind)) || (c = strcmp(x->value, y->value)))
		return c;
	return strcmp(x->name, y->name);
}

static int apply_records(bkr_manifest_list *l, const bkr_records *rs)
{
	struct applied *v;
	size_t n = 0;
	int err = 0;

	if (!rs || !rs->n || !l->n)
		return 0;
	if (!(v = calloc(rs->n, sizeof(*v))))
		return bkr_error_oom();
	for (size_t i = 0; i < rs->n; i++) {
		const char *path = rs->v[i].path, *base = strrchr(path, '/'), *dash;
		if (!rs->v[i].json)
			continue;
		base = base ? base + 1 : path;
		dash = strchr(base, '-');
		v[n].json = rs->v[i].json;
		v[n].path = path;
		v[n].time = v[n].name = base;
		v[n].tlen = dash ? (size_t)(dash - base) : strlen(base);
		v[n].id = json_str(v[n].json, "backup_id");
		v[n].kind = json_str(v[n].json, "kind");
		v[n].value = json_str(v[n].json, "tag");
		if (!v[n].value[0])
			v[n].value = json_str(v[n].json, "until");
		n++;
	}
	qsort(v, n, sizeof(*v), applied_cmp);
	for (size_t i = 0; i < n && err == 0; i++)
		err = apply_record(l, v[i].json, v[i].path);
	free(v);
	return err;
}

int bkr_records_apply(const bkr_records *rs, bkr_manifest *m)
{
	bkr_manifest_list one = { &m, 1 };
	return apply_records(&one, rs);
}

void bkr_records_free(bkr_records *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].path);
		free(rs->v[i].text);
		free(rs->v[i].why);
		cJSON_Delete(rs->v[i].json);
	}
	free(rs->v);
	free(rs);
}

int bkr_repo_records_read(bkr_repo *r, bkr_records **out)
{
	bkr_records *rs;
	char **names;
	size_t n;
	int err;

	*out = NULL;
	if (!(rs = calloc(1, sizeof(*rs))))
		return bkr_error_oom();
	if ((err = bkr_repo_list_names(r, "records", ".json", &names, &n)) < 0) {
		free(rs);
		return err;
	}
	if (n && !(rs->v = calloc(n, sizeof(*rs->v))))
		err = bkr_error_oom();
	for (size_t i = 0; i < n && err == 0; i++) {
		char path[PATH_MAX] = "";
		struct record *rec = &rs->v[rs->n];
		uint8_t *text;
		size_t len;
		if ((err = record_get(r, names[i], path, &text, &len)) < 0) {
			if (!record_skippable(err))
				break;
			if (err == BKR_ECORRUPT) { /* kept for bkr_records_foreach_damaged */
				if (!(rec->path = strdup(path)) || !(rec->why = strdup(bkr_error_message()))) {
					free(rec->path);
					err = bkr_error_oom();
					break;
				}
				rs->n++;
			}
			err = 0;
			continue;
		}
		rec->text = (char *)text;
		rec->len = len;
		if (!(rec->path = strdup(path))) {
			free(text);
			err = bkr_error_oom();
			break;
		}
		if (bkr_json_verify(rec->text, len, path) == 0)
			rec->json = cJSON_ParseWithLength(rec->text, len);
		rs->n++;
	}
	free_names(names, n);
	if (err < 0) {
		bkr_records_free(rs);
		return err;
	}
	bkr_error_clear();
	*out = rs;
	return 0;
}

void bkr_records_foreach_damaged(const bkr_records *rs, bool unread_only,
				 void (*cb)(void *ctx, const char *path, const char *why), void *ctx)
{
	for (size_t k = 0; rs && k < rs->n; k++) {
		const struct record *rec = &rs->v[k];
		int err = 0;
		if (unread_only && rec->text)
			continue;
		/* sealed and JSON, but not what its kind needs: every reader skips it too */
		if (rec->json)
			err = record_check(rec->json, rec->text, rec->len, rec->path);
		if (rec->json && (err == 0 || err == BKR_ENOMEM)) {
			bkr_error_clear(); /* out of memory: not called damaged */
			continue;
		}
		/* the message whole (the callback may set the slot); out of memory: the path */
		char *own = NULL;
		const char *why;
		if (!rec->json && !rec->text)
			why = rec->why;
		else if (rec->json || bkr_json_verify(rec->text, rec->len, rec->path) < 0)
			why = own = strdup(bkr_error_message());
		else if (asprintf(&own, "%s: not valid JSON", rec->path) < 0)
			why = own = NULL;
		else
			why = own;
		bkr_error_clear();
		cb(ctx, rec->path, why ? why : rec->path);
		free(own);
	}
}

int bkr_records_foreach(const bkr_records *rs, bool newest_first,
			int (*cb)(void *ctx, const char *path, const char *text, size_t len), void *ctx)
{
	int err = 0;
	for (size_t k = 0; rs && k < rs->n && err == 0; k++) {
		const struct record *rec = &rs->v[newest_first ? rs->n - 1 - k : k];
		if (rec->text)
			err = cb(ctx, rec->path, rec->text, rec->len);
	}
	return err > 0 ? 0 : err;
}

/*
 * The catalog's answer to "which backups (runs) are there": the manifests
 * present in the folder (a backup exists while its manifest is in backups/;
 * "delete" records of older versions are ignored).  Sorted ids.
 */
static int catalog_ids(bkr_repo *r, bool runs, char ***out, size_t *nout)
{
	char **names;
	size_t n;
	int err;

	*out = NULL;
	*nout = 0;
	if ((err = bkr_repo_list_names(r, runs ? "runs" : "backups", ".json", &names, &n)) < 0)
		return err;
	*out = names;
	*nout = n;
	return 0;
}

int bkr_repo_list_ids(bkr_repo *r, bool runs, char ***ids, size_t *n)
{
	return catalog_ids(r, runs, ids, n);
}

void bkr_repo_ids_free(char **ids, size_t n)
{
	free_names(ids, n);
}

struct bad_count {
	size_t n;
	char *last; /* the last one's message, whole (malloc'd; NULL out of memory) */
};

static void count_bad(void *ctx, const char *file, const char *message)
{
	struct bad_count *b = ctx;
	b->n++;
	bkr_text_setf(&b->last, "%s", message);
	(void)file;
}

int bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad)
{
	bkr_records *rs;
	int err;

	out->items = NULL;
	out->n = 0;
	if (bad)
		*bad = 0;
	if ((err = bkr_repo_records_read(r, &rs)) < 0)
		return err;
	err = bkr_repo_list_in(r, rs, runs, out, bad);
	bkr_records_free(rs);
	return err;
}

int bkr_repo_list_in(bkr_repo *r, const bkr_records *rs, bool runs, bkr_manifest_list *out, size_t *bad)
{
	struct bad_count b = { 0 };
	int err = bkr_repo_list_with(r, rs, runs, out, count_bad, NULL, &b);
	if (bad)
		*bad = b.n;
	if (err == 0 && b.n)
		bkr_error_set(BKR_ECORRUPT, "%s", b.last ? b.last : "out of memory keeping why a manifest does not read");
	free(b.last);
	return err;
}

int bkr_repo_list_cb(bkr_repo *r, bool runs, bkr_manifest_list *out,
		     void (*on_bad)(void *ctx, const char *file, const char *message), void *ctx)
{
	bkr_records *rs;
	int err;

	out->items = NULL;
	out->n = 0;
	if ((err = bkr_repo_records_read(r, &rs)) < 0)
		return err;
	err = bkr_repo_list_with(r, rs, runs, out, on_bad, NULL, ctx);
	bkr_records_free(rs);
	return err;
}

int bkr_repo_list_with(bkr_repo *r, const bkr_records *rs, bool runs, bkr_manifest_list *out,
		       void (*on_bad)(void *ctx, const char *file, const char *message),
		       void (*on_unread)(void *ctx, const char *file, const char *message), void *ctx)
{
	const char *sub = runs ? "runs" : "backups";
	char **ids = NULL;
	size_t n = 0, k = 0;
	int err;

	out->items = NULL;
	out->n = 0;
	/* BKR_FAULT's "catalog-list" fails a listing of the manifests (tests count a command's listings) */
	if ((err = bkr_io_fault("catalog-list")) < 0) {
		bkr_error_prefix("list %s/%s", r->path, sub);
		goto done;
	}
	if ((err = catalog_ids(r, runs, &ids, &n)) < 0)
		goto done;
	if (n && !(out->items = calloc(n, sizeof(*out->items)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0, next = 0; i < n; i++) {
		bkr_manifest *m;
		int e;
		/* a window of manifests asked for ahead: reads queued together, not one wait each */
		for (; next < n && next < i + MANIFEST_AHEAD; next++) {
			char rel[PATH_MAX];
			if (snprintf(rel, sizeof(rel), "%s/%s.json", sub, ids[next]) < (int)sizeof(rel) &&
			    bkr_store_advise(r->store, rel, 0, 0) < 0)
				bkr_error_clear();
		}
		bool sealed, unreadable;
		e = load_manifest_fresh(r, sub, ids[i], &m, &sealed, &unreadable);
		if (e == BKR_ENOTFOUND)
			continue; /* deleted meanwhile */
		bool unread = e == BKR_EIO && !sealed && on_unread; /* the caller goes on without it */
		if ((e == BKR_ENOMEM || sealed || unreadable) && !unread) { /* not damage: the command fails with it */
			err = e;
			break;
		}
		if (e < 0) {
			char file[1200];
			bkr_text_escape(file, sizeof(file) - 5, ids[i], strlen(ids[i]));
			strcat(file, ".json");
			if (unread)
				on_unread(ctx, file, bkr_error_message());
			else if (on_bad)
				on_bad(ctx, file, bkr_error_message());
			continue;
		}
		out->items[k++] = m;
	}
	out->n = k;
	if (err == 0)
		err = apply_records(out, rs);
	if (err == 0 && k)
		qsort(out->items, k, sizeof(*out->items), cmp_manifest);
done:
	free_names(ids, n);
	if (err < 0) {
		bkr_manifest_list_free(out);
		return err;
	}
	bkr_error_clear();
	return 0;
}

void bkr_manifest_list_free(bkr_manifest_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		bkr_manifest_free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* The time part "YYYYMMDD_HHMMSS" of an id "<kind>_YYYYMMDD_HHMMSS_...", or NULL. */
static const char *id_time(const char *id)
{
	const char *t = strchr(id, '_');
	if (!t)
		return NULL;
	t++;
	for (int i = 0; i < 15; i++)
		if (i == 8 ? t[i] != '_' : (t[i] < '0' || t[i] > '9'))
			return NULL;
	return t;
}

void bkr_newest_bad_note(bkr_newest_bad *b, const char *file)
{
	const char *t = id_time(file);
	if (t && (!b->file[0] || strncmp(t, b->time, 15) > 0)) {
		snprintf(b->time, sizeof(b->time), "%.15s", t);
		snprintf(b->file, sizeof(b->file), "%s", file);
	}
}

int bkr_repo_resolve(bkr_repo *r, bool runs, const bkr_newest_bad *bad, size_t *hit, const char *const *ids,
		     size_t n, const char *spec)
{
	int err = bkr_backupid_resolve(hit, ids, n, spec, runs ? "recovery run" : "backup", r->path);

	if (err < 0 && !(err == BKR_ENOTFOUND && bad->file[0] && !strcmp(spec, "latest")))
		return err;
	if (!strcmp(spec, "latest") && bad->file[0]) {
		/* a damaged manifest named newer than the one 'latest' found, or in
		 * the same second (ids order no further): never an older backup in silence */
		const char *t = err == 0 ? id_time(ids[*hit]) : NULL;
		if (!t)
			return bkr_error_set(BKR_ECORRUPT, "%s/%s is damaged and no other %s reads, so there is no "
					     "'latest': run 'bkr verify'", runs ? "runs" : "backups", bad->file,
					     runs ? "recovery run" : "backup");
		if (strncmp(bad->time, t, 15) >= 0)
			return bkr_error_set(BKR_ECORRUPT, "%s/%s is damaged and newer than every readable %s, so "
					     "'latest' would name an older one%s%s: name one ('bkr list'), or run 'bkr verify'",
					     runs ? "runs" : "backups", bad->file, runs ? "recovery run" : "backup",
					     t ? " " : "", t ? ids[*hit] : "");
	}
	return err;
}

/* The UTC time of an id's time part @p t ("YYYYMMDD_HHMMSS", id_time), in seconds. */
static int64_t id_time_s(const char *t)
{
	struct tm tm = { 0 };

	if (sscanf(t, "%4d%2d%2d_%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec) != 6)
		return INT64_MIN;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

void bkr_latest_bad_note(bkr_latest_bad *b, const char *file)
{
	const char *t = id_time(file);
	int64_t sec = t ? id_time_s(t) : INT64_MIN;
	struct bkr_latest_future *nf;

	/* in seconds, as the mount's /latest judges ids: a year past 2262 is past an int64 of ns */
	if (sec == INT64_MIN || sec <= b->now_ns / BKR_NS_PER_S + BKR_CLOCK_SKEW_NS / BKR_NS_PER_S) {
		bkr_newest_bad_note(&b->bad, file);
		return;
	}
	bkr_newest_bad_note(&b->future, file);
	if (!(nf = realloc(b->futures, (b->nfutures + 1) * sizeof(*nf)))) {
		b->oom = true;
		return;
	}
	b->futures = nf;
	if (!(nf[b->nfutures].id = strndup(file, strlen(file) - strlen(".json")))) {
		b->oom = true;
		return;
	}
	nf[b->nfutures++].time_ns = sec > INT64_MAX / BKR_NS_PER_S ? INT64_MAX : sec * BKR_NS_PER_S;
}

void bkr_latest_bad_free(bkr_latest_bad *b)
{
	for (size_t i = 0; i < b->nfutures; i++)
		free(b->futures[i].id);
	free(b->futures);
	b->futures = NULL;
	b->nfutures = 0;
}

int bkr_repo_resolve_listed(bkr_repo *r, bool runs, const bkr_manifest_list *l, const bkr_latest_bad *bad, const char *spec,
			    void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged), void *ctx,
			    size_t *hit)
{
	bkr_newest_bad newest = bad->bad;
	const char **ids = NULL;
	size_t made = 0;
	int err;

	if (bad->oom || (l->n && !(ids = calloc(l->n, sizeof(*ids)))))
		return bkr_error_oom();
	for (size_t i = 0; i < l->n; i++) {
		ids[i] = l->items[i]->backup_id;
		if (!bkr_time_in_future(l->items[i]->time_ns, bad->now_ns))
			made = i + 1;
	}
	/* 'latest' is the newest made by now: one dated in the future (the clock
	 * was ahead) holds older data than the ones made since, as the schedules
	 * judge it (listed oldest first: they are the last).  A damaged manifest
	 * is judged by its id's time, as the mount's /latest judges every one:
	 * dated in the future, it is passed over as it would be if it read (with
	 * a warning naming it); made by now and newer than the one 'latest'
	 * found, it is an error (bkr_repo_resolve) */
	if (!strcmp(spec, "latest") && made) {
		for (size_t i = made; i < l->n; i++) {
			if (passed)
				passed(ctx, ids[i], l->items[i]->time_ns, false);
			ids[i] = NULL;
		}
		for (size_t i = 0; passed && i < bad->nfutures; i++)
			passed(ctx, bad->futures[i].id, bad->futures[i].time_ns, true);
	} else if (bad->future.file[0]) {
		/* every backup is dated in the future: the newest of them, damaged or not */
		bkr_newest_bad_note(&newest, bad->future.file);
	}
	err = bkr_repo_resolve(r, runs, &newest, hit, ids, l->n, spec);
	free(ids);
	return err;
}

static void note_bad(void *ctx, const char *file, const char *message)
{
	(void)message;
	bkr_latest_bad_note(ctx, file);
}

static int find_in(bkr_repo *r, bool runs, const char *spec, int64_t now_ns,
		   void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged), void *ctx,
		   bkr_manifest **out)
{
	bkr_manifest_list l;
	bkr_latest_bad bad = BKR_LATEST_BAD_INIT(now_ns);
	size_t hit;
	int err;

	*out = NULL;
	if ((err = bkr_repo_list_cb(r, runs, &l, note_bad, &bad)) < 0 ||
	    (err = bkr_repo_resolve_listed(r, runs, &l, &bad, spec, passed, ctx, &hit)) < 0)
		goto done;
	*out = l.items[hit];
	l.items[hit] = NULL;
done:
	bkr_latest_bad_free(&bad);
	bkr_manifest_list_free(&l);
	return err;
}

int bkr_repo_find_backup_at(bkr_repo *r, const char *spec, int64_t now_ns,
			    void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged), void *ctx,
			    bkr_manifest **out)
{
	return find_in(r, false, spec, now_ns, passed, ctx, out);
}

int bkr_repo_find_backup(bkr_repo *r, const char *spec, bkr_manifest **out)
{
	return find_in(r, false, spec, bkr_time_now_ns(), NULL, NULL, out);
}

int bkr_repo_find_run(bkr_repo *r, const char *spec, bkr_manifest **out)
{
	return find_in(r, true, spec, bkr_time_now_ns(), NULL, NULL, out);
}

int bkr_repo_publish_manifest(bkr_repo *r, const bkr_manifest *m)
{
	const char *sub = m->type == BKR_BACKUP_RECOVERY ? "runs" : "backups";
	char name[300];
	char *json = NULL;
	size_t len;
	int err;

	if ((err = bkr_repo_check_writable(r)) < 0)
		return err;
	if (snprintf(name, sizeof(name), "%s/%s.json", sub, m->backup_id) >= (int)sizeof(name) ||
	    strchr(m->backup_id, '/') || m->backup_id[0] == '.')
		return bkr_error_set(BKR_EINVAL, "bad backup id '%s'", m->backup_id);
	if ((err = bkr_manifest_encode(m, &json, &len)) < 0)
		return err;
	err = bkr_store_put(r->store, name, json, len);
	free(json);
	return err;
}

/*
 * The time in a new record's name: now, or just after the newest record
 * when that one is named later than now (the clock was set back since, or
 * another host's is ahead).  Records apply in the order of their names, so
 * an untag, unpin or release written then would apply before the tag, pin
 * or hold it undoes and change nothing, while its command said it did (an
 * unpin undone so lets retention remove a backup pinned since).  A record
 * of the same instant keeps that instant: those are ordered by what they
 * say (applied_cmp).  The names are those this process listed (a command
 * that writes a record has read the records), else records/ is listed.
 */
static int record_time(bkr_repo *r, int64_t *out)
{
	char **names;
	size_t n;
	long long newest;
	int err;

	*out = bkr_time_now_ns();
	if (!atomic_load(&r->records_listed)) {
		if ((err = bkr_repo_list_names(r, "records", ".json", &names, &n)) < 0 && err != BKR_ENOTFOUND)
			return err;
		bkr_error_clear();
		if (err == 0)
			free_names(names, n);
	}
	newest = atomic_load(&r->records_newest_ns);
	if (newest > *out)
		*out = (int64_t)newest + 1;
	return 0;
}

int bkr_repo_add_record(bkr_repo *r, const char *json_object)
{
	char name[64], *sealed = NULL;
	uint8_t rnd[4];
	char rhex[9];
	int64_t t;
	size_t len;
	int err;

	if ((err = bkr_repo_check_writable(r)) < 0 || (err = bkr_random_bytes(rnd, sizeof(rnd))) < 0 ||
	    (err = record_time(r, &t)) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), rhex);
	snprintf(name, sizeof(name), "records/%020lld-%s.json", (long long)t, rhex);
	if ((err = bkr_json_seal(json_object, &sealed, &len)) < 0)
		return err;
	err = bkr_store_put(r->store, name, sealed, len);
	free(sealed);
	if (err == 0)
		note_record_time(r, name + strlen("records/"));
	return err;
}

int bkr_repo_add_record_obj(bkr_repo *r, cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	int err;
	cJSON_Delete(o);
	if (!text)
		return bkr_error_oom();
	err = bkr_repo_add_record(r, text);
	free(text);
	return err;
}

int bkr_repo_add_backup_record(bkr_repo *r, const char *kind, const char *backup_id, const char *key, const char *value)
{
	char now[32];
	cJSON *o = cJSON_CreateObject();
	int err;
	bkr_time_format(now, bkr_time_now_ns());
	if (o &&
	    (!cJSON_AddStringToObject(o, "kind", kind) || !cJSON_AddStringToObject(o, "backup_id", backup_id) ||
	     !cJSON_AddStringToObject(o, "time", now) || (key && value && !cJSON_AddStringToObject(o, key, value)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	err = bkr_repo_add_record_obj(r, o);
	if (err == 0)
		bkr_log_event(BKR_LOG_INFO, kind, kind,
			      (const char *[]){ "backup_id", backup_id, key ? key : "value", value ? value : "", NULL },
			      "%s %s%s%s", kind, backup_id, value ? " " : "", value ? value : "");
	return err;
}

int bkr_repo_foreach_record(bkr_repo *r, bool newest_first,
			    int (*cb)(void *ctx, const char *path, const char *text, size_t len), void *ctx)
{
	char **names;
	size_t n;
	int err;

	if ((err = bkr_repo_list_names(r, "records", ".json", &names, &n)) < 0)
		return err;
	for (size_t k = 0; k < n && err == 0; k++) {
		char path[PATH_MAX];
		size_t i = newest_first ? n - 1 - k : k, len;
		uint8_t *text;
		if ((err = record_get(r, names[i], path, &text, &len)) < 0) {
			if (!record_skippable(err))
				break;
			bkr_error_clear();
			err = 0;
			continue;
		}
		err = cb(ctx, path, (const char *)text, len);
		free(text);
	}
	free_names(names, n);
	return err > 0 ? 0 : err;
}
