/** @file
 * bkr prune: free the space of data no backup or recovery run uses
 * (bkr/prune.h), under the exclusive lock.
 */
#include <stdlib.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"

static const char usage[] =
	"usage: bkr prune -r REPO [--dry-run] [--max-unused PERCENT] [--grace DURATION]\n"
	"       [--no-wait] [--json]\n\n"
	"Move packs no backup or recovery run uses into the trash, repack packs whose\n"
	"unused share exceeds PERCENT (default 10), merge the index files into one,\n"
	"remove leftovers of killed writers, and empty trash older than the grace\n"
	"period (default 1d).  Reports the bytes freed (docs/operations.md).  A pack\n"
	"to repack that holds a damaged blob is left as it is, the blob named and\n"
	"recorded for 'bkr repair', and the rest done (exit 6).\n\n"
	"  -n, --dry-run          say what would be done, change nothing\n"
	"      --max-unused PCT   repack threshold, 0..100\n"
	"      --grace D          how long trash and leftovers wait (e.g. 12h; 0 = now:\n"
	"                         only when no mount or backup reads the repository;\n"
	"                         units y, m (months), w, d, h, min (minutes), s)\n"
	"      --no-wait          fail at once when a backup is running (default: wait)\n";

enum { OPT_MAX_UNUSED = OPT_FIRST_CMD, OPT_GRACE };

static int opt(cli *c, int o, const char *arg, void *st)
{
	bkr_prune_options *p = st;
	switch (o) {
	case 'n':
		p->dry_run = true;
		return 0;
	case OPT_MAX_UNUSED:
		return lc_max_unused(c, arg, &p->max_unused_pct);
	case OPT_GRACE:
		if (bkr_config_parse_duration(arg, &p->grace_s) < 0)
			return cli_usage_error(c, "--grace: %s", bkr_error_message());
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

struct state {
	bkr_prune_options po; /* first: opt() gets it */
	lc_lock_opts lock;
};

static int opt_all(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	if (o == LC_OPT_NO_WAIT) {
		s->lock.no_wait = true;
		return 0;
	}
	return opt(c, o, arg, &s->po);
}

int cmd_prune(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .po = BKR_PRUNE_OPTIONS_INIT };
	bkr_prune_report pr;
	json_out j;
	bkr_repo *repo = NULL;
	bkr_lock *lock = NULL;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "n", lo, opt_all, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		goto done;
	if ((err = lc_lock(c, repo, &s.lock, &lock)) < 0)
		goto done;
	s.po.progress = c->progress ? cli_progress_step : NULL;
	s.po.progress_ctx = c;
	s.po.damage = lc_prune_damage;
	s.po.damage_ctx = c;
	if ((err = bkr_prune_run(repo, &s.po, &pr)) < 0)
		goto done;
	if (!s.po.dry_run)
		lc_log_prune(&pr);
	json_out_init(&j, stdout);
	lc_print_prune(c, &j, &pr, s.po.dry_run); /* --json: the report at the top level ends with a newline */
	rc = lc_prune_exit(&pr); /* damage left in place, each named on stderr: done, with problems */
done:
	bkr_lock_release(lock);
	bkr_repo_free(repo);
	return err < 0 ? cli_fail(c, err) : rc;
}
