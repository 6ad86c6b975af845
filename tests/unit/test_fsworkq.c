/** @file
 * The fs work queue (fs/workq.c): every queued job runs once with its bytes,
 * a full ring drops, `same` dedups, close/join/free stop in three steps, the
 * jobs left at free go to drop, and pushes from several threads lose or
 * double nothing.  Workers are held inside a job with a condition variable
 * (no sleeps).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../fs/workq.c"

#define NIDS 4096

typedef struct {
	uint32_t id;
	uint32_t check;
	unsigned char pad[24];
} job;

struct ctx {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;          /**< workers wait inside run() while set */
	unsigned inside;    /**< workers inside run(); guarded by lock */
	unsigned done;      /**< run() calls finished; guarded by lock */
	atomic_uint runs[NIDS];
	atomic_uint drops[NIDS];
	atomic_uint ndrop;
	atomic_bool bad;    /**< a job's bytes were not the ones pushed */
};

static job mk(uint32_t id)
{
	job j;
	j.id = id;
	j.check = id * 2654435761u;
	memset(j.pad, (int)(id & 0xff), sizeof(j.pad));
	return j;
}

static bool intact(const job *j)
{
	job want;
	if (j->id >= NIDS)
		return false;
	want = mk(j->id);
	return memcmp(j, &want, sizeof(want)) == 0;
}

