/** @file
 * bkr routine hourly|daily|weekly|emergency: the scheduled maintenance of a
 * configuration (docs/operations.md "Routines").  Each routine is a list of
 * steps run in this process through the engine (backup, scan, verify,
 * cleanup, recovery batch...); a failed step does not stop the steps that do
 * not depend on it.  Every step is logged, the run is recorded in the log
 * directory (routines.jsonl, read by bkr health), the metrics file is
 * refreshed and every problem becomes one alert event.  Two routines of a
 * configuration never run at once (the routine lock).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/host.h"
#include "lifecycle.h"
#include "routine_run.h"
#include "bkr/backup.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/lock.h"
#include "bkr/log.h"
#include "bkr/recover.h"
#include "bkr/repair.h"
#include "bkr/routine.h"
#include "bkr/tier.h"
#include "bkr/utf8.h"
#include "bkr/verify.h"
#include "bkr/verify_record.h"

static const char usage[] =
	"usage: bkr routine -c CONFIG hourly|daily|weekly|emergency [--dry-run] [--json]\n"
	"       [--no-wait] [--as-of TIME] [--apply]\n\n"
	"Run a scheduled routine of the configuration (docs/operations.md):\n"
	"  hourly     scan, then an incremental backup of the due hourly sources\n"
	"  daily      scan, backup of the due hourly and daily sources, verify, cleanup\n"
	"             (retention and prune; skipped while the scan finds damaged\n"
	"             files), tier migration\n"
	"             (each scan holds the backup with the last good copy of a damaged\n"
	"             or missing file until it is back: 'bkr hold')\n"
	"  weekly     full backup of every scheduled source, verify --read-data,\n"
	"             repair when damage was found, health report\n"
	"  emergency  scan, recovery batch into a recovery run (applied to the\n"
	"             workspace only with --apply), then a backup of the healthy sources\n\n"
	"  -n, --dry-run      say what each step would do; change nothing, send no alert\n"
	"      --as-of TIME   evaluate schedules and retention as if now were TIME (ISO 8601)\n"
	"      --apply        emergency: write recovered files into the workspace\n"
	"      --no-wait      exit at once (status 5) when another routine runs, and fail a\n"
	"                     step at once when the repository is locked (default: wait)\n"
	"      --json         the summary as JSON (every step's status and duration)\n\n"
	"Exit status: 0 every step ok, 1 a check found problems, 6 a step failed,\n"
	"5 another routine runs (--no-wait), 2 usage or configuration error, 7 the log\n"
	"directory or its routine.lock cannot be made or opened.\n";

enum { OPT_AS_OF = OPT_FIRST_CMD, OPT_APPLY };

static int opt(cli *c, int o, const char *arg, void *st)
{
	rt_run *r = st;
	switch (o) {
	case 'n':
		r->dry_run = true;
		return 0;
	case OPT_AS_OF:
		if (cli_as_of(c, arg, &r->as_of) != 0)
			return BKR_EXIT_USAGE;
		r->has_as_of = true;
		return 0;
	case OPT_APPLY:
		r->apply = true;
		return 0;
	case LC_OPT_NO_WAIT:
		r->no_wait = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* ---- steps -------------------------------------------------------------- */

/* The sources the routine backs up (only the due ones, but for weekly and emergency). */
static void backup_names(rt_run *r, const bkr_manifest_list *l, const char **names, size_t *n)
{
	bool only_due = r->kind == BKR_ROUTINE_HOURLY || r->kind == BKR_ROUTINE_DAILY;
	/* a backup dated in the future does not count as a source's newest; after
	 * an --as-of time it was simply not made yet: nothing to warn about */
	if (only_due && !r->has_as_of)
		cli_warn_future_list(r->c, l, r->as_of);
	char host[256];
	bkr_host_name(host, sizeof(host), NULL); /* the host its backups record */
	bkr_routine_select(r->cfg, l, r->as_of, r->kind, only_due, host, names, n);
}

/* @p name added to the list *@p list ("a, b, c"; malloc'd, NULL for none), whole; out of memory,
 * *@p list is "(out of memory naming the sources)" (NULL if even that fails), and takes no more names. */
static void name_add(char **list, bool *oom, const char *name)
{
	if (*oom)
		return;
	if (!bkr_text_setf(list, "%s%s%s", *list ? *list : "", *list ? ", " : "", name)) {
		*oom = true;
		*list = strdup("(out of memory naming the sources)");
	}
}

/* Emergency: leave out the sources holding a file the scan still finds damaged (named in *@p skipped,
 * malloc'd, NULL when none); how many. */
