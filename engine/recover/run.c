/** @file
 * A recovery run: each damaged file's strategies tried in order (nothing
 * written yet), then, with apply, the recovered files written into the
 * workspace (apply.c), then the run stored with its final report
 * (store.c, report.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/repo.h"
#include "bkr/utf8.h"
#include "recover_i.h"

/* ---- outcomes ------------------------------------------------------------ */

void bkr_rec_outcome_clear(bkr_rec_outcome *o)
{
	bkr_rec_data_free(o->data, o->len, o->mapped);
	free(o->link);
	cJSON_Delete(o->source);
	free(o->error);
	for (size_t i = 0; o->alert && o->alert[i]; i++)
		free(o->alert[i]);
	free(o->alert);
	memset(o, 0, sizeof(*o));
}

int bkr_rec_fail(bkr_rec_outcome *o, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bkr_text_vsetf(&o->error, fmt, ap);
	va_end(ap);
	return code < 0 ? code : BKR_ERROR;
}

/* ---- attributes ------------------------------------------------------------ */

bool bkr_rec_settle(bkr_recover *rc, bkr_rec_file *f)
{
	struct stat st;
	char parent[PATH_MAX];
	const char *slash = strrchr(f->d.path, '/');

	if (f->recorded)
		return false;
	if (bkr_rec_lstat_ws(rc, f->d.path, &st) == 0 && (f->link ? S_ISLNK(st.st_mode) : S_ISREG(st.st_mode))) {
		/* the file it replaces, but never set-ID: the content is not what was
		 * made set-ID (a git history, a database, a command's output) */
		if (!f->link)
			f->mode = st.st_mode & 01777;
		f->uid = st.st_uid;
		f->gid = st.st_gid;
		return !f->link && (st.st_mode & 06000);
	}
	if (!f->mode)
		f->mode = f->link ? 0777 : 0644;
	f->uid = getuid();
	f->gid = getgid();
	if (slash && (size_t)(slash - f->d.path) < sizeof(parent)) {
		uint32_t m;
		memcpy(parent, f->d.path, (size_t)(slash - f->d.path));
		parent[slash - f->d.path] = '\0';
		bkr_rec_dir_attrs(rc, parent, false, &m, &f->uid, &f->gid);
	} else {
		int root = -1;
		if (bkr_rec_root_open(rc, &root) == 0 && fstat(root, &st) == 0) {
			f->uid = st.st_uid;
			f->gid = st.st_gid;
		}
		if (root >= 0)
			close(root);
	}
	return false;
}

/* ---- one file ---------------------------------------------------------- */

static const bkr_rec_strategy *forced_strategy(const bkr_rec_rule *rule, const bkr_recover_rules *rules,
					       bkr_strategy_type t, bkr_rec_strategy *tmp)
{
	for (size_t i = 0; i < rule->n; i++)
		if (rule->strategies[i].type == t)
			return &rule->strategies[i];
	for (size_t i = 0; i < rules->fallback.n; i++)
		if (rules->fallback.strategies[i].type == t)
			return &rules->fallback.strategies[i];
	memset(tmp, 0, sizeof(*tmp));
	tmp->type = t;
	tmp->key = (char *)"--strategy";
	tmp->timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
	tmp->git_ref = (char *)"HEAD";
	tmp->git_max_commits = 10000;
	return tmp;
}

static int try_strategy(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	switch (j->s->type) {
	case BKR_STRATEGY_BACKUP: return bkr_rec_try_backup(j, o);
	case BKR_STRATEGY_GIT: return bkr_rec_try_git(j, o);
	case BKR_STRATEGY_MONGODB:
		if (!j->s->uri)
			return bkr_rec_fail(o, BKR_EINVAL, "mongodb is not configured for this path (no rule sets uri)");
		return bkr_rec_try_mongodb(j, o);
	case BKR_STRATEGY_REGENERATE:
		if (!j->s->argv)
			return bkr_rec_fail(o, BKR_EINVAL, "regenerate is not configured for this path (no command)");
		return bkr_rec_try_regenerate(j, o);
	default: return bkr_rec_try_manual(j, o);
	}
}

/* The run's alerts of the manual strategy, sent at its end (bkr_rec_manual_send). */
typedef struct {
	bkr_rec_alert *v;
	size_t n;
} alerts;

static bool same_line(char *const *a, char *const *b)
{
	for (; *a && *b; a++, b++)
		if (strcmp(*a, *b))
			return false;
	return !*a && !*b;
}

