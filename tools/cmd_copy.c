/** @file
 * bkr copy: replicate backups from one repository into another (bkr/copy.h),
 * each side opened with its own passphrase.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/copy.h"
#include "bkr/error.h"

static const char usage[] =
	"usage: bkr copy --from REPO [--to REPO] [options] [ID...]\n\n"
	"Copy backups from the repository --from into the repository --to (default:\n"
	"-r REPO, BKR_REPO, or the configuration's repository).  Either may be a local\n"
	"directory or an s3:// URL, plain or encrypted.  Each ID is a backup id, a\n"
	"unique prefix of one or of its random suffix, or 'latest'; without IDs every\n"
	"backup is copied.  A backup keeps its id, time, type, sources, tags and pin;\n"
	"only the blobs the destination lacks are sent, each checked as it is read; a\n"
	"backup already in the destination is skipped, so a second run copies nothing,\n"
	"but gets the source's tags and pin as they are now.  Killed or failed, a rerun\n"
	"completes the copy.\n\n"
	"      --heal                    also walk each backup already in the destination and store\n"
	"                                again from the source every blob it uses that is missing\n"
	"                                there or damaged (found by verify); intact data is not touched\n"
	"  -n, --dry-run                 read and check, say what would be sent, write nothing\n"
	"      --no-wait                 fail at once (exit 5) when the destination is locked\n"
	"      --no-sync-tags            leave the tags and pin of backups already in the\n"
	"                                destination as they are\n"
	"      --from-password-file FILE   passphrase of an encrypted --from: first line of FILE\n"
	"      --from-password-command CMD ... the first line CMD prints\n"
	"      --to-password-file FILE     passphrase of an encrypted --to\n"
	"      --to-password-command CMD   ... the first line CMD prints\n\n"
	"A side's passphrase comes from its --from-/--to- options, else BKR_FROM_PASSWORD or\n"
	"BKR_TO_PASSWORD, else --password-file, --password-command or BKR_PASSWORD, else a\n"
	"prompt on the terminal naming the repository.\n\n"
	"Exit status: 0 done (also when nothing was missing), 2 usage, 3 a repository,\n"
	"backup or source pack not found, 4 a damaged source blob, tree or manifest, or\n"
	"the destination's manifest of a backup to copy damaged (each named), 5 locked\n"
	"(--no-wait), 7 another backup under a copied backup's id in the destination, or\n"
	"an I/O error, 8 a server that cannot be reached, 9 a wrong passphrase.\n";

enum { OPT_FROM = OPT_FIRST_CMD, OPT_TO, OPT_FROM_PASSWORD_FILE, OPT_FROM_PASSWORD_COMMAND,
       OPT_TO_PASSWORD_FILE, OPT_TO_PASSWORD_COMMAND, OPT_NO_WAIT, OPT_NO_SYNC_TAGS, OPT_HEAL };

/* One side's repository and where its passphrase comes from. */
struct side {
	const char *repo;
	const char *password_file;
	const char *password_command;
	const char *env;     /* BKR_FROM_PASSWORD or BKR_TO_PASSWORD */
};