static void run(void *vc, void *vj)
{
	struct ctx *c = vc;
	job j;

	memcpy(&j, vj, sizeof(j));
	if (!intact(&j)) {
		atomic_store(&c->bad, true);
		j.id = 0;
	}
	atomic_fetch_add(&c->runs[j.id], 1);
	pthread_mutex_lock(&c->lock);
	c->inside++;
	pthread_cond_broadcast(&c->cond);
	while (c->hold)
		pthread_cond_wait(&c->cond, &c->lock);
	c->inside--;
	c->done++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void drop(void *vc, void *vj)
{
	struct ctx *c = vc;
	job j;

	memcpy(&j, vj, sizeof(j));
	if (!intact(&j)) {
		atomic_store(&c->bad, true);
		j.id = 0;
	}
	atomic_fetch_add(&c->drops[j.id], 1);
	atomic_fetch_add(&c->ndrop, 1);
}

static bool same_id(const void *a, const void *b)
{
	return ((const job *)a)->id == ((const job *)b)->id;
}

static struct ctx *ctx_new(bool hold)
{
	struct ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->hold = hold;
	return c;
}

static void ctx_free(struct ctx *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void wait_inside(struct ctx *c, unsigned n)
{
	pthread_mutex_lock(&c->lock);
	while (c->inside < n)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void wait_done(struct ctx *c, unsigned n)
{
	pthread_mutex_lock(&c->lock);
	while (c->done < n)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void release(struct ctx *c)
{
	pthread_mutex_lock(&c->lock);
	c->hold = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static size_t push_ids(struct workq *wq, const uint32_t *ids, size_t n, bool (*same)(const void *, const void *))
{
	job js[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		js[i] = mk(ids[i]);
	return bkrfs_workq_push(wq, js, n, same);
}

/* every job pushed runs exactly once, with its bytes, also when the ring wraps */
static void test_each_runs_once(void **state)
{
	struct ctx *c = ctx_new(false);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 5, 3, run, drop);
	uint32_t id = 0;

	(void)state;
	assert_non_null(wq);
	for (int round = 0; round < 40; round++) {
		uint32_t ids[3] = { id, id + 1, id + 2 };
		assert_int_equal(push_ids(wq, ids, 3, NULL), 3);
		id += 3;
		wait_done(c, id); /* the ring is empty again */
	}
	bkrfs_workq_free(wq);
	assert_false(atomic_load(&c->bad));
	for (uint32_t k = 0; k < NIDS; k++)
		assert_int_equal(atomic_load(&c->runs[k]), k < id ? 1 : 0);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	ctx_free(c);
}

/* a full ring takes what fits and drops the rest */
static void test_full_ring_drops(void **state)
{
	struct ctx *c = ctx_new(true);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 4, 1, run, drop);
	uint32_t first = 0, more[6] = { 1, 2, 3, 4, 5, 6 }, last = 7;

	(void)state;
	assert_non_null(wq);
	assert_int_equal(push_ids(wq, &first, 1, NULL), 1);
	wait_inside(c, 1); /* the worker holds job 0; the ring is empty */
	assert_int_equal(push_ids(wq, more, 6, NULL), 4);
	assert_int_equal(push_ids(wq, &last, 1, NULL), 0);
	release(c);
	wait_done(c, 5);
	bkrfs_workq_free(wq);
	for (uint32_t k = 0; k <= 4; k++)
		assert_int_equal(atomic_load(&c->runs[k]), 1);
	for (uint32_t k = 5; k <= 7; k++)
		assert_int_equal(atomic_load(&c->runs[k]), 0);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	assert_false(atomic_load(&c->bad));
	ctx_free(c);
}

/* with `same`, a job equal to one queued (in the ring or earlier in the same
 * push) is not queued again; one running is no longer queued */
static void test_same_dedups(void **state)
{
	struct ctx *c = ctx_new(true);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 16, 1, run, drop);
	uint32_t zero = 0, a[5] = { 1, 2, 1, 3, 2 }, b[2] = { 3, 4 }, twice[2] = { 5, 5 };

	(void)state;
	assert_non_null(wq);
	assert_int_equal(push_ids(wq, &zero, 1, same_id), 1);
	wait_inside(c, 1);
	assert_int_equal(push_ids(wq, a, 5, same_id), 3);   /* 1 2 3 */
	assert_int_equal(push_ids(wq, b, 2, same_id), 1);   /* 4 */
	assert_int_equal(push_ids(wq, &zero, 1, same_id), 1); /* 0 is running, not queued */
	assert_int_equal(push_ids(wq, twice, 2, NULL), 2);  /* no `same`: both */
	release(c);
	wait_done(c, 8);
	bkrfs_workq_free(wq);
	assert_int_equal(atomic_load(&c->runs[0]), 2);
	for (uint32_t k = 1; k <= 4; k++)
		assert_int_equal(atomic_load(&c->runs[k]), 1);
	assert_int_equal(atomic_load(&c->runs[5]), 2);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	assert_false(atomic_load(&c->bad));
	ctx_free(c);
}

/* a closed queue queues nothing */
static void test_close_refuses(void **state)
{
	struct ctx *c = ctx_new(false);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 8, 2, run, drop);
	uint32_t ids[3] = { 1, 2, 3 };

	(void)state;
	assert_non_null(wq);
	bkrfs_workq_close(wq);
	assert_int_equal(push_ids(wq, ids, 3, NULL), 0);
	bkrfs_workq_close(wq); /* twice is harmless */
	assert_int_equal(push_ids(wq, ids, 3, same_id), 0);
	bkrfs_workq_free(wq);
	for (uint32_t k = 0; k < 4; k++)
		assert_int_equal(atomic_load(&c->runs[k]), 0);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	ctx_free(c);
}

struct joiner {
	struct workq *wq;
	struct ctx *c;
	unsigned done_at_return;
	atomic_bool returned;
};

static void *join_main(void *arg)
{
	struct joiner *jn = arg;
	bkrfs_workq_join(jn->wq);
	pthread_mutex_lock(&jn->c->lock);
	jn->done_at_return = jn->c->done;
	pthread_mutex_unlock(&jn->c->lock);
	atomic_store(&jn->returned, true);
	return NULL;
}

/* join returns only once every thread has finished the job it was doing */
static void test_join_waits(void **state)
{
	struct ctx *c = ctx_new(true);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 8, 2, run, drop);
	uint32_t ids[2] = { 1, 2 }, late = 3;
	struct joiner jn = { .wq = wq, .c = c };
	pthread_t th;

	(void)state;
	assert_non_null(wq);
	assert_int_equal(push_ids(wq, ids, 2, NULL), 2);
	wait_inside(c, 2); /* both workers hold a job */
	assert_int_equal(pthread_create(&th, NULL, join_main, &jn), 0);
	assert_false(atomic_load(&jn.returned)); /* cannot have: both jobs are held */
	release(c);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(atomic_load(&jn.returned));
	assert_int_equal(jn.done_at_return, 2);
	assert_int_equal(push_ids(wq, &late, 1, NULL), 0); /* join closed it */
	bkrfs_workq_join(wq); /* again: no thread left to wait for */
	bkrfs_workq_free(wq);
	assert_int_equal(atomic_load(&c->runs[1]), 1);
	assert_int_equal(atomic_load(&c->runs[2]), 1);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	ctx_free(c);
}

/* the jobs still queued when the queue stops go to drop, with their bytes;
 * without a drop they are just freed */
static void test_free_drops_left(void **state)
{
	(void)state;
	for (int with_drop = 1; with_drop >= 0; with_drop--) {
		struct ctx *c = ctx_new(true);
		struct workq *wq = bkrfs_workq_start(c, sizeof(job), 4, 1, run, with_drop ? drop : NULL);
		uint32_t first = 0, left[3] = { 7, 8, 9 };

		assert_non_null(wq);
		assert_int_equal(push_ids(wq, &first, 1, NULL), 1);
		wait_inside(c, 1);
		assert_int_equal(push_ids(wq, left, 3, NULL), 3);
		bkrfs_workq_close(wq); /* before the worker can take another */
		release(c);
		bkrfs_workq_free(wq);
		assert_int_equal(atomic_load(&c->runs[0]), 1);
		for (int k = 0; k < 3; k++) {
			assert_int_equal(atomic_load(&c->runs[left[k]]), 0);
			assert_int_equal(atomic_load(&c->drops[left[k]]), with_drop ? 1 : 0);
		}
		assert_int_equal(atomic_load(&c->ndrop), with_drop ? 3 : 0);
		assert_false(atomic_load(&c->bad));
		ctx_free(c);
	}
}

/* NULL is a no-op everywhere; an oversized job starts no queue */
static void test_null(void **state)
{
	job j = mk(1);
	struct ctx *c = ctx_new(false);

	(void)state;
	bkrfs_workq_close(NULL);
	bkrfs_workq_join(NULL);
	bkrfs_workq_free(NULL);
	assert_int_equal(bkrfs_workq_push(NULL, &j, 1, NULL), 0);
	assert_int_equal(bkrfs_workq_push(NULL, &j, 1, same_id), 0);
	assert_null(bkrfs_workq_start(c, WORKQ_JOB_MAX + 1, 4, 1, run, drop));
	ctx_free(c);
}

#define PUSHERS 4
#define PER_PUSHER 500
#define BATCH 5

struct pusher {
	struct workq *wq;
	pthread_barrier_t *go;
	uint32_t base;
	atomic_uint *queued;
};

static void *push_main(void *arg)
{
	struct pusher *p = arg;
	job js[BATCH];

	pthread_barrier_wait(p->go);
	for (uint32_t i = 0; i < PER_PUSHER; i += BATCH) {
		size_t off = 0;
		for (size_t k = 0; k < BATCH; k++)
			js[k] = mk(p->base + i + (uint32_t)k);
		/* without `same`, what is queued is a prefix: retry the rest */
		while (off < BATCH) {
			size_t q = bkrfs_workq_push(p->wq, js + off, BATCH - off, NULL);
			atomic_fetch_add(p->queued, (unsigned)q);
			off += q;
			if (!q)
				sched_yield();
		}
	}
	return NULL;
}

/* several threads pushing at once: no job lost or run twice */
static void test_concurrent_push(void **state)
{
	struct ctx *c = ctx_new(false);
	struct workq *wq = bkrfs_workq_start(c, sizeof(job), 16, 2, run, drop);
	struct pusher ps[PUSHERS];
	pthread_t th[PUSHERS];
	pthread_barrier_t go;
	atomic_uint queued = 0;

	(void)state;
	assert_non_null(wq);
	pthread_barrier_init(&go, NULL, PUSHERS);
	for (int t = 0; t < PUSHERS; t++) {
		ps[t] = (struct pusher){ wq, &go, (uint32_t)(t * PER_PUSHER), &queued };
		assert_int_equal(pthread_create(&th[t], NULL, push_main, &ps[t]), 0);
	}
	for (int t = 0; t < PUSHERS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	pthread_barrier_destroy(&go);
	assert_int_equal(atomic_load(&queued), PUSHERS * PER_PUSHER);
	wait_done(c, PUSHERS * PER_PUSHER);
	bkrfs_workq_free(wq);
	assert_false(atomic_load(&c->bad));
	for (uint32_t k = 0; k < NIDS; k++)
		assert_int_equal(atomic_load(&c->runs[k]), k < PUSHERS * PER_PUSHER ? 1 : 0);
	assert_int_equal(atomic_load(&c->ndrop), 0);
	ctx_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_runs_once),
		cmocka_unit_test(test_full_ring_drops),
		cmocka_unit_test(test_same_dedups),
		cmocka_unit_test(test_close_refuses),
		cmocka_unit_test(test_join_waits),
		cmocka_unit_test(test_free_drops_left),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_concurrent_push),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
