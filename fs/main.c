/** @file
 * bkrfs: mount a bkrfs repository read-only with FUSE.
 *
 *     bkrfs REPO MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS] [--numeric-ids] [--ready-fd=N]
 *
 * main() reads the options with a fuse_opt table, creates the session (which
 * checks the -o options left for FUSE), checks the repository and the mount
 * point (one-line errors, distinct exit codes), then: the mount's state
 * (mount.c), signal handlers, mount, daemonize (the parent exits 0 only once
 * the mount is ready), ready notification, the threads (mount.c),
 * multithreaded loop; then the threads stop (mount.c), unmount, and the
 * session is destroyed last.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/exit.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/store.h"
#include "bkr/store_cache.h"
#include "bkr/key.h"
#include "bkr_version.h"
#include "bkrfs.h"

/** Exit codes (docs/bkrfs.8.md). */
enum {
	EXIT_USAGE = 1,      /**< bad command line */
	EXIT_REPO = 2,       /**< repository missing, unreadable, unsupported */
	EXIT_MOUNTPOINT = 3, /**< mount point missing, not a directory, busy, overlapping */
	EXIT_FUSE = 4,       /**< no /dev/fuse, the mount or the session failed */
	EXIT_KEY = 9,        /**< the passphrase opens no key file (bkr's code for it too) */
};

enum {
	KEY_HELP, KEY_VERSION, KEY_FG, KEY_DEBUG, KEY_SINGLE, KEY_UID, KEY_GID, KEY_UMASK,
	KEY_NUMERIC, KEY_CACHE, KEY_TZ, KEY_READY, KEY_ALLOW_OTHER, KEY_RW, KEY_WATCH, KEY_INODES, KEY_KEEP,
	KEY_CACHE_DIR, KEY_CACHE_MAX,
	KEY_PASSWORD_FILE, KEY_PASSWORD_COMMAND, KEY_BKR_CODES,
};

static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--bkr-exit-codes", KEY_BKR_CODES),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
	FUSE_OPT_KEY("numeric_ids", KEY_NUMERIC),
	FUSE_OPT_KEY("--numeric-ids", KEY_NUMERIC),
	FUSE_OPT_KEY("cache_size=", KEY_CACHE),
	FUSE_OPT_KEY("tz=", KEY_TZ),
	FUSE_OPT_KEY("notify_fd=", KEY_READY),
	FUSE_OPT_KEY("--ready-fd=", KEY_READY),
	FUSE_OPT_KEY("watch_ms=", KEY_WATCH),
	FUSE_OPT_KEY("max_inodes=", KEY_INODES),
	FUSE_OPT_KEY("cache_dir=", KEY_CACHE_DIR),
	FUSE_OPT_KEY("--cache-dir=", KEY_CACHE_DIR),
	FUSE_OPT_KEY("cache_max=", KEY_CACHE_MAX),
	FUSE_OPT_KEY("--cache-max=", KEY_CACHE_MAX),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("password_file=", KEY_PASSWORD_FILE),
	FUSE_OPT_KEY("password_command=", KEY_PASSWORD_COMMAND),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

