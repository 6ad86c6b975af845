/** @file
 * bkr log: the versions of one file or directory across backups, newest
 * first, from the history engine (bkr/history.h), which reads only the
 * trees along the path.  With -p, a unified diff between consecutive
 * versions of a text file (bkr/textdiff.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "bkr/diff.h"
#include "bkr/error.h"
#include "bkr/history.h"
#include "bkr/textdiff.h"
#include "bkr/walk.h"

static const char usage[] =
	"usage: bkr log -r REPO PATH [--source S] [--since TIME] [--until TIME] [--all] [-p] [--json]\n\n"
	"The versions of one file or directory across backups, newest first: time,\n"
	"backup, what changed since the backup before (added, content, metadata,\n"
	"removed), type, size and SHA-256 (a symlink: its target).  Only the\n"
	"backups where it changed, unless --all.\n\n"
	"PATH is SOURCE/PATH as in 'bkr ls' (ws/config/app.json), a path relative to\n"
	"--source S, or a path of the live files inside a backed-up source\n"
	"(absolute, or starting with ./ or ../, or existing here).\n\n"
	"      --source S    PATH is relative to source S\n"
	"      --since TIME  only backups at or after TIME (YYYY-MM-DD or\n"
	"                    YYYY-MM-DDTHH:MM:SS[Z], UTC)\n"
	"      --until TIME  only backups at or before TIME\n"
	"      --all         every backup, also where nothing changed\n"
	"  -p, --patch       a unified diff from the version before, for text files\n"
	"                    ('Binary files differ' when one side is not text)\n"
	"Exit status: 0 listed, 3 PATH is in no backup, 4 (7, 8) a backup's trees along\n"
	"PATH could not be read (listed as 'error', with a warning naming the blob).\n";

#define PATCH_MAX (64u << 20) /* a version bigger than this gets no diff */

enum { OPT_SOURCE = OPT_FIRST_CMD, OPT_SINCE, OPT_UNTIL, OPT_ALL };

/* one backup of the history, kept for printing newest first */
typedef struct {
	size_t backup;
	bkr_history_change change;
	unsigned what;
	bool present;
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	bkr_id content;
	bool sparse_digest;    /* content is the sparse form (docs/format.md) */
	char *target;          /* symlinks */
	size_t target_len;
} version;

struct state {
	cli *c;
	size_t nb;             /* backups walked (the progress line's total) */
	const char *source;
	int64_t since, until;
	bool has_since, has_until, all, patch;
	version *v;
	size_t n;
	bool ever;             /* present in some backup */
	size_t errors;         /* backups whose trees along the path could not be read */
	int error;             /* the first of their errors */
};

