/** @file
 * The local-directory store (bkr/store.h): objects are files under a root
 * directory, named by their relative path.
 *
 * Publishing follows bkr/io.h's protocol (temporary ".tmp-*" in the target's
 * directory, fsync, link(2) without replacing, unlink, directory fsync), so a
 * crash leaves no object or a complete one.  Ranged reads are one pread(2)
 * through an LRU of open descriptors (a mount reads blobs of the same packs
 * over and over; an fd stays valid while its file moves to another tier or
 * to trash).  Locks are flock(2) on a lock file, so a killed holder never
 * blocks anyone.  The fault points of BKR_FAULT are io.c's, under this file,
 * and this file's stat and rename.
 *
 * An upload (a pack) is staged in memory, in a window of STAGE_WINDOW bytes,
 * and written with O_DIRECT (bkr_io_pwrite_direct): the kernel then neither
 * copies it into the page cache nor writes the copy back.  A full window is
 * handed to the store's flusher thread, which writes it while the upload goes
 * on in a second window (so the writer's thread, which appends to a pack
 * under its lock, never waits for the disk unless the disk is behind), and
 * the last, partial window is written when the upload is published
 * (bkr_store_upload_fill has its bytes made in the windows themselves: a blob
 * is sealed there, never copied; a window is handed over once filled).  The
 * publish protocol is the same (every window written, then fsync, link,
 * directory fsync).  So an upload holds at most two windows whatever its
 * size (a new window's pages are resident only once written).  Windows no
 * upload holds are kept for the next upload (at most STAGE_KEEP, so their
 * pages are faulted in once) while any upload is open, and unmapped when the
 * last one ends (the end of a backup's, copy's or prune's packs, or of a
 * tier migration's pack).
 */
#include "bkr/store.h"
#include "bkr/error.h"
#include "bkr/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FD_CACHE 64
#define READ_AHEAD_MAX (4 << 20) /* objects up to this size are read ahead whole on request */
#define DIR_MODE 0700
#define STAGE_WINDOW (2u << 20) /* an upload's staging window, written with O_DIRECT whenever full */
#define STAGE_KEEP 4            /* idle windows kept while uploads are open */

struct fd_slot {
	uint64_t hash;     /* of the object name, checked before the name */
	int fd;
	int refs;          /* readers using fd now */
	uint64_t used;     /* LRU clock */
	bool valid;
	bool stale;        /* removed or moved: closed when the last reader is done */
	char path[PATH_MAX];
};

typedef struct local_store {
	bkr_store base;
	struct local_store *next; /* in the process's list of local stores (stores_lock) */
	/* guards slots[] and clock; a borrower (fd_get) reads its slot's fd
	 * without it: refs > 0 keeps the slot from being closed or reused */
	pthread_mutex_t lock;
	struct fd_slot slots[FD_CACHE];
	int ncache;            /* descriptors all local stores of the process cache at most (cached_fds) */
	uint64_t clock;
	/* staging windows and the flusher thread (stage_lock) */
	pthread_mutex_t stage_lock;
	pthread_cond_t flush_cv;     /* a full window queued, or stop */
	pthread_cond_t flushed_cv;   /* a window written */
	uint8_t *idle[STAGE_KEEP];   /* windows no upload holds */
	int nidle;
	int uploads;                 /* uploads open (not yet published or abandoned) */
	size_t mapped;               /* bytes of windows mapped: idle, filling or being written */
	struct local_upload *flushq, *flushq_tail; /* uploads with a full window to write, oldest first */
	bool flusher_on, flusher_stop;
	pthread_t flusher;
} local_store;

typedef struct local_upload {
	bkr_store_upload base;
	/* the owner's (one thread at a time), but for fd, tmp and spare, which the
	 * flusher reads without stage_lock while flushing: the owner changes them
	 * (and the spare window's bytes) only once flush_idle has seen flushing
	 * false under stage_lock */
	int fd;
	char tmp[PATH_MAX];    /* "" once published or removed */
	bool open;             /* counted in the store's uploads */
	uint8_t *win;          /* the window being filled (STAGE_WINDOW mapped); NULL: through the page cache */
	uint8_t *spare;        /* the second window (or NULL): the one the flusher writes while flushing */
	size_t staged;         /* bytes in win */
	uint64_t off;          /* the file offset of win[0] */
	/* (stage_lock) */
	bool flushing;         /* spare is queued or being written at flush_off */
	uint64_t flush_off;
	struct local_upload *flush_next;
	int flush_err;         /* the flusher's failure, reported by the next write that waits or the publish */
	char flush_msg[PATH_MAX + 256]; /* its message whole ("write TMP: why": TMP may be near PATH_MAX) */
} local_upload;

typedef struct {
	bkr_store_held base;
	int fd;
} local_held;

/* Descriptors cached by all the local stores of the process, at most a
 * quarter of the limit of open files: a copy from a repository with two tiers
 * opens four stores, and each keeping its own quarter left none under ulimit
 * -n 32 to create the destination's packs. */
static atomic_int cached_fds;

