/** @file
 * bkr cleanup: apply the retention policy (bkr/retention.h) — the
 * configuration's, or exactly the --keep-* flags given — delete what it
 * removes (manifests into trash), then prune.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"
#include "bkr/retention.h"
#include "bkr/trash.h"

static const char usage[] =
	"usage: bkr cleanup -r REPO [-c CONFIG] [--dry-run] [--as-of TIME] [--keep-last N]\n"
	"       [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N]\n"
	"       [--keep-yearly N] [--keep-within DURATION] [--type T] [--no-prune]\n"
	"       [--max-unused PERCENT] [--no-wait] [--json]\n\n"
	"Apply the retention policy: the configuration's \"retention\" (per backup type;\n"
	"without one, keep 30 days), or - when any --keep-* flag is given - exactly the\n"
	"flags given, for every type.  Pinned backups, the newest backup of each\n"
	"source and the backups a hold names ('bkr hold') are always kept.  Removed\n"
	"backups go to the trash; then prune frees their data (docs/operations.md).\n"
	"A count N is 0..1000000 in decimal digits.\n\n"
	"  -n, --dry-run           list every backup with KEEP/REMOVE and the rule; change nothing\n"
	"      --as-of TIME        evaluate as if now were TIME (ISO 8601, UTC)\n"
	"      --keep-last N       the N newest backups\n"
	"      --keep-hourly N     the newest of each of the last N hours (UTC) that have one\n"
	"      --keep-daily N      ... days\n"
	"      --keep-weekly N     ... ISO weeks\n"
	"      --keep-monthly N    ... months\n"
	"      --keep-yearly N     ... years\n"
	"      --keep-within D     every backup younger than D (e.g. 7d, 12h, 1y6m, 2h30min;\n"
	"                          units from the largest down: y, m (months), w, d, h,\n"
	"                          min (minutes), s)\n"
	"  -t, --type T            only consider backups of type T\n"
	"      --no-prune          do not prune (data is freed by a later 'bkr prune')\n"
	"      --max-unused PCT    prune: repack packs with more unused bytes (default 10)\n"
	"      --no-wait           fail at once when a backup is running (default: wait)\n";

enum {
	OPT_AS_OF = OPT_FIRST_CMD,
	OPT_LAST, OPT_HOURLY, OPT_DAILY, OPT_WEEKLY, OPT_MONTHLY, OPT_YEARLY, OPT_WITHIN,
	OPT_NO_PRUNE, OPT_MAX_UNUSED,
};

struct opts {
	bool dry_run, no_prune, has_keep, by_type;
	bkr_backup_type type;
	int64_t as_of;
	bool has_as_of;
	bkr_retention_policy keep;
	int max_unused;
	lc_lock_opts lock;
};

/* a count as the configuration's keep_* take it: decimal digits, no sign, space or leading zero */
static int count_arg(cli *c, const char *opt, const char *arg, int *out)
{
	uint64_t v;
	if (cli_uint_arg(c, opt, arg, "a count ", 0, 1000000, &v))
		return BKR_EXIT_USAGE;
	*out = (int)v;
	return 0;
}

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct opts *s = st;
	switch (o) {
	case 'n':
		s->dry_run = true;
		return 0;
	case 't':
		if (bkr_backup_type_parse(arg, &s->type) < 0)
			return cli_usage_error(c, "--type: unknown backup type '%s'", arg);
		s->by_type = true;
		return 0;
	case OPT_AS_OF:
		s->has_as_of = true;
		return lc_as_of(c, arg, &s->as_of);
	case OPT_LAST:
		s->has_keep = true;
		return count_arg(c, "--keep-last", arg, &s->keep.keep_last);
	case OPT_HOURLY:
		s->has_keep = true;
		return count_arg(c, "--keep-hourly", arg, &s->keep.keep_hourly);
	case OPT_DAILY:
		s->has_keep = true;
		return count_arg(c, "--keep-daily", arg, &s->keep.keep_daily);
	case OPT_WEEKLY:
		s->has_keep = true;
		return count_arg(c, "--keep-weekly", arg, &s->keep.keep_weekly);
	case OPT_MONTHLY:
		s->has_keep = true;
		return count_arg(c, "--keep-monthly", arg, &s->keep.keep_monthly);
	case OPT_YEARLY:
		s->has_keep = true;
		return count_arg(c, "--keep-yearly", arg, &s->keep.keep_yearly);
	case OPT_WITHIN:
		s->has_keep = true;
		if (bkr_config_parse_duration(arg, &s->keep.keep_within_s) < 0)
			return cli_usage_error(c, "--keep-within: %s", bkr_error_message());
		return 0;
	case OPT_NO_PRUNE:
		s->no_prune = true;
		return 0;
	case OPT_MAX_UNUSED:
		return lc_max_unused(c, arg, &s->max_unused);
	case LC_OPT_NO_WAIT:
		s->lock.no_wait = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* The policy per type: the flags, the configuration's, or the seed default. */
static int policies(cli *c, const struct opts *s, const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1],
		    bkr_config **cfg)
{
	int err;
	*cfg = NULL;
	if (!s->has_keep && (err = cli_load_config(c, cfg)) < 0)
		return err;
	for (int t = 0; t <= BKR_BACKUP_RECOVERY; t++)
		pol[t] = s->has_keep ? &s->keep : *cfg ? bkr_config_retention_for(*cfg, (bkr_backup_type)t)
						       : &bkr_retention_default;
	return 0;
}

