/** @file
 * mount.bkrfs: the helper mount(8) runs for filesystems of type "bkrfs", so
 * that an fstab line
 *
 *     /srv/backup/repo  /mnt/backup  bkrfs  ro,allow_other  0 0
 *
 * and `mount -t bkrfs -o ro REPO MOUNTPOINT` work.  mount(8) calls
 *
 *     mount.bkrfs REPO MOUNTPOINT [-sfnv] [-o OPTIONS] [-t TYPE] [-N NS]
 *
 * This program turns that into `bkrfs REPO MOUNTPOINT [-o OPTIONS]` and
 * executes bkrfs, which mounts, becomes a daemon and exits 0 once the mount
 * is ready (its exit status is mount's).  Options for mount(8) itself
 * (defaults, noauto, user, nofail, _netdev, x-*, comment=...) are dropped,
 * and so is "rw", which mount(8) passes when none of ro/rw is given: the
 * mount is read-only whatever the options say.  -f (fake) does nothing.
 * A value in double quotes (password_command="cut -d, -f2 FILE", as fstab
 * users write context=: libmount splits no comma inside quotes and hands the
 * quotes on) reaches bkrfs unquoted, its ',' and '\\' escaped for libfuse.
 *
 * bkrfs is looked for next to this program's installed location (the
 * relative path from the helper directory to bindir, so a DESTDIR or a moved
 * tree works), then at its absolute installed path (bkr_paths.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bkr_paths.h"

static const char *progname = "mount.bkrfs";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s REPO MOUNTPOINT [-sfnv] [-o OPTION[,OPTION...]]\n\n"
		"The mount(8) helper of bkrfs: mounts the repository REPO read-only at\n"
		"MOUNTPOINT by running bkrfs(8), so that `mount -t bkrfs REPO MOUNTPOINT`\n"
		"and an fstab line `REPO MOUNTPOINT bkrfs ro,allow_other 0 0` work.\n"
		"OPTIONS are bkrfs's -o options (see bkrfs(8)); mount(8)'s own (defaults,\n"
		"noauto, user, nofail, _netdev, x-*, comment=) and rw are ignored.\n"
		"  -f   fake: do nothing    -v   print the bkrfs command line\n"
		"  -s, -n   accepted and ignored\n",
		progname);
}

/* mount(8)'s own options and rw: not for bkrfs */
static bool dropped(const char *o, size_t n)
{
	static const char *const names[] = { "defaults", "auto", "noauto", "user", "nouser", "users", "owner",
					     "group", "nofail", "_netdev", "rw", "ro", NULL };
	for (size_t i = 0; names[i]; i++)
		if (strlen(names[i]) == n && !strncmp(o, names[i], n))
			return true;
	return (n > 2 && !strncmp(o, "x-", 2)) || (n >= 8 && !strncmp(o, "comment=", 8));
}

/* The length of the option at @p p: up to the first ',' that is neither
 * escaped ('\,' is a comma in a value, as bkrfs's option parser (libfuse's)
 * takes it: password_command=cut -d\, -f2 FILE) nor inside double quotes
 * (mount(8) and libmount do not split "a,b", and hand the quotes on:
 * password_command="cut -d, -f2 FILE"), or to the end.  -1 when a quote is
 * left open. */
static ssize_t option_len(const char *p)
{
	size_t n = 0;
	bool quoted = false;

	while (p[n] && (quoted || p[n] != ',')) {
		if (p[n] == '"')
			quoted = !quoted;
		n += !quoted && p[n] == '\\' && p[n + 1] ? 2 : 1;
	}
	return quoted ? -1 : (ssize_t)n;
}

/* Append option @p o (@p n bytes) to @p out as bkrfs reads it: a double-quoted
 * part loses its quotes and its ',' and '\\' are escaped; the rest is copied
 * as written (its escapes for bkrfs to read).  -1 when it does not fit. */
static int put_option(const char *o, size_t n, char *out, size_t *len, size_t cap)
{
	bool quoted = false;

	for (size_t i = 0; i < n; i++) {
		char w[2] = { o[i], 0 };
		size_t k = 1;
		if (o[i] == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && (o[i] == ',' || o[i] == '\\')) /* "a,b" -> a\,b */
			w[0] = '\\', w[1] = o[i], k = 2;
		else if (!quoted && o[i] == '\\' && i + 1 < n) /* an escape: copied whole */
			w[1] = o[++i], k = 2;
		if (*len + k >= cap)
			return -1;
		memcpy(out + *len, w, k);
		*len += k;
	}
	out[*len] = '\0';
	return 0;
}