/* Every local store of the process, for bkr_store_local_shed: an open that
 * finds the process out of descriptors may find them cached by another store
 * (a restore from a tiered repository reads a tree pack of the repository
 * while the tiers' stores hold the quarter). */
static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static struct local_store *stores;

/* Readers of all local stores between fd_get and fd_put (lent: holding a
 * descriptor or opening one; waiting: of those, the ones that found none to
 * open and wait in fd_wait for one to come back, as each is held for one read
 * only), and a count of the descriptors returned (lent_lock). */
static pthread_mutex_t lent_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lent_cv = PTHREAD_COND_INITIALIZER;
static int lent, waiting;
static uint64_t returned;

static int path_of(const bkr_store *s, const char *name, char *out)
{
	return bkr_store_describe(s, name, out, PATH_MAX);
}

/* The directory holding @p path into @p dir (PATH_MAX); false when it has none. */
static bool parent_of(const char *path, char *dir)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n == 0 || n >= PATH_MAX)
		return false;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return true;
}

/* mkdir -p @p dir, durably; out of descriptors for a parent's fsync (nothing made then), the
 * stores' idle ones closed and once more, as for a temporary (local_upload_new). */
static int make_dir(const char *dir)
{
	int err = bkr_io_mkdir_p_durable(dir, DIR_MODE);

	if (err < 0 && bkr_store_local_shed_for(errno)) {
		bkr_error_clear();
		err = bkr_io_mkdir_p_durable(dir, DIR_MODE);
	}
	return err;
}

/* mkdir -p the directory holding @p path, durably (an object published into it is not lost with it). */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	return parent_of(path, dir) ? make_dir(dir) : 0;
}

/* no version tag: a local file's is its mtime (@p tag stays "") */
static int local_stat_time(bkr_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	char path[PATH_MAX];
	struct stat st;
	int err;
	(void)tag;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	if ((err = bkr_io_fault("stat")) < 0) {
		bkr_error_prefix("%s", path); /* as a real failure here names the file */
		return err;
	}
	if (stat(path, &st) < 0)
		return bkr_error_set_errno(errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return bkr_error_set(BKR_ECORRUPT, "%s: not a regular file", path);
	*size = (uint64_t)st.st_size;
	*mtime = (int64_t)st.st_mtime;
	return 0;
}

static int local_stat(bkr_store *s, const char *name, uint64_t *size)
{
	int64_t mtime;
	return local_stat_time(s, name, size, &mtime, NULL);
}

static int local_get(bkr_store *s, const char *name, size_t max, uint8_t **out, size_t *len)
{
	char path[PATH_MAX];
	int err;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	return bkr_io_read_file(path, max, out, len);
}

static uint64_t name_hash(const char *p)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

/* A cached slot for @p path with a reference taken, or -1 (ls->lock held). */
static int slot_find(local_store *ls, uint64_t h, const char *path)
{
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid && !sl->stale && sl->hash == h && !strcmp(sl->path, path)) {
			sl->refs++;
			sl->used = ++ls->clock;
			return i;
		}
	}
	return -1;
}

/* Close a cached slot's descriptor and free the slot (ls->lock held). */
static void slot_close(struct fd_slot *sl)
{
	close(sl->fd);
	sl->valid = false;
	atomic_fetch_sub(&cached_fds, 1);
}

/* Close every cached descriptor of @p ls that no one borrows; false when none was idle. */
static bool fd_shed(local_store *ls)
{
	bool any = false;

	pthread_mutex_lock(&ls->lock);
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid && sl->refs == 0) {
			slot_close(sl);
			any = true;
		}
	}
	pthread_mutex_unlock(&ls->lock);
	return any;
}

bool bkr_store_local_shed(void)
{
	bool any = false;

	pthread_mutex_lock(&stores_lock);
	for (local_store *ls = stores; ls; ls = ls->next)
		any |= fd_shed(ls);
	pthread_mutex_unlock(&stores_lock);
	return any;
}

size_t bkr_store_local_cache_max(void)
{
	return bkr_io_fd_share(INT_MAX);
}

bool bkr_store_local_shed_for(int e)
{
	bool any = (e == EMFILE || e == ENFILE) && bkr_store_local_shed();

	errno = e;
	return any;
}

/*
 * An open for a read found the process out of descriptors (errno EMFILE,
 * ENFILE): close the idle ones of every store, else wait until another
 * reader returns one it holds, and true (open again); false, errno kept,
 * when none is idle and every other reader waits too (what fills the limit
 * is not the stores').
 *
 * Deadlock-free only because no thread takes a second descriptor while it
 * holds one: fd_get's callers (local_get_range, local_advise) read or advise
 * and fd_put before anything else, and never nest.  A reader holding one and
 * waiting here for another would count twice in lent and once in waiting,
 * so "lent > waiting" would keep it waiting for itself.  A new caller of
 * fd_get must fd_put before it can reach fd_get again.
 */
