/** @file
 * One `bkr routine` run (routine_run.h): steps, alerts, the record, the
 * summary and the exit status.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "routine_run.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/health.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/utf8.h"
#include "bkr/verify_record.h"

static const char *const status_names[] = { "ok", "skipped", "not available", "problems", "failed" };

const char *rt_status_name(rt_status s)
{
	return (unsigned)s <= RT_FAILED ? status_names[s] : "?";
}

/* What to run by hand when a step failed. */
static const char *step_hint(const char *step)
{
	static const struct { const char *step, *hint; } hints[] = {
		{ "backup", "run 'bkr -c CONFIG create --all' by hand and read its error" },
		{ "scan", "run 'bkr scan -c CONFIG' by hand and read its error" },
		{ "recover", "read the recovery run ('bkr recovered latest') and recover the rest by hand" },
		{ "verify", "run 'bkr verify' by hand and read its error" },
		{ "cleanup", "run 'bkr cleanup -c CONFIG --dry-run', then without --dry-run" },
		{ "health", "run 'bkr health -c CONFIG' and act on what it says" },
	};
	for (size_t i = 0; i < sizeof(hints) / sizeof(*hints); i++)
		if (!strcmp(hints[i].step, step))
			return hints[i].hint;
	return "read the routine's lines in the log directory";
}

const char *rt_step_message(const rt_step *s)
{
	return s->message ? s->message : "(out of memory keeping the step's message)";
}

const char *rt_repo_error(const rt_run *r)
{
	return r->repo_error ? r->repo_error : "(out of memory keeping why)";
}

static void log_step(const rt_run *r, const rt_step *s)
{
	char secs[32];
	snprintf(secs, sizeof(secs), "%.3f", s->seconds);
	bkr_log_kv(s->status == RT_FAILED ? BKR_LOG_ERROR : s->status == RT_PROBLEMS ? BKR_LOG_WARN : BKR_LOG_INFO,
		   "routine",
		   (const char *[]){ "routine", bkr_routine_name(r->kind), "step", s->name, "status",
				     rt_status_name(s->status), "seconds", secs, NULL },
		   "%s routine, step %s: %s: %s", bkr_routine_name(r->kind), s->name, rt_status_name(s->status),
		   rt_step_message(s));
}

static rt_step *new_step(rt_run *r, const char *name)
{
	rt_step *s = &r->steps[r->nsteps < RT_MAX_STEPS ? r->nsteps++ : RT_MAX_STEPS - 1];
	free(s->message); /* the last one, reused when there are too many */
	memset(s, 0, sizeof(*s));
	s->name = name;
	return s;
}

void rt_do(rt_run *r, const char *name, void (*fn)(rt_run *r, rt_step *s))
{
	rt_step *s = new_step(r, name);
	char point[64];
	int64_t t0 = bkr_clock_mono_ns();
	int err;

	r->step_alerts = r->nalerts;
	bkr_log_kv(BKR_LOG_INFO, "routine", (const char *[]){ "routine", bkr_routine_name(r->kind), "step", name, NULL },
		   "%s routine, step %s: started", bkr_routine_name(r->kind), name);
	snprintf(point, sizeof(point), "routine-%s", name);
	s->status = RT_FAILED;
	bkr_text_setf(&s->message, "did not finish");
	if ((err = bkr_io_fault(point)) < 0)
		rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
	else
		fn(r, s);
	s->seconds = (double)(bkr_clock_mono_ns() - t0) / 1e9;
	log_step(r, s);
}

void rt_skip(rt_run *r, const char *name, const char *why)
{
	rt_step *s = new_step(r, name);
	s->status = RT_SKIPPED;
	bkr_text_setf(&s->message, "%s", why);
	log_step(r, s);
}

rt_status rt_status_of(const rt_run *r, const char *name)
{
	for (size_t i = 0; i < r->nsteps; i++)
		if (!strcmp(r->steps[i].name, name))
			return r->steps[i].status;
	return RT_SKIPPED;
}

