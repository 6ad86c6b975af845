/** @file
 * The blob writer (bkr/writer.h): any number of threads put blobs; each is
 * compressed in the caller's thread and appended to the open pack of its
 * type under the lock; a full pack is handed to the writer's publisher
 * thread (its fsync and rename no longer stall the thread that filled it;
 * at most PUB_MAX wait, then put blocks); a commit waits for those, publishes
 * the open packs, then one index file naming them (docs/design.md,
 * "Write protocol and crash safety").  The first failure is sticky, and every
 * thread reports its message.
 */
#include "bkr/writer.h"
#include "bkr/error.h"
#include "bkr/lock.h"
#include "bkr/pack.h"
#include "idset.h"
#include "repo_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The folder of a blob type's packs (and of their unfinished uploads). */
static const char *pack_folder(bkr_blob_type type)
{
	return type == BKR_BLOB_TREE ? "tree" : "data";
}

#define PUB_MAX 2 /**< full packs waiting for the publisher thread */
_Static_assert(BKR_WRITER_FDS == 2 + PUB_MAX + 1 + 1,
	       "BKR_WRITER_FDS: 2 packs filled, PUB_MAX waiting, 1 published, its dir");

struct bkr_writer {
	bkr_repo *repo;
	pthread_mutex_t lock;           /* guards everything below */
	bkr_idset seen;              /* ids stored or being stored by this writer */
	bkr_pack_writer *open[2];       /* per blob type */
	bkr_index_builder *index;
	bkr_lock *mark;                 /* the writers' mark (verify tells us from leftovers) */
	int failed;                     /* first error seen (sticky) */
	char *failed_msg;               /* its message, for the other threads, whole (NULL: out of memory) */
	/* full packs for the publisher thread, oldest first */
	struct { bkr_pack_writer *pw; bkr_blob_type type; } pubq[PUB_MAX];
	size_t npub;
	bool pub_busy;                  /* the publisher holds a pack */
	bool pub_started, pub_stop;
	pthread_t pub;
	pthread_cond_t pub_cv;          /* a pack queued, or stop */
	pthread_cond_t pub_done;        /* a pack published (room in the queue) */
};

/* The first failure's message, or words saying it could not be kept. */
#define FAILED_MSG(w) ((w)->failed_msg ? (w)->failed_msg : "out of memory (the first failure's message could not be kept)")

/* Record the first failure (its message comes from the calling thread); a
 * later one is a consequence (e.g. "pack writer failed earlier"), so the
 * calling thread reports the first instead.  w->lock held. */
static int writer_fail_locked(bkr_writer *w, int err)
{
	if (!w->failed) {
		w->failed = err;
		w->failed_msg = strdup(bkr_error_message());
		return err;
	}
	return bkr_error_set(w->failed, "%s", FAILED_MSG(w));
}

static int writer_fail(bkr_writer *w, int err)
{
	pthread_mutex_lock(&w->lock);
	writer_fail_locked(w, err);
	pthread_mutex_unlock(&w->lock);
	return err;
}

/* The sticky failure, with its message set in the calling thread. */
static int writer_failed(bkr_writer *w)
{
	int err;
	pthread_mutex_lock(&w->lock);
	err = w->failed;
	if (err)
		bkr_error_set(err, "%s", FAILED_MSG(w));
	pthread_mutex_unlock(&w->lock);
	return err;
}

int bkr_writer_new(bkr_writer **out, bkr_repo *r)
{
	bkr_writer *w;
	int err;
	*out = NULL;
	if ((err = bkr_repo_check_writable(r)) < 0)
		return err;
	if (!(w = calloc(1, sizeof(*w))))
		return bkr_error_oom();
	w->repo = r;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->pub_cv, NULL);
	pthread_cond_init(&w->pub_done, NULL);
	if ((err = bkr_repo_writer_mark(r, &w->mark)) < 0 || (err = bkr_index_builder_new(&w->index)) < 0) {
		bkr_writer_free(w);
		return err;
	}
	*out = w;
	return 0;
}

/* Publish a full pack and add its entries to the index builder.  Called
 * without w->lock held; @p pw is owned by the caller. */
static int pack_publish(bkr_writer *w, bkr_pack_writer *pw, bkr_blob_type type)
{
	bkr_pack_id pid;
	const bkr_pack_entry *ents;
	size_t n;
	int err;

	if ((err = bkr_pack_writer_finish(pw, pack_folder(type), &pid)) < 0)
		return err;
	ents = bkr_pack_writer_entries(pw, &n);
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < n && err == 0; i++) {
		bkr_index_entry e = bkr_pack_entry_index(&ents[i], &pid);
		err = bkr_index_builder_add(w->index, &e);
	}
	pthread_mutex_unlock(&w->lock);
	return err;
}