static bool fd_wait(void)
{
	int e = errno;
	bool again = bkr_store_local_shed();

	if (!again) {
		pthread_mutex_lock(&lent_lock);
		waiting++;
		pthread_cond_broadcast(&lent_cv); /* one reader fewer that may give one back */
		uint64_t seen = returned;
		while (lent > waiting && returned == seen)
			pthread_cond_wait(&lent_cv, &lent_lock);
		again = returned != seen;
		waiting--;
		pthread_mutex_unlock(&lent_lock);
	}
	errno = e;
	return again;
}

/* A reader enters fd_get (@p n 1) or leaves it with none or through fd_put (-1). */
static void fd_lent(int n)
{
	pthread_mutex_lock(&lent_lock);
	lent += n;
	if (n < 0) {
		returned++;
		if (waiting)
			pthread_cond_broadcast(&lent_cv);
	}
	pthread_mutex_unlock(&lent_lock);
}

/*
 * Borrow a descriptor for @p path: *slot is the cache slot to release with
 * fd_put, or -1 for an uncached fd (every slot busy) that fd_put closes.
 */
static int fd_get(local_store *ls, const char *path, unsigned flags, int *fd_out, int *slot_out)
{
	uint64_t h = name_hash(path);
	int fd, victim = -1, i;

	fd_lent(1); /* from the start: a waiter never misses a descriptor being opened */
	pthread_mutex_lock(&ls->lock);
	i = slot_find(ls, h, path);
	pthread_mutex_unlock(&ls->lock);
	if (i >= 0) {
		*fd_out = ls->slots[i].fd;
		*slot_out = i;
		return 0;
	}
	/* O_NONBLOCK: a FIFO put where an object was must not block the open (and
	 * every reader after it, a mount's too); what is no regular file is
	 * refused below, as bkr_io_open_file and a stat refuse it */
	while ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0 &&
	       (errno == EMFILE || errno == ENFILE) && fd_wait())
		;
	if (fd < 0) {
		int err = bkr_error_set_errno(errno, "open %s", path);
		fd_lent(-1);
		return err;
	}
	struct stat st;
	int bad = 0;
	if (fstat(fd, &st) < 0)
		bad = bkr_error_set_errno(errno, "%s", path);
	else if (!S_ISREG(st.st_mode))
		bad = bkr_error_set(BKR_ECORRUPT, "%s: not a regular file", path);
	if (bad < 0) {
		close(fd);
		fd_lent(-1);
		return bad;
	}
	/* A small object read all over (tree packs are written children first
	 * and walked parents first): one asynchronous read of the whole of it
	 * beats a disk seek per piece on a cold `ls -lR` or restore. */
	if ((flags & BKR_STORE_READ_AHEAD) && st.st_size <= READ_AHEAD_MAX)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);

	pthread_mutex_lock(&ls->lock);
	if ((i = slot_find(ls, h, path)) >= 0) { /* raced with another opener */
		pthread_mutex_unlock(&ls->lock);
		close(fd);
		*fd_out = ls->slots[i].fd;
		*slot_out = i;
		return 0;
	}
	/* a free slot while the process caches fewer than its share, else the
	 * least recently used idle one of this store, else none (uncached) */
	bool room = atomic_fetch_add(&cached_fds, 1) < ls->ncache;
	for (i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (sl->valid ? sl->refs > 0 : !room)
			continue;
		if (victim < 0 || !sl->valid || (ls->slots[victim].valid && sl->used < ls->slots[victim].used))
			victim = i;
	}
	if (victim < 0 || ls->slots[victim].valid)
		atomic_fetch_sub(&cached_fds, 1); /* no slot, or one that stays taken */
	*fd_out = fd;
	*slot_out = victim;
	if (victim >= 0) {
		struct fd_slot *sl = &ls->slots[victim];
		if (sl->valid)
			close(sl->fd);
		sl->hash = h;
		sl->fd = fd;
		sl->refs = 1;
		sl->used = ++ls->clock;
		sl->valid = true;
		sl->stale = false;
		snprintf(sl->path, sizeof(sl->path), "%s", path);
	}
	pthread_mutex_unlock(&ls->lock);
	return 0;
}

/* Release a borrowed descriptor; @p drop forgets it (a failed read: the next
 * one opens the file afresh, wherever it is now). */
static void fd_put(local_store *ls, int fd, int slot, bool drop)
{
	if (slot < 0) {
		close(fd);
		fd_lent(-1);
		return;
	}
	pthread_mutex_lock(&ls->lock);
	struct fd_slot *sl = &ls->slots[slot];
	if (--sl->refs == 0 && (drop || sl->stale))
		slot_close(sl);
	pthread_mutex_unlock(&ls->lock);
	fd_lent(-1);
}

/* @p path no longer names what a cached descriptor reads. */
static void fd_forget(local_store *ls, const char *path)
{
	uint64_t h = name_hash(path);
	pthread_mutex_lock(&ls->lock);
	for (int i = 0; i < FD_CACHE; i++) {
		struct fd_slot *sl = &ls->slots[i];
		if (!sl->valid || sl->hash != h || strcmp(sl->path, path))
			continue;
		if (sl->refs == 0)
			slot_close(sl);
		else
			sl->stale = true;
	}
	pthread_mutex_unlock(&ls->lock);
}

