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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkrfs.h"
#include "catalog.h"
#include "chunk.h"
#include "node.h"
#include "pagestore.h"
#include "prefetch.h"
#include "prune.h"
#include "read.h"
#include "versions.h"
#include "watch.h"

void bkrfs_mount_init(struct bkrfs *fs)
{
	pthread_mutex_init(&fs->load_lock, NULL);
	pthread_mutex_init(&fs->vers_lock, NULL);
	pthread_rwlock_init(&fs->view_lock, NULL);
	pthread_mutex_init(&fs->watch_lock, NULL);
	pthread_cond_init(&fs->watch_cond, NULL);
	pthread_mutex_init(&fs->expect.lock, NULL);
	pthread_mutex_init(&fs->names.lock, NULL);
	pthread_mutex_init(&fs->seen.lock, NULL);
	bkrfs_horizon_init(&fs->horizon);
}

void bkrfs_mount_fini(struct bkrfs *fs)
{
	bkrfs_horizon_destroy(&fs->horizon);
	pthread_mutex_destroy(&fs->seen.lock);
	pthread_mutex_destroy(&fs->names.lock);
	pthread_mutex_destroy(&fs->expect.lock);
	pthread_cond_destroy(&fs->watch_cond);
	pthread_mutex_destroy(&fs->watch_lock);
	pthread_rwlock_destroy(&fs->view_lock);
	pthread_mutex_destroy(&fs->load_lock);
	pthread_mutex_destroy(&fs->vers_lock);
}

void bkrfs_log(struct bkrfs *fs, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!fs || fs->o.foreground)
		fprintf(stderr, "bkrfs: %s\n", line);
	else
		syslog(LOG_ERR, "%s", line);
}

/* the inode table's release callback: what a node holds besides itself */
static void inode_release(bkrfs_inode *i)
{
	bkrfs_file_free(i->file);
	i->file = NULL;
	bkrfs_snap_unref(i->snap);
	i->snap = NULL;
	bkrfs_versions_release(i);
}

int bkrfs_mount_setup(struct bkrfs *fs)
{
	size_t cache = bkrfs_cache_bytes(&fs->o);
	struct stat st;
	bool have = stat(fs->repo_real, &st) == 0;
	int err;

	fs->owner_uid = getuid();
	fs->owner_gid = getgid();
	fs->repo_uid = have ? st.st_uid : fs->owner_uid;
	fs->repo_gid = have ? st.st_gid : fs->owner_gid;
	fs->mount_time = (int64_t)time(NULL);
	if ((err = bkrfs_itable_new(&fs->itable, inode_release)) < 0 ||
	    (err = bkrfs_cache_new(&fs->chunks, cache, bkrfs_chunk_load, bkrfs_chunk_free, fs)) < 0 ||
	    (err = bkrfs_cache_new(&fs->dirs, 1024, bkrfs_tree_load, bkrfs_tree_free, fs)) < 0)
		return err;
	if ((err = bkrfs_node_pin_top(fs, BKRFS_INO_ROOT, BKRFS_NODE_ROOT, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_BY_ID, BKRFS_NODE_BY_ID, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_BY_DATE, BKRFS_NODE_BY_DATE, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_RECOVERED, BKRFS_NODE_RECOVERED, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_VERSIONS, BKRFS_NODE_VERSIONS, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_BY_SOURCE, BKRFS_NODE_BY_SOURCE, BKRFS_INO_ROOT)) < 0 ||
	    (err = bkrfs_node_pin_top(fs, BKRFS_INO_BY_TAG, BKRFS_NODE_BY_TAG, BKRFS_INO_ROOT)) < 0)
		return err;
	/* threads (prefetch, watcher) start in main() after fuse_daemonize():
	 * a fork keeps only the calling thread */
	return 0;
}

void bkrfs_mount_teardown(struct bkrfs *fs)
{
	bkrfs_itable_free(fs->itable);
	fs->itable = NULL;
	bkrfs_cache_free(fs->chunks);
	bkrfs_cache_free(fs->dirs);
	fs->chunks = fs->dirs = NULL;
	bkrfs_view_free(fs->view);
	fs->view = NULL;
	bkrfs_catalog_names_free(fs->view_names, fs->nview_names);
	fs->view_names = NULL;
	fs->nview_names = 0;
	bkrfs_runs_free(fs->runs);
	bkrfs_versions_fini(fs);
	fs->runs = NULL;
}

bool bkrfs_mount_sleep(struct bkrfs *fs, unsigned ms)
{
	struct timespec ts;
	bool go;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&fs->watch_lock);
	if (!fs->stopping)
		pthread_cond_timedwait(&fs->watch_cond, &fs->watch_lock, &ts);
	go = !fs->stopping;
	pthread_mutex_unlock(&fs->watch_lock);
	return go;
}

/* the watcher and the pruner */
static int watchers_start(struct bkrfs *fs)
{
	int e;

	if ((e = pthread_create(&fs->watcher, NULL, bkrfs_watch_main, fs)) != 0)
		return bkr_error_set_errno(e, "starting the watcher thread");
	fs->watcher_running = true;
	if ((e = pthread_create(&fs->pruner, NULL, bkrfs_prune_main, fs)) != 0)
		return bkr_error_set_errno(e, "starting the inode pruner thread");
	fs->pruner_running = true;
	return 0;
}

static void watchers_close(struct bkrfs *fs)
{
	pthread_mutex_lock(&fs->watch_lock);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->watch_cond);
	pthread_mutex_unlock(&fs->watch_lock);
}

static void watchers_join(struct bkrfs *fs)
{
	if (fs->watcher_running)
		pthread_join(fs->watcher, NULL);
	fs->watcher_running = false;
	if (fs->pruner_running)
		pthread_join(fs->pruner, NULL);
	fs->pruner_running = false;
}

int bkrfs_mount_start(struct bkrfs *fs)
{
	if (bkrfs_prefetch_start(fs, BKRFS_PREFETCH_THREADS) < 0)
		bkrfs_log(fs, "%s (reads will not prefetch)", bkr_error_message());
	if (bkrfs_pagestore_start(fs) < 0)
		bkrfs_log(fs, "%s (random reads will not fill the page cache)", bkr_error_message());
	if (watchers_start(fs) < 0)
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
	bkrfs_pagestore_close(fs);
	watchers_close(fs);
	/* 2. in-flight work fails fast */
	if (connected && fs->session)
		draining = pthread_create(&drainer, NULL, drain_main, &d) == 0;
	/* 3. join */
	watchers_join(fs);
	bkrfs_prefetch_join(fs);
	bkrfs_pagestore_join(fs);
	/* 4. the drain, the queues */
	if (draining) {
		__atomic_store_n(&d.stop, true, __ATOMIC_RELEASE);
		pthread_join(drainer, NULL);
	}
	bkrfs_prefetch_stop(fs);
	bkrfs_pagestore_stop(fs);
}
