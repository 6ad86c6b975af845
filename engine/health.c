/** @file
 * Health (bkr/health.h): gathered from the catalog, the packs of every tier,
 * the routine records of the log directory and the newest recovery run;
 * written out as Prometheus text.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/health.h"
#include "bkr/io.h"
#include "bkr/recover.h"
#include "bkr/verify_record.h"

#define NS 1000000000LL
/* routines.jsonl read at most this much from its end */
#define RECORDS_TAIL (4u << 20)

static int add_str(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return bkr_error_oom();
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return bkr_error_oom();
	(*n)++;
	return 0;
}

static int add_reason(bkr_health *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_reason(bkr_health *h, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return add_str(&h->reasons, &h->nreasons, line);
}

/* ---- storage ------------------------------------------------------------ */

/*
 * A pack of place @p place (the repository, or a tier it recorded or the
 * configuration names), counted in that place's tier: by the tier's name,
 * not by the configured paths (a recorded tier the configuration no longer
 * names is not hot), and sized through its store (an S3 object has no
 * local path to stat).
 */
struct storage {
	bkr_health *h;
	bkr_repo *r;
};

static int count_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place, const char *name,
		      const char *path)
{
	struct storage *st = ctx;
	bkr_health *h = st->h;
	const char *tier = "hot";
	bkr_store *s = bkr_repo_tier(st->r, place, &tier, NULL);
	int level = !strcmp(tier, "hot") ? BKR_TIER_HOT : !strcmp(tier, "warm") ? BKR_TIER_WARM : BKR_TIER_COLD;
	uint64_t size = 0;

	(void)type;
	(void)path;
	if (!id || bkr_store_stat(s, name, &size) < 0) {
		bkr_error_clear(); /* a temporary, or gone meanwhile */
		return 0;
	}
	h->tier_bytes[level] += size;
	h->tier_packs[level]++;
	h->repo_bytes += size;
	return 0;
}

/* ---- routine records ---------------------------------------------------- */

/* The newest scan a routine recorded: which files it still found damaged. */
struct scan_seen {
	bool known, truncated;
	int64_t time_ns;
	char **files;
	size_t n;
};

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * What one verify (a routine record's "verify" or a verify record) says of
 * the backups it checked: newest wins per backup.  One that judged its
 * scope whole (it found nothing, or named the backups it found an error
 * in: an older record names none) clears the backups it does not name.
 */
struct verdict {
	int64_t time_ns;
	char *scope;            /* the one backup it checked; NULL: every one */
	bool read_data, clears;
	char **damaged;
	size_t n;
};

struct verdicts {
	struct verdict *v;
	size_t n;
};

/* A copy of @p names (*out NULL when none). */
static int dup_strv(char ***out, const char *const *names, size_t n)
{
	*out = NULL;
	if (!n)
		return 0;
	if (!(*out = calloc(n, sizeof(**out))))
		return bkr_error_oom();
	for (size_t i = 0; i < n; i++)
		if (!((*out)[i] = strdup(names[i])))
			return bkr_error_oom(); /* the caller frees all n (the rest are NULL) */
	return 0;
}

static int add_verdict(struct verdicts *vs, int64_t t, const char *scope, bool read_data, bool clears,
		       const char *const *damaged, size_t n)
{
	struct verdict *nv, *d;
	int err;

	if (!vs)
		return 0;
	if (!(nv = realloc(vs->v, (vs->n + 1) * sizeof(*nv))))
		return bkr_error_oom();
	vs->v = nv;
	d = &nv[vs->n++];
	*d = (struct verdict){ .time_ns = t, .read_data = read_data, .clears = clears, .n = n };
	if ((scope && !(d->scope = strdup(scope))))
		return bkr_error_oom();
	err = dup_strv(&d->damaged, damaged, n);
	if (err < 0 && !d->damaged)
		d->n = 0;
	return err;
}

static void free_verdicts(struct verdicts *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i].scope);
		free_strv(vs->v[i].damaged, vs->v[i].damaged ? vs->v[i].n : 0);
	}
	free(vs->v);
}

static bool in_strv(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static int cmp_verdict(const void *a, const void *b)
{
	const struct verdict *x = a, *y = b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

/* Verdict @p d applied to the damaged backups @p set (*n of them). */
static int apply_verdict(char ***set, size_t *n, const struct verdict *d)
{
	size_t k = 0;

	for (size_t i = 0; d->clears && i < *n; i++) {
		if (!d->scope || !strcmp(d->scope, (*set)[i]))
			free((*set)[i]);
		else
			(*set)[k++] = (*set)[i];
	}
	if (d->clears)
		*n = k;
	for (size_t i = 0; i < d->n; i++) {
		int err;
		if (!in_strv(*set, *n, d->damaged[i]) && (err = add_str(set, n, d->damaged[i])) < 0)
			return err;
	}
	return 0;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether backup @p id is one of @p l's. */
static bool listed(const bkr_manifest_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->items[i]->backup_id, id))
			return true;
	return false;
}

/*
 * h->damaged_backups: newest wins per backup, among every verify (not after
 * now); a verify of the structure alone reads no data blob, so the damage
 * one that read the data found stands until one that reads it again clears
 * it (two sets, their union).  Only the backups of @p l: one deleted since
 * is none to mend or to count (a verify of the structure would clear it, not
 * what a verify that read the data found, until the next such).
 */
static int judge_backups(bkr_health *h, struct verdicts *vs, const bkr_manifest_list *l)
{
	char **data = NULL;
	size_t ndata = 0;
	int err = 0;

	if (vs->n)
		qsort(vs->v, vs->n, sizeof(*vs->v), cmp_verdict);
	for (size_t i = 0; i < vs->n && !err; i++) {
		const struct verdict *d = &vs->v[i];
		if (d->time_ns > h->now_ns)
			continue;
		err = apply_verdict(&h->damaged_backups, &h->ndamaged_backups, d);
		if (!err && d->read_data)
			err = apply_verdict(&data, &ndata, d);
	}
	for (size_t i = 0; i < ndata && !err; i++)
		if (!in_strv(h->damaged_backups, h->ndamaged_backups, data[i]))
			err = add_str(&h->damaged_backups, &h->ndamaged_backups, data[i]);
	free_strv(data, ndata);
	size_t k = 0;
	for (size_t i = 0; i < h->ndamaged_backups; i++) {
		if (listed(l, h->damaged_backups[i]))
			h->damaged_backups[k++] = h->damaged_backups[i];
		else
			free(h->damaged_backups[i]);
	}
	h->ndamaged_backups = k;
	if (h->ndamaged_backups)
		qsort(h->damaged_backups, h->ndamaged_backups, sizeof(*h->damaged_backups), cmp_strp);
	return err;
}

static int take_scan(struct scan_seen *sc, const cJSON *v, int64_t t)
{
	const cJSON *x;
	int err;
	free_strv(sc->files, sc->n);
	sc->files = NULL;
	sc->n = 0;
	sc->known = true;
	sc->time_ns = t;
	sc->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "truncated"));
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(v, "files"))
		if (cJSON_IsString(x) && (err = add_str(&sc->files, &sc->n, x->valuestring)) < 0)
			return err;
	return 0;
}