/* File @p f (its manual attempt @p attempt) into the alert of command line
 * o->alert: the one of that line, else a new one (taking the line). */
static int alert_add(alerts *as, bkr_rec_outcome *o, bkr_rec_file *f, cJSON *attempt)
{
	bkr_rec_alert *a = NULL;
	bkr_rec_file **nf;
	cJSON **na;

	for (size_t i = 0; i < as->n && !a; i++)
		if (as->v[i].tmpl == o->alert_tmpl && same_line(as->v[i].argv, o->alert))
			a = &as->v[i];
	if (!a) {
		bkr_rec_alert *nv = realloc(as->v, (as->n + 1) * sizeof(*nv));
		if (!nv)
			return bkr_error_oom();
		as->v = nv;
		a = &nv[as->n++];
		memset(a, 0, sizeof(*a));
		a->argv = o->alert;
		a->tmpl = o->alert_tmpl;
		a->timeout_ms = o->alert_timeout_ms;
		o->alert = NULL;
	}
	if (!(nf = realloc(a->files, (a->n + 1) * sizeof(*nf))))
		return bkr_error_oom();
	a->files = nf;
	if (!(na = realloc(a->attempts, (a->n + 1) * sizeof(*na))))
		return bkr_error_oom();
	a->attempts = na;
	a->files[a->n] = f;
	a->attempts[a->n++] = attempt;
	return 0;
}

static void alerts_free(alerts *as)
{
	for (size_t i = 0; i < as->n; i++) {
		for (size_t k = 0; as->v[i].argv && as->v[i].argv[k]; k++)
			free(as->v[i].argv[k]);
		free(as->v[i].argv);
		free(as->v[i].files);
		free(as->v[i].attempts);
	}
	free(as->v);
}

/* The report entry @p e's error for a file whose alert was not delivered (@p why). */
static void add_undelivered_error(cJSON *e, const char *why)
{
	char *msg = NULL;

	if (asprintf(&msg, "needs a person, but the alert was not delivered: %s", why) < 0)
		msg = NULL;
	cJSON_AddStringToObject(e, "error", msg ? msg : "needs a person, but the alert was not delivered");
	free(msg);
}

/* Alert @p a not delivered (@p why): no one was asked, so each of its files is failed. */
static void alert_undelivered(const bkr_rec_alert *a, const char *why)
{
	for (size_t i = 0; i < a->n; i++) {
		cJSON *e = a->files[i]->entry;
		cJSON_ReplaceItemInObjectCaseSensitive(a->attempts[i], "result", cJSON_CreateString("alert_failed"));
		cJSON_ReplaceItemInObjectCaseSensitive(a->attempts[i], "error", cJSON_CreateString(why));
		cJSON_ReplaceItemInObjectCaseSensitive(e, "status", cJSON_CreateString("failed"));
		add_undelivered_error(e, why);
	}
}

/* Every alert of the run, once its files are done. */
static int alerts_send(bkr_recover *rc, const char *run_id, alerts *as, bkr_rec_hung *hung)
{
	for (size_t i = 0; i < as->n; i++) {
		char *why = NULL;
		int err = bkr_rec_manual_send(rc, run_id, &as->v[i], hung, &why);
		if (err == BKR_ENOMEM)
			return err;
		if (err < 0)
			alert_undelivered(&as->v[i], why);
		free(why);
		bkr_error_clear();
	}
	return 0;
}