static size_t drop_damaged_sources(rt_run *r, const char **names, size_t *n, char **skipped)
{
	size_t k = 0;
	bool oom = false;
	*skipped = NULL;
	for (size_t i = 0; i < *n; i++) {
		const bkr_config_source *s = bkr_config_find_source(r->cfg, names[i]);
		bool bad = false;
		for (size_t d = 0; s && d < r->scan.n && !bad; d++)
			bad = rt_path_in_source(r->cfg, s, r->scan.items[d].path);
		if (bad)
			name_add(skipped, &oom, names[i]);
		else
			names[k++] = names[i];
	}
	size_t dropped = *n - k;
	*n = k;
	return dropped;
}

/* A lock not waited for (--no-wait) says so in the step's message. */
static int not_waiting(const rt_run *r, int err)
{
	if (err == BKR_ELOCKED && r->no_wait)
		bkr_error_set(err, "%s; not waiting (--no-wait)", bkr_error_message());
	return err;
}

static void on_backup_waiting(void *ctx)
{
	rt_run *r = ctx;
	if (!r->c->quiet && !r->c->json)
		fprintf(stderr, "bkr routine: waiting for a running prune, cleanup, delete or repair to finish...\n");
}

static void step_backup(rt_run *r, rt_step *s)
{
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_manifest_list l = { 0 };
	bkr_manifest *m = NULL;
	cli_sources src = { 0 };
	const char **names = NULL, *skip[3], *tags[1];
	char tag[32], *skipped = NULL;
	size_t n = 0, ndamaged = 0;
	int err;

	if (!rt_need_repo(r, s))
		goto done;
	if ((err = bkr_repo_list(r->repo, false, &l, NULL)) < 0)
		goto fail;
	if (!(names = calloc(r->cfg->nsources ? r->cfg->nsources : 1, sizeof(*names)))) {
		err = bkr_error_oom();
		goto fail;
	}
	backup_names(r, &l, names, &n);
	if (r->kind == BKR_ROUTINE_EMERGENCY)
		ndamaged = drop_damaged_sources(r, names, &n, &skipped);
	if (n == 0) {
		const char *why = r->kind == BKR_ROUTINE_HOURLY || r->kind == BKR_ROUTINE_DAILY ? "no source is due"
											: "no scheduled source";
		rt_step_end(r, s, ndamaged ? RT_PROBLEMS : RT_OK, "%s%s", ndamaged ? "not backed up (damaged): " : why,
			    ndamaged ? skipped ? skipped : "(out of memory naming the sources)" : "");
		goto done;
	}
	if (r->dry_run) {
		char *list = NULL; /* every name, whole */
		bool oom = false;
		for (size_t i = 0; i < n; i++)
			name_add(&list, &oom, names[i]);
		rt_step_end(r, s, RT_OK, "would back up %s", list ? list : "(out of memory naming the sources)");
		free(list);
		goto done;
	}
	if ((err = cli_sources_get(r->c, r->cfg, NULL, 0, (char **)names, n, &src)) < 0)
		goto fail;
	/* --no-wait: a prune, cleanup, delete or repair holding the repository
	 * fails the step at once (as 'bkr create --no-wait'), not a wait */
	o.no_wait = r->no_wait;
	o.waiting = on_backup_waiting;
	o.waiting_ctx = r;
	if (!r->has_as_of) /* a parent passed over: dated in the future (backup_names warned of most) */
		o.future = cli_warn_future_cb;
	o.future_ctx = r->c;
	o.type = r->kind == BKR_ROUTINE_WEEKLY ? BKR_BACKUP_FULL : BKR_BACKUP_INCREMENTAL;
	o.sources = src.specs;
	o.nsources = src.n;
	o.workspace_root = src.workspace_root;
	snprintf(tag, sizeof(tag), "routine:%s", bkr_routine_name(r->kind));
	tags[0] = tag;
	o.tags = tags;
	o.ntags = 1;
	o.skip_paths = skip;
	o.nskip_paths = cli_skip_paths(r->cfg, skip);
	o.progress = r->c->progress ? cli_backup_progress : NULL;
	o.progress_ctx = r->c;
	if ((err = bkr_backup_run(r->repo, &o, &m)) < 0) {
		not_waiting(r, err);
		goto fail;
	}
	rt_step_end(r, s, ndamaged ? RT_PROBLEMS : RT_OK, "%s (%s): %zu source%s, %" PRIu64 " files%s%s%s", m->backup_id,
		    bkr_backup_type_name(m->type), m->nsources, m->nsources == 1 ? "" : "s", m->stats.files,
		    m->nwarnings ? ", with warnings (see bkr show)" : "", ndamaged ? "; not backed up (damaged): " : "",
		    ndamaged ? skipped ? skipped : "(out of memory naming the sources)" : "");
	goto done;
fail:
	rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
done:
	bkr_manifest_free(m);
	cli_sources_free(&src);
	free(names);
	free(skipped);
	bkr_manifest_list_free(&l);
}

