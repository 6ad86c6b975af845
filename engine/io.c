/** @file
 * File I/O helpers, the crash-safe publish protocol, and fault points.
 */
#include "bkr/io.h"
#include "bkr/error.h"
#include "bkr/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fault injection --------------------------------------------------- */

#if BKR_FAULT_INJECTION

#define MAX_FAULTS 8

struct fault {
	char point[32];
	long nth;
	int action; /* 0 eio, 1 enospc, 2 crash, 3 stop */
	atomic_long hits;
};

/* Written by fault_parse only: once (pthread_once, which every reader passes
 * first, so no thread reads a half-parsed table) and by bkr_io_fault_reset
 * (tests, while no other thread is inside bkr_io_fault). */
static struct fault faults[MAX_FAULTS];
static int nfaults;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*_Atomic stop_hook)(void);

static void fault_parse(void)
{
	const char *env = getenv("BKR_FAULT");
	nfaults = 0;
	if (!env || !*env)
		return;
	char *copy = strdup(env), *save = NULL;
	if (!copy)
		return;
	for (char *tok = strtok_r(copy, ",", &save); tok && nfaults < MAX_FAULTS;
	     tok = strtok_r(NULL, ",", &save)) {
		struct fault *f = &faults[nfaults];
		char action[16] = "eio";
		memset(f->point, 0, sizeof(f->point));
		if (sscanf(tok, "%31[^:]:%ld:%15s", f->point, &f->nth, action) < 2)
			continue;
		f->action = !strcmp(action, "stop") ? 3 : !strcmp(action, "crash") ? 2 : !strcmp(action, "enospc") ? 1 : 0;
		atomic_store(&f->hits, 0);
		nfaults++;
	}
	free(copy);
}

void bkr_io_fault_reset(void)
{
	pthread_once(&fault_once, fault_parse);
	pthread_mutex_lock(&fault_lock);
	fault_parse();
	pthread_mutex_unlock(&fault_lock);
}

int bkr_io_fault(const char *point)
{
	struct fault *f = NULL;

	pthread_once(&fault_once, fault_parse);
	/* every spec of the point counts every pass (a fault that fires does not
	 * hide the pass from later specs: "read:2:stop,read:4:stop" stops twice) */
	for (int i = 0; i < nfaults; i++) {
		if (strcmp(faults[i].point, point) != 0)
			continue;
		if (atomic_fetch_add(&faults[i].hits, 1) + 1 == faults[i].nth && !f)
			f = &faults[i];
	}
	if (f) {
		if (f->action == 2)
			raise(SIGKILL);
		if (f->action == 3) {
			void (*hook)(void) = stop_hook;
			if (hook)
				hook();
			raise(SIGSTOP); /* a test changes the world, then sends SIGCONT */
			return 0;
		}
		return bkr_error_set_errno(f->action == 1 ? ENOSPC : EIO,
					   "injected fault at %s", point);
	}
	return 0;
}

void bkr_io_fault_on_stop(void (*hook)(void))
{
	stop_hook = hook;
}

#else /* a release build: BKR_FAULT means nothing */

void bkr_io_fault_on_stop(void (*hook)(void))
{
	(void)hook;
}

void bkr_io_fault_reset(void)
{
}

int bkr_io_fault(const char *point)
{
	(void)point;
	return 0;
}

#endif

/* ---- plain I/O ---------------------------------------------------------- */

const char *bkr_path_under(const char *path, const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return path[0] == '/' ? path + 1 : NULL;
	if (strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return path[n] ? path + n + 1 : path + n;
	return NULL;
}

size_t bkr_io_fd_share(size_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < want)
		want = (size_t)rl.rlim_cur / 4;
	return want > 0 ? want : 1;
}

int bkr_path_join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "path too long: %s/%s", a, b);
	return 0;
}

int bkr_io_open_file(const char *path, size_t max, int *fd_out, size_t *size)
{
	struct stat st;
	int fd, err = 0;

	*fd_out = -1;
	*size = 0;
	/* O_NONBLOCK: a FIFO in the way must not block the open; it is refused below */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0)
		return bkr_error_set_errno(errno, "%s", path);
	if (fstat(fd, &st) < 0)
		err = bkr_error_set_errno(errno, "%s", path);
	else if (!S_ISREG(st.st_mode))
		err = bkr_error_set(BKR_ECORRUPT, "%s: not a regular file", path);
	else if ((uint64_t)st.st_size > max)
		err = bkr_error_set(BKR_ECORRUPT, "%s: too large (%lld bytes, at most %zu)",
				    path, (long long)st.st_size, max);
	if (err < 0) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	*size = (size_t)st.st_size;
	return 0;
}

