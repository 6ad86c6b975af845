/** @file
 * Storage tiers (tier.h): the records that say where a repository's tiers
 * are, the tier.json marker in each tier, the rule that says which level a
 * backup's data belongs to, `bkr tier status` and `bkr tier migrate`.
 */
#include "bkr/tier.h"

#include "array.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/pack.h"
#include "bkr/retention.h"
#include "bkr/trash.h"
#include "bkr/utf8.h"
#include "idset.h"
#include "reach.h"
#include "repo_priv.h"

#define RECORD_MAX (64u << 10)
#define MARKER "tier.json"
#define COPY_CHUNK (4u << 20)
#define NS_PER_DAY (86400LL * 1000000000LL)

const char *bkr_tier_name(int level)
{
	static const char *const names[] = { "hot", "warm", "cold" };
	return level >= 0 && level < BKR_TIER_LEVELS ? names[level] : "?";
}

int bkr_tier_level(const bkr_tier_policy *p, const bkr_manifest *m, int64_t as_of_ns)
{
	/* unsigned: a manifest's time and @p as_of_ns (1677 to 2262) may lie further apart than an int64 counts */
	uint64_t age = bkr_time_since_ns(m->time_ns, as_of_ns);
	if (bkr_retention_pinned(m, as_of_ns))
		return BKR_TIER_HOT;
	/* dated after @p as_of_ns.  Made after an --as-of time in the past, it
	 * did not exist then: young.  Dated in the future now too (the clock was
	 * ahead when it was made), its age is unknown, and taking it at its word
	 * would keep its data hot until long after its date.  Counted by no age
	 * rule, as retention counts it by none: it asks for the coldest
	 * configured tier, so its data stays hotter only where a real backup
	 * shares it. */
	if (bkr_time_in_future(m->time_ns, as_of_ns)) {
		if (!bkr_time_in_future(m->time_ns, bkr_time_now_ns()))
			return BKR_TIER_HOT;
		for (int l = BKR_TIER_COLD; l > BKR_TIER_HOT; l--)
			if (p->tier[l].location)
				return l;
		return BKR_TIER_HOT;
	}
	for (int l = BKR_TIER_COLD; l > BKR_TIER_HOT; l--)
		if (p->tier[l].location && m->time_ns <= as_of_ns && age >= (uint64_t)p->tier[l].after_days * NS_PER_DAY)
			return l;
	return BKR_TIER_HOT;
}

/* ---- records -------------------------------------------------------------- */

static int tier_rank(const char *tier)
{
	return !strcmp(tier, "warm") ? 0 : !strcmp(tier, "cold") ? 1 : 2;
}

static int record_cmp(const void *a, const void *b)
{
	const bkr_tier_record *x = a, *y = b;
	int c = tier_rank(x->tier) - tier_rank(y->tier);
	if (c)
		return c;
	if ((c = strcmp(x->tier, y->tier)))
		return c;
	return x->time_ns > y->time_ns ? -1 : x->time_ns < y->time_ns;
}

struct record_list {
	bkr_store *s;
	bkr_tier_record *v;
	size_t n, cap;
	size_t damaged;      /* records that exist but do not read (left out) */
	char first_damaged[1024]; /* the first one's error */
};

/* A sealed JSON object of @p kind from @p s, parsed; NULL with an error set. */
static cJSON *load_json(bkr_store *s, const char *name, const char *kind, int *err)
{
	char what[PATH_MAX];
	uint8_t *text = NULL;
	size_t len;
	cJSON *o = NULL;
	const cJSON *k;

	if ((*err = bkr_store_describe(s, name, what, sizeof(what))) < 0 ||
	    (*err = bkr_store_get(s, name, RECORD_MAX, &text, &len)) < 0 ||
	    (*err = bkr_json_verify((const char *)text, len, what)) < 0)
		goto done;
	if (!(o = cJSON_ParseWithLength((const char *)text, len)) ||
	    !cJSON_IsString(k = cJSON_GetObjectItemCaseSensitive(o, "kind")) || strcmp(k->valuestring, kind)) {
		*err = bkr_error_set(BKR_ECORRUPT, "%s: not a %s record", what, kind);
		cJSON_Delete(o);
		o = NULL;
	}
done:
	free(text);
	return o;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(it) && *it->valuestring ? it->valuestring : NULL;
}

/*
 * Record @p name of @p s, parsed (its "tier" and "location" in *tier, *loc,
 * its time in *t); NULL for a temporary, and for a damaged, vanished or
 * malformed record (left out).  *@p damaged (optional) says which NULL was
 * a record that exists and does not read (its checksum, its JSON, a field),
 * with the error set naming it.
 */
static cJSON *record_load(bkr_store *s, const char *name, const char **tier, const char **loc, int64_t *t,
			  bool *damaged)
{
	const char *base = strrchr(name, '/'), *when;
	cJSON *o;
	int err;

	base = base ? base + 1 : name;
	*t = 0;
	if (damaged)
		*damaged = false;
	if (!strncmp(base, ".tmp-", 5) || strlen(base) < 6 || strcmp(base + strlen(base) - 5, ".json"))
		return NULL;
	if (!(o = load_json(s, name, "tier", &err))) {
		if (damaged && err == BKR_ECORRUPT)
			*damaged = true;
		else
			bkr_error_clear();
		return NULL;
	}
	*tier = json_str(o, "tier");
	*loc = json_str(o, "location");
	when = json_str(o, "time");
	if (*tier && *loc && !strchr(*tier, '/') && (!when || bkr_time_parse(when, t) == 0))
		return o;
	cJSON_Delete(o);
	if (!damaged) {
		bkr_error_clear();
		return NULL;
	}
	*damaged = true;
	bkr_error_set(BKR_ECORRUPT, "%s/%s: %s", bkr_store_location(s), name,
		      !*tier || strchr(*tier, '/') ? "no valid \"tier\"" : !*loc ? "no \"location\"" : "no valid \"time\"");
	return NULL;
}