static int local_get_range(bkr_store *s, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	local_store *ls = (local_store *)s;
	char path[PATH_MAX];
	int fd = -1, slot = -1, err;

	if ((err = path_of(s, name, path)) < 0 || (err = fd_get(ls, path, flags, &fd, &slot)) < 0)
		return err;
	err = bkr_io_pread_full(fd, buf, len, off, path);
	fd_put(ls, fd, slot, err < 0);
	return err;
}

/* posix_fadvise(WILLNEED) queues the reads and returns: the next pread of
 * the range finds it in the page cache or already on its way. */
static int local_advise(bkr_store *s, const char *name, uint64_t off, uint64_t len)
{
	char path[PATH_MAX];
	int fd = -1, slot = -1, err;

	/* through the descriptor cache: a restore advises every chunk of a pack it then reads */
	if ((err = path_of(s, name, path)) < 0 || (err = fd_get((local_store *)s, path, 0, &fd, &slot)) < 0)
		return err;
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	fd_put((local_store *)s, fd, slot, false);
	return 0;
}

static int local_put(bkr_store *s, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX], *slash;
	int err;
	if ((err = path_of(s, name, path)) < 0 || (err = make_parent(path)) < 0)
		return err;
	slash = strrchr(path, '/');
	*slash = '\0';
	return bkr_io_publish(path, slash + 1, data, len, BKR_IO_NOREPLACE);
}

/* A window (STAGE_WINDOW bytes, page-aligned): an idle one, else a new
 * mapping, whose pages are faulted in as they are written.  NULL when none
 * can be had. */
static uint8_t *window_get(local_store *ls)
{
	uint8_t *b = NULL;
	pthread_mutex_lock(&ls->stage_lock);
	if (ls->nidle > 0)
		b = ls->idle[--ls->nidle];
	else
		ls->mapped += STAGE_WINDOW;
	pthread_mutex_unlock(&ls->stage_lock);
	if (b)
		return b;
	b = mmap(NULL, STAGE_WINDOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b != MAP_FAILED)
		return b;
	pthread_mutex_lock(&ls->stage_lock);
	ls->mapped -= STAGE_WINDOW;
	pthread_mutex_unlock(&ls->stage_lock);
	return NULL;
}

/* Give back window @p b (NULL: none): kept while uploads are open, else unmapped. */
static void window_put(local_store *ls, uint8_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&ls->stage_lock);
	if (ls->uploads > 0 && ls->nidle < STAGE_KEEP) {
		ls->idle[ls->nidle++] = b;
		b = NULL;
	} else {
		ls->mapped -= STAGE_WINDOW;
	}
	pthread_mutex_unlock(&ls->stage_lock);
	if (b)
		munmap(b, STAGE_WINDOW);
}

/* @p u is no longer open; when it was the last, the idle windows are unmapped. */
static void upload_end(local_upload *u)
{
	local_store *ls = (local_store *)u->base.store;
	uint8_t *unmap[STAGE_KEEP];
	int n = 0;
	if (!u->open)
		return;
	u->open = false;
	pthread_mutex_lock(&ls->stage_lock);
	if (--ls->uploads == 0) {
		while (ls->nidle > 0)
			unmap[n++] = ls->idle[--ls->nidle];
		ls->mapped -= (size_t)n * STAGE_WINDOW;
	}
	pthread_mutex_unlock(&ls->stage_lock);
	while (n > 0)
		munmap(unmap[--n], STAGE_WINDOW);
}

/* The flusher thread: write the queued full windows until told to stop with
 * none left.  A failure is the upload's, reported by its owner's next wait. */
static void *flusher_main(void *arg)
{
	local_store *ls = arg;

	pthread_mutex_lock(&ls->stage_lock);
	for (;;) {
		local_upload *u = ls->flushq;
		if (!u) {
			if (ls->flusher_stop)
				break;
			pthread_cond_wait(&ls->flush_cv, &ls->stage_lock);
			continue;
		}
		if (!(ls->flushq = u->flush_next))
			ls->flushq_tail = NULL;
		pthread_mutex_unlock(&ls->stage_lock);
		/* the owner touches neither the window nor the fd while it is flushing */
		int err = bkr_io_pwrite_direct(u->fd, u->spare, STAGE_WINDOW, u->flush_off, u->tmp);
		pthread_mutex_lock(&ls->stage_lock);
		if (err < 0) {
			u->flush_err = err;
			snprintf(u->flush_msg, sizeof(u->flush_msg), "%s", bkr_error_message());
		}
		u->flushing = false;
		pthread_cond_broadcast(&ls->flushed_cv);
	}
	pthread_mutex_unlock(&ls->stage_lock);
	bkr_error_clear();
	return NULL;
}

/* Queue @p u's spare window, full, for the flusher to write at @p off.
 * False when there is no flusher thread: the caller writes it itself. */