int bkr_io_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *buf = NULL;
	size_t size;
	int fd, err;

	*out = NULL;
	*len = 0;
	if ((err = bkr_io_open_file(path, max, &fd, &size)) < 0)
		return err;
	if (!(buf = malloc(size + 1))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_io_pread_full(fd, buf, size, 0, path)) < 0)
		goto done;
	buf[size] = '\0';
	*out = buf;
	*len = size;
	buf = NULL;
done:
	free(buf);
	close(fd);
	return err;
}

int bkr_io_write_full(int fd, const void *buf, size_t len, const char *what)
{
	const uint8_t *p = buf;
	int err;
	if ((err = bkr_io_fault("write")) < 0) {
		bkr_error_prefix("write %s", what); /* as a real failure here names the file */
		return err;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return bkr_error_set_errno(errno, "write %s", what);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bkr_io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return bkr_error_set_errno(errno, "write %s", what);
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int bkr_io_pwrite_direct(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
	const uint8_t *p = buf;
	size_t head = len & ~(size_t)(BKR_IO_DIRECT_ALIGN - 1), done = 0;
	int fl, err = 0;

	if (head && off % BKR_IO_DIRECT_ALIGN == 0 && (fl = fcntl(fd, F_GETFL)) >= 0 &&
	    fcntl(fd, F_SETFL, fl | O_DIRECT) == 0) {
		while (done < head) {
			ssize_t n = pwrite(fd, p + done, head - done, (off_t)(off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EINVAL)
				break; /* alignment the device does not take: the rest through the cache */
			if (n < 0) {
				err = bkr_error_set_errno(errno, "write %s", what);
				break;
			}
			done += (size_t)n;
			if (done % BKR_IO_DIRECT_ALIGN)
				break; /* a short write off the alignment: the rest through the cache */
		}
		if (fcntl(fd, F_SETFL, fl) < 0 && err == 0)
			err = bkr_error_set_errno(errno, "write %s: fcntl", what);
		if (err < 0)
			return err;
	}
	return bkr_io_pwrite_full(fd, p + done, len - done, off + done, what);
}

int bkr_io_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
	uint8_t *p = buf;
	int err;
	if ((err = bkr_io_fault("read")) < 0) {
		bkr_error_prefix("read %s", what); /* as a real failure here names the file */
		return err;
	}
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return bkr_error_set_errno(errno, "read %s", what);
		}
		if (n == 0)
			return bkr_error_set(BKR_ECORRUPT, "%s: truncated (wanted %zu more bytes at offset %llu)",
					     what, len, (unsigned long long)off);
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync @p fd through fault point @p point. */
static int fsync_at(int fd, const char *what, const char *point)
{
	int err;
	if ((err = bkr_io_fault(point)) < 0) {
		bkr_error_prefix("fsync %s", what); /* as a real failure here names the file */
		return err;
	}
	if (fsync(fd) < 0)
		return bkr_error_set_errno(errno, "fsync %s", what);
	return 0;
}

int bkr_io_fsync(int fd, const char *what)
{
	return fsync_at(fd, what, "fsync");
}

static int fsync_dir_at(const char *dir, const char *point)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err, e;
	if (fd < 0) {
		e = errno;
		err = bkr_error_set_errno(e, "open directory %s", dir);
		errno = e; /* for the caller's EMFILE test */
		return err;
	}
	err = fsync_at(fd, dir, point);
	close(fd);
	return err;
}

int bkr_io_fsync_dir(const char *dir)
{
	return fsync_dir_at(dir, "fsync");
}

/* mkdir @p buf (a path, changed and restored here); made and @p durable: its parent fsynced.
 * Out of descriptors for that fsync (EMFILE, ENFILE), the folder just made is removed again when
 * still empty and the error's errno kept: nothing made, the caller may free some and ask again. */
static int mkdir_one(char *buf, mode_t mode, bool durable)
{
	char *slash;
	int err, e;
	if (mkdir(buf, mode) < 0)
		return errno == EEXIST ? 0 : bkr_error_set_errno(errno, "mkdir %s", buf);
	if (!durable || !(slash = strrchr(buf, '/')))
		return 0;
	if (slash == buf)
		return fsync_dir_at("/", "mkdir-fsync");
	*slash = '\0';
	err = fsync_dir_at(buf, "mkdir-fsync");
	e = errno;
	*slash = '/';
	if (err < 0 && (e == EMFILE || e == ENFILE) && rmdir(buf) == 0) {
		errno = e;
		return err;
	}
	if (err < 0) {
		*slash = '\0';
		bkr_error_prefix("%s/%s is made, but that may not be on disk", buf, slash + 1);
		*slash = '/';
	}
	return err;
}

static int mkdir_p(const char *path, mode_t mode, bool durable)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	int err;
	if (n == 0 || n >= sizeof(buf))
		return bkr_error_set(BKR_EINVAL, "bad directory path '%s'", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if ((err = mkdir_one(buf, mode, durable)) < 0)
			return err;
		*p = '/';
	}
	return mkdir_one(buf, mode, durable);
}