static int recover_one(bkr_recover *rc, const bkr_recover_options *opts, const char *run_id, bkr_rec_hung *hung,
		       alerts *as, bkr_rec_file *f)
{
	bkr_rec_captures caps;
	const bkr_rec_rule *rule;
	cJSON *e = f->entry, *attempts;
	bkr_rec_strategy tmp;
	size_t n;
	char abs[PATH_MAX];
	bool manual = false, alert_failed = false;
	char *alert_error = NULL;

	cJSON_AddStringToObject(e, "path", f->d.path);
	cJSON_AddStringToObject(e, "kind", f->healthy ? "healthy" : bkr_damage_name(f->d.kind));
	cJSON_AddStringToObject(e, "reason", f->d.reason ? f->d.reason : "");
	cJSON_AddNumberToObject(e, "priority", f->d.priority);
	attempts = cJSON_AddArrayToObject(e, "attempts");
	if (!attempts)
		return bkr_error_oom();
	if (!bkr_rec_rel_ok(f->d.path) || (size_t)snprintf(abs, sizeof(abs), "%s/%s", rc->workspace, f->d.path) >= sizeof(abs)) {
		cJSON_AddStringToObject(e, "status", "failed");
		cJSON_AddStringToObject(e, "error", "path is not a clean path inside the workspace");
		return 0;
	}
	rule = bkr_rec_rule_for(rc->rules, f->d.path, &caps);
	cJSON_AddStringToObject(e, "rule", rule == &rc->rules->fallback ? "default_strategies" : rule->pattern);
	n = opts->force_strategy ? 1 : rule->n;
	for (size_t i = 0; i < n; i++) {
		const bkr_rec_strategy *s = opts->force_strategy
			? forced_strategy(rule, rc->rules, opts->strategy, &tmp) : &rule->strategies[i];
		bkr_rec_job j = { rc, f->d.path, abs, s, &caps,
				  f->d.kind == BKR_DAMAGE_TRUNCATED, f->d.reason,
				  f->healthy ? "healthy" : bkr_damage_name(f->d.kind), attempts, run_id,
				  !opts->apply };
		bkr_rec_outcome o = { 0 };
		int64_t t0 = bkr_rec_now_ms();
		int r;
		cJSON *a = cJSON_CreateObject();

		if (!a)
			return bkr_error_oom();
		bkr_error_clear();
		r = try_strategy(&j, &o);
		cJSON_AddStringToObject(a, "strategy", bkr_strategy_name(s->type));
		if (s->type == BKR_STRATEGY_MANUAL) {
			/* a person was asked only when the alert went out (or none is configured) */
			cJSON_AddStringToObject(a, "result", r < 0 ? "alert_failed" : "manual");
			if (r < 0) {
				alert_failed = true;
				free(alert_error);
				alert_error = bkr_rec_strdup(o.error ? o.error : bkr_error_message());
			} else {
				manual = true;
			}
		} else {
			cJSON_AddStringToObject(a, "result", r < 0 ? (r == BKR_EUNAVAILABLE ? "unavailable"
								      : r == BKR_ETIMEOUT ? "timeout"
								      : r == BKR_ENOTFOUND ? "not_found"
								      : r == BKR_ECORRUPT ? "invalid" : "failed")
							    : "recovered");
		}
		if (r < 0 || o.error)
			cJSON_AddStringToObject(a, "error", o.error ? o.error : bkr_error_message());
		else
			cJSON_AddNullToObject(a, "error");
		cJSON_AddNumberToObject(a, "duration_ms", (double)(bkr_rec_now_ms() - t0));
		if (o.source) {
			cJSON_AddItemToObject(a, "source", o.source);
			o.source = NULL;
		} else {
			cJSON_AddNullToObject(a, "source");
		}
		cJSON_AddItemToArray(attempts, a);
		if (r == 0 && o.alert && (r = alert_add(as, &o, f, a)) < 0) {
			bkr_rec_outcome_clear(&o);
			free(alert_error);
			return r;
		}
		if (r == 0 && (o.data || o.link) && s->type != BKR_STRATEGY_MANUAL) {
			char hex[BKR_ID_HEX];
			f->data = o.data;
			f->mapped = o.mapped;
			f->len = o.link ? strlen(o.link) : o.len;
			f->link = o.link;
			f->mode = o.mode;
			f->recorded = o.recorded;
			f->uid = o.uid;
			f->gid = o.gid;
			f->mtime_ns = o.mtime_ns;
			o.data = NULL;
			o.link = NULL;
			bkr_sha256(f->link ? (const void *)f->link : f->data, f->len, &f->sha);
			bool dropped = bkr_rec_settle(rc, f);
			bkr_id_to_hex(&f->sha, hex);
			cJSON_AddStringToObject(e, "status", "recovered");
			cJSON_AddStringToObject(e, "strategy", bkr_strategy_name(s->type));
			cJSON_AddStringToObject(e, "sha256", hex);
			cJSON_AddNumberToObject(e, "size", (double)f->len);
			if (f->link)
				cJSON_AddStringToObject(e, "symlink", f->link);
			if (dropped)
				cJSON_AddStringToObject(e, "setid_dropped", "the file it replaces is set-ID; this copy "
							"is not the backup's");
			bkr_rec_outcome_clear(&o);
			return 0;
		}
		bkr_rec_outcome_clear(&o);
		if (manual || alert_failed)
			break;
	}
	cJSON_AddStringToObject(e, "status", manual ? "manual" : "failed");
	cJSON_AddNullToObject(e, "strategy");
	cJSON_AddNullToObject(e, "sha256");
	if (alert_failed)
		add_undelivered_error(e, alert_error ? alert_error : "alert command failed");
	free(alert_error);
	return 0;
}

