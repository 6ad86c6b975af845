/** @file
 * Restoring a backup into a target directory (restore.h).
 *
 * The backup is walked depth-first (bkr_walk with BKR_WALK_POST); a stack of
 * directory fds follows the walk so every entry is created relative to its
 * parent's fd with O_NOFOLLOW / O_EXCL and nothing can escape the target
 * through a symlink; attributes are set through descriptors (apply_meta).
 * New regular files are made without a name (O_TMPFILE) and linked to
 * their names when complete; other non-directories, files that replace
 * one, and files on a filesystem without O_TMPFILE are made under temporary
 * names and renamed into place (restore_leaf).  Directory metadata is applied on the way
 * back up, after the contents, so their mtimes survive.  A file that fails
 * (missing or corrupt chunk, content hash mismatch, write error) is removed,
 * reported and counted; the restore goes on.
 *
 * File content is restored in parallel: the walking thread creates each
 * regular file and puts it in the line of files whose chunks the worker
 * threads (one per CPU) take in turn (take: a big file does not hold up the
 * walk or the small files after it); they read, decrypt, decompress and
 * check the chunks in any order, and whichever thread completes the file's next chunk writes it, so
 * each file is written and hashed in order, one writer at a time.  The
 * thread that puts a file's last chunk checks the content hash, sets the
 * attributes and renames the file into place.  A directory's metadata waits
 * until its files are done; the memory in flight is bounded (RESTORE_BUDGET
 * bytes of chunks, RESTORE_FILE_BUDGET of one file, RESTORE_MAX_FILES open
 * files, fewer under a low limit of open files: files_drain).  Hardlinked files are
 * finished before the walk goes on (later links need the first in place).
 * Reports, counters and progress are under one lock (rmu), the line of
 * files and the files' chunk slots under another (mu); report is never called with mu
 * held.
 */
#include "bkr/digest.h"
#include "bkr/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#include "bkr/store.h"
#include "bkr/utf8.h"
#include "bkr/walk.h"

/* Chunk bytes taken by the workers and not yet written, and files open at once. */
#define RESTORE_BUDGET (64u << 20)
/* ... of one file (the rest of the budget goes to the files after it), and read ahead of its next chunk */
#define RESTORE_FILE_BUDGET (RESTORE_BUDGET / 2)
#define RESTORE_MAX_FILES 64
#define RESTORE_MAX_THREADS 64
/* Written bytes of a big file handed to the disk at a time (write-behind). */
#define RESTORE_WRITE_BEHIND (64u << 20)
/* Bytes of a pack read ahead of an advised chunk, for the chunks after it (bkr_repo_advise_blob_ahead). */
#define RESTORE_ADVISE_AHEAD (1u << 20)

typedef struct {
	uint64_t group;
	char *path;     /* first restored link, relative to the target */
	dev_t dev;      /* ... and the file it is, checked before linking to it */
	ino_t ino;
} link_ent;

/*
 * An owner or group name and the id it resolved to (found) on this system:
 * looking names up costs opening /etc/passwd or /etc/group (nsswitch) per
 * call, and a tree has few distinct names.
 */
#define RESTORE_NAME_MEMO 16
typedef struct {
	char name[33];      /* names longer than 32 bytes are not remembered */
	bool found;
	uint32_t id;
} name_memo;

typedef struct {
	name_memo e[RESTORE_NAME_MEMO];
	size_t n, next;     /* used, and the one replaced when full */
} name_memos;

/* A directory restore made on the way to a PATH: its attributes are set once every PATH is in (set_made). */
struct made_dir {
	int fd;
	char *path;         /* in the backup */
};

/* Whether root's chown to an owner and group is refused on a filesystem (chown_refused). */
typedef struct {
	dev_t dev;
	uid_t uid;
	gid_t gid;
	int err;            /* 0, or the errno refusing it */
} chown_memo;

typedef struct {
	bkr_repo *repo;
	const bkr_restore_options *o;
	const char *backup_id;
	bkr_restore_stats st;
	int tfd;            /* the target directory (in place: the source's); -1 in a dry run when absent */
	bool root;
	uid_t euid;
	gid_t egid;
	bool overwrite;     /* o->overwrite, or in place */
	bool classify;      /* dry run or in place: compare each entry with what is on disk */
	const char *disk_root; /* where on-disk paths start: the target, or in place the source's path */
	size_t strip;       /* in place: length of the source's name, cut from backup paths */
	const bkr_manifest_source *src; /* in place: the source c->tfd belongs to */
	bool file_source;   /* ... a single file, kept as a directory holding it: c->tfd is the file's directory */
	char *src_dir;      /* ... then that directory's path (owned) */
	bool have_repo;     /* the repository's directory, never restored into */
	dev_t repo_dev;
	ino_t repo_ino;
	int first_err;
	bool corrupt;
	char *first_msg; /**< the first error, whole (a path of any length) */
	link_ent *links;
	size_t nlinks, linkcap;
	name_memos users, groups; /* owner_ids' lookups (the walking thread) */
	struct made_dir *made; /* directories made on the way to a PATH (restore_path), for set_made */
	size_t nmade, madecap;
	chown_memo chowns[RESTORE_NAME_MEMO]; /* chown_refused's answers (the walking thread) */
	size_t nchowns, next_chown; /* used, and the one replaced when full */
	bool no_tmpfile;    /* the filesystem refused O_TMPFILE: named temporaries from then on */
	char *starved;      /* the walk found no descriptor to spare (fd_starved): the restore's error */
	size_t depth;       /* the walk's, below the restore's root (the walking thread) */
	size_t fd_far;      /* a depth below which fd_room need not look (fd_far_below) */
	int64_t last_progress;
	bkr_restore_progress prog;
	pthread_mutex_t rmu;       /* st, first_*, corrupt, prog, last_progress, the callbacks */
	/* the workers; the line of files and every rfile's slots, next and writing under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv_job;     /* a file joined the line, budget was freed, or stop */
	pthread_cond_t cv_done;    /* a file finished */
	pthread_t *threads;
	int nthreads;              /* 0: every chunk is read by the walking thread */
	bool stop;
	struct rfile *rhead, *rtail; /* files with chunks not yet taken by a worker, in turn */
	uint64_t inflight_bytes;
	size_t inflight_files;
	size_t max_files;          /* RESTORE_MAX_FILES, fewer under a low RLIMIT_NOFILE (mu) */
	bkr_repo_advice advice;    /* what the walking thread advised last (file_submit) */
} rctx;

/* Owner, mode, times and xattrs to set on an object, copied out of its tree. */
typedef struct {
	uint8_t type;
	uint32_t mode;
	uid_t uid;
	gid_t gid;
	int64_t mtime_ns;
	bool owned;         /* the object has this owner and group already: no chown */
	bkr_xattr *xs;      /* names and inline values point into xbuf */
	size_t nx;
	uint8_t *xbuf;
} rmeta;

/*
 * A directory restored into: its fd, and how many of its files are in flight
 * (under mu).  A fresh one was made by this restore (mode 0700, ours): nothing
 * is in it but what the restore puts there, and when @p mine its group is our
 * group too, so what is made in it is ours and our group's whatever the
 * group rules (setgid directories, the grpid mount option).  Once the walk
 * is past it (@p closed, under mu) its metadata waits in @p m for its last
 * file in flight, whose finisher sets it (dir_finish), so the walk goes on.
 */
typedef struct {
	int fd;
	size_t pending;
	bool fresh;
	bool mine;
	bool closed;
	bool meta;          /* m is to be set: the walk saw all of it, not a dry run */
	rmeta m;
	char *path;         /* for messages (m's) */
} rdir;

typedef struct {
	uint8_t *data;
	size_t len;
	uint8_t state;      /* 0 pending, 1 read (data), 2 failed or skipped */
} rslot;

/* A regular file being restored by the workers. */
typedef struct rfile {
	rdir *dir;
	int fd;             /* open on the temporary */
	char tmp[64];       /* its name; "" when it has none (O_TMPFILE) */
	char name[257];
	char *path;
	char *what;         /* "backup ID: path", for messages */
	bool replace;
	bool keep;          /* the walking thread waits for it and frees it (hardlinks) */
	uint64_t size;
	rmeta m;
	bkr_walk_file *wf;
	uint64_t counted;   /* bytes counted into the progress */
	uint64_t wend;      /* the end of what was written (by its one writer at a time) */
	uint64_t wkick;     /* ... and of what was handed to the disk (write-behind) */
	/* under mu */
	rslot *slots;
	size_t nslots, next;
	size_t taken;       /* chunks taken by the workers (in order) */
	size_t advised;     /* chunks advised to the disk: a window ahead of the taken ones */
	uint64_t taken_bytes, advised_bytes;
	uint64_t inflight;  /* bytes of its chunks taken and not yet written */
	struct rfile *rnext; /* in c's turn of files with chunks to take */
	bool writing;
	bool done;
	int err;            /* the first error: the chunks still to come are skipped */
	char *msg;
	/* set by the finisher */
	bool placed;
	struct stat st;
} rfile;

static void report(rctx *c, bool error, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void report(rctx *c, bool error, int code, const char *path, const char *fmt, ...)
{
	char *owned;
	const char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&owned, fmt, ap) < 0)
		owned = NULL;
	va_end(ap);
	msg = owned ? owned : "out of memory"; /* still reported */
	if (!*path)
		path = "/"; /* the backup's root */
	pthread_mutex_lock(&c->rmu);
	if (error) {
		c->st.errors++;
		if (code == BKR_ECORRUPT || code == BKR_ENOTFOUND)
			c->corrupt = true;
		if (!c->first_err) {
			c->first_err = code < 0 ? code : BKR_ERROR;
			if (asprintf(&c->first_msg, "backup %s: %s: %s", c->backup_id ? c->backup_id : "?", path, msg) < 0)
				c->first_msg = NULL;
		}
		bkr_log_error("restore", "backup %s: %s: %s", c->backup_id ? c->backup_id : "?", path, msg);
	} else {
		c->st.warnings++;
		bkr_log_warn("restore", "backup %s: %s: %s", c->backup_id ? c->backup_id : "?", path, msg);
	}
	if (c->o->report)
		c->o->report(c->o->report_ctx, error, path, msg);
	pthread_mutex_unlock(&c->rmu);
	free(owned);
}

/*
 * @p files files and @p bytes bytes of regular files below @p path were
 * gone through (whatever became of them); the callback for every file done,
 * and for bytes alone at most every 250 ms (the caller limits what it draws).
 */
