/** @file
 * bkr: the command-line tool.  Global options, then a git-style subcommand
 * implemented in cmd_<verb>.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/host.h"
#include "bkr_version.h"
#include "cli.h"

/* LOGGED: the command changes or checks the repository, so it is logged
 * (a "start" and an "end" event around its own, bkr/log.h; cli_log_begin). */
enum { READS = 0, LOGGED = 1 };

static const struct {
	const char *name;
	cli_cmd_fn fn;
	const char *summary;
	int log;
} commands[] = {
	{ "init", cmd_init, "create a repository", LOGGED },
	{ "key", cmd_key, "list, add, remove key files of an encrypted repository; change a passphrase", LOGGED },
	{ "create", cmd_create, "back up sources (full, incremental, differential, snapshot)", LOGGED },
	{ "backup", cmd_create, "the same as create", LOGGED },
	{ "list", cmd_list, "list backups", READS },
	{ "show", cmd_show, "show one backup's manifest", READS },
	{ "ls", cmd_ls, "list files in a backup", READS },
	{ "cat", cmd_cat, "write one file of a backup to stdout", READS },
	{ "restore", cmd_restore, "restore a backup or some of its files", LOGGED },
	{ "verify", cmd_verify, "check the repository (--read-data: every byte)", LOGGED },
	{ "diff", cmd_diff, "compare two backups, or a backup and the live files", READS },
	{ "log", cmd_log, "the versions of one file or directory across backups", READS },
	{ "config", cmd_config, "check a configuration file (config check)", READS },
	{ "mount", cmd_mount, "mount the repository with bkrfs", READS },
	{ "delete", cmd_delete, "delete backups (into the trash; prune frees the data)", LOGGED },
	{ "cleanup", cmd_cleanup, "apply the retention policy, then prune", LOGGED },
	{ "prune", cmd_prune, "free the space of data no backup uses", LOGGED },
	{ "repair", cmd_repair, "rebuild the index from the packs; take damaged blobs out of it", LOGGED },
	{ "copy", cmd_copy, "copy backups from another repository (--from), only the blobs missing", LOGGED },
	{ "tier", cmd_tier, "tier status, migrate, forget: data in colder storage", LOGGED },
	{ "pin", cmd_pin, "pin a backup so retention keeps it", LOGGED },
	{ "unpin", cmd_pin, "unpin a backup", LOGGED },
	{ "tag", cmd_tag, "add or remove tags of a backup", LOGGED },
	{ "hold", cmd_hold, "list or release holds: damaged files whose good copies retention keeps", LOGGED },
	{ "scan", cmd_scan, "find missing and corrupted files in the workspace", READS },
	{ "recover", cmd_recover, "recover one file", LOGGED },
	{ "batch", cmd_batch, "scan, then recover everything found", LOGGED },
	{ "recovered", cmd_recovered, "list recovery runs and their reports", READS },
	{ "health", cmd_health, "is the repository healthy (--prometheus: metrics)", READS },
	{ "routine", cmd_routine, "run the hourly, daily, weekly or emergency routine", LOGGED },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bkr [-r REPO] [-c CONFIG] [--json] [-q] [-v] COMMAND [ARGS]\n\n"
		   "Back up a workspace into a repository, verify, restore and recover files.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nGlobal options:\n"
		   "  -r, --repo REPO      repository (or BKR_REPO, or \"repository\" in the config)\n"
		   "  -c, --config FILE    configuration file (or BKR_CONFIG)\n"
		   "      --json           machine-readable output (valid JSON even on failure)\n"
		   "  -q, --quiet          only errors (no warnings, progress or summaries)\n"
		   "  -v, --verbose        also show the log's lines (-vv: debug too)\n"
		   "      --no-color       no colour (also NO_COLOR=1 or TERM=dumb; colour is only used on a TTY)\n"
		   "      --password-file FILE     passphrase of an encrypted repository: first line of FILE\n"
		   "      --password-command CMD   ... the first line CMD prints (else BKR_PASSWORD, else a prompt)\n"
		   "      --new-password-file FILE a new passphrase (init, key add, key passwd; else BKR_NEW_PASSWORD)\n"
		   "  -h, --help           this help; 'bkr COMMAND --help' for a command\n"
		   "      --version        print the version\n\n"
		   "Exit status: 0 ok, 1 a check found problems, 2 usage or configuration error,\n"
		   "3 not found, 4 corrupt data, 5 locked, 6 partial failure, 7 I/O error,\n"
		   "8 external source unavailable, 9 wrong passphrase, 70 internal error.  See bkr(1).\n"
		   "Commands that change or check the repository log one JSON line per event\n"
		   "to the log directory (log_dir, default ~/.local/state/bkr; bkr(1) LOGS).\n");
}