static int open_recover(rt_run *r, bkr_recover **rc)
{
	int err = bkr_recover_from_config(rc, r->cfg, r->repo);
	if (err == 0 && r->c->progress)
		bkr_recover_set_progress(*rc, cli_progress_step, r->c);
	return err;
}

static const char held_action[] = "recover them ('bkr restore', 'bkr routine emergency --apply'), or release a "
				  "hold once it is not needed: 'bkr hold release PATH'";

/*
 * One held_file alert for every hold in force whose file the scan no longer
 * sees (a later backup lacks it too), not one each: 200 deleted files made
 * 200 alert commands a routine.  It names the first BKR_ALERT_FILES (fewer
 * when their paths do not fit in its message) and counts the rest; the
 * record lists every one with its backup (held_files).  A file the scan
 * still sees is alerted as workspace_damage.
 */
static void held_alert(rt_run *r)
{
	char list[BKR_ALERT_FILES_TEXT + 160], t[32];
	const bkr_hold *first = NULL;
	bkr_alert_files l = { 0 };

	for (size_t i = 0; i < r->holds.n; i++) {
		const bkr_hold *h = &r->holds.v[i];
		if (rt_hold_seen(r, h))
			continue;
		if (!first)
			first = h;
		bkr_alert_files_add(&l, "%s (%s)", h->path, h->damage);
	}
	if (!first)
		return;
	if (l.n == 1) {
		const char *since = bkr_hold_since(first, t);
		rt_alert(r, "held_file", NULL, first->path, held_action,
			 "%s: %s since %s and not recovered; its last good copy is in backup %s, which retention keeps",
			 first->path, first->damage, since ? since : "an unknown time", first->backup_id);
		return;
	}
	rt_alert(r, "held_file", NULL, first->path, held_action,
		 "%zu held files damaged or missing and not recovered; retention keeps the backups with their last "
		 "good copies: %s",
		 l.n, bkr_alert_files_text(&l, "the routine's record, held_files, and in 'bkr hold'", list, sizeof(list)));
}

/*
 * The holds after a scan of the whole workspace (bkr/hold.h): what it found
 * damaged or missing is held with the backup that still has it, what is
 * back is released; a dry run only reads them.  A file held but no longer
 * seen (a later backup lacks it too) is alerted on every run until it is
 * recovered or an operator releases it: one alert for all of them.
 */
static int update_holds(rt_run *r, bkr_recover *rc)
{
	char host[256];
	size_t added = 0, released = 0;
	int err;

	bkr_holds_free(&r->holds);
	if (r->dry_run) {
		if ((err = bkr_holds_read(r->repo, &r->holds)) == 0)
			cli_warn_holds(r->c, &r->holds);
		return err;
	}
	bkr_host_name(host, sizeof(host), NULL);
	if ((err = bkr_routine_holds_update(r->repo, rc, &r->scan, host, &r->holds, &added, &released)) < 0)
		return bkr_error_set(err, "the holds of damaged files could not be recorded: %s", bkr_error_message());
	cli_warn_holds(r->c, &r->holds);
	if (added || released)
		bkr_log(BKR_LOG_INFO, "routine", "holds: %zu file%s held, %zu released as recovered; %zu in force", added,
			added == 1 ? "" : "s", released, r->holds.n);
	held_alert(r);
	return 0;
}

/* The scan step's line when only holds are left: "N files held ... (first: PATH, its good copy in BACKUP)". */
static void held_end(rt_run *r, rt_step *s)
{
	const bkr_hold *h = &r->holds.v[0];
	size_t n = bkr_holds_files(&r->holds);
	rt_step_end(r, s, RT_PROBLEMS, "%" PRIu64 " files checked, none damaged; %zu file%s held: damaged or missing "
		    "and not recovered, the backup%s with the last good cop%s kept (first: %s, %s, in %s)",
		    r->scan.files_checked, n, n == 1 ? "" : "s", n == 1 ? "" : "s", n == 1 ? "y" : "ies", h->path,
		    h->damage, h->backup_id);
}

/*
 * The shared repository lock over a scan and the holds it records (none on a
 * dry run or without a repository): the backup a hold names is the one the
 * scan compared with, so no delete, cleanup or prune may remove it between
 * the two; one at work is waited for (or not, --no-wait), as by a backup.
 */
static int scan_lock(rt_run *r, bkr_lock **lock)
{
	*lock = NULL;
	if (!r->repo || r->dry_run)
		return 0;
	return not_waiting(r, bkr_repo_lock_or_wait(r->repo, BKR_LOCK_SHARED, r->no_wait, on_backup_waiting, r, lock));
}

