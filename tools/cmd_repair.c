/** @file
 * bkr repair: rebuild the index from the packs, take damaged blobs out of it
 * (bkr/repair.h), under the exclusive lock; name what stays damaged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"
#include "bkr/repair.h"

static const char usage[] =
	"usage: bkr repair -r REPO [--dry-run] [--no-wait] [--json]\n\n"
	"Rebuild the index from the packs' footers (index files lost or damaged),\n"
	"and take out of it every blob that 'bkr verify --read-data' recorded as\n"
	"damaged and that still fails to read, so that the next backup of a source\n"
	"that still has those bytes stores them again.  Then name every backup and\n"
	"path that stays damaged, and whether the live file still has its content\n"
	"(docs/operations.md, \"What repair does\").\n\n"
	"  -n, --dry-run   say what would be done, change nothing\n"
	"      --no-wait   fail at once when a backup is running (default: wait)\n\n"
	"Exit status: 0 the repository is whole, 1 some packs cannot be read or some\n"
	"files stay damaged (listed), 5 locked (--no-wait).\n";

struct state {
	bkr_repair_options o;
	lc_lock_opts lock;
	cli *c;
	FILE *problems;   /* --json: the findings, in memory until the summary */
	json_out pj;
	char *buf;
	size_t buflen;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	(void)arg;
	if (o == 'n') {
		s->o.dry_run = true;
		return 0;
	}
	if (o == LC_OPT_NO_WAIT) {
		s->lock.no_wait = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static const char *kind_name(bkr_repair_kind k)
{
	switch (k) {
	case BKR_REPAIR_INDEX_FILE: return "index-file";
	case BKR_REPAIR_PACK: return "pack";
	case BKR_REPAIR_MISSING_PACK: return "missing-pack";
	case BKR_REPAIR_ENTRY: return "index-entry";
	case BKR_REPAIR_DAMAGED_BLOB: return "damaged-blob";
	case BKR_REPAIR_DAMAGED_FILE: return "damaged-file";
	case BKR_REPAIR_CONFIG: return "config";
	case BKR_REPAIR_TRASH_PACK: return "trash-pack";
	case BKR_REPAIR_MANIFEST: return "manifest";
	}
	return "?";
}

static void on_problem(void *ctx, const bkr_repair_problem *p)
{
	struct state *s = ctx;
	if (s->c->json) {
		json_out *j = &s->pj;
		json_out_begin_object(j);
		json_out_member(j, "kind", kind_name(p->kind));
		json_out_member(j, "object", p->object ? p->object : "");
		if (p->backup_id)
			json_out_member(j, "backup_id", p->backup_id);
		if (p->path)
			json_out_path(j, "path", p->path, strlen(p->path));
		if (p->kind == BKR_REPAIR_DAMAGED_FILE) {
			if (p->live_path)
				json_out_path(j, "live_path", p->live_path, strlen(p->live_path));
			json_out_key(j, "healable");
			json_out_bool(j, p->live == BKR_REPAIR_LIVE_SAME);
		}
		json_out_member(j, "message", p->message);
		json_out_end_object(j);
		return;
	}
	cli_progress_done(s->c); /* a finding stands on its own line */
	if (p->kind == BKR_REPAIR_PACK || p->kind == BKR_REPAIR_MANIFEST) {
		/* an unreadable pack is an error: one line on stderr naming it */
		fprintf(stderr, "bkr %s: %s\n", s->c->cmd, p->message);
		return;
	}
	if (p->kind == BKR_REPAIR_DAMAGED_FILE) {
		/* a file that stays damaged is why repair exits 1: -q keeps its line */
		printf("%sdamaged%s %s ", cli_col(s->c, "red"), cli_col(s->c, "reset"), p->backup_id);
		cli_print_name(stdout, p->path, strlen(p->path));
		printf(": %s\n", p->message);
	} else if (!s->c->quiet) {
		printf("%s: %s\n", kind_name(p->kind), p->message);
	}
}

static void print_report(cli *c, const bkr_repair_report *r, bool dry_run, bool whole, const char *findings)
{
	if (c->json) {
		const struct { const char *key; uint64_t v; } counts[] = {
			{ "index_files", r->index_files }, { "damaged_index_files", r->damaged_index_files },
			{ "packs", r->packs }, { "bad_packs", r->bad_packs },
			{ "entries_before", r->entries_before }, { "entries_after", r->entries_after },
			{ "added", r->added }, { "rescued_packs", r->rescued_packs },
			{ "dropped_missing", r->dropped_missing },
			{ "dropped_bogus", r->dropped_bogus }, { "damaged_recorded", r->damaged_recorded },
			{ "damaged_dropped", r->damaged_dropped }, { "damaged_healed", r->damaged_healed },
			{ "damaged_files", r->damaged_files }, { "healable_files", r->healable_files },
			{ "backups_damaged", r->backups_damaged }, { "damaged_manifests", r->damaged_manifests },
			{ "damage_records_resolved", r->damage_records_resolved },
		};
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "ok");
		json_out_bool(&j, whole);
		json_out_key(&j, "dry_run");
		json_out_bool(&j, dry_run);
		json_out_key(&j, "rewritten");
		json_out_bool(&j, r->rewritten);
		if (r->config_rewritten)
			json_out_member(&j, "config_rewritten", r->config_rewritten);
		json_out_key(&j, "damaged_incomplete");
		json_out_bool(&j, r->damaged_incomplete);
		for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++) {
			json_out_key(&j, counts[i].key);
			json_out_uint(&j, counts[i].v);
		}
		json_out_key(&j, "problems");
		json_out_raw(&j, findings);
		json_out_end_object(&j);
		return;
	}
	if (c->quiet)
		return;
	printf("%sindex: %llu file%s read (%llu damaged), %llu packs (%llu unreadable); %llu blobs before, %llu after: "
	       "%llu added from the packs' footers, %llu dropped (%llu of missing packs, %llu wrong, %llu damaged); %s\n",
	       dry_run ? "dry run: " : "", (unsigned long long)r->index_files, r->index_files == 1 ? "" : "s",
	       (unsigned long long)r->damaged_index_files, (unsigned long long)r->packs,
	       (unsigned long long)r->bad_packs, (unsigned long long)r->entries_before,
	       (unsigned long long)r->entries_after, (unsigned long long)r->added,
	       (unsigned long long)(r->dropped_missing + r->dropped_bogus + r->damaged_dropped),
	       (unsigned long long)r->dropped_missing, (unsigned long long)r->dropped_bogus,
	       (unsigned long long)r->damaged_dropped,
	       !r->rewritten ? "nothing to rewrite" : dry_run ? "would rewrite it as one index file" : "rewritten as one index file");
	if (r->damaged_recorded)
		printf("heal: %llu damaged blob%s recorded (by verify or prune): %llu taken out of the index, %llu read fine now\n",
		       (unsigned long long)r->damaged_recorded, r->damaged_recorded == 1 ? "" : "s",
		       (unsigned long long)r->damaged_dropped, (unsigned long long)r->damaged_healed);
	if (r->damage_records_resolved)
		printf("heal: %llu damage record%s (by prune) resolved: %s into trash\n",
		       (unsigned long long)r->damage_records_resolved, r->damage_records_resolved == 1 ? "" : "s",
		       dry_run ? "would move" : r->damage_records_resolved == 1 ? "moved it" : "moved them");
	if (r->damaged_incomplete)
		printf("heal: a verify or prune found more damaged blobs than its record holds: run 'bkr verify --read-data' "
		       "and 'bkr repair' again\n");
	if (r->damaged_files)
		printf("%llu file%s in %llu backup%s stay%s damaged; %llu can be healed by a new backup of their source\n",
		       (unsigned long long)r->damaged_files, r->damaged_files == 1 ? "" : "s",
		       (unsigned long long)r->backups_damaged, r->backups_damaged == 1 ? "" : "s",
		       r->damaged_files == 1 ? "s" : "", (unsigned long long)r->healable_files);
	else
		printf("every blob the %sbackups use is in the index%s (verify --read-data checks their bytes)\n",
		       r->damaged_manifests ? "readable " : "",
		       dry_run && r->rescued_packs ? " or in a pack in the trash that would be moved back" : "");
	if (r->damaged_manifests)
		printf("%llu manifest%s do%s not read: %s backup%s cannot be checked, and prune stops until %s deleted\n",
		       (unsigned long long)r->damaged_manifests, r->damaged_manifests == 1 ? "" : "s",
		       r->damaged_manifests == 1 ? "es" : "", r->damaged_manifests == 1 ? "its" : "their",
		       r->damaged_manifests == 1 ? "" : "s", r->damaged_manifests == 1 ? "it is" : "they are");
}

