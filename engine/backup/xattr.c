/** @file
 * Extended attributes of scanned entries: read without following symlinks,
 * sorted by name, large values stored as blobs; and the manifest's counts of
 * entries with security labels and POSIX ACLs.  Read relative to the
 * directory's fd with listxattrat(2)/getxattrat(2) where the kernel has them
 * (Linux 6.13), else through "/proc/self/fd/N/name".
 */
#include "backup_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"

typedef struct {
	int dirfd;
	const char *name;
	char path[64 + 256]; /* the path form, made on first use */
} bk_xpath;

static int xattr_cmp(const void *a, const void *b)
{
	const bkr_xattr *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int r = memcmp(x->name, y->name, n);
	return r ? r : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* does @p n carry an xattr of the security namespace (manifest stats) */
/* whether @p n has an xattr whose name begins with @p prefix */
static bool has_xattr_prefix(const node *n, const char *prefix)
{
	size_t len = strlen(prefix);

	for (size_t i = 0; i < n->nxattrs; i++)
		if (n->xattrs[i].name_len >= len && !memcmp(n->xattrs[i].name, prefix, len))
			return true;
	return false;
}

/* the manifest's counts of entries with labels and with ACLs (bkrfs) */
void bkr_bk_count_xattrs(bctx *c, const node *n)
{
	c->st.security_xattrs += has_xattr_prefix(n, "security.");
	c->st.acl_xattrs += has_xattr_prefix(n, "system.posix_acl_");
}

/*
 * listxattrat(2) and getxattrat(2) (Linux 6.13; glibc 2.36 has no wrappers):
 * an entry's xattrs relative to its directory's fd, without resolving
 * "/proc/self/fd/N/name" through procfs for every entry.  Where the kernel
 * lacks them (ENOSYS; EINVAL from a kernel that knows the number but not
 * the flags) the path through /proc is used from then on.  So it is under a
 * seccomp filter (/proc/self/status "Seccomp: 2"): a filter written before
 * these calls existed, such as systemd's SystemCallFilter=@system-service of
 * systemd 252 (Debian 12) in bkr-routine@.service, may kill the process with
 * SIGSYS for a number it does not know rather than fail the call; and an
 * EPERM (a filter's SystemCallErrorNumber=) falls back too.
 */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

struct bk_xattr_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static atomic_int at_calls = -1; /* 1 yes, 0 once the kernel has said no, -1 not asked yet */

/* Whether a seccomp filter (or strict mode) is in force in this process. */
static bool under_seccomp(void)
{
	char line[256];
	bool on = false;
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return true; /* cannot tell: the path that works everywhere */
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp:", 8)) {
			on = atoi(line + 8) != 0;
			break;
		}
	fclose(f);
	return on;
}

/* whether to try the *xattrat calls */
static bool at_try(void)
{
	int v = atomic_load(&at_calls);
	if (v < 0) {
		v = !under_seccomp();
#if BKR_FAULT_INJECTION
		/* test builds only: the /proc path, as on a kernel before 6.13 */
		const char *t = getenv("BKR_TEST_XATTRAT");
		if (t && !strcmp(t, "off"))
			v = 0;
#endif
		atomic_store(&at_calls, v);
	}
	return v == 1;
}

static bool at_unsupported(void)
{
	if (errno != ENOSYS && errno != EINVAL && errno != EPERM)
		return false;
	atomic_store(&at_calls, 0);
	return true;
}

/* The path of the entry @p x for the l*xattr calls, made on first use. */
static const char *x_path(bk_xpath *x)
{
	if (!x->path[0]) {
		if (x->dirfd >= 0)
			snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d/%s", x->dirfd, x->name);
		else
			snprintf(x->path, sizeof(x->path), "%s", x->name);
	}
	return x->path;
}

/* llistxattr of @p name in @p x's directory (or of @p x->path) */
static ssize_t x_list(bk_xpath *x, char *buf, size_t size)
{
	if (x->dirfd >= 0 && at_try()) {
		ssize_t r = syscall(SYS_listxattrat, x->dirfd, x->name, AT_SYMLINK_NOFOLLOW, buf, size);
		if (r >= 0 || !at_unsupported())
			return r;
	}
	return llistxattr(x_path(x), buf, size);
}

/* lgetxattr of @p xn of the entry @p x */
static ssize_t x_get(bk_xpath *x, const char *xn, void *buf, size_t size)
{
	if (x->dirfd >= 0 && at_try()) {
		struct bk_xattr_args a = { .value = (uint64_t)(uintptr_t)buf, .size = (uint32_t)size, .flags = 0 };
		ssize_t r = size > UINT32_MAX ? (errno = E2BIG, -1) :
			syscall(SYS_getxattrat, x->dirfd, x->name, AT_SYMLINK_NOFOLLOW, xn, &a, sizeof(a));
		if (r >= 0 || !at_unsupported())
			return r;
	}
	return lgetxattr(x_path(x), xn, buf, size);
}

#define X_TRIES 4 /* reads of a list or value that keeps growing under us */

/*
 * The value of xattr @p xn: *val (malloc'd, NULL when there is none: gone,
 * or unreadable and passed to @p warn) and its length.  A value that grew
 * between its size and its read (ERANGE) is read again; an empty one is not
 * read at all, as a read of size 0 answers the size (of a value set
 * meanwhile) and fills nothing.
 */
