/** @file
 * The manual strategy: nothing could recover the file, so record it as
 * needing a person and run the alert command (the strategy's "command", else
 * recovery.alert_command, else the configuration's alert_command) with a JSON
 * description on stdin.  It never produces a file; the attempt succeeds when
 * the alert was delivered (or when no alert command is configured).  A
 * command that timed out is not run again in the same run (bkr_rec_hung):
 * the later files' alerts fail at once, naming the file it timed out on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bkr/error.h"
#include "recover_i.h"

int bkr_rec_try_manual(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	const bkr_rec_strategy *s = j->s;
	char **argv = NULL, *text = NULL;
	size_t argc = 0;
	cJSON *msg = NULL, *cmd = NULL;
	bkr_rec_proc p = { 0 };
	int64_t timeout = s->argv ? s->timeout_ms : j->rc->rules->alert_timeout_ms;
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
	if (!(argv = calloc(argc + 1, sizeof(*argv))) || !(cmd = cJSON_CreateArray()) ||
	    !(msg = cJSON_CreateObject())) {
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
	cJSON_AddStringToObject(msg, "event", "bkr.recovery.manual");
	cJSON_AddStringToObject(msg, "run_id", j->run_id ? j->run_id : "");
	cJSON_AddStringToObject(msg, "host", j->rc->hostname);
	cJSON_AddStringToObject(msg, "workspace", j->rc->workspace);
	cJSON_AddStringToObject(msg, "path", j->rel);
	cJSON_AddStringToObject(msg, "absolute_path", j->abs);
	cJSON_AddStringToObject(msg, "kind", j->kind ? j->kind : "");
	cJSON_AddStringToObject(msg, "reason", j->reason ? j->reason : "");
	if (j->attempts)
		cJSON_AddItemToObject(msg, "attempts", cJSON_Duplicate(j->attempts, true));
	/* UTF-8 JSON, a name that is not UTF-8 with "path_hex", as in the report */
	if (!(text = bkr_rec_json_print(msg, false))) {
		err = bkr_error_oom();
		goto done;
	}
	cJSON_AddItemToObject(o->source, "command", cmd);
	cmd = NULL;
	if (j->dry_run) {
		cJSON_AddStringToObject(o->source, "note", "dry run: recorded as needing a person; no alert sent");
		err = 0;
		goto done;
	}
	for (size_t i = 0; j->hung && i < j->hung->n; i++) {
		if (j->hung->cmd[i] == tmpl) {
			err = bkr_rec_fail(o, BKR_ETIMEOUT,
					   "alert command not run: it timed out on the alert for %s earlier in this run",
					   j->hung->path[i]);
			goto done;
		}
	}
	if ((err = bkr_rec_spawn(argv, text, strlen(text), timeout, &p)) < 0) {
		err = bkr_rec_fail(o, err, "alert command: %s", bkr_error_message());
		goto done;
	}
	if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
		char *d = bkr_rec_proc_describe("alert command", &p, timeout);
		err = bkr_rec_fail(o, p.timed_out ? BKR_ETIMEOUT : BKR_ERROR, "%s", d ? d : "alert command failed");
		free(d);
		/* not run again in this run: a hung command would cost its timeout a file */
		if (p.timed_out && j->hung && j->hung->n < BKR_REC_HUNG_MAX &&
		    (j->hung->path[j->hung->n] = bkr_rec_strdup(j->rel)))
			j->hung->cmd[j->hung->n++] = tmpl;
		goto done;
	}
	err = 0;
done:
	bkr_rec_proc_free(&p);
	free(text);
	cJSON_Delete(msg);
	cJSON_Delete(cmd);
	if (argv)
		for (size_t i = 0; i < argc; i++)
			free(argv[i]);
	free(argv);
	return err;
}
