/** @file
 * bkr create (alias backup): back up sources into the repository.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/host.h"
#include "bkr/backup.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "bkr/routine.h"

static const char usage[] =
	"usage: bkr create -r REPO [--type TYPE] [[NAME=]PATH...] [--source NAME]... [--tag T]...\n"
	"       bkr backup ...   (the same)\n\n"
	"Back up PATHs (each becomes a source named after its last component, or\n"
	"NAME with NAME=PATH, e.g. a=/a/config b=/b/config) or the sources of the\n"
	"configuration (-c).  Every backup is a complete tree.\n\n"
	"With a configuration and neither PATHs nor --source, only the sources that\n"
	"are due by their \"schedule\" are backed up: those without a backup, or whose\n"
	"newest backup is at least 90% of their interval old (hourly 1h, daily 1d,\n"
	"weekly 7d); \"manual\" sources only with --source or --all.\n\n"
	"  -t, --type TYPE        full | incremental | differential | snapshot (default incremental;\n"
	"                         without a parent an incremental reads everything, like a full)\n"
	"  -s, --source NAME      only this configured source (repeatable), due or not\n"
	"  -a, --all              every configured source, due or not (manual ones too)\n"
	"      --tag T            tag the backup (repeatable)\n"
	"      --pin-until DATE   snapshots: pinned until DATE (YYYY-MM-DD); default forever\n"
	"      --parent ID        use this backup as the parent instead of the automatic one\n"
	"      --threads N        worker threads (default: online CPUs)\n"
	"      --host NAME        record this host name instead of the local one\n"
	"  -x, --one-file-system  do not read other filesystems mounted below a source\n"
	"      --exclude PATTERN  leave out paths matching PATTERN (repeatable; see bkr(1))\n"
	"      --exclude-file FILE  patterns from FILE, one a line ('#' comments)\n"
	"      --no-wait          fail at once when a prune, cleanup, delete or repair holds the\n"
	"                         repository (default: wait for it)\n"
	"      --json             print the new manifest as JSON\n\n"
	"Exit status: 0 done; 5 locked (--no-wait); 6 done with warnings (unreadable or\n"
	"changing files); see bkr(1).\n";

enum { OPT_TAG = OPT_FIRST_CMD, OPT_PIN_UNTIL, OPT_PARENT, OPT_THREADS, OPT_HOST, OPT_EXCLUDE, OPT_EXCLUDE_FILE,
       OPT_NO_WAIT };

struct state {
	bkr_backup_options o;
	char *tags[64];
	size_t ntags;
	char *only[64];
	size_t nonly;
	bool all;
	const char **due;   /* configured sources due now (malloc'd; names borrowed) */
	size_t ndue;
	size_t warnings;
	cli *c;
	char **excludes;    /* --exclude and --exclude-file patterns (malloc'd) */
	size_t nexcludes;
};

static int add_exclude(struct state *s, const char *pat, size_t len)
{
	char **v = realloc(s->excludes, (s->nexcludes + 1) * sizeof(*v));
	if (!v)
		return -1;
	s->excludes = v;
	if (!(v[s->nexcludes] = strndup(pat, len)))
		return -1;
	s->nexcludes++;
	return 0;
}