static int64_t json_time(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	int64_t t;
	return cJSON_IsString(v) && bkr_time_parse(v->valuestring, &t) == 0 ? t : INT64_MIN;
}

/* The failed steps of a record, "backup: message; verify: message"; NULL when none failed. */
static char *failed_steps(const cJSON *rec)
{
	char buf[1024] = "";
	size_t used = 0;
	const cJSON *st;
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(rec, "steps")) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(st, "step");
		const cJSON *status = cJSON_GetObjectItemCaseSensitive(st, "status");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
		if (!cJSON_IsString(status) || strcmp(status->valuestring, "failed") != 0 || used >= sizeof(buf))
			continue;
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s: %s", used ? "; " : "",
					 cJSON_IsString(name) ? name->valuestring : "?",
					 cJSON_IsString(msg) ? msg->valuestring : "");
	}
	return used ? strdup(buf) : NULL;
}

/* Made at @p t_ns, no later than h->now_ns, within the last BKR_HEALTH_WINDOW_S
 * (a record may hold any time: bkr_time_since_ns; now - t wrapped, and a run
 * of 1677 counted as recent). */
static bool recent(const bkr_health *h, int64_t t_ns)
{
	return bkr_time_since_ns(t_ns, h->now_ns) <= (uint64_t)BKR_HEALTH_WINDOW_S * NS;
}

/* A count a record holds (a number from 0 to 2^64): else 0, never a conversion out of range. */
static uint64_t json_count(const cJSON *x)
{
	if (!cJSON_IsNumber(x) || !(x->valuedouble > 0 && x->valuedouble < 18446744073709551616.0))
		return 0;
	return (uint64_t)x->valuedouble;
}

/* A routine record's "verify" @p v, made at @p t, into @p hv. */
static int take_verify(bkr_health_verify *hv, const cJSON *v, int64_t t)
{
	const cJSON *x;
	int err;
	hv->known = true;
	hv->time_ns = t;
	free(hv->backup_id); /* a routine's verify is of the whole repository */
	hv->backup_id = NULL;
	hv->read_data = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "read_data"));
	hv->ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ok"));
	hv->errors = json_count(cJSON_GetObjectItemCaseSensitive(v, "errors"));
	hv->io_errors = json_count(cJSON_GetObjectItemCaseSensitive(v, "io_errors"));
	hv->damaged_objects = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "damaged_objects"));
	for (size_t i = 0; i < hv->ndamaged_backups; i++)
		free(hv->damaged_backups[i]);
	hv->ndamaged_backups = 0;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(v, "damaged_backups"))
		if (cJSON_IsString(x) && (err = add_str(&hv->damaged_backups, &hv->ndamaged_backups, x->valuestring)) < 0)
			return err;
	return 0;
}

/* A routine's verify (of the whole repository) as a verdict: it judged every
 * backup when it read every object and found nothing, or named the backups
 * it found an error in (at most BKR_VERIFY_RECORD_MAX_BACKUPS: a full list
 * may leave some out). */
static int take_routine_verdict(struct verdicts *vs, const cJSON *v, int64_t t)
{
	const cJSON *x;
	const char **names = NULL;
	size_t n = 0;
	int err;
	bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ok"));
	bool io = json_count(cJSON_GetObjectItemCaseSensitive(v, "io_errors")) != 0;
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(v, "damaged_backups");

	if (!(names = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*names))))
		return bkr_error_oom();
	cJSON_ArrayForEach(x, list)
		if (cJSON_IsString(x))
			names[n++] = x->valuestring;
	err = add_verdict(vs, t, NULL, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "read_data")),
			  !io && (ok || n) && n < BKR_VERIFY_RECORD_MAX_BACKUPS, names, n);
	free(names);
	return err;
}

/*
 * One record, oldest first.  The last verify is the newest record's "verify"
 * (where `verify` records of the repository are kept, they take its place).
 */