static bool flush_later(local_upload *u, uint64_t off)
{
	local_store *ls = (local_store *)u->base.store;
	bool queued = true;
	pthread_mutex_lock(&ls->stage_lock);
	if (!ls->flusher_on && pthread_create(&ls->flusher, NULL, flusher_main, ls) == 0)
		ls->flusher_on = true;
	if (ls->flusher_on) {
		u->flushing = true;
		u->flush_off = off;
		u->flush_next = NULL;
		if (ls->flushq_tail)
			ls->flushq_tail->flush_next = u;
		else
			ls->flushq = u;
		ls->flushq_tail = u;
		pthread_cond_signal(&ls->flush_cv);
	} else {
		queued = false;
	}
	pthread_mutex_unlock(&ls->stage_lock);
	return queued;
}

/* Wait until the flusher is done with @p u's window; its failure, if any. */
static int flush_idle(local_upload *u)
{
	local_store *ls = (local_store *)u->base.store;
	int err;
	pthread_mutex_lock(&ls->stage_lock);
	while (u->flushing)
		pthread_cond_wait(&ls->flushed_cv, &ls->stage_lock);
	err = u->flush_err;
	pthread_mutex_unlock(&ls->stage_lock);
	return err;
}

/* flush_idle, with the flusher's message set in this thread. */
static int flush_wait(local_upload *u)
{
	int err = flush_idle(u);
	if (err < 0)
		bkr_error_set(err, "%s", u->flush_msg);
	return err;
}

/* @p u's window is full: handed to the flusher, the upload going on in the
 * spare window (or, without one, written here).  A pass of the fault point
 * "write", taken here, in the writing thread's order, not the flusher's. */
static int window_full(local_upload *u)
{
	uint8_t *full = u->win;
	int err;

	if ((err = bkr_io_fault("write")) < 0) {
		bkr_error_prefix("write %s", u->tmp); /* as a real failure here names the file */
		return err;
	}
	if ((err = flush_wait(u)) < 0)
		return err;
	if (!u->spare)
		u->spare = window_get((local_store *)u->base.store);
	if (u->spare) {
		u->win = u->spare;
		u->spare = full;
		if (!flush_later(u, u->off)) {
			u->spare = u->win;
			u->win = full;
		}
	}
	if (u->win == full && (err = bkr_io_pwrite_direct(u->fd, full, STAGE_WINDOW, u->off, u->tmp)) < 0)
		return err;
	u->off += STAGE_WINDOW;
	u->staged = 0;
	return 0;
}

/* The directory of folder @p prefix into @p dir (PATH_MAX), without a trailing '/'. */
static int folder_of(const bkr_store *s, const char *prefix, char *dir)
{
	size_t n;
	int err;
	if ((err = path_of(s, prefix, dir)) < 0)
		return err;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return 0;
}

static int local_upload_new(bkr_store *s, const char *prefix, bkr_store_upload **out)
{
	local_store *ls = (local_store *)s;
	char dir[PATH_MAX];
	local_upload *u;
	int err;

	if ((err = folder_of(s, prefix, dir)) < 0)
		return err;
	if ((err = make_dir(dir)) < 0) /* the pack's folder outlives a crash as the pack */
		return err;
	if (!(u = calloc(1, sizeof(*u))))
		return bkr_error_oom();
	u->base.store = s;
	/* out of descriptors: the stores' idle ones closed, once more (the
	 * index files read before a backup's first pack are cached) */
	if ((err = bkr_io_tmpfile(dir, u->tmp, sizeof(u->tmp), &u->fd)) < 0 && bkr_store_local_shed_for(errno))
		err = bkr_io_tmpfile(dir, u->tmp, sizeof(u->tmp), &u->fd);
	if (err < 0) {
		free(u);
		return err;
	}
	pthread_mutex_lock(&ls->stage_lock);
	ls->uploads++;
	pthread_mutex_unlock(&ls->stage_lock);
	u->open = true;
	u->win = window_get(ls);
	*out = &u->base;
	return 0;
}

static int upload_usable(const local_upload *u)
{
	if (u->fd < 0)
		return bkr_error_set(BKR_EINVAL, "upload already published or abandoned");
	return 0;
}

/* Give back @p u's windows (the flusher done with them). */
static void upload_release(local_upload *u)
{
	local_store *ls = (local_store *)u->base.store;
	(void)flush_idle(u);
	window_put(ls, u->win);
	window_put(ls, u->spare);
	u->win = u->spare = NULL;
	u->staged = 0;
}

/* Give up: no temporary is left behind. */
static void upload_abandon(local_upload *u)
{
	upload_release(u);
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	if (u->tmp[0])
		unlink(u->tmp);
	u->tmp[0] = '\0';
	upload_end(u);
}

/* A write's bytes, as bkr_store_fill_fn: copied from where they are. */
static int fill_copy(void *ctx, uint8_t *buf, size_t n)
{
	const uint8_t **p = ctx;
	memcpy(buf, *p, n);
	*p += n;
	return 0;
}

/* Append @p len bytes, produced by @p fill straight into the windows, piece
 * by piece; a full window goes to the flusher only once filled.  Any failure
 * abandons the upload. */