static void step_scan(rt_run *r, rt_step *s)
{
	bkr_recover *rc = NULL;
	bkr_lock *lock = NULL;
	int err;

	bkr_scan_result_free(&r->scan);
	r->scanned = r->scan_partial = false;
	/* as 'bkr scan': without the backups a missing or truncated file cannot
	 * be seen, and "none damaged" would be a clean bill it cannot give.  The
	 * emergency routine still checks what needs no backup (required files,
	 * validators) to recover it with the strategies that need none; the
	 * step fails all the same.  Not past a wrong passphrase, as 'bkr batch'
	 * (the backups are there, with the newer copies). */
	if ((r->kind != BKR_ROUTINE_EMERGENCY || r->repo_err == BKR_EKEY) && !rt_need_repo(r, s))
		return;
	if ((err = scan_lock(r, &lock)) < 0 || (err = open_recover(r, &rc)) < 0 ||
	    (err = bkr_recover_scan(rc, 0, &r->scan)) < 0) {
		if (r->repo)
			rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
		else
			rt_step_end(r, s, RT_FAILED, "no repository: %s; the scan without it: %s", rt_repo_error(r),
				    bkr_error_message());
		bkr_recover_free(rc);
		bkr_lock_release(lock);
		return;
	}
	r->scanned = true;
	r->scan_partial = !r->repo;
	r->scan_ns = bkr_time_now_ns();
	err = r->repo ? update_holds(r, rc) : 0;
	bkr_lock_release(lock);
	if (err < 0) {
		rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
		bkr_recover_free(rc);
		return;
	}
	if (!r->repo) {
		rt_step_end(r, s, RT_FAILED,
			    "no repository: %s; without the backups missing and truncated files cannot be seen: only "
			    "required files and validators judged, %zu damaged file%s%s%s%s%s%s",
			    rt_repo_error(r), r->scan.n, r->scan.n == 1 ? "" : "s", r->scan.n ? " (first: " : "",
			    r->scan.n ? r->scan.items[0].path : "", r->scan.n ? ": " : "",
			    r->scan.n ? r->scan.items[0].reason : "", r->scan.n ? ")" : "");
	} else if (r->scan.n == 0 && r->scan.nskipped) {
		/* not all of the workspace was looked at: a problem to act on */
		rt_step_end(r, s, RT_PROBLEMS, "%" PRIu64 " files checked, none damaged; %zu director%s not scanned (first: %s: %s)",
			    r->scan.files_checked, r->scan.nskipped, r->scan.nskipped == 1 ? "y" : "ies",
			    r->scan.skipped[0].path, r->scan.skipped[0].reason);
	} else if (r->scan.n == 0 && r->holds.n) {
		/* gone from the newest backup too, so the scan no longer sees them:
		 * their holds say what is still lost, and keep its last good copy */
		held_end(r, s);
	} else if (r->scan.n == 0) {
		rt_step_end(r, s, RT_OK, "%" PRIu64 " files checked, none damaged", r->scan.files_checked);
	} else {
		/* the emergency routine recovers them next; elsewhere they are a problem to act on */
		rt_step_end(r, s, r->kind == BKR_ROUTINE_EMERGENCY ? RT_OK : RT_PROBLEMS,
			    "%zu damaged file%s (first: %s: %s)", r->scan.n, r->scan.n == 1 ? "" : "s",
			    r->scan.items[0].path, r->scan.items[0].reason);
		if (r->kind != BKR_ROUTINE_EMERGENCY)
			rt_alert(r, "workspace_damage", NULL, r->scan.items[0].path,
				 "run 'bkr routine emergency --apply' (or 'bkr batch -c CONFIG --apply') to recover them",
				 "scan found %zu damaged file%s in the workspace", r->scan.n, r->scan.n == 1 ? "" : "s");
	}
	bkr_recover_free(rc);
}

static void step_batch(rt_run *r, rt_step *s)
{
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	bkr_recover *rc = NULL;
	int err;

	if (r->dry_run) {
		rt_step_end(r, s, RT_OK, "would recover %zu file%s%s", r->scan.n, r->scan.n == 1 ? "" : "s",
			    r->apply ? " into the workspace" : " into a recovery run");
		return;
	}
	o.apply = r->apply;
	if ((err = open_recover(r, &rc)) < 0 || (err = bkr_recover_items(rc, r->scan.items, r->scan.n, &o, &rep)) < 0) {
		rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
	} else {
		const bkr_recover_summary *sum = bkr_recover_report_summary(rep);
		char where[PATH_MAX + 128] = "";
		free(r->run_id);
		r->run_id = strdup(sum->run_id);
		/* without the repository the backup strategy was unavailable (each
		 * attempt says so in the report) and the run is staged */
		if (!r->repo)
			snprintf(where, sizeof(where), "; no repository: the backup strategy unavailable, the run staged in %s",
				 sum->staged_dir ? sum->staged_dir : "(nowhere)");
		rt_step_end(r, s, sum->failed ? RT_FAILED : sum->manual ? RT_PROBLEMS : RT_OK,
			    "run %s: %zu file%s, %zu recovered, %zu applied, %zu need a person, %zu failed%s", sum->run_id,
			    sum->files, sum->files == 1 ? "" : "s", sum->recovered, sum->applied, sum->manual, sum->failed,
			    where);
	}
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
	/* what is still damaged decides which sources the backup after this leaves out */
	if (r->apply && !r->dry_run) {
		bkr_recover *again = NULL;
		bkr_lock *lock = NULL;
		bkr_scan_result_free(&r->scan);
		r->scanned = scan_lock(r, &lock) == 0 && open_recover(r, &again) == 0 &&
			     bkr_recover_scan(again, 0, &r->scan) == 0;
		r->scan_ns = bkr_time_now_ns();
		/* what was applied is back: its holds end */
		if (r->scanned && r->repo && update_holds(r, again) < 0)
			bkr_log(BKR_LOG_WARN, "routine", "%s", bkr_error_message());
		bkr_lock_release(lock);
		bkr_recover_free(again);
	}
}

