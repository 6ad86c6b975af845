/** @file
 * bkr scan / recover / batch / recovered: the recovery engine's commands.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "bkr/io.h"
#include "bkr/backup.h"
#include "bkr/catalog.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/log.h"
#include "bkr/recover.h"
#include "bkr/utf8.h"

static const char scan_usage[] =
	"usage: bkr scan -c CONFIG [--deep] [--host NAME] [--json]\n\n"
	"Find missing, corrupted and required-but-absent files in the workspace.\n"
	"Quick by default (stat, and validators such as JSON parsing); --deep also\n"
	"hashes every file and compares it with the newest backup.\n"
	"Only this host's backups count (--host NAME: those 'bkr create --host NAME' made).\n"
	"Exit status: 0 nothing found, 1 damaged files found, 6 nothing found but some\n"
	"directory was not scanned (each is a 'skipped' line).\n";

static const char recover_usage[] =
	"usage: bkr recover -c CONFIG --file PATH [--strategy S] [--apply] [--deep] [--host NAME] [--json]\n\n"
	"Recover one workspace file with the configured strategies, in order:\n"
	"backup, git, mongodb, regenerate, manual (or only --strategy S).  The result\n"
	"is stored as a recovery run in the repository (see 'bkr recovered').\n"
	"Without --apply the workspace is not touched.\n\n"
	"  -f, --file PATH     the file (workspace-relative or absolute)\n"
	"  -s, --strategy S    backup | git | mongodb | regenerate | manual\n"
	"      --apply         write the recovered file into the workspace atomically\n"
	"      --deep          also compare the file's SHA-256 with the newest backup (scan --deep)\n"
	"      --host NAME     recover from the backups of host NAME (default: this host)\n"
	"Exit status: 0 recovered, 6 not recovered (see the report).\n";

static const char batch_usage[] =
	"usage: bkr batch -c CONFIG [--apply] [--deep] [--host NAME] [--json]\n\n"
	"Scan, then recover everything found, most important sources first.\n"
	"A clean scan stores no run.  Without --apply nothing is written.\n"
	"Exit status: 0 everything recovered (or nothing to do), 6 some files not recovered\n"
	"or some directory not scanned.\n";

static const char recovered_usage[] =
	"usage: bkr recovered -r REPO [RUN] [--json]\n\n"
	"List recovery runs, or print the report.json of RUN (an id, prefix or 'latest').\n";

enum { OPT_APPLY = OPT_FIRST_CMD, OPT_DEEP, OPT_HOST };

struct state {
	bkr_recover_options o;
	const char *file;
	const char *host;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	switch (o) {
	case 'f': s->file = arg; return 0;
	case 's':
		if (bkr_strategy_parse(arg, &s->o.strategy) < 0)
			return cli_usage_error(
				c, "--strategy: expected backup, git, mongodb, regenerate or manual, not '%s'", arg);
		s->o.force_strategy = true;
		return 0;
	case OPT_APPLY: s->o.apply = true; return 0;
	case OPT_DEEP: s->o.deep = true; return 0;
	case OPT_HOST:
		s->host = arg;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static const struct option recover_lo[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "strategy", required_argument, NULL, 's' },
	{ "apply", no_argument, NULL, OPT_APPLY },
	{ "deep", no_argument, NULL, OPT_DEEP },
	{ "host", required_argument, NULL, OPT_HOST },
	{ NULL, 0, NULL, 0 },
};
static const struct option batch_lo[] = {
	{ "apply", no_argument, NULL, OPT_APPLY },
	{ "deep", no_argument, NULL, OPT_DEEP },
	{ "host", required_argument, NULL, OPT_HOST },
	{ NULL, 0, NULL, 0 },
};


/* Does backup @p m hold a source in workspace @p ws (or the workspace)? */
static bool holds_workspace(const bkr_manifest *m, const char *ws)
{
	for (size_t i = 0; i < m->nsources; i++)
		if (m->sources[i].path && (bkr_path_under(m->sources[i].path, ws) || bkr_path_under(ws, m->sources[i].path)))
			return true;
	return false;
}

