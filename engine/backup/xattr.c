/** @file
 * Extended attributes of scanned entries: read without following symlinks,
 * sorted by name, large values stored as blobs; and the manifest's counts of
 * entries with security labels and POSIX ACLs.
 */
#include "backup_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "bkr/error.h"

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

/* Read the xattrs of @p name in directory @p dirfd (without following it). */
int bkr_bk_read_xattrs(bctx *c, int dirfd, const char *name, node *n)
{
	char path[64 + 256];
	char *list = NULL;
	uint8_t *val = NULL;
	ssize_t sz;
	int err = 0;

	if (strlen(name) > 255)
		return 0;
	if (dirfd >= 0)
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	else
		snprintf(path, sizeof(path), "%s", name);
	sz = llistxattr(path, NULL, 0);
	if (sz <= 0)
		return 0;
	for (int tries = 0; tries < 4; tries++) {
		free(list);
		if (!(list = malloc((size_t)sz + 1)))
			return bkr_error_oom();
		ssize_t r = llistxattr(path, list, (size_t)sz);
		if (r >= 0) {
			sz = r;
			break;
		}
		if (errno != ERANGE) {
			bkr_bk_warn(c, n, "cannot list xattrs: %s", strerror(errno));
			goto done;
		}
		sz = llistxattr(path, NULL, 0);
		if (sz <= 0)
			goto done;
	}
	size_t count = 0;
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1)
		count++;
	if (!count)
		goto done;
	if (!(n->xattrs = calloc(count, sizeof(*n->xattrs)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (ssize_t i = 0; i < sz; i += (ssize_t)strlen(list + i) + 1) {
		const char *xn = list + i;
		ssize_t vl = lgetxattr(path, xn, NULL, 0);
		if (vl < 0)
			continue;
		free(val);
		if (!(val = malloc((size_t)vl + 1))) {
			err = bkr_error_oom();
			goto done;
		}
		vl = lgetxattr(path, xn, val, (size_t)vl);
		if (vl < 0) {
			bkr_bk_warn(c, n, "cannot read xattr %s: %s", xn, strerror(errno));
			continue;
		}
		bkr_xattr *x = &n->xattrs[n->nxattrs];
		memset(x, 0, sizeof(*x));
		if (!(x->name = (const uint8_t *)strdup(xn))) {
			err = bkr_error_oom();
			goto done;
		}
		x->name_len = strlen(xn);
		x->value_len = (uint32_t)vl;
		n->nxattrs++;
		if ((size_t)vl > BKR_XATTR_INLINE_MAX) {
			bool is_new = false;
			x->in_blob = true;
			bkr_writer_blob_id(c->w, val, (size_t)vl, &x->blob);
			if ((err = bkr_writer_put(c->w, BKR_BLOB_DATA, &x->blob, val, (size_t)vl, &is_new, NULL)) < 0)
				goto done;
			bkr_bk_note_blob(c, &x->blob, (size_t)vl, is_new, 0);
		} else {
			x->value = val;
			val = NULL;
		}
	}
	if (n->nxattrs > 1)
		qsort(n->xattrs, n->nxattrs, sizeof(*n->xattrs), xattr_cmp);
done:
	free(list);
	free(val);
	return err;
}