struct state {
	cli *c;
	bkr_copy_options o;
	struct side from, to;
	FILE *backups;       /* --json: the backups array, in memory until the summary */
	json_out j;
	char *buf;
	size_t buflen;
	bool progress_shown;
	char change[2048];   /* on_update's, for the backup's line ("": none) */
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	switch (o) {
	case 'n': s->o.dry_run = true; return 0;
	case OPT_NO_WAIT: s->o.no_wait = true; return 0;
	case OPT_NO_SYNC_TAGS: s->o.no_sync_tags = true; return 0;
	case OPT_HEAL: s->o.heal = true; return 0;
	case OPT_FROM: s->from.repo = arg; return 0;
	case OPT_TO: s->to.repo = arg; return 0;
	case OPT_FROM_PASSWORD_FILE: s->from.password_file = arg; return 0;
	case OPT_FROM_PASSWORD_COMMAND: s->from.password_command = arg; return 0;
	case OPT_TO_PASSWORD_FILE: s->to.password_file = arg; return 0;
	case OPT_TO_PASSWORD_COMMAND: s->to.password_command = arg; return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* Open one side with its own passphrase source (the key module keeps one passphrase: forget it after). */
static int open_side(cli *c, const struct side *sd, bkr_repo **out, int flags)
{
	bkr_key_source src = { .new_file = NULL };
	int err;

	if (sd->password_file)
		src.file = sd->password_file;
	else if (sd->password_command)
		src.command = sd->password_command;
	else if (getenv(sd->env))
		src.env = sd->env;
	else
		src = c->keys;
	bkr_key_set_source(&src);
	err = bkr_repo_open(out, sd->repo, flags);
	bkr_key_forget();
	bkr_key_set_source(&c->keys);
	if (err == 0)
		cli_warn_opened(c, *out);
	return err;
}

static void on_waiting(void *ctx)
{
	struct state *s = ctx;
	char safe[8192];
	if (!s->c->quiet)
		fprintf(stderr, "bkr %s: waiting for a running prune, cleanup, delete or repair of %s to finish...\n",
			s->c->cmd, cli_text_safe(safe, sizeof(safe), s->to.repo));
}

static void on_warning(void *ctx, const char *message)
{
	struct state *s = ctx;
	cli_warn(s->c, "%s", message);
}

static void on_passed(void *ctx, const char *id, int64_t time_ns, bool damaged)
{
	struct state *s = ctx;
	cli_warn_latest_passed(s->c, id, time_ns, damaged);
}

static void on_progress(void *ctx, const bkr_copy_stats *run, size_t backup, size_t nbackups)
{
	struct state *s = ctx;
	char items[64];
	snprintf(items, sizeof(items), "backup %zu/%zu, blobs read", backup, nbackups);
	s->progress_shown = true;
	cli_progress_counts(s->c, s->o.dry_run ? "checking" : "copying", items, run->blobs_read, 0, run->bytes_read, 0);
}

static void on_update(void *ctx, const bkr_manifest *m, const char *change)
{
	struct state *s = ctx;
	(void)m;
	snprintf(s->change, sizeof(s->change), "%s", change);
}

static void on_backup(void *ctx, const bkr_manifest *m, bool copied, const bkr_copy_stats *one)
{
	struct state *s = ctx;
	char sent[32], change[sizeof(s->change)];

	snprintf(change, sizeof(change), "%s", one->backups_updated ? s->change : "");
	s->change[0] = '\0';
	if (s->progress_shown) {
		cli_progress_done(s->c);
		s->progress_shown = false;
	}
	if (s->c->json) {
		json_out_begin_object(&s->j);
		json_out_member(&s->j, "backup_id", m->backup_id);
		json_out_member(&s->j, "result", copied ? "copied" : one->backups_healed ? "healed" : "skipped");
		json_out_key(&s->j, "blobs_sent");
		json_out_uint(&s->j, one->blobs_sent);
		json_out_key(&s->j, "bytes_sent");
		json_out_uint(&s->j, one->bytes_sent);
		if (change[0])
			json_out_member(&s->j, "updated", change);
		json_out_end_object(&s->j);
		return;
	}
	if (s->c->quiet)
		return;
	cli_human_bytes(sent, one->bytes_sent);
	if (copied)
		printf("%s %s: %llu blob%s, %s %s%s%s\n", s->o.dry_run ? "would copy" : "copied", m->backup_id,
		       (unsigned long long)one->blobs_sent, one->blobs_sent == 1 ? "" : "s", sent,
		       s->o.dry_run ? "to send" : "sent", change[0] ? "; took the source's tags and pin: " : "", change);
	else if (one->backups_healed)
		printf("%s %s: %llu blob%s it uses, missing or damaged in the destination, %s from the source%s%s\n",
		       s->o.dry_run ? "would heal" : "healed", m->backup_id, (unsigned long long)one->blobs_sent,
		       one->blobs_sent == 1 ? "" : "s", s->o.dry_run ? "to send" : "sent again",
		       change[0] ? "; took the source's tags and pin: " : "", change);
	else if (one->blobs_sent)
		/* another copy published it while this one sent its blobs: they are there twice */
		printf("skipped %s: copied into the destination meanwhile by another run (%llu blob%s, %s sent twice: "
		       "'bkr prune' there drops the duplicates)\n", m->backup_id, (unsigned long long)one->blobs_sent,
		       one->blobs_sent == 1 ? "" : "s", sent);
	else
		printf("skipped %s: already in the destination%s%s\n", m->backup_id,
		       !change[0]      ? ""
		       : s->o.dry_run ? "; would take the source's tags and pin: "
				      : "; took the source's tags and pin: ",
		       change);
}

static void print_summary(struct state *s, const bkr_repo *from, const bkr_repo *to, const bkr_copy_stats *st)
{
	cli *c = s->c;
	char sent[32], stored[32], updated[160] = "";
	if (c->json) {
		json_out j;
		const struct { const char *key; uint64_t v; } counts[] = {
			{ "backups_copied", st->backups_copied }, { "backups_skipped", st->backups_skipped },
			{ "backups_updated", st->backups_updated }, { "backups_healed", st->backups_healed },
			{ "blobs_sent", st->blobs_sent }, { "bytes_sent", st->bytes_sent },
			{ "stored_bytes", st->stored_bytes }, { "blobs_read", st->blobs_read },
			{ "bytes_read", st->bytes_read },
		};
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_member(&j, "from", bkr_repo_path(from));
		json_out_member(&j, "to", bkr_repo_path(to));
		json_out_key(&j, "dry_run");
		json_out_bool(&j, s->o.dry_run);
		for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++) {
			json_out_key(&j, counts[i].key);
			json_out_uint(&j, counts[i].v);
		}
		json_out_key(&j, "backups");
		json_out_raw(&j, s->buf);
		json_out_end_object(&j);
		return;
	}
	if (c->quiet)
		return;
	cli_human_bytes(sent, st->bytes_sent);
	cli_human_bytes(stored, st->stored_bytes);
	if (st->backups_healed)
		snprintf(updated, sizeof(updated), ", %llu of them %s", (unsigned long long)st->backups_healed,
			 s->o.dry_run ? "would be healed" : "healed");
	if (!st->backups_copied && st->backups_healed) {
		printf("%s %llu backup%s already in %s: %llu blobs, %s %s (%s stored)\n",
		       s->o.dry_run ? "dry run: would heal" : "healed", (unsigned long long)st->backups_healed,
		       st->backups_healed == 1 ? "" : "s", s->to.repo, (unsigned long long)st->blobs_sent, sent,
		       s->o.dry_run ? "to send" : "sent", stored);
		return;
	}
	if (!st->backups_copied && st->blobs_sent && !s->o.dry_run) {
		printf("nothing copied: %llu backup%s already in %s, copied there meanwhile by another run (%llu blobs, "
		       "%s sent twice: 'bkr prune' there drops the duplicates)\n", (unsigned long long)st->backups_skipped,
		       st->backups_skipped == 1 ? "" : "s", s->to.repo, (unsigned long long)st->blobs_sent, sent);
		return;
	}
	if (!st->backups_copied) {
		printf("nothing to copy: %llu backup%s already in ", (unsigned long long)st->backups_skipped,
		       st->backups_skipped == 1 ? "" : "s");
		cli_print_name(stdout, s->to.repo, strlen(s->to.repo));
		if (st->backups_updated)
			printf(" (%llu %s the source's tags and pin)", (unsigned long long)st->backups_updated,
			       s->o.dry_run ? "would take" : "took");
		putchar('\n');
		return;
	}
	if (st->backups_updated)
		snprintf(updated + strlen(updated), sizeof(updated) - strlen(updated),
			 ", %llu of them %s the source's tags and pin",
			 (unsigned long long)st->backups_updated, s->o.dry_run ? "would take" : "took");
	if (s->o.dry_run)
		printf("dry run: would copy %llu backup%s (%llu skipped%s), sending %llu blobs, %s\n",
		       (unsigned long long)st->backups_copied, st->backups_copied == 1 ? "" : "s",
		       (unsigned long long)st->backups_skipped, updated, (unsigned long long)st->blobs_sent, sent);
	else
		printf("copied %llu backup%s (%llu skipped%s): %llu blobs, %s sent (%s stored)\n",
		       (unsigned long long)st->backups_copied, st->backups_copied == 1 ? "" : "s",
		       (unsigned long long)st->backups_skipped, updated, (unsigned long long)st->blobs_sent, sent, stored);
}

int cmd_copy(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ "to", required_argument, NULL, OPT_TO },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "no-sync-tags", no_argument, NULL, OPT_NO_SYNC_TAGS },
		{ "heal", no_argument, NULL, OPT_HEAL },
		{ "from-password-file", required_argument, NULL, OPT_FROM_PASSWORD_FILE },
		{ "from-password-command", required_argument, NULL, OPT_FROM_PASSWORD_COMMAND },
		{ "to-password-file", required_argument, NULL, OPT_TO_PASSWORD_FILE },
		{ "to-password-command", required_argument, NULL, OPT_TO_PASSWORD_COMMAND },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .c = c, .o = { .version = BKR_COPY_OPTIONS_VERSION } };
	bkr_config *cfg = NULL;
	const char *configured;
	bkr_copy_stats st;
	bkr_repo *from = NULL, *to = NULL;
	int first, err;

	s.from.env = "BKR_FROM_PASSWORD";
	s.to.env = "BKR_TO_PASSWORD";
	CLI_PARSE(c, argc, argv, usage, "n", lo, opt, &s, &first);
	if (!s.from.repo)
		return cli_usage_error(c, "give the repository to copy from: --from REPO");
	/* the configuration's "s3" object serves both sides; its repository is the default --to */
	if ((err = cli_repo_location(c, &cfg, &configured)) < 0)
		return cli_fail(c, err);
	if (!s.to.repo)
		s.to.repo = configured;
	if (!s.to.repo) {
		bkr_config_free(cfg);
		return cli_usage_error(c, "give the repository to copy to: --to REPO (or -r REPO)");
	}
	s.o.specs = (const char *const *)argv + first;
	s.o.nspecs = (size_t)(argc - first);
	s.o.waiting = on_waiting;
	s.o.warning = on_warning;
	s.o.passed = on_passed;
	s.o.on_backup = on_backup;
	s.o.on_update = on_update;
	s.o.progress = on_progress;
	s.o.ctx = &s;
	if ((err = open_side(c, &s.from, &from, BKR_REPO_RDONLY)) < 0) {
		bkr_error_prefix("--from");
		goto done;
	}
	if ((err = open_side(c, &s.to, &to, s.o.dry_run ? BKR_REPO_RDONLY : 0)) < 0) {
		bkr_error_prefix("--to");
		goto done;
	}
	if (c->json) {
		if (!(s.backups = open_memstream(&s.buf, &s.buflen))) {
			err = bkr_error_oom();
			goto done;
		}
		json_out_init(&s.j, s.backups);
		json_out_begin_array(&s.j);
	}
	err = bkr_copy_run(from, to, &s.o, &st);
	if (s.progress_shown)
		cli_progress_done(c);
	if (s.backups) {
		json_out_end_array(&s.j);
		fclose(s.backups);
		s.backups = NULL;
	}
	if (err == 0)
		print_summary(&s, from, to, &st);
done:
	if (s.backups)
		fclose(s.backups);
	free(s.buf);
	bkr_repo_free(from);
	bkr_repo_free(to);
	bkr_config_free(cfg);
	return err < 0 ? cli_fail(c, err) : 0;
}