static int add_record(void *ctx, const char *name)
{
	struct record_list *l = ctx;
	const char *tier, *loc;
	bkr_tier_record rec = { 0 };
	int64_t t;
	cJSON *o;

	bool damaged;

	if (!(o = record_load(l->s, name, &tier, &loc, &t, &damaged)) && damaged && !l->damaged++)
		snprintf(l->first_damaged, sizeof(l->first_damaged), "%s", bkr_error_message());
	if (o) {
		int err = bkr_array_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v));
		if (err < 0) {
			cJSON_Delete(o);
			return err;
		}
		rec.time_ns = t;
		if (!(rec.tier = strdup(tier)) || !(rec.location = strdup(loc))) {
			free(rec.tier);
			cJSON_Delete(o);
			return bkr_error_oom();
		}
		l->v[l->n++] = rec;
	}
	bkr_error_clear();
	cJSON_Delete(o);
	return 0;
}

/* Every record of @p s, one per file, in search order. */
static int records_all(bkr_store *s, struct record_list *l)
{
	int err;
	if ((err = bkr_store_list(s, "tiers/", add_record, l)) < 0) {
		bkr_tier_records_free(l->v, l->n);
		l->v = NULL;
		l->n = 0;
		return err;
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), record_cmp);
	return 0;
}

int bkr_tier_records_load(bkr_store *s, bkr_tier_record **out, size_t *n)
{
	struct record_list l = { .s = s };
	size_t k = 0;
	int err;

	*out = NULL;
	*n = 0;
	if ((err = records_all(s, &l)) < 0)
		return err;
	/* one per location: the first in search order */
	for (size_t i = 0; i < l.n; i++) {
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = bkr_store_same_place(l.v[j].location, l.v[i].location);
		if (dup) {
			free(l.v[i].tier);
			free(l.v[i].location);
		} else {
			l.v[k++] = l.v[i];
		}
	}
	*out = l.v;
	*n = k;
	return 0;
}

void bkr_tier_records_free(bkr_tier_record *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].tier);
		free(v[i].location);
	}
	free(v);
}

/* ---- one directory per tier ------------------------------------------------ */

/*
 * Whether tier @p tier at @p loc and tier @p other at @p oloc cannot both be:
 * one directory for two tiers, or one inside the other (a tier's data/ or
 * trash/ would hold the other's files, and the two could not be kept, moved
 * or mounted apart).  One tier at one place by two names (a symlink) is one
 * place, no clash.  @p why gets the words after "<loc> ".
 */
static bool clash(const char *tier, const char *loc, const char *other, const char *oloc, char *why, size_t cap)
{
	if (bkr_store_same_place(loc, oloc)) {
		if (!strcmp(tier, other))
			return false;
		snprintf(why, cap, "is the directory of tier %s", other);
		return true;
	}
	if (bkr_store_within(loc, oloc)) {
		snprintf(why, cap, "is inside %s, the directory of tier %s", oloc, other);
		return true;
	}
	if (bkr_store_within(oloc, loc)) {
		snprintf(why, cap, "holds %s, the directory of tier %s", oloc, other);
		return true;
	}
	return false;
}

/* BKR_ECORRUPT naming the first record of @p l that did not read, or 0. */
static int records_damaged(const struct record_list *l)
{
	if (!l->damaged)
		return 0;
	return bkr_error_set(BKR_ECORRUPT, "%zu tier record%s damaged (%s): the tier location it names is unknown, "
			     "and the packs there would look missing; put it back from a copy of the repository, "
			     "or give it up with 'bkr tier forget --damaged' (docs/format.md \"Tiers\")", l->damaged, l->damaged == 1 ? " is" : "s are", l->first_damaged);
}

int bkr_tier_records_check(bkr_store *s)
{
	struct record_list l = { .s = s };
	char why[PATH_MAX * 2 + 64];
	int err;

	if ((err = records_all(s, &l)) < 0)
		return err;
	err = records_damaged(&l);
	for (size_t i = 0; i < l.n && err == 0; i++)
		for (size_t j = i + 1; j < l.n && err == 0; j++)
			if (clash(l.v[i].tier, l.v[i].location, l.v[j].tier, l.v[j].location, why, sizeof(why)))
				err = bkr_error_set(BKR_EINVAL,
						    "tier records: tier %s's %s %s (each tier needs its own directory: "
						    "move one tier's data to a directory of its own with 'bkr tier migrate', "
						    "then 'bkr tier forget' the old one)",
						    l.v[i].tier, l.v[i].location, why);
	bkr_tier_records_free(l.v, l.n);
	return err;
}

int bkr_tier_record_add(bkr_store *s, const char *tier, const char *location, int64_t now_ns)
{
	char name[128], when[32];
	cJSON *o;
	int err;

	if (!*tier || strchr(tier, '/') || strlen(tier) > 32)
		return bkr_error_set(BKR_EINVAL, "bad tier name '%s'", tier);
	snprintf(name, sizeof(name), "tiers/%020" PRId64 "-%s.json", now_ns, tier);
	bkr_time_format(when, now_ns);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "tier") ||
	    !cJSON_AddStringToObject(o, "tier", tier) || !cJSON_AddStringToObject(o, "location", location) ||
	    !cJSON_AddStringToObject(o, "time", when))
		err = bkr_error_oom();
	else
		err = bkr_json_put(s, name, o);
	cJSON_Delete(o);
	return err;
}

/* ---- the marker ------------------------------------------------------------ */

/*
 * 0 when @p s holds a tier.json of repository @p repo_id; BKR_ENOTFOUND when
 * it holds none (or is not there); BKR_EINVAL when it names another
 * repository; BKR_ECORRUPT naming the file and key when its "tier" is no
 * tier.  *@p other: it names the other tier than @p tier, which is the
 * caller's to judge (a recorded location: damage, bkr_tier_present; one
 * recorded anew: it was that tier once, 'bkr tier forget' leaves the marker,
 * and marker_put rewrites it).
 */