static void on_verify_problem(void *ctx, const bkr_verify_problem *p)
{
	rt_run *r = ctx;
	/* an object that could not be read (an I/O error) is not damaged: the step fails with it; a
	 * recovery run is no backup (health counts the record's damaged_backups not good, as a verify
	 * record's, which names no run) */
	if (p->error && p->kind != BKR_VERIFY_IO)
		rt_verify_note(r, p->object, p->run ? NULL : p->backup_id);
	if (p->error && p->kind == BKR_VERIFY_RECORD)
		r->verify.records++;
}

/* What to do about verify's errors: repair mends data, not a damaged record
 * (a pin, tag or hold every command skips). */
static const char *verify_action(const rt_run *r)
{
	static const char data[] = "run 'bkr verify --read-data' for every damaged file, keep the damaged packs, and "
				   "repair ('bkr repair') or back up again";
	static const char records[] = "put each damaged record (records/..., named by 'bkr verify') back from a copy "
				      "of the repository, or remove it: the pin, tag or hold in it is not applied";
	static const char both[] = "run 'bkr verify --read-data' for every damaged file, keep the damaged packs, and "
				   "repair ('bkr repair') or back up again; put each damaged record (records/...) back "
				   "from a copy of the repository, or remove it";
	if (!r->verify.records)
		return data;
	return r->verify.records < r->verify.errors ? both : records;
}

static void step_verify(rt_run *r, rt_step *s)
{
	bkr_verify_options o = BKR_VERIFY_OPTIONS_INIT;
	bkr_verify_stats st = { 0 };
	char *unrecorded = NULL;
	int err;

	if (!rt_need_repo(r, s))
		return;
	r->verify.ran = true;
	r->verify.read_data = r->kind == BKR_ROUTINE_WEEKLY;
	r->verify.time_ns = bkr_time_now_ns();
	if (r->dry_run) {
		r->verify.ran = false;
		rt_step_end(r, s, RT_OK, "would verify%s", r->verify.read_data ? " every byte (--read-data)" : " the structure");
		return;
	}
	o.read_data = r->verify.read_data;
	o.report = on_verify_problem;
	o.report_ctx = r;
	o.progress = r->c->progress ? cli_verify_progress : NULL;
	o.progress_ctx = r->c;
	/* recorded like 'bkr verify': the repair step takes out the damaged blobs it names */
	err = bkr_verify_run_recorded(&unrecorded, r->repo, &o, &st);
	r->verify.errors = st.errors;
	r->verify.io_errors = st.io_errors;
	if (unrecorded)
		bkr_log(BKR_LOG_WARN, "routine", "verify: the result could not be recorded in the repository: %s",
			unrecorded);
	free(unrecorded);
	/* what could not be read (an I/O error) fails the step; damage found in the rest is alerted */
	if (err < 0 && err != BKR_ECORRUPT && !(err == BKR_EIO && st.errors)) {
		rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
		return;
	}
	if (err == 0) {
		rt_step_end(r, s, RT_OK, "%" PRIu64 " backups, %" PRIu64 " packs%s: no damage", st.backups, st.packs,
			    r->verify.read_data ? " (every byte read)" : "");
		return;
	}
	char *unread = NULL; /* whole: the error names the object */
	if (err == BKR_EIO && !bkr_text_setf(&unread, "; %s", bkr_error_message()))
		unread = strdup("; out of memory naming what could not be read");
	rt_alert(r, "damage", NULL, NULL, verify_action(r),
		 "verify found %" PRIu64 " error%s: %zu damaged object%s (first: %s), %zu backup%s affected%s",
		 st.errors, st.errors == 1 ? "" : "s", r->verify.nobjects, r->verify.nobjects == 1 ? "" : "s",
		 r->verify.nobjects ? r->verify.objects[0] : "?", r->verify.nbackups,
		 r->verify.nbackups == 1 ? "" : "s", unread ? unread : "");
	rt_step_end(r, s, RT_FAILED, "%" PRIu64 " error%s, %zu damaged object%s, %zu backup%s affected%s", st.errors,
		    st.errors == 1 ? "" : "s", r->verify.nobjects, r->verify.nobjects == 1 ? "" : "s",
		    r->verify.nbackups, r->verify.nbackups == 1 ? "" : "s", unread ? unread : "");
	free(unread);
}

