/** @file
 * bkr pin / unpin / tag: later facts about a backup, written as append-only
 * records (a manifest is never rewritten).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/lock.h"
#include "bkr/error.h"

static const char pin_usage[] =
	"usage: bkr pin -r REPO ID [--until DATE] [--no-wait]\n"
	"       bkr unpin -r REPO ID\n\n"
	"Mark backup ID as pinned until DATE (YYYY-MM-DD, in the future) or forever;\n"
	"unpin removes the mark.  'bkr list' and 'bkr show' display it, and the\n"
	"retention rules (docs/config.md) always keep a pinned backup.  A pin waits\n"
	"for a running delete, cleanup, prune or repair (--no-wait: fail at once).\n";

static const char tag_usage[] =
	"usage: bkr tag -r REPO ID [--add T]... [--remove T]...\n\n"
	"Add or remove tags of a backup.\n";

enum { OPT_UNTIL = OPT_FIRST_CMD, OPT_ADD, OPT_REMOVE, OPT_NO_WAIT };

struct state {
	const char *until;
	bool no_wait;
	const char *add[32], *rm[32];
	size_t nadd, nrm;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	int64_t t;
	switch (o) {
	case OPT_UNTIL:
		if (bkr_time_parse(arg, &t) < 0)
			return strstr(bkr_error_message(), "out of range") ?
				cli_usage_error(c, "--until: %s", bkr_error_message()) :
				cli_usage_error(c, "--until: expected a date like 2027-01-31, not '%s'", arg);
		if (t <= bkr_time_now_ns()) /* the pin would already have ended: it protects nothing */
			return cli_usage_error(c, "--until: '%s' is not in the future", arg);
		s->until = arg;
		return 0;
	case OPT_ADD:
		if (cli_check_tag(c, "--add", arg))
			return BKR_EXIT_USAGE;
		if (s->nadd == 32)
			return cli_usage_error(c, "--add: at most 32 tags at once");
		s->add[s->nadd++] = arg;
		return 0;
	case OPT_NO_WAIT:
		s->no_wait = true;
		return 0;
	case OPT_REMOVE:
		if (s->nrm == 32)
			return cli_usage_error(c, "--remove: at most 32 tags at once");
		s->rm[s->nrm++] = arg;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static void on_waiting(void *ctx)
{
	cli *c = ctx;
	if (!c->quiet)
		fprintf(stderr, "bkr %s: waiting for a running delete, cleanup, prune or repair to finish...\n", c->cmd);
}

/* Each command takes its own options only: one that is another's (pin --add, unpin --until)
 * is an unknown option, never silently ignored. */
static const struct option pin_lo[] = {
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
	{ NULL, 0, NULL, 0 },
};
static const struct option tag_lo[] = {
	{ "add", required_argument, NULL, OPT_ADD },
	{ "remove", required_argument, NULL, OPT_REMOVE },
	{ NULL, 0, NULL, 0 },
};

static int run(cli *c, int argc, char **argv, const char *usage, bool tag)
{
	struct state s = { 0 };
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	bkr_lock *lock = NULL;
	bool unpin = !strcmp(argv[0], "unpin");
	int first, err = 0;

	CLI_PARSE(c, argc, argv, usage, "", tag ? tag_lo : unpin ? NULL : pin_lo, opt, &s, &first);
	if (argc - first != 1)
		return cli_usage_error(c, "expected one backup ID");
	if (tag && !s.nadd && !s.nrm)
		return cli_usage_error(c, "nothing to do: give --add or --remove");
	for (size_t i = 0; i < s.nadd; i++) /* records of one instant have no order to tell which won */
		for (size_t k = 0; k < s.nrm; k++)
			if (!strcmp(s.add[i], s.rm[k]))
				return cli_usage_error(c, "tag '%s' is both in --add and --remove", s.add[i]);
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		return cli_fail(c, err);
	/* A pin is a promise that retention keeps the backup, so it is written
	 * under the shared lock, as a backup is: a delete or cleanup (exclusive)
	 * that decided what to remove before the pin record existed would
	 * otherwise remove it after "pinned" was printed.  The backup is looked
	 * up once the lock is held: one deleted meanwhile is not found (exit 3). */
	if (!tag && !unpin &&
	    (err = bkr_repo_lock_or_wait(repo, BKR_LOCK_SHARED, s.no_wait, on_waiting, c, &lock)) < 0)
		goto done;
	if ((err = cli_find_backup(c, repo, argv[first], &m)) < 0)
		goto done;
	if (tag) {
		for (size_t i = 0; i < s.nadd && err == 0; i++)
			err = bkr_repo_add_backup_record(repo, "tag", m->backup_id, "tag", s.add[i]);
		for (size_t i = 0; i < s.nrm && err == 0; i++)
			err = bkr_repo_add_backup_record(repo, "untag", m->backup_id, "tag", s.rm[i]);
	} else {
		err = bkr_repo_add_backup_record(repo, unpin ? "unpin" : "pin", m->backup_id, "until", s.until);
	}
	if (err == 0 && (c->json || !c->quiet)) { /* -q hides the line; --json output stays (bkr.1.md) */
		if (c->json) {
			json_out j;
			json_out_init(&j, stdout);
			json_out_begin_object(&j);
			json_out_member(&j, "backup_id", m->backup_id);
			json_out_key(&j, "done");
			json_out_bool(&j, true);
			json_out_end_object(&j);
		} else
			printf("%s: %s\n", m->backup_id, tag ? "tags updated" : unpin ? "unpinned" : "pinned");
	}
done:
	bkr_manifest_free(m);
	bkr_lock_release(lock);
	bkr_repo_free(repo);
	return err < 0 ? cli_fail(c, err) : 0;
}

int cmd_pin(cli *c, int argc, char **argv)
{
	return run(c, argc, argv, pin_usage, false);
}

int cmd_tag(cli *c, int argc, char **argv)
{
	return run(c, argc, argv, tag_usage, true);
}