static int marker_check(bkr_store *s, const char *repo_id, const char *tier, bool *other)
{
	const cJSON *t;
	const char *id;
	char what[PATH_MAX], esc[64];
	cJSON *o;
	int err;

	if (!(o = load_json(s, MARKER, "bkrfs-tier", &err)))
		return err;
	id = json_str(o, "repository");
	t = cJSON_GetObjectItemCaseSensitive(o, "tier");
	if (!id || strcmp(id, repo_id))
		err = bkr_error_set(BKR_EINVAL, "tier %s: %s belongs to repository %s, not to %s", tier,
				    bkr_store_location(s), id ? id : "?", repo_id);
	/* what a tier is (warm or cold: the repository itself is hot), as
	 * marker_put writes it; anything else is a marker no bkr wrote */
	else if (!cJSON_IsString(t) ||
		 (strcmp(t->valuestring, bkr_tier_name(BKR_TIER_WARM)) &&
		  strcmp(t->valuestring, bkr_tier_name(BKR_TIER_COLD)))) {
		if ((err = bkr_store_describe(s, MARKER, what, sizeof(what))) < 0)
			goto done;
		if (!cJSON_IsString(t))
			err = bkr_error_set(BKR_ECORRUPT, "%s: key 'tier': %s, expected \"warm\" or \"cold\"", what,
					    t ? "not a string" : "missing");
		else
			err = bkr_error_set(BKR_ECORRUPT,
					    "%s: key 'tier': unknown tier '%s', expected \"warm\" or \"cold\"", what,
					    bkr_text_escape(esc, sizeof(esc), t->valuestring, strlen(t->valuestring)));
	} else {
		*other = strcmp(t->valuestring, tier) != 0; /* the caller judges it */
	}
done:
	cJSON_Delete(o);
	return err;
}

/* Publish @p s's tier.json for @p r, unless it is there. */
static int marker_put(bkr_repo *r, bkr_store *s, const char *tier, int64_t now_ns)
{
	char when[32];
	cJSON *o;
	int err;

	bkr_time_format(when, now_ns);
	if (!(o = cJSON_CreateObject()) || !cJSON_AddStringToObject(o, "kind", "bkrfs-tier") ||
	    !cJSON_AddStringToObject(o, "repository", bkr_repo_get_config(r)->id) ||
	    !cJSON_AddStringToObject(o, "tier", tier) || !cJSON_AddStringToObject(o, "created", when))
		err = bkr_error_oom();
	else
		err = bkr_json_put(s, MARKER, o);
	cJSON_Delete(o);
	if (err == BKR_EEXISTS) {
		bool other = false;
		bkr_error_clear();
		err = marker_check(s, bkr_repo_get_config(r)->id, tier, &other);
		if (err == 0 && other) { /* forgotten as the other tier, recorded as this one now */
			if ((err = bkr_store_delete(s, MARKER)) == 0 || err == BKR_ENOTFOUND)
				return marker_put(r, s, tier, now_ns);
		}
	}
	return err;
}

int bkr_tier_present(bkr_repo *r, size_t i)
{
	const char *tier;
	bool recorded;
	bkr_store *s = bkr_repo_tier(r, i, &tier, &recorded), *probe = NULL;
	bool other = false;
	int err;

	if (i == 0)
		return 0;
	if ((err = bkr_store_open(&probe, bkr_store_location(s), 0)) < 0)
		return bkr_error_set(BKR_ENOTFOUND, "tier %s: %s is missing or not mounted", tier,
				     bkr_store_location(s));
	bkr_store_free(probe);
	if (!recorded)
		return 0;
	err = marker_check(s, bkr_repo_get_config(r)->id, tier, &other);
	if (err == 0 && other) { /* the marker names the other tier: unless a record says so too */
		struct record_list l = { .s = bkr_repo_tier(r, 0, NULL, NULL) };
		bool named = false;
		char what[PATH_MAX];
		if ((err = records_all(l.s, &l)) < 0)
			return err;
		/* records that clash (one place, both tiers: bkr_tier_records_check names them) */
		for (size_t k = 0; k < l.n && !named; k++)
			named = strcmp(l.v[k].tier, tier) && bkr_store_same_place(l.v[k].location, bkr_store_location(s));
		bkr_tier_records_free(l.v, l.n);
		if (!named && (err = bkr_store_describe(s, MARKER, what, sizeof(what))) == 0)
			err = bkr_error_set(BKR_ECORRUPT, "%s: key 'tier': '%s', but the repository records this "
					    "location as tier %s", what,
					    bkr_tier_name(strcmp(tier, bkr_tier_name(BKR_TIER_WARM)) ? BKR_TIER_WARM
												  : BKR_TIER_COLD),
					    tier);
	}
	if (err == BKR_ENOTFOUND)
		return bkr_error_set(BKR_ENOTFOUND,
				     "tier %s: %s is missing or not mounted (the repository keeps data there, "
				     "but it holds no " MARKER ")", tier, bkr_store_location(s));
	return err;
}

int bkr_tier_check(bkr_repo *r)
{
	struct record_list l = { .s = bkr_repo_tier(r, 0, NULL, NULL) };
	size_t nt = bkr_repo_tier_count(r);
	int err;

	/* a record that does not read names a location no reader searches: the
	 * packs there would look missing from every tier (and repair would drop
	 * their index entries), so it stops whoever judges that, naming it */
	if ((err = records_all(l.s, &l)) < 0)
		return err;
	bkr_tier_records_free(l.v, l.n);
	if ((err = records_damaged(&l)) < 0)
		return err;
	for (size_t i = 1; i <= nt; i++) {
		bool recorded;
		bkr_repo_tier(r, i, NULL, &recorded);
		if (recorded && (err = bkr_tier_present(r, i)) < 0)
			return err;
	}
	return 0;
}

/* ---- status ---------------------------------------------------------------- */

struct seen_pack {
	bkr_pack_id id;
	uint8_t type;
};

struct status {
	bkr_repo *r;
	bkr_tier_usage *u;       /* places 0..nt */
	bool collect;            /* the packs seen are wanted (missing ones looked for) */
	struct seen_pack *seen;
	size_t nseen, cap, nt;
};

