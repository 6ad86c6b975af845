/** @file
 * bkr mount: run bkrfs (found next to bkr, or on PATH) on the repository.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "bkr/error.h"

static const char usage[] =
	"usage: bkr mount -r REPO MOUNTPOINT [-f] [--cache-dir DIR] [--cache-max MiB] [-o OPTIONS]\n\n"
	"Mount every backup of REPO read-only at MOUNTPOINT (see bkrfs(8)):\n"
	"/by-id, /by-date, /latest, /versions, /by-source, /by-tag, /recovered.\n"
	"Returns once the mount is ready; "
	"unmount with 'fusermount3 -u MOUNTPOINT'.\n\n"
	"  -f, --foreground    stay in the foreground\n"
	"  --cache-dir DIR     the disk cache of a remote repository (default\n"
	"                      $XDG_CACHE_HOME/bkrfs, else ~/.cache/bkrfs)\n"
	"  --cache-max MiB     its size bound (default 2048)\n"
	"  -o, --options OPTIONS\n"
	"                      bkrfs options (allow_other, uid=, gid=, umask=, numeric_ids,\n"
	"                      cache_size=, tz=, watch_ms=, max_inodes=; bkrfs(8))\n\n"
	"Exit status as for every bkr command (bkr(1)): 0 mounted, 2 usage (an -o\n"
	"option too), 3 repository or mount point not found or not usable, 4 damaged\n"
	"repository, 7 FUSE failed, 8 unreachable, 9 wrong passphrase.\n";

struct state {
	bool fg;
	const char *o[16];
	size_t no;
	char cache_dir[PATH_MAX + 16]; /* "--cache-dir=DIR", or "" */
	char cache_max[40];            /* "--cache-max=N", or "" */
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	if (o == 'f') {
		s->fg = true;
		return 0;
	}
	if (o == 'o') {
		if (s->no == sizeof(s->o) / sizeof(*s->o))
			return cli_usage_error(c, "more than %zu -o options (join them with commas: -o a,b)",
					       sizeof(s->o) / sizeof(*s->o));
		s->o[s->no++] = arg;
		return 0;
	}
	if (o == 'C') {
		if ((size_t)snprintf(s->cache_dir, sizeof(s->cache_dir), "--cache-dir=%s", arg) >= sizeof(s->cache_dir))
			return cli_usage_error(c, "--cache-dir: path too long");
		return 0;
	}
	if (o == 'M') {
		uint64_t v;
		if (cli_uint_arg(c, "--cache-max", arg, "a size in MiB ", 1, 1ull << 30, &v))
			return BKR_EXIT_USAGE;
		snprintf(s->cache_max, sizeof(s->cache_max), "--cache-max=%llu", (unsigned long long)v);
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* "@p key@p val" with ',' and '\\' escaped by a backslash (libfuse's -o syntax); malloc'd. */
static char *pass_opt(const char *key, const char *val)
{
	size_t n = strlen(key), m = strlen(val);
	char *o = malloc(n + 2 * m + 1), *q;
	if (!o)
		return NULL;
	memcpy(o, key, n);
	q = o + n;
	for (const char *p = val; *p; p++) {
		if (*p == ',' || *p == '\\')
			*q++ = '\\';
		*q++ = *p;
	}
	*q = 0;
	return o;
}

static void find_bkrfs(char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	snprintf(out, cap, "bkrfs");
	if (n <= 0)
		return;
	self[n] = '\0';
	char *dir = dirname(self);
	const char *cands[] = { "%s/bkrfs", "%s/../fs/bkrfs" };
	for (size_t i = 0; i < 2; i++) {
		char p[PATH_MAX + 16];
		snprintf(p, sizeof(p), cands[i], dir);
		if (access(p, X_OK) == 0) {
			snprintf(out, cap, "%s", p);
			return;
		}
	}
}

int cmd_mount(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "options", required_argument, NULL, 'o' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "cache-max", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { 0 };
	bkr_config *cfg = NULL;
	char bkrfs[PATH_MAX];
	const char *repo;
	char *args[7 + 2 * 16 + 4 + 1]; /* bkrfs, its flag, REPO, MOUNTPOINT, -f, 2 cache; -o's; passphrase; NULL */
	int first, err, n = 0;

	CLI_PARSE(c, argc, argv, usage, "fo:", lo, opt, &s, &first);
	if (c->json) /* bkr becomes bkrfs: no data to print, and bkrfs's exit codes (bkrfs.8) */
		return cli_usage_error(c, "--json: mount prints no data (it runs bkrfs; see bkrfs(8) for its exit status)");
	if (argc - first != 1)
		return cli_usage_error(c, "expected one MOUNTPOINT");
	/* the one "no repository" line of every command (cli_repo_needed), exit 2 */
	if ((err = cli_repo_needed(c, &cfg, &repo)) < 0) {
		bkr_config_free(cfg);
		return cli_fail(c, err);
	}
	find_bkrfs(bkrfs, sizeof(bkrfs));
	args[n++] = bkrfs;
	args[n++] = "--bkr-exit-codes"; /* first: a usage error in what follows is 2, as in bkr */
	args[n++] = (char *)repo;
	args[n++] = argv[first];
	if (s.fg)
		args[n++] = "-f";
	if (s.cache_dir[0])
		args[n++] = s.cache_dir;
	if (s.cache_max[0])
		args[n++] = s.cache_max;
	for (size_t i = 0; i < s.no; i++) {
		args[n++] = "-o";
		args[n++] = (char *)s.o[i];
	}
	/* the passphrase options, as bkrfs takes them (commas escaped for -o) */
	if (c->keys.file && !(args[n + 1] = pass_opt("password_file=", c->keys.file)))
		return cli_fail(c, bkr_error_oom());
	if (c->keys.file) {
		args[n] = "-o";
		n += 2;
	}
	if (c->keys.command && !(args[n + 1] = pass_opt("password_command=", c->keys.command)))
		return cli_fail(c, bkr_error_oom());
	if (c->keys.command) {
		args[n] = "-o";
		n += 2;
	}
	args[n] = NULL;
	fflush(stdout);
	execvp(bkrfs, args);
	err = bkr_error_set_errno(errno, "cannot run %s", bkrfs);
	bkr_config_free(cfg);
	return cli_fail(c, err);
}