int cmd_repair(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .o = BKR_REPAIR_OPTIONS_INIT, .c = c };
	bkr_repair_report rep;
	bkr_repo *repo = NULL;
	bkr_lock *lock = NULL;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, usage, "n", lo, opt, &s, &first);
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	s.o.report = on_problem;
	s.o.report_ctx = &s;
	s.o.progress = c->progress ? cli_progress_step : NULL;
	s.o.progress_ctx = c;
	if ((err = cli_open_repo(c, &repo, 0)) < 0 || (err = lc_lock(c, repo, &s.lock, &lock)) < 0)
		goto done;
	if (c->json) {
		if (!(s.problems = open_memstream(&s.buf, &s.buflen))) {
			err = bkr_error_oom();
			goto done;
		}
		json_out_init(&s.pj, s.problems);
		json_out_begin_array(&s.pj);
	}
	err = bkr_repair_run(repo, &s.o, &rep);
	cli_progress_done(c);
	if (err < 0)
		goto done;
	if (s.problems) {
		json_out_end_array(&s.pj);
		fclose(s.problems);
		s.problems = NULL;
	}
	print_report(c, &rep, s.o.dry_run, !rep.bad_packs && !rep.damaged_files && !rep.damaged_manifests, s.buf);
	if (rep.bad_packs || rep.damaged_files || rep.damaged_manifests)
		rc = BKR_EXIT_FOUND;
done:
	if (s.problems)
		fclose(s.problems);
	free(s.buf);
	bkr_lock_release(lock);
	bkr_repo_free(repo);
	return err < 0 ? cli_fail(c, err) : rc;
}
