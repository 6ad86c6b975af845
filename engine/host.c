/** @file
 * Host name and state directory defaults (host.h).
 */
#include "bkr/host.h"
#include "bkr/error.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void bkr_host_name(char *buf, size_t cap, const char *given)
{
	if (!cap)
		return;
	if (given)
		snprintf(buf, cap, "%s", given);
	else if (gethostname(buf, cap) < 0)
		buf[0] = '\0';
	buf[cap - 1] = '\0';
	if (!buf[0])
		snprintf(buf, cap, "localhost");
}

/* The user's home directory in the password database (a cron job or a
 * service run without HOME: root's /root) when it is an absolute directory
 * other than "/", into @p buf; NULL when there is none. */
static const char *passwd_home(char *buf, size_t cap)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	struct stat st;

	if (getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &res) != 0 || !res || !pw.pw_dir || pw.pw_dir[0] != '/' ||
	    !pw.pw_dir[strspn(pw.pw_dir, "/")] || stat(pw.pw_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	snprintf(buf, cap, "%s", pw.pw_dir);
	return buf;
}

/* Whether @p dir, in a directory every user may write to, is this user's own:
 * made (0700) when absent; a directory, not a symlink, of this user, that no
 * other may write to.  Another user may have made it first, to read what bkr
 * writes there (logs, staged recovery runs) or to point it elsewhere. */
static bool private_dir(const char *dir)
{
	struct stat st;
	const char *why = NULL;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		bkr_error_set_errno(errno, "state directory %s", dir);
		return false;
	}
	if (lstat(dir, &st) < 0) {
		bkr_error_set_errno(errno, "state directory %s", dir);
		return false;
	}
	if (!S_ISDIR(st.st_mode))
		why = S_ISLNK(st.st_mode) ? "a symlink" : "not a directory";
	else if (st.st_uid != geteuid())
		why = "owned by another user";
	else if (st.st_mode & 022)
		why = "writable by other users";
	if (why)
		bkr_error_set(BKR_EEXISTS, "state directory %s: %s, not used (set XDG_STATE_HOME or HOME, or log_dir and "
			      "recovery.staging_dir)", dir, why);
	return !why;
}

char *bkr_host_cache_dir(const char *sub)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *out = NULL;
	int r;

	if (xdg && xdg[0] == '/')
		r = asprintf(&out, "%s/%s", xdg, sub);
	else if (home && home[0] == '/')
		r = asprintf(&out, "%s/.cache/%s", home, sub);
	else {
		bkr_error_set(BKR_ENOTFOUND, "no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path "
			      "(a relative one is ignored)");
		return NULL;
	}
	if (r < 0) {
		bkr_error_oom();
		return NULL;
	}
	return out;
}

char *bkr_host_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *out = NULL, pwbuf[PATH_MAX];
	bool shared = false;
	int r;

	if (home && home[0] != '/')
		home = NULL;
	if (xdg && xdg[0] == '/')
		r = asprintf(&out, "%s/bkr", xdg);
	else if (home || (home = passwd_home(pwbuf, sizeof(pwbuf))))
		r = asprintf(&out, "%s/.local/state/bkr", home);
	else {
		r = asprintf(&out, "/var/tmp/bkr-%u", (unsigned)getuid());
		shared = true;
	}
	if (r < 0) {
		bkr_error_oom();
		return NULL;
	}
	/* no trailing or doubled '/' from the environment ("/home/u/" -> "/home/u") */
	size_t k = 0;
	for (size_t i = 0; out[i]; i++)
		if (!(out[i] == '/' && k > 0 && out[k - 1] == '/'))
			out[k++] = out[i];
	while (k > 1 && out[k - 1] == '/')
		k--;
	out[k] = '\0';
	if (shared && !private_dir(out)) {
		free(out);
		return NULL;
	}
	return out;
}

/* An OpenSSL allocation this big is advised for transparent huge pages. */
#define OSSL_HUGE (2u << 20)

void bkr_host_advise_huge(void *p, size_t n, size_t align)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = align ? align : pg > 0 ? (uintptr_t)pg : 4096;
	uintptr_t lo = ((uintptr_t)p + a - 1) & ~(a - 1), hi = ((uintptr_t)p + n) & ~(a - 1);

#ifdef MADV_HUGEPAGE
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
	(void)lo;
	(void)hi;
#endif
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	void *p = malloc(n);
	(void)file;
	(void)line;
	if (p && n >= OSSL_HUGE)
		bkr_host_advise_huge(p, n, 0);
	return p;
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	void *q = realloc(p, n);
	(void)file;
	(void)line;
	if (q && n >= OSSL_HUGE)
		bkr_host_advise_huge(q, n, 0);
	return q;
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

void bkr_host_tune_malloc(void)
{
#ifdef M_MMAP_THRESHOLD
	/* Both fixed: setting either one stops glibc moving them itself. */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum on 64-bit; over BKR_BLOB_MAX */
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void bkr_host_tune_openssl(void)
{
	/* Refused (0) once OpenSSL has allocated anything: then it keeps its own. */
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
