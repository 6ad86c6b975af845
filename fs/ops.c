/** @file
 * The FUSE adapter of bkrfs: the low-level operation table, init, statfs
 * and the EROFS replies.  Each op resolves its inode through the inode
 * table (inode.c), asks the module that owns the work (node.c lookups,
 * dir.c listings, read.c reads, xattr.c attributes), which returns 0 or a
 * positive errno and knows nothing of requests, and replies exactly once.
 * Top-level nodes come from the catalog (catalog.c; the view is swapped by
 * the watcher under view_lock, never held during I/O); backup trees are
 * read through the directory cache and file data through the chunk cache
 * (cache.c), both of which load without holding any lock.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bkr/entry.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "dir.h"
#include "node.h"
#include "prefetch.h"
#include "read.h"
#include "xattr.h"


static struct bkrfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void fill_entry(const bkrfs_inode *i, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->attr = i->st;
	e->attr_timeout = i->timeout;
	e->entry_timeout = i->timeout;
}

/* ---- ops: lookup, forget, getattr, readlink -------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *dir, *i = NULL;
	struct fuse_entry_param e;
	int err;

	if (!(dir = bkrfs_itable_get(fs->itable, parent))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = bkrfs_node_lookup(fs, dir, name, true, &i);
	bkrfs_itable_put(fs->itable, dir);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fill_entry(i, &e);
	if (fuse_reply_entry(req, &e) != 0)
		bkrfs_itable_unlookup(fs->itable, i);
	bkrfs_itable_put(fs->itable, i);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	bkrfs_itable_forget(fs_of(req)->itable, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct bkrfs *fs = fs_of(req);

	for (size_t k = 0; k < count; k++)
		bkrfs_itable_forget(fs->itable, forgets[k].ino, forgets[k].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i = bkrfs_itable_get(fs->itable, ino);

	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	fuse_reply_attr(req, &i->st, i->timeout);
	bkrfs_itable_put(fs->itable, i);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i = bkrfs_itable_get(fs->itable, ino);

	if (!i) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!i->target)
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_readlink(req, i->target);
	bkrfs_itable_put(fs->itable, i);
}

/* ---- directories -------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_dirh *h;
	int err;

	if (fs->no_opendir) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking (dirh_open) */
		return;
	}
	if ((err = bkrfs_dirh_open(fs, ino, &h))) {
		fuse_reply_err(req, err);
		return;
	}
	fi->cache_readdir = bkrfs_dirh_tree(h);
	fi->keep_cache = bkrfs_dirh_tree(h);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		bkrfs_dirh_free(fs, h);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_dirh *h = (struct bkrfs_dirh *)(uintptr_t)fi->fh, *own = NULL;
	char *buf, *p;
	size_t rem = size;
	int err = 0;
	bool tree, delivered;
	uint64_t extra, total;
	bkrfs_lookups added; /* readdirplus: undone when the reply fails */

	if (!h && (err = bkrfs_dirh_open(fs, ino, &own))) { /* no opendir */
		fuse_reply_err(req, err == ENOENT ? EIO : err); /* see below */
		return;
	}
	h = h ? h : own;
	tree = bkrfs_dirh_tree(h);
	extra = h->report ? 1 : 0;
	total = tree ? h->count + extra : h->n;
	/* at most one entry per smallest entry's size (a one-byte name) */
	if (!(buf = malloc(size)) ||
	    bkrfs_lookups_init(&added, plus ? size / fuse_add_direntry_plus(req, NULL, 0, ".", NULL, 0) + 1 : 0)) {
		free(buf);
		bkrfs_dirh_free(fs, own);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	for (uint64_t o = (uint64_t)off; o < total + 2; o++) {
		struct stat st;
		struct fuse_entry_param fe;
		bkrfs_inode *child = NULL;
		char namebuf[NAME_MAX * 4 + 1];
		const char *name = NULL;
		size_t len, nl = 0;
		bkrfs_ino cino = 0;
		bkr_entry e;

		memset(&st, 0, sizeof(st));
		memset(&fe, 0, sizeof(fe));
		if (o < 2) {
			name = o == 0 ? "." : "..";
			st.st_ino = o == 0 ? h->dir->ino : (h->dir->parent ? h->dir->parent : h->dir->ino);
			st.st_mode = S_IFDIR;
			fe.attr = st;
		} else if (tree && extra && o == 2) {
			if ((err = bkrfs_node_lookup(fs, h->dir, "report.json", plus, &child)))
				break;
			name = "report.json";
		} else if (tree) {
			if ((err = bkrfs_dirh_entry(fs, h, o - 2 - extra, plus, &e, &child, &cino, &name, &nl)))
				break;
			if (nl >= sizeof(namebuf)) {
				bkrfs_itable_put(fs->itable, child);
				if (child && plus)
					bkrfs_itable_unlookup(fs->itable, child);
				continue;
			}
			memcpy(namebuf, name, nl);
			namebuf[nl] = 0;
			if (extra && !strcmp(namebuf, "report.json")) { /* the run's report has the name (node.h) */
				if (!h->report_alias[0]) {
					bkrfs_itable_put(fs->itable, child);
					if (child && plus)
						bkrfs_itable_unlookup(fs->itable, child);
					continue;
				}
				strcpy(namebuf, h->report_alias);
			}
			name = namebuf;
			st.st_ino = cino;
			st.st_mode = bkr_entry_mode_of_type(e.type);
		} else {
			name = h->names[o - 2];
			if (plus) {
				if ((err = bkrfs_node_lookup(fs, h->dir, name, true, &child))) {
					if (err == ENOENT) { /* vanished since opendir */
						err = 0;
						continue;
					}
					break;
				}
			} else {
				bkrfs_inode *t = NULL;
				st.st_mode = (mode_t)DTTOIF(h->types[o - 2]);
				if (bkrfs_node_lookup(fs, h->dir, name, false, &t) == 0) {
					st.st_ino = t->ino;
					bkrfs_itable_put(fs->itable, t);
				}
			}
		}
		if (child) {
			fill_entry(child, &fe);
			st = child->st;
		}
		if (plus)
			len = fuse_add_direntry_plus(req, p, rem, name, &fe, (off_t)(o + 1));
		else
			len = fuse_add_direntry(req, p, rem, name, &st, (off_t)(o + 1));
		if (len > rem || (child && plus && !bkrfs_lookups_add(&added, child))) {
			if (child && plus)
				bkrfs_itable_unlookup(fs->itable, child);
			bkrfs_itable_put(fs->itable, child);
			break;
		}
		bkrfs_itable_put(fs->itable, child);
		p += len;
		rem -= len;
	}
	/* A directory the look-ahead expects a reader to walk next: its files
	 * go into their page cache once the kernel has their inodes (after
	 * this reply).  Copied first: once replied, the handle may be released
	 * by another thread. */
	bool walk = plus && off == 0 && h->d && !err;
	bkr_id walk_tree = h->tree;
	bkrfs_ino walk_ino = h->dir->ino;
	/* glibc's readdir takes ENOENT from getdents for the end of the
	 * directory: a listing that cannot be made is EIO, never a short one */
	if (err == ENOENT)
		err = EIO;
	if (err && p == buf)
		delivered = fuse_reply_err(req, err) == 0;
	else
		delivered = fuse_reply_buf(req, buf, size - rem) == 0;
	bkrfs_lookups_done(fs->itable, &added, delivered);
	free(buf);
	bkrfs_dirh_free(fs, own);
	if (walk)
		bkrfs_prefetch_walk(fs, &walk_tree, walk_ino);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	bkrfs_dirh_free(fs_of(req), (struct bkrfs_dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ----------------------------------------------------------------- */

/* The inode and read state of @p ino for a read-type request, or false
 * after replying with the error. */
static bool file_req(fuse_req_t req, struct bkrfs *fs, fuse_ino_t ino, bkrfs_inode **i, struct bkrfs_file **f)
{
	int err;

	if (!(*i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return false;
	}
	if ((err = bkrfs_file_of(fs, *i, f))) {
		bkrfs_itable_put(fs->itable, *i);
		fuse_reply_err(req, err);
		return false;
	}
	return true;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	bkrfs_inode *i;
	int err;

	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops asking (see bkrfs_file_of) */
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = bkrfs_file_of(fs, i, &f);
	bkrfs_itable_put(fs->itable, i);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	struct bkrfs_read rd;
	bkrfs_inode *i;
	uint64_t pos = (uint64_t)off;
	int err;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!file_req(req, fs, ino, &i, &f))
		return;
	if (f->report) {
		if (pos >= f->report_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, (const char *)f->report + pos,
				       size < f->report_len - pos ? size : f->report_len - pos);
		bkrfs_itable_put(fs->itable, i);
		return;
	}
	if ((err = bkrfs_read_fill(fs, i, f, pos, size, &rd)))
		fuse_reply_err(req, err);
	else
		fuse_reply_iov(req, rd.iov, (int)rd.niov);
	bkrfs_read_done(fs, (bkrfs_ino)ino, f, &rd, !err);
	bkrfs_itable_put(fs->itable, i); /* keeps @p f alive until here */
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct bkrfs *fs = fs_of(req);
	struct bkrfs_file *f;
	bkrfs_inode *i;
	int64_t r;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (!file_req(req, fs, ino, &i, &f))
		return;
	if (f->report) {
		bkrfs_layout l;
		memset(&l, 0, sizeof(l));
		l.size = f->report_len;
		r = whence == SEEK_DATA ? bkrfs_layout_seek_data(&l, (uint64_t)off) :
		    whence == SEEK_HOLE ? bkrfs_layout_seek_hole(&l, (uint64_t)off) : -EINVAL;
	} else if (whence == SEEK_DATA) {
		r = bkrfs_layout_seek_data(&f->l, (uint64_t)off);
	} else if (whence == SEEK_HOLE) {
		r = bkrfs_layout_seek_hole(&f->l, (uint64_t)off);
	} else {
		r = -EINVAL;
	}
	bkrfs_itable_put(fs->itable, i);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}


/* ---- xattrs ----------------------------------------------------------------- */

static int reply_value(fuse_req_t req, size_t size, const void *val, size_t len)
{
	if (size == 0)
		return fuse_reply_xattr(req, len);
	if (size < len)
		return fuse_reply_err(req, ERANGE);
	return fuse_reply_buf(req, val, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i;
	uint8_t *val;
	size_t len;
	int err;

	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((err = bkrfs_xattr_get(fs, i, name, &val, &len)))
		fuse_reply_err(req, err);
	else
		reply_value(req, size, val, len);
	free(val);
	bkrfs_itable_put(fs->itable, i);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct bkrfs *fs = fs_of(req);
	bkrfs_inode *i;
	char *names;
	size_t len;
	int err;

	if (!(i = bkrfs_itable_get(fs->itable, ino))) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((err = bkrfs_xattr_list(fs, i, &names, &len)))
		fuse_reply_err(req, err);
	else
		reply_value(req, size, names, len);
	free(names);
	bkrfs_itable_put(fs->itable, i);
}

/* ---- the rest ---------------------------------------------------------------- */

/*
 * Size 0, nothing free, no inodes: what borg's and restic's mounts report.
 * A backup mount holds no space of its own (its data is the repository's,
 * on another filesystem); reporting the repository's size as used with
 * nothing free made df show it 100 % full, which trips disk alerts.  df
 * hides a filesystem of size 0 (df -a shows it, with "-" for use).
 */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = BKRFS_BLKSIZE;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct bkrfs *fs = userdata;

	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		fs->no_open = true;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		fs->no_opendir = true;
	/* No FUSE_CAP_POSIX_ACL: with it the kernel would cache ACLs, but ask
	 * for every inode's once (a round trip per file of a cold `ls -l`) and
	 * enforce them, where an EOPNOTSUPP from a backup without ACLs would
	 * fail permission checks.  Without it getxattr of the ACL names comes
	 * here, and a backup without ACLs answers EOPNOTSUPP, which `ls`
	 * remembers per device (namespace_absent). */
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (bkr_io_fault("fs-readdirplus") < 0) { /* taken for a kernel without it: plain readdir (tests) */
		bkr_error_clear();
		conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS;
	}
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
	conn->max_write = 1u << 20;
	conn->max_readahead = conn->max_readahead < (1u << 20) ? conn->max_readahead : (1u << 20);
	conn->max_read = 1u << 20;
}

/* every write-type operation */
static void erofs_entry(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			 const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			    struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void erofs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
				  struct fuse_file_info *fi_out, size_t len, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops bkrfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = erofs_setattr,
	.readlink = op_readlink,
	.mknod = erofs_entry,
	.mkdir = erofs_mkdir,
	.unlink = erofs_name,
	.rmdir = erofs_name,
	.symlink = erofs_symlink,
	.rename = erofs_rename,
	.link = erofs_link,
	.open = op_open,
	.read = op_read,
	.write = erofs_write,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = erofs_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = erofs_removexattr,
	.access = op_access,
	.create = erofs_create,
	.fallocate = erofs_fallocate,
	.copy_file_range = erofs_copy_file_range,
	.lseek = op_lseek,
};
