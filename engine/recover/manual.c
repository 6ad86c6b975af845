/** @file
 * The manual strategy: nothing could recover the file, so record it as
 * needing a person and run the alert command (the strategy's "command", else
 * recovery.alert_command, else the configuration's alert_command) with a JSON
 * description on stdin.  It never produces a file.  The alert is sent once a
 * run for every file of one command line, at the run's end, naming them all
 * (bkr/alert.h: the first few in its message, every one in its "files"):
 * 200 such files made 200 alert commands a run.  A file's attempt succeeds
 * when its alert was delivered (or when no alert command is configured).  A
 * command that timed out is not run again in the same run (bkr_rec_hung):
 * the later alerts of that command fail at once, naming the file it timed
 * out on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bkr/alert.h"
#include "bkr/error.h"
#include "recover_i.h"

int bkr_rec_try_manual(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	const bkr_rec_strategy *s = j->s;
	char **argv = NULL;
	size_t argc = 0;
	cJSON *cmd = NULL;
	char *const *tmpl = s->argv ? s->argv : j->rc->alert;
	int err = 0;

	if (!(o->source = cJSON_CreateObject()))
		return bkr_error_oom();
	if (!tmpl) {
		cJSON_AddNullToObject(o->source, "command");
		cJSON_AddStringToObject(o->source, "note", "recorded as needing a person; no alert command configured");
		return 0;
	}
	for (; tmpl[argc]; argc++)
		;
	if (!(argv = calloc(argc + 1, sizeof(*argv))) || !(cmd = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < argc; i++) {
		if (!(argv[i] = bkr_rec_substitute(tmpl[i], j->caps, j->abs, "", j->rc->workspace, j->rel))) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
	}
	cJSON_AddItemToObject(o->source, "command", cmd);
	cmd = NULL;
	if (j->dry_run) {
		cJSON_AddStringToObject(o->source, "note", "dry run: recorded as needing a person; no alert sent");
		goto done;
	}
	/* sent by the run once its files are done, with the others of this command line */
	o->alert = argv;
	o->alert_tmpl = tmpl;
	/* the strategy's "timeout", else recovery.alert_timeout (with its own command too) */
	o->alert_timeout_ms = s->timeout_set ? s->timeout_ms : j->rc->rules->alert_timeout_ms;
	argv = NULL;
done:
	cJSON_Delete(cmd);
	if (argv)
		for (size_t i = 0; i < argc; i++)
			free(argv[i]);
	free(argv);
	return err;
}

/* File @p f of alert @p a as the description names it; @p attempt its manual attempt (left out). */
static cJSON *describe_file(const bkr_recover *rc, const bkr_rec_file *f, const cJSON *attempt)
{
	cJSON *o = cJSON_CreateObject(), *tried = NULL;
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(f->entry, "attempts"), *x;
	char *abs = NULL;

	if (!o || asprintf(&abs, "%s/%s", rc->workspace, f->d.path) < 0 || !(tried = cJSON_CreateArray())) {
		cJSON_Delete(o);
		cJSON_Delete(tried);
		return NULL;
	}
	cJSON_AddStringToObject(o, "path", f->d.path);
	cJSON_AddStringToObject(o, "absolute_path", abs);
	cJSON_AddStringToObject(o, "kind", f->healthy ? "healthy" : bkr_damage_name(f->d.kind));
	cJSON_AddStringToObject(o, "reason", f->d.reason ? f->d.reason : "");
	/* the strategies tried before this one */
	cJSON_ArrayForEach(x, all)
		if (x != attempt)
			cJSON_AddItemToArray(tried, cJSON_Duplicate(x, true));
	cJSON_AddItemToObject(o, "attempts", tried);
	free(abs);
	return o;
}

int bkr_rec_manual_send(bkr_recover *rc, const char *run_id, const bkr_rec_alert *a, bkr_rec_hung *hung, char **why)
{
	char where[160], message[BKR_ALERT_MESSAGE];
	const char **paths = NULL;
	char *text = NULL;
	cJSON *msg = NULL, *files = NULL, *first = NULL;
	bkr_rec_proc p = { 0 };
	int err = 0;

	*why = NULL;
	for (size_t i = 0; hung && i < hung->n; i++) {
		if (hung->cmd[i] == a->tmpl) {
			err = bkr_error_set(BKR_ETIMEOUT,
					    "alert command not run: it timed out on the alert for %s earlier in this run",
					    hung->path[i]);
			goto done;
		}
	}
	if (!(paths = calloc(a->n, sizeof(*paths))) || !(msg = cJSON_CreateObject()) || !(files = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < a->n; i++) {
		cJSON *d = describe_file(rc, a->files[i], a->attempts[i]);
		if (!d) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(files, d);
		paths[i] = a->files[i]->d.path;
	}
	snprintf(where, sizeof(where), "the description's \"files\", and in 'bkr recovered %s'", run_id);
	cJSON_AddStringToObject(msg, "event", "bkr.recovery.manual");
	cJSON_AddStringToObject(msg, "run_id", run_id);
	cJSON_AddStringToObject(msg, "host", rc->hostname);
	cJSON_AddStringToObject(msg, "workspace", rc->workspace);
	cJSON_AddStringToObject(msg, "message",
				bkr_alert_needs_person(message, sizeof(message), paths, a->n, run_id, where));
	cJSON_AddNumberToObject(msg, "count", (double)a->n);
	/* the first file's, as a description of one file had them */
	first = cJSON_GetArrayItem(files, 0);
	cJSON_AddItemToObject(msg, "path", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(first, "path"), true));
	cJSON_AddItemToObject(msg, "absolute_path",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(first, "absolute_path"), true));
	cJSON_AddItemToObject(msg, "kind", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(first, "kind"), true));
	cJSON_AddItemToObject(msg, "reason", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(first, "reason"), true));
	cJSON_AddItemToObject(msg, "attempts", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(first, "attempts"), true));
	cJSON_AddItemToObject(msg, "files", files);
	files = NULL;
	/* UTF-8 JSON, a name that is not UTF-8 with "path_hex", as in the report */
	if (!(text = bkr_rec_json_print(msg, false))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_rec_spawn(a->argv, text, strlen(text), a->timeout_ms, &p)) < 0) {
		bkr_error_prefix("alert command");
		goto done;
	}
	if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
		char *d = bkr_rec_proc_describe("alert command", &p, a->timeout_ms);
		err = bkr_error_set(p.timed_out ? BKR_ETIMEOUT : BKR_ERROR, "%s", d ? d : "alert command failed");
		free(d);
		/* not run again in this run: a hung command would cost its timeout an alert */
		if (p.timed_out && hung && hung->n < BKR_REC_HUNG_MAX &&
		    (hung->path[hung->n] = bkr_rec_strdup(a->files[0]->d.path)))
			hung->cmd[hung->n++] = a->tmpl;
		goto done;
	}
done:
	if (err < 0 && err != BKR_ENOMEM && !(*why = bkr_rec_strdup(bkr_error_message())))
		err = bkr_error_oom();
	bkr_rec_proc_free(&p);
	free(text);
	free(paths);
	cJSON_Delete(msg);
	cJSON_Delete(files);
	return err;
}