void rt_step_end(rt_run *r, rt_step *s, rt_status st, const char *fmt, ...)
{
	va_list ap;
	cli_progress_done(r->c); /* a step's line goes with it */
	va_start(ap, fmt);
	bkr_text_vsetf(&s->message, fmt, ap); /* whole: it names files and carries errors */
	va_end(ap);
	s->status = st;
	if (st == RT_FAILED && r->nalerts == r->step_alerts)
		rt_alert(r, "step_failed", NULL, NULL, step_hint(s->name), "%s routine: step %s failed: %s",
			 bkr_routine_name(r->kind), s->name, rt_step_message(s));
}

bool rt_need_repo(rt_run *r, rt_step *s)
{
	if (r->repo)
		return true;
	rt_step_end(r, s, RT_FAILED, "no repository: %s", rt_repo_error(r));
	return false;
}

void rt_alert(rt_run *r, const char *kind, const char *source, const char *file, const char *action,
	      const char *fmt, ...)
{
	char when[32], host[256];
	const char *step = r->nsteps ? r->steps[r->nsteps - 1].name : NULL;
	rt_alert_ev *v;
	char *buf = NULL, *msg = NULL, *key = NULL; /* whole: they name files and carry errors */
	size_t len = 0;
	FILE *f;
	va_list ap;
	json_out j;

	va_start(ap, fmt);
	bkr_text_vsetf(&msg, fmt, ap);
	va_end(ap);
	if (!msg || !bkr_text_setf(&key, "%s\n%s\n%s", kind, source ? source : file ? file : "",
				   !strcmp(kind, "step_failed") && step ? step : ""))
		goto done;
	for (size_t i = 0; i < r->nalerts; i++)
		if (!strcmp(r->alerts[i].key, key))
			goto done;
	if (!(v = realloc(r->alerts, (r->nalerts + 1) * sizeof(*v))))
		goto done;
	r->alerts = v;
	v = &r->alerts[r->nalerts];
	memset(v, 0, sizeof(*v)); /* undelivered: set only when alert_command fails */
	if (!(f = open_memstream(&buf, &len)))
		goto done;
	bkr_time_format(when, bkr_time_now_ns());
	bkr_host_name(host, sizeof(host), NULL);
	json_out_init(&j, f);
	json_out_begin_object(&j);
	json_out_member(&j, "event", "bkr.alert");
	json_out_member(&j, "kind", kind);
	json_out_member(&j, "time", when);
	json_out_member(&j, "host", host);
	json_out_member(&j, "routine", bkr_routine_name(r->kind));
	json_out_member(&j, "step", !strcmp(kind, "step_failed") ? step : NULL);
	json_out_member(&j, "source", source);
	json_out_member(&j, "file", file);
	json_out_member(&j, "repository", r->cfg->repository);
	json_out_member(&j, "config", r->cfg->file);
	json_out_member(&j, "message", msg);
	json_out_member(&j, "action", action);
	json_out_end_object(&j);
	fclose(f);
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (!buf) /* open_memstream out of memory */
		goto done;
	v->key = key;
	v->json = buf;
	v->message = msg;
	key = msg = NULL;
	r->nalerts++;
	bkr_log_kv(BKR_LOG_WARN, "routine", (const char *[]){ "routine", bkr_routine_name(r->kind), "alert", kind, NULL },
		   "alert %s: %s", kind, v->message);
done:
	free(key);
	free(msg);
}

bool rt_hold_seen(const rt_run *r, const bkr_hold *h)
{
	for (size_t k = 0; k < r->scan.n; k++)
		if (!strcmp(r->scan.items[k].path, h->path))
			return true;
	return false;
}

static int add_unique(char ***v, size_t *n, size_t max, const char *s)
{
	char **nv;
	if (!s || *n >= max)
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	if (!(nv = realloc(*v, (*n + 1) * sizeof(*nv))))
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	(*n)++;
	return 0;
}

void rt_verify_note(rt_run *r, const char *object, const char *backup_id)
{
	add_unique(&r->verify.objects, &r->verify.nobjects, 100, object);
	add_unique(&r->verify.backups, &r->verify.nbackups, BKR_VERIFY_RECORD_MAX_BACKUPS, backup_id);
}

