/** @file
 * bkr health: is the configuration's repository healthy, and if not why
 * (bkr/health.h); optionally the same as Prometheus metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/error.h"
#include "bkr/health.h"
#include "bkr/utf8.h"

static const char usage[] =
	"usage: bkr health -c CONFIG [--json] [--prometheus FILE] [--as-of TIME]\n\n"
	"Per source the age of its newest good backup against its schedule, the last\n"
	"verify, storage per tier, repository size and growth, recent routine\n"
	"failures and the files the newest recovery run left to a person.  Healthy\n"
	"means: no scheduled source has a backup older than twice its schedule (or\n"
	"none), the last verify found no damage, the last run of every routine\n"
	"succeeded and no file needs a person; otherwise each reason is listed.\n\n"
	"      --prometheus FILE  also write the metrics to FILE (node_exporter's textfile\n"
	"                         format, atomically; '-' for stdout instead of the\n"
	"                         report, not with --json)\n"
	"      --as-of TIME       judge as if now were TIME (ISO 8601)\n"
	"      --json             the report as JSON\n\n"
	"Exit status: 0 healthy, 1 not healthy (the reasons are printed), 2 usage or\n"
	"configuration, 3 no repository, 4, 7 or 8 the repository cannot be read,\n"
	"9 wrong passphrase.\n";

enum { OPT_PROMETHEUS = OPT_FIRST_CMD, OPT_AS_OF };

struct opts {
	const char *prometheus;
	int64_t as_of;
	bool has_as_of;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct opts *s = st;
	switch (o) {
	case OPT_PROMETHEUS:
		s->prometheus = arg;
		return 0;
	case OPT_AS_OF:
		if (cli_as_of(c, arg, &s->as_of) != 0)
			return BKR_EXIT_USAGE;
		s->has_as_of = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static const char *const tier_names[] = { "hot", "warm", "cold" };

static void json_time(json_out *j, const char *key, int64_t ns, bool known)
{
	char t[32];
	if (!known) {
		json_out_member(j, key, NULL);
		return;
	}
	bkr_time_format(t, ns);
	json_out_member(j, key, t);
}

/* One verify's findings, or null when none was recorded. */
static void json_verify(json_out *j, const char *key, const bkr_health_verify *v)
{
	json_out_key(j, key);
	if (!v->known) {
		json_out_null(j);
		return;
	}
	json_out_begin_object(j);
	json_time(j, "time", v->time_ns, true);
	json_out_member(j, "backup", v->backup_id); /* the one backup it checked; null: the whole repository */
	json_out_key(j, "read_data");
	json_out_bool(j, v->read_data);
	json_out_key(j, "ok");
	json_out_bool(j, v->ok);
	json_out_key(j, "errors");
	json_out_uint(j, v->errors);
	json_out_key(j, "io_errors");
	json_out_uint(j, v->io_errors);
	json_out_key(j, "damaged_objects");
	json_out_uint(j, v->damaged_objects);
	json_out_key(j, "damaged_backups");
	json_out_begin_array(j);
	for (size_t i = 0; i < v->ndamaged_backups; i++)
		json_out_string(j, v->damaged_backups[i]);
	json_out_end_array(j);
	json_out_end_object(j);
}