static const char *progname = "bkrfs";
/* --bkr-exit-codes (bkr mount): exit with bkr's codes (bkr_status) */
static bool bkr_codes;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s REPO MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]\n"
		"\n"
		"Mount every backup of the bkrfs repository REPO (a directory, or\n"
		"s3://BUCKET[/PREFIX]) read-only at MOUNTPOINT:\n"
		"  /by-id/<backup_id>/<source>/...   /by-date/<YYYY-MM-DD>/<HHMMSS>-<type>\n"
		"  /latest   /recovered/<run_id>/... (+ report.json)   /recovered/latest\n"
		"  /versions/<source>/<path>/<time> (each distinct version of a file)\n"
		"  /by-source/<source>/<backup_id>|latest   /by-tag/<tag>/<backup_id>\n"
		"\n"
		"options:\n"
		"  -h, --help             print this help and exit\n"
		"  -V, --version          print the version and exit\n"
		"  --bkr-exit-codes       exit with bkr(1)'s codes (bkr mount gives it)\n"
		"  -f                     stay in the foreground\n"
		"  -d, -o debug           foreground with FUSE debug output\n"
		"  -s                     single-threaded\n"
		"  --ready-fd=N, -o notify_fd=N\n"
		"                         write one byte to file descriptor N once mounted\n"
		"  --numeric-ids, -o numeric_ids\n"
		"                         show recorded uid/gid numbers, not names mapped\n"
		"                         through this system's users and groups\n"
		"  -o uid=N, -o gid=N     show every file as owned by N\n"
		"  -o umask=M             clear these permission bits (octal) everywhere\n"
		"  -o allow_other         let other users in (with default_permissions:\n"
		"                         the recorded modes are enforced by the kernel)\n"
		"  -o cache_size=MiB      decompressed chunk cache (default 64)\n"
		"  -o tz=ZONE             time zone of the by-date view (default UTC)\n"
		"  -o watch_ms=N          how often to look for new backups (default 2000;\n"
		"                         10000 for a remote repository, one listing each time)\n"
		"  --cache-dir=DIR, -o cache_dir=DIR\n"
		"                         the disk cache of a remote repository (index, trees,\n"
		"                         data blocks; default $XDG_CACHE_HOME/bkrfs, else\n"
		"                         ~/.cache/bkrfs); given for a local REPO, it is read\n"
		"                         through the cache too (a repository on a slow disk)\n"
		"  --cache-max=MiB, -o cache_max=MiB\n"
		"                         the disk cache's size bound (default 2048)\n"
		"  -o password_file=FILE  an encrypted repository's passphrase: the first line of FILE\n"
		"  -o password_command=CMD  ... the first line CMD prints (else BKR_PASSWORD, else a\n"
		"                         prompt on the terminal before the mount goes to the background);\n"
		"                         a comma in CMD or FILE is written \\, (cut -d\\, -f2 F)\n"
		"  -o max_inodes=N        inodes kept before the kernel is asked to forget the\n"
		"                         least recently used (default 65536; about 600 bytes each)\n"
		"  -o OPT                 other FUSE mount options (fsname=, max_read=...)\n"
		"\n"
		"The mount is always read-only.  Unmount with `fusermount3 -u MOUNTPOINT`.\n"
		"exit status: 0 ok, 1 usage, 2 repository, 3 mount point, 4 FUSE, 9 wrong passphrase\n",
		progname);
}

/* the value of option @p arg (KEY=VALUE), by bkr's one rule for numbers (bkr_config_parse_uint):
 * a bad one is one line naming the option and why, -1 */
static int parse_uint(const char *arg, int base, unsigned long max, unsigned long *out)
{
	const char *v = strchr(arg, '=');
	uint64_t u;

	if (!v || bkr_config_parse_uint(v + 1, base, max, &u) < 0) {
		fprintf(stderr, "%s: bad value in option '%s': %s\n", progname, arg,
			v ? bkr_error_message() : "expected a value");
		return -1;
	}
	*out = (unsigned long)u;
	return 0;
}

/* An option's value below its least: one line, and the mount does not start. */
static int below(const char *arg, const char *least)
{
	fprintf(stderr, "%s: bad value in option '%s': the least is %s\n", progname, arg, least);
	return -1;
}

/* The value of option @p arg (KEY=VALUE) that names something (a file, a command, a
 * directory): NULL after one line naming the option when it is empty (no option gives
 * an empty value a meaning; 'password_file=' read no passphrase and mounted all the same) */
