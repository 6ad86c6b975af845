/** @file
 * The page-cache store (pagestore.h): whole decoded chunks pushed into the
 * kernel's page cache of a file with FUSE notify_store, from one thread of
 * its own or from a prefetch worker that has just loaded a small file.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <errno.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkrfs.h"
#include "pagestore.h"
#include "workq.h"

#define STORE_QUEUE 64
/* how long a queued store waits for the kernel to make its inode */
#define STORE_WAIT_NS 2000000000LL

struct store_job {
	bkrfs_ino ino;
	uint64_t off;
	bkrfs_cache_entry *ent;   /**< a reference to the chunk */
	const uint8_t *buf;
	size_t len;
	int64_t until_ns;         /**< after an ENOENT: tried again until then (0: not yet) */
};

/* a job done or left at stop: its reference to the chunk goes */
static void store_drop(void *ctx, void *job)
{
	struct bkrfs *fs = ctx;

	bkrfs_cache_release(fs->chunks, ((struct store_job *)job)->ent);
}

/*
 * Put @p len bytes at @p buf into the page cache of @p ino at @p off.  May
 * wait for pages locked by reads in flight, which the request workers
 * answer: so never called from a request worker, nor while holding a chunk
 * being loaded (a reader may be waiting for it).  ENOENT: the kernel has
 * not made the inode yet (a readdirplus reply is turned into inodes by the
 * lister after our reply), so try again shortly, a few times.
 */
static int store_pages(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, const uint8_t *buf, size_t len)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
	int r = 0;

	bv.buf[0].mem = (void *)buf;
	for (unsigned t = 0; t < 4; t++) {
		if ((r = fuse_lowlevel_notify_store(fs->session, ino, (off_t)off, &bv, 0)) != -ENOENT)
			break;
		usleep(1000u << t);
	}
	return r;
}

/*
 * The store thread's job.  An inode the kernel has still not made after
 * store_pages' tries (the lister that reads the readdirplus reply has not
 * run: a loaded machine) goes back to the end of the queue, for up to
 * STORE_WAIT_NS, so that it neither holds up the stores behind it nor is
 * lost (the chunk is marked stored, and no later read would store it).
 */
static void store_run(void *ctx, void *job)
{
	struct bkrfs *fs = ctx;
	struct store_job *j = job;

	if (store_pages(fs, j->ino, j->off, j->buf, j->len) == -ENOENT &&
	    !__atomic_load_n(&fs->closing, __ATOMIC_ACQUIRE)) {
		int64_t now = bkr_clock_mono_ns();
		if (!j->until_ns)
			j->until_ns = now + STORE_WAIT_NS;
		if (now < j->until_ns) {
			usleep(2000); /* alone in the queue, it would be tried again at once */
			if (bkrfs_workq_push(fs->pagestore, j, 1, NULL))
				return; /* the queued copy keeps the chunk's reference */
		}
	}
	store_drop(ctx, job);
}

int bkrfs_pagestore_start(struct bkrfs *fs)
{
	struct workq *wq = bkrfs_workq_start(fs, sizeof(struct store_job), STORE_QUEUE, 1, store_run, store_drop);

	fs->pagestore = wq;
	return wq ? 0 : -1;
}

void bkrfs_pagestore_close(struct bkrfs *fs)
{
	bkrfs_workq_close(fs->pagestore);
}

void bkrfs_pagestore_join(struct bkrfs *fs)
{
	bkrfs_workq_join(fs->pagestore);
}

void bkrfs_pagestore_stop(struct bkrfs *fs)
{
	bkrfs_workq_free(fs->pagestore);
	fs->pagestore = NULL;
}

void bkrfs_pagestore_chunk(struct bkrfs *fs, bkrfs_ino ino, uint64_t off, bkrfs_cache_entry *ent,
			   const uint8_t *buf, size_t len, bool now)
{
	struct store_job j = { ino, off, ent, buf, len, 0 };

	if (!fs->pagestore || __atomic_load_n(&fs->closing, __ATOMIC_ACQUIRE) || bkrfs_cache_mark(fs->chunks, ent, ino, off))
		return; /* no thread, shutting down, or stored there since it was loaded */
	/* From a prefetch worker: tried at once.  An inode the kernel has not
	 * made yet (a walk's look-ahead, started as the readdirplus reply
	 * went out: the lister turns it into inodes only when it runs again)
	 * goes to the store thread, which tries it again for up to
	 * STORE_WAIT_NS; dropped here it would be lost (the chunk is marked
	 * stored). */
	if (now) {
		if (store_pages(fs, ino, off, buf, len) != -ENOENT || __atomic_load_n(&fs->closing, __ATOMIC_ACQUIRE))
			return;
		j.until_ns = bkr_clock_mono_ns() + STORE_WAIT_NS;
	}
	bkrfs_cache_ref(fs->chunks, ent);
	if (!bkrfs_workq_push(fs->pagestore, &j, 1, NULL))
		bkrfs_cache_release(fs->chunks, ent);
}
