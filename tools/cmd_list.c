/** @file
 * bkr list and bkr show: backups and their manifests.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/utf8.h"
#include "bkr/error.h"

static const char list_usage[] =
	"usage: bkr list -r REPO [--json] [--type TYPE] [--tag T]\n\n"
	"List backups, oldest first.  --json prints an array of manifests with the\n"
	"fields backup_id, timestamp, backup_type, sources[], metadata, validation, ...\n\n"
	"  -t, --type TYPE   only backups of this type\n"
	"      --tag T       only backups with this tag\n";

static const char show_usage[] =
	"usage: bkr show -r REPO ID [--json]\n\n"
	"Show one backup's manifest.  ID is a backup id, a unique prefix of it or of its\n"
	"random suffix, or 'latest'.\n";

enum { OPT_TAG = OPT_FIRST_CMD };

struct filter {
	bool by_type;
	bkr_backup_type type;
	const char *tag;
};

static int list_opt(cli *c, int o, const char *arg, void *st)
{
	struct filter *f = st;
	if (o == 't') {
		if (bkr_backup_type_parse(arg, &f->type) < 0)
			return cli_usage_error(c, "--type: unknown backup type '%s'", arg);
		f->by_type = true;
		return 0;
	}
	if (o == OPT_TAG) {
		f->tag = arg;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static bool has_tag(const bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag))
			return true;
	return false;
}

/* Does backup @p m pass --type and --tag? */
static bool wanted(const struct filter *f, const bkr_manifest *m)
{
	return !(f->by_type && m->type != f->type) && !(f->tag && !has_tag(m, f->tag));
}

int cmd_list(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "tag", required_argument, NULL, OPT_TAG },
		{ NULL, 0, NULL, 0 },
	};
	struct filter f = { 0 };
	bkr_repo *repo = NULL;
	bkr_manifest_list l = { 0 };
	size_t bad = 0, shown = 0, nwanted = 0, idw = 2;
	int64_t now = bkr_time_now_ns(); /* pins: still in force, or expired */
	json_out j;
	int first, err;

	CLI_PARSE(c, argc, argv, list_usage, "t:", lo, list_opt, &f, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = bkr_repo_list(repo, false, &l, &bad)) < 0) {
		bkr_repo_free(repo);
		return cli_fail(c, err);
	}
	if (bad)
		cli_problem(c, "%zu manifest(s) are damaged and not listed; last: %s", bad, bkr_error_message());
	/* the ID column is as wide as the longest id shown */
	for (size_t i = 0; i < l.n; i++) {
		if (!wanted(&f, l.items[i]))
			continue;
		nwanted++;
		if (strlen(l.items[i]->backup_id) > idw)
			idw = strlen(l.items[i]->backup_id);
	}
	json_out_init(&j, stdout);
	if (c->json)
		json_out_begin_array(&j);
	else if (!c->quiet && nwanted) /* no header above no rows (--type or --tag matching none) */
		printf("%s%-*s %-20s %-12s %8s %10s  %s%s\n", cli_col(c, "bold"), (int)idw, "ID", "TIME (UTC)", "TYPE",
		       "FILES", "SIZE", "TAGS", cli_col(c, "reset"));
	for (size_t i = 0; i < l.n; i++) {
		const bkr_manifest *m = l.items[i];
		if (!wanted(&f, m))
			continue;
		if (c->json) {
			char *text = cli_manifest_json(m, false);
			if (!text) {
				err = bkr_error_oom();
				break;
			}
			json_out_raw(&j, text);
			free(text);
		} else {
			char size[32], when[20], pin[64], tag[4 * CLI_TAG_MAX + 8];
			cli_human_bytes(size, m->stats.bytes);
			snprintf(when, sizeof(when), "%.10s %.8s", m->timestamp, m->timestamp + 11);
			printf("%-*s %-20s %-12s %8llu %10s  ", (int)idw, m->backup_id, when, bkr_backup_type_name(m->type),
			       (unsigned long long)m->stats.files, size);
			/* a tag recorded before bkr tag checked them, or forged, may hold
			 * a newline or an escape sequence: escaped, as show does */
			for (size_t t = 0; t < m->ntags; t++)
				printf("%s%s", t ? "," : "", cli_text_safe(tag, sizeof(tag), m->tags[t]));
			if (m->pinned_until)
				printf("%s[%s]", m->ntags ? " " : "", cli_pin_text(pin, m, now));
			putchar('\n');
		}
		shown++;
	}
	if (c->json)
		json_out_end_array(&j);
	else if (!c->quiet && !c->json && shown == 0) {
		char safe[8192], tag[1024];
		fprintf(stderr, "no backups%s%s%s%s%s in %s\n", f.by_type ? " of type " : "",
			f.by_type ? bkr_backup_type_name(f.type) : "", f.tag ? " tagged '" : "",
			f.tag ? cli_text_safe(tag, sizeof(tag), f.tag) : "", f.tag ? "'" : "",
			cli_text_safe(safe, sizeof(safe), bkr_repo_path(repo)));
	}
	bkr_manifest_list_free(&l);
	bkr_repo_free(repo);
	if (err < 0)
		return cli_fail(c, err);
	return bad ? BKR_EXIT_CORRUPT : 0;
}