/* The publisher thread: publish queued full packs until told to stop with
 * none left.  A failure is the writer's sticky one, seen by the next put or
 * the commit. */
static void *publisher_main(void *arg)
{
	bkr_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		if (w->npub == 0) {
			if (w->pub_stop)
				break;
			pthread_cond_wait(&w->pub_cv, &w->lock);
			continue;
		}
		bkr_pack_writer *pw = w->pubq[0].pw;
		bkr_blob_type type = w->pubq[0].type;
		memmove(&w->pubq[0], &w->pubq[1], (w->npub - 1) * sizeof(w->pubq[0]));
		w->npub--;
		w->pub_busy = true;
		bool skip = w->failed != 0;
		pthread_mutex_unlock(&w->lock);
		int err = skip ? 0 : pack_publish(w, pw, type);
		if (err < 0)
			writer_fail(w, err);
		bkr_pack_writer_free(pw);
		pthread_mutex_lock(&w->lock);
		w->pub_busy = false;
		pthread_cond_broadcast(&w->pub_done);
	}
	pthread_mutex_unlock(&w->lock);
	bkr_error_clear();
	return NULL;
}

/* Queue the full pack @p pw for the publisher (w->lock held; blocks while
 * PUB_MAX wait).  Returns false when there is no publisher thread: the caller
 * publishes it itself. */
static bool publish_later(bkr_writer *w, bkr_pack_writer *pw, bkr_blob_type type)
{
	if (!w->pub_started) {
		if (pthread_create(&w->pub, NULL, publisher_main, w) != 0)
			return false;
		w->pub_started = true;
	}
	while (w->npub == PUB_MAX)
		pthread_cond_wait(&w->pub_done, &w->lock);
	w->pubq[w->npub].pw = pw;
	w->pubq[w->npub].type = type;
	w->npub++;
	pthread_cond_signal(&w->pub_cv);
	return true;
}

/* Wait until the publisher has published every queued pack (w->lock held). */
static void publish_wait(bkr_writer *w)
{
	while (w->npub > 0 || w->pub_busy)
		pthread_cond_wait(&w->pub_done, &w->lock);
}

int bkr_writer_put(bkr_writer *w, bkr_blob_type type, const bkr_id *id,
		   const void *data, size_t len, bool *is_new, uint32_t *stored)
{
	return bkr_writer_put_level(w, type, id, data, len, 0, is_new, stored);
}

static int put(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, int level, bool anew,
	       bool *is_new, uint32_t *stored);

int bkr_writer_put_level(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, int level,
			 bool *is_new, uint32_t *stored)
{
	return put(w, type, id, data, len, level, false, is_new, stored);
}

int bkr_writer_put_anew(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, bool *is_new,
			uint32_t *stored)
{
	return put(w, type, id, data, len, 0, true, is_new, stored);
}

/* The one put: @p anew stores a blob the index names (its copy there damaged) all the same. */
static int put(bkr_writer *w, bkr_blob_type type, const bkr_id *id, const void *data, size_t len, int level, bool anew,
	       bool *is_new, uint32_t *stored)
{
	bkr_index_entry e;
	bkr_pack_writer *full = NULL;
	uint8_t *payload = NULL, flags = 0;
	const void *body;
	uint32_t stored_len = 0;
	int err, added;

	if (is_new)
		*is_new = false;
	if (stored)
		*stored = 0;
	if (len > BKR_BLOB_MAX)
		return bkr_error_set(BKR_EINVAL, "blob of %zu bytes exceeds the %u-byte limit", len, BKR_BLOB_MAX);
	if (!anew && bkr_repo_lookup(w->repo, id, &e) == 0)
		return 0;
	bkr_error_clear();
	if ((err = writer_failed(w)) < 0)
		return err;
	pthread_mutex_lock(&w->lock);
	added = bkr_idset_add(&w->seen, id);
	pthread_mutex_unlock(&w->lock);
	if (added <= 0)
		return added;

	/* a raw blob is appended from the caller's bytes, never copied */
	if (level <= 0 || w->repo->cfg.level == 0)
		level = w->repo->cfg.level;
	if ((err = bkr_blob_compress(w->repo->cfg.codec, level, data, len, &payload, &stored_len, &flags)) < 0)
		goto done;
	body = payload ? payload : data ? data : (const void *)"";

	pthread_mutex_lock(&w->lock);
	if (!w->open[type])
		err = bkr_pack_writer_new(&w->open[type], w->repo->store, pack_folder(type), type, w->repo->crypto);
	/* encrypted: sealed under the lock, straight into the pack's staging
	 * window, which is where a plain payload is copied under it */
	if (err == 0)
		err = w->repo->crypto
			? bkr_pack_writer_seal_add(w->open[type], id, flags, body, stored_len, (uint32_t)len, &stored_len)
			: bkr_pack_writer_add(w->open[type], id, flags, body, stored_len, (uint32_t)len);
	if (err == 0 && bkr_pack_writer_size(w->open[type]) >= w->repo->cfg.pack_size) {
		full = w->open[type];
		w->open[type] = NULL;
		if (publish_later(w, full, type))
			full = NULL;
	}
	/* under the lock, so the first failure's message is the one kept */
	if (err < 0)
		writer_fail_locked(w, err);
	pthread_mutex_unlock(&w->lock);
	if (err < 0)
		goto done;
	if (full && (err = pack_publish(w, full, type)) < 0) {
		writer_fail(w, err);
		goto done;
	}
	if (is_new)
		*is_new = true;
	if (stored)
		*stored = stored_len + BKR_BLOB_HEADER_SIZE;
done:
	bkr_pack_writer_free(full);
	free(payload);
	return err;
}