static int parse_time(cli *c, const char *opt, const char *arg, int64_t *out)
{
	char buf[64];

	if (bkr_time_parse(arg, out) == 0)
		return 0;
	/* a time without a zone is UTC */
	snprintf(buf, sizeof(buf), "%sZ", arg);
	if (strchr(arg, 'T') && bkr_time_parse(buf, out) == 0) {
		bkr_error_clear();
		return 0;
	}
	return cli_usage_error(c, "%s: %s", opt, bkr_error_message());
}

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;

	switch (o) {
	case OPT_SOURCE:
		s->source = arg;
		return 0;
	case OPT_SINCE:
		s->has_since = true;
		return parse_time(c, "--since", arg, &s->since);
	case OPT_UNTIL:
		s->has_until = true;
		return parse_time(c, "--until", arg, &s->until);
	case OPT_ALL:
		s->all = true;
		return 0;
	case 'p':
		s->patch = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* ---- PATH ---------------------------------------------------------------------- */

static bool has_source(const bkr_manifest_list *l, const char *name, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		for (size_t k = 0; k < l->items[i]->nsources; k++)
			if (strlen(l->items[i]->sources[k].source) == len &&
			    !strncmp(l->items[i]->sources[k].source, name, len))
				return true;
	return false;
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	if (!lb)
		p[la] = 0;
	return p;
}

/* The live path @p arg as SOURCE/REL by the sources' recorded paths (newest
 * backup first); a single-file source's path, also when the file is gone, as
 * NAME/FILE (bkr_walk_source_is_file). */
static int from_live(cli *c, bkr_repo *r, const bkr_manifest_list *l, const char *arg, char **out)
{
	char *abs = cli_live_abs(arg);
	int err;

	if (!abs && (err = cli_live_abs_error(c, arg, errno)) != 0)
		return err;
	if (!abs)
		return cli_failf(c, BKR_ENOTFOUND, "%s: no such file or directory", arg);
	for (size_t i = l->n; i-- > 0;) {
		for (size_t k = 0; k < l->items[i]->nsources; k++) {
			const bkr_manifest_source *ms = &l->items[i]->sources[k];
			size_t pl = ms->path ? strlen(ms->path) : 0;
			if (!pl || strncmp(abs, ms->path, pl) != 0 || (abs[pl] && abs[pl] != '/'))
				continue;
			if (!abs[pl] && bkr_walk_source_is_file(r, &l->items[i]->tree, ms->source, ms->path)) {
				/* a single-file source: kept as NAME/NAME (its directory holds it) */
				const char *base = strrchr(abs, '/');
				*out = join(ms->source, base ? base + 1 : abs);
				free(abs);
				return *out ? 0 : cli_fail(c, bkr_error_oom());
			}
			*out = join(ms->source, abs[pl] ? abs + pl + 1 : "");
			free(abs);
			return *out ? 0 : cli_fail(c, bkr_error_oom());
		}
	}
	free(abs);
	return cli_failf(c, BKR_ENOTFOUND, "%s: not inside a backed-up source (bkr log SOURCE/PATH names one)", arg);
}

static int resolve_path(cli *c, struct state *s, bkr_repo *r, const bkr_manifest_list *l, const char *arg,
			char **out)
{
	const char *slash;
	size_t len;

	*out = NULL;
	if (s->source) {
		while (*arg == '/' || (arg[0] == '.' && arg[1] == '/'))
			arg += *arg == '/' ? 1 : 2;
		if (!has_source(l, s->source, strlen(s->source)))
			return cli_failf(c, BKR_ENOTFOUND, "--source %s: no backup holds that source", s->source);
		*out = join(s->source, strcmp(arg, ".") ? arg : "");
		return *out ? 0 : cli_fail(c, bkr_error_oom());
	}
	if (arg[0] == '/' || !strcmp(arg, ".") || !strncmp(arg, "./", 2) || !strcmp(arg, "..") ||
	    !strncmp(arg, "../", 3))
		return from_live(c, r, l, arg, out);
	slash = strchr(arg, '/');
	len = slash ? (size_t)(slash - arg) : strlen(arg);
	if (has_source(l, arg, len)) {
		*out = strdup(arg);
		return *out ? 0 : cli_fail(c, bkr_error_oom());
	}
	if (access(arg, F_OK) == 0)
		return from_live(c, r, l, arg, out);
	return cli_failf(c, BKR_ENOTFOUND, "%s: no source named '%.*s' in any backup, and no such file here", arg,
			 (int)len, arg);
}

/* ---- the history --------------------------------------------------------------- */

static int on_item(void *ctx, const bkr_history_item *it)
{
	struct state *s = ctx;
	version *v = &s->v[s->n++];

	memset(v, 0, sizeof(*v));
	v->backup = it->backup;
	v->change = it->change;
	v->what = it->what;
	cli_progress_counts(s->c, "reading", "backups", s->n, s->nb, 0, 0);
	if (it->change == BKR_HISTORY_ERROR) {
		cli_progress_done(s->c); /* the warning stands on its own line */
		fprintf(stderr, "bkr log: warning: %s\n", bkr_error_message());
		if (!s->errors++)
			s->error = it->error;
	}
	if (!it->entry)
		return 0;
	s->ever = true;
	v->present = true;
	v->type = it->entry->type;
	v->mode = it->entry->mode;
	v->size = it->entry->size;
	v->mtime_ns = it->entry->mtime_ns;
	v->content = it->entry->content;
	v->sparse_digest = it->entry->sparse_digest;
	if (it->entry->type == BKR_FT_SYMLINK) {
		if (!(v->target = malloc(it->entry->target_len + 1)))
			return bkr_error_oom();
		memcpy(v->target, it->entry->target, it->entry->target_len);
		v->target[it->entry->target_len] = 0;
		v->target_len = it->entry->target_len;
	}
	return 0;
}

static bool shown(const struct state *s, const bkr_manifest *m, const version *v)
{
	if ((s->has_since && m->time_ns < s->since) || (s->has_until && m->time_ns > s->until))
		return false;
	if (s->all)
		return true;
	return v->change != BKR_HISTORY_ABSENT && v->change != BKR_HISTORY_UNCHANGED;
}

/* ---- -p -------------------------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len;
};

static int take(void *ctx, uint64_t off, const uint8_t *data, size_t len)
{
	struct buf *b = ctx;
	memset(b->p + b->len, 0, off - b->len); /* a hole */
	memcpy(b->p + off, data, len);
	b->len = off + len;
	return 0;
}