/* The exclusive lock of the steps that remove or move data (none on a dry
 * run): lc_lock waits for running backups (or not, --no-wait) and reloads
 * the index, which misses what they published meanwhile. */
static int exclusive(rt_run *r, bkr_lock **lock)
{
	lc_lock_opts o = { .no_wait = r->no_wait };
	*lock = NULL;
	return r->dry_run ? 0 : lc_lock(r->c, r->repo, &o, lock);
}

/* bkr_prune_options.damage in a routine: logged, the first one kept whole for the step's line (ctx: a char *). */
static void cleanup_damage(void *ctx, const char *message)
{
	char **first = ctx;
	if (!*first && !(*first = strdup(message)))
		*first = strdup("(out of memory keeping the first damage's message)");
	bkr_log_event(BKR_LOG_WARN, "prune", "damage", NULL, "%s", message);
}

static void step_cleanup(rt_run *r, rt_step *s)
{
	const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1];
	bkr_prune_options po = BKR_PRUNE_OPTIONS_INIT;
	bkr_prune_report pr;
	bkr_lock *lock = NULL;
	lc_plan plan = { 0 };
	char freed[32], *damage = NULL; /* the first damage met, whole */
	int err;

	if (!rt_need_repo(r, s))
		return;
	po.damage = cleanup_damage;
	po.damage_ctx = &damage;
	po.progress = r->c->progress ? cli_progress_step : NULL;
	po.progress_ctx = r->c;
	for (int t = 0; t <= BKR_BACKUP_RECOVERY; t++)
		pol[t] = bkr_config_retention_for(r->cfg, (bkr_backup_type)t);
	if ((err = exclusive(r, &lock)) < 0)
		goto fail;
	if ((err = lc_plan_make(&plan, r->repo, pol, NULL, r->as_of)) < 0)
		goto fail;
	if (!r->has_as_of)
		lc_plan_warn_future(r->c, &plan);
	cli_warn_holds(r->c, &plan.holds);
	if (r->dry_run) {
		rt_step_end(r, s, RT_OK, "would remove %zu of %zu backups, then prune", plan.ngone, plan.n);
		goto done;
	}
	po.now_ns = bkr_time_now_ns();
	if ((err = lc_plan_apply(r->repo, &plan, po.now_ns, &po, &pr)) < 0)
		goto fail;
	cli_human_bytes(freed, pr.unused_bytes + pr.repacked_bytes + pr.leftover_bytes - pr.repack_written);
	char held[160] = "";
	if (plan.held)
		snprintf(held, sizeof(held), " (%zu kept for the last good copies of %zu held file%s)", plan.held,
			 plan.held_files, plan.held_files == 1 ? "" : "s");
	if (lc_prune_exit(&pr)) {
		rt_alert(r, "damage", NULL, NULL,
			 "run 'bkr repair' (it takes the recorded damage out of the index and names the files using it), "
			 "then back up again where the live files still have the bytes",
			 "prune met %" PRIu64 " damaged blob%s and left %s in place: %s", pr.damaged_blobs,
			 pr.damaged_blobs == 1 ? "" : "s", pr.damaged_blobs == 1 ? "it" : "them",
			 damage ? damage : "?");
		rt_step_end(r, s, RT_PROBLEMS, "removed %zu of %zu backups%s%s; prune moved %s to the trash, and met "
			    "damage it left in place (%" PRIu64 " blob%s): %s", plan.ngone, plan.n,
			    plan.bad ? " (damaged manifests left alone)" : "", held, freed, pr.damaged_blobs,
			    pr.damaged_blobs == 1 ? "" : "s", damage ? damage : "?");
	} else {
		rt_step_end(r, s, RT_OK, "removed %zu of %zu backups%s%s; prune moved %s to the trash", plan.ngone,
			    plan.n, plan.bad ? " (damaged manifests left alone)" : "", held, freed);
	}
	goto done;
fail:
	rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
done:
	free(damage);
	lc_plan_free(&plan);
	bkr_lock_release(lock);
}

/* `bkr tier migrate` and `bkr repair` are other engineers' modules; until
 * they are in the engine these steps say so (one call each to add). */
