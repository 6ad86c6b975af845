/** @file
 * Views of the mount's top level (views.h): backup-id parsing, by-date
 * names in a chosen time zone, the choice of "latest", and bkrfs_snap.
 */
#include "views.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/error.h"

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

int bkrfs_parse_backup_id(const char *id, bkrfs_id_info *out)
{
	struct tm tm;
	const char *p = id, *type, *us;
	size_t tlen, slen;

	memset(out, 0, sizeof(*out));
	if (strncmp(p, "backup_", 7) != 0)
		goto bad;
	p += 7;
	if (!digits(p, 8) || p[8] != '_' || !digits(p + 9, 6) || p[15] != '_')
		goto bad;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0') - 1900;
	tm.tm_mon = (p[4] - '0') * 10 + (p[5] - '0') - 1;
	tm.tm_mday = (p[6] - '0') * 10 + (p[7] - '0');
	tm.tm_hour = (p[9] - '0') * 10 + (p[10] - '0');
	tm.tm_min = (p[11] - '0') * 10 + (p[12] - '0');
	tm.tm_sec = (p[13] - '0') * 10 + (p[14] - '0');
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		goto bad;
	type = p + 16;
	if (!(us = strchr(type, '_')))
		goto bad;
	tlen = (size_t)(us - type);
	slen = strlen(us + 1);
	if (tlen == 0 || tlen >= sizeof(out->type) || slen == 0 || slen >= sizeof(out->suffix))
		goto bad;
	for (size_t i = 0; i < tlen; i++)
		if (!islower((unsigned char)type[i]))
			goto bad;
	for (size_t i = 0; i < slen; i++)
		if (!isalnum((unsigned char)us[1 + i]))
			goto bad;
	memcpy(out->type, type, tlen);
	memcpy(out->suffix, us + 1, slen);
	out->time = (int64_t)timegm(&tm);
	return 0;
bad:
	return bkr_error_set(BKR_EINVAL, "'%s' is not a backup id", id);
}

void bkrfs_local_time(int64_t utc, const char *tz, struct tm *out)
{
	time_t t = (time_t)utc;

	if (!tz || !*tz || strcmp(tz, "UTC") == 0 || strcmp(tz, "Z") == 0)
		gmtime_r(&t, out);
	else
		localtime_r(&t, out);
}

bool bkrfs_tz_valid(const char *tz)
{
	char path[512];
	const char *name = tz;

	if (!tz || !*tz)
		return false;
	if (strcmp(tz, "UTC") == 0)
		return true;
	if (*name == ':')
		name++;
	if (!*name || strstr(name, ".."))
		return false;
	if (*name == '/')
		return access(name, R_OK) == 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	if (access(path, R_OK) == 0)
		return true;
	/* a POSIX rule such as "EST5EDT" or "UTC-3": letters then an offset */
	if (name != tz)
		return false;
	{
		size_t i = 0;
		while (isalpha((unsigned char)name[i]))
			i++;
		if (i < 3)
			return false;
		if (name[i] == '+' || name[i] == '-')
			i++;
		return isdigit((unsigned char)name[i]);
	}
}

void bkrfs_view_free(bkrfs_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->b[i].id);
		free(v->b[i].date_name);
	}
	free(v->b);
	free(v->by_time);
	free(v->days);
	free(v->latest_target);
	free(v);
}

static int cmp_backup_id(const void *a, const void *b)
{
	return strcmp(((const bkrfs_view_backup *)a)->id, ((const bkrfs_view_backup *)b)->id);
}

/* qsort_r: @p base is the view's backups, which the indexes point into */
static int cmp_by_time(const void *a, const void *b, void *base)
{
	const bkrfs_view_backup *bs = base, *x = &bs[*(const size_t *)a], *y = &bs[*(const size_t *)b];

	if (x->info.time != y->info.time)
		return x->info.time < y->info.time ? -1 : 1;
	return strcmp(x->id, y->id);
}