/* Only this workspace's backups of this host count (docs/recovery.md): when
 * there is none but the repository has others (a machine rebuilt under
 * another name, a workspace moved), say so and how to use them, rather than
 * compare with nothing in silence. */
static void warn_unused_backups(cli *c, const bkr_manifest_list *l, const char *host, const char *ws)
{
	const char *other_host = NULL, *other_ws = NULL;
	int64_t now = bkr_time_now_ns();
	size_t nhost = 0, nws = 0;
	char a[256], b[256];

	for (size_t i = 0; i < l->n; i++) {
		const bkr_manifest *m = l->items[i];
		if (m->type == BKR_BACKUP_RECOVERY || bkr_time_in_future(m->time_ns, now))
			continue;
		bool mine = holds_workspace(m, ws);
		if (mine && bkr_backup_of_host(m, host))
			return;
		if (mine && m->hostname && *m->hostname) {
			other_host = m->hostname;
			nhost++;
		} else if (!mine && bkr_backup_of_host(m, host) && m->workspace_root) {
			other_ws = m->workspace_root;
			nws++;
		}
	}
	if (nhost)
		cli_warn(c, "no backup of this workspace was made by host '%s', so none is compared with or recovered "
			    "from; %zu were made by other hosts (the newest by '%s'): give --host NAME to use a host's backups",
			 bkr_text_escape(a, sizeof(a), host, strlen(host)), nhost,
			 bkr_text_escape(b, sizeof(b), other_host, strlen(other_host)));
	else if (nws)
		cli_warn(c, "no backup of this host holds a source in %s, so none is compared with or recovered from; "
			    "%zu hold other paths (the newest, of workspace %s: a moved workspace is restored with "
			    "'bkr restore')",
			 bkr_text_escape(a, sizeof(a), ws, strlen(ws)), nws,
			 bkr_text_escape(b, sizeof(b), other_ws, strlen(other_ws)));
}

/* The configuration is required; the repository is optional (staged runs),
 * except for scan (@p need_repo): without the backups it cannot judge what
 * is missing or truncated, so a clean result would be false. */
static int open_engine(cli *c, bool need_repo, const char *host, bkr_config **cfg, bkr_repo **repo,
		       bkr_recover **rc)
{
	int err;
	*cfg = NULL;
	*repo = NULL;
	*rc = NULL;
	if ((err = cli_load_config(c, cfg)) < 0)
		return err;
	if (!*cfg)
		return bkr_error_set(BKR_EINVAL,
				     "the recovery commands need a configuration: give -c FILE or set BKR_CONFIG");
	if ((err = bkr_repo_open(repo, cli_repo_path(c, *cfg), 0)) < 0) {
		/* a wrong passphrase is the user's to fix, never a reason to go on
		 * without the backups (a missing file would not even be seen) */
		if (need_repo || err == BKR_EKEY)
			return err;
		cli_warn(c, "%s (recovering without the backup strategy)", bkr_error_message());
		*repo = NULL;
	} else {
		cli_warn_opened(c, *repo);
	}
	if ((err = bkr_recover_from_config(rc, *cfg, *repo)) < 0 || (host && (err = bkr_recover_set_host(*rc, host)) < 0))
		return err;
	if (c->progress)
		bkr_recover_set_progress(*rc, cli_progress_step, c);
	if (*repo) {
		/* not compared with nor recovered from: said once, from the
		 * engine's own listing, which the scan and run then use (held
		 * until close_engine: every manifest is read once) */
		const bkr_manifest_list *l;
		bkr_recover_hold_backups(*rc);
		if (bkr_recover_backups(*rc, &l) == 0) {
			cli_warn_future_list(c, l, bkr_time_now_ns());
			warn_unused_backups(c, l, bkr_recover_host(*rc), (*cfg)->workspace_root);
		}
		bkr_error_clear();
	}
	return 0;
}

static void close_engine(bkr_config *cfg, bkr_repo *repo, bkr_recover *rc)
{
	bkr_recover_free(rc); /* releases the listing open_engine held */
	bkr_repo_free(repo);
	bkr_config_free(cfg);
}

