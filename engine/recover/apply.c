/** @file
 * Applying a recovered file to the workspace: the target is re-checked just
 * before writing (a file that came back or changed since the scan is left
 * alone), the copy is written to a temporary in the target's directory,
 * given its attributes through its descriptor and renamed over the target
 * through io.c's commit (so fault points reach it); no path component is
 * followed if it is a symlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "recover_i.h"

/* Is the existing target still what the scan saw?  0 go on, 1 nothing to do (*why set), <0 refused. */
static int check_target(bkr_recover *rc, const bkr_rec_file *f, char **why)
{
	uint8_t *cur = NULL;
	size_t clen = 0;
	char *vwhy = NULL;
	bkr_id h;
	int v, err;

	switch (f->d.kind) {
	case BKR_DAMAGE_MISSING:
	case BKR_DAMAGE_REQUIRED:
		return bkr_error_set(BKR_EEXISTS, "%s: exists again since the scan; not overwritten", f->d.path);
	case BKR_DAMAGE_TRUNCATED:
		return 0;
	default:
		break;
	}
	if ((err = bkr_rec_read_ws(rc, f->d.path, &cur, &clen)) < 0)
		return err;
	bkr_sha256(cur, clen, &h);
	if (f->d.kind == BKR_DAMAGE_INVALID) {
		v = bkr_rec_validate(rc, f->d.path, cur, clen, false, &vwhy);
		free(vwhy);
	} else {
		v = 0; /* silent corruption: validators cannot see it */
	}
	free(cur);
	if (v < 0)
		return v;
	if (bkr_id_cmp(&h, &f->sha) == 0) {
		*why = strdup("already identical to the recovered copy");
		return 1;
	}
	if (v == 1)
		return bkr_error_set(BKR_EEXISTS, "%s: valid now (changed since the scan); not overwritten", f->d.path);
	return 0;
}

int bkr_rec_apply(bkr_recover *rc, bkr_rec_file *f, char **why)
{
	int root = -1, dir = -1, fd = -1, err = 0;
	const char *base;
	char tmp[NAME_MAX + 1];
	struct stat st;
	bool exists = false;
	mode_t mode = f->mode ? (mode_t)(f->mode & 07777) : 0644;

	*why = NULL;
	if (f->healthy) {
		*why = strdup("the file was healthy when checked; never overwritten");
		return 0;
	}
	if ((root = open(rc->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "workspace %s", rc->workspace);
		goto done;
	}
	if ((err = bkr_rec_open_parent(root, f->d.path, true, &dir, &base, f->d.path)) < 0)
		goto done;
	/* re-check the target just before writing */
	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		exists = true;
		if (S_ISLNK(st.st_mode)) {
			err = bkr_error_set(BKR_EINVAL, "%s: is a symlink now; not replaced", f->d.path);
			goto done;
		}
		if (!S_ISREG(st.st_mode)) {
			err = bkr_error_set(BKR_EEXISTS, "%s: exists and is not a regular file; not replaced", f->d.path);
			goto done;
		}
		if (!f->mode)
			mode = st.st_mode & 07777;
		if (f->d.kind == BKR_DAMAGE_TRUNCATED && st.st_size != 0) {
			err = bkr_error_set(BKR_EEXISTS, "%s: no longer empty; not overwritten", f->d.path);
			goto done;
		}
		if ((err = check_target(rc, f, why)) != 0) {
			if (err > 0)
				err = 0;
			goto done;
		}
	} else if (errno != ENOENT) {
		err = bkr_error_set_errno(errno, "%s", f->d.path);
		goto done;
	}
	if ((err = bkr_io_tmpfile_at(dir, BKR_REC_TMP_PREFIX, tmp, sizeof(tmp), &fd)) < 0) {
		bkr_error_prefix("%s: creating a temporary", f->d.path);
		goto done;
	}
	if ((err = bkr_io_write_full(fd, f->data, f->len, f->d.path)) < 0)
		goto fail;
	if (fchmod(fd, mode) < 0) {
		err = bkr_error_set_errno(errno, "%s: chmod", f->d.path);
		goto fail;
	}
	if (f->mtime_ns > 0) {
		struct timespec ts[2];
		ts[0] = ts[1] = bkr_clock_timespec(f->mtime_ns);
		if (futimens(fd, ts) < 0) {
			err = bkr_error_set_errno(errno, "%s: setting times", f->d.path);
			goto fail;
		}
	}
	err = bkr_io_commit_at(fd, dir, tmp, base, exists ? BKR_IO_REPLACE : BKR_IO_NOREPLACE, f->d.path);
	fd = -1;
	if (err == BKR_EEXISTS)
		err = bkr_error_set(BKR_EEXISTS, "%s: appeared while writing; not overwritten", f->d.path);
	if (err == 0)
		f->applied = true;
	goto done;
fail:
	close(fd);
	fd = -1;
	unlinkat(dir, tmp, 0);
done:
	if (dir >= 0)
		close(dir);
	if (root >= 0)
		close(root);
	if (err < 0 && !*why)
		*why = strdup(bkr_error_message());
	return err;
}
