/** @file
 * bkr tier status|migrate|forget: what each storage tier holds, moving data
 * packs between the repository and its colder tiers, and forgetting a tier
 * location that is retired or lost (bkr/tier.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"
#include "bkr/tier.h"

static const char usage[] =
	"usage: bkr tier status  [-r REPO] [-c CONFIG] [--json]\n"
	"       bkr tier migrate [-r REPO] -c CONFIG [--dry-run] [--as-of TIME] [--no-wait] [--json]\n"
	"       bkr tier forget  [-r REPO] LOCATION [--lost] [--dry-run] [--no-wait] [--json]\n"
	"       bkr tier forget  [-r REPO] --damaged [--dry-run] [--no-wait] [--json]\n\n"
	"status: data and tree packs, and their bytes, in the repository (hot) and in\n"
	"every tier it recorded or the configuration names; exit status 1 when a\n"
	"recorded tier is missing or not mounted, or two recorded tiers share a\n"
	"directory; 4 when packs the index names are missing from every tier.\n"
	"migrate: move each data pack to the tier its backups ask for: warm once every\n"
	"backup using it is older than tiers.warm.after_days, cold once older than\n"
	"tiers.cold.after_days; pinned backups keep their data hot; tree packs and the\n"
	"index never leave the repository.  The repository records each tier's location\n"
	"once data first reaches it, so readers need no configuration.  Takes the\n"
	"exclusive lock (docs/operations.md \"Tiers\").\n"
	"forget: stop searching a tier location the repository recorded (a retired or\n"
	"lost disk): refused while it holds data packs, and while it is missing unless\n"
	"--lost (then run 'bkr repair': backups whose data was only there are damaged).\n"
	"With --damaged: move the tier records that do not read (their location is\n"
	"unknown) into trash/, where they stay for the grace period.\n\n"
	"  -n, --dry-run      say what would move (or be forgotten), change nothing\n"
	"      --as-of TIME   evaluate ages as if now were TIME (ISO 8601, UTC)\n"
	"      --lost         forget: the location is gone for good, with its data\n"
	"      --damaged      forget: the damaged tier records, instead of a LOCATION\n"
	"      --no-wait      fail at once when a backup is running (default: wait)\n";

enum { OPT_AS_OF = OPT_FIRST_CMD, OPT_LOST, OPT_DAMAGED };

struct opts {
	bool dry_run, lost, damaged, has_as_of;
	int64_t as_of;
	lc_lock_opts lock;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct opts *s = st;
	switch (o) {
	case 'n':
		s->dry_run = true;
		return 0;
	case OPT_AS_OF:
		s->has_as_of = true;
		return lc_as_of(c, arg, &s->as_of);
	case OPT_LOST:
		s->lost = true;
		return 0;
	case OPT_DAMAGED:
		s->damaged = true;
		return 0;
	case LC_OPT_NO_WAIT:
		s->lock.no_wait = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static int status(cli *c, bkr_repo *repo)
{
	bkr_tier_usage *u = NULL;
	bkr_tier_missing miss;
	json_out j;
	size_t n, missing = 0;
	char conflict[8192] = "", hex[BKR_PACK_ID_HEX];
	char **damaged = NULL; /* per place: why its tier.json does not read, or NULL */
	int err, rc = 0;

	if ((err = bkr_tier_status(repo, &u, &n, &miss)) < 0)
		return cli_fail(c, err);
	/* a recorded tier whose tier.json does not read (edited by hand: its checksum, its JSON) is
	 * there, and damaged: named as verify names it, never "missing or not mounted" */
	if (!(damaged = calloc(n, sizeof(*damaged)))) {
		free(u);
		return cli_fail(c, bkr_error_oom());
	}
	for (size_t i = 0; i < n; i++) {
		if (!u[i].present && u[i].recorded && bkr_tier_present(repo, i) == BKR_ECORRUPT &&
		    !(damaged[i] = strdup(bkr_error_message()))) {
			err = bkr_error_oom();
			goto done;
		}
		bkr_error_clear();
	}
	/* the recorded locations against each other: each tier needs its own directory */
	if ((err = bkr_tier_records_check(bkr_repo_tier(repo, 0, NULL, NULL))) == BKR_EINVAL) {
		snprintf(conflict, sizeof(conflict), "%s", bkr_error_message());
		bkr_error_clear();
		err = 0; /* said below, exit 1 */
	} else if (err < 0) {
		goto done;
	}
	bkr_pack_id_to_hex(&miss.first, hex);
	json_out_init(&j, stdout);
	if (c->json) {
		json_out_begin_object(&j);
		json_out_key(&j, "tiers");
		json_out_begin_array(&j);
	} else if (!c->quiet) {
		printf("%-5s %-8s %10s %12s %10s %12s  %s\n", "TIER", "STATE", "DATA PACKS", "DATA BYTES", "TREE PACKS",
		       "TREE BYTES", "LOCATION");
	}
	for (size_t i = 0; i < n; i++) {
		const char *state = damaged[i]     ? "damaged"
				    : !u[i].present ? "missing"
				    : i == 0 || u[i].recorded ? "in use" : "unused";
		char db[32], tb[32];
		missing += !u[i].present && u[i].recorded && !damaged[i];
		if (c->json) {
			json_out_begin_object(&j);
			json_out_member(&j, "tier", u[i].tier);
			json_out_path(&j, "location", u[i].location, strlen(u[i].location));
			json_out_key(&j, "recorded");
			json_out_bool(&j, i == 0 || u[i].recorded);
			json_out_key(&j, "present");
			json_out_bool(&j, u[i].present);
			json_out_key(&j, "damaged");
			if (damaged[i])
				json_out_string(&j, damaged[i]);
			else
				json_out_null(&j);
			json_out_key(&j, "data_packs");
			json_out_uint(&j, u[i].data_packs);
			json_out_key(&j, "data_bytes");
			json_out_uint(&j, u[i].data_bytes);
			json_out_key(&j, "tree_packs");
			json_out_uint(&j, u[i].tree_packs);
			json_out_key(&j, "tree_bytes");
			json_out_uint(&j, u[i].tree_bytes);
			json_out_end_object(&j);
			continue;
		}
		if (c->quiet)
			continue;
		cli_human_bytes(db, u[i].data_bytes);
		cli_human_bytes(tb, u[i].tree_bytes);
		printf("%s%-5s %-8s%s %10" PRIu64 " %12s %10" PRIu64 " %12s  ",
		       cli_col(c, u[i].present ? "reset" : "red"), u[i].tier, state, cli_col(c, "reset"),
		       u[i].data_packs, db, u[i].tree_packs, tb);
		cli_print_name(stdout, u[i].location, strlen(u[i].location));
		putchar('\n');
	}
	if (c->json) {
		json_out_end_array(&j);
		json_out_key(&j, "indexed_packs");
		json_out_uint(&j, miss.indexed);
		json_out_key(&j, "missing_packs");
		json_out_uint(&j, miss.missing);
		json_out_key(&j, "first_missing_pack");
		if (miss.missing)
			json_out_string(&j, hex);
		else
			json_out_null(&j);
		json_out_key(&j, "location_conflict");
		if (*conflict)
			json_out_string(&j, conflict);
		else
			json_out_null(&j);
		json_out_end_object(&j);
	}
	if (missing) {
		cli_problem(c, "%zu tier(s) the repository keeps data in are missing or not mounted", missing);
		rc = BKR_EXIT_FOUND;
	}
	if (*conflict) {
		cli_problem(c, "%s", conflict);
		rc = BKR_EXIT_FOUND;
	}
	if (miss.missing && missing) {
		/* not proven: they may be on the tier that is not there */
		cli_problem(c, "%" PRIu64 " pack(s) the index names are in no place that is there (first: %s): mount the "
			 "missing tier(s) and look again", miss.missing, hex);
	} else if (miss.missing) {
		cli_problem(c, "%" PRIu64 " pack(s) missing from every tier: the index names them, but neither the "
			 "repository nor any tier or trash holds them (first: %s); 'bkr verify' names the backups "
			 "that need them", miss.missing, hex);
		rc = BKR_EXIT_CORRUPT;
	}
	for (size_t i = 0; i < n; i++)
		if (damaged[i]) {
			cli_problem(c, "tier %s: %s", u[i].tier, damaged[i]);
			rc = BKR_EXIT_CORRUPT;
		}