int bkr_writer_put_hash(bkr_writer *w, bkr_blob_type type, const void *data, size_t len,
			bkr_id *id, bool *is_new)
{
	bkr_repo_blob_id(w->repo, data, len, id);
	return bkr_writer_put(w, type, id, data, len, is_new, NULL);
}

void bkr_writer_blob_id(const bkr_writer *w, const void *data, size_t len, bkr_id *id)
{
	bkr_repo_blob_id(w->repo, data, len, id);
}

void bkr_writer_blob_id_start(const bkr_writer *w, bkr_hash_ctx *h)
{
	bkr_repo_blob_id_start(w->repo, h);
}

void bkr_writer_blob_id_end(const bkr_writer *w, bkr_hash_ctx *h, bkr_id *id)
{
	bkr_repo_blob_id_end(w->repo, h, id);
}

bool bkr_writer_keyed(const bkr_writer *w)
{
	return w->repo->crypto != NULL;
}

int bkr_writer_emit_tree(void *w, bkr_id *id, const uint8_t *blob, size_t len)
{
	bkr_writer_blob_id(w, blob, len, id);
	return bkr_writer_put(w, BKR_BLOB_TREE, id, blob, len, NULL, NULL);
}

int bkr_writer_commit(bkr_writer *w)
{
	bkr_id file_id;
	int err;

	pthread_mutex_lock(&w->lock);
	publish_wait(w);
	pthread_mutex_unlock(&w->lock);
	if ((err = writer_failed(w)) < 0)
		return err;
	/* Data packs first, then tree packs, then the index that names them. */
	for (int t = 0; t < 2; t++) {
		bkr_pack_writer *pw = w->open[t];
		w->open[t] = NULL;
		if (!pw)
			continue;
		err = bkr_pack_writer_count(pw) ? pack_publish(w, pw, (bkr_blob_type)t) : 0;
		bkr_pack_writer_free(pw);
		if (err < 0)
			return writer_fail(w, err);
	}
	if (bkr_index_builder_count(w->index) == 0)
		return 0;
	if ((err = bkr_index_builder_publish(w->index, w->repo->store, "index/", &file_id)) < 0)
		return writer_fail(w, err);
	bkr_index_builder_free(w->index);
	w->index = NULL;
	if ((err = bkr_index_builder_new(&w->index)) < 0)
		return err;
	return bkr_repo_reload_index(w->repo);
}

void bkr_writer_free(bkr_writer *w)
{
	if (!w)
		return;
	if (w->pub_started) {
		/* queued packs are still published (their blobs are in no index
		 * until a commit names them: cleanup's leftovers otherwise) */
		pthread_mutex_lock(&w->lock);
		w->pub_stop = true;
		pthread_cond_signal(&w->pub_cv);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->pub, NULL);
	}
	bkr_pack_writer_free(w->open[0]);
	bkr_pack_writer_free(w->open[1]);
	bkr_index_builder_free(w->index);
	bkr_idset_free(&w->seen);
	bkr_lock_release(w->mark);
	pthread_cond_destroy(&w->pub_cv);
	pthread_cond_destroy(&w->pub_done);
	pthread_mutex_destroy(&w->lock);
	free(w->failed_msg);
	free(w);
}