static int x_value(bk_xpath *x, const char *xn, uint8_t **val, ssize_t *len,
		   void (*warn)(void *ctx, const char *fmt, ...), void *ctx)
{
	*val = NULL;
	for (int tries = 0; tries < X_TRIES; tries++) {
		ssize_t vl = x_get(x, xn, NULL, 0), r = 0;
		if (vl < 0)
			return 0; /* gone since the list (ENODATA), or unreadable as the list said */
		/* tests: BKR_FAULT="xattr-get:N:stop" pauses between a value's size and its read */
		if (bkr_io_fault("xattr-get") < 0) {
			warn(ctx, "cannot read xattr %s: %s", xn, bkr_error_message());
			bkr_error_clear();
			return 0;
		}
		if (!(*val = malloc((size_t)vl + 1)))
			return bkr_error_oom();
		if (vl > 0 && (r = x_get(x, xn, *val, (size_t)vl)) < 0) {
			int e = errno;
			free(*val);
			*val = NULL;
			if (e == ERANGE)
				continue;
			if (e != ENODATA)
				warn(ctx, "cannot read xattr %s: %s", xn, strerror(e));
			return 0;
		}
		*len = r;
		return 0;
	}
	warn(ctx, "cannot read xattr %s: it changed while being read %d times", xn, X_TRIES);
	return 0;
}

int bkr_bk_xattrs_get(int dirfd, const char *name, bkr_xattr **out, size_t *nout,
		      void (*warn)(void *ctx, const char *fmt, ...), void *ctx)
{
	bk_xpath x = { .dirfd = dirfd, .name = name };
	char *list = NULL;
	uint8_t *val = NULL;
	bkr_xattr *xs = NULL;
	size_t nx = 0;
	ssize_t sz;
	int err = 0;

	*out = NULL;
	*nout = 0;
	if (strlen(name) > 255)
		return 0;
	sz = x_list(&x, NULL, 0);
	if (sz <= 0)
		return 0;
	for (int tries = 0;; tries++) {
		free(list);
		if (!(list = malloc((size_t)sz + 1)))
			return bkr_error_oom();
		ssize_t r = x_list(&x, list, (size_t)sz);
		if (r >= 0) {
			sz = r;
			list[sz] = '\0';
			break;
		}
		if (errno != ERANGE) {
			warn(ctx, "cannot list xattrs: %s", strerror(errno));
			goto done;
		}
		if (tries == X_TRIES - 1) { /* never the stale list */
			warn(ctx, "cannot list xattrs: they changed while being read %d times", X_TRIES);
			goto done;
		}
		sz = x_list(&x, NULL, 0);
		if (sz <= 0)
			goto done;
	}
	size_t count = 0;
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1)
		count++;
	if (!count)
		goto done;
	if (!(xs = calloc(count, sizeof(*xs)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1) {
		const char *xn = list + i;
		ssize_t vl;
		if ((err = x_value(&x, xn, &val, &vl, warn, ctx)) < 0)
			goto done;
		if (!val)
			continue;
		bkr_xattr *e = &xs[nx];
		memset(e, 0, sizeof(*e));
		if (!(e->name = (const uint8_t *)strdup(xn))) {
			err = bkr_error_oom();
			goto done;
		}
		e->name_len = strlen(xn);
		e->value_len = (uint32_t)vl;
		e->value = val;
		val = NULL;
		nx++;
	}
	if (nx > 1)
		qsort(xs, nx, sizeof(*xs), xattr_cmp);
done:
	if (err < 0) {
		bkr_bk_xattrs_free(xs, nx);
		xs = NULL;
		nx = 0;
	}
	*out = xs;
	*nout = nx;
	free(list);
	free(val);
	return err;
}

void bkr_bk_xattrs_free(bkr_xattr *xs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((void *)xs[i].name);
		free((void *)xs[i].value);
	}
	free(xs);
}

int bkr_bk_xattrs_take(bctx *c, node *n, bkr_xattr *xs, size_t nx)
{
	int err = 0;

	n->xattrs = xs;
	n->nxattrs = nx;
	for (size_t i = 0; i < nx && err >= 0; i++) {
		bkr_xattr *x = &xs[i];
		if (x->value_len <= BKR_XATTR_INLINE_MAX)
			continue;
		bool is_new = false;
		x->in_blob = true;
		bkr_writer_blob_id(c->w, x->value, x->value_len, &x->blob);
		err = bkr_writer_put(c->w, BKR_BLOB_DATA, &x->blob, x->value, x->value_len, &is_new, NULL);
		if (err >= 0)
			bkr_bk_note_blob(c, &x->blob, x->value_len, is_new, 0);
		free((void *)x->value);
		x->value = NULL;
	}
	return err;
}

struct warn_to {
	bctx *c;
	node *n;
};

static void warn_node(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_node(void *ctx, const char *fmt, ...)
{
	struct warn_to *w = ctx;
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bkr_bk_warn(w->c, w->n, "%s", msg);
}

/* Read the xattrs of @p name in directory @p dirfd (without following it). */
int bkr_bk_read_xattrs(bctx *c, int dirfd, const char *name, node *n)
{
	struct warn_to w = { c, n };
	bkr_xattr *xs;
	size_t nx;
	int err = bkr_bk_xattrs_get(dirfd, name, &xs, &nx, warn_node, &w);

	if (err < 0)
		return err;
	return bkr_bk_xattrs_take(c, n, xs, nx);
}