done:
	for (size_t i = 0; damaged && i < n; i++)
		free(damaged[i]);
	free(damaged);
	free(u);
	return err < 0 ? cli_fail(c, err) : rc;
}

static void on_move(void *ctx, const bkr_pack_id *id, uint64_t size, const char *from, const char *to)
{
	cli *c = ctx;
	char hex[BKR_PACK_ID_HEX], b[32];
	(void)from;
	if (c->json || c->verbose < 1)
		return;
	bkr_pack_id_to_hex(id, hex);
	cli_human_bytes(b, size);
	cli_progress_done(c);
	fprintf(stderr, "move %s (%s) -> %s\n", hex, b, to);
}

static void print_report(cli *c, const bkr_tier_migrate_report *r, bool dry_run, int64_t as_of)
{
	char when[32], b[32];
	json_out j;

	bkr_time_format(when, as_of);
	if (c->json) {
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "dry_run");
		json_out_bool(&j, dry_run);
		json_out_member(&j, "as_of", when);
		json_out_key(&j, "backups");
		json_out_uint(&j, r->backups);
		json_out_key(&j, "moved");
		json_out_begin_object(&j);
		for (int l = 0; l < BKR_TIER_LEVELS; l++) {
			json_out_key(&j, bkr_tier_name(l));
			json_out_begin_object(&j);
			json_out_key(&j, "packs");
			json_out_uint(&j, r->packs[l]);
			json_out_key(&j, "bytes");
			json_out_uint(&j, r->bytes[l]);
			json_out_end_object(&j);
		}
		json_out_end_object(&j);
		json_out_key(&j, "stayed_packs");
		json_out_uint(&j, r->stay_packs);
		json_out_key(&j, "stayed_bytes");
		json_out_uint(&j, r->stay_bytes);
		json_out_key(&j, "unused_packs");
		json_out_uint(&j, r->unused_packs);
		json_out_key(&j, "copies_removed");
		json_out_uint(&j, r->copies_removed);
		json_out_end_object(&j);
		return;
	}
	if (c->quiet)
		return;
	for (int l = 0; l < BKR_TIER_LEVELS; l++) {
		cli_human_bytes(b, r->bytes[l]);
		printf("%s%-4s %" PRIu64 " pack(s), %s\n", dry_run ? "would move to " : "moved to ", bkr_tier_name(l),
		       r->packs[l], b);
	}
	cli_human_bytes(b, r->stay_bytes);
	printf("%" PRIu64 " pack(s) (%s) already in place, %" PRIu64 " unused (prune frees them); %" PRIu64
	       " backup(s) as of %s\n", r->stay_packs, b, r->unused_packs, r->backups, when);
}