/* The global options with a value, taken as after the command: -r REPO, -rREPO, --repo REPO,
 * --repo=REPO */
static const struct {
	const char *letter, *name;
	int id;
} valued[] = {
	{ "-r", "--repo", 'r' },
	{ "-c", "--config", 'c' },
	{ NULL, "--password-file", OPT_PASSWORD_FILE },
	{ NULL, "--password-command", OPT_PASSWORD_COMMAND },
	{ NULL, "--new-password-file", OPT_NEW_PASSWORD_FILE },
};

int main(int argc, char **argv)
{
	cli c = { .start_ns = bkr_clock_mono_ns() };
	int i;

	bkr_host_tune_malloc();
	bkr_host_tune_openssl();
	cli_term_init(&c);
	bkr_key_set_note(cli_key_note, &c);
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json"))
			c.json = true;
	/* Global options before the subcommand. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *value = NULL;
		size_t k;
		for (k = 0; k < sizeof(valued) / sizeof(*valued); k++) {
			const char *l = valued[k].letter, *n = valued[k].name;
			size_t nl = strlen(n);
			if ((l && !strcmp(a, l)) || !strcmp(a, n)) {
				if (i + 1 >= argc) /* the last argument */
					return cli_usage_error(&c, "option '%s' needs a value", a);
				value = argv[++i];
			} else if (l && !strncmp(a, l, 2)) {
				value = a + 2;
				a = l;
			} else if (!strncmp(a, n, nl) && a[nl] == '=') {
				value = a + nl + 1;
				a = n;
			} else {
				continue;
			}
			break;
		}
		if (value) {
			int rc = cli_check_value(&c, a, value);
			if (rc)
				return rc;
			cli_common(&c, valued[k].id, value, NULL);
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("bkr %s\n", BKR_VERSION);
			return 0;
		} else if (!strcmp(a, "--json")) {
			c.json = true;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			c.quiet = true;
			c.progress = false;
		} else if (!strcmp(a, "--verbose")) {
			c.verbose++;
		} else if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
			c.verbose += (int)strlen(a + 1); /* -v, -vv (as after the command, getopt's way) */
		} else if (!strcmp(a, "--no-color")) {
			c.color = c.color_err = false;
		} else {
			return cli_usage_error(&c, "unknown option '%s'", a);
		}
	}
	if (i >= argc) {
		if (c.json)
			return cli_usage_error(&c, "no command given");
		usage(stderr);
		return BKR_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(*commands); k++) {
		if (strcmp(commands[k].name, argv[i]) != 0)
			continue;
		c.cmd = commands[k].name;
		c.logs = commands[k].log == LOGGED;
		if (c.json)
			c.progress = false;
		int rc = commands[k].fn(&c, argc - i, argv + i);
		cli_progress_done(&c);
		cli_warn_future_done(&c);
		cli_log_end(&c, rc);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "bkr %s: cannot write output\n", c.cmd);
			return rc ? rc : BKR_EXIT_IO;
		}
		return rc;
	}
	/* restic's and borg's names for what bkr calls otherwise: a hint, not an alias */
	static const struct {
		const char *name, *hint;
	} other[] = {
		{ "snapshots", "'bkr list' lists backups" },
		{ "check", "'bkr verify' checks the repository (--read-data: every byte)" },
		{ "forget", "'bkr delete ID' removes backups, 'bkr cleanup' applies the retention policy" },
		{ "rebuild-index", "'bkr repair' rebuilds the index from the packs" },
		{ "extract", "'bkr restore ID --target DIR' restores a backup" },
		{ "compact", "'bkr prune' frees the space of data no backup uses" },
		{ "info", "'bkr show ID' shows one backup, 'bkr tier status' the repository's packs" },
		{ "stats", "'bkr show ID' shows one backup, 'bkr tier status' the repository's packs" },
		{ "dump", "'bkr cat ID PATH' writes one file of a backup to stdout" },
		{ "find", "'bkr log PATH' lists a file's versions across backups" },
		{ "version", "'bkr --version' prints the version" },
	};
	for (size_t k = 0; k < sizeof(other) / sizeof(*other); k++)
		if (!strcmp(other[k].name, argv[i]))
			return cli_usage_error(&c, "'%s' is not a bkr command: %s", argv[i], other[k].hint);
	return cli_usage_error(&c, "'%s' is not a bkr command", argv[i]);
}