static const char *named_value(const char *arg)
{
	const char *v = strchr(arg, '=') + 1;

	if (!*v) {
		fprintf(stderr, "%s: bad value in option '%s': expected a value\n", progname, arg);
		return NULL;
	}
	return v;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct bkrfs_opts *o = data;
	const char *value;
	unsigned long v;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!*arg) { /* no repository, no mount point: never the current directory */
			fprintf(stderr, "%s: %s is empty (see --help)\n", progname, o->repo ? "MOUNTPOINT" : "REPO");
			return -1;
		}
		if (!o->repo)
			return (o->repo = strdup(arg)) ? 0 : -1;
		if (!o->mountpoint)
			return (o->mountpoint = strdup(arg)) ? 0 : -1;
		fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", progname, arg);
		return -1;
	case KEY_HELP:
		o->show_help = true;
		return 0;
	case KEY_VERSION:
		o->show_version = true;
		return 0;
	case KEY_BKR_CODES:
		bkr_codes = true;
		return 0;
	case KEY_FG:
		o->foreground = true;
		return 0;
	case KEY_DEBUG:
		o->foreground = o->debug = true;
		return 0;
	case KEY_SINGLE:
		o->singlethread = true;
		return 0;
	case KEY_NUMERIC:
		o->numeric_ids = true;
		return 0;
	case KEY_ALLOW_OTHER:
		o->allow_other = true;
		return 1; /* a mount option: keep it */
	case KEY_RW:
		fprintf(stderr, "%s: the mount is read-only; option 'rw' is not supported\n", progname);
		return -1;
	case KEY_UID:
	case KEY_GID:
	case KEY_UMASK:
	case KEY_CACHE:
	case KEY_READY:
	case KEY_WATCH:
	case KEY_INODES:
		if (parse_uint(arg, key == KEY_UMASK ? 8 : 10,
			       key == KEY_UMASK ? 0777 : key == KEY_CACHE ? 1u << 20 : 0xffffffffu, &v) < 0)
			return -1;
		if (key == KEY_UID) {
			o->uid = (uid_t)v;
			o->has_uid = true;
		} else if (key == KEY_GID) {
			o->gid = (gid_t)v;
			o->has_gid = true;
		} else if (key == KEY_UMASK) {
			o->umask = (mode_t)v;
			o->has_umask = true;
		} else if (key == KEY_CACHE) {
			if (v < 1)
				return below(arg, "1 (MiB)");
			o->cache_mib = (unsigned)v;
		} else if (key == KEY_WATCH) {
			if (v < 100)
				return below(arg, "100 (milliseconds)");
			o->watch_ms = (unsigned)v;
		} else if (key == KEY_INODES) {
			if (v < 1024)
				return below(arg, "1024");
			o->max_inodes = (size_t)v;
		} else {
			if (v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
				fprintf(stderr, "%s: bad value in option '%s': not an open file descriptor\n", progname, arg);
				return -1;
			}
			o->ready_fd = (int)v;
		}
		return 0;
	case KEY_PASSWORD_FILE:
		if (!(value = named_value(arg)))
			return -1;
		free(o->password_file);
		return (o->password_file = strdup(value)) ? 0 : -1;
	case KEY_PASSWORD_COMMAND:
		if (!(value = named_value(arg)))
			return -1;
		free(o->password_command);
		return (o->password_command = strdup(value)) ? 0 : -1;
	case KEY_TZ:
		if (!(value = named_value(arg)))
			return -1;
		if (!bkrfs_tz_valid(value)) {
			fprintf(stderr, "%s: unknown time zone '%s'\n", progname, value);
			return -1;
		}
		free(o->tz);
		return (o->tz = strdup(value)) ? 0 : -1;
	case KEY_CACHE_DIR:
		if (!(value = named_value(arg)))
			return -1;
		free(o->cache_dir);
		return (o->cache_dir = strdup(value)) ? 0 : -1;
	case KEY_CACHE_MAX:
		if (parse_uint(arg, 10, 1ul << 30, &v) < 0)
			return -1;
		if (v < 1)
			return below(arg, "1 (MiB)");
		o->cache_max_mib = v;
		return 0;
	default:
		return 1;
	}
}