static int add_seen(struct status *st, const bkr_pack_id *id, bkr_blob_type type)
{
	int err = bkr_array_grow((void **)&st->seen, &st->cap, st->nseen, sizeof(*st->seen));
	if (err < 0)
		return err;
	st->seen[st->nseen++] = (struct seen_pack){ *id, (uint8_t)type };
	return 0;
}

static int count_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place, const char *name,
		      const char *path)
{
	struct status *st = ctx;
	bkr_tier_usage *u = &st->u[place];
	uint64_t size = 0;
	(void)path;
	if (place > st->nt)
		return 0; /* recorded since the usage was sized */
	if (!id || bkr_store_stat(bkr_repo_tier(st->r, place, NULL, NULL), name, &size) < 0) {
		bkr_error_clear(); /* a temporary, or vanished */
		return 0;
	}
	if (type == BKR_BLOB_TREE) {
		u->tree_packs++;
		u->tree_bytes += size;
	} else {
		u->data_packs++;
		u->data_bytes += size;
	}
	return st->collect ? add_seen(st, id, type) : 0;
}

static int seen_cmp(const void *a, const void *b)
{
	return bkr_pack_id_cmp(&((const struct seen_pack *)a)->id, &((const struct seen_pack *)b)->id);
}

/* sort by id, one each */
static size_t seen_unique(struct seen_pack *v, size_t n)
{
	size_t w = 0;
	if (n)
		qsort(v, n, sizeof(*v), seen_cmp);
	for (size_t i = 0; i < n; i++)
		if (!w || bkr_pack_id_cmp(&v[w - 1].id, &v[i].id))
			v[w++] = v[i];
	return w;
}

static int note_indexed(const bkr_index_entry *e, void *ctx)
{
	return add_seen(ctx, &e->pack, e->type);
}

/* The packs the index names that no listing showed, looked for again one by one. */
static int find_missing(bkr_repo *r, struct status *listed, bkr_tier_missing *out)
{
	struct status ix = { .r = r };
	size_t j = 0, ncand = 0;
	bool reloaded = false;
	int err;

	memset(out, 0, sizeof(*out));
	listed->nseen = seen_unique(listed->seen, listed->nseen);
	if ((err = bkr_repo_foreach_blob(r, note_indexed, &ix)) < 0)
		goto done;
	ix.nseen = seen_unique(ix.seen, ix.nseen);
	out->indexed = ix.nseen;
	/* the candidates, kept at the front of ix.seen */
	for (size_t i = 0; i < ix.nseen; i++) {
		while (j < listed->nseen && bkr_pack_id_cmp(&listed->seen[j].id, &ix.seen[i].id) < 0)
			j++;
		if (j < listed->nseen && !bkr_pack_id_cmp(&listed->seen[j].id, &ix.seen[i].id))
			continue;
		ix.seen[ncand++] = ix.seen[i];
	}
	/* a migration may have moved them since, to a tier it recorded since */
	for (size_t i = 0; i < ncand; i++) {
		err = bkr_repo_pack_seek(r, &ix.seen[i].id, (bkr_blob_type)ix.seen[i].type, true, &reloaded, NULL, 0);
		if (err == BKR_ENOTFOUND) {
			if (!out->missing++)
				out->first = ix.seen[i].id;
			err = 0;
		}
		if (err < 0)
			goto done;
	}
	bkr_error_clear();
done:
	free(ix.seen);
	return err;
}

int bkr_tier_status(bkr_repo *r, bkr_tier_usage **out, size_t *n, bkr_tier_missing *missing)
{
	size_t nt = bkr_repo_tier_count(r);
	struct status st = { .r = r, .u = calloc(nt + 1, sizeof(bkr_tier_usage)), .collect = missing != NULL, .nt = nt };
	int err;

	*out = NULL;
	*n = 0;
	if (!st.u)
		return bkr_error_oom();
	for (size_t i = 0; i <= nt; i++) {
		bkr_store *s = bkr_repo_tier(r, i, &st.u[i].tier, &st.u[i].recorded);
		st.u[i].location = bkr_store_location(s);
		st.u[i].present = bkr_tier_present(r, i) == 0;
		bkr_error_clear();
	}
	if ((err = bkr_repo_foreach_pack_in(r, count_pack, &st)) < 0 ||
	    (missing && (err = find_missing(r, &st, missing)) < 0)) {
		free(st.u);
		free(st.seen);
		return err;
	}
	free(st.seen);
	*out = st.u;
	*n = nt + 1;
	return 0;
}

/* ---- forgetting a location ----------------------------------------------------- */

struct forget {
	bkr_store *s;
	const char *location;
	char **names; /* the records naming it */
	size_t n, cap;
	char tier[32];
};

static int match_record(void *ctx, const char *name)
{
	struct forget *f = ctx;
	const char *tier, *loc;
	int64_t t;
	cJSON *o = record_load(f->s, name, &tier, &loc, &t, NULL);
	int err = 0;

	if (o && bkr_store_same_place(loc, f->location)) {
		snprintf(f->tier, sizeof(f->tier), "%s", tier);
		err = bkr_array_push_str(&f->names, &f->cap, &f->n, name);
	}
	cJSON_Delete(o);
	return err;
}