int cmd_scan(cli *c, int argc, char **argv)
{
	static const struct option lo[] = { { "deep", no_argument, NULL, OPT_DEEP },
					    { "host", required_argument, NULL, OPT_HOST },
					    { NULL, 0, NULL, 0 } };
	struct state s = { .o = BKR_RECOVER_OPTIONS_INIT };
	bkr_scan_result res = BKR_SCAN_RESULT_INIT;
	bkr_config *cfg;
	bkr_repo *repo;
	bkr_recover *rc;
	int first, err, ret = 0;

	CLI_PARSE(c, argc, argv, scan_usage, "", lo, opt, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if ((err = open_engine(c, true, s.host, &cfg, &repo, &rc)) < 0 ||
	    (err = bkr_recover_scan(rc, s.o.deep ? BKR_SCAN_DEEP : 0, &res)) < 0) {
		ret = cli_fail(c, err);
		goto done;
	}
	cli_progress_done(c); /* the findings stand alone */
	if (c->json) {
		char *text = bkr_scan_result_to_json(&res, true);
		json_out j;
		if (!text) {
			ret = cli_fail(c, bkr_error_oom());
			goto done;
		}
		json_out_init(&j, stdout);
		json_out_raw(&j, text);
		free(text);
	} else {
		for (size_t i = 0; i < res.n; i++)
		{
			printf("%s%-9s%s ", cli_col(c, "red"), bkr_damage_name(res.items[i].kind), cli_col(c, "reset"));
			cli_print_name(stdout, res.items[i].path, strlen(res.items[i].path));
			/* a validator's message may quote the file: no escape sequence reaches the terminal */
			char *why = bkr_text_escape_dup(res.items[i].reason, strlen(res.items[i].reason)); /* whole */
			printf(": %s\n", why ? why : "(out of memory escaping the reason)");
			free(why);
		}
		/* a directory not looked into: on stdout with the findings (-q keeps it) */
		for (size_t i = 0; i < res.nskipped; i++) {
			printf("%s%-9s%s ", cli_col(c, "yellow"), "skipped", cli_col(c, "reset"));
			cli_print_name(stdout, res.skipped[i].path, strlen(res.skipped[i].path));
			printf(": %s\n", res.skipped[i].reason);
		}
		if (!c->quiet) {
			fprintf(stderr, "%zu damaged file%s among %llu checked%s%s", res.n, res.n == 1 ? "" : "s",
				(unsigned long long)res.files_checked, res.backup_id ? " against " : "",
				res.backup_id ? res.backup_id : "");
			if (res.nskipped)
				fprintf(stderr, "; %zu director%s not scanned", res.nskipped,
					res.nskipped == 1 ? "y" : "ies");
			fputc('\n', stderr);
		}
	}
	for (size_t i = 0; i < res.nskipped; i++)
		bkr_log_kv(BKR_LOG_WARN, "scan", (const char *[]){ "path", res.skipped[i].path, NULL }, "%s: %s",
			   res.skipped[i].path, res.skipped[i].reason);
	bkr_log_event(res.n || res.nskipped ? BKR_LOG_WARN : BKR_LOG_INFO, "scan", "scanned", NULL,
		      "%zu damaged files, %zu directories not scanned", res.n, res.nskipped);
	/* damage found is 1; else a directory not scanned is 6 (done, but
	 * something was skipped, each named): never 0, as if all was checked */
	ret = res.n ? BKR_EXIT_FOUND : res.nskipped ? BKR_EXIT_PARTIAL : 0;
done:
	bkr_scan_result_free(&res);
	close_engine(cfg, repo, rc);
	return ret;
}

/*
 * Text output: a warning for each temporary of a dead run removed from the
 * workspace, one line for each file not recovered (the last attempt's
 * error), and a warning for a recovered file whose newer copies were
 * rejected (the commit or backup taken is not the newest one), whose owner
 * root could not set (owner_error), that is not set-ID as the file it
 * replaces or its backup is (setid_dropped) or whose staged copy lacks an
 * attribute (stage_warnings).
 */
static void report_lines(cli *c, const char *json)
{
	cJSON *root = cJSON_Parse(json), *f, *stale = cJSON_GetObjectItem(root, "stale_temporaries"), *t;
	char a[512], b[512], d[512];

	/* what a run that died left in the workspace, removed before this one wrote */
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(stale, "removed")) {
		if (!cJSON_IsString(t))
			continue;
		bkr_text_escape(a, sizeof(a), t->valuestring, strlen(t->valuestring));
		cli_warn(c, "%s: removed: a temporary left by a recover run that died", a);
	}
	if (cJSON_IsString(t = cJSON_GetObjectItem(stale, "error"))) {
		bkr_text_escape(a, sizeof(a), t->valuestring, strlen(t->valuestring));
		cli_warn(c, "temporaries of a recover run that died: %s", a);
	}
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files")) {
		cJSON *st = cJSON_GetObjectItem(f, "status"), *path = cJSON_GetObjectItem(f, "path"), *at;
		const char *err = NULL, *id = NULL;
		cJSON *rejected = NULL, *win = NULL;
		if (!cJSON_IsString(st) || !cJSON_IsString(path))
			continue;
		cJSON_ArrayForEach(at, cJSON_GetObjectItem(f, "attempts")) {
			cJSON *e = cJSON_GetObjectItem(at, "error"), *r = cJSON_GetObjectItem(at, "result");
			if (cJSON_IsString(e))
				err = e->valuestring;
			if (cJSON_IsString(r) && !strcmp(r->valuestring, "recovered"))
				win = at;
		}
		bkr_text_escape(a, sizeof(a), path->valuestring, strlen(path->valuestring));
		if (strcmp(st->valuestring, "recovered") != 0) {
			bkr_text_escape(b, sizeof(b), err ? err : "", err ? strlen(err) : 0);
			printf("%s%-9s%s %s: %s\n", cli_col(c, "red"), st->valuestring, cli_col(c, "reset"), a,
			       err ? b : "no strategy recovered it");
			continue;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItem(f, "apply_failed"))) {
			/* recovered, but the workspace was not written: counted as failed */
			cJSON *why = cJSON_GetObjectItem(f, "apply_result");
			const char *w = cJSON_IsString(why) ? why->valuestring : "not written";
			bkr_text_escape(b, sizeof(b), w, strlen(w));
			printf("%s%-9s%s %s: recovered, not written: %s\n", cli_col(c, "red"), "failed", cli_col(c, "reset"),
			       a, b);
		}
		cJSON *owner = cJSON_GetObjectItem(f, "owner_error");
		if (cJSON_IsString(owner)) {
			bkr_text_escape(b, sizeof(b), owner->valuestring, strlen(owner->valuestring));
			cli_warn(c, "%s: %s", a, b);
		}
		cJSON *setid = cJSON_GetObjectItem(f, "setid_dropped");
		if (cJSON_IsString(setid)) {
			bkr_text_escape(b, sizeof(b), setid->valuestring, strlen(setid->valuestring));
			cli_warn(c, "%s: recovered without the set-ID bits: %s", a, b);
		}
		cJSON *pd;
		cJSON_ArrayForEach(pd, cJSON_GetObjectItem(f, "parent_dirs")) {
			cJSON *dp = cJSON_GetObjectItem(pd, "path"), *o = cJSON_GetObjectItem(pd, "owner_error");
			cJSON *s = cJSON_GetObjectItem(pd, "setid_dropped");
			if (!cJSON_IsString(dp))
				continue;
			bkr_text_escape(d, sizeof(d), dp->valuestring, strlen(dp->valuestring));
			if (cJSON_IsString(o)) {
				bkr_text_escape(b, sizeof(b), o->valuestring, strlen(o->valuestring));
				cli_warn(c, "%s: made for %s: %s", d, a, b);
			}
			if (cJSON_IsString(s)) {
				bkr_text_escape(b, sizeof(b), s->valuestring, strlen(s->valuestring));
				cli_warn(c, "%s: made for %s without the set-ID bits: %s", d, a, b);
			}
		}
		cJSON *sw;
		cJSON_ArrayForEach(sw, cJSON_GetObjectItem(f, "stage_warnings")) {
			if (!cJSON_IsString(sw))
				continue;
			bkr_text_escape(b, sizeof(b), sw->valuestring, strlen(sw->valuestring));
			cli_warn(c, "%s: staged copy: %s", a, b);
		}
		rejected = win ? cJSON_GetObjectItem(cJSON_GetObjectItem(win, "source"), "rejected") : NULL;
		if (cJSON_GetArraySize(rejected) > 0) {
			cJSON *first = cJSON_GetArrayItem(rejected, 0), *src = cJSON_GetObjectItem(win, "source");
			cJSON *reason = cJSON_GetObjectItem(first, "reason");
			const char *taken = cJSON_IsString(cJSON_GetObjectItem(src, "commit"))
						    ? cJSON_GetObjectItem(src, "commit")->valuestring
						    : cJSON_IsString(cJSON_GetObjectItem(src, "backup_id"))
							      ? cJSON_GetObjectItem(src, "backup_id")->valuestring
							      : "?";
			id = cJSON_IsString(cJSON_GetObjectItem(first, "commit"))
				     ? cJSON_GetObjectItem(first, "commit")->valuestring
				     : cJSON_IsString(cJSON_GetObjectItem(first, "backup_id"))
					       ? cJSON_GetObjectItem(first, "backup_id")->valuestring
					       : "?";
			bkr_text_escape(b, sizeof(b), cJSON_IsString(reason) ? reason->valuestring : "?",
					cJSON_IsString(reason) ? strlen(reason->valuestring) : 1);
			bkr_text_escape(d, sizeof(d), id, strlen(id));
			cli_warn(c, "%s: recovered from an older copy (%s); %d newer cop%s skipped, the newest %s: %s",
				 a, taken, cJSON_GetArraySize(rejected),
				 cJSON_GetArraySize(rejected) == 1 ? "y" : "ies", d, b);
		}
	}
	cJSON_Delete(root);
}

