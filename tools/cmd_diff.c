/** @file
 * bkr diff: two backups, or a backup and the live files.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/diff.h"
#include "bkr/error.h"
#include "bkr/walk.h"

static const char usage[] =
	"usage: bkr diff -r REPO ID1 ID2 [PATH...] [--json] [--exit-code]\n"
	"       bkr diff -r REPO ID --live [SOURCE_PATH...] [--json]\n\n"
	"List what was added (+), removed (-) and modified (M: content, m: metadata\n"
	"only) from ID1 to ID2, or from backup ID to the live files (--live; the\n"
	"sources are the configuration's, or SOURCE_PATHs named like at backup time).\n\n"
	"      --live        compare with the live files\n"
	"      --exit-code   exit 1 when there are differences\n";

enum { OPT_LIVE = OPT_FIRST_CMD, OPT_EXIT_CODE };

struct state {
	bool live, exit_code;
	cli *c;
	size_t shown;
	FILE *out;        /* a memory stream for --json (printed only on success) */
	json_out j;
	char *buf;
	size_t buflen;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	if (o == OPT_LIVE)
		s->live = true;
	else if (o == OPT_EXIT_CODE)
		s->exit_code = true;
	else
		return cli_usage_error(c, "unknown option");
	return 0;
}

static void what_list(json_out *j, unsigned w)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ BKR_DIFF_CONTENT, "content" }, { BKR_DIFF_TYPE, "type" }, { BKR_DIFF_MODE, "mode" },
		{ BKR_DIFF_OWNER, "owner" }, { BKR_DIFF_MTIME, "mtime" }, { BKR_DIFF_XATTRS, "xattrs" },
		{ BKR_DIFF_OTHER, "other" },
	};
	json_out_begin_array(j);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (w & names[i].bit)
			json_out_string(j, names[i].name);
	json_out_end_array(j);
}

static int on_change(void *ctx, const bkr_diff_change *ch)
{
	struct state *s = ctx;
	cli *c = s->c;
	if (c->json) {
		const char *kind = ch->kind == BKR_DIFF_ADDED ? "added" : ch->kind == BKR_DIFF_REMOVED ? "removed" : "modified";
		json_out_begin_object(&s->j);
		json_out_member(&s->j, "change", kind);
		json_out_path(&s->j, "path", ch->path, strlen(ch->path));
		if (ch->kind == BKR_DIFF_MODIFIED) {
			json_out_key(&s->j, "content");
			json_out_bool(&s->j, ch->what & (BKR_DIFF_CONTENT | BKR_DIFF_TYPE));
			json_out_key(&s->j, "what");
			what_list(&s->j, ch->what);
		}
		json_out_end_object(&s->j);
	} else {
		const char *mark, *col;
		cli_progress_done(c); /* a change stands on its own line (stdout may be the terminal too) */
		if (ch->kind == BKR_DIFF_ADDED) {
			mark = "+";
			col = "green";
		} else if (ch->kind == BKR_DIFF_REMOVED) {
			mark = "-";
			col = "red";
		} else {
			mark = (ch->what & (BKR_DIFF_CONTENT | BKR_DIFF_TYPE)) ? "M" : "m";
			col = "yellow";
		}
		printf("%s%s%s  ", cli_col(c, col), mark, cli_col(c, "reset"));
		cli_print_name(stdout, ch->path, strlen(ch->path));
		putchar('\n');
	}
	s->shown++;
	return 0;
}

/*
 * The --live operands: one that names a source of backup @p m (by its last
 * component, or NAME=PATH) says where that source is now and stays in
 * argv[0..*nargs); one inside a source's recorded path limits the comparison
 * to that subtree ("SOURCE/REL" into *subs), and so does a single-file
 * source's own path, to its one file ("NAME/FILE", as backup keeps it),
 * also when the path is gone (deleted since); any other is an error naming
 * it (exit 3), never silently dropped.  0 or the exit code.
 */
static int live_subtrees(cli *c, bkr_repo *repo, const bkr_manifest *m, char **argv, int argc, char ***subs,
			 size_t *nsubs, int *nargs)
{
	int keep = 0, rc;

	*subs = NULL;
	*nsubs = 0;
	if (argc > 0 && !(*subs = calloc((size_t)argc, sizeof(char *))))
		return cli_fail(c, bkr_error_oom());
	for (int k = 0; k < argc; k++) {
		const char *arg = argv[k], *slash, *base;
		char *abs = NULL;
		bool named = false;
		if (strchr(arg, '=')) { /* NAME=PATH: a source's new place */
			argv[keep++] = argv[k];
			continue;
		}
		slash = strrchr(arg, '/');
		while (slash && !slash[1] && slash > arg) { /* "dir/" */
			const char *p = slash - 1;
			while (p > arg && *p != '/')
				p--;
			slash = *p == '/' ? p : NULL;
		}
		base = slash ? slash + 1 : arg;
		abs = cli_live_abs(arg);
		if (!abs && (rc = cli_live_abs_error(c, arg, errno)) != 0)
			return rc;
		for (size_t i = 0; abs && i < m->nsources && !named; i++) {
			const char *rp = m->sources[i].path, *rest = abs;
			size_t pl = rp ? strlen(rp) : 0;
			if (!pl || strncmp(abs, rp, pl) != 0 || (abs[pl] && abs[pl] != '/'))
				continue;
			named = true;
			if (!abs[pl]) {
				if (!bkr_walk_source_is_file(repo, &m->tree, m->sources[i].source, rp)) {
					argv[keep++] = argv[k]; /* the source itself, where it was */
					break;
				}
				rest = strrchr(rp, '/'); /* a single-file source: "/FILE" */
				pl = 0;
			}
			size_t n = strlen(m->sources[i].source) + strlen(rest + pl) + 1;
			if (!((*subs)[*nsubs] = malloc(n))) {
				free(abs);
				return cli_fail(c, bkr_error_oom());
			}
			snprintf((*subs)[(*nsubs)++], n, "%s%s", m->sources[i].source, rest + pl);
		}
		free(abs);
		if (named)
			continue;
		for (size_t i = 0; i < m->nsources && !named; i++)
			named = !strncmp(m->sources[i].source, base, strcspn(base, "/")) &&
				strlen(m->sources[i].source) == strcspn(base, "/");
		if (!named)
			return cli_failf(c, BKR_ENOTFOUND, "%s: not a source of backup %s, nor inside one", arg,
					 m->backup_id);
		argv[keep++] = argv[k]; /* a source that has moved: compared from there */
	}
	*nargs = keep;
	return 0;
}