int bkr_tier_forget(bkr_repo *r, const char *location, bool lost, bool dry_run, bkr_tier_forget_report *out)
{
	struct forget f = { .s = bkr_repo_tier(r, 0, NULL, NULL), .location = location };
	bkr_tier_usage *u = NULL;
	size_t nu = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = bkr_store_list(f.s, "tiers/", match_record, &f)) < 0)
		goto done;
	if (!f.n) {
		err = bkr_error_set(BKR_ENOTFOUND, "%s: no tier of %s is recorded there ('bkr tier status' lists them)",
				    location, bkr_repo_path(r));
		goto done;
	}
	snprintf(out->tier, sizeof(out->tier), "%s", f.tier);
	out->records = f.n;
	/* The tiers the repository knew at open may miss this one: a migration
	 * that recorded it while this command waited for the lock (the first
	 * one to move data there).  Judged by that list, a location holding
	 * every moved pack was "missing or not mounted", and with --lost its
	 * record went, its packs unreachable.  The records again, as read
	 * above, then what each place holds. */
	if ((err = bkr_repo_reload_tiers(r)) < 0 || (err = bkr_tier_status(r, &u, &nu, NULL)) < 0)
		goto done;
	for (size_t i = 1; i < nu; i++) {
		if (!bkr_store_same_place(u[i].location, location))
			continue;
		out->present = u[i].present;
		out->data_packs = u[i].data_packs;
		/* not present for want of a marker that reads: the location is there,
		 * and its packs with it, when the marker is damaged (another tier's
		 * name, no tier, another repository's id) - no lost disk, which
		 * --lost is for: forgotten, its packs would look missing and repair
		 * would drop their index entries */
		if (!out->present && (err = bkr_tier_present(r, i)) == 0) {
			out->present = true; /* mounted since */
		} else if (err == BKR_ENOTFOUND) {
			bkr_error_clear(); /* missing or not mounted: judged below */
			err = 0;
		} else if (err < 0 && err != BKR_ECORRUPT && err != BKR_EINVAL) {
			goto done; /* it cannot be told (an I/O error) */
		} else if (err < 0) {
			if (out->data_packs) {
				err = bkr_error_set(err, "tier %s: %s holds %" PRIu64 " data pack%s, but %s: that is damage "
						    "of its " MARKER ", not loss of the packs, so it is not forgotten (with "
						    "--lost or without: 'bkr repair' would then drop the index entries of "
						    "packs that are there); put its " MARKER " back from a copy of the tier, "
						    "or mount the right disk there, then retry",
						    f.tier, location, out->data_packs, out->data_packs == 1 ? "" : "s",
						    bkr_error_message());
				goto done;
			}
			bkr_error_clear(); /* no data there to lose: forgotten as a present, empty location */
			err = 0;
			out->present = true;
		}
		break;
	}
	if (out->present && out->data_packs) {
		err = bkr_error_set(BKR_EINVAL, "tier %s: %s still holds %" PRIu64 " data pack%s: bring them back "
				    "first (take the tier out of the configuration and run 'bkr tier migrate'; "
				    "'bkr prune' frees unused ones), then forget it", f.tier, location,
				    out->data_packs, out->data_packs == 1 ? "" : "s");
		goto done;
	}
	if (!out->present && !lost) {
		err = bkr_error_set(BKR_EINVAL, "tier %s: %s is missing or not mounted: mount it and bring its data "
				    "back first; if it is lost for good, give --lost (backups whose data was only "
				    "there become damaged)", f.tier, location);
		goto done;
	}
	for (size_t i = 0; i < f.n && !dry_run && err == 0; i++)
		if ((err = bkr_store_delete(f.s, f.names[i])) == BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		}
done:
	for (size_t i = 0; i < f.n; i++)
		free(f.names[i]);
	free(f.names);
	free(u);
	return err;
}

struct forget_damaged {
	bkr_store *s;
	char **names; /* the damaged records */
	size_t n, cap;
	void (*cb)(void *ctx, const char *name, const char *why);
	void *ctx;
};

static int match_damaged(void *ctx, const char *name)
{
	struct forget_damaged *f = ctx;
	const char *tier, *loc;
	bool damaged;
	int64_t t;
	cJSON *o = record_load(f->s, name, &tier, &loc, &t, &damaged);

	cJSON_Delete(o);
	if (!damaged)
		return 0;
	if (f->cb)
		f->cb(f->ctx, name, bkr_error_message());
	bkr_error_clear();
	return bkr_array_push_str(&f->names, &f->cap, &f->n, name);
}

int bkr_tier_forget_damaged(bkr_repo *r, bool dry_run, int64_t now_ns,
			    void (*cb)(void *ctx, const char *name, const char *why), void *ctx, size_t *n)
{
	struct forget_damaged f = { bkr_repo_tier(r, 0, NULL, NULL), NULL, 0, 0, cb, ctx };
	int err;

	*n = 0;
	if ((err = bkr_store_list(f.s, "tiers/", match_damaged, &f)) == BKR_ENOTFOUND) {
		bkr_error_clear();
		err = 0;
	}
	if (err == 0 && !f.n)
		err = bkr_error_set(BKR_ENOTFOUND, "%s: no tier record is damaged", bkr_repo_path(r));
	if (err == 0 && !dry_run)
		err = bkr_trash_move(f.s, (const char *const *)f.names, f.n, now_ns);
	if (err == 0)
		*n = f.n;
	for (size_t i = 0; i < f.n; i++)
		free(f.names[i]);
	free(f.names);
	return err;
}

/* ---- migration -------------------------------------------------------------- */

/* A data pack the index names. */
struct mpack {
	bkr_pack_id id;
	int level;       /* what its backups ask for; BKR_TIER_LEVELS: no backup uses it */
	uint32_t where;  /* bit i: place i holds a copy */
	uint64_t size;   /* of the first copy found */
};

struct migrate {
	bkr_repo *r;
	const bkr_tier_migrate_options *o;
	bkr_tier_migrate_report *rep;
	int64_t as_of;
	size_t place[BKR_TIER_LEVELS];  /* the place of each configured level (0: hot) */
	bkr_idset seen;                 /* trees walked */
	bkr_idset level[BKR_TIER_LEVELS]; /* blobs used, by the hottest level asking for them */
	int walking;                    /* the level of the backups being walked */
	struct mpack *packs;
	size_t npacks, cap;
	struct tmp {
		size_t place;
		char *name;
	} *tmps;                        /* temporaries in the tiers and tiers/ (a killed run's) */
	size_t ntmps, captmps;
	uint8_t *buf;
};