/* Patterns of @p path, one a line; blank lines and lines starting with '#' are skipped. */
static int read_exclude_file(cli *c, struct state *s, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!f)
		return cli_usage_error(c, "--exclude-file: cannot open %s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if (memchr(line, '\0', (size_t)n)) {
			rc = cli_usage_error(c, "--exclude-file: %s: a line holds a NUL byte", path);
			break;
		}
		if (add_exclude(s, line, (size_t)n) < 0) {
			rc = cli_fail(c, bkr_error_oom());
			break;
		}
	}
	if (!rc && ferror(f))
		rc = cli_usage_error(c, "--exclude-file: cannot read %s: %s", path, strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	uint64_t v;
	switch (o) {
	case 't':
		if (bkr_backup_type_parse(arg, &s->o.type) < 0 || s->o.type == BKR_BACKUP_RECOVERY)
			return cli_usage_error(c, "--type: expected full, incremental, differential or snapshot, not '%s'", arg);
		return 0;
	case 's':
		if (s->nonly == 64)
			return cli_usage_error(c, "too many --source options");
		s->only[s->nonly++] = (char *)arg;
		return 0;
	case OPT_TAG:
		if (s->ntags == 64)
			return cli_usage_error(c, "too many --tag options");
		if (cli_check_tag(c, "--tag", arg))
			return BKR_EXIT_USAGE;
		s->tags[s->ntags++] = (char *)arg;
		return 0;
	case OPT_PIN_UNTIL: {
		int64_t t;
		if (bkr_time_parse(arg, &t) < 0)
			return strstr(bkr_error_message(), "out of range") ?
				cli_usage_error(c, "--pin-until: %s", bkr_error_message()) :
				cli_usage_error(c, "--pin-until: expected a date like 2027-01-31, not '%s'", arg);
		if (t <= bkr_time_now_ns()) /* the pin would already have ended */
			return cli_usage_error(c, "--pin-until: '%s' is not in the future", arg);
		s->o.pinned_until = arg;
		return 0;
	}
	case OPT_PARENT:
		s->o.parent = arg;
		return 0;
	case OPT_THREADS:
		if (cli_uint_arg(c, "--threads", arg, "", 1, 256, &v))
			return BKR_EXIT_USAGE;
		s->o.threads = (int)v;
		return 0;
	case OPT_HOST: /* not empty (cli_parse): "" was recorded as "localhost" */
		s->o.hostname = arg;
		return 0;
	case 'x':
		s->o.one_file_system = true;
		return 0;
	case 'a':
		s->all = true;
		return 0;
	case OPT_NO_WAIT:
		s->o.no_wait = true;
		return 0;
	case OPT_EXCLUDE:
		return add_exclude(s, arg, strlen(arg)) < 0 ? cli_fail(c, bkr_error_oom()) : 0;
	case OPT_EXCLUDE_FILE:
		return read_exclude_file(c, s, arg);
	}
	return cli_usage_error(c, "unknown option");
}

static void on_waiting(void *ctx)
{
	struct state *s = ctx;
	if (!s->c->quiet)
		fprintf(stderr, "bkr %s: waiting for a running prune, cleanup, delete or repair to finish...\n", s->c->cmd);
}

static void on_warning(void *ctx, const char *msg)
{
	struct state *s = ctx;
	s->warnings++;
	cli_problem(s->c, "%s", msg); /* the engine logged it; each one makes the exit status 6 */
}

/*
 * The configured sources due now (bkr/routine.h) into s->only.  None due:
 * say so (0 with s->nonly == 0).
 */
static int select_due(cli *c, bkr_repo *repo, const bkr_config *cfg, struct state *s)
{
	bkr_manifest_list l = { 0 };
	const char **names = NULL;
	size_t n = 0;
	int err;

	if ((err = bkr_repo_list(repo, false, &l, NULL)) < 0)
		return cli_fail(c, err);
	if (!(names = calloc(cfg->nsources ? cfg->nsources : 1, sizeof(*names)))) {
		bkr_manifest_list_free(&l);
		return cli_fail(c, bkr_error_oom());
	}
	int64_t now = bkr_time_now_ns();

	cli_warn_future_list(c, &l, now); /* not counted as the newest backup of their sources */
	char host[256];
	bkr_host_name(host, sizeof(host), s->o.hostname); /* the host the backup will record */
	bkr_routine_select(cfg, &l, now, BKR_ROUTINE_ANY, true, host, names, &n);
	bkr_manifest_list_free(&l);
	s->due = names;
	s->ndue = n;
	if (n == 0) {
		bkr_log(BKR_LOG_INFO, "backup", "no source is due");
		if (c->json) {
			json_out j;
			json_out_init(&j, stdout);
			json_out_begin_object(&j);
			json_out_key(&j, "created");
			json_out_null(&j);
			json_out_member(&j, "reason", "no source is due");
			json_out_end_object(&j);
		} else if (!c->quiet) {
			printf("no source is due (see \"schedule\" in the configuration; --all backs up every source)\n");
		}
	}
	return 0;
}