/* 1 when @p path (a realpath) is a mount point according to /proc/self/mountinfo */
static int is_mountpoint(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	int hit = 0;

	if (!f)
		return 0;
	while (!hit && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX], dec[PATH_MAX];
		size_t k = 0;
		/* fields: id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		for (const char *p = mp; *p && k + 1 < sizeof(dec); p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
				dec[k++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				dec[k++] = *p;
			}
		}
		dec[k] = 0;
		hit = strcmp(dec, path) == 0;
	}
	fclose(f);
	return hit;
}

static bool inside(const char *a, const char *b)
{
	size_t lb = strlen(b);

	if (strcmp(b, "/") == 0)
		return true;
	return strncmp(a, b, lb) == 0 && (a[lb] == 0 || a[lb] == '/');
}

static int check_mountpoint(const struct bkrfs_opts *o, const char *repo_real, char *mnt_real)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (stat(o->mountpoint, &st) != 0) {
		int e = errno;
		/* a FUSE mount whose daemon is gone answers every call so */
		fprintf(stderr, "%s: mount point %s: %s%s%s%s\n", progname, o->mountpoint, strerror(e),
			e == ENOTCONN ? " (a bkrfs that died left it mounted: fusermount3 -u " : "",
			e == ENOTCONN ? o->mountpoint : "", e == ENOTCONN ? ")" : "");
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: mount point %s: not a directory\n", progname, o->mountpoint);
		return -1;
	}
	if (!realpath(o->mountpoint, mnt_real)) {
		fprintf(stderr, "%s: mount point %s: %s\n", progname, o->mountpoint, strerror(errno));
		return -1;
	}
	if (is_mountpoint(mnt_real)) {
		fprintf(stderr, "%s: mount point %s: already a mount point (unmount it first)\n", progname,
			o->mountpoint);
		return -1;
	}
	if (inside(mnt_real, repo_real)) {
		fprintf(stderr, "%s: mount point %s is inside the repository %s\n", progname, o->mountpoint,
			repo_real);
		return -1;
	}
	if (inside(repo_real, mnt_real)) {
		fprintf(stderr, "%s: the repository %s is inside the mount point %s\n", progname, repo_real,
			o->mountpoint);
		return -1;
	}
	if (!(d = opendir(mnt_real))) {
		fprintf(stderr, "%s: mount point %s: %s\n", progname, o->mountpoint, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			fprintf(stderr, "%s: mount point %s: not empty\n", progname, o->mountpoint);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/* libfuse's first message while it checks the options (its first line,
 * which it may write in pieces), to be printed as one line of ours */
static char fuse_message[256];

static void keep_fuse_message(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t n = strlen(fuse_message);

	(void)level;
	if (n && fuse_message[n - 1] == '\n')
		return; /* the first line is complete */
	vsnprintf(fuse_message + n, sizeof(fuse_message) - n, fmt, ap);
}

/* the kept message without its "fuse: " and its newline */
static const char *fuse_message_line(void)
{
	char *m = fuse_message;

	m[strcspn(m, "\n")] = 0;
	return strncmp(m, "fuse: ", 6) ? m : m + 6;
}

/*
 * The FUSE session over @p args, which checks the options left for FUSE (the
 * -o options bkrfs does not know, any other): NULL after one line naming the
 * first it rejects, as libfuse words it (a usage error).
 */
static struct fuse_session *new_session(struct fuse_args *args, struct bkrfs *fs)
{
	struct fuse_session *se;

	fuse_message[0] = 0;
	fuse_set_log_func(keep_fuse_message);
	se = fuse_session_new(args, &bkrfs_ops, sizeof(bkrfs_ops), fs);
	fuse_set_log_func(NULL);
	if (!se)
		fprintf(stderr, "%s: %s (see --help)\n", progname,
			fuse_message[0] ? fuse_message_line() : "could not create the FUSE session");
	return se;
}

/* allow_other with uid= or gid=: the modes then protect nothing from that user or group */
static void warn_owner(const struct bkrfs_opts *o)
{
	char who[64];

	if (o->has_uid && o->has_gid)
		snprintf(who, sizeof(who), "uid %lu and gid %lu", (unsigned long)o->uid, (unsigned long)o->gid);
	else if (o->has_uid)
		snprintf(who, sizeof(who), "uid %lu", (unsigned long)o->uid);
	else
		snprintf(who, sizeof(who), "gid %lu", (unsigned long)o->gid);
	fprintf(stderr,
		"%s: warning: allow_other with %s: every file is shown as theirs, so they can read all of "
		"them, files only root could read (mode 0600) included\n",
		progname, who);
}

static int add_opt(struct fuse_args *args, const char *opt)
{
	return fuse_opt_add_arg(args, "-o") == 0 && fuse_opt_add_arg(args, opt) == 0 ? 0 : -1;
}

/*
 * Chunk buffers come and go all the time.  Served from the heap and kept
 * there, they are reused without a page fault per 4 KiB (mmap'd, each one
 * cost a fault and a zeroed page per 4 KiB; the bounded caches keep the
 * total in check).  The heap is reserved up front for the chunk cache, as
 * transparent huge pages where the system gives them on request: the
 * cache's first fill then takes one fault per 2 MiB instead of one per
 * 4 KiB (a fault is dear in a virtual machine).  Pages are still only taken
 * when touched; every thread uses this one heap.
 */
static void heap_setup(size_t cache_bytes)
{
	const uintptr_t huge = 2u << 20;
	size_t pad = cache_bytes + (16u << 20);
	uintptr_t lo, hi;
	void *volatile p; /* volatile: a malloc freed unused may be elided */

	if (pad > (1u << 30))
		pad = 1u << 30;
	bkr_host_tune_malloc();
	mallopt(M_TRIM_THRESHOLD, (int)(pad + (64u << 20)));
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_TOP_PAD, (int)pad);
	lo = (uintptr_t)sbrk(0);
	p = malloc(1u << 20); /* more than the heap has: it grows by the pad */
	free(p);
	hi = (uintptr_t)sbrk(0);
	mallopt(M_TOP_PAD, 128 << 10);
	if (lo == (uintptr_t)-1 || hi == (uintptr_t)-1 || hi - lo < 2 * huge)
		return; /* no brk heap (another allocator), or it did not grow */
	bkr_host_advise_huge((void *)lo, hi - lo, huge);
}

static void warn_index(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s: warning: %s (index file left out: the blobs it names are missing)\n", progname, message);
}

static void key_note(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s: warning: %s\n", progname, message);
}

/*
 * The repository: a local directory as it is; a remote one (s3://...), or a
 * local one given --cache-dir, through the disk cache (bkr/store_cache.h).
 */
static int open_repo(struct bkrfs *fs)
{
	char dir[PATH_MAX], real[PATH_MAX];
	bkr_store *s = NULL;
	int err;

	if (!fs->o.remote && !fs->o.cache_dir)
		return bkr_repo_open(&fs->repo, fs->repo_real, BKR_REPO_RDONLY | BKR_REPO_RETAIN_INDEX);
	if (fs->o.cache_dir)
		snprintf(dir, sizeof(dir), "%s", fs->o.cache_dir);
	else if ((err = bkr_store_cache_default_dir(dir, sizeof(dir))) < 0)
		return err;
	/* by its real path: the daemon changes directory to / */
	if ((err = bkr_io_mkdir_p(dir, 0700)) < 0)
		return err;
	if (!realpath(dir, real))
		return bkr_error_set_errno(errno, "cache directory %s", dir);
	err = bkr_store_open(&s, fs->repo_real, 0);
	if (err < 0 || (err = bkr_store_cache_open(&s, s, real, (uint64_t)fs->o.cache_max_mib << 20)) < 0)
		return err;
	return bkr_repo_open_store(&fs->repo, s, BKR_REPO_RDONLY | BKR_REPO_RETAIN_INDEX);
}

/* what the disk cache did, at the end of a foreground mount */
static void cache_report(struct bkrfs *fs)
{
	bkr_store_cache_stats st;

	if (!fs->repo || !fs->o.foreground || !bkr_store_is_cache(bkr_repo_store(fs->repo)))
		return;
	bkr_store_cache_stats_get(bkr_repo_store(fs->repo), &st);
	fprintf(stderr,
		"%s: cache %s: %llu requests, %llu bytes fetched, %llu hits, %llu refetched, %llu evicted, "
		"%llu files (%llu bytes) kept\n",
		progname, bkr_store_cache_root(bkr_repo_store(fs->repo)), (unsigned long long)st.requests,
		(unsigned long long)st.fetched, (unsigned long long)st.hits, (unsigned long long)st.refetched,
		(unsigned long long)st.evicted, (unsigned long long)st.files, (unsigned long long)st.bytes);
}

/*
 * bkrfs's exit status @p ret as bkr's (docs/bkr.1.md, EXIT STATUS), for bkr
 * mount, which becomes bkrfs: a usage error is 2 as in every bkr command, a
 * repository that does not open is what any bkr command exits for its error
 * @p repo_err (3 missing, 4 damaged or unsupported, 8 unreachable, 2 no
 * passphrase...), a mount point that cannot be used 3, a FUSE failure 7 (the
 * system's); 0 and 9 (a wrong passphrase) are the same in both.
 */
static int bkr_status(int ret, int repo_err)
{
	switch (ret) {
	case EXIT_USAGE: return BKR_EXIT_USAGE;
	case EXIT_REPO: return bkr_exit_for(repo_err);
	case EXIT_MOUNTPOINT: return BKR_EXIT_NOTFOUND;
	case EXIT_FUSE: return BKR_EXIT_IO;
	default: return ret;
	}
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_session *se = NULL;
	struct bkrfs fs;
	char mnt_real[PATH_MAX], *fsname = NULL;
	int ret = EXIT_USAGE, err, repo_err = 0;
	bool mounted = false, handlers = false, setup = false;

	bkr_host_tune_openssl(); /* malloc itself: heap_setup, once the cache size is known */
	memset(&fs, 0, sizeof(fs));
	fs.o.ready_fd = -1;
	bkrfs_mount_init(&fs);
	if (argc > 0 && argv[0]) {
		const char *slash = strrchr(argv[0], '/');
		progname = slash ? slash + 1 : argv[0];
	}
	if (fuse_opt_parse(&args, &fs.o, opt_spec, opt_proc) == -1)
		goto out;
	if (fs.o.show_help) {
		usage(stdout);
		ret = 0;
		goto out;
	}
	if (fs.o.show_version) {
		printf("bkrfs %s (libfuse %s)\n", BKR_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (!fs.o.repo || !fs.o.mountpoint) {
		/* an option bad enough for FUSE is the usage error to name, not the operands after it */
		if (args.argc > 1 && !(se = new_session(&args, &fs)))
			goto out;
		fprintf(stderr, "%s: missing %s (see --help)\n", progname,
			fs.o.repo ? "MOUNTPOINT" : "REPO and MOUNTPOINT");
		goto out;
	}
	if (fs.o.tz && strcmp(fs.o.tz, "UTC") != 0) {
		setenv("TZ", fs.o.tz, 1);
		tzset();
	}

	/* opened by its real path: the daemon changes directory to / */
	fs.o.remote = bkr_store_is_url(fs.o.repo);
	if (fs.o.remote || !realpath(fs.o.repo, fs.repo_real))
		snprintf(fs.repo_real, sizeof(fs.repo_real), "%s", fs.o.repo);

	/* the session first: it checks the -o options left for FUSE (usage) */
	if (add_opt(&args, "ro") < 0 || add_opt(&args, "subtype=bkrfs") < 0 ||
	    add_opt(&args, "max_read=1048576") < 0 ||
	    (fs.o.allow_other && add_opt(&args, "default_permissions") < 0) ||
	    (fs.o.debug && fuse_opt_add_arg(&args, "-odebug") < 0))
		goto out;
	if ((fsname = malloc(2 * strlen(fs.repo_real) + 16))) {
		char *q = fsname + sprintf(fsname, "fsname=");
		for (const char *p = fs.repo_real; *p; p++) {
			if (*p == ',' || *p == '\\')
				*q++ = '\\';
			*q++ = *p;
		}
		*q = 0;
		if (add_opt(&args, fsname) < 0)
			goto out;
	}
	if (!(se = new_session(&args, &fs)))
		goto out;
	fs.session = se;

	/* the repository */
	ret = EXIT_REPO;
	bkr_key_set_source(&(bkr_key_source){ .file = fs.o.password_file,
					      .command = fs.o.password_command,
					      .options = "-o password_file=FILE or -o password_command=CMD" });
	bkr_key_set_note(key_note, NULL);
	err = open_repo(&fs);
	/* the keys are open: the passphrase is no longer needed, not even in the
	 * environment, which a daemon keeps for its life (/proc/PID/environ, a core) */
	bkr_key_forget();
	bkr_key_scrub_env();
	if (err < 0) {
		fprintf(stderr, "%s: %s\n", progname, bkr_error_message());
		if (err == BKR_EKEY)
			ret = EXIT_KEY;
		repo_err = err;
		goto out;
	}
	if (bkr_repo_config_warning(fs.repo))
		fprintf(stderr, "%s: warning: %s\n", progname, bkr_repo_config_warning(fs.repo));
	bkr_repo_index_warnings(fs.repo, warn_index, NULL);

	/* the mount point */
	ret = EXIT_MOUNTPOINT;
	if (check_mountpoint(&fs.o, fs.repo_real, mnt_real) < 0)
		goto out;

	ret = EXIT_FUSE;
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		fprintf(stderr, "%s: /dev/fuse: %s (is the fuse module loaded, and the device available here?)\n",
			progname, strerror(errno));
		goto out;
	}
	setup = true;
	heap_setup(bkrfs_cache_bytes(&fs.o));
	if ((err = bkrfs_mount_setup(&fs)) < 0) {
		fprintf(stderr, "%s: %s\n", progname, bkr_error_message());
		goto out;
	}

	if (fs.o.allow_other && (fs.o.has_uid || fs.o.has_gid))
		warn_owner(&fs.o);
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "%s: could not install signal handlers\n", progname);
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, mnt_real) != 0) {
		fprintf(stderr, "%s: mounting %s failed\n", progname, fs.o.mountpoint);
		goto out;
	}
	mounted = true;
	if (!fs.o.foreground)
		openlog("bkrfs", LOG_PID, LOG_DAEMON);
	/* the parent of a daemon exits 0 only now, with the mount ready */
	if (fuse_daemonize(fs.o.foreground) != 0) {
		fprintf(stderr, "%s: could not become a daemon\n", progname);
		goto out;
	}
	/* the daemon is a fork, which inherits no memory lock: its keys' again */
	bkr_secure_relock();
	if (fs.o.ready_fd >= 0) {
		char c = 1;
		if (write(fs.o.ready_fd, &c, 1) != 1)
			bkrfs_log(&fs, "--ready-fd=%d: %s", fs.o.ready_fd, strerror(errno));
		close(fs.o.ready_fd);
	}
	bkrfs_mount_start(&fs);

	if (fs.o.singlethread) {
		err = fuse_session_loop(se);
	} else {
		struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 10 };
		err = fuse_session_loop_mt(se, &cfg);
	}
	ret = err < 0 ? EXIT_FUSE : 0;
	if (err < 0)
		bkrfs_log(&fs, "session loop: %s", strerror(-err));
out:
	if (setup)
		bkrfs_mount_stop(&fs, mounted); /* every thread that uses the session (mount.c) */
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (setup)
		bkrfs_mount_teardown(&fs);
	cache_report(&fs);
	bkr_repo_free(fs.repo);
	bkrfs_mount_fini(&fs);
	fuse_opt_free_args(&args);
	free(fsname);
	free(fs.o.repo);
	free(fs.o.mountpoint);
	free(fs.o.tz);
	free(fs.o.cache_dir);
	free(fs.o.password_file);
	free(fs.o.password_command);
	return bkr_codes ? bkr_status(ret, repo_err) : ret;
}
