/** @file
 * Small helpers shared by the recovery unit tests: temporary directories,
 * writing and reading files, running setup commands, and looking into a
 * report.json.  Header-only (each test is one program).
 */
#ifndef TEST_RECOVER_UTIL_H
#define TEST_RECOVER_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

static int tu_rm_cb(const char *p, const struct stat *st, int fl, struct FTW *f)
{
	(void)st;
	(void)fl;
	(void)f;
	return remove(p);
}

static inline void tu_rmrf(const char *dir)
{
	nftw(dir, tu_rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static inline char *tu_mkdtemp(void)
{
	const char *t = getenv("TMPDIR");
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s/bkr-rtest-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(buf))
		return NULL;
	return strdup(buf);
}

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

/** Write "<dir>/<rel>" (parents created). */
static inline int tu_write(const char *dir, const char *rel, const char *data, size_t len)
{
	char path[PATH_MAX], parent[PATH_MAX];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(parent, sizeof(parent), "%s", path);
	*strrchr(parent, '/') = '\0';
	tu_mkdirs(parent);
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

/** Whole file as a NUL-terminated malloc'd string, or NULL. */
static inline char *tu_read(const char *dir, const char *rel, size_t *len)
{
	char path[PATH_MAX];
	FILE *f;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (!(f = fopen(path, "rb")))
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			buf = realloc(buf, cap);
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

/** Run a shell command line built from a format (test setup only). */
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

/** The report's entry for @p path (borrowed from @p root). */
static inline cJSON *tu_report_file(cJSON *root, const char *path)
{
	cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files")) {
		cJSON *p = cJSON_GetObjectItem(f, "path");
		if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0)
			return f;
	}
	return NULL;
}

static inline const char *tu_str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/** Result of attempt @p i of a report entry ("recovered", "failed", ...). */
static inline const char *tu_attempt(cJSON *entry, int i, const char *key)
{
	cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(entry, "attempts"), i);
	return a ? tu_str(a, key) : NULL;
}

static inline int tu_nattempts(cJSON *entry)
{
	return cJSON_GetArraySize(cJSON_GetObjectItem(entry, "attempts"));
}

#endif