/* ---- the run ------------------------------------------------------------- */

/* Component-wise order ('/' sorts before every other byte), as trees are built. */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca == '/')
			ca = 1;
		if (cb == '/')
			cb = 1;
		if (ca != cb || !ca)
			return (int)ca - (int)cb;
	}
}

static int file_ptr_cmp(const void *a, const void *b)
{
	return path_cmp((*(bkr_rec_file *const *)a)->d.path, (*(bkr_rec_file *const *)b)->d.path);
}

/* Copy @p items, dropping duplicates; sorted by priority (descending, stable) as scan does. */
static int copy_items(const bkr_damage *items, const bool *healthy, size_t n, bkr_rec_file *files, size_t *nf)
{
	*nf = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < *nf; k++)
			dup = dup || strcmp(files[k].d.path, items[i].path) == 0;
		if (dup || !items[i].path)
			continue;
		files[*nf].d = items[i];
		files[*nf].d.path = strdup(items[i].path);
		files[*nf].d.reason = strdup(items[i].reason ? items[i].reason : "");
		files[*nf].healthy = healthy ? healthy[i] : false;
		(*nf)++;
		if (!files[*nf - 1].d.path || !files[*nf - 1].d.reason)
			return bkr_error_oom();
	}
	for (size_t i = 1; i < *nf; i++) {
		bkr_rec_file t = files[i];
		size_t k = i;
		while (k > 0 && files[k - 1].d.priority < t.d.priority) {
			files[k] = files[k - 1];
			k--;
		}
		files[k] = t;
	}
	return 0;
}

/* "setid_dropped" and "owner_error" (owner @p uid:@p gid) in @p obj, once. */
static void note_attrs(cJSON *obj, uint32_t uid, uint32_t gid, bool setid_dropped, int owner_errno)
{
	char *msg = NULL;

	if (setid_dropped && !cJSON_HasObjectItem(obj, "setid_dropped"))
		cJSON_AddStringToObject(obj, "setid_dropped",
					"its owner could not be set (not root, or the chown was refused)");
	if (owner_errno && !cJSON_HasObjectItem(obj, "owner_error") &&
	    asprintf(&msg, "owner %u:%u not set: chown: %s", (unsigned)uid, (unsigned)gid, strerror(owner_errno)) >= 0)
		cJSON_AddStringToObject(obj, "owner_error", msg);
	free(msg);
}

void bkr_rec_note_attrs(bkr_rec_file *f, bool setid_dropped, int owner_errno)
{
	note_attrs(f->entry, f->uid, f->gid, setid_dropped, owner_errno);
}

void bkr_rec_note_parent(bkr_rec_file *f, const char *dir, uint32_t uid, uint32_t gid, bool setid_dropped,
			 int owner_errno)
{
	cJSON *dirs = cJSON_GetObjectItemCaseSensitive(f->entry, "parent_dirs"), *d;

	if (!setid_dropped && !owner_errno)
		return;
	if (!dirs && !(dirs = cJSON_AddArrayToObject(f->entry, "parent_dirs")))
		return;
	if (!(d = cJSON_CreateObject()))
		return;
	cJSON_AddItemToArray(dirs, d);
	cJSON_AddStringToObject(d, "path", dir);
	note_attrs(d, uid, gid, setid_dropped, owner_errno);
}