static void progress_add(rctx *c, const char *path, uint64_t files, uint64_t bytes)
{
	if (!c->o->progress)
		return;
	pthread_mutex_lock(&c->rmu);
	c->prog.files_done += files;
	c->prog.bytes_done += bytes;
	int64_t t = bkr_clock_mono_ns();
	if (files || t - c->last_progress >= 250000000LL) {
		c->last_progress = t;
		c->prog.current = path;
		c->o->progress(c->o->progress_ctx, &c->prog);
		c->prog.current = NULL;
	}
	pthread_mutex_unlock(&c->rmu);
}

/* A non-directory entry @p e was gone through. */
static void progress(rctx *c, const char *path, const bkr_entry *e)
{
	if (e->type == BKR_FT_FILE)
		progress_add(c, path, 1, e->size);
	else
		progress_add(c, path, 0, 0);
}

static const char *cname(const uint8_t *p, size_t n, char *buf, size_t cap)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

/*
 * Look @p name up in @p m: true when remembered (@p *found, @p *id set).
 * Otherwise the caller resolves it and name_remember records the answer.
 */
static bool name_recall(const name_memos *m, const char *name, bool *found, uint32_t *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].name, name) == 0) {
			*found = m->e[i].found;
			*id = m->e[i].id;
			return true;
		}
	return false;
}

static void name_remember(name_memos *m, const char *name, bool found, uint32_t id)
{
	if (strlen(name) >= sizeof(m->e[0].name))
		return;
	name_memo *e = &m->e[m->n < RESTORE_NAME_MEMO ? m->n++ : m->next++ % RESTORE_NAME_MEMO];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->found = found;
	e->id = id;
}

/* The id of user (or, @p group, group) @p name on this system, remembered in @p m; false when it has none. */
static bool name_id(name_memos *m, const char *name, bool group, uint32_t *id)
{
	char buf[4096];
	bool found;

	if (name_recall(m, name, &found, id))
		return found;
	if (group) {
		struct group gr, *res = NULL;
		found = getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res;
		*id = found ? (uint32_t)res->gr_gid : 0;
	} else {
		struct passwd pw, *res = NULL;
		found = getpwnam_r(name, &pw, buf, sizeof(buf), &res) == 0 && res;
		*id = found ? (uint32_t)res->pw_uid : 0;
	}
	name_remember(m, name, found, *id);
	return found;
}

/* The owner and group to give entry @p e: by name (remembered) unless numeric ids. The walking thread. */
static void owner_ids(rctx *c, const bkr_entry *e, uid_t *uid, gid_t *gid)
{
	char nm[256];
	uint32_t id;

	*uid = e->uid;
	*gid = e->gid;
	if (c->o->numeric_ids)
		return;
	if (e->user_len && name_id(&c->users, cname(e->user, e->user_len, nm, sizeof(nm)), false, &id))
		*uid = (uid_t)id;
	if (e->group_len && name_id(&c->groups, cname(e->group, e->group_len, nm, sizeof(nm)), true, &id))
		*gid = (gid_t)id;
}

