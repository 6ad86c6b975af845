/** @file
 * A recovery run's report (report.json, docs/recovery.md): its header, the
 * summary and where the run was stored; reading a stored run's report and
 * listing the runs of a repository (`bkr recovered`).  The per-file entries
 * are written by the run (run.c) as it tries each strategy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/utf8.h"
#include "recover_i.h"

/* ---- text that is not UTF-8 --------------------------------------------------- */

int bkr_rec_json_clean(cJSON *node)
{
	cJSON *it, *next;

	for (it = node ? node->child : NULL; it; it = next) {
		next = it->next;
		if (cJSON_IsString(it) && it->valuestring &&
		    !bkr_utf8_valid(it->valuestring, strlen(it->valuestring))) {
			char *clean = bkr_utf8_clean(it->valuestring), *hexkey = NULL, *hex = NULL;
			cJSON *rep = clean ? cJSON_CreateString(clean) : NULL;
			size_t n = strlen(it->valuestring);
			int err = 0;

			if (!rep || (it->string && !(rep->string = strdup(it->string))))
				err = bkr_error_oom();
			if (!err && cJSON_IsObject(node) && it->string) {
				/* "<key>_hex": the exact bytes, after the member */
				if (asprintf(&hexkey, "%s_hex", it->string) < 0 || !(hex = malloc(2 * n + 1))) {
					err = bkr_error_oom();
				} else {
					cJSON *h;
					bkr_hex_encode(it->valuestring, n, hex);
					if (!(h = cJSON_CreateString(hex)) || !(h->string = strdup(hexkey))) {
						cJSON_Delete(h);
						err = bkr_error_oom();
					} else {
						h->next = it->next;
						h->prev = it;
						if (it->next)
							it->next->prev = h;
						else
							node->child->prev = h;
						it->next = h;
					}
				}
			}
			free(hexkey);
			free(hex);
			free(clean);
			if (err) {
				cJSON_Delete(rep);
				return err;
			}
			cJSON_ReplaceItemViaPointer(node, it, rep);
		} else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
			int err = bkr_rec_json_clean(it);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

char *bkr_rec_json_print(cJSON *root, bool pretty)
{
	if (bkr_rec_json_clean(root) < 0)
		return NULL;
	return pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
}

const bkr_recover_summary *bkr_recover_report_summary(const bkr_recover_report *rep)
{
	return &rep->sum;
}

const char *bkr_recover_report_json(const bkr_recover_report *rep)
{
	return rep->json ? rep->json : "{}";
}

void bkr_recover_report_free(bkr_recover_report *rep)
{
	if (!rep)
		return;
	cJSON_Delete(rep->root);
	free(rep->json);
	free(rep->staged);
	free(rep->store_error);
	free(rep);
}

int bkr_rec_report_new(const bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report **out)
{
	bkr_recover_report *rep;
	char ts[32];
	int err = 0;

	*out = NULL;
	if (!(rep = calloc(1, sizeof(*rep))))
		return bkr_error_oom();
	rep->time_ns = bkr_time_now_ns();
	if ((err = bkr_backup_id_new(rep->run_id, sizeof(rep->run_id), BKR_BACKUP_RECOVERY, rep->time_ns)) < 0)
		goto done;
	rep->sum.run_id = rep->run_id;
	bkr_time_format(ts, rep->time_ns);
	if (!(rep->root = cJSON_CreateObject())) {
		err = bkr_error_oom();
		goto done;
	}
	cJSON_AddStringToObject(rep->root, "run_id", rep->run_id);
	cJSON_AddStringToObject(rep->root, "timestamp", ts);
	cJSON_AddStringToObject(rep->root, "hostname", rc->hostname);
	cJSON_AddStringToObject(rep->root, "workspace", rc->workspace);
	cJSON_AddStringToObject(rep->root, "mode", opts->apply ? "apply" : "dry-run");
	if (opts->force_strategy)
		cJSON_AddStringToObject(rep->root, "forced_strategy", bkr_strategy_name(opts->strategy));
	else
		cJSON_AddNullToObject(rep->root, "forced_strategy");
	rep->storage = cJSON_AddObjectToObject(rep->root, "storage");
	rep->summary = cJSON_AddObjectToObject(rep->root, "summary");
	rep->files = cJSON_AddArrayToObject(rep->root, "files");
	if (!rep->storage || !rep->summary || !rep->files) {
		err = bkr_error_oom();
		goto done;
	}
	*out = rep;
	rep = NULL;
done:
	bkr_recover_report_free(rep);
	return err;
}

int bkr_rec_report_finish(const bkr_recover *rc, bkr_recover_report *rep, int64_t duration_ms, char **json)
{
	cJSON *summary = rep->summary, *storage = rep->storage;

	*json = NULL;
	cJSON_AddNumberToObject(summary, "files", (double)rep->sum.files);
	cJSON_AddNumberToObject(summary, "recovered", (double)rep->sum.recovered);
	cJSON_AddNumberToObject(summary, "applied", (double)rep->sum.applied);
	cJSON_AddNumberToObject(summary, "manual", (double)rep->sum.manual);
	cJSON_AddNumberToObject(summary, "failed", (double)rep->sum.failed);
	cJSON_AddNumberToObject(summary, "duration_ms", (double)duration_ms);
	cJSON_AddStringToObject(storage, "kind", "repository");
	if (rc->repo)
		cJSON_AddStringToObject(storage, "path", bkr_repo_path(rc->repo));
	else
		cJSON_AddNullToObject(storage, "path");
	cJSON_AddStringToObject(storage, "report", "blob referenced by the run manifest (runs/<run_id>.json \"report\")");
	if (!(*json = bkr_rec_json_print(rep->root, true)))
		return bkr_error_oom();
	return 0;
}

int bkr_rec_report_restate(bkr_recover_report *rep, const char *kind, const char *path, char **json)
{
	char *txt;

	cJSON_ReplaceItemInObjectCaseSensitive(rep->storage, "kind", cJSON_CreateString(kind));
	if (path)
		cJSON_ReplaceItemInObjectCaseSensitive(rep->storage, "path", cJSON_CreateString(path));
	if (!(txt = bkr_rec_json_print(rep->root, true)))
		return bkr_error_oom();
	free(*json);
	*json = txt;
	return 0;
}

/* ---- stored runs ------------------------------------------------------------ */

int bkr_recover_read_report(bkr_repo *repo, const char *spec, char **out, size_t *len)
{
	bkr_manifest *m = NULL;
	uint8_t *data = NULL;
	struct stat st;
	size_t n = 0;
	int err;

	*out = NULL;
	if (len)
		*len = 0;
	/* a report names files and the hashes of files others may not read: a
	 * local repository's owner only (a bucket's readers are whoever holds
	 * its credentials) */
	if (!bkr_store_is_url(bkr_repo_path(repo))) {
		if (stat(bkr_repo_path(repo), &st) < 0)
			return bkr_error_set_errno(errno, "%s", bkr_repo_path(repo));
		if (geteuid() != 0 && geteuid() != st.st_uid)
			return bkr_error_set_errno(EACCES, "run reports of %s are readable only by its owner (uid %u)",
						   bkr_repo_path(repo), (unsigned)st.st_uid);
	}
	if ((err = bkr_repo_find_run(repo, spec, &m)) < 0)
		return err;
	if (bkr_id_is_zero(&m->report)) {
		err = bkr_error_set(BKR_ENOTFOUND, "run %s has no report", m->backup_id);
		goto done;
	}
	if ((err = bkr_repo_read_blob(repo, &m->report, BKR_BLOB_DATA, &data, &n)) < 0) {
		bkr_error_prefix("run %s: report", m->backup_id);
		goto done;
	}
	{
		char *s = realloc(data, n + 1);
		if (!s) {
			err = bkr_error_oom();
			goto done;
		}
		s[n] = '\0';
		data = NULL;
		if (!bkr_utf8_valid(s, n)) {
			cJSON *j = cJSON_ParseWithLength(s, n);
			char *t = j ? bkr_rec_json_print(j, true) : NULL;
			cJSON_Delete(j);
			if (t) {
				free(s);
				s = t;
				n = strlen(t);
			}
		}
		*out = s;
		if (len)
			*len = n;
	}
done:
	free(data);
	bkr_manifest_free(m);
	return err;
}

int bkr_recover_list_runs(bkr_repo *repo, char **out, size_t *bad)
{
	bkr_manifest_list l = { 0 };
	cJSON *arr = NULL;
	int err;

	*out = NULL;
	if ((err = bkr_repo_list(repo, true, &l, bad)) < 0)
		return err;
	if (!(arr = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < l.n; i++) {
		const bkr_manifest *m = l.items[i];
		cJSON *o = cJSON_CreateObject(), *rep = NULL;
		uint8_t *data = NULL;
		size_t n = 0;
		if (!o) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "run_id", m->backup_id);
		cJSON_AddStringToObject(o, "timestamp", m->timestamp ? m->timestamp : "");
		cJSON_AddStringToObject(o, "hostname", m->hostname ? m->hostname : "");
		cJSON_AddNumberToObject(o, "files_stored", (double)m->stats.files);
		if (!bkr_id_is_zero(&m->report) &&
		    bkr_repo_read_blob(repo, &m->report, BKR_BLOB_DATA, &data, &n) == 0) {
			rep = cJSON_ParseWithLength((const char *)data, n);
			free(data);
		}
		if (rep && cJSON_GetObjectItemCaseSensitive(rep, "summary")) {
			const cJSON *sm = cJSON_GetObjectItemCaseSensitive(rep, "summary");
			const char *keys[] = { "files", "recovered", "applied", "manual", "failed" };
			for (size_t k = 0; k < 5; k++) {
				const cJSON *v = cJSON_GetObjectItemCaseSensitive(sm, keys[k]);
				cJSON_AddNumberToObject(o, keys[k], cJSON_IsNumber(v) ? v->valuedouble : 0);
			}
			cJSON_AddItemToObject(o, "summary",
					      cJSON_DetachItemFromObjectCaseSensitive(rep, "summary"));
			cJSON *mode = cJSON_GetObjectItemCaseSensitive(rep, "mode");
			if (cJSON_IsString(mode))
				cJSON_AddStringToObject(o, "mode", mode->valuestring);
		} else {
			cJSON_AddNullToObject(o, "summary");
		}
		cJSON_Delete(rep);
	}
	if (!(*out = bkr_rec_json_print(arr, true)))
		err = bkr_error_oom();
done:
	cJSON_Delete(arr);
	bkr_manifest_list_free(&l);
	return err;
}