static void step_tier_migrate(rt_run *r, rt_step *s)
{
	bkr_tier_migrate_options o = BKR_TIER_MIGRATE_OPTIONS_INIT;
	bkr_tier_migrate_report rep;
	bkr_lock *lock = NULL;
	uint64_t packs = 0, bytes = 0;
	char moved[32];
	int err;

	if (!r->cfg->warm.path && !r->cfg->cold.path) {
		rt_step_end(r, s, RT_SKIPPED, "no tiers configured");
		return;
	}
	if (!rt_need_repo(r, s))
		return;
	o.dry_run = r->dry_run;
	o.as_of_ns = r->as_of;
	o.as_of_set = true;
	o.ctx = r->c;
	o.progress = r->c->progress && !r->dry_run ? cli_tier_progress : NULL;
	if (!r->has_as_of) /* after an --as-of time a backup was not made yet: no clock error */
		o.future = cli_warn_future_cb;
	o.policy.tier[BKR_TIER_WARM] = (bkr_tier_conf){ r->cfg->warm.path, r->cfg->warm.after_days };
	o.policy.tier[BKR_TIER_COLD] = (bkr_tier_conf){ r->cfg->cold.path, r->cfg->cold.after_days };
	if ((err = exclusive(r, &lock)) < 0)
		goto fail;
	if ((err = bkr_tier_migrate(r->repo, &o, &rep)) < 0)
		goto fail;
	for (int l = 0; l < BKR_TIER_LEVELS; l++) {
		packs += rep.packs[l];
		bytes += rep.bytes[l];
	}
	cli_human_bytes(moved, bytes);
	rt_step_end(r, s, RT_OK, "%s %" PRIu64 " pack%s (%s) between tiers", r->dry_run ? "would move" : "moved", packs,
		    packs == 1 ? "" : "s", moved);
	goto done;
fail:
	rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
done:
	bkr_lock_release(lock);
}

static void step_repair(rt_run *r, rt_step *s)
{
	bkr_repair_options o = BKR_REPAIR_OPTIONS_INIT;
	bkr_repair_report rep;
	bkr_lock *lock = NULL;
	int err;

	if (!rt_need_repo(r, s))
		return;
	o.dry_run = r->dry_run;
	o.progress = r->c->progress ? cli_progress_step : NULL;
	o.progress_ctx = r->c;
	if ((err = exclusive(r, &lock)) < 0)
		goto fail;
	if ((err = bkr_repair_run(r->repo, &o, &rep)) < 0)
		goto fail;
	/* what stays damaged is a problem for a person, not a failed step */
	rt_step_end(r, s, rep.damaged_files || rep.bad_packs ? RT_PROBLEMS : RT_OK,
		    "%" PRIu64 " damaged blob%s taken out of the index; %" PRIu64 " file%s stay%s damaged, %" PRIu64
		    " can be healed by the next backup", rep.damaged_dropped, rep.damaged_dropped == 1 ? "" : "s",
		    rep.damaged_files, rep.damaged_files == 1 ? "" : "s", rep.damaged_files == 1 ? "s" : "",
		    rep.healable_files);
	goto done;
fail:
	rt_step_end(r, s, RT_FAILED, "%s", bkr_error_message());
done:
	bkr_lock_release(lock);
}

/* The daily scan found damaged or missing files that nothing recovered
 * (the daily routine recovers nothing): the backups retention would remove
 * may hold their last good copies, so it removes none.  A step that failed
 * on purpose: exit 6, one alert saying why, and the next daily routine
 * applies retention once the scan is clean. */
static void step_cleanup_held(rt_run *r, rt_step *s)
{
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "retention skipped: %zu file%s damaged or missing; the backups holding their last good copies are kept",
		 r->scan.n, r->scan.n == 1 ? "" : "s");
	rt_alert(r, "retention_skipped", NULL, r->scan.items[0].path,
		 "recover the files ('bkr routine emergency --apply', 'bkr batch -c CONFIG --apply' or 'bkr restore'); "
		 "retention runs again once the daily scan is clean",
		 "%s routine: %s (first: %s)", bkr_routine_name(r->kind), msg, r->scan.items[0].path);
	rt_step_end(r, s, RT_FAILED, "%s", msg);
}

static void step_health(rt_run *r, rt_step *s)
{
	rt_health_step(r, s);
}

/* ---- the routines ------------------------------------------------------- */

