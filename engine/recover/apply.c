/** @file
 * Applying a recovered file to the workspace: everything is done relative
 * to the workspace directory the scan saw (bkr_rec_root_open), the target is
 * re-checked just before writing (a file that came back or changed since the
 * scan is left alone), the copy is written to a temporary in the target's
 * directory (without a name, O_TMPFILE, where the filesystem allows it: a
 * killed run leaves nothing), given its attributes through its descriptor
 * and put in place: a new file through io.c's commit, a replaced one by
 * replace_checked, which checks again that no one wrote the target meanwhile
 * (fault points reach both); no path component is followed if it is a
 * symlink, and something else in a file's place (a directory, a symlink) is
 * never replaced.  A run holds the workspace while it writes (flock of its
 * directory); the first to hold it alone removes the named temporaries a
 * dead run left (bkr_rec_workspace_hold).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/entry.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/store.h"
#include "recover_i.h"

/*
 * Is the existing regular file @p base (in @p dir, stat @p st) still what the
 * scan saw?  0 go on, 1 nothing to do (*why set), <0 refused.  A file that
 * changed since the scan (another inode, size, mtime or ctime: someone wrote
 * it) is never overwritten, unless it already holds the recovered copy.
 */
static int check_target(bkr_recover *rc, const bkr_rec_file *f, int dir, const char *base, const struct stat *st,
			char **why)
{
	uint8_t *cur = NULL;
	size_t clen = 0;
	bool mapped = false, changed;
	char *vwhy = NULL;
	struct stat rst;
	bkr_id h;
	int v, err;
	/* gone when the scan looked: someone else wrote it since (another recover run?) */
	bool reappeared = f->d.kind == BKR_DAMAGE_MISSING || f->d.kind == BKR_DAMAGE_REQUIRED;

	/* a damage without a record of the scan (bkr_recover_items' caller made it): content checks only */
	changed = f->d.scanned.seen && !bkr_rec_scanned_same(&f->d, st);
	if ((err = bkr_rec_read_at(rc, dir, base, f->d.path, &cur, &clen, &mapped, &rst)) < 0) {
		if (reappeared)
			return bkr_error_set(BKR_EEXISTS, "%s: exists again since the scan; not overwritten", f->d.path);
		if (err == BKR_REC_CHANGED)
			return bkr_error_set(BKR_EEXISTS, "%s: being written (changed while it was read); not overwritten",
					     f->d.path);
		return err;
	}
	changed = changed || (f->d.scanned.seen && !bkr_rec_scanned_same(&f->d, &rst));
	bkr_sha256(cur, clen, &h);
	if (f->d.kind == BKR_DAMAGE_INVALID && !changed) {
		v = bkr_rec_validate(rc, f->d.path, cur, clen, false, &vwhy);
		free(vwhy);
	} else {
		v = 0; /* silent corruption and truncation: validators cannot see it */
	}
	bkr_rec_data_free(cur, clen, mapped);
	if (v < 0) {
		bkr_error_prefix("%s: not overwritten: checking it again", f->d.path);
		return v;
	}
	if (!f->link && bkr_id_cmp(&h, &f->sha) == 0) {
		*why = strdup("already identical to the recovered copy");
		return 1;
	}
	if (reappeared)
		return bkr_error_set(BKR_EEXISTS, "%s: exists again since the scan; not overwritten", f->d.path);
	if (changed)
		return bkr_error_set(BKR_EEXISTS, "%s: changed since the scan; not overwritten", f->d.path);
	if (v == 1)
		return bkr_error_set(BKR_EEXISTS, "%s: valid now (changed since the scan); not overwritten", f->d.path);
	return 0;
}

/*
 * Whether @p base of @p dir (lstat as @p st) holds @p f's recovered copy: a
 * symlink to the same target, or a regular file of the same content (as
 * check_target compares them).  Another run that recovered the same file
 * may have put it there first.
 */
