/** @file
 * Phase 1 of a backup: the calling thread walks each source depth-first (an
 * explicit heap stack of directory fds, never following symlinks:
 * openat/fstatat with O_NOFOLLOW relative to the directory fd), lstat's
 * every entry, reads link targets and xattrs, and builds the node tree.
 * With a parent backup it looks each regular file up in the parent's tree
 * and takes size/mtime/ctime/inode matches from it without reading (the
 * racy-clean rule excepted).  Every other regular file is opened right away
 * and queued, with its fd, for the workers.
 */
#include "backup_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/pattern.h"
#include "bkr/store.h"

/* Take the parent's content when the file is unchanged (and not racy). */
static bool reuse_from_parent(bctx *c, bkr_dir *pdir, node *n)
{
	bkr_entry pe;
	const bkr_tree *leaf;
	uint32_t li;

	if (!pdir || !c->have_parent)
		return false;
	if (bkr_dir_find(pdir, n->name, n->name_len, &pe, &leaf, &li, NULL) < 0) {
		bkr_error_clear();
		return false;
	}
	if (pe.type != BKR_FT_FILE || pe.size != n->size || pe.mtime_ns != n->mtime_ns ||
	    pe.ctime_ns != n->ctime_ns || pe.inode != n->ino)
		return false;
	if (n->mtime_ns >= c->parent_start - BKR_BK_RACY_NS)
		return false;
	return bkr_bk_parent_take(c, n, &pe, leaf, li);
}

static int rel_set(bctx *c, size_t base, const char *name, size_t len, size_t *out)
{
	return bkr_pathbuf_set(&c->rel, base, name, len, out);
}

typedef struct {
	node *dir;
	int fd;
	size_t next;    /* next kid to consider for descent */
	bkr_dir *pdir;  /* the parent backup's contents of this directory */
	size_t rel_len;
} scan_frame;

/* Whether @p rel is excluded by the source's patterns or the run's. */
static bool excluded(const bctx *c, const bkr_source_spec *src, const char *rel)
{
	return (src->nexcludes && bkr_pattern_match(src->excludes, src->nexcludes, rel)) ||
	       (c->o->nexcludes && bkr_pattern_match(c->o->excludes, c->o->nexcludes, rel));
}

/* Whether the directory @p st is one never backed up (the repository, ...). */
static bool skipped_dir(const bctx *c, const struct stat *st)
{
	for (size_t i = 0; i < c->nskip; i++)
		if (c->skip[i].ino == st->st_ino && c->skip[i].dev == st->st_dev)
			return true;
	return false;
}

/*
 * The scan's open of @p n failed with @p e.  For want of descriptors
 * (EMFILE, ENFILE) the stores may cache idle ones (bkr_store_local_shed:
 * closed, 1, open again); else the files queued hold theirs until a worker
 * has read them: wait for that, and 1 (open again; a worker's failure
 * meanwhile is its error).  When none is held, BKR_EIO
 * naming @p n and the limit: a file or directory skipped because this
 * process ran out of descriptors would be left out of the backup for no
 * fault of its own.  0 for any other error (the caller's warning).
 */
/* open_failed's pauses for an open out of descriptors with none held: 1, 4, 16, 64 and 256 ms */
#define SCAN_FD_WAITS 5

/* Tests: BKR_FAULT="backup-emfile:N" fails the scan's N-th open (of a file,
 * a folder or its listing) with EMFILE: a shortage of a moment. */
static bool fault_emfile(void)
{
	if (bkr_io_fault("backup-emfile") == 0)
		return false;
	bkr_error_clear();
	errno = EMFILE;
	return true;
}

static int open_failed(bctx *c, const node *n, int e)
{
	struct rlimit rl;
	char *path;
	int err;

	if (e != EMFILE && e != ENFILE)
		return 0;
	if (bkr_store_local_shed_for(e))
		return 1;
	if ((err = bkr_bk_queue_drain(c)) != 0)
		return err;
	/* none queued: the other threads (the writer's publisher) may have
	 * cached one since */
	if (bkr_store_local_shed_for(e))
		return 1;
	/* or held one a moment (a pack's temporary, a connection): a few short
	 * pauses, then a shortage that stays is the one line below */
	if (c->fd_waits < SCAN_FD_WAITS) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (1L << (2 * c->fd_waits++)) * 1000000L };
		while (nanosleep(&ts, &ts) < 0)
			;
		return 1;
	}
	path = bkr_bk_node_path(n);
	if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
		err = bkr_error_set(BKR_EIO, "%s: cannot open: %s (%llu at once, ulimit -n): raise the limit or give %s",
				    path ? path : "?", strerror(e), (unsigned long long)rl.rlim_cur, "fewer --threads");
	else
		err = bkr_error_set(BKR_EIO, "%s: cannot open: %s", path ? path : "?", strerror(e));
	free(path);
	return err;
}