static int use_blob(void *ctx, const bkr_id *id)
{
	struct migrate *m = ctx;
	for (int l = 0; l < m->walking; l++)
		if (bkr_idset_has(&m->level[l], id))
			return 0;
	return bkr_idset_add(&m->level[m->walking], id) < 0 ? bkr_error_oom() : 0;
}

/* The level of every blob: backups and runs walked hottest first. */
static int walk_backups(struct migrate *m)
{
	bkr_manifest_list l[2] = { { 0 }, { 0 } };
	int err = 0;

	for (int runs = 0; runs < 2 && err == 0; runs++)
		err = bkr_repo_list(m->r, runs, &l[runs], NULL);
	for (int runs = 0; runs < 2 && err == 0 && m->o->future; runs++)
		for (size_t i = 0; i < l[runs].n; i++)
			if (bkr_time_in_future(l[runs].items[i]->time_ns, m->as_of))
				m->o->future(m->o->ctx, l[runs].items[i]->backup_id, l[runs].items[i]->time_ns);
	for (m->walking = 0; m->walking < BKR_TIER_LEVELS && err == 0; m->walking++) {
		for (int runs = 0; runs < 2 && err == 0; runs++) {
			for (size_t i = 0; i < l[runs].n && err == 0; i++) {
				const bkr_manifest *b = l[runs].items[i];
				if (bkr_tier_level(&m->o->policy, b, m->as_of) != m->walking)
					continue;
				m->rep->backups++;
				if (!bkr_id_is_zero(&b->tree) &&
				    (err = bkr_reach_tree(m->r, &b->tree, &m->seen, use_blob, m)) < 0)
					bkr_error_prefix("backup %s: nothing was moved", b->backup_id);
				if (err == 0 && !bkr_id_is_zero(&b->report))
					err = use_blob(m, &b->report);
			}
		}
	}
	bkr_manifest_list_free(&l[0]);
	bkr_manifest_list_free(&l[1]);
	return err;
}

struct entry_level {
	bkr_pack_id pack;
	int level;
};

struct collect {
	struct migrate *m;
	struct entry_level *v;
	size_t n;
};

static int collect_entry(const bkr_index_entry *e, void *ctx)
{
	struct collect *c = ctx;
	int l = 0;
	if (e->type != BKR_BLOB_DATA)
		return 0;
	while (l < BKR_TIER_LEVELS && !bkr_idset_has(&c->m->level[l], &e->id))
		l++;
	c->v[c->n++] = (struct entry_level){ e->pack, l };
	return 0;
}

static int count_entry(const bkr_index_entry *e, void *ctx)
{
	(void)e;
	(*(size_t *)ctx)++;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return bkr_pack_id_cmp(&((const struct entry_level *)a)->pack, &((const struct entry_level *)b)->pack);
}

/* Every data pack the index names, with the hottest level its blobs ask for. */
static int collect_packs(struct migrate *m)
{
	struct collect c = { m, NULL, 0 };
	size_t n = 0;
	int err;

	if ((err = bkr_repo_foreach_blob(m->r, count_entry, &n)) < 0)
		return err;
	if (!(c.v = malloc((n ? n : 1) * sizeof(*c.v))) || !(m->packs = calloc(n ? n : 1, sizeof(*m->packs)))) {
		free(c.v);
		return bkr_error_oom();
	}
	if ((err = bkr_repo_foreach_blob(m->r, collect_entry, &c)) < 0)
		goto done;
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
	for (size_t i = 0; i < c.n; i++) {
		if (i == 0 || bkr_pack_id_cmp(&c.v[i].pack, &c.v[i - 1].pack))
			m->packs[m->npacks++] = (struct mpack){ .id = c.v[i].pack, .level = BKR_TIER_LEVELS };
		if (c.v[i].level < m->packs[m->npacks - 1].level)
			m->packs[m->npacks - 1].level = c.v[i].level;
	}
done:
	free(c.v);
	return err;
}

static struct mpack *find_pack(struct migrate *m, const bkr_pack_id *id)
{
	size_t lo = 0, hi = m->npacks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = bkr_pack_id_cmp(&m->packs[mid].id, id);
		if (c == 0)
			return &m->packs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Where each pack is (data/ of every place), and the tiers' temporaries. */
static int on_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place, const char *name,
		   const char *path)
{
	struct migrate *m = ctx;
	struct mpack *p;
	(void)path;
	if (!id) {
		char *dup;
		int err;
		if (place == 0 && strncmp(name, "tiers/", 6))
			return 0; /* the repository's: prune's (a recovery run may be writing it) */
		if ((err = bkr_array_grow((void **)&m->tmps, &m->captmps, m->ntmps, sizeof(*m->tmps))) < 0)
			return err;
		if (!(dup = strdup(name)))
			return bkr_error_oom();
		m->tmps[m->ntmps++] = (struct tmp){ place, dup };
		return 0;
	}
	if (type != BKR_BLOB_DATA || place >= 32 || !(p = find_pack(m, id)))
		return 0; /* trees stay; unindexed packs are prune's */
	if (!p->where && bkr_store_stat(bkr_repo_tier(m->r, place, NULL, NULL), name, &p->size) < 0) {
		bkr_error_clear();
		return 0; /* vanished */
	}
	p->where |= 1u << place;
	return 0;
}

/*
 * The data packs the index names that no listing showed (the listing passes
 * over what is no regular file), looked for by name as verify and tier
 * status look: a FIFO, a socket or a directory in a pack's place ("not a
 * regular file") is a damaged pack, named, and the migration stops before
 * anything moves (BKR_ECORRUPT, as tier status and verify judge it); one
 * found nowhere is missing, verify's to report.
 */