static int take_record(bkr_health *h, struct scan_seen *sc, struct verdicts *vs, const cJSON *rec,
		       int64_t *oldest_bytes_ns, uint64_t *oldest_bytes)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(rec, "routine"), *v, *b, *x;
	int64_t t = json_time(rec, "start");
	char *problem;
	bkr_routine_kind k;
	bkr_health_routine *hr;
	bool ok;
	int err;

	if (t == INT64_MIN || !cJSON_IsString(name) || bkr_routine_parse(name->valuestring, &k) < 0 ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "dry_run")) || t > h->now_ns)
		return 0;
	/* a run failed when a step failed (or it could not run its steps);
	 * problems its steps found (damaged files...) are reported on their own */
	problem = failed_steps(rec);
	x = cJSON_GetObjectItemCaseSensitive(rec, "exit");
	ok = !problem && !(cJSON_IsNumber(x) && x->valueint != 0 && x->valueint != 1);
	hr = &h->routines[k];
	if (!hr->known || t >= hr->last_ns) {
		hr->known = true;
		hr->last_ns = t;
		hr->last_ok = ok;
		free(hr->last_problem);
		hr->last_problem = ok ? NULL : problem ? problem : strdup("it could not run its steps");
		problem = NULL;
	}
	free(problem);
	if (!ok && recent(h, t))
		hr->failures++;
	v = cJSON_GetObjectItemCaseSensitive(rec, "verify");
	if (cJSON_IsObject(v)) {
		int64_t vt = json_time(v, "time");
		if (vt != INT64_MIN && (err = take_routine_verdict(vs, v, vt)) < 0)
			return err;
		if (vt != INT64_MIN && (!h->verify.known || vt >= h->verify.time_ns) &&
		    (err = take_verify(&h->verify, v, vt)) < 0)
			return err;
		/* a routine's verify is of the whole repository */
		if (vt != INT64_MIN && vt <= h->now_ns && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "read_data")) &&
		    (!h->verify_read_data.known || vt >= h->verify_read_data.time_ns) &&
		    (err = take_verify(&h->verify_read_data, v, vt)) < 0)
			return err;
	}
	v = cJSON_GetObjectItemCaseSensitive(rec, "scan");
	/* a partial scan (the emergency routine's without the repository) did
	 * not look for missing or truncated files: its lack of one says nothing */
	if (cJSON_IsObject(v) && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "partial"))) {
		int64_t st = json_time(v, "time");
		if (st != INT64_MIN && (!sc->known || st >= sc->time_ns) && (err = take_scan(sc, v, st)) < 0)
			return err;
	}
	b = cJSON_GetObjectItemCaseSensitive(rec, "repository_bytes");
	if (json_count(b) && recent(h, t) && (*oldest_bytes_ns == INT64_MIN || t < *oldest_bytes_ns)) {
		*oldest_bytes_ns = t;
		*oldest_bytes = json_count(b);
	}
	return 0;
}

/* The newest verify record at or before h->now_ns.  Every record is read:
 * one dated after now (an --as-of replay, or a verify run while the clock
 * was ahead) must not hide the ones before it, as the newest alone would. */
struct last_verify {
	int64_t now_ns;
	bool found;
	bool read_found;  /* a verify --read-data of the whole repository */
	bool read1_found; /* a verify --read-data of one backup */
	bkr_verify_record rec; /* the scalars only: no string or array is kept */
	bkr_verify_record read_rec; /* the newest such, likewise */
	bkr_verify_record read1_rec; /* the newest of one backup, likewise */
	struct verdicts *vs; /* every one (its damaged backups, its scope) */
	size_t rec_at, read_at, read1_at; /* theirs in vs */
};

static int take_verify_record(void *ctx, const bkr_verify_record *rec)
{
	struct last_verify *lv = ctx;
	int err;

	if (rec->time_ns > lv->now_ns)
		return 0;
	/* it judged its scope whole when it found nothing, or named the backups
	 * it found an error in (an older record names none) */
	if ((err = add_verdict(lv->vs, rec->time_ns, rec->backup_id, rec->read_data,
			       rec->result == BKR_VERIFY_RESULT_OK ||
				       (rec->result == BKR_VERIFY_RESULT_PROBLEMS && rec->ndamaged_backups &&
					!rec->damaged_backups_omitted),
			       (const char *const *)rec->damaged_backups, rec->ndamaged_backups)) < 0)
		return err;
	if (rec->read_data && !rec->backup_id && (!lv->read_found || rec->time_ns >= lv->read_rec.time_ns)) {
		lv->read_found = true;
		bkr_verify_record_scalars(&lv->read_rec, rec);
		lv->read_at = lv->vs->n - 1;
	}
	if (rec->read_data && rec->backup_id && (!lv->read1_found || rec->time_ns >= lv->read1_rec.time_ns)) {
		lv->read1_found = true;
		bkr_verify_record_scalars(&lv->read1_rec, rec);
		lv->read1_at = lv->vs->n - 1;
	}
	if (lv->found && rec->time_ns < lv->rec.time_ns)
		return 0;
	lv->found = true;
	bkr_verify_record_scalars(&lv->rec, rec);
	lv->rec_at = lv->vs->n - 1;
	return 0;
}

/* What verify record @p rec found (@p d: its verdict), into @p hv. */
static int from_verify_record(bkr_health_verify *hv, const bkr_verify_record *rec, const struct verdict *d)
{
	hv->known = true;
	hv->time_ns = rec->time_ns;
	free(hv->backup_id);
	if (!d->scope)
		hv->backup_id = NULL;
	else if (!(hv->backup_id = strdup(d->scope)))
		return bkr_error_oom();
	hv->read_data = rec->read_data;
	hv->ok = rec->result == BKR_VERIFY_RESULT_OK;
	hv->io_errors = rec->stats.io_errors;
	hv->errors = rec->result == BKR_VERIFY_RESULT_FAILED && !rec->stats.errors && !rec->stats.io_errors
			     ? 1
			     : rec->stats.errors;
	hv->damaged_objects = rec->ndamaged + (size_t)rec->damaged_omitted;
	/* the backups it names (an older record names none): an older routine's list no longer holds */
	free_strv(hv->damaged_backups, hv->ndamaged_backups);
	hv->ndamaged_backups = 0;
	if (dup_strv(&hv->damaged_backups, (const char *const *)d->damaged, d->n) < 0) {
		free_strv(hv->damaged_backups, hv->damaged_backups ? d->n : 0);
		hv->damaged_backups = NULL;
		return BKR_ENOMEM;
	}
	hv->ndamaged_backups = d->n;
	return 0;
}

/* A `bkr verify` run by hand (or by anything but a routine) leaves a verify
 * record in the repository: it stands for the last verify when it is newer
 * than the routines' own. */
static int read_verify_record(bkr_health *h, const bkr_records *rs, struct verdicts *vs)
{
	struct last_verify lv = { .now_ns = h->now_ns, .vs = vs };
	int err = bkr_verify_record_foreach_in(rs, false, take_verify_record, &lv);

	if (err < 0)
		return err;
	if (lv.read_found && (!h->verify_read_data.known || lv.read_rec.time_ns > h->verify_read_data.time_ns) &&
	    (err = from_verify_record(&h->verify_read_data, &lv.read_rec, &vs->v[lv.read_at])) < 0)
		return err;
	if (lv.found && (!h->verify.known || lv.rec.time_ns > h->verify.time_ns) &&
	    (err = from_verify_record(&h->verify, &lv.rec, &vs->v[lv.rec_at])) < 0)
		return err;
	/* one backup's data read since the whole repository's (the routines' included, read before) */
	if (lv.read1_found && (!h->verify_read_data.known || lv.read1_rec.time_ns > h->verify_read_data.time_ns) &&
	    (err = from_verify_record(&h->verify_read_data_backup, &lv.read1_rec, &vs->v[lv.read1_at])) < 0)
		return err;
	return 0;
}