static int report_out(cli *c, bkr_recover_report *rep)
{
	const bkr_recover_summary *sum = bkr_recover_report_summary(rep);
	cli_progress_done(c); /* the report stands alone */
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_raw(&j, bkr_recover_report_json(rep));
	} else {
		report_lines(c, bkr_recover_report_json(rep)); /* files not recovered: also with -q */
		if (c->quiet)
			goto logged;
		if (!sum->files && !sum->stored && !sum->staged_dir) {
			/* a clean batch stores no run: naming its id would send the
			 * reader to 'bkr recovered ID', which does not know it */
			printf("nothing to recover: no damaged file found; no recovery run stored\n");
			goto logged;
		}
		printf("run %s: %zu file%s, %s%zu recovered%s, %zu applied, %zu need a person, %zu failed\n",
		       sum->run_id, sum->files, sum->files == 1 ? "" : "s", cli_col(c, "green"), sum->recovered,
		       cli_col(c, "reset"), sum->applied, sum->manual, sum->failed);
		if (sum->stored)
			printf("stored in the repository: bkr recovered %s\n", sum->run_id);
		else if (sum->staged_dir)
			printf("repository not writable (%s): staged in %s\n",
			       sum->store_error ? sum->store_error : "?", sum->staged_dir);
	}
logged:
	bkr_log_event(sum->failed ? BKR_LOG_WARN : BKR_LOG_INFO, "recover", "run",
		      (const char *[]){ "run_id", sum->run_id ? sum->run_id : "", NULL },
		      "run %s: %zu files, %zu recovered, %zu applied, %zu need a person, %zu failed",
		      sum->run_id ? sum->run_id : "-", sum->files, sum->recovered, sum->applied, sum->manual, sum->failed);
	return sum->failed || sum->recovered < sum->files ? BKR_EXIT_PARTIAL : 0;
}

