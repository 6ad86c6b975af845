/** @file
 * The repository lock (bkr/lock.h): one lock object, locks/repo.lock, taken
 * shared by backups and verify and exclusively by prune and tier migration,
 * through the store (flock(2) on a local one: a killed holder never blocks);
 * and the writers' mark, locks/writers.lock, held shared by every writer
 * and probed by verify.
 */
#include "bkr/lock.h"
#include "bkr/error.h"
#include "repo_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bkr_lock {
	bkr_store_held *held;
};

static int wrap(bkr_store_held *held, bkr_lock **out)
{
	bkr_lock *l = malloc(sizeof(*l));
	if (!l) {
		bkr_store_unlock(held);
		return bkr_error_oom();
	}
	l->held = held;
	*out = l;
	return 0;
}

int bkr_repo_lock(bkr_repo *r, bkr_lock_mode mode, bool wait, bkr_lock **out)
{
	bkr_store_held *held;
	int err;

	*out = NULL;
	err = bkr_store_lock(r->store, "locks/repo.lock", mode == BKR_LOCK_EXCLUSIVE, wait, &held);
	if (err == BKR_ELOCKED) /* the store's word on the holder (an S3 lock names it and its age), whole */
		return bkr_error_set(BKR_ELOCKED, "%s: repository is locked by %s (try again later; %s)", r->path,
				     mode == BKR_LOCK_EXCLUSIVE ? "another command (a backup or copy, or a delete, cleanup, "
								  "prune, repair or tier migration)"
								: "a running delete, cleanup, prune, repair or tier command",
				     bkr_error_message());
	if (err < 0)
		return err;
	return wrap(held, out);
}

int bkr_repo_lock_or_wait(bkr_repo *r, bkr_lock_mode mode, bool no_wait, void (*waiting)(void *ctx), void *ctx,
			  bkr_lock **out)
{
	int err = bkr_repo_lock(r, mode, false, out);
	if (err != BKR_ELOCKED || no_wait)
		return err;
	bkr_error_clear();
	if (waiting)
		waiting(ctx);
	return bkr_repo_lock(r, mode, true, out);
}

#define WRITERS "locks/writers.lock"

int bkr_repo_writer_mark(bkr_repo *r, bkr_lock **out)
{
	bkr_store_held *held;
	int err;

	*out = NULL;
	/* shared with every other writer; verify's exclusive probe is momentary:
	 * a mark, which waits for nobody (one PUT on S3) */
	if ((err = bkr_store_mark(r->store, WRITERS, &held)) < 0)
		return err;
	return wrap(held, out);
}

int bkr_repo_writers_active(bkr_repo *r, char **who)
{
	bkr_store_held *held;
	int err = bkr_store_lock(r->store, WRITERS, true, false, &held);
	if (who)
		*who = NULL;
	if (err == BKR_ELOCKED) {
		/* the store's word on the holder (S3: its host, pid and last refresh), whole */
		if (who)
			*who = strdup(bkr_error_message());
		bkr_error_clear();
		return 1;
	}
	if (err < 0)
		return 2;
	bkr_store_unlock(held);
	return 0;
}

void bkr_lock_release(bkr_lock *l)
{
	if (!l)
		return;
	bkr_store_unlock(l->held);
	free(l);
}