static void apply_all(bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report *rep,
		      bkr_rec_file *files, size_t nf)
{
	int root = -1, rerr = 0;
	char *rwhy = NULL;
	struct stat rst = { 0 };

	if (opts->apply) {
		/* the workspace directory is opened once and must be the one the scan saw */
		if ((rerr = bkr_rec_root_open(rc, &root)) < 0 && !(rwhy = strdup(bkr_error_message())))
			rerr = bkr_error_oom();
		if (rerr == 0 && fstat(root, &rst) < 0)
			rerr = bkr_error_set_errno(errno, "workspace %s", rc->workspace);
		/* held until root is closed; a dead run's temporaries go first */
		if (rerr == 0)
			bkr_rec_workspace_hold(root, rep->root);
	}
	for (size_t i = 0; i < nf; i++) {
		bkr_rec_file *f = &files[i];
		char *why = NULL;
		int r;
		if (!bkr_rec_has_copy(f)) {
			cJSON_AddBoolToObject(f->entry, "applied", false);
			continue;
		}
		if (!opts->apply) {
			cJSON_AddBoolToObject(f->entry, "applied", false);
			cJSON_AddStringToObject(f->entry, "apply_result", "dry-run: workspace untouched");
			continue;
		}
		if (rerr < 0) {
			r = rerr;
			why = rwhy ? strdup(rwhy) : NULL;
		} else if (f->d.scanned.root && (f->d.scanned.root_dev != (uint64_t)rst.st_dev ||
						  f->d.scanned.root_ino != (uint64_t)rst.st_ino)) {
			/* scanned by another engine object (routine): its record of the root decides */
			r = bkr_error_set(BKR_EINVAL, "workspace %s is no longer the directory the scan looked at "
					  "(it or a parent was replaced or moved); nothing written there", rc->workspace);
			why = strdup(bkr_error_message());
		} else {
			r = bkr_rec_apply(rc, root, f, &why);
		}
		cJSON_AddBoolToObject(f->entry, "applied", f->applied);
		cJSON_AddStringToObject(f->entry, "apply_result", f->applied ? "written" : why ? why : "not written");
		/* counted in summary.failed: the text output names it (not "already identical") */
		cJSON_AddBoolToObject(f->entry, "apply_failed", !f->applied && r < 0);
		if (f->applied) {
			bkr_rec_note_attrs(f, f->setid_dropped, f->owner_errno);
			rep->sum.applied++;
		} else if (r < 0) {
			rep->sum.failed++;
		}
		free(why);
	}
	if (root >= 0)
		close(root);
	free(rwhy);
}

/* Store the run in the repository, else stage it; *json_io is the report as stored. */
static int store(bkr_recover *rc, bkr_recover_report *rep, bkr_rec_file **sorted, size_t nrec, char **json_io,
		 int64_t t0)
{
	int err = bkr_rec_store_repo(rc, rep, sorted, nrec, *json_io, (double)(bkr_rec_now_ms() - t0) / 1000.0);

	if (err == 0) {
		rep->sum.stored = true;
		return 0;
	}
	if (!(rep->store_error = strdup(bkr_error_message())))
		return bkr_error_oom();
	rep->sum.store_error = rep->store_error;
	cJSON_AddStringToObject(rep->storage, "repository_error", rep->store_error);
	if ((err = bkr_rec_store_staged(rc, rep, sorted, nrec, json_io)) < 0)
		bkr_error_prefix("recovery run %s: the repository could not be written (%s) and staging failed",
				 rep->run_id, rep->store_error);
	return err;
}

static int run(bkr_recover *rc, const bkr_damage *items, const bool *healthy, size_t n,
	       const bkr_recover_options *opts, bkr_recover_report **out)
{
	bkr_recover_options defaults = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	bkr_rec_file *files = NULL, **sorted = NULL;
	size_t nf = 0, nrec = 0;
	int64_t t0 = bkr_rec_now_ms();
	char *json = NULL;
	bkr_rec_hung hung = { 0 };
	alerts as = { 0 };
	int err = 0;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	bkr_rec_backups_hold(rc); /* every file, settle and store read the same list */
	if ((n && !(files = calloc(n, sizeof(*files)))) || (n && !(sorted = calloc(n, sizeof(*sorted))))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_rec_report_new(rc, opts, &rep)) < 0)
		goto done;
	if ((err = copy_items(items, healthy, n, files, &nf)) < 0)
		goto done;
	for (size_t i = 0; i < nf; i++) {
		bkr_rec_file *f = &files[i];
		if (!(f->entry = cJSON_CreateObject())) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(rep->files, f->entry);
		if ((err = recover_one(rc, opts, rep->run_id, &hung, &as, f)) < 0)
			goto done;
		if (rc->progress)
			rc->progress(rc->progress_ctx, "recovering", "files", i + 1, nf, 0, 0);
	}
	/* one alert for the files of each alert command line, not one a file */
	if ((err = alerts_send(rc, rep->run_id, &as, &hung)) < 0)
		goto done;
	for (size_t i = 0; i < nf; i++) {
		bkr_rec_file *f = &files[i];
		rep->sum.files++;
		if (bkr_rec_has_copy(f)) {
			rep->sum.recovered++;
			sorted[nrec++] = f;
		} else {
			cJSON *st = cJSON_GetObjectItemCaseSensitive(f->entry, "status");
			if (st && cJSON_IsString(st) && strcmp(st->valuestring, "manual") == 0)
				rep->sum.manual++; /* needs a person: not also a failure */
			else
				rep->sum.failed++;
		}
	}
	apply_all(rc, opts, rep, files, nf);
	if ((err = bkr_rec_report_finish(rc, rep, bkr_rec_now_ms() - t0, &json)) < 0)
		goto done;
	if (nrec > 1)
		qsort(sorted, nrec, sizeof(*sorted), file_ptr_cmp);
	if (!opts->no_store)
		err = store(rc, rep, sorted, nrec, &json, t0);
	else
		err = bkr_rec_report_restate(rep, "none", NULL, &json);
	if (err < 0)
		goto done;
	rep->json = json;
	json = NULL;
	*out = rep;
	rep = NULL;