static int check_unlisted(struct migrate *m)
{
	char path[PATH_MAX], hex[BKR_PACK_ID_HEX];
	bool reloaded = true; /* the tier records were read again before the listing */

	for (size_t i = 0; i < m->npacks; i++) {
		int err;
		if (m->packs[i].where)
			continue;
		err = bkr_repo_pack_seek(m->r, &m->packs[i].id, BKR_BLOB_DATA, true, &reloaded, path, sizeof(path));
		if (err == 0 || err == BKR_ENOTFOUND) {
			bkr_error_clear();
			continue;
		}
		bkr_pack_id_to_hex(&m->packs[i].id, hex);
		if (err == BKR_ECORRUPT)
			return bkr_error_set(err, "%s (pack %s, named by the index); nothing was moved (move it away, and "
					     "'bkr repair' drops its index entries)", bkr_error_message(), hex);
		bkr_error_prefix("pack %s named by the index: nothing was moved", hex);
		return err;
	}
	return 0;
}

/*
 * Copy (or, when @p to is NULL, only read) object @p name of @p from,
 * @p size bytes, into @p to, published under the same name; *sum gets the
 * SHA-256 of what was read.  A copy already there (a killed run published
 * it) is left as it is.
 */
static int copy_object(struct migrate *m, bkr_store *from, bkr_store *to, const char *name, uint64_t size,
		       bkr_id *sum)
{
	bkr_store_upload *u = NULL;
	bkr_hash_ctx *h = bkr_hash_new();
	char dir[PATH_MAX];
	const char *slash = strrchr(name, '/');
	int err = 0;

	if (!h)
		return bkr_error_oom();
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - name + 1) : 0, name);
	if (to && (err = bkr_store_upload_new(to, dir, &u)) < 0)
		goto done;
	for (uint64_t off = 0; off < size && err == 0; off += COPY_CHUNK) {
		size_t len = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;
		if ((err = bkr_store_get_range(from, name, off, len, m->buf, 0)) < 0)
			break;
		bkr_hash_update(h, m->buf, len);
		if (u)
			err = bkr_store_upload_write(u, m->buf, len);
	}
	if (err == 0 && u && (err = bkr_store_upload_publish(u, name)) == BKR_EEXISTS) {
		bkr_error_clear();
		err = 0;
	}
	bkr_hash_final(h, sum);
done:
	bkr_store_upload_free(u);
	bkr_hash_free(h);
	return err;
}

/* The SHA-256 of the copy of @p name in @p s, which must be @p size bytes. */
static int hash_copy(struct migrate *m, bkr_store *s, const char *name, uint64_t size, bkr_id *sum)
{
	char what[PATH_MAX];
	uint64_t have;
	int err;
	if ((err = bkr_store_stat(s, name, &have)) < 0)
		return err;
	if (have != size) {
		bkr_store_describe(s, name, what, sizeof(what));
		return bkr_error_set(BKR_ECORRUPT, "%s: %" PRIu64 " bytes, the original has %" PRIu64, what, have,
				     size);
	}
	return copy_object(m, s, NULL, name, size, sum);
}

/* Once data first reaches @p level's place, before a copy elsewhere goes: its tier.json and the
 * repository's record of it. */
static int record_place(struct migrate *m, int level)
{
	const char *tier;
	bool recorded;
	bkr_store *s = bkr_repo_tier(m->r, m->place[level], &tier, &recorded);
	int64_t now = bkr_time_now_ns();
	int err;
	if (level == BKR_TIER_HOT || recorded)
		return 0;
	if ((err = marker_put(m->r, s, tier, now)) < 0 ||
	    (err = bkr_tier_record_add(bkr_repo_tier(m->r, 0, NULL, NULL), tier, bkr_store_location(s), now)) < 0)
		return err;
	return bkr_repo_add_tier(m->r, tier, bkr_store_location(s), true);
}

/*
 * Put pack @p p where its level says: a copy in the destination (made from
 * the first copy found, unless one is there), read back and compared, then
 * every other copy deleted.
 */
