/** @file
 * bkr restore: write a backup, or some of its paths, into a directory.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/error.h"
#include "bkr/restore.h"

static const char usage[] =
	"usage: bkr restore -r REPO ID [PATH...] --target DIR [--numeric-ids] [--overwrite]\n\n"
	"Restore backup ID (an id, a unique prefix, or 'latest') into DIR: its sources\n"
	"appear as DIR/<source>/...  PATHs (\"source/dir/file\") restore only those.\n"
	"Every chunk and every file's hash is verified while writing; a damaged file\n"
	"fails alone and the rest is restored (exit status 6).\n\n"
	"  -t, --target DIR   where to restore (created if missing)\n"
	"      --numeric-ids  owners by number, not by name\n"
	"      --overwrite    replace existing files in DIR\n"
	"      --threads N    worker threads (default: online CPUs)\n";

enum { OPT_NUMERIC = OPT_FIRST_CMD, OPT_OVERWRITE, OPT_THREADS };

struct state {
	bkr_restore_options o;
	cli *c;
	uint64_t errors;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	char *end;
	switch (o) {
	case 't': s->o.target = arg; return 0;
	case OPT_NUMERIC: s->o.numeric_ids = true; return 0;
	case OPT_OVERWRITE: s->o.overwrite = true; return 0;
	case OPT_THREADS:
		s->o.threads = (int)strtol(arg, &end, 10);
		if (*end || s->o.threads < 1 || s->o.threads > 256)
			return cli_usage_error(c, "--threads: expected 1..256, not '%s'", arg);
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static void on_progress(void *ctx, const bkr_restore_progress *p)
{
	struct state *s = ctx;
	char done[32], total[32];
	cli_human_bytes(done, p->bytes_done);
	cli_human_bytes(total, p->bytes_total);
	cli_progress(s->c, "%llu files, %s/%s", (unsigned long long)p->files_done, done, total);
}

static void on_report(void *ctx, bool error, const char *path, const char *message)
{
	struct state *s = ctx;
	if (error) {
		s->errors++;
		cli_progress_done(s->c);
		fprintf(stderr, "%sbkr restore:%s %s: %s\n", cli_col(s->c, "red"), cli_col(s->c, "reset"), path, message);
	} else {
		cli_warn(s->c, "%s: %s", path, message);
	}
}

int cmd_restore(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "target", required_argument, NULL, 't' },
		{ "numeric-ids", no_argument, NULL, OPT_NUMERIC },
		{ "overwrite", no_argument, NULL, OPT_OVERWRITE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .o = BKR_RESTORE_OPTIONS_INIT, .c = c };
	bkr_restore_stats st = { 0 };
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "t:", lo, opt, &s, &first);
	if (first >= argc)
		return cli_usage_error(c, "expected a backup ID");
	if (!s.o.target)
		return cli_usage_error(c, "--target DIR is required");
	for (int i = first + 1; i < argc; i++)
		while (argv[i][0] == '/')
			argv[i]++;
	s.o.paths = (const char *const *)(argv + first + 1);
	s.o.npaths = (size_t)(argc - first - 1);
	s.o.progress = on_progress;
	s.o.progress_ctx = &s;
	s.o.report = on_report;
	s.o.report_ctx = &s;
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = bkr_repo_find_backup(repo, argv[first], &m)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	err = bkr_restore_run(repo, m, &s.o, &st);
	cli_progress_done(c);
	if (err < 0 && st.errors == 0 && s.errors == 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	if (c->json) {
		printf("{\"backup_id\":\"%s\",\"target\":", m->backup_id);
		cli_json_string(stdout, s.o.target, strlen(s.o.target));
		printf(",\"files\":%llu,\"dirs\":%llu,\"symlinks\":%llu,\"hardlinks\":%llu,\"specials\":%llu,"
		       "\"bytes\":%llu,\"errors\":%llu,\"warnings\":%llu}\n",
		       (unsigned long long)st.files, (unsigned long long)st.dirs, (unsigned long long)st.symlinks,
		       (unsigned long long)st.hardlinks, (unsigned long long)st.specials,
		       (unsigned long long)st.bytes, (unsigned long long)st.errors, (unsigned long long)st.warnings);
	} else if (!c->quiet) {
		char b[32];
		cli_human_bytes(b, st.bytes);
		printf("restored %s into %s: %llu files, %llu directories, %s", m->backup_id, s.o.target,
		       (unsigned long long)st.files, (unsigned long long)st.dirs, b);
		if (st.errors)
			printf(", %s%llu failed%s", cli_col(c, "red"), (unsigned long long)st.errors, cli_col(c, "reset"));
		putchar('\n');
	}
	if (st.errors || s.errors || err < 0)
		rc = BKR_EXIT_PARTIAL;
done:
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	return rc;
}