static int migrate(cli *c, bkr_repo *repo, const struct opts *s)
{
	bkr_tier_migrate_options o = BKR_TIER_MIGRATE_OPTIONS_INIT;
	bkr_tier_migrate_report rep;
	bkr_config *cfg = NULL;
	bkr_lock *lock = NULL;
	int err;

	if ((err = cli_load_config(c, &cfg)) < 0)
		goto done;
	if (!cfg || (!cfg->warm.path && !cfg->cold.path)) {
		err = bkr_error_set(BKR_EINVAL, "no tiers configured: give the configuration (-c or BKR_CONFIG) "
				    "with tiers.warm.path or tiers.cold.path (docs/config.md)");
		goto done;
	}
	o.policy.tier[BKR_TIER_WARM] = (bkr_tier_conf){ cfg->warm.path, cfg->warm.after_days };
	o.policy.tier[BKR_TIER_COLD] = (bkr_tier_conf){ cfg->cold.path, cfg->cold.after_days };
	o.dry_run = s->dry_run;
	o.as_of_ns = s->has_as_of ? s->as_of : bkr_time_now_ns();
	o.as_of_set = true; /* 1970-01-01T00:00:00Z (0) included */
	o.on_move = on_move;
	if (!s->has_as_of) /* after an --as-of time a backup was not made yet: no clock error */
		o.future = cli_warn_future_cb;
	o.progress = c->progress && !s->dry_run ? cli_tier_progress : NULL; /* packs and bytes moved of those to move */
	o.ctx = c;
	if ((err = lc_lock(c, repo, &s->lock, &lock)) < 0)
		goto done;
	err = bkr_tier_migrate(repo, &o, &rep);
	cli_progress_done(c);
	if (err < 0)
		goto done;
	print_report(c, &rep, s->dry_run, o.as_of_ns);
done:
	bkr_lock_release(lock);
	bkr_config_free(cfg);
	return err < 0 ? cli_fail(c, err) : 0;
}

static int forget(cli *c, bkr_repo *repo, const struct opts *s, const char *location)
{
	bkr_tier_forget_report rep;
	bkr_lock *lock = NULL;
	int err;

	if ((err = lc_lock(c, repo, &s->lock, &lock)) == 0)
		err = bkr_tier_forget(repo, location, s->lost, s->dry_run, &rep);
	bkr_lock_release(lock);
	if (err < 0)
		return cli_fail(c, err);
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "dry_run");
		json_out_bool(&j, s->dry_run);
		json_out_member(&j, "tier", rep.tier);
		json_out_path(&j, "location", location, strlen(location));
		json_out_key(&j, "present");
		json_out_bool(&j, rep.present);
		json_out_key(&j, "records");
		json_out_uint(&j, rep.records);
		json_out_end_object(&j);
		return 0;
	}
	if (c->quiet)
		return 0;
	printf("%s tier %s at ", s->dry_run ? "would forget" : "forgot", rep.tier);
	cli_print_name(stdout, location, strlen(location));
	printf(" (%zu record%s)\n", rep.records, rep.records == 1 ? "" : "s");
	if (!rep.present)
		printf("next: 'bkr repair' drops the index entries of packs that were only there; "
		       "'bkr verify' then names the damaged backups\n");
	return 0;
}

struct damaged_list {
	char **v; /* name, error, name, error, ... */
	size_t n;
	bool oom;
};

