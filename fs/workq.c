/** @file
 * The work queue (workq.h): a bounded ring of fixed-size jobs under one
 * mutex and condition variable, served by a few threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "workq.h"

#define WORKQ_THREADS_MAX 8
#define WORKQ_JOB_MAX 96              /**< bytes of one job */

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *q;          /**< cap jobs of size bytes; guarded by lock */
	size_t size, cap, head, n;
	bool stop;
	pthread_t th[WORKQ_THREADS_MAX];
	int nth;
	void *ctx;
	bkrfs_workq_fn run;
	bkrfs_workq_fn drop;       /**< may be NULL */
};

static void *workq_main(void *arg)
{
	struct workq *wq = arg;
	unsigned char job[WORKQ_JOB_MAX];

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		while (!wq->stop && wq->n == 0)
			pthread_cond_wait(&wq->cond, &wq->lock);
		if (wq->stop)
			break;
		memcpy(job, wq->q + wq->head * wq->size, wq->size);
		wq->head = (wq->head + 1) % wq->cap;
		wq->n--;
		pthread_mutex_unlock(&wq->lock);
		wq->run(wq->ctx, job);
		pthread_mutex_lock(&wq->lock);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

struct workq *bkrfs_workq_start(void *ctx, size_t size, size_t cap, int threads, bkrfs_workq_fn run,
				bkrfs_workq_fn drop)
{
	struct workq *wq = calloc(1, sizeof(*wq));

	if (!wq || size > WORKQ_JOB_MAX || !(wq->q = malloc(size * cap))) {
		free(wq);
		bkr_error_oom();
		return NULL;
	}
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->size = size;
	wq->cap = cap;
	wq->ctx = ctx;
	wq->run = run;
	wq->drop = drop;
	for (int k = 0; k < threads && k < WORKQ_THREADS_MAX; k++) {
		if (pthread_create(&wq->th[k], NULL, workq_main, wq) != 0)
			break;
		wq->nth++;
	}
	if (!wq->nth) {
		pthread_cond_destroy(&wq->cond);
		pthread_mutex_destroy(&wq->lock);
		free(wq->q);
		free(wq);
		bkr_error_set(BKR_EIO, "cannot start a worker thread");
		return NULL;
	}
	return wq;
}

void bkrfs_workq_close(struct workq *wq)
{
	if (!wq)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stop = true;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}

void bkrfs_workq_join(struct workq *wq)
{
	if (!wq)
		return;
	bkrfs_workq_close(wq);
	for (int k = 0; k < wq->nth; k++)
		pthread_join(wq->th[k], NULL);
	wq->nth = 0;
}

void bkrfs_workq_free(struct workq *wq)
{
	if (!wq)
		return;
	bkrfs_workq_join(wq);
	for (; wq->n; wq->n--, wq->head = (wq->head + 1) % wq->cap)
		if (wq->drop)
			wq->drop(wq->ctx, wq->q + wq->head * wq->size);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq->q);
	free(wq);
}

size_t bkrfs_workq_push(struct workq *wq, const void *jobs, size_t n,
			bool (*same)(const void *, const void *))
{
	size_t queued = 0;

	if (!wq)
		return 0;
	pthread_mutex_lock(&wq->lock);
	for (size_t i = 0; i < n && wq->n < wq->cap && !wq->stop; i++) {
		const unsigned char *job = (const unsigned char *)jobs + i * wq->size;
		size_t k = 0;
		while (same && k < wq->n && !same(wq->q + (wq->head + k) % wq->cap * wq->size, job))
			k++;
		if (same && k < wq->n)
			continue;
		memcpy(wq->q + (wq->head + wq->n) % wq->cap * wq->size, job, wq->size);
		wq->n++;
		queued++;
	}
	if (queued > 1)
		pthread_cond_broadcast(&wq->cond);
	else if (queued)
		pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	return queued;
}
