/** @file
 * Retention (retention.h): restic `forget`'s rules over a list of backups.
 * No I/O and no clock: the caller gives the as-of time.
 */
#include "bkr/retention.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bkr/clock.h"
#include "bkr/error.h"

/* The bucket rules, in the order they are reported. */
enum { R_LAST, R_HOURLY, R_DAILY, R_WEEKLY, R_MONTHLY, R_YEARLY, NRULES };

static const unsigned rule_bit[NRULES] = { BKR_RETAIN_LAST, BKR_RETAIN_HOURLY, BKR_RETAIN_DAILY,
					   BKR_RETAIN_WEEKLY, BKR_RETAIN_MONTHLY, BKR_RETAIN_YEARLY };

static int rule_count(const bkr_retention_policy *p, int rule)
{
	switch (rule) {
	case R_LAST: return p->keep_last;
	case R_HOURLY: return p->keep_hourly;
	case R_DAILY: return p->keep_daily;
	case R_WEEKLY: return p->keep_weekly;
	case R_MONTHLY: return p->keep_monthly;
	default: return p->keep_yearly;
	}
}

/* The UTC calendar period of @p ns for @p rule, as one comparable number. */
static int64_t bucket(int64_t ns, int rule, int64_t seq)
{
	struct timespec ts = bkr_clock_timespec(ns);
	time_t sec = ts.tv_sec;
	int64_t day;
	struct tm tm;

	if (rule == R_LAST)
		return seq; /* every backup is its own bucket */
	gmtime_r(&sec, &tm);
	day = (int64_t)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	switch (rule) {
	case R_HOURLY:
		return day * 100 + tm.tm_hour;
	case R_DAILY:
		return day;
	case R_WEEKLY: {
		/* ISO 8601 week-based year and week (Monday first) */
		char iso[16];
		if (strftime(iso, sizeof(iso), "%G%V", &tm) == 0)
			return day;
		return strtoll(iso, NULL, 10);
	}
	case R_MONTHLY:
		return (int64_t)(tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
	default:
		return tm.tm_year + 1900;
	}
}

static bool has_source(const bkr_retention_item *it, const char *name)
{
	for (size_t i = 0; i < it->nsources; i++)
		if (!strcmp(it->sources[i], name))
			return true;
	return false;
}

static bool same_str(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* Same host, type and source set: one group of the policy's count. */
static bool same_group(const bkr_retention_item *a, const bkr_retention_item *b)
{
	if (a->type != b->type || !same_str(a->host, b->host) || a->nsources != b->nsources)
		return false;
	for (size_t i = 0; i < a->nsources; i++)
		if (!has_source(b, a->sources[i]))
			return false;
	return true;
}

struct order {
	int64_t time_ns;
	const char *id;
	size_t i;
};

/* newest first: time, then id, descending (ids are unique: a total order) */
static int cmp_newest(const void *pa, const void *pb)
{
	const struct order *a = pa, *b = pb;
	int c;
	if (a->time_ns != b->time_ns)
		return a->time_ns > b->time_ns ? -1 : 1;
	c = strcmp(a->id, b->id);
	return c > 0 ? -1 : c < 0;
}

static int sort_newest_first(const bkr_retention_item *items, size_t n, size_t **out)
{
	struct order *o = malloc((n ? n : 1) * sizeof(*o));
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	*out = NULL;
	if (!o || !order) {
		free(o);
		free(order);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < n; i++)
		o[i] = (struct order){ items[i].time_ns, items[i].id, i };
	qsort(o, n, sizeof(*o), cmp_newest);
	for (size_t i = 0; i < n; i++)
		order[i] = o[i].i;
	free(o);
	*out = order;
	return 0;
}

/* Whether @p t is less than @p within_s seconds before @p as_of (or after it).
 * Two times a manifest may hold (1677 to 2262) lie further apart than an
 * int64 counts: the distance is bkr_time_since_ns's, unsigned. */
static bool is_within(int64_t t, int64_t as_of, int64_t within_s)
{
	if (within_s <= 0)
		return false;
	if (within_s >= INT64_MAX / BKR_NS_PER_S)
		return true;
	return bkr_time_since_ns(t, as_of) < (uint64_t)within_s * BKR_NS_PER_S;
}

int bkr_retention_apply(bkr_retention_decision *out, const bkr_retention_item *items, size_t n,
			const bkr_retention_policy *const policy[BKR_BACKUP_RECOVERY + 1], int64_t as_of_ns)
{
	size_t *order = NULL, *group = NULL, *rep = NULL, ngroups = 0;
	int err;

	if ((err = sort_newest_first(items, n, &order)) < 0)
		return err;
	if (!(group = malloc((n ? n : 1) * sizeof(*group))) || !(rep = malloc((n ? n : 1) * sizeof(*rep)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (bkr_retention_decision){ false, 0 };

	/* dated in the future (the clock was ahead): kept, and counted by no rule
	 * below, so it can neither be "newest" nor fill a count a real backup needs */
	for (size_t i = 0; i < n; i++)
		if (bkr_time_in_future(items[i].time_ns, as_of_ns))
			out[i].rules = BKR_RETAIN_FUTURE;
	/* pins and keep_within: each backup on its own */
	for (size_t i = 0; i < n; i++) {
		const bkr_retention_item *it = &items[i];
		const bkr_retention_policy *p = policy[it->type];
		if (it->pinned && it->pinned_until_ns > as_of_ns)
			out[i].rules |= BKR_RETAIN_PINNED;
		if (it->held)
			out[i].rules |= BKR_RETAIN_HELD;
		if (out[i].rules & BKR_RETAIN_FUTURE)
			continue;
		if (is_within(it->time_ns, as_of_ns, p->keep_within_s))
			out[i].rules |= BKR_RETAIN_WITHIN;
	}
	/* the newest backup of each host and source: the first one, newest first,
	 * holding a (host, source) no newer backup held */
	for (size_t k = 0; k < n; k++) {
		const bkr_retention_item *it = &items[order[k]];
		if (out[order[k]].rules & BKR_RETAIN_FUTURE)
			continue;
		for (size_t s = 0; s < it->nsources; s++) {
			bool seen = false;
			for (size_t j = 0; j < k && !seen; j++) {
				const bkr_retention_item *o = &items[order[j]];
				if (out[order[j]].rules & BKR_RETAIN_FUTURE)
					continue;
				seen = same_str(o->host, it->host) && has_source(o, it->sources[s]);
			}
			if (!seen)
				out[order[k]].rules |= BKR_RETAIN_NEWEST;
		}
	}
	/* groups, numbered in order of their newest backup (rep[g] is that backup) */
	for (size_t k = 0; k < n; k++) {
		size_t g;
		if (out[order[k]].rules & BKR_RETAIN_FUTURE) {
			group[order[k]] = SIZE_MAX; /* in no group */
			continue;
		}
		for (g = 0; g < ngroups; g++)
			if (same_group(&items[rep[g]], &items[order[k]]))
				break;
		if (g == ngroups)
			rep[ngroups++] = order[k];
		group[order[k]] = g;
	}
	/* the bucket rules, group by group, newest first */
	for (size_t g = 0; g < ngroups; g++) {
		int left[NRULES];
		int64_t last[NRULES] = { 0 };
		bool started[NRULES] = { false };
		const bkr_retention_policy *p = NULL;
		int64_t seq = 0;

		for (size_t k = 0; k < n; k++) {
			size_t i = order[k];
			if (group[i] != g)
				continue;
			if (!p) {
				p = policy[items[i].type];
				for (int r = 0; r < NRULES; r++)
					left[r] = rule_count(p, r);
			}
			seq++;
			for (int r = 0; r < NRULES; r++) {
				int64_t b;
				if (left[r] <= 0)
					continue;
				b = bucket(items[i].time_ns, r, seq);
				if (started[r] && b == last[r])
					continue; /* a newer backup already stands for this period */
				started[r] = true;
				last[r] = b;
				left[r]--;
				out[i].rules |= rule_bit[r];
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		out[i].keep = out[i].rules != 0;
	err = 0;
done:
	free(order);
	free(group);
	free(rep);
	return err;
}

const char *bkr_retention_rules_str(unsigned rules, char *buf, size_t cap)
{
	static const char *const names[] = { "pinned", "newest", "within", "last", "hourly",
					     "daily", "weekly", "monthly", "yearly", "future", "held" };
	size_t used = 0;

	if (cap == 0)
		return buf;
	buf[0] = '\0';
	for (unsigned b = 0; b < sizeof(names) / sizeof(names[0]); b++) {
		if (!(rules & (1u << b)))
			continue;
		size_t l = strlen(names[b]);
		if (used + l + (used ? 1 : 0) + 1 > cap)
			break;
		if (used)
			buf[used++] = ',';
		memcpy(buf + used, names[b], l + 1);
		used += l;
	}
	if (!used)
		snprintf(buf, cap, "-");
	return buf;
}

/* When the pin of @p m ends: INT64_MAX for forever or an unreadable date. */
static int64_t pin_end(const bkr_manifest *m)
{
	int64_t until = INT64_MAX;
	if (m->pinned_until && *m->pinned_until) {
		if (bkr_time_parse(m->pinned_until, &until) < 0)
			until = INT64_MAX;
		bkr_error_clear();
	}
	return until;
}

bool bkr_retention_pinned(const bkr_manifest *m, int64_t at_ns)
{
	return m->pinned_until && pin_end(m) > at_ns;
}

void bkr_retention_item_from(bkr_retention_item *item, const bkr_manifest *m, const char **names)
{
	for (size_t i = 0; i < m->nsources; i++)
		names[i] = m->sources[i].source;
	*item = (bkr_retention_item){
		.id = m->backup_id,
		.time_ns = m->time_ns,
		.type = m->type,
		.host = m->hostname,
		.sources = names,
		.nsources = m->nsources,
		.pinned = m->pinned_until != NULL,
		.pinned_until_ns = pin_end(m),
	};
}