static void on_damaged(void *ctx, const char *name, const char *why)
{
	struct damaged_list *d = ctx;
	char **nv = d->oom ? NULL : realloc(d->v, (d->n + 2) * sizeof(*nv));
	if (!nv) {
		d->oom = true;
		return;
	}
	d->v = nv;
	d->v[d->n++] = strdup(name);
	d->v[d->n++] = strdup(why);
	d->oom = !d->v[d->n - 2] || !d->v[d->n - 1];
}

static int forget_damaged(cli *c, bkr_repo *repo, const struct opts *s)
{
	struct damaged_list d = { 0 };
	bkr_lock *lock = NULL;
	size_t n = 0;
	int err;

	if ((err = lc_lock(c, repo, &s->lock, &lock)) == 0)
		err = bkr_tier_forget_damaged(repo, s->dry_run, bkr_time_now_ns(), on_damaged, &d, &n);
	bkr_lock_release(lock);
	if (err == 0 && d.oom)
		err = bkr_error_oom();
	if (err < 0)
		goto done;
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "dry_run");
		json_out_bool(&j, s->dry_run);
		json_out_key(&j, "damaged");
		json_out_begin_array(&j);
		for (size_t i = 0; i + 1 < d.n; i += 2) {
			json_out_begin_object(&j);
			json_out_path(&j, "record", d.v[i], strlen(d.v[i]));
			json_out_member(&j, "error", d.v[i + 1]);
			json_out_end_object(&j);
		}
		json_out_end_array(&j);
		json_out_key(&j, "records");
		json_out_uint(&j, n);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		for (size_t i = 0; i + 1 < d.n; i += 2)
			printf("%s tier record %s into trash: %s\n", s->dry_run ? "would move damaged" : "moved damaged",
			       d.v[i], d.v[i + 1]);
		printf("the location%s %s named %s no longer searched: if one held data, put its record back "
		       "from trash/ before 'bkr prune' expires it; else 'bkr repair' drops the index entries of "
		       "packs that were only there\n", n == 1 ? "" : "s", n == 1 ? "it" : "they",
		       s->dry_run ? "would be" : n == 1 ? "is" : "are");
	}
done:
	for (size_t i = 0; i < d.n; i++)
		free(d.v[i]);
	free(d.v);
	return err < 0 ? cli_fail(c, err) : 0;
}

int cmd_tier(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "as-of", required_argument, NULL, OPT_AS_OF },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ "lost", no_argument, NULL, OPT_LOST },
		{ "damaged", no_argument, NULL, OPT_DAMAGED },
		{ NULL, 0, NULL, 0 },
	};
	struct opts s = { 0 };
	bkr_repo *repo = NULL;
	const char *verb, *location = NULL;
	int first, err;

	CLI_PARSE(c, argc, argv, usage, "n", lo, opt, &s, &first);
	if (first >= argc)
		return cli_usage_error(c, "expected 'status', 'migrate' or 'forget'");
	verb = argv[first++];
	if (strcmp(verb, "status") && strcmp(verb, "migrate") && strcmp(verb, "forget"))
		return cli_usage_error(c, "unknown tier verb '%s' (status, migrate or forget)", verb);
	if (!strcmp(verb, "forget")) {
		if (s.damaged && s.lost)
			return cli_usage_error(c, "forget: --damaged takes no --lost (the location is unknown)");
		if (!s.damaged && first >= argc)
			return cli_usage_error(c, "forget: expected the LOCATION to forget ('bkr tier status' lists them), "
					       "or --damaged");
		if (!s.damaged)
			location = argv[first++];
		if (s.has_as_of)
			return cli_usage_error(c, "forget takes no --as-of");
	} else if (s.lost || s.damaged) {
		return cli_usage_error(c, "%s goes with 'bkr tier forget'", s.lost ? "--lost" : "--damaged");
	}
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	if (!strcmp(verb, "status") && (s.dry_run || s.has_as_of || s.lock.no_wait))
		return cli_usage_error(c, "status takes no --dry-run, --as-of or --no-wait");
	/* a later "now" would move data colder than today's policy keeps it,
	 * as cleanup and routine would remove what it keeps: the same check */
	if (s.has_as_of && (err = lc_as_of_allowed(c, s.as_of, bkr_time_now_ns(), s.dry_run)) != 0)
		return err;
	if ((err = cli_open_repo(c, &repo, !strcmp(verb, "status") ? BKR_REPO_RDONLY : 0)) < 0) {
		bkr_repo_free(repo);
		return cli_fail(c, err);
	}
	err = !strcmp(verb, "status") ? status(c, repo) : !strcmp(verb, "migrate") ? migrate(c, repo, &s)
	      : s.damaged ? forget_damaged(c, repo, &s)
			  : forget(c, repo, &s, location);
	bkr_repo_free(repo);
	return err;
}
