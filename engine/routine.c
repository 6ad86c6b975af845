/** @file
 * Routines (bkr/routine.h): the schedule rule (when a source is due or
 * stale), the newest backup of a source, and the routine kinds.
 */
#include <stdint.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/routine.h"

#define HOUR_S 3600LL

int64_t bkr_schedule_interval_s(bkr_schedule s)
{
	switch (s) {
	case BKR_SCHEDULE_HOURLY: return HOUR_S;
	case BKR_SCHEDULE_DAILY: return 24 * HOUR_S;
	case BKR_SCHEDULE_WEEKLY: return 7 * 24 * HOUR_S;
	case BKR_SCHEDULE_MANUAL: break;
	}
	return 0;
}

bool bkr_schedule_due(bkr_schedule s, int64_t newest_ns, int64_t now_ns)
{
	int64_t iv = bkr_schedule_interval_s(s);

	if (iv == 0)
		return false;
	if (newest_ns == INT64_MIN)
		return true;
	/* 90% of the interval, in ns: a timer firing early still finds it due */
	return now_ns - newest_ns >= iv * 900000000LL;
}

bool bkr_schedule_stale(bkr_schedule s, int64_t newest_ns, int64_t now_ns)
{
	int64_t iv = bkr_schedule_interval_s(s);

	if (iv == 0)
		return false;
	return newest_ns == INT64_MIN || now_ns - newest_ns > 2 * iv * 1000000000LL;
}

int64_t bkr_routine_newest(const bkr_manifest_list *l, const char *name, const char *const *skip,
			   size_t nskip, size_t *at)
{
	int64_t best = INT64_MIN;

	for (size_t i = 0; i < l->n; i++) {
		const bkr_manifest *m = l->items[i];
		bool has = false, skipped = false;
		if (m->type == BKR_BACKUP_RECOVERY || m->time_ns <= best)
			continue;
		for (size_t k = 0; k < m->nsources && !has; k++)
			has = !strcmp(m->sources[k].source, name);
		for (size_t k = 0; k < nskip && !skipped; k++)
			skipped = !strcmp(skip[k], m->backup_id);
		if (has && !skipped) {
			best = m->time_ns;
			if (at)
				*at = i;
		}
	}
	return best;
}

static const char *const routine_names[] = { "hourly", "daily", "weekly", "emergency" };

const char *bkr_routine_name(bkr_routine_kind k)
{
	return (unsigned)k <= BKR_ROUTINE_EMERGENCY ? routine_names[k] : "unknown";
}

int bkr_routine_parse(const char *s, bkr_routine_kind *out)
{
	for (unsigned i = 0; i <= BKR_ROUTINE_EMERGENCY; i++) {
		if (s && !strcmp(s, routine_names[i])) {
			*out = (bkr_routine_kind)i;
			return 0;
		}
	}
	return bkr_error_set(BKR_EINVAL, "unknown routine '%s' (expected hourly, daily, weekly or emergency)",
			     s ? s : "(null)");
}

bool bkr_routine_covers(bkr_routine_kind k, bkr_schedule s)
{
	switch (k) {
	case BKR_ROUTINE_HOURLY: return s == BKR_SCHEDULE_HOURLY;
	case BKR_ROUTINE_DAILY: return s == BKR_SCHEDULE_HOURLY || s == BKR_SCHEDULE_DAILY;
	case BKR_ROUTINE_WEEKLY:
	case BKR_ROUTINE_EMERGENCY: return s != BKR_SCHEDULE_MANUAL;
	}
	return false;
}

void bkr_routine_select(const bkr_config *cfg, const bkr_manifest_list *l, int64_t now_ns,
			bkr_routine_kind k, bool only_due, const char **names, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < cfg->nsources; i++) {
		const bkr_config_source *s = &cfg->sources[i];
		bool covered = k == BKR_ROUTINE_ANY ? s->schedule != BKR_SCHEDULE_MANUAL
						    : bkr_routine_covers(k, s->schedule);
		if (!covered)
			continue;
		if (only_due && !bkr_schedule_due(s->schedule, bkr_routine_newest(l, s->name, NULL, 0, NULL), now_ns))
			continue;
		names[(*n)++] = s->name;
	}
}