int cmd_diff(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "live", no_argument, NULL, OPT_LIVE },
		{ "exit-code", no_argument, NULL, OPT_EXIT_CODE },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .c = c };
	bkr_diff_options o = BKR_DIFF_OPTIONS_INIT;
	bkr_diff_stats st = { 0 };
	bkr_repo *repo = NULL;
	bkr_manifest *a = NULL, *b = NULL;
	bkr_config *cfg = NULL;
	cli_sources src = { 0 };
	char **subs = NULL;
	size_t nsubs = 0;
	int first, err = 0, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &s, &first);
	if (first >= argc || (!s.live && argc - first < 2))
		return cli_usage_error(c, s.live ? "expected a backup ID" : "expected two backup IDs (or ID --live)");
	o.callback = on_change;
	o.ctx = &s;
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = cli_find_backup(c, repo, argv[first], &a)) < 0)
		goto fail;
	if (c->json) {
		if (!(s.out = open_memstream(&s.buf, &s.buflen))) {
			err = bkr_error_oom();
			goto fail;
		}
		json_out_init(&s.j, s.out);
		json_out_begin_object(&s.j);
		json_out_key(&s.j, "changes");
		json_out_begin_array(&s.j);
	}
	if (s.live) {
		int nargs = 0;
		if ((rc = live_subtrees(c, repo, a, argv + first + 1, argc - first - 1, &subs, &nsubs, &nargs)))
			goto done;
		o.paths = (const char *const *)subs;
		o.npaths = nsubs;
		if ((err = cli_load_config(c, &cfg)) < 0 ||
		    (err = cli_sources_get(c, cfg, argv + first + 1, nargs, NULL, 0, &src)) < 0) {
			/* without a config or paths, compare with where the backup was read from */
			if (!cfg && nargs == 0 && a->nsources) {
				bkr_error_clear();
				src.specs = calloc(a->nsources, sizeof(*src.specs));
				if (!src.specs) {
					err = bkr_error_oom();
					goto fail;
				}
				for (size_t i = 0; i < a->nsources; i++) {
					src.specs[i].name = a->sources[i].source;
					src.specs[i].path = a->sources[i].path;
				}
				src.n = a->nsources;
				err = 0;
			} else {
				goto fail;
			}
		}
		/* on a terminal: the files compared (stderr only) */
		o.progress = c->progress ? cli_progress_step : NULL;
		o.progress_ctx = c;
		err = bkr_diff_live(repo, a, src.specs, src.n, &o, &st);
		cli_progress_done(c); /* the summary stands alone */
	} else {
		if ((err = cli_find_backup(c, repo, argv[first + 1], &b)) < 0)
			goto fail;
		o.paths = (const char *const *)(argv + first + 2);
		o.npaths = (size_t)(argc - first - 2);
		err = bkr_diff_backups(repo, a, b, &o, &st);
	}
	if (err < 0)
		goto fail;
	if (c->json) {
		json_out_end_array(&s.j);
		json_out_key(&s.j, "added");
		json_out_uint(&s.j, st.added);
		json_out_key(&s.j, "removed");
		json_out_uint(&s.j, st.removed);
		json_out_key(&s.j, "modified");
		json_out_uint(&s.j, st.modified);
		json_out_key(&s.j, "content_modified");
		json_out_uint(&s.j, st.content_modified);
		json_out_key(&s.j, "metadata_modified");
		json_out_uint(&s.j, st.metadata_modified);
		json_out_end_object(&s.j);
		fclose(s.out);
		s.out = NULL;
		fwrite(s.buf, 1, s.buflen, stdout);
	} else if (!c->quiet)
		fprintf(stderr, "%llu added, %llu removed, %llu modified (%llu content, %llu metadata only)\n",
			(unsigned long long)st.added, (unsigned long long)st.removed, (unsigned long long)st.modified,
			(unsigned long long)st.content_modified, (unsigned long long)st.metadata_modified);
	if (s.exit_code && (st.added || st.removed || st.modified))
		rc = BKR_EXIT_FOUND;
	goto done;
fail:
	rc = cli_fail(c, err);
done:
	if (s.out)
		fclose(s.out);
	free(s.buf);
	if (!cfg && src.nowned == 0 && src.specs && s.live)
		free(src.specs), src.specs = NULL;
	cli_sources_free(&src);
	for (size_t k = 0; k < nsubs; k++)
		free(subs[k]);
	free(subs);
	bkr_config_free(cfg);
	bkr_manifest_free(a);
	bkr_manifest_free(b);
	bkr_repo_free(repo);
	return rc;
}
