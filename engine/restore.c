/** @file
 * Restoring a backup into a target directory (restore.h).
 *
 * The backup is walked depth-first (bkr_walk with BKR_WALK_POST); a stack of
 * directory fds follows the walk so every entry is created relative to its
 * parent's fd with O_NOFOLLOW / O_EXCL and nothing can escape the target
 * through a symlink; attributes are set through descriptors (apply_meta).
 * Non-directories are made under temporary names and renamed into place
 * when complete (restore_leaf).  Directory metadata is applied on the way
 * back up, after the contents, so their mtimes survive.  A file that fails
 * (missing or corrupt chunk, content hash mismatch, write error) is removed,
 * reported and counted; the restore goes on.
 */
#include "bkr/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/entry.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/walk.h"

typedef struct {
	uint64_t group;
	char *path;     /* first restored link, relative to the target */
	dev_t dev;      /* ... and the file it is, checked before linking to it */
	ino_t ino;
} link_ent;

typedef struct {
	bkr_repo *repo;
	const bkr_restore_options *o;
	const char *backup_id;
	bkr_restore_stats st;
	int tfd;            /* the target directory */
	bool root;
	int first_err;
	bool corrupt;
	char first_msg[2600];
	link_ent *links;
	size_t nlinks, linkcap;
	int64_t last_progress;
	bkr_restore_progress prog;
} rctx;