bool rt_path_in_source(const bkr_config *cfg, const bkr_config_source *s, const char *rel)
{
	char abs[PATH_MAX];
	if (bkr_path_join(abs, sizeof(abs), cfg->workspace_root, rel) < 0)
		return false;
	for (size_t i = 0; i < s->npaths; i++) {
		size_t n = strlen(s->paths[i]);
		if (!strncmp(abs, s->paths[i], n) && (abs[n] == '\0' || abs[n] == '/' || (n == 1 && abs[0] == '/')))
			return true;
	}
	return false;
}

/* ---- the summary, the record ------------------------------------------- */

static void json_seconds(json_out *j, const char *key, double s)
{
	char b[32];
	snprintf(b, sizeof(b), "%.3f", s);
	json_out_key(j, key);
	json_out_raw(j, b);
}

static void json_strings(json_out *j, const char *key, char **v, size_t n)
{
	json_out_key(j, key);
	json_out_begin_array(j);
	for (size_t i = 0; i < n; i++)
		json_out_string(j, v[i]);
	json_out_end_array(j);
}

/* The run as one JSON object (the record; with @p events the --json summary). */
static void write_run(const rt_run *r, json_out *j, int exit_code, double seconds, bool events)
{
	char t[32];

	json_out_begin_object(j);
	json_out_member(j, "routine", bkr_routine_name(r->kind));
	bkr_time_format(t, r->start_ns);
	json_out_member(j, "start", t);
	bkr_time_format(t, r->as_of);
	json_out_member(j, "as_of", t);
	json_seconds(j, "duration_seconds", seconds);
	json_out_key(j, "dry_run");
	json_out_bool(j, r->dry_run);
	json_out_key(j, "ok");
	json_out_bool(j, exit_code == 0);
	json_out_key(j, "exit");
	json_out_int(j, exit_code);
	json_out_key(j, "steps");
	json_out_begin_array(j);
	for (size_t i = 0; i < r->nsteps; i++) {
		const rt_step *s = &r->steps[i];
		json_out_begin_object(j);
		json_out_member(j, "step", s->name);
		json_out_member(j, "status", rt_status_name(s->status));
		json_seconds(j, "seconds", s->seconds);
		json_out_member(j, "message", rt_step_message(s));
		json_out_end_object(j);
	}
	json_out_end_array(j);
	json_out_key(j, "verify");
	if (r->verify.ran) {
		json_out_begin_object(j);
		bkr_time_format(t, r->verify.time_ns);
		json_out_member(j, "time", t);
		json_out_key(j, "read_data");
		json_out_bool(j, r->verify.read_data);
		json_out_key(j, "ok");
		json_out_bool(j, rt_status_of(r, "verify") == RT_OK);
		json_out_key(j, "errors");
		json_out_uint(j, r->verify.errors);
		json_out_key(j, "io_errors");
		json_out_uint(j, r->verify.io_errors);
		json_strings(j, "damaged_objects", r->verify.objects, r->verify.nobjects);
		json_strings(j, "damaged_backups", r->verify.backups, r->verify.nbackups);
		json_out_end_object(j);
	} else {
		json_out_null(j);
	}
	json_out_key(j, "scan");
	if (r->scanned) {
		json_out_begin_object(j);
		bkr_time_format(t, r->scan_ns);
		json_out_member(j, "time", t);
		json_out_key(j, "damaged");
		json_out_uint(j, r->scan.n);
		json_out_key(j, "truncated");
		json_out_bool(j, r->scan.n > 100);
		/* without the repository missing and truncated files are not seen:
		 * health takes no file for fixed because such a scan lacks it */
		json_out_key(j, "partial");
		json_out_bool(j, r->scan_partial);
		json_out_key(j, "files");
		json_out_begin_array(j);
		for (size_t i = 0; i < r->scan.n && i < 100; i++)
			json_out_string(j, r->scan.items[i].path);
		json_out_end_array(j);
		json_out_end_object(j);
	} else {
		json_out_null(j);
	}
	/* every hold in force whose file the scan no longer sees: the
	 * held_file alert names the first few */
	json_out_key(j, "held_files");
	json_out_begin_array(j);
	for (size_t i = 0; r->scanned && i < r->holds.n; i++)
		if (!rt_hold_seen(r, &r->holds.v[i]))
			json_out_hold(j, &r->holds.v[i]);
	json_out_end_array(j);
	/* every file the newest recovery run left to a person and no later
	 * scan found fixed: the needs_person alert names the first few */
	json_out_member(j, "needs_person_run", r->health ? r->health->manual_run : NULL);
	json_out_key(j, "needs_person_files");
	json_out_begin_array(j);
	for (size_t i = 0; r->health && i < r->health->nmanual; i++)
		json_out_string(j, r->health->manual_files[i]);
	json_out_end_array(j);
	json_out_member(j, "recovery_run", r->run_id);
	json_out_key(j, "repository_bytes");
	json_out_uint(j, r->repo_bytes);
	json_out_key(j, "alerts");
	if (events) {
		json_out_begin_array(j);
		for (size_t i = 0; i < r->nalerts; i++) {
			/* the event as sent, and whether alert_command took it:
			 * false when it failed, when there is no alert_command
			 * and in a dry run (nothing is sent) */
			const char *a = r->alerts[i].json;
			size_t n = strlen(a);
			bool delivered = !r->dry_run && r->cfg->alert_command && !r->alerts[i].undelivered;
			char *o;
			if (n && a[n - 1] == '}' && (o = malloc(n + 32))) {
				snprintf(o, n + 32, "%.*s%s\"delivered\":%s}", (int)(n - 1), a, n > 2 ? "," : "",
					 delivered ? "true" : "false");
				json_out_raw(j, o);
				free(o);
			} else {
				json_out_raw(j, a);
			}
		}
		json_out_end_array(j);
	} else {
		json_out_uint(j, r->nalerts);
	}
	json_out_end_object(j);
}

