/** @file
 * The repository lock (engine/lock.c): shared for backups and verify,
 * exclusive for prune and tier migration; it dies with its holder.
 */
#ifndef BKR_LOCK_H
#define BKR_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"

typedef enum { BKR_LOCK_SHARED, BKR_LOCK_EXCLUSIVE } bkr_lock_mode;
typedef struct bkr_lock bkr_lock;
/** flock(2) on locks/repo.lock; BKR_ELOCKED when @p wait is false and it is held. */
int bkr_repo_lock(bkr_repo *r, bkr_lock_mode mode, bool wait, bkr_lock **out);
/**
 * The lock at once; when it is held, BKR_ELOCKED if @p no_wait, else
 * @p waiting(@p ctx) (optional) and a wait for the holder.
 */
int bkr_repo_lock_or_wait(bkr_repo *r, bkr_lock_mode mode, bool no_wait, void (*waiting)(void *ctx), void *ctx,
			  bkr_lock **out);
void bkr_lock_release(bkr_lock *l);

/**
 * Mark a writer at work: a shared hold on locks/writers.lock for as long as
 * it may leave unfinished objects (bkr_writer takes it), so that verify can
 * tell the work in progress of a running command from the leftovers of a
 * dead one.  It dies with its holder, like the repository lock.
 */
int bkr_repo_writer_mark(bkr_repo *r, bkr_lock **out);

/**
 * Whether a writer holds its mark now: 1 yes, 0 no, 2 cannot tell (a
 * read-only repository).  On 1 *@p who (@p who may be NULL) gets the
 * store's word on the holder, whole (on S3 its host, pid and last refresh: a
 * killed writer's mark stays there until it is stale): malloc'd, the
 * caller's to free (NULL out of memory); else NULL.
 */
int bkr_repo_writers_active(bkr_repo *r, char **who);

#endif