/* Append the options of @p list that bkrfs takes to @p out (comma-separated).
 * -1 (said on stderr) when one has an open quote or they do not fit. */
static int filter_options(const char *list, char *out, size_t cap)
{
	size_t len = strlen(out);

	for (const char *p = list; *p;) {
		ssize_t n = option_len(p);
		if (n < 0) {
			fprintf(stderr, "%s: option '%s': a double quote is not closed\n", progname, p);
			return -1;
		}
		if (n && !dropped(p, (size_t)n)) {
			size_t mark = len, at;
			if (len && len + 1 < cap)
				out[len++] = ',';
			at = len;
			if (len + 1 >= cap || put_option(p, (size_t)n, out, &len, cap) < 0) {
				fprintf(stderr, "%s: too many options\n", progname);
				return -1;
			}
			/* as bkrfs reads it: nothing ("" alone), or mount(8)'s own ("rw") */
			if (len == at || dropped(out + at, len - at))
				out[len = mark] = '\0';
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* bkrfs next to us (installed layout), else at its installed path */
static const char *find_bkrfs(char *buf, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash;
		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			if ((size_t)snprintf(buf, cap, "%s/%s/bkrfs", self, BKR_HELPER_TO_BINDIR) < cap &&
			    access(buf, X_OK) == 0)
				return buf;
		}
	}
	snprintf(buf, cap, "%s/bkrfs", BKR_BINDIR);
	return buf;
}

int main(int argc, char **argv)
{
	char opts[8192] = "", bkrfs[PATH_MAX + 64];
	const char *pos[2] = { NULL, NULL };
	bool fake = false, verbose = false;
	size_t npos = 0;

	if (argc > 0 && argv[0]) {
		const char *slash = strrchr(argv[0], '/');
		progname = slash ? slash + 1 : argv[0];
	}
	/* operands first (mount(8) puts them there), options anywhere */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (a[0] != '-' || !a[1]) {
			if (npos == 2) {
				fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", progname, a);
				return 1;
			}
			pos[npos++] = a;
			continue;
		}
		if (!strcmp(a, "-o") || !strcmp(a, "-t") || !strcmp(a, "-N")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: option '%s' needs a value\n", progname, a);
				return 1;
			}
			if (!strcmp(a, "-N")) {
				fprintf(stderr, "%s: -N (mount namespaces) is not supported\n", progname);
				return 1;
			}
			if (!strcmp(a, "-o") && filter_options(argv[i + 1], opts, sizeof(opts)) < 0)
				return 1;
			i++;
			continue;
		}
		if (!strncmp(a, "-o", 2)) { /* -oOPTS */
			if (filter_options(a + 2, opts, sizeof(opts)) < 0)
				return 1;
			continue;
		}
		if (a[1] == '-') { /* no long option but --help: named whole, not as its '-' */
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n", progname, a);
			return 1;
		}
		/* clustered single-letter flags: -s sloppy, -f fake, -n no mtab, -v verbose */
		for (const char *f = a + 1; *f; f++) {
			if (*f == 'f')
				fake = true;
			else if (*f == 'v')
				verbose = true;
			else if (*f != 's' && *f != 'n') {
				fprintf(stderr, "%s: unknown option '-%c' (see --help)\n", progname, *f);
				return 1;
			}
		}
	}
	if (npos < 2) {
		fprintf(stderr, "%s: missing %s (see --help)\n", progname, npos ? "MOUNTPOINT" : "REPO and MOUNTPOINT");
		return 1;
	}
	find_bkrfs(bkrfs, sizeof(bkrfs));
	if (verbose)
		fprintf(stderr, "%s: %s %s %s%s%s\n", progname, bkrfs, pos[0], pos[1], *opts ? " -o " : "", opts);
	if (fake)
		return 0;
	if (*opts)
		execl(bkrfs, "bkrfs", pos[0], pos[1], "-o", opts, (char *)NULL);
	else
		execl(bkrfs, "bkrfs", pos[0], pos[1], (char *)NULL);
	fprintf(stderr, "%s: cannot run %s: %s\n", progname, bkrfs, strerror(errno));
	return 1;
}