static void report(rctx *c, bool error, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void report(rctx *c, bool error, int code, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (error) {
		c->st.errors++;
		if (code == BKR_ECORRUPT || code == BKR_ENOTFOUND)
			c->corrupt = true;
		if (!c->first_err) {
			c->first_err = code < 0 ? code : BKR_ERROR;
			snprintf(c->first_msg, sizeof(c->first_msg), "backup %s: %s: %s",
				 c->backup_id ? c->backup_id : "?", path, msg);
		}
		bkr_log_error("restore", "backup %s: %s: %s", c->backup_id ? c->backup_id : "?", path, msg);
	} else {
		c->st.warnings++;
		bkr_log_warn("restore", "backup %s: %s: %s", c->backup_id ? c->backup_id : "?", path, msg);
	}
	if (c->o->report)
		c->o->report(c->o->report_ctx, error, path, msg);
}

static void progress(rctx *c, const char *path)
{
	if (!c->o->progress)
		return;
	int64_t t = bkr_clock_mono_ns();
	if (t - c->last_progress < 250000000LL)
		return;
	c->last_progress = t;
	c->prog.current = path;
	c->o->progress(c->o->progress_ctx, &c->prog);
}

static const char *cname(const uint8_t *p, size_t n, char *buf, size_t cap)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

static void owner_ids(rctx *c, const bkr_entry *e, uid_t *uid, gid_t *gid)
{
	char nm[256], buf[4096];

	*uid = e->uid;
	*gid = e->gid;
	if (c->o->numeric_ids)
		return;
	if (e->user_len) {
		struct passwd pw, *res = NULL;
		if (getpwnam_r(cname(e->user, e->user_len, nm, sizeof(nm)), &pw, buf, sizeof(buf), &res) == 0 && res)
			*uid = res->pw_uid;
	}
	if (e->group_len) {
		struct group gr, *res = NULL;
		if (getgrnam_r(cname(e->group, e->group_len, nm, sizeof(nm)), &gr, buf, sizeof(buf), &res) == 0 && res)
			*gid = res->gr_gid;
	}
}

/* "/proc/self/fd/N": names the object @p fd holds itself, not a path that could be swapped. */
static void fd_path(char *buf, size_t cap, int fd)
{
	snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

/*
 * Owner, xattrs, mode, times of the object @p fd refers to.  With @p opath
 * the fd is an O_PATH descriptor (symlinks, fifos, devices: never opened for
 * I/O) and calls that refuse one go through /proc/self/fd/N, which resolves
 * to the object itself.  Nothing here takes a name.
 */
static void apply_meta(rctx *c, int fd, bool opath, const char *path, const bkr_entry *e,
		       const bkr_tree *leaf, uint32_t li)
{
	bool is_link = e->type == BKR_FT_SYMLINK;
	char ppath[64];
	bkr_xattr *xs = NULL;
	size_t nx = 0;
	int r;

	fd_path(ppath, sizeof(ppath), fd);
	if (c->root) {
		uid_t uid;
		gid_t gid;
		owner_ids(c, e, &uid, &gid);
		r = opath ? fchownat(fd, "", uid, gid, AT_EMPTY_PATH) : fchown(fd, uid, gid);
		if (r < 0)
			report(c, false, 0, path, "chown: %s", strerror(errno));
	}
	if (leaf && bkr_tree_xattrs(leaf, li, &xs, &nx) == 0) {
		for (size_t i = 0; i < nx; i++) {
			char xn[256];
			uint8_t *val = NULL;
			size_t vlen = 0;
			cname(xs[i].name, xs[i].name_len, xn, sizeof(xn));
			if (xs[i].in_blob) {
				if (bkr_repo_read_blob(c->repo, &xs[i].blob, BKR_BLOB_DATA, &val, &vlen) < 0) {
					report(c, false, 0, path, "xattr %s: %s", xn, bkr_error_message());
					continue;
				}
			}
			const void *v = xs[i].in_blob ? (const void *)val : (const void *)xs[i].value;
			size_t vl = xs[i].in_blob ? vlen : xs[i].value_len;
			r = opath ? setxattr(ppath, xn, v, vl, 0) : fsetxattr(fd, xn, v, vl, 0);
			if (r < 0)
				report(c, false, 0, path, "xattr %s: %s", xn, strerror(errno));
			free(val);
		}
	} else {
		bkr_error_clear();
	}
	free(xs);
	if (!is_link) {
		r = opath ? chmod(ppath, e->mode & 07777) : fchmod(fd, e->mode & 07777);
		if (r < 0)
			report(c, false, 0, path, "chmod: %s", strerror(errno));
	}
	struct timespec ts[2];
	ts[0] = ts[1] = bkr_clock_timespec(e->mtime_ns);
	r = opath ? utimensat(fd, "", ts, AT_EMPTY_PATH) : futimens(fd, ts);
	if (r < 0)
		report(c, false, 0, path, "set times: %s", strerror(errno));
}

/*
 * An O_PATH descriptor of the entry restore just created as @p name in
 * @p dirfd (symlink, fifo, device), after checking it is that entry: the
 * type (and device number) asked for, owned by us, one link.  Another user
 * who can write to the directory may have put something else there in the
 * meantime; then -1 after reporting, and nothing of it is touched.
 */
static int open_created(rctx *c, int dirfd, const char *name, mode_t type, dev_t rdev, const char *path)
{
	struct stat st;
	int fd;

	(void)bkr_io_fault("restore-meta");
	if ((fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		report(c, true, bkr_error_set_errno(errno, "open"), path, "open after creating: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		report(c, true, bkr_error_set_errno(errno, "stat"), path, "stat after creating: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if ((st.st_mode & S_IFMT) != type || st.st_nlink != 1 || st.st_uid != geteuid() ||
	    ((type == S_IFCHR || type == S_IFBLK) && st.st_rdev != rdev)) {
		report(c, true, BKR_EEXISTS, path,
		       "replaced by something else while being restored; its attributes were not set");
		close(fd);
		return -1;
	}
	return fd;
}

typedef struct {
	int fd;
	const char *what;
} write_ctx;

static int write_data(void *ctx, uint64_t off, const uint8_t *data, size_t len)
{
	write_ctx *w = ctx;
	int err;
	if ((err = bkr_io_fault("restore-write")) < 0)
		return err;
	while (len > 0) {
		ssize_t n = pwrite(w->fd, data, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return bkr_error_set_errno(errno, "%s: write", w->what);
		}
		data += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static link_ent *link_find(rctx *c, uint64_t group)
{
	for (size_t i = 0; i < c->nlinks; i++)
		if (c->links[i].group == group)
			return &c->links[i];
	return NULL;
}

static void link_add(rctx *c, uint64_t group, const char *path, const struct stat *st)
{
	if (c->nlinks == c->linkcap) {
		size_t cap = c->linkcap ? c->linkcap * 2 : 16;
		link_ent *l = realloc(c->links, cap * sizeof(*l));
		if (!l)
			return;
		c->links = l;
		c->linkcap = cap;
	}
	char *p = strdup(path);
	if (!p)
		return;
	c->links[c->nlinks].group = group;
	c->links[c->nlinks].path = p;
	c->links[c->nlinks].dev = st->st_dev;
	c->links[c->nlinks].ino = st->st_ino;
	c->nlinks++;
}

/*
 * An O_PATH descriptor of the group's first file, after checking it is still
 * the file restore wrote (its path may lead elsewhere by now); -1 with errno.
 */
static int open_link_source(rctx *c, const link_ent *l)
{
	struct stat st;
	int fd;

	if ((fd = openat(c->tfd, l->path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_dev != l->dev || st.st_ino != l->ino || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	return fd;
}

/*
 * Create entry @p e under a fresh temporary name (written to @p tmp) in
 * @p dirfd: a regular file, open for writing, mode 0600 (returns its fd); a
 * hardlink to the file @p link_fd holds (an O_PATH fd; returns 0); a
 * symlink to @p target, a fifo or a device node, mode 0600 (returns 0).
 * -1 with errno.
 */
static int create_tmp(int dirfd, char *tmp, size_t cap, const bkr_entry *e, int link_fd, const char *target)
{
	for (int tries = 0; tries < 64; tries++) {
		uint8_t rnd[8];
		char pp[64];
		int r;
		if (bkr_random_bytes(rnd, sizeof(rnd)) < 0) {
			errno = EIO;
			return -1;
		}
		size_t n = (size_t)snprintf(tmp, cap, "%s", BKR_RESTORE_TMP_PREFIX);
		for (size_t i = 0; i < sizeof(rnd) && n + 3 <= cap; i++, n += 2)
			snprintf(tmp + n, cap - n, "%02x", rnd[i]);
		if (link_fd >= 0) {
			fd_path(pp, sizeof(pp), link_fd);
			r = linkat(AT_FDCWD, pp, dirfd, tmp, AT_SYMLINK_FOLLOW);
		} else if (e->type == BKR_FT_FILE) {
			r = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		} else if (e->type == BKR_FT_SYMLINK) {
			r = symlinkat(target, dirfd, tmp);
		} else {
			r = mknodat(dirfd, tmp, bkr_entry_mode_of_type(e->type) | 0600,
				    e->type == BKR_FT_FIFO ? 0 : (dev_t)e->rdev);
		}
		if (r >= 0 || errno != EEXIST)
			return r;
	}
	errno = EEXIST;
	return -1;
}

/*
 * Move the finished temporary @p tmp to @p name in @p dirfd: over what is
 * there when @p replace, else only where nothing is.  -1 with errno.
 */
static int place(int dirfd, const char *tmp, const char *name, bool replace)
{
	if (bkr_io_fault("restore-rename") < 0) {
		errno = EIO;
		return -1;
	}
	if (renameat2(dirfd, tmp, dirfd, name, replace ? 0 : RENAME_NOREPLACE) == 0)
		return 0;
	if (replace || errno != EINVAL)
		return -1;
	/* a filesystem without RENAME_NOREPLACE: link, which never replaces */
	if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
		return -1;
	unlinkat(dirfd, tmp, 0);
	return 0;
}

/* The content of regular file @p e into @p fd (holes as holes); checked.  <0 after reporting. */
static int write_file(rctx *c, int fd, const char *path, const bkr_entry *e, const bkr_tree *leaf, uint32_t li)
{
	char what[2048];
	int err;

	if (ftruncate(fd, (off_t)e->size) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "truncate"), path, "truncate: %s", strerror(en));
		return BKR_EIO;
	}
	snprintf(what, sizeof(what), "backup %s: %s", c->backup_id ? c->backup_id : "?", path);
	write_ctx wc = { fd, what };
	if ((err = bkr_walk_read_file(c->repo, leaf, li, what, write_data, &wc)) < 0)
		report(c, true, err, path, "%s", bkr_error_message());
	return err;
}

/*
 * Restore one non-directory entry @p name into @p dirfd: created under a
 * temporary name, its content checked and its attributes set through its
 * descriptor, then renamed into place (over an existing entry only with
 * overwrite).  A failure removes the temporary and leaves what was there.
 */
static void restore_leaf(rctx *c, int dirfd, const char *path, const bkr_entry *e,
			 const bkr_tree *leaf, uint32_t li)
{
	char name[256 + 1], tmp[64], *target = NULL;
	struct stat old, st;
	bool replace = false, made = false;
	int fd = -1, link_fd = -1;
	link_ent *l = NULL;

	if (e->name_len > 255) {
		report(c, true, BKR_EINVAL, path, "name too long");
		return;
	}
	cname(e->name, e->name_len, name, sizeof(name));
	if (e->type == BKR_FT_SOCK) {
		report(c, false, 0, path, "socket skipped");
		return;
	}
	if (e->type != BKR_FT_FILE && e->type != BKR_FT_SYMLINK && e->type != BKR_FT_FIFO &&
	    e->type != BKR_FT_CHR && e->type != BKR_FT_BLK) {
		report(c, true, BKR_ECORRUPT, path, "unknown entry type %u", e->type);
		return;
	}
	if (fstatat(dirfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!c->o->overwrite) {
			report(c, true, BKR_EEXISTS, path, "exists (--overwrite replaces it)");
			return;
		}
		if (S_ISDIR(old.st_mode)) {
			report(c, true, BKR_EEXISTS, path, "a directory is in the way");
			return;
		}
		replace = true;
	}
	if (e->type == BKR_FT_FILE && e->link_group && (l = link_find(c, e->link_group))) {
		if (replace && old.st_dev == l->dev && old.st_ino == l->ino) {
			c->st.hardlinks++;
			return;
		}
		if ((link_fd = open_link_source(c, l)) >= 0) {
			if (create_tmp(dirfd, tmp, sizeof(tmp), e, link_fd, NULL) == 0) {
				made = true;
				goto place;
			}
			int en = errno;
			close(link_fd);
			link_fd = -1;
			errno = en;
		}
		report(c, false, 0, path, "hardlink to %s failed (%s), restoring a copy", l->path, strerror(errno));
	}
	if (e->type == BKR_FT_SYMLINK) {
		if (!(target = malloc(e->target_len + 1))) {
			report(c, true, BKR_ENOMEM, path, "out of memory");
			return;
		}
		memcpy(target, e->target, e->target_len);
		target[e->target_len] = 0;
	}
	if ((fd = create_tmp(dirfd, tmp, sizeof(tmp), e, -1, target)) < 0) {
		int en = errno;
		if (e->type == BKR_FT_FIFO || e->type == BKR_FT_CHR || e->type == BKR_FT_BLK)
			report(c, false, 0, path, "skipped: mknod: %s", strerror(en));
		else
			report(c, true, bkr_error_set_errno(en, "create"), path, "create: %s", strerror(en));
		fd = -1;
		goto done;
	}
	made = true;
	if (e->type == BKR_FT_FILE) {
		if (write_file(c, fd, path, e, leaf, li) < 0)
			goto done;
	} else {
		fd = open_created(c, dirfd, tmp, bkr_entry_mode_of_type(e->type),
				  e->type == BKR_FT_SYMLINK || e->type == BKR_FT_FIFO ? 0 : (dev_t)e->rdev, path);
		if (fd < 0)
			goto done;
	}
	apply_meta(c, fd, e->type != BKR_FT_FILE, path, e, leaf, li);
	/* the old file goes only for a new one that is on disk */
	if (e->type == BKR_FT_FILE && replace && fsync(fd) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "fsync"), path, "fsync: %s", strerror(en));
		goto done;
	}
place:
	if (place(dirfd, tmp, name, replace) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "rename"), path, "cannot move into place: %s", strerror(en));
		goto done;
	}
	made = false;
	if (link_fd >= 0) {
		c->st.hardlinks++;
	} else if (e->type == BKR_FT_FILE) {
		if (e->link_group && !l && fstat(fd, &st) == 0)
			link_add(c, e->link_group, path, &st);
		c->st.files++;
		c->st.bytes += e->size;
		c->prog.files_done++;
		c->prog.bytes_done += e->size;
	} else if (e->type == BKR_FT_SYMLINK) {
		c->st.symlinks++;
	} else {
		c->st.specials++;
	}
done:
	if (made)
		unlinkat(dirfd, tmp, 0);
	if (fd >= 0)
		close(fd);
	if (link_fd >= 0)
		close(link_fd);
	free(target);
}

/* mkdir (or reuse) @p name in @p dirfd and open it; -1 after reporting. */
static int open_dir(rctx *c, int dirfd, const char *name, const char *path)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
		/* a directory replaces a file only with overwrite (the file goes first) */
		if (!c->o->overwrite) {
			report(c, true, BKR_EEXISTS, path, "exists and is not a directory (--overwrite replaces it)");
			return -1;
		}
		if (unlinkat(dirfd, name, 0) < 0) {
			report(c, true, bkr_error_set_errno(errno, "unlink"), path, "cannot replace: %s", strerror(errno));
			return -1;
		}
	}
	bool created = mkdirat(dirfd, name, 0700) == 0;
	if (!created && errno != EEXIST) {
		report(c, true, bkr_error_set_errno(errno, "mkdir"), path, "mkdir: %s", strerror(errno));
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		report(c, true, bkr_error_set_errno(errno, "open"), path, "open directory: %s", strerror(errno));
		return -1;
	}
	if (created && (fstat(fd, &st) < 0 || st.st_uid != geteuid())) {
		/* another user's directory put in place of the one just made */
		report(c, true, BKR_EEXISTS, path, "replaced by something else while being restored");
		close(fd);
		return -1;
	}
	return fd;
}

/* Restore directory @p path (its contents into @p fd, which this closes). */
static int restore_dir(rctx *c, const bkr_id *root, const char *path, int fd)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	int *fds = NULL;
	size_t cap = 64;
	int err;

	if (!(fds = malloc(cap * sizeof(*fds)))) {
		close(fd);
		return bkr_error_oom();
	}
	fds[0] = fd;
	if ((err = bkr_walk_new(&w, c->repo, root, path, BKR_WALK_POST)) < 0) {
		report(c, true, err, path, "%s", bkr_error_message());
		err = 0;
		goto done;
	}
	while ((err = bkr_walk_next(w, &it)) > 0) {
		size_t d = it->depth;
		if (d >= cap) {
			int *n = realloc(fds, cap * 2 * sizeof(*n));
			if (!n) {
				err = bkr_error_oom();
				goto done;
			}
			fds = n;
			cap *= 2;
		}
		int pfd = fds[d - 1];
		const bkr_entry *e = &it->entry;
		char name[257];
		if (e->type != BKR_FT_DIR) {
			restore_leaf(c, pfd, it->path, e, it->leaf, it->li);
			progress(c, it->path);
			continue;
		}
		if (e->name_len > 255) {
			report(c, true, BKR_EINVAL, it->path, "name too long");
			bkr_walk_skip(w);
			continue;
		}
		cname(e->name, e->name_len, name, sizeof(name));
		if (it->post) {
			apply_meta(c, fds[d], false, it->path, e, it->leaf, it->li);
			close(fds[d]);
			fds[d] = -1;
			continue;
		}
		int dfd = open_dir(c, pfd, name, it->path);
		if (dfd < 0) {
			bkr_walk_skip(w);
			continue;
		}
		c->st.dirs++;
		if (it->error < 0) {
			report(c, true, it->error, it->path, "contents unreadable: %s", bkr_walk_error_message(w));
			apply_meta(c, dfd, false, it->path, e, it->leaf, it->li);
			close(dfd);
			continue;
		}
		fds[d] = dfd;
	}
done:
	bkr_walk_free(w);
	close(fds[0]);
	free(fds);
	return err;
}

static int restore_path(rctx *c, const bkr_id *root, const char *path)
{
	bkr_entry e;
	bkr_dir *holder = NULL;
	const bkr_tree *leaf = NULL;
	uint32_t li = 0;
	int err, fd = -1;
	char *copy = NULL;

	if ((err = bkr_walk_resolve(c->repo, root, path, &e, &holder, &leaf, &li)) < 0) {
		report(c, true, err, path, "%s", bkr_error_message());
		return 0;
	}
	/* create the intermediate directories */
	if ((fd = dup(c->tfd)) < 0) {
		err = bkr_error_set_errno(errno, "dup");
		goto done;
	}
	if (!(copy = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	char *comps[4096];
	size_t nc = 0;
	for (char *tok = strtok(copy, "/"); tok && nc < 4096; tok = strtok(NULL, "/"))
		if (strcmp(tok, ".") != 0)
			comps[nc++] = tok;
	for (size_t i = 0; i + 1 < nc; i++) {
		int nfd = open_dir(c, fd, comps[i], path);
		close(fd);
		fd = nfd;
		if (fd < 0)
			goto done;
	}
	if (nc == 0) {
		/* the whole backup */
		err = restore_dir(c, root, "", fd);
		fd = -1;
		goto done;
	}
	if (e.type != BKR_FT_DIR) {
		restore_leaf(c, fd, path, &e, leaf, li);
		goto done;
	}
	int dfd = open_dir(c, fd, comps[nc - 1], path), cfd;
	if (dfd < 0)
		goto done;
	c->st.dirs++;
	if ((cfd = dup(dfd)) < 0) {
		err = bkr_error_set_errno(errno, "dup");
		close(dfd);
		goto done;
	}
	if ((err = restore_dir(c, root, path, cfd)) == 0) {
		/* the directory's own metadata, after its contents, through the fd it was restored by */
		(void)bkr_io_fault("restore-meta");
		apply_meta(c, dfd, false, path, &e, leaf, li);
	}
	close(dfd);
done:
	if (fd >= 0)
		close(fd);
	free(copy);
	bkr_dir_free(holder);
	return err;
}

int bkr_restore_tree(bkr_repo *r, const bkr_id *root, const char *backup_id,
		     const bkr_restore_options *o, bkr_restore_stats *stats)
{
	rctx cs, *c = &cs;
	int err = 0;

	memset(c, 0, sizeof(*c));
	c->tfd = -1;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (!o || o->version != BKR_RESTORE_OPTIONS_VERSION || !o->target || !o->target[0])
		return bkr_error_set(BKR_EINVAL, "restore: options without a target");
	c->repo = r;
	c->o = o;
	c->backup_id = backup_id;
	c->root = geteuid() == 0;
	if ((err = bkr_io_mkdir_p(o->target, 0755)) < 0)
		goto done;
	if ((c->tfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "restore target %s", o->target);
		goto done;
	}
	if (!o->npaths) {
		err = restore_path(c, root, "");
	} else {
		for (size_t i = 0; i < o->npaths && err == 0; i++)
			err = restore_path(c, root, o->paths[i]);
	}
	if (err < 0)
		goto done;
	/* what was renamed into place is on disk before the restore says done */
	if (syncfs(c->tfd) < 0)
		report(c, false, 0, o->target, "syncfs: %s", strerror(errno));
	if (c->st.errors) {
		err = bkr_error_set(c->corrupt ? BKR_ECORRUPT : c->first_err,
				    "%llu entr%s failed to restore; first: %s", (unsigned long long)c->st.errors,
				    c->st.errors == 1 ? "y" : "ies", c->first_msg);
	}
done:
	if (stats)
		*stats = c->st;
	if (c->tfd >= 0)
		close(c->tfd);
	for (size_t i = 0; i < c->nlinks; i++)
		free(c->links[i].path);
	free(c->links);
	return err;
}

int bkr_restore_run(bkr_repo *r, const bkr_manifest *m, const bkr_restore_options *o,
		    bkr_restore_stats *stats)
{
	return bkr_restore_tree(r, &m->tree, m->backup_id, o, stats);
}
