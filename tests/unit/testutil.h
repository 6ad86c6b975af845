/** @file
 * Helpers shared by the unit tests: a temporary directory per test, removing
 * a tree, creating directories, writing and reading files, and running a setup
 * command.  Header-only (each test is one program).  Failures of setup return
 * an error (the caller asserts) rather than abort, so a teardown still runs.
 */
#ifndef BKR_TESTUTIL_H
#define BKR_TESTUTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int tu_rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
	(void)st;
	(void)fl;
	(void)f;
	return remove(p);
}

/** Remove @p dir and everything below it (symlinks are not followed). */
static inline void tu_rmrf(const char *dir)
{
	nftw(dir, tu_rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

/** Make a fresh directory "$TMPDIR/bkr-<tag>-XXXXXX" in @p out; 0 or -1. */
static inline int tu_mkdtemp_in(char *out, size_t cap, const char *tag)
{
	const char *t = getenv("TMPDIR");
	if ((size_t)snprintf(out, cap, "%s/bkr-%s-XXXXXX", t && *t ? t : "/tmp", tag) >= cap)
		return -1;
	return mkdtemp(out) ? 0 : -1;
}

/** The same, malloc'd (NULL on failure). */
static inline char *tu_mkdtemp(void)
{
	char buf[PATH_MAX];
	if (tu_mkdtemp_in(buf, sizeof(buf), "test") < 0)
		return NULL;
	return strdup(buf);
}

/** mkdir -p */
static inline void tu_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

/** Write @p len bytes to "<dir>/<rel>" (@p dir may be NULL: @p rel is the path); parents are created. */
static inline int tu_write(const char *dir, const char *rel, const void *data, size_t len)
{
	char path[PATH_MAX], parent[PATH_MAX];
	char *slash;
	FILE *f;
	if (dir)
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
	else
		snprintf(path, sizeof(path), "%s", rel);
	snprintf(parent, sizeof(parent), "%s", path);
	if ((slash = strrchr(parent, '/')) && slash != parent) {
		*slash = '\0';
		tu_mkdirs(parent);
	}
	if (!(f = fopen(path, "wb")))
		return -1;
	if (len && fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static inline int tu_writes(const char *dir, const char *rel, const char *text)
{
	return tu_write(dir, rel, text, strlen(text));
}

/** Whole file "<dir>/<rel>" (or @p rel with a NULL @p dir) as a NUL-terminated malloc'd string, or NULL. */
static inline char *tu_read(const char *dir, const char *rel, size_t *len)
{
	char path[PATH_MAX];
	FILE *f;
	char *buf = NULL, *nb;
	size_t n = 0, cap = 0;
	if (dir)
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
	else
		snprintf(path, sizeof(path), "%s", rel);
	if (!(f = fopen(path, "rb")))
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			if (!(nb = realloc(buf, cap))) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static inline bool tu_exists(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

/** Run a shell command line built from a format (test setup only); system()'s status. */
static inline int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int tu_sh(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	r = system(cmd);
	free(cmd);
	return r;
}

#endif