/* --json: the plan's members, into the open top-level object @p j. */
static void json_plan(json_out *j, const bkr_manifest *const *ms, const bkr_retention_decision *d, size_t n,
		      bool dry_run, int64_t as_of)
{
	char rules[128], when[32];
	size_t removed = 0;

	for (size_t i = 0; i < n; i++)
		removed += !d[i].keep;
	bkr_time_format(when, as_of);
	json_out_key(j, "dry_run");
	json_out_bool(j, dry_run);
	json_out_member(j, "as_of", when);
	json_out_key(j, "kept");
	json_out_uint(j, n - removed);
	json_out_key(j, "removed");
	json_out_uint(j, removed);
	json_out_key(j, "backups");
	json_out_begin_array(j);
	for (size_t i = 0; i < n; i++) {
		bkr_retention_rules_str(d[i].rules, rules, sizeof(rules));
		json_out_begin_object(j);
		json_out_path(j, "backup_id", ms[i]->backup_id, strlen(ms[i]->backup_id));
		json_out_member(j, "timestamp", ms[i]->timestamp);
		json_out_member(j, "backup_type", bkr_backup_type_name(ms[i]->type));
		json_out_member(j, "action", d[i].keep ? "keep" : "remove");
		json_out_member(j, "rules", rules);
		json_out_end_object(j);
	}
	json_out_end_array(j);
}

static void print_plan(cli *c, const bkr_manifest *const *ms, const bkr_retention_decision *d, size_t n,
		       bool dry_run)
{
	char rules[128];
	size_t removed = 0;

	for (size_t i = 0; i < n; i++)
		removed += !d[i].keep;
	if (c->quiet)
		return;
	for (size_t i = 0; i < n; i++) {
		bkr_retention_rules_str(d[i].rules, rules, sizeof(rules));
		if (dry_run || !d[i].keep || c->verbose)
			printf("%s%-6s%s %-42s %-28s %-12s %s\n", cli_col(c, d[i].keep ? "green" : "red"),
			       d[i].keep ? "KEEP" : "REMOVE", cli_col(c, "reset"), ms[i]->backup_id,
			       ms[i]->timestamp, bkr_backup_type_name(ms[i]->type), d[i].keep ? rules : "no rule keeps it");
	}
	printf("%s%zu kept, %zu removed\n", dry_run ? "dry run: " : "", n - removed, removed);
}

int cmd_cleanup(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "type", required_argument, NULL, 't' },
		{ "as-of", required_argument, NULL, OPT_AS_OF },
		{ "keep-last", required_argument, NULL, OPT_LAST },
		{ "keep-hourly", required_argument, NULL, OPT_HOURLY },
		{ "keep-daily", required_argument, NULL, OPT_DAILY },
		{ "keep-weekly", required_argument, NULL, OPT_WEEKLY },
		{ "keep-monthly", required_argument, NULL, OPT_MONTHLY },
		{ "keep-yearly", required_argument, NULL, OPT_YEARLY },
		{ "keep-within", required_argument, NULL, OPT_WITHIN },
		{ "no-prune", no_argument, NULL, OPT_NO_PRUNE },
		{ "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct opts s = { .max_unused = 10 };
	const bkr_retention_policy *pol[BKR_BACKUP_RECOVERY + 1];
	bkr_config *cfg = NULL;
	bkr_repo *repo = NULL;
	bkr_lock *lock = NULL;
	lc_plan plan = { 0 };
	int64_t now = bkr_time_now_ns();
	bkr_prune_report pr;
	bool pruned = false;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "nt:", lo, opt, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if (!s.has_as_of)
		s.as_of = now;
	else if ((err = lc_as_of_allowed(c, s.as_of, now, s.dry_run)) != 0)
		return err;
	if ((err = policies(c, &s, pol, &cfg)) < 0)
		goto done;
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		goto done;
	if (!s.dry_run && (err = lc_lock(c, repo, &s.lock, &lock)) < 0)
		goto done;
	if ((err = lc_plan_make(&plan, repo, pol, s.by_type ? &s.type : NULL, s.as_of)) < 0)
		goto done;
	if (!s.has_as_of)
		lc_plan_warn_future(c, &plan);
	cli_warn_holds(c, &plan.holds);
	if (plan.bad) {
		/* a damaged manifest's backup is unknown to the policy: keep going, say so */
		cli_warn(c, "%zu manifest(s) are damaged and left alone; last: %s", plan.bad, bkr_error_message());
	}
	/* --json prints once everything is done, so a failure prints only the error object */
	if (!c->json)
		print_plan(c, (const bkr_manifest *const *)plan.ms, plan.d, plan.n, s.dry_run);
	if (!s.dry_run) {
		bkr_prune_options po = BKR_PRUNE_OPTIONS_INIT;
		po.max_unused_pct = s.max_unused;
		po.now_ns = now;
		po.progress = c->progress ? cli_progress_step : NULL;
		po.progress_ctx = c;
		po.damage = lc_prune_damage;
		po.damage_ctx = c;
		if ((err = lc_plan_apply(repo, &plan, now, s.no_prune ? NULL : &po, &pr)) < 0)
			goto done;
		pruned = !s.no_prune;
		if (s.no_prune && !c->quiet && !c->json)
			printf("not pruned (--no-prune): run 'bkr prune' to free the data of removed backups\n");
	}
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_plan(&j, (const bkr_manifest *const *)plan.ms, plan.d, plan.n, s.dry_run, s.as_of);
		json_out_key(&j, "prune");
		if (pruned)
			lc_print_prune(c, &j, &pr, false);
		else
			json_out_null(&j);
		json_out_end_object(&j);
	} else if (pruned) {
		lc_print_prune(c, NULL, &pr, false);
	}
	if (pruned)
		rc = lc_prune_exit(&pr); /* damage prune left in place, each named on stderr */
done:
	lc_plan_free(&plan);
	bkr_lock_release(lock);
	bkr_repo_free(repo);
	bkr_config_free(cfg);
	return err < 0 ? cli_fail(c, err) : rc;
}