static void put_line_escaped(const char *s);

/* What the routine could not report (the record, the metrics file, an
 * alert): one line on stderr even with -q - cron and systemd run it so, and
 * a silent monitoring gap is what this must not be - logged, and the exit
 * status becomes 6. */
static void report_failure(rt_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_failure(rt_run *r, const char *fmt, ...)
{
	char *msg = NULL, *line = NULL;
	va_list ap;

	va_start(ap, fmt);
	bkr_text_vsetf(&msg, fmt, ap);
	va_end(ap);
	r->report_failed = true;
	bkr_log(BKR_LOG_ERROR, "routine", "%s", msg ? msg : "out of memory saying what could not be reported");
	bkr_text_setf(&line, "bkr routine: %s routine: %s", bkr_routine_name(r->kind),
		      msg ? msg : "out of memory saying what could not be reported");
	put_line_escaped(line);
	free(line);
	free(msg);
}

static void record(rt_run *r, int exit_code, double seconds)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_out j;

	if (!f) {
		report_failure(r, "cannot record the routine: out of memory");
		return;
	}
	json_out_init(&j, f);
	write_run(r, &j, exit_code, seconds, false);
	fclose(f);
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (bkr_routine_record(r->cfg->log_dir, buf) < 0)
		report_failure(r, "cannot record the routine: %s", bkr_error_message());
	free(buf);
}

/* Each alert to alert_command, killed after alert_timeout (30 s).  One
 * that had to be killed is not waited for again in this run: 30 s an alert
 * (one per stale source, per file that needs a person...) would keep the
 * routine, and its lock, for hours; the alerts not tried are named as not delivered all the
 * same. */
static void send_alerts(rt_run *r)
{
	int64_t timeout_ms = (r->cfg->alert_timeout_s ? r->cfg->alert_timeout_s : 30) * (int64_t)1000;
	bool hung = false;

	for (size_t i = 0; i < r->nalerts; i++) {
		int err = hung ? 0 : bkr_routine_alert(r->cfg, r->alerts[i].json, timeout_ms);
		if (!hung && err == 0)
			continue;
		r->alerts[i].undelivered = true;
		if (hung)
			report_failure(r, "alert not delivered: not tried, the alert command timed out on an earlier "
				       "alert (alert: %s)", r->alerts[i].message);
		else
			report_failure(r, "alert not delivered: %s (alert: %s)", bkr_error_message(), r->alerts[i].message);
		hung = hung || err == BKR_ETIMEOUT;
	}
}