/* Damage a prune met (a damage record) after the last verify --read-data: not yet judged by one. */
static int read_damage_record(bkr_health *h, const bkr_records *rs)
{
	int64_t t;
	uint64_t n;
	int err = bkr_damage_record_last_in(rs, h->now_ns, &t, &n);

	if (err == BKR_ENOTFOUND)
		return 0;
	if (err < 0)
		return err;
	/* only a verify that read the data judged it: one of the structure
	 * alone (the daily routine's) reads no blob */
	if (!h->verify_read_data.known || t > h->verify_read_data.time_ns) {
		h->damage.known = true;
		h->damage.time_ns = t;
		h->damage.blobs = n;
	}
	return 0;
}

/*
 * The routine records, at most RECORDS_TAIL bytes from the end.  What cannot
 * be read is a reason, not a silence: a record file that is not a regular
 * file (a FIFO is opened without blocking and refused, as the logs refuse
 * one) or cannot be read, or a last record that does not parse (a line
 * longer than RECORDS_TAIL, garbage) would otherwise hide every failed
 * routine and leave the repository "healthy".
 */
static int read_records(bkr_health *h, const bkr_config *cfg, struct scan_seen *sc, struct verdicts *vs)
{
	char path[PATH_MAX];
	int64_t oldest_ns = INT64_MIN;
	uint64_t oldest_bytes = 0;
	char *text = NULL, *line, *save = NULL, *last = NULL;
	struct stat st;
	bool cut = false, last_ok = false;
	size_t n = 0;
	ssize_t got;
	off_t start = 0;
	int fd, err = 0;

	if (!cfg->log_dir || bkr_path_join(path, sizeof(path), cfg->log_dir, BKR_ROUTINE_RECORDS) < 0)
		return 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		return add_reason(h, "the routine records %s cannot be read (%s): the routines' last runs are unknown",
				  path, errno == ELOOP ? "a symbolic link" : strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = add_reason(h, "the routine records %s cannot be read (%s): the routines' last runs are unknown",
				 path, fstat(fd, &st) < 0 ? strerror(errno) : S_ISDIR(st.st_mode) ? "a directory"
						     : S_ISFIFO(st.st_mode) ? "a FIFO" : "not a regular file");
		close(fd);
		return err;
	}
	if (st.st_size > (off_t)RECORDS_TAIL) {
		char before = '\n';
		start = st.st_size - (off_t)RECORDS_TAIL;
		/* the first line is cut (and does not parse) unless a line ends just before it */
		cut = pread(fd, &before, 1, start - 1) != 1 || before != '\n';
	}
	if (!(text = malloc(RECORDS_TAIL + 1))) {
		close(fd);
		return bkr_error_oom();
	}
	while (n < RECORDS_TAIL && (got = pread(fd, text + n, RECORDS_TAIL - n, start + (off_t)n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = add_reason(h, "the routine records %s cannot be read (%s): the routines' last runs are unknown",
					 path, strerror(errno));
			close(fd);
			free(text);
			return err;
		}
		n += (size_t)got;
	}
	close(fd);
	text[n] = '\0';
	for (line = strtok_r(text, "\n", &save); line && !err; line = strtok_r(NULL, "\n", &save)) {
		cJSON *rec;
		if (cut && line == text)
			continue; /* the partial first line */
		rec = cJSON_Parse(line);
		last = line;
		last_ok = cJSON_IsObject(rec);
		if (last_ok)
			err = take_record(h, sc, vs, rec, &oldest_ns, &oldest_bytes);
		cJSON_Delete(rec);
	}
	/* a last line that does not parse may be the newest run (or hide all of
	 * them); a file of empty lines holds no record, as an empty one */
	if (!err && (cut ? !last || !last_ok : last && !last_ok))
		err = add_reason(h, "the last line of the routine records %s is not a routine record (%s): "
				 "the routines' last runs are unknown", path,
				 !last ? "a line longer than 4 MiB" : "it does not parse");
	free(text);
	if (!err && oldest_ns != INT64_MIN && h->now_ns > oldest_ns && h->repo_bytes) {
		double days = (double)(h->now_ns - oldest_ns) / (86400.0 * NS);
		if (days >= 1.0 / 24) {
			h->growth_known = true;
			h->growth_bytes_per_day = ((double)h->repo_bytes - (double)oldest_bytes) / days;
		}
	}
	return err;
}

/* ---- recovery ----------------------------------------------------------- */

/* Leave out of @p l (oldest first) what was made after @p now_ns: at that
 * time it did not exist yet, like the records and verifies after it. */
static void drop_after(bkr_manifest_list *l, int64_t now_ns)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (l->items[i]->time_ns > now_ns)
			bkr_manifest_free(l->items[i]);
		else
			l->items[k++] = l->items[i];
	}
	l->n = k;
}

/* Leave out of the backups @p l those dated in the future at h->now_ns (as
 * the schedules and retention do: bkr_time_in_future), naming them in
 * h->future; a backup within the clock skew counts (its age is 0). */
static int drop_future(bkr_health *h, bkr_manifest_list *l)
{
	size_t k = 0;
	int err = 0;

	for (size_t i = 0; i < l->n; i++) {
		bkr_manifest *m = l->items[i];
		if (!bkr_time_in_future(m->time_ns, h->now_ns)) {
			l->items[k++] = m;
			continue;
		}
		if (!err) {
			struct bkr_health_future *nf = realloc(h->future, (h->nfuture + 1) * sizeof(*nf));
			if (!nf || !(nf[h->nfuture].id = strdup(m->backup_id))) {
				if (nf)
					h->future = nf;
				err = bkr_error_oom();
			} else {
				h->future = nf;
				nf[h->nfuture++].time_ns = m->time_ns;
			}
		}
		bkr_manifest_free(m);
	}
	l->n = k;
	return err;
}