int cmd_recover(cli *c, int argc, char **argv)
{
	struct state s = { .o = BKR_RECOVER_OPTIONS_INIT };
	bkr_recover_report *rep = NULL;
	bkr_config *cfg;
	bkr_repo *repo;
	bkr_recover *rc;
	int first, err, ret;

	CLI_PARSE(c, argc, argv, recover_usage, "f:s:", recover_lo, opt, &s, &first);
	if (!s.file && first < argc)
		s.file = argv[first++];
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if (!s.file)
		return cli_usage_error(c, "--file PATH is required");
	if ((err = open_engine(c, false, s.host, &cfg, &repo, &rc)) < 0 || (err = bkr_recover_file(rc, s.file, &s.o, &rep)) < 0)
		ret = cli_fail(c, err);
	else
		ret = report_out(c, rep);
	bkr_recover_report_free(rep);
	close_engine(cfg, repo, rc);
	return ret;
}

struct batch_skips {
	cli *c;
	size_t n;
};

/* batch: a directory its scan did not look into is a warning naming it (scan lists it) */
static void on_batch_skipped(void *ctx, const char *path, const char *reason)
{
	struct batch_skips *sk = ctx;
	char pbuf[8192];
	sk->n++;
	bkr_log_kv(BKR_LOG_WARN, "batch", (const char *[]){ "path", path, NULL }, "%s: %s", path, reason);
	cli_problem(sk->c, "%s: %s", bkr_text_escape(pbuf, sizeof(pbuf), path, strlen(path)), reason);
}