int bkr_io_mkdir_p(const char *path, mode_t mode)
{
	return mkdir_p(path, mode, false);
}

int bkr_io_mkdir_p_durable(const char *path, mode_t mode)
{
	return mkdir_p(path, mode, true);
}

int bkr_io_tmpfile(const char *dir, char *tmp, size_t tmp_cap, int *fd_out)
{
	uint8_t rnd[8];
	char hex[17], name[32];
	int err;

	*fd_out = -1;
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(name, sizeof(name), ".tmp-%s", hex);
	if ((err = bkr_path_join(tmp, tmp_cap, dir, name)) < 0)
		return err;
	*fd_out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (*fd_out < 0) {
		int e = errno;
		err = bkr_error_set_errno(e, "create %s", tmp);
		errno = e;
		return err;
	}
	return 0;
}

static int dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 1;
	if (n == 0)
		n = 1; /* "/name" */
	if (n >= cap)
		return bkr_error_set(BKR_EINVAL, "path too long: %s", path);
	memcpy(out, slash ? path : ".", n);
	out[n] = '\0';
	return 0;
}

#define LINK_TRIES 4 /* links of a temporary whose final's directory keeps vanishing */

/*
 * A link of @p tmp to @p final failed with ENOENT: when @p tmp is still there
 * and the directory of @p final is not, make that directory again (with the
 * mode of @p tmp's, its parent for a pack: data/ for data/XX) and true (link
 * again).  A writer whose publish fails removes the pack folder it made when
 * it is empty (store_local.c), which another writer that found the folder
 * made may be about to link into.  Only that one directory is made: a
 * repository or tier removed or unmounted stays an error.  errno stays ENOENT.
 */
static bool final_dir_remade(const char *tmp, const char *final)
{
	char dir[PATH_MAX], tdir[PATH_MAX];
	struct stat st;

	/* made: durable, as bkr_io_mkdir_p_durable makes it (its parent fsynced) */
	bool again = access(tmp, F_OK) == 0 && dir_of(final, dir, sizeof(dir)) == 0 &&
		dir_of(tmp, tdir, sizeof(tdir)) == 0 && strcmp(dir, tdir) != 0 && stat(tdir, &st) == 0 &&
		(mkdir(dir, st.st_mode & 07777) == 0
			 ? dir_of(dir, tdir, sizeof(tdir)) == 0 && fsync_dir_at(tdir, "mkdir-fsync") == 0
			 : errno == EEXIST);

	errno = ENOENT; /* the link's error, for its message */
	return again;
}

int bkr_io_commit_tmp(int fd, const char *tmp, const char *final, unsigned flags)
{
	char dir[PATH_MAX];
	int err = 0;

	if (!(flags & BKR_IO_NOSYNC) && (err = bkr_io_fsync(fd, tmp)) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		err = bkr_error_set_errno(errno, "close %s", tmp);
		goto fail;
	}
	fd = -1;
	if ((err = bkr_io_fault("rename")) < 0) {
		bkr_error_prefix("link %s to %s", tmp, final);
		goto fail;
	}
	/* ENOENT here is not "not found": the temporary was just written, so
	 * it or the destination's directory vanished under us (a tier or
	 * repository directory removed or unmounted) — an I/O error. */
	if (flags & BKR_IO_REPLACE) {
		if (rename(tmp, final) < 0) {
			if (errno == ENOENT)
				err = bkr_error_set(BKR_EIO, "rename %s to %s: %s", tmp, final, strerror(errno));
			else
				err = bkr_error_set_errno(errno, "rename %s to %s", tmp, final);
			goto fail;
		}
	} else {
		/* link(2) never replaces: EEXIST if the final name is taken. */
		int r, tries = 1;
		while ((r = link(tmp, final)) < 0 && errno == ENOENT && tries++ < LINK_TRIES && final_dir_remade(tmp, final))
			;
		if (r < 0) {
			if (errno == EEXIST)
				err = bkr_error_set(BKR_EEXISTS, "%s: already exists, not replaced", final);
			else if (errno == ENOENT)
				err = bkr_error_set(BKR_EIO, "link %s to %s: %s", tmp, final, strerror(errno));
			else
				err = bkr_error_set_errno(errno, "link %s to %s", tmp, final);
			goto fail;
		}
		unlink(tmp);
	}
	if ((err = dir_of(final, dir, sizeof(dir))) < 0)
		return err;
	if (!(flags & BKR_IO_NOSYNC) && (err = bkr_io_fsync_dir(dir)) < 0) {
		/* the work is done, its durability unknown: say which */
		bkr_error_prefix("%s is in place, but may not be on disk", final);
		return err;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}

int bkr_io_publish(const char *dir, const char *name, const void *data, size_t len, unsigned flags)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	int fd, err;

	if ((err = bkr_path_join(final, sizeof(final), dir, name)) < 0)
		return err;
	if ((err = bkr_io_tmpfile(dir, tmp, sizeof(tmp), &fd)) < 0)
		return err;
	if ((err = bkr_io_write_full(fd, data, len, tmp)) < 0) {
		close(fd);
		unlink(tmp);
		return err;
	}
	return bkr_io_commit_tmp(fd, tmp, final, flags);
}