static void print_json(const bkr_health *h)
{
	json_out j;
	char b[64];

	json_out_init(&j, stdout);
	json_out_begin_object(&j);
	json_out_key(&j, "healthy");
	json_out_bool(&j, h->nreasons == 0);
	json_time(&j, "as_of", h->now_ns, true);
	json_out_key(&j, "reasons");
	json_out_begin_array(&j);
	for (size_t i = 0; i < h->nreasons; i++)
		json_out_string(&j, h->reasons[i]);
	json_out_end_array(&j);
	json_out_key(&j, "backups");
	json_out_uint(&j, h->backups);
	json_out_key(&j, "sources");
	json_out_begin_array(&j);
	for (size_t i = 0; i < h->nsources; i++) {
		const bkr_health_source *s = &h->sources[i];
		bool has = s->newest_ns != INT64_MIN;
		json_out_begin_object(&j);
		json_out_path(&j, "source", s->name, strlen(s->name));
		json_out_member(&j, "schedule", bkr_schedule_name(s->schedule));
		json_out_key(&j, "interval_seconds");
		json_out_int(&j, bkr_schedule_interval_s(s->schedule));
		json_out_member(&j, "newest_backup", s->newest_id);
		json_time(&j, "newest_time", s->newest_ns, has);
		json_out_key(&j, "age_seconds");
		if (has)
			json_out_int(&j, s->age_s);
		else
			json_out_null(&j);
		json_out_member(&j, "status", s->schedule == BKR_SCHEDULE_MANUAL ? "manual" : s->stale ? "stale" : "ok");
		json_out_end_object(&j);
	}
	json_out_end_array(&j);
	json_verify(&j, "verify", &h->verify);
	json_verify(&j, "verify_read_data", &h->verify_read_data);
	json_verify(&j, "verify_read_data_backup", &h->verify_read_data_backup);
	json_out_key(&j, "damaged_backups");
	json_out_begin_array(&j);
	for (size_t i = 0; i < h->ndamaged_backups; i++)
		json_out_string(&j, h->damaged_backups[i]);
	json_out_end_array(&j);
	json_out_key(&j, "storage");
	json_out_begin_object(&j);
	for (int t = 0; t < BKR_TIER_COUNT; t++) {
		json_out_key(&j, tier_names[t]);
		json_out_begin_object(&j);
		json_out_key(&j, "bytes");
		json_out_uint(&j, h->tier_bytes[t]);
		json_out_key(&j, "packs");
		json_out_uint(&j, h->tier_packs[t]);
		json_out_end_object(&j);
	}
	json_out_end_object(&j);
	json_out_key(&j, "repository_bytes");
	json_out_uint(&j, h->repo_bytes);
	json_out_key(&j, "growth_bytes_per_day");
	if (h->growth_known) {
		snprintf(b, sizeof(b), "%.0f", h->growth_bytes_per_day);
		json_out_raw(&j, b);
	} else {
		json_out_null(&j);
	}
	json_out_key(&j, "routines");
	json_out_begin_object(&j);
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++) {
		const bkr_health_routine *r = &h->routines[k];
		json_out_key(&j, bkr_routine_name((bkr_routine_kind)k));
		json_out_begin_object(&j);
		json_time(&j, "last_run", r->last_ns, r->known);
		json_out_key(&j, "last_ok");
		if (r->known)
			json_out_bool(&j, r->last_ok);
		else
			json_out_null(&j);
		json_out_member(&j, "last_problem", r->last_problem);
		json_out_key(&j, "recent_failures");
		json_out_uint(&j, r->failures);
		json_out_end_object(&j);
	}
	json_out_end_object(&j);
	json_out_key(&j, "need_person");
	json_out_begin_object(&j);
	json_out_member(&j, "run", h->manual_run);
	json_out_key(&j, "files");
	json_out_begin_array(&j);
	for (size_t i = 0; i < h->nmanual; i++)
		json_out_string(&j, h->manual_files[i]);
	json_out_end_array(&j);
	json_out_end_object(&j);
	json_out_key(&j, "held");
	json_out_begin_array(&j);
	for (size_t i = 0; i < h->holds.n; i++)
		json_out_hold(&j, &h->holds.v[i]);
	json_out_end_array(&j);
	json_out_end_object(&j);
}

static void print_verify(const char *what, const bkr_health_verify *v)
{
	char t[32], esc[1024];

	bkr_time_format(t, v->time_ns);
	printf("%s: %s", what, t);
	if (v->backup_id)
		printf(", of backup %s%s", bkr_text_escape(esc, sizeof(esc), v->backup_id, strlen(v->backup_id)),
		       v->read_data ? " (every byte of it read)" : "");
	printf("%s, %s", !v->backup_id && v->read_data ? " (every byte read)" : "",
	       v->ok || (v->io_errors && !v->errors && !v->damaged_objects) ? "no damage" : "DAMAGE found");
	if (v->io_errors)
		printf(", %llu object%s COULD NOT BE READ (I/O error)", (unsigned long long)v->io_errors,
		       v->io_errors == 1 ? "" : "s");
	printf("\n");
}