int cmd_show(cli *c, int argc, char **argv)
{
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	int first, err;

	CLI_PARSE(c, argc, argv, show_usage, "", NULL, NULL, NULL, &first);
	if (first + 1 != argc)
		return cli_usage_error(c, "expected one backup ID");
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = cli_find_backup(c, repo, argv[first], &m)) < 0) {
		bkr_repo_free(repo);
		return cli_fail(c, err);
	}
	if (c->json) {
		cli_print_manifest(c, m);
	} else {
		char tree[BKR_ID_HEX], b1[32], b2[32], b3[32], esc[2048];
		bkr_id_to_hex(&m->tree, tree);
		printf("%sbackup%s     %s\n", cli_col(c, "bold"), cli_col(c, "reset"), m->backup_id);
		printf("time       %s\n", m->timestamp);
		printf("type       %s\n", bkr_backup_type_name(m->type));
		printf("parent     %s\n", m->parent ? m->parent : "-");
		/* text from the manifest (create takes any host and source name): escaped */
		printf("host       %s\n",
		       m->hostname ? bkr_text_escape(esc, sizeof(esc), m->hostname, strlen(m->hostname)) : "-");
		fputs("workspace  ", stdout);
		if (m->workspace_root)
			cli_print_name(stdout, m->workspace_root, strlen(m->workspace_root));
		else
			putchar('-');
		putchar('\n');
		printf("tree       %s\n", tree);
		printf("duration   %.2fs\n", m->duration_seconds);
		cli_human_bytes(b1, m->stats.bytes);
		cli_human_bytes(b2, m->stats.new_bytes);
		cli_human_bytes(b3, m->stats.stored_bytes);
		printf("files      %llu in %llu directories, %s (%s new, %s stored)\n",
		       (unsigned long long)m->stats.files, (unsigned long long)m->stats.dirs, b1, b2, b3);
		printf("integrity  %s\n", m->integrity_check ? m->integrity_check : "-");
		if (m->pinned_until) {
			char pin[64];
			printf("pin        %s\n", cli_pin_text(pin, m, bkr_time_now_ns()));
		}
		for (size_t i = 0; i < m->ntags; i++)
			printf("tag        %s\n", cli_text_safe(esc, sizeof(esc), m->tags[i]));
		for (size_t i = 0; i < m->nsources; i++) {
			cli_human_bytes(b1, m->sources[i].total_size_bytes);
			fputs("source     ", stdout);
			cli_print_name(stdout, m->sources[i].source, strlen(m->sources[i].source));
			fputs("  ", stdout);
			if (m->sources[i].path)
				cli_print_name(stdout, m->sources[i].path, strlen(m->sources[i].path));
			printf("  (%llu files, %s)\n", (unsigned long long)m->sources[i].files_backed_up, b1);
		}
		for (size_t i = 0; i < m->nwarnings; i++)
			printf("warning    %s\n", cli_text_safe(esc, sizeof(esc), m->warnings[i]));
	}
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	return 0;
}