/*
 * The files the newest recovery run left to a person: those a routine's scan
 * after the run still found damaged (all of them without such a scan).
 */
static bool still_damaged(const struct scan_seen *sc, int64_t run_ns, const char *path)
{
	if (!sc->known || sc->time_ns <= run_ns || sc->truncated)
		return true;
	for (size_t i = 0; i < sc->n; i++)
		if (!strcmp(sc->files[i], path))
			return true;
	return false;
}

/* A file left failed because its alert could not be delivered: it needs a person all the more. */
static bool alert_failed(const cJSON *f)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(f, "attempts")) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(a, "result");
		if (cJSON_IsString(r) && !strcmp(r->valuestring, "alert_failed"))
			return true;
	}
	return false;
}

static int read_manual(bkr_health *h, bkr_repo *repo, const bkr_records *rs, const struct scan_seen *sc)
{
	bkr_manifest_list runs = { 0 };
	char *text = NULL;
	cJSON *rep = NULL;
	const cJSON *f;
	size_t len;
	int err;

	if ((err = bkr_repo_list_in(repo, rs, true, &runs, NULL)) < 0)
		goto done;
	drop_after(&runs, h->now_ns);
	if (runs.n == 0)
		goto done;
	if (bkr_recover_read_report(repo, runs.items[runs.n - 1]->backup_id, &text, &len) < 0) {
		err = 0; /* a run without a readable report has nothing to say here */
		goto done;
	}
	rep = cJSON_ParseWithLength(text, len);
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(rep, "files")) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(f, "status");
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "path");
		if (cJSON_IsString(st) && (!strcmp(st->valuestring, "manual") || alert_failed(f)) && cJSON_IsString(p) &&
		    still_damaged(sc, runs.items[runs.n - 1]->time_ns, p->valuestring) && (err = add_str(&h->manual_files, &h->nmanual, p->valuestring)) < 0)
			goto done;
	}
	if (h->nmanual && !(h->manual_run = strdup(runs.items[runs.n - 1]->backup_id)))
		err = bkr_error_oom();
done:
	cJSON_Delete(rep);
	free(text);
	bkr_manifest_list_free(&runs);
	return err;
}

/* ---- the check ---------------------------------------------------------- */

/* The damaged records (bkr_records_foreach_damaged: a checksum that fails,
 * not JSON, too large, not a regular file, one that does not decrypt):
 * every command skips them with a warning, so a pin, tag, hold or verify
 * result in one is not applied; verify calls each an error. */
struct bad_records {
	size_t n;
	char last[PATH_MAX];
};

static void count_bad_record(void *ctx, const char *path, const char *why)
{
	struct bad_records *b = ctx;

	(void)why;
	b->n++;
	snprintf(b->last, sizeof(b->last), "%s", path);
}

