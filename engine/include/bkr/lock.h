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
void bkr_lock_release(bkr_lock *l);

#endif
