/** @file
 * bkr hold [list] | hold release PATH... | --all: the workspace files a
 * routine's scan found damaged or missing and nobody recovered yet, whose
 * last good copies retention keeps (bkr/hold.h, docs/operations.md "Holds").
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/log.h"
#include "bkr/utf8.h"

static const char usage[] =
	"usage: bkr hold -r REPO [list] [--json]\n"
	"       bkr hold -r REPO release PATH... | --all\n\n"
	"List the holds: workspace files a routine's scan found damaged or missing\n"
	"and that are not recovered yet, each with the backup holding its last good\n"
	"copy, which retention keeps.  A later scan that finds the file back ends its\n"
	"hold; 'release' ends it by hand (the file is not needed, or was recovered\n"
	"elsewhere): retention may then remove that backup.\n\n"
	"      --all    release: every hold\n";

enum { OPT_ALL = OPT_FIRST_CMD };

static int opt(cli *c, int o, const char *arg, void *st)
{
	(void)arg;
	if (o == OPT_ALL) {
		*(bool *)st = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static void list(cli *c, const bkr_holds *h)
{
	char t[32];
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_array(&j);
		for (size_t i = 0; i < h->n; i++)
			json_out_hold(&j, &h->v[i]);
		json_out_end_array(&j);
		return;
	}
	if (c->quiet)
		return;
	if (!h->n)
		printf("no holds: no damaged or missing file waits for recovery\n");
	for (size_t i = 0; i < h->n; i++) {
		const char *since = bkr_hold_since(&h->v[i], t);
		char d[256], id[512]; /* a record's words: escaped, as the path is quoted */
		cli_print_name(stdout, h->v[i].path, strlen(h->v[i].path));
		printf("  %s since %s; last good copy in %s\n", bkr_text_escape(d, sizeof(d), h->v[i].damage, strlen(h->v[i].damage)),
		       since ? since : "an unknown time",
		       bkr_text_escape(id, sizeof(id), h->v[i].backup_id, strlen(h->v[i].backup_id)));
	}
}

int cmd_hold(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "all", no_argument, NULL, OPT_ALL },
		{ NULL, 0, NULL, 0 },
	};
	bool all = false, release;
	bkr_repo *repo = NULL;
	bkr_holds h = { 0 };
	int first, err = 0;
	size_t done = 0;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &all, &first);
	if (first < argc && strcmp(argv[first], "list") && strcmp(argv[first], "release"))
		return cli_usage_error(c, "unknown action '%s': list or release", argv[first]);
	release = first < argc && !strcmp(argv[first], "release");
	if (!release && (all || argc - first > 1))
		return cli_usage_error(c, all ? "--all goes with release" : "list takes no argument");
	if (release && !all && argc - first < 2)
		return cli_usage_error(c, "release: give the held PATHs, or --all");
	if (release && all && argc - first > 1)
		return cli_usage_error(c, "release: PATHs or --all, not both");
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		return cli_fail(c, err);
	if ((err = bkr_holds_read(repo, &h)) < 0)
		goto done;
	cli_warn_holds(c, &h);
	if (!release) {
		list(c, &h);
		goto done;
	}
	/* every PATH first: a wrong one releases nothing */
	for (int i = first + 1; i < argc; i++)
		if (!bkr_holds_find(&h, argv[i])) {
			err = bkr_error_set(BKR_ENOTFOUND, "%s: no hold of that path ('bkr hold list' names them)", argv[i]);
			goto done;
		}
	for (size_t i = 0; i < h.n && err == 0; i++) {
		bool named = all;
		for (int k = first + 1; k < argc && !named; k++)
			named = !strcmp(argv[k], h.v[i].path);
		if (!named)
			continue;
		if ((err = bkr_hold_release(repo, &h.v[i], "operator")) == 0) {
			done++;
			bkr_log_event(BKR_LOG_INFO, "hold", "released",
				      (const char *[]){ "path", h.v[i].path, "backup_id", h.v[i].backup_id, NULL },
				      "hold of %s released by an operator (its good copy was in %s)", h.v[i].path,
				      h.v[i].backup_id);
		}
	}
	if (err == 0 && (c->json || !c->quiet)) { /* -q hides the line; --json output stays (bkr.1.md) */
		if (c->json) {
			json_out j;
			json_out_init(&j, stdout);
			json_out_begin_object(&j);
			json_out_key(&j, "released");
			json_out_uint(&j, done);
			json_out_end_object(&j);
		} else {
			printf("%zu hold%s released\n", done, done == 1 ? "" : "s");
		}
	}
done:
	bkr_holds_free(&h);
	bkr_repo_free(repo);
	return err < 0 ? cli_fail(c, err) : 0;
}