/* One line of @p s (NULL: out of memory making it) on stderr, whole, escaped
 * for a terminal: a step's message may hold a file name, which must not
 * break the line or reach the terminal as an escape sequence. */
static void put_line_escaped(const char *s)
{
	char *out = s ? bkr_text_escape_dup(s, strlen(s)) : NULL;
	fprintf(stderr, "%s\n", out ? out : "bkr routine: out of memory writing a line");
	free(out);
}

/* -q: the summary is left out, but never a step that needs a person: each
 * failed step, and each that found problems, is one line on stderr (what
 * cron mails; the systemd journal keeps it). */
static void print_quiet(const rt_run *r)
{
	char *line = NULL;
	bool said = false;

	for (size_t i = 0; i < r->nsteps; i++) {
		const rt_step *s = &r->steps[i];
		if (s->status != RT_FAILED && s->status != RT_PROBLEMS)
			continue;
		put_line_escaped(bkr_text_setf(&line, "bkr routine: %s routine: step %s %s: %s",
					       bkr_routine_name(r->kind), s->name,
					       s->status == RT_FAILED ? "failed" : "found problems",
					       rt_step_message(s)));
		said = true;
	}
	if (!r->repo && !said)
		put_line_escaped(bkr_text_setf(&line, "bkr routine: %s routine: cannot open the repository: %s",
					       bkr_routine_name(r->kind), rt_repo_error(r)));
	free(line);
}

static void print_text(const rt_run *r, int exit_code, double seconds)
{
	cli *c = r->c;
	char t[32], *esc; /* messages and alerts name files: escaped as with -q, whole */

	if (c->quiet) {
		print_quiet(r);
		return;
	}
	bkr_time_format(t, r->as_of);
	printf("%sroutine %s (as of %s):\n", r->dry_run ? "dry run: " : "", bkr_routine_name(r->kind), t);
	for (size_t i = 0; i < r->nsteps; i++) {
		const rt_step *s = &r->steps[i];
		const char *col = s->status == RT_FAILED ? "red" : s->status == RT_PROBLEMS ? "yellow" : s->status == RT_OK ? "green" : "reset";
		esc = bkr_text_escape_dup(rt_step_message(s), strlen(rt_step_message(s)));
		printf("  %-13s %s%-13s%s %7.2fs  %s\n", s->name, cli_col(c, col), rt_status_name(s->status),
		       cli_col(c, "reset"), s->seconds, esc ? esc : "(out of memory escaping the message)");
		free(esc);
	}
	for (size_t i = 0; i < r->nalerts; i++) {
		esc = bkr_text_escape_dup(r->alerts[i].message, strlen(r->alerts[i].message));
		printf("  %s %s\n",
		       r->dry_run		     ? "would alert:"
		       : !r->cfg->alert_command	     ? "alert (no alert_command):"
		       : r->alerts[i].undelivered ? "alert NOT delivered:"
						     : "alert sent:",
		       esc ? esc : "(out of memory escaping the message)");
		free(esc);
	}
	printf("routine %s: %s%s%s in %.2fs\n", bkr_routine_name(r->kind),
	       cli_col(c, exit_code == 0 ? "green" : "red"),
	       exit_code == 0 ? "ok" : exit_code == BKR_EXIT_FOUND ? "problems found" : "FAILED", cli_col(c, "reset"),
	       seconds);
}

/* @p reason is about a stale source that the routine's backup step covers
 * (the weekly routine backs up every scheduled source). */