int bkrfs_view_date_target(char *out, size_t cap, const char *id)
{
	int n = snprintf(out, cap, "../../by-id/%s", id);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "backup id too long: %s", id);
	return 0;
}

static int name_dates(bkrfs_view *v, const char *tz)
{
	for (size_t k = 0; k < v->ntime; k++) {
		bkrfs_view_backup *x = &v->b[v->by_time[k]];
		struct tm tm;
		char buf[64];

		bkrfs_local_time(x->info.time, tz, &tm);
		snprintf(x->day, sizeof(x->day), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday);
		snprintf(buf, sizeof(buf), "%02d%02d%02d-%s", tm.tm_hour, tm.tm_min, tm.tm_sec,
			 x->info.type);
		if (!(x->date_name = strdup(buf)))
			return bkr_error_oom();
	}
	return 0;
}

/* two backups of one day with the same name (same second and type, or a DST
 * repeat) both get their id suffix appended */
static int dedup_day(bkrfs_view *v, const bkrfs_view_day *d)
{
	size_t end = d->first + d->count;
	bool *clash = calloc(d->count, sizeof(bool));

	if (!clash)
		return bkr_error_oom();
	for (size_t i = d->first; i < end; i++)
		for (size_t j = i + 1; j < end; j++)
			if (strcmp(v->b[v->by_time[i]].date_name, v->b[v->by_time[j]].date_name) == 0)
				clash[i - d->first] = clash[j - d->first] = true;
	for (size_t i = d->first; i < end; i++) {
		bkrfs_view_backup *x = &v->b[v->by_time[i]];
		char *nn;
		size_t len;

		if (!clash[i - d->first])
			continue;
		len = strlen(x->date_name) + strlen(x->info.suffix) + 2;
		if (!(nn = malloc(len))) {
			free(clash);
			return bkr_error_oom();
		}
		snprintf(nn, len, "%s-%s", x->date_name, x->info.suffix);
		free(x->date_name);
		x->date_name = nn;
	}
	free(clash);
	return 0;
}

static int group_days(bkrfs_view *v)
{
	if (v->ntime && !(v->days = calloc(v->ntime, sizeof(*v->days))))
		return bkr_error_oom();
	for (size_t k = 0; k < v->ntime; k++) {
		const bkrfs_view_backup *x = &v->b[v->by_time[k]];
		if (v->ndays && strcmp(v->days[v->ndays - 1].day, x->day) == 0) {
			v->days[v->ndays - 1].count++;
			continue;
		}
		memcpy(v->days[v->ndays].day, x->day, sizeof(x->day));
		v->days[v->ndays].first = k;
		v->days[v->ndays].count = 1;
		v->ndays++;
	}
	return 0;
}

static void choose_latest(bkrfs_view *v, int64_t now_ns, bkrfs_time_fn precise, void *ctx)
{
	/* made by now: not more than the clock skew after it (in the ids' seconds) */
	int64_t last_s = now_ns / BKR_NS_PER_S + BKR_CLOCK_SKEW_NS / BKR_NS_PER_S;
	size_t best, k, made = v->ntime;
	int64_t best_ns = -1;

	if (!v->ntime)
		return;
	while (made > 0 && now_ns != INT64_MAX && v->b[v->by_time[made - 1]].info.time > last_s)
		made--;
	if (made == 0) /* every one dated in the future: the newest of them */
		made = v->ntime;
	v->passed = v->ntime - made;
	best = v->by_time[made - 1];
	if (precise) {
		/* the backups of the newest second, compared by their manifest times */
		for (k = made; k > 0 && v->b[v->by_time[k - 1]].info.time == v->b[best].info.time; k--)
			;
		if (made - k > 1) {
			for (size_t j = k; j < made; j++) {
				int64_t ns = precise(ctx, v->b[v->by_time[j]].id);
				if (ns >= best_ns) {
					best_ns = ns;
					best = v->by_time[j];
				}
			}
		}
	}
	v->latest = v->b[best].id;
}