static bool holds_copy(bkr_recover *rc, const bkr_rec_file *f, int dir, const char *base, const struct stat *st)
{
	uint8_t *cur = NULL;
	size_t clen = 0;
	bool mapped = false;
	bkr_id h;

	if (f->link) {
		char link[PATH_MAX];
		ssize_t n = S_ISLNK(st->st_mode) ? readlinkat(dir, base, link, sizeof(link)) : -1;
		return n >= 0 && (size_t)n == f->len && memcmp(link, f->link, f->len) == 0;
	}
	if (!S_ISREG(st->st_mode) || bkr_rec_read_at(rc, dir, base, f->d.path, &cur, &clen, &mapped, NULL) < 0)
		return false;
	bkr_sha256(cur, clen, &h);
	bkr_rec_data_free(cur, clen, mapped);
	return bkr_id_cmp(&h, &f->sha) == 0;
}

int bkr_rec_set_attrs(int fd, bool link, uint32_t uid, uint32_t gid, uint32_t mode, const char *what,
		      bool *setid_dropped, int *owner_errno)
{
	/* refused: not root; root without CAP_CHOWN or on a filesystem that
	 * refuses it (NFS root_squash); an id this user namespace does not map
	 * (root in a rootless container).  The file stays ours, and root is
	 * told (*owner_errno), as bkr restore warns. */
	if (fchownat(fd, "", (uid_t)uid, (gid_t)gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != EPERM && errno != EINVAL)
			return bkr_error_set_errno(errno, "%s: chown", what);
		if (geteuid() == 0 && owner_errno)
			*owner_errno = errno;
	}
	if (!link && (mode & 06000)) {
		/* a set-ID bit whose owner or group is not the one asked for would make it set-ID us */
		struct stat st;
		uint32_t keep = bkr_entry_setid_allowed(mode, uid, gid, fstat(fd, &st) == 0 ? &st : NULL);
		if (keep != mode && setid_dropped)
			*setid_dropped = true;
		mode = keep;
	}
	if (!link && fchmod(fd, (mode_t)(mode & 07777)) < 0)
		return bkr_error_set_errno(errno, "%s: chmod", what);
	return 0;
}

/*
 * Create the missing directories above @p f's path under @p root, each with
 * the mode and owner the backup recorded for it (else 0755 and its parent's
 * owner), set through its descriptor; nothing is followed.  One whose owner
 * root's chown is refused, or that is made without set-ID bits its owner
 * could not keep, is said in @p f's report entry (bkr_rec_note_parent).
 */