static void run_steps(rt_run *r)
{
	switch (r->kind) {
	case BKR_ROUTINE_HOURLY:
		/* the scan first: it judges the workspace against the backups as
		 * they were before this run. After the backup, a file deleted or
		 * truncated since the last one would be compared with a backup that
		 * already lacks it (or holds it empty) and never be reported. */
		rt_do(r, "scan", step_scan);
		rt_do(r, "backup", step_backup);
		break;
	case BKR_ROUTINE_DAILY:
		/* the scan first, as hourly (against the backups before this
		 * run's): what it finds decides whether retention may run */
		rt_do(r, "scan", step_scan);
		rt_do(r, "backup", step_backup);
		rt_do(r, "verify", step_verify);
		/* never delete backups that may hold the last good copy of a
		 * damaged or missing file, nor from a repository verify found
		 * damaged, or could not verify */
		if (r->scanned && r->scan.n)
			rt_do(r, "cleanup", step_cleanup_held);
		else if (rt_status_of(r, "verify") != RT_OK && r->verify.errors)
			rt_skip(r, "cleanup", "verify found damage: no backup is removed from a damaged repository");
		else if (rt_status_of(r, "verify") != RT_OK)
			rt_skip(r, "cleanup", "verify did not finish: no backup is removed before the repository verifies");
		else if (rt_status_of(r, "scan") == RT_FAILED)
			rt_skip(r, "cleanup", "the scan failed: which files are damaged is unknown, so no backup is removed");
		else
			rt_do(r, "cleanup", step_cleanup);
		rt_do(r, "tier-migrate", step_tier_migrate);
		break;
	case BKR_ROUTINE_WEEKLY:
		rt_do(r, "backup", step_backup);
		rt_do(r, "verify", step_verify);
		if (r->verify.errors)
			rt_do(r, "repair", step_repair);
		else
			rt_skip(r, "repair", rt_status_of(r, "verify") == RT_OK ? "no damage found" : "verify did not run to the end");
		rt_do(r, "health", step_health);
		break;
	case BKR_ROUTINE_EMERGENCY:
		rt_do(r, "scan", step_scan);
		/* without the repository the scan still judged required files and
		 * validators: what it found is recovered without the backups */
		if (!r->scanned)
			rt_skip(r, "recover", "the scan failed");
		else if (r->scan.n == 0)
			rt_skip(r, "recover", r->scan_partial ? "nothing damaged among the required and validated files" : "nothing damaged");
		else
			rt_do(r, "recover", step_batch);
		/* without a scan what is healthy is unknown: backing up could make a
		 * damaged copy the newest (without the repository the step fails) */
		if (rt_status_of(r, "scan") == RT_FAILED && r->repo)
			rt_skip(r, "backup", "the scan failed: which sources are healthy is unknown");
		else
			rt_do(r, "backup", step_backup);
		break;
	}
}

int cmd_routine(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "as-of", required_argument, NULL, OPT_AS_OF },
		{ "apply", no_argument, NULL, OPT_APPLY },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	rt_run r = { .c = c, .lock_fd = -1, .scan = BKR_SCAN_RESULT_INIT };
	int first, err, rc;

	CLI_PARSE(c, argc, argv, usage, "n", lo, opt, &r, &first);
	if (first >= argc)
		return cli_usage_error(c, "which routine? hourly, daily, weekly or emergency");
	if (argc - first > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first + 1]);
	if (bkr_routine_parse(argv[first], &r.kind) < 0)
		return cli_usage_error(c, "%s", bkr_error_message());
	if (r.apply && r.kind != BKR_ROUTINE_EMERGENCY)
		return cli_usage_error(c, "--apply goes with the emergency routine");
	/* a later "now" would back up nothing that is due, call the backup just
	 * made stale and let cleanup remove what today's policy keeps */
	if (r.has_as_of && (err = lc_as_of_allowed(c, r.as_of, bkr_time_now_ns(), r.dry_run)) != 0)
		return err;
	if ((err = cli_load_config(c, &r.cfg)) < 0)
		return cli_fail(c, err);
	if (!r.cfg) {
		rc = cli_usage_error(c, "a routine needs a configuration: give -c FILE or set BKR_CONFIG");
		goto done;
	}
	if (!r.has_as_of)
		r.as_of = bkr_time_now_ns();
	/* the log was begun by cli_parse (bkr.c marks routine as logged) */
	if ((err = bkr_routine_lock(&r.lock_fd, r.cfg->log_dir, false)) == BKR_ELOCKED && !r.no_wait) {
		if (!c->quiet && !c->json)
			fprintf(stderr, "bkr routine: another routine is running; waiting for it to finish...\n");
		err = bkr_routine_lock(&r.lock_fd, r.cfg->log_dir, true);
	}
	if (err < 0) {
		if (err == BKR_ELOCKED)
			bkr_error_set(BKR_ELOCKED, "%s; not waiting (--no-wait)", bkr_error_message());
		bkr_log(BKR_LOG_WARN, "routine", "%s routine not run: %s", bkr_routine_name(r.kind), bkr_error_message());
		rc = cli_fail(c, err);
		goto done;
	}
	rc = rt_run_all(&r, run_steps);
done:
	rt_run_free(&r);
	return rc;
}