int bkrfs_view_build(bkrfs_view **out, const char *const *names, size_t n, const char *tz, int64_t now_ns,
		     bkrfs_time_fn precise, void *ctx)
{
	bkrfs_view *v;
	size_t m = 0;
	int err;

	*out = NULL;
	if (!(v = calloc(1, sizeof(*v))))
		return bkr_error_oom();
	if (n && (!(v->b = calloc(n, sizeof(*v->b))) || !(v->by_time = calloc(n, sizeof(size_t))))) {
		err = bkr_error_oom();
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		/* a name that is no backup id (backups/x.json, notes.json) names no
		 * backup: it is not shown (bkr verify names it) */
		if (!names[i] || bkrfs_parse_backup_id(names[i], &v->b[m].info) < 0)
			continue;
		if (!(v->b[m].id = strdup(names[i]))) {
			v->n = m;
			err = bkr_error_oom();
			goto fail;
		}
		m++;
	}
	bkr_error_clear();
	v->n = m;
	if (m)
		qsort(v->b, m, sizeof(*v->b), cmp_backup_id);
	/* drop duplicates */
	if (m > 1) {
		size_t w = 1;
		for (size_t i = 1; i < m; i++) {
			if (strcmp(v->b[i].id, v->b[w - 1].id) == 0) {
				free(v->b[i].id);
				continue;
			}
			v->b[w++] = v->b[i];
		}
		v->n = w;
	}
	for (size_t i = 0; i < v->n; i++)
		v->by_time[v->ntime++] = i;
	if (v->ntime > 1) {
		qsort_r(v->by_time, v->ntime, sizeof(size_t), cmp_by_time, v->b);
	}
	if ((err = name_dates(v, tz)) < 0 || (err = group_days(v)) < 0)
		goto fail;
	for (size_t d = 0; d < v->ndays; d++)
		if ((err = dedup_day(v, &v->days[d])) < 0)
			goto fail;
	choose_latest(v, now_ns, precise, ctx);
	if (v->latest) {
		size_t len = strlen(v->latest) + 7;
		if (!(v->latest_target = malloc(len))) {
			err = bkr_error_oom();
			goto fail;
		}
		snprintf(v->latest_target, len, "by-id/%s", v->latest);
	}
	*out = v;
	return 0;
fail:
	bkrfs_view_free(v);
	return err;
}

const bkrfs_view_backup *bkrfs_view_find(const bkrfs_view *v, const char *id)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->b[mid].id, id);
		if (c == 0)
			return &v->b[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const bkrfs_view_day *bkrfs_view_find_day(const bkrfs_view *v, const char *day)
{
	size_t lo = 0, hi = v->ndays;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->days[mid].day, day);
		if (c == 0)
			return &v->days[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const bkrfs_view_backup *bkrfs_view_find_dated(const bkrfs_view *v, const bkrfs_view_day *day,
					       const char *name)
{
	for (size_t k = day->first; k < day->first + day->count; k++) {
		const bkrfs_view_backup *x = &v->b[v->by_time[k]];
		if (strcmp(x->date_name, name) == 0)
			return x;
	}
	return NULL;
}

bool bkrfs_view_same(const bkrfs_view *a, const bkrfs_view *b)
{
	if (!a || !b)
		return a == b;
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->b[i].id, b->b[i].id) != 0)
			return false;
	if ((a->latest == NULL) != (b->latest == NULL))
		return false;
	return !a->latest || strcmp(a->latest, b->latest) == 0;
}

bkrfs_snap *bkrfs_snap_new(const char *id, bool run, int64_t time)
{
	bkrfs_snap *s = calloc(1, sizeof(*s));

	if (!s || !(s->id = strdup(id))) {
		free(s);
		return NULL;
	}
	s->run = run;
	s->time = time;
	s->refs = 1;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

bkrfs_snap *bkrfs_snap_ref(bkrfs_snap *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void bkrfs_snap_unref(bkrfs_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	bkr_manifest_free(s->m);
	pthread_mutex_destroy(&s->lock);
	free(s->id);
	free(s);
}