/* "/proc/self/fd/N": names the object @p fd holds itself, not a path that could be swapped. */
static void fd_path(char *buf, size_t cap, int fd)
{
	snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

static void meta_free(rmeta *m)
{
	free(m->xs);
	free(m->xbuf);
	m->xs = NULL;
	m->xbuf = NULL;
	m->nx = 0;
}

/* Whether an object made in @p d is owned by @p m's owner and group (then it needs no chown). */
static bool owned_in(const rctx *c, const rdir *d, const rmeta *m)
{
	return d && d->fresh && d->mine && m->uid == c->euid && m->gid == c->egid;
}

/*
 * What meta_apply sets for entry @p e (@p leaf, @p li: its xattrs), copied
 * so that it outlives the tree: owner resolved by name (unless numeric ids),
 * xattr names and inline values; @p d: the directory the object was made
 * in, when that is known (NULL otherwise), which may spare the chown.  <0
 * only when out of memory.
 */
static int meta_take(rctx *c, rmeta *m, const bkr_entry *e, const bkr_tree *leaf, uint32_t li, const rdir *d)
{
	bkr_xattr *xs = NULL;
	size_t nx = 0, total = 0, used = 0;

	memset(m, 0, sizeof(*m));
	m->type = e->type;
	m->mode = e->mode;
	m->mtime_ns = e->mtime_ns;
	owner_ids(c, e, &m->uid, &m->gid);
	m->owned = owned_in(c, d, m);
	if (!leaf || bkr_tree_xattrs(leaf, li, &xs, &nx) < 0) {
		bkr_error_clear();
		return 0;
	}
	for (size_t i = 0; i < nx; i++)
		total += xs[i].name_len + (xs[i].in_blob ? 0 : xs[i].value_len);
	if (nx && !(m->xbuf = malloc(total ? total : 1))) {
		free(xs);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < nx; i++) {
		memcpy(m->xbuf + used, xs[i].name, xs[i].name_len);
		xs[i].name = m->xbuf + used;
		used += xs[i].name_len;
		if (!xs[i].in_blob && xs[i].value_len) {
			memcpy(m->xbuf + used, xs[i].value, xs[i].value_len);
			xs[i].value = m->xbuf + used;
			used += xs[i].value_len;
		}
	}
	m->xs = xs;
	m->nx = nx;
	return 0;
}

/* The warning of an object that keeps its owner (@p uid:@p gid not set) and so not all its set-ID bits. */
static void setid_warn(rctx *c, const char *path, uid_t uid, gid_t gid)
{
	report(c, false, 0, path, "owner %u:%u not restored%s; set-ID bits not restored", (unsigned)uid,
	       (unsigned)gid, c->root ? "" : " (not root)");
}

/* The warning of an object root's chown (with @p err) left ours, so also without its set-ID bits when @p dropped. */
static void chown_warn(rctx *c, const char *path, int err, bool dropped)
{
	report(c, false, 0, path, "chown: %s%s", strerror(err), dropped ? "; set-ID bits not restored" : "");
}

/*
 * Owner, xattrs, mode, times (@p m) of the object @p fd refers to.  With
 * @p opath the fd is an O_PATH descriptor (symlinks, fifos, devices: never
 * opened for I/O) and calls that refuse one go through /proc/self/fd/N,
 * which resolves to the object itself.  Nothing here takes a name.  Any
 * thread.
 */
static void meta_apply(rctx *c, int fd, bool opath, const char *path, const rmeta *m)
{
	bool is_link = m->type == BKR_FT_SYMLINK;
	mode_t mode = m->mode & 07777;
	bool dropped = false;
	int chown_err = 0;
	char ppath[64];
	int r;

	fd_path(ppath, sizeof(ppath), fd);
	if (c->root && !m->owned &&
	    (opath ? fchownat(fd, "", m->uid, m->gid, AT_EMPTY_PATH) : fchown(fd, m->uid, m->gid)) < 0)
		chown_err = errno;
	if (mode & 06000) {
		/* an object whose owner or group is not the recorded one (not
		 * root: it is ours; the chown failed) keeps no set-ID bit of it:
		 * it would be set-ID us */
		struct stat st;
		mode_t keep = bkr_entry_setid_allowed(mode, m->uid, m->gid, fstat(fd, &st) == 0 ? &st : NULL);
		dropped = keep != mode;
		mode = keep;
	}
	if (chown_err)
		chown_warn(c, path, chown_err, dropped);
	else if (dropped)
		setid_warn(c, path, m->uid, m->gid);
	for (size_t i = 0; i < m->nx; i++) {
		const bkr_xattr *x = &m->xs[i];
		char xn[256];
		uint8_t *val = NULL;
		size_t vlen = 0;
		cname(x->name, x->name_len, xn, sizeof(xn));
		if (x->in_blob) {
			if (bkr_repo_read_blob(c->repo, &x->blob, BKR_BLOB_DATA, &val, &vlen) < 0) {
				report(c, false, 0, path, "xattr %s: %s", xn, bkr_error_message());
				continue;
			}
		}
		const void *v = x->in_blob ? (const void *)val : (const void *)x->value;
		size_t vl = x->in_blob ? vlen : x->value_len;
		r = opath ? setxattr(ppath, xn, v, vl, 0) : fsetxattr(fd, xn, v, vl, 0);
		if (r < 0)
			report(c, false, 0, path, "xattr %s: %s", xn, strerror(errno));
		free(val);
	}
	if (!is_link) {
		r = opath ? chmod(ppath, mode) : fchmod(fd, mode);
		if (r < 0)
			report(c, false, 0, path, "chmod: %s", strerror(errno));
	}
	struct timespec ts[2];
	ts[0] = ts[1] = bkr_clock_timespec(m->mtime_ns);
	r = opath ? utimensat(fd, "", ts, AT_EMPTY_PATH) : futimens(fd, ts);
	if (r < 0)
		report(c, false, 0, path, "set times: %s", strerror(errno));
}

/*
 * meta_take and meta_apply at once (the walking thread); @p d: the directory
 * @p fd was made in, when that is known (NULL otherwise).
 */
static void apply_meta(rctx *c, int fd, bool opath, const char *path, const bkr_entry *e,
		       const bkr_tree *leaf, uint32_t li, const rdir *d)
{
	rmeta m;
	if (meta_take(c, &m, e, leaf, li, d) < 0) {
		report(c, true, BKR_ENOMEM, path, "attributes: out of memory");
		return;
	}
	meta_apply(c, fd, opath, path, &m);
	meta_free(&m);
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
	if ((st.st_mode & S_IFMT) != type || st.st_nlink != 1 || st.st_uid != c->euid ||
	    ((type == S_IFCHR || type == S_IFBLK) && st.st_rdev != rdev)) {
		report(c, true, BKR_EEXISTS, path,
		       "replaced by something else while being restored; its attributes were not set");
		close(fd);
		return -1;
	}
	return fd;
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

/* Where backup path @p path is on disk, relative to the target fd ("" = the target itself). */
static const char *disk_rel(const rctx *c, const char *path)
{
	if (c->strip)
		path += strlen(path) < c->strip ? strlen(path) : c->strip;
	while (*path == '/')
		path++;
	return path;
}

/* Count @p k for @p path and tell the caller where on disk it is. */
static void note_change(rctx *c, bkr_restore_change k, const char *path)
{
	char disk[8192];
	const char *rel = disk_rel(c, path);
	size_t n = strlen(c->disk_root);

	if (k == BKR_RESTORE_NEW)
		c->st.new_entries++;
	else if (k == BKR_RESTORE_CHANGED)
		c->st.changed++;
	else
		c->st.unchanged++;
	if (!c->o->change)
		return;
	if (!*rel)
		snprintf(disk, sizeof(disk), "%s", c->disk_root);
	else
		snprintf(disk, sizeof(disk), "%s%s%s", c->disk_root, n && c->disk_root[n - 1] == '/' ? "" : "/", rel);
	c->o->change(c->o->change_ctx, k, disk);
}

/* Whether the content of regular file @p fd (O_PATH) hashes to @p want. */
static bool same_content(int fd, const bkr_entry *e)
{
	char pp[64];
	bool same = false;
	int rfd;
	bkr_id got;

	fd_path(pp, sizeof(pp), fd);
	if ((rfd = open(pp, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return false;
	if (bkr_digest_fd(rfd, e->sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN, &got, NULL) == 0)
		same = bkr_id_cmp(&got, &e->content) == 0;
	else
		bkr_error_clear();
	close(rfd);
	return same;
}

/* Whether the object @p fd (any kind) has exactly the entry's xattrs. */
static bool same_xattrs(rctx *c, int fd, const bkr_tree *leaf, uint32_t li)
{
	char pp[64], list[65536];
	bkr_xattr *xs = NULL;
	size_t nx = 0, nlive = 0;
	bool same = false;
	ssize_t ln;

	fd_path(pp, sizeof(pp), fd);
	if ((ln = listxattr(pp, list, sizeof(list))) < 0)
		ln = 0;
	for (ssize_t i = 0; i < ln; i += (ssize_t)strlen(list + i) + 1)
		nlive++;
	if (!leaf || bkr_tree_xattrs(leaf, li, &xs, &nx) < 0) {
		bkr_error_clear();
		return nlive == 0;
	}
	if (nx != nlive)
		goto done;
	for (size_t i = 0; i < nx; i++) {
		char xn[256];
		uint8_t *val = NULL, *live = NULL;
		size_t vlen = xs[i].value_len;
		cname(xs[i].name, xs[i].name_len, xn, sizeof(xn));
		if (xs[i].in_blob && bkr_repo_read_blob(c->repo, &xs[i].blob, BKR_BLOB_DATA, &val, &vlen) < 0) {
			bkr_error_clear();
			goto done;
		}
		const void *v = xs[i].in_blob ? (const void *)val : (const void *)xs[i].value;
		bool ok = (live = malloc(vlen + 1)) && getxattr(pp, xn, live, vlen + 1) == (ssize_t)vlen &&
			  memcmp(live, v, vlen) == 0;
		free(live);
		free(val);
		if (!ok)
			goto done;
	}
	same = true;
done:
	free(xs);
	return same;
}

static link_ent *link_find(rctx *c, uint64_t group);
static void link_add(rctx *c, uint64_t group, const char *path, const struct stat *st);

static int chown_refused(rctx *c, int dirfd, dev_t dev, uid_t uid, gid_t gid);

/*
 * Compare entry @p e with the object @p fd (O_PATH or open) in directory
 * @p pfd: UNCHANGED when type, mode, owner (as root, who sets it), mtime,
 * size and content (the SHA-256 of what is there), symlink target, device
 * and xattrs all match, else CHANGED.  The owner and mode are the ones
 * restore would set: the owner is not compared when root's chown to it is
 * refused on that filesystem (chown_refused), and the mode is without a
 * set-ID bit whose owner or group the object does not have (not root,
 * restore sets none; such a refused chown: bkr_entry_setid_allowed), else
 * a restore run again would rewrite it every time; such an object,
 * unchanged, is warned of still (a directory by its meta_apply).  A
 * hardlinked file is unchanged only when it is the group's file already;
 * the first of a group records it.
 */
static bkr_restore_change classify_fd(rctx *c, int pfd, int fd, const char *path, const bkr_entry *e,
				      const bkr_tree *leaf, uint32_t li)
{
	struct stat st;
	link_ent *l = NULL;
	bool same = false, dropped = false;
	int owner_err = 0;
	uid_t uid;
	gid_t gid;

	owner_ids(c, e, &uid, &gid);
	if (fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != bkr_entry_mode_of_type(e->type))
		goto done;
	if (e->type != BKR_FT_SYMLINK) {
		mode_t want = bkr_entry_setid_allowed(e->mode & 07777, uid, gid, &st);
		dropped = want != (e->mode & 07777);
		if ((st.st_mode & 07777) != want)
			goto done;
	}
	if (c->root && (st.st_uid != uid || st.st_gid != gid) &&
	    !(owner_err = chown_refused(c, pfd, st.st_dev, uid, gid)))
		goto done;
	if ((int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != e->mtime_ns)
		goto done;
	if (e->type == BKR_FT_FILE) {
		if ((uint64_t)st.st_size != e->size)
			goto done;
		if (e->link_group && (l = link_find(c, e->link_group))) {
			same = st.st_dev == l->dev && st.st_ino == l->ino;
			goto done;
		}
		if (!same_content(fd, e))
			goto done;
	} else if (e->type == BKR_FT_SYMLINK) {
		char t[4097];
		ssize_t n = readlinkat(fd, "", t, sizeof(t));
		if (n < 0 || (size_t)n != e->target_len || memcmp(t, e->target, (size_t)n) != 0)
			goto done;
	} else if (e->type == BKR_FT_CHR || e->type == BKR_FT_BLK) {
		if (st.st_rdev != (dev_t)e->rdev)
			goto done;
	}
	same = same_xattrs(c, fd, leaf, li);
done:
	if (e->type == BKR_FT_FILE && e->link_group && !l) {
		/* the group's file: this one when it stays, else the one written (or, in a dry run, none) */
		struct stat none = { 0 };
		if (same)
			link_add(c, e->link_group, disk_rel(c, path), &st);
		else if (c->o->dry_run)
			link_add(c, e->link_group, "", &none);
	}
	if (same && e->type != BKR_FT_DIR && !c->o->dry_run) {
		if (owner_err)
			chown_warn(c, path, owner_err, dropped);
		else if (dropped)
			setid_warn(c, path, uid, gid);
	}
	return same ? BKR_RESTORE_UNCHANGED : BKR_RESTORE_CHANGED;
}

/* The same for @p name in @p dirfd (-1: in a directory that does not exist); NEW when nothing is there. */
static bkr_restore_change classify(rctx *c, int dirfd, const char *name, const char *path, const bkr_entry *e,
				   const bkr_tree *leaf, uint32_t li)
{
	int fd;
	if (dirfd < 0)
		return BKR_RESTORE_NEW;
	if ((fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? BKR_RESTORE_NEW : BKR_RESTORE_CHANGED;
	bkr_restore_change k = classify_fd(c, dirfd, fd, path, e, leaf, li);
	close(fd);
	return k;
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

/* A fresh temporary name (BKR_RESTORE_TMP_PREFIX and 16 random hex digits) in @p tmp; -1 with errno. */
static int tmp_name(char *tmp, size_t cap)
{
	uint8_t rnd[8];
	if (bkr_random_bytes(rnd, sizeof(rnd)) < 0) {
		errno = EIO;
		return -1;
	}
	size_t n = (size_t)snprintf(tmp, cap, "%s", BKR_RESTORE_TMP_PREFIX);
	for (size_t i = 0; i < sizeof(rnd) && n + 3 <= cap; i++, n += 2)
		snprintf(tmp + n, cap - n, "%02x", rnd[i]);
	return 0;
}

/*
 * Create entry @p e under a fresh temporary name (written to @p tmp) in
 * @p dirfd: a regular file, open for writing, mode 0600 (returns its fd); a
 * hardlink to the file @p link_fd holds (an O_PATH fd; returns 0); a
 * symlink to @p target, a fifo or a device node, mode 0600 (returns 0);
 * with @p e NULL a directory, mode 0700 (returns 0).  -1 with errno.
 */
static int create_tmp(int dirfd, char *tmp, size_t cap, const bkr_entry *e, int link_fd, const char *target)
{
	for (int tries = 0; tries < 64; tries++) {
		char pp[64];
		int r;
		if (tmp_name(tmp, cap) < 0)
			return -1;
		if (!e) {
			r = mkdirat(dirfd, tmp, 0700);
		} else if (link_fd >= 0) {
			fd_path(pp, sizeof(pp), link_fd);
			r = linkat(AT_FDCWD, pp, dirfd, tmp, AT_SYMLINK_FOLLOW);
		} else if (e->type == BKR_FT_FILE) {
			r = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		} else if (e->type == BKR_FT_SYMLINK) {
			r = target ? symlinkat(target, dirfd, tmp) : (errno = EINVAL, -1);
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
 * A new regular file in @p dirfd without a name (O_TMPFILE, mode 0600, open
 * for writing; @p tmp is set to ""): it is linked to its name only when
 * complete (place), one change of the directory instead of a create and a
 * rename, and a killed restore leaves nothing of it.  -1 with errno; -2 when
 * the filesystem has no O_TMPFILE (c->no_tmpfile is set: the caller and
 * every later file use a named temporary).  The walking thread.
 */
static int create_anon(rctx *c, int dirfd, char *tmp)
{
	int fd = bkr_io_open_anon(dirfd, "restore-tmpfile");

	*tmp = 0;
	if (fd == -2)
		c->no_tmpfile = true;
	return fd;
}

/* Remove the temporary @p tmp of @p dirfd, if it has a name. */
static void tmp_remove(int dirfd, const char *tmp)
{
	if (*tmp)
		unlinkat(dirfd, tmp, 0);
}

/*
 * Whether root's chown to @p uid:@p gid is refused on filesystem @p dev,
 * that of directory @p dirfd (a user namespace that does not map them:
 * EINVAL; NFS with root_squash, no CAP_CHOWN: EPERM): the errno, else 0,
 * also when it cannot be told.  Tried on a file made there without a name
 * (else, not in a dry run, under a temporary name removed at once), once
 * per filesystem, owner and group.  The walking thread.
 */
static int chown_refused(rctx *c, int dirfd, dev_t dev, uid_t uid, gid_t gid)
{
	char tmp[64] = "";
	struct stat st;
	int fd, err = 0;

	for (size_t i = 0; i < c->nchowns; i++)
		if (c->chowns[i].dev == dev && c->chowns[i].uid == uid && c->chowns[i].gid == gid)
			return c->chowns[i].err;
	fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 && !c->o->dry_run && tmp_name(tmp, sizeof(tmp)) == 0 &&
	    (fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		*tmp = 0;
	if (fd < 0)
		return 0;
	if (fchown(fd, uid, gid) < 0 && (errno == EPERM || errno == EINVAL))
		err = errno;
	bool here = fstat(fd, &st) == 0 && st.st_dev == dev; /* not a mount point's other side */
	close(fd);
	tmp_remove(dirfd, tmp);
	if (!here)
		return 0;
	chown_memo *m = &c->chowns[c->nchowns < RESTORE_NAME_MEMO ? c->nchowns++ : c->next_chown++ % RESTORE_NAME_MEMO];
	*m = (chown_memo){ dev, uid, gid, err };
	return err;
}

/*
 * Move the finished temporary @p tmp to @p name in @p dirfd: over what is
 * there when @p replace, else only where nothing is.  A temporary without a
 * name (@p tmp "", never replacing) is the file @p fd holds, linked to
 * @p name.  -1 with errno.
 */
static int place(int dirfd, const char *tmp, int fd, const char *name, bool replace)
{
	if (bkr_io_fault("restore-rename") < 0) {
		errno = EIO;
		return -1;
	}
	if (!*tmp)
		return bkr_io_link_anon(fd, dirfd, name);
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

/* ---- the workers ---------------------------------------------------------- */

static void file_free(rfile *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	for (size_t i = 0; f->slots && i < f->nslots; i++)
		free(f->slots[i].data);
	free(f->slots);
	free(f->path);
	free(f->what);
	free(f->msg);
	meta_free(&f->m);
	bkr_walk_file_free(f->wf);
	free(f);
}

/* Record the first error of @p f (the thread's message); under mu, or by its finisher. */
static void file_fail(rfile *f, int err)
{
	if (f->err)
		return;
	f->err = err;
	f->msg = strdup(bkr_error_message());
}

/*
 * Start writing out the RESTORE_WRITE_BEHIND bytes or more that @p f has
 * written since the last time (from @p f->wkick on), without waiting for
 * them: the disk writes a big file while the restore reads, instead of all
 * of it at the final syncfs.  Smaller files, and a big one's tail, are left
 * to the kernel's writeback and that syncfs: a call per file (and per 8 MiB)
 * cost the workers more CPU in submitting I/O than it saved (cold restore
 * of the bench corpus 1.88-2.39 s that way, 1.59-1.75 s now).  A hint:
 * errors show at that syncfs (or fsync).
 */
static void write_behind(rfile *f)
{
	if (f->wend - f->wkick < RESTORE_WRITE_BEHIND)
		return;
	(void)sync_file_range(f->fd, (off_t)f->wkick, (off_t)(f->wend - f->wkick), SYNC_FILE_RANGE_WRITE);
	f->wkick = f->wend;
}

/* The walk is past directory @p d and none of its files is in flight: its own
 * owner, xattrs, mode and times (after its files, whose renames set its
 * mtime), then it is closed and freed.  Any thread. */
static void dir_finish(rctx *c, rdir *d)
{
	if (d->meta)
		meta_apply(c, d->fd, false, d->path, &d->m);
	meta_free(&d->m);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

/*
 * All of @p f was read and put: check it, set its attributes, rename it into
 * place (or remove it and report).  Any thread; frees @p f unless kept.
 */
static void file_finish(rctx *c, rfile *f)
{
	bool moved = false;
	int err = f->err;

	if (!err && (err = bkr_walk_file_finish(f->wf)) < 0)
		file_fail(f, err);
	if (err < 0) {
		report(c, true, err, f->path, "%s", f->msg ? f->msg : "out of memory");
		goto done;
	}
	meta_apply(c, f->fd, false, f->path, &f->m);
	/* the old file goes only for a new one that is on disk */
	if (f->replace && fsync(f->fd) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "fsync"), f->path, "fsync: %s", strerror(en));
		goto done;
	}
	if (place(f->dir->fd, f->tmp, f->fd, f->name, f->replace) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "rename"), f->path, "cannot move into place: %s", strerror(en));
		goto done;
	}
	moved = true;
	/* without its identity no hardlinks to it: later links become copies */
	f->placed = !f->keep || fstat(f->fd, &f->st) == 0;
	pthread_mutex_lock(&c->rmu);
	c->st.files++;
	c->st.bytes += f->size;
	pthread_mutex_unlock(&c->rmu);
done:
	if (!moved)
		tmp_remove(f->dir->fd, f->tmp);
	progress_add(c, f->path, 1, f->size - f->counted);
	close(f->fd);
	f->fd = -1;
	pthread_mutex_lock(&c->mu);
	if (--f->dir->pending == 0 && f->dir->closed) {
		/* its directory's last file: set the directory's metadata before it counts as done */
		pthread_mutex_unlock(&c->mu);
		dir_finish(c, f->dir);
		pthread_mutex_lock(&c->mu);
	}
	c->inflight_files--;
	f->done = true;
	bool keep = f->keep;
	pthread_cond_broadcast(&c->cv_done);
	pthread_mutex_unlock(&c->mu);
	if (!keep)
		file_free(f);
}

static int write_data(void *ctx, uint64_t off, const uint8_t *data, size_t len)
{
	rfile *f = ctx;
	int err;
	if ((err = bkr_io_fault("restore-write")) < 0)
		return err;
	if ((err = bkr_io_pwrite_full(f->fd, data, len, off, f->what)) < 0)
		return err;
	if (off + len > f->wend)
		f->wend = off + len;
	write_behind(f);
	return 0;
}

/*
 * Chunk @p i of @p f: read and checked (unless @p skip: the file failed
 * already), then, when it is the file's next chunk and no other thread is
 * writing the file, written with every later chunk already read; the thread
 * that writes the last chunk finishes the file.  Any thread.
 */
static void task_run(rctx *c, rfile *f, size_t i, bool skip)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int err = 0;

	if (!skip)
		err = bkr_walk_file_read_chunk(c->repo, f->wf, i, &data, &len);
	pthread_mutex_lock(&c->mu);
	if (skip || err < 0) {
		f->slots[i].state = 2;
		if (err < 0)
			file_fail(f, err);
	} else {
		f->slots[i] = (rslot){ data, len, 1 };
	}
	if (f->writing) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	f->writing = true;
	while (f->next < f->nslots && f->slots[f->next].state) {
		rslot sl = f->slots[f->next];
		uint32_t clen = bkr_walk_file_chunk_length(f->wf, f->next);
		bool failed = f->err != 0;
		f->slots[f->next].data = NULL;
		pthread_mutex_unlock(&c->mu);
		err = 0;
		if (sl.state == 1 && !failed) {
			err = bkr_walk_file_put(f->wf, sl.data, sl.len, write_data, f);
			if (err == 0) {
				f->counted += sl.len;
				progress_add(c, f->path, 0, sl.len);
			}
		}
		free(sl.data);
		pthread_mutex_lock(&c->mu);
		if (err < 0)
			file_fail(f, err);
		c->inflight_bytes -= clen;
		f->inflight -= clen;
		f->next++;
		if (c->rhead)
			pthread_cond_broadcast(&c->cv_job); /* budget freed */
	}
	f->writing = false;
	bool fin = f->next == f->nslots;
	pthread_mutex_unlock(&c->mu);
	if (fin)
		file_finish(c, f);
}

/*
 * Advise the disk of chunks [@p from, @p to) of @p f (which a task of it
 * keeps from finishing), and of what follows each in its pack: the chunks
 * of the files after @p f, stored after its own, then cost no request of
 * their own (@p w: the calling thread's last advice).
 */
static void advise(rctx *c, rfile *f, size_t from, size_t to, bkr_repo_advice *w)
{
	for (size_t i = from; i < to; i++)
		if (bkr_repo_advise_blob_ahead(c->repo, bkr_walk_file_chunk_id(f->wf, i), RESTORE_ADVISE_AHEAD, w) < 0)
			bkr_error_clear(); /* not indexed: its read says so */
}

/*
 * Take the next chunk of the first file in turn whose chunk fits the budget
 * (RESTORE_BUDGET in all, RESTORE_FILE_BUDGET of one file; one chunk always
 * fits where nothing is in flight); the file goes to the end of the turn, so
 * a big file and the small ones after it are read side by side and the
 * walking thread is not held up by the big one.  Sets @p *i and the advise
 * range [@p *a0, @p *a1) that keeps RESTORE_FILE_BUDGET bytes read ahead of
 * the file's taken chunks.  NULL when nothing fits.  Under mu.
 */
static rfile *take(rctx *c, size_t *i, size_t *a0, size_t *a1)
{
	rfile *prev = NULL;

	for (rfile *f = c->rhead; f; prev = f, f = f->rnext) {
		uint32_t clen = bkr_walk_file_chunk_length(f->wf, f->taken);
		if (c->inflight_bytes && c->inflight_bytes + clen > RESTORE_BUDGET)
			continue;
		if (f->inflight && f->inflight + clen > RESTORE_FILE_BUDGET)
			continue;
		if (prev)
			prev->rnext = f->rnext;
		else
			c->rhead = f->rnext;
		if (c->rtail == f)
			c->rtail = prev;
		f->rnext = NULL;
		*i = f->taken++;
		f->taken_bytes += clen;
		f->inflight += clen;
		c->inflight_bytes += clen;
		*a0 = f->advised;
		while (f->advised < f->nslots && f->advised_bytes < f->taken_bytes + RESTORE_FILE_BUDGET)
			f->advised_bytes += bkr_walk_file_chunk_length(f->wf, f->advised++);
		*a1 = f->advised;
		if (f->taken < f->nslots) {
			if (c->rtail)
				c->rtail->rnext = f;
			else
				c->rhead = f;
			c->rtail = f;
		}
		return f;
	}
	return NULL;
}

static void *worker(void *arg)
{
	rctx *c = arg;
	size_t i, a0, a1;
	bkr_repo_advice w = { 0 };

	for (;;) {
		rfile *f;
		pthread_mutex_lock(&c->mu);
		while (!(f = take(c, &i, &a0, &a1)) && !(c->stop && !c->rhead))
			pthread_cond_wait(&c->cv_job, &c->mu);
		if (!f) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		bool skip = f->err != 0;
		if (c->rhead)
			pthread_cond_signal(&c->cv_job); /* more to take: the next worker */
		pthread_mutex_unlock(&c->mu);
		/* chunk i, not done, keeps f from finishing: the chunks after it are there to advise */
		if (!skip)
			advise(c, f, a0, a1, &w);
		task_run(c, f, i, skip);
	}
	return NULL;
}

/* Start the workers (o->threads, or one per CPU; one means none: the walking thread reads). */
static void pool_start(rctx *c)
{
	long n = c->o->threads > 0 ? c->o->threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n <= 1)
		return;
	if (n > RESTORE_MAX_THREADS)
		n = RESTORE_MAX_THREADS;
	if (!(c->threads = calloc((size_t)n, sizeof(*c->threads))))
		return;
	for (long i = 0; i < n; i++) {
		if (pthread_create(&c->threads[i], NULL, worker, c) != 0)
			break;
		c->nthreads++;
	}
}

/* Wait until no file is in flight. */
static void pool_drain(rctx *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->inflight_files)
		pthread_cond_wait(&c->cv_done, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void pool_stop(rctx *c)
{
	pool_drain(c);
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
	free(c->threads);
	c->threads = NULL;
	c->nthreads = 0;
}

/*
 * The walk is past directory @p d (entry @p e at @p path): its metadata is
 * set now when none of its files is in flight, else by the finisher of the
 * last one (file_finish), and the walk goes on meanwhile rather than wait
 * at the end of every directory with the workers running dry.  @p d is no
 * longer the caller's.
 */
static void dir_close(rctx *c, rdir *d, const char *path, const bkr_entry *e, const bkr_tree *leaf, uint32_t li)
{
	bool now;

	if (d->fd >= 0 && !c->o->dry_run) {
		if (meta_take(c, &d->m, e, leaf, li, d) < 0 || !(d->path = strdup(path))) {
			meta_free(&d->m);
			report(c, true, BKR_ENOMEM, path, "attributes: out of memory");
		} else {
			d->meta = true;
		}
	}
	pthread_mutex_lock(&c->mu);
	d->closed = true;
	now = d->pending == 0;
	pthread_mutex_unlock(&c->mu);
	if (now)
		dir_finish(c, d);
}

/* Wait until directory @p d has no file in flight. */
static void dir_wait(rctx *c, rdir *d)
{
	pthread_mutex_lock(&c->mu);
	while (d->pending)
		pthread_cond_wait(&c->cv_done, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/* Wait for room for one more open file. */
static void pool_reserve_file(rctx *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->inflight_files >= c->max_files)
		pthread_cond_wait(&c->cv_done, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/*
 * A create failed for want of descriptors (EMFILE, ENFILE): the stores may
 * cache idle ones (bkr_store_local_shed_for: closed, true, create again); else
 * each file in flight holds one until its last chunk is written.  Wait for
 * them, keep half as many in flight from now on, and true (create again);
 * false when none was in flight (the failure is the file's, as any other).
 * A file left out of a restore for the restore's own want would be missing.
 */
static bool files_drain(rctx *c, int e)
{
	bool had;

	if (e != EMFILE && e != ENFILE)
		return false;
	if (bkr_store_local_shed_for(e))
		return true;
	pthread_mutex_lock(&c->mu);
	had = c->inflight_files > 0;
	if (had)
		c->max_files = c->inflight_files / 2 > 0 ? c->inflight_files / 2 : 1;
	while (c->inflight_files > 0)
		pthread_cond_wait(&c->cv_done, &c->mu);
	pthread_mutex_unlock(&c->mu);
	errno = e;
	return had;
}

/*
 * The depth of the walk below which the restore cannot come near the limit of
 * open files: what it can hold open at once is a directory a level, files in
 * flight and the directories they name (RESTORE_MAX_FILES each), a read a
 * worker, the stores' cached quarter (bkr_io_fd_share), and the process's
 * own (64 to spare).  0 under a low limit: fd_room looks every time.
 */
static size_t fd_far_below(void)
{
	struct rlimit rl;
	size_t held = 2 * RESTORE_MAX_FILES + RESTORE_MAX_THREADS + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return SIZE_MAX;
	held += (size_t)rl.rlim_cur / 4;
	return (size_t)rl.rlim_cur > held ? (size_t)rl.rlim_cur - held : 0;
}

/*
 * The walk is about to open a file or directory in @p dirfd: true when two
 * descriptors are free, its own and one to read chunks with (else errno
 * EMFILE).  The walk taking the last one would leave the files in flight,
 * which hold one each until their last chunk is written, no way to be read.
 * Far from the limit (fd_far_below) it is not asked: two dups and two closes
 * a file would be about 1 % of a restore of small files.
 */
static bool fd_room(rctx *c, int dirfd)
{
	if (c->depth < c->fd_far)
		return true;
	int a = fcntl(dirfd, F_DUPFD_CLOEXEC, 0), b = a < 0 ? -1 : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	int e = errno;

	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	errno = b >= 0 ? 0 : e;
	return b >= 0;
}

/*
 * The walk cannot open @p path for want of descriptors (@p e EMFILE, ENFILE)
 * with no file in flight and none cached: what holds them is the walk's
 * open directories and the process's own, so the restore stops here, one
 * line (restore_dir), rather than failing every file after it alike.
 */
static void fd_starved(rctx *c, const char *path, int e)
{
	struct rlimit rl;

	if (c->starved)
		return;
	if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (asprintf(&c->starved,
			     "%s: %s: the limit of open files (ulimit -n %llu) is too low for this restore: raise it",
			     *path ? path : "/", strerror(e), (unsigned long long)rl.rlim_cur) < 0)
			c->starved = NULL;
	} else if (asprintf(&c->starved, "%s: %s", *path ? path : "/", strerror(e)) < 0) {
		c->starved = NULL;
	}
	if (!c->starved)
		c->starved = strdup(strerror(e));
}

/*
 * Hand file @p f (created, truncated to its size) to the workers: the disk
 * is advised of its first chunks (RESTORE_FILE_BUDGET bytes) and the file
 * joins the turn of files whose chunks the workers take (take), so the
 * walking thread goes on at once; without workers its chunks are read here.
 * Either way the file finishes (and, unless kept, is freed) once its last
 * chunk is written.
 */
static void file_submit(rctx *c, rfile *f)
{
	pthread_mutex_lock(&c->mu);
	f->dir->pending++;
	c->inflight_files++;
	pthread_mutex_unlock(&c->mu);
	/* once in the turn @p f may be finished and freed by a worker */
	size_t n = f->nslots;
	if (!n) {
		file_finish(c, f);
		return;
	}
	if (!c->nthreads) {
		for (size_t i = 0; i < n; i++) {
			uint32_t clen = bkr_walk_file_chunk_length(f->wf, i);
			pthread_mutex_lock(&c->mu);
			bool skip = f->err != 0;
			c->inflight_bytes += clen;
			f->inflight += clen;
			pthread_mutex_unlock(&c->mu);
			task_run(c, f, i, skip);
		}
		return;
	}
	/* not yet seen by the workers: the disk reads the file's first chunks ahead of them */
	while (f->advised < n && f->advised_bytes < RESTORE_FILE_BUDGET)
		f->advised_bytes += bkr_walk_file_chunk_length(f->wf, f->advised++);
	advise(c, f, 0, f->advised, &c->advice);
	pthread_mutex_lock(&c->mu);
	if (c->rtail)
		c->rtail->rnext = f;
	else
		c->rhead = f;
	c->rtail = f;
	pthread_cond_signal(&c->cv_job);
	pthread_mutex_unlock(&c->mu);
}

/*
 * Regular file @p e, created as @p tmp (open as @p fd, which this takes) in
 * @p d, to be renamed to @p name: truncated to its size (holes stay holes)
 * and handed to the workers.  Returns the file when @p keep (the caller waits
 * for it and frees it), else NULL; NULL after reporting when it failed here.
 */
static rfile *write_file(rctx *c, rdir *d, int fd, const char *tmp, const char *name, bool replace, bool keep,
			 const char *path, const bkr_entry *e, const bkr_tree *leaf, uint32_t li)
{
	rfile *f = calloc(1, sizeof(*f));
	int err;

	if (!f) {
		close(fd);
		tmp_remove(d->fd, tmp);
		report(c, true, BKR_ENOMEM, path, "out of memory");
		return NULL;
	}
	f->fd = fd;
	f->dir = d;
	f->replace = replace;
	f->keep = keep;
	f->size = e->size;
	snprintf(f->tmp, sizeof(f->tmp), "%s", tmp);
	snprintf(f->name, sizeof(f->name), "%s", name);
	if (!(f->path = strdup(path)) ||
	    !bkr_text_setf(&f->what, "backup %s: %s", c->backup_id ? c->backup_id : "?", path)) {
		err = bkr_error_oom();
		goto fail;
	}
	if ((err = bkr_walk_file_new(&f->wf, leaf, li, f->what)) < 0 || (err = meta_take(c, &f->m, e, leaf, li, d)) < 0)
		goto fail;
	/* the file gets its name only once its content hash is checked (file_finish) */
	bkr_walk_file_defer_checks(f->wf, c->repo);
	/* the file is new and empty: its chunks' writes give it its size, unless it has holes (one at its end gives no write) */
	if (bkr_walk_file_has_holes(f->wf) && ftruncate(fd, (off_t)e->size) < 0) {
		int en = errno;
		err = bkr_error_set_errno(en, "%s: truncate", f->what);
		report(c, true, err, path, "truncate: %s", strerror(en));
		goto fail_reported;
	}
	f->nslots = bkr_walk_file_chunks(f->wf);
	if (f->nslots && !(f->slots = calloc(f->nslots, sizeof(*f->slots)))) {
		err = bkr_error_oom();
		goto fail;
	}
	file_submit(c, f);
	return keep ? f : NULL;
fail:
	report(c, true, err, path, "%s", bkr_error_message());
fail_reported:
	tmp_remove(d->fd, tmp);
	progress(c, path, e);
	file_free(f);
	return NULL;
}

/*
 * Restore one non-directory entry @p name into directory @p d: created under
 * a temporary name, its content checked and its attributes set through its
 * descriptor, then renamed into place (over an existing entry only with
 * overwrite).  A failure removes the temporary and leaves what was there.
 * A regular file's content goes to the workers and is counted into the
 * progress when done.
 */
static void restore_leaf(rctx *c, rdir *d, const char *path, const bkr_entry *e,
			 const bkr_tree *leaf, uint32_t li)
{
	char name[256 + 1], tmp[64], *target = NULL;
	struct stat old;
	bool replace = false, made = false, counted = false;
	int dirfd = d->fd, fd = -1, link_fd = -1;
	link_ent *l = NULL;

	if (e->name_len > 255) {
		report(c, true, BKR_EINVAL, path, "name too long");
		goto done;
	}
	cname(e->name, e->name_len, name, sizeof(name));
	if (e->type == BKR_FT_SOCK) {
		report(c, false, 0, path, "socket skipped");
		goto done;
	}
	if (e->type != BKR_FT_FILE && e->type != BKR_FT_SYMLINK && e->type != BKR_FT_FIFO &&
	    e->type != BKR_FT_CHR && e->type != BKR_FT_BLK) {
		report(c, true, BKR_ECORRUPT, path, "unknown entry type %u", e->type);
		goto done;
	}
	if (c->classify) {
		bkr_restore_change k = classify(c, dirfd, name, path, e, leaf, li);
		note_change(c, k, path);
		if (c->o->dry_run || k == BKR_RESTORE_UNCHANGED)
			goto done;
	}
	/* in a directory this restore made nothing is in the way (a name twice: the second fails to link) */
	if (!(d->fresh && !c->overwrite) && fstatat(dirfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0) {
		/* what is there is what the backup has (a restore run again, as
		 * --dry-run says): nothing to write, nothing to refuse, nothing to
		 * replace with --overwrite either (classify said so already in place) */
		if (!c->classify && classify(c, dirfd, name, path, e, leaf, li) == BKR_RESTORE_UNCHANGED) {
			c->st.unchanged++;
			goto done;
		}
		if (!c->overwrite) {
			report(c, true, BKR_EEXISTS, path, "exists (--overwrite replaces it)");
			goto done;
		}
		if (S_ISDIR(old.st_mode)) {
			report(c, true, BKR_EEXISTS, path, "a directory is in the way");
			goto done;
		}
		replace = true;
	}
	if (e->type == BKR_FT_FILE && e->link_group && (l = link_find(c, e->link_group))) {
		if (replace && old.st_dev == l->dev && old.st_ino == l->ino) {
			c->st.hardlinks++;
			goto done;
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
			goto done;
		}
		memcpy(target, e->target, e->target_len);
		target[e->target_len] = 0;
	}
	if (e->type == BKR_FT_FILE)
		pool_reserve_file(c);
	/* a new file gets no name until complete; one that replaces another, a temporary name */
	do {
		if (e->type == BKR_FT_FILE && !fd_room(c, dirfd))
			continue; /* fd -1, errno EMFILE */
		fd = e->type == BKR_FT_FILE && !replace && !c->no_tmpfile ? create_anon(c, dirfd, tmp) : -2;
		if (fd == -2)
			fd = create_tmp(dirfd, tmp, sizeof(tmp), e, -1, target);
	} while (fd < 0 && files_drain(c, errno));
	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		fd_starved(c, path, errno);
		goto done;
	}
	if (fd < 0) {
		int en = errno;
		if (e->type == BKR_FT_FIFO || e->type == BKR_FT_CHR || e->type == BKR_FT_BLK)
			report(c, false, 0, path, "skipped: mknod: %s", strerror(en));
		else
			report(c, true, bkr_error_set_errno(en, "create"), path, "create: %s", strerror(en));
		fd = -1;
		goto done;
	}
	if (e->type == BKR_FT_FILE) {
		/* the first of a hardlink group is in place before its links are made */
		bool keep = e->link_group && !l;
		rfile *f = write_file(c, d, fd, tmp, name, replace, keep, path, e, leaf, li);
		fd = -1;
		counted = true;
		if (f) {
			pthread_mutex_lock(&c->mu);
			while (!f->done)
				pthread_cond_wait(&c->cv_done, &c->mu);
			pthread_mutex_unlock(&c->mu);
			if (f->placed)
				link_add(c, e->link_group, disk_rel(c, path), &f->st);
			file_free(f);
		}
		goto done;
	}
	made = true;
	fd = open_created(c, dirfd, tmp, bkr_entry_mode_of_type(e->type),
			  e->type == BKR_FT_SYMLINK || e->type == BKR_FT_FIFO ? 0 : (dev_t)e->rdev, path);
	if (fd < 0)
		goto done;
	apply_meta(c, fd, true, path, e, leaf, li, d);
place:
	if (place(dirfd, tmp, -1, name, replace) < 0) {
		int en = errno;
		report(c, true, bkr_error_set_errno(en, "rename"), path, "cannot move into place: %s", strerror(en));
		goto done;
	}
	made = false;
	if (link_fd >= 0)
		c->st.hardlinks++;
	else if (e->type == BKR_FT_SYMLINK)
		c->st.symlinks++;
	else
		c->st.specials++;
done:
	if (made)
		unlinkat(dirfd, tmp, 0);
	if (fd >= 0)
		close(fd);
	if (link_fd >= 0)
		close(link_fd);
	free(target);
	if (!counted)
		progress(c, path, e);
}

/* Whether directory @p fd is the repository (never restored into); warns. */
static bool is_repo(rctx *c, int fd, const char *path)
{
	struct stat st;
	if (!c->have_repo || fstat(fd, &st) < 0 || st.st_dev != c->repo_dev || st.st_ino != c->repo_ino)
		return false;
	report(c, false, 0, path, "is the repository %s: skipped", bkr_repo_path(c->repo));
	return true;
}

/*
 * Put the new directory @p tmp of @p dirfd in the place of the non-directory
 * @p name, which is removed only once the directory is there: they are
 * exchanged (RENAME_EXCHANGE) or, on a filesystem that cannot, the old one is
 * renamed aside first and back if the directory cannot follow.  -1 with
 * errno, and @p name is what it was.
 */
static int dir_replace(int dirfd, const char *tmp, const char *name)
{
	char aside[64];
	int en;

	if (bkr_io_fault("restore-rename") < 0) {
		errno = EIO;
		return -1;
	}
	if (bkr_io_fault("restore-exchange") < 0) {
		errno = EINVAL; /* tests: a filesystem without RENAME_EXCHANGE */
	} else if (renameat2(dirfd, tmp, dirfd, name, RENAME_EXCHANGE) == 0) {
		unlinkat(dirfd, tmp, 0);
		return 0;
	}
	if (errno != EINVAL || tmp_name(aside, sizeof(aside)) < 0 || renameat(dirfd, name, dirfd, aside) < 0)
		return -1;
	if (renameat(dirfd, tmp, dirfd, name) == 0) {
		unlinkat(dirfd, aside, 0);
		return 0;
	}
	en = errno;
	if (renameat2(dirfd, aside, dirfd, name, RENAME_NOREPLACE) < 0 &&
	    errno == EINVAL && linkat(dirfd, aside, dirfd, name, 0) == 0)
		unlinkat(dirfd, aside, 0);
	errno = en;
	return -1;
}

/*
 * mkdir (or reuse) @p name in @p dirfd and open it; -1 after reporting.  In
 * a dry run only open what is there (-1 when @p dirfd is -1 or nothing is).
 */
static int open_dir(rctx *c, int dirfd, const char *name, const char *path, rdir *info)
{
	struct stat st;

	if (info)
		info->fresh = info->mine = false;

	if (c->o->dry_run) {
		int fd = dirfd < 0 ? -1 : openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && is_repo(c, fd, path)) {
			close(fd);
			fd = -1;
		}
		return fd;
	}
	/* a directory replaces a file only with overwrite, made under a
	 * temporary name and put in its place when ready (dir_replace) */
	char tmp[64] = "";
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
		if (!c->overwrite) {
			report(c, true, BKR_EEXISTS, path, "exists and is not a directory (--overwrite replaces it)");
			return -1;
		}
		if (create_tmp(dirfd, tmp, sizeof(tmp), NULL, -1, NULL) < 0) {
			report(c, true, bkr_error_set_errno(errno, "mkdir"), path, "mkdir: %s", strerror(errno));
			return -1;
		}
	}
	bool created = *tmp || mkdirat(dirfd, name, 0700) == 0;
	if (!created && errno != EEXIST) {
		report(c, true, bkr_error_set_errno(errno, "mkdir"), path, "mkdir: %s", strerror(errno));
		return -1;
	}
	int fd = -1;
	while ((!fd_room(c, dirfd) ||
		(fd = openat(dirfd, *tmp ? tmp : name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) &&
	       files_drain(c, errno))
		;
	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		fd_starved(c, path, errno);
		goto fail;
	}
	if (fd < 0) {
		report(c, true, bkr_error_set_errno(errno, "open"), path, "open directory: %s", strerror(errno));
		goto fail;
	}
	if (created && (fstat(fd, &st) < 0 || st.st_uid != c->euid)) {
		/* another user's directory put in place of the one just made */
		report(c, true, BKR_EEXISTS, path, "replaced by something else while being restored");
		goto fail;
	}
	if (*tmp && dir_replace(dirfd, tmp, name) < 0) {
		report(c, true, bkr_error_set_errno(errno, "rename"), path, "cannot replace: %s", strerror(errno));
		goto fail;
	}
	if (created && info) {
		info->fresh = true;
		info->mine = st.st_gid == c->egid;
	}
	if (is_repo(c, fd, path)) {
		close(fd);
		return -1;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	if (*tmp)
		unlinkat(dirfd, tmp, AT_REMOVEDIR);
	return -1;
}

/*
 * Enter directory entry @p e (@p name in @p pfd): compared with what is there
 * when classifying, then opened (made unless a dry run).  Returns its fd,
 * -1 when there is none (reported when that is an error), or -2 when it
 * must be skipped.
 */
static int enter_dir(rctx *c, int pfd, const char *name, const char *path, const bkr_entry *e,
		     const bkr_tree *leaf, uint32_t li, rdir *info)
{
	bkr_restore_change k = BKR_RESTORE_NEW;
	int fd;

	if (info)
		info->fresh = info->mine = false;
	if (c->classify) {
		k = classify(c, pfd, name, path, e, leaf, li);
		note_change(c, k, path);
	}
	if (c->o->dry_run && k == BKR_RESTORE_NEW) {
		c->st.dirs++;
		return -1;
	}
	if ((fd = open_dir(c, pfd, name, path, info)) < 0)
		return c->o->dry_run && k != BKR_RESTORE_NEW && pfd >= 0 ? -1 : -2;
	c->st.dirs++;
	return fd;
}

/* Add the regular files below @p path (or it, a file) to the progress totals. */
static void count_totals(rctx *c, const bkr_id *root, const char *path)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	bkr_entry e;
	bkr_dir *holder = NULL;

	if (*path && bkr_walk_resolve(c->repo, root, path, &e, &holder, NULL, NULL) == 0 && e.type != BKR_FT_DIR) {
		if (e.type == BKR_FT_FILE) {
			c->prog.files_total++;
			c->prog.bytes_total += e.size;
		}
	} else if (bkr_walk_new(&w, c->repo, root, path, 0) == 0) {
		while (bkr_walk_next(w, &it) > 0)
			if (it->entry.type == BKR_FT_FILE) {
				c->prog.files_total++;
				c->prog.bytes_total += it->entry.size;
			}
	}
	bkr_walk_free(w);
	bkr_dir_free(holder);
	bkr_error_clear(); /* what cannot be read is reported by the restore itself */
}

/*
 * Restore directory @p path (its contents into @p fd, which this closes once
 * its files are done).
 */
static int restore_dir(rctx *c, const bkr_id *root, const char *path, int fd)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	rdir **dirs = NULL;  /* the directory open at each depth (each its own: dir_close) */
	size_t cap = 64;
	int err;

	if (!(dirs = calloc(cap, sizeof(*dirs))) || !(dirs[0] = calloc(1, sizeof(**dirs)))) {
		if (fd >= 0)
			close(fd);
		free(dirs);
		return bkr_error_oom();
	}
	dirs[0]->fd = fd;
	/* report names the directory: the walk's message does not (it would say it twice) */
	if ((err = bkr_walk_new(&w, c->repo, root, path, BKR_WALK_POST | BKR_WALK_UNNAMED)) < 0) {
		report(c, true, err, path, "%s", bkr_error_message());
		err = 0;
		goto done;
	}
	while ((err = bkr_walk_next(w, &it)) > 0) {
		size_t d = it->depth;
		c->depth = d;
		if (d >= cap) {
			rdir **n = realloc(dirs, cap * 2 * sizeof(*n));
			if (!n) {
				err = bkr_error_oom();
				goto done;
			}
			memset(n + cap, 0, cap * sizeof(*n));
			dirs = n;
			cap *= 2;
		}
		if (!dirs[d]) {
			if (!(dirs[d] = calloc(1, sizeof(**dirs)))) {
				err = bkr_error_oom();
				goto done;
			}
			dirs[d]->fd = -1;
		}
		rdir *pd = dirs[d - 1];
		const bkr_entry *e = &it->entry;
		char name[257];
		if (e->type != BKR_FT_DIR) {
			restore_leaf(c, pd, it->path, e, it->leaf, it->li);
			if (c->starved)
				break;
			continue;
		}
		if (e->name_len > 255) {
			report(c, true, BKR_EINVAL, it->path, "name too long");
			bkr_walk_skip(w);
			continue;
		}
		cname(e->name, e->name_len, name, sizeof(name));
		if (it->post) {
			dir_close(c, dirs[d], it->path, e, it->leaf, it->li);
			dirs[d] = NULL;
			continue;
		}
		int dfd = enter_dir(c, pd->fd, name, it->path, e, it->leaf, it->li, dirs[d]);
		if (c->starved)
			break;
		if (dfd == -2) {
			bkr_walk_skip(w);
			continue;
		}
		if (it->error < 0) {
			report(c, true, it->error, it->path, "contents unreadable: %s", bkr_walk_error_message(w));
			if (dfd >= 0 && !c->o->dry_run)
				apply_meta(c, dfd, false, it->path, e, it->leaf, it->li, NULL);
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		dirs[d]->fd = dfd;
	}
	if (c->starved)
		err = bkr_error_set(BKR_EIO, "%s", c->starved);
done:
	bkr_walk_free(w);
	/* every file in flight names one of these directories, or one closed
	 * that its last file finishes (before the drain sees it done) */
	pool_drain(c);
	for (size_t i = 0; i < cap; i++) {
		if (dirs[i] && dirs[i]->fd >= 0)
			close(dirs[i]->fd);
		free(dirs[i]);
	}
	free(dirs);
	return err;
}

/* Remember directory @p fd (a dup is kept), made on the way to a PATH, as @p path (owned then); <0 when it cannot be. */
static int made_add(rctx *c, int fd, char *path)
{
	if (c->nmade == c->madecap) {
		size_t nc = c->madecap ? c->madecap * 2 : 8;
		struct made_dir *m = realloc(c->made, nc * sizeof(*m));
		if (!m)
			return -1;
		c->made = m;
		c->madecap = nc;
	}
	if ((c->made[c->nmade].fd = dup(fd)) < 0)
		return -1;
	c->made[c->nmade++].path = path;
	return 0;
}

/*
 * Give the directories made on the way to the PATHs (0700, ours) the
 * backup's attributes for them (root tree @p root), deepest and last made
 * first, once every PATH is in: a later PATH may make an entry in one.
 */
static void set_made(rctx *c, const bkr_id *root)
{
	while (c->nmade > 0) {
		struct made_dir *m = &c->made[--c->nmade];
		bkr_entry e;
		bkr_dir *holder = NULL;
		const bkr_tree *leaf = NULL;
		uint32_t li = 0;
		if (bkr_walk_resolve_flags(c->repo, root, m->path, BKR_WALK_UNNAMED, &e, &holder, &leaf, &li) == 0 &&
		    e.type == BKR_FT_DIR)
			apply_meta(c, m->fd, false, m->path, &e, leaf, li, NULL);
		else
			report(c, false, 0, m->path, "attributes not restored: %s", bkr_error_message());
		bkr_dir_free(holder);
		close(m->fd);
		free(m->path);
	}
}

/*
 * Restore @p path of the backup (entry @p e, resolved) into c->tfd: its
 * missing parent directories are made (mode 0700, not reported), then the
 * entry.  In place the first component (the source) is c->tfd itself.
 */
static int restore_path(rctx *c, const bkr_id *root, const char *path)
{
	bkr_entry e;
	bkr_dir *holder = NULL;
	const bkr_tree *leaf = NULL;
	uint32_t li = 0;
	int err, fd = -1, dfd = -1, cfd = -1;
	char *copy = NULL;

	/* report names the path: the message does not */
	if ((err = bkr_walk_resolve_flags(c->repo, root, path, BKR_WALK_UNNAMED, &e, &holder, &leaf, &li)) < 0) {
		report(c, true, err, path, "%s", bkr_error_message());
		return 0;
	}
	if (c->tfd >= 0 && (fd = dup(c->tfd)) < 0) {
		err = bkr_error_set_errno(errno, "dup");
		goto done;
	}
	if (!(copy = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	char *comps[4096];
	size_t nc = 0, first = c->strip ? 1 : 0;
	for (char *tok = strtok(copy, "/"); tok && nc < 4096; tok = strtok(NULL, "/"))
		if (strcmp(tok, ".") != 0)
			comps[nc++] = tok;
	for (size_t i = first; i + 1 < nc; i++) {
		/* a directory on the way, named as far as it goes in messages */
		size_t plen = (size_t)(comps[i] - copy) + strlen(comps[i]);
		char *on_way = strndup(path, plen);
		rdir info;
		if (!on_way) {
			err = bkr_error_oom();
			goto done;
		}
		int nfd = open_dir(c, fd, comps[i], on_way, &info);
		if (fd >= 0)
			close(fd);
		fd = nfd;
		if (fd < 0 || !info.fresh || made_add(c, fd, on_way) < 0)
			free(on_way);
		if (fd < 0 && !c->o->dry_run)
			goto done;
	}
	if (nc == 0) {
		/* the whole backup */
		err = restore_dir(c, root, "", fd);
		fd = -1;
		goto done;
	}
	if (e.type != BKR_FT_DIR) {
		if (nc == first) {
			report(c, true, BKR_EINVAL, path, "in place: the source is not a directory; restore it with --target");
			goto done;
		}
		rdir one = { fd, 0 };
		restore_leaf(c, &one, path, &e, leaf, li);
		dir_wait(c, &one);
		goto done;
	}
	if (nc == first) {
		/* in place, a whole source: c->tfd is its directory (a file source's: its file's, left as it is) */
		if (c->file_source) {
			err = restore_dir(c, root, path, fd);
			fd = -1;
			goto done;
		}
		if (c->classify && c->tfd >= 0)
			note_change(c, classify_fd(c, c->tfd, c->tfd, path, &e, leaf, li), path);
		else if (c->classify)
			note_change(c, BKR_RESTORE_NEW, path);
		c->st.dirs++;
		dfd = fd;
		fd = -1;
	} else if ((dfd = enter_dir(c, fd, comps[nc - 1], path, &e, leaf, li, NULL)) == -2) {
		goto done;
	}
	if (dfd >= 0 && (cfd = dup(dfd)) < 0) {
		err = bkr_error_set_errno(errno, "dup");
		goto done;
	}
	if ((err = restore_dir(c, root, path, cfd)) == 0 && dfd >= 0 && !c->o->dry_run) {
		/* the directory's own metadata, after its contents, through the fd it was restored by */
		(void)bkr_io_fault("restore-meta");
		apply_meta(c, dfd, false, path, &e, leaf, li, NULL);
	}
done:
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
	free(copy);
	bkr_dir_free(holder);
	return err;
}

/*
 * BKR_EINVAL when directory @p dir, or the nearest of its parents that
 * exists, is the repository or inside it (compared by device and inode up
 * to /, so symlinks and bind mounts count).
 */
static int check_outside_repo(rctx *c, const char *dir)
{
	size_t n = strlen(dir);
	char *p = malloc(n + 2);
	int fd = -1, err = 0;

	if (!c->have_repo)
		goto done;
	if (!p) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(p, dir, n + 1);
	while ((fd = open(*p ? p : ".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		char *sl = strrchr(p, '/');
		if (!sl) {
			if (!strcmp(p, ".") || !*p)
				break;
			strcpy(p, ".");
		} else if (sl == p) {
			if (!p[1])
				break;
			p[1] = 0;
		} else {
			*sl = 0;
		}
	}
	while (fd >= 0) {
		struct stat st, up;
		if (fstat(fd, &st) < 0)
			break;
		if (st.st_dev == c->repo_dev && st.st_ino == c->repo_ino) {
			err = bkr_error_set(BKR_EINVAL, "restore target %s is inside the repository %s", dir,
					    bkr_repo_path(c->repo));
			break;
		}
		int ufd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		bool top = ufd < 0 || fstat(ufd, &up) < 0 || (up.st_dev == st.st_dev && up.st_ino == st.st_ino);
		close(fd);
		fd = ufd;
		if (top)
			break;
	}
done:
	if (fd >= 0)
		close(fd);
	free(p);
	return err;
}

/*
 * Open (make unless a dry run) the directory @p dir restore writes into as
 * c->tfd.  In place it is a source's directory, recorded with no symlink in
 * its path (create resolves it): one there now is not followed, else what
 * replaced the directory with a symlink would have the backup written
 * wherever it points.
 */
static int open_target(rctx *c, const char *dir)
{
	struct stat st;
	int err;

	if ((err = check_outside_repo(c, dir)) < 0)
		return err;
	if (!c->o->dry_run && (err = bkr_io_mkdir_p(dir, 0755)) < 0)
		return err;
	if ((c->tfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (c->o->in_place ? O_NOFOLLOW : 0))) < 0) {
		int en = errno; /* the lstat below may change errno */
		if (c->o->dry_run && en == ENOENT)
			return 0;
		if (c->o->in_place && (en == ELOOP || en == ENOTDIR) && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
			return bkr_error_set(BKR_EEXISTS, "in place: %s is a symlink now, not the directory backed up; "
					     "not followed (restore it with --target)", dir);
		/* made (or there) a moment ago, and yet not found: a symlink to
		 * nothing (mkdir took it for there).  The target's error (exit 7),
		 * not a backup or path that is not found (exit 3) */
		if (en == ENOENT)
			return bkr_error_set(BKR_EIO, "restore target %s: %s (a symlink to nothing?)", dir,
					     strerror(en));
		return bkr_error_set_errno(en, "restore target %s", dir);
	}
	/* a target DIR restore may not write into (its mode, a read-only
	 * filesystem) is the target's error, as one it cannot make (mkdir):
	 * nothing could be restored, so it is one line and exit 7 before
	 * anything is written, not each entry failing (exit 6).  In place the
	 * source's directory is written only where something differs: an
	 * entry that cannot be written there fails alone. */
	if (!c->o->in_place && !c->o->dry_run && faccessat(c->tfd, ".", W_OK | X_OK, AT_EACCESS) < 0)
		return bkr_error_set_errno(errno, "restore target %s: cannot write in it", dir);
	return 0;
}

/* Close c->tfd after syncing what was written there; forget its hardlinks. */
static void close_target(rctx *c)
{
	pool_drain(c);
	if (c->tfd >= 0) {
		/* what was renamed into place is on disk before the restore says done */
		int en = 0;
		if (!c->o->dry_run && bkr_io_fault("restore-syncfs") < 0)
			en = EIO;
		else if (!c->o->dry_run && syncfs(c->tfd) < 0)
			en = errno;
		/* a write-back error (write_behind, the files not fsynced) shows only here: what was
		 * restored may not be on disk, so it is an error, not a warning */
		if (en)
			report(c, true, bkr_error_set_errno(en, "syncfs"), c->disk_root,
			       "syncfs: %s; what was restored here may not be on disk", strerror(en));
		close(c->tfd);
	}
	c->tfd = -1;
	for (size_t i = 0; i < c->nlinks; i++)
		free(c->links[i].path);
	c->nlinks = 0;
}

/* Whether in-place source @p src was a single file (bkr_walk_source_is_file). */
static bool is_file_source(rctx *c, const bkr_id *root, const bkr_manifest_source *src)
{
	return bkr_walk_source_is_file(c->repo, root, src->source, src->path);
}

/* The manifest's source named by the first component of @p path, or NULL. */
static const bkr_manifest_source *source_of(const bkr_manifest *m, const char *path)
{
	size_t n = strcspn(path, "/");
	for (size_t i = 0; i < m->nsources; i++)
		if (strlen(m->sources[i].source) == n && !memcmp(m->sources[i].source, path, n))
			return &m->sources[i];
	return NULL;
}

/* @p p as "a/b/c": no empty or "." components; NULL with BKR_EINVAL for a
 * ".." (refused up front, before anything is written) or on OOM */
static char *norm_path(const char *p)
{
	char *out = malloc(strlen(p) + 1);
	size_t n = 0;

	if (!out) {
		bkr_error_oom();
		return NULL;
	}
	for (const char *q = p; *q;) {
		size_t len = strcspn(q, "/");
		if (len == 2 && q[0] == '.' && q[1] == '.') {
			free(out);
			bkr_error_set(BKR_EINVAL, "path '%s': '..' is not allowed", p);
			return NULL;
		}
		if (len && !(len == 1 && q[0] == '.')) {
			if (n)
				out[n++] = '/';
			memcpy(out + n, q, len);
			n += len;
		}
		q += len;
		while (*q == '/')
			q++;
	}
	out[n] = 0;
	return out;
}

/* @p a is @p b or a directory above it ("" is the root) */
static bool covers(const char *a, const char *b)
{
	size_t la = strlen(a);
	return !la || (!strncmp(a, b, la) && (!b[la] || b[la] == '/'));
}

static int run(bkr_repo *r, const bkr_id *root, const char *backup_id, const bkr_manifest *m,
	       const bkr_restore_options *o, bkr_restore_stats *stats)
{
	rctx cs, *c = &cs;
	const char **paths = NULL;
	char **owned = NULL;
	size_t npaths = 0;
	struct stat rst;
	int err = 0;

	memset(c, 0, sizeof(*c));
	c->tfd = -1;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (!o || o->version != BKR_RESTORE_OPTIONS_VERSION)
		return bkr_error_set(BKR_EINVAL, "restore: options of an unknown version");
	if (o->in_place ? (o->target || !m) : (!o->target || !o->target[0]))
		return bkr_error_set(BKR_EINVAL, o->in_place ? "restore: in place takes a manifest and no target"
						     : "restore: options without a target");
	pthread_mutex_init(&c->rmu, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv_job, NULL);
	pthread_cond_init(&c->cv_done, NULL);
	/* each file in flight holds an fd: a quarter of the process's at most */
	c->max_files = bkr_io_fd_share(RESTORE_MAX_FILES);
	c->fd_far = fd_far_below();
	c->repo = r;
	c->o = o;
	c->backup_id = backup_id;
	c->euid = geteuid();
	c->egid = getegid();
	c->root = c->euid == 0;
	c->overwrite = o->overwrite || o->in_place;
	c->classify = o->dry_run || o->in_place;
	c->disk_root = o->target;
	if (stat(bkr_repo_path(r), &rst) == 0) {
		c->have_repo = true;
		c->repo_dev = rst.st_dev;
		c->repo_ino = rst.st_ino;
	}
	/* the paths asked for: each must be in the backup before anything is written */
	size_t want = o->npaths ? o->npaths : 1;
	if (o->in_place && m->nsources > want)
		want = m->nsources;
	if (!(paths = calloc(want, sizeof(*paths))) || (o->npaths && !(owned = calloc(o->npaths, sizeof(*owned))))) {
		err = bkr_error_oom();
		goto done;
	}
	/* a ".." anywhere is a usage error before anything is looked up or written */
	for (size_t i = 0; i < o->npaths; i++) {
		if (!(owned[i] = norm_path(o->paths[i]))) {
			err = bkr_error_last_code();
			goto done;
		}
	}
	/* the root tree: when it cannot be read, nothing of the backup can be
	 * restored.  That is damaged data (exit 4), as for ls and cat, not a
	 * file that failed among others (6); said before anything is written.
	 * A tree blob the index lacks is damage too (bkr_repo_load_tree); a
	 * store that cannot be reached keeps its own error. */
	{
		bkr_dir *rd = NULL;
		if ((err = bkr_dir_open(&rd, root, bkr_repo_load_tree, r)) < 0) {
			bkr_error_prefix("backup %s: root directory", backup_id ? backup_id : "?");
			goto done;
		}
		bkr_dir_free(rd);
	}
	for (size_t i = 0; i < o->npaths; i++) {
		const char *p = owned[i];
		bkr_entry e;
		bkr_dir *holder = NULL;
		if (!*p && o->in_place) {
			npaths = 0; /* the whole backup */
			break;
		}
		/* the path as given, as ls and cat resolve it: "file/" names a
		 * directory, and a file there is ENOTDIR for them (and open(2)), not
		 * the file (norm_path drops the slash); their message too */
		err = bkr_walk_resolve(r, root, o->paths[i], &e, &holder, NULL, NULL);
		bkr_dir_free(holder);
		if (err == BKR_ENOTFOUND)
			goto done;
		if (err == 0 && o->in_place && !source_of(m, p)) {
			err = bkr_error_set(BKR_ENOTFOUND, "backup %s has no %s", backup_id ? backup_id : "?", p);
			goto done;
		}
		bkr_error_clear();
		err = 0;
		paths[npaths++] = p;
	}
	/* each entry once: a path named again, or under another one named, is
	 * restored with it (it would trip over its own output: "exists") */
	{
		size_t w = 0;
		for (size_t i = 0; i < npaths; i++) {
			bool drop = false;
			for (size_t j = 0; j < npaths && !drop; j++)
				drop = j != i && covers(paths[j], paths[i]) && (strcmp(paths[j], paths[i]) != 0 || j < i);
			if (!drop)
				paths[w++] = paths[i];
		}
		npaths = w;
	}
	if (o->in_place && !npaths)
		for (size_t i = 0; i < m->nsources; i++)
			paths[npaths++] = m->sources[i].source;
	if (!o->in_place) {
		if ((err = open_target(c, o->target)) < 0)
			goto done;
		if (!npaths)
			paths[npaths++] = "";
	}
	if (o->progress)
		for (size_t i = 0; i < npaths; i++)
			count_totals(c, root, paths[i]);
	if (!o->dry_run)
		pool_start(c);
	for (size_t i = 0; i < npaths && err == 0; i++) {
		if (o->in_place) {
			const bkr_manifest_source *src = source_of(m, paths[i]);
			if (c->src != src) {
				set_made(c, root);
				close_target(c);
				c->src = src;
				c->strip = strlen(src->source);
				free(c->src_dir);
				c->src_dir = NULL;
				if ((c->file_source = is_file_source(c, root, src))) {
					const char *sl = strrchr(src->path, '/');
					size_t n = sl && sl != src->path ? (size_t)(sl - src->path) : 1;
					if (!(c->src_dir = strndup(sl ? src->path : ".", sl ? n : 1))) {
						err = bkr_error_oom();
						goto done;
					}
				}
				c->disk_root = c->file_source ? c->src_dir : src->path;
				if ((err = open_target(c, c->disk_root)) < 0)
					goto done;
			}
		}
		err = restore_path(c, root, paths[i]);
	}
	pool_stop(c);
	set_made(c, root);
	close_target(c);
	if (err < 0)
		goto done;
	if (c->st.errors) {
		err = bkr_error_set(c->corrupt ? BKR_ECORRUPT : c->first_err,
				    "%llu entr%s failed to restore; first: %s", (unsigned long long)c->st.errors,
				    c->st.errors == 1 ? "y" : "ies", c->first_msg ? c->first_msg : "out of memory");
	}
done:
	pool_stop(c);
	if (c->tfd >= 0)
		close(c->tfd);
	if (stats)
		*stats = c->st;
	pthread_cond_destroy(&c->cv_done);
	pthread_cond_destroy(&c->cv_job);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->rmu);
	for (size_t i = 0; i < c->nlinks; i++)
		free(c->links[i].path);
	free(c->links);
	for (size_t i = 0; i < c->nmade; i++) { /* set_made did not run: stopped by an error */
		close(c->made[i].fd);
		free(c->made[i].path);
	}
	free(c->made);
	free(c->src_dir);
	free(c->first_msg);
	free(c->starved);
	free(paths);
	for (size_t i = 0; owned && i < o->npaths; i++)
		free(owned[i]);
	free(owned);
	return err;
}

int bkr_restore_tree(bkr_repo *r, const bkr_id *root, const char *backup_id,
		     const bkr_restore_options *o, bkr_restore_stats *stats)
{
	return run(r, root, backup_id, NULL, o, stats);
}

int bkr_restore_run(bkr_repo *r, const bkr_manifest *m, const bkr_restore_options *o,
		    bkr_restore_stats *stats)
{
	return run(r, &m->tree, m->backup_id, m, o, stats);
}