/* A fresh temporary name, "<prefix><16 random hex digits>", in @p name. */
static int tmp_name_at(const char *prefix, char *name, size_t cap)
{
	uint8_t rnd[8];
	char hex[17];
	int err, n;

	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	n = snprintf(name, cap, "%s%s", prefix, hex);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "temporary name too long: %s", prefix);
	return 0;
}

int bkr_io_tmpfile_at(int dirfd, const char *prefix, char *name, size_t cap, int *fd_out)
{
	int err;

	*fd_out = -1;
	if ((err = tmp_name_at(prefix, name, cap)) < 0)
		return err;
	*fd_out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd_out < 0)
		return bkr_error_set_errno(errno, "create %s", name);
	return 0;
}

int bkr_io_open_anon(int dirfd, const char *fault)
{
	int fd;

	if (fault && bkr_io_fault(fault) < 0) {
		errno = EOPNOTSUPP;
		fd = -1;
	} else {
		fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	}
	/* EISDIR: a kernel that predates it takes it for O_DIRECTORY */
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
		return -2;
	return fd;
}

int bkr_io_link_anon(int fd, int dirfd, const char *name)
{
	char pp[64];

	snprintf(pp, sizeof(pp), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, pp, dirfd, name, AT_SYMLINK_FOLLOW);
}

int bkr_io_name_anon(int fd, int dirfd, const char *prefix, char *name, size_t cap)
{
	int err;

	for (int tries = 0; tries < 16; tries++) {
		if ((err = tmp_name_at(prefix, name, cap)) < 0)
			return err;
		if (bkr_io_link_anon(fd, dirfd, name) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	err = bkr_error_set_errno(errno, "link %s", name);
	*name = 0;
	return err;
}

int bkr_io_commit_at(int fd, int dirfd, const char *tmp, const char *final, unsigned flags, const char *what)
{
	bool anon = !*tmp; /* a file without a name (bkr_io_open_anon): linked, then closed */
	int err = 0, r;

	if (anon && (fd < 0 || (flags & BKR_IO_REPLACE))) {
		err = bkr_error_set(BKR_EINVAL, "%s: a file without a name is linked, never put over another", what);
		goto fail;
	}
	if (fd >= 0 && !(flags & BKR_IO_NOSYNC) && (err = bkr_io_fsync(fd, what)) < 0)
		goto fail;
	if (!anon && fd >= 0 && close(fd) < 0) {
		fd = -1;
		err = bkr_error_set_errno(errno, "close %s", what);
		goto fail;
	}
	if (!anon)
		fd = -1;
	if ((err = bkr_io_fault("rename")) < 0) {
		bkr_error_prefix("rename %s to %s", anon ? "the temporary" : tmp, final);
		goto fail;
	}
	if (anon)
		r = bkr_io_link_anon(fd, dirfd, final);
	else if (flags & BKR_IO_REPLACE)
		r = renameat(dirfd, tmp, dirfd, final);
	else
		r = renameat2(dirfd, tmp, dirfd, final, RENAME_NOREPLACE);
	if (r < 0) {
		if (errno == EEXIST)
			err = bkr_error_set(BKR_EEXISTS, "%s: already exists, not replaced", what);
		else if (errno == ENOENT) /* as in bkr_io_commit_tmp: our own temporary or its directory vanished */
			err = bkr_error_set(BKR_EIO, "rename %s: %s", what, strerror(errno));
		else
			err = bkr_error_set_errno(errno, "rename %s", what);
		goto fail;
	}
	if (anon) {
		r = close(fd);
		fd = -1;
		if (r < 0) {
			err = bkr_error_set_errno(errno, "close %s", what);
			bkr_error_prefix("%s is in place, but may not be on disk", what);
			return err;
		}
	}
	if (!(flags & BKR_IO_NOSYNC) && (err = bkr_io_fsync(dirfd, what)) < 0) {
		bkr_error_prefix("%s is in place, but may not be on disk", what);
		return err;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (!anon)
		unlinkat(dirfd, tmp, 0);
	return err;
}