int cmd_batch(cli *c, int argc, char **argv)
{
	struct state s = { .o = BKR_RECOVER_OPTIONS_INIT };
	bkr_recover_report *rep = NULL;
	bkr_config *cfg;
	bkr_repo *repo;
	bkr_recover *rc;
	int first, err, ret;

	CLI_PARSE(c, argc, argv, batch_usage, "", batch_lo, opt, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	struct batch_skips sk = { c, 0 };
	s.o.skipped = on_batch_skipped;
	s.o.skipped_ctx = &sk;
	if ((err = open_engine(c, false, s.host, &cfg, &repo, &rc)) < 0 || (err = bkr_recover_batch(rc, &s.o, &rep)) < 0)
		ret = cli_fail(c, err);
	else if ((ret = report_out(c, rep)) == 0 && sk.n)
		ret = BKR_EXIT_PARTIAL; /* files there were neither checked nor recovered */
	bkr_recover_report_free(rep);
	close_engine(cfg, repo, rc);
	return ret;
}

int cmd_recovered(cli *c, int argc, char **argv)
{
	bkr_repo *repo = NULL;
	char *text = NULL;
	size_t len, bad = 0;
	int first, err;

	CLI_PARSE(c, argc, argv, recovered_usage, "", NULL, NULL, NULL, &first);
	if (argc - first > 1)
		return cli_usage_error(c, "expected at most one RUN");
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if (first < argc)
		err = bkr_recover_read_report(repo, argv[first], &text, &len);
	else
		err = bkr_recover_list_runs(repo, &text, &bad);
	bkr_repo_free(repo);
	if (err < 0)
		return cli_fail(c, err);
	if (bad) /* as bkr list: the others are listed, the damage is said and exits 4 */
		cli_problem(c, "%zu recovery run manifest(s) are damaged and not listed; last: %s", bad, bkr_error_message());
	if (c->json || first < argc) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_raw(&j, text);
	} else {
		cJSON *arr = cJSON_Parse(text), *it;
		if (cJSON_GetArraySize(arr) == 0 && !c->quiet)
			fprintf(stderr, "no recovery runs\n");
		cJSON_ArrayForEach(it, arr) {
			const cJSON *id = cJSON_GetObjectItem(it, "run_id"), *ts = cJSON_GetObjectItem(it, "timestamp");
			const cJSON *files = cJSON_GetObjectItem(it, "files"), *rec = cJSON_GetObjectItem(it, "recovered");
			printf("%s  %s  %d files, %d recovered\n", cJSON_IsString(id) ? id->valuestring : "?",
			       cJSON_IsString(ts) ? ts->valuestring : "?", cJSON_IsNumber(files) ? files->valueint : 0,
			       cJSON_IsNumber(rec) ? rec->valueint : 0);
		}
		cJSON_Delete(arr);
	}
	free(text);
	return bad ? BKR_EXIT_CORRUPT : 0;
}