/* The content of @p path in backup @p m (a regular file of at most PATCH_MAX bytes). */
static int read_version(bkr_repo *repo, const bkr_manifest *m, const char *path, uint64_t size, struct buf *b)
{
	bkr_dir *holder = NULL;
	const bkr_tree *leaf = NULL;
	uint32_t li = 0;
	bkr_entry e;
	char what[PATH_MAX];
	int err;

	b->len = 0;
	if (!(b->p = malloc(size ? size : 1)))
		return bkr_error_oom();
	snprintf(what, sizeof(what), "backup %s: %s", m->backup_id, path);
	if ((err = bkr_walk_resolve(repo, &m->tree, path, &e, &holder, &leaf, &li)) == 0 &&
	    (err = bkr_walk_read_file(repo, leaf, li, what, take, b)) == 0) {
		memset(b->p + b->len, 0, size - b->len); /* a trailing hole */
		b->len = size;
	}
	bkr_dir_free(holder);
	return err;
}

static int print_patch(FILE *f, const char *path, const char *old_id, const struct buf *a, const char *new_id,
		       const struct buf *b)
{
	/* the names as diff -u writes them, "a/" and "b/" first; one with a
	 * control character quoted whole, as git does (cli_print_name) */
	for (int side = 0; side < 2; side++) {
		const struct buf *x = side ? b : a;
		const char *id = side ? new_id : old_id;
		fputs(side ? "+++ " : "--- ", f);
		if (x->p) {
			size_t n = strlen(path) + 2;
			char *name = malloc(n + 1);
			if (!name)
				return bkr_error_oom();
			snprintf(name, n + 1, "%c/%s", side ? 'b' : 'a', path);
			cli_print_name(f, name, n);
			free(name);
		} else {
			fputs("/dev/null", f);
		}
		fprintf(f, "\t%s\n", id ? id : "-");
	}
	if (bkr_textdiff_binary(a->p, a->len) || bkr_textdiff_binary(b->p, b->len)) {
		fprintf(f, "Binary files differ\n");
		return 0;
	}
	return bkr_textdiff_unified(f, a->p, a->len, b->p, b->len, 3);
}

/* The diff from the version before @p k (or nothing) to version @p k, into @p f. */
static int patch_of(bkr_repo *repo, const bkr_manifest_list *l, const struct state *s, size_t k,
		    const char *path, FILE *f)
{
	const version *v = &s->v[k], *pv = NULL;
	struct buf a = { 0 }, b = { 0 };
	int err = 0;

	if (v->change != BKR_HISTORY_ADDED && v->change != BKR_HISTORY_REMOVED && v->change != BKR_HISTORY_CONTENT)
		return 0;
	for (size_t j = k; j-- > 0;)
		if (s->v[j].change != BKR_HISTORY_UNCHANGED) {
			pv = s->v[j].present ? &s->v[j] : NULL;
			break;
		}
	if (pv && pv->type != BKR_FT_FILE)
		pv = NULL;
	if (!(v->present && v->type == BKR_FT_FILE) && !pv)
		return 0; /* neither side a regular file */
	if ((pv && pv->size > PATCH_MAX) || (v->present && v->type == BKR_FT_FILE && v->size > PATCH_MAX)) {
		fprintf(f, "(larger than %u MiB: no diff)\n", PATCH_MAX >> 20);
		return 0;
	}
	if (pv && (err = read_version(repo, l->items[pv->backup], path, pv->size, &a)) < 0)
		goto done;
	if (v->present && v->type == BKR_FT_FILE &&
	    (err = read_version(repo, l->items[v->backup], path, v->size, &b)) < 0)
		goto done;
	err = print_patch(f, path, pv ? l->items[pv->backup]->backup_id : NULL, &a,
			  v->present && v->type == BKR_FT_FILE ? l->items[v->backup]->backup_id : NULL, &b);
done:
	free(a.p);
	free(b.p);
	return err;
}

