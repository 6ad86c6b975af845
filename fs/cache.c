/** @file
 * The bounded single-flight LRU of cache.h.
 *
 * Entries live in a hash table (by the first bytes of the id, which is
 * already uniformly distributed) and in a doubly-linked LRU list of the
 * unreferenced, loaded entries; only those can be evicted.  An entry being
 * loaded is in the table with `loading` set; threads that find it wait on
 * the cache's condition variable.  The lock is never held while loading.
 */
#include "cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

struct bkrfs_cache_entry {
	bkr_id key;
	void *val;
	size_t cost;
	unsigned refs;           /**< holders (including the loader) */
	bool loading;
	int err;                 /**< load result, for waiters */
	char *msg;               /**< and its message (the loader's thread had it); may be NULL */
	bool dead;               /**< failed; unlinked from the table */
	bool drop;               /**< freed by the last release (bkrfs_cache_release_drop) */
	uint64_t marks[BKRFS_CACHE_MARKS][2]; /**< bkrfs_cache_mark: the last places */
	unsigned nmarks;         /**< marks made (the oldest is replaced) */
	struct bkrfs_cache_entry *hnext;          /**< hash chain */
	struct bkrfs_cache_entry *prev, *next;    /**< LRU (refs == 0 only) */
};

struct bkrfs_cache {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bkrfs_cache_entry **table;   /**< guarded by lock */
	size_t nbuckets;
	bkrfs_cache_entry lru;       /**< sentinel; lru.next = oldest */
	size_t entries, cost, max_cost;
	uint64_t hits, misses, loads, evictions;
	bkrfs_cache_load_fn load;
	bkrfs_cache_free_fn free_val;
	void *ctx;
};

static size_t cache_bucket(const bkrfs_cache *c, const bkr_id *k)
{
	size_t h;
	memcpy(&h, k->b, sizeof(h));
	return h & (c->nbuckets - 1);
}

int bkrfs_cache_new(bkrfs_cache **out, size_t max_cost, bkrfs_cache_load_fn load,
		    bkrfs_cache_free_fn free_val, void *ctx)
{
	bkrfs_cache *c;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))))
		return bkr_error_oom();
	c->nbuckets = 4096;
	if (!(c->table = calloc(c->nbuckets, sizeof(*c->table)))) {
		free(c);
		return bkr_error_oom();
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->lru.prev = c->lru.next = &c->lru;
	c->max_cost = max_cost;
	c->load = load;
	c->free_val = free_val;
	c->ctx = ctx;
	*out = c;
	return 0;
}

/* a failed entry, unhashed, once its last waiter has its code and message */
static void cache_dead_free(bkrfs_cache_entry *e)
{
	free(e->msg);
	free(e);
}

static void cache_entry_free(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	if (e->val && c->free_val)
		c->free_val(e->val);
	free(e);
}

void bkrfs_cache_free(bkrfs_cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < c->nbuckets; b++) {
		bkrfs_cache_entry *e = c->table[b], *n;
		for (; e; e = n) {
			n = e->hnext;
			cache_entry_free(c, e);
		}
	}
	free(c->table);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static bkrfs_cache_entry *cache_find_locked(bkrfs_cache *c, const bkr_id *k)
{
	for (bkrfs_cache_entry *e = c->table[cache_bucket(c, k)]; e; e = e->hnext)
		if (memcmp(e->key.b, k->b, BKR_ID_SIZE) == 0)
			return e;
	return NULL;
}

static void cache_unhash_locked(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	for (bkrfs_cache_entry **pp = &c->table[cache_bucket(c, &e->key)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			c->entries--;
			return;
		}
	}
}

static void cache_lru_unlink(bkrfs_cache_entry *e)
{
	if (e->prev) {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		e->prev = e->next = NULL;
	}
}

static void cache_lru_append(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	e->prev = c->lru.prev;
	e->next = &c->lru;
	c->lru.prev->next = e;
	c->lru.prev = e;
}

/* lock held: take a loaded, unreferenced entry out of the table and the budget */
static void cache_remove_locked(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	cache_unhash_locked(c, e);
	c->cost -= e->cost;
	c->evictions++;
}

/* lock held: evict unreferenced entries until under budget; returns a list to free */
static bkrfs_cache_entry *cache_evict_locked(bkrfs_cache *c)
{
	bkrfs_cache_entry *dead = NULL;

	while (c->cost > c->max_cost && c->lru.next != &c->lru) {
		bkrfs_cache_entry *e = c->lru.next;
		cache_lru_unlink(e);
		cache_remove_locked(c, e);
		e->hnext = dead;
		dead = e;
	}
	return dead;
}