done:
	free(json);
	for (size_t i = 0; i < nf; i++) {
		free(files[i].d.path);
		free(files[i].d.reason);
		bkr_rec_data_free(files[i].data, files[i].len, files[i].mapped);
		free(files[i].link);
	}
	free(files);
	free(sorted);
	for (size_t i = 0; i < hung.n; i++)
		free(hung.path[i]);
	alerts_free(&as);
	bkr_recover_report_free(rep);
	bkr_rec_backups_release(rc);
	return err;
}

int bkr_recover_items(bkr_recover *rc, const bkr_damage *items, size_t n, const bkr_recover_options *opts,
		      bkr_recover_report **out)
{
	return run(rc, items, NULL, n, opts, out);
}

int bkr_recover_file(bkr_recover *rc, const char *path, const bkr_recover_options *opts,
		     bkr_recover_report **out)
{
	bkr_rec_bindex bi = { 0 };
	bkr_damage d = { 0 };
	struct stat st;
	char *rel = NULL;
	bool healthy = false;
	int err;

	*out = NULL;
	bkr_rec_backups_hold(rc);
	if ((err = bkr_rec_relpath(rc, path, &rel)) < 0)
		goto done;
	if ((err = bkr_rec_bindex_load(rc, &bi)) < 0)
		goto done;
	bkr_rec_root_forget(rc); /* this check is the scan */
	if ((err = bkr_rec_check_one(rc, &bi, rel, opts && opts->deep, &d)) < 0)
		goto done;
	if (err == 0) { /* healthy, or no regular file: a directory is no file to recover */
		if (bkr_rec_lstat_ws(rc, rel, &st) < 0)
			bkr_error_clear();
		else if (S_ISDIR(st.st_mode)) {
			err = bkr_error_set(BKR_EINVAL, "%s: a directory; recover takes one file "
					    "('bkr batch' every damaged one)", rel);
			goto done;
		}
	}
	if (err == 0) {
		healthy = true;
		d.path = rel;
		d.kind = BKR_DAMAGE_INVALID;
		d.reason = (char *)"healthy: recovered into the run only, never applied";
		d.priority = bkr_rec_priority(rc, rel);
		err = run(rc, &d, &healthy, 1, opts, out);
		d.path = NULL;
		d.reason = NULL;
	} else {
		err = run(rc, &d, &healthy, 1, opts, out);
	}
done:
	free(d.path);
	free(d.reason);
	free(rel);
	bkr_rec_bindex_free(&bi);
	bkr_rec_backups_release(rc);
	return err;
}

int bkr_recover_batch(bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report **out)
{
	bkr_scan_result s = BKR_SCAN_RESULT_INIT;
	int err;

	*out = NULL;
	bkr_rec_backups_hold(rc); /* scan and the run read one list */
	if ((err = bkr_recover_scan(rc, opts && opts->deep ? BKR_SCAN_DEEP : 0, &s)) < 0) {
		bkr_rec_backups_release(rc);
		return err;
	}
	for (size_t i = 0; opts && opts->skipped && i < s.nskipped; i++)
		opts->skipped(opts->skipped_ctx, s.skipped[i].path, s.skipped[i].reason);
	if (s.n == 0) {
		/* nothing damaged: a report, but no run to store */
		bkr_recover_options quiet = opts ? *opts : (bkr_recover_options)BKR_RECOVER_OPTIONS_INIT;
		quiet.no_store = true;
		err = run(rc, NULL, NULL, 0, &quiet, out);
	} else {
		err = run(rc, s.items, NULL, s.n, opts, out);
	}
	bkr_scan_result_free(&s);
	bkr_rec_backups_release(rc);
	return err;
}