static int move_pack(struct migrate *m, struct mpack *p)
{
	size_t dest = m->place[p->level], src = 0;
	bkr_store *to = bkr_repo_tier(m->r, dest, NULL, NULL), *from;
	char name[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	bkr_id want, got;
	int err;

	if ((err = bkr_pack_path(name, sizeof(name), "data", &p->id)) < 0)
		return err;
	while (!(p->where & (1u << src)))
		src++;
	if (src == dest) /* extra copies only: compare with the next one */
		while (++src < 32 && !(p->where & (1u << src)))
			;
	from = bkr_repo_tier(m->r, src, NULL, NULL);
	bkr_store_describe(from, name, a, sizeof(a));
	bkr_store_describe(to, name, b, sizeof(b));
	if (!(p->where & (1u << dest))) {
		if (m->o->on_move)
			m->o->on_move(m->o->ctx, &p->id, p->size, a, b);
		if (m->o->dry_run) {
			m->rep->packs[p->level]++;
			m->rep->bytes[p->level] += p->size;
			return 0;
		}
		if ((err = copy_object(m, from, to, name, p->size, &want)) < 0)
			return err;
		m->rep->packs[p->level]++;
		m->rep->bytes[p->level] += p->size;
	} else {
		m->rep->copies_removed += (uint64_t)__builtin_popcount(p->where) - 1;
		if (m->o->dry_run)
			return 0;
		if ((err = hash_copy(m, from, name, p->size, &want)) < 0)
			return err;
	}
	/* recorded once a copy is there (a tier whose first copy failed, a full
	 * disk, is not one), and always before any other copy goes */
	if ((err = record_place(m, p->level)) < 0 || (err = hash_copy(m, to, name, p->size, &got)) < 0)
		return err;
	if (bkr_id_cmp(&want, &got))
		return bkr_error_set(BKR_ECORRUPT, "%s differs from %s: both are kept (run 'bkr verify --read-data')",
				     b, a);
	/* the copy is the pack: every other copy goes */
	for (size_t i = 0; i < 32; i++) {
		if (i == dest || !(p->where & (1u << i)))
			continue;
		err = bkr_store_delete(bkr_repo_tier(m->r, i, NULL, NULL), name);
		if (err == BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		}
		if (err < 0)
			return err;
	}
	p->where = 1u << dest;
	return 0;
}

/* The configured tiers: there, this repository's, searched (an error before anything moves). */
static int open_configured(struct migrate *m)
{
	const char *repo_id = bkr_repo_get_config(m->r)->id;
	bool any = false;
	int err;

	for (int l = BKR_TIER_WARM; l < BKR_TIER_LEVELS; l++) {
		const char *loc = m->o->policy.tier[l].location;
		bkr_store *probe = NULL;
		size_t nt;
		if (!loc)
			continue;
		any = true;
		/* against every location the repository recorded, before it records this one
		 * (a configuration error: said before whether the location is there) */
		for (size_t i = 1; i <= bkr_repo_tier_count(m->r); i++) {
			const char *rtier;
			bool recorded;
			bkr_store *rs = bkr_repo_tier(m->r, i, &rtier, &recorded);
			char why[PATH_MAX * 2 + 64];
			if (recorded && clash(bkr_tier_name(l), loc, rtier, bkr_store_location(rs), why, sizeof(why)))
				return bkr_error_set(BKR_EINVAL,
						     "tiers.%s.path: %s %s, as the repository recorded it (each tier "
						     "needs its own directory); nothing was moved",
						     bkr_tier_name(l), loc, why);
		}
		if ((err = bkr_repo_store_open(m->r, loc, 0, &probe)) < 0)
			return bkr_error_set(BKR_ENOTFOUND, "tiers.%s.path: %s is missing or not mounted; nothing was moved",
					     bkr_tier_name(l), loc);
		bool other = false; /* a location recorded already is checked by bkr_tier_check below */
		err = marker_check(probe, repo_id, bkr_tier_name(l), &other);
		bkr_store_free(probe);
		if (err < 0 && err != BKR_ENOTFOUND) {
			bkr_error_prefix("tiers.%s.path: nothing was moved", bkr_tier_name(l));
			return err;
		}
		bkr_error_clear();
		if ((err = bkr_repo_add_tier(m->r, bkr_tier_name(l), loc, false)) < 0)
			return err;
		nt = bkr_repo_tier_count(m->r);
		for (size_t i = 1; i <= nt; i++)
			if (bkr_store_same_place(bkr_store_location(bkr_repo_tier(m->r, i, NULL, NULL)), loc))
				m->place[l] = i;
		if (m->place[l] >= 32)
			return bkr_error_set(BKR_EINVAL, "tiers.%s.path: too many tier locations", bkr_tier_name(l));
	}
	if (!any)
		return bkr_error_set(BKR_EINVAL, "no tiers configured: name tiers.warm.path or tiers.cold.path "
				     "in the configuration (docs/config.md)");
	if (m->place[BKR_TIER_WARM] && m->place[BKR_TIER_WARM] == m->place[BKR_TIER_COLD])
		return bkr_error_set(BKR_EINVAL, "tiers.cold.path: the same place as tiers.warm.path");
	/* every recorded tier too: data may have to come back from it */
	if ((err = bkr_tier_check(m->r)) < 0)
		bkr_error_prefix("nothing was moved");
	return err;
}

int bkr_tier_migrate(bkr_repo *r, const bkr_tier_migrate_options *o, bkr_tier_migrate_report *out)
{
	struct migrate m = { .r = r, .o = o, .rep = out, .seen = BKR_IDSET_INIT };
	int err;

	memset(out, 0, sizeof(*out));
	for (int l = 0; l < BKR_TIER_LEVELS; l++)
		m.level[l] = (bkr_idset)BKR_IDSET_INIT;
	m.as_of = o->as_of_set ? o->as_of_ns : bkr_time_now_ns();
	if (!o->dry_run && (err = bkr_repo_check_writable(r)) < 0)
		goto done;
	/* the tiers as recorded now: another migration may have recorded one while this waited */
	if ((err = bkr_repo_reload_tiers(r)) < 0 || (err = open_configured(&m)) < 0 || (err = walk_backups(&m)) < 0 ||
	    (err = collect_packs(&m)) < 0 || (err = bkr_repo_foreach_pack_in(r, on_pack, &m)) < 0 ||
	    (err = check_unlisted(&m)) < 0)
		goto done;
	if (!(m.buf = malloc(COPY_CHUNK))) {
		err = bkr_error_oom();
		goto done;
	}
	/* what a killed copy or record left in a tier or tiers/ (only migration
	 * writes there, under the lock) */
	for (size_t i = 0; i < m.ntmps && !o->dry_run && err == 0; i++)
		if ((err = bkr_store_delete(bkr_repo_tier(r, m.tmps[i].place, NULL, NULL), m.tmps[i].name)) ==
		    BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		}
	/* what moves, for the progress line */
	uint64_t todo = 0, todo_bytes = 0, done = 0, done_bytes = 0;
	for (size_t i = 0; i < m.npacks; i++) {
		struct mpack *p = &m.packs[i];
		if (p->where && p->level < BKR_TIER_LEVELS && p->where != 1u << m.place[p->level]) {
			todo++;
			todo_bytes += p->size;
		}
	}
	if (o->progress)
		o->progress(o->ctx, 0, todo, 0, todo_bytes);
	for (size_t i = 0; i < m.npacks && err == 0; i++) {
		struct mpack *p = &m.packs[i];
		if (!p->where)
			continue; /* missing everywhere: verify says so */
		if (p->level == BKR_TIER_LEVELS) {
			out->unused_packs++;
			continue;
		}
		if (p->where == 1u << m.place[p->level]) {
			out->stay_packs++;
			out->stay_bytes += p->size;
			continue;
		}
		err = move_pack(&m, p);
		done++;
		done_bytes += p->size;
		if (err == 0 && o->progress)
			o->progress(o->ctx, done, todo, done_bytes, todo_bytes);
	}
done:
	bkr_idset_free(&m.seen);
	for (int l = 0; l < BKR_TIER_LEVELS; l++)
		bkr_idset_free(&m.level[l]);
	for (size_t i = 0; i < m.ntmps; i++)
		free(m.tmps[i].name);
	free(m.tmps);
	free(m.packs);
	free(m.buf);
	return err;
}