static void print_text(cli *c, const bkr_health *h)
{
	char a[32], b[32], t[32], esc[4096]; /* reasons and names hold config text: escaped */

	if (h->nreasons == 0)
		printf("%shealthy%s\n", cli_col(c, "green"), cli_col(c, "reset"));
	else
		printf("%sNOT HEALTHY%s:\n", cli_col(c, "red"), cli_col(c, "reset"));
	for (size_t i = 0; i < h->nreasons; i++)
		printf("  - %s\n", bkr_text_escape(esc, sizeof(esc), h->reasons[i], strlen(h->reasons[i])));
	if (c->quiet)
		return;
	printf("sources:\n");
	for (size_t i = 0; i < h->nsources; i++) {
		const bkr_health_source *s = &h->sources[i];
		if (s->newest_ns == INT64_MIN)
			snprintf(a, sizeof(a), "no backup");
		else
			bkr_health_age(a, s->age_s);
		printf("  %-20s %-7s %-12s %-6s %s\n", bkr_text_escape(esc, sizeof(esc), s->name, strlen(s->name)), bkr_schedule_name(s->schedule), a,
		       s->schedule == BKR_SCHEDULE_MANUAL ? "" : s->stale ? "STALE" : "ok", s->newest_id ? s->newest_id : "");
	}
	if (h->verify.known)
		print_verify("last verify", &h->verify);
	else
		printf("last verify: none recorded (the daily and weekly routines verify)\n");
	/* the one that read the whole repository's data, when another verify came after it */
	if (h->verify_read_data.known && h->verify.time_ns > h->verify_read_data.time_ns)
		print_verify("last verify --read-data of the whole repository", &h->verify_read_data);
	else if (!h->verify_read_data.known && h->verify.known)
		printf("last verify --read-data of the whole repository: none recorded (the weekly routine reads "
		       "every byte)\n");
	/* one backup's data read since, when that is not the last verify (said above) */
	if (h->verify_read_data_backup.known && h->verify.time_ns > h->verify_read_data_backup.time_ns)
		print_verify("newer verify --read-data of one backup", &h->verify_read_data_backup);
	for (size_t i = 0; i < h->ndamaged_backups; i++)
		printf("damaged backup (not counted good): %s\n",
		       bkr_text_escape(esc, sizeof(esc), h->damaged_backups[i], strlen(h->damaged_backups[i])));
	printf("storage:");
	for (int k = 0; k < BKR_TIER_COUNT; k++) {
		cli_human_bytes(a, h->tier_bytes[k]);
		printf(" %s %s (%llu packs)%s", tier_names[k], a, (unsigned long long)h->tier_packs[k],
		       k + 1 < BKR_TIER_COUNT ? "," : "");
	}
	cli_human_bytes(a, h->repo_bytes);
	printf("; total %s", a);
	if (h->growth_known) {
		cli_human_bytes(b, (uint64_t)(h->growth_bytes_per_day < 0 ? -h->growth_bytes_per_day : h->growth_bytes_per_day));
		printf(", %s%s a day", h->growth_bytes_per_day < 0 ? "-" : "+", b);
	}
	printf("; %zu backups\n", h->backups);
	printf("routines:");
	for (int k = 0; k <= BKR_ROUTINE_EMERGENCY; k++) {
		const bkr_health_routine *r = &h->routines[k];
		if (!r->known) {
			printf(" %s never;", bkr_routine_name((bkr_routine_kind)k));
			continue;
		}
		bkr_time_format(t, r->last_ns);
		printf(" %s %s %s (%zu failed in 7 days);", bkr_routine_name((bkr_routine_kind)k), t,
		       r->last_ok ? "ok" : "FAILED", r->failures);
	}
	printf("\n");
	for (size_t i = 0; i < h->nmanual; i++) {
		printf("needs a person: ");
		cli_print_name(stdout, h->manual_files[i], strlen(h->manual_files[i]));
		printf(" (recovery run %s)\n", h->manual_run);
	}
	for (size_t i = 0; i < h->holds.n; i++) {
		const bkr_hold *hd = &h->holds.v[i];
		/* a record's words: escaped, as the path is quoted */
		printf("held (%s, not recovered): ", bkr_text_escape(esc, sizeof(esc), hd->damage, strlen(hd->damage)));
		cli_print_name(stdout, hd->path, strlen(hd->path));
		printf(" (its last good copy in %s, kept by retention)\n",
		       bkr_text_escape(esc, sizeof(esc), hd->backup_id, strlen(hd->backup_id)));
	}
}

int cmd_health(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "prometheus", required_argument, NULL, OPT_PROMETHEUS },
		{ "as-of", required_argument, NULL, OPT_AS_OF },
		{ NULL, 0, NULL, 0 },
	};
	struct opts s = { 0 };
	bkr_config *cfg = NULL;
	bkr_repo *repo = NULL;
	bkr_health *h = NULL;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	/* both on stdout would be neither valid JSON nor valid metrics */
	if (c->json && s.prometheus && !strcmp(s.prometheus, "-"))
		return cli_usage_error(c, "--json and --prometheus - both write to stdout: give --prometheus a FILE");
	if ((err = cli_load_config(c, &cfg)) < 0)
		return cli_fail(c, err);
	if (!cfg) {
		rc = cli_usage_error(c, "health needs a configuration (the sources and their schedules): give -c FILE or set BKR_CONFIG");
		goto done;
	}
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0 ||
	    (err = bkr_health_check(&h, cfg, repo, s.has_as_of ? s.as_of : bkr_time_now_ns())) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	for (size_t i = 0; i < h->nfuture && !s.has_as_of; i++)
		cli_warn_future(c, h->future[i].id, h->future[i].time_ns);
	cli_warn_holds(c, &h->holds);
	if (s.prometheus && !strcmp(s.prometheus, "-")) {
		char *text = bkr_health_prometheus(h);
		if (!text) {
			rc = cli_fail(c, bkr_error_oom());
			goto done;
		}
		fputs(text, stdout);
		free(text);
	} else {
		if (s.prometheus && (err = bkr_health_write_prometheus(h, s.prometheus)) < 0) {
			rc = cli_fail(c, err);
			goto done;
		}
		if (c->json)
			print_json(h);
		else
			print_text(c, h);
	}
	rc = h->nreasons ? BKR_EXIT_FOUND : 0;
done:
	bkr_health_free(h);
	bkr_repo_free(repo);
	bkr_config_free(cfg);
	return rc;
}