#define SCAN_REPLACED 1 /* scan_entry: the name was replaced between lstat and open */
#define SCAN_TRIES 4    /* scans of an entry whose name keeps being replaced */

/*
 * One entry @p nm of the directory of frame @p f: lstat it, read its link
 * target and xattrs, add its node, and take a regular file from the parent
 * or open and queue it.  Problems with the entry are warnings (it is left
 * out); only fatal errors are returned.  A regular file whose name leads to
 * another file at the open than at the lstat (renamed over meanwhile) is
 * taken back out, and SCAN_REPLACED returned so that it is scanned again;
 * the @p last time it is left out with a warning.  Its node and hardlink
 * group were the lstat's file: its later links would have had the content
 * of the file renamed over it.
 */
static int scan_entry(bctx *c, const bkr_source_spec *src, scan_frame *f, const char *nm, bool last)
{
	int err = 0;
	size_t nlen = strlen(nm), rl;
	if ((err = rel_set(c, f->rel_len, nm, nlen, &rl)) < 0)
		return err;
	if (excluded(c, src, c->rel.p))
		return 0;
	struct stat st;
	node *n = bkr_bk_node_new(c, f->dir, nm, nlen);
	if (!n)
		return bkr_error_oom();
	if (fstatat(f->fd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			bkr_bk_warn(c, n, "vanished during the scan, skipped");
		else
			bkr_bk_warn(c, n, "cannot stat, skipped: %s", strerror(errno));
		return 0;
	}
	bkr_bk_node_set_stat(n, &st);
	if (n->type == BKR_FT_DIR && skipped_dir(c, &st)) {
		bkr_log_info("backup", "%s: the repository, a tier or the log directory, not backed up", c->rel.p);
		return 0;
	}
	if (!n->type) {
		bkr_bk_warn(c, n, "unknown file type %o, skipped", st.st_mode & S_IFMT);
		return 0;
	}
	if (n->type != BKR_FT_DIR) {
		c->files_total++;
		if (n->type == BKR_FT_FILE)
			c->bytes_total += n->size;
	}
	n->user = bkr_bk_name(c->users, n->uid, false);
	n->group = bkr_bk_name(c->groups, n->gid, true);
	if (n->type == BKR_FT_SYMLINK) {
		size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 256;
		for (;;) {
			char *t = malloc(cap);
			if (!t)
				return bkr_error_oom();
			ssize_t r = readlinkat(f->fd, nm, t, cap);
			if (r < 0) {
				free(t);
				bkr_bk_warn(c, n, "cannot read link, skipped: %s", strerror(errno));
				break;
			}
			if ((size_t)r < cap) {
				n->target = (uint8_t *)t;
				n->target_len = (size_t)r;
				break;
			}
			free(t);
			cap *= 2;
		}
		if (!n->target)
			return 0;
	}
	if ((err = bkr_bk_read_xattrs(c, f->fd, nm, n)) < 0)
		return err;
	if (n->type != BKR_FT_DIR && n->nlink > 1) {
		node *first = bkr_bk_link_find_or_add(&c->links, n);
		if (!first) {
			err = bkr_error_oom();
			return err;
		}
		n->link_group = bkr_bk_link_key(n->dev, n->ino);
		if (first != n)
			n->alias = first;
	}
	if ((err = bkr_bk_node_add_kid(f->dir, n)) < 0)
		return err;
	if (n->type != BKR_FT_FILE || n->alias)
		return 0;
	if (reuse_from_parent(c, f->pdir, n)) {
		atomic_fetch_add(&c->files_done, 1);
		atomic_fetch_add(&c->bytes_done, n->size);
		return 0;
	}
	int ffd = -1;
	/* tests: BKR_FAULT="backup-open:N:stop" pauses between the N-th file's lstat and its open */
	(void)bkr_io_fault("backup-open");
	if ((err = bkr_bk_fd_room(c, n)) < 0)
		return err;
	do {
		if (fault_emfile())
			continue;
		if (c->noatime_ok) {
			ffd = openat(f->fd, nm, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | O_NOATIME);
			if (ffd < 0 && errno == EPERM)
				c->noatime_ok = false;
		}
		if (ffd < 0)
			ffd = openat(f->fd, nm, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	} while (ffd < 0 && (err = open_failed(c, n, errno)) == 1);
	if (err < 0)
		return err;
	struct stat ost;
	if (ffd < 0 && errno == ELOOP && fstatat(f->fd, nm, &ost, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(ost.st_mode))
		goto replaced; /* a symlink now (O_NOFOLLOW) */
	if (ffd < 0) {
		n->skip = true;
		if (errno == ENOENT)
			bkr_bk_warn(c, n, "vanished during the scan, skipped");
		else
			bkr_bk_warn(c, n, "cannot open, skipped: %s", strerror(errno));
		return 0;
	}
	if (fstat(ffd, &ost) < 0 || ost.st_ino != st.st_ino || ost.st_dev != st.st_dev || !S_ISREG(ost.st_mode)) {
		/* another file under this name since the lstat (a FIFO may even
		 * have the inode number of the file removed for it) */
		close(ffd);
	replaced:
		if (n->link_group)
			bkr_bk_link_remove(&c->links, n);
		n->link_group = 0;
		n->skip = true;
		if (last) {
			bkr_bk_warn(c, n, "replaced while being scanned %d times, skipped", SCAN_TRIES);
			return 0;
		}
		f->dir->nkids--; /* n, the last kid: out of the tree (c->all frees it) */
		c->files_total--;
		c->bytes_total -= n->size;
		return SCAN_REPLACED;
	}
	if ((err = bkr_bk_queue_file(c, n, ffd, &ost)) < 0)
		return err;
	bkr_bk_progress(c, c->rel.p, false);
	return 0;
}

/* Read the entries of the directory of frame @p f. */
static int scan_dir(bctx *c, const bkr_source_spec *src, scan_frame *f)
{
	DIR *d = NULL;
	struct dirent *de;
	int dfd, err = 0;

	if ((err = bkr_bk_fd_room(c, f->dir)) < 0)
		return err;
	while ((dfd = fault_emfile() ? -1 : dup(f->fd)) < 0 && (err = open_failed(c, f->dir, errno)) == 1)
		;
	if (err < 0)
		return err;
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		int e = errno; /* before close may change it */
		if (dfd >= 0)
			close(dfd);
		bkr_bk_warn(c, f->dir, "cannot list directory: %s", strerror(e));
		return 0;
	}
	c->scan_fds++;
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno)
				bkr_bk_warn(c, f->dir, "readdir: %s", strerror(errno));
			break;
		}
		const char *nm = de->d_name;
		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		for (int t = 1; (err = scan_entry(c, src, f, nm, t == SCAN_TRIES)) == SCAN_REPLACED; t++)
			;
		if (err < 0)
			break;
	}
	closedir(d); /* dfd */
	c->scan_fds--;
	return err;
}