void bkr_health_age(char out[32], int64_t s)
{
	if (s >= 86400)
		snprintf(out, 32, "%lldd %lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	else
		snprintf(out, 32, "%lldh %02lldmin", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

/*
 * The damaged backups no reason above names: those a verify found that the
 * last verify (or the last verify --read-data) is not - one of a single
 * backup, or run by hand before a routine's verify of the structure.
 */
static int judge_damaged_backups(bkr_health *h)
{
	const bkr_health_verify *v = &h->verify, *rd = &h->verify_read_data;
	bool v_named = v->known && !v->ok && (v->errors || v->damaged_objects);
	bool rd_named = rd->known && v->known && v->time_ns > rd->time_ns && !rd->ok &&
			(rd->errors || rd->damaged_objects);
	const char *first = NULL;
	size_t n = 0;

	for (size_t i = 0; i < h->ndamaged_backups; i++) {
		const char *id = h->damaged_backups[i];
		if ((v_named && in_strv(v->damaged_backups, v->ndamaged_backups, id)) ||
		    (rd_named && in_strv(rd->damaged_backups, rd->ndamaged_backups, id)))
			continue;
		if (!n++)
			first = id;
	}
	if (!n)
		return 0;
	return add_reason(h, "%zu backup%s damaged (first: %s): a verify found an error in %s and no verify since "
			  "found %s whole (not counted good): run 'bkr repair', then 'bkr verify --read-data'", n,
			  n == 1 ? " is" : "s are", first, n == 1 ? "it" : "them", n == 1 ? "it" : "them");
}

static int judge(bkr_health *h)
{
	int err = 0;
	for (size_t i = 0; i < h->nsources && !err; i++) {
		const bkr_health_source *s = &h->sources[i];
		char age[32];
		if (!s->stale)
			continue;
		if (s->newest_ns == INT64_MIN) {
			err = add_reason(h, "source %s (%s) has no good backup", s->name, bkr_schedule_name(s->schedule));
		} else {
			bkr_health_age(age, s->age_s);
			err = add_reason(h, "source %s: the newest good backup is %s old, more than twice its schedule (%s)",
					 s->name, age, bkr_schedule_name(s->schedule));
		}
	}
	/* what it could not read (an I/O error) is no damage, and no all-clear either */
	if (!err && h->verify.known && h->verify.io_errors)
		err = add_reason(h,
				 "the last verify could not read %llu object%s (an I/O error, not damage: check the "
				 "disk, then run 'bkr verify --read-data' again)",
				 (unsigned long long)h->verify.io_errors, h->verify.io_errors == 1 ? "" : "s");
	if (!err && h->verify.known && !h->verify.ok && !h->verify.errors && !h->verify.damaged_objects) {
		if (!h->verify.io_errors)
			err = add_reason(h, "the last verify did not finish (the repository or a tier could not be "
					 "read: run 'bkr verify')");
	} else if (!err && h->verify.known && !h->verify.ok)
		err = add_reason(h, "the last verify found %llu error%s (%zu damaged object%s)",
				 (unsigned long long)h->verify.errors, h->verify.errors == 1 ? "" : "s",
				 h->verify.damaged_objects, h->verify.damaged_objects == 1 ? "" : "s");
	/* the last verify read no data (the daily routine's, of the structure):
	 * what the last one that did found still stands until one does again */
	if (!err && h->verify_read_data.known && h->verify.known && h->verify.time_ns > h->verify_read_data.time_ns &&
	    !h->verify_read_data.ok && (h->verify_read_data.errors || h->verify_read_data.damaged_objects ||
					h->verify_read_data.io_errors)) {
		const bkr_health_verify *rd = &h->verify_read_data;
		char when[32], what[200];
		bkr_time_format(when, rd->time_ns);
		/* an I/O error alone is not damage: the last verify's advice, not repair's */
		if (rd->errors || rd->damaged_objects)
			snprintf(what, sizeof(what),
				 "found %llu error%s (%zu damaged object%s); the verifies since "
				 "read no data: run 'bkr repair', then 'bkr verify --read-data'",
				 (unsigned long long)rd->errors, rd->errors == 1 ? "" : "s", rd->damaged_objects,
				 rd->damaged_objects == 1 ? "" : "s");
		else
			snprintf(what, sizeof(what),
				 "could not read %llu object%s (an I/O error, not damage: check "
				 "the disk, then run 'bkr verify --read-data' again); the verifies since read no data",
				 (unsigned long long)rd->io_errors, rd->io_errors == 1 ? "" : "s");
		err = add_reason(h, "the last verify --read-data (%s) %s", when, what);
	}
	if (!err)
		err = judge_damaged_backups(h);
	if (!err && h->damage.known) {
		char when[32];
		bkr_time_format(when, h->damage.time_ns);
		err = add_reason(h, "prune found damage in %llu blob%s at %s, after the last verify --read-data: "
				 "run 'bkr repair' ('bkr verify --read-data' names the files that use %s)",
				 (unsigned long long)h->damage.blobs, h->damage.blobs == 1 ? "" : "s", when,
				 h->damage.blobs == 1 ? "it" : "them");
	}
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY && !err; k++)
		if (h->routines[k].known && !h->routines[k].last_ok)
			err = add_reason(h, "the last %s routine failed: %s", bkr_routine_name((bkr_routine_kind)k),
					 h->routines[k].last_problem ? h->routines[k].last_problem : "?");
	size_t held = bkr_holds_files(&h->holds);
	if (!err && held)
		/* the paths are listed apart (held), as need_person's */
		err = add_reason(h, "%zu workspace file%s damaged or missing and not recovered: the backup%s holding "
				 "%s last good cop%s %s kept (recover %s, or 'bkr hold release')", held,
				 held == 1 ? "" : "s", held == 1 ? "" : "s", held == 1 ? "its" : "their",
				 held == 1 ? "y" : "ies", held == 1 ? "is" : "are", held == 1 ? "it" : "them");
	if (!err && h->nmanual)
		/* the files are listed apart (need_person): a name in a reason could forge a line */
		err = add_reason(h, "%zu file%s of recovery run %s need%s a person", h->nmanual,
				 h->nmanual == 1 ? "" : "s", h->manual_run, h->nmanual == 1 ? "s" : "");
	return err;
}

int bkr_health_check(bkr_health **out, const bkr_config *cfg, bkr_repo *repo, int64_t now_ns)
{
	bkr_manifest_list l = { 0 };
	struct scan_seen sc = { 0 };
	bkr_records *rs = NULL;
	struct verdicts vs = { 0 };
	struct bad_records br = { 0 };
	struct storage st;
	bkr_health *h;
	size_t bad = 0;
	int err;

	*out = NULL;
	if (!(h = calloc(1, sizeof(*h))))
		return bkr_error_oom();
	h->now_ns = now_ns;
	st.h = h;
	st.r = repo;
	/* records/ read once (one listing, one get each, on S3 as many requests):
	 * the verify and damage results, the backups' pins, the recovery runs
	 * and the holds */
	if ((err = bkr_repo_foreach_pack_in(repo, count_pack, &st)) < 0 || (err = read_records(h, cfg, &sc, &vs)) < 0 ||
	    (err = bkr_repo_records_read(repo, &rs)) < 0 || (err = read_verify_record(h, rs, &vs)) < 0 ||
	    (err = read_damage_record(h, rs)) < 0 || (err = bkr_repo_list_in(repo, rs, false, &l, &bad)) < 0)
		goto done;
	/* left out of the list (as list leaves it out, exit 4): a backup no
	 * schedule sees, and it stops prune and the daily cleanup */
	if (bad && (err = add_reason(h, "%zu backup manifest%s damaged (last: %s): run 'bkr verify', then 'bkr delete "
				     "--force ID' or put it back from a copy", bad, bad == 1 ? " is" : "s are",
				     bkr_error_message())) < 0)
		goto done;
	/* a damaged record was a warning alone: the metrics and --json said healthy
	 * while a hold, pin or verify result in it was not applied */
	bkr_records_foreach_damaged(rs, false, count_bad_record, &br);
	if (br.n && (err = add_reason(h, "%zu record%s damaged (last: %s): every command skips %s, so a pin, tag, hold or "
				      "verify result in %s is not applied: put %s back from a copy, or remove %s",
				      br.n, br.n == 1 ? " is" : "s are", br.last, br.n == 1 ? "it" : "them",
				      br.n == 1 ? "it" : "them", br.n == 1 ? "it" : "each", br.n == 1 ? "it" : "them")) < 0)
		goto done;
	if ((err = read_manual(h, repo, rs, &sc)) < 0 || (err = bkr_holds_from_records(rs, &h->holds)) < 0)
		goto done;
	/* an --as-of before a hold: the scan that found it had not run yet */
	bkr_holds_drop_after(&h->holds, now_ns);
	/* an --as-of before a backup: it was not made yet (never a negative age) */
	if ((err = drop_future(h, &l)) < 0)
		goto done;
	h->backups = l.n;
	/* not good: the backups the newest verify that checked each found damaged */
	if ((err = judge_backups(h, &vs, &l)) < 0)
		goto done;
	if (!(h->sources = calloc(cfg->nsources ? cfg->nsources : 1, sizeof(*h->sources)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < cfg->nsources; i++) {
		bkr_health_source *s = &h->sources[h->nsources++];
		size_t at = 0;
		s->name = cfg->sources[i].name;
		s->schedule = cfg->sources[i].schedule;
		/* its own backups, as for the schedules: its name and its path (another
		 * workspace's source of the same name in a shared repository is not it) */
		s->newest_ns = bkr_routine_newest(&l, s->name, cfg->sources[i].npaths == 1 ? cfg->sources[i].paths[0] : NULL,
						  NULL, (const char **)h->damaged_backups, h->ndamaged_backups, now_ns,
						  &at);
		if (s->newest_ns != INT64_MIN && !(s->newest_id = strdup(l.items[at]->backup_id))) {
			err = bkr_error_oom();
			goto done;
		}
		/* a backup dated within the clock skew after now is as new as now */
		s->age_s = s->newest_ns == INT64_MIN ? 0 : (int64_t)(bkr_time_since_ns(s->newest_ns, now_ns) / NS);
		s->stale = bkr_schedule_stale(s->schedule, s->newest_ns, now_ns);
	}
	err = judge(h);
done:
	free_verdicts(&vs);
	bkr_records_free(rs);
	free_strv(sc.files, sc.n);
	bkr_manifest_list_free(&l);
	if (err < 0)
		bkr_health_free(h);
	else
		*out = h;
	return err;
}

int bkr_health_check_unopened(bkr_health **out, const bkr_config *cfg, const char *why, int64_t now_ns)
{
	struct scan_seen sc = { 0 };
	bkr_health *h;
	int err;

	*out = NULL;
	if (!(h = calloc(1, sizeof(*h))))
		return bkr_error_oom();
	h->now_ns = now_ns;
	if ((err = add_reason(h, "the repository cannot be opened: %s", why)) < 0 ||
	    (err = read_records(h, cfg, &sc, NULL)) < 0)
		goto done;
	if (!(h->sources = calloc(cfg->nsources ? cfg->nsources : 1, sizeof(*h->sources)))) {
		err = bkr_error_oom();
		goto done;
	}
	/* their backups cannot be seen: unknown, neither fresh nor stale */
	for (size_t i = 0; i < cfg->nsources; i++) {
		bkr_health_source *s = &h->sources[h->nsources++];
		s->name = cfg->sources[i].name;
		s->schedule = cfg->sources[i].schedule;
		s->newest_ns = INT64_MIN;
	}
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY && !err; k++)
		if (h->routines[k].known && !h->routines[k].last_ok)
			err = add_reason(h, "the last %s routine failed: %s", bkr_routine_name((bkr_routine_kind)k),
					 h->routines[k].last_problem ? h->routines[k].last_problem : "?");
done:
	free_strv(sc.files, sc.n);
	if (err < 0)
		bkr_health_free(h);
	else
		*out = h;
	return err;
}

void bkr_health_free(bkr_health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nsources; i++)
		free(h->sources[i].newest_id);
	free(h->sources);
	for (size_t i = 0; i < h->nfuture; i++)
		free(h->future[i].id);
	free(h->future);
	free_strv(h->verify.damaged_backups, h->verify.ndamaged_backups);
	free_strv(h->verify_read_data.damaged_backups, h->verify_read_data.ndamaged_backups);
	free_strv(h->verify_read_data_backup.damaged_backups, h->verify_read_data_backup.ndamaged_backups);
	free(h->verify.backup_id);
	free(h->verify_read_data.backup_id);
	free(h->verify_read_data_backup.backup_id);
	free_strv(h->damaged_backups, h->ndamaged_backups);
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++)
		free(h->routines[k].last_problem);
	free(h->manual_run);
	free_strv(h->manual_files, h->nmanual);
	bkr_holds_free(&h->holds);
	free_strv(h->reasons, h->nreasons);
	free(h);
}

/* ---- Prometheus --------------------------------------------------------- */

static void metric_head(FILE *f, const char *name, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* A label value with \, " and newline escaped. */
static void label(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s=\"", key);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

static void sample(FILE *f, const char *name, const char *lkey, const char *lval, double v)
{
	fputs(name, f);
	if (lkey) {
		fputc('{', f);
		label(f, lkey, lval);
		fputc('}', f);
	}
	fprintf(f, " %.17g\n", v);
}

static double secs(int64_t ns)
{
	return (double)(ns / NS) + (double)(ns % NS) / 1e9;
}

/* The age of a source's newest good backup (-1: none; 0 within the clock skew after now). */
static double age_secs(const bkr_health *h, const bkr_health_source *s)
{
	if (s->newest_ns == INT64_MIN)
		return -1;
	uint64_t d = bkr_time_since_ns(s->newest_ns, h->now_ns);
	return (double)(d / NS) + (double)(d % NS) / 1e9;
}

char *bkr_health_prometheus(const bkr_health *h)
{
	static const char *const tiers[] = { "hot", "warm", "cold" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	metric_head(f, "bkr_healthy", "1 when bkr health finds nothing wrong, else 0");
	sample(f, "bkr_healthy", NULL, NULL, h->nreasons == 0);
	metric_head(f, "bkr_health_problems", "Number of reasons bkr health is not healthy");
	sample(f, "bkr_health_problems", NULL, NULL, (double)h->nreasons);
	metric_head(f, "bkr_backups", "Backups in the repository");
	sample(f, "bkr_backups", NULL, NULL, (double)h->backups);
	metric_head(f, "bkr_source_schedule_seconds", "Interval of the source's schedule (0: manual)");
	for (size_t i = 0; i < h->nsources; i++)
		sample(f, "bkr_source_schedule_seconds", "source", h->sources[i].name,
		       (double)bkr_schedule_interval_s(h->sources[i].schedule));
	metric_head(f, "bkr_source_last_backup_timestamp_seconds", "Time of the newest good backup of the source (0: none)");
	for (size_t i = 0; i < h->nsources; i++)
		sample(f, "bkr_source_last_backup_timestamp_seconds", "source", h->sources[i].name,
		       h->sources[i].newest_ns == INT64_MIN ? 0 : secs(h->sources[i].newest_ns));
	metric_head(f, "bkr_source_last_backup_age_seconds", "Age of the newest good backup of the source (-1: none)");
	for (size_t i = 0; i < h->nsources; i++)
		sample(f, "bkr_source_last_backup_age_seconds", "source", h->sources[i].name, age_secs(h, &h->sources[i]));
	metric_head(f, "bkr_source_stale", "1 when the source has no backup or it is older than twice its schedule");
	for (size_t i = 0; i < h->nsources; i++)
		sample(f, "bkr_source_stale", "source", h->sources[i].name, h->sources[i].stale);
	metric_head(f, "bkr_verify_last_timestamp_seconds", "Time of the last recorded verify (0: none)");
	sample(f, "bkr_verify_last_timestamp_seconds", NULL, NULL, h->verify.known ? secs(h->verify.time_ns) : 0);
	metric_head(f, "bkr_verify_last_ok", "1 when the last verify found no damage");
	sample(f, "bkr_verify_last_ok", NULL, NULL, h->verify.known && h->verify.ok);
	metric_head(f, "bkr_verify_last_read_data", "1 when the last verify read every byte of the repository");
	sample(f, "bkr_verify_last_read_data", NULL, NULL, h->verify.known && h->verify.read_data && !h->verify.backup_id);
	metric_head(f, "bkr_verify_damaged_objects", "Damaged or missing objects the last verify found");
	sample(f, "bkr_verify_damaged_objects", NULL, NULL, (double)h->verify.damaged_objects);
	metric_head(f, "bkr_verify_read_data_last_timestamp_seconds",
		    "Time of the last recorded verify --read-data of the whole repository (0: none)");
	sample(f, "bkr_verify_read_data_last_timestamp_seconds", NULL, NULL,
	       h->verify_read_data.known ? secs(h->verify_read_data.time_ns) : 0);
	metric_head(f, "bkr_verify_read_data_last_ok", "1 when the last verify --read-data found no damage");
	sample(f, "bkr_verify_read_data_last_ok", NULL, NULL, h->verify_read_data.known && h->verify_read_data.ok);
	metric_head(f, "bkr_verify_read_data_damaged_objects", "Damaged or missing objects the last verify --read-data found");
	sample(f, "bkr_verify_read_data_damaged_objects", NULL, NULL, (double)h->verify_read_data.damaged_objects);
	metric_head(f, "bkr_damaged_backups",
		    "Backups the newest verify that checked each found damaged (not counted as good backups)");
	sample(f, "bkr_damaged_backups", NULL, NULL, (double)h->ndamaged_backups);
	metric_head(f, "bkr_tier_bytes", "Bytes of packs in the storage tier");
	for (int t = 0; t < BKR_TIER_COUNT; t++)
		sample(f, "bkr_tier_bytes", "tier", tiers[t], (double)h->tier_bytes[t]);
	metric_head(f, "bkr_tier_packs", "Packs in the storage tier");
	for (int t = 0; t < BKR_TIER_COUNT; t++)
		sample(f, "bkr_tier_packs", "tier", tiers[t], (double)h->tier_packs[t]);
	metric_head(f, "bkr_repository_bytes", "Bytes of packs in every tier");
	sample(f, "bkr_repository_bytes", NULL, NULL, (double)h->repo_bytes);
	if (h->growth_known) {
		metric_head(f, "bkr_repository_growth_bytes_per_day", "Growth of the repository over the last 7 days");
		sample(f, "bkr_repository_growth_bytes_per_day", NULL, NULL, h->growth_bytes_per_day);
	}
	metric_head(f, "bkr_routine_last_run_timestamp_seconds", "Start of the routine's last run (0: never)");
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++)
		sample(f, "bkr_routine_last_run_timestamp_seconds", "routine", bkr_routine_name((bkr_routine_kind)k),
		       h->routines[k].known ? secs(h->routines[k].last_ns) : 0);
	metric_head(f, "bkr_routine_last_ok", "1 when the routine's last run succeeded (or it never ran)");
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++)
		sample(f, "bkr_routine_last_ok", "routine", bkr_routine_name((bkr_routine_kind)k),
		       !h->routines[k].known || h->routines[k].last_ok);
	metric_head(f, "bkr_routine_recent_failures", "Failed runs of the routine in the last 7 days");
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++)
		sample(f, "bkr_routine_recent_failures", "routine", bkr_routine_name((bkr_routine_kind)k),
		       (double)h->routines[k].failures);
	metric_head(f, "bkr_recovery_files_need_person", "Files the newest recovery run left to a person");
	sample(f, "bkr_recovery_files_need_person", NULL, NULL, (double)h->nmanual);
	metric_head(f, "bkr_held_files", "Damaged or missing workspace files not recovered, whose last good copies retention keeps");
	sample(f, "bkr_held_files", NULL, NULL, (double)bkr_holds_files(&h->holds));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int bkr_health_write_prometheus(const bkr_health *h, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	char *text;
	int err;

	if (!slash) {
		strcpy(dir, ".");
		slash = path - 1;
	} else {
		if ((size_t)(slash - path) >= sizeof(dir) || !slash[1])
			return bkr_error_set(BKR_EINVAL, "metrics file %s: expected a file path", path);
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (!dir[0])
			strcpy(dir, "/");
	}
	/* its directory first: a missing one would otherwise be named only by
	 * the temporary file in it, and read as "not found" (exit 3), when it
	 * is an output that cannot be written (exit 7, as for a restore target) */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return bkr_error_set(errno == ENOSPC ? BKR_ENOSPC : BKR_EIO, "metrics file %s: cannot be written: %s: %s",
				     path, dir, strerror(errno));
	close(dfd);
	if (!(text = bkr_health_prometheus(h)))
		return bkr_error_oom();
	err = bkr_io_publish(dir, slash + 1, text, strlen(text), BKR_IO_REPLACE);
	free(text);
	if (err < 0 && err != BKR_ENOMEM) /* the message as an argument is kept whole (bkr/error.h) */
		err = bkr_error_set(err == BKR_ENOSPC ? BKR_ENOSPC : BKR_EIO, "metrics file %s: cannot be written: %s",
				    path, bkr_error_message());
	return err;
}
