/** @file
 * Routines (bkr/routine.h): the schedule rule (when a source is due or
 * stale), the newest backup of a source, the routine kinds, the routine
 * lock, the routine records and the alert hook (run as the recovery
 * engine runs its commands: recover/proc.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/backup.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/routine.h"
#include "recover/recover_i.h"

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
	return newest_ns <= now_ns && bkr_time_since_ns(newest_ns, now_ns) >= (uint64_t)iv * 900000000ULL;
}

bool bkr_schedule_stale(bkr_schedule s, int64_t newest_ns, int64_t now_ns)
{
	int64_t iv = bkr_schedule_interval_s(s);

	if (iv == 0)
		return false;
	return newest_ns == INT64_MIN || bkr_time_since_ns(newest_ns, now_ns) > (uint64_t)iv * 2000000000ULL;
}

int64_t bkr_routine_newest(const bkr_manifest_list *l, const char *name, const char *path, const char *hostname,
			   const char *const *skip, size_t nskip, int64_t now_ns, size_t *at)
{
	int64_t best = INT64_MIN;

	for (size_t i = 0; i < l->n; i++) {
		const bkr_manifest *m = l->items[i];
		bool has = false, skipped = false;
		/* dated in the future: made while the clock was ahead, it must not
		 * stand for a backup taken now (no source would be due until then) */
		if (m->type == BKR_BACKUP_RECOVERY || m->time_ns <= best || bkr_time_in_future(m->time_ns, now_ns))
			continue;
		if (hostname && !bkr_backup_of_host(m, hostname))
			continue;
		for (size_t k = 0; k < m->nsources && !has; k++)
			has = !strcmp(m->sources[k].source, name) &&
			      (!path || (m->sources[k].path && !strcmp(m->sources[k].path, path)));
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

static int priority_of(const bkr_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsources; i++)
		if (cfg->sources[i].name == name)
			return cfg->sources[i].priority;
	return 0;
}

void bkr_routine_select(const bkr_config *cfg, const bkr_manifest_list *l, int64_t now_ns,
			bkr_routine_kind k, bool only_due, const char *hostname, const char **names, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < cfg->nsources; i++) {
		const bkr_config_source *s = &cfg->sources[i];
		bool covered = k == BKR_ROUTINE_ANY ? s->schedule != BKR_SCHEDULE_MANUAL
						    : bkr_routine_covers(k, s->schedule);
		if (!covered)
			continue;
		if (only_due &&
		    !bkr_schedule_due(s->schedule,
				      bkr_routine_newest(l, s->name, s->npaths == 1 ? s->paths[0] : NULL, hostname,
							 NULL, 0, now_ns, NULL),
				      now_ns))
			continue;
		/* higher priority first, the configuration's order among equals */
		size_t j = (*n)++;
		for (; j > 0 && priority_of(cfg, names[j - 1]) < s->priority; j--)
			names[j] = names[j - 1];
		names[j] = s->name;
	}
}

int bkr_routine_lock(int *fd, const char *dir, bool wait)
{
	char path[PATH_MAX];
	int err;

	*fd = -1;
	if ((err = bkr_io_mkdir_p(dir, 0755)) < 0)
		return err;
	if ((err = bkr_path_join(path, sizeof(path), dir, "routine.lock")) < 0)
		return err;
	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0)
		return bkr_error_set_errno(errno, "routine lock %s", path);
	while (flock(*fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno == EWOULDBLOCK ? bkr_error_set(BKR_ELOCKED, "another routine is running (it holds %s)", path)
					   : bkr_error_set_errno(errno, "routine lock %s", path);
		close(*fd);
		*fd = -1;
		return err;
	}
	return 0;
}