static int local_upload_fill(bkr_store_upload *base, size_t len, bkr_store_fill_fn fill, void *ctx)
{
	local_upload *u = (local_upload *)base;
	int err;
	if ((err = upload_usable(u)) < 0)
		return err;
	if (!u->win) {
		if ((err = bkr_store_upload_fill_copy(base, len, fill, ctx)) < 0)
			upload_abandon(u);
		return err;
	}
	/* a write of the upload all the same: BKR_FAULT's "write" fails it */
	if ((err = bkr_io_fault("write")) < 0) {
		bkr_error_prefix("write %s", u->tmp);
		upload_abandon(u);
		return err;
	}
	while (len > 0) {
		size_t n = len < STAGE_WINDOW - u->staged ? len : STAGE_WINDOW - u->staged;
		if ((err = fill(ctx, u->win + u->staged, n)) < 0) {
			upload_abandon(u);
			return err;
		}
		u->staged += n;
		len -= n;
		if (u->staged == STAGE_WINDOW && (err = window_full(u)) < 0) {
			upload_abandon(u);
			return err;
		}
	}
	return 0;
}

static int local_upload_write(bkr_store_upload *base, const void *data, size_t len)
{
	local_upload *u = (local_upload *)base;
	const uint8_t *p = data;
	int err;
	if ((err = upload_usable(u)) < 0)
		return err;
	if (!u->win) {
		if ((err = bkr_io_write_full(u->fd, data, len, u->tmp)) < 0)
			upload_abandon(u);
		return err;
	}
	return local_upload_fill(base, len, fill_copy, &p);
}

/* The last window's bytes, at publish: one more pass of the fault point "write". */
static int window_last(local_upload *u)
{
	int err;
	if (!u->staged)
		return 0;
	if ((err = bkr_io_fault("write")) < 0) {
		bkr_error_prefix("write %s", u->tmp);
		return err;
	}
	return bkr_io_pwrite_direct(u->fd, u->win, u->staged, u->off, u->tmp);
}

static int local_upload_publish(bkr_store_upload *base, const char *name)
{
	local_upload *u = (local_upload *)base;
	char final[PATH_MAX], dir[PATH_MAX];
	bool made = false; /* final's directory (data/XX) is this publish's */
	int err, fd;

	if ((err = upload_usable(u)) < 0)
		return err;
	if ((err = path_of(u->base.store, name, final)) == 0)
		made = parent_of(final, dir) && access(dir, F_OK) < 0 && errno == ENOENT;
	if (err < 0 || (err = make_parent(final)) < 0 || (err = flush_wait(u)) < 0 || (err = window_last(u)) < 0) {
		upload_abandon(u);
		goto done;
	}
	upload_release(u);
	/* commit_tmp closes the fd and removes the temporary on failure */
	fd = u->fd;
	u->fd = -1;
	err = bkr_io_commit_tmp(fd, u->tmp, final, BKR_IO_NOREPLACE);
	u->tmp[0] = '\0';
	upload_end(u);
done:
	/* a failed publish leaves no empty directory it made: rmdir keeps one
	 * another writer published into meanwhile (ENOTEMPTY), and its error
	 * is not the publish's */
	if (err < 0 && made)
		(void)rmdir(dir);
	return err;
}

static void local_upload_free(bkr_store_upload *base)
{
	local_upload *u = (local_upload *)base;
	upload_abandon(u);
	free(u);
}

/* What a walk calls for each object: one of the two callbacks. */
struct walk_cb {
	int (*cb)(void *ctx, const char *name);
	int (*stamped)(void *ctx, const char *name, const char *stamp);
	int (*other)(void *ctx, const char *name, const char *what); /* what is no object, only that */
	void *ctx;
};

/* What a directory entry that is no object (no regular file, no directory) is. */
static const char *other_what(unsigned char d_type, mode_t mode)
{
	if (d_type == DT_FIFO || S_ISFIFO(mode))
		return "a FIFO";
	if (d_type == DT_SOCK || S_ISSOCK(mode))
		return "a socket";
	if (d_type == DT_LNK || S_ISLNK(mode))
		return "a symbolic link";
	return "a device";
}

/* The stamp of @p st (bkr_store_list_stamped): anything that changes when
 * the file is rewritten in place or replaced.  The change time is there
 * because a copy made with its times kept (cp -p) restores the mtime. */