/*
 * At a mount point (@p kid, open as @p fd): whether to read the filesystem
 * mounted there.  Not with one_file_system, and never a pseudo-filesystem;
 * the mount point itself stays, as an empty directory.
 */
static bool descend_mount(bctx *c, node *kid, int fd)
{
	const char *pseudo = c->o->one_file_system ? "another" : bkr_bk_pseudo_fs(fd, kid->dev);

	if (!pseudo)
		return true;
	char *p = bkr_bk_node_path(kid);
	bkr_log_info("backup", "%s: %s filesystem, contents not backed up", p ? p : "?", pseudo);
	free(p);
	return false;
}

/* Close one of the scan's open directories (c->scan_fds). */
static void dir_close(bctx *c, int fd)
{
	close(fd);
	c->scan_fds--;
}

/* A source that is a single file: the root is its directory, holding only it. */
static int scan_file_source(bctx *c, const bkr_source_spec *src, node *root, const bkr_id *parent_tree)
{
	const char *slash = strrchr(src->path, '/');
	char *dir = strndup(src->path, slash && slash != src->path ? (size_t)(slash - src->path) : 1);
	scan_frame f = { .dir = root, .fd = -1 };
	struct stat st;
	int err = 0;

	if (!dir)
		return bkr_error_oom();
	if ((err = bkr_bk_fd_room(c, root)) < 0)
		goto done;
	if ((f.fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		c->scan_fds++;
	if (f.fd < 0 || fstat(f.fd, &st) < 0) {
		err = bkr_error_set_errno(errno, "source '%s': cannot open %s", src->name, dir);
		goto done;
	}
	bkr_bk_node_set_stat(root, &st);
	root->user = bkr_bk_name(c->users, root->uid, false);
	root->group = bkr_bk_name(c->groups, root->gid, true);
	if (parent_tree && bkr_dir_open(&f.pdir, parent_tree, bkr_repo_load_tree, c->repo) < 0) {
		bkr_error_clear();
		f.pdir = NULL;
	}
	for (int t = 1; (err = scan_entry(c, src, &f, slash ? slash + 1 : src->path, t == SCAN_TRIES)) == SCAN_REPLACED; t++)
		;
	if (err < 0)
		goto done;
	if (!root->nkids)
		err = bkr_error_set(BKR_EINVAL, "source '%s': %s could not be read", src->name, src->path);
done:
	if (f.fd >= 0)
		dir_close(c, f.fd);
	bkr_dir_free(f.pdir);
	free(dir);
	return err;
}

/* Walk one source, building its node tree under @p root. */
static int scan_source(bctx *c, const bkr_source_spec *src, node *root, const bkr_id *parent_tree)
{
	scan_frame *stack = NULL;
	size_t depth = 0, cap = 0;
	int err = 0, fd;
	struct stat st;
	const char *pseudo;

	if (stat(src->path, &st) == 0 && !S_ISDIR(st.st_mode))
		return scan_file_source(c, src, root, parent_tree);
	if ((err = bkr_bk_fd_room(c, root)) < 0)
		return err;
	fd = open(src->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		c->scan_fds++;
	if (fd < 0) {
		err = bkr_error_set_errno(errno, "source '%s': cannot open %s", src->name, src->path);
		if (err == BKR_ENOTFOUND || errno == ENOTDIR)
			err = BKR_EINVAL;
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = bkr_error_set_errno(errno, "source '%s': fstat %s", src->name, src->path);
		dir_close(c, fd);
		return err;
	}
	if ((pseudo = bkr_bk_pseudo_fs(fd, st.st_dev))) {
		dir_close(c, fd);
		return bkr_error_set(BKR_EINVAL, "source '%s': %s is a %s filesystem, which is never backed up",
				     src->name, src->path, pseudo);
	}
	bkr_bk_node_set_stat(root, &st);
	root->type = BKR_FT_DIR;
	root->user = bkr_bk_name(c->users, root->uid, false);
	root->group = bkr_bk_name(c->groups, root->gid, true);
	if ((err = bkr_bk_read_xattrs(c, -1, src->path, root)) < 0) {
		dir_close(c, fd);
		return err;
	}

	cap = 64;
	if (!(stack = calloc(cap, sizeof(*stack)))) {
		dir_close(c, fd);
		return bkr_error_oom();
	}
	stack[0] = (scan_frame){ .dir = root, .fd = fd };
	if (parent_tree && bkr_dir_open(&stack[0].pdir, parent_tree, bkr_repo_load_tree, c->repo) < 0) {
		bkr_bk_warn(c, NULL, "source '%s': parent tree unreadable, reading everything: %s",
		      src->name, bkr_error_message());
		stack[0].pdir = NULL;
	}
	depth = 1;
	if ((err = scan_dir(c, src, &stack[0])) < 0)
		goto done;

	while (depth > 0) {
		scan_frame *f = &stack[depth - 1];
		node *kid = NULL;
		while (f->next < f->dir->nkids) {
			node *k = f->dir->kids[f->next++];
			if (k->type == BKR_FT_DIR && !k->skip) {
				kid = k;
				break;
			}
		}
		if (!kid) {
			dir_close(c, f->fd);
			bkr_dir_free(f->pdir);
			depth--;
			continue;
		}
		/* tests: BKR_FAULT="backup-opendir:N:stop" pauses before the N-th directory below a source is opened */
		(void)bkr_io_fault("backup-opendir");
		int kfd, e = 0;
		if ((err = bkr_bk_fd_room(c, kid)) < 0)
			goto done;
		while ((kfd = fault_emfile() ? -1
					     : openat(f->fd, (const char *)kid->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
		       (e = open_failed(c, kid, errno)) == 1)
			;
		if (kfd >= 0)
			c->scan_fds++;
		if (kfd < 0 && e < 0) {
			err = e;
			goto done;
		}
		if (kfd < 0) {
			kid->skip = true;
			if (errno == ENOENT)
				bkr_bk_warn(c, kid, "vanished during the scan, skipped");
			else
				bkr_bk_warn(c, kid, "cannot open directory, skipped: %s", strerror(errno));
			continue;
		}
		struct stat kst;
		if (fstat(kfd, &kst) == 0 && (kst.st_ino != kid->ino || kst.st_dev != kid->dev)) {
			/* another directory under this name since the lstat (renamed
			 * over): its entries are the ones walked, so its attributes
			 * are the ones kept, not the old one's (a mode 0700 kept on
			 * the entries of another directory, or the reverse) */
			if (skipped_dir(c, &kst)) {
				dir_close(c, kfd);
				kid->skip = true;
				continue;
			}
			bkr_bk_node_set_stat(kid, &kst);
			kid->user = bkr_bk_name(c->users, kid->uid, false);
			kid->group = bkr_bk_name(c->groups, kid->gid, true);
			bkr_bk_xattrs_free(kid->xattrs, kid->nxattrs);
			kid->xattrs = NULL;
			kid->nxattrs = 0;
			if ((err = bkr_bk_read_xattrs(c, kfd, ".", kid)) < 0) {
				dir_close(c, kfd);
				goto done;
			}
		}
		if (kid->dev != f->dir->dev && !descend_mount(c, kid, kfd)) {
			dir_close(c, kfd);
			continue;
		}
		if (depth == cap) {
			scan_frame *s = realloc(stack, cap * 2 * sizeof(*s));
			if (!s) {
				dir_close(c, kfd);
				err = bkr_error_oom();
				goto done;
			}
			stack = s;
			cap *= 2;
			f = &stack[depth - 1];
		}
		scan_frame *nf = &stack[depth];
		memset(nf, 0, sizeof(*nf));
		nf->dir = kid;
		nf->fd = kfd;
		if ((err = rel_set(c, f->rel_len, (const char *)kid->name, kid->name_len, &nf->rel_len)) < 0) {
			dir_close(c, kfd);
			goto done;
		}
		if (f->pdir) {
			bkr_entry pe;
			if (bkr_dir_find(f->pdir, kid->name, kid->name_len, &pe, NULL, NULL, NULL) == 0 &&
			    pe.type == BKR_FT_DIR) {
				if (bkr_dir_open(&nf->pdir, &pe.subtree, bkr_repo_load_tree, c->repo) < 0)
					nf->pdir = NULL;
			}
			bkr_error_clear();
		}
		depth++;
		if ((err = scan_dir(c, src, nf)) < 0)
			goto done;
	}
done:
	while (depth > 0) {
		dir_close(c, stack[depth - 1].fd);
		bkr_dir_free(stack[depth - 1].pdir);
		depth--;
	}
	free(stack);
	return err;
}

/* The directories never backed up: the repository and the options' skip_paths. */
static int skip_init(bctx *c)
{
	const bkr_backup_options *o = c->o;
	struct stat st;

	if (!(c->skip = calloc(o->nskip_paths + 1, sizeof(*c->skip))))
		return bkr_error_oom();
	for (size_t i = 0; i <= o->nskip_paths; i++) {
		const char *p = i < o->nskip_paths ? o->skip_paths[i] : bkr_repo_path(c->repo);
		if (p && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			c->skip[c->nskip].dev = st.st_dev;
			c->skip[c->nskip].ino = st.st_ino;
			c->nskip++;
		}
	}
	return 0;
}

int bkr_bk_scan(bctx *c)
{
	const bkr_backup_options *o = c->o;
	int err;

	if ((err = skip_init(c)) < 0)
		return err;
	if (!(c->roots = calloc(o->nsources, sizeof(*c->roots))))
		return bkr_error_oom();
	for (size_t i = 0; i < o->nsources; i++) {
		const bkr_source_spec *s = &o->sources[i];
		if (!(c->roots[i] = bkr_bk_node_new(c, NULL, s->name, strlen(s->name))))
			return bkr_error_oom();
		if ((err = scan_source(c, s, c->roots[i], bkr_bk_parent_tree(c, s))) < 0)
			return err;
	}
	return 0;
}