void bkr_routine_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int bkr_routine_record(const char *dir, const char *json_line)
{
	char path[PATH_MAX], end = '\n';
	size_t n = strlen(json_line), pre;
	char *line = NULL;
	struct stat st;
	int fd = -1, err;

	if ((err = bkr_io_mkdir_p(dir, 0755)) < 0 ||
	    (err = bkr_path_join(path, sizeof(path), dir, BKR_ROUTINE_RECORDS)) < 0)
		return err;
	/* room for a newline before the record, one after it */
	if (!(line = malloc(n + 2)))
		return bkr_error_oom();
	/* O_NONBLOCK: a FIFO put there must not stop the routine (as the logs refuse one) */
	if ((fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644)) < 0) {
		err = errno == ENXIO ? bkr_error_set(BKR_EIO, "%s: not a regular file (a FIFO)", path)
				     : bkr_error_set_errno(errno, "%s", path);
		goto done;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = bkr_error_set(BKR_EIO, "%s: not a regular file", path);
		goto done;
	}
	/* a last record cut short (a crash or a full disk in its write) has no
	 * newline: the new one starts a line of its own, or it would join the
	 * cut one and be lost with it (and, last, hide the routines' last runs) */
	if (st.st_size > 0 && pread(fd, &end, 1, st.st_size - 1) != 1)
		end = '\n'; /* unreadable: appended as before */
	pre = end != '\n';
	line[0] = '\n';
	memcpy(line + pre, json_line, n);
	line[pre + n] = '\n';
	if ((err = bkr_io_write_full(fd, line, pre + n + 1, path)) < 0)
		goto done;
	err = bkr_io_fsync(fd, path);
done:
	if (fd >= 0)
		close(fd);
	free(line);
	return err;
}

int bkr_routine_alert(const bkr_config *cfg, const char *json_event, int64_t timeout_ms)
{
	bkr_rec_proc p = { 0 };
	char *d;
	int err;

	if (!cfg->alert_command)
		return 0;
	if ((err = bkr_rec_spawn(cfg->alert_command, json_event, strlen(json_event), timeout_ms, &p)) < 0)
		return bkr_error_set(err, "alert command %s: %s", cfg->alert_command[0], bkr_error_message());
	if (!p.timed_out && WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0) {
		bkr_rec_proc_free(&p);
		return 0;
	}
	d = bkr_rec_proc_describe("alert command", &p, timeout_ms);
	err = bkr_error_set(p.timed_out ? BKR_ETIMEOUT : BKR_ERROR, "%s", d ? d : "alert command failed");
	free(d);
	bkr_rec_proc_free(&p);
	return err;
}

/* Hold each file of @p res that a backup has and no hold in @p holds names
 * yet; *@p added counts them; then @p holds afresh when @p reread or one was. */
static int hold_unheld(bkr_repo *r, const bkr_scan_result *res, const char *host, bkr_holds *holds, size_t *added,
		       bool reread)
{
	size_t before = *added;
	int err = 0;

	for (size_t k = 0; k < res->n && err == 0; k++) {
		const bkr_damage *d = &res->items[k];
		if (!d->backup_id[0] || bkr_holds_find(holds, d->path))
			continue; /* no backup has it (nothing to keep), or held already: the older good copy stays */
		if ((err = bkr_hold_add(r, d->path, d->backup_id, bkr_damage_name(d->kind), d->backup_size, host)) == 0)
			(*added)++;
	}
	if (err < 0 || (!reread && *added == before))
		return err;
	bkr_holds_free(holds);
	return bkr_holds_read(r, holds);
}

int bkr_routine_holds_update(bkr_repo *r, bkr_recover *rc, const bkr_scan_result *res, const char *host,
			     bkr_holds *holds, size_t *added, size_t *released)
{
	int err;

	*added = *released = 0;
	if ((err = bkr_holds_read(r, holds)) < 0)
		return err;
	for (size_t i = 0; i < holds->n && err == 0; i++) {
		const bkr_hold *h = &holds->v[i];
		struct stat st;
		bool listed = false;
		for (size_t k = 0; k < res->n && !listed; k++)
			listed = !strcmp(res->items[k].path, h->path);
		if (listed)
			continue;
		if (bkr_rec_lstat_ws(rc, h->path, &st) < 0) {
			bkr_error_clear(); /* still gone (or unreachable): held */
			continue;
		}
		if (!S_ISREG(st.st_mode) || (st.st_size == 0 && h->size > 0))
			continue;
		if ((err = bkr_hold_release(r, h, "recovered")) == 0)
			(*released)++;
	}
	if (err < 0 || (err = hold_unheld(r, res, host, holds, added, true)) < 0)
		return err; /* the holds written before stay */
	/* "held already" may have gone meanwhile: another routine (or an
	 * operator) released that hold after this one read it - it found the
	 * file back before this scan found it gone again.  Held again now, or
	 * no hold would keep its good copy (an operator who meant it releases
	 * it again). */
	return hold_unheld(r, res, host, holds, added, false);
}