static bool stale_backed_up(const rt_run *r, const bkr_health *h, const char *reason)
{
	for (size_t i = 0; i < h->nsources; i++) {
		size_t n = strlen(h->sources[i].name);
		if (h->sources[i].stale && bkr_routine_covers(r->kind, h->sources[i].schedule) &&
		    !strncmp(reason, "source ", 7) && !strncmp(reason + 7, h->sources[i].name, n) &&
		    (reason[7 + n] == ' ' || reason[7 + n] == ':'))
			return true;
	}
	return false;
}

void rt_health_step(rt_run *r, rt_step *s)
{
	bkr_health *h = NULL;
	int err;

	const char *first = NULL;
	size_t left = 0;

	if (!rt_need_repo(r, s))
		return;
	if ((err = bkr_health_check(&h, r->cfg, r->repo, r->as_of)) < 0) {
		rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
		return;
	}
	for (size_t i = 0; i < h->nreasons; i++) {
		/* a dry run made no backup: a stale source the real run's backup step
		 * would back up is no reason, so the dry run predicts the real one */
		if (r->dry_run && rt_status_of(r, "backup") == RT_OK && stale_backed_up(r, h, h->reasons[i]))
			continue;
		if (!first)
			first = h->reasons[i];
		left++;
	}
	if (left == 0)
		rt_step_end(r, s, RT_OK, "%s", r->dry_run && h->nreasons ? "would be healthy after the backup" : "healthy");
	else
		rt_step_end(r, s, RT_PROBLEMS, "not healthy: %s%s", first, left > 1 ? " (and more: bkr health)" : "");
	bkr_health_free(h);
}

/*
 * One needs_person alert for every file the newest recovery run left to a
 * person, not one each: 200 such files made 200 alert commands every
 * hourly routine until they were fixed.  It names the first BKR_ALERT_FILES
 * and counts the rest; the record lists every one (needs_person_files), and
 * 'bkr recovered RUN' each with its attempts.  One file keeps the message
 * it had.
 */
static void needs_person_alert(rt_run *r, const bkr_health *h)
{
	char where[256], msg[BKR_ALERT_MESSAGE];

	if (!h->nmanual)
		return;
	snprintf(where, sizeof(where), "the routine's record, needs_person_files, and in 'bkr recovered %s'",
		 h->manual_run);
	rt_alert(r, "needs_person", NULL, h->manual_files[0],
		 h->nmanual == 1 ? "recover the file by hand; 'bkr recovered RUN' shows what was tried"
				 : "recover the files by hand; 'bkr recovered RUN' shows what was tried for each",
		 "%s", bkr_alert_needs_person(msg, sizeof(msg), (const char *const *)h->manual_files, h->nmanual,
					      h->manual_run, where));
}

/* After the steps: the problems health sees become alerts; the repository
 * size and the files that need a person go into the record (r->health). */
static void health_alerts(rt_run *r)
{
	bkr_health *h = NULL;

	if (!r->repo || bkr_health_check(&h, r->cfg, r->repo, r->as_of) < 0) {
		if (r->repo)
			bkr_log(BKR_LOG_ERROR, "routine", "health: %s", bkr_error_message());
		return;
	}
	r->health = h;
	r->repo_bytes = h->repo_bytes;
	for (size_t i = 0; i < h->nfuture && !r->has_as_of; i++)
		cli_warn_future(r->c, h->future[i].id, h->future[i].time_ns);
	cli_warn_holds(r->c, &h->holds);
	for (size_t i = 0; i < h->nsources; i++) {
		const bkr_health_source *s = &h->sources[i];
		if (!s->stale)
			continue;
		rt_alert(r, "stale_source", s->name, NULL,
			 "find out why the routines do not back it up (their log lines, 'bkr health'), then 'bkr -c CONFIG create --source NAME'",
			 s->newest_ns == INT64_MIN ? "source %s (%s) has no good backup"
						   : "source %s: the newest good backup is older than twice its schedule (%s)",
			 s->name, bkr_schedule_name(s->schedule));
	}
	/* the recovery engine alerted itself for the files of a run this routine applied */
	if (!(r->apply && r->run_id && h->manual_run && !strcmp(r->run_id, h->manual_run)))
		needs_person_alert(r, h);
}

/* Every routine rewrites the metrics file, when one is configured - also
 * when the repository did not open: then it says not healthy and the
 * routine's failed run (from the record just written), never the last
 * healthy values. */