int cmd_create(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "source", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "tag", required_argument, NULL, OPT_TAG },
		{ "pin-until", required_argument, NULL, OPT_PIN_UNTIL },
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "one-file-system", no_argument, NULL, 'x' },
		{ "exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "exclude-file", required_argument, NULL, OPT_EXCLUDE_FILE },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .o = BKR_BACKUP_OPTIONS_INIT, .c = c };
	bkr_config *cfg = NULL;
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	cli_sources src = { 0 };
	int first, err, rc = 0;

	s.o.type = BKR_BACKUP_INCREMENTAL;
	const char *skip[3];
	if ((rc = cli_parse(c, argc, argv, usage, "t:s:xa", lo, opt, &s, &first))) {
		if (rc == CLI_PARSE_HELP)
			rc = 0;
		goto done;
	}
	if (s.o.pinned_until && s.o.type != BKR_BACKUP_SNAPSHOT)
		rc = cli_usage_error(c, "--pin-until goes with --type snapshot");
	else if ((err = cli_load_config(c, &cfg)) < 0)
		rc = cli_fail(c, err);
	else if (first < argc && (s.nonly || s.all))
		rc = cli_usage_error(c, "give PATHs, --source or --all, not two of them");
	else if (s.nonly && s.all)
		rc = cli_usage_error(c, "give --source or --all, not both");
	if (rc)
		goto done;
	/* a remote repository: the parent's trees come from the disk cache */
	if ((err = cli_open_repo(c, &repo, BKR_REPO_CACHED)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	if (cfg && first == argc && !s.nonly && !s.all) {
		if ((rc = select_due(c, repo, cfg, &s)) != 0 || s.ndue == 0)
			goto done;
	}
	if ((err = cli_sources_get(c, cfg, argv + first, argc - first, s.due ? (char **)s.due : s.only,
				   s.due ? s.ndue : s.nonly, &src)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	s.o.sources = src.specs;
	s.o.nsources = src.n;
	s.o.tags = (const char *const *)s.tags;
	s.o.ntags = s.ntags;
	s.o.workspace_root = src.workspace_root;
	s.o.progress = c->progress ? cli_backup_progress : NULL;
	s.o.progress_ctx = c;
	s.o.warning = on_warning;
	s.o.warning_ctx = &s;
	s.o.waiting = on_waiting;
	s.o.waiting_ctx = &s;
	s.o.future = cli_warn_future_cb; /* a parent passed over: dated in the future */
	s.o.future_ctx = c;
	s.o.excludes = (const char *const *)s.excludes;
	s.o.nexcludes = s.nexcludes;
	/* the repository itself is always left out; its tiers and the logs too */
	s.o.skip_paths = skip;
	s.o.nskip_paths = cli_skip_paths(cfg, skip);
	if (!cfg && c->log_dir)
		skip[s.o.nskip_paths++] = c->log_dir; /* the default log directory (bkr/log.h) */
	if ((err = bkr_backup_run(repo, &s.o, &m)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	cli_progress_done(c);
	if (c->json) {
		cli_print_manifest(c, m);
	} else if (!c->quiet) {
		char total[32], added[32], stored[32];
		cli_human_bytes(total, m->stats.bytes);
		cli_human_bytes(added, m->stats.new_bytes);
		cli_human_bytes(stored, m->stats.stored_bytes);
		printf("%s%s%s: %s backup of %llu files (%s), %s new, %s stored, in %.2fs\n",
		       cli_col(c, "green"), m->backup_id, cli_col(c, "reset"), bkr_backup_type_name(m->type),
		       (unsigned long long)m->stats.files, total, added, stored, m->duration_seconds);
		if (m->parent)
			printf("parent: %s\n", m->parent);
	}
	if (m->nwarnings)
		rc = BKR_EXIT_PARTIAL;
done:
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	cli_sources_free(&src);
	bkr_config_free(cfg);
	for (size_t i = 0; i < s.nexcludes; i++)
		free(s.excludes[i]);
	free(s.excludes);
	free(s.due);
	return rc;
}