static int make_parents(bkr_recover *rc, int root, bkr_rec_file *f)
{
	const char *rel = f->d.path;
	char prefix[PATH_MAX];
	int err = 0;

	for (const char *slash = strchr(rel, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t n = (size_t)(slash - rel);
		uint32_t mode = 0755, uid, gid;
		bool dropped = false;
		int owner_errno = 0;
		struct stat pst;
		const char *base;
		int dir = -1, fd = -1;

		if (n >= sizeof(prefix))
			return bkr_error_set(BKR_EINVAL, "%s: path too long", rel);
		memcpy(prefix, rel, n);
		prefix[n] = '\0';
		if ((err = bkr_rec_open_parent(root, prefix, false, &dir, &base, rel)) < 0)
			return err;
		if (mkdirat(dir, base, 0700) < 0) {
			err = errno == EEXIST ? 0 : bkr_error_set_errno(errno, "%s: creating directory %s", rel, prefix);
			close(dir);
			if (err < 0)
				return err;
			continue;
		}
		if (fstat(dir, &pst) < 0) {
			err = bkr_error_set_errno(errno, "%s: stat", prefix);
		} else if ((fd = openat(dir, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
			   (!bkr_store_local_shed_for(errno) ||
			    (fd = openat(dir, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)) {
			/* out of descriptors even with the stores' idle ones closed */
			err = bkr_error_set_errno(errno, "%s: opening %s", rel, prefix);
		} else {
			uid = pst.st_uid;
			gid = pst.st_gid;
			bkr_rec_dir_attrs(rc, prefix, true, &mode, &uid, &gid);
			if ((err = bkr_rec_set_attrs(fd, false, uid, gid, mode, prefix, &dropped, &owner_errno)) == 0)
				bkr_rec_note_parent(f, prefix, uid, gid, dropped, owner_errno);
		}
		if (fd >= 0)
			close(fd);
		if (err < 0) /* not left behind, empty and 0700 */
			(void)unlinkat(dir, base, AT_REMOVEDIR);
		close(dir);
		if (err < 0)
			return err;
	}
	return 0;
}

/*
 * Give the object open as @p fd (O_PATH, a symlink, with @p opath) the
 * times of @p f's source copy, if known.  A failure fails the apply, for a
 * symlink as for a file.
 */
static int set_times(const bkr_rec_file *f, int fd, bool opath)
{
	struct timespec ts[2];
	int err;

	if (f->mtime_ns <= 0)
		return 0;
	if ((err = bkr_io_fault("recover-times")) < 0) {
		bkr_error_prefix("%s: setting times", f->d.path);
		return err;
	}
	ts[0] = ts[1] = bkr_clock_timespec(f->mtime_ns);
	if ((opath ? utimensat(fd, "", ts, AT_EMPTY_PATH) : futimens(fd, ts)) < 0)
		return bkr_error_set_errno(errno, "%s: setting times", f->d.path);
	return 0;
}

/* Whether @p a and @p b are the same file, unchanged: device, inode, size, mtime and, with @p ctime, ctime. */
static bool same_file(const struct stat *a, const struct stat *b, bool ctime)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       bkr_clock_ns(&a->st_mtim) == bkr_clock_ns(&b->st_mtim) &&
	       (!ctime || bkr_clock_ns(&a->st_ctim) == bkr_clock_ns(&b->st_ctim));
}

/*
 * Put the finished temporary @p tmp of @p dir (@p fd open on it, fsynced and
 * closed here; -1 for a symlink) in the place of @p base, only if that is
 * still the file the check saw (@p seen): compared again just before, then
 * exchanged with it (RENAME_EXCHANGE) and the file taken out compared once
 * more (all but its ctime, which the exchange sets), and exchanged back if
 * it changed in between.  On a filesystem without RENAME_EXCHANGE a plain
 * rename follows the last check.  BKR_EEXISTS when it changed, 1 when it
 * changed into the recovered copy (another run recovering it put it there
 * first: holds_copy); the temporary is gone in every case but one, said in
 * the error.
 */
static int replace_checked(bkr_recover *rc, const bkr_rec_file *f, int fd, int dir, const char *tmp, const char *base,
			   const struct stat *seen)
{
	struct stat now;
	int err = 0;

	if (fd >= 0) {
		err = bkr_io_fsync(fd, f->d.path);
		if (close(fd) < 0 && err == 0)
			err = bkr_error_set_errno(errno, "close %s", f->d.path);
		if (err < 0)
			goto fail;
	}
	if ((err = bkr_io_fault("rename")) < 0) {
		bkr_error_prefix("rename %s to %s", tmp, base);
		goto fail;
	}
	if (fstatat(dir, base, &now, AT_SYMLINK_NOFOLLOW) < 0 || !same_file(seen, &now, true))
		goto changed;
	(void)bkr_io_fault("recover-replace"); /* tests: a writer just after the last check */
	if (renameat2(dir, tmp, dir, base, RENAME_EXCHANGE) == 0) {
		/* @p tmp names the file taken out */
		if (fstatat(dir, tmp, &now, AT_SYMLINK_NOFOLLOW) == 0 && same_file(seen, &now, false)) {
			unlinkat(dir, tmp, 0);
		} else if (renameat2(dir, tmp, dir, base, RENAME_EXCHANGE) == 0) {
			goto changed;
		} else {
			return bkr_error_set(BKR_EEXISTS, "%s: changed while being replaced, and could not be put back "
					     "(%s): its new version is %s", f->d.path, strerror(errno), tmp);
		}
	} else if (errno != EINVAL || renameat(dir, tmp, dir, base) < 0) {
		err = bkr_error_set_errno(errno, "rename %s", f->d.path);
		goto fail;
	}
	return bkr_io_fsync(dir, f->d.path);
changed:
	/* @p base holds what is there now, not our copy */
	if (fstatat(dir, base, &now, AT_SYMLINK_NOFOLLOW) == 0 && holds_copy(rc, f, dir, base, &now)) {
		unlinkat(dir, tmp, 0);
		return 1;
	}
	err = bkr_error_set(BKR_EEXISTS, "%s: changed while the recovered copy was written; not overwritten",
			    f->d.path);
fail:
	unlinkat(dir, tmp, 0);
	return err;
}

/*
 * Write the symlink @p f as a temporary in @p dir and commit it as @p base:
 * in the place of the file @p seen when not NULL (replace_checked).  The
 * temporary has a name (there is no O_TMPFILE for a symlink),
 * BKR_REC_TMP_PREFIX and 16 hex digits: a run killed before the rename
 * leaves it, and the next run's sweep removes it (bkr_rec_workspace_hold).
 * Returns as replace_checked does.
 */
static int apply_link(bkr_recover *rc, bkr_rec_file *f, int dir, const char *base, const struct stat *seen)
{
	char tmp[NAME_MAX + 1];
	uint8_t rnd[8];
	char hex[17];
	int fd = -1, err;

	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(tmp, sizeof(tmp), "%s%s", BKR_REC_TMP_PREFIX, hex);
	if (symlinkat(f->link, dir, tmp) < 0)
		return bkr_error_set_errno(errno, "%s: creating a temporary symlink", f->d.path);
	(void)bkr_io_fault("recover-link"); /* tests: a run killed while the symlink has its temporary name */
	if ((fd = openat(dir, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "%s: opening the temporary symlink", f->d.path);
		goto fail;
	}
	if ((err = bkr_rec_set_attrs(fd, true, f->uid, f->gid, 0, f->d.path, NULL, &f->owner_errno)) < 0 ||
	    (err = set_times(f, fd, true)) < 0)
		goto fail;
	close(fd);
	/* a symlink has no data to fsync: it is renamed and the directory fsynced */
	if (seen)
		return replace_checked(rc, f, -1, dir, tmp, base, seen);
	return bkr_io_commit_at(-1, dir, tmp, base, BKR_IO_NOREPLACE, f->d.path);
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dir, tmp, 0);
	return err;
}

/*
 * A temporary for @p f's copy in @p dir, open for writing: without a name
 * (O_TMPFILE; @p tmp set to "") where the filesystem allows it, so that a
 * run killed while it writes leaves nothing; else a named one,
 * BKR_REC_TMP_PREFIX and 16 hex digits, that the next run removes if this
 * one dies (bkr_rec_workspace_hold).
 */
static int tmp_open(int dir, const bkr_rec_file *f, char *tmp, size_t cap, int *fd)
{
	int err;

	*tmp = 0;
	if ((*fd = bkr_io_open_anon(dir, "recover-tmpfile")) >= 0)
		return 0;
	if (*fd == -1)
		return bkr_error_set_errno(errno, "%s: creating a temporary", f->d.path);
	if ((err = bkr_io_tmpfile_at(dir, BKR_REC_TMP_PREFIX, tmp, cap, fd)) < 0)
		bkr_error_prefix("%s: creating a temporary", f->d.path);
	return err;
}

int bkr_rec_apply(bkr_recover *rc, int root, bkr_rec_file *f, char **why)
{
	int dir = -1, fd = -1, err = 0;
	const char *base;
	char tmp[NAME_MAX + 1] = "";
	struct stat st;
	bool exists = false;

	*why = NULL;
	if (f->healthy) {
		*why = strdup("the file was healthy when checked; never overwritten");
		return 0;
	}
	if ((err = make_parents(rc, root, f)) < 0 ||
	    (err = bkr_rec_open_parent(root, f->d.path, false, &dir, &base, f->d.path)) < 0)
		goto done;
	/* re-check the target just before writing */
	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		exists = true;
		if (f->link && S_ISLNK(st.st_mode)) {
			if (holds_copy(rc, f, dir, base, &st))
				*why = strdup("already identical to the recovered copy");
			else
				err = bkr_error_set(BKR_EEXISTS, "%s: exists again since the scan; not overwritten",
						    f->d.path);
			goto done;
		}
		if (!S_ISREG(st.st_mode)) {
			/* never removed nor written through: what it holds or points to
			 * is not ours to lose (docs/recovery.md, "Applying") */
			err = bkr_error_set(BKR_EEXISTS, "%s: is %s, expected %s; not replaced (move it aside, then "
					    "recover the file again)", f->d.path, bkr_rec_type_name(st.st_mode),
					    f->link ? "a symlink" : "a regular file");
			goto done;
		}
		if (f->d.kind == BKR_DAMAGE_TRUNCATED && st.st_size != 0) {
			err = bkr_error_set(BKR_EEXISTS, "%s: no longer empty; not overwritten", f->d.path);
			goto done;
		}
		if ((err = check_target(rc, f, dir, base, &st, why)) != 0) {
			if (err > 0)
				err = 0;
			goto done;
		}
	} else if (errno != ENOENT) {
		err = bkr_error_set_errno(errno, "%s", f->d.path);
		goto done;
	}
	if (f->link) {
		err = apply_link(rc, f, dir, base, exists ? &st : NULL);
		goto committed;
	}
	if ((err = tmp_open(dir, f, tmp, sizeof(tmp), &fd)) < 0)
		goto done;
	if ((err = bkr_io_write_full(fd, f->data, f->len, f->d.path)) < 0)
		goto fail;
	/* owner before mode: chown clears set-id bits */
	if ((err = bkr_rec_set_attrs(fd, false, f->uid, f->gid, f->mode, f->d.path, &f->setid_dropped,
				     &f->owner_errno)) < 0)
		goto fail;
	if ((err = set_times(f, fd, false)) < 0)
		goto fail;
	if (exists) {
		/* the exchange needs a name: given once the copy is on disk, for as
		 * short a time as can be (a run killed then leaves it: bkr_rec_workspace_hold) */
		if (!*tmp &&
		    ((err = bkr_io_fsync(fd, f->d.path)) < 0 ||
		     (err = bkr_io_name_anon(fd, dir, BKR_REC_TMP_PREFIX, tmp, sizeof(tmp))) < 0)) {
			bkr_error_prefix("%s", f->d.path);
			goto fail;
		}
		err = replace_checked(rc, f, fd, dir, tmp, base, &st);
	} else {
		err = bkr_io_commit_at(fd, dir, tmp, base, BKR_IO_NOREPLACE, f->d.path);
	}
	fd = -1;
committed:
	if (err == 1) { /* replace_checked: another run put the same copy there first */
		*why = strdup("already identical to the recovered copy");
		err = 0;
		goto done;
	}
	if (err == BKR_EEXISTS && !exists) {
		/* another run that recovered it too wrote it first: done, as when
		 * the check above finds it (docs/recovery.md, "Applying") */
		if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && holds_copy(rc, f, dir, base, &st)) {
			bkr_error_clear();
			*why = strdup("already identical to the recovered copy");
			err = 0;
			goto done;
		}
		err = bkr_error_set(BKR_EEXISTS, "%s: appeared while writing; not overwritten", f->d.path);
	}
	if (err == 0)
		f->applied = true;
	goto done;
fail:
	close(fd);
	fd = -1;
	if (*tmp)
		unlinkat(dir, tmp, 0);
done:
	if (err > 0)
		err = 0;
	if (dir >= 0)
		close(dir);
	if (err < 0 && !*why)
		*why = strdup(bkr_error_message());
	return err;
}

/* Whether @p name is one of apply's named temporaries: BKR_REC_TMP_PREFIX and 16 lowercase hex digits. */
static bool is_rec_tmp(const char *name)
{
	size_t n = strlen(BKR_REC_TMP_PREFIX);

	if (strncmp(name, BKR_REC_TMP_PREFIX, n) != 0 || strlen(name + n) != 16)
		return false;
	for (const char *p = name + n; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* One failure of the sweep, the first, into @p why (malloc'd). */
static void sweep_note(char **why, const char *rel, const char *what)
{
	if (!*why && asprintf(why, "%s: %s: %s", rel, what, strerror(errno)) < 0)
		*why = NULL;
}

/*
 * Remove the named temporaries of a dead run in directory @p dfd (owned:
 * closed here) and below it, @p rel its workspace path (PATH_MAX bytes,
 * restored on return): regular files and symlinks (apply_link's) only, never
 * followed, as deep as a scan looks.  A directory that cannot be read is left (the scan names it).
 */
static void sweep_dir(int dfd, char *rel, size_t rlen, size_t depth, cJSON *removed, char **why)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || rlen + nl + 2 > PATH_MAX)
			continue;
		/* a stat only for directories and our names: a walk of readdir, as cheap as can be */
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN &&
		    !((de->d_type == DT_REG || de->d_type == DT_LNK) && is_rec_tmp(de->d_name)))
			continue;
		if (rlen)
			rel[rlen] = '/';
		memcpy(rel + rlen + (rlen ? 1 : 0), de->d_name, nl + 1);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* gone meanwhile */
		} else if (S_ISDIR(st.st_mode) && depth + 1 <= BKR_SCAN_MAX_DEPTH) {
			int nfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd >= 0)
				sweep_dir(nfd, rel, rlen + nl + (rlen ? 1 : 0), depth + 1, removed, why);
		} else if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && is_rec_tmp(de->d_name)) {
			/* a symlink is a recovered one a run died before renaming into
			 * place (apply_link): unlinked, never followed */
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				cJSON_AddItemToArray(removed, cJSON_CreateString(rel));
			else if (errno != ENOENT)
				sweep_note(why, rel, "not removed");
		}
		rel[rlen] = '\0';
	}
	closedir(d);
}

void bkr_rec_workspace_hold(int root, cJSON *report)
{
	cJSON *o = cJSON_AddObjectToObject(report, "stale_temporaries");
	cJSON *removed = o ? cJSON_AddArrayToObject(o, "removed") : NULL;
	char rel[PATH_MAX] = "", *why = NULL;
	int r, fd;

	while ((r = flock(root, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
		;
	if (r < 0 && errno == EWOULDBLOCK) {
		/* another run writes into it: its temporaries are not stale */
		why = strdup("not looked for: another recover run is writing into this workspace");
		while (flock(root, LOCK_SH) < 0 && errno == EINTR)
			;
	} else if (r < 0) {
		/* a filesystem without flock on directories: no run can tell a dead run's temporaries */
		if (asprintf(&why, "not looked for: the workspace cannot be locked (flock: %s)", strerror(errno)) < 0)
			why = NULL;
	} else {
		if (removed && (fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
			sweep_dir(fd, rel, 0, 0, removed, &why);
		/* shared from now on: runs applying at once do not remove each other's */
		while (flock(root, LOCK_SH) < 0 && errno == EINTR)
			;
	}
	if (o && why)
		cJSON_AddStringToObject(o, "error", why);
	free(why);
}