static void stamp_of(const struct stat *st, char *out, size_t cap)
{
	snprintf(out, cap, "%llu:%lld.%09ld:%lld.%09ld:%llu:%llu", (unsigned long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
		 st->st_ctim.tv_nsec, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

/* Walk <root>/<rel> (a directory) recursively; @p rel has no trailing '/'. */
static int walk(const char *root, char *rel, size_t rel_len, const struct walk_cb *w)
{
	char dir[PATH_MAX], stamp[BKR_STORE_STAMP_MAX];
	struct dirent *de;
	DIR *d;
	int err = 0;

	if (snprintf(dir, sizeof(dir), "%s%s%s", root, rel_len ? "/" : "", rel) >= (int)sizeof(dir))
		return bkr_error_set(BKR_EINVAL, "path too long: %s/%s", root, rel);
	if (!(d = opendir(dir))) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return bkr_error_set_errno(errno, "%s", dir);
	}
	while (err == 0 && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;
		bool is_dir, is_other, have_st = false;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rel_len + 1 + n >= PATH_MAX)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			have_st = true;
			is_dir = S_ISDIR(st.st_mode);
			is_other = !is_dir && !S_ISREG(st.st_mode);
		} else {
			is_dir = de->d_type == DT_DIR;
			is_other = !is_dir && de->d_type != DT_REG;
		}
		if (is_other && w->other) {
			size_t l = rel_len;
			if (l)
				rel[l++] = '/';
			memcpy(rel + l, de->d_name, n + 1);
			err = w->other(w->ctx, rel, other_what(de->d_type, have_st ? st.st_mode : 0));
			rel[rel_len] = '\0';
			continue;
		}
		if (is_other || (w->other && !is_dir))
			continue;
		if (!is_dir && w->stamped) {
			if (!have_st && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* gone since readdir */
			if (!S_ISREG(st.st_mode))
				continue;
			stamp_of(&st, stamp, sizeof(stamp));
		}
		size_t l = rel_len;
		if (l)
			rel[l++] = '/';
		memcpy(rel + l, de->d_name, n + 1);
		err = is_dir ? walk(root, rel, l + n, w) : w->stamped ? w->stamped(w->ctx, rel, stamp) : w->cb(w->ctx, rel);
		rel[rel_len] = '\0';
	}
	closedir(d);
	return err;
}

static int list_prefix(bkr_store *s, const char *prefix, const struct walk_cb *w)
{
	char rel[PATH_MAX];
	size_t n = strlen(prefix);
	while (n > 0 && prefix[n - 1] == '/')
		n--;
	if (n >= sizeof(rel))
		return bkr_error_set(BKR_EINVAL, "prefix too long: %s", prefix);
	memcpy(rel, prefix, n);
	rel[n] = '\0';
	return walk(s->location, rel, n, w);
}

static int local_list(bkr_store *s, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	struct walk_cb w = { .cb = cb, .ctx = ctx };
	return list_prefix(s, prefix, &w);
}

static int local_list_other(bkr_store *s, const char *prefix,
			    int (*cb)(void *ctx, const char *name, const char *what), void *ctx)
{
	struct walk_cb w = { .other = cb, .ctx = ctx };
	return list_prefix(s, prefix, &w);
}

static int local_list_stamped(bkr_store *s, const char *prefix,
			      int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	struct walk_cb w = { .stamped = cb, .ctx = ctx };
	return list_prefix(s, prefix, &w);
}

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	return parent_of(path, dir) ? bkr_io_fsync_dir(dir) : 0;
}

static int local_remove(bkr_store *s, const char *name)
{
	char path[PATH_MAX];
	int err;
	if ((err = path_of(s, name, path)) < 0)
		return err;
	if (unlink(path) < 0)
		return bkr_error_set_errno(errno, "delete %s", path);
	fd_forget((local_store *)s, path);
	if ((err = fsync_parent(path)) < 0) /* done, its durability unknown: say which */
		bkr_error_prefix("%s is deleted, but that may not be on disk", path);
	return err;
}

static int local_rename(bkr_store *s, const char *from, const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int err;
	if ((err = path_of(s, from, src)) < 0 || (err = path_of(s, to, dst)) < 0 ||
	    (err = make_parent(dst)) < 0)
		return err;
	if ((err = bkr_io_fault("rename")) < 0) {
		bkr_error_prefix("move %s to %s", src, dst); /* as a real failure here names the files */
		return err;
	}
	/* link(2) never replaces: EEXIST if the new name is taken */
	if (link(src, dst) < 0) {
		if (errno == EEXIST)
			return bkr_error_set(BKR_EEXISTS, "%s: already exists, not replaced", dst);
		return bkr_error_set_errno(errno, "move %s to %s", src, dst);
	}
	if ((err = fsync_parent(dst)) < 0)
		return err;
	if (unlink(src) < 0)
		return bkr_error_set_errno(errno, "move %s: remove the old name", src);
	fd_forget((local_store *)s, src);
	if ((err = fsync_parent(src)) < 0) /* done, its durability unknown: say which */
		bkr_error_prefix("%s is moved to %s, but that may not be on disk", src, dst);
	return err;
}

static int local_prepare(bkr_store *s, const char *prefix)
{
	char dir[PATH_MAX];
	int err;
	if ((err = path_of(s, prefix, dir)) < 0)
		return err;
	return make_dir(dir);
}