/* ---- output ------------------------------------------------------------------- */

static const char *type_name(uint8_t t)
{
	static const char *const names[] = { "-", "file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket" };
	return t < 8 ? names[t] : "?";
}

static void what_list(char *out, size_t cap, unsigned w)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ BKR_DIFF_CONTENT, "content" }, { BKR_DIFF_TYPE, "type" }, { BKR_DIFF_MODE, "mode" }, { BKR_DIFF_OWNER, "owner" },
		{ BKR_DIFF_MTIME, "mtime" }, { BKR_DIFF_XATTRS, "xattrs" }, { BKR_DIFF_OTHER, "other" },
	};
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if ((w & names[i].bit) && o + strlen(names[i].name) + 2 < cap)
			o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "," : "", names[i].name);
}

static void print_json(json_out *j, const bkr_manifest *m, const version *v, const char *patch, size_t plen)
{
	char t[32], hex[BKR_ID_HEX], w[128];

	json_out_begin_object(j);
	json_out_member(j, "backup_id", m->backup_id);
	bkr_time_format(t, m->time_ns);
	json_out_member(j, "time", t);
	json_out_member(j, "change", bkr_history_change_name(v->change));
	what_list(w, sizeof(w), v->what);
	json_out_key(j, "what");
	json_out_begin_array(j);
	for (char *p = w, *e; *p; p = *e ? e + 1 : e) {
		e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		json_out_bytes(j, p, (size_t)(e - p));
	}
	json_out_end_array(j);
	if (v->present) {
		json_out_member(j, "type", type_name(v->type));
		json_out_key(j, "size");
		json_out_uint(j, v->size);
		json_out_key(j, "mode");
		json_out_uint(j, v->mode & 07777);
		json_out_key(j, "mtime_ns");
		json_out_int(j, v->mtime_ns);
		if (v->type == BKR_FT_FILE) {
			bkr_id_to_hex(&v->content, hex);
			json_out_member(j, v->sparse_digest ? "sparse_digest" : "sha256", hex);
		}
		if (v->target)
			json_out_path(j, "target", v->target, v->target_len);
	}
	if (patch) {
		json_out_key(j, "patch");
		json_out_bytes(j, patch, plen);
	}
	json_out_end_object(j);
}

static void print_text(cli *c, const bkr_manifest *m, const version *v)
{
	char t[32], hex[BKR_ID_HEX], w[128], change[160];
	const char *col = v->change == BKR_HISTORY_ADDED ? "green" : v->change == BKR_HISTORY_REMOVED ? "red" : "yellow";

	bkr_time_format(t, m->time_ns);
	what_list(w, sizeof(w), v->what);
	snprintf(change, sizeof(change), "%s%s%s", bkr_history_change_name(v->change),
		 v->change == BKR_HISTORY_METADATA ? ":" : "", v->change == BKR_HISTORY_METADATA ? w : "");
	printf("%.19sZ  %s  %s%-9s%s %-7s ", t, m->backup_id, cli_col(c, col), change, cli_col(c, "reset"),
	       v->present ? type_name(v->type) : "-");
	if (!v->present) {
		printf("%12s  -\n", "-");
		return;
	}
	printf("%12llu  ", (unsigned long long)v->size);
	if (v->type == BKR_FT_FILE) {
		/* a file with holes has its sparse digest (docs/format.md), not a SHA-256: marked */
		bkr_id_to_hex(&v->content, hex);
		fputs(v->sparse_digest ? "sparse:" : "", stdout);
		fputs(hex, stdout);
	} else if (v->target) {
		fputs("-> ", stdout);
		cli_print_name(stdout, (const char *)v->target, v->target_len);
	} else {
		putchar('-');
	}
	putchar('\n');
}

