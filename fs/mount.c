/** @file
 * The lifecycle of a mount's threads: the order they start in once the
 * mount is ready, and the order they stop in, which matters.
 *
 * Started (after fuse_daemonize, since a fork keeps only the calling
 * thread): the prefetch workers, the page-cache store thread, the watcher
 * and the inode pruner.  All four talk to the kernel through the session
 * (notify_store, notify_inval_*), and the kernel may make those calls wait
 * for page locks or directory locks that requests in flight hold.
 *
 * Stopped, once the session loop has returned (a signal, or the connection
 * gone), in this order:
 *
 * 1. nothing new: no page-cache store starts, the work queues take no job,
 *    the watcher and the pruner are told to stop;
 * 2. in-flight work fails fast: a drain thread answers the requests the
 *    kernel still queues (reads whose pages are locked, lookups holding a
 *    directory lock), so that every notify call waiting for them returns;
 *    when the connection is gone, those calls fail at once;
 * 3. the threads are joined: watcher and pruner, prefetch workers, store;
 * 4. the drain stops, the queues are freed (their chunk references go).
 *
 * Only then does main() unmount (closing /dev/fuse aborts whatever was
 * queued since), and destroy the session, last.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "bkr/error.h"
#include "bkrfs.h"
#include "watch.h"

int bkrfs_mount_start(struct bkrfs *fs)
{
	if (bkrfs_prefetch_start(fs, BKRFS_PREFETCH_THREADS) < 0)
		bkrfs_log(fs, "%s (reads will not prefetch)", bkr_error_message());
	if (bkrfs_store_start(fs) < 0)
		bkrfs_log(fs, "%s (random reads will not fill the page cache)", bkr_error_message());
	if (bkrfs_watcher_start(fs) < 0)
		bkrfs_log(fs, "%s (new backups will not appear until remount)", bkr_error_message());
	return 0;
}

struct drain {
	struct bkrfs *fs;
	bool stop;                 /**< atomic */
};

/* Answer requests until told to stop, or until the connection is gone. */
static void *drain_main(void *arg)
{
	struct drain *d = arg;
	struct fuse_session *se = d->fs->session;
	struct fuse_buf buf = { .mem = NULL };
	struct pollfd p = { .fd = fuse_session_fd(se), .events = POLLIN };

	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		int res;
		p.revents = 0;
		if (poll(&p, 1, 10) <= 0)
			continue; /* a timeout (checks stop), or EINTR */
		if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
			break; /* no connection: nothing to answer, notify calls fail */
		res = fuse_session_receive_buf(se, &buf);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0)
			break;
		fuse_session_process_buf(se, &buf);
	}
	free(buf.mem);
	return NULL;
}

void bkrfs_mount_stop(struct bkrfs *fs, bool connected)
{
	struct drain d = { .fs = fs, .stop = false };
	pthread_t drainer;
	bool draining = false;

	/* 1. nothing new */
	__atomic_store_n(&fs->closing, true, __ATOMIC_RELEASE);
	bkrfs_prefetch_close(fs);
	bkrfs_store_close(fs);
	bkrfs_watcher_close(fs);
	/* 2. in-flight work fails fast */
	if (connected && fs->session)
		draining = pthread_create(&drainer, NULL, drain_main, &d) == 0;
	/* 3. join */
	bkrfs_watcher_stop(fs);
	bkrfs_prefetch_join(fs);
	bkrfs_store_join(fs);
	/* 4. the drain, the queues */
	if (draining) {
		__atomic_store_n(&d.stop, true, __ATOMIC_RELEASE);
		pthread_join(drainer, NULL);
	}
	bkrfs_prefetch_stop(fs);
	bkrfs_store_stop(fs);
}