static void refresh_metrics(rt_run *r)
{
	bkr_health *h = NULL;
	int err;

	if (!r->cfg->metrics_file)
		return;
	err = r->repo ? bkr_health_check(&h, r->cfg, r->repo, r->as_of)
		      : bkr_health_check_unopened(&h, r->cfg, rt_repo_error(r), r->as_of);
	if (err < 0)
		bkr_error_prefix("metrics file %s", r->cfg->metrics_file);
	else /* its errors name the file */
		err = bkr_health_write_prometheus(h, r->cfg->metrics_file);
	if (err < 0)
		report_failure(r, "%s", bkr_error_message());
	bkr_health_free(h);
}

int rt_run_all(rt_run *r, void (*steps)(rt_run *r))
{
	int exit_code = 0, err;
	double seconds;

	r->start_ns = bkr_time_now_ns();
	r->start_mono = bkr_clock_mono_ns();
	bkr_log_kv(BKR_LOG_INFO, "routine", (const char *[]){ "routine", bkr_routine_name(r->kind), NULL },
		   "%s routine started%s", bkr_routine_name(r->kind), r->dry_run ? " (dry run)" : "");
	if ((err = cli_open_repo(r->c, &r->repo, 0)) < 0) {
		r->repo_err = err;
		bkr_text_setf(&r->repo_error, "%s", bkr_error_message());
		rt_alert(r, "routine_failed", NULL, NULL, "check that the repository exists and its disk is mounted",
			 "%s routine: cannot open the repository: %s", bkr_routine_name(r->kind), rt_repo_error(r));
	}
	steps(r);
	if (!r->dry_run)
		health_alerts(r);
	for (size_t i = 0; i < r->nsteps; i++) {
		if (r->steps[i].status == RT_FAILED)
			exit_code = BKR_EXIT_PARTIAL;
		else if (r->steps[i].status == RT_PROBLEMS && exit_code == 0)
			exit_code = BKR_EXIT_FOUND;
	}
	if (!r->repo)
		exit_code = BKR_EXIT_PARTIAL;
	seconds = (double)(bkr_clock_mono_ns() - r->start_mono) / 1e9;
	bkr_log_kv(exit_code ? BKR_LOG_ERROR : BKR_LOG_INFO, "routine",
		   (const char *[]){ "routine", bkr_routine_name(r->kind), NULL }, "%s routine %s", bkr_routine_name(r->kind),
		   exit_code == 0 ? "done" : exit_code == BKR_EXIT_FOUND ? "found problems" : "failed");
	if (!r->dry_run) {
		record(r, exit_code, seconds);
		refresh_metrics(r);
		send_alerts(r);
		/* the steps ran, but what they found did not all reach its readers */
		if (r->report_failed)
			exit_code = BKR_EXIT_PARTIAL;
	}
	cli_progress_done(r->c);
	if (r->c->json) {
		json_out j;
		json_out_init(&j, stdout);
		write_run(r, &j, exit_code, seconds, true);
	} else {
		print_text(r, exit_code, seconds);
	}
	return exit_code;
}

void rt_run_free(rt_run *r)
{
	for (size_t i = 0; i < r->nalerts; i++) {
		free(r->alerts[i].key);
		free(r->alerts[i].json);
		free(r->alerts[i].message);
	}
	free(r->alerts);
	for (size_t i = 0; i < r->nsteps; i++)
		free(r->steps[i].message);
	free(r->repo_error);
	for (size_t i = 0; i < r->verify.nobjects; i++)
		free(r->verify.objects[i]);
	free(r->verify.objects);
	for (size_t i = 0; i < r->verify.nbackups; i++)
		free(r->verify.backups[i]);
	free(r->verify.backups);
	bkr_scan_result_free(&r->scan);
	bkr_holds_free(&r->holds);
	bkr_health_free(r->health);
	free(r->run_id);
	bkr_repo_free(r->repo);
	bkr_config_free(r->cfg);
	bkr_routine_unlock(r->lock_fd);
}