int cmd_log(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "patch", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .c = c };
	bkr_repo *repo = NULL;
	bkr_manifest_list l = { 0 };
	bkr_history_backup *hb = NULL;
	char *path = NULL, *pbuf = NULL;
	size_t bad = 0, plen = 0, listed = 0, patches = 0, patched = 0;
	FILE *pf = NULL;
	json_out j;
	int first, err = 0, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "p", lo, opt, &s, &first);
	if (argc - first != 1)
		return cli_usage_error(c, "expected one PATH");
	if (s.has_since && s.has_until && s.since > s.until)
		return cli_usage_error(c, "--since is after --until");
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = bkr_repo_list(repo, false, &l, &bad)) < 0)
		goto fail;
	if (bad) /* exit 4 at the end, as list: the history shown may lack versions */
		cli_problem(c, "%zu damaged manifest(s) left out: %s", bad, bkr_error_message());
	if ((rc = resolve_path(c, &s, repo, &l, argv[first], &path)))
		goto done;
	if (l.n && (!(hb = calloc(l.n, sizeof(*hb))) || !(s.v = calloc(l.n, sizeof(*s.v))))) {
		err = bkr_error_oom();
		goto fail;
	}
	/* the history up to --until (the backups before --since say what changed first) */
	size_t nb = 0;
	size_t held = 0;
	for (; nb < l.n && !(s.has_until && l.items[nb]->time_ns > s.until); nb++) {
		hb[nb] = bkr_history_backup_of(l.items[nb]);
		/* a backup of other sources alone says nothing about this path */
		hb[nb].skip = !bkr_history_holds(l.items[nb], path);
		held += !hb[nb].skip;
	}
	s.nb = nb;
	err = bkr_history_walk(repo, hb, nb, path, NULL, on_item, &s);
	cli_progress_done(c);
	if (err < 0)
		goto fail;
	if (!s.ever && s.errors) { /* damage is no proof of absence */
		rc = cli_failf(c, s.error, "%s: in no backup that could be read (%zu could not be: see the warnings)",
			       path, s.errors);
		goto done;
	}
	if (!s.ever) {
		rc = cli_failf(c, BKR_ENOTFOUND, "%s: in no backup", path);
		goto done;
	}
	if (s.patch) {
		if (!(pf = open_memstream(&pbuf, &plen))) {
			err = bkr_error_oom();
			goto fail;
		}
		for (size_t k = 0; k < s.n; k++)
			patches += shown(&s, l.items[s.v[k].backup], &s.v[k]);
	}
	json_out_init(&j, stdout);
	if (c->json) {
		json_out_begin_object(&j);
		json_out_path(&j, "path", path, strlen(path));
		json_out_key(&j, "versions");
		json_out_begin_array(&j);
	}
	for (size_t k = s.n; k-- > 0;) {
		const bkr_manifest *m = l.items[s.v[k].backup];
		if (!shown(&s, m, &s.v[k]))
			continue;
		listed++;
		if (pf) {
			rewind(pf);
			fflush(pf);
			plen = 0;
			/* on a terminal (stderr): the versions diffed, erased before each is printed */
			cli_progress_counts(c, "diffing", "versions", patched++, patches, 0, 0);
			err = patch_of(repo, &l, &s, k, path, pf);
			cli_progress_done(c);
			if (err < 0)
				goto fail;
			fflush(pf);
		}
		if (c->json) {
			print_json(&j, m, &s.v[k], pf ? pbuf : NULL, pf ? plen : 0);
		} else {
			print_text(c, m, &s.v[k]);
			if (pf && plen) {
				fwrite(pbuf, 1, plen, stdout);
				putchar('\n');
			}
		}
	}
	if (c->json) {
		json_out_end_array(&j);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		fprintf(stderr, "%zu version(s) of ", listed);
		cli_print_name(stderr, path, strlen(path));
		fprintf(stderr, " in %zu backup(s) of its source", held);
		if (s.errors)
			fprintf(stderr, "; %zu could not be read", s.errors);
		fputc('\n', stderr);
	}
	if (s.errors) /* listed, but not all of the history: said above, per backup */
		rc = bkr_exit_for(s.error);
	else if (bad) /* listed, but not from every backup: a damaged manifest left out (as list, ls) */
		rc = BKR_EXIT_CORRUPT;
	goto done;
fail:
	rc = cli_fail(c, err);
done:
	if (pf)
		fclose(pf);
	free(pbuf);
	for (size_t k = 0; k < s.n; k++)
		free(s.v[k].target);
	free(s.v);
	free(hb);
	free(path);
	bkr_manifest_list_free(&l);
	bkr_repo_free(repo);
	return rc;
}