static int local_drop_folder(bkr_store *s, const char *prefix)
{
	char dir[PATH_MAX];
	int err;
	if ((err = folder_of(s, prefix, dir)) < 0)
		return err;
	/* not empty (ENOTEMPTY, or EEXIST as POSIX allows), or not there: nothing to do */
	if (rmdir(dir) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
		return bkr_error_set_errno(errno, "rmdir %s", dir);
	return 0;
}

static int local_lock(bkr_store *s, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	char path[PATH_MAX];
	local_held *l;
	int fd, err;

	if ((err = path_of(s, name, path)) < 0 || (err = make_parent(path)) < 0)
		return err;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return bkr_error_set_errno(errno, "open %s", path);
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno == EWOULDBLOCK ? bkr_error_set(BKR_ELOCKED, "%s: held by another process", path)
					   : bkr_error_set_errno(errno, "flock %s", path);
		close(fd);
		return err;
	}
	if (!(l = malloc(sizeof(*l)))) {
		close(fd);
		return bkr_error_oom();
	}
	l->base.store = s;
	l->fd = fd;
	*out = &l->base;
	return 0;
}

static void local_unlock(bkr_store_held *base)
{
	local_held *l = (local_held *)base;
	close(l->fd);
	free(l);
}

static void local_free(bkr_store *s)
{
	local_store *ls = (local_store *)s;

	pthread_mutex_lock(&stores_lock);
	for (local_store **p = &stores; *p; p = &(*p)->next)
		if (*p == ls) {
			*p = ls->next;
			break;
		}
	pthread_mutex_unlock(&stores_lock);
	for (int i = 0; i < FD_CACHE; i++)
		if (ls->slots[i].valid)
			slot_close(&ls->slots[i]);
	if (ls->flusher_on) {
		pthread_mutex_lock(&ls->stage_lock);
		ls->flusher_stop = true;
		pthread_cond_signal(&ls->flush_cv);
		pthread_mutex_unlock(&ls->stage_lock);
		pthread_join(ls->flusher, NULL);
	}
	for (int i = 0; i < ls->nidle; i++)
		munmap(ls->idle[i], STAGE_WINDOW);
	pthread_cond_destroy(&ls->flushed_cv);
	pthread_cond_destroy(&ls->flush_cv);
	pthread_mutex_destroy(&ls->stage_lock);
	pthread_mutex_destroy(&ls->lock);
	free(s->location);
	free(ls);
}

static const bkr_store_ops local_ops = {
	.stat = local_stat,
	.stat_time = local_stat_time,
	.get = local_get,
	.get_range = local_get_range,
	.advise = local_advise,
	.put = local_put,
	.upload_new = local_upload_new,
	.upload_write = local_upload_write,
	.upload_fill = local_upload_fill,
	.upload_publish = local_upload_publish,
	.upload_free = local_upload_free,
	.list = local_list,
	.list_stamped = local_list_stamped,
	.list_other = local_list_other,
	.remove = local_remove,
	.rename_new = local_rename,
	.prepare = local_prepare,
	.drop_folder = local_drop_folder,
	.lock = local_lock,
	.unlock = local_unlock,
	.free = local_free,
};

int bkr_store_local_open(bkr_store **out, const char *root, unsigned flags)
{
	local_store *ls;
	struct stat st;
	size_t n = strlen(root);
	int err;

	*out = NULL;
	if (n == 0 || n >= PATH_MAX - 256)
		return bkr_error_set(BKR_EINVAL, "bad directory '%s'", root);
	if ((flags & BKR_STORE_CREATE) && (err = bkr_io_mkdir_p_durable(root, DIR_MODE)) < 0)
		return err;
	if (stat(root, &st) < 0) {
		if (!(errno == ENOENT && (flags & BKR_STORE_ABSENT_OK)))
			return bkr_error_set_errno(errno, "%s", root);
		st.st_mode = S_IFDIR;
	}
	if (!S_ISDIR(st.st_mode))
		return bkr_error_set(BKR_ENOTFOUND, "%s: not a directory", root);
	if (!(ls = calloc(1, sizeof(*ls))))
		return bkr_error_oom();
	ls->base.ops = &local_ops;
	if (!(ls->base.location = strdup(root))) {
		free(ls);
		return bkr_error_oom();
	}
	while (n > 1 && ls->base.location[n - 1] == '/')
		ls->base.location[--n] = '\0';
	/* FD_CACHE a store, and a quarter of the process's descriptors for all:
	 * the rest are for the files a command reads and writes, its threads */
	ls->ncache = (int)bkr_store_local_cache_max();
	pthread_mutex_init(&ls->lock, NULL);
	pthread_mutex_init(&ls->stage_lock, NULL);
	pthread_cond_init(&ls->flush_cv, NULL);
	pthread_cond_init(&ls->flushed_cv, NULL);
	pthread_mutex_lock(&stores_lock);
	ls->next = stores;
	stores = ls;
	pthread_mutex_unlock(&stores_lock);
	*out = &ls->base;
	return 0;
}

size_t bkr_store_local_staging(bkr_store *s)
{
	local_store *ls = (local_store *)s;
	size_t n;
	if (!s || s->ops != &local_ops)
		return 0;
	pthread_mutex_lock(&ls->stage_lock);
	n = ls->mapped;
	pthread_mutex_unlock(&ls->stage_lock);
	return n;
}
