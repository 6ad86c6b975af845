/** @file
 * bkr restore: write a backup, or some of its paths, into a directory.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/utf8.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "bkr/restore.h"

static const char usage[] =
	"usage: bkr restore -r REPO ID [PATH...] --target DIR [--numeric-ids] [--overwrite] [--dry-run]\n"
	"       [--threads N]\n"
	"       bkr restore -r REPO ID [PATH...] --in-place [--numeric-ids] [--dry-run]\n\n"
	"Restore backup ID (an id, a unique prefix, or 'latest') into DIR: its sources\n"
	"appear as DIR/<source>/...  PATHs (\"source/dir/file\") restore only those.\n"
	"Every chunk and every file's hash is verified while writing; a damaged file\n"
	"fails alone and the rest is restored (exit status 6).  Each file is written\n"
	"to a temporary name and renamed into place once it checked out.\n\n"
	"  -t, --target DIR   where to restore (created if missing)\n"
	"      --in-place     to where each source was backed up from, replacing\n"
	"                     what differs from the backup\n"
	"      --dry-run      write nothing: list what would be new or changed\n"
	"      --numeric-ids  owners by number, not by name\n"
	"      --overwrite    replace existing files in DIR that differ from the backup\n"
	"      --threads N    worker threads (default: online CPUs)\n";

enum { OPT_NUMERIC = OPT_FIRST_CMD, OPT_OVERWRITE, OPT_THREADS, OPT_IN_PLACE, OPT_DRY_RUN };

struct change {
	bkr_restore_change kind;
	char *path;
};

struct state {
	bkr_restore_options o;
	cli *c;
	uint64_t errors;
	struct change *changes; /* --dry-run: what would be new or changed */
	size_t nchanges, capchanges;
	bool oom;
	char root[300];   /* what an empty path (the backup's root tree) is called in messages */
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	uint64_t v;
	switch (o) {
	case 't':
		s->o.target = arg;
		return 0;
	case OPT_NUMERIC: s->o.numeric_ids = true; return 0;
	case OPT_OVERWRITE: s->o.overwrite = true; return 0;
	case OPT_IN_PLACE: s->o.in_place = true; return 0;
	case OPT_DRY_RUN: s->o.dry_run = true; return 0;
	case OPT_THREADS:
		if (cli_uint_arg(c, "--threads", arg, "", 1, 256, &v))
			return BKR_EXIT_USAGE;
		s->o.threads = (int)v;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static void on_progress(void *ctx, const bkr_restore_progress *p)
{
	struct state *s = ctx;
	cli_progress_counts(s->c, s->o.dry_run ? "comparing" : "restoring", "files", p->files_done, p->files_total,
			    p->bytes_done, p->bytes_total);
}

static void on_report(void *ctx, bool error, const char *path, const char *message)
{
	struct state *s = ctx;
	if (!*path || !strcmp(path, "/"))
		path = s->root;
	/* names from the backup, messages naming them: escaped (bkr_text_escape),
	 * whole: a path of a deep tree is longer than PATH_MAX (one cut at 1 KiB
	 * with "..." named no file) */
	size_t plen = strlen(path), mlen = strlen(message);
	char *pbuf = malloc(4 * plen + 16), *mbuf = malloc(4 * mlen + 16);
	if (!pbuf || !mbuf) {
		free(pbuf);
		free(mbuf);
		pbuf = mbuf = NULL;
		message = "(out of memory)";
	} else {
		path = bkr_text_escape(pbuf, 4 * plen + 16, path, plen);
		message = cli_text_safe(mbuf, 4 * mlen + 16, message);
	}
	if (error) {
		s->errors++;
		cli_progress_done(s->c);
		fprintf(stderr, "%sbkr restore:%s %s: %s\n", cli_col_err(s->c, "red"), cli_col_err(s->c, "reset"), path, message);
	} else {
		cli_warn(s->c, "%s: %s", path, message);
	}
	free(pbuf);
	free(mbuf);
}

static void on_change(void *ctx, bkr_restore_change kind, const char *path)
{
	struct state *s = ctx;
	if (!s->o.dry_run || kind == BKR_RESTORE_UNCHANGED)
		return;
	if (s->nchanges == s->capchanges) {
		size_t cap = s->capchanges ? s->capchanges * 2 : 64;
		struct change *n = realloc(s->changes, cap * sizeof(*n));
		if (!n) {
			s->oom = true;
			return;
		}
		s->changes = n;
		s->capchanges = cap;
	}
	if (!(s->changes[s->nchanges].path = strdup(path))) {
		s->oom = true;
		return;
	}
	s->changes[s->nchanges++].kind = kind;
}

static const char *change_name(bkr_restore_change kind)
{
	return kind == BKR_RESTORE_NEW ? "new" : kind == BKR_RESTORE_CHANGED ? "changed" : "unchanged";
}

/* "in place", or "into TARGET" (quoted as a name when it holds a control character) */
static void print_where(const struct state *s)
{
	if (s->o.in_place) {
		fputs("in place", stdout);
		return;
	}
	fputs("into ", stdout);
	cli_print_name(stdout, s->o.target, strlen(s->o.target));
}

static void print_result(cli *c, const struct state *s, const bkr_manifest *m, const bkr_restore_stats *st)
{
	if (c->json) {
		printf("{\"backup_id\":\"%s\",\"target\":", m->backup_id);
		if (s->o.in_place)
			printf("null");
		else
			cli_json_string(stdout, s->o.target, strlen(s->o.target));
		printf(",\"in_place\":%s,\"dry_run\":%s", s->o.in_place ? "true" : "false",
		       s->o.dry_run ? "true" : "false");
		if (s->o.dry_run) {
			printf(",\"paths\":[");
			for (size_t i = 0; i < s->nchanges; i++) {
				printf("%s{\"change\":\"%s\",", i ? "," : "", change_name(s->changes[i].kind));
				cli_json_path(stdout, "path", s->changes[i].path, strlen(s->changes[i].path));
				putchar('}');
			}
			putchar(']');
		}
		printf(",\"files\":%llu,\"dirs\":%llu,\"symlinks\":%llu,\"hardlinks\":%llu,\"specials\":%llu,"
		       "\"bytes\":%llu,\"new\":%llu,\"changed\":%llu,\"unchanged\":%llu,"
		       "\"errors\":%llu,\"warnings\":%llu}\n",
		       (unsigned long long)st->files, (unsigned long long)st->dirs, (unsigned long long)st->symlinks,
		       (unsigned long long)st->hardlinks, (unsigned long long)st->specials,
		       (unsigned long long)st->bytes, (unsigned long long)st->new_entries,
		       (unsigned long long)st->changed, (unsigned long long)st->unchanged,
		       (unsigned long long)st->errors, (unsigned long long)st->warnings);
		return;
	}
	if (c->quiet)
		return;
	if (s->o.dry_run) {
		for (size_t i = 0; i < s->nchanges; i++) {
			printf("%-7s ", change_name(s->changes[i].kind));
			cli_print_name(stdout, s->changes[i].path, strlen(s->changes[i].path));
			putchar('\n');
		}
		printf("dry run of %s ", m->backup_id);
		print_where(s);
		printf(": %llu new, %llu changed, %llu unchanged; nothing written", (unsigned long long)st->new_entries,
		       (unsigned long long)st->changed, (unsigned long long)st->unchanged);
	} else {
		char b[32];
		cli_human_bytes(b, st->bytes);
		printf("restored %s ", m->backup_id);
		print_where(s);
		printf(": %llu files, %llu directories, %s", (unsigned long long)st->files, (unsigned long long)st->dirs, b);
		if (s->o.in_place)
			printf(" (%llu new, %llu changed, %llu unchanged)", (unsigned long long)st->new_entries,
			       (unsigned long long)st->changed, (unsigned long long)st->unchanged);
		else if (st->unchanged)
			printf(" (%llu already there as in the backup)", (unsigned long long)st->unchanged);
	}
	if (st->errors)
		printf(", %s%llu failed%s", cli_col(c, "red"), (unsigned long long)st->errors, cli_col(c, "reset"));
	putchar('\n');
}

int cmd_restore(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "target", required_argument, NULL, 't' },
		{ "numeric-ids", no_argument, NULL, OPT_NUMERIC },
		{ "overwrite", no_argument, NULL, OPT_OVERWRITE },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "in-place", no_argument, NULL, OPT_IN_PLACE },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
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
	if (!s.o.target && !s.o.in_place)
		return cli_usage_error(c, "--target DIR or --in-place is required");
	if (s.o.target && s.o.in_place)
		return cli_usage_error(c, "--target and --in-place exclude each other");
	for (int i = first + 1; i < argc; i++)
		while (argv[i][0] == '/')
			argv[i]++;
	s.o.paths = (const char *const *)(argv + first + 1);
	s.o.npaths = (size_t)(argc - first - 1);
	s.o.progress = c->progress ? on_progress : NULL; /* the totals cost a walk of the trees */
	s.o.progress_ctx = &s;
	s.o.report = on_report;
	s.o.report_ctx = &s;
	s.o.change = on_change;
	s.o.change_ctx = &s;
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = cli_find_backup(c, repo, argv[first], &m)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	snprintf(s.root, sizeof(s.root), "%s: root directory", m->backup_id);
	err = bkr_restore_run(repo, m, &s.o, &st);
	cli_progress_done(c);
	if (err < 0 && st.errors == 0 && s.errors == 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	if (s.oom) {
		rc = cli_fail(c, bkr_error_oom());
		goto done;
	}
	if (!s.o.dry_run) {
		char n[3][24];
		snprintf(n[0], sizeof(n[0]), "%llu", (unsigned long long)st.files);
		snprintf(n[1], sizeof(n[1]), "%llu", (unsigned long long)st.bytes);
		snprintf(n[2], sizeof(n[2]), "%llu", (unsigned long long)(st.errors + s.errors));
		bkr_log_event(st.errors || s.errors ? BKR_LOG_WARN : BKR_LOG_INFO, "restore", "restored",
			      (const char *[]){ "backup_id", m->backup_id, "target", s.o.in_place ? "(in place)" : s.o.target,
						"files", n[0], "bytes", n[1], "errors", n[2], NULL },
			      "restored %s %s%s: %s files, %s bytes, %s failed", m->backup_id, s.o.in_place ? "" : "into ",
			      s.o.in_place ? "in place" : s.o.target, n[0], n[1], n[2]);
	}
	print_result(c, &s, m, &st);
	if (st.errors || s.errors || err < 0)
		rc = BKR_EXIT_PARTIAL;
done:
	for (size_t i = 0; i < s.nchanges; i++)
		free(s.changes[i].path);
	free(s.changes);
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	return rc;
}