static void cache_free_list(bkrfs_cache *c, bkrfs_cache_entry *dead)
{
	while (dead) {
		bkrfs_cache_entry *n = dead->hnext;
		cache_entry_free(c, dead);
		dead = n;
	}
}

int bkrfs_cache_get(bkrfs_cache *c, const bkr_id *key, bkrfs_cache_entry **ent, void **val)
{
	return bkrfs_cache_get_by(c, key, c->load, c->ctx, ent, val);
}

int bkrfs_cache_get_by(bkrfs_cache *c, const bkr_id *key, bkrfs_cache_load_fn load, void *ctx,
		       bkrfs_cache_entry **ent, void **val)
{
	bkrfs_cache_entry *e, *dead;
	char *msg;
	void *v = NULL;
	size_t cost = 0;
	int err;

	*ent = NULL;
	*val = NULL;
	pthread_mutex_lock(&c->lock);
	if ((e = cache_find_locked(c, key))) {
		cache_lru_unlink(e);
		e->refs++;
		if (!e->loading)
			c->hits++;
		while (e->loading)
			pthread_cond_wait(&c->cond, &c->lock);
		if (e->err) {
			/* the loader's code, and its message: this thread's slot
			 * holds whatever it met before */
			err = e->err;
			bkr_error_set(err, "%s", e->msg ? e->msg : bkr_error_name(err));
			if (--e->refs == 0)
				cache_dead_free(e); /* the loader unhashed it */
			pthread_mutex_unlock(&c->lock);
			return err;
		}
		*ent = e;
		*val = e->val;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	c->misses++;
	if (!(e = calloc(1, sizeof(*e)))) {
		pthread_mutex_unlock(&c->lock);
		return bkr_error_oom();
	}
	e->key = *key;
	e->loading = true;
	e->refs = 1;
	e->hnext = c->table[cache_bucket(c, key)];
	c->table[cache_bucket(c, key)] = e;
	c->entries++;
	c->loads++;
	pthread_mutex_unlock(&c->lock);

	err = load(ctx, key, &v, &cost);
	msg = err < 0 ? strdup(bkr_error_message()) : NULL;

	pthread_mutex_lock(&c->lock);
	e->loading = false;
	if (err < 0) {
		e->err = err;
		e->msg = msg;
		e->dead = true;
		cache_unhash_locked(c, e);
		if (--e->refs == 0)
			cache_dead_free(e);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return err;
	}
	e->val = v;
	e->cost = cost;
	c->cost += cost;
	dead = cache_evict_locked(c);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	cache_free_list(c, dead);
	*ent = e;
	*val = v;
	return 0;
}

/* Drop a reference; @p drop: free the entry once nobody holds it. */
static void cache_release(bkrfs_cache *c, bkrfs_cache_entry *e, bool drop)
{
	bkrfs_cache_entry *dead = NULL;

	if (!e)
		return;
	pthread_mutex_lock(&c->lock);
	e->drop |= drop;
	if (--e->refs == 0 && e->drop) {
		cache_remove_locked(c, e);
		e->hnext = NULL;
		dead = e;
	} else {
		if (e->refs == 0)
			cache_lru_append(c, e);
		dead = cache_evict_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
	cache_free_list(c, dead);
}

void bkrfs_cache_release(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	cache_release(c, e, false);
}

void bkrfs_cache_release_drop(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	cache_release(c, e, true);
}

bool bkrfs_cache_mark(bkrfs_cache *c, bkrfs_cache_entry *e, uint64_t a, uint64_t b)
{
	bool was = false;

	pthread_mutex_lock(&c->lock);
	for (unsigned k = 0; !was && k < e->nmarks && k < BKRFS_CACHE_MARKS; k++)
		was = e->marks[k][0] == a && e->marks[k][1] == b;
	if (!was) {
		e->marks[e->nmarks % BKRFS_CACHE_MARKS][0] = a;
		e->marks[e->nmarks % BKRFS_CACHE_MARKS][1] = b;
		e->nmarks++;
	}
	pthread_mutex_unlock(&c->lock);
	return was;
}

void bkrfs_cache_ref(bkrfs_cache *c, bkrfs_cache_entry *e)
{
	pthread_mutex_lock(&c->lock);
	e->refs++;
	pthread_mutex_unlock(&c->lock);
}

bool bkrfs_cache_contains(bkrfs_cache *c, const bkr_id *key)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = cache_find_locked(c, key) != NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

void bkrfs_cache_get_stats(bkrfs_cache *c, bkrfs_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	out->entries = c->entries;
	out->cost = c->cost;
	out->max_cost = c->max_cost;
	out->hits = c->hits;
	out->misses = c->misses;
	out->loads = c->loads;
	out->evictions = c->evictions;
	pthread_mutex_unlock(&c->lock);
}
